package lvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/config"
)

// Health is what the checkers say about one real server.
type Health struct {
	// Up is true when every checker of the real server is up.
	Up bool
	// Weight, when set, replaces the configured weight (MISC_CHECK with
	// misc_dynamic: exit status 2..255 sets weight status-2).
	Weight *int
}

// Input is what Desired computes from.
type Input struct {
	Servers []*config.VirtualServer
	Groups  []*config.VirtualServerGroup
	// Health returns the checkers' verdict on a real server (by RealServerID);
	// ok false means the server has no checker, which keeps it alive.
	Health func(rsID string) (h Health, ok bool)
	// QuorumUp is each virtual server's quorum state after the previous
	// computation (by VirtualServerID); a server missing from it starts
	// with quorum when its live weight reaches quorum+hysteresis.
	QuorumUp map[string]bool
	// Suspended lists virtual servers (by VirtualServerID) whose checkers
	// are suspended (ha_suspend while the address is not on this node): their
	// pools stay as the last results left them.
	Suspended map[string]bool
}

// RealServerView is one real server as Desired sees it.
type RealServerView struct {
	ID      string
	Addr    netip.Addr
	Port    uint16
	Forward string
	// Weight is the configured weight; Effective the one in the pool (a
	// misc_dynamic weight, or 0 for a failed server with inhibit_on_failure).
	Weight, Effective int
	Up                bool // alive: no checker, or all checkers up
	Checked           bool // has checkers
	InPool            bool // a destination of the desired pool
	Sorry             bool // the sorry server
}

// VirtualServerView is one virtual server's computed state.
type VirtualServerView struct {
	ID        string
	Name      string
	Keys      []ServiceKey
	Quorum    int  // the configured quorum
	Alive     int  // the weight of the live real servers
	QuorumUp  bool // after this computation
	Suspended bool
	// SorryActive: quorum is lost and the sorry server replaces the pool.
	SorryActive bool
	Servers     []RealServerView // real servers, then the sorry server
	Problems    []string         // services left out (duplicate keys, ...)
}

// VirtualServerID is the stable identity of a virtual server: what is
// written after virtual_server, with its protocol ("10.0.0.1 80/TCP").
func VirtualServerID(vs *config.VirtualServer) string {
	return vs.Name + "/" + vs.Protocol
}

// RealServerID identifies a real server of a virtual server.
func RealServerID(vsID string, rs *config.RealServer) string {
	return vsID + "/" + netip.AddrPortFrom(rs.Address.Unmap(), uint16(rs.Port)).String()
}

// SorryServerID identifies the sorry server of a virtual server.
func SorryServerID(vsID string) string { return vsID + "/sorry" }

// Desired computes the IPVS pools the configuration and the checkers'
// results ask for, sorted by service key, and each virtual server's view
// (quorum state, which servers are in). It is a pure function of its input.
//
// keepalived's rules (check/ipwrapper.c): a real server is in the pool while
// alive; a failed one is removed, or kept with weight 0 under
// inhibit_on_failure. Quorum is gained when the live weight reaches
// quorum+hysteresis and lost when it falls below quorum-hysteresis (or to
// 0); while it is lost, a sorry_server replaces the live real servers.
func Desired(in Input) ([]Pool, []VirtualServerView) {
	groups := map[string]*config.VirtualServerGroup{}
	for _, g := range in.Groups {
		if g != nil {
			if _, dup := groups[g.Name]; !dup {
				groups[g.Name] = g
			}
		}
	}
	var pools []Pool
	seen := map[ServiceKey]string{}
	var views []VirtualServerView
	for _, vs := range in.Servers {
		if vs == nil {
			continue
		}
		v := evaluate(vs, in)
		keys := serviceKeys(vs, groups)
		for _, k := range keys {
			if other, dup := seen[k]; dup {
				v.Problems = append(v.Problems, fmt.Sprintf("service %s is also virtual_server %s: left to the first", k, other))
				continue
			}
			seen[k] = v.Name
			v.Keys = append(v.Keys, k)
			p := Pool{Service: serviceOf(vs, k)}
			for _, rs := range v.Servers {
				if rs.InPool {
					p.Dests = append(p.Dests, Dest{Addr: rs.Addr, Port: DestPort(rs.Port, k), Weight: rs.Effective, Forward: rs.Forward})
				}
			}
			slices.SortFunc(p.Dests, func(a, b Dest) int { return compareDest(a.Key(), b.Key()) })
			p.Dests = slices.CompactFunc(p.Dests, func(a, b Dest) bool { return a.Key() == b.Key() })
			pools = append(pools, p)
		}
		views = append(views, v)
	}
	slices.SortFunc(pools, func(a, b Pool) int { return compareKey(a.Key, b.Key) })
	return pools, views
}

// evaluate computes a virtual server's real servers and quorum.
func evaluate(vs *config.VirtualServer, in Input) VirtualServerView {
	id := VirtualServerID(vs)
	v := VirtualServerView{ID: id, Name: vs.Name, Quorum: vs.Quorum, Suspended: in.Suspended[id]}
	if v.Quorum <= 0 {
		v.Quorum = config.DefaultQuorum
	}
	var inhibit []bool // per entry of v.Servers
	for _, rs := range vs.RealServers {
		if rs == nil {
			continue
		}
		r := realServer(vs, rs, RealServerID(id, rs), in)
		if r.Up {
			v.Alive += r.Effective
		}
		v.Servers = append(v.Servers, r)
		inhibit = append(inhibit, rs.Inhibit || vs.Inhibit)
	}
	prev, known := in.QuorumUp[id]
	switch {
	case !known:
		// check/ipwrapper.c set_quorum_states: at start, quorum is up
		// when the live weight reaches quorum+hysteresis.
		v.QuorumUp = v.Alive > 0 && v.Alive >= v.Quorum+vs.Hysteresis
	case prev:
		v.QuorumUp = !(v.Alive == 0 || v.Alive < v.Quorum-vs.Hysteresis)
	default:
		v.QuorumUp = v.Alive > 0 && v.Alive >= v.Quorum+vs.Hysteresis
	}
	v.SorryActive = !v.QuorumUp && vs.SorryServer != nil
	for i := range v.Servers {
		r := &v.Servers[i]
		switch {
		case v.SorryActive && r.Up:
			r.InPool = false // replaced by the sorry server
		case r.Up:
			r.InPool = true
		case inhibit[i]:
			r.InPool, r.Effective = true, 0
		}
	}
	if vs.SorryServer != nil {
		s := realServer(vs, vs.SorryServer, SorryServerID(id), Input{})
		s.Sorry, s.Up, s.InPool = true, v.SorryActive, v.SorryActive
		v.Servers = append(v.Servers, s)
	}
	return v
}

func realServer(vs *config.VirtualServer, rs *config.RealServer, id string, in Input) RealServerView {
	w := config.DefaultRealServerWeight
	if rs.Weight != nil {
		w = *rs.Weight
	}
	fwd := rs.LBKind
	if fwd == "" {
		fwd = vs.LBKind
	}
	if fwd == "" {
		fwd = config.DefaultLBKind
	}
	r := RealServerView{ID: id, Addr: rs.Address.Unmap(), Port: uint16(rs.Port), Forward: strings.ToUpper(fwd), Weight: w, Effective: w, Up: true}
	if len(rs.Checkers) > 0 {
		r.Checked = true
		if in.Health != nil {
			if h, ok := in.Health(id); ok {
				r.Up = h.Up
				if h.Weight != nil {
					r.Effective = *h.Weight
				}
			}
		}
	}
	return r
}

// serviceKeys lists the IPVS services of a virtual server: one for an
// address or a fwmark, one per address (ranges expanded) and fwmark of a
// group.
func serviceKeys(vs *config.VirtualServer, groups map[string]*config.VirtualServerGroup) []ServiceKey {
	proto := strings.ToUpper(vs.Protocol)
	if proto == "" {
		proto = config.DefaultProtocol
	}
	v6 := false
	for _, rs := range vs.RealServers {
		if rs != nil && rs.Address.IsValid() {
			v6 = rs.Address.Unmap().Is6()
			break
		}
	}
	switch {
	case vs.FWMark != 0:
		return []ServiceKey{{FWMark: uint32(vs.FWMark), IPv6: v6}}
	case vs.Group != "":
		g := groups[vs.Group]
		if g == nil {
			return nil
		}
		var keys []ServiceKey
		for _, e := range g.Members {
			if e.FWMark != 0 {
				keys = append(keys, ServiceKey{FWMark: uint32(e.FWMark), IPv6: v6})
				continue
			}
			if !e.Address.IsValid() {
				continue
			}
			last := e.Address
			if e.RangeTo.IsValid() {
				last = e.RangeTo
			}
			for a := e.Address.Unmap(); a.IsValid() && a.Compare(last.Unmap()) <= 0; a = a.Next() {
				keys = append(keys, ServiceKey{Protocol: proto, Addr: a, Port: uint16(e.Port)})
			}
		}
		return keys
	case vs.Address.IsValid():
		return []ServiceKey{{Protocol: proto, Addr: vs.Address.Unmap(), Port: uint16(vs.Port)}}
	}
	return nil
}

// defaultPersistence is IPVS_SVC_PERSISTENT_TIMEOUT (include/libipvs.h).
const defaultPersistence = 6 * time.Minute

// serviceOf is the service settings of a virtual server for key k.
func serviceOf(vs *config.VirtualServer, k ServiceKey) Service {
	s := Service{Key: k, Scheduler: strings.ToLower(vs.LBAlgo)}
	if s.Scheduler == "" {
		s.Scheduler = config.DefaultLBAlgo
	}
	switch {
	case vs.PersistenceTimeout > 0:
		s.Timeout = uint32(vs.PersistenceTimeout.D().Seconds())
		s.Netmask = granularity(vs.PersistenceGranularity, k.Is6())
	case strings.TrimSpace(vs.PersistenceGranularity) != "":
		// check/check_parser.c pgr_handler: a granularity without a
		// timeout makes the service persistent for 6 minutes.
		s.Timeout = uint32(defaultPersistence.Seconds())
		s.Netmask = granularity(vs.PersistenceGranularity, k.Is6())
	}
	return s
}

// granularity reads persistence_granularity: a netmask (255.255.255.0) or
// a prefix length; 0 when unset or unreadable (validation reports it).
func granularity(g string, v6 bool) int {
	g = strings.TrimPrefix(strings.TrimSpace(g), "/")
	if g == "" {
		return 0
	}
	if a, err := netip.ParseAddr(g); err == nil && a.Is4() {
		b := a.As4()
		m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		n := 0
		for m&(1<<31) != 0 {
			n++
			m <<= 1
		}
		if m != 0 {
			return 0 // not contiguous
		}
		return n
	}
	var n int
	if _, err := fmt.Sscanf(g, "%d", &n); err == nil {
		max := 32
		if v6 {
			max = 128
		}
		if n >= 1 && n <= max {
			return n
		}
	}
	return 0
}

func compareKey(a, b ServiceKey) int {
	switch {
	case a == b:
		return 0
	case a.Less(b):
		return -1
	}
	return 1
}

func compareDest(a, b DestKey) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return int(a.Port) - int(b.Port)
}
