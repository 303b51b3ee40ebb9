package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/vrrp"
)

// The agent's door: what the control socket, metrics and the fleet layer
// (gossip, etcd, arbitration) use to drive the running daemon. Each change
// is keyed by its source, so one source never clears what another set.

// SourceOperator is the source of changes made with the CLI.
const SourceOperator = "operator"

// sourceRank orders priority overrides: the operator's wins, then etcd's,
// then any other source by name.
func sourceRank(s string) int {
	switch s {
	case SourceOperator:
		return 0
	case "etcd":
		return 1
	}
	return 2
}

// SetPriorityOverride sets source's priority (1..254) for instance, live.
// The override replaces the configured priority; tracking weights apply on
// top. It stays until the same source clears it, across reloads, and
// applies to an instance of that name added later.
func (a *Agent) SetPriorityOverride(instance, source string, priority int) error {
	if priority < 1 || priority > 254 {
		return fmt.Errorf("priority override %d for %s: must be 1..254", priority, instance)
	}
	if instance == "" || source == "" {
		return errors.New("priority override: instance and source are required")
	}
	a.mu.Lock()
	if a.overrides[instance] == nil {
		a.overrides[instance] = map[string]int{}
	}
	a.overrides[instance][source] = priority
	a.mu.Unlock()
	a.log.Info("priority override set", "instance", instance, "source", source, "priority", priority)
	a.refresh()
	a.kickState()
	return nil
}

// ClearPriorityOverride clears source's override of instance.
func (a *Agent) ClearPriorityOverride(instance, source string) {
	a.mu.Lock()
	_, had := a.overrides[instance][source]
	delete(a.overrides[instance], source)
	if len(a.overrides[instance]) == 0 {
		delete(a.overrides, instance)
	}
	a.mu.Unlock()
	if had {
		a.log.Info("priority override cleared", "instance", instance, "source", source)
		a.refresh()
		a.kickState()
	}
}

// overridesOf returns the overrides of instance, the one in force first.
// a.mu is held.
func (a *Agent) overridesOf(instance string) []api.PriorityOverride {
	var out []api.PriorityOverride
	for src, p := range a.overrides[instance] {
		out = append(out, api.PriorityOverride{Source: src, Priority: p})
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := sourceRank(out[i].Source), sourceRank(out[j].Source)
		if ri != rj {
			return ri < rj
		}
		return out[i].Source < out[j].Source
	})
	return out
}

// SetMaintenance puts the node (instance "") or one instance in (on) or
// out of maintenance for source. In maintenance an instance hands over
// gracefully (priority 0 if MASTER) and stays in FAULT with reason
// "maintenance"; off, it returns to BACKUP and elects as usual. Clearing
// maintenance never clears another fault (a link down stays FAULT).
func (a *Agent) SetMaintenance(source, instance, reason string, on bool) error {
	if source == "" {
		return errors.New("maintenance: source is required")
	}
	a.mu.Lock()
	if instance != "" && on {
		if _, ok := a.running[instance]; !ok {
			a.mu.Unlock()
			return fmt.Errorf("maintenance: no instance %q on this node", instance)
		}
	}
	mt := a.maint[source]
	if mt.instances == nil {
		mt.instances = map[string]string{}
	}
	switch {
	case instance == "":
		mt.nodeOn, mt.node = on, reason
	case on:
		mt.instances[instance] = reason
	default:
		delete(mt.instances, instance)
	}
	if !mt.nodeOn && len(mt.instances) == 0 {
		delete(a.maint, source)
	} else {
		a.maint[source] = mt
	}
	a.mu.Unlock()
	what := "node"
	if instance != "" {
		what = "instance " + instance
	}
	if on {
		a.log.Info("maintenance on: handing over and staying out", "what", what, "source", source, "reason", reason)
	} else {
		a.log.Info("maintenance off", "what", what, "source", source)
	}
	a.refresh()
	a.kickState()
	return nil
}

// Maintenance is SetMaintenance for the operator (the control socket).
func (a *Agent) Maintenance(ctx context.Context, req api.MaintRequest) error {
	local := req.Node == "" || req.Node == a.opts.NodeName
	if a.etcdSide != nil && a.etcdSide.cli != nil {
		// With etcd, the operator's maintenance is a key of the store:
		// every node shows it, and it outlives restarts; it is etcd's
		// source that applies it, so deleting the key ends it. When etcd
		// cannot be written, this node applies it as the operator's, so an
		// etcd outage never stops an operator taking this node out.
		err := a.etcdMaintenance(ctx, req)
		switch {
		case err == nil:
			if local && !req.On {
				// An operator's maintenance set while etcd was away ends too.
				_ = a.SetMaintenance(SourceOperator, req.Instance, "", false)
			}
			return nil
		case local:
			a.log.Warn("etcd: maintenance not written to etcd; applied on this node as the operator's", "err", err)
		default:
			a.log.Warn("etcd: maintenance of another node not written to etcd; trying gossip", "node", req.Node, "err", err)
		}
	}
	if !local {
		fl := a.fleetNode()
		if fl == nil {
			return fmt.Errorf("maintenance of node %s: %w", req.Node, errNoGossip)
		}
		return fl.SendMaintenance(ctx, req.Node, req)
	}
	return a.SetMaintenance(SourceOperator, req.Instance, req.Reason, req.On)
}

// OverridePriority is the operator's priority override (control socket).
func (a *Agent) OverridePriority(_ context.Context, req api.PriorityRequest) error {
	if req.Instance == "" {
		return errors.New("priority override: instance is required")
	}
	if req.Clear {
		a.ClearPriorityOverride(req.Instance, SourceOperator)
		return nil
	}
	a.mu.Lock()
	_, ok := a.running[req.Instance]
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("priority override: no instance %q on this node", req.Instance)
	}
	return a.SetPriorityOverride(req.Instance, SourceOperator, req.Priority)
}

// maintFaults returns the maintenance faults of instance by key. a.mu is
// held.
func (a *Agent) maintFaults(instance string) map[string]string {
	var out map[string]string
	for src, mt := range a.maint {
		reason, on := mt.instances[instance]
		if mt.nodeOn {
			reason, on = mt.node, true
		}
		if !on {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		cause := "maintenance"
		if reason != "" {
			cause += ": " + reason
		}
		out[vrrp.FaultMaintenance+"/"+src] = cause + " (" + src + ")"
	}
	for key, cause := range a.faults[instance] {
		if out == nil {
			out = map[string]string{}
		}
		out[key] = cause
	}
	return out
}

// SetFault raises (cause != "") or clears a fault of instance under key
// ("link/etcd", "arbiter", ...): the instance stays in FAULT while any
// fault is in force. Maintenance has its own call (SetMaintenance).
func (a *Agent) SetFault(instance, key, cause string) {
	a.mu.Lock()
	if cause == "" {
		delete(a.faults[instance], key)
		if len(a.faults[instance]) == 0 {
			delete(a.faults, instance)
		}
	} else {
		if a.faults[instance] == nil {
			a.faults[instance] = map[string]string{}
		}
		a.faults[instance][key] = cause
	}
	a.mu.Unlock()
	a.refresh()
}

// SetGate plugs a gate in front of every entry into MASTER (nil: every
// entry is allowed, the default). Instances held back by the old gate ask
// the new one at once.
func (a *Agent) SetGate(g vrrp.Gate) {
	a.gate.Store(&gateBox{g})
	a.GateChanged()
}

// GateChanged tells the instances held back by the gate to ask again (the
// gate's owner calls it when its answer may have changed).
func (a *Agent) GateChanged() {
	for _, ri := range a.instancesNow() {
		go func() { _ = ri.inst.GateRetry(a.runCtx) }()
	}
}

// MayBecomeMaster implements vrrp.Gate by asking the gate plugged in. A
// MASTER resumed after a restart of vipd passes once without asking (the
// question whose cause is the resume's planned cause): it
// stays what it was, and the gate's owner (the arbiter) checks it once it
// can (it demotes it if another node holds its claim).
func (a *Agent) MayBecomeMaster(instance string, vrid int, cause string) bool {
	if c, ok := a.resuming.Load(instance); ok && c == cause {
		// The resume itself (its cause is the one planned), once; any
		// other way into MASTER asks the gate.
		a.resuming.Delete(instance)
		return true
	}
	b := a.gate.Load()
	if b == nil || b.g == nil {
		return true
	}
	return b.g.MayBecomeMaster(instance, vrid, cause)
}

// Demote makes instance leave MASTER with a priority-0 advert (arbitration
// says another node holds the VRID); it may come back through the gate.
func (a *Agent) Demote(ctx context.Context, instance, cause string) error {
	a.mu.Lock()
	ri := a.running[instance]
	a.mu.Unlock()
	if ri == nil || ri.inst == nil {
		return fmt.Errorf("demote: no running instance %q", instance)
	}
	a.log.Info("demoting instance", "instance", instance, "cause", cause)
	return ri.inst.Demote(ctx, cause)
}

// Subscribe implements api.Stream: the status now, then every change.
func (a *Agent) Subscribe(ctx context.Context) (api.Status, <-chan api.Event) {
	snap, ch := a.hub.subscribe(ctx)
	st := api.Status{Node: a.opts.NodeName, Instances: snap}
	st.Drops = a.dropTotals()
	return st, ch
}

// Counters implements api.Stream.
func (a *Agent) Counters() api.Counters {
	var c api.Counters
	a.mu.Lock()
	type labelled struct {
		inst        *vrrp.Instance
		name, iface string
	}
	insts := make([]labelled, 0, len(a.running))
	for name, ri := range a.running {
		if ri.inst != nil {
			// The configured interface, as in status (not a VMAC's).
			insts = append(insts, labelled{ri.inst, name, ri.cfg.Interface})
		}
	}
	a.mu.Unlock()
	for _, l := range insts {
		n := l.inst.Counters()
		c.Instances = append(c.Instances, api.InstanceCounters{
			Name: l.name, Interface: l.iface, VRID: l.inst.VRID(),
			AdvertsSent: n.AdvertsSent, AdvertsReceived: n.AdvertsReceived,
			PriorityZeroSent: n.PriorityZeroSent, PriorityZeroReceived: n.PriorityZeroReceived,
			MasterDownExpiries: n.MasterDownExpiries, BecomeMaster: n.BecomeMaster,
			ReleaseMaster: n.ReleaseMaster, VIPHeals: n.VIPHeals,
		})
	}
	sort.Slice(c.Instances, func(i, j int) bool { return c.Instances[i].Name < c.Instances[j].Name })
	for _, d := range a.transport.Drops() {
		c.Drops = append(c.Drops, api.DropCount{Reason: string(d.Reason), Interface: d.Ifname, VRID: d.VRID, Count: d.Count})
	}
	return c
}

// instancesNow returns the running instances that have a runtime.
func (a *Agent) instancesNow() []*runningInstance {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*runningInstance, 0, len(a.running))
	for _, ri := range a.running {
		if ri.inst != nil {
			out = append(out, ri)
		}
	}
	return out
}

func (a *Agent) dropTotals() map[string]uint64 {
	var out map[string]uint64
	for r, n := range vrrp.DropTotals(a.transport.Drops()) {
		if out == nil {
			out = map[string]uint64{}
		}
		out[string(r)] = n
	}
	return out
}
