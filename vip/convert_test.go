package vip

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/config"
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint8
		wantErr bool
	}{
		{"", 0, false},
		{"global", 0, false},
		{"universe", 0, false},
		{"SITE", 200, false},
		{"link", 253, false},
		{"host", 254, false},
		{"nowhere", 255, false},
		{"42", 42, false},
		{"0x10", 16, false},
		{"256", 0, true},
		{"-1", 0, true},
		{"galactic", 0, true},
	} {
		got, err := parseScope(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseScope(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestVIPPrefixDefaultsToFullLengthAndKeepsHostBits(t *testing.T) {
	a4 := netip.MustParseAddr("10.0.0.5")
	a6 := netip.MustParseAddr("2001:db8::5")
	for _, tc := range []struct {
		name    string
		in      netip.Prefix
		want    string
		wantErr bool
	}{
		{"IPv4 with a length keeps host bits", netip.MustParsePrefix("10.0.0.5/24"), "10.0.0.5/24", false},
		{"IPv4 without a length is /32", netip.PrefixFrom(a4, -1), "10.0.0.5/32", false},
		{"IPv4 with an impossible length is /32", netip.PrefixFrom(a4, 40), "10.0.0.5/32", false},
		{"IPv6 with a length", netip.MustParsePrefix("2001:db8::5/64"), "2001:db8::5/64", false},
		{"IPv6 without a length is /128", netip.PrefixFrom(a6, -1), "2001:db8::5/128", false},
		{"4-in-6 is unmapped", netip.MustParsePrefix("::ffff:10.0.0.5/120"), "10.0.0.5/24", false},
		{"4-in-6 with a short length is /32", netip.MustParsePrefix("::ffff:10.0.0.5/64"), "10.0.0.5/32", false},
		{"zero prefix", netip.Prefix{}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vipPrefix(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Errorf("vipPrefix(%v) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Errorf("vipPrefix(%v) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestVIPSpecAppliesKeepalivedRules(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name    string
		ifname  string
		vip     config.VIP
		want    addrSpec
		wantErr string
	}{
		{
			name:   "IPv4 on the instance interface, no broadcast unless asked",
			ifname: "eth0",
			vip:    config.VIP{Prefix: p("10.99.0.100/24")},
			want:   addrSpec{Dev: "eth0", Prefix: p("10.99.0.100/24")},
		},
		{
			name:   "IPv4 with dev, brd, scope and label",
			ifname: "eth0",
			vip:    config.VIP{Prefix: p("10.1.0.1/16"), Dev: "eth1", Brd: a("10.1.255.255"), Scope: "link", Label: "eth1:vip"},
			want:   addrSpec{Dev: "eth1", Prefix: p("10.1.0.1/16"), Brd: a("10.1.255.255"), Scope: 253, Label: "eth1:vip"},
		},
		{
			// keepalived passes any label through and so does the kernel;
			// only iproute2 insists on the interface name as a prefix.
			name:   "IPv4 label that does not start with the interface name is kept",
			ifname: "eth0",
			vip:    config.VIP{Prefix: p("10.1.0.1/32"), Label: "web"},
			want:   addrSpec{Dev: "eth0", Prefix: p("10.1.0.1/32"), Label: "web"},
		},
		{
			name:   "IPv4 without a length is /32",
			ifname: "eth0",
			vip:    config.VIP{Prefix: netip.PrefixFrom(a("10.1.0.1"), -1)},
			want:   addrSpec{Dev: "eth0", Prefix: p("10.1.0.1/32")},
		},
		{
			name:   "IPv6 with a length: nodad, preferred",
			ifname: "eth0",
			vip:    config.VIP{Prefix: p("fd00:99::100/64")},
			want:   addrSpec{Dev: "eth0", Prefix: p("fd00:99::100/64"), NoDAD: true},
		},
		{
			name:   "IPv6 without a length: /128, nodad, deprecated",
			ifname: "eth0",
			vip:    config.VIP{Prefix: netip.PrefixFrom(a("fd00:99::100"), -1)},
			want:   addrSpec{Dev: "eth0", Prefix: p("fd00:99::100/128"), NoDAD: true, Deprecated: true},
		},
		{
			name:   "IPv6 ignores scope and label as keepalived does",
			ifname: "eth0",
			vip:    config.VIP{Prefix: p("fd00::1/64"), Scope: "link", Label: "eth0:6"},
			want:   addrSpec{Dev: "eth0", Prefix: p("fd00::1/64"), NoDAD: true},
		},
		{
			name:    "IPv6 with a broadcast is refused",
			ifname:  "eth0",
			vip:     config.VIP{Prefix: p("fd00::1/64"), Brd: a("10.0.0.255")},
			wantErr: "IPv6 has no broadcast",
		},
		{
			name:    "IPv4 with an IPv6 broadcast is refused",
			ifname:  "eth0",
			vip:     config.VIP{Prefix: p("10.0.0.1/24"), Brd: a("fd00::ff")},
			wantErr: "not an IPv4 address",
		},
		{
			name:    "label longer than IFNAMSIZ-1 is refused",
			ifname:  "eth0",
			vip:     config.VIP{Prefix: p("10.0.0.1/24"), Label: "eth0:0123456789ab"},
			wantErr: "longer than 15",
		},
		{
			name:    "unknown scope is refused",
			ifname:  "eth0",
			vip:     config.VIP{Prefix: p("10.0.0.1/24"), Scope: "planet"},
			wantErr: `scope "planet"`,
		},
		{
			name:    "no interface at all",
			vip:     config.VIP{Prefix: p("10.0.0.1/24")},
			wantErr: "no interface",
		},
		{
			name:    "no address",
			ifname:  "eth0",
			vip:     config.VIP{},
			wantErr: "no address",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vipSpec(tc.ifname, tc.vip)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("vipSpec error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }), cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); diff != "" {
				t.Errorf("vipSpec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteSpecAppliesKeepalivedRules(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name    string
		dev     string
		route   config.Route
		want    routeSpec
		wantErr string
	}{
		{
			name:  "device route without dev goes out of the default interface, table main",
			dev:   "eth0",
			route: config.Route{Dst: p("192.168.10.0/24")},
			want:  routeSpec{Dev: "eth0", Dst: p("192.168.10.0/24"), Table: 254, Type: rtnUnicast},
		},
		{
			name:  "gateway route without dev is left to the kernel to resolve",
			dev:   "eth0",
			route: config.Route{Dst: p("192.168.10.0/24"), Via: a("10.0.0.1")},
			want:  routeSpec{Dst: p("192.168.10.0/24"), Via: a("10.0.0.1"), Table: 254, Type: rtnUnicast},
		},
		{
			name:  "every field",
			dev:   "eth0",
			route: config.Route{Dst: p("192.168.10.0/24"), Via: a("10.0.0.1"), Src: a("10.0.0.100"), Dev: "eth1", Metric: 50, Table: 100, Scope: "link", Onlink: true},
			want:  routeSpec{Dev: "eth1", Dst: p("192.168.10.0/24"), Via: a("10.0.0.1"), Src: a("10.0.0.100"), Metric: 50, Table: 100, Scope: 253, ScopeSet: true, Type: rtnUnicast, Onlink: true},
		},
		{
			name:  "host bits of the destination are cleared",
			dev:   "eth0",
			route: config.Route{Dst: p("192.168.10.7/24")},
			want:  routeSpec{Dev: "eth0", Dst: p("192.168.10.0/24"), Table: 254, Type: rtnUnicast},
		},
		{
			name:  "blackhole takes no device",
			dev:   "eth0",
			route: config.Route{Dst: p("192.168.66.0/24"), Type: "blackhole", Table: 300},
			want:  routeSpec{Dst: p("192.168.66.0/24"), Table: 300, Type: rtnBlackhole},
		},
		{
			name:  "IPv6 default route via a gateway",
			dev:   "eth0",
			route: config.Route{Dst: p("::/0"), Via: a("fd00::1"), Dev: "eth0"},
			want:  routeSpec{Dev: "eth0", Dst: p("::/0"), Via: a("fd00::1"), Table: 254, Type: rtnUnicast},
		},
		{name: "no destination", dev: "eth0", route: config.Route{}, wantErr: "no destination"},
		{name: "unknown type", dev: "eth0", route: config.Route{Dst: p("10.0.0.0/8"), Type: "nat"}, wantErr: `type "nat"`},
		{name: "blackhole with a device", dev: "eth0", route: config.Route{Dst: p("10.0.0.0/8"), Type: "blackhole", Dev: "eth0"}, wantErr: "takes no dev"},
		{name: "unreachable with a gateway", dev: "eth0", route: config.Route{Dst: p("10.0.0.0/8"), Type: "unreachable", Via: a("10.0.0.1")}, wantErr: "takes no dev"},
		{name: "gateway of the other family", dev: "eth0", route: config.Route{Dst: p("10.0.0.0/8"), Via: a("fd00::1")}, wantErr: "another address family"},
		{name: "source of the other family", dev: "eth0", route: config.Route{Dst: p("fd00:1::/64"), Src: a("10.0.0.1")}, wantErr: "another address family"},
		{name: "no device anywhere", route: config.Route{Dst: p("10.0.0.0/8")}, wantErr: "no default interface"},
		{name: "negative metric", dev: "eth0", route: config.Route{Dst: p("10.0.0.0/8"), Metric: -1}, wantErr: "metric"},
		{name: "negative table", dev: "eth0", route: config.Route{Dst: p("10.0.0.0/8"), Table: -1}, wantErr: "table"},
		{name: "bad scope", dev: "eth0", route: config.Route{Dst: p("10.0.0.0/8"), Scope: "x"}, wantErr: `scope "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := routeSpecOf(tc.dev, tc.route)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("routeSpecOf error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }), cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); diff != "" {
				t.Errorf("routeSpecOf (-want +got):\n%s", diff)
			}
		})
	}
}
