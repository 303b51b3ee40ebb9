package agent

import (
	"sort"

	"github.com/vipd/vipd/api"
)

// Status returns the node's status for the API.
func (a *Agent) Status() api.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := api.Status{Node: a.opts.NodeName, Instances: []api.InstanceStatus{}}
	for _, ri := range a.running {
		st.Instances = append(st.Instances, instanceStatus(ri))
	}
	sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].Name < st.Instances[j].Name })
	for reason, n := range a.transport.Drops().Snapshot() {
		if st.Drops == nil {
			st.Drops = map[string]uint64{}
		}
		st.Drops[string(reason)] = n
	}
	return st
}

func instanceStatus(ri *runningInstance) api.InstanceStatus {
	if ri.inst == nil {
		s := api.InstanceStatus{
			Name: ri.cfg.Name, VRID: ri.cfg.VRID, Interface: ri.cfg.Interface, State: "FAULT",
			Priority: ri.cfg.Priority, EffectivePriority: ri.cfg.Priority, VIPs: []string{},
			Cause: ri.err, Version: ri.cfg.Version, Since: ri.since,
		}
		for _, v := range ri.cfg.VIPs {
			s.VIPs = append(s.VIPs, v.Prefix.String())
		}
		return s
	}
	vs := ri.inst.Status()
	s := api.InstanceStatus{
		Name: vs.Name, VRID: vs.VRID, Interface: vs.Interface, State: vs.State.String(),
		Priority: ri.cfg.Priority, EffectivePriority: vs.EffectivePriority, VIPs: []string{},
		Since: vs.Since, Cause: vs.Cause, Version: vs.Version,
	}
	if vs.Master.IsValid() {
		s.Master = vs.Master.String()
	}
	for _, it := range ri.tracked {
		s.Tracked = append(s.Tracked, api.TrackedStatus{
			Kind: string(it.Kind), Name: it.Name, OK: it.OK && !it.Fault, Weight: it.Weight, Value: it.Value,
		})
	}
	for _, p := range vs.VIPs {
		s.VIPs = append(s.VIPs, p.String())
	}
	return s
}
