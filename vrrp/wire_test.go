package vrrp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vrrp/wire"
)

// recConn records what the transport and the instances do with a socket:
// sends (destination and TTL; -1: Send, the socket's default) and group
// joins and leaves. It implements TTLSender and GroupJoiner as *Conn does.
type recConn struct {
	mu     sync.Mutex
	sends  []recSend
	n      int // sends since the last reset, recorded or not
	joins  []netip.Addr
	leaves []netip.Addr
	closed chan struct{}
	once   sync.Once
}

type recSend struct {
	dst netip.Addr
	ttl int
}

func newRecConn() *recConn {
	return &recConn{closed: make(chan struct{}), sends: make([]recSend, 0, 64)}
}

func (c *recConn) record(dst netip.Addr, ttl int) {
	c.mu.Lock()
	if len(c.sends) < cap(c.sends) {
		c.sends = append(c.sends, recSend{dst, ttl})
	}
	c.n++
	c.mu.Unlock()
}

func (c *recConn) Send(_ []byte, _, dst netip.Addr) error { c.record(dst, -1); return nil }
func (c *recConn) SendTTL(_ []byte, _, dst netip.Addr, ttl int) error {
	c.record(dst, ttl)
	return nil
}
func (c *recConn) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.joins = append(c.joins, g)
	return nil
}
func (c *recConn) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaves = append(c.leaves, g)
	return nil
}
func (c *recConn) Recv([]byte) ([]byte, wire.RecvMeta, error) {
	<-c.closed
	return nil, wire.RecvMeta{}, net.ErrClosed
}
func (c *recConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func (c *recConn) takeSends() []recSend {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]recSend(nil), c.sends...)
	c.sends = c.sends[:0]
	return out
}

func (c *recConn) joinsLeaves() (joins, leaves []netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]netip.Addr(nil), c.joins...), append([]netip.Addr(nil), c.leaves...)
}

func wireInstance(name string, vrid int, mutate func(*config.Instance)) *Instance {
	ic := &config.Instance{Name: name, Interface: "eth0", VRID: vrid, Priority: 100, Version: 3,
		AdvertInt: config.Duration(100 * time.Millisecond),
		VIPs:      []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}}
	if mutate != nil {
		mutate(ic)
	}
	return NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr("10.0.0.1"), Plane: &fakePlane{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func TestAdvertGoesToTheConfiguredMulticastGroup(t *testing.T) {
	g88 := netip.MustParseAddr("224.0.0.88")
	v6VIP := []config.VIP{{Prefix: netip.MustParsePrefix("fe80::100/64")}}
	tests := []struct {
		name   string
		mutate func(*config.Instance)
		want   netip.Addr
	}{
		{"no group: 224.0.0.18", nil, wire.MulticastGroup4},
		{"mcast_dst_ip / vrrp_mcast_group4", func(c *config.Instance) { c.McastGroup = g88 }, g88},
		{"IPv6 no group: ff02::12", func(c *config.Instance) { c.VIPs = v6VIP }, wire.MulticastGroup6},
		{"IPv6 group", func(c *config.Instance) { c.VIPs = v6VIP; c.McastGroup = netip.MustParseAddr("ff02::88") },
			netip.MustParseAddr("ff02::88")},
		// What Normalize would never leave: a group of the other family
		// or not multicast falls back to the standard group.
		{"other family: standard", func(c *config.Instance) { c.McastGroup = netip.MustParseAddr("ff02::88") }, wire.MulticastGroup4},
		{"not multicast: standard", func(c *config.Instance) { c.McastGroup = netip.MustParseAddr("10.9.9.9") }, wire.MulticastGroup4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := newRecConn()
			tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
			defer tr.Close()
			inst := wireInstance("VI_1", 51, tc.mutate)
			if inst.v6 {
				inst.primary = netip.MustParseAddr("fe80::1")
			}
			if err := tr.Attach(inst); err != nil {
				t.Fatal(err)
			}
			inst.sendAdvert(100)
			got := conn.takeSends()
			if len(got) != 1 || got[0].dst != tc.want || got[0].ttl != -1 {
				t.Fatalf("sends %v, want one to %s with the socket's TTL", got, tc.want)
			}
			if inst.expect.Group != tc.want {
				t.Errorf("receive check group %s, want %s", inst.expect.Group, tc.want)
			}
			if g := tr.Groups("eth0", inst.v6); g[tc.want] != 1 || len(g) != 1 {
				t.Errorf("groups joined %v, want %s once", g, tc.want)
			}
		})
	}
}

func TestSharedSocketJoinsEachGroupOnceAndLeavesWithItsLastUser(t *testing.T) {
	g88, g99 := netip.MustParseAddr("224.0.0.88"), netip.MustParseAddr("224.0.0.99")
	conn := newRecConn()
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	defer tr.Close()
	group := func(g netip.Addr) func(*config.Instance) { return func(c *config.Instance) { c.McastGroup = g } }
	a := wireInstance("VI_A", 1, group(g88))
	b := wireInstance("VI_B", 2, group(g88))
	c := wireInstance("VI_C", 3, nil) // 224.0.0.18
	u := wireInstance("VI_U", 4, func(c *config.Instance) {
		c.UnicastPeers = []netip.Addr{netip.MustParseAddr("10.0.0.2")}
		c.McastGroup = g99 // what Normalize copies from vrrp_mcast_group4: not joined
	})
	keep := wireInstance("VI_K", 5, group(g99)) // keeps the socket open at the end
	for _, inst := range []*Instance{keep, a, b, c, u} {
		if err := tr.Attach(inst); err != nil {
			t.Fatal(err)
		}
	}
	want := map[netip.Addr]int{g88: 2, wire.MulticastGroup4: 1, g99: 1}
	if got := tr.Groups("eth0", false); !sameGroups(got, want) {
		t.Fatalf("groups %v, want %v (a unicast instance joins none)", got, want)
	}
	tr.Detach(a)
	if joins, leaves := conn.joinsLeaves(); len(leaves) != 0 {
		t.Fatalf("left %v while VI_B still listens (joins %v)", leaves, joins)
	}
	tr.Detach(b)
	tr.Detach(c)
	tr.Detach(u)
	joins, leaves := conn.joinsLeaves()
	if !sameAddrs(joins, []netip.Addr{g99, g88, wire.MulticastGroup4}) {
		t.Errorf("joins %v, want each group once", joins)
	}
	if !sameAddrs(leaves, []netip.Addr{g88, wire.MulticastGroup4}) {
		t.Errorf("leaves %v, want 224.0.0.88 and 224.0.0.18 once their last user left", leaves)
	}
	if got := tr.Groups("eth0", false); !sameGroups(got, map[netip.Addr]int{g99: 1}) {
		t.Errorf("groups %v, want only VI_K's", got)
	}
}

func TestLiveUpdateOfTheGroupMovesTheMembership(t *testing.T) {
	g88, g99 := netip.MustParseAddr("224.0.0.88"), netip.MustParseAddr("224.0.0.99")
	w := &segment{}
	conn := w.open()
	rc := newRecConn()
	joiner := &joinSpy{wireConn: conn, rec: rc}
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return joiner, nil })
	n := &testNode{plane: &fakePlane{}, done: make(chan struct{}), tr: tr}
	ic := &config.Instance{Name: "VI_1", Interface: "eth0", VRID: 51, Priority: 100, Version: 3,
		AdvertInt: config.Duration(20 * time.Millisecond), McastGroup: g88,
		VIPs: []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}}
	n.inst = NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr("10.0.0.1"), Plane: n.plane,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := tr.Attach(n.inst); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.done); n.inst.Run(ctx) }()
	t.Cleanup(n.stop)

	c2 := *ic
	c2.McastGroup = g99
	if err := n.inst.Update(ctx, &c2, netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if got := tr.Groups("eth0", false); !sameGroups(got, map[netip.Addr]int{g99: 1}) {
		t.Errorf("groups after the update %v, want 224.0.0.99 only", got)
	}
	joins, leaves := rc.joinsLeaves()
	if !sameAddrs(joins, []netip.Addr{g88, g99}) || !sameAddrs(leaves, []netip.Addr{g88}) {
		t.Errorf("joins %v leaves %v, want 224.0.0.99 joined and 224.0.0.88 left", joins, leaves)
	}
	// The adverts follow.
	eventually(t, "MASTER", func() bool { return n.state() == StateMaster })
	obs := w.open()
	buf := make([]byte, 1500)
	_, meta, err := obs.Recv(buf)
	if err != nil || meta.Dst != g99 {
		t.Fatalf("advert to %s (%v), want 224.0.0.99", meta.Dst, err)
	}
}

// joinSpy is a wireConn that records group membership.
type joinSpy struct {
	*wireConn
	rec *recConn
}

func (j *joinSpy) JoinGroup(g netip.Addr) error  { return j.rec.JoinGroup(g) }
func (j *joinSpy) LeaveGroup(g netip.Addr) error { return j.rec.LeaveGroup(g) }

func sameGroups(a, b map[netip.Addr]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestUnicastTTLIsSetPerPacket(t *testing.T) {
	peers := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	conn := newRecConn()
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	defer tr.Close()
	// Three instances share the socket: unicast_ttl 10, unicast without,
	// multicast.
	ttl10 := wireInstance("VI_TTL", 1, func(c *config.Instance) { c.UnicastPeers = peers; c.UnicastTTL = 10 })
	plain := wireInstance("VI_UC", 2, func(c *config.Instance) { c.UnicastPeers = peers })
	mcast := wireInstance("VI_MC", 3, nil)
	for _, inst := range []*Instance{ttl10, plain, mcast} {
		if err := tr.Attach(inst); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		inst *Instance
		want []recSend
	}{
		{ttl10, []recSend{{peers[0], 10}, {peers[1], 10}}},
		{plain, []recSend{{peers[0], -1}, {peers[1], -1}}},
		{mcast, []recSend{{wire.MulticastGroup4, -1}}},
		{ttl10, []recSend{{peers[0], 10}, {peers[1], 10}}}, // and again: per packet, not per socket
	}
	for _, tc := range tests {
		tc.inst.sendAdvert(100)
		if got := conn.takeSends(); len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) || got[len(got)-1] != tc.want[len(tc.want)-1] {
			t.Errorf("%s: sends %v, want %v", tc.inst.cfg.Name, got, tc.want)
		}
	}
}

func TestSendAdvertDoesNotAllocate(t *testing.T) {
	peers := []netip.Addr{netip.MustParseAddr("10.0.0.2")}
	conn := newRecConn()
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	defer tr.Close()
	for _, inst := range []*Instance{
		wireInstance("VI_TTL", 1, func(c *config.Instance) { c.UnicastPeers = peers; c.UnicastTTL = 10 }),
		wireInstance("VI_MC", 2, func(c *config.Instance) { c.McastGroup = netip.MustParseAddr("224.0.0.88") }),
	} {
		if err := tr.Attach(inst); err != nil {
			t.Fatal(err)
		}
		inst.buf = make([]byte, 0, 1500)
		if n := testing.AllocsPerRun(100, func() { inst.sendAdvert(100) }); n != 0 {
			t.Errorf("%s: %v allocations per advert, want 0", inst.cfg.Name, n)
		}
	}
}

// TestMasterTimerDoesNotAllocate runs a master's whole advert timer as its
// runner does (state step, advert sent, the GARP check): nothing allocated
// per advert. A GARP refresh or round that is due may allocate; one that is
// not must not (it once made a context and a timer on every advert).
func TestMasterTimerDoesNotAllocate(t *testing.T) {
	conn := newRecConn()
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	defer tr.Close()
	for _, inst := range []*Instance{
		wireInstance("VI_OWNER", 1, func(c *config.Instance) { c.Priority = 255 }),
		wireInstance("VI_REFRESH", 2, func(c *config.Instance) {
			c.Priority = 255
			c.Garp.MasterRefresh = config.Duration(time.Hour)
		}),
	} {
		if err := tr.Attach(inst); err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1e9, 0)
		inst.begin(now)
		if st := inst.m.State(); st != StateMaster {
			t.Fatalf("%s: %v after start, want MASTER", inst.cfg.Name, st)
		}
		before := conn.n
		n := testing.AllocsPerRun(100, func() {
			now = now.Add(100 * time.Millisecond)
			inst.timer(now)
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per advert timer, want 0", inst.cfg.Name, n)
		}
		if sent := conn.n - before; sent < 100 {
			t.Errorf("%s: %d adverts sent over 101 timers, want one each", inst.cfg.Name, sent)
		}
	}
}

func TestPutIPv4HeaderIsKeepalivedsWithTheTTL(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, ttl := range []int{255, 10, 1} {
		b := putIPv4Header(make([]byte, 0, 64), src, dst, ttl, 20)
		h, err := ipv4.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.TTL != ttl || h.Protocol != IPProtoVRRP || h.TOS != tosInternetControl || h.TotalLen != 40 ||
			h.Len != ipv4.HeaderLen || h.Version != 4 || !h.Src.Equal(src.AsSlice()) || !h.Dst.Equal(dst.AsSlice()) {
			t.Errorf("ttl %d: header %+v", ttl, h)
		}
	}
	// No source: zero, for the kernel to fill in.
	if b := putIPv4Header(nil, netip.Addr{}, dst, 255, 0); string(b[12:16]) != "\x00\x00\x00\x00" {
		t.Errorf("source bytes %v without a source, want zeros", b[12:16])
	}
	if n := testing.AllocsPerRun(100, func() { _ = putIPv4Header(make([]byte, 0, 64)[:0], src, dst, 10, 20) }); n != 0 {
		t.Errorf("%v allocations per header", n)
	}
}

func TestPutCmsg6CarriesPktinfoAndHopLimit(t *testing.T) {
	src := netip.MustParseAddr("fe80::1")
	buf := make([]byte, 0, 128)
	for _, hops := range []int{255, 10} {
		b := putCmsg6(buf[:0], src, 7, hops)
		msgs, err := unix.ParseSocketControlMessage(b)
		if err != nil || len(msgs) != 2 {
			t.Fatalf("control messages %v: %v", msgs, err)
		}
		pi, hl := msgs[0], msgs[1]
		if pi.Header.Level != unix.IPPROTO_IPV6 || pi.Header.Type != unix.IPV6_PKTINFO ||
			string(pi.Data[:16]) != string(src.AsSlice()) || pi.Data[16] != 7 {
			t.Errorf("IPV6_PKTINFO %+v", pi)
		}
		if hl.Header.Level != unix.IPPROTO_IPV6 || hl.Header.Type != unix.IPV6_HOPLIMIT || int(hl.Data[0]) != hops {
			t.Errorf("IPV6_HOPLIMIT %+v, want %d", hl, hops)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = putCmsg6(buf[:0], src, 7, 10) }); n != 0 {
		t.Errorf("%v allocations per control message", n)
	}
}

func TestOldUnicastChecksumUsesVrrpMcastGroup4(t *testing.T) {
	src, peer := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	g88 := netip.MustParseAddr("224.0.0.88")
	inst := wireInstance("VI_1", 51, func(c *config.Instance) {
		c.UnicastPeers = []netip.Addr{peer}
		c.OldUnicastChecksum = true
		c.McastGroup = g88 // Normalize: vrrp_mcast_group4
	})
	if inst.ckopt.Group4 != g88 || !inst.ckopt.OldUnicastChecksum {
		t.Fatalf("checksum options %+v, want old_unicast_checksum over 224.0.0.88", inst.ckopt)
	}
	adv := wire.Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	b, err := adv.AppendMarshal(nil, src, peer, inst.ckopt)
	if err != nil {
		t.Fatal(err)
	}
	// The checksum is over 224.0.0.88, not the peer nor 224.0.0.18: read
	// as sent to each of them (the peer: in either form), only 224.0.0.88
	// verifies.
	for _, d := range []netip.Addr{peer, wire.MulticastGroup4} {
		_, err := wire.Parse(b, src, d, wire.ChecksumOpt{})
		if de, ok := err.(*wire.DropError); !ok || de.Reason != wire.DropBadChecksum {
			t.Errorf("read as sent to %s: %v, want bad_checksum", d, err)
		}
	}
	if _, err := wire.Parse(b, src, g88, wire.ChecksumOpt{}); err != nil {
		t.Errorf("checksum does not verify with 224.0.0.88 in the pseudo-header: %v", err)
	}
	if _, err := wire.Parse(b, src, peer, inst.ckopt); err != nil {
		t.Errorf("an instance with the option rejects the old form: %v", err)
	}
	_, err = wire.Parse(b, src, peer, wire.ChecksumOpt{Group4: g88})
	if de, ok := err.(*wire.DropError); !ok || de.Reason != wire.DropOldUnicastChecksum || !strings.Contains(de.Detail, "224.0.0.88") {
		t.Errorf("without the option: %v, want old_unicast_checksum naming 224.0.0.88", err)
	}
}

// TestConnSendTTLOnLoopback sends real packets (root only): the TTL / hop
// limit set per packet is the one received, and sending allocates nothing.
func TestConnSendTTLOnLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (raw socket)")
	}
	for _, lo := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
		t.Run(lo.String(), func(t *testing.T) {
			c, err := ListenConn("lo", lo.Is6())
			if err != nil {
				t.Skipf("raw socket on lo: %v", err)
			}
			defer c.Close()
			vip := netip.MustParseAddr("10.0.0.100")
			if lo.Is6() {
				vip = netip.MustParseAddr("fd00::100")
			}
			adv := wire.Advert{Version: 3, VRID: 201, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip}}
			payload, err := adv.AppendMarshal(nil, lo, lo, wire.ChecksumOpt{})
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan wire.RecvMeta, 16)
			go func() {
				buf := make([]byte, 1500)
				for {
					p, meta, err := c.Recv(buf)
					if err != nil {
						close(got)
						return
					}
					if len(p) > 1 && p[1] == 201 {
						select {
						case got <- meta:
						default: // the allocation run's packets
						}
					}
				}
			}()
			for _, ttl := range []int{10, 0, 64} {
				if err := c.SendTTL(payload, lo, lo, ttl); err != nil {
					t.Fatal(err)
				}
				want := ttl
				if ttl == 0 {
					want = 255
				}
				select {
				case m := <-got:
					if m.TTL != want || m.Dst != lo || m.Src != lo {
						t.Errorf("SendTTL(%d): received TTL %d from %s to %s, want %d from and to %s", ttl, m.TTL, m.Src, m.Dst, want, lo)
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("SendTTL(%d): nothing received", ttl)
				}
			}
			if n := testing.AllocsPerRun(50, func() { _ = c.SendTTL(payload, lo, lo, 10) }); n != 0 {
				t.Errorf("%v allocations per SendTTL, want 0", n)
			}
		})
	}
}
