package agent

import (
	"context"
	"errors"
	"strings"

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
			a.updateTracking()
		}
	}
}

type trackUpdate struct {
	ri    *runningInstance
	eff   int
	fault string
}

// updateTracking applies the tracker's current results to each instance
// whose result changed. An instance waits in INIT until all its tracked
// objects have a first result, as keepalived waits for its scripts.
func (a *Agent) updateTracking() {
	if a.tracker == nil {
		return
	}
	// One update at a time, so an older result is never applied after a
	// newer one (apply and the tracker loop both call this).
	a.trackMu.Lock()
	defer a.trackMu.Unlock()
	var updates []trackUpdate
	a.mu.Lock()
	for _, ri := range a.running {
		if ri.inst == nil {
			continue
		}
		var gc *config.SyncGroup
		if sg := a.groups[ri.group]; sg != nil {
			gc = sg.cfg
		}
		items := a.tracker.ItemsForMember(ri.cfg, gc)
		ri.tracked = items
		known := true
		for _, it := range items {
			known = known && it.Known
		}
		if !known && !ri.trackSent {
			continue
		}
		eff, faults := track.Compute(ri.cfg.Priority, items)
		fault := strings.Join(faults, "; ")
		if ri.trackSent && eff == ri.trackEff && fault == ri.trackWhy {
			continue
		}
		ri.trackSent, ri.trackEff, ri.trackWhy = true, eff, fault
		updates = append(updates, trackUpdate{ri, eff, fault})
	}
	a.mu.Unlock()
	for _, u := range updates {
		if u.fault != "" {
			a.log.Info("tracking: instance in FAULT", "instance", u.ri.cfg.Name, "cause", u.fault)
		} else if u.eff != u.ri.cfg.Priority {
			a.log.Info("tracking: effective priority", "instance", u.ri.cfg.Name, "base", u.ri.cfg.Priority, "effective", u.eff)
		}
		err := u.ri.inst.SetTracking(a.runCtx, u.eff, u.fault)
		if err != nil && !errors.Is(err, vrrp.ErrStopped) && a.runCtx.Err() == nil {
			a.log.Error("cannot apply tracking", "instance", u.ri.cfg.Name, "err", err)
		}
	}
}
