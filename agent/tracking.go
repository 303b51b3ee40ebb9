package agent

import (
	"context"
	"errors"
	"strings"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/track"
	"github.com/vipd/vipd/vrrp"
)

// configureTracking tells the tracker what to watch: every vrrp_script and
// track_file of the model, and every interface an instance or a sync group
// tracks (an instance's own interface unless dont_track_primary).
func (a *Agent) configureTracking(m *config.Model) {
	if a.tracker == nil {
		return
	}
	seen := map[string]bool{}
	var ifaces []string
	add := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			ifaces = append(ifaces, name)
		}
	}
	for _, ic := range m.Instances {
		if !ic.DontTrackPrimary {
			add(ic.Interface)
		}
		for _, t := range ic.TrackInterfaces {
			add(t.Name)
		}
	}
	for _, g := range m.SyncGroups {
		for _, t := range g.TrackInterfaces {
			add(t.Name)
		}
	}
	g := m.Global
	a.tracker.SetScriptDefaults(g.ScriptUser, g.ScriptGroup, g.EnableScriptSecurity)
	if err := a.tracker.Configure(m.Scripts, ifaces, m.TrackFiles); err != nil {
		a.log.Error("tracking configuration", "err", err)
	}
}

// trackLoop recomputes every instance's effective priority and faults when
// a tracked object changes.
func (a *Agent) trackLoop(ctx context.Context, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			a.refresh()
		}
	}
}

type instUpdate struct {
	ri     *runningInstance
	name   string
	base   int
	eff    int               // 0: unchanged
	faults map[string]string // keyed faults to set ("" clears)
}

// trackingKey is the prefix of the fault keys of tracked items
// ("tracking/interface/eth0").
const trackingKey = "tracking/"

// refresh recomputes every instance's effective priority (its configured
// priority or the override in force, plus tracking weights) and its faults
// (one per failing tracked item, maintenance, door faults), and sends each
// instance what changed. An instance waits in INIT until all its tracked
// objects have a first result, as keepalived waits for its scripts; a
// running instance whose tracked object has no result for a while (a
// reload restarted the script) keeps the last result instead of moving.
func (a *Agent) refresh() {
	// One refresh at a time, so an older result is never applied after a
	// newer one (apply, the door and the tracker loop all call this).
	a.trackMu.Lock()
	defer a.trackMu.Unlock()
	var updates []instUpdate
	a.mu.Lock()
	for name, ri := range a.running {
		ovs := a.overridesOf(name)
		base := ri.cfg.Priority
		if len(ovs) > 0 {
			base = ovs[0].Priority
		}
		var items []track.ItemState
		known := true
		if a.tracker != nil {
			var gc *config.SyncGroup
			if sg := a.groups[ri.group]; sg != nil {
				gc = sg.cfg
			}
			items = a.tracker.ItemsForMember(ri.cfg, gc)
			for _, it := range items {
				known = known && it.Known
			}
		}
		cfgPrio := ri.cfg.Priority
		a.hub.setAgent(ri, func(p *agentPart) {
			p.base, p.overrides, p.tracked = cfgPrio, ovs, trackedStatus(items)
		})
		if ri.inst == nil {
			continue
		}
		eff, _ := track.Compute(base, items)
		want := a.maintFaults(name)
		if want == nil {
			want = map[string]string{}
		}
		if known {
			for k, v := range track.FaultsByItem(base, items) {
				want[trackingKey+k] = v
			}
		} else {
			// No result yet: keep the tracking faults last sent.
			for k, v := range ri.sentFault {
				if strings.HasPrefix(k, trackingKey) {
					want[k] = v
				}
			}
		}
		u := instUpdate{ri: ri, name: name, base: cfgPrio}
		for key, cause := range want {
			if ri.sentFault[key] != cause {
				if u.faults == nil {
					u.faults = map[string]string{}
				}
				u.faults[key] = cause
			}
		}
		for key := range ri.sentFault {
			if _, ok := want[key]; !ok {
				if u.faults == nil {
					u.faults = map[string]string{}
				}
				u.faults[key] = ""
			}
		}
		ri.sentFault = want
		if known && (!ri.sent || eff != ri.sentEff) {
			u.eff = eff
			ri.sent, ri.sentEff = true, eff
		}
		if u.eff != 0 || u.faults != nil {
			updates = append(updates, u)
		}
	}
	a.mu.Unlock()
	for _, u := range updates {
		a.send(u)
	}
}

// send hands an instance its keyed faults, then its effective priority
// (which starts an instance waiting for its first tracking results), so a
// fault present at start holds it in FAULT from the beginning.
func (a *Agent) send(u instUpdate) {
	for key, cause := range u.faults {
		if cause != "" && strings.HasPrefix(key, trackingKey) {
			a.log.Info("tracking: instance in FAULT", "instance", u.name, "cause", cause)
		}
		if err := u.ri.inst.SetFault(a.runCtx, key, cause); err != nil && !errors.Is(err, vrrp.ErrStopped) && a.runCtx.Err() == nil {
			a.log.Error("cannot apply a fault", "instance", u.name, "key", key, "err", err)
		}
	}
	if u.eff == 0 {
		return
	}
	if u.eff != u.base {
		a.log.Info("effective priority", "instance", u.name, "base", u.base, "effective", u.eff)
	}
	var err error
	if a.tracker != nil {
		err = u.ri.inst.SetTracking(a.runCtx, u.eff, "")
	} else {
		err = u.ri.inst.SetPriority(a.runCtx, u.eff)
	}
	if err != nil && !errors.Is(err, vrrp.ErrStopped) && a.runCtx.Err() == nil {
		a.log.Error("cannot apply tracking", "instance", u.name, "err", err)
	}
}

func trackedStatus(items []track.ItemState) []api.TrackedStatus {
	var out []api.TrackedStatus
	for _, it := range items {
		out = append(out, api.TrackedStatus{
			Kind: string(it.Kind), Name: it.Name, OK: it.OK && !it.Fault, Weight: it.Weight, Value: it.Value,
		})
	}
	return out
}
