package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vipd/vipd/config"
)

// OpKind is what an Op did.
type OpKind string

// Operation kinds recorded by Memory.
const (
	OpAddAddr  OpKind = "add-addr"
	OpDelAddr  OpKind = "del-addr"
	OpAddRoute OpKind = "add-route"
	OpDelRoute OpKind = "del-route"
	OpAnnounce OpKind = "announce"
	OpAddVMAC  OpKind = "add-vmac" // EnsureVMAC (vmac.go)
	OpDelVMAC  OpKind = "del-vmac" // RemoveVMAC (vmac.go)
	// OpWatch is never recorded; Fail(OpWatch, err) makes Watch fail to
	// subscribe with err.
	OpWatch OpKind = "watch"
)

// Op is one entry of Memory's transcript: one address, route or announcement
// per entry, in call order.
type Op struct {
	Kind   OpKind
	Ifname string       // the device used (VIP.Dev, Route.Dev or the default)
	Addr   netip.Prefix // OpAddAddr, OpDelAddr, OpAnnounce (with the default prefix length applied)
	Route  netip.Prefix // OpAddRoute, OpDelRoute: the destination
	// MAC is the source MAC of an OpAnnounce as passed (nil: the
	// interface's own), or the virtual MAC of an OpAddVMAC.
	MAC net.HardwareAddr
	// Base is the base interface of an OpAddVMAC (Ifname is the VMAC).
	Base string
	// Noop is set when the operation found nothing to do: the address or
	// route was already there (add) or already absent (del).
	Noop bool
}

// Memory is an in-memory Plane for unit tests: it records the addresses and
// routes per interface and a transcript of every operation. It applies the
// same conversion rules as Netlink (default prefix, label and scope checks),
// so a VIP that Netlink would refuse fails here too. Any interface name
// exists, and is up until SetLink says otherwise. Safe for concurrent use.
//
// Memory is also a Watcher: its own AddAddrs, DelAddrs, AddRoutes and
// DelRoutes, and the changes made "behind its back" with AddBehindBack,
// RemoveBehindBack, RemoveRouteBehindBack, SetLink and Overflow, reach every
// Watch as the kernel's events would.
type Memory struct {
	mu     sync.Mutex
	addrs  map[string][]netip.Prefix // per interface, in insertion order
	routes []routeSpec
	ops    []Op
	fail   map[OpKind]error
	vmacs  memVMACs // vmac.go
	links  memLinks // watch events (below)
}

// NewMemory returns an empty in-memory plane.
func NewMemory() *Memory {
	return &Memory{addrs: map[string][]netip.Prefix{}, fail: map[OpKind]error{}}
}

// Fail makes every later operation of that kind fail with err (nil clears
// it). Failed operations are not recorded.
func (m *Memory) Fail(kind OpKind, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.fail, kind)
		return
	}
	m.fail[kind] = err
}

// Ops returns a copy of the transcript.
func (m *Memory) Ops() []Op {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Op, len(m.ops))
	for i, op := range m.ops {
		op.MAC = slices.Clone(op.MAC)
		out[i] = op
	}
	return out
}

// ClearOps empties the transcript; addresses and routes stay.
func (m *Memory) ClearOps() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops = nil
}

// Addrs returns the addresses on ifname, in the order they were added.
func (m *Memory) Addrs(ifname string) []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.addrs[ifname])
}

// Routes returns the destinations of the routes present, in the order they
// were added.
func (m *Memory) Routes() []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]netip.Prefix, len(m.routes))
	for i, r := range m.routes {
		out[i] = r.Dst
	}
	return out
}

// AddAddrs implements Plane.
func (m *Memory) AddAddrs(ctx context.Context, ifname string, vips []config.VIP) error {
	return m.eachVIP(ctx, OpAddAddr, ifname, vips, func(s addrSpec) bool {
		// The kernel keys IPv4 addresses by address and prefix length, IPv6
		// addresses by address alone.
		if slices.ContainsFunc(m.addrs[s.Dev], func(p netip.Prefix) bool {
			return p == s.Prefix || (p.Addr().Is6() && p.Addr() == s.Prefix.Addr())
		}) {
			return true
		}
		m.addrs[s.Dev] = append(m.addrs[s.Dev], s.Prefix)
		m.emitLocked(AddrEvent{Kind: AddrAdded, Ifname: s.Dev, Ifindex: m.ifindexLocked(s.Dev), Prefix: s.Prefix})
		return false
	})
}

// DelAddrs implements Plane.
func (m *Memory) DelAddrs(ctx context.Context, ifname string, vips []config.VIP) error {
	return m.eachVIP(ctx, OpDelAddr, ifname, vips, func(s addrSpec) bool {
		i := slices.Index(m.addrs[s.Dev], s.Prefix)
		if i < 0 {
			return true
		}
		m.addrs[s.Dev] = slices.Delete(m.addrs[s.Dev], i, i+1)
		if len(m.addrs[s.Dev]) == 0 {
			delete(m.addrs, s.Dev)
		}
		m.emitLocked(AddrEvent{Kind: AddrRemoved, Ifname: s.Dev, Ifindex: m.ifindexLocked(s.Dev), Prefix: s.Prefix})
		return false
	})
}

// Announce implements Plane. It records one OpAnnounce per VIP.
func (m *Memory) Announce(ctx context.Context, ifname string, srcMAC net.HardwareAddr, vips []config.VIP) error {
	if srcMAC != nil && len(srcMAC) != 6 {
		return fmt.Errorf("announce on %s: source MAC %q is not a 6-byte Ethernet address", ifname, srcMAC)
	}
	mac := slices.Clone(srcMAC)
	return m.eachVIPOp(ctx, OpAnnounce, ifname, vips, func(s addrSpec) Op {
		return Op{Kind: OpAnnounce, Ifname: s.Dev, Addr: s.Prefix, MAC: mac}
	})
}

// AddrsOf returns the addresses on ifname (Netlink.AddrsOf's twin).
func (m *Memory) AddrsOf(ifname string) ([]netip.Addr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]netip.Addr, 0, len(m.addrs[ifname]))
	for _, p := range m.addrs[ifname] {
		out = append(out, p.Addr())
	}
	return out, nil
}

// HasAddr implements Plane.
func (m *Memory) HasAddr(ifname string, addr netip.Addr) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	addr = addr.Unmap()
	for _, p := range m.addrs[ifname] {
		if p.Addr() == addr {
			return true, nil
		}
	}
	return false, nil
}

// AddRoutes implements Plane.
func (m *Memory) AddRoutes(ctx context.Context, defaultDev string, routes []config.Route) error {
	return m.eachRoute(ctx, OpAddRoute, defaultDev, routes, func(s routeSpec) bool {
		if slices.ContainsFunc(m.routes, s.sameKey) {
			return true
		}
		m.routes = append(m.routes, s)
		m.emitLocked(m.routeEventLocked(RouteAdded, s))
		return false
	})
}

// DelRoutes implements Plane.
func (m *Memory) DelRoutes(ctx context.Context, defaultDev string, routes []config.Route) error {
	return m.eachRoute(ctx, OpDelRoute, defaultDev, routes, func(s routeSpec) bool {
		return !m.delRouteLocked(s)
	})
}

// RemoveRouteBehindBack takes the route AddRoutes(ctx, defaultDev, route)
// would make out of its table as "ip route del" by someone else would: no
// transcript entry, a RouteRemoved event describing the route that was
// there. It reports false (and emits nothing) when no such route was there
// or AddRoutes would refuse route.
func (m *Memory) RemoveRouteBehindBack(route config.Route, defaultDev string) bool {
	s, err := routeSpecOf(defaultDev, route)
	if err != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.delRouteLocked(s)
}

// delRouteLocked removes the route with s's key and emits RouteRemoved for
// it; false when there was none. m.mu must be held.
func (m *Memory) delRouteLocked(s routeSpec) bool {
	i := slices.IndexFunc(m.routes, s.sameKey)
	if i < 0 {
		return false
	}
	gone := m.routes[i]
	m.routes = slices.Delete(m.routes, i, i+1)
	m.emitLocked(m.routeEventLocked(RouteRemoved, gone))
	return true
}

// routeEventLocked is the event of a route of Memory: RouteInfo as the
// kernel would report it, the interface of Route.Dev or the default (none,
// Ifindex 0, for a route with a gateway and no device, which the kernel
// would resolve). m.mu must be held.
func (m *Memory) routeEventLocked(kind AddrEventKind, s routeSpec) AddrEvent {
	ev := AddrEvent{Kind: kind, Ifname: s.Dev, Route: routeInfoOf(s)}
	if s.Dev != "" {
		ev.Ifindex = m.ifindexLocked(s.Dev)
	}
	return ev
}

// sameKey reports whether two routes are the same kernel route (destination,
// table, metric), which is what makes a second add fail with EEXIST.
func (s routeSpec) sameKey(o routeSpec) bool {
	return s.Dst == o.Dst && s.Table == o.Table && s.Metric == o.Metric
}

func (m *Memory) eachVIP(ctx context.Context, kind OpKind, ifname string, vips []config.VIP, apply func(addrSpec) (noop bool)) error {
	return m.eachVIPOp(ctx, kind, ifname, vips, func(s addrSpec) Op {
		return Op{Kind: kind, Ifname: s.Dev, Addr: s.Prefix, Noop: apply(s)}
	})
}

func (m *Memory) eachVIPOp(ctx context.Context, kind OpKind, ifname string, vips []config.VIP, do func(addrSpec) Op) error {
	return eachSpec(m, ctx, kind, vips, func(v config.VIP) (addrSpec, error) { return vipSpec(ifname, v) }, do)
}

func (m *Memory) eachRoute(ctx context.Context, kind OpKind, defaultDev string, routes []config.Route, apply func(routeSpec) (noop bool)) error {
	return eachSpec(m, ctx, kind, routes, func(r config.Route) (routeSpec, error) { return routeSpecOf(defaultDev, r) },
		func(s routeSpec) Op { return Op{Kind: kind, Ifname: s.Dev, Route: s.Dst, Noop: apply(s)} })
}

// eachSpec converts every item to its kernel spec and records the operation
// do returns for it, under the lock, the way the netlink plane handles a
// list: one bad item does not stop the others, injected failures and a
// cancelled context are reported, all errors are joined.
func eachSpec[C, S any](m *Memory, ctx context.Context, kind OpKind, items []C, spec func(C) (S, error), do func(S) Op) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		s, err := spec(it)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.fail[kind]; err != nil {
			errs = append(errs, err)
			continue
		}
		m.ops = append(m.ops, do(s))
	}
	return errors.Join(errs...)
}

// memLinks is Memory's link state and its watchers (a field of Memory,
// guarded by its mutex).
type memLinks struct {
	down     map[string]bool // interfaces set down by SetLink
	index    map[string]int  // ifindex handed out per interface name
	watchers map[*memWatch]struct{}
}

// memWatch is the queue of one Watch call: emitters append under Memory's
// mutex and never block; the Watch goroutine drains it.
type memWatch struct {
	queue []AddrEvent   // guarded by Memory.mu
	wake  chan struct{} // capacity 1: "the queue is not empty"
}

// Watch implements Watcher: fn sees a Resync first, then every address
// added or removed by AddAddrs, DelAddrs, AddBehindBack and
// RemoveBehindBack, every route added or removed by AddRoutes, DelRoutes
// and RemoveRouteBehindBack, every link change of SetLink and a Resync per
// Overflow, in the order they happened. Any number of Watch calls may run at once;
// each sees every event.
func (m *Memory) Watch(ctx context.Context, fn func(AddrEvent)) error {
	w := &memWatch{queue: []AddrEvent{{Kind: Resync}}, wake: make(chan struct{}, 1)}
	w.wake <- struct{}{}
	m.mu.Lock()
	if err := m.fail[OpWatch]; err != nil {
		m.mu.Unlock()
		return err
	}
	if m.links.watchers == nil {
		m.links.watchers = map[*memWatch]struct{}{}
	}
	m.links.watchers[w] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.links.watchers, w)
		m.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		}
		m.mu.Lock()
		evs := w.queue
		w.queue = nil
		m.mu.Unlock()
		for _, ev := range evs {
			if ctx.Err() != nil {
				return nil
			}
			fn(ev)
		}
	}
}

// AddBehindBack puts prefix on ifname as "ip addr add" by someone else
// would: no transcript entry, an AddrAdded event. It reports false (and
// emits nothing) when the address was already there.
func (m *Memory) AddBehindBack(ifname string, prefix netip.Prefix) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Contains(m.addrs[ifname], prefix) {
		return false
	}
	m.addrs[ifname] = append(m.addrs[ifname], prefix)
	m.emitLocked(AddrEvent{Kind: AddrAdded, Ifname: ifname, Ifindex: m.ifindexLocked(ifname), Prefix: prefix})
	return true
}

// RemoveBehindBack takes prefix off ifname as "ip addr del" by someone else
// would: no transcript entry, an AddrRemoved event. It reports false (and
// emits nothing) when the address was not there with that prefix length.
func (m *Memory) RemoveBehindBack(ifname string, prefix netip.Prefix) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.Index(m.addrs[ifname], prefix)
	if i < 0 {
		return false
	}
	m.addrs[ifname] = slices.Delete(m.addrs[ifname], i, i+1)
	if len(m.addrs[ifname]) == 0 {
		delete(m.addrs, ifname)
	}
	m.emitLocked(AddrEvent{Kind: AddrRemoved, Ifname: ifname, Ifindex: m.ifindexLocked(ifname), Prefix: prefix})
	return true
}

// SetLink sets ifname up or down and emits LinkUp or LinkDown when that is a
// change (every interface starts up). It touches no address: the kernel
// drops IPv6 addresses when a link goes administratively down (unless
// keep_addr_on_down), which a test simulates with RemoveBehindBack.
func (m *Memory) SetLink(ifname string, up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.links.down[ifname] == !up {
		return
	}
	if m.links.down == nil {
		m.links.down = map[string]bool{}
	}
	kind := LinkUp
	if up {
		delete(m.links.down, ifname)
	} else {
		m.links.down[ifname] = true
		kind = LinkDown
	}
	m.emitLocked(AddrEvent{Kind: kind, Ifname: ifname, Ifindex: m.ifindexLocked(ifname)})
}

// LinkIsUp reports the state SetLink last set (true for an interface never
// set).
func (m *Memory) LinkIsUp(ifname string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.links.down[ifname]
}

// Overflow simulates lost events (a netlink receive buffer overflow): every
// Watch gets a Resync.
func (m *Memory) Overflow() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.emitLocked(AddrEvent{Kind: Resync})
}

// Ifindex returns the interface index Memory reports for ifname in its
// events: a VMAC's own (see VMAC), otherwise a small number handed out on
// first use and stable afterwards.
func (m *Memory) Ifindex(ifname string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ifindexLocked(ifname)
}

func (m *Memory) ifindexLocked(ifname string) int {
	if v, ok := m.vmacs.byName[ifname]; ok {
		return v.index
	}
	if i, ok := m.links.index[ifname]; ok {
		return i
	}
	if m.links.index == nil {
		m.links.index = map[string]int{}
	}
	i := len(m.links.index) + 1 // 1, 2, ...: below memVMACFirstIndex for any sane test
	m.links.index[ifname] = i
	return i
}

// emitLocked queues ev for every running Watch. m.mu must be held.
func (m *Memory) emitLocked(ev AddrEvent) {
	for w := range m.links.watchers {
		w.queue = append(w.queue, ev)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}
