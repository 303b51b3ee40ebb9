package coord

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/coord/etcdtest"
)

// fakeDoor records what the arbiter asks of the agent.
type fakeDoor struct {
	mu       sync.Mutex
	opened   int
	demotes  []demoteCall
	onDemote func(instance string) // called in Demote, outside mu
}

type demoteCall struct {
	instance, cause string
	at              time.Time
}

func (d *fakeDoor) GateChanged() {
	d.mu.Lock()
	d.opened++
	d.mu.Unlock()
}

func (d *fakeDoor) Demote(_ context.Context, instance, cause string) error {
	d.mu.Lock()
	d.demotes = append(d.demotes, demoteCall{instance, cause, time.Now()})
	hook := d.onDemote
	d.mu.Unlock()
	if hook != nil {
		hook(instance)
	}
	return nil
}

func (d *fakeDoor) gateChanges() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opened
}

func (d *fakeDoor) demoted() []demoteCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]demoteCall(nil), d.demotes...)
}

// fakePeers is gossip as configured by the test.
type fakePeers struct {
	mu      sync.Mutex
	known   int
	reached []string
	masters map[string][]PeerMaster
}

func (p *fakePeers) Probe(context.Context, time.Duration) (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.known, append([]string(nil), p.reached...)
}

func (p *fakePeers) Masters() map[string][]PeerMaster {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string][]PeerMaster{}
	for k, v := range p.masters {
		m[k] = append([]PeerMaster(nil), v...)
	}
	return m
}

const arbPrefix = "/vipd"

// arbNode is one running Arbiter with its door and log.
type arbNode struct {
	arb  *Arbiter
	door *fakeDoor
	log  *logs
	stop func() // cancels Run (without Release) and waits for it; idempotent
}

// startArbiter runs an arbiter for name on its own client of srv. before
// runs before Run starts (Observe, MayBecomeMaster). The arbiter is
// stopped at the end of the test at the latest.
func startArbiter(t *testing.T, srv *etcdtest.Server, cfg ArbiterConfig, before func(*Arbiter)) *arbNode {
	t.Helper()
	n := &arbNode{door: &fakeDoor{}, log: &logs{}}
	if cfg.Prefix == "" {
		cfg.Prefix = arbPrefix
	}
	if cfg.TTL == 0 {
		cfg.TTL = 3 * time.Second // a timed-out keep-alive does not end etcd mode
	}
	cfg.Door = n.door
	cfg.Logger = slog.New(n.log)
	n.arb = NewArbiter(connect(t, Config{Endpoints: srv.Endpoints()}), cfg)
	if before != nil {
		before(n.arb)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.arb.Run(ctx) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("arbiter %s: Run returned %v, want context.Canceled", cfg.Node, err)
				}
			case <-time.After(wait):
				t.Errorf("arbiter %s: Run did not return after its context was cancelled", cfg.Node)
			}
		})
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("arbiter %s log:\n%s", cfg.Node, n.log)
		}
	})
	return n
}

// arbiterEtcd starts etcd for a test and, at its end, checks that no
// goroutine of an arbiter is left (the arbiters stop before that check).
func arbiterEtcd(t *testing.T) (*etcdtest.Server, *clientv3.Client) {
	t.Helper()
	srv := etcdtest.Start(t)
	t.Cleanup(func() { noArbiterGoroutines(t) })
	return srv, srv.DirectClient()
}

func noArbiterGoroutines(t *testing.T) {
	t.Helper()
	var left string
	ok := etcdtest.WaitFor(5*time.Second, func() bool {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		left = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, f := range []string{"vipd/coord.(*Arbiter)", "vipd/coord.(*leaseKeeper)", "vipd/coord.(*Watcher)"} {
				if strings.Contains(g, f) {
					left += g + "\n\n"
					break
				}
			}
		}
		return left == ""
	})
	if !ok {
		t.Errorf("arbiter goroutines left running:\n%s", left)
	}
}

// gateOf is the arbiter's current answer for inst without asking the gate
// (MayBecomeMaster records a refusal as wanting MASTER).
func gateOf(a *Arbiter, inst string) GateAnswer {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gate[inst]
}

func modeOf(a *Arbiter) ArbMode {
	m, _ := a.Mode()
	return m
}

// vi1Held, vi1Backup and vi1Master are how the agent reports VI_1.
func vi1Held(prio int) []ArbInstance {
	return []ArbInstance{{Name: "VI_1", VRID: 1, State: "BACKUP", Priority: prio, Held: true}}
}

func vi1Backup(prio int) []ArbInstance {
	return []ArbInstance{{Name: "VI_1", VRID: 1, State: "BACKUP", Priority: prio}}
}

func vi1Master(prio int) []ArbInstance {
	return []ArbInstance{{Name: "VI_1", VRID: 1, State: "MASTER", Priority: prio}}
}

// wantMaster is the agent's instance asking the gate and being held.
func wantMaster(a *Arbiter, prio int, preempt bool) {
	a.Observe(vi1Held(prio))
	cause := "master down"
	if preempt {
		cause = "preempting a lower-priority master"
	}
	if ok, why := a.MayBecomeMaster("VI_1", 1, cause, preempt); ok {
		panic("the gate allowed MASTER before any claim: " + why)
	}
}

// getKV reads one key; nil when absent.
func getKV(t *testing.T, cli *clientv3.Client, key string) *mvccpb.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0]
}

// claimOf reads the claim of VI_1 in etcd.
func claimOf(t *testing.T, cli *clientv3.Client) (*mvccpb.KeyValue, Claim) {
	t.Helper()
	k := getKV(t, cli, ClaimKey(arbPrefix, "VI_1"))
	if k == nil {
		return nil, Claim{}
	}
	var c Claim
	if err := json.Unmarshal(k.Value, &c); err != nil {
		t.Fatalf("claim %q: %v", k.Value, err)
	}
	return k, c
}

func waitClaimedBy(t *testing.T, cli *clientv3.Client, node string) *mvccpb.KeyValue {
	t.Helper()
	var k *mvccpb.KeyValue
	waitFor(t, "the claim of VI_1 held by "+node, func() bool {
		var c Claim
		k, c = claimOf(t, cli)
		return k != nil && c.Node == node
	})
	return k
}

func waitNoClaim(t *testing.T, cli *clientv3.Client, within time.Duration) {
	t.Helper()
	if !etcdtest.WaitFor(within, func() bool { k, _ := claimOf(t, cli); return k == nil }) {
		k, c := claimOf(t, cli)
		t.Fatalf("the claim of VI_1 is still there after %v: %+v (lease %x)", within, c, k.Lease)
	}
}

func waitGate(t *testing.T, n *arbNode, allow bool) {
	t.Helper()
	waitFor(t, "gate of VI_1 allow="+map[bool]string{true: "true", false: "false"}[allow], func() bool {
		return gateOf(n.arb, "VI_1").Allow == allow && gateOf(n.arb, "VI_1").Why != ""
	})
}

// TestArbiterOneOfTwoWinsTheClaimAndReleasesItWhenNoLongerMaster covers
// (a) and (b): two nodes wanting MASTER for the same instance, exactly one
// gets the claim and the gate; a return to BACKUP releases the claim and
// the other node gets it.
func TestArbiterOneOfTwoWinsTheClaimAndReleasesItWhenNoLongerMaster(t *testing.T) {
	srv, admin := arbiterEtcd(t)
	nodes := map[string]*arbNode{}
	for _, name := range []string{"a", "b"} {
		nodes[name] = startArbiter(t, srv, ArbiterConfig{Node: name}, nil)
	}
	// Both in etcd mode first: the door of a node that starts before etcd
	// answers may be told of a gate opened in another mode (see
	// TestDecideModeFollowsTheLeaseThenGossip: a failed first lease
	// request ends ModeStarting).
	waitFor(t, "both arbiters in etcd mode", func() bool {
		return modeOf(nodes["a"].arb) == ModeEtcd && modeOf(nodes["b"].arb) == ModeEtcd
	})
	for _, n := range nodes {
		wantMaster(n.arb, 100, false)
	}

	var k *mvccpb.KeyValue
	var c Claim
	waitFor(t, "a claim of VI_1", func() bool { k, c = claimOf(t, admin); return k != nil })
	w, l := nodes[c.Node], nodes[map[string]string{"a": "b", "b": "a"}[c.Node]]
	if w == nil {
		t.Fatalf("claim by unknown node %q", c.Node)
	}
	if k.Lease == 0 || leaseTTL(t, admin, k.Lease) <= 0 {
		t.Fatalf("the claim is not under a live lease (lease %x)", k.Lease)
	}
	if c.VRID != 1 || c.Priority != 100 {
		t.Errorf("claim %+v, want VRID 1 priority 100", c)
	}
	waitFor(t, "the winner's door told the gate changed", func() bool { return w.door.gateChanges() > 0 })
	if ok, why := w.arb.MayBecomeMaster("VI_1", 1, "master down", false); !ok {
		t.Fatalf("the winner's gate refuses: %s", why)
	}
	waitFor(t, "the loser's gate names the winner", func() bool {
		return strings.Contains(gateOf(l.arb, "VI_1").Why, "node "+c.Node+" holds the claim")
	})
	if ok, why := l.arb.MayBecomeMaster("VI_1", 1, "master down", false); ok {
		t.Fatalf("both nodes may become MASTER (the loser's gate: %s)", why)
	}
	if n := l.door.gateChanges(); n != 0 {
		t.Errorf("the loser's door was told the gate changed %d times", n)
	}
	if modeOf(w.arb) != ModeEtcd || modeOf(l.arb) != ModeEtcd {
		t.Errorf("modes %s and %s, want etcd", modeOf(w.arb), modeOf(l.arb))
	}

	// (b) The winner goes MASTER and keeps the claim; back to BACKUP (not
	// held) it releases it, and the other node, still held, takes it.
	w.arb.Observe(vi1Master(100))
	if ok, _ := w.arb.MayBecomeMaster("VI_1", 1, "", false); !ok {
		t.Fatal("the gate closed on the MASTER holding the claim")
	}
	w.arb.Observe(vi1Backup(100))
	waitClaimedBy(t, admin, l.arb.cfg.Node)
	waitGate(t, w, false)
	waitGate(t, l, true)
	if n := w.log.count("claim released"); n != 1 {
		t.Errorf("the first winner released %d times, want once:\n%s", n, w.log)
	}
	if d := append(w.door.demoted(), l.door.demoted()...); len(d) != 0 {
		t.Errorf("demotions: %+v", d)
	}
}

// winAlone starts node name alone on srv and brings VI_1 to MASTER with
// the claim.
func winAlone(t *testing.T, srv *etcdtest.Server, admin *clientv3.Client, cfg ArbiterConfig, prio int) (*arbNode, *mvccpb.KeyValue) {
	t.Helper()
	n := startArbiter(t, srv, cfg, func(a *Arbiter) { wantMaster(a, prio, false) })
	k := waitClaimedBy(t, admin, cfg.Node)
	waitGate(t, n, true)
	n.arb.Observe(vi1Master(prio))
	return n, k
}

// TestArbiterClaimOutlivesACrashForTheTTLButReleaseDeletesItAtOnce is (c):
// a stop without Release (a crash, as far as etcd can tell) leaves the
// claim until the lease expires, no longer; Release revokes it at once.
func TestArbiterClaimOutlivesACrashForTheTTLButReleaseDeletesItAtOnce(t *testing.T) {
	srv, admin := arbiterEtcd(t)
	const ttl = 2 * time.Second

	t.Run("crash", func(t *testing.T) {
		n, k := winAlone(t, srv, admin, ArbiterConfig{Node: "a", TTL: ttl}, 100)
		n.stop()
		stopped := time.Now()
		if k2, _ := claimOf(t, admin); k2 == nil || k2.CreateRevision != k.CreateRevision {
			t.Fatalf("the claim went with the process (%v); it must stay on its lease until the TTL", k2)
		}
		waitNoClaim(t, admin, ttl+2*time.Second)
		t.Logf("the claim expired %v after the stop (TTL %v)", time.Since(stopped).Round(100*time.Millisecond), ttl)
	})

	t.Run("release", func(t *testing.T) {
		n, k := winAlone(t, srv, admin, ArbiterConfig{Node: "a", TTL: ttl}, 100)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := n.arb.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if k2, _ := claimOf(t, admin); k2 != nil {
			t.Fatalf("the claim is still there after Release: %q", k2.Value)
		}
		if ttl := leaseTTL(t, admin, k.Lease); ttl != -1 {
			t.Errorf("the lease is still alive after Release (TTL %d)", ttl)
		}
		n.stop()
	})
}

// TestArbiterAdoptsTheLeaseOfItsPreviousRun is (d): a restart within the
// TTL finds its claim and keeps it, on the same lease, without a new
// claim: nothing moves.
func TestArbiterAdoptsTheLeaseOfItsPreviousRun(t *testing.T) {
	srv, admin := arbiterEtcd(t)
	const ttl = 2 * time.Second
	first, k := winAlone(t, srv, admin, ArbiterConfig{Node: "a", TTL: ttl}, 100)
	first.stop() // no Release: a restart

	second := startArbiter(t, srv, ArbiterConfig{Node: "a", TTL: ttl}, func(a *Arbiter) { a.Observe(vi1Master(100)) })
	waitFor(t, "the restarted arbiter in etcd mode with the gate open", func() bool {
		return modeOf(second.arb) == ModeEtcd && gateOf(second.arb, "VI_1").Allow
	})
	if ok, why := second.arb.MayBecomeMaster("VI_1", 1, "", false); !ok {
		t.Fatalf("the restarted MASTER's gate refuses: %s", why)
	}
	if n := second.log.count("kept the lease of the previous run"); n != 1 {
		t.Errorf("the lease was not adopted (%d log lines):\n%s", n, second.log)
	}
	// Longer than the TTL: the adopted lease is kept alive, the claim is
	// the same key, and nobody was demoted.
	time.Sleep(ttl + 500*time.Millisecond)
	k2, c := claimOf(t, admin)
	if k2 == nil || k2.CreateRevision != k.CreateRevision || k2.Lease != k.Lease || c.Node != "a" {
		t.Fatalf("claim after the restart: %+v %v, want the same key (create revision %d, lease %x)", c, k2, k.CreateRevision, k.Lease)
	}
	if leaseTTL(t, admin, k.Lease) <= 0 {
		t.Errorf("the adopted lease is not kept alive")
	}
	if d := second.door.demoted(); len(d) != 0 {
		t.Errorf("demotions: %+v", d)
	}
}

// TestArbiterPreemptionAsksTheHolderToYield is (e): a higher-priority node
// held to preempt asks the holder through a request key; the holder
// demotes, releases once BACKUP, and the asker wins.
func TestArbiterPreemptionAsksTheHolderToYield(t *testing.T) {
	srv, admin := arbiterEtcd(t)
	a, _ := winAlone(t, srv, admin, ArbiterConfig{Node: "a"}, 100)
	b := startArbiter(t, srv, ArbiterConfig{Node: "b"}, func(arb *Arbiter) { wantMaster(arb, 150, true) })

	reqKey := PreemptKey(arbPrefix, "VI_1", "b")
	waitFor(t, "b's preemption request", func() bool { return getKV(t, admin, reqKey) != nil })
	req := getKV(t, admin, reqKey)
	var r PreemptRequest
	if err := json.Unmarshal(req.Value, &r); err != nil || r.Node != "b" || r.Priority != 150 {
		t.Errorf("request %q (%v), want node b priority 150", req.Value, err)
	}
	if req.Lease == 0 {
		t.Errorf("the request is not under b's lease")
	}
	waitFor(t, "a demoted", func() bool { return len(a.door.demoted()) > 0 })
	if d := a.door.demoted()[0]; d.instance != "VI_1" || !strings.Contains(d.cause, "node b asks to preempt with priority 150, ours 100") {
		t.Errorf("demotion %+v", d)
	}
	if ok, why := b.arb.MayBecomeMaster("VI_1", 1, "preempting", true); ok {
		t.Fatalf("b may become MASTER while a holds the claim (%s)", why)
	}

	a.arb.Observe(vi1Backup(100))
	waitClaimedBy(t, admin, "b")
	waitGate(t, b, true)
	waitFor(t, "b's request withdrawn", func() bool { return getKV(t, admin, reqKey) == nil })
	if ok, why := b.arb.MayBecomeMaster("VI_1", 1, "preempting", true); !ok {
		t.Fatalf("b's gate refuses after winning: %s", why)
	}
	if d := b.door.demoted(); len(d) != 0 {
		t.Errorf("b demoted: %+v", d)
	}
}

// TestArbiterCutOffFromEtcd is (f): with etcd cut, what gossip answers
// decides. Alone with its peers silent (policy release) the MASTER
// demotes itself before its lease can expire in etcd; with a peer
// answering it stays (failsafe) unless that peer is a stronger MASTER.
func TestArbiterCutOffFromEtcd(t *testing.T) {
	const ttl = 2 * time.Second
	for _, tc := range []struct {
		name    string
		reached []string
		masters map[string][]PeerMaster
		mode    ArbMode
		demote  string // "" for none: the cause it must contain
	}{
		{name: "peers silent: isolated, demoted", mode: ModeIsolated,
			demote: "cut off from etcd and every gossip peer"},
		{name: "a peer answers: failsafe, kept", reached: []string{"b"}, mode: ModeFailsafe},
		{name: "a peer answers and is a stronger MASTER: failsafe, demoted", reached: []string{"b"},
			masters: map[string][]PeerMaster{"VI_1": {{Node: "b", Priority: 150}}}, mode: ModeFailsafe,
			demote: "node b is MASTER with priority 150"},
		{name: "a stronger MASTER that does not answer does not count", reached: []string{"c"},
			masters: map[string][]PeerMaster{"VI_1": {{Node: "b", Priority: 150}}}, mode: ModeFailsafe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, admin := arbiterEtcd(t)
			peers := &fakePeers{known: 1, reached: tc.reached, masters: tc.masters}
			a, k := winAlone(t, srv, admin, ArbiterConfig{Node: "a", TTL: ttl, Policy: IsolationRelease, Peers: peers}, 100)

			// At each demotion, is the claim still in etcd? (The cut is
			// between the arbiter and etcd; admin reaches etcd directly.)
			claimAtDemote := make(chan bool, 10)
			a.door.mu.Lock()
			a.door.onDemote = func(string) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				resp, err := admin.Get(ctx, ClaimKey(arbPrefix, "VI_1"))
				claimAtDemote <- err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].CreateRevision == k.CreateRevision
			}
			a.door.mu.Unlock()

			srv.Cut()
			cut := time.Now()
			waitFor(t, "mode "+string(tc.mode), func() bool { return modeOf(a.arb) == tc.mode })
			if tc.demote == "" {
				// Until the lease would have expired in etcd: still no
				// demotion.
				time.Sleep(ttl - time.Since(cut))
				if d := a.door.demoted(); len(d) != 0 {
					t.Fatalf("demoted: %+v", d)
				}
				if m := modeOf(a.arb); m != tc.mode {
					t.Errorf("mode %s after the TTL, want %s", m, tc.mode)
				}
				if g := gateOf(a.arb, "VI_1"); !g.Allow {
					t.Errorf("gate refuses (%s)", g.Why)
				}
			} else {
				waitFor(t, "a demotion", func() bool { return len(a.door.demoted()) > 0 })
				d := a.door.demoted()[0]
				if d.instance != "VI_1" || !strings.Contains(d.cause, tc.demote) {
					t.Errorf("demotion %+v, want cause %q", d, tc.demote)
				}
				if late := d.at.Sub(cut); late > ttl {
					t.Errorf("demoted %v after the cut, more than the TTL %v", late, ttl)
				}
				select {
				case ok := <-claimAtDemote:
					if !ok {
						t.Errorf("the claim had expired in etcd before the demotion")
					}
				case <-time.After(wait):
					t.Errorf("the door's Demote did not return")
				}
				if g := gateOf(a.arb, "VI_1"); g.Allow {
					t.Errorf("gate allows after the demotion (%s)", g.Why)
				}
			}
			a.stop()
		})
	}
}

// TestArbiterKeepsAnAdoptedClaimUntilItsInstancesAreObserved: the agent
// starts the arbiter before its first apply, so the first Observe may list
// no instance yet; a restarted arbiter that adopted its previous lease
// must not take that for "instance removed" and release the claim the
// restart was meant to keep.
func TestArbiterKeepsAnAdoptedClaimUntilItsInstancesAreObserved(t *testing.T) {
	srv, admin := arbiterEtcd(t)
	first, k := winAlone(t, srv, admin, ArbiterConfig{Node: "a"}, 100)
	first.stop()

	second := startArbiter(t, srv, ArbiterConfig{Node: "a"}, nil) // nothing observed yet
	waitFor(t, "etcd mode", func() bool { return modeOf(second.arb) == ModeEtcd })
	time.Sleep(500 * time.Millisecond) // the instances come with the first apply
	second.arb.Observe(vi1Master(100))
	time.Sleep(500 * time.Millisecond)
	if k2, _ := claimOf(t, admin); k2 == nil || k2.CreateRevision != k.CreateRevision {
		t.Fatalf("the adopted claim (create revision %d) was not kept: now %v\n%s", k.CreateRevision, k2, second.log)
	}
}

// TestArbiterPreemptsAHolderWhosePriorityDropped: the claim records the
// holder's priority when it was won; a holder whose priority then drops
// (a tracked interface down) must still be preempted by a node above its
// priority now, as plain VRRP would.
func TestArbiterPreemptsAHolderWhosePriorityDropped(t *testing.T) {
	srv, admin := arbiterEtcd(t)
	a, _ := winAlone(t, srv, admin, ArbiterConfig{Node: "a"}, 200)
	a.arb.Observe(vi1Master(100)) // priority 200 -> 100
	startArbiter(t, srv, ArbiterConfig{Node: "b"}, func(arb *Arbiter) { wantMaster(arb, 150, true) })
	if !etcdtest.WaitFor(5*time.Second, func() bool { return len(a.door.demoted()) > 0 }) {
		t.Fatalf("a, MASTER at priority 100, was not asked to yield to b at 150 (request key %v)",
			getKV(t, admin, PreemptKey(arbPrefix, "VI_1", "b")))
	}
}
