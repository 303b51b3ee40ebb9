//go:build linux

package vip

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func mustIPNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	if v4 := ip.To4(); v4 != nil {
		n.IP = v4
	}
	return n
}

func TestToNetlinkAddr(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name string
		spec addrSpec
		del  bool
		want *netlink.Addr
	}{
		{
			name: "IPv4 without brd sends no broadcast (zero tells netlink not to compute one)",
			spec: addrSpec{Dev: "eth0", Prefix: p("10.99.0.100/24")},
			want: &netlink.Addr{IPNet: mustIPNet("10.99.0.100/24"), Broadcast: net.IP{0, 0, 0, 0}},
		},
		{
			name: "IPv4 with brd, scope and label",
			spec: addrSpec{Dev: "eth0", Prefix: p("10.99.0.100/24"), Brd: netip.MustParseAddr("10.99.0.255"), Scope: scopeLink, Label: "eth0:1"},
			want: &netlink.Addr{IPNet: mustIPNet("10.99.0.100/24"), Broadcast: net.IP{10, 99, 0, 255}, Scope: int(scopeLink), Label: "eth0:1"},
		},
		{
			name: "IPv6 /64 is nodad and preferred forever (no cacheinfo)",
			spec: addrSpec{Dev: "eth0", Prefix: p("fd00:99::100/64"), NoDAD: true},
			want: &netlink.Addr{IPNet: mustIPNet("fd00:99::100/64"), Flags: unix.IFA_F_NODAD},
		},
		{
			name: "IPv6 /128 is nodad and deprecated (preferred_lft 0, valid forever)",
			spec: addrSpec{Dev: "eth0", Prefix: p("fd00:99::100/128"), NoDAD: true, Deprecated: true},
			want: &netlink.Addr{IPNet: mustIPNet("fd00:99::100/128"), Flags: unix.IFA_F_NODAD, PreferedLft: 0, ValidLft: 0xFFFFFFFF},
		},
		{
			name: "delete sends address and length only",
			spec: addrSpec{Dev: "eth0", Prefix: p("10.99.0.100/24"), Brd: netip.MustParseAddr("10.99.0.255"), Scope: scopeHost, Label: "eth0:1"},
			del:  true,
			want: &netlink.Addr{IPNet: mustIPNet("10.99.0.100/24"), Broadcast: net.IP{0, 0, 0, 0}},
		},
		{
			name: "IPv6 delete drops flags and lifetimes",
			spec: addrSpec{Dev: "eth0", Prefix: p("fd00:99::100/128"), NoDAD: true, Deprecated: true},
			del:  true,
			want: &netlink.Addr{IPNet: mustIPNet("fd00:99::100/128")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *netlink.Addr
			if tc.del {
				got = toNetlinkAddrDel(tc.spec)
			} else {
				got = toNetlinkAddr(tc.spec)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestToNetlinkRoute(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		spec routeSpec
		idx  int
		del  bool
		want *netlink.Route
	}{
		{
			name: "device route: protocol keepalived, table main, scope global",
			spec: routeSpec{Dev: "eth0", Dst: p("192.168.10.0/24"), Table: 254, Type: rtnUnicast},
			idx:  3,
			want: &netlink.Route{LinkIndex: 3, Dst: mustIPNet("192.168.10.0/24"), Protocol: 18, Table: 254, Type: rtnUnicast},
		},
		{
			name: "gateway, source, metric, onlink",
			spec: routeSpec{Dst: p("192.168.10.0/24"), Via: a("10.0.0.1"), Src: a("10.0.0.100"), Metric: 50, Table: 100, Type: rtnUnicast, Onlink: true},
			want: &netlink.Route{Dst: mustIPNet("192.168.10.0/24"), Gw: net.IP{10, 0, 0, 1}, Src: net.IP{10, 0, 0, 100}, Priority: 50, Protocol: 18, Table: 100, Type: rtnUnicast, Flags: unix.RTNH_F_ONLINK},
		},
		{
			name: "delete without a configured scope matches any scope",
			spec: routeSpec{Dev: "eth0", Dst: p("192.168.10.0/24"), Table: 254, Type: rtnUnicast},
			idx:  3,
			del:  true,
			want: &netlink.Route{LinkIndex: 3, Dst: mustIPNet("192.168.10.0/24"), Protocol: 18, Table: 254, Type: rtnUnicast, Scope: netlink.SCOPE_NOWHERE},
		},
		{
			name: "delete with a configured scope keeps it",
			spec: routeSpec{Dev: "eth0", Dst: p("192.168.10.0/24"), Table: 254, Type: rtnUnicast, Scope: scopeLink, ScopeSet: true},
			idx:  3,
			del:  true,
			want: &netlink.Route{LinkIndex: 3, Dst: mustIPNet("192.168.10.0/24"), Protocol: 18, Table: 254, Type: rtnUnicast, Scope: netlink.SCOPE_LINK},
		},
		{
			name: "blackhole in a big table",
			spec: routeSpec{Dst: p("fd00:66::/64"), Table: 1000, Type: rtnBlackhole},
			want: &netlink.Route{Dst: mustIPNet("fd00:66::/64"), Protocol: 18, Table: 1000, Type: rtnBlackhole},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := toNetlinkRoute(tc.spec, tc.idx, tc.del)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
