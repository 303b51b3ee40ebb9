package vrrp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vrrp/wire"
)

// feedConn replays prepared adverts: one round (an advert for every VRID)
// each time the benchmark asks for it, so what is measured is delivered,
// not dropped.
type feedConn struct {
	pkts   [][]byte
	src    netip.Addr
	rounds chan int
	left   int
	i      int
	closed chan struct{}
	once   sync.Once
}

func (c *feedConn) Send([]byte, netip.Addr, netip.Addr) error { return nil }
func (c *feedConn) Recv(buf []byte) ([]byte, wire.RecvMeta, error) {
	for c.left == 0 {
		select {
		case n := <-c.rounds:
			c.left = n
		case <-c.closed:
			return nil, wire.RecvMeta{}, net.ErrClosed
		}
	}
	c.left--
	p := c.pkts[c.i%len(c.pkts)]
	c.i++
	n := copy(buf, p)
	return buf[:n], wire.RecvMeta{Src: c.src, Dst: wire.MulticastGroup4, TTL: 255}, nil
}
func (c *feedConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// BenchmarkTransportDispatch measures one received advert with 250
// instances on one socket (1000 over four interfaces in production), from
// the socket read (the syscall excluded) to the instance's state machine
// step: parse, receive checks, demultiplexing, the hand-off and the step.
// The adverts come in rounds of one per instance and each round is fully
// delivered before the next: ns/op is per delivered advert.
func BenchmarkTransportDispatch(b *testing.B) {
	const n = 250 // VRIDs per interface; 4 interfaces make 1000 in production
	src := netip.MustParseAddr("10.0.0.2")
	var pkts [][]byte
	for vrid := 1; vrid <= n; vrid++ {
		a := wire.Advert{Version: 2, VRID: uint8(vrid), Priority: 200, Interval: time.Second,
			Addrs: []netip.Addr{netip.MustParseAddr("10.1." + strconv.Itoa(vrid) + ".1")}}
		p, err := a.AppendMarshal(nil, src, wire.MulticastGroup4, wire.ChecksumOpt{})
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	conn := &feedConn{pkts: pkts, src: src, rounds: make(chan int), closed: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := NewTransportWith(log, func(string, bool) (PacketConn, error) { return conn, nil })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var insts []*Instance
	for vrid := 1; vrid <= n; vrid++ {
		ic := &config.Instance{Name: "VI_" + strconv.Itoa(vrid), Interface: "eth0", VRID: vrid, Priority: 100,
			Version: 2, AdvertInt: config.Duration(time.Second),
			VIPs: []config.VIP{{Prefix: netip.MustParsePrefix("10.1." + strconv.Itoa(vrid) + ".1/32")}}}
		inst := NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr("10.0.0.1"), Plane: &fakePlane{}, Log: log})
		insts = append(insts, inst)
		if err := tr.Attach(inst); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); inst.Run(ctx) }()
	}
	received := func() (sum uint64) {
		for _, inst := range insts {
			sum += inst.Counters().AdvertsReceived
		}
		return sum
	}
	b.ReportAllocs()
	b.ResetTimer()
	fed := 0
	for fed < b.N {
		k := min(n, b.N-fed)
		want := received() + uint64(k)
		conn.rounds <- k
		fed += k
		for received() < want {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	if d := DropTotals(tr.Drops()); len(d) > 0 {
		b.Fatalf("adverts dropped: %v", d)
	}
	cancel()
	wg.Wait()
	tr.Close()
}

// BenchmarkReceiveAdvert is the receive path of one advert after the
// socket read: parse into the reader's advert, the receive checks, and the
// state machine step of a backup hearing its master. 0 allocs/op.
func BenchmarkReceiveAdvert(b *testing.B) {
	src := netip.MustParseAddr("10.0.0.2")
	vip := netip.MustParseAddr("10.1.0.1")
	a := wire.Advert{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip}}
	pkt, err := a.AppendMarshal(nil, src, wire.MulticastGroup4, wire.ChecksumOpt{})
	if err != nil {
		b.Fatal(err)
	}
	m := NewMachine(Params{Version: 3, Priority: 100, AdvertInt: time.Second, Primary: netip.MustParseAddr("10.0.0.1")})
	now := time.Unix(1e9, 0)
	m.Step(now, Event{Kind: EvStartup})
	expect := wire.RecvExpect{Version: 3, Interval: time.Second, OwnAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, VIPs: []netip.Addr{vip}}
	meta := wire.RecvMeta{Src: src, Dst: wire.MulticastGroup4, TTL: 255}
	var adv wire.Advert
	var addrs [255]netip.Addr
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := wire.ParseInto(&adv, addrs[:0], pkt, meta.Src, meta.Dst, wire.ChecksumOpt{}); err != nil {
			b.Fatal(err)
		}
		if res := wire.CheckRecv(&adv, meta, expect); res.Drop != nil {
			b.Fatal(res.Drop)
		}
		now = now.Add(time.Second)
		m.Step(now, Event{Kind: EvAdvert, From: meta.Src, Priority: adv.Priority, Interval: adv.Interval})
	}
	if m.State() != StateBackup {
		b.Fatalf("state %v", m.State())
	}
}

// BenchmarkBuildAdvert builds one advert into a reused buffer, as a master
// does every advert interval. 0 allocs/op.
func BenchmarkBuildAdvert(b *testing.B) {
	src := netip.MustParseAddr("10.0.0.1")
	a := wire.Advert{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1")}}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = a.AppendMarshal(buf[:0], src, wire.MulticastGroup4, wire.ChecksumOpt{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMasterAdvertTimer is a master's advert timer firing: the state
// machine's step and its actions. 0 allocs/op.
func BenchmarkMasterAdvertTimer(b *testing.B) {
	m := NewMachine(Params{Version: 3, Priority: 255, AdvertInt: time.Second, Primary: netip.MustParseAddr("10.0.0.1")})
	now := time.Unix(1e9, 0)
	m.Step(now, Event{Kind: EvStartup})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		if acts := m.Step(now, Event{Kind: EvTimer}); len(acts) != 1 {
			b.Fatalf("actions %v", acts)
		}
	}
}
