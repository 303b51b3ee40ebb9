package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vipd/vipd/config"
)

// AddressPlane is what an instance needs from the VIP side. *vip.Netlink
// and *vip.Memory implement it.
type AddressPlane interface {
	AddAddrs(ctx context.Context, ifname string, vips []config.VIP) error
	DelAddrs(ctx context.Context, ifname string, vips []config.VIP) error
	AddRoutes(ctx context.Context, defaultDev string, routes []config.Route) error
	DelRoutes(ctx context.Context, defaultDev string, routes []config.Route) error
	Announce(ctx context.Context, ifname string, srcMAC net.HardwareAddr, vips []config.VIP) error
}

// Sender sends one advert payload (no IP header) from src to dst.
type Sender interface {
	Send(payload []byte, src, dst netip.Addr) error
}

// Transition is published on every state change.
type Transition struct {
	Instance string
	VRID     int
	From, To State
	Cause    string
	Priority int // effective priority at the time
	At       time.Time
}

// InstanceOptions configure an Instance.
type InstanceOptions struct {
	Config  *config.Instance // normalized and validated
	Primary netip.Addr       // our advert source address (and tie-breaker)
	Plane   AddressPlane
	Clock   Clock // nil: SystemClock
	Log     *slog.Logger
	// OnTransition is called from the instance goroutine after each state
	// change; it must not block for long (the agent queues notify scripts).
	OnTransition func(Transition)
	// WaitTracking keeps the instance in INIT until the first SetTracking,
	// as keepalived waits for its tracked scripts' first results.
	WaitTracking bool
	// SendInterface, when set, is where adverts leave from instead of
	// Config.Interface (use_vmac with vmac_xmit_base: the base interface).
	SendInterface string
}

// InstanceStatus is a snapshot of an instance for the API.
type InstanceStatus struct {
	Name              string
	VRID              int
	Interface         string
	Version           int
	State             State
	Priority          int
	EffectivePriority int
	VIPs              []netip.Prefix
	Master            netip.Addr
	Since             time.Time
	Cause             string
}

type rxItem struct {
	adv  *Advert
	meta RecvMeta
	drop *DropError
	res  RecvResult
}

type garpRound struct {
	at time.Time
	n  int
}

type ctlItem struct {
	fn   func(now time.Time) []Action
	done chan struct{}
}

// Instance runs one vrrp_instance: it feeds the state machine with received
// adverts, timer expiries and control requests, and carries out the actions
// (adverts on the wire, VIPs through the AddressPlane, GARP/NA rounds). One
// goroutine (Run) owns all its state.
type Instance struct {
	cfg     *config.Instance
	primary netip.Addr
	plane   AddressPlane
	clock   Clock
	log     *slog.Logger
	onTrans func(Transition)

	sender   Sender
	expect   RecvExpect
	ckopt    ChecksumOpt
	v6       bool
	vips     []config.VIP // the family of the instance: advertised and added
	evips    []config.VIP // virtual_ipaddress_excluded and other-family VIPs: added, not advertised
	allVIPs  []config.VIP // vips then evips: what the plane adds, removes and announces
	advAddrs []netip.Addr
	dsts     []netip.Addr

	rx  chan rxItem
	ctl chan ctlItem

	m       *Machine
	buf     []byte
	holding bool // VIPs are ours

	garpRounds  []garpRound // pending GARP/NA rounds, in time order
	garpRefresh time.Time

	waitTracking bool
	sendIf       string
	started      bool
	trackFault   string // the tracking fault in force, "" when none

	group      *SyncGroup
	forcing    bool        // applying an order of the sync group
	wantMaster atomic.Bool // mirror of m.WantMaster() for the group
	omu        sync.Mutex
	orders     []func(now time.Time) []Action
	orderSig   chan struct{}
	stopped    chan struct{} // closed when Run returns

	warned map[string]time.Time // rate-limits per-sender warnings

	mu     sync.Mutex
	status InstanceStatus
}

// NewInstance builds an instance; Attach it to a Transport, then Run it.
func NewInstance(o InstanceOptions) *Instance {
	c := o.Config
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	i := &Instance{
		cfg:          c,
		primary:      o.Primary,
		plane:        o.Plane,
		clock:        o.Clock,
		log:          o.Log.With("instance", c.Name, "vrid", c.VRID),
		onTrans:      o.OnTransition,
		waitTracking: o.WaitTracking,
		sendIf:       o.SendInterface,
		v6:           c.IsIPv6(),
		rx:           make(chan rxItem, 16),
		ctl:          make(chan ctlItem),
		orderSig:     make(chan struct{}, 1),
		stopped:      make(chan struct{}),
		warned:       map[string]time.Time{},
	}
	for _, v := range c.VIPs {
		if v.Prefix.Addr().Is6() == i.v6 {
			i.vips = append(i.vips, v)
			i.advAddrs = append(i.advAddrs, v.Prefix.Addr())
		} else {
			i.evips = append(i.evips, v)
		}
	}
	i.evips = append(i.evips, c.ExcludedVIPs...)
	i.allVIPs = append(append([]config.VIP(nil), i.vips...), i.evips...)
	if len(c.UnicastPeers) > 0 {
		i.dsts = append(i.dsts, c.UnicastPeers...)
	} else if i.v6 {
		i.dsts = []netip.Addr{MulticastGroup6}
	} else {
		i.dsts = []netip.Addr{MulticastGroup4}
	}
	i.ckopt = ChecksumOpt{OldUnicastChecksum: c.OldUnicastChecksum}
	i.expect = RecvExpect{
		Version:         c.Version,
		Interval:        c.AdvertInt.D(),
		Unicast:         len(c.UnicastPeers) > 0,
		UnicastPeers:    c.UnicastPeers,
		CheckUnicastSrc: c.CheckUnicastSrc,
		OwnAddrs:        []netip.Addr{o.Primary},
		VIPs:            i.advAddrs,
	}
	if c.Version == 2 && c.Auth != nil && c.Auth.Type == "PASS" {
		i.expect.AuthType = AuthPass
		i.expect.AuthPass = c.Auth.Pass
	}
	prio := c.Priority
	i.m = NewMachine(Params{
		Version:      c.Version,
		Priority:     uint8(prio),
		AdvertInt:    c.AdvertInt.D(),
		NoPreempt:    c.NoPreempt,
		PreemptDelay: c.PreemptDelay.D(),
		StartMaster:  c.State == config.StateMaster,
		Primary:      o.Primary,
	})
	i.status = InstanceStatus{
		Name: c.Name, VRID: c.VRID, Interface: c.Interface, Version: c.Version,
		State: StateInit, Priority: prio, EffectivePriority: prio,
		Since: o.Clock.Now(), Cause: "configured",
	}
	for _, v := range c.VIPs {
		i.status.VIPs = append(i.status.VIPs, v.Prefix)
	}
	return i
}

// Config returns the configuration the instance runs.
func (i *Instance) Config() *config.Instance { return i.cfg }

// Status returns a snapshot.
func (i *Instance) Status() InstanceStatus {
	i.mu.Lock()
	defer i.mu.Unlock()
	s := i.status
	s.VIPs = append([]netip.Prefix(nil), s.VIPs...)
	return s
}

// deliver hands a received packet to the instance without blocking the
// socket reader; a full queue drops it (counted by the caller).
func (i *Instance) deliver(it rxItem) bool {
	select {
	case i.rx <- it:
		return true
	default:
		return false
	}
}

// do runs fn on the instance goroutine and waits for it (or ctx).
func (i *Instance) do(ctx context.Context, fn func(now time.Time) []Action) error {
	it := ctlItem{fn: fn, done: make(chan struct{})}
	select {
	case i.ctl <- it:
	case <-ctx.Done():
		return ctx.Err()
	case <-i.stopped:
		return ErrStopped
	}
	select {
	case <-it.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-i.stopped:
		return ErrStopped
	}
}

// ErrStopped is returned by requests to an instance whose Run has ended.
var ErrStopped = errors.New("vrrp: instance stopped")

// doForced queues an order of the sync group; orders run in the order
// given, on the instance goroutine, and their transitions are not reported
// back to the group.
func (i *Instance) doForced(fn func(now time.Time) []Action) {
	i.omu.Lock()
	i.orders = append(i.orders, fn)
	i.omu.Unlock()
	select {
	case i.orderSig <- struct{}{}:
	default:
	}
}

func (i *Instance) runOrders() {
	i.omu.Lock()
	orders := i.orders
	i.orders = nil
	i.omu.Unlock()
	i.forcing = true
	for _, fn := range orders {
		i.apply(fn(i.clock.Now()))
	}
	i.forcing = false
}

// wantsMaster and currentState are read by the sync group from other
// goroutines.
func (i *Instance) wantsMaster() bool { return i.wantMaster.Load() }

func (i *Instance) currentState() State {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.status.State
}

func (i *Instance) startup() {
	i.started = true
	i.apply(i.m.Step(i.clock.Now(), Event{Kind: EvStartup}))
}

// SetTracking applies the result of the instance's tracked scripts,
// interfaces and files: the effective priority, and fault ("" when none) —
// the reason the instance must stay in FAULT. The first call starts an
// instance created with WaitTracking.
func (i *Instance) SetTracking(ctx context.Context, effective int, fault string) error {
	effective = i.clampPriority(effective)
	return i.do(ctx, func(now time.Time) []Action {
		i.mu.Lock()
		i.status.EffectivePriority = effective
		i.mu.Unlock()
		acts := i.m.Step(now, Event{Kind: EvPriority, Priority: uint8(effective)})
		switch {
		case fault != "" && i.trackFault == "":
			acts = append(acts, i.m.Step(now, Event{Kind: EvFault, Cause: fault})...)
			i.reportFault(true)
		case fault == "" && i.trackFault != "":
			acts = append(acts, i.m.Step(now, Event{Kind: EvFaultClear})...)
			i.reportFault(false)
		}
		i.trackFault = fault
		if !i.started {
			i.apply(acts)
			i.started = true
			return i.m.Step(now, Event{Kind: EvStartup})
		}
		return acts
	})
}

// clampPriority keeps a computed priority within 1..254, as keepalived
// does; 255 stays only for an instance configured as the address owner.
func (i *Instance) clampPriority(p int) int {
	if p == PriorityOwner && i.cfg.Priority == PriorityOwner {
		return p
	}
	return min(max(p, 1), 254)
}

// SetPriority changes the effective priority (tracking, etcd overrides). As
// in keepalived, a tracked priority stays within 1..254; 255 is only for an
// address owner's configured priority.
func (i *Instance) SetPriority(ctx context.Context, p int) error {
	p = i.clampPriority(p)
	return i.do(ctx, func(now time.Time) []Action {
		i.mu.Lock()
		i.status.EffectivePriority = p
		i.mu.Unlock()
		return i.m.Step(now, Event{Kind: EvPriority, Priority: uint8(p)})
	})
}

// SetFault raises (on) or clears a fault with its cause.
func (i *Instance) SetFault(ctx context.Context, on bool, cause string) error {
	kind := EvFaultClear
	if on {
		kind = EvFault
	}
	return i.do(ctx, func(now time.Time) []Action {
		acts := i.m.Step(now, Event{Kind: kind, Cause: cause})
		i.reportFault(on)
		return acts
	})
}

// reportFault tells the sync group about a fault of our own.
func (i *Instance) reportFault(on bool) {
	if i.group != nil {
		i.group.memberFault(i, on)
	}
}

// Run runs the instance until ctx is cancelled, then shuts down: a master
// sends priority 0 and releases its VIPs. It returns when that is done.
func (i *Instance) Run(ctx context.Context) {
	defer close(i.stopped)
	timer := i.clock.NewTimer(time.Hour)
	defer timer.Stop()
	if !i.waitTracking {
		i.startup()
	}
	for {
		i.armTimer(timer)
		select {
		case <-ctx.Done():
			i.apply(i.m.Step(i.clock.Now(), Event{Kind: EvShutdown}))
			return
		case it := <-i.rx:
			i.receive(it)
		case c := <-i.ctl:
			i.apply(c.fn(i.clock.Now()))
			close(c.done)
		case <-i.orderSig:
			i.runOrders()
		case <-timer.C():
			now := i.clock.Now()
			i.apply(i.m.Step(now, Event{Kind: EvTimer}))
			i.garpTick(now)
		}
	}
}

func (i *Instance) armTimer(t Timer) {
	now := i.clock.Now()
	next := i.m.NextDeadline()
	for _, g := range []time.Time{i.nextGarp()} {
		if !g.IsZero() && (next.IsZero() || g.Before(next)) {
			next = g
		}
	}
	d := time.Hour
	if !next.IsZero() {
		d = next.Sub(now)
		if d < 0 {
			d = 0
		}
	}
	if !t.Stop() {
		select {
		case <-t.C():
		default:
		}
	}
	t.Reset(d)
}

func (i *Instance) receive(it rxItem) {
	if it.drop != nil {
		// A misconfigured peer in our VRID (the transport only hands over
		// such drops): say it loudly, once a minute.
		i.warnOnce(string(it.drop.Reason)+it.meta.Src.String(), "dropped advert from a peer that disagrees with our configuration",
			"from", it.meta.Src, "reason", it.drop.Reason, "detail", it.drop.Detail)
		return
	}
	if it.res.AddrListDiffers {
		i.warnOnce("addrs"+it.meta.Src.String(), "peer advertises a different VIP list for this VRID",
			"from", it.meta.Src, "theirs", it.adv.Addrs, "ours", i.advAddrs)
	}
	if it.res.IntervalMismatch {
		i.warnOnce("ivl"+it.meta.Src.String(), "peer advertises a different advert interval (VRRPv3: following the master's)",
			"from", it.meta.Src, "theirs", it.adv.Interval, "ours", i.cfg.AdvertInt.D())
	}
	i.apply(i.m.Step(i.clock.Now(), Event{Kind: EvAdvert, From: it.meta.Src, Priority: it.adv.Priority, Interval: it.adv.Interval}))
	master, _ := i.m.Master()
	i.mu.Lock()
	i.status.Master = master
	i.mu.Unlock()
}

// maxWarnKeys bounds the rate-limiter's memory: a flood from many forged
// sources must not grow it without limit.
const maxWarnKeys = 256

func (i *Instance) warnOnce(key, msg string, args ...any) {
	now := i.clock.Now()
	if t, ok := i.warned[key]; ok && now.Sub(t) < time.Minute {
		return
	}
	if len(i.warned) >= maxWarnKeys {
		for k, t := range i.warned {
			if now.Sub(t) >= time.Minute {
				delete(i.warned, k)
			}
		}
		if len(i.warned) >= maxWarnKeys {
			return // still flooded: stay quiet rather than spam the log
		}
	}
	i.warned[key] = now
	i.log.Warn(msg, args...)
}

// apply carries out the state machine's actions in order.
func (i *Instance) apply(acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActSendAdvert:
			i.sendAdvert(a.Priority)
		case ActAcquire:
			i.acquire()
		case ActRelease:
			i.release()
		case ActTransition:
			i.transition(a)
			if i.group != nil && !i.forcing {
				i.group.memberTransition(i, a)
			}
		case ActWantMaster:
			i.wantMaster.Store(true)
			if i.group != nil && i.group.wantMaster(i) {
				i.apply(i.m.Step(i.clock.Now(), Event{Kind: EvForceMaster, Cause: a.Cause}))
			}
		case ActLowerPrioAnnounce:
			i.lowerPrioAnnounce()
		}
	}
	i.wantMaster.Store(i.m.WantMaster())
}

func (i *Instance) lowerPrioAnnounce() {
	if !i.holding || i.cfg.Garp.LowerPrioRepeat <= 0 {
		return
	}
	ctx, cancel := i.opCtx()
	defer cancel()
	i.announceN(ctx, i.cfg.Garp.LowerPrioRepeat)
	if d := i.cfg.Garp.LowerPrioDelay.D(); d > 0 {
		i.addGarpRound(garpRound{at: i.clock.Now().Add(d), n: i.cfg.Garp.LowerPrioRepeat})
	}
}

func (i *Instance) addGarpRound(r garpRound) {
	k := len(i.garpRounds)
	for k > 0 && i.garpRounds[k-1].at.After(r.at) {
		k--
	}
	i.garpRounds = append(i.garpRounds, garpRound{})
	copy(i.garpRounds[k+1:], i.garpRounds[k:])
	i.garpRounds[k] = r
}

func (i *Instance) sendAdvert(prio uint8) {
	if i.sender == nil {
		return
	}
	adv := Advert{
		Version:  i.cfg.Version,
		VRID:     uint8(i.cfg.VRID),
		Priority: prio,
		Interval: i.cfg.AdvertInt.D(),
		Addrs:    i.advAddrs,
	}
	if i.expect.AuthType == AuthPass {
		adv.AuthType = AuthPass
		copy(adv.AuthData[:], i.expect.AuthPass)
	}
	for _, dst := range i.dsts {
		b, err := adv.AppendMarshal(i.buf[:0], i.primary, dst, i.ckopt)
		if err != nil {
			i.warnOnce("marshal", "cannot build advert", "err", err)
			return
		}
		i.buf = b
		if err := i.sender.Send(b, i.primary, dst); err != nil {
			i.warnOnce("send"+dst.String(), "cannot send advert", "to", dst, "err", err)
		}
	}
}

func (i *Instance) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Second)
}

func (i *Instance) acquire() {
	ctx, cancel := i.opCtx()
	defer cancel()
	if err := i.plane.AddAddrs(ctx, i.cfg.Interface, i.allVIPs); err != nil {
		i.log.Error("cannot add VIPs", "err", err)
	}
	if len(i.cfg.Routes) > 0 {
		if err := i.plane.AddRoutes(ctx, i.cfg.Interface, i.cfg.Routes); err != nil {
			i.log.Error("cannot add virtual routes", "err", err)
		}
	}
	i.holding = true
	now := i.clock.Now()
	// keepalived: one round of garp_master_repeat at once, another after
	// garp_master_delay, then every garp_master_refresh if set.
	i.garpRounds = i.garpRounds[:0]
	i.announce(ctx)
	if d := i.cfg.Garp.MasterDelay.D(); d > 0 {
		i.addGarpRound(garpRound{at: now.Add(d), n: max(i.cfg.Garp.MasterRepeat, 1)})
	}
	i.garpRefresh = time.Time{}
	if r := i.cfg.Garp.MasterRefresh.D(); r > 0 {
		i.garpRefresh = now.Add(r)
	}
}

func (i *Instance) release() {
	ctx, cancel := i.opCtx()
	defer cancel()
	i.garpRounds = i.garpRounds[:0]
	i.garpRefresh = time.Time{}
	if len(i.cfg.Routes) > 0 {
		if err := i.plane.DelRoutes(ctx, i.cfg.Interface, i.cfg.Routes); err != nil {
			i.log.Error("cannot remove virtual routes", "err", err)
		}
	}
	if err := i.plane.DelAddrs(ctx, i.cfg.Interface, i.allVIPs); err != nil {
		i.log.Error("cannot remove VIPs", "err", err)
	}
	i.holding = false
}

func (i *Instance) announce(ctx context.Context) {
	n := i.cfg.Garp.MasterRepeat
	if n <= 0 {
		n = 1
	}
	i.announceN(ctx, n)
}

func (i *Instance) announceN(ctx context.Context, n int) {
	gap := i.cfg.Garp.Interval.D() // vrrp_garp_interval
	if i.v6 {
		gap = i.cfg.Garp.GNAInterval.D() // vrrp_gna_interval
	}
	if gap > 0 && n > 1 {
		// Spread the burst: one now, the rest gap apart, on the timer.
		now := i.clock.Now()
		for k := 1; k < n; k++ {
			i.addGarpRound(garpRound{at: now.Add(time.Duration(k) * gap), n: 1})
		}
		n = 1
	}
	for k := 0; k < n; k++ {
		if err := i.plane.Announce(ctx, i.cfg.Interface, nil, i.allVIPs); err != nil {
			i.warnOnce("garp", "cannot send gratuitous ARP / neighbour advertisement", "err", err)
			return
		}
	}
}

func (i *Instance) nextGarp() time.Time {
	var next time.Time
	if len(i.garpRounds) > 0 {
		next = i.garpRounds[0].at
	}
	if !i.garpRefresh.IsZero() && (next.IsZero() || i.garpRefresh.Before(next)) {
		next = i.garpRefresh
	}
	return next
}

func (i *Instance) garpTick(now time.Time) {
	if !i.holding {
		return
	}
	ctx, cancel := i.opCtx()
	defer cancel()
	for len(i.garpRounds) > 0 && !now.Before(i.garpRounds[0].at) {
		n := i.garpRounds[0].n
		i.garpRounds = i.garpRounds[1:]
		i.announceN(ctx, n)
	}
	if !i.garpRefresh.IsZero() && !now.Before(i.garpRefresh) {
		n := i.cfg.Garp.MasterRefreshRepeat
		if n <= 0 {
			n = 1
		}
		i.announceN(ctx, n)
		i.garpRefresh = now.Add(i.cfg.Garp.MasterRefresh.D())
	}
}

func (i *Instance) transition(a Action) {
	now := i.clock.Now()
	master, _ := i.m.Master()
	i.mu.Lock()
	i.status.State = a.To
	i.status.Since = now
	i.status.Cause = a.Cause
	i.status.Master = master
	prio := i.status.EffectivePriority
	i.mu.Unlock()
	i.log.Info(fmt.Sprintf("entering %s state", a.To), "from", a.From.String(), "to", a.To.String(), "cause", a.Cause, "priority", prio)
	if i.onTrans != nil {
		i.onTrans(Transition{Instance: i.cfg.Name, VRID: i.cfg.VRID, From: a.From, To: a.To, Cause: a.Cause, Priority: prio, At: now})
	}
}
