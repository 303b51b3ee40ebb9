package vrrp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
	"github.com/vipd/vipd/vrrp/wire"
)

// segment is an in-memory L2 segment: what one conn sends, every other conn on
// the wire receives, with TTL 255, as multicast would deliver it.
type segment struct {
	mu    sync.Mutex
	conns []*wireConn
	cut   map[*wireConn]bool
}

type wireConn struct {
	w      *segment
	in     chan wirePkt
	closed chan struct{}
	once   sync.Once
}

type wirePkt struct {
	b        []byte
	src, dst netip.Addr
}

func (w *segment) open() *wireConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := &wireConn{w: w, in: make(chan wirePkt, 256), closed: make(chan struct{})}
	w.conns = append(w.conns, c)
	return c
}

func (w *segment) setCut(c *wireConn, cut bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut == nil {
		w.cut = map[*wireConn]bool{}
	}
	w.cut[c] = cut
}

func (c *wireConn) Send(b []byte, src, dst netip.Addr) error {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if c.w.cut[c] {
		return nil
	}
	for _, o := range c.w.conns {
		if o == c || c.w.cut[o] {
			continue
		}
		select {
		case o.in <- wirePkt{append([]byte(nil), b...), src, dst}:
		default:
		}
	}
	return nil
}

func (c *wireConn) Recv(buf []byte) ([]byte, wire.RecvMeta, error) {
	select {
	case p := <-c.in:
		n := copy(buf, p.b)
		return buf[:n], wire.RecvMeta{Src: p.src, Dst: p.dst, TTL: 255}, nil
	case <-c.closed:
		return nil, wire.RecvMeta{}, net.ErrClosed
	}
}

func (c *wireConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// fakePlane records which VIPs are held.
type fakePlane struct {
	mu        sync.Mutex
	held      map[netip.Prefix]bool
	announces int
}

func (p *fakePlane) AddAddrs(_ context.Context, _ string, vips []config.VIP) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[netip.Prefix]bool{}
	}
	for _, v := range vips {
		p.held[v.Prefix] = true
	}
	return nil
}

func (p *fakePlane) DelAddrs(_ context.Context, _ string, vips []config.VIP) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range vips {
		delete(p.held, v.Prefix)
	}
	return nil
}

func (p *fakePlane) AddRoutes(context.Context, string, []config.Route) error { return nil }
func (p *fakePlane) DelRoutes(context.Context, string, []config.Route) error { return nil }
func (p *fakePlane) Announce(context.Context, string, net.HardwareAddr, []config.VIP) error {
	p.mu.Lock()
	p.announces++
	p.mu.Unlock()
	return nil
}

func (p *fakePlane) HasAddr(_ string, a netip.Addr) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pf := range p.held {
		if pf.Addr() == a {
			return true, nil
		}
	}
	return false, nil
}

func (p *fakePlane) holds() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held) > 0
}

type testNode struct {
	inst   *Instance
	plane  *fakePlane
	conn   *wireConn
	tr     *Transport
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t *testing.T, w *segment, addr string, prio int, mutate func(*config.Instance)) *testNode {
	t.Helper()
	ic := &config.Instance{
		Name: "VI_1", Interface: "eth0", VRID: 51, Priority: prio, Version: 3,
		AdvertInt: config.Duration(20 * time.Millisecond), State: config.StateBackup,
		VIPs: []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}},
		Garp: config.Garp{MasterRepeat: 1},
	}
	if mutate != nil {
		mutate(ic)
	}
	n := &testNode{plane: &fakePlane{}, conn: w.open(), done: make(chan struct{})}
	n.tr = NewTransportWith(nil, func(string, bool) (PacketConn, error) { return n.conn, nil })
	n.inst = NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr(addr), Plane: n.plane,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := n.tr.Attach(n.inst); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.done); n.inst.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	n.cancel()
	<-n.done
	n.tr.Close()
}

func (n *testNode) state() State { return n.inst.Status().State }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRuntimeElectsHighestPriorityAndFailsOverOnStop(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 100, nil)
	b := startNode(t, w, "10.0.0.2", 200, nil)
	eventually(t, "b MASTER, a BACKUP", func() bool {
		return b.state() == StateMaster && a.state() == StateBackup && b.plane.holds() && !a.plane.holds()
	})
	if b.plane.announces == 0 {
		t.Error("the new master sent no GARP round")
	}
	b.stop() // priority 0 + release
	if b.plane.holds() {
		t.Fatal("stopped master still holds its VIPs")
	}
	eventually(t, "a takes over", func() bool { return a.state() == StateMaster && a.plane.holds() })
	if c := a.inst.Status().Cause; !strings.HasPrefix(c, "received priority 0 from 10.0.0.2") {
		t.Errorf("cause %q does not name the priority 0 advert", c)
	}
}

func TestRuntimeBackupTakesOverWhenTheMasterFallsSilent(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 100, nil)
	b := startNode(t, w, "10.0.0.2", 200, nil)
	eventually(t, "b MASTER", func() bool { return b.state() == StateMaster && a.state() == StateBackup })
	w.setCut(b.conn, true) // b's adverts vanish (crash as seen from the wire)
	eventually(t, "a MASTER", func() bool { return a.state() == StateMaster })
	w.setCut(b.conn, false) // b is heard again and preempts
	eventually(t, "a back to BACKUP", func() bool { return a.state() == StateBackup && !a.plane.holds() })
}

func TestRuntimePriorityChangeHandsOver(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 150, nil)
	b := startNode(t, w, "10.0.0.2", 100, nil)
	eventually(t, "a MASTER", func() bool { return a.state() == StateMaster && b.state() == StateBackup })
	if err := a.inst.SetPriority(context.Background(), 50); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b MASTER after a's priority fell", func() bool { return b.state() == StateMaster && a.state() == StateBackup })
	if got := a.inst.Status().EffectivePriority; got != 50 {
		t.Errorf("effective priority %d, want 50", got)
	}
}

func TestRuntimeFaultReleasesAndRecovers(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 150, nil)
	eventually(t, "a MASTER", func() bool { return a.state() == StateMaster })
	ctx := context.Background()
	if err := a.inst.SetFault(ctx, "link", "interface eth0 down"); err != nil {
		t.Fatal(err)
	}
	if a.state() != StateFault || a.plane.holds() {
		t.Fatalf("state %v holds %v after fault", a.state(), a.plane.holds())
	}
	if c := a.inst.Status().Cause; c != "interface eth0 down" {
		t.Errorf("cause %q", c)
	}
	if err := a.inst.SetFault(ctx, "link", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a MASTER again", func() bool { return a.state() == StateMaster && a.plane.holds() })
}

func TestRuntimeDropsAdvertsWithWrongPassword(t *testing.T) {
	w := &segment{}
	withPass := func(p string) func(*config.Instance) {
		return func(ic *config.Instance) {
			ic.Version = 2
			ic.AdvertInt = config.Duration(time.Second)
			ic.Auth = &config.Auth{Type: "PASS", Pass: p}
		}
	}
	a := startNode(t, w, "10.0.0.1", 100, withPass("right"))
	b := startNode(t, w, "10.0.0.2", 200, withPass("wrong"))
	_ = b
	// Both end up MASTER: a never accepts b's adverts. a's drop counter
	// says why.
	eventually(t, "auth_pass drops counted", func() bool {
		return DropTotals(a.tr.Drops())[wire.DropAuthPass] > 0
	})
	if a.state() == StateBackup && a.inst.Status().Master == netip.MustParseAddr("10.0.0.2") {
		t.Fatal("a accepted an advert with the wrong password")
	}
	found := false
	for _, d := range a.tr.Drops() {
		if d.Reason == wire.DropAuthPass {
			found = d.Ifname == "eth0" && d.VRID == a.inst.VRID()
			if !found {
				t.Errorf("auth_pass drop counted on %s VRID %d, want eth0 VRID %d", d.Ifname, d.VRID, a.inst.VRID())
			}
		}
	}
	if !found {
		t.Error("no per-interface, per-VRID auth_pass drop count")
	}
}

func TestTransportRefusesTwoInstancesWithOneVRID(t *testing.T) {
	w := &segment{}
	n := startNode(t, w, "10.0.0.1", 100, nil)
	other := NewInstance(InstanceOptions{Config: n.inst.Config(), Primary: netip.MustParseAddr("10.0.0.1"), Plane: &fakePlane{}})
	err := n.tr.Attach(other)
	if err == nil {
		t.Fatal("second instance with VRID 51 on eth0 attached")
	}
	if !strings.Contains(err.Error(), "already used by instance VI_1") {
		t.Fatalf("error %q does not name the instance holding the VRID", err)
	}
}

// groupNode is one node running a sync group of instances on one wire.
type groupNode struct {
	insts  []*Instance
	planes []*fakePlane
	group  *SyncGroup
	tr     *Transport
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startGroupNode(t *testing.T, w *segment, addr string, prio int, vrids ...int) *groupNode {
	t.Helper()
	conn := w.open()
	ctx, cancel := context.WithCancel(context.Background())
	g := &groupNode{cancel: cancel}
	g.tr = NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	g.group = NewSyncGroup("G1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, vrid := range vrids {
		ic := &config.Instance{
			Name: "VI_" + strconv.Itoa(vrid), Interface: "eth0", VRID: vrid, Priority: prio, Version: 3,
			AdvertInt: config.Duration(20 * time.Millisecond), State: config.StateBackup,
			VIPs: []config.VIP{{Prefix: netip.MustParsePrefix("10.0." + strconv.Itoa(vrid) + ".100/24")}},
		}
		p := &fakePlane{}
		inst := NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr(addr), Plane: p,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		g.group.Add(inst)
		if err := g.tr.Attach(inst); err != nil {
			t.Fatal(err)
		}
		g.insts = append(g.insts, inst)
		g.planes = append(g.planes, p)
	}
	for _, inst := range g.insts {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); inst.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); g.wg.Wait(); g.tr.Close() })
	return g
}

func (g *groupNode) all(s State) bool {
	for _, inst := range g.insts {
		if inst.Status().State != s {
			return false
		}
	}
	return true
}

func TestSyncGroupMembersFaultAndFailOverTogether(t *testing.T) {
	w := &segment{}
	a := startGroupNode(t, w, "10.0.0.1", 200, 51, 52)
	b := startGroupNode(t, w, "10.0.0.2", 100, 51, 52)
	eventually(t, "a's group MASTER, b's BACKUP", func() bool { return a.all(StateMaster) && b.all(StateBackup) })
	if a.group.State() != StateMaster {
		t.Fatalf("group state %v", a.group.State())
	}

	// One member of a faults: the whole group goes FAULT and b takes both.
	if err := a.insts[0].SetFault(context.Background(), "link", "interface eth1 down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a all FAULT, b all MASTER", func() bool { return a.all(StateFault) && b.all(StateMaster) })
	for k, p := range a.planes {
		if p.holds() {
			t.Errorf("a's member %d holds VIPs in FAULT", k)
		}
	}
	if c := a.insts[1].Status().Cause; !strings.Contains(c, "sync group G1: VI_51 in FAULT") {
		t.Errorf("member cause %q does not name the faulty member", c)
	}

	// Recovery: a preempts both back.
	if err := a.insts[0].SetFault(context.Background(), "link", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a all MASTER again, b all BACKUP", func() bool { return a.all(StateMaster) && b.all(StateBackup) })
}

func TestSyncGroupMemberWaitsWhileAnotherStillHearsItsMaster(t *testing.T) {
	w := &segment{}
	// b runs only VRID 51 at priority 200; a's group has 51 and 52 at 100.
	b := startGroupNode(t, w, "10.0.0.2", 200, 51)
	a := startGroupNode(t, w, "10.0.0.1", 100, 51, 52)
	eventually(t, "b MASTER for 51", func() bool { return b.all(StateMaster) })
	// a's member 52 has no master and wants MASTER, but member 51 still
	// hears b: the group holds both in BACKUP (keepalived prefers BACKUP).
	time.Sleep(300 * time.Millisecond) // many master-down intervals at 20 ms adverts
	if !a.all(StateBackup) {
		t.Fatalf("a's group left BACKUP while one member still hears a master: %v %v",
			a.insts[0].Status().State, a.insts[1].Status().State)
	}
	if !a.insts[1].wantsMaster() {
		t.Error("member 52 does not report that it wants MASTER")
	}
	// b stops: now both want MASTER and the group goes MASTER together.
	b.cancel()
	eventually(t, "a's group MASTER", func() bool { return a.all(StateMaster) })
}

func TestSyncGroupMembersFailingTogetherRecoverTogether(t *testing.T) {
	w := &segment{}
	a := startGroupNode(t, w, "10.0.0.1", 200, 51, 52)
	eventually(t, "a MASTER", func() bool { return a.all(StateMaster) })
	ctx := context.Background()
	// One cause (say, a shared uplink) faults both members on their own.
	for _, inst := range a.insts {
		if err := inst.SetFault(ctx, "link", "interface eth1 down"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a FAULT", func() bool { return a.all(StateFault) })
	for _, inst := range a.insts {
		if err := inst.SetFault(ctx, "link", ""); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a MASTER again", func() bool { return a.all(StateMaster) })
}

func TestRequestsToAStoppedInstanceDoNotBlock(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 100, nil)
	eventually(t, "a MASTER", func() bool { return a.state() == StateMaster })
	a.stop()
	done := make(chan error, 1)
	go func() { done <- a.inst.SetTracking(context.Background(), 50, "") }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("SetTracking on a stopped instance: %v, want ErrStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetTracking on a stopped instance blocked")
	}
}

func TestWaitTrackingHoldsInitUntilTheFirstResult(t *testing.T) {
	w := &segment{}
	conn := w.open()
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	defer tr.Close()
	ic := &config.Instance{Name: "VI_1", Interface: "eth0", VRID: 51, Priority: 100, Version: 3,
		AdvertInt: config.Duration(20 * time.Millisecond),
		VIPs:      []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}}
	inst := NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr("10.0.0.1"), Plane: &fakePlane{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), WaitTracking: true})
	if err := tr.Attach(inst); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); inst.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(200 * time.Millisecond) // ten master-down intervals
	if s := inst.Status().State; s != StateInit {
		t.Fatalf("state %v before any tracking result, want INIT", s)
	}
	if err := inst.SetTracking(ctx, 100, "track_script chk failed"); err != nil {
		t.Fatal(err)
	}
	st := inst.Status()
	if st.State != StateFault || !strings.Contains(st.Cause, "track_script chk failed") {
		t.Fatalf("after a failing first result: %v %q, want FAULT naming the script", st.State, st.Cause)
	}
	if err := inst.SetTracking(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "MASTER once the fault clears", func() bool { return inst.Status().State == StateMaster })
}

func (p *fakePlane) announced() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.announces
}

func TestMasterRefreshesGARPsOnSchedule(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 200, func(ic *config.Instance) {
		ic.Garp = config.Garp{MasterRepeat: 1, MasterRefresh: config.Duration(30 * time.Millisecond), MasterRefreshRepeat: 2}
	})
	eventually(t, "a MASTER", func() bool { return a.state() == StateMaster })
	first := a.plane.announced()
	// garp_master_refresh: rounds of 2 every 30 ms while MASTER.
	eventually(t, "refresh rounds", func() bool { return a.plane.announced() >= first+6 })
}

func TestMasterRefreshesCachesWhenALowerPriorityMasterSpeaks(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 200, func(ic *config.Instance) {
		ic.Garp = config.Garp{MasterRepeat: 1, LowerPrioRepeat: 3}
	})
	eventually(t, "a MASTER", func() bool { return a.state() == StateMaster })
	before := a.plane.announced()
	// A confused router claims the VRID with priority 50.
	rogue := w.open()
	adv := wire.Advert{Version: 3, VRID: 51, Priority: 50, Interval: 20 * time.Millisecond,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	src := netip.MustParseAddr("10.0.0.9")
	b, err := adv.AppendMarshal(nil, src, wire.MulticastGroup4, wire.ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rogue.Send(b, src, wire.MulticastGroup4); err != nil {
		t.Fatal(err)
	}
	eventually(t, "garp_lower_prio_repeat round", func() bool { return a.plane.announced() >= before+3 })
	if a.state() != StateMaster {
		t.Fatalf("a left MASTER for a lower priority advert: %v", a.state())
	}
}

func TestGARPBurstIsSpreadByGarpInterval(t *testing.T) {
	w := &segment{}
	a := startNode(t, w, "10.0.0.1", 200, func(ic *config.Instance) {
		ic.Garp = config.Garp{MasterRepeat: 4, Interval: config.Duration(500 * time.Millisecond)}
	})
	eventually(t, "a MASTER", func() bool { return a.state() == StateMaster })
	if got := a.plane.announced(); got != 1 {
		t.Fatalf("%d announcements at once, want 1 (the rest 500 ms apart)", got)
	}
	eventually(t, "the whole burst of 4", func() bool { return a.plane.announced() == 4 })
}

// delayedNode runs one instance on a fake clock with a vrrp_startup_delay.
type delayedNode struct {
	inst   *Instance
	clk    *clock.Fake
	t0     time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

func startDelayed(t *testing.T, delay time.Duration, waitTracking bool, prio int) *delayedNode {
	t.Helper()
	w := &segment{}
	conn := w.open()
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	d := &delayedNode{clk: clock.NewFake(t0), t0: t0, done: make(chan struct{})}
	ic := &config.Instance{Name: "VI_1", Interface: "eth0", VRID: 51, Priority: prio, Version: 3,
		AdvertInt: config.Duration(100 * time.Millisecond),
		VIPs:      []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}}
	d.inst = NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr("10.0.0.1"), Plane: &fakePlane{},
		Clock: d.clk, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), WaitTracking: waitTracking, StartupDelay: delay})
	if err := tr.Attach(d.inst); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { defer close(d.done); d.inst.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-d.done; tr.Close() })
	return d
}

// armedAt waits until the instance took every timer firing and armed its
// timer for t0+at.
func (d *delayedNode) armedAt(t *testing.T, at time.Duration) {
	t.Helper()
	eventually(t, fmt.Sprintf("timer armed for +%v", at), func() bool {
		next, ok := d.clk.NextDeadline()
		return d.clk.Fired() == 0 && ok && next.Equal(d.t0.Add(at))
	})
}

func TestStartupDelayHoldsInitThenStarts(t *testing.T) {
	const delay = 5 * time.Second
	mdi := 360937500 * time.Nanosecond // v3 priority 100 at 100 ms
	d := startDelayed(t, delay, false, 100)
	d.armedAt(t, delay)
	st := d.inst.Status()
	if st.State != StateInit || !strings.Contains(st.Cause, "vrrp_startup_delay") {
		t.Fatalf("during the delay: %v %q, want INIT naming vrrp_startup_delay", st.State, st.Cause)
	}
	d.clk.Advance(delay - time.Nanosecond)
	d.armedAt(t, delay)
	if s := d.inst.Status().State; s != StateInit {
		t.Fatalf("a nanosecond before the end of the delay: %v, want INIT", s)
	}
	// The delay ends: start-up as usual, the down timer counted from here.
	d.clk.Advance(time.Nanosecond)
	d.armedAt(t, delay+mdi)
	if s := d.inst.Status().State; s != StateBackup {
		t.Fatalf("after the delay: %v, want BACKUP", s)
	}
	if n := d.inst.Counters().AdvertsSent; n != 0 {
		t.Fatalf("%d adverts sent before MASTER", n)
	}
	d.clk.Advance(mdi)
	eventually(t, "MASTER", func() bool { return d.inst.Status().State == StateMaster })
	if d.inst.Counters().AdvertsSent == 0 {
		t.Fatal("no advert as MASTER")
	}
}

func TestStartupDelayHoldsAnOwnerAndTrackedInstancesToo(t *testing.T) {
	const delay = 2 * time.Second
	// The address owner goes MASTER at start-up: not before the delay.
	owner := startDelayed(t, delay, false, 255)
	owner.armedAt(t, delay)
	if s := owner.inst.Status().State; s != StateInit || owner.inst.Counters().AdvertsSent != 0 {
		t.Fatalf("owner during the delay: %v, %d adverts", s, owner.inst.Counters().AdvertsSent)
	}
	owner.clk.Advance(delay)
	eventually(t, "owner MASTER", func() bool { return owner.inst.Status().State == StateMaster })

	// WaitTracking: a first result within the delay does not start it.
	tracked := startDelayed(t, delay, true, 100)
	tracked.armedAt(t, time.Hour) // nothing due: waiting for tracking
	ctx := context.Background()
	if err := tracked.inst.SetTracking(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	tracked.armedAt(t, delay)
	if s := tracked.inst.Status().State; s != StateInit {
		t.Fatalf("tracked instance with its first result inside the delay: %v, want INIT", s)
	}
	tracked.clk.Advance(delay)
	eventually(t, "tracked BACKUP after the delay", func() bool { return tracked.inst.Status().State == StateBackup })

	// No delay: WaitTracking alone behaves as before.
	plain := startDelayed(t, 0, true, 100)
	if err := plain.inst.SetTracking(ctx, 100, ""); err != nil {
		t.Fatal(err)
	}
	if s := plain.inst.Status().State; s != StateBackup {
		t.Fatalf("without a delay the first result starts it: %v, want BACKUP", s)
	}
}

// TestMisconfiguredPeersDropsAreReportedRateLimited: a peer whose adverts
// fail the checksum (a peer computing it another way) or carry a wrong
// address count is reported (logged, and on the stream), at most once a
// second however many arrive, and a flood of them never crowds out the
// valid adverts that keep the backup a backup.
func TestMisconfiguredPeersDropsAreReportedRateLimited(t *testing.T) {
	w := &segment{}
	var mu sync.Mutex
	reports := map[wire.DropReason]int{}
	b := &testNode{plane: &fakePlane{}, conn: w.open(), done: make(chan struct{})}
	b.tr = NewTransportWith(nil, func(string, bool) (PacketConn, error) { return b.conn, nil })
	ic := &config.Instance{Name: "VI_1", Interface: "eth0", VRID: 51, Priority: 100, Version: 3,
		AdvertInt: config.Duration(20 * time.Millisecond), State: config.StateBackup,
		VIPs: []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}}
	b.inst = NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr("10.0.0.2"), Plane: b.plane,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPeerDrop: func(r wire.DropReason, _ netip.Addr, _ string) { mu.Lock(); reports[r]++; mu.Unlock() }})
	if err := b.tr.Attach(b.inst); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { defer close(b.done); b.inst.Run(ctx) }()
	t.Cleanup(b.stop)
	master := startNode(t, w, "10.0.0.1", 200, nil)
	eventually(t, "b BACKUP behind the master", func() bool {
		return b.state() == StateBackup && master.state() == StateMaster
	})
	adv := wire.Advert{Version: 3, VRID: 51, Priority: 150, Interval: 20 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	src, dst := netip.MustParseAddr("10.0.0.9"), wire.MulticastGroup4
	pkt, err := adv.AppendMarshal(nil, src, dst, wire.ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	pkt[6] ^= 0xff // the checksum
	bad := b.conn
	start := time.Now()
	sent := uint64(0) // what entered the wire: a full wire buffer drops the rest, as a NIC would
	for k := 0; k < 500; k++ {
		for _, o := range w.conns {
			if o != bad {
				continue
			}
			select {
			case o.in <- wirePkt{append([]byte(nil), pkt...), src, dst}:
				sent++
			default:
			}
		}
		if k%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	eventually(t, "every bad advert that entered the wire counted", func() bool {
		return DropTotals(b.tr.Drops())[wire.DropBadChecksum] == sent
	})
	eventually(t, "bad_checksum reported", func() bool { mu.Lock(); defer mu.Unlock(); return reports[wire.DropBadChecksum] > 0 })
	mu.Lock()
	n := reports[wire.DropBadChecksum]
	mu.Unlock()
	if allowed := int(time.Since(start)/dropReportEvery) + 1; n > allowed {
		t.Errorf("%d bad adverts over %v reported %d times; want at most one a second (%d)", sent, time.Since(start), n, allowed)
	}
	if sent < 100 || b.state() != StateBackup {
		t.Errorf("after the flood of %d: state %v, want BACKUP (and at least 100 on the wire)", sent, b.state())
	}
}

// TestResumedSyncGroupRunsNoGroupNotify: members resumed after a restart
// of vipd make the group MASTER without the group's state change (its
// notify_master would run a script for nothing that happened).
func TestResumedSyncGroupRunsNoGroupNotify(t *testing.T) {
	conn := newRecConn()
	tr := NewTransportWith(nil, func(string, bool) (PacketConn, error) { return conn, nil })
	defer tr.Close()
	g := NewSyncGroup("G1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	var mu sync.Mutex
	var states []State
	g.OnState = func(_ string, s State) { mu.Lock(); states = append(states, s); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var insts []*Instance
	for _, vrid := range []int{1, 2} {
		ic := &config.Instance{Name: "VI_" + strconv.Itoa(vrid), Interface: "eth0", VRID: vrid, Priority: 150, Version: 3,
			AdvertInt: config.Duration(20 * time.Millisecond),
			VIPs:      []config.VIP{{Prefix: netip.MustParsePrefix("10.0." + strconv.Itoa(vrid) + ".100/24")}}}
		inst := NewInstance(InstanceOptions{Config: ic, Primary: netip.MustParseAddr("10.0.0.1"), Plane: &fakePlane{},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Resume: &Resume{Cause: "resumed MASTER after a restart of vipd"}})
		g.Add(inst)
		if err := tr.Attach(inst); err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
	}
	for _, inst := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); inst.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for insts[0].Status().State != StateMaster || insts[1].Status().State != StateMaster {
		if time.Now().After(deadline) {
			t.Fatalf("members did not resume MASTER: %v %v", insts[0].Status().State, insts[1].Status().State)
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(states) != 0 {
		t.Errorf("group state changes %v after a resume, want none", states)
	}
}
