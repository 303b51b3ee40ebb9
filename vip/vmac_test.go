package vip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVirtualMACIsTheRFC5798AddressOfTheVRIDAndFamily(t *testing.T) {
	for _, c := range []struct {
		vrid int
		v6   bool
		want string
	}{
		{1, false, "00:00:5e:00:01:01"},
		{42, false, "00:00:5e:00:01:2a"},
		{255, false, "00:00:5e:00:01:ff"},
		{1, true, "00:00:5e:00:02:01"},
		{157, true, "00:00:5e:00:02:9d"},
		{0, false, ""},
		{256, true, ""},
		{-1, false, ""},
	} {
		got := VirtualMAC(c.vrid, c.v6)
		if c.want == "" {
			if got != nil {
				t.Errorf("VirtualMAC(%d, %v) = %s, want nil for a VRID outside 1..255", c.vrid, c.v6, got)
			}
			continue
		}
		if got.String() != c.want {
			t.Errorf("VirtualMAC(%d, %v) = %s, want %s", c.vrid, c.v6, got, c.want)
		}
	}
}

func TestDefaultVMACNameIsKeepalivedsVrrpDotVRID(t *testing.T) {
	for vrid, want := range map[int]string{1: "vrrp.1", 51: "vrrp.51", 255: "vrrp.255"} {
		if got := DefaultVMACName(vrid); got != want {
			t.Errorf("DefaultVMACName(%d) = %q, want %q", vrid, got, want)
		}
	}
}

func TestEUI64LinkLocalMatchesTheKernelsAddress(t *testing.T) {
	// The kernel's own link-local address for 52:54:00:12:34:56.
	got, ok := eui64LinkLocal(net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56})
	if want := netip.MustParseAddr("fe80::5054:ff:fe12:3456"); !ok || got != want {
		t.Errorf("eui64LinkLocal = %v, %v; want %v", got, ok, want)
	}
	if _, ok := eui64LinkLocal(net.HardwareAddr{1, 2, 3}); ok {
		t.Error("eui64LinkLocal accepted a 3-byte address")
	}
}

func TestEnsureVMACRejectsBadArguments(t *testing.T) {
	for _, c := range []struct {
		name, base, vmac string
		vrid             int
		want             string
	}{
		{"VRID 0", "eth0", "vrrp.0", 0, "virtual_router_id 0"},
		{"VRID 256", "eth0", "vrrp.256", 256, "virtual_router_id 256"},
		{"empty name", "eth0", "", 1, "VMAC interface name is empty"},
		{"name too long", "eth0", "vrrp.0123456789ab", 1, "longer than 15"},
		{"slash", "eth0", "vrrp/1", 1, "contains"},
		{"colon", "eth0", "vrrp:1", 1, "contains"},
		{"space", "eth0", "vrrp 1", 1, "contains"},
		{"dot dot", "eth0", "..", 1, "not allowed"},
		{"empty base", "", "vrrp.1", 1, "base interface name is empty"},
		{"base with slash", "../x", "vrrp.1", 1, "base interface name"},
		{"its own base", "vrrp.1", "vrrp.1", 1, "its own base"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMemory()
			_, _, err := m.EnsureVMAC(context.Background(), c.base, c.vmac, c.vrid, false)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("EnsureVMAC(%q, %q, %d) error %v, want one containing %q", c.base, c.vmac, c.vrid, err, c.want)
			}
			if ops := m.Ops(); len(ops) != 0 {
				t.Errorf("a refused EnsureVMAC was recorded: %+v", ops)
			}
		})
	}
}

func TestMemoryVMACLifecycleIsIdempotentAndTranscribed(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	mac4 := VirtualMAC(42, false)
	mac6 := VirtualMAC(42, true)
	type vmacState struct {
		Base  string
		MAC   string
		Index int
		OK    bool
	}
	state := func() vmacState {
		b, mac, idx, ok := m.VMAC("vrrp.42")
		return vmacState{b, mac.String(), idx, ok}
	}
	steps := []struct {
		name      string
		do        func() (int, error)
		wantIndex int
		wantOps   []Op
		wantState vmacState
		wantAddrs int // addresses on vrrp.42 afterwards
	}{
		{
			name: "create",
			do: func() (int, error) {
				idx, _, err := m.EnsureVMAC(ctx, "eth0", "vrrp.42", 42, false)
				if err == nil {
					err = m.AddAddrs(ctx, "vrrp.42", vips("10.0.0.42/32"))
				}
				return idx, err
			},
			wantIndex: 1000,
			wantOps: []Op{
				{Kind: OpAddVMAC, Ifname: "vrrp.42", Base: "eth0", MAC: mac4},
				{Kind: OpAddAddr, Ifname: "vrrp.42", Addr: netip.MustParsePrefix("10.0.0.42/32")},
			},
			wantState: vmacState{"eth0", mac4.String(), 1000, true},
			wantAddrs: 1,
		},
		{
			name:      "ensure again: nothing to do",
			do:        func() (int, error) { idx, _, err := m.EnsureVMAC(ctx, "eth0", "vrrp.42", 42, false); return idx, err },
			wantIndex: 1000,
			wantOps:   []Op{{Kind: OpAddVMAC, Ifname: "vrrp.42", Base: "eth0", MAC: mac4, Noop: true}},
			wantState: vmacState{"eth0", mac4.String(), 1000, true},
			wantAddrs: 1,
		},
		{
			name:      "another family changes the MAC in place",
			do:        func() (int, error) { idx, _, err := m.EnsureVMAC(ctx, "eth0", "vrrp.42", 42, true); return idx, err },
			wantIndex: 1000,
			wantOps:   []Op{{Kind: OpAddVMAC, Ifname: "vrrp.42", Base: "eth0", MAC: mac6}},
			wantState: vmacState{"eth0", mac6.String(), 1000, true},
			wantAddrs: 1,
		},
		{
			name:      "another base re-creates it: new index, addresses gone",
			do:        func() (int, error) { idx, _, err := m.EnsureVMAC(ctx, "eth1", "vrrp.42", 42, true); return idx, err },
			wantIndex: 1001,
			wantOps:   []Op{{Kind: OpAddVMAC, Ifname: "vrrp.42", Base: "eth1", MAC: mac6}},
			wantState: vmacState{"eth1", mac6.String(), 1001, true},
			wantAddrs: 0,
		},
		{
			name: "remove takes its addresses with it",
			do: func() (int, error) {
				if err := m.AddAddrs(ctx, "vrrp.42", vips("fd00::42/128")); err != nil {
					return 0, err
				}
				m.ClearOps()
				return 0, m.RemoveVMAC(ctx, "vrrp.42")
			},
			wantOps:   []Op{{Kind: OpDelVMAC, Ifname: "vrrp.42"}},
			wantState: vmacState{},
		},
		{
			name:      "removing an absent VMAC is no error",
			do:        func() (int, error) { return 0, m.RemoveVMAC(ctx, "vrrp.42") },
			wantOps:   []Op{{Kind: OpDelVMAC, Ifname: "vrrp.42", Noop: true}},
			wantState: vmacState{},
		},
	}
	for _, s := range steps {
		m.ClearOps()
		idx, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if idx != s.wantIndex {
			t.Errorf("%s: ifindex %d, want %d", s.name, idx, s.wantIndex)
		}
		if diff := cmp.Diff(s.wantOps, m.Ops(), cmpNetip); diff != "" {
			t.Errorf("%s: ops (-want +got):\n%s", s.name, diff)
		}
		if got := state(); got != s.wantState {
			t.Errorf("%s: VMAC state %+v, want %+v", s.name, got, s.wantState)
		}
		if got := len(m.Addrs("vrrp.42")); got != s.wantAddrs {
			t.Errorf("%s: %d addresses on vrrp.42, want %d", s.name, got, s.wantAddrs)
		}
	}
}

func TestMemoryVMACReturnsACopyOfTheMAC(t *testing.T) {
	m := NewMemory()
	_, mac, err := m.EnsureVMAC(context.Background(), "eth0", "vrrp.1", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	mac[5] = 0xee
	if _, got, _, _ := m.VMAC("vrrp.1"); got.String() != "00:00:5e:00:01:01" {
		t.Errorf("changing the returned MAC changed the plane's: %s", got)
	}
}

func TestMemoryVMACFailuresAndCancellationAreNotRecorded(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name string
		prep func(m *Memory) context.Context
		do   func(ctx context.Context, m *Memory) error
		want error
	}{
		{
			name: "injected EnsureVMAC failure",
			prep: func(m *Memory) context.Context { m.Fail(OpAddVMAC, boom); return context.Background() },
			do: func(ctx context.Context, m *Memory) error {
				_, _, err := m.EnsureVMAC(ctx, "eth0", "vrrp.1", 1, false)
				return err
			},
			want: boom,
		},
		{
			name: "injected RemoveVMAC failure",
			prep: func(m *Memory) context.Context { m.Fail(OpDelVMAC, boom); return context.Background() },
			do:   func(ctx context.Context, m *Memory) error { return m.RemoveVMAC(ctx, "vrrp.1") },
			want: boom,
		},
		{
			name: "cancelled context",
			prep: func(*Memory) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			do: func(ctx context.Context, m *Memory) error {
				_, _, err := m.EnsureVMAC(ctx, "eth0", "vrrp.1", 1, false)
				return err
			},
			want: context.Canceled,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMemory()
			ctx := c.prep(m)
			if err := c.do(ctx, m); !errors.Is(err, c.want) {
				t.Errorf("error %v, want %v", err, c.want)
			}
			if ops := m.Ops(); len(ops) != 0 {
				t.Errorf("failed operation recorded: %+v", ops)
			}
			if _, _, _, ok := m.VMAC("vrrp.1"); ok {
				t.Error("failed EnsureVMAC left a VMAC behind")
			}
		})
	}
}
