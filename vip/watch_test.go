package vip

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/config"
)

// watchDeadline bounds every wait for an event.
const watchDeadline = 5 * time.Second

// startWatch runs w.Watch in a goroutine and returns its events, waiting for
// the first one (the Resync that says the subscription is live). The watch
// is cancelled, and must have returned nil, when the test ends.
func startWatch(t *testing.T, w Watcher) <-chan AddrEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan AddrEvent, 4096)
	errc := make(chan error, 1)
	go func() { errc <- w.Watch(ctx, func(e AddrEvent) { events <- e }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Watch returned %v after cancel, want nil", err)
			}
		case <-time.After(watchDeadline):
			t.Errorf("Watch did not return within %v of cancel", watchDeadline)
		}
	})
	select {
	case e := <-events:
		if e.Kind != Resync {
			t.Fatalf("first event %v, want resync", e)
		}
	case err := <-errc:
		t.Fatalf("Watch: %v", err)
	case <-time.After(watchDeadline):
		t.Fatalf("no first resync within %v", watchDeadline)
	}
	return events
}

// waitEvent returns the first event for which match is true, skipping the
// others (the kernel reports more than a test asks about), and fails the
// test when none comes within watchDeadline.
func waitEvent(t *testing.T, events <-chan AddrEvent, what string, match func(AddrEvent) bool) AddrEvent {
	t.Helper()
	deadline := time.After(watchDeadline)
	var skipped []AddrEvent
	for {
		select {
		case e := <-events:
			if match(e) {
				return e
			}
			skipped = append(skipped, e)
		case <-deadline:
			t.Fatalf("no %s within %v; saw %v", what, watchDeadline, skipped)
			return AddrEvent{}
		}
	}
}

func TestMemoryWatchReportsEveryChangeInOrderAfterAResync(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	events := startWatch(t, m)
	p := netip.MustParsePrefix

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.AddAddrs(ctx, "eth0", vips("10.0.0.100/24", "fd00::100/128")))
	must(m.AddAddrs(ctx, "eth0", vips("10.0.0.100/24"))) // already there: no event
	if !m.RemoveBehindBack("eth0", p("10.0.0.100/24")) {
		t.Error("RemoveBehindBack of a present address reported false")
	}
	if m.RemoveBehindBack("eth0", p("10.0.0.100/24")) {
		t.Error("RemoveBehindBack of an absent address reported true")
	}
	if m.AddBehindBack("eth1", p("192.0.2.1/32")) != true || m.AddBehindBack("eth1", p("192.0.2.1/32")) != false {
		t.Error("AddBehindBack: want true, then false for the same address")
	}
	m.SetLink("eth0", false)
	m.SetLink("eth0", false) // no change: no event
	m.SetLink("eth0", true)
	m.Overflow()
	must(m.DelAddrs(ctx, "eth0", vips("fd00::100/128", "10.9.9.9/32"))) // the absent one: no event
	m.Overflow()                                                        // end marker

	eth0, eth1 := m.Ifindex("eth0"), m.Ifindex("eth1")
	if eth0 == 0 || eth1 == 0 || eth0 == eth1 {
		t.Fatalf("Ifindex eth0 %d, eth1 %d: want two distinct non-zero indexes", eth0, eth1)
	}
	want := []AddrEvent{
		{Kind: AddrAdded, Ifname: "eth0", Ifindex: eth0, Prefix: p("10.0.0.100/24")},
		{Kind: AddrAdded, Ifname: "eth0", Ifindex: eth0, Prefix: p("fd00::100/128")},
		{Kind: AddrRemoved, Ifname: "eth0", Ifindex: eth0, Prefix: p("10.0.0.100/24")},
		{Kind: AddrAdded, Ifname: "eth1", Ifindex: eth1, Prefix: p("192.0.2.1/32")},
		{Kind: LinkDown, Ifname: "eth0", Ifindex: eth0},
		{Kind: LinkUp, Ifname: "eth0", Ifindex: eth0},
		{Kind: Resync},
		{Kind: AddrRemoved, Ifname: "eth0", Ifindex: eth0, Prefix: p("fd00::100/128")},
		{Kind: Resync},
	}
	var got []AddrEvent
	for len(got) < len(want) {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(watchDeadline):
			t.Fatalf("got %d events, want %d: %v", len(got), len(want), got)
		}
	}
	if diff := cmp.Diff(want, got, cmpNetip); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := m.Addrs("eth0"); len(got) != 0 {
		t.Errorf("eth0 still has %v", got)
	}
	if !m.LinkIsUp("eth0") || !m.LinkIsUp("never-set") {
		t.Error("LinkIsUp: want true for eth0 (set up again) and for an interface never set")
	}
}

func TestMemoryWatchersEachSeeEveryEventAndStopOnCancel(t *testing.T) {
	m := NewMemory()
	a, b := startWatch(t, m), startWatch(t, m)
	m.SetLink("eth0", false)
	for _, events := range []<-chan AddrEvent{a, b} {
		waitEvent(t, events, "link-down eth0", func(e AddrEvent) bool { return e.Kind == LinkDown && e.Ifname == "eth0" })
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Watch(ctx, func(AddrEvent) {}) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Watch returned %v after cancel, want nil", err)
		}
	case <-time.After(watchDeadline):
		t.Fatal("Watch did not return after cancel")
	}
	waitWatchers(t, m, 2) // the cancelled one unregistered; a and b remain
}

// waitWatchers waits until m has n Watch calls registered.
func waitWatchers(t *testing.T, m *Memory, n int) {
	t.Helper()
	deadline := time.Now().Add(watchDeadline)
	for {
		m.mu.Lock()
		got := len(m.links.watchers)
		m.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d watchers registered, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemoryWatchFailsToSubscribeWhenToldTo(t *testing.T) {
	m := NewMemory()
	boom := errors.New("boom")
	m.Fail(OpWatch, boom)
	if err := m.Watch(context.Background(), func(AddrEvent) { t.Error("fn called") }); !errors.Is(err, boom) {
		t.Errorf("Watch error %v, want %v", err, boom)
	}
	m.Fail(OpWatch, nil)
	startWatch(t, m)
}

func TestMemoryWatchFnMayCallThePlane(t *testing.T) {
	// The runtime re-checks (HasAddr) and re-adds (AddAddrs) from fn: no
	// deadlock, and the re-add is itself reported.
	ctx := context.Background()
	m := NewMemory()
	vip := vips("10.0.0.100/32")
	if err := m.AddAddrs(ctx, "eth0", vip); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	healed := make(chan AddrEvent, 16)
	go func() {
		_ = m.Watch(wctx, func(e AddrEvent) {
			if e.Kind == AddrRemoved {
				if ok, _ := m.HasAddr(e.Ifname, e.Prefix.Addr()); !ok {
					_ = m.AddAddrs(ctx, e.Ifname, vip)
				}
			}
			healed <- e
		})
	}()
	waitEvent(t, healed, "resync", func(e AddrEvent) bool { return e.Kind == Resync })
	m.RemoveBehindBack("eth0", netip.MustParsePrefix("10.0.0.100/32"))
	waitEvent(t, healed, "the re-add", func(e AddrEvent) bool { return e.Kind == AddrAdded })
	if ok, _ := m.HasAddr("eth0", netip.MustParseAddr("10.0.0.100")); !ok {
		t.Error("the VIP was not put back")
	}
}

func TestAddrEventStrings(t *testing.T) {
	for _, c := range []struct {
		e    AddrEvent
		want string
	}{
		{AddrEvent{Kind: AddrRemoved, Ifname: "eth0", Ifindex: 2, Prefix: netip.MustParsePrefix("10.0.0.1/32")}, "addr-removed 10.0.0.1/32 dev eth0 (2)"},
		{AddrEvent{Kind: LinkUp, Ifname: "eth0", Ifindex: 2}, "link-up dev eth0 (2)"},
		{AddrEvent{Kind: Resync}, "resync"},
		{AddrEvent{Kind: RouteRemoved, Ifname: "eth0", Ifindex: 2, Route: RouteInfo{
			Dst: netip.MustParsePrefix("10.98.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1"), Table: 254, Type: "unicast", Ifname: "eth0"}},
			"route-removed 10.98.0.0/24 via 10.0.0.1 dev eth0 (2)"},
		{AddrEvent{Kind: RouteAdded, Route: RouteInfo{
			Dst: netip.MustParsePrefix("fd00::/64"), Table: 100, Metric: 1024, Type: "blackhole"}},
			"route-added blackhole fd00::/64 metric 1024 table 100 (0)"},
		{AddrEvent{Kind: 42}, "AddrEventKind(42) dev  (0)"},
	} {
		if got := c.e.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.e, got, c.want)
		}
	}
}

func TestMemoryWatchReportsRouteChanges(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	events := startWatch(t, m)
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	dev := config.Route{Dst: p("10.98.0.0/24")} // out of the default device
	via := config.Route{Dst: p("10.97.0.0/16"), Via: a("10.0.0.1")}
	v6 := config.Route{Dst: p("fd00:98::1/64"), Dev: "eth1", Table: 100}
	hole := config.Route{Dst: p("192.0.2.0/24"), Type: "blackhole", Metric: 5}

	if err := m.AddRoutes(ctx, "eth0", []config.Route{dev, via, v6, hole}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRoutes(ctx, "eth0", []config.Route{dev}); err != nil { // already there: no event
		t.Fatal(err)
	}
	if !m.RemoveRouteBehindBack(dev, "eth0") {
		t.Error("RemoveRouteBehindBack of a present route reported false")
	}
	if m.RemoveRouteBehindBack(dev, "eth0") {
		t.Error("RemoveRouteBehindBack of an absent route reported true")
	}
	if m.RemoveRouteBehindBack(config.Route{}, "eth0") {
		t.Error("RemoveRouteBehindBack of a route without destination reported true")
	}
	if !m.RemoveRouteBehindBack(config.Route{Dst: p("fd00:98::/64"), Table: 100}, "eth0") {
		t.Error("RemoveRouteBehindBack of the IPv6 route by its key reported false")
	}
	if err := m.DelRoutes(ctx, "eth0", []config.Route{via, dev}); err != nil { // dev is absent: no event
		t.Fatal(err)
	}
	m.Overflow() // end marker

	eth0, eth1 := m.Ifindex("eth0"), m.Ifindex("eth1")
	devInfo := RouteInfo{Dst: p("10.98.0.0/24"), Table: 254, Type: "unicast", Protocol: 18, Ifname: "eth0"}
	viaInfo := RouteInfo{Dst: p("10.97.0.0/16"), Gateway: a("10.0.0.1"), Table: 254, Type: "unicast", Protocol: 18}
	v6Info := RouteInfo{Dst: p("fd00:98::/64"), Table: 100, Metric: 1024, Type: "unicast", Protocol: 18, Ifname: "eth1"}
	want := []AddrEvent{
		{Kind: RouteAdded, Ifname: "eth0", Ifindex: eth0, Route: devInfo},
		{Kind: RouteAdded, Route: viaInfo},
		{Kind: RouteAdded, Ifname: "eth1", Ifindex: eth1, Route: v6Info},
		{Kind: RouteAdded, Route: RouteInfo{Dst: p("192.0.2.0/24"), Table: 254, Metric: 5, Type: "blackhole", Protocol: 18}},
		{Kind: RouteRemoved, Ifname: "eth0", Ifindex: eth0, Route: devInfo},
		{Kind: RouteRemoved, Ifname: "eth1", Ifindex: eth1, Route: v6Info},
		{Kind: RouteRemoved, Route: viaInfo},
		{Kind: Resync},
	}
	var got []AddrEvent
	for len(got) < len(want) {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(watchDeadline):
			t.Fatalf("got %d events, want %d: %v", len(got), len(want), got)
		}
	}
	if diff := cmp.Diff(want, got, cmpNetip); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got, want := m.Routes(), []netip.Prefix{p("192.0.2.0/24")}; !cmp.Equal(got, want, cmpNetip) {
		t.Errorf("routes left %v, want %v", got, want)
	}
	for _, e := range want {
		if e.Kind == RouteAdded && e.Route.Dst == p("10.98.0.0/24") && !e.Route.Matches(dev, "eth0") {
			t.Errorf("%v does not match the route it was made from", e)
		}
	}
}

func TestMemoryWatchFnMayPutARouteBack(t *testing.T) {
	// What the runtime does with a virtual route deleted behind its back.
	ctx := context.Background()
	m := NewMemory()
	routes := []config.Route{{Dst: netip.MustParsePrefix("10.98.0.0/24"), Via: netip.MustParseAddr("10.0.0.1")}}
	if err := m.AddRoutes(ctx, "eth0", routes); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	healed := make(chan AddrEvent, 16)
	go func() {
		_ = m.Watch(wctx, func(e AddrEvent) {
			if e.Kind == RouteRemoved && e.Route.Matches(routes[0], "eth0") {
				_ = m.AddRoutes(ctx, "eth0", routes)
			}
			healed <- e
		})
	}()
	waitEvent(t, healed, "resync", func(e AddrEvent) bool { return e.Kind == Resync })
	m.ClearOps()
	if !m.RemoveRouteBehindBack(routes[0], "eth0") {
		t.Fatal("RemoveRouteBehindBack reported false")
	}
	waitEvent(t, healed, "the re-add", func(e AddrEvent) bool { return e.Kind == RouteAdded })
	if got := m.Routes(); len(got) != 1 || got[0] != routes[0].Dst {
		t.Errorf("routes %v: the route was not put back", got)
	}
	// Only the re-add is in the transcript: the removal was not vipd's.
	want := []Op{{Kind: OpAddRoute, Route: routes[0].Dst}}
	if diff := cmp.Diff(want, m.Ops(), cmpNetip); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
}

func TestRouteInfoMatchesTheRouteAddRoutesMakes(t *testing.T) {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	v4 := RouteInfo{Dst: p("10.98.0.0/24"), Table: 254, Type: "unicast", Ifname: "eth0"}
	v6 := RouteInfo{Dst: p("fd00:98::/64"), Table: 254, Metric: 1024, Type: "unicast", Ifname: "eth0"}
	with := func(r RouteInfo, f func(*RouteInfo)) RouteInfo { f(&r); return r }
	for _, c := range []struct {
		name  string
		info  RouteInfo
		route config.Route
		want  bool
	}{
		{"out of the default device", v4, config.Route{Dst: p("10.98.0.0/24")}, true},
		{"destination written unmasked", v4, config.Route{Dst: p("10.98.0.7/24")}, true},
		{"another destination", v4, config.Route{Dst: p("10.98.0.0/25")}, false},
		{"another device", with(v4, func(r *RouteInfo) { r.Ifname = "eth1" }), config.Route{Dst: p("10.98.0.0/24")}, false},
		{"the device named", with(v4, func(r *RouteInfo) { r.Ifname = "eth1" }), config.Route{Dst: p("10.98.0.0/24"), Dev: "eth1"}, true},
		{"gateway without device: the kernel's choice", with(v4, func(r *RouteInfo) { r.Ifname = "wv0"; r.Gateway = a("10.0.0.1") }),
			config.Route{Dst: p("10.98.0.0/24"), Via: a("10.0.0.1")}, true},
		{"another table", v4, config.Route{Dst: p("10.98.0.0/24"), Table: 100}, false},
		{"the table named", with(v4, func(r *RouteInfo) { r.Table = 100 }), config.Route{Dst: p("10.98.0.0/24"), Table: 100}, true},
		{"another metric", v4, config.Route{Dst: p("10.98.0.0/24"), Metric: 10}, false},
		{"IPv6 metric 0 is 1024 in the kernel", v6, config.Route{Dst: p("fd00:98::/64")}, true},
		{"IPv6 metric 1024 written", v6, config.Route{Dst: p("fd00:98::/64"), Metric: 1024}, true},
		{"IPv6 route reported with metric 0", with(v6, func(r *RouteInfo) { r.Metric = 0 }), config.Route{Dst: p("fd00:98::/64")}, false},
		{"blackhole: no device", RouteInfo{Dst: p("192.0.2.0/24"), Table: 254, Type: "blackhole"},
			config.Route{Dst: p("192.0.2.0/24"), Type: "blackhole"}, true},
		{"a route AddRoutes refuses", v4, config.Route{}, false},
	} {
		if got := c.info.Matches(c.route, "eth0"); got != c.want {
			t.Errorf("%s: %v Matches %+v = %v, want %v", c.name, c.info, c.route, got, c.want)
		}
	}
}
