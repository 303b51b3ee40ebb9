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
	eff    int
	track  string            // tracking fault, "" when none
	faults map[string]string // door faults to set ("" clears)
	first  bool
}

// refresh recomputes every instance's effective priority (its configured
// priority or the override in force, plus tracking weights) and its faults
// (tracking, maintenance, door faults), and sends each instance what
// changed. An instance waits in INIT until all its tracked objects have a
// first result, as keepalived waits for its scripts.
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
		ri.tracked = items
		eff, trackFaults := track.Compute(base, items)
		a.hub.setAgent(ri, func(p *agentPart) {
			p.base, p.overrides, p.tracked = ri.cfg.Priority, ovs, trackedStatus(items)
		})
		if ri.inst == nil {
			continue
		}
		u := instUpdate{ri: ri, eff: eff, track: strings.Join(trackFaults, "; "), first: !ri.sent}
		want := a.maintFaults(name)
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
		if a.tracker != nil && !known && !ri.sent {
			// Waiting for the first results: faults may go ahead (they
			// hold the instance in FAULT from its start).
			u.first, u.eff = false, 0
			if u.faults != nil {
				updates = append(updates, u)
			}
			continue
		}
		if ri.sent && eff == ri.sentEff && u.track == ri.sentTrack && u.faults == nil {
			continue
		}
		if ri.sent && eff == ri.sentEff && u.track == ri.sentTrack {
			u.eff = 0 // only faults changed
		}
		ri.sent, ri.sentEff, ri.sentTrack = true, eff, u.track
		updates = append(updates, u)
	}
	a.mu.Unlock()
	for _, u := range updates {
		a.send(u)
	}
}

// send hands an instance its new effective priority and faults. Faults go
// first so that a maintenance hand-over never sees a priority change on
// the way.
func (a *Agent) send(u instUpdate) {
	name := u.ri.cfg.Name
	for key, cause := range u.faults {
		if err := u.ri.inst.SetFault(a.runCtx, key, cause); err != nil && !errors.Is(err, vrrp.ErrStopped) && a.runCtx.Err() == nil {
			a.log.Error("cannot apply a fault", "instance", name, "key", key, "err", err)
		}
	}
	if u.eff == 0 {
		return
	}
	if u.track != "" {
		a.log.Info("tracking: instance in FAULT", "instance", name, "cause", u.track)
	} else if u.eff != u.ri.cfg.Priority {
		a.log.Info("effective priority", "instance", name, "base", u.ri.cfg.Priority, "effective", u.eff)
	}
	var err error
	if a.tracker != nil {
		err = u.ri.inst.SetTracking(a.runCtx, u.eff, u.track)
	} else {
		err = u.ri.inst.SetPriority(a.runCtx, u.eff)
	}
	if err != nil && !errors.Is(err, vrrp.ErrStopped) && a.runCtx.Err() == nil {
		a.log.Error("cannot apply tracking", "instance", name, "err", err)
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
