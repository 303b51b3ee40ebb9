package coord

import (
	"fmt"
	"time"
)

// Isolation is what a node cut off from etcd and from every gossip peer
// does with its MASTER instances (--arbiter-isolation).
type Isolation string

// The isolation policies.
const (
	// IsolationRelease gives the VIPs up before the node's lease can expire
	// in etcd, so that the side that still reaches etcd takes over without
	// two holders. The default.
	IsolationRelease Isolation = "release"
	// IsolationKeep keeps them, as plain VRRP would: the VIP stays up on a
	// node that may be the only one left, at the price of two holders when
	// it is not.
	IsolationKeep Isolation = "keep"
)

// ParseIsolation reads --arbiter-isolation.
func ParseIsolation(s string) (Isolation, error) {
	switch Isolation(s) {
	case IsolationRelease, IsolationKeep:
		return Isolation(s), nil
	case "":
		return IsolationRelease, nil
	}
	return "", fmt.Errorf("arbiter isolation policy %q: want release or keep", s)
}

// ArbMode is how the arbiter decides now.
type ArbMode string

// The arbiter's modes.
const (
	// ModeStarting: etcd has not answered yet, for less than one lease TTL
	// since the start; nobody enters MASTER yet.
	ModeStarting ArbMode = "starting"
	// ModeEtcd: this node's lease is live; MASTER only with the claim.
	ModeEtcd ArbMode = "etcd"
	// ModeFailsafe: etcd unreachable, gossip peers answer: plain VRRP,
	// except that a peer reported MASTER keeps us out.
	ModeFailsafe ArbMode = "failsafe"
	// ModeIsolated: etcd and every gossip peer silent: the isolation policy.
	ModeIsolated ArbMode = "isolated"
	// ModeAlone: etcd unreachable and no gossip peer ever known: nothing
	// tells an outage from isolation, so plain VRRP.
	ModeAlone ArbMode = "alone"
)

// ArbInstance is what the arbiter knows of one local instance.
type ArbInstance struct {
	Name     string
	VRID     int
	State    string // MASTER, BACKUP, FAULT, INIT, STOP
	Priority int    // effective priority
	// Held: the gate keeps this BACKUP out of MASTER (it wants MASTER).
	Held bool
	// Preempt: what it waits for is the preemption of a lower-priority
	// master it hears (vrrp.IsPreemptCause of the gate's question).
	Preempt bool
	// AdvertInt is its advert interval (1 s when zero): the wait before
	// claiming a freed claim is its Skew_Time.
	AdvertInt time.Duration
}

// Holders of claims that block an instance without being another node's:
// a value that does not decode (written by hand), or this node's name on
// a lease this run does not hold (a previous run's that could not be
// adopted, or another process under the same --node-name). Nobody takes
// such a claim and no MASTER is demoted for it; it goes when its lease
// does, or by hand.
const (
	UnreadableClaim = "(unreadable)"
	ForeignClaim    = "(this node's name on another lease)"
)

func blockedClaim(c Claim) bool { return c.Node == UnreadableClaim || c.Node == ForeignClaim }

// Claim is an instance's claim: the key arbiter/claim/<instance>, written
// under the holder's lease.
type Claim struct {
	Node     string `json:"node"`
	VRID     int    `json:"vrid"`
	Priority int    `json:"priority"`
	// Rev is the key's create revision, the fence: a release deletes the
	// key only if it is still this claim. Lease is the lease it lives on.
	Rev   int64 `json:"-"`
	Lease int64 `json:"-"`
}

// PreemptRequest is a node asking the holder of a claim to yield: the key
// arbiter/preempt/<instance>/<node> under the asker's lease.
type PreemptRequest struct {
	Node     string `json:"node"`
	Priority int    `json:"priority"`
}

// PeerView is what gossip says when etcd is silent: the failsafe evidence.
type PeerView struct {
	// Known is the number of other gossip members that did not leave.
	Known int
	// Reached is how many of them answered the last direct probe, started
	// at At.
	Reached int
	At      time.Time
	// Masters lists, by instance name, the reachable peers reporting
	// MASTER for it.
	Masters map[string][]PeerMaster

	reachedNames map[string]bool // the arbiter's: who answered the probe
}

// PeerMaster is a peer reporting MASTER for an instance, with its priority.
type PeerMaster struct {
	Node     string
	Priority int
}

// ArbInput is everything one decision depends on; the arbiter's goroutine
// builds it from etcd, the lease, gossip and the agent's status.
type ArbInput struct {
	Now    time.Time
	Node   string
	Policy Isolation
	// Start is when the arbiter started; Tried is whether a lease request
	// has succeeded or failed since (for the record: starting lasts until
	// the first success or one TTL, whatever the failures).
	Start time.Time
	Tried bool
	// Observed: the agent's instances were handed over after its first
	// apply. Until then a claim of ours for an instance not in Instances
	// may be one to keep (adopted from the previous run), not a removed one.
	Observed bool
	TTL      time.Duration
	// LiveUntil: the lease is known live until then (the send time of the
	// last successful keep-alive plus its TTL, less a margin). LastOK is
	// that send time.
	LiveUntil time.Time
	LastOK    time.Time
	Peers     PeerView

	Instances map[string]ArbInstance
	Claims    map[string]Claim            // every claim in etcd, ours included
	Requests  map[string][]PreemptRequest // other nodes' preemption requests, by instance
	// ClaimedAt is when this node won each claim it holds (zero: adopted).
	ClaimedAt map[string]time.Time
	// Asking lists our own preemption requests in etcd.
	Asking map[string]bool
	// Wanted is when the gate last said no to each instance (it wants
	// MASTER; the status may not say so yet).
	Wanted map[string]time.Time
	// Demoted is when a demotion was last asked for each instance.
	Demoted map[string]time.Time
	// Freed is when another node's claim disappeared (its lease expired,
	// or it released it) while this node's instance waited for it.
	Freed map[string]time.Time
}

// ArbActionKind is what the arbiter does.
type ArbActionKind string

// The arbiter's actions.
const (
	ActClaim    ArbActionKind = "claim"    // create arbiter/claim/<instance> if absent
	ActRelease  ArbActionKind = "release"  // delete our claim (fenced by Rev)
	ActDemote   ArbActionKind = "demote"   // leave MASTER through the door
	ActRequest  ArbActionKind = "request"  // ask the holder to yield (Priority)
	ActWithdraw ArbActionKind = "withdraw" // delete our request
)

// ArbAction is one thing to do.
type ArbAction struct {
	Kind     ArbActionKind
	Instance string
	Cause    string
	Priority int
	Rev      int64
}

func (a ArbAction) String() string {
	s := string(a.Kind) + " " + a.Instance
	if a.Priority != 0 {
		s += fmt.Sprintf(" priority=%d", a.Priority)
	}
	if a.Rev != 0 {
		s += fmt.Sprintf(" rev=%d", a.Rev)
	}
	if a.Cause != "" {
		s += ": " + a.Cause
	}
	return s
}

// GateAnswer is the gate's answer for one instance.
type GateAnswer struct {
	Allow bool
	Why   string
}

// ArbDecision is the outcome of Decide.
type ArbDecision struct {
	Mode    ArbMode
	Why     string
	Gate    map[string]GateAnswer
	Actions []ArbAction
	// Next is when the decision may change with time alone (zero: only
	// with new inputs).
	Next time.Time
}

// Timings of the rules.
const (
	// wantGrace: a gate refusal counts as wanting MASTER this long, until
	// the status says the instance is held.
	wantGrace = time.Second
	// claimGrace: a claim won for an instance that then did not go MASTER
	// (an advert came first) is released after this long.
	claimGrace = 2 * time.Second
	// demoteEvery bounds how often one instance is asked to demote.
	demoteEvery = time.Second
)

// ClaimDelay is how long a node of this priority and advert interval waits
// to claim a claim that another node just let go (a lease expired, a
// release): its Skew_Time, ((256 - priority) × advert_int) / 256, so that
// when several wait, the highest priority claims first, as VRRP orders
// takeovers. After a graceful hand-over the backup's down timer has run
// Skew_Time since the priority-0 advert, so the wait is mostly over.
func ClaimDelay(priority int, advert time.Duration) time.Duration {
	if priority < 1 || priority > 255 {
		priority = 1
	}
	if advert <= 0 {
		advert = time.Second
	}
	return time.Duration(256-priority) * advert / 256
}

// Decide is the arbiter's rules, a pure function: the mode, the gate's
// answer for every instance, and what to do. docs/arbitration.md states
// them and why they are safe.
func Decide(in ArbInput) ArbDecision {
	d := ArbDecision{Gate: map[string]GateAnswer{}}
	d.Mode, d.Why = mode(in)
	for _, n := range sortedKeys(in.Instances) {
		inst := in.Instances[n]
		switch d.Mode {
		case ModeEtcd:
			d.etcd(in, inst)
		case ModeStarting:
			d.Gate[n] = GateAnswer{false, "waiting for etcd's first answer"}
		case ModeFailsafe:
			d.failsafe(in, inst)
		case ModeIsolated:
			if in.Policy == IsolationKeep {
				d.Gate[n] = GateAnswer{true, "cut off from etcd and every gossip peer; policy keep"}
				continue
			}
			d.Gate[n] = GateAnswer{false, "cut off from etcd and every gossip peer; policy release"}
			if inst.State == "MASTER" {
				d.demote(in, n, "cut off from etcd and every gossip peer before the lease could expire (policy release)")
			}
		case ModeAlone:
			d.Gate[n] = GateAnswer{true, "etcd unreachable and no gossip peer known: plain VRRP"}
		}
	}
	if d.Mode == ModeEtcd && in.Observed {
		// Claims of ours for instances this node no longer runs.
		for _, n := range sortedKeys(in.Claims) {
			c := in.Claims[n]
			if _, ok := in.Instances[n]; !ok && c.Node == in.Node {
				d.Actions = append(d.Actions, ArbAction{Kind: ActRelease, Instance: n, Rev: c.Rev, Cause: "instance removed"})
			}
		}
		for _, n := range sortedKeys(in.Asking) {
			if _, ok := in.Instances[n]; !ok && in.Asking[n] {
				d.Actions = append(d.Actions, ArbAction{Kind: ActWithdraw, Instance: n, Cause: "instance removed"})
			}
		}
	}
	return d
}

func mode(in ArbInput) (ArbMode, string) {
	switch {
	case !in.LiveUntil.IsZero() && in.Now.Before(in.LiveUntil):
		return ModeEtcd, "lease live"
	case in.LastOK.IsZero() && in.Now.Sub(in.Start) < in.TTL:
		// A failed first request does not end it: a slow etcd at a start
		// must not open the gate to plain VRRP before it could answer.
		return ModeStarting, "waiting for etcd's first answer"
	case in.Peers.Known == 0:
		return ModeAlone, "etcd unreachable and no gossip peer known"
	case in.Peers.Reached > 0 && in.Peers.At.After(in.LastOK):
		return ModeFailsafe, fmt.Sprintf("etcd unreachable; %d of %d gossip peers answer", in.Peers.Reached, in.Peers.Known)
	}
	return ModeIsolated, "etcd unreachable and no gossip peer answers"
}

// wants reports whether inst wants MASTER: held by the gate, or refused by
// it a moment ago.
func wants(in ArbInput, inst ArbInstance) bool {
	if inst.State != "BACKUP" {
		return false
	}
	if inst.Held {
		return true
	}
	at, ok := in.Wanted[inst.Name]
	return ok && in.Now.Sub(at) < wantGrace
}

func (d *ArbDecision) etcd(in ArbInput, inst ArbInstance) {
	n := inst.Name
	c, held := in.Claims[n]
	ours := held && c.Node == in.Node
	want := wants(in, inst)
	asking := in.Asking[n]
	switch {
	case ours:
		d.Gate[n] = GateAnswer{true, "this node holds the claim"}
	case held && blockedClaim(c):
		d.Gate[n] = GateAnswer{false, "the claim is " + c.Node + ": nobody takes it until it goes"}
		return
	case held:
		d.Gate[n] = GateAnswer{false, fmt.Sprintf("node %s holds the claim", c.Node)}
	default:
		d.Gate[n] = GateAnswer{false, "claiming"}
	}
	switch inst.State {
	case "MASTER":
		switch {
		case ours:
			if r, ok := strongest(in.Requests[n]); ok && r.Priority > inst.Priority {
				d.demote(in, n, fmt.Sprintf("node %s asks to preempt with priority %d, ours %d", r.Node, r.Priority, inst.Priority))
			}
		case held:
			d.demote(in, n, fmt.Sprintf("node %s holds the claim", c.Node))
		default:
			d.Actions = append(d.Actions, ArbAction{Kind: ActClaim, Instance: n, Priority: inst.Priority, Cause: "MASTER without a claim"})
		}
	case "BACKUP":
		switch {
		case ours && !want:
			if at, ok := in.ClaimedAt[n]; !ok || at.IsZero() || in.Now.Sub(at) >= claimGrace {
				d.release(n, c, "not MASTER")
			}
		case !held && want:
			// A holder that yielded to our request let it go for us.
			if at, ok := in.Freed[n]; ok && !asking {
				if due := at.Add(ClaimDelay(inst.Priority, inst.AdvertInt)); in.Now.Before(due) {
					d.Gate[n] = GateAnswer{false, "the claim was let go; letting higher priorities claim first"}
					d.wake(due)
					break
				}
			}
			d.Actions = append(d.Actions, ArbAction{Kind: ActClaim, Instance: n, Priority: inst.Priority, Cause: "wants MASTER"})
		// The claim's priority is the holder's when it won: the holder
		// compares a request with its priority now.
		case held && !ours && want && inst.Preempt && !asking:
			d.Actions = append(d.Actions, ArbAction{Kind: ActRequest, Instance: n, Priority: inst.Priority,
				Cause: fmt.Sprintf("preempting node %s (priority %d)", c.Node, c.Priority)})
			asking = true
		}
	case "FAULT", "STOP":
		if ours {
			d.release(n, c, "state "+inst.State)
		}
	}
	// INIT (or anything else): not known yet; a claim of ours stays (an
	// instance resumed after a restart shows INIT before it is MASTER).
	if in.Asking[n] && !(inst.State == "BACKUP" && want && held && !ours) {
		d.Actions = append(d.Actions, ArbAction{Kind: ActWithdraw, Instance: n, Cause: "no longer waiting to preempt"})
	}
}

func (d *ArbDecision) wake(at time.Time) {
	if d.Next.IsZero() || at.Before(d.Next) {
		d.Next = at
	}
}

func (d *ArbDecision) release(n string, c Claim, cause string) {
	d.Gate[n] = GateAnswer{false, "releasing the claim"}
	d.Actions = append(d.Actions, ArbAction{Kind: ActRelease, Instance: n, Rev: c.Rev, Cause: cause})
}

func (d *ArbDecision) failsafe(in ArbInput, inst ArbInstance) {
	n := inst.Name
	peers := in.Peers.Masters[n]
	if len(peers) == 0 {
		d.Gate[n] = GateAnswer{true, "etcd unreachable; gossip peers answer and none is MASTER (failsafe)"}
		return
	}
	p := peers[0]
	for _, q := range peers[1:] {
		if q.Priority > p.Priority || q.Priority == p.Priority && q.Node < p.Node {
			p = q
		}
	}
	d.Gate[n] = GateAnswer{false, fmt.Sprintf("etcd unreachable; node %s reports MASTER", p.Node)}
	// Two MASTERs known to each other through gossip: the lower one (the
	// name breaks a tie) yields, so both pick the same survivor.
	if inst.State == "MASTER" && (p.Priority > inst.Priority || p.Priority == inst.Priority && p.Node < in.Node) {
		d.demote(in, n, fmt.Sprintf("etcd unreachable and node %s is MASTER with priority %d, ours %d", p.Node, p.Priority, inst.Priority))
	}
}

func (d *ArbDecision) demote(in ArbInput, n, cause string) {
	if at, ok := in.Demoted[n]; ok && in.Now.Sub(at) < demoteEvery {
		return
	}
	d.Actions = append(d.Actions, ArbAction{Kind: ActDemote, Instance: n, Cause: cause})
}

// strongest is the request with the highest priority (the name breaks a tie).
func strongest(rs []PreemptRequest) (PreemptRequest, bool) {
	if len(rs) == 0 {
		return PreemptRequest{}, false
	}
	best := rs[0]
	for _, r := range rs[1:] {
		if r.Priority > best.Priority || r.Priority == best.Priority && r.Node < best.Node {
			best = r
		}
	}
	return best, true
}
