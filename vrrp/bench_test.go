package vrrp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
)

// feedConn replays prepared adverts as fast as the transport reads them.
type feedConn struct {
	pkts   [][]byte
	src    netip.Addr
	i      int
	n      int
	done   chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (c *feedConn) Send([]byte, netip.Addr, netip.Addr) error { return nil }
func (c *feedConn) Recv(buf []byte) ([]byte, RecvMeta, error) {
	if c.n == 0 {
		close(c.done)
		<-c.closed
		return nil, RecvMeta{}, errClosedForBench
	}
	c.n--
	p := c.pkts[c.i%len(c.pkts)]
	c.i++
	n := copy(buf, p)
	return buf[:n], RecvMeta{Src: c.src, Dst: MulticastGroup4, TTL: 255}, nil
}
func (c *feedConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

var errClosedForBench = net.ErrClosed

// BenchmarkTransportDispatch measures the socket reader's work per received
// advert with 250 instances on one socket (1000 over four interfaces in
// production): parse, receive checks, demultiplexing and the hand-off to the
// instance's queue. The syscall is excluded, and so is the instance's own
// step (it runs on its goroutine; an overrun queue drops, as in production).
func BenchmarkTransportDispatch(b *testing.B) {
	const n = 250 // VRIDs per interface; 4 interfaces make 1000 in production
	src := netip.MustParseAddr("10.0.0.2")
	var pkts [][]byte
	for vrid := 1; vrid <= n; vrid++ {
		a := Advert{Version: 2, VRID: uint8(vrid), Priority: 200, Interval: time.Second,
			Addrs: []netip.Addr{netip.MustParseAddr("10.1." + strconv.Itoa(vrid) + ".1")}}
		p, err := a.AppendMarshal(nil, src, MulticastGroup4, ChecksumOpt{})
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	conn := &feedConn{pkts: pkts, src: src, n: b.N, done: make(chan struct{}), closed: make(chan struct{})}
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
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, inst := range insts {
		if err := tr.Attach(inst); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); inst.Run(ctx) }()
	}
	<-conn.done
	b.StopTimer()
	cancel()
	wg.Wait()
	tr.Close()
}
