package coord

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// arbT0 is the arbiter's start in the tests of Decide.
var arbT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// arbAt is arbT0 plus d.
func arbAt(d time.Duration) time.Time { return arbT0.Add(d) }

// liveInput is node a at arbT0+10s with a live lease (sent 500 ms ago, TTL
// 3 s) and no instance, claim or request.
func liveInput() ArbInput {
	now := arbAt(10 * time.Second)
	return ArbInput{
		Now: now, Node: "a", Policy: IsolationRelease, Start: arbT0, Tried: true, TTL: 3 * time.Second,
		LastOK: now.Add(-500 * time.Millisecond), LiveUntil: now.Add(1500 * time.Millisecond),
		Instances: map[string]ArbInstance{}, Claims: map[string]Claim{}, Requests: map[string][]PreemptRequest{},
		ClaimedAt: map[string]time.Time{}, Asking: map[string]bool{}, Wanted: map[string]time.Time{},
		Demoted: map[string]time.Time{},
	}
}

// offlineInput is liveInput with the lease no longer known live (its
// deadline passed 1 s ago) and gossip's last probe after the last
// keep-alive: known peers, reached as given.
func offlineInput(known, reached int) ArbInput {
	in := liveInput()
	in.LastOK = in.Now.Add(-3 * time.Second)
	in.LiveUntil = in.Now.Add(-time.Second)
	in.Peers = PeerView{Known: known, Reached: reached, At: in.Now.Add(-100 * time.Millisecond), Masters: map[string][]PeerMaster{}}
	return in
}

func arbInst(name, state string, prio int) ArbInstance {
	return ArbInstance{Name: name, VRID: 1, State: state, Priority: prio}
}

func arbHeld(name string, prio int) ArbInstance {
	i := arbInst(name, "BACKUP", prio)
	i.Held = true
	return i
}

func withInsts(in ArbInput, insts ...ArbInstance) ArbInput {
	for _, i := range insts {
		in.Instances[i.Name] = i
	}
	return in
}

// actStrings renders a decision's actions.
func actStrings(d ArbDecision) []string {
	out := []string{}
	for _, a := range d.Actions {
		out = append(out, a.String())
	}
	return out
}

func TestDecideModeFollowsTheLeaseThenGossip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   func() ArbInput
		want ArbMode
	}{
		{"before the first lease answer, within the TTL: starting", func() ArbInput {
			return ArbInput{Now: arbAt(2 * time.Second), Start: arbT0, TTL: 3 * time.Second, Peers: PeerView{Known: 2}}
		}, ModeStarting},
		{"no answer for a whole TTL: starting is over", func() ArbInput {
			return ArbInput{Now: arbAt(3 * time.Second), Start: arbT0, TTL: 3 * time.Second}
		}, ModeAlone},
		{"a failed lease request does not end starting (a slow etcd at a start)", func() ArbInput {
			return ArbInput{Now: arbAt(time.Second), Start: arbT0, Tried: true, TTL: 3 * time.Second}
		}, ModeStarting},
		{"lease live: etcd", func() ArbInput { return liveInput() }, ModeEtcd},
		{"lease live even with every peer silent: etcd", func() ArbInput {
			in := liveInput()
			in.Peers = PeerView{Known: 3, Reached: 0, At: in.Now}
			return in
		}, ModeEtcd},
		{"the deadline itself is no longer live", func() ArbInput {
			in := liveInput()
			in.LiveUntil = in.Now
			in.Peers = PeerView{Known: 1, Reached: 1, At: in.Now}
			return in
		}, ModeFailsafe},
		{"etcd silent, a peer answered a probe after the last keep-alive: failsafe", func() ArbInput {
			return offlineInput(2, 1)
		}, ModeFailsafe},
		{"etcd silent, peers known, none answered: isolated", func() ArbInput {
			return offlineInput(2, 0)
		}, ModeIsolated},
		{"etcd silent, the only answers predate the last keep-alive: isolated", func() ArbInput {
			in := offlineInput(2, 2)
			in.Peers.At = in.LastOK.Add(-time.Millisecond)
			return in
		}, ModeIsolated},
		{"etcd silent, a probe at the very time of the last keep-alive is not after it: isolated", func() ArbInput {
			in := offlineInput(2, 2)
			in.Peers.At = in.LastOK
			return in
		}, ModeIsolated},
		{"etcd silent and no gossip peer known: alone", func() ArbInput {
			return offlineInput(0, 0)
		}, ModeAlone},
		{"etcd never answered, starting over, a peer answered: failsafe", func() ArbInput {
			return ArbInput{Now: arbAt(4 * time.Second), Start: arbT0, Tried: true, TTL: 3 * time.Second,
				Peers: PeerView{Known: 1, Reached: 1, At: arbAt(3 * time.Second)}}
		}, ModeFailsafe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.in())
			if d.Mode != tc.want {
				t.Errorf("mode %s (%s), want %s", d.Mode, d.Why, tc.want)
			}
			if d.Why == "" {
				t.Errorf("mode %s without a reason", d.Mode)
			}
		})
	}
}

func TestDecideStartingRefusesEveryInstanceAndDoesNothing(t *testing.T) {
	in := ArbInput{Now: arbAt(time.Second), Node: "a", Start: arbT0, TTL: 3 * time.Second,
		Instances: map[string]ArbInstance{"VI_1": arbHeld("VI_1", 100), "VI_2": arbInst("VI_2", "MASTER", 200)},
		Claims:    map[string]Claim{"VI_3": {Node: "a", Rev: 7}}}
	d := Decide(in)
	if d.Mode != ModeStarting {
		t.Fatalf("mode %s", d.Mode)
	}
	for _, n := range []string{"VI_1", "VI_2"} {
		if g, ok := d.Gate[n]; !ok || g.Allow {
			t.Errorf("gate %s: %+v, want a refusal", n, g)
		}
	}
	if len(d.Actions) != 0 {
		t.Errorf("actions while starting: %q", actStrings(d))
	}
}

// etcdCase is one decision in etcd mode for node a.
type etcdCase struct {
	name string
	in   func(in *ArbInput)
	gate map[string]bool // instance -> allow
	acts []string
}

func runEtcdCases(t *testing.T, cases []etcdCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := liveInput()
			tc.in(&in)
			d := Decide(in)
			if d.Mode != ModeEtcd {
				t.Fatalf("mode %s (%s), want etcd", d.Mode, d.Why)
			}
			for n, allow := range tc.gate {
				g, ok := d.Gate[n]
				if !ok {
					t.Errorf("no gate answer for %s", n)
					continue
				}
				if g.Allow != allow {
					t.Errorf("gate %s: allow %v (%s), want %v", n, g.Allow, g.Why, allow)
				}
				if g.Why == "" {
					t.Errorf("gate %s: answer without a reason", n)
				}
			}
			for n := range in.Instances {
				if _, ok := d.Gate[n]; !ok {
					t.Errorf("no gate answer for instance %s", n)
				}
			}
			if got := actStrings(d); !slices.Equal(got, tc.acts) {
				t.Errorf("actions\n got %q\nwant %q", got, tc.acts)
			}
		})
	}
}

func TestDecideInEtcdModeTheGateOpensOnlyForTheClaimHolder(t *testing.T) {
	runEtcdCases(t, []etcdCase{
		{name: "a BACKUP held by the gate, no claim: claim it, gate closed",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 100))
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"claim VI_1 priority=100: wants MASTER"}},
		{name: "a BACKUP the gate refused a moment ago (status not held yet): claim it",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 100))
				in.Wanted["VI_1"] = in.Now.Add(-999 * time.Millisecond)
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"claim VI_1 priority=100: wants MASTER"}},
		{name: "a refusal 1 s old no longer counts as wanting MASTER",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 100))
				in.Wanted["VI_1"] = in.Now.Add(-wantGrace)
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{}},
		{name: "a BACKUP that does not want MASTER claims nothing",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 100))
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{}},
		{name: "a FAULT instance held elsewhere or nowhere claims nothing",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "FAULT", 100), arbInst("VI_2", "INIT", 100))
				in.Wanted["VI_1"] = in.Now
				in.Claims["VI_2"] = Claim{Node: "b", Priority: 50, Rev: 4}
			},
			gate: map[string]bool{"VI_1": false, "VI_2": false},
			acts: []string{}},
		{name: "the claim held here: gate open, nothing to do",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Priority: 100, Rev: 12}
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{}},
		{name: "the claim held by another node: gate closed, no claim, no request without preempt",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 200))
				in.Claims["VI_1"] = Claim{Node: "b", Priority: 100, Rev: 12}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{}},
		{name: "each instance on its own: ours open, theirs closed, a free one claimed",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 100), arbHeld("VI_2", 100), arbHeld("VI_3", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 10}
				in.Claims["VI_2"] = Claim{Node: "b", Rev: 11}
			},
			gate: map[string]bool{"VI_1": true, "VI_2": false, "VI_3": false},
			acts: []string{"claim VI_3 priority=100: wants MASTER"}},
	})
}

func TestDecideInEtcdModePreemptionGoesThroughARequest(t *testing.T) {
	preempting := func(prio int) ArbInstance {
		i := arbHeld("VI_1", prio)
		i.Preempt = true
		return i
	}
	runEtcdCases(t, []etcdCase{
		{name: "held to preempt a lower holder: ask it once",
			in: func(in *ArbInput) {
				*in = withInsts(*in, preempting(150))
				in.Claims["VI_1"] = Claim{Node: "b", Priority: 100, Rev: 12}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"request VI_1 priority=150: preempting node b (priority 100)"}},
		{name: "already asking: no second request, no withdrawal",
			in: func(in *ArbInput) {
				*in = withInsts(*in, preempting(150))
				in.Claims["VI_1"] = Claim{Node: "b", Priority: 100, Rev: 12}
				in.Asking["VI_1"] = true
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{}},
		{name: "the claim's priority (the holder's when it won) does not stop a request: the holder decides with its priority now",
			in: func(in *ArbInput) {
				*in = withInsts(*in, preempting(100))
				in.Claims["VI_1"] = Claim{Node: "b", Priority: 200, Rev: 12}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"request VI_1 priority=100: preempting node b (priority 200)"}},
		{name: "not held for a preemption: no request even with a higher priority",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 150))
				in.Claims["VI_1"] = Claim{Node: "b", Priority: 100, Rev: 12}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{}},
		{name: "a MASTER holding the claim yields to a stronger request",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Priority: 100, Rev: 12}
				in.Requests["VI_1"] = []PreemptRequest{{Node: "c", Priority: 120}, {Node: "b", Priority: 150}}
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{"demote VI_1: node b asks to preempt with priority 150, ours 100"}},
		{name: "the strongest of equal requests is the smaller name",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Priority: 100, Rev: 12}
				in.Requests["VI_1"] = []PreemptRequest{{Node: "d", Priority: 150}, {Node: "c", Priority: 150}}
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{"demote VI_1: node c asks to preempt with priority 150, ours 100"}},
		{name: "a MASTER holding the claim ignores a request not above its priority",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 150))
				in.Claims["VI_1"] = Claim{Node: "a", Priority: 100, Rev: 12}
				in.Requests["VI_1"] = []PreemptRequest{{Node: "b", Priority: 150}}
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{}},
		{name: "the claim went to the asker's rival: withdraw",
			in: func(in *ArbInput) {
				*in = withInsts(*in, preempting(150))
				in.Claims["VI_1"] = Claim{Node: "a", Priority: 150, Rev: 13}
				in.Asking["VI_1"] = true
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{"withdraw VI_1: no longer waiting to preempt"}},
		{name: "the holder released: claim, and withdraw the request",
			in: func(in *ArbInput) {
				*in = withInsts(*in, preempting(150))
				in.Asking["VI_1"] = true
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"claim VI_1 priority=150: wants MASTER", "withdraw VI_1: no longer waiting to preempt"}},
		{name: "no longer wanting MASTER: withdraw",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 150))
				in.Claims["VI_1"] = Claim{Node: "b", Priority: 100, Rev: 12}
				in.Asking["VI_1"] = true
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"withdraw VI_1: no longer waiting to preempt"}},
	})
}

func TestDecideAFreedClaimGoesFirstToTheHighestPriority(t *testing.T) {
	freedAgo := 100 * time.Millisecond
	runEtcdCases(t, []etcdCase{
		{name: "priority 100 waits 156 steps after another node's claim went",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 100))
				in.Freed = map[string]time.Time{"VI_1": in.Now.Add(-freedAgo)}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{}},
		{name: "priority 255 waits one step only: claims at once here",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 255))
				in.Freed = map[string]time.Time{"VI_1": in.Now.Add(-freedAgo)}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"claim VI_1 priority=255: wants MASTER"}},
		{name: "priority 100 claims once its delay passed",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 100))
				in.Freed = map[string]time.Time{"VI_1": in.Now.Add(-ClaimDelay(100, 0))}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"claim VI_1 priority=100: wants MASTER"}},
		{name: "the node that asked the holder to yield claims without waiting",
			in: func(in *ArbInput) {
				i := arbHeld("VI_1", 100)
				i.Preempt = true
				*in = withInsts(*in, i)
				in.Freed = map[string]time.Time{"VI_1": in.Now}
				in.Asking["VI_1"] = true
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"claim VI_1 priority=100: wants MASTER", "withdraw VI_1: no longer waiting to preempt"}},
		{name: "a freed claim another node already took again is just held",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 100))
				in.Freed = map[string]time.Time{"VI_1": in.Now}
				in.Claims["VI_1"] = Claim{Node: "c", Priority: 200, Rev: 30}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{}},
	})

	// The waiting decision says when to look again, and why it refuses.
	in := withInsts(liveInput(), arbHeld("VI_1", 100))
	freed := in.Now.Add(-freedAgo)
	in.Freed = map[string]time.Time{"VI_1": freed}
	d := Decide(in)
	if want := freed.Add(ClaimDelay(100, 0)); !d.Next.Equal(want) {
		t.Errorf("Next %v, want the end of the delay %v", d.Next, want)
	}
	if why := d.Gate["VI_1"].Why; !strings.Contains(why, "let go") {
		t.Errorf("gate reason %q", why)
	}
	in.Freed = nil
	if d := Decide(in); !d.Next.IsZero() {
		t.Errorf("Next %v without anything to wait for", d.Next)
	}
}

func TestClaimDelayIsSkewTime(t *testing.T) {
	// RFC 5798's Skew_Time: ((256 - priority) * Advertisement_Interval) / 256.
	for _, c := range []struct {
		prio   int
		advert time.Duration
		want   time.Duration
	}{
		{100, time.Second, 609375 * time.Microsecond},
		{120, time.Second, 531250 * time.Microsecond},
		{255, time.Second, 3906250 * time.Nanosecond},
		{100, 100 * time.Millisecond, 60937500 * time.Nanosecond},
		{100, 0, 609375 * time.Microsecond}, // unknown interval: 1 s
	} {
		if got := ClaimDelay(c.prio, c.advert); got != c.want {
			t.Errorf("ClaimDelay(%d, %v) = %v, want %v", c.prio, c.advert, got, c.want)
		}
	}
	for p := 2; p <= 255; p++ {
		if ClaimDelay(p, time.Second) >= ClaimDelay(p-1, time.Second) {
			t.Fatalf("ClaimDelay(%d) not shorter than ClaimDelay(%d)", p, p-1)
		}
	}
	for _, p := range []int{-5, 0, 1, 256, 1000} {
		if got := ClaimDelay(p, time.Second); got != ClaimDelay(1, time.Second) || got >= time.Second {
			t.Errorf("ClaimDelay(%d) = %v, want the longest, %v", p, got, ClaimDelay(1, time.Second))
		}
	}
}

func TestDecideInEtcdModeAMasterNeedsTheClaim(t *testing.T) {
	runEtcdCases(t, []etcdCase{
		{name: "a MASTER while another node holds the claim: demote",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 200))
				in.Claims["VI_1"] = Claim{Node: "b", Priority: 100, Rev: 12}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"demote VI_1: node b holds the claim"}},
		{name: "a MASTER without a claim claims it (it is MASTER already)",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 200))
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"claim VI_1 priority=200: MASTER without a claim"}},
		{name: "demotions are asked for at most once a second per instance",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 200), arbInst("VI_2", "MASTER", 200))
				in.Claims["VI_1"] = Claim{Node: "b", Rev: 12}
				in.Claims["VI_2"] = Claim{Node: "b", Rev: 13}
				in.Demoted["VI_1"] = in.Now.Add(-999 * time.Millisecond)
				in.Demoted["VI_2"] = in.Now.Add(-demoteEvery)
			},
			gate: map[string]bool{"VI_1": false, "VI_2": false},
			acts: []string{"demote VI_2: node b holds the claim"}},
	})
}

func TestDecideInEtcdModeReleasesClaimsNoLongerNeeded(t *testing.T) {
	runEtcdCases(t, []etcdCase{
		{name: "a BACKUP that won the claim but did not go MASTER keeps it for claimGrace",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
				in.ClaimedAt["VI_1"] = in.Now.Add(-claimGrace + time.Millisecond)
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{}},
		{name: "and releases it, fenced by its revision, once claimGrace passed",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
				in.ClaimedAt["VI_1"] = in.Now.Add(-claimGrace)
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"release VI_1 rev=21: not MASTER"}},
		{name: "an adopted claim (no ClaimedAt) of a BACKUP is released at once",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"release VI_1 rev=21: not MASTER"}},
		{name: "a zero ClaimedAt counts as adopted",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "BACKUP", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
				in.ClaimedAt["VI_1"] = time.Time{}
			},
			gate: map[string]bool{"VI_1": false},
			acts: []string{"release VI_1 rev=21: not MASTER"}},
		{name: "a BACKUP holding the claim and still wanting MASTER keeps it",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbHeld("VI_1", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{}},
		{name: "FAULT and STOP release at once, gate closed",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "FAULT", 100), arbInst("VI_2", "STOP", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
				in.Claims["VI_2"] = Claim{Node: "a", Rev: 22}
				in.ClaimedAt["VI_1"] = in.Now
				in.ClaimedAt["VI_2"] = in.Now
			},
			gate: map[string]bool{"VI_1": false, "VI_2": false},
			acts: []string{"release VI_1 rev=21: state FAULT", "release VI_2 rev=22: state STOP"}},
		{name: "claims of ours for instances no longer here are released; others' are not",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 100))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
				in.Claims["VI_8"] = Claim{Node: "a", Rev: 31}
				in.Claims["VI_9"] = Claim{Node: "b", Rev: 32}
				in.Observed = true
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{"release VI_8 rev=31: instance removed"}},
		{name: "before the agent's instances were observed, a claim of ours for an unknown instance is kept (adopted)",
			in: func(in *ArbInput) {
				in.Claims["VI_8"] = Claim{Node: "a", Rev: 31}
				in.Asking["VI_7"] = true
			},
			acts: []string{}},
		{name: "requests of ours for instances no longer here are withdrawn",
			in: func(in *ArbInput) {
				in.Asking["VI_7"] = true
				in.Asking["VI_8"] = false
				in.Observed = true
			},
			acts: []string{"withdraw VI_7: instance removed"}},
	})
}

func TestDecideInFailsafeAPeerMasterKeepsUsOut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		insts   []ArbInstance
		masters map[string][]PeerMaster
		gate    map[string]bool
		acts    []string
	}{
		{name: "no reachable peer is MASTER: plain VRRP",
			insts: []ArbInstance{arbHeld("VI_1", 100), arbInst("VI_2", "MASTER", 100)},
			gate:  map[string]bool{"VI_1": true, "VI_2": true}, acts: []string{}},
		{name: "a peer MASTER closes the gate of a BACKUP whatever the priorities",
			insts:   []ArbInstance{arbHeld("VI_1", 250)},
			masters: map[string][]PeerMaster{"VI_1": {{"b", 100}}},
			gate:    map[string]bool{"VI_1": false}, acts: []string{}},
		{name: "two MASTERs: the lower priority demotes",
			insts:   []ArbInstance{arbInst("VI_1", "MASTER", 100)},
			masters: map[string][]PeerMaster{"VI_1": {{"b", 150}}},
			gate:    map[string]bool{"VI_1": false},
			acts:    []string{"demote VI_1: etcd unreachable and node b is MASTER with priority 150, ours 100"}},
		{name: "two MASTERs: the higher priority stays",
			insts:   []ArbInstance{arbInst("VI_1", "MASTER", 200)},
			masters: map[string][]PeerMaster{"VI_1": {{"b", 150}}},
			gate:    map[string]bool{"VI_1": false}, acts: []string{}},
		{name: "equal priorities: the larger name demotes",
			insts:   []ArbInstance{arbInst("VI_1", "MASTER", 100)},
			masters: map[string][]PeerMaster{"VI_1": {{"0peer", 100}}},
			gate:    map[string]bool{"VI_1": false},
			acts:    []string{"demote VI_1: etcd unreachable and node 0peer is MASTER with priority 100, ours 100"}},
		{name: "equal priorities: the smaller name stays",
			insts:   []ArbInstance{arbInst("VI_1", "MASTER", 100)},
			masters: map[string][]PeerMaster{"VI_1": {{"b", 100}}},
			gate:    map[string]bool{"VI_1": false}, acts: []string{}},
		{name: "the strongest peer is the one compared",
			insts:   []ArbInstance{arbInst("VI_1", "MASTER", 100)},
			masters: map[string][]PeerMaster{"VI_1": {{"c", 50}, {"d", 120}, {"b", 120}}},
			gate:    map[string]bool{"VI_1": false},
			acts:    []string{"demote VI_1: etcd unreachable and node b is MASTER with priority 120, ours 100"}},
		{name: "a peer MASTER of another instance does not matter",
			insts:   []ArbInstance{arbInst("VI_1", "MASTER", 100)},
			masters: map[string][]PeerMaster{"VI_2": {{"b", 200}}},
			gate:    map[string]bool{"VI_1": true}, acts: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := withInsts(offlineInput(2, 1), tc.insts...)
			if tc.masters != nil {
				in.Peers.Masters = tc.masters
			}
			// What etcd last said does not count in failsafe.
			in.Claims["VI_1"] = Claim{Node: "z", Rev: 3}
			in.Requests["VI_1"] = []PreemptRequest{{Node: "z", Priority: 254}}
			d := Decide(in)
			if d.Mode != ModeFailsafe {
				t.Fatalf("mode %s", d.Mode)
			}
			for n, allow := range tc.gate {
				if g := d.Gate[n]; g.Allow != allow {
					t.Errorf("gate %s: allow %v (%s), want %v", n, g.Allow, g.Why, allow)
				}
			}
			if got := actStrings(d); !slices.Equal(got, tc.acts) {
				t.Errorf("actions\n got %q\nwant %q", got, tc.acts)
			}
		})
	}
}

func TestDecideInFailsafeBothMastersPickTheSameSurvivor(t *testing.T) {
	for _, p := range []struct{ a, b int }{{100, 100}, {100, 150}, {150, 100}} {
		decideFor := func(node string, ours, theirs int, peer string) []string {
			in := withInsts(offlineInput(1, 1), arbInst("VI_1", "MASTER", ours))
			in.Node = node
			in.Peers.Masters = map[string][]PeerMaster{"VI_1": {{peer, theirs}}}
			return actStrings(Decide(in))
		}
		da := decideFor("a", p.a, p.b, "b")
		db := decideFor("b", p.b, p.a, "a")
		if len(da)+len(db) != 1 {
			t.Errorf("priorities a=%d b=%d: a does %q, b does %q; want exactly one demotion", p.a, p.b, da, db)
		}
	}
}

func TestDecideWhenIsolatedFollowsThePolicy(t *testing.T) {
	for _, tc := range []struct {
		policy Isolation
		allow  bool
		acts   []string
	}{
		{IsolationRelease, false, []string{"demote VI_1: cut off from etcd and every gossip peer before the lease could expire (policy release)"}},
		{IsolationKeep, true, []string{}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			in := withInsts(offlineInput(2, 0), arbInst("VI_1", "MASTER", 100), arbHeld("VI_2", 100))
			in.Policy = tc.policy
			in.Claims["VI_3"] = Claim{Node: "a", Rev: 9} // no release without etcd
			d := Decide(in)
			if d.Mode != ModeIsolated {
				t.Fatalf("mode %s", d.Mode)
			}
			for _, n := range []string{"VI_1", "VI_2"} {
				if g := d.Gate[n]; g.Allow != tc.allow {
					t.Errorf("gate %s: allow %v (%s), want %v", n, g.Allow, g.Why, tc.allow)
				}
			}
			if got := actStrings(d); !slices.Equal(got, tc.acts) {
				t.Errorf("actions\n got %q\nwant %q", got, tc.acts)
			}
			// A second look within the second asks again for nothing.
			in.Demoted = map[string]time.Time{"VI_1": in.Now.Add(-500 * time.Millisecond)}
			if got := actStrings(Decide(in)); len(got) != 0 {
				t.Errorf("actions 500 ms after a demotion: %q", got)
			}
		})
	}
}

func TestDecideAloneIsPlainVRRP(t *testing.T) {
	in := withInsts(offlineInput(0, 0), arbInst("VI_1", "MASTER", 100), arbHeld("VI_2", 100))
	in.Claims["VI_1"] = Claim{Node: "b", Rev: 4}
	d := Decide(in)
	if d.Mode != ModeAlone {
		t.Fatalf("mode %s", d.Mode)
	}
	for _, n := range []string{"VI_1", "VI_2"} {
		if !d.Gate[n].Allow {
			t.Errorf("gate %s refused (%s)", n, d.Gate[n].Why)
		}
	}
	if len(d.Actions) != 0 {
		t.Errorf("actions: %q", actStrings(d))
	}
}

func TestParseIsolationDefaultsToRelease(t *testing.T) {
	for s, want := range map[string]Isolation{"": IsolationRelease, "release": IsolationRelease, "keep": IsolationKeep} {
		if got, err := ParseIsolation(s); err != nil || got != want {
			t.Errorf("ParseIsolation(%q) = %q, %v; want %q", s, got, err, want)
		}
	}
	if _, err := ParseIsolation("Keep"); err == nil || !strings.Contains(err.Error(), "want release or keep") {
		t.Errorf("ParseIsolation(Keep): %v", err)
	}
}

// TestDecideTranscript runs node a through a realistic sequence and
// compares every decision with testdata/arbiter/transcript.golden (go test
// -run TestDecideTranscript -update rewrites it). The steps carry the
// loop's bookkeeping from one decision to the next as the arbiter does:
// a demotion is remembered for the rate limit.
func TestDecideTranscript(t *testing.T) {
	const ttl = 3 * time.Second
	in := ArbInput{Node: "a", Policy: IsolationRelease, Start: arbT0, TTL: ttl,
		Instances: map[string]ArbInstance{"VI_1": arbInst("VI_1", "BACKUP", 100)},
		Claims:    map[string]Claim{}, Requests: map[string][]PreemptRequest{}, ClaimedAt: map[string]time.Time{},
		Asking: map[string]bool{}, Wanted: map[string]time.Time{}, Demoted: map[string]time.Time{},
		Freed: map[string]time.Time{}}
	keepAlive := func(sent time.Time) {
		in.Tried, in.LastOK, in.LiveUntil = true, sent, sent.Add(ttl-ttl/3)
	}
	setState := func(state string, held bool) {
		i := in.Instances["VI_1"]
		i.State, i.Held = state, held
		in.Instances["VI_1"] = i
	}
	steps := []struct {
		at   time.Duration
		what string
		do   func()
	}{
		{0, "the arbiter starts; VI_1 is BACKUP", func() {}},
		{300 * time.Millisecond, "VI_1's master-down timer fires before etcd answered: the gate refuses", func() {
			in.Wanted["VI_1"] = in.Now
		}},
		{400 * time.Millisecond, "the status says held", func() { setState("BACKUP", true) }},
		{600 * time.Millisecond, "the lease is granted (sent at 0.5 s)", func() { keepAlive(arbAt(500 * time.Millisecond)) }},
		{650 * time.Millisecond, "the claim is won (revision 42)", func() {
			in.Claims["VI_1"] = Claim{Node: "a", VRID: 1, Priority: 100, Rev: 42, Lease: 0x1234}
			in.ClaimedAt["VI_1"] = in.Now
		}},
		{700 * time.Millisecond, "VI_1 becomes MASTER", func() { setState("MASTER", false) }},
		{5 * time.Second, "split brain: the process was paused, its lease expired and b won the claim; a new lease is granted at 4.9 s", func() {
			keepAlive(arbAt(4900 * time.Millisecond))
			in.Claims["VI_1"] = Claim{Node: "b", VRID: 1, Priority: 100, Rev: 57}
			delete(in.ClaimedAt, "VI_1")
		}},
		{5500 * time.Millisecond, "still MASTER half a second later: not asked again yet", func() {}},
		{6100 * time.Millisecond, "still MASTER a second later: asked again", func() { keepAlive(arbAt(6 * time.Second)) }},
		{6200 * time.Millisecond, "VI_1 left MASTER", func() { setState("BACKUP", false) }},
		{8 * time.Second, "b's claim is gone (its lease expired); VI_1 wants MASTER and lets higher priorities claim first", func() {
			keepAlive(arbAt(7900 * time.Millisecond))
			delete(in.Claims, "VI_1")
			in.Freed["VI_1"] = in.Now
			setState("BACKUP", true)
		}},
		{8624 * time.Millisecond, "its Skew_Time (0.609 s at priority 100, advert_int 1 s) passed: it claims", func() {}},
		{8700 * time.Millisecond, "won (revision 63), MASTER", func() {
			in.Claims["VI_1"] = Claim{Node: "a", VRID: 1, Priority: 100, Rev: 63, Lease: 0x1234}
			in.ClaimedAt["VI_1"] = in.Now
			setState("MASTER", false)
		}},
		{9 * time.Second, "the keep-alive sent at 8.6 s failed; the lease is still live (until 9.9 s); the probe at 8.8 s reached b (not MASTER)", func() {
			in.Peers = PeerView{Known: 1, Reached: 1, At: arbAt(8800 * time.Millisecond), Masters: map[string][]PeerMaster{}}
		}},
		{10 * time.Second, "etcd lost, the lease deadline passed, the probe at 9.9 s reached b: failsafe, plain VRRP", func() {
			in.Peers.At = arbAt(9900 * time.Millisecond)
		}},
		{10300 * time.Millisecond, "etcd lost, the probe at 10.2 s reached nobody: isolated, demote", func() {
			in.Peers = PeerView{Known: 1, Reached: 0, At: arbAt(10200 * time.Millisecond), Masters: map[string][]PeerMaster{}}
		}},
		{10600 * time.Millisecond, "still MASTER: the demotion is not repeated within a second", func() {}},
		{10700 * time.Millisecond, "VI_1 left MASTER and wants it back: refused", func() {
			setState("BACKUP", true)
		}},
		{10800 * time.Millisecond, "etcd answers again before the lease expired: our claim survived, the gate opens", func() {
			keepAlive(arbAt(10750 * time.Millisecond))
		}},
	}
	var b strings.Builder
	for i, s := range steps {
		in.Now = arbAt(s.at)
		s.do()
		d := Decide(in)
		fmt.Fprintf(&b, "%2d. t=%.2fs %s\n", i+1, s.at.Seconds(), s.what)
		fmt.Fprintf(&b, "    mode %s: %s\n", d.Mode, d.Why)
		for _, n := range sortedKeys(d.Gate) {
			g := d.Gate[n]
			verdict := "refuse"
			if g.Allow {
				verdict = "allow"
			}
			fmt.Fprintf(&b, "    gate %s %s: %s\n", n, verdict, g.Why)
		}
		if !d.Next.IsZero() {
			fmt.Fprintf(&b, "    next look at t=%.3fs\n", d.Next.Sub(arbT0).Seconds())
		}
		for _, a := range d.Actions {
			fmt.Fprintf(&b, "    %s\n", a)
			if a.Kind == ActDemote {
				in.Demoted[a.Instance] = in.Now
			}
		}
	}
	golden(t, filepath.Join("testdata", "arbiter", "transcript.golden"), b.String())
}

func TestDecideKeepsClaimsOfInstancesNotKnownYetOrBlocked(t *testing.T) {
	runEtcdCases(t, []etcdCase{
		{name: "INIT (a resumed MASTER before its first step) keeps our claim",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "INIT", 150))
				in.Claims["VI_1"] = Claim{Node: "a", Rev: 21}
				in.Observed = true
			},
			gate: map[string]bool{"VI_1": true},
			acts: []string{}},
		{name: "an unreadable claim: nobody claims it, a MASTER is not demoted for it",
			in: func(in *ArbInput) {
				*in = withInsts(*in, arbInst("VI_1", "MASTER", 150), arbHeld("VI_2", 150))
				in.Claims["VI_1"] = Claim{Node: UnreadableClaim, Rev: 5}
				in.Claims["VI_2"] = Claim{Node: ForeignClaim, Rev: 6}
			},
			gate: map[string]bool{"VI_1": false, "VI_2": false},
			acts: []string{}},
	})
}
