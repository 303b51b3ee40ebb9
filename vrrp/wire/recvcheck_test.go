package wire

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckRecv(t *testing.T) {
	peer := netip.MustParseAddr("10.99.0.2")
	self := netip.MustParseAddr("10.99.0.1")
	v2 := func() Advert {
		return Advert{Version: 2, VRID: 51, Priority: 102, AuthType: AuthPass, AuthData: codecPass("secret1"), Interval: time.Second, Addrs: mustAddrs("10.99.0.100", "10.99.0.101")}
	}
	v2e := func() RecvExpect {
		return RecvExpect{Version: 2, AuthType: AuthPass, AuthPass: "secret1", Interval: time.Second, OwnAddrs: []netip.Addr{self}, VIPs: mustAddrs("10.99.0.100", "10.99.0.101")}
	}
	v3 := func() Advert {
		return Advert{Version: 3, VRID: 52, Priority: 102, Interval: 100 * time.Millisecond, Addrs: mustAddrs("10.99.0.102")}
	}
	v3e := func() RecvExpect {
		return RecvExpect{Version: 3, Interval: 100 * time.Millisecond, OwnAddrs: []netip.Addr{self}, VIPs: mustAddrs("10.99.0.102")}
	}
	ucMeta := RecvMeta{Src: peer, Dst: self, TTL: 255}
	ucExpect := func() RecvExpect {
		e := v2e()
		e.Unicast, e.UnicastPeers, e.CheckUnicastSrc = true, []netip.Addr{peer}, true
		return e
	}
	mcMeta := RecvMeta{Src: peer, Dst: MulticastGroup4, TTL: 255}

	tests := []struct {
		name      string
		a         Advert
		m         RecvMeta
		e         RecvExpect
		drop      DropReason // "" accepts
		inDetail  string     // the drop detail mentions this
		addrsDiff bool
		intDiff   bool
	}{
		{name: "v2 PASS advert from the peer is accepted", a: v2(), m: mcMeta, e: v2e()},
		{name: "v3 advert from the peer is accepted", a: v3(), m: mcMeta, e: v3e()},
		{name: "unknown TTL is not held against the advert", a: v3(), m: RecvMeta{Src: peer, Dst: MulticastGroup4, TTL: -1}, e: v3e()},
		{name: "unknown destination skips the multicast/unicast test", a: v3(), m: RecvMeta{Src: peer, TTL: 255}, e: v3e()},
		{name: "our own advert is dropped", a: v3(), m: RecvMeta{Src: self, Dst: MulticastGroup4, TTL: 255}, e: v3e(), drop: DropOwnAdvert, inDetail: "10.99.0.1"},
		{
			name: "our own advert is recognised through an IPv6 zone",
			a:    Advert{Version: 3, Interval: time.Second, Addrs: mustAddrs("fd00::1")},
			m:    RecvMeta{Src: netip.MustParseAddr("fe80::1%eth0"), Dst: MulticastGroup6, TTL: 255},
			e:    RecvExpect{Version: 3, Interval: time.Second, OwnAddrs: mustAddrs("fe80::1"), VIPs: mustAddrs("fd00::1")},
			drop: DropOwnAdvert,
		},
		{name: "multicast advert with TTL 64 is dropped", a: v3(), m: RecvMeta{Src: peer, Dst: MulticastGroup4, TTL: 64}, e: v3e(), drop: DropBadTTL, inDetail: "64"},
		{name: "multicast advert with TTL 254 is dropped", a: v2(), m: RecvMeta{Src: peer, Dst: MulticastGroup4, TTL: 254}, e: v2e(), drop: DropBadTTL},
		{name: "unicast advert with a routed TTL is accepted like keepalived does", a: v2(), m: RecvMeta{Src: peer, Dst: self, TTL: 61}, e: ucExpect()},
		{name: "v3 advert on a v2 instance is dropped", a: v3(), m: mcMeta, e: func() RecvExpect { e := v3e(); e.Version = 2; return e }(), drop: DropBadVersion},
		{name: "v2 advert on a v3 instance is dropped", a: v2(), m: mcMeta, e: func() RecvExpect { e := v2e(); e.Version = 3; return e }(), drop: DropBadVersion},
		{name: "v2 advert without auth on a PASS instance is dropped", a: func() Advert { a := v2(); a.AuthType, a.AuthData = AuthNone, [8]byte{}; return a }(), m: mcMeta, e: v2e(), drop: DropAuthType},
		{name: "v2 PASS advert on an instance without auth is dropped", a: v2(), m: mcMeta, e: func() RecvExpect { e := v2e(); e.AuthType, e.AuthPass = AuthNone, ""; return e }(), drop: DropAuthType},
		{name: "v2 AH advert is dropped", a: func() Advert { a := v2(); a.AuthType = AuthAH; return a }(), m: mcMeta, e: v2e(), drop: DropAuthType},
		{name: "wrong password is dropped", a: v2(), m: mcMeta, e: func() RecvExpect { e := v2e(); e.AuthPass = "secret2"; return e }(), drop: DropAuthPass},
		{name: "a password prefix is not enough", a: v2(), m: mcMeta, e: func() RecvExpect { e := v2e(); e.AuthPass = "secret"; return e }(), drop: DropAuthPass},
		{name: "the password does not leak into the detail", a: v2(), m: mcMeta, e: func() RecvExpect { e := v2e(); e.AuthPass = "hunter22"; return e }(), drop: DropAuthPass, inDetail: "10.99.0.2"},
		{
			name: "only the first 8 bytes of a long password count, as in keepalived",
			a:    func() Advert { a := v2(); a.AuthData = codecPass("longpass"); return a }(),
			m:    mcMeta, e: func() RecvExpect { e := v2e(); e.AuthPass = "longpassword"; return e }(),
		},
		{
			name: "without auth the trailer is ignored",
			a:    func() Advert { a := v2(); a.AuthType, a.AuthData = AuthNone, codecPass("junk"); return a }(),
			m:    mcMeta, e: func() RecvExpect { e := v2e(); e.AuthType, e.AuthPass = AuthNone, ""; return e }(),
		},
		{name: "v2 interval mismatch is dropped", a: func() Advert { a := v2(); a.Interval = 2 * time.Second; return a }(), m: mcMeta, e: v2e(), drop: DropIntervalMismatch, inDetail: "ours is 1s"},
		{name: "v3 interval mismatch is accepted and flagged", a: func() Advert { a := v3(); a.Interval = time.Second; return a }(), m: mcMeta, e: v3e(), intDiff: true},
		{name: "multicast advert on a unicast instance is dropped", a: v2(), m: mcMeta, e: ucExpect(), drop: DropMcastUnicastMismatch, inDetail: "unicast instance"},
		{name: "unicast advert on a multicast instance is dropped", a: v2(), m: ucMeta, e: v2e(), drop: DropMcastUnicastMismatch, inDetail: "multicast instance"},
		{name: "unicast advert from a peer is accepted", a: v2(), m: ucMeta, e: ucExpect()},
		{name: "unicast advert from a stranger is dropped with check_unicast_src", a: v2(), m: RecvMeta{Src: netip.MustParseAddr("10.99.0.7"), Dst: self, TTL: 255}, e: ucExpect(), drop: DropUnicastSrc, inDetail: "10.99.0.7"},
		{
			name: "unicast advert from a stranger is accepted without check_unicast_src",
			a:    v2(), m: RecvMeta{Src: netip.MustParseAddr("10.99.0.7"), Dst: self, TTL: 255},
			e: func() RecvExpect { e := ucExpect(); e.CheckUnicastSrc = false; return e }(),
		},
		{
			name: "IPv6 addresses on an IPv4 instance are dropped",
			a:    Advert{Version: 3, Interval: 100 * time.Millisecond, Addrs: mustAddrs("fd00::1")},
			m:    mcMeta, e: v3e(), drop: DropFamily,
		},
		{name: "a missing VIP is accepted and flagged", a: func() Advert { a := v2(); a.Addrs = a.Addrs[:1]; return a }(), m: mcMeta, e: v2e(), addrsDiff: true},
		{name: "an extra VIP is accepted and flagged", a: func() Advert { a := v3(); a.Addrs = mustAddrs("10.99.0.102", "10.99.0.103"); return a }(), m: mcMeta, e: v3e(), addrsDiff: true},
		{name: "another VIP of the same count is accepted and flagged", a: func() Advert { a := v3(); a.Addrs = mustAddrs("10.99.0.109"); return a }(), m: mcMeta, e: v3e(), addrsDiff: true},
		{name: "the same VIPs in another order match", a: func() Advert { a := v2(); a.Addrs = mustAddrs("10.99.0.101", "10.99.0.100"); return a }(), m: mcMeta, e: v2e()},
		{name: "an advert without addresses on an instance with VIPs is flagged", a: func() Advert { a := v3(); a.Addrs = nil; return a }(), m: mcMeta, e: v3e(), addrsDiff: true},
		{
			name: "a v3 advert can both flag the interval and the list",
			a:    func() Advert { a := v3(); a.Interval, a.Addrs = time.Second, nil; return a }(),
			m:    mcMeta, e: v3e(), addrsDiff: true, intDiff: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			r := CheckRecv(&a, tc.m, tc.e)
			switch {
			case tc.drop == "" && r.Drop != nil:
				t.Fatalf("dropped: %v, want accepted", r.Drop)
			case tc.drop != "" && r.Drop == nil:
				t.Fatalf("accepted (%+v), want drop %q", r, tc.drop)
			case tc.drop != "" && r.Drop.Reason != tc.drop:
				t.Fatalf("dropped for %q (%v), want %q", r.Drop.Reason, r.Drop, tc.drop)
			}
			if r.Drop != nil {
				if !strings.Contains(r.Drop.Detail, tc.inDetail) {
					t.Errorf("detail %q does not mention %q", r.Drop.Detail, tc.inDetail)
				}
				if strings.Contains(r.Drop.Error(), tc.e.AuthPass) && tc.e.AuthPass != "" {
					t.Errorf("drop message %q reveals our password", r.Drop.Error())
				}
				return
			}
			if r.AddrListDiffers != tc.addrsDiff {
				t.Errorf("AddrListDiffers = %v, want %v", r.AddrListDiffers, tc.addrsDiff)
			}
			if r.IntervalMismatch != tc.intDiff {
				t.Errorf("IntervalMismatch = %v, want %v", r.IntervalMismatch, tc.intDiff)
			}
		})
	}
}

func TestCheckRecvTakesOnlyTheInstancesGroup(t *testing.T) {
	src := netip.MustParseAddr("10.0.0.2")
	g88 := netip.MustParseAddr("224.0.0.88")
	adv := &Advert{Version: 3, VRID: 51, Priority: 100, Interval: 100 * time.Millisecond,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	e := RecvExpect{Version: 3, Interval: 100 * time.Millisecond, VIPs: adv.Addrs}
	tests := []struct {
		name  string
		group netip.Addr
		dst   netip.Addr
		drop  bool
	}{
		{"our group", g88, g88, false},
		{"the standard group, ours is 224.0.0.88", g88, MulticastGroup4, true},
		{"another group, ours is standard", MulticastGroup4, g88, true},
		{"no group configured: any multicast", netip.Addr{}, g88, false},
		{"unknown destination", g88, netip.Addr{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e
			e.Group = tc.group
			r := CheckRecv(adv, RecvMeta{Src: src, Dst: tc.dst, TTL: 255}, e)
			switch {
			case tc.drop && (r.Drop == nil || r.Drop.Reason != DropMcastUnicastMismatch || !strings.Contains(r.Drop.Detail, "our group")):
				t.Errorf("got %+v, want mcast_unicast_mismatch naming our group", r.Drop)
			case !tc.drop && r.Drop != nil:
				t.Errorf("dropped: %v", r.Drop)
			}
		})
	}
}
