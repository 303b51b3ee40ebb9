package vip

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/config"
)

var testNetnsSeq atomic.Int64

// testNetns creates a network namespace of the test's own ("ip netns add",
// a unique name), returns a handle to it and an rtnetlink handle in it, and
// deletes it when the test ends, failed or not. Nothing in it touches the
// host's interfaces. It skips the test without root: unit tests need none,
// and CI runs as root, so it runs there.
func testNetns(t *testing.T) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a private network namespace with interfaces in it (CI runs as root)")
	}
	name := fmt.Sprintf("vipd-vip-test-%d-%d", os.Getpid(), testNetnsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open network namespace %s: %v", name, err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("rtnetlink in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	return ns, h
}

// testVeth adds a veth pair a <-> b in the namespace of h, both up, and
// returns a.
func testVeth(t *testing.T, h *netlink.Handle, a, b string) netlink.Link {
	t.Helper()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		t.Fatalf("add veth %s/%s: %v", a, b, err)
	}
	for _, n := range []string{b, a} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", n, err)
		}
	}
	l, err := h.LinkByName(a)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// watchIn starts a NetlinkWatcher of ns.
func watchIn(t *testing.T, ns netns.NsHandle, tune func(*NetlinkWatcher)) <-chan AddrEvent {
	t.Helper()
	fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := newNetlinkWatcherAt(netns.NsHandle(fd), nil)
	if tune != nil {
		tune(w)
	}
	t.Cleanup(func() { w.Close() })
	return startWatch(t, w)
}

func addr(t *testing.T, h *netlink.Handle, l netlink.Link, p string, add bool) {
	t.Helper()
	a := &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(p))}
	if netip.MustParsePrefix(p).Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	var err error
	if add {
		err = h.AddrAdd(l, a)
	} else {
		err = h.AddrDel(l, a)
	}
	if err != nil {
		t.Fatalf("address %s (add %v) on %s: %v", p, add, l.Attrs().Name, err)
	}
}

func is(kind AddrEventKind, ifname string, prefix string) func(AddrEvent) bool {
	return func(e AddrEvent) bool {
		if e.Kind != kind || e.Ifname != ifname {
			return false
		}
		return prefix == "" || e.Prefix == netip.MustParsePrefix(prefix)
	}
}

func TestNetlinkWatcherReportsAddressesRemovedAndLinksDownAndUpInItsNamespace(t *testing.T) {
	ns, h := testNetns(t)
	wv0 := testVeth(t, h, "wv0", "wv1")
	idx := wv0.Attrs().Index
	wv1, err := h.LinkByName("wv1")
	if err != nil {
		t.Fatal(err)
	}
	addr(t, h, wv0, "10.99.0.100/24", true)
	addr(t, h, wv0, "fd00:99::100/128", true)

	events := watchIn(t, ns, nil)
	step := func(what string, do func(), match func(AddrEvent) bool) AddrEvent {
		t.Helper()
		do()
		e := waitEvent(t, events, what, match)
		if e.Ifindex != idx && e.Ifname == "wv0" {
			t.Errorf("%s: ifindex %d, want %d", what, e.Ifindex, idx)
		}
		return e
	}

	step("ip addr del 10.99.0.100/24 dev wv0", func() { addr(t, h, wv0, "10.99.0.100/24", false) },
		is(AddrRemoved, "wv0", "10.99.0.100/24"))
	step("ip addr del fd00:99::100/128 dev wv0", func() { addr(t, h, wv0, "fd00:99::100/128", false) },
		is(AddrRemoved, "wv0", "fd00:99::100/128"))
	step("ip addr add 10.99.0.101/32 dev wv0", func() { addr(t, h, wv0, "10.99.0.101/32", true) },
		is(AddrAdded, "wv0", "10.99.0.101/32"))

	step("ip link set wv0 down", func() {
		if err := h.LinkSetDown(wv0); err != nil {
			t.Fatal(err)
		}
	}, is(LinkDown, "wv0", ""))
	step("ip link set wv0 up", func() {
		if err := h.LinkSetUp(wv0); err != nil {
			t.Fatal(err)
		}
	}, is(LinkUp, "wv0", ""))

	// Carrier: wv0 stays administratively up, but without its peer it is
	// not running, which is down for keepalived and for the watcher.
	step("ip link set wv1 down (wv0 loses carrier)", func() {
		if err := h.LinkSetDown(wv1); err != nil {
			t.Fatal(err)
		}
	}, is(LinkDown, "wv0", ""))
	step("ip link set wv1 up (wv0 gets carrier back)", func() {
		if err := h.LinkSetUp(wv1); err != nil {
			t.Fatal(err)
		}
	}, is(LinkUp, "wv0", ""))

	// A rename refreshes the name cache: the old name goes down, later
	// events carry the new one.
	step("ip link set wv0 down", func() {
		if err := h.LinkSetDown(wv0); err != nil {
			t.Fatal(err)
		}
	}, is(LinkDown, "wv0", ""))
	if err := h.LinkSetName(wv0, "wv2"); err != nil {
		t.Fatal(err)
	}
	step("ip link set wv2 up (renamed)", func() {
		if err := h.LinkSetUp(wv0); err != nil {
			t.Fatal(err)
		}
	}, is(LinkUp, "wv2", ""))
	e := step("ip addr del 10.99.0.101/32 dev wv2", func() { addr(t, h, wv0, "10.99.0.101/32", false) },
		is(AddrRemoved, "wv2", "10.99.0.101/32"))
	if e.Ifindex != idx {
		t.Errorf("renamed interface: ifindex %d, want %d", e.Ifindex, idx)
	}

	// Removal: LinkDown, and the kernel's removal of the addresses still
	// names the interface, although its address notifications may come
	// after the link's.
	addr(t, h, wv0, "10.99.0.102/32", true)
	waitEvent(t, events, "addr-added 10.99.0.102/32", is(AddrAdded, "wv2", "10.99.0.102/32"))
	if err := h.LinkDel(wv0); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	waitEvent(t, events, "link-down wv2 and addr-removed 10.99.0.102/32 dev wv2", func(e AddrEvent) bool {
		seen[e.String()] = true
		return seen[fmt.Sprintf("link-down dev wv2 (%d)", idx)] && seen[fmt.Sprintf("addr-removed 10.99.0.102/32 dev wv2 (%d)", idx)]
	})
}

func TestNetlinkWatcherResubscribesAndResyncsAfterAnOverflow(t *testing.T) {
	ns, h := testNetns(t)
	l := testVeth(t, h, "wo0", "wo1")
	fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	w := newNetlinkWatcherAt(netns.NsHandle(fd), slog.New(slog.NewTextHandler(&log, nil)))
	defer w.Close()
	// The smallest receive buffer the kernel allows: a few notifications.
	w.rcvbuf, w.rcvforce = 1, false

	// fn blocks on the gate after the first Resync: the channels fill, and
	// the socket overflows (ENOBUFS) while 300 addresses come.
	gate := make(chan struct{})
	gated := false
	inner := watcherFunc(func(ctx context.Context, fn func(AddrEvent)) error {
		return w.Watch(ctx, func(e AddrEvent) {
			if gated {
				<-gate
			}
			gated = true
			fn(e)
		})
	})
	events := startWatch(t, inner)
	for i := range 300 {
		addr(t, h, l, fmt.Sprintf("10.98.%d.%d/32", i/200, i%200+1), true)
	}
	close(gate)
	waitEvent(t, events, "resync after the overflow", func(e AddrEvent) bool { return e.Kind == Resync })
	if !strings.Contains(log.String(), "ENOBUFS") {
		t.Errorf("log does not name the overflow:\n%s", log.String())
	}

	// The new subscription works, once the backlog is read.
	for quiet := false; !quiet; {
		select {
		case <-events:
		case <-time.After(200 * time.Millisecond):
			quiet = true
		}
	}
	addr(t, h, l, "10.98.0.1/32", false)
	waitEvent(t, events, "addr-removed after resubscribing", is(AddrRemoved, "wo0", "10.98.0.1/32"))
}

// lockedBuffer is a log destination safe for the watcher's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// watcherFunc adapts a function to Watcher.
type watcherFunc func(ctx context.Context, fn func(AddrEvent)) error

func (f watcherFunc) Watch(ctx context.Context, fn func(AddrEvent)) error { return f(ctx, fn) }

func TestNetlinkWatcherReturnsOnCancelAndLeavesNoGoroutine(t *testing.T) {
	// Read-only, in the test's own namespace (or, without root, the host's:
	// subscribing needs no privilege and changes nothing).
	var w *NetlinkWatcher
	if os.Geteuid() == 0 {
		ns, _ := testNetns(t)
		fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		w = newNetlinkWatcherAt(netns.NsHandle(fd), nil)
	} else {
		var err error
		if w, err = NewNetlinkWatcher(nil); err != nil {
			t.Fatal(err)
		}
	}
	defer w.Close()
	before := runtime.NumGoroutine()
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			errc <- w.Watch(ctx, func(e AddrEvent) {
				if e.Kind == Resync {
					select {
					case <-started:
					default:
						close(started)
					}
				}
			})
		}()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("Watch: %v", err)
		case <-time.After(watchDeadline):
			t.Fatal("no first resync")
		}
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("Watch returned %v after cancel, want nil", err)
			}
		case <-time.After(watchDeadline):
			t.Fatal("Watch did not return after cancel")
		}
	}
	deadline := time.Now().Add(watchDeadline)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after 3 cancelled watches, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A closed watcher cannot subscribe.
	w.Close()
	if err := w.Watch(context.Background(), func(AddrEvent) {}); err == nil {
		t.Error("Watch on a closed watcher returned nil")
	}
}

func TestAddrEventFromNetlinkUpdateKeepsPrefixLength(t *testing.T) {
	for _, c := range []struct {
		ip   net.IP
		bits int
		want string
	}{
		{net.IP{10, 0, 0, 1}, 24, "10.0.0.1/24"},
		{net.IPv4(10, 0, 0, 1), 32, "10.0.0.1/32"}, // 16-byte form
		{net.ParseIP("fd00::1"), 128, "fd00::1/128"},
	} {
		u := netlink.AddrUpdate{LinkAddress: net.IPNet{IP: c.ip, Mask: net.CIDRMask(c.bits, 8*len(c.ip))}, LinkIndex: 3}
		if len(c.ip) == 16 && c.ip.To4() != nil {
			u.LinkAddress.Mask = net.CIDRMask(c.bits, 32)
		}
		e, ok := addrEvent(u, "eth0")
		if !ok || e.Prefix != netip.MustParsePrefix(c.want) || e.Kind != AddrRemoved || e.Ifname != "eth0" || e.Ifindex != 3 {
			t.Errorf("addrEvent(%v/%d) = %v, %v; want addr-removed %s dev eth0 (3)", c.ip, c.bits, e, ok, c.want)
		}
	}
}

func TestNetlinkWatcherReportsRoutesAddedAndRemoved(t *testing.T) {
	ns, h := testNetns(t)
	wr0 := testVeth(t, h, "wr0", "wr1")
	idx := wr0.Attrs().Index
	addr(t, h, wr0, "10.99.0.1/24", true)
	addr(t, h, wr0, "fd00:99::1/64", true)

	events := watchIn(t, ns, nil)
	var seen []AddrEvent // every event, to check what was filtered out
	wait := func(what string, match func(AddrEvent) bool) AddrEvent {
		t.Helper()
		return waitEvent(t, events, what, func(e AddrEvent) bool {
			seen = append(seen, e)
			return match(e)
		})
	}
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	for _, c := range []struct {
		route   config.Route
		ifname  string // the route's output interface, as the kernel reports it
		gateway string
		table   int
	}{
		{config.Route{Dst: p("10.98.0.0/24"), Via: a("10.99.0.2")}, "wr0", "10.99.0.2", 254},
		{config.Route{Dst: p("10.97.0.0/16"), Dev: "wr0", Table: 100, Metric: 7}, "wr0", "", 100},
		{config.Route{Dst: p("fd00:98::/64"), Via: a("fd00:99::2"), Dev: "wr0"}, "wr0", "fd00:99::2", 254},
		{config.Route{Dst: p("192.0.2.0/24"), Type: "blackhole"}, "", "", 254},
	} {
		s, err := routeSpecOf("wr0", c.route)
		if err != nil {
			t.Fatal(err)
		}
		oif := 0
		if s.Dev != "" {
			oif = idx
		}
		// Added as vipd adds a virtual route.
		if err := h.RouteAdd(toNetlinkRoute(s, oif, false)); err != nil {
			t.Fatalf("add route %s: %v", s, err)
		}
		e := wait("route-added "+s.String(), func(e AddrEvent) bool {
			return e.Kind == RouteAdded && e.Route.Matches(c.route, "wr0")
		})
		wantIdx := 0
		if c.ifname != "" {
			wantIdx = idx
		}
		var gw netip.Addr
		if c.gateway != "" {
			gw = a(c.gateway)
		}
		if e.Ifname != c.ifname || e.Route.Ifname != c.ifname || e.Ifindex != wantIdx || e.Route.Gateway != gw ||
			e.Route.Table != c.table || e.Route.Protocol != protoKeepalived || e.Route.Dst != s.Dst {
			t.Errorf("%s: got %v (%+v), want dev %q (%d) via %q table %d protocol keepalived", s, e, e.Route, c.ifname, wantIdx, c.gateway, c.table)
		}

		// Deleted behind vipd's back, as "ip route del DST [table T]
		// [metric M]" does: no device, no gateway, any type and scope.
		del := &netlink.Route{Dst: ipNet(s.Dst), Table: s.Table, Priority: s.Metric}
		if err := h.RouteDel(del); err != nil {
			t.Fatalf("ip route del %s: %v", s.Dst, err)
		}
		e = wait("route-removed "+s.String(), func(e AddrEvent) bool {
			return e.Kind == RouteRemoved && e.Route.Dst == s.Dst && e.Route.Table == c.table
		})
		if e.Ifname != c.ifname || e.Ifindex != wantIdx || !e.Route.Matches(c.route, "wr0") {
			t.Errorf("%s: got %v (%+v), want dev %q (%d), matching the configured route", s, e, e.Route, c.ifname, wantIdx)
		}
	}

	// An address brings a connected route in main (reported, protocol
	// kernel) and a local route in table local (not reported).
	addr(t, h, wr0, "10.96.0.1/24", true)
	wait("route-added 10.96.0.0/24 proto kernel", func(e AddrEvent) bool {
		return e.Kind == RouteAdded && e.Route.Dst == p("10.96.0.0/24") && e.Route.Protocol == unix.RTPROT_KERNEL && e.Ifname == "wr0"
	})
	addr(t, h, wr0, "10.96.0.1/24", false)
	wait("address removed", is(AddrRemoved, "wr0", "10.96.0.1/24"))
	// A last route as a marker: every notification before it has come.
	if err := h.RouteAdd(&netlink.Route{Dst: ipNet(p("10.95.0.0/24")), LinkIndex: idx}); err != nil {
		t.Fatal(err)
	}
	wait("route-added 10.95.0.0/24", func(e AddrEvent) bool { return e.Kind == RouteAdded && e.Route.Dst == p("10.95.0.0/24") })
	for _, e := range seen {
		if (e.Kind == RouteAdded || e.Kind == RouteRemoved) && e.Route.Table == unix.RT_TABLE_LOCAL {
			t.Errorf("route of table local reported: %v", e)
		}
	}
}

func TestRouteEventFiltersWhatIsNeverAVirtualRoute(t *testing.T) {
	_, dst, _ := net.ParseCIDR("10.98.0.0/24")
	base := netlink.RouteUpdate{Type: unix.RTM_DELROUTE, Route: netlink.Route{
		Dst: dst, Gw: net.IPv4(10, 0, 0, 1), LinkIndex: 3, Table: 254, Type: unix.RTN_UNICAST,
		Protocol: unix.RTPROT_BOOT, Family: unix.AF_INET, Priority: 5}}
	with := func(f func(*netlink.RouteUpdate)) netlink.RouteUpdate {
		u := base
		f(&u)
		return u
	}
	e, ok := routeEvent(base)
	want := AddrEvent{Kind: RouteRemoved, Ifindex: 3, Route: RouteInfo{Dst: netip.MustParsePrefix("10.98.0.0/24"),
		Gateway: netip.MustParseAddr("10.0.0.1"), Table: 254, Metric: 5, Type: "unicast", Protocol: unix.RTPROT_BOOT}}
	if !ok || e != want {
		t.Errorf("routeEvent(del 10.98.0.0/24 via 10.0.0.1) = %+v, %v; want %+v", e, ok, want)
	}
	if e, ok := routeEvent(with(func(u *netlink.RouteUpdate) { u.Type = unix.RTM_NEWROUTE })); !ok || e.Kind != RouteAdded {
		t.Errorf("RTM_NEWROUTE: %v, %v; want route-added", e, ok)
	}
	def6, ok := routeEvent(with(func(u *netlink.RouteUpdate) { u.Dst, u.Gw, u.Family = nil, net.ParseIP("fe80::1"), unix.AF_INET6 }))
	if !ok || def6.Route.Dst != netip.MustParsePrefix("::/0") || def6.Route.Gateway != netip.MustParseAddr("fe80::1") {
		t.Errorf("IPv6 default route: %+v, %v; want ::/0 via fe80::1", def6, ok)
	}
	for name, u := range map[string]netlink.RouteUpdate{
		"table local":      with(func(u *netlink.RouteUpdate) { u.Table = unix.RT_TABLE_LOCAL }),
		"type local":       with(func(u *netlink.RouteUpdate) { u.Route.Type = unix.RTN_LOCAL }),
		"type broadcast":   with(func(u *netlink.RouteUpdate) { u.Route.Type = unix.RTN_BROADCAST }),
		"type multicast":   with(func(u *netlink.RouteUpdate) { u.Route.Type = unix.RTN_MULTICAST }),
		"cloned":           with(func(u *netlink.RouteUpdate) { u.Flags = unix.RTM_F_CLONED }),
		"not a route":      with(func(u *netlink.RouteUpdate) { u.Type = unix.RTM_NEWADDR }),
		"MPLS":             with(func(u *netlink.RouteUpdate) { u.Dst, u.Family = nil, unix.AF_MPLS }),
		"family mismatch":  with(func(u *netlink.RouteUpdate) { u.Family = unix.AF_INET6 }),
		"malformed dst IP": with(func(u *netlink.RouteUpdate) { u.Dst = &net.IPNet{IP: net.IP{1, 2, 3}, Mask: dst.Mask} }),
	} {
		if e, ok := routeEvent(u); ok {
			t.Errorf("%s: reported as %v", name, e)
		}
	}
	for _, typ := range []int{unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT, unix.RTN_THROW} {
		if _, ok := routeEvent(with(func(u *netlink.RouteUpdate) { u.Route.Type = typ })); !ok {
			t.Errorf("route type %d not reported", typ)
		}
	}
}
