package lvs

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Status is what vipd lvs shows: the desired and actual tables in
// ipvsadm -Sn form, and every virtual and real server with its health.
type Status struct {
	// Available is false on a kernel without IPVS (Reason says why): the
	// desired state is still computed and shown, nothing is installed.
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	// Desired and Actual are ipvsadm -Sn text: what vipd wants, and what
	// IPVS holds of vipd's services (as last read back or applied).
	Desired        string                `json:"desired"`
	Actual         string                `json:"actual"`
	VirtualServers []VirtualServerStatus `json:"virtual_servers"`
	Reconcile      ReconcileStatus       `json:"reconcile"`
}

// VirtualServerStatus is one virtual server.
type VirtualServerStatus struct {
	Name        string             `json:"name"`
	Services    []string           `json:"services"` // in ipvsadm's words: "-t 10.0.0.1:80"
	Quorum      int                `json:"quorum"`
	AliveWeight int                `json:"alive_weight"`
	QuorumUp    bool               `json:"quorum_up"`
	SorryActive bool               `json:"sorry_server_active"`
	Suspended   bool               `json:"suspended"`
	Problems    []string           `json:"problems,omitempty"`
	RealServers []RealServerStatus `json:"real_servers"`
}

// RealServerStatus is one real server (or the sorry server).
type RealServerStatus struct {
	Address string `json:"address"` // "10.0.0.2:80"
	Forward string `json:"forward"` // NAT, DR, TUN
	Weight  int    `json:"weight"`  // configured
	// Effective is the weight in the desired pool (misc_dynamic, or 0 when
	// failed with inhibit_on_failure).
	Effective int  `json:"effective_weight"`
	Up        bool `json:"up"`
	InPool    bool `json:"in_pool"`
	Sorry     bool `json:"sorry_server,omitempty"`
	// InIPVS is whether IPVS holds the destination (in every service of
	// the virtual server); IPVSWeight its weight there.
	InIPVS     bool          `json:"in_ipvs"`
	IPVSWeight *int          `json:"ipvs_weight,omitempty"`
	Checks     []CheckStatus `json:"checks,omitempty"`
}

// CheckStatus is one checker's last result.
type CheckStatus struct {
	Type     string    `json:"type"`
	Target   string    `json:"target"`
	Up       bool      `json:"up"`
	Result   string    `json:"result"` // ok, failed, pending
	Cause    string    `json:"cause,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Duration string    `json:"duration,omitempty"`
}

// ReconcileStatus is the reconciler's record.
type ReconcileStatus struct {
	At        time.Time `json:"at,omitzero"` // the last successful reconcile
	Ops       int       `json:"ops"`         // operations it carried out
	Total     uint64    `json:"total_ops"`
	Errors    uint64    `json:"errors"`
	LastError string    `json:"last_error,omitempty"`
}

// publish stores the Status of the current state.
func (m *Manager) publish() {
	s := &Status{Available: m.available, Reason: m.reason, Desired: Render(m.desired), Reconcile: m.recon}
	actual, _ := m.cache.Pools()
	mine := actual[:0:0]
	have := map[ServiceKey]*Pool{}
	for i := range actual {
		if m.owned[actual[i].Key] {
			mine = append(mine, actual[i])
			have[actual[i].Key] = &actual[i]
		}
	}
	s.Actual = Render(mine)
	for _, v := range m.vsViews {
		vs := VirtualServerStatus{Name: v.Name, Quorum: v.Quorum, AliveWeight: v.Alive, QuorumUp: v.QuorumUp,
			SorryActive: v.SorryActive, Suspended: v.Suspended, Problems: v.Problems}
		for _, k := range v.Keys {
			vs.Services = append(vs.Services, k.String())
		}
		for _, r := range v.Servers {
			rs := RealServerStatus{Address: addrPort(r), Forward: r.Forward, Weight: r.Weight, Effective: r.Effective,
				Up: r.Up, InPool: r.InPool, Sorry: r.Sorry}
			rs.InIPVS, rs.IPVSWeight = inIPVS(have, v.Keys, r)
			if !r.Sorry {
				for _, id := range m.checkSpec[r.ID] {
					rs.Checks = append(rs.Checks, m.checkStatus(id))
				}
			}
			vs.RealServers = append(vs.RealServers, rs)
		}
		s.VirtualServers = append(s.VirtualServers, vs)
	}
	m.status.Store(s)
}

func (m *Manager) checkStatus(id string) CheckStatus {
	r, ok := m.checks[id]
	if !ok {
		typ := id[strings.LastIndexByte(id, '/')+1:]
		return CheckStatus{Type: typ, Result: "pending", Up: !m.alpha[m.rsOf[id]] || m.seededUp[m.rsOf[id]]}
	}
	c := CheckStatus{Type: r.Type, Target: r.Target, Up: r.Up, Cause: r.Cause, At: r.At}
	if r.Duration > 0 {
		c.Duration = r.Duration.Round(time.Microsecond).String()
	}
	c.Result = "failed"
	if r.OK {
		c.Result = "ok"
	}
	return c
}

// inIPVS reports whether every service of keys holds the real server.
func inIPVS(have map[ServiceKey]*Pool, keys []ServiceKey, r RealServerView) (bool, *int) {
	if len(keys) == 0 {
		return false, nil
	}
	var w *int
	for _, k := range keys {
		p := have[k]
		if p == nil {
			return false, nil
		}
		port := DestPort(r.Port, k)
		i := slices.IndexFunc(p.Dests, func(d Dest) bool { return d.Key() == DestKey{r.Addr, port} })
		if i < 0 {
			return false, nil
		}
		x := p.Dests[i].Weight
		w = &x
	}
	return true, w
}

func addrPort(r RealServerView) string {
	return netip.AddrPortFrom(r.Addr, r.Port).String()
}
