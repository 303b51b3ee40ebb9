package vrrp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// State is the state of a VRRP instance (RFC 5798 6.4, plus keepalived's
// FAULT and a terminal STOP).
type State int

// States.
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
	StateStop
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "INIT"
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	case StateStop:
		return "STOP"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Priorities with a meaning of their own (RFC 5798 5.2.4).
const (
	PriorityStop  = 0   // the master is leaving: take over after Skew_Time
	PriorityOwner = 255 // the address owner: master at once, never preempted
)

// Params are what the state machine needs to know about its instance.
type Params struct {
	Version   int           // 2 or 3
	Priority  uint8         // effective priority, 1..255
	AdvertInt time.Duration // our Advertisement_Interval
	NoPreempt bool
	// PreemptDelay holds back preemption of a lower-priority master after
	// start-up or a return from FAULT, the way keepalived's preempt_delay does.
	PreemptDelay time.Duration
	// StartMaster is "state MASTER": wait one advert interval (plus the
	// minimum skew) for a master instead of the full master-down interval.
	StartMaster bool
	// Primary is our own source address, used to break a priority tie: the
	// higher address wins.
	Primary netip.Addr
	// SyncMember gates MASTER behind the sync group (ActWantMaster).
	SyncMember bool
	// DownTimerAdverts is keepalived's down_timer_adverts: how many
	// advert intervals make the Master_Down_Interval (0: the RFC's 3).
	DownTimerAdverts int
	// LowerPrioNoAdvert is keepalived's lower_prio_no_advert: a MASTER
	// hearing a lower-priority advert does not answer it with one of its
	// own (nor restart its advert timer); it still refreshes the
	// neighbours' caches (ActLowerPrioAnnounce, garp_lower_prio_*).
	LowerPrioNoAdvert bool
	// HigherPrioSendAdvert is keepalived's higher_prio_send_advert: a
	// MASTER hearing a higher-priority advert (or an equal priority from a
	// higher address) sends one advert at its own priority before it
	// becomes BACKUP.
	HigherPrioSendAdvert bool
	// Gate, when set, is asked on every path into MASTER (down timer,
	// preemption, address owner at start and after a fault, sync group
	// orders). false keeps the instance in BACKUP: it asks again when its
	// down timer runs out once more, or at once on EvGateRetry. The
	// machine stays a pure function of its inputs as long as Gate is.
	Gate func(cause string) bool
}

// EventKind enumerates what can happen to an instance.
type EventKind int

// Event kinds.
const (
	EvStartup     EventKind = iota // the instance starts (or returns from a reload that recreated it)
	EvTimer                        // a deadline returned by NextDeadline passed
	EvAdvert                       // a valid advertisement for our VRID arrived
	EvPriority                     // our effective priority changed (tracking)
	EvFault                        // a fault appeared (Cause says which)
	EvFaultClear                   // every fault is gone
	EvShutdown                     // the daemon stops: release and say goodbye
	EvForceBackup                  // leave MASTER without priority 0 (e.g. sync group peer fell)
	EvForceMaster                  // become MASTER now (the sync group decided so)
	// EvGateRetry: the gate may say yes now; a BACKUP held back by it asks
	// again at once.
	EvGateRetry
	// EvDemote: leave MASTER with a priority-0 advert (the gate's owner,
	// e.g. split-brain arbitration, says so); Cause says why.
	EvDemote
	// EvResume: the instance starts again after a restart of vipd that
	// found it MASTER with its VIPs still in place (Cause says so): it
	// is MASTER at once and advertises now, before any backup's down
	// timer can run out. With a fault, or when the gate says no, it
	// starts like EvStartup.
	EvResume
)

// Event is one input of Step.
type Event struct {
	Kind EventKind
	// EvAdvert: the sender, its priority and the advert interval it carries
	// (v3: Max Adver Int; v2: the fixed interval).
	From     netip.Addr
	Priority uint8
	Interval time.Duration
	// EvFault / EvForceBackup / EvDemote: why.
	Cause string
	// EvFault: the kind of fault (CauseFault when empty; CauseMaintenance
	// for maintenance).
	CauseKind CauseKind
}

// ActionKind enumerates what Step asks the runtime to do.
type ActionKind int

// Action kinds. The runtime performs them in the order returned.
const (
	ActSendAdvert ActionKind = iota // send an advertisement with Priority
	ActAcquire                      // add the VIPs and routes, start the GARP/NA schedule
	ActRelease                      // remove the VIPs and routes, stop the GARP/NA schedule
	ActTransition                   // the state changed: log, notify, publish
	// ActWantMaster: a sync group member's down timer ran out; it stays
	// BACKUP until its group lets it (EvForceMaster), as keepalived's
	// vrrp_sync_can_goto_master does.
	ActWantMaster
	// ActLowerPrioAnnounce: as MASTER we heard a lower priority master;
	// refresh the neighbours' caches (garp_lower_prio_repeat).
	ActLowerPrioAnnounce
	// ActGateHeld: the gate kept us out of MASTER (Cause: what would have
	// taken us there).
	ActGateHeld
)

// Action is one output of Step.
type Action struct {
	Kind     ActionKind
	Priority uint8  // ActSendAdvert
	From, To State  // ActTransition
	Cause    string // ActTransition: why, in the operator's words
	// CauseKind classifies Cause (ActTransition): one of the Cause*
	// constants, for metric labels.
	CauseKind CauseKind
}

// CauseKind is a transition's cause as a small fixed set (metric labels);
// the values are api's cause kinds.
type CauseKind string

// Cause kinds.
const (
	CauseStartup        CauseKind = "startup"
	CauseMasterDown     CauseKind = "master_down"
	CausePriorityZero   CauseKind = "priority_zero"
	CausePreempt        CauseKind = "preempt"
	CauseHigherPriority CauseKind = "higher_priority"
	CauseOwner          CauseKind = "owner"
	CauseFault          CauseKind = "fault"
	CauseFaultCleared   CauseKind = "fault_cleared"
	CauseMaintenance    CauseKind = "maintenance"
	CauseSyncGroup      CauseKind = "sync_group"
	CauseDemote         CauseKind = "demote"
	CauseShutdown       CauseKind = "shutdown"
	CauseResume         CauseKind = "resume"
)

// Machine is the VRRP state machine of one instance: a pure function of
// events and time. It does no I/O and reads no clock; the runtime feeds it
// events with the current time and carries out the actions it returns.
type Machine struct {
	p     Params
	state State

	masterAdverInt time.Duration // Master_Adver_Interval (v3 learns it from the master)
	downAt         time.Time     // BACKUP: Master_Down_Timer deadline
	advertAt       time.Time     // MASTER: Adver_Timer deadline
	preemptAt      time.Time     // BACKUP: preempt_delay running until then (zero: not running)

	wantMaster bool       // BACKUP, sync member: our down timer ran out, waiting for the group
	gateHeld   bool       // BACKUP: the gate kept us out of MASTER
	gateCause  string     // what would have taken us to MASTER
	master     netip.Addr // the master we hear (ours when MASTER)
	masterPrio uint8
	faults     int
	faultCause string // cause of the first fault in force
	faultKind  CauseKind
	gateKind   CauseKind

	out []Action // reused by hot-path results (valid until the next Step)
}

// NewMachine returns a machine in INIT.
func NewMachine(p Params) *Machine {
	return &Machine{p: p, state: StateInit, masterAdverInt: p.AdvertInt}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Params returns the parameters in force.
func (m *Machine) Params() Params { return m.p }

// Master returns the address of the master last heard (ours when MASTER) and
// its priority.
func (m *Machine) Master() (netip.Addr, uint8) {
	if m.state == StateMaster {
		return m.p.Primary, m.p.Priority
	}
	return m.master, m.masterPrio
}

// MasterAdverInterval is the advert interval learned from the master (v3) or
// our own.
func (m *Machine) MasterAdverInterval() time.Duration { return m.masterAdverInt }

// SkewTime is Skew_Time: v3 ((256-Priority) * Master_Adver_Interval) / 256
// (RFC 5798 6.1), v2 (256-Priority)/256 seconds (RFC 3768 6.1).
func (m *Machine) SkewTime() time.Duration { return m.skew(256 - int(m.p.Priority)) }

func (m *Machine) skew(units int) time.Duration {
	if m.p.Version == 3 {
		return time.Duration(units) * m.masterAdverInt / 256
	}
	return time.Duration(units) * time.Second / 256
}

// MasterDownInterval is N * Master_Adver_Interval + Skew_Time, N being
// down_timer_adverts (the RFC's 3 by default).
func (m *Machine) MasterDownInterval() time.Duration {
	n := time.Duration(m.p.DownTimerAdverts)
	if n <= 0 {
		n = 3
	}
	if m.p.Version == 3 {
		return n*m.masterAdverInt + m.SkewTime()
	}
	return n*m.p.AdvertInt + m.SkewTime()
}

// NextDeadline is when the runtime must deliver EvTimer next; zero when no
// timer runs (INIT, FAULT, STOP).
func (m *Machine) NextDeadline() time.Time {
	switch m.state {
	case StateBackup:
		return m.downAt
	case StateMaster:
		return m.advertAt
	}
	return time.Time{}
}

// Step feeds one event at time now and returns the actions to carry out.
// The returned slice may be the machine's own: it is valid until the next
// call of Step.
func (m *Machine) Step(now time.Time, ev Event) []Action {
	if m.state == StateStop {
		return nil
	}
	switch ev.Kind {
	case EvStartup:
		return m.startup(now)
	case EvResume:
		return m.resume(now, ev.Cause)
	case EvTimer:
		return m.timer(now)
	case EvAdvert:
		return m.advert(now, ev)
	case EvPriority:
		return m.priority(now, ev.Priority)
	case EvFault:
		return m.fault(now, ev.Cause, ev.CauseKind)
	case EvFaultClear:
		return m.faultClear(now)
	case EvShutdown:
		return m.shutdown()
	case EvForceBackup:
		if m.state == StateMaster {
			// keepalived vrrp_sync_backup: leave MASTER quietly (no
			// priority 0), dropping the VIPs.
			acts := []Action{{Kind: ActRelease}}
			m.master, m.masterPrio = netip.Addr{}, 0 // not us any more; nobody heard yet
			return append(acts, m.toBackup(now, m.MasterDownInterval(), CauseSyncGroup, ev.Cause)...)
		}
	case EvForceMaster:
		if m.state == StateBackup {
			return m.enterMaster(now, CauseSyncGroup, ev.Cause)
		}
	case EvGateRetry:
		if m.state == StateBackup && m.gateHeld {
			return m.enterMaster(now, m.gateKind, m.gateCause)
		}
		if m.state == StateBackup && m.wantMaster {
			// A sync member waiting for its group: the group asks the
			// members' gates again.
			return []Action{{Kind: ActWantMaster, Cause: m.takeoverCause()}}
		}
	case EvDemote:
		if m.state == StateMaster {
			acts := []Action{{Kind: ActSendAdvert, Priority: PriorityStop}, {Kind: ActRelease}}
			m.master, m.masterPrio = netip.Addr{}, 0 // not us any more; nobody heard yet
			return append(acts, m.toBackup(now, m.MasterDownInterval(), CauseDemote, ev.Cause)...)
		}
	}
	return nil
}

// Reconfigure applies new parameters to a running machine without a
// transition (a reload or an etcd edit of the same instance). The effective
// priority is not taken from p: it changes through EvPriority. A master
// sends its next advert at the new interval; a backup's running down timer
// is kept (the next advert re-arms it with the new values).
func (m *Machine) Reconfigure(now time.Time, p Params) {
	p.Priority = m.p.Priority
	p.SyncMember = m.p.SyncMember
	if p.Gate == nil {
		p.Gate = m.p.Gate
	}
	oldInt := m.p.AdvertInt
	m.p = p
	if m.p.Version == 2 || m.state != StateBackup {
		m.masterAdverInt = m.p.AdvertInt
	}
	if m.state == StateMaster && p.AdvertInt != oldInt {
		m.advertAt = now.Add(p.AdvertInt)
	}
	if p.NoPreempt || p.PreemptDelay <= 0 {
		m.preemptAt = time.Time{}
	}
}

// SetSyncMember says whether the instance is a sync group member (a member
// joining or leaving a group while it runs).
func (m *Machine) SetSyncMember(on bool) {
	m.p.SyncMember = on
	if !on {
		m.wantMaster = false
	}
}

// GateHeld reports whether the gate keeps a BACKUP out of MASTER now.
func (m *Machine) GateHeld() bool { return m.state == StateBackup && m.gateHeld }

// WantMaster reports whether a sync group member is waiting for its group
// to let it become MASTER.
func (m *Machine) WantMaster() bool { return m.state == StateBackup && m.wantMaster }

func (m *Machine) startup(now time.Time) []Action {
	if m.state != StateInit {
		return nil
	}
	if m.faults > 0 {
		// Hold nothing a crashed run may have left behind.
		return append([]Action{{Kind: ActRelease}}, m.transition(StateFault, m.faultKind, "fault at start-up: "+m.faultCause)...)
	}
	if m.p.Priority == PriorityOwner {
		return m.enterMaster(now, CauseOwner, "address owner (priority 255)")
	}
	wait := m.MasterDownInterval()
	cause := "start-up"
	if m.p.StartMaster {
		// keepalived: a configured MASTER below 255 waits one advert
		// interval plus the minimum skew to make sure no master is there.
		wait = m.masterAdverInt + m.skew(1)
		cause = "start-up (state MASTER: waiting one advert interval for a master)"
	}
	// Coming up we hold no VIPs; release anything a crashed run left.
	acts := []Action{{Kind: ActRelease}}
	return append(acts, m.toBackup(now, wait, CauseStartup, cause)...)
}

// resume is the start of an instance that was MASTER before vipd
// restarted and still holds its VIPs: no start-up wait, no release.
func (m *Machine) resume(now time.Time, cause string) []Action {
	if m.state != StateInit {
		return nil
	}
	if m.faults > 0 || m.p.Gate != nil && !m.p.Gate(cause) {
		return m.startup(now)
	}
	return m.toMaster(now, CauseResume, cause)
}

func (m *Machine) timer(now time.Time) []Action {
	switch m.state {
	case StateBackup:
		if !m.downAt.IsZero() && !now.Before(m.downAt) {
			if m.p.SyncMember {
				// keepalived re-arms the down timer while the group
				// is not ready.
				m.wantMaster = true
				m.downAt = now.Add(m.MasterDownInterval())
				return []Action{{Kind: ActWantMaster, Cause: m.takeoverCause()}}
			}
			return m.enterMaster(now, m.takeoverKind(), m.takeoverCause())
		}
	case StateMaster:
		if !m.advertAt.IsZero() && !now.Before(m.advertAt) {
			m.advertAt = now.Add(m.p.AdvertInt)
			// The hot path: every advert interval of every master. The
			// slice is the machine's own, valid until the next Step.
			m.out = append(m.out[:0], Action{Kind: ActSendAdvert, Priority: m.p.Priority})
			return m.out
		}
	}
	return nil
}

func (m *Machine) advert(now time.Time, ev Event) []Action {
	switch m.state {
	case StateBackup:
		return m.backupAdvert(now, ev)
	case StateMaster:
		return m.masterAdvert(now, ev)
	}
	return nil
}

// takeoverKind classifies takeoverCause.
func (m *Machine) takeoverKind() CauseKind {
	switch {
	case !m.master.IsValid():
		return CauseMasterDown
	case m.masterPrio == PriorityStop:
		return CausePriorityZero
	case m.masterPrio < m.p.Priority && !m.p.NoPreempt:
		return CausePreempt
	}
	return CauseMasterDown
}

// takeoverCause says why the master down timer ran out, in the words an
// operator looks for in the log.
func (m *Machine) takeoverCause() string {
	const expired = "master down timer expired"
	switch {
	case !m.master.IsValid():
		return expired
	case m.masterPrio == PriorityStop:
		return fmt.Sprintf("received priority 0 from %s: %s after skew time", m.master, expired)
	case m.masterPrio < m.p.Priority && !m.p.NoPreempt:
		return fmt.Sprintf("%s: %s %d from %s", expired, preemptWords, m.masterPrio, m.master)
	}
	return fmt.Sprintf("%s: no advert from master %s", expired, m.master)
}

// preemptWords mark a takeover cause as a preemption (IsPreemptCause).
const preemptWords = "preempting lower priority"

// IsPreemptCause reports whether cause, as a Gate receives it, is this node
// preempting a lower-priority master it hears, rather than a master gone
// silent: an arbiter may then ask the holder to yield.
func IsPreemptCause(cause string) bool { return strings.Contains(cause, preemptWords) }

func (m *Machine) backupAdvert(now time.Time, ev Event) []Action {
	if ev.Priority == PriorityStop {
		// RFC 5798 6.4.2: set the Master_Down_Timer to Skew_Time.
		m.downAt = now.Add(m.SkewTime())
		m.master, m.masterPrio = ev.From, 0
		return nil
	}
	preemptHeld := m.preemptHeld(now)
	if m.p.NoPreempt || ev.Priority >= m.p.Priority || preemptHeld {
		if m.p.Version == 3 && ev.Interval > 0 {
			m.masterAdverInt = ev.Interval
		}
		m.downAt = now.Add(m.MasterDownInterval())
		m.wantMaster = false
		m.gateHeld = false
		m.master, m.masterPrio = ev.From, ev.Priority
		if m.p.PreemptDelay > 0 && !m.p.NoPreempt {
			if ev.Priority >= m.p.Priority {
				m.preemptAt = time.Time{}
			} else if m.preemptAt.IsZero() {
				m.preemptAt = now.Add(m.p.PreemptDelay)
			}
		}
		return nil
	}
	// A lower priority master and we preempt: ignore it, so our down timer
	// runs out and we take over.
	m.master, m.masterPrio = ev.From, ev.Priority
	return nil
}

// preemptHeld reports whether preempt_delay still holds us back from
// preempting a lower-priority master. As in keepalived, the delay starts at
// the first lower-priority advert heard and is cancelled by an advert of
// equal or higher priority.
func (m *Machine) preemptHeld(now time.Time) bool {
	if m.p.PreemptDelay <= 0 {
		return false
	}
	return m.preemptAt.IsZero() || now.Before(m.preemptAt)
}

func (m *Machine) masterAdvert(now time.Time, ev Event) []Action {
	if ev.Priority == PriorityStop {
		// Another master is leaving: assert ourselves at once. keepalived
		// restarts its advert timer after an advert received as MASTER
		// unless lower_prio_no_advert is set (then it keeps its rhythm).
		if !m.p.LowerPrioNoAdvert {
			m.advertAt = now.Add(m.p.AdvertInt)
		}
		return []Action{{Kind: ActSendAdvert, Priority: m.p.Priority}}
	}
	cmp := ev.From.Compare(m.p.Primary)
	if ev.Priority == m.p.Priority && cmp == 0 {
		// Our own address at our own priority (a looped-back advert or an
		// address conflict): answering it would loop; keepalived ignores it.
		return nil
	}
	if ev.Priority > m.p.Priority || (ev.Priority == m.p.Priority && cmp > 0) {
		if m.p.Version == 3 && ev.Interval > 0 {
			m.masterAdverInt = ev.Interval
		}
		m.master, m.masterPrio = ev.From, ev.Priority
		cause := fmt.Sprintf("higher priority %d from %s", ev.Priority, ev.From)
		if ev.Priority == m.p.Priority {
			cause = fmt.Sprintf("same priority %d from higher address %s", ev.Priority, ev.From)
		}
		acts := make([]Action, 0, 3)
		if m.p.HigherPrioSendAdvert {
			// higher_prio_send_advert: one advert at our priority first,
			// so the new master (and anyone listening) hears us go.
			acts = append(acts, Action{Kind: ActSendAdvert, Priority: m.p.Priority})
		}
		acts = append(acts, Action{Kind: ActRelease})
		return append(acts, m.toBackup(now, m.MasterDownInterval(), CauseHigherPriority, cause)...)
	}
	// A lower priority (or equal priority, lower address) router thinks it
	// is master: keepalived answers at once to force a new election (not
	// with lower_prio_no_advert) and refreshes the neighbours' ARP/ND
	// caches either way.
	if m.p.LowerPrioNoAdvert {
		return []Action{{Kind: ActLowerPrioAnnounce}}
	}
	m.advertAt = now.Add(m.p.AdvertInt)
	return []Action{{Kind: ActSendAdvert, Priority: m.p.Priority}, {Kind: ActLowerPrioAnnounce}}
}

func (m *Machine) priority(now time.Time, p uint8) []Action {
	if p == PriorityStop {
		p = 1 // 0 on the wire means "leaving"; keepalived clamps to 1
	}
	if p == m.p.Priority {
		return nil
	}
	oldSkew := m.SkewTime()
	m.p.Priority = p
	if m.state == StateBackup && !m.downAt.IsZero() {
		// keepalived vrrp_set_effective_priority: the running down timer
		// moves by the change in Skew_Time.
		m.downAt = m.downAt.Add(m.SkewTime() - oldSkew)
		if m.downAt.Before(now) {
			m.downAt = now
		}
	}
	if m.state == StateMaster {
		// Advertise the change at once; a peer with a higher priority
		// now will preempt us (or, nopreempt peers, keep serving us).
		m.advertAt = now.Add(m.p.AdvertInt)
		return []Action{{Kind: ActSendAdvert, Priority: p}}
	}
	// BACKUP: a priority now above the master's means the master's next
	// adverts no longer reset our down timer (when we preempt), so we take
	// over within one Master_Down_Interval, as keepalived does.
	return nil
}

func (m *Machine) fault(now time.Time, cause string, kind CauseKind) []Action {
	if kind == "" {
		kind = CauseFault
	}
	m.faults++
	if m.faults == 1 {
		m.faultCause, m.faultKind = cause, kind
	}
	if m.faults > 1 || m.state == StateInit {
		return nil
	}
	var acts []Action
	if m.state == StateMaster {
		acts = append(acts, Action{Kind: ActSendAdvert, Priority: PriorityStop}, Action{Kind: ActRelease})
	}
	return append(acts, m.transition(StateFault, kind, cause)...)
}

func (m *Machine) faultClear(now time.Time) []Action {
	if m.faults == 0 {
		return nil
	}
	m.faults--
	if m.faults > 0 || m.state != StateFault {
		return nil
	}
	m.masterAdverInt = m.p.AdvertInt
	m.preemptAt = time.Time{}
	if m.p.Priority == PriorityOwner {
		return m.enterMaster(now, CauseOwner, "fault cleared (address owner)")
	}
	return m.toBackup(now, m.MasterDownInterval(), CauseFaultCleared, "fault cleared")
}

// Faults is the number of faults in force.
func (m *Machine) Faults() int { return m.faults }

func (m *Machine) shutdown() []Action {
	var acts []Action
	if m.state == StateMaster {
		acts = append(acts, Action{Kind: ActSendAdvert, Priority: PriorityStop}, Action{Kind: ActRelease})
	}
	return append(acts, m.transition(StateStop, CauseShutdown, "shutdown")...)
}

// enterMaster is every path into MASTER: it asks the gate first. Held back,
// the machine is (or stays) BACKUP and asks again when its down timer runs
// out once more, or on EvGateRetry.
func (m *Machine) enterMaster(now time.Time, kind CauseKind, cause string) []Action {
	if m.p.Gate != nil && !m.p.Gate(cause) {
		m.gateHeld, m.gateKind, m.gateCause = true, kind, cause
		m.wantMaster = false
		var acts []Action
		if m.state != StateBackup {
			acts = m.toBackup(now, m.MasterDownInterval(), kind, "held out of MASTER by the gate: "+cause)
		}
		m.gateHeld = true
		m.downAt = now.Add(m.MasterDownInterval())
		return append(acts, Action{Kind: ActGateHeld, Cause: cause})
	}
	return m.toMaster(now, kind, cause)
}

func (m *Machine) toMaster(now time.Time, kind CauseKind, cause string) []Action {
	m.gateHeld = false
	m.wantMaster = false
	m.advertAt = now.Add(m.p.AdvertInt)
	m.downAt = time.Time{}
	m.preemptAt = time.Time{}
	m.master, m.masterPrio = m.p.Primary, m.p.Priority
	// keepalived sends the advert first so the old master drops the VIPs
	// before our gratuitous ARPs go out.
	acts := []Action{{Kind: ActSendAdvert, Priority: m.p.Priority}, {Kind: ActAcquire}}
	return append(acts, m.transition(StateMaster, kind, cause)...)
}

func (m *Machine) toBackup(now time.Time, wait time.Duration, kind CauseKind, cause string) []Action {
	m.downAt = now.Add(wait)
	m.wantMaster = false
	m.gateHeld = false
	m.preemptAt = time.Time{}
	m.advertAt = time.Time{}
	return m.transition(StateBackup, kind, cause)
}

func (m *Machine) transition(to State, kind CauseKind, cause string) []Action {
	from := m.state
	m.state = to
	if to != StateMaster && to != StateBackup {
		m.downAt, m.advertAt = time.Time{}, time.Time{}
	}
	if to == StateFault || to == StateStop {
		m.master, m.masterPrio = netip.Addr{}, 0
	}
	if to != StateBackup {
		m.gateHeld = false
	}
	return []Action{{Kind: ActTransition, From: from, To: to, Cause: cause, CauseKind: kind}}
}
