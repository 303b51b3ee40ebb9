package agent

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vrrp"
)

// execute carries out a plan (see plan.go) in its order. It never holds
// a.mu while it waits for an instance (stopping one takes up to the
// shutdown budget), so the control socket and the state stream answer
// throughout.
func (a *Agent) execute(p Plan, m *config.Model, first bool) {
	want := map[string]*config.Instance{}
	for _, ic := range m.Instances {
		want[ic.Name] = ic
	}
	wantGroups := map[string]*config.SyncGroup{}
	groupOf := map[string]string{}
	for _, g := range m.SyncGroups {
		wantGroups[g.Name] = g
		for _, member := range g.Members {
			groupOf[member] = g.Name
		}
	}
	started := map[string]bool{} // instances started in their group by ChangeAdd
	renamed := false
	for _, c := range p {
		if c.Kind == ChangeUpdate && !renamed {
			// Renames move their entries all at once, so a swap (A<->B)
			// or a chain (A->B, B->C) never overwrites an entry.
			a.renameAll(p)
			renamed = true
		}
		switch c.Kind {
		case ChangeRemove, ChangeReplace:
			a.mu.Lock()
			ri := a.running[c.Instance]
			delete(a.running, c.Instance)
			a.mu.Unlock()
			if ri == nil {
				continue
			}
			if c.Kind == ChangeReplace {
				a.log.Info("instance replaced by configuration", "instance", c.Instance, "why", c.Why)
			} else {
				a.log.Info("instance removed by configuration", "instance", c.Instance)
			}
			a.stopInstance(ri)
		case ChangeLeave:
			a.mu.Lock()
			ri, sg := a.running[c.Instance], a.groups[c.Group]
			if ri != nil {
				ri.group = ""
			}
			a.mu.Unlock()
			if ri != nil && sg != nil && ri.inst != nil {
				a.log.Info("instance leaves its sync group", "instance", c.Instance, "sync_group", c.Group)
				sg.g.Remove(ri.inst)
			}
			if ri != nil {
				a.hub.setAgent(ri, func(p *agentPart) { p.group = "" })
			}
		case ChangeGroupRemove:
			a.mu.Lock()
			sg := a.groups[c.Group]
			delete(a.groups, c.Group)
			a.mu.Unlock()
			if sg != nil {
				if n := sg.notifier.Swap(nil); n != nil {
					go n.Close(context.Background())
				}
			}
		case ChangeGroupAdd:
			sg := a.newSyncGroup(wantGroups[c.Group], m.Global)
			a.mu.Lock()
			a.groups[c.Group] = sg
			a.mu.Unlock()
		case ChangeGroupUpdate:
			gc := wantGroups[c.Group]
			a.mu.Lock()
			sg := a.groups[c.Group]
			if sg != nil {
				oldNotify := sg.cfg.Notify
				sg.cfg = gc
				if oldNotify != gc.Notify {
					a.setGroupNotifier(sg, gc, m.Global)
				}
			}
			a.mu.Unlock()
			a.log.Info("sync group changed by configuration: applied live", "sync_group", c.Group, "changed", strings.Join(c.Fields, ","))
		case ChangeUpdate:
			a.update(c, want, m.Global)
		case ChangeAdd:
			ic := want[c.Instance]
			gname := groupOf[ic.Name]
			a.mu.Lock()
			var g *vrrp.SyncGroup
			if sg := a.groups[gname]; sg != nil {
				g = sg.g
			}
			a.mu.Unlock()
			var delay time.Duration
			if first {
				delay = m.Global.StartupDelay.D() // vrrp_startup_delay: the daemon's start only
			}
			ri := a.startInstance(ic, g, m.Global, delay)
			a.mu.Lock()
			if g != nil {
				ri.group = gname
				started[ic.Name] = true
			}
			a.running[ic.Name] = ri
			a.mu.Unlock()
		case ChangeJoin:
			if started[c.Instance] {
				continue
			}
			a.mu.Lock()
			ri, sg := a.running[c.Instance], a.groups[c.Group]
			if ri != nil {
				ri.group = c.Group
			}
			a.mu.Unlock()
			if ri != nil && sg != nil && ri.inst != nil {
				a.log.Info("instance joins a sync group", "instance", c.Instance, "sync_group", c.Group)
				sg.g.Join(ri.inst)
				a.hub.setAgent(ri, func(p *agentPart) { p.group = c.Group })
			}
		}
	}
}

// update applies a new configuration of the same instance live.
func (a *Agent) update(c Change, want map[string]*config.Instance, global config.Global) {
	name := c.Instance
	if c.NewName != "" {
		name = c.NewName
	}
	nc := want[name]
	a.mu.Lock()
	ri := a.running[name] // renameAll moved it under its new name
	if ri == nil {
		a.mu.Unlock()
		return
	}
	old := ri.cfg
	ri.cfg = nc
	a.mu.Unlock()
	if c.NewName != "" {
		a.log.Info("instance renamed by configuration: same instance, kept running", "instance", c.Instance, "new_name", c.NewName)
	}
	if len(c.Fields) > 0 {
		a.log.Info("instance changed by configuration: applied live", "instance", name, "changed", strings.Join(c.Fields, ","))
	}
	if old.Notify != nc.Notify || c.NewName != "" {
		if prev := ri.notifier.Swap(a.newNotifier(nc, global)); prev != nil {
			go prev.Close(context.Background())
		}
	}
	a.hub.setAgent(ri, func(p *agentPart) { p.fromConfig(nc) })
	if ri.inst == nil {
		return
	}
	runCfg := nc
	if ri.vmac != "" {
		rc := *nc
		rc.Interface = ri.vmac
		runCfg = &rc
	}
	primary, err := primaryAddr(nc, a.srcMemo)
	if err != nil {
		a.log.Error("instance update: keeping the old source address", "instance", name, "err", err)
		primary, _ = primaryAddr(old, a.srcMemo)
	}
	a.setSource(ri, nc.Interface, primary)
	if err := ri.inst.Update(a.runCtx, runCfg, primary); err != nil && !errors.Is(err, vrrp.ErrStopped) {
		a.log.Error("instance update failed", "instance", name, "err", err)
	}
}

// renameAll moves every renamed instance to its new name at once, with
// what the door keyed by its name (overrides, maintenance, faults): a
// rename keeps the instance, and its maintenance, running as they were.
func (a *Agent) renameAll(p Plan) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type move struct {
		ri        *runningInstance
		overrides map[string]int
		faults    map[string]string
		maint     map[string]string // source -> reason
	}
	moves := map[string]move{} // new name -> what moves there
	for _, c := range p {
		if c.Kind != ChangeUpdate || c.NewName == "" {
			continue
		}
		m := move{ri: a.running[c.Instance], overrides: a.overrides[c.Instance], faults: a.faults[c.Instance]}
		delete(a.running, c.Instance)
		delete(a.overrides, c.Instance)
		delete(a.faults, c.Instance)
		for src, mt := range a.maint {
			if reason, ok := mt.instances[c.Instance]; ok {
				if m.maint == nil {
					m.maint = map[string]string{}
				}
				m.maint[src] = reason
				delete(mt.instances, c.Instance)
			}
		}
		moves[c.NewName] = m
	}
	for name, m := range moves {
		if m.ri != nil {
			a.running[name] = m.ri
		}
		if m.overrides != nil {
			a.overrides[name] = m.overrides
		}
		if m.faults != nil {
			a.faults[name] = m.faults
		}
		for src, reason := range m.maint {
			a.maint[src].instances[name] = reason
		}
	}
}

// fromConfig fills the status fields that come from the configuration.
func (p *agentPart) fromConfig(ic *config.Instance) {
	p.name, p.iface, p.vrid, p.version, p.base = ic.Name, ic.Interface, ic.VRID, ic.Version, ic.Priority
	p.vips = p.vips[:0]
	for _, v := range ic.VIPs {
		p.vips = append(p.vips, v.Prefix.String())
	}
}
