package vrrp

// Runtime tests on the fake clock: instances run their real goroutines and
// talk over an in-memory wire through real Transports, but time only moves
// when the test says so, and every step is taken to completion before the
// next one, so each assertion is about one exact instant.
//
// How a step is taken to completion (liveEnv.settle):
//   - the wire queues what is sent; the test hands each packet to every
//     other host's transport reader and waits until that reader asks for the
//     next one (the packet is then in the instance's queue or dropped);
//   - a no-op request through each instance (i.do) waits for whatever it took
//     before; its timer-Reset count, read inside the request and again after
//     the armTimer that follows it, tells whether the instance did anything
//     between two rounds, and that it is back in its select before the clock
//     moves (Advance racing armTimer would shift the deadline);
//   - a timer re-armed with a deadline already reached does not fire on the
//     fake clock until the next Advance, so settle fires it with Advance(0).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
	"github.com/vipd/vipd/vrrp/wire"
)

var liveT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// liveClock is the shared fake clock as one instance sees it. It counts the
// Resets of the instance's timer: armTimer ends with one, right before the
// instance goroutine blocks in its select.
type liveClock struct {
	*clock.Fake
	resets atomic.Uint64
}

func (c *liveClock) NewTimer(d time.Duration) Timer {
	return &liveTimer{Timer: c.Fake.NewTimer(d), c: c}
}

type liveTimer struct {
	Timer
	c *liveClock
}

func (t *liveTimer) Reset(d time.Duration) bool {
	r := t.Timer.Reset(d)
	t.c.resets.Add(1)
	return r
}

// liveWire is an L2 segment whose packets move only when the test delivers
// them; it keeps a log of everything sent.
type liveWire struct {
	clk   *clock.Fake
	mu    sync.Mutex
	conns []*liveConn
	queue []livePkt
	log   []livePkt
}

type livePkt struct {
	from     *liveConn
	b        []byte
	src, dst netip.Addr
	at       time.Time
}

type liveFeed struct {
	p    livePkt
	done chan struct{} // closed when the reader asks for the next packet
}

type liveConn struct {
	w      *liveWire
	feed   chan *liveFeed
	closed chan struct{}
	once   sync.Once
	cur    *liveFeed // the reader goroutine's
}

func (w *liveWire) open() *liveConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := &liveConn{w: w, feed: make(chan *liveFeed), closed: make(chan struct{})}
	w.conns = append(w.conns, c)
	return c
}

func (c *liveConn) Send(b []byte, src, dst netip.Addr) error {
	p := livePkt{from: c, b: append([]byte(nil), b...), src: src, dst: dst, at: c.w.clk.Now()}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	c.w.queue = append(c.w.queue, p)
	c.w.log = append(c.w.log, p)
	return nil
}

func (c *liveConn) Recv(buf []byte) ([]byte, wire.RecvMeta, error) {
	if c.cur != nil {
		close(c.cur.done) // the previous packet is dispatched
		c.cur = nil
	}
	select {
	case f := <-c.feed:
		c.cur = f
		n := copy(buf, f.p.b)
		return buf[:n], wire.RecvMeta{Src: f.p.src, Dst: f.p.dst, TTL: 255}, nil
	case <-c.closed:
		return nil, wire.RecvMeta{}, net.ErrClosed
	}
}

func (c *liveConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// liveAdvert is a parsed advert from the wire log.
type liveAdvert struct {
	Src      netip.Addr
	At       time.Time
	Priority uint8
	Interval time.Duration
	Addrs    []netip.Addr
}

// livePlane is an address plane that records what it was asked.
type livePlane struct {
	mu        sync.Mutex
	held      map[netip.Addr]netip.Prefix
	announced [][]netip.Prefix
}

func (p *livePlane) AddAddrs(_ context.Context, _ string, vips []config.VIP) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[netip.Addr]netip.Prefix{}
	}
	for _, v := range vips {
		p.held[v.Prefix.Addr()] = v.Prefix
	}
	return nil
}

func (p *livePlane) DelAddrs(_ context.Context, _ string, vips []config.VIP) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range vips {
		delete(p.held, v.Prefix.Addr())
	}
	return nil
}

func (p *livePlane) AddRoutes(context.Context, string, []config.Route) error { return nil }
func (p *livePlane) DelRoutes(context.Context, string, []config.Route) error { return nil }

func (p *livePlane) Announce(_ context.Context, _ string, _ net.HardwareAddr, vips []config.VIP) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var l []netip.Prefix
	for _, v := range vips {
		l = append(l, v.Prefix)
	}
	p.announced = append(p.announced, l)
	return nil
}

func (p *livePlane) HasAddr(_ string, a netip.Addr) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.held[a]
	return ok, nil
}

// vips returns the held VIPs, sorted.
func (p *livePlane) vips() []netip.Prefix {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netip.Prefix
	for _, pf := range p.held {
		out = append(out, pf)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

func (p *livePlane) has(pf netip.Prefix) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	got, ok := p.held[pf.Addr()]
	return ok && got == pf
}

// put and drop change the plane behind the instance's back.
func (p *livePlane) put(pf netip.Prefix) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[netip.Addr]netip.Prefix{}
	}
	p.held[pf.Addr()] = pf
}

func (p *livePlane) drop(pf netip.Prefix) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.held, pf.Addr())
}

// announces returns the VIP lists of the Announce calls from call k on.
func (p *livePlane) announcesSince(k int) [][]netip.Prefix {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.announced[k:])
}

func (p *livePlane) announceCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.announced)
}

// liveGate answers per instance name (open unless closed) and records every
// question.
type liveGate struct {
	mu     sync.Mutex
	closed map[string]bool
	all    bool // closed for everyone
	calls  []liveGateCall
}

type liveGateCall struct {
	Instance, Cause string
	Said            bool
}

func (g *liveGate) MayBecomeMaster(instance string, _ int, cause string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	ok := !g.all && !g.closed[instance]
	g.calls = append(g.calls, liveGateCall{instance, cause, ok})
	return ok
}

func (g *liveGate) setAll(closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.all = closed
}

func (g *liveGate) set(instance string, closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = map[string]bool{}
	}
	g.closed[instance] = closed
}

func (g *liveGate) callsFor(instance string) []liveGateCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []liveGateCall
	for _, c := range g.calls {
		if c.Instance == instance {
			out = append(out, c)
		}
	}
	return out
}

// liveEnv is one fake clock and one wire shared by a test's hosts.
type liveEnv struct {
	t     *testing.T
	clk   *clock.Fake
	wire  *liveWire
	hosts []*liveHost
	nodes []*liveNode // running
	all   []*liveNode
}

func newLiveEnv(t *testing.T) *liveEnv {
	t.Helper()
	clk := clock.NewFake(liveT0)
	e := &liveEnv{t: t, clk: clk, wire: &liveWire{clk: clk}}
	t.Cleanup(e.close)
	return e
}

func (e *liveEnv) close() {
	for _, n := range e.nodes {
		n.cancel()
	}
	for _, n := range e.nodes {
		<-n.done
	}
	e.nodes = nil
	for _, h := range e.hosts {
		h.tr.Close()
	}
}

// liveHost is one machine: one address, one socket on the wire, one
// transport shared by its instances.
type liveHost struct {
	e    *liveEnv
	addr netip.Addr
	conn *liveConn
	tr   *Transport
}

func (e *liveEnv) host(addr string) *liveHost {
	h := &liveHost{e: e, addr: netip.MustParseAddr(addr), conn: e.wire.open()}
	h.tr = NewTransportWith(slog.New(slog.NewTextHandler(io.Discard, nil)),
		func(string, bool) (PacketConn, error) { return h.conn, nil })
	e.hosts = append(e.hosts, h)
	return h
}

type liveNode struct {
	e       *liveEnv
	h       *liveHost
	name    string
	cfg     *config.Instance
	inst    *Instance
	plane   *livePlane
	clk     *liveClock
	cancel  context.CancelFunc
	done    chan struct{}
	running bool

	mu    sync.Mutex
	trans []Transition
	heals []Heal
}

func liveVIP(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// liveConfig is the instance the tests start from: VRRPv3, advert_int 1s,
// one VIP.
func liveConfig(vrid, prio int) *config.Instance {
	return &config.Instance{
		Name: fmt.Sprintf("VI_%d", vrid), Interface: "eth0", VRID: vrid, Priority: prio, Version: 3,
		AdvertInt: config.Duration(time.Second), State: config.StateBackup,
		VIPs: []config.VIP{{Prefix: liveVIP(fmt.Sprintf("10.0.%d.100/24", vrid))}},
		Garp: config.Garp{MasterRepeat: 1},
	}
}

// instance builds an instance on h and attaches it; start runs it.
func (h *liveHost) instance(vrid, prio int, mutate func(*config.Instance), opts func(*InstanceOptions)) *liveNode {
	h.e.t.Helper()
	ic := liveConfig(vrid, prio)
	if mutate != nil {
		mutate(ic)
	}
	n := &liveNode{e: h.e, h: h, name: ic.Name, cfg: ic, plane: &livePlane{}, clk: &liveClock{Fake: h.e.clk}, done: make(chan struct{})}
	o := InstanceOptions{
		Config: ic, Primary: h.addr, Plane: n.plane, Clock: n.clk,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnTransition: func(tr Transition) {
			n.mu.Lock()
			n.trans = append(n.trans, tr)
			n.mu.Unlock()
		},
		OnHeal: func(hl Heal) {
			n.mu.Lock()
			n.heals = append(n.heals, hl)
			n.mu.Unlock()
		},
	}
	if opts != nil {
		opts(&o)
	}
	n.inst = NewInstance(o)
	if err := h.tr.Attach(n.inst); err != nil {
		h.e.t.Fatal(err)
	}
	h.e.all = append(h.e.all, n)
	return n
}

func (n *liveNode) start() *liveNode {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.running = true
	n.e.nodes = append(n.e.nodes, n)
	n.inst.Start() // before any request the harness makes
	go func() { defer close(n.done); n.inst.Run(ctx) }()
	n.e.settle()
	return n
}

// node starts a lone instance on a host of its own.
func (e *liveEnv) node(addr string, vrid, prio int, mutate func(*config.Instance), opts func(*InstanceOptions)) *liveNode {
	e.t.Helper()
	return e.host(addr).instance(vrid, prio, mutate, opts).start()
}

// stop ends Run (a master says goodbye with priority 0) and detaches the
// instance; what it sent is delivered by the next settle.
func (n *liveNode) stop() {
	n.cancel()
	<-n.done
	n.running = false
	n.e.nodes = slices.DeleteFunc(n.e.nodes, func(m *liveNode) bool { return m == n })
	n.h.tr.Detach(n.inst)
}

func (n *liveNode) transitions() []Transition {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.trans)
}

func (n *liveNode) lastTransition() Transition {
	n.e.t.Helper()
	tr := n.transitions()
	if len(tr) == 0 {
		n.e.t.Fatalf("%s: no transition", n.name)
	}
	return tr[len(tr)-1]
}

func (n *liveNode) healCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.heals)
}

// mustState fails the test unless n is in state s.
func (n *liveNode) mustState(s State, when string) {
	n.e.t.Helper()
	if got := n.inst.Status(); got.State != s {
		n.e.t.Fatalf("%s %s: state %v (cause %q), want %v", n.name, when, got.State, got.Cause, s)
	}
}

// syncNode makes a no-op request through n and waits for the armTimer that
// follows it (armTimer is lazy: it may not Reset the timer, so the count of
// its calls is what tells). It returns the count read inside the request
// and the count once the instance is back in its select.
func (e *liveEnv) syncNode(n *liveNode) (in, after uint64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.inst.do(ctx, func(time.Time) []Action { in = n.inst.armed.Load(); return nil }); err != nil {
		e.t.Fatalf("%s: no-op request: %v", n.name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a := n.inst.armed.Load(); a > in {
			return in, a
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: the instance did not re-arm its timer", n.name)
		}
		runtime.Gosched()
	}
}

// deliverAll hands every queued packet to every other open socket on the
// wire, one at a time, each dispatched before the next.
func (e *liveEnv) deliverAll() {
	e.t.Helper()
	for {
		w := e.wire
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		p := w.queue[0]
		w.queue = w.queue[1:]
		conns := slices.Clone(w.conns)
		w.mu.Unlock()
		for _, c := range conns {
			if c == p.from {
				continue
			}
			f := &liveFeed{p: p, done: make(chan struct{})}
			select {
			case c.feed <- f:
			case <-c.closed:
				continue
			case <-time.After(10 * time.Second):
				e.t.Fatal("a transport reader does not read")
			}
			select {
			case <-f.done:
			case <-c.closed:
			case <-time.After(10 * time.Second):
				e.t.Fatal("a transport reader did not finish a packet")
			}
		}
	}
}

// quiet reports whether nothing waits anywhere: no timer firing unread, no
// packet on the wire, nothing in an instance's queues.
func (e *liveEnv) quiet() bool {
	if e.clk.Fired() > 0 {
		return false
	}
	e.wire.mu.Lock()
	q := len(e.wire.queue)
	e.wire.mu.Unlock()
	if q > 0 {
		return false
	}
	for _, n := range e.nodes {
		if n.inst.busy() {
			return false
		}
	}
	return true
}

func (e *liveEnv) due() bool {
	next, ok := e.clk.NextDeadline()
	return ok && !next.After(e.clk.Now())
}

// settle takes everything that is under way at the current fake time to
// completion.
func (e *liveEnv) settle() {
	e.t.Helper()
	for round := 0; round < 100000; round++ {
		e.deliverAll()
		first := make([]uint64, len(e.nodes))
		for k, n := range e.nodes {
			_, first[k] = e.syncNode(n)
		}
		quiet, due := e.quiet(), e.due()
		changed := false
		for k, n := range e.nodes {
			if in, _ := e.syncNode(n); in != first[k] {
				changed = true
			}
		}
		if !quiet || changed {
			continue
		}
		if due {
			e.clk.Advance(0)
			continue
		}
		return
	}
	e.t.Fatal("the instances never settled")
}

// advance moves the fake clock by d, stopping at every deadline on the way
// so each instance acts at its own deadline's instant.
func (e *liveEnv) advance(d time.Duration) {
	e.t.Helper()
	end := e.clk.Now().Add(d)
	e.settle()
	for {
		next, ok := e.clk.NextDeadline()
		if !ok || next.After(end) {
			break
		}
		e.clk.Advance(next.Sub(e.clk.Now()))
		e.settle()
	}
	if now := e.clk.Now(); end.After(now) {
		e.clk.Advance(end.Sub(now))
	}
	e.settle()
}

func (e *liveEnv) mark() int {
	e.wire.mu.Lock()
	defer e.wire.mu.Unlock()
	return len(e.wire.log)
}

// adverts parses what was sent on the wire since mark k, from src when src
// is valid.
func (e *liveEnv) adverts(k int, src netip.Addr) []liveAdvert {
	e.t.Helper()
	e.wire.mu.Lock()
	log := slices.Clone(e.wire.log[k:])
	e.wire.mu.Unlock()
	var out []liveAdvert
	for _, p := range log {
		if src.IsValid() && p.src != src {
			continue
		}
		a, err := wire.Parse(p.b, p.src, p.dst, wire.ChecksumOpt{})
		if err != nil {
			e.t.Fatalf("unparsable advert from %s on the wire: %v", p.src, err)
		}
		out = append(out, liveAdvert{Src: p.src, At: p.at, Priority: a.Priority, Interval: a.Interval, Addrs: a.Addrs})
	}
	return out
}

// liveMDI is Master_Down_Interval at advert_int 1s, VRRPv3.
func liveMDI(prio int) time.Duration { return 3*time.Second + liveSkew(prio) }

func liveSkew(prio int) time.Duration { return time.Duration(256-prio) * time.Second / 256 }

// master starts a lone instance and takes it to MASTER on its down timer.
func (e *liveEnv) loneMaster(addr string, vrid, prio int, mutate func(*config.Instance), opts func(*InstanceOptions)) *liveNode {
	e.t.Helper()
	n := e.node(addr, vrid, prio, mutate, opts)
	e.advance(liveMDI(prio))
	n.mustState(StateMaster, "after one Master_Down_Interval alone")
	return n
}

func liveWithVIPs(vips ...string) func(*config.Instance) {
	return func(ic *config.Instance) {
		ic.VIPs = nil
		for _, v := range vips {
			ic.VIPs = append(ic.VIPs, config.VIP{Prefix: liveVIP(v)})
		}
	}
}

// cfgCopy is a copy of n's configuration for Update, with slices of its own.
func (n *liveNode) cfgCopy() *config.Instance {
	c := *n.cfg
	c.VIPs = slices.Clone(n.cfg.VIPs)
	return &c
}

func (n *liveNode) update(c *config.Instance) error {
	err := n.inst.Update(context.Background(), c, n.h.addr)
	if err == nil {
		n.cfg = c
	}
	n.e.settle()
	return err
}

func (n *liveNode) setFault(key, cause string) {
	n.e.t.Helper()
	if err := n.inst.SetFault(context.Background(), key, cause); err != nil {
		n.e.t.Fatal(err)
	}
	n.e.settle()
}

// ---- 1. live update of a running MASTER ----

func TestLiveUpdateOfAMasterSwapsVIPsWithoutATransition(t *testing.T) {
	e := newLiveEnv(t)
	a := e.loneMaster("10.0.0.1", 51, 100, liveWithVIPs("10.0.0.100/24", "10.0.0.101/24"), nil)
	before := a.inst.Status()
	nTrans := len(a.transitions())
	nAnn := a.plane.announceCount()
	if want := liveT0.Add(liveMDI(100)); !before.Since.Equal(want) {
		t.Fatalf("MASTER since %v, want %v", before.Since, want)
	}
	e.advance(300 * time.Millisecond) // the update lands between two adverts

	c := a.cfgCopy()
	c.VIPs = []config.VIP{{Prefix: liveVIP("10.0.0.100/24")}, {Prefix: liveVIP("10.0.0.102/24")}}
	if err := a.update(c); err != nil {
		t.Fatal(err)
	}
	st := a.inst.Status()
	if st.State != StateMaster || !st.Since.Equal(before.Since) {
		t.Errorf("after the update: %v since %v, want MASTER since %v", st.State, st.Since, before.Since)
	}
	if tr := a.transitions(); len(tr) != nTrans {
		t.Errorf("the update made transitions: %+v", tr[nTrans:])
	}
	want := []netip.Prefix{liveVIP("10.0.0.100/24"), liveVIP("10.0.0.102/24")}
	if got := a.plane.vips(); !slices.Equal(got, want) {
		t.Errorf("plane holds %v, want %v (the new VIP added, the removed one gone)", got, want)
	}
	if !slices.Equal(st.VIPs, want) {
		t.Errorf("status VIPs %v, want %v", st.VIPs, want)
	}
	// The new VIP is announced at once (no fake time passed), and only it.
	ann := a.plane.announcesSince(nAnn)
	if len(ann) != 1 || !slices.Equal(ann[0], []netip.Prefix{liveVIP("10.0.0.102/24")}) {
		t.Errorf("announcements at the update: %v, want one for 10.0.0.102/24", ann)
	}
	// The next advert carries the new list.
	k := e.mark()
	e.advance(700 * time.Millisecond)
	adv := e.adverts(k, a.h.addr)
	if len(adv) != 1 {
		t.Fatalf("%d adverts in the 700ms after the update, want 1: %+v", len(adv), adv)
	}
	if wantA := []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.102")}; !slices.Equal(adv[0].Addrs, wantA) {
		t.Errorf("next advert carries %v, want %v", adv[0].Addrs, wantA)
	}
}

func TestLiveUpdateOfAMasterAdvertsAtTheNewInterval(t *testing.T) {
	e := newLiveEnv(t)
	a := e.loneMaster("10.0.0.1", 51, 100, nil, nil)
	becameAt := e.clk.Now()
	k := e.mark()
	e.advance(3 * time.Second)
	if adv := e.adverts(k, a.h.addr); len(adv) != 3 {
		t.Fatalf("%d adverts in 3s at advert_int 1s, want 3", len(adv))
	}
	e.advance(500 * time.Millisecond) // mid-interval: the old deadline is 500ms away
	nTrans := len(a.transitions())

	c := a.cfgCopy()
	c.AdvertInt = config.Duration(3 * time.Second)
	if err := a.update(c); err != nil {
		t.Fatal(err)
	}
	updatedAt := e.clk.Now()
	k = e.mark()
	e.advance(3*time.Second - time.Millisecond)
	if adv := e.adverts(k, a.h.addr); len(adv) != 0 {
		t.Fatalf("adverts before the new interval ran out: %+v (update at %v)", adv, updatedAt.Sub(liveT0))
	}
	e.advance(time.Millisecond)
	adv := e.adverts(k, a.h.addr)
	if len(adv) != 1 || !adv[0].At.Equal(updatedAt.Add(3*time.Second)) {
		t.Fatalf("adverts after the update: %+v, want one at %v", adv, updatedAt.Add(3*time.Second).Sub(liveT0))
	}
	if adv[0].Interval != 3*time.Second {
		t.Errorf("advert carries interval %v, want 3s", adv[0].Interval)
	}
	e.advance(9 * time.Second)
	if adv := e.adverts(k, a.h.addr); len(adv) != 4 {
		t.Errorf("%d adverts in the 12s after the update at 3s, want 4", len(adv))
	}
	if tr := a.transitions(); len(tr) != nTrans {
		t.Errorf("the interval change made transitions: %+v", tr[nTrans:])
	}
	if st := a.inst.Status(); st.State != StateMaster || !st.Since.Equal(becameAt) {
		t.Errorf("%v since %v, want MASTER since %v", st.State, st.Since, becameAt)
	}
}

func TestLiveUpdateRenamesAMasterInPlace(t *testing.T) {
	e := newLiveEnv(t)
	a := e.loneMaster("10.0.0.1", 51, 100, nil, nil)
	since := a.inst.Status().Since
	nTrans := len(a.transitions())
	c := a.cfgCopy()
	c.Name = "VI_renamed"
	if err := a.update(c); err != nil {
		t.Fatal(err)
	}
	st := a.inst.Status()
	if st.Name != "VI_renamed" || a.inst.Name() != "VI_renamed" {
		t.Errorf("name %q / %q after a rename, want VI_renamed", st.Name, a.inst.Name())
	}
	if st.State != StateMaster || !st.Since.Equal(since) || len(a.transitions()) != nTrans {
		t.Errorf("the rename disturbed the master: %v since %v, transitions %+v", st.State, st.Since, a.transitions()[nTrans:])
	}
	e.advance(5 * time.Second)
	a.mustState(StateMaster, "5s after the rename")
	// Later transitions carry the new name.
	a.setFault("link", "eth0 down")
	if tr := a.lastTransition(); tr.Instance != "VI_renamed" || tr.To != StateFault {
		t.Errorf("transition after the rename: %+v, want VI_renamed to FAULT", tr)
	}
}

func TestLiveUpdateRefusesAnotherIdentity(t *testing.T) {
	e := newLiveEnv(t)
	a := e.loneMaster("10.0.0.1", 51, 100, nil, nil)
	before := a.inst.Status()
	for _, tc := range []struct {
		what   string
		mutate func(*config.Instance)
	}{
		{"another VRID", func(c *config.Instance) { c.VRID = 52 }},
		{"another interface", func(c *config.Instance) { c.Interface = "eth1" }},
		{"another family", func(c *config.Instance) {
			c.VIPs = []config.VIP{{Prefix: liveVIP("fd00::100/64")}}
		}},
	} {
		c := a.cfgCopy()
		c.VIPs = append(c.VIPs, config.VIP{Prefix: liveVIP("10.0.0.200/24")})
		tc.mutate(c)
		if err := a.inst.Update(context.Background(), c, a.h.addr); err == nil {
			t.Errorf("update with %s accepted", tc.what)
		}
		e.settle()
	}
	st := a.inst.Status()
	if st.State != StateMaster || !slices.Equal(st.VIPs, before.VIPs) || st.Name != before.Name {
		t.Errorf("a refused update changed the instance: %+v", st)
	}
	if got := a.plane.vips(); !slices.Equal(got, before.VIPs) {
		t.Errorf("a refused update changed the plane: %v, want %v", got, before.VIPs)
	}
}

// A BACKUP updated with new VIPs touches nothing, and takes the new list
// when it becomes MASTER.
func TestLiveUpdateOfABackupTakesTheNewVIPsOnBecomingMaster(t *testing.T) {
	e := newLiveEnv(t)
	a := e.node("10.0.0.1", 51, 100, liveWithVIPs("10.0.0.100/24", "10.0.0.101/24"), nil)
	e.advance(time.Second)
	c := a.cfgCopy()
	c.VIPs = []config.VIP{{Prefix: liveVIP("10.0.0.101/24")}, {Prefix: liveVIP("10.0.0.102/24")}}
	if err := a.update(c); err != nil {
		t.Fatal(err)
	}
	a.mustState(StateBackup, "after the update")
	if got := a.plane.vips(); len(got) != 0 || a.plane.announceCount() != 0 {
		t.Fatalf("update of a BACKUP touched the plane: %v, %d announcements", got, a.plane.announceCount())
	}
	e.advance(liveMDI(100) - time.Second)
	a.mustState(StateMaster, "down timer kept across the update")
	want := []netip.Prefix{liveVIP("10.0.0.101/24"), liveVIP("10.0.0.102/24")}
	if got := a.plane.vips(); !slices.Equal(got, want) {
		t.Errorf("new MASTER holds %v, want %v", got, want)
	}
}

// ---- 2. keyed faults ----

func TestLiveKeyedFaultsMaintenanceThenLink(t *testing.T) {
	e := newLiveEnv(t)
	a := e.loneMaster("10.0.0.1", 51, 100, nil, nil)
	k := e.mark()
	a.setFault("maintenance/operator", "maintenance")
	adv := e.adverts(k, a.h.addr)
	if len(adv) != 1 || adv[0].Priority != 0 {
		t.Fatalf("adverts on going to maintenance: %+v, want one of priority 0", adv)
	}
	if got := a.plane.vips(); len(got) != 0 {
		t.Errorf("VIPs still held in maintenance: %v", got)
	}
	a.mustState(StateFault, "in maintenance")
	tr := a.lastTransition()
	if tr.From != StateMaster || tr.To != StateFault || tr.CauseKind != CauseMaintenance {
		t.Errorf("transition %+v, want MASTER->FAULT of kind maintenance", tr)
	}
	if f := a.inst.Status().Faults; len(f) != 1 || f["maintenance/operator"] != "maintenance" {
		t.Errorf("faults %v, want maintenance/operator", f)
	}
	if c := a.inst.Counters(); c.PriorityZeroSent != 1 || c.ReleaseMaster != 1 {
		t.Errorf("counters %+v, want one priority 0 sent and one release", c)
	}

	nTrans := len(a.transitions())
	a.setFault("link", "interface eth0 down")
	if f := a.inst.Status().Faults; len(f) != 2 || f["link"] != "interface eth0 down" {
		t.Errorf("faults %v, want maintenance/operator and link", f)
	}
	k = e.mark()
	e.advance(10 * time.Second)
	a.setFault("maintenance/operator", "")
	a.mustState(StateFault, "with link still down")
	if f := a.inst.Status().Faults; len(f) != 1 || f["link"] == "" {
		t.Errorf("faults %v after maintenance ended, want link only", f)
	}
	e.advance(10 * time.Second)
	a.mustState(StateFault, "10s after maintenance ended, link still down")
	if adv := e.adverts(k, netip.Addr{}); len(adv) != 0 {
		t.Errorf("adverts while in FAULT: %+v", adv)
	}
	if tr := a.transitions(); len(tr) != nTrans {
		t.Errorf("transitions while a second fault came and the first went: %+v", tr[nTrans:])
	}

	a.setFault("link", "")
	a.mustState(StateBackup, "once every fault cleared")
	if tr := a.lastTransition(); tr.CauseKind != CauseFaultCleared {
		t.Errorf("transition %+v, want kind fault_cleared", tr)
	}
	if f := a.inst.Status().Faults; len(f) != 0 {
		t.Errorf("faults %v after clearing all", f)
	}
	e.advance(liveMDI(100) - time.Millisecond)
	a.mustState(StateBackup, "before a Master_Down_Interval passed")
	e.advance(time.Millisecond)
	a.mustState(StateMaster, "one Master_Down_Interval after the fault cleared, alone")
	if !a.plane.has(liveVIP("10.0.51.100/24")) {
		t.Error("MASTER again without its VIP")
	}
}

// ---- 3. the gate ----

func TestLiveGateHoldsALoneBackupAndRetryLetsItIn(t *testing.T) {
	e := newLiveEnv(t)
	gate := &liveGate{}
	gate.setAll(true)
	a := e.node("10.0.0.1", 51, 100, nil, func(o *InstanceOptions) { o.Gate = gate })
	mdi := liveMDI(100)
	e.advance(mdi - time.Millisecond)
	if n := len(gate.callsFor("VI_51")); n != 0 {
		t.Fatalf("gate asked %d times before the down timer ran out", n)
	}
	k := e.mark()
	for round := 1; round <= 3; round++ {
		e.advance(time.Millisecond)
		calls := gate.callsFor("VI_51")
		if len(calls) != round {
			t.Fatalf("round %d: gate asked %d times, want %d", round, len(calls), round)
		}
		if c := calls[round-1].Cause; c != "master down timer expired" {
			t.Errorf("gate asked with cause %q", c)
		}
		st := a.inst.Status()
		if st.State != StateBackup || !st.GateHeld || st.GateCause == "" {
			t.Fatalf("round %d: %v gate held %v (%q), want BACKUP held by the gate", round, st.State, st.GateHeld, st.GateCause)
		}
		e.advance(mdi - time.Millisecond)
		if n := len(gate.callsFor("VI_51")); n != round {
			t.Fatalf("gate asked again within a Master_Down_Interval (%d calls)", n)
		}
	}
	if adv := e.adverts(k, netip.Addr{}); len(adv) != 0 || len(a.plane.vips()) != 0 {
		t.Fatalf("held BACKUP sent %d adverts, holds %v", len(adv), a.plane.vips())
	}
	if tr := a.transitions(); len(tr) != 1 || tr[0].To != StateBackup {
		t.Fatalf("transitions %+v, want only start-up to BACKUP", tr)
	}

	gate.setAll(false)
	at := e.clk.Now()
	if err := a.inst.GateRetry(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if !e.clk.Now().Equal(at) {
		t.Fatal("settle moved the clock")
	}
	st := a.inst.Status()
	if st.State != StateMaster || st.GateHeld || !st.Since.Equal(at) {
		t.Fatalf("after GateRetry with the gate open: %v held %v since %v, want MASTER now", st.State, st.GateHeld, st.Since)
	}
	if n := len(gate.callsFor("VI_51")); n != 4 {
		t.Errorf("gate asked %d times, want 4", n)
	}
	if tr := a.lastTransition(); tr.CauseKind != CauseMasterDown {
		t.Errorf("transition %+v, want kind master_down", tr)
	}
	if adv := e.adverts(k, a.h.addr); len(adv) != 1 || adv[0].Priority != 100 || !adv[0].At.Equal(at) {
		t.Errorf("adverts %+v, want one at priority 100 at once", adv)
	}
	if !a.plane.has(liveVIP("10.0.51.100/24")) {
		t.Error("MASTER without its VIP")
	}
}

func TestLiveGateHoldsAnAddressOwnerAtStart(t *testing.T) {
	e := newLiveEnv(t)
	gate := &liveGate{}
	gate.setAll(true)
	k := e.mark()
	a := e.node("10.0.0.1", 51, 255, nil, func(o *InstanceOptions) { o.Gate = gate })
	st := a.inst.Status()
	if st.State == StateMaster || !st.GateHeld {
		t.Fatalf("owner with a closed gate at start: %v held %v, want held out of MASTER", st.State, st.GateHeld)
	}
	calls := gate.callsFor("VI_51")
	if len(calls) != 1 || !strings.Contains(calls[0].Cause, "address owner") {
		t.Fatalf("gate calls %+v, want one for the address owner", calls)
	}
	e.advance(3 * liveMDI(255))
	a.mustState(StateBackup, "three Master_Down_Intervals later, gate closed")
	if n := len(gate.callsFor("VI_51")); n != 4 {
		t.Errorf("gate asked %d times in three Master_Down_Intervals after start, want 4", n)
	}
	if adv := e.adverts(k, netip.Addr{}); len(adv) != 0 || len(a.plane.vips()) != 0 {
		t.Fatalf("held owner sent %d adverts, holds %v", len(adv), a.plane.vips())
	}
	gate.setAll(false)
	if err := a.inst.GateRetry(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	a.mustState(StateMaster, "after GateRetry with the gate open")
	if adv := e.adverts(k, a.h.addr); len(adv) != 1 || adv[0].Priority != 255 {
		t.Errorf("adverts %+v, want one at priority 255", adv)
	}
}

func TestLiveGateRetryLetsAHeldOwnerInAsTheOwner(t *testing.T) {
	e := newLiveEnv(t)
	gate := &liveGate{}
	gate.setAll(true)
	a := e.node("10.0.0.1", 51, 255, nil, func(o *InstanceOptions) { o.Gate = gate })
	a.mustState(StateBackup, "owner held at start")
	e.advance(liveMDI(255) / 2)
	gate.setAll(false)
	if err := a.inst.GateRetry(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	a.mustState(StateMaster, "after GateRetry with the gate open")
	if tr := a.lastTransition(); tr.CauseKind != CauseOwner {
		t.Errorf("transition %+v, want kind owner", tr)
	}
}

func TestLiveGateIsAskedOnASyncGroupOrderToMaster(t *testing.T) {
	e := newLiveEnv(t)
	gate := &liveGate{}
	gate.set("VI_51", true)
	h := e.host("10.0.0.1")
	g := NewSyncGroup("G1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	withGate := func(o *InstanceOptions) { o.Gate = gate }
	// VI_51's down timer runs out first (higher priority, shorter skew):
	// it waits for the group; VI_52's running out orders it to MASTER.
	m1 := h.instance(51, 200, nil, withGate)
	m2 := h.instance(52, 100, nil, withGate)
	g.Add(m1.inst)
	g.Add(m2.inst)
	m1.start()
	m2.start()
	e.advance(liveMDI(200))
	m1.mustState(StateBackup, "waiting for the group")
	if !m1.inst.wantsMaster() {
		t.Fatal("VI_51 does not want MASTER after its down timer ran out")
	}
	// VI_52's down timer runs out: the group would go MASTER, but VI_51's
	// gate refuses, so neither member goes (a gate never splits a group).
	e.advance(liveMDI(100) - liveMDI(200))
	m1.mustState(StateBackup, "its gate closed")
	m2.mustState(StateBackup, "a member's gate closed")
	calls := gate.callsFor("VI_51")
	if len(calls) == 0 {
		t.Fatal("the sync group's decision did not ask VI_51's gate")
	}
	if c := calls[len(calls)-1]; c.Said || !strings.HasPrefix(c.Cause, "sync group G1: VI_52 went MASTER") {
		t.Errorf("last gate call %+v, want the group's decision, refused", c)
	}
	if len(m1.plane.vips()) != 0 || len(m2.plane.vips()) != 0 {
		t.Error("a member took its VIPs while a member's gate was closed")
	}
	gate.set("VI_51", false)
	if err := m2.inst.GateRetry(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	m1.mustState(StateMaster, "after GateRetry")
	m2.mustState(StateMaster, "after GateRetry")
	if tr := m1.lastTransition(); tr.CauseKind != CauseSyncGroup {
		t.Errorf("transition %+v, want kind sync_group", tr)
	}
}

// A BACKUP held by the gate that then hears a better master is no longer
// held: GateRetry must not take it to MASTER over that master.
func TestLiveGateRetryDoesNotPreemptABetterMasterHeardSince(t *testing.T) {
	e := newLiveEnv(t)
	gate := &liveGate{}
	gate.setAll(true)
	a := e.node("10.0.0.1", 51, 100, nil, func(o *InstanceOptions) { o.Gate = gate })
	e.advance(liveMDI(100))
	if !a.inst.Status().GateHeld {
		t.Fatal("not held by the closed gate")
	}
	b := e.node("10.0.0.2", 51, 250, nil, nil)
	e.advance(liveMDI(250))
	b.mustState(StateMaster, "")
	st := a.inst.Status()
	if st.State != StateBackup || st.GateHeld || st.Master != b.h.addr {
		t.Fatalf("a hearing b: %v held %v master %v; want BACKUP, not held, hearing 10.0.0.2", st.State, st.GateHeld, st.Master)
	}
	gate.setAll(false)
	if err := a.inst.GateRetry(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.advance(3 * liveMDI(100))
	a.mustState(StateBackup, "GateRetry with a better master on the wire")
	b.mustState(StateMaster, "")
}

// ---- 4. demote ----

func TestLiveDemoteHandsOverAndTheGateKeepsItBackup(t *testing.T) {
	e := newLiveEnv(t)
	gate := &liveGate{}
	a := e.node("10.0.0.1", 51, 200, nil, func(o *InstanceOptions) { o.Gate = gate })
	b := e.node("10.0.0.2", 51, 100, nil, nil)
	e.advance(liveMDI(200))
	a.mustState(StateMaster, "")
	b.mustState(StateBackup, "")

	// Demote on a BACKUP does nothing.
	k := e.mark()
	nb := len(b.transitions())
	if err := b.inst.Demote(context.Background(), "arbiter"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if len(b.transitions()) != nb || len(e.adverts(k, b.h.addr)) != 0 {
		t.Fatal("Demote acted on a BACKUP")
	}

	gate.setAll(true)
	k = e.mark()
	if err := a.inst.Demote(context.Background(), "split brain: arbiter prefers 10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	adv := e.adverts(k, a.h.addr)
	if len(adv) != 1 || adv[0].Priority != 0 {
		t.Fatalf("adverts on demote: %+v, want one of priority 0", adv)
	}
	tr := a.lastTransition()
	if tr.From != StateMaster || tr.To != StateBackup || tr.CauseKind != CauseDemote || tr.Cause != "split brain: arbiter prefers 10.0.0.2" {
		t.Errorf("transition %+v, want MASTER->BACKUP of kind demote with the cause given", tr)
	}
	if len(a.plane.vips()) != 0 {
		t.Error("demoted master kept its VIPs")
	}
	// b takes over after its skew time (priority 0 heard).
	e.advance(liveSkew(100))
	b.mustState(StateMaster, "skew time after the priority 0")
	if tr := b.lastTransition(); tr.CauseKind != CausePriorityZero {
		t.Errorf("b's transition %+v, want kind priority_zero", tr)
	}
	// a would preempt b (200 > 100), but its gate is closed.
	e.advance(3 * liveMDI(200))
	a.mustState(StateBackup, "gate closed")
	b.mustState(StateMaster, "a held back")
	st := a.inst.Status()
	if !st.GateHeld || st.Master != b.h.addr {
		t.Errorf("a: gate held %v, master %v; want held, hearing 10.0.0.2", st.GateHeld, st.Master)
	}
	if n := len(gate.callsFor("VI_51")); n < 3 {
		t.Errorf("gate asked %d times in three Master_Down_Intervals", n)
	}
	// Gate opens: a preempts back at once.
	gate.setAll(false)
	if err := a.inst.GateRetry(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	a.mustState(StateMaster, "GateRetry with the gate open")
	b.mustState(StateBackup, "a preempted")
	if tr := a.lastTransition(); tr.CauseKind != CausePreempt {
		t.Errorf("a's transition %+v, want kind preempt", tr)
	}
}

func TestLiveDemoteOfALoneMasterWithTheGateClosed(t *testing.T) {
	e := newLiveEnv(t)
	gate := &liveGate{}
	a := e.loneMaster("10.0.0.1", 51, 100, nil, func(o *InstanceOptions) { o.Gate = gate })
	gate.setAll(true)
	if err := a.inst.Demote(context.Background(), "arbiter"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	a.mustState(StateBackup, "demoted")
	if tr := a.lastTransition(); tr.CauseKind != CauseDemote {
		t.Errorf("transition %+v, want kind demote", tr)
	}
	e.advance(5 * liveMDI(100))
	a.mustState(StateBackup, "five Master_Down_Intervals later, alone, gate closed")
	if n := len(gate.callsFor("VI_51")); n != 1+5 {
		t.Errorf("gate asked %d times, want 6 (the first entry, then once per interval)", n)
	}
	if c := a.inst.Counters(); c.PriorityZeroSent != 1 || c.ReleaseMaster != 1 || c.BecomeMaster != 1 {
		t.Errorf("counters %+v", c)
	}
}

// A demoted master is a BACKUP that heard nobody yet: it must not report
// itself as the master, nor name itself as the silent master when its down
// timer runs out.
func TestLiveDemotedMasterDoesNotReportItselfAsMaster(t *testing.T) {
	e := newLiveEnv(t)
	a := e.loneMaster("10.0.0.1", 51, 100, nil, nil)
	if err := a.inst.Demote(context.Background(), "arbiter"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	st := a.inst.Status()
	if st.State != StateBackup {
		t.Fatalf("state %v after Demote", st.State)
	}
	if st.Master == a.h.addr {
		t.Errorf("demoted BACKUP reports itself (%v) as the master", st.Master)
	}
	if tr := a.lastTransition(); strings.Contains(tr.Cause, a.h.addr.String()) {
		t.Errorf("demote transition cause %q names ourselves", tr.Cause)
	}
	// With the gate absent it comes back after a Master_Down_Interval.
	e.advance(liveMDI(100))
	a.mustState(StateMaster, "one Master_Down_Interval after Demote, alone")
	if tr := a.lastTransition(); strings.Contains(tr.Cause, "from master "+a.h.addr.String()) {
		t.Errorf("takeover cause %q says we heard no advert from ourselves", tr.Cause)
	}
}

// ---- 5. self-healing ----

func TestLiveHealMasterPutsBackARemovedVIP(t *testing.T) {
	e := newLiveEnv(t)
	v1, v2 := liveVIP("10.0.0.100/24"), liveVIP("10.0.0.101/24")
	a := e.loneMaster("10.0.0.1", 51, 100, liveWithVIPs(v1.String(), v2.String()), nil)
	nTrans := len(a.transitions())
	since := a.inst.Status().Since

	// Events that are not about our VIPs change nothing.
	a.inst.AddrChanged(AddrChange{Kind: AddrRemoved, Ifname: "eth0", Prefix: liveVIP("10.0.0.7/24")})
	a.inst.AddrChanged(AddrChange{Kind: AddrRemoved, Ifname: "eth1", Prefix: v1})
	e.settle()
	if c := a.inst.Counters().VIPHeals; c != 0 {
		t.Fatalf("%d heals for events about others' addresses", c)
	}

	a.plane.drop(v1)
	nAnn := a.plane.announceCount()
	a.inst.AddrChanged(AddrChange{Kind: AddrRemoved, Ifname: "eth0", Prefix: v1})
	e.settle()
	if !a.plane.has(v1) || !a.plane.has(v2) {
		t.Fatalf("plane %v after healing, want %v and %v", a.plane.vips(), v1, v2)
	}
	if ann := a.plane.announcesSince(nAnn); len(ann) != 1 || !slices.Equal(ann[0], []netip.Prefix{v1}) {
		t.Errorf("announcements %v, want one for %v", ann, v1)
	}
	if c := a.inst.Counters().VIPHeals; c != 1 {
		t.Errorf("VIPHeals %d, want 1", c)
	}
	if a.healCount() != 1 {
		t.Errorf("OnHeal called %d times, want 1", a.healCount())
	}
	st := a.inst.Status()
	if st.State != StateMaster || !st.Since.Equal(since) || len(a.transitions()) != nTrans {
		t.Errorf("healing disturbed the master: %v since %v", st.State, st.Since)
	}
}

func TestLiveHealBackupRemovesAVIPOfOurs(t *testing.T) {
	e := newLiveEnv(t)
	a := e.node("10.0.0.1", 51, 200, nil, nil)
	b := e.node("10.0.0.2", 51, 100, nil, nil)
	e.advance(liveMDI(200))
	a.mustState(StateMaster, "")
	b.mustState(StateBackup, "")
	vip := liveVIP("10.0.51.100/24")

	b.plane.put(vip) // someone added it on the backup
	b.inst.AddrChanged(AddrChange{Kind: AddrAdded, Ifname: "eth0", Prefix: vip})
	e.settle()
	if b.plane.has(vip) {
		t.Fatal("BACKUP kept a VIP of ours that appeared on it")
	}
	if c := b.inst.Counters().VIPHeals; c != 1 {
		t.Errorf("b VIPHeals %d, want 1", c)
	}
	b.mustState(StateBackup, "after healing")
	if !a.plane.has(vip) || a.inst.Counters().VIPHeals != 0 {
		t.Error("the master's plane or counters were touched")
	}

	// AddrResync on the BACKUP finds it again and removes it.
	b.plane.put(vip)
	b.inst.AddrChanged(AddrChange{Kind: AddrResync})
	e.settle()
	if b.plane.has(vip) {
		t.Fatal("AddrResync left a VIP of ours on the BACKUP")
	}
	if c := b.inst.Counters().VIPHeals; c != 2 {
		t.Errorf("b VIPHeals %d, want 2", c)
	}
}

func TestLiveHealMasterOnLinkUpAndResync(t *testing.T) {
	e := newLiveEnv(t)
	v1, v2 := liveVIP("10.0.0.100/24"), liveVIP("10.0.0.101/24")
	a := e.loneMaster("10.0.0.1", 51, 100, liveWithVIPs(v1.String(), v2.String()), nil)

	a.plane.drop(v2)
	nAnn := a.plane.announceCount()
	a.inst.AddrChanged(AddrChange{Kind: LinkUp, Ifname: "eth0"})
	e.settle()
	if !a.plane.has(v2) {
		t.Fatal("LinkUp did not put a missing VIP back")
	}
	if c := a.inst.Counters().VIPHeals; c != 1 {
		t.Errorf("VIPHeals %d after LinkUp, want 1", c)
	}
	if ann := a.plane.announcesSince(nAnn); !slices.ContainsFunc(ann, func(l []netip.Prefix) bool { return slices.Contains(l, v2) }) {
		t.Errorf("announcements %v after LinkUp do not include %v", ann, v2)
	}

	// LinkUp of another interface: nothing.
	a.plane.drop(v1)
	a.inst.AddrChanged(AddrChange{Kind: LinkUp, Ifname: "eth1"})
	e.settle()
	if a.plane.has(v1) || a.inst.Counters().VIPHeals != 1 {
		t.Fatal("LinkUp of eth1 acted on eth0's VIPs")
	}

	nAnn = a.plane.announceCount()
	a.inst.AddrChanged(AddrChange{Kind: AddrResync})
	e.settle()
	if !a.plane.has(v1) || !a.plane.has(v2) {
		t.Fatalf("AddrResync left the plane at %v", a.plane.vips())
	}
	if c := a.inst.Counters().VIPHeals; c != 2 {
		t.Errorf("VIPHeals %d after AddrResync, want 2", c)
	}
	if ann := a.plane.announcesSince(nAnn); len(ann) != 1 || !slices.Equal(ann[0], []netip.Prefix{v1}) {
		t.Errorf("announcements %v after AddrResync, want one for %v", ann, v1)
	}
	a.mustState(StateMaster, "after healing")
	if tr := a.transitions(); len(tr) != 2 {
		t.Errorf("transitions %+v, want start-up and MASTER only", tr)
	}
}

// ---- 6. sync groups ----

// liveGroup starts members of one sync group on one host.
func (e *liveEnv) liveGroup(addr, name string, prio int, vrids ...int) (*SyncGroup, []*liveNode) {
	h := e.host(addr)
	g := NewSyncGroup(name, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var ms []*liveNode
	for _, v := range vrids {
		n := h.instance(v, prio, nil, nil)
		g.Add(n.inst)
		ms = append(ms, n)
	}
	for _, n := range ms {
		n.start()
	}
	return g, ms
}

func liveHeldBySyncGroup(n *liveNode) bool {
	_, ok := n.inst.Status().Faults[FaultSyncGroup]
	return ok
}

func TestLiveSyncGroupRemovingTheFaultyMemberReleasesTheOthers(t *testing.T) {
	e := newLiveEnv(t)
	g, ms := e.liveGroup("10.0.0.1", "G1", 100, 51, 52)
	m1, m2 := ms[0], ms[1]
	e.advance(liveMDI(100))
	m1.mustState(StateMaster, "")
	m2.mustState(StateMaster, "")

	m1.setFault(FaultTracking, "x")
	m1.mustState(StateFault, "own fault")
	m2.mustState(StateFault, "held by the group")
	if f := m2.inst.Status().Faults; f[FaultSyncGroup] != "sync group G1: VI_51 in FAULT" {
		t.Fatalf("VI_52 faults %v, want the group's hold naming VI_51", f)
	}
	if len(m2.plane.vips()) != 0 {
		t.Error("held member kept its VIPs")
	}
	e.advance(10 * time.Second)
	m2.mustState(StateFault, "still held 10s later")

	g.Remove(m1.inst)
	e.settle()
	if g.Len() != 1 {
		t.Fatalf("group has %d members after Remove", g.Len())
	}
	if liveHeldBySyncGroup(m2) {
		t.Fatalf("VI_52 still held after the faulty member left: %v", m2.inst.Status().Faults)
	}
	m2.mustState(StateBackup, "released")
	e.advance(liveMDI(100))
	m2.mustState(StateMaster, "alone in its group, one Master_Down_Interval after release")
	m1.mustState(StateFault, "its own fault stays")
	if f := m1.inst.Status().Faults; len(f) != 1 || f[FaultTracking] != "x" {
		t.Errorf("VI_51 faults %v, want tracking only", f)
	}
	// Out of the group, VI_51 recovers on its own and does not hold VI_52.
	m1.setFault(FaultTracking, "")
	e.advance(liveMDI(100))
	m1.mustState(StateMaster, "out of the group, fault cleared")
	m2.mustState(StateMaster, "")
}

func TestLiveSyncGroupRemovingAStoppedFaultyMemberReleasesTheOthers(t *testing.T) {
	e := newLiveEnv(t)
	g, ms := e.liveGroup("10.0.0.1", "G1", 100, 51, 52)
	m1, m2 := ms[0], ms[1]
	e.advance(liveMDI(100))
	m1.setFault(FaultTracking, "x")
	m2.mustState(StateFault, "held by the group")
	// The agent restarts the faulty member: stop it, take it out.
	m1.stop()
	g.Remove(m1.inst)
	e.settle()
	if liveHeldBySyncGroup(m2) {
		t.Fatalf("VI_52 still held after the stopped faulty member left: %v", m2.inst.Status().Faults)
	}
	e.advance(liveMDI(100))
	m2.mustState(StateMaster, "released")
}

func TestLiveSyncGroupJoinIntoAGroupWithAFaultyMemberIsHeld(t *testing.T) {
	e := newLiveEnv(t)
	g, ms := e.liveGroup("10.0.0.1", "G1", 100, 51)
	m1 := ms[0]
	j := e.host("10.0.0.2").instance(53, 100, nil, nil).start()
	e.advance(liveMDI(100))
	j.mustState(StateMaster, "alone, out of any group")
	m1.setFault(FaultTracking, "x")

	k := e.mark()
	g.Join(j.inst)
	e.settle()
	j.mustState(StateFault, "joined a group with a faulty member")
	if f := j.inst.Status().Faults; f[FaultSyncGroup] != "sync group G1: VI_51 in FAULT" {
		t.Errorf("joined member's faults %v", f)
	}
	if adv := e.adverts(k, j.h.addr); len(adv) != 1 || adv[0].Priority != 0 {
		t.Errorf("joined master's adverts %+v, want one priority 0", adv)
	}
	if len(j.plane.vips()) != 0 {
		t.Error("held member kept its VIPs")
	}
	m1.setFault(FaultTracking, "")
	if liveHeldBySyncGroup(j) {
		t.Fatal("joined member still held after the fault cleared")
	}
	e.advance(liveMDI(100))
	m1.mustState(StateMaster, "group recovered")
	j.mustState(StateMaster, "group recovered")
}

func TestLiveSyncGroupJoinWithAFaultOfItsOwnHoldsTheOthers(t *testing.T) {
	e := newLiveEnv(t)
	g, ms := e.liveGroup("10.0.0.1", "G1", 100, 51)
	m1 := ms[0]
	j := e.host("10.0.0.2").instance(53, 100, nil, nil).start()
	e.advance(liveMDI(100))
	m1.mustState(StateMaster, "")
	j.setFault(FaultTracking, "y")
	g.Join(j.inst)
	e.settle()
	m1.mustState(StateFault, "held for the joined member's fault")
	if f := m1.inst.Status().Faults; f[FaultSyncGroup] != "sync group G1: VI_53 in FAULT" {
		t.Errorf("faults %v", f)
	}
	j.setFault(FaultTracking, "")
	if liveHeldBySyncGroup(m1) {
		t.Fatal("still held after the joined member's fault cleared")
	}
}

func TestLiveSyncGroupRemovingAHeldMemberReleasesIt(t *testing.T) {
	e := newLiveEnv(t)
	g, ms := e.liveGroup("10.0.0.1", "G1", 100, 51, 52)
	m1, m2 := ms[0], ms[1]
	e.advance(liveMDI(100))
	m1.setFault(FaultTracking, "x")
	m2.mustState(StateFault, "held by the group")
	g.Remove(m2.inst)
	e.settle()
	if liveHeldBySyncGroup(m2) {
		t.Fatalf("removed member still held: %v", m2.inst.Status().Faults)
	}
	m2.mustState(StateBackup, "out of the group")
	e.advance(liveMDI(100))
	m2.mustState(StateMaster, "out of the group, alone")
	m1.mustState(StateFault, "its own fault stays")
	if g.State() != StateFault {
		t.Errorf("group state %v with its remaining member faulty, want FAULT", g.State())
	}
}

// ---- 7. counters ----

func TestLiveCountersAcrossFailovers(t *testing.T) {
	e := newLiveEnv(t)
	a := e.node("10.0.0.1", 51, 200, nil, nil)
	b := e.node("10.0.0.2", 51, 100, nil, nil)
	ctx := context.Background()
	e.advance(liveMDI(200))
	a.mustState(StateMaster, "")
	e.advance(5 * time.Second)

	// a's priority falls below b's: b preempts.
	if err := a.inst.SetPriority(ctx, 50); err != nil {
		t.Fatal(err)
	}
	e.advance(10 * time.Second)
	a.mustState(StateBackup, "priority 50")
	b.mustState(StateMaster, "preempting 50")
	// a's priority comes back: a preempts.
	if err := a.inst.SetPriority(ctx, 200); err != nil {
		t.Fatal(err)
	}
	e.advance(10 * time.Second)
	a.mustState(StateMaster, "priority 200 again")
	b.mustState(StateBackup, "")
	// a stops: priority 0, b takes over after its skew time.
	a.stop()
	e.settle()
	e.advance(liveSkew(100))
	b.mustState(StateMaster, "after a's priority 0")
	e.advance(3 * time.Second)

	ca, cb := a.Counters(), b.inst.Counters()
	all := e.adverts(0, netip.Addr{})
	count := func(src netip.Addr, zero bool) (n uint64) {
		for _, ad := range all {
			if ad.Src == src && (!zero || ad.Priority == 0) {
				n++
			}
		}
		return n
	}
	fromA, fromB := count(a.h.addr, false), count(b.h.addr, false)
	if ca.AdvertsSent != fromA || cb.AdvertsSent != fromB {
		t.Errorf("adverts sent a %d b %d, the wire saw %d and %d", ca.AdvertsSent, cb.AdvertsSent, fromA, fromB)
	}
	if cb.AdvertsReceived != fromA {
		t.Errorf("b received %d adverts, a sent %d", cb.AdvertsReceived, fromA)
	}
	if wantA := count(b.h.addr, false) - 4; ca.AdvertsReceived != wantA {
		// b's last four adverts (at takeover and 3s after) came after a stopped.
		t.Errorf("a received %d adverts, want %d", ca.AdvertsReceived, wantA)
	}
	if ca.PriorityZeroSent != 1 || count(a.h.addr, true) != 1 || cb.PriorityZeroReceived != 1 {
		t.Errorf("priority 0: a sent %d (wire %d), b received %d; want 1 each", ca.PriorityZeroSent, count(a.h.addr, true), cb.PriorityZeroReceived)
	}
	if cb.PriorityZeroSent != 0 || ca.PriorityZeroReceived != 0 {
		t.Errorf("unexpected priority 0: b sent %d, a received %d", cb.PriorityZeroSent, ca.PriorityZeroReceived)
	}
	if ca.BecomeMaster != 2 || ca.ReleaseMaster != 2 {
		t.Errorf("a became master %d times, released %d; want 2 and 2", ca.BecomeMaster, ca.ReleaseMaster)
	}
	if cb.BecomeMaster != 2 || cb.ReleaseMaster != 1 {
		t.Errorf("b became master %d times, released %d; want 2 and 1", cb.BecomeMaster, cb.ReleaseMaster)
	}
	if ca.MasterDownExpiries != 2 || cb.MasterDownExpiries != 2 {
		t.Errorf("master down expiries a %d b %d, want 2 each", ca.MasterDownExpiries, cb.MasterDownExpiries)
	}
	if ca.VIPHeals != 0 || cb.VIPHeals != 0 {
		t.Errorf("heals a %d b %d", ca.VIPHeals, cb.VIPHeals)
	}
}

// Counters of a stopped node stay readable.
func (n *liveNode) Counters() Counters { return n.inst.Counters() }
