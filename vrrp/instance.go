package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vrrp/wire"
)

// AddressPlane is what an instance needs from the VIP side. *vip.Netlink
// and *vip.Memory implement it.
type AddressPlane interface {
	AddAddrs(ctx context.Context, ifname string, vips []config.VIP) error
	DelAddrs(ctx context.Context, ifname string, vips []config.VIP) error
	AddRoutes(ctx context.Context, defaultDev string, routes []config.Route) error
	DelRoutes(ctx context.Context, defaultDev string, routes []config.Route) error
	Announce(ctx context.Context, ifname string, srcMAC net.HardwareAddr, vips []config.VIP) error
	// HasAddr reports whether addr is on ifname now (self-healing checks).
	HasAddr(ifname string, addr netip.Addr) (bool, error)
}

// Gate is consulted on every path into MASTER. MayBecomeMaster answers at
// once and must not block: false keeps the instance BACKUP; it asks again
// when its down timer runs out once more, or at once after GateRetry.
type Gate interface {
	MayBecomeMaster(instance string, vrid int, cause string) bool
}

// Sender sends one advert payload (no IP header) from src to dst.
type Sender interface {
	Send(payload []byte, src, dst netip.Addr) error
}

// Transition is published on every state change.
type Transition struct {
	Instance  string
	VRID      int
	From, To  State
	Cause     string
	CauseKind CauseKind
	Priority  int // effective priority at the time
	At        time.Time
}

// AddrChangeKind says what an AddrChange reports.
type AddrChangeKind int

// Address changes the runtime reacts to (self-healing).
const (
	AddrRemoved  AddrChangeKind = iota + 1 // an address left an interface
	AddrAdded                              // an address appeared on an interface
	LinkUp                                 // an interface came up
	LinkDown                               // an interface went down
	AddrResync                             // events may have been lost: check everything
	RouteRemoved                           // a virtual route of the instance left the table (Route)
)

// AddrChange is an address or link event of the host, as the VIP plane's
// watcher reports it.
type AddrChange struct {
	Kind   AddrChangeKind
	Ifname string
	Prefix netip.Prefix
	// Route is the instance's virtual route that was removed
	// (RouteRemoved; the caller matched the event to it).
	Route config.Route
}

// Heal is published when self-healing put a VIP or route back on a MASTER,
// or removed one of ours found on a BACKUP.
type Heal struct {
	Instance string
	What     string // "10.0.0.10/24 on eth0 removed behind our back: put back", ...
}

// InstanceOptions configure an Instance.
type InstanceOptions struct {
	Config  *config.Instance // normalized and validated
	Primary netip.Addr       // our advert source address (and tie-breaker)
	Plane   AddressPlane
	Clock   Clock // nil: SystemClock
	Log     *slog.Logger
	// OnTransition is called from the instance's runner after each state
	// change; it must not block for long (the agent queues notify scripts).
	OnTransition func(Transition)
	// WaitTracking keeps the instance in INIT until the first SetTracking,
	// as keepalived waits for its tracked scripts' first results.
	WaitTracking bool
	// SendInterface, when set, is where adverts leave from instead of
	// Config.Interface (use_vmac with vmac_xmit_base: the base interface).
	SendInterface string
	// Gate, when set, is asked before every entry into MASTER.
	Gate Gate
	// OnStatus is called from the instance's runner after its status
	// changed (effective priority, master seen, faults, VIPs, name; not
	// on every advert). It must not block.
	OnStatus func(InstanceStatus)
	// OnHeal is called from the instance's runner after self-healing
	// acted. It must not block.
	OnHeal func(Heal)
	// OnPeerDrop is called (rate-limited, once a minute per peer and
	// reason) when an advert from a misconfigured peer was dropped.
	OnPeerDrop func(reason wire.DropReason, peer netip.Addr, detail string)
	// HeldElsewhere, when set, reports whether another instance of this
	// node holds addr now: self-healing then leaves it alone on a BACKUP
	// (two instances sharing a VIP must not take it from each other).
	HeldElsewhere func(addr netip.Addr) bool
	// StartupDelay is keepalived's vrrp_startup_delay, for instances
	// started with the daemon (not on a reload): the instance stays in
	// INIT, sending nothing, for this long after Run starts, then starts
	// (or, with WaitTracking, starts at the first tracking result after
	// that). Measured on Clock.
	StartupDelay time.Duration
	// Resume, when set, starts the instance as MASTER at once (EvResume):
	// vipd restarted or was upgraded while the instance was MASTER, and
	// its VIPs are still in place. No start-up delay, no wait for
	// tracking (a fault found later takes it out as usual), no
	// transition counted; its status keeps the MASTER's old since.
	Resume *Resume
}

// MasterDownIntervalOf is the Master_Down_Interval of an instance
// configured as c, with its own priority and advert interval.
func MasterDownIntervalOf(c *config.Instance) time.Duration {
	prio := c.Priority
	if prio < 1 || prio > PriorityOwner {
		prio = 100
	}
	return NewMachine(Params{Version: c.Version, Priority: uint8(prio), AdvertInt: c.AdvertInt.D(),
		DownTimerAdverts: c.DownTimerAdverts}).MasterDownInterval()
}

// Resume is what a restarted vipd knows of an instance it resumes.
type Resume struct {
	Cause string    // logged and shown as the transition's cause
	Since time.Time // when the instance became MASTER, before the restart
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
	MasterPriority    int // the priority the master advertises (ours when MASTER)
	Since             time.Time
	Cause             string
	// Faults are the faults in force, by key (tracking, sync_group,
	// maintenance/<source>, ...), each with its cause.
	Faults map[string]string
	// GateHeld: the gate keeps this BACKUP out of MASTER (Cause of the
	// hold in GateCause).
	GateHeld  bool
	GateCause string
}

// Counters are an instance's monotonic counters.
type Counters struct {
	AdvertsSent, AdvertsReceived           uint64
	PriorityZeroSent, PriorityZeroReceived uint64
	MasterDownExpiries                     uint64
	BecomeMaster, ReleaseMaster, VIPHeals  uint64
}

type counters struct {
	advertsSent, advertsReceived           atomic.Uint64
	priorityZeroSent, priorityZeroReceived atomic.Uint64
	masterDownExpiries                     atomic.Uint64
	becomeMaster, releaseMaster, vipHeals  atomic.Uint64
}

// rxConfig is what the transport's reader needs to check an advert for the
// instance; swapped whole by a live update.
type rxConfig struct {
	expect wire.RecvExpect
	ckopt  wire.ChecksumOpt
}

// rxItem is a received advert handed to the instance, by value: what the
// state machine needs, and the address list only when it differs from ours
// (to log it). It carries no pointer into the reader's buffers.
type rxItem struct {
	src      netip.Addr
	priority uint8
	interval time.Duration
	res      wire.RecvResult
	drop     *wire.DropError // a misconfigured peer's drop, to log
	addrs    []netip.Addr    // res.AddrListDiffers: the advert's list (a copy)
}

// warnKey identifies one rate-limited warning without building a string.
type warnKey struct {
	what string // a constant
	from netip.Addr
}

type garpRound struct {
	at time.Time
	n  int
}

type ctlItem struct {
	fn   func(now time.Time) []Action
	done chan struct{}
	ran  *bool // set before done closes when fn ran
}

// order is work posted to the instance without waiting: a sync group's
// orders (forced: their transitions are not reported back to the group)
// and address events.
type order struct {
	fn     func(now time.Time) []Action
	forced bool
}

// Instance runs one vrrp_instance: it feeds the state machine with received
// adverts, timer expiries and control requests, and carries out the actions
// (adverts on the wire, VIPs through the AddressPlane, GARP/NA rounds). Its
// runner (one per socket, shared with the other instances on it) owns all
// its state; Run only starts it there and waits for the end.
type Instance struct {
	// Identity: fixed for the life of the instance (a change of any of
	// them is another instance).
	ifname string
	vrid   int
	v6     bool

	cfg       *config.Instance // owned by the instance's runner once attached
	primary   netip.Addr
	plane     AddressPlane
	clock     Clock
	baseLog   *slog.Logger
	log       *slog.Logger
	onTrans   func(Transition)
	onStatus  func(InstanceStatus)
	onHeal    func(Heal)
	onDrop    func(wire.DropReason, netip.Addr, string)
	gate      Gate
	elsewhere func(netip.Addr) bool

	sender    Sender
	ttlSender TTLSender  // sender, when it can set the TTL per packet
	tr        *Transport // the transport attached to (group changes)
	// mcastGroup is the multicast group the instance sends to and listens
	// on (invalid: a unicast instance); ttl the TTL / hop limit of its
	// adverts (0: the socket's default, 255).
	mcastGroup netip.Addr
	ttl        int
	rxc        atomic.Pointer[rxConfig]
	expect     wire.RecvExpect // the runner's copies of rxc's
	ckopt      wire.ChecksumOpt
	vips       []config.VIP // the family of the instance: advertised and added
	evips      []config.VIP // virtual_ipaddress_excluded and other-family VIPs: added, not advertised
	allVIPs    []config.VIP // vips then evips: what the plane adds, removes and announces
	advAddrs   []netip.Addr
	dsts       []netip.Addr

	// run is the runner that owns the instance's state and runs all its
	// work (set by Transport.Attach, or Run's own for a lone instance).
	run       *runner
	rxPending atomic.Int32 // adverts queued for the instance on its runner
	heapIdx   int          // in the runner's timer heap; -1 when not
	heapAt    time.Time    // the deadline the heap holds for it
	ended     bool         // stopped: its runner does no more work for it
	begun     bool         // its start ran on the runner
	early     []work       // work that came before the start, run right after it
	stopOnce  sync.Once
	startOnce sync.Once
	ownRunner bool // Start made a runner for this lone instance

	m       *Machine
	buf     []byte
	holding bool // VIPs are ours

	garpRounds  []garpRound // pending GARP/NA rounds, in time order
	garpRefresh time.Time

	waitTracking bool
	sendIf       string
	started      bool
	startDelay   time.Duration // vrrp_startup_delay
	resume       *Resume       // start as a resumed MASTER (InstanceOptions.Resume); nil once begun
	startAt      time.Time     // no start-up before then
	startPending bool          // start-up is due at startAt

	faults    map[string]string // faults in force by key
	ownFaults int               // faults other than the sync group's hold
	gateLog   bool              // the current gate hold was logged
	gateHeld  bool              // the gate holds us now (mirrors status.GateHeld)
	armed     atomic.Uint64     // work items done (tests wait for the runner to come round)

	group      *SyncGroup
	forcing    bool          // applying an order of the sync group
	wantMaster atomic.Bool   // mirror of m.WantMaster() for the group
	stopped    chan struct{} // closed when the instance has stopped

	warned map[warnKey]time.Time // rate-limits per-sender warnings

	cnt counters

	// lastDropReport rate-limits drops handed to the instance for logging,
	// per reason (unix nanoseconds): a flood of bad packets must not crowd
	// valid adverts out of its queue.
	lastDropReport [wire.NumDropReasons + 1]atomic.Int64 // the last one: wire.WarnAddrListDiffers

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
		ifname:       c.Interface,
		vrid:         c.VRID,
		v6:           c.IsIPv6(),
		primary:      o.Primary,
		plane:        o.Plane,
		clock:        o.Clock,
		baseLog:      o.Log,
		onTrans:      o.OnTransition,
		onStatus:     o.OnStatus,
		onHeal:       o.OnHeal,
		onDrop:       o.OnPeerDrop,
		gate:         o.Gate,
		elsewhere:    o.HeldElsewhere,
		waitTracking: o.WaitTracking,
		sendIf:       o.SendInterface,
		startDelay:   o.StartupDelay,
		resume:       o.Resume,
		heapIdx:      -1,
		stopped:      make(chan struct{}),
		warned:       map[warnKey]time.Time{},
		faults:       map[string]string{},
	}
	i.configure(c, o.Primary)
	prio := c.Priority
	i.m = NewMachine(i.params(c))
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

// configure derives what the runtime uses from c: the VIP lists, the
// destinations, the receive checks. NewInstance and Update call it.
func (i *Instance) configure(c *config.Instance, primary netip.Addr) {
	i.cfg, i.primary = c, primary
	i.log = i.baseLog.With("instance", c.Name, "vrid", c.VRID)
	i.vips, i.evips, i.advAddrs, i.dsts = nil, nil, nil, nil
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
	i.mcastGroup, i.ttl = netip.Addr{}, 0
	if len(c.UnicastPeers) > 0 {
		i.dsts = append(i.dsts, c.UnicastPeers...)
		i.ttl = c.UnicastTTL
	} else {
		i.mcastGroup = mcastGroup(c.McastGroup, i.v6)
		i.dsts = []netip.Addr{i.mcastGroup}
	}
	i.ckopt = wire.ChecksumOpt{OldUnicastChecksum: c.OldUnicastChecksum}
	if g := c.McastGroup.Unmap(); len(c.UnicastPeers) > 0 && g.Is4() && g.IsMulticast() {
		// keepalived sums old_unicast_checksum adverts with
		// vrrp_mcast_group4 in the pseudo-header (Normalize copies it
		// into McastGroup).
		i.ckopt.Group4 = g
	}
	i.expect = wire.RecvExpect{
		Group:           i.mcastGroup,
		Version:         c.Version,
		Interval:        c.AdvertInt.D(),
		Unicast:         len(c.UnicastPeers) > 0,
		UnicastPeers:    c.UnicastPeers,
		CheckUnicastSrc: c.CheckUnicastSrc,
		OwnAddrs:        []netip.Addr{primary},
		VIPs:            i.advAddrs,
	}
	if c.Version == 2 && c.Auth != nil && c.Auth.Type == "PASS" {
		i.expect.AuthType = wire.AuthPass
		i.expect.AuthPass = c.Auth.Pass
	}
	i.rxc.Store(&rxConfig{expect: i.expect, ckopt: i.ckopt})
}

// mcastGroup is where a multicast instance sends its adverts: g
// (mcast_dst_ip or vrrp_mcast_group4/6) when it is a multicast address of
// the family, else the standard 224.0.0.18 / ff02::12.
func mcastGroup(g netip.Addr, v6 bool) netip.Addr {
	g = g.Unmap()
	if g.IsMulticast() && g.Is6() == v6 {
		return g.WithZone("")
	}
	if v6 {
		return wire.MulticastGroup6
	}
	return wire.MulticastGroup4
}

// params are the state machine's parameters for c (the effective priority
// starts at the configured one; tracking changes it).
func (i *Instance) params(c *config.Instance) Params {
	p := Params{
		Version:      c.Version,
		Priority:     uint8(c.Priority),
		AdvertInt:    c.AdvertInt.D(),
		NoPreempt:    c.NoPreempt,
		PreemptDelay: c.PreemptDelay.D(),
		StartMaster:  c.State == config.StateMaster,
		Primary:      i.primary,

		DownTimerAdverts:     c.DownTimerAdverts,
		LowerPrioNoAdvert:    c.LowerPrioNoAdvert,
		HigherPrioSendAdvert: c.HigherPrioSendAdvert,
	}
	if i.gate != nil {
		p.Gate = i.askGate
	}
	return p
}

func (i *Instance) askGate(cause string) bool {
	return i.gate.MayBecomeMaster(i.cfg.Name, i.vrid, cause)
}

// Config returns the configuration the instance was built with; after Run
// starts, only the instance's runner may call it.
func (i *Instance) Config() *config.Instance { return i.cfg }

// Interface and VRID are the instance's identity on the wire.
func (i *Instance) Interface() string { return i.ifname }

// VRID is the instance's virtual router id.
func (i *Instance) VRID() int { return i.vrid }

// Name is the instance's current name (a live update may rename it).
func (i *Instance) Name() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.status.Name
}

// Status returns a snapshot.
func (i *Instance) Status() InstanceStatus {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.statusLocked()
}

func (i *Instance) statusLocked() InstanceStatus {
	s := i.status
	s.VIPs = append([]netip.Prefix(nil), s.VIPs...)
	if len(s.Faults) > 0 {
		f := make(map[string]string, len(s.Faults))
		for k, v := range s.Faults {
			f[k] = v
		}
		s.Faults = f
	}
	return s
}

// Counters returns the instance's counters now.
func (i *Instance) Counters() Counters {
	return Counters{
		AdvertsSent: i.cnt.advertsSent.Load(), AdvertsReceived: i.cnt.advertsReceived.Load(),
		PriorityZeroSent: i.cnt.priorityZeroSent.Load(), PriorityZeroReceived: i.cnt.priorityZeroReceived.Load(),
		MasterDownExpiries: i.cnt.masterDownExpiries.Load(),
		BecomeMaster:       i.cnt.becomeMaster.Load(), ReleaseMaster: i.cnt.releaseMaster.Load(),
		VIPHeals: i.cnt.vipHeals.Load(),
	}
}

// publish tells the subscriber (OnStatus) about a status change; called on
// the instance's runner.
func (i *Instance) publish() {
	if i.onStatus == nil {
		return
	}
	i.mu.Lock()
	s := i.statusLocked()
	i.mu.Unlock()
	i.onStatus(s)
}

// dropReportEvery is how often at most the transport hands the instance a
// misconfigured peer's drop of one reason to log.
const dropReportEvery = time.Second

// mayReportDrop reports whether a drop for reason r may be handed over now
// (called by the transport's reader).
func (i *Instance) mayReportDrop(r wire.DropReason) bool {
	k := wire.DropIndex(r)
	if r == wire.WarnAddrListDiffers {
		k = wire.NumDropReasons
	}
	if k < 0 {
		return false
	}
	now := time.Now().UnixNano()
	last := i.lastDropReport[k].Load()
	if now-last < int64(dropReportEvery) {
		return false
	}
	return i.lastDropReport[k].CompareAndSwap(last, now)
}

// rxQueue bounds the adverts queued for one instance on its runner: they
// come once per advert interval, so more means the runner fell behind or a
// flood, and the excess is dropped (counted as queue_full).
const rxQueue = 16

// deliver hands a received advert to the instance's runner without
// blocking the socket reader; a full queue drops it (counted by the caller).
func (i *Instance) deliver(it rxItem) bool {
	if i.rxPending.Add(1) > rxQueue {
		i.rxPending.Add(-1)
		return false
	}
	if !i.run.post(work{inst: i, kind: workRx, rx: it}) {
		i.rxPending.Add(-1)
		return false
	}
	return true
}

// do runs fn on the instance's runner and waits for it (or ctx).
func (i *Instance) do(ctx context.Context, fn func(now time.Time) []Action) error {
	select {
	case <-i.stopped:
		return ErrStopped
	default:
	}
	ran := false
	it := ctlItem{fn: fn, done: make(chan struct{}), ran: &ran}
	if i.run == nil || !i.run.post(work{inst: i, kind: workCtl, ctl: it}) {
		return ErrStopped
	}
	select {
	case <-it.done:
		if !ran {
			return ErrStopped
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-i.stopped:
		return ErrStopped
	}
}

// ErrStopped is returned by requests to an instance that has stopped.
var ErrStopped = errors.New("vrrp: instance stopped")

// doForced queues an order of the sync group; orders run in the order
// given, on the instance's runner, and their transitions are not reported
// back to the group.
func (i *Instance) doForced(fn func(now time.Time) []Action) { i.post(order{fn: fn, forced: true}) }

// post queues o for the instance's runner without waiting. Orders run in
// the order posted; an order posted to a stopped instance never runs.
func (i *Instance) post(o order) {
	if i.run != nil {
		i.run.post(work{inst: i, kind: workOrder, order: o})
	}
}

// busy reports whether the instance's runner has work queued (tests).
func (i *Instance) busy() bool {
	if i.run == nil {
		return false
	}
	i.run.mu.Lock()
	defer i.run.mu.Unlock()
	return len(i.run.inbox) > 0
}

// wantsMaster and currentState are read by the sync group from other
// goroutines.
func (i *Instance) wantsMaster() bool { return i.wantMaster.Load() }

func (i *Instance) currentState() State {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.status.State
}

// startup starts the state machine (EvStartup) now, or, within the
// vrrp_startup_delay, marks it due at startAt (Run's timer).
func (i *Instance) startup(now time.Time) []Action {
	if now.Before(i.startAt) {
		i.startPending = true
		return nil
	}
	i.startPending = false
	i.started = true
	return i.m.Step(now, Event{Kind: EvStartup})
}

// Fault keys of the runtime itself; callers use their own (maintenance/<source>, ...).
const (
	FaultTracking  = "tracking"   // tracked scripts, interfaces, files
	FaultSyncGroup = "sync_group" // held by the sync group for a member's fault
)

// FaultMaintenance is the fault key prefix of maintenance; the full key
// names the source ("maintenance/operator", "maintenance/etcd").
const FaultMaintenance = "maintenance"

// SetTracking applies the result of the instance's tracked scripts,
// interfaces and files: the effective priority, and fault ("" when none) —
// the reason the instance must stay in FAULT. The first call starts an
// instance created with WaitTracking.
func (i *Instance) SetTracking(ctx context.Context, effective int, fault string) error {
	return i.do(ctx, func(now time.Time) []Action {
		acts := i.setPriority(now, effective)
		acts = append(acts, i.setFault(now, FaultTracking, fault)...)
		if !i.started && !i.startPending {
			i.apply(acts)
			return i.startup(now)
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

func (i *Instance) setPriority(now time.Time, p int) []Action {
	p = i.clampPriority(p)
	i.mu.Lock()
	changed := i.status.EffectivePriority != p
	i.status.EffectivePriority = p
	i.mu.Unlock()
	if changed {
		defer i.publish()
	}
	return i.m.Step(now, Event{Kind: EvPriority, Priority: uint8(p)})
}

// SetPriority changes the effective priority (tracking, etcd overrides). As
// in keepalived, a tracked priority stays within 1..254; 255 is only for an
// address owner's configured priority.
func (i *Instance) SetPriority(ctx context.Context, p int) error {
	return i.do(ctx, func(now time.Time) []Action { return i.setPriority(now, p) })
}

// SetFault raises the fault key with its cause, or clears it (cause ""). A
// fault keeps the instance in FAULT (a master hands over with priority 0
// first); the instance leaves FAULT when every key is clear, so clearing
// one cause never clears another.
func (i *Instance) SetFault(ctx context.Context, key, cause string) error {
	return i.do(ctx, func(now time.Time) []Action { return i.setFault(now, key, cause) })
}

func (i *Instance) setFault(now time.Time, key, cause string) []Action {
	old, had := i.faults[key]
	if cause == old && had == (cause != "") {
		return nil
	}
	var acts []Action
	switch {
	case cause != "" && !had:
		i.faults[key] = cause
		kind := CauseFault
		if strings.HasPrefix(key, FaultMaintenance) {
			kind = CauseMaintenance
		}
		acts = i.m.Step(now, Event{Kind: EvFault, Cause: cause, CauseKind: kind})
		if key != FaultSyncGroup {
			i.ownFaults++
			if i.ownFaults == 1 {
				i.reportFault(true)
			}
		}
	case cause != "":
		i.faults[key] = cause // another cause for a fault in force
	default:
		delete(i.faults, key)
		acts = i.m.Step(now, Event{Kind: EvFaultClear})
		if key != FaultSyncGroup {
			i.ownFaults--
			if i.ownFaults == 0 {
				i.reportFault(false)
			}
		}
	}
	i.mu.Lock()
	if len(i.faults) == 0 {
		i.status.Faults = nil
	} else {
		i.status.Faults = make(map[string]string, len(i.faults))
		for k, v := range i.faults {
			i.status.Faults[k] = v
		}
	}
	i.mu.Unlock()
	i.publish()
	return acts
}

// Demote makes a MASTER leave with a priority-0 advert (split-brain
// arbitration says so); a BACKUP or FAULT instance is not affected. The
// instance may come back through its gate.
func (i *Instance) Demote(ctx context.Context, cause string) error {
	return i.do(ctx, func(now time.Time) []Action {
		return i.m.Step(now, Event{Kind: EvDemote, Cause: cause})
	})
}

// GateRetry asks the gate again at once when it holds the instance out of
// MASTER (the gate's owner calls it when its answer may have changed).
func (i *Instance) GateRetry(ctx context.Context) error {
	return i.do(ctx, func(now time.Time) []Action {
		return i.m.Step(now, Event{Kind: EvGateRetry})
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
	own := i.Start()
	select {
	case <-ctx.Done():
	case <-i.stopped:
	}
	i.Stop()
	<-i.stopped
	if own {
		i.run.close()
	}
}

// Stop asks a started instance to stop on its runner (a master sends
// priority 0 and releases its VIPs) without waiting: Done is closed when
// it has. An instance needs no goroutine of its own between Start and
// Stop; Run is Start, a wait for ctx, then Stop.
func (i *Instance) Stop() {
	if i.run == nil || !i.run.post(work{inst: i, kind: workStop}) {
		i.stopOnce.Do(func() { close(i.stopped) })
	}
}

// Done is closed when the instance has stopped.
func (i *Instance) Done() <-chan struct{} { return i.stopped }

// Start queues the instance's start on its runner, once: work asked of the
// instance afterwards (requests, orders) runs after its start. Run calls
// it; a caller that asks for work right after launching Run in a goroutine
// calls Start first. It reports whether the instance got a runner of its
// own (attached to no transport).
func (i *Instance) Start() (own bool) {
	i.startOnce.Do(func() {
		if i.run == nil {
			i.run = newRunner(i.clock) // a lone instance, attached to no transport
			i.ownRunner = true
		}
		if !i.run.post(work{inst: i, kind: workStart}) {
			i.stopOnce.Do(func() { close(i.stopped) })
		}
	})
	return i.ownRunner
}

// begin starts the instance on its runner (Run).
func (i *Instance) begin(now time.Time) {
	if r := i.resume; r != nil {
		i.resume = nil
		i.started = true
		i.apply(i.m.Step(now, Event{Kind: EvResume, Cause: r.Cause}))
		if i.m.State() == StateMaster && !r.Since.IsZero() {
			i.mu.Lock()
			i.status.Since = r.Since
			i.mu.Unlock()
			i.publish()
		}
		return
	}
	if i.startDelay > 0 {
		// keepalived vrrp_startup_delay: nothing is sent before then.
		i.startAt = now.Add(i.startDelay)
		i.log.Info("delaying start-up (vrrp_startup_delay)", "delay", i.startDelay)
		i.mu.Lock()
		i.status.Cause = fmt.Sprintf("start-up delayed by vrrp_startup_delay %s", i.startDelay)
		i.mu.Unlock()
		i.publish()
	}
	if !i.waitTracking {
		i.apply(i.startup(now))
	}
}

// end shuts the instance down on its runner: a master sends priority 0 and
// releases its VIPs. Nothing runs for it afterwards.
func (i *Instance) end(now time.Time) {
	if i.ended {
		return
	}
	i.apply(i.m.Step(now, Event{Kind: EvShutdown}))
	i.ended = true
	i.stopOnce.Do(func() { close(i.stopped) })
}

// timer runs what is due at now: a start-up delay that ended, the state
// machine's timers, GARP/NA rounds.
func (i *Instance) timer(now time.Time) {
	if i.startPending && !now.Before(i.startAt) {
		i.apply(i.startup(now))
	}
	i.apply(i.m.Step(now, Event{Kind: EvTimer}))
	i.garpTick(now)
}

// nextDeadline is when the instance's runner must call timer next; zero
// when nothing is due.
func (i *Instance) nextDeadline() time.Time {
	next := i.m.NextDeadline()
	if i.startPending {
		next = i.startAt // INIT: no machine deadline runs
	}
	if g := i.nextGarp(); !g.IsZero() && (next.IsZero() || g.Before(next)) {
		next = g
	}
	return next
}

func (i *Instance) receive(it rxItem) {
	if it.drop != nil {
		// A misconfigured peer in our VRID (the transport only hands over
		// such drops): say it loudly, once a minute.
		if i.warnOnce(warnKey{string(it.drop.Reason), it.src}, "dropped advert from a peer that disagrees with our configuration",
			"from", it.src, "reason", it.drop.Reason, "detail", it.drop.Detail) && i.onDrop != nil {
			i.onDrop(it.drop.Reason, it.src, it.drop.Detail)
		}
		return
	}
	if it.res.AddrListDiffers && i.mayWarn(warnKey{"addrs", it.src}) {
		i.log.Warn("peer advertises a different VIP list for this VRID", "from", it.src, "theirs", it.addrs, "ours", i.advAddrs)
	}
	if it.res.IntervalMismatch && i.mayWarn(warnKey{"interval", it.src}) {
		i.log.Warn("peer advertises a different advert interval (VRRPv3: following the master's)",
			"from", it.src, "theirs", it.interval, "ours", i.cfg.AdvertInt.D())
	}
	i.cnt.advertsReceived.Add(1)
	if it.priority == PriorityStop {
		i.cnt.priorityZeroReceived.Add(1)
	}
	i.apply(i.m.Step(i.clock.Now(), Event{Kind: EvAdvert, From: it.src, Priority: it.priority, Interval: it.interval}))
	master, mprio := i.m.Master()
	i.mu.Lock()
	changed := i.status.Master != master || i.status.MasterPriority != int(mprio)
	i.status.Master, i.status.MasterPriority = master, int(mprio)
	i.mu.Unlock()
	if changed {
		i.publish()
	}
}

// maxWarnKeys bounds the rate-limiter's memory: a flood from many forged
// sources must not grow it without limit.
const maxWarnKeys = 256

// warnOnce logs msg at most once a minute per key and reports whether it
// did.
func (i *Instance) warnOnce(key warnKey, msg string, args ...any) bool {
	if !i.mayWarn(key) {
		return false
	}
	i.log.Warn(msg, args...)
	return true
}

// mayWarn reports whether the warning key may be logged now (at most once
// a minute), and records it when so. Callers on the receive path check it
// before building the log arguments.
func (i *Instance) mayWarn(key warnKey) bool {
	now := i.clock.Now()
	if t, ok := i.warned[key]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if len(i.warned) >= maxWarnKeys {
		for k, t := range i.warned {
			if now.Sub(t) >= time.Minute {
				delete(i.warned, k)
			}
		}
		if len(i.warned) >= maxWarnKeys {
			return false // still flooded: stay quiet rather than spam the log
		}
	}
	i.warned[key] = now
	return true
}

// apply carries out the state machine's actions in order. They are copied
// first: a nested Step (a sync group's decision) may reuse the machine's
// slice.
func (i *Instance) apply(machineActs []Action) {
	var local [8]Action
	acts := append(local[:0], machineActs...)
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
			if i.group != nil && i.group.wantMaster(i, a.Cause) {
				i.apply(i.m.Step(i.clock.Now(), Event{Kind: EvForceMaster, Cause: a.Cause}))
			}
		case ActLowerPrioAnnounce:
			i.lowerPrioAnnounce()
		case ActGateHeld:
			if !i.gateLog {
				i.gateLog = true
				i.log.Info("MASTER held back by the gate", "cause", a.Cause)
			}
		}
	}
	i.wantMaster.Store(i.m.WantMaster())
	held := i.m.GateHeld()
	if !held {
		i.gateLog = false
	}
	if held == i.gateHeld {
		return // the common case: no lock, nothing to publish
	}
	i.gateHeld = held
	i.mu.Lock()
	i.status.GateHeld = held
	if held {
		i.status.GateCause = i.m.gateCause
	} else {
		i.status.GateCause = ""
	}
	i.mu.Unlock()
	i.publish()
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
	adv := wire.Advert{
		Version:  i.cfg.Version,
		VRID:     uint8(i.cfg.VRID),
		Priority: prio,
		Interval: i.cfg.AdvertInt.D(),
		Addrs:    i.advAddrs,
	}
	if i.expect.AuthType == wire.AuthPass {
		adv.AuthType = wire.AuthPass
		copy(adv.AuthData[:], i.expect.AuthPass)
	}
	for _, dst := range i.dsts {
		b, err := adv.AppendMarshal(i.buf[:0], i.primary, dst, i.ckopt)
		if err != nil {
			i.warnOnce(warnKey{what: "marshal"}, "cannot build advert", "err", err)
			return
		}
		i.buf = b
		if i.ttl > 0 && i.ttlSender != nil {
			err = i.ttlSender.SendTTL(b, i.primary, dst, i.ttl)
		} else {
			err = i.sender.Send(b, i.primary, dst)
		}
		if err != nil {
			i.warnOnce(warnKey{"send", dst}, "cannot send advert", "to", dst, "err", err)
			continue
		}
		i.cnt.advertsSent.Add(1)
		if prio == PriorityStop {
			i.cnt.priorityZeroSent.Add(1)
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
			i.warnOnce(warnKey{what: "garp"}, "cannot send gratuitous ARP / neighbour advertisement", "err", err)
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
	roundDue := len(i.garpRounds) > 0 && !now.Before(i.garpRounds[0].at)
	refreshDue := !i.garpRefresh.IsZero() && !now.Before(i.garpRefresh)
	if !i.holding || !roundDue && !refreshDue {
		return // the common case, on every timer of a master: nothing made
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
	master, mprio := i.m.Master()
	switch {
	case a.To == StateMaster && a.CauseKind == CauseResume:
		// Not an entry into MASTER on the network: the old run's.
	case a.To == StateMaster:
		i.cnt.becomeMaster.Add(1)
		switch a.CauseKind {
		case CauseMasterDown, CausePriorityZero, CausePreempt:
			i.cnt.masterDownExpiries.Add(1)
		}
	case a.From == StateMaster:
		i.cnt.releaseMaster.Add(1)
	}
	i.mu.Lock()
	i.status.State = a.To
	i.status.Since = now
	i.status.Cause = a.Cause
	i.status.Master, i.status.MasterPriority = master, int(mprio)
	prio := i.status.EffectivePriority
	i.mu.Unlock()
	i.log.Info(fmt.Sprintf("entering %s state", a.To), "from", a.From.String(), "to", a.To.String(), "cause", a.Cause, "priority", prio)
	if i.onTrans != nil {
		i.onTrans(Transition{Instance: i.cfg.Name, VRID: i.vrid, From: a.From, To: a.To, Cause: a.Cause, CauseKind: a.CauseKind, Priority: prio, At: now})
	}
}

// Update applies a new configuration of the same instance (same VRID,
// family, interface and unicast/multicast mode) live, with no transition
// and no priority-0 advert: VIPs (a master adds and announces the new ones
// at once and deletes the removed ones), virtual routes, advert interval,
// preemption, authentication, unicast peers and source, GARP settings. The
// name may change too. The base priority is not applied here: the caller
// sets the effective priority (SetTracking, SetPriority).
func (i *Instance) Update(ctx context.Context, c *config.Instance, primary netip.Addr) error {
	if c.Interface != i.ifname || c.VRID != i.vrid || c.IsIPv6() != i.v6 {
		return fmt.Errorf("vrrp: update of %s: interface, VRID and family are the instance's identity", i.Name())
	}
	return i.do(ctx, func(now time.Time) []Action {
		old := i.cfg
		oldVIPs, oldRoutes := i.allVIPs, old.Routes
		oldGroup := i.mcastGroup
		i.configure(c, primary)
		i.m.Reconfigure(now, i.params(c))
		if i.mcastGroup != oldGroup && i.tr != nil {
			// mcast_dst_ip / vrrp_mcast_group changed: listen there.
			if err := i.tr.regroup(i, i.mcastGroup); err != nil {
				i.log.Error("cannot join the new multicast group", "group", i.mcastGroup, "err", err)
			}
		}
		if i.holding {
			ctx, cancel := i.opCtx()
			added, removed := diffVIPs(oldVIPs, i.allVIPs)
			if len(removed) > 0 {
				if err := i.plane.DelAddrs(ctx, i.ifname, removed); err != nil {
					i.log.Error("cannot remove VIPs", "err", err)
				}
			}
			if len(added) > 0 {
				if err := i.plane.AddAddrs(ctx, i.ifname, added); err != nil {
					i.log.Error("cannot add VIPs", "err", err)
				}
				// Announced at once, so the new VIP answers from here.
				if err := i.plane.Announce(ctx, i.ifname, nil, added); err != nil {
					i.warnOnce(warnKey{what: "garp"}, "cannot send gratuitous ARP / neighbour advertisement", "err", err)
				}
			}
			addR, delR := diffRoutes(oldRoutes, c.Routes)
			if len(delR) > 0 {
				if err := i.plane.DelRoutes(ctx, i.ifname, delR); err != nil {
					i.log.Error("cannot remove virtual routes", "err", err)
				}
			}
			if len(addR) > 0 {
				if err := i.plane.AddRoutes(ctx, i.ifname, addR); err != nil {
					i.log.Error("cannot add virtual routes", "err", err)
				}
			}
			cancel()
			if old.Garp.MasterRefresh != c.Garp.MasterRefresh {
				i.garpRefresh = time.Time{}
				if r := c.Garp.MasterRefresh.D(); r > 0 {
					i.garpRefresh = now.Add(r)
				}
			}
		}
		i.mu.Lock()
		i.status.Name, i.status.Version, i.status.Priority = c.Name, c.Version, c.Priority
		i.status.VIPs = i.status.VIPs[:0]
		for _, v := range c.VIPs {
			i.status.VIPs = append(i.status.VIPs, v.Prefix)
		}
		i.mu.Unlock()
		i.publish()
		return nil
	})
}

func diffVIPs(old, cur []config.VIP) (added, removed []config.VIP) {
	same := func(x, y config.VIP) bool { x.Pos = y.Pos; return x == y }
	return diffBy(old, cur, same), diffBy(cur, old, same)
}

func diffRoutes(old, cur []config.Route) (added, removed []config.Route) {
	same := func(x, y config.Route) bool { x.Pos = y.Pos; return reflect.DeepEqual(x, y) }
	return diffBy(old, cur, same), diffBy(cur, old, same)
}

// diffBy returns the elements of cur that are not in old.
func diffBy[T any](old, cur []T, same func(x, y T) bool) []T {
	var out []T
	for _, c := range cur {
		if !slices.ContainsFunc(old, func(o T) bool { return same(o, c) }) {
			out = append(out, c)
		}
	}
	return out
}

// AddrChanged hands the instance an address or link event of the host
// without waiting; the instance heals what concerns it: a VIP removed
// behind its back on a MASTER is put back and announced, an interface that
// comes back up gets its VIPs and routes back, and a VIP of ours found on
// a BACKUP is removed. The instance stays in its state throughout.
func (i *Instance) AddrChanged(ev AddrChange) {
	i.post(order{fn: func(time.Time) []Action { i.heal(ev); return nil }})
}

// vipDev is the interface a VIP lives on.
func (i *Instance) vipDev(v config.VIP) string {
	if v.Dev != "" {
		return v.Dev
	}
	return i.ifname
}

func (i *Instance) heal(ev AddrChange) {
	if i.m.State() == StateStop || !i.started {
		return
	}
	switch {
	case ev.Kind == RouteRemoved, ev.Kind == AddrRemoved:
		if !i.holding {
			return
		}
	case ev.Kind == AddrAdded:
		if i.holding {
			return // our own VIP going on: the common case, nothing made
		}
	}
	ctx, cancel := i.opCtx()
	defer cancel()
	switch ev.Kind {
	case RouteRemoved:
		if !i.holding || !slices.ContainsFunc(i.cfg.Routes, func(r config.Route) bool { r.Pos = ev.Route.Pos; return reflect.DeepEqual(r, ev.Route) }) {
			return
		}
		if err := i.plane.AddRoutes(ctx, i.ifname, []config.Route{ev.Route}); err != nil {
			i.log.Error("cannot put back a virtual route", "route", ev.Route.Dst, "err", err)
			return
		}
		i.healed(fmt.Sprintf("virtual route %s removed behind our back: put back (still MASTER)", ev.Route.Dst),
			"route", ev.Route.Dst.String())
	case AddrRemoved:
		if !i.holding {
			return
		}
		for _, v := range i.allVIPs {
			if v.Prefix.Addr() == ev.Prefix.Addr() && i.vipDev(v) == ev.Ifname {
				i.restore(ctx, v, "removed behind our back")
			}
		}
	case AddrAdded:
		if i.holding {
			return
		}
		for _, v := range i.allVIPs {
			if v.Prefix.Addr() == ev.Prefix.Addr() && i.vipDev(v) == ev.Ifname {
				i.evict(ctx, v)
			}
		}
	case LinkUp, AddrResync:
		for _, v := range i.allVIPs {
			if ev.Kind == LinkUp && i.vipDev(v) != ev.Ifname {
				continue
			}
			has, err := i.plane.HasAddr(i.vipDev(v), v.Prefix.Addr())
			if err != nil {
				continue
			}
			switch {
			case i.holding && !has:
				i.restore(ctx, v, "missing after "+healWhy(ev.Kind))
			case !i.holding && has:
				i.evict(ctx, v)
			}
		}
		if i.holding && len(i.cfg.Routes) > 0 {
			// Routes through a link that went down are gone: put them
			// back (idempotent when they are still there).
			if err := i.plane.AddRoutes(ctx, i.ifname, i.cfg.Routes); err != nil {
				i.log.Error("cannot restore virtual routes", "err", err)
			}
		}
		if i.holding && ev.Kind == LinkUp {
			i.announce(ctx)
		}
	}
}

func healWhy(k AddrChangeKind) string {
	if k == LinkUp {
		return "the interface came back up"
	}
	return "lost address events"
}

// restore puts a VIP back on a MASTER and announces it.
func (i *Instance) restore(ctx context.Context, v config.VIP, why string) {
	if has, err := i.plane.HasAddr(i.vipDev(v), v.Prefix.Addr()); err != nil || has {
		return // a stale event (our own release, then a re-acquire): nothing to heal
	}
	one := []config.VIP{v}
	if err := i.plane.AddAddrs(ctx, i.ifname, one); err != nil {
		i.log.Error("cannot put back a VIP", "vip", v.Prefix, "err", err)
		return
	}
	if len(i.cfg.Routes) > 0 {
		// Routes through the address went with it.
		if err := i.plane.AddRoutes(ctx, i.ifname, i.cfg.Routes); err != nil {
			i.log.Error("cannot restore virtual routes", "err", err)
		}
	}
	if err := i.plane.Announce(ctx, i.ifname, nil, one); err != nil {
		i.warnOnce(warnKey{what: "garp"}, "cannot send gratuitous ARP / neighbour advertisement", "err", err)
	}
	i.healed(fmt.Sprintf("VIP %s on %s %s: put back and announced (still MASTER)", v.Prefix, i.vipDev(v), why),
		"vip", v.Prefix.String(), "interface", i.vipDev(v))
}

// evict removes a VIP of ours found on a BACKUP.
func (i *Instance) evict(ctx context.Context, v config.VIP) {
	has, err := i.plane.HasAddr(i.vipDev(v), v.Prefix.Addr())
	if err != nil || !has {
		return
	}
	if i.elsewhere != nil && i.elsewhere(v.Prefix.Addr()) {
		return // another instance of ours holds it
	}
	if err := i.plane.DelAddrs(ctx, i.ifname, []config.VIP{v}); err != nil {
		i.log.Error("cannot remove a VIP found on a BACKUP", "vip", v.Prefix, "err", err)
		return
	}
	i.healed(fmt.Sprintf("VIP %s found on %s while %s: removed", v.Prefix, i.vipDev(v), i.m.State()),
		"vip", v.Prefix.String(), "interface", i.vipDev(v))
}

// healed counts, logs and reports one act of self-healing.
func (i *Instance) healed(what string, attrs ...any) {
	i.cnt.vipHeals.Add(1)
	i.log.Warn("self-healing: "+what, attrs...)
	if i.onHeal != nil {
		i.onHeal(Heal{Instance: i.cfg.Name, What: what})
	}
}
