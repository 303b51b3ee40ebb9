package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/config"
)

var cmpNetip = cmp.Options{
	cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
	cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
}

func vips(ss ...string) []config.VIP {
	out := make([]config.VIP, len(ss))
	for i, s := range ss {
		out[i] = config.VIP{Prefix: netip.MustParsePrefix(s)}
	}
	return out
}

func TestMemoryAddDelIsIdempotentAndTranscribed(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	p := netip.MustParsePrefix
	steps := []struct {
		name      string
		do        func() error
		wantOps   []Op
		wantAddrs []netip.Prefix
	}{
		{
			name: "add two VIPs",
			do:   func() error { return m.AddAddrs(ctx, "eth0", vips("10.0.0.10/24", "fd00::10/64")) },
			wantOps: []Op{
				{Kind: OpAddAddr, Ifname: "eth0", Addr: p("10.0.0.10/24")},
				{Kind: OpAddAddr, Ifname: "eth0", Addr: p("fd00::10/64")},
			},
			wantAddrs: []netip.Prefix{p("10.0.0.10/24"), p("fd00::10/64")},
		},
		{
			name: "adding them again changes nothing",
			do:   func() error { return m.AddAddrs(ctx, "eth0", vips("10.0.0.10/24", "fd00::10/64")) },
			wantOps: []Op{
				{Kind: OpAddAddr, Ifname: "eth0", Addr: p("10.0.0.10/24"), Noop: true},
				{Kind: OpAddAddr, Ifname: "eth0", Addr: p("fd00::10/64"), Noop: true},
			},
			wantAddrs: []netip.Prefix{p("10.0.0.10/24"), p("fd00::10/64")},
		},
		{
			name:      "an IPv6 address is keyed by address alone, as in the kernel",
			do:        func() error { return m.AddAddrs(ctx, "eth0", vips("fd00::10/128")) },
			wantOps:   []Op{{Kind: OpAddAddr, Ifname: "eth0", Addr: p("fd00::10/128"), Noop: true}},
			wantAddrs: []netip.Prefix{p("10.0.0.10/24"), p("fd00::10/64")},
		},
		{
			name:      "an IPv4 address with another length is another address, as in the kernel",
			do:        func() error { return m.AddAddrs(ctx, "eth0", vips("10.0.0.10/32")) },
			wantOps:   []Op{{Kind: OpAddAddr, Ifname: "eth0", Addr: p("10.0.0.10/32")}},
			wantAddrs: []netip.Prefix{p("10.0.0.10/24"), p("fd00::10/64"), p("10.0.0.10/32")},
		},
		{
			name: "delete one present and one absent",
			do:   func() error { return m.DelAddrs(ctx, "eth0", vips("10.0.0.10/32", "10.0.0.99/24")) },
			wantOps: []Op{
				{Kind: OpDelAddr, Ifname: "eth0", Addr: p("10.0.0.10/32")},
				{Kind: OpDelAddr, Ifname: "eth0", Addr: p("10.0.0.99/24"), Noop: true},
			},
			wantAddrs: []netip.Prefix{p("10.0.0.10/24"), p("fd00::10/64")},
		},
		{
			name: "delete the rest twice",
			do: func() error {
				return errors.Join(m.DelAddrs(ctx, "eth0", vips("10.0.0.10/24", "fd00::10/64")),
					m.DelAddrs(ctx, "eth0", vips("10.0.0.10/24")))
			},
			wantOps: []Op{
				{Kind: OpDelAddr, Ifname: "eth0", Addr: p("10.0.0.10/24")},
				{Kind: OpDelAddr, Ifname: "eth0", Addr: p("fd00::10/64")},
				{Kind: OpDelAddr, Ifname: "eth0", Addr: p("10.0.0.10/24"), Noop: true},
			},
			wantAddrs: nil,
		},
	}
	for _, st := range steps {
		m.ClearOps()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(st.wantOps, m.Ops(), cmpNetip); diff != "" {
			t.Errorf("%s: ops (-want +got):\n%s", st.name, diff)
		}
		if diff := cmp.Diff(st.wantAddrs, m.Addrs("eth0"), cmpNetip); diff != "" {
			t.Errorf("%s: addrs (-want +got):\n%s", st.name, diff)
		}
	}
}

func TestMemoryVIPDevOverridesInterfaceAndDefaultsPrefix(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	in := []config.VIP{
		{Prefix: netip.PrefixFrom(netip.MustParseAddr("10.0.0.10"), -1)},
		{Prefix: netip.MustParsePrefix("10.1.0.10/24"), Dev: "eth1"},
	}
	if err := m.AddAddrs(ctx, "eth0", in); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("10.0.0.10/32")}, m.Addrs("eth0"), cmpNetip); diff != "" {
		t.Errorf("eth0 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("10.1.0.10/24")}, m.Addrs("eth1"), cmpNetip); diff != "" {
		t.Errorf("eth1 (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		ifname string
		addr   string
		want   bool
	}{
		{"eth0", "10.0.0.10", true},
		{"eth1", "10.1.0.10", true},
		{"eth0", "10.1.0.10", false},
		{"eth2", "10.0.0.10", false},
		{"eth0", "::ffff:10.0.0.10", true},
	} {
		got, err := m.HasAddr(tc.ifname, netip.MustParseAddr(tc.addr))
		if err != nil || got != tc.want {
			t.Errorf("HasAddr(%s, %s) = %v, %v; want %v", tc.ifname, tc.addr, got, err, tc.want)
		}
	}
}

func TestMemoryRefusesWhatNetlinkRefusesAndKeepsGoing(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	in := []config.VIP{
		{Prefix: netip.MustParsePrefix("10.0.0.1/24"), Label: "eth0:this-is-too-long"},
		{Prefix: netip.MustParsePrefix("10.0.0.2/24")},
	}
	err := m.AddAddrs(ctx, "eth0", in)
	if err == nil {
		t.Fatal("AddAddrs accepted a 21-character label")
	}
	if diff := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("10.0.0.2/24")}, m.Addrs("eth0"), cmpNetip); diff != "" {
		t.Errorf("the valid VIP after the bad one must still be added (-want +got):\n%s", diff)
	}
}

func TestMemoryFailInjection(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	boom := errors.New("boom")
	m.Fail(OpAddAddr, boom)
	if err := m.AddAddrs(ctx, "eth0", vips("10.0.0.1/24")); !errors.Is(err, boom) {
		t.Fatalf("AddAddrs error = %v, want boom", err)
	}
	if got := m.Addrs("eth0"); len(got) != 0 || len(m.Ops()) != 0 {
		t.Fatalf("a failed add left addrs %v, ops %v", got, m.Ops())
	}
	if err := m.DelAddrs(ctx, "eth0", vips("10.0.0.1/24")); err != nil {
		t.Fatalf("only adds were set to fail, DelAddrs: %v", err)
	}
	m.Fail(OpAddAddr, nil)
	if err := m.AddAddrs(ctx, "eth0", vips("10.0.0.1/24")); err != nil {
		t.Fatalf("after clearing the failure: %v", err)
	}
}

func TestMemoryStopsOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := NewMemory()
	if err := m.AddAddrs(ctx, "eth0", vips("10.0.0.1/24")); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddAddrs error = %v, want context.Canceled", err)
	}
	if got := m.Addrs("eth0"); len(got) != 0 {
		t.Fatalf("added %v under a cancelled context", got)
	}
}

func TestMemoryRoutes(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	p := netip.MustParsePrefix
	routes := []config.Route{
		{Dst: p("192.168.10.0/24")},
		{Dst: p("192.168.20.0/24"), Via: netip.MustParseAddr("10.0.0.1")},
		{Dst: p("192.168.66.0/24"), Type: "blackhole"},
	}
	if err := m.AddRoutes(ctx, "eth0", routes); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRoutes(ctx, "eth0", routes[:1]); err != nil {
		t.Fatal(err)
	}
	if err := m.DelRoutes(ctx, "eth0", routes[1:]); err != nil {
		t.Fatal(err)
	}
	if err := m.DelRoutes(ctx, "eth0", routes[1:2]); err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Kind: OpAddRoute, Ifname: "eth0", Route: p("192.168.10.0/24")},
		{Kind: OpAddRoute, Ifname: "", Route: p("192.168.20.0/24")},
		{Kind: OpAddRoute, Ifname: "", Route: p("192.168.66.0/24")},
		{Kind: OpAddRoute, Ifname: "eth0", Route: p("192.168.10.0/24"), Noop: true},
		{Kind: OpDelRoute, Ifname: "", Route: p("192.168.20.0/24")},
		{Kind: OpDelRoute, Ifname: "", Route: p("192.168.66.0/24")},
		{Kind: OpDelRoute, Ifname: "", Route: p("192.168.20.0/24"), Noop: true},
	}
	if diff := cmp.Diff(want, m.Ops(), cmpNetip); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Prefix{p("192.168.10.0/24")}, m.Routes(), cmpNetip); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if err := m.AddRoutes(ctx, "eth0", []config.Route{{Dst: p("10.0.0.0/8"), Type: "nat"}}); err == nil {
		t.Error("AddRoutes accepted an unknown route type")
	}
}

func TestMemoryAnnounceRecordsOneOpPerVIP(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	vmac := net.HardwareAddr{0, 0, 0x5e, 0, 1, 51}
	in := vips("10.0.0.10/24", "fd00::10/64")
	in[1].Dev = "eth1"
	if err := m.Announce(ctx, "eth0", vmac, in); err != nil {
		t.Fatal(err)
	}
	if err := m.Announce(ctx, "eth0", nil, in[:1]); err != nil {
		t.Fatal(err)
	}
	vmac[5] = 0 // the plane keeps its own copy
	p := netip.MustParsePrefix
	want := []Op{
		{Kind: OpAnnounce, Ifname: "eth0", Addr: p("10.0.0.10/24"), MAC: net.HardwareAddr{0, 0, 0x5e, 0, 1, 51}},
		{Kind: OpAnnounce, Ifname: "eth1", Addr: p("fd00::10/64"), MAC: net.HardwareAddr{0, 0, 0x5e, 0, 1, 51}},
		{Kind: OpAnnounce, Ifname: "eth0", Addr: p("10.0.0.10/24")},
	}
	if diff := cmp.Diff(want, m.Ops(), cmpNetip); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	if err := m.Announce(ctx, "eth0", net.HardwareAddr{1, 2, 3}, in); err == nil {
		t.Error("Announce accepted a 3-byte MAC")
	}
}

// Run with -race: concurrent callers must not corrupt the state.
func TestMemoryIsSafeForConcurrentUse(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				v := vips(fmt.Sprintf("10.%d.%d.1/32", g, i))
				_ = m.AddAddrs(ctx, "eth0", v)
				_, _ = m.HasAddr("eth0", v[0].Prefix.Addr())
				_ = m.Ops()
				if i%2 == 0 {
					_ = m.DelAddrs(ctx, "eth0", v)
				}
			}
		}()
	}
	wg.Wait()
	if got := len(m.Addrs("eth0")); got != 8*25 {
		t.Errorf("%d addresses left, want %d", got, 8*25)
	}
}

func TestMemoryChangesBehindItsBackAreNotInTheTranscript(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	if err := m.AddAddrs(ctx, "eth0", vips("10.0.0.100/32")); err != nil {
		t.Fatal(err)
	}
	m.ClearOps()
	m.RemoveBehindBack("eth0", netip.MustParsePrefix("10.0.0.100/32"))
	m.AddBehindBack("eth0", netip.MustParsePrefix("10.0.0.7/24"))
	m.SetLink("eth0", false)
	if ops := m.Ops(); len(ops) != 0 {
		t.Errorf("transcript %+v, want empty: vipd did none of it", ops)
	}
	if ok, _ := m.HasAddr("eth0", netip.MustParseAddr("10.0.0.100")); ok {
		t.Error("HasAddr still sees the address removed behind the back")
	}
	if ok, _ := m.HasAddr("eth0", netip.MustParseAddr("10.0.0.7")); !ok {
		t.Error("HasAddr does not see the address added behind the back")
	}
	// DelAddrs of the removed VIP is a no-op, as on the kernel.
	if err := m.DelAddrs(ctx, "eth0", vips("10.0.0.100/32")); err != nil {
		t.Fatal(err)
	}
	if ops := m.Ops(); len(ops) != 1 || !ops[0].Noop {
		t.Errorf("transcript %+v, want one no-op delete", ops)
	}
}
