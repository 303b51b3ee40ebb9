package vip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vipd/vipd/config"
)

// AddrEventKind says what happened.
type AddrEventKind int

// Kinds of AddrEvent.
const (
	// AddrRemoved: an address left an interface (ip addr del, a flush, the
	// kernel dropping IPv6 addresses on link down, vipd's own DelAddrs).
	AddrRemoved AddrEventKind = iota + 1
	// AddrAdded: an address appeared on an interface. The kernel announces
	// an address again when its flags or lifetimes change (IPv6 DAD
	// completing, for one), so it can repeat for an address already there.
	AddrAdded
	// LinkUp: an interface became usable, that is IFF_UP and IFF_RUNNING
	// both set (administratively up and operationally up, carrier
	// included), the test keepalived applies to its interfaces.
	LinkUp
	// LinkDown: an interface stopped being usable (IFF_UP or IFF_RUNNING
	// cleared), was renamed away (reported under its old name) or was
	// removed.
	LinkDown
	// Resync: events may have been lost, or the watch has just started;
	// consumers must re-check everything they care about.
	Resync
	// RouteRemoved: a route left a routing table other than local (ip
	// route del, a flush, vipd's own DelRoutes, the kernel dropping the
	// routes of an address or an interface). Event.Route says which.
	//
	// The kernel does not announce every removal: IPv4 routes flushed
	// because their interface went down or away, or lost the address that
	// made their gateway reachable, go silently. Consumers re-check their
	// routes on LinkUp, LinkDown and Resync too.
	RouteRemoved
	// RouteAdded: a route appeared in a routing table other than local, or
	// was replaced (ip route replace is announced as an addition).
	RouteAdded
)

func (k AddrEventKind) String() string {
	switch k {
	case AddrRemoved:
		return "addr-removed"
	case AddrAdded:
		return "addr-added"
	case LinkUp:
		return "link-up"
	case LinkDown:
		return "link-down"
	case Resync:
		return "resync"
	case RouteRemoved:
		return "route-removed"
	case RouteAdded:
		return "route-added"
	}
	return fmt.Sprintf("AddrEventKind(%d)", int(k))
}

// AddrEvent is one change seen on the host.
type AddrEvent struct {
	Kind AddrEventKind
	// Ifname and Ifindex name the interface: of the address or the link;
	// of a route, its output interface ("" and 0 when it has none, as a
	// blackhole route or a multipath one). Ifname is "" for Resync, or
	// when the kernel no longer knows the ifindex; Ifindex is 0 for Resync.
	Ifname  string
	Ifindex int
	Prefix  netip.Prefix // AddrAdded/AddrRemoved only: the address with its prefix length
	Route   RouteInfo    // RouteAdded/RouteRemoved only
}

func (e AddrEvent) String() string {
	switch e.Kind {
	case Resync:
		return e.Kind.String()
	case AddrAdded, AddrRemoved:
		return fmt.Sprintf("%s %s dev %s (%d)", e.Kind, e.Prefix, e.Ifname, e.Ifindex)
	case RouteAdded, RouteRemoved:
		return fmt.Sprintf("%s %s (%d)", e.Kind, e.Route, e.Ifindex)
	}
	return fmt.Sprintf("%s dev %s (%d)", e.Kind, e.Ifname, e.Ifindex)
}

// RouteInfo is the route of a RouteAdded or RouteRemoved event, as the
// kernel reports it. Only the kinds of route a virtual_routes entry can make
// are reported: types unicast, blackhole, unreachable, prohibit and throw,
// in any table but local (255); a connected route the kernel makes for an
// address is one of them, and is reported like any other.
type RouteInfo struct {
	Dst     netip.Prefix // destination, masked; 0.0.0.0/0 or ::/0 for a default route
	Gateway netip.Addr   // RTA_GATEWAY ("via"); invalid when none
	Src     netip.Addr   // RTA_PREFSRC ("src"); invalid when none
	Table   int          // 254 for main
	// Metric is the route's priority as the kernel keeps it: an IPv6 route
	// added with metric 0 has 1024.
	Metric   int
	Type     string // unicast, blackhole, unreachable, prohibit or throw
	Protocol int    // RTPROT_*: 2 kernel, 3 boot (ip route), 18 keepalived (vipd)
	Ifname   string // output interface ("" when none), as AddrEvent.Ifname
}

// String renders the route like "ip route" does.
func (r RouteInfo) String() string {
	var b strings.Builder
	if r.Type != "" && r.Type != "unicast" {
		b.WriteString(r.Type + " ")
	}
	b.WriteString(r.Dst.String())
	if r.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if r.Ifname != "" {
		fmt.Fprintf(&b, " dev %s", r.Ifname)
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	if r.Table != tableMain {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	return b.String()
}

// Matches reports whether r is the kernel route that vipd's AddRoutes makes
// of route (defaultDev as passed to AddRoutes): same destination, table and
// metric, the key of a kernel route, and the same output interface when
// both name one (IPv6 keeps routes to one destination through several
// interfaces apart). A route that AddRoutes would refuse matches nothing.
func (r RouteInfo) Matches(route config.Route, defaultDev string) bool {
	s, err := routeSpecOf(defaultDev, route)
	if err != nil {
		return false
	}
	if s.Dev != "" && r.Ifname != "" && s.Dev != r.Ifname {
		return false
	}
	return r.Dst == s.Dst && r.Table == s.Table && r.Metric == kernelMetric(s)
}

// ip6RouteDefaultMetric is the metric the kernel gives an IPv6 route added
// without one (IP6_RT_PRIO_USER).
const ip6RouteDefaultMetric = 1024

// kernelMetric is the metric the kernel reports for a route added from s.
func kernelMetric(s routeSpec) int {
	if s.Metric == 0 && s.Dst.Addr().Is6() {
		return ip6RouteDefaultMetric
	}
	return s.Metric
}

// routeTypeName names an RTN_* route type as virtual_routes writes it.
func routeTypeName(t int) (string, bool) {
	switch t {
	case rtnUnicast:
		return "unicast", true
	case rtnBlackhole:
		return "blackhole", true
	case rtnUnreachable:
		return "unreachable", true
	case rtnProhibit:
		return "prohibit", true
	case rtnThrow:
		return "throw", true
	}
	return "", false
}

// routeInfoOf is the route the kernel reports for one made from s (see
// Memory).
func routeInfoOf(s routeSpec) RouteInfo {
	name, _ := routeTypeName(s.Type)
	return RouteInfo{Dst: s.Dst, Gateway: s.Via, Src: s.Src, Table: s.Table, Metric: kernelMetric(s),
		Type: name, Protocol: protoKeepalived, Ifname: s.Dev}
}

// Watcher delivers address, link and route events of this network
// namespace. It is implemented by *NetlinkWatcher (the kernel) and *Memory
// (events of the in-memory plane, for unit tests).
//
// The first event of every Watch is a Resync, delivered once the
// subscription is live: a change made before it is not reported, so a
// consumer checks its state when it sees that Resync (and every later one).
// Events include the ones vipd causes itself (its own AddAddrs, DelAddrs,
// AddRoutes and DelRoutes), as the kernel reports them.
type Watcher interface {
	// Watch calls fn for every event, in order, from one goroutine, until
	// ctx is done; it returns nil when ctx ends and an error when it could
	// not subscribe. fn must not block for long.
	Watch(ctx context.Context, fn func(AddrEvent)) error
}

var _ Watcher = (*Memory)(nil)
