package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/internal/clock"
)

// ArbiterDoor is the part of the agent's door the arbiter drives.
type ArbiterDoor interface {
	// GateChanged: instances held back by the gate ask it again.
	GateChanged()
	// Demote takes instance out of MASTER with a priority-0 advert.
	Demote(ctx context.Context, instance, cause string) error
}

// ArbiterPeers is what the arbiter asks gossip when etcd is silent.
type ArbiterPeers interface {
	// Probe pings every other member that has not left, directly, and
	// returns how many there are and the names of those that answered
	// within timeout.
	Probe(ctx context.Context, timeout time.Duration) (known int, reached []string)
	// Masters lists, by instance name, the live peers reporting MASTER
	// (the arbiter keeps those that answered the last probe).
	Masters() map[string][]PeerMaster
}

// ArbiterConfig configures an Arbiter.
type ArbiterConfig struct {
	Prefix string
	Node   string
	// TTL of the node's arbiter lease (default DefaultArbiterTTL, at least
	// MinArbiterTTL, whole seconds). A crashed master's claim lasts this
	// long at most after its last keep-alive.
	TTL    time.Duration
	Policy Isolation
	Door   ArbiterDoor
	// Peers is gossip; nil when gossip is off (the arbiter then never
	// takes a silent etcd for isolation: ModeAlone).
	Peers   ArbiterPeers
	Clock   clock.Clock
	Logger  *slog.Logger
	Metrics *Metrics
}

// Arbiter timings.
const (
	DefaultArbiterTTL = 3 * time.Second
	MinArbiterTTL     = 2 * time.Second // etcd's own minimum with its default timing
	probeTimeout      = 300 * time.Millisecond
	probeEvery        = 300 * time.Millisecond
	tickEvery         = 250 * time.Millisecond
)

// Arbiter arbitrates mastership through etcd: a node enters MASTER only
// while it holds the instance's claim, a key under its lease. It is the
// agent's gate (MayBecomeMaster answers at once from the last decision)
// and it demotes through the door. One goroutine (Run's loop) owns its
// state; MayBecomeMaster and Observe hand it inputs under mu.
type Arbiter struct {
	cli     *clientv3.Client
	cfg     ArbiterConfig
	ttl     time.Duration
	clock   clock.Clock
	log     *slog.Logger
	metrics *Metrics
	kick    chan struct{}
	lk      *leaseKeeper

	mu     sync.Mutex
	gate   map[string]GateAnswer
	insts  map[string]ArbInstance
	wanted map[string]time.Time
	mode   ArbMode
	why    string
	held   []string // instances whose claim this node holds
	// The loop's inputs from its helpers, taken under mu.
	snap     map[string]*mvccpb.KeyValue
	snapRev  int64
	snapNew  bool
	leaseEv  []leaseEvent
	probed   *PeerView
	results  []actionResult
	granted  map[string]uint64 // gate answers yes, counted by instance
	observed bool
	released atomic.Bool // Release ran: no new lease, no new claim
}

// NewArbiter returns an arbiter; Run starts it.
func NewArbiter(cli *clientv3.Client, cfg ArbiterConfig) *Arbiter {
	a := &Arbiter{cli: cli, cfg: cfg, ttl: cfg.TTL, clock: cfg.Clock, log: cfg.Logger, metrics: cfg.Metrics,
		kick: make(chan struct{}, 1), gate: map[string]GateAnswer{}, insts: map[string]ArbInstance{},
		wanted: map[string]time.Time{}, granted: map[string]uint64{}, mode: ModeStarting}
	if a.ttl <= 0 {
		a.ttl = DefaultArbiterTTL
	}
	if a.ttl < MinArbiterTTL {
		a.ttl = MinArbiterTTL
	}
	a.ttl = a.ttl.Round(time.Second)
	if a.cfg.Policy == "" {
		a.cfg.Policy = IsolationRelease
	}
	if a.clock == nil {
		a.clock = clock.System{}
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.metrics == nil {
		a.metrics = NewMetrics()
	}
	a.lk = &leaseKeeper{a: a}
	return a
}

// TTL is the lease TTL in force.
func (a *Arbiter) TTL() time.Duration { return a.ttl }

// MayBecomeMaster implements vrrp.Gate: the last decision's answer, at
// once. A refusal records that the instance wants MASTER, so that the loop
// claims for it (or asks the holder to yield, preempt true); a won claim
// opens the gate through ArbiterDoor.GateChanged.
func (a *Arbiter) MayBecomeMaster(instance string, vrid int, cause string, preempt bool) (bool, string) {
	a.mu.Lock()
	ans, ok := a.gate[instance]
	if !ok {
		ans = GateAnswer{false, "the arbiter has not decided for this instance yet"}
	}
	if ans.Allow {
		a.granted[instance]++
	} else {
		a.wanted[instance] = a.clock.Now()
		in := a.insts[instance]
		in.Name, in.VRID, in.State, in.Held, in.Preempt = instance, vrid, "BACKUP", true, preempt
		a.insts[instance] = in
	}
	a.mu.Unlock()
	if !ans.Allow {
		a.poke()
	}
	return ans.Allow, ans.Why
}

// Observe hands the arbiter the local instances as they are now (every
// instance, each time). The agent calls it first after its first apply:
// only then does a claim of this node for an instance it does not run
// count as one to release.
func (a *Arbiter) Observe(insts []ArbInstance) {
	m := make(map[string]ArbInstance, len(insts))
	for _, in := range insts {
		m[in.Name] = in
	}
	a.mu.Lock()
	for n, in := range m {
		if old, ok := a.insts[n]; ok && in.State == "BACKUP" && in.Held && !in.Preempt {
			in.Preempt = old.Preempt
		}
		m[n] = in
	}
	a.insts = m
	a.observed = true
	a.mu.Unlock()
	a.poke()
}

// Mode returns the arbiter's mode and why.
func (a *Arbiter) Mode() (ArbMode, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode, a.why
}

// Claims lists the instances whose claim this node holds, sorted.
func (a *Arbiter) Claims() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.held)
}

func (a *Arbiter) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

type leaseEvent struct {
	ok       bool
	sent     time.Time // when the successful request was sent
	ttl      time.Duration
	lease    clientv3.LeaseID
	adopted  bool
	err      error
	notFound bool
}

type actionResult struct {
	act    ArbAction
	err    error
	won    bool
	claim  Claim // the claim now (won: ours; lost: the holder's)
	held   bool  // lost: someone holds it
	atRev  int64
	doneAt time.Time
}

// Run arbitrates until ctx ends. Graceful stops call Release first.
func (a *Arbiter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	w := NewKVWatcher(a.cli, WatcherConfig{Prefix: a.cfg.Prefix, Dir: segArbiter + "/", Clock: a.clock, Logger: a.log,
		Metrics: NewMetrics(), ProbeInterval: time.Second}, func(rev int64, kvs map[string]*mvccpb.KeyValue) {
		a.mu.Lock()
		a.snap, a.snapRev, a.snapNew = kvs, rev, true
		a.mu.Unlock()
		a.poke()
	})
	wg.Add(2)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	go func() { defer wg.Done(); a.lk.run(ctx) }()
	a.loop(ctx, &wg)
	return ctx.Err()
}

// loopState is what the loop owns.
type loopState struct {
	start     time.Time
	tried     bool
	lease     clientv3.LeaseID
	liveUntil time.Time
	lastOK    time.Time
	trouble   bool // the last lease request failed
	peers     PeerView
	probing   bool
	lastProbe time.Time

	claims    map[string]Claim            // from the last snapshot
	requests  map[string][]PreemptRequest // others', from the snapshot
	asking    map[string]bool             // ours, from the snapshot and our writes
	local     map[string]localClaim       // our writes newer than the snapshot
	claimedAt map[string]time.Time
	demoted   map[string]time.Time
	freed     map[string]time.Time
	next      time.Time
	inflight  map[string]ArbActionKind
	lastGate  map[string]GateAnswer
	mode      ArbMode
	bad       map[string]bool      // claim keys that hold no claim, logged
	leaseGone map[int64]bool       // this node's leases etcd said are gone
	fails     map[string]int       // etcd writes failed in a row, by instance
	retryAt   map[string]time.Time // no write for the instance before then
}

type localClaim struct {
	claim *Claim // nil: deleted
	atRev int64
}

func (a *Arbiter) loop(ctx context.Context, wg *sync.WaitGroup) {
	st := &loopState{start: a.clock.Now(), claims: map[string]Claim{}, requests: map[string][]PreemptRequest{},
		asking: map[string]bool{}, local: map[string]localClaim{}, claimedAt: map[string]time.Time{},
		demoted: map[string]time.Time{}, freed: map[string]time.Time{}, bad: map[string]bool{}, leaseGone: map[int64]bool{},
		fails: map[string]int{}, retryAt: map[string]time.Time{}, inflight: map[string]ArbActionKind{}, lastGate: map[string]GateAnswer{}}
	a.metrics.setArbMode(ModeStarting)
	t := a.clock.NewTimer(tickEvery)
	defer t.Stop()
	for {
		a.step(ctx, st, wg)
		wait := tickEvery
		now := a.clock.Now()
		if st.mode == ModeEtcd {
			if d := st.liveUntil.Sub(now); d > 0 && d < wait {
				wait = d
			}
		}
		if !st.next.IsZero() {
			if d := st.next.Sub(now); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-t.C():
		}
	}
}

// step takes the inputs gathered since the last one, decides and acts.
func (a *Arbiter) step(ctx context.Context, st *loopState, wg *sync.WaitGroup) {
	now := a.clock.Now()
	a.mu.Lock()
	snap, snapRev, snapNew := a.snap, a.snapRev, a.snapNew
	a.snapNew = false
	evs := a.leaseEv
	a.leaseEv = nil
	probed := a.probed
	a.probed = nil
	results := a.results
	a.results = nil
	insts := maps.Clone(a.insts)
	wanted := maps.Clone(a.wanted)
	observed := a.observed
	granted := maps.Clone(a.granted)
	a.mu.Unlock()

	for _, ev := range evs {
		st.tried = true
		if !ev.ok && !st.trouble && ev.err != nil {
			a.log.Warn("arbiter: lease request failed; retrying", "err", explain(ev.err))
		}
		if ev.ok {
			if st.lease != ev.lease {
				st.lease = ev.lease
				if ev.adopted {
					a.log.Info("arbiter: kept the lease of the previous run (its claims stay)", "lease", fmt.Sprintf("%x", int64(ev.lease)))
				}
			}
			st.lastOK = ev.sent
			st.liveUntil = ev.sent.Add(ev.ttl - ev.ttl/3)
			st.trouble = false
			continue
		}
		st.trouble = true
		if ev.notFound {
			st.leaseGone[int64(st.lease)] = true
			st.lease, st.liveUntil = 0, time.Time{}
		}
	}
	if probed != nil {
		st.peers = *probed
		st.probing = false
	}
	if snapNew {
		before := st.claims
		a.absorb(st, snap, snapRev)
		for n, c := range before {
			if _, still := st.claims[n]; !still && c.Node != a.cfg.Node {
				st.freed[n] = now
			}
		}
	}
	for n, at := range st.freed {
		if now.Sub(at) > 2*time.Second {
			delete(st.freed, n)
		}
	}
	for _, r := range results {
		a.result(st, r)
	}
	for n, inst := range insts {
		if _, ok := st.claimedAt[n]; ok && inst.State == "MASTER" {
			// Established: leaving MASTER now releases at once.
			st.claimedAt[n] = time.Time{}
		}
	}

	live := !st.liveUntil.IsZero() && now.Before(st.liveUntil)
	// Probe as soon as a renewal is overdue (not only once it failed), so
	// that the answer is in before the deadline.
	overdue := !st.lastOK.IsZero() && now.Sub(st.lastOK) > a.ttl/3+probeTimeout/3
	if (st.trouble || !live || overdue) && a.cfg.Peers != nil && !st.probing && now.Sub(st.lastProbe) >= probeEvery {
		st.probing, st.lastProbe = true, now
		wg.Add(1)
		go func() { defer wg.Done(); a.probe(ctx, now) }()
	}
	if !live && a.cfg.Peers != nil {
		// A peer that did not answer the probe (dead, or beyond a cut)
		// does not hold anyone back, whatever gossip last heard from it.
		st.peers.Masters = map[string][]PeerMaster{}
		for inst, ms := range a.cfg.Peers.Masters() {
			for _, m := range ms {
				if st.peers.reachedNames[m.Node] {
					st.peers.Masters[inst] = append(st.peers.Masters[inst], m)
				}
			}
		}
	}

	in := ArbInput{Now: now, Node: a.cfg.Node, Policy: a.cfg.Policy, Start: st.start, Tried: st.tried, TTL: a.ttl,
		LiveUntil: st.liveUntil, LastOK: st.lastOK, Peers: st.peers, Instances: insts, Observed: observed, Claims: a.view(st),
		Requests: st.requests, ClaimedAt: st.claimedAt, Asking: st.asking, Wanted: wanted, Demoted: st.demoted, Freed: st.freed}
	d := Decide(in)
	st.next = d.Next

	if d.Mode != st.mode {
		a.logMode(st.mode, d)
		st.mode = d.Mode
		a.metrics.setArbMode(d.Mode)
	}
	opened := false
	for n, g := range d.Gate {
		old, had := st.lastGate[n]
		if g.Allow && (!had || !old.Allow) {
			opened = true
		}
		if had && old.Why != g.Why && (wants(in, insts[n]) || insts[n].State == "MASTER") {
			a.log.Info("arbiter: gate", "instance", n, "allow", g.Allow, "why", g.Why)
		}
	}
	st.lastGate = d.Gate
	var held []string
	for n, c := range in.Claims {
		if c.Node == a.cfg.Node {
			held = append(held, n)
		}
	}
	slices.Sort(held)
	a.metrics.arbClaims.Set(float64(len(held)))
	a.mu.Lock()
	a.gate, a.mode, a.why, a.held = d.Gate, d.Mode, d.Why, held
	for n, at := range a.wanted {
		if now.Sub(at) >= wantGrace {
			delete(a.wanted, n)
		}
	}
	// A gate that said yes since the inputs were read (an instance on its
	// way into MASTER with the claim) keeps its claim: no release for it.
	// From here on the gate says no, so the release can go when it is
	// decided again.
	acts := d.Actions[:0:0]
	for _, act := range d.Actions {
		if act.Kind == ActRelease && a.granted[act.Instance] != granted[act.Instance] {
			continue
		}
		acts = append(acts, act)
	}
	a.mu.Unlock()
	if opened {
		a.cfg.Door.GateChanged()
	}
	for _, act := range acts {
		a.act(ctx, st, act, wg)
	}
}

func (a *Arbiter) logMode(from ArbMode, d ArbDecision) {
	switch d.Mode {
	case ModeEtcd:
		a.log.Info("arbiter: etcd answers; MASTER only with the claim", "was", from)
	case ModeStarting:
	case ModeFailsafe:
		a.log.Warn("arbiter: failsafe: etcd silent, gossip peers answer; plain VRRP while no peer is MASTER", "was", from, "why", d.Why)
	case ModeIsolated:
		a.log.Warn("arbiter: cut off from etcd and every gossip peer", "was", from, "policy", a.cfg.Policy)
	case ModeAlone:
		a.log.Warn("arbiter: etcd silent and no gossip peer known: plain VRRP", "was", from)
	}
}

// absorb takes a snapshot of arbiter/ from the watcher.
func (a *Arbiter) absorb(st *loopState, kvs map[string]*mvccpb.KeyValue, rev int64) {
	bad := map[string]bool{}
	defer func() { st.bad = bad }()
	st.claims = map[string]Claim{}
	st.requests = map[string][]PreemptRequest{}
	asking := map[string]bool{}
	dir := ArbiterPrefix(a.cfg.Prefix)
	for k, kv := range kvs {
		kind, inst, node, ok := ParseArbiterName(strings.TrimPrefix(k, dir))
		if !ok {
			continue
		}
		switch kind {
		case "claim":
			var c Claim
			if err := json.Unmarshal(kv.Value, &c); err != nil || c.Node == "" || blockedClaim(c) {
				if !st.bad[k] {
					a.log.Warn("arbiter: a claim key holds no claim: nobody takes the instance until it is deleted", "key", k, "err", err)
				}
				bad[k] = true
				c = Claim{Node: UnreadableClaim}
			}
			c.Rev, c.Lease = kv.CreateRevision, kv.Lease
			st.claims[inst] = c
		case "preempt":
			if node == a.cfg.Node {
				asking[inst] = true
				continue
			}
			var r PreemptRequest
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				continue
			}
			r.Node = node
			st.requests[inst] = append(st.requests[inst], r)
		}
	}
	for inst := range st.asking {
		if st.inflight[inst] == ActRequest {
			asking[inst] = true
		}
	}
	st.asking = asking
	for inst, l := range st.local {
		if l.atRev <= rev {
			delete(st.local, inst)
		}
	}
	for inst := range st.claimedAt {
		if c, ok := st.claims[inst]; !ok || c.Node != a.cfg.Node {
			if _, pending := st.local[inst]; !pending {
				delete(st.claimedAt, inst)
			}
		}
	}
}

// view is the claims as this node knows them: the snapshot with its own
// newer writes on top.
//
// A claim naming this node on another lease than the one held now is left
// out: that lease is gone (it expired while etcd was away), so the key is
// too, whatever a snapshot from before says; a claim on it would be
// refused by etcd if the key were still there.
func (a *Arbiter) view(st *loopState) map[string]Claim {
	v := st.claims
	stale := false
	for _, c := range st.claims {
		if c.Node == a.cfg.Node && c.Lease != int64(st.lease) {
			stale = true
			break
		}
	}
	if len(st.local) == 0 && !stale {
		return v
	}
	v = maps.Clone(st.claims)
	for inst, l := range st.local {
		if l.claim == nil {
			delete(v, inst)
		} else {
			v[inst] = *l.claim
		}
	}
	for inst, c := range v {
		if c.Node == a.cfg.Node && c.Lease != int64(st.lease) {
			if st.leaseGone[c.Lease] {
				delete(v, inst) // that lease expired: so did the key
				continue
			}
			c.Node = ForeignClaim
			v[inst] = c
		}
	}
	return v
}

func (a *Arbiter) result(st *loopState, r actionResult) {
	n := r.act.Instance
	delete(st.inflight, n)
	failed := r.err != nil || (r.act.Kind == ActClaim || r.act.Kind == ActRelease) && !r.won
	if failed {
		// Back off per instance: a claim that keeps failing (a write
		// refused, a key in the way) must not become a storm of requests.
		st.fails[n]++
		st.retryAt[n] = r.doneAt.Add(backoff(st.fails[n], DefaultMinBackoff, DefaultMaxBackoff))
	} else {
		delete(st.fails, n)
		delete(st.retryAt, n)
	}
	if r.err != nil {
		if errors.Is(r.err, context.Canceled) {
			return
		}
		if st.fails[n] == 1 {
			a.log.Warn("arbiter: etcd request failed; retrying with backoff", "action", r.act.Kind, "instance", n, "err", explain(r.err))
		} else {
			a.log.Debug("arbiter: etcd request failed again", "action", r.act.Kind, "instance", n, "failures", st.fails[n], "err", r.err)
		}
		return
	}
	switch r.act.Kind {
	case ActClaim:
		if r.won {
			c := r.claim
			st.local[n] = localClaim{claim: &c, atRev: r.atRev}
			st.claimedAt[n] = r.doneAt
			a.log.Info("arbiter: claim won", "instance", n, "revision", c.Rev, "cause", r.act.Cause)
		} else if r.held {
			c := r.claim
			st.local[n] = localClaim{claim: &c, atRev: r.atRev}
		}
	case ActRelease:
		delete(st.claimedAt, n)
		if r.won {
			st.local[n] = localClaim{atRev: r.atRev}
			a.log.Info("arbiter: claim released", "instance", n, "cause", r.act.Cause)
		} else {
			// Not ours any more (the watch will tell whose): nothing recorded.
			a.log.Debug("arbiter: claim already gone", "instance", n, "revision", r.act.Rev)
		}
	case ActRequest:
		st.asking[n] = true
		a.log.Info("arbiter: asked the holder to yield", "instance", n, "priority", r.act.Priority, "cause", r.act.Cause)
	case ActWithdraw:
		delete(st.asking, n)
	}
}

// act starts one action. etcd writes run aside (one per instance at a
// time) so that a slow etcd never holds up the loop's deadlines.
func (a *Arbiter) act(ctx context.Context, st *loopState, act ArbAction, wg *sync.WaitGroup) {
	n := act.Instance
	if act.Kind == ActDemote {
		st.demoted[n] = a.clock.Now()
		a.metrics.arbDemote.Inc()
		a.log.Warn("arbiter: demoting", "instance", n, "cause", act.Cause)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.cfg.Door.Demote(ctx, n, "arbiter: "+act.Cause); err != nil && ctx.Err() == nil {
				a.log.Warn("arbiter: demote failed", "instance", n, "err", err)
			}
		}()
		return
	}
	if _, busy := st.inflight[n]; busy || st.lease == 0 || a.released.Load() {
		return
	}
	if at, ok := st.retryAt[n]; ok && a.clock.Now().Before(at) {
		return
	}
	st.inflight[n] = act.Kind
	lease := st.lease
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := a.write(ctx, act, lease)
		r.act, r.doneAt = act, a.clock.Now()
		a.mu.Lock()
		a.results = append(a.results, r)
		a.mu.Unlock()
		a.poke()
	}()
}

// write does one action's etcd request.
func (a *Arbiter) write(ctx context.Context, act ArbAction, lease clientv3.LeaseID) actionResult {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), DefaultRequestTimeout)
	defer cancel()
	n := act.Instance
	key := ClaimKey(a.cfg.Prefix, n)
	switch act.Kind {
	case ActClaim:
		c := Claim{Node: a.cfg.Node, Priority: act.Priority}
		a.mu.Lock()
		c.VRID = a.insts[n].VRID
		a.mu.Unlock()
		val, _ := json.Marshal(c)
		resp, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lease))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return actionResult{err: fmt.Errorf("claim %s: %w", key, err)}
		}
		rev := resp.Header.Revision
		if resp.Succeeded {
			c.Rev, c.Lease = rev, int64(lease)
			return actionResult{won: true, claim: c, atRev: rev}
		}
		r := actionResult{atRev: rev}
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) == 1 {
			var h Claim
			if json.Unmarshal(rr.Kvs[0].Value, &h) == nil && h.Node != "" {
				h.Rev, h.Lease = rr.Kvs[0].CreateRevision, rr.Kvs[0].Lease
				r.claim, r.held = h, true
			}
		}
		return r
	case ActRelease:
		resp, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", act.Rev)).
			Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return actionResult{err: fmt.Errorf("release %s: %w", key, err)}
		}
		// won: the key was still this claim and is deleted now.
		return actionResult{atRev: resp.Header.Revision, won: resp.Succeeded}
	case ActRequest:
		val, _ := json.Marshal(PreemptRequest{Node: a.cfg.Node, Priority: act.Priority})
		pk := PreemptKey(a.cfg.Prefix, n, a.cfg.Node)
		if _, err := a.cli.Put(ctx, pk, string(val), clientv3.WithLease(lease)); err != nil {
			return actionResult{err: fmt.Errorf("put %s: %w", pk, err)}
		}
		return actionResult{}
	case ActWithdraw:
		pk := PreemptKey(a.cfg.Prefix, n, a.cfg.Node)
		if _, err := a.cli.Delete(ctx, pk); err != nil {
			return actionResult{err: fmt.Errorf("delete %s: %w", pk, err)}
		}
		return actionResult{}
	}
	return actionResult{err: fmt.Errorf("unknown action %q", act.Kind)}
}

// probe asks gossip which peers answer, and hands the loop the result.
func (a *Arbiter) probe(ctx context.Context, started time.Time) {
	known, reached := a.cfg.Peers.Probe(ctx, probeTimeout)
	names := make(map[string]bool, len(reached))
	for _, n := range reached {
		names[n] = true
	}
	a.mu.Lock()
	a.probed = &PeerView{Known: known, Reached: len(reached), At: started, reachedNames: names}
	a.mu.Unlock()
	a.poke()
}

// Release ends arbitration on a graceful stop: it revokes the lease, which
// deletes this node's claims and requests at once, so a peer takes over
// without waiting for the lease to expire. Call it after the instances
// left MASTER (their VIPs are gone), and before cancelling Run.
func (a *Arbiter) Release(ctx context.Context) error {
	a.released.Store(true)
	lease := a.lk.Lease()
	if lease == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	if _, err := a.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("arbiter: revoke lease %x: %w", int64(lease), err)
	}
	return nil
}

// leaseKeeper keeps the node's arbiter lease alive with one KeepAliveOnce
// per TTL/3, timing each from its send: the loop's deadline is the send
// time of the last success plus the TTL, less a third (the margin for the
// demotion itself and for clock rates).
type leaseKeeper struct {
	a *Arbiter

	held bool // this run has held a lease (run's goroutine only)

	mu    sync.Mutex
	lease clientv3.LeaseID
}

// Lease is the lease held now (0: none).
func (k *leaseKeeper) Lease() clientv3.LeaseID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lease
}

func (k *leaseKeeper) run(ctx context.Context) {
	a := k.a
	every := a.ttl / 3
	timeout := every / 2
	for ctx.Err() == nil {
		if a.released.Load() {
			return
		}
		ev := k.once(ctx, timeout)
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		a.leaseEv = append(a.leaseEv, ev)
		a.mu.Unlock()
		a.poke()
		wait := every
		if !ev.ok {
			wait = probeEvery
		}
		if !sleepCtx(ctx, a.clock, wait-a.clock.Now().Sub(ev.sent)) {
			return
		}
	}
}

// once grants, adopts or keeps alive the lease. Until this run has held a
// lease, it first tries to adopt the previous run's (etcd may have been
// away at the start); grant and adoption have a third of the TTL each.
func (k *leaseKeeper) once(ctx context.Context, timeout time.Duration) leaseEvent {
	a := k.a
	sent := a.clock.Now()
	id := k.Lease()
	if id == 0 && !k.held {
		actx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), a.ttl/3)
		ev, ok := k.adopt(actx, sent)
		cancel()
		if ok {
			k.held = true
			return ev
		}
		if ctx.Err() != nil {
			return leaseEvent{sent: sent, err: ctx.Err()}
		}
	}
	if id == 0 {
		gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), a.ttl/3)
		defer cancel()
		resp, err := a.cli.Grant(gctx, int64(a.ttl/time.Second))
		if err != nil {
			return leaseEvent{sent: sent, err: err}
		}
		k.mu.Lock()
		k.lease = resp.ID
		k.mu.Unlock()
		k.held = true
		return leaseEvent{ok: true, sent: sent, ttl: time.Duration(resp.TTL) * time.Second, lease: resp.ID}
	}
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), timeout)
	defer cancel()
	resp, err := a.cli.KeepAliveOnce(rctx, id)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			a.log.Warn("arbiter: lease expired in etcd; this node's claims are gone", "lease", fmt.Sprintf("%x", int64(id)))
			k.mu.Lock()
			k.lease = 0
			k.mu.Unlock()
			return leaseEvent{sent: sent, err: err, notFound: true}
		}
		return leaseEvent{sent: sent, err: err}
	}
	return leaseEvent{ok: true, sent: sent, ttl: time.Duration(resp.TTL) * time.Second, lease: id}
}

// adopt takes over the lease of this node's claims from a previous run (a
// restart, an upgrade), so they stay and nothing moves.
func (k *leaseKeeper) adopt(ctx context.Context, sent time.Time) (leaseEvent, bool) {
	a := k.a
	resp, err := a.cli.Get(ctx, ArbiterKey(a.cfg.Prefix, "claim/"), clientv3.WithPrefix())
	if err != nil {
		return leaseEvent{}, false
	}
	for _, kv := range resp.Kvs {
		var c Claim
		if json.Unmarshal(kv.Value, &c) != nil || c.Node != a.cfg.Node || kv.Lease == 0 {
			continue
		}
		id := clientv3.LeaseID(kv.Lease)
		ka, err := a.cli.KeepAliveOnce(ctx, id)
		if err != nil {
			continue
		}
		k.mu.Lock()
		k.lease = id
		k.mu.Unlock()
		return leaseEvent{ok: true, sent: sent, ttl: time.Duration(ka.TTL) * time.Second, lease: id, adopted: true}, true
	}
	return leaseEvent{}, false
}
