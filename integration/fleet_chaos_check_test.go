package integration

// The invariant checker of the fleet chaos lab (fleet_chaos_test.go), a pure function of what the
// run recorded: the events with what each concerned and the model state after it, the holders of
// every VIP sampled from the nodes' addresses, the adverts captured on the wire, every transition
// logged, and the fleet as found at each settle point. It is unit-tested here without root: each
// rule is shown to fire on a run made to break it, and to stay quiet on the same run without the
// fault.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// fcPair is one instance on one node.
type fcPair struct{ Node, Inst string }

func (p fcPair) String() string { return p.Node + "/" + p.Inst }

// fcState is the model of the fleet after an event: what the test did to it, not what the
// daemons say.
type fcState struct {
	// Reach: the vipd node's process runs and its path to an etcd quorum is up.
	Reach map[string]bool
	// Eligible: instance -> nodes that run it and may hold it (process up, link up, not in
	// maintenance, and for vipd a gate that can open: etcd reachable, or gossip peers to
	// fail safe on).
	Eligible map[string][]string
	// Up: nodes whose daemon should be running.
	Up map[string]bool
	// NoFallback: vipd nodes that reach etcd but no gossip peer: a stall of etcd longer than
	// the arbiter's deadline leaves them isolated, and they give their VIPs up (by design).
	NoFallback map[string]bool
}

// fcStall is a stall of etcd the schedule did not make (a loaded host): From..To, as etcd
// logged it (a heartbeat sent that late, a request that took that long).
type fcStall struct {
	From, To time.Time
	Line     string
}

// fcEvent is one step of the schedule. Its window runs from Begin to the next event's Begin.
type fcEvent struct {
	Step        int
	Kind        string // the schedule's name for the action, e.g. "kill-9"
	Name        string // e.g. "kill -9 n1 (machine crash, VIPs gone)"
	Begin, Done time.Time
	// Concerns: the (node, instance) pairs the event may move.
	Concerns map[fcPair]bool
	// Removed: pairs whose VIP the event itself removes (a machine crash, a deleted instance,
	// a stopped keepalived), so its disappearance needs no transition.
	Removed map[fcPair]bool
	// NoGrace: nodes whose reach (if gained by this event) counts at once: a process start,
	// whose gate stays closed until etcd answers.
	NoGrace map[string]bool
	State   fcState
	badKey  string // a bad value put at this key: every node that reaches etcd must refuse it
}

// fcHolders is a change of the holders of one VIP.
type fcHolders struct {
	At      time.Time
	VIP     string
	Holders []string
}

// fcTransition is one state change logged by a daemon.
type fcTransition struct {
	At       time.Time // zero for keepalived (its lines carry no parseable time)
	Window   int       // the event window it was read in (-1: set-up)
	Node     string
	Inst     string
	From, To string // From is "" for keepalived
	Cause    string
	Vipd     bool
	Line     string
}

// fcSettle is the fleet as found once it settled after an event.
type fcSettle struct {
	At     time.Time
	Window int
	// Held: node -> VIPs on its interface.
	Held map[string][]string
	// States: node/instance -> state the daemon reports (status for vipd, the last logged
	// transition for keepalived).
	States map[fcPair]string
	Up     map[string]bool
	// Quiet is false when the fleet did not stop moving within the settle limit.
	Quiet bool
}

// fcRun is everything a chaos run recorded.
type fcRun struct {
	Start, End  time.Time
	Vipd        map[string]bool   // nodes running vipd (the arbitrated ones)
	InstVIP     map[string]string // instance -> VIP
	InstVRID    map[string]int
	NodeAddr    map[netip.Addr]string
	Events      []fcEvent
	Holders     []fcHolders
	Adverts     []lab.VRRPAdvert
	Transitions []fcTransition
	Settles     []fcSettle
	Stalls      []fcStall
	// Grace: how long after its path to etcd comes back a node counts as reaching etcd (its
	// client reconnects, its lease is live again and it has read the claims).
	Grace time.Duration
	// Bound: the failover bound, from the protocol and the arbiter's lease, with a margin.
	Bound time.Duration
	// Advert is the advert interval.
	Advert time.Duration
}

// fcViolation is one broken invariant.
type fcViolation struct {
	Rule   string
	At     time.Time
	Window int
	Detail string
}

func (v fcViolation) String() string {
	return fmt.Sprintf("[%s] window %d at %s: %s", v.Rule, v.Window, v.At.Format("15:04:05.000"), v.Detail)
}

// The rules, by name (the summary table counts violations by these).
const (
	ruleTwoHolders   = "two-holders"      // addresses: two vipd holders while both reach etcd
	ruleWireDouble   = "two-masters-wire" // the wire: two vipd sources advertising at once while both reach etcd
	ruleNoHolder     = "no-holder"        // no holder longer than the bound while a node is eligible
	ruleStrayVIP     = "stray-vip"        // settled: a VIP on a node that is not MASTER for it
	ruleUnconcerned  = "unconcerned"      // a transition no event concerned
	ruleNoCause      = "no-cause"         // a vipd transition logged without a cause
	ruleUnlogged     = "unlogged"         // a VIP came or went with no transition logged
	ruleNotSettled   = "not-settled"      // still moving at the settle limit
	ruleCrash        = "crash"            // a daemon died on its own, or logged a panic
	ruleLeak         = "leak"             // goroutines or fds grew
	ruleEtcdRejected = "bad-value"        // a bad etcd value not refused with a log line
)

var fcRules = []string{ruleTwoHolders, ruleWireDouble, ruleNoHolder, ruleStrayVIP, ruleUnconcerned,
	ruleNoCause, ruleUnlogged, ruleNotSettled, ruleCrash, ruleLeak, ruleEtcdRejected}

// fcSpan is a half-open interval of time.
type fcSpan struct{ From, To time.Time }

// windowAt is the event window a time falls in (-1 before the first event).
func (r *fcRun) windowAt(t time.Time) int {
	w := -1
	for i, e := range r.Events {
		if !t.Before(e.Begin) {
			w = i
		}
	}
	return w
}

// spans turns a per-event boolean of the model into intervals: true after event k holds from
// Done_k (+grace when it was false before and the event gives none) until the Begin of the
// first later event after which it is false. Before the first event it is false.
func (r *fcRun) spans(val func(e *fcEvent) bool, grace func(e *fcEvent) time.Duration) []fcSpan {
	var out []fcSpan
	on := false
	var from time.Time
	for i := range r.Events {
		e := &r.Events[i]
		v := val(e)
		switch {
		case v && !on:
			on, from = true, e.Done.Add(grace(e))
		case !v && on:
			on = false
			if e.Begin.After(from) {
				out = append(out, fcSpan{from, e.Begin})
			}
		}
	}
	if on && r.End.After(from) {
		out = append(out, fcSpan{from, r.End})
	}
	return out
}

// reachSpans: when node reaches etcd.
func (r *fcRun) reachSpans(node string) []fcSpan {
	return r.spans(func(e *fcEvent) bool { return e.State.Reach[node] }, func(e *fcEvent) time.Duration {
		if e.NoGrace[node] {
			return 0
		}
		return r.Grace
	})
}

func intersect(a, b []fcSpan) []fcSpan {
	var out []fcSpan
	for _, x := range a {
		for _, y := range b {
			from, to := x.From, x.To
			if y.From.After(from) {
				from = y.From
			}
			if y.To.Before(to) {
				to = y.To
			}
			if to.After(from) {
				out = append(out, fcSpan{from, to})
			}
		}
	}
	return out
}

// holderSpans: per VIP, the holder sets with the interval each lasted.
type fcHeld struct {
	fcSpan
	Holders []string
}

func (r *fcRun) holderSpans(vip string) []fcHeld {
	var out []fcHeld
	for _, h := range r.Holders {
		if h.VIP != vip {
			continue
		}
		if n := len(out); n > 0 {
			out[n-1].To = h.At
		}
		out = append(out, fcHeld{fcSpan{h.At, r.End}, h.Holders})
	}
	return out
}

func (r *fcRun) instances() []string {
	var out []string
	for in := range r.InstVIP {
		out = append(out, in)
	}
	sort.Strings(out)
	return out
}

// check applies every rule to the run.
func (r *fcRun) check() []fcViolation {
	var v []fcViolation
	v = append(v, r.checkTwoHolders()...)
	v = append(v, r.checkWire()...)
	v = append(v, r.checkNoHolder()...)
	v = append(v, r.checkSettles()...)
	v = append(v, r.checkTransitions()...)
	v = append(v, r.checkLogged()...)
	sort.SliceStable(v, func(i, j int) bool { return v[i].At.Before(v[j].At) })
	return v
}

// checkTwoHolders: never two vipd holders of a VIP while both reach etcd.
func (r *fcRun) checkTwoHolders() []fcViolation {
	var out []fcViolation
	for _, inst := range r.instances() {
		vip := r.InstVIP[inst]
		for _, h := range r.holderSpans(vip) {
			var vh []string
			for _, n := range h.Holders {
				if r.Vipd[n] {
					vh = append(vh, n)
				}
			}
			for i := 0; i < len(vh); i++ {
				for j := i + 1; j < len(vh); j++ {
					both := intersect(intersect([]fcSpan{h.fcSpan}, r.reachSpans(vh[i])), r.reachSpans(vh[j]))
					if len(both) > 0 {
						out = append(out, fcViolation{ruleTwoHolders, both[0].From, r.windowAt(both[0].From),
							fmt.Sprintf("%s (%s) on %s and %s for %v while both reach etcd", vip, inst, vh[i], vh[j], both[0].To.Sub(both[0].From).Round(time.Millisecond))})
					}
				}
			}
		}
	}
	return out
}

func inSpans(t time.Time, ss []fcSpan) bool {
	for _, s := range ss {
		if !t.Before(s.From) && t.Before(s.To) {
			return true
		}
	}
	return false
}

// checkWire: on the wire, two vipd nodes advertising for one VRID at once while both reach etcd:
// A advertises, then B, then A again within 1.5 advert intervals of A's previous advert (A never
// stopped being MASTER while B was). A MASTER that hears a better one stops at once, and with
// arbitration the old master leaves (priority 0) before the new one claims, so this pattern is
// never a hand-over.
func (r *fcRun) checkWire() []fcViolation {
	var out []fcViolation
	vridInst := map[int]string{}
	for in, id := range r.InstVRID {
		vridInst[id] = in
	}
	last := map[int]map[string]time.Time{}
	for _, a := range r.Adverts {
		node, ok := r.NodeAddr[a.Src]
		if !ok || !r.Vipd[node] || a.Priority == 0 {
			continue
		}
		seen := last[a.VRID]
		if seen == nil {
			seen = map[string]time.Time{}
			last[a.VRID] = seen
		}
		if prev, ok := seen[node]; ok && a.Time.Sub(prev) <= r.Advert*3/2 {
			for other, t := range seen {
				if other == node || !t.After(prev) {
					continue
				}
				if inSpans(t, r.reachSpans(node)) && inSpans(t, r.reachSpans(other)) {
					out = append(out, fcViolation{ruleWireDouble, t, r.windowAt(t),
						fmt.Sprintf("VRID %d (%s): %s advertised at %s, %s at %s, %s again at %s, both reaching etcd",
							a.VRID, vridInst[a.VRID], node, prev.Format("15:04:05.000"), other, t.Format("15:04:05.000"), node, a.Time.Format("15:04:05.000"))})
				}
			}
		}
		seen[node] = a.Time
	}
	return out
}

// eligibleSpans: when some node may hold inst, cut at every event that changes who may (the
// failover clock starts again there).
func (r *fcRun) eligibleSpans(inst string) []fcSpan {
	var out []fcSpan
	var cur []string
	var from time.Time
	for i := range r.Events {
		e := &r.Events[i]
		el := slices.Clone(e.State.Eligible[inst])
		sort.Strings(el)
		if slices.Equal(el, cur) {
			continue
		}
		if len(cur) > 0 && e.Begin.After(from) {
			out = append(out, fcSpan{from, e.Begin})
		}
		cur, from = el, e.Done
	}
	if len(cur) > 0 && r.End.After(from) {
		out = append(out, fcSpan{from, r.End})
	}
	return out
}

// checkNoHolder: whenever some node has been eligible for Bound, some node holds the VIP.
func (r *fcRun) checkNoHolder() []fcViolation {
	var out []fcViolation
	for _, inst := range r.instances() {
		vip := r.InstVIP[inst]
		var none []fcSpan
		for _, h := range r.holderSpans(vip) {
			if len(h.Holders) == 0 {
				none = append(none, h.fcSpan)
			}
		}
		for _, s := range intersect(none, r.eligibleSpans(inst)) {
			if d := s.To.Sub(s.From); d > r.Bound {
				w := r.windowAt(s.From)
				el := ""
				if w >= 0 {
					el = strings.Join(r.Events[w].State.Eligible[inst], ",")
				}
				out = append(out, fcViolation{ruleNoHolder, s.From, w,
					fmt.Sprintf("%s (%s) held by nobody for %v (bound %v) while %s eligible", vip, inst, d.Round(time.Millisecond), r.Bound, el)})
			}
		}
	}
	return out
}

// checkSettles: once settled, a VIP is only on a running node whose instance is MASTER; and the
// fleet did settle.
func (r *fcRun) checkSettles() []fcViolation {
	var out []fcViolation
	vipInst := map[string]string{}
	for in, vip := range r.InstVIP {
		vipInst[vip] = in
	}
	for _, s := range r.Settles {
		if !s.Quiet {
			out = append(out, fcViolation{ruleNotSettled, s.At, s.Window, "the fleet was still moving at the settle limit"})
		}
		nodes := make([]string, 0, len(s.Held))
		for n := range s.Held {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			for _, vip := range s.Held[n] {
				inst, ok := vipInst[vip]
				switch {
				case !ok:
					out = append(out, fcViolation{ruleStrayVIP, s.At, s.Window, fmt.Sprintf("%s on %s belongs to no instance", vip, n)})
				case !s.Up[n]:
					out = append(out, fcViolation{ruleStrayVIP, s.At, s.Window, fmt.Sprintf("%s (%s) left on %s, whose daemon is not running", vip, inst, n)})
				case s.States[fcPair{n, inst}] != "MASTER":
					out = append(out, fcViolation{ruleStrayVIP, s.At, s.Window, fmt.Sprintf("%s (%s) on %s, which is %q for it", vip, inst, n, s.States[fcPair{n, inst}])})
				}
			}
		}
	}
	return out
}

// checkTransitions: every transition was concerned by the event of its window, and every vipd
// transition has a cause.
func (r *fcRun) checkTransitions() []fcViolation {
	var out []fcViolation
	for _, tr := range r.Transitions {
		at := tr.At
		if at.IsZero() && tr.Window >= 0 && tr.Window < len(r.Events) {
			at = r.Events[tr.Window].Begin
		}
		if tr.Vipd && strings.TrimSpace(tr.Cause) == "" {
			out = append(out, fcViolation{ruleNoCause, at, tr.Window, fmt.Sprintf("%s: %s", tr.Node, tr.Line)})
		}
		if tr.Window < 0 || tr.Window >= len(r.Events) {
			continue
		}
		e := r.Events[tr.Window]
		if !e.Concerns[fcPair{tr.Node, tr.Inst}] && !r.stallConcerns(tr.Node, tr.Inst, at) {
			out = append(out, fcViolation{ruleUnconcerned, at, tr.Window,
				fmt.Sprintf("%s %s -> %s during %q, which concerns %s: %s", tr.Node, tr.Inst, tr.To, e.Name, fcPairList(e.Concerns), tr.Line)})
		}
	}
	return out
}

// stallConcerns: a transition of node/inst at t follows an etcd stall that left a node with no
// gossip fallback isolated: the node itself, or an instance such a node held when the stall
// began, until that node is back and has preempted again (Grace + Bound after the stall).
func (r *fcRun) stallConcerns(node, inst string, t time.Time) bool {
	for _, s := range r.Stalls {
		if t.Before(s.From) || t.After(s.To.Add(r.Grace+r.Bound)) {
			continue
		}
		w := r.windowAt(s.From)
		if w < 0 {
			continue
		}
		nf := r.Events[w].State.NoFallback
		if nf[node] {
			return true
		}
		for _, h := range r.holderSpans(r.InstVIP[inst]) {
			if !s.From.Before(h.From) && s.From.Before(h.To) {
				for _, n := range h.Holders {
					if nf[n] {
						return true
					}
				}
			}
		}
	}
	return false
}

func fcPairList(m map[fcPair]bool) string {
	var s []string
	for p, ok := range m {
		if ok {
			s = append(s, p.String())
		}
	}
	sort.Strings(s)
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, " ")
}

// checkLogged: every VIP that came to or went from a node in an event window has a transition of
// that node's instance in the same window: into MASTER when it came, out of MASTER when it went
// (or the event removed it itself).
func (r *fcRun) checkLogged() []fcViolation {
	var out []fcViolation
	type key struct {
		w int
		p fcPair
	}
	into, outof := map[key]bool{}, map[key]bool{}
	for _, tr := range r.Transitions {
		k := key{tr.Window, fcPair{tr.Node, tr.Inst}}
		if tr.To == "MASTER" {
			into[k] = true
		}
		if tr.From == "MASTER" || (!tr.Vipd && tr.To != "MASTER") {
			outof[k] = true
		}
	}
	for _, inst := range r.instances() {
		vip := r.InstVIP[inst]
		held := map[string]bool{}
		first := true
		for _, h := range r.Holders {
			if h.VIP != vip {
				continue
			}
			now := map[string]bool{}
			for _, n := range h.Holders {
				now[n] = true
			}
			w := r.windowAt(h.At)
			if !first && w >= 0 {
				for n := range now {
					if !held[n] && !into[key{w, fcPair{n, inst}}] {
						out = append(out, fcViolation{ruleUnlogged, h.At, w, fmt.Sprintf("%s (%s) came to %s with no transition into MASTER logged", vip, inst, n)})
					}
				}
				for n := range held {
					if !now[n] && !outof[key{w, fcPair{n, inst}}] && !r.Events[w].Removed[fcPair{n, inst}] {
						out = append(out, fcViolation{ruleUnlogged, h.At, w, fmt.Sprintf("%s (%s) went from %s with no transition out of MASTER logged", vip, inst, n)})
					}
				}
			}
			held, first = now, false
		}
	}
	return out
}

// --- unit tests of the checker (no root needed) ---

func TestFleetChaosCheckerRules(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	a1, a2 := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	all := func(ns ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range ns {
			m[n] = true
		}
		return m
	}
	// base: n1 holds VI_1 from 1 s; at 10 s, "kill n1" (concerning VI_1 everywhere) and n2 takes
	// over at 13 s, logging it.
	base := func() *fcRun {
		st := fcState{Reach: all("n1", "n2"), Eligible: map[string][]string{"VI_1": {"n1", "n2"}}, Up: all("n1", "n2")}
		st2 := fcState{Reach: all("n2"), Eligible: map[string][]string{"VI_1": {"n2"}}, Up: all("n2")}
		return &fcRun{
			Start: t0, End: at(30),
			Vipd:     all("n1", "n2", "ka"),
			InstVIP:  map[string]string{"VI_1": "10.99.0.101"},
			InstVRID: map[string]int{"VI_1": 51},
			NodeAddr: map[netip.Addr]string{a1: "n1", a2: "n2"},
			Events: []fcEvent{
				{Step: 0, Name: "start", Begin: at(0), Done: at(0), State: st, NoGrace: all("n1", "n2"),
					Concerns: map[fcPair]bool{{"n1", "VI_1"}: true, {"n2", "VI_1"}: true}},
				{Step: 1, Name: "kill n1", Begin: at(10), Done: at(10.1), State: st2,
					Concerns: map[fcPair]bool{{"n1", "VI_1"}: true, {"n2", "VI_1"}: true},
					Removed:  map[fcPair]bool{{"n1", "VI_1"}: true}},
			},
			Holders: []fcHolders{
				{At: at(0), VIP: "10.99.0.101"},
				{At: at(1), VIP: "10.99.0.101", Holders: []string{"n1"}},
				{At: at(10.1), VIP: "10.99.0.101"},
				{At: at(13), VIP: "10.99.0.101", Holders: []string{"n2"}},
			},
			Adverts: []lab.VRRPAdvert{
				{Time: at(1), Src: a1, VRID: 51, Priority: 150}, {Time: at(2), Src: a1, VRID: 51, Priority: 150},
				{Time: at(13), Src: a2, VRID: 51, Priority: 120}, {Time: at(14), Src: a2, VRID: 51, Priority: 120},
			},
			Transitions: []fcTransition{
				{At: at(1), Window: 0, Node: "n1", Inst: "VI_1", From: "BACKUP", To: "MASTER", Cause: "master down", Vipd: true},
				{At: at(13), Window: 1, Node: "n2", Inst: "VI_1", From: "BACKUP", To: "MASTER", Cause: "master down", Vipd: true},
			},
			Settles: []fcSettle{{At: at(20), Window: 1, Quiet: true, Up: all("n2"),
				Held: map[string][]string{"n2": {"10.99.0.101"}}, States: map[fcPair]string{{"n2", "VI_1"}: "MASTER"}}},
			Grace: 5 * time.Second, Bound: 6 * time.Second, Advert: time.Second,
		}
	}
	if v := base().check(); len(v) != 0 {
		t.Fatalf("a clean run has violations: %v", v)
	}
	cases := []struct {
		rule   string
		break_ func(r *fcRun)
	}{
		{ruleTwoHolders, func(r *fcRun) {
			r.Holders = append(r.Holders[:2], fcHolders{At: at(5), VIP: "10.99.0.101", Holders: []string{"n1", "n2"}}, fcHolders{At: at(5.2), VIP: "10.99.0.101", Holders: []string{"n1"}})
			r.Holders = append(r.Holders, fcHolders{At: at(10.1), VIP: "10.99.0.101"}, fcHolders{At: at(13), VIP: "10.99.0.101", Holders: []string{"n2"}})
			r.Transitions = append(r.Transitions, fcTransition{At: at(5), Window: 0, Node: "n2", Inst: "VI_1", From: "BACKUP", To: "MASTER", Cause: "x", Vipd: true},
				fcTransition{At: at(5.2), Window: 0, Node: "n2", Inst: "VI_1", From: "MASTER", To: "BACKUP", Cause: "x", Vipd: true})
		}},
		{ruleWireDouble, func(r *fcRun) {
			r.Adverts = append(r.Adverts[:1], lab.VRRPAdvert{Time: at(1.5), Src: a2, VRID: 51, Priority: 120}, lab.VRRPAdvert{Time: at(2), Src: a1, VRID: 51, Priority: 150})
		}},
		{ruleNoHolder, func(r *fcRun) { r.Holders[3].At = at(17) }},
		{ruleStrayVIP, func(r *fcRun) { r.Settles[0].Held["n1"] = []string{"10.99.0.101"} }},
		{ruleStrayVIP, func(r *fcRun) { r.Settles[0].States[fcPair{"n2", "VI_1"}] = "BACKUP" }},
		{ruleUnconcerned, func(r *fcRun) { delete(r.Events[1].Concerns, fcPair{"n2", "VI_1"}) }},
		{ruleNoCause, func(r *fcRun) { r.Transitions[1].Cause = "" }},
		{ruleUnlogged, func(r *fcRun) { r.Transitions = r.Transitions[:1] }},
		{ruleUnlogged, func(r *fcRun) { r.Events[1].Removed = nil }},
		{ruleNotSettled, func(r *fcRun) { r.Settles[0].Quiet = false }},
	}
	for _, c := range cases {
		r := base()
		c.break_(r)
		v := r.check()
		found := false
		for _, x := range v {
			if x.Rule == c.rule {
				found = true
			}
		}
		if !found {
			t.Errorf("rule %s did not fire: %v", c.rule, v)
		}
	}

	// Two holders are allowed while one of them does not reach etcd (a keepalived peer does not
	// count either), and for Grace after its path came back.
	r := base()
	r.Vipd = all("n1", "n2")
	r.Holders = []fcHolders{{At: at(0), VIP: "10.99.0.101"}, {At: at(1), VIP: "10.99.0.101", Holders: []string{"n1"}},
		{At: at(10.2), VIP: "10.99.0.101", Holders: []string{"n1", "n2"}}, {At: at(12), VIP: "10.99.0.101", Holders: []string{"n2"}}}
	r.Events[1].Removed = nil
	r.Transitions[1].At = at(10.2)
	r.Transitions = append(r.Transitions, fcTransition{At: at(12), Window: 1, Node: "n1", Inst: "VI_1", From: "MASTER", To: "BACKUP", Cause: "x", Vipd: true})
	if v := r.check(); len(v) != 0 {
		t.Errorf("n1 off etcd: two holders must be allowed: %v", v)
	}
	// ...but once n1's reach comes back (event 2 at 20 s, grace 5 s), a double at 26 s counts.
	r.Events = append(r.Events, fcEvent{Step: 2, Name: "restore", Begin: at(20), Done: at(20.1),
		State:    fcState{Reach: all("n1", "n2"), Eligible: map[string][]string{"VI_1": {"n1", "n2"}}, Up: all("n1", "n2")},
		Concerns: map[fcPair]bool{{"n1", "VI_1"}: true, {"n2", "VI_1"}: true}})
	r.Settles = nil
	r.Holders = append(r.Holders, fcHolders{At: at(24), VIP: "10.99.0.101", Holders: []string{"n1", "n2"}}, fcHolders{At: at(27), VIP: "10.99.0.101", Holders: []string{"n2"}})
	r.Transitions = append(r.Transitions, fcTransition{At: at(24), Window: 2, Node: "n1", Inst: "VI_1", From: "BACKUP", To: "MASTER", Cause: "x", Vipd: true},
		fcTransition{At: at(27), Window: 2, Node: "n1", Inst: "VI_1", From: "MASTER", To: "BACKUP", Cause: "x", Vipd: true})
	v := r.check()
	if len(v) != 1 || v[0].Rule != ruleTwoHolders || !v[0].At.Equal(at(25.1)) {
		t.Errorf("a double after the grace: want one two-holders violation from 25.1 s, got %v", v)
	}

	// A transition no event concerned is excused only by an etcd stall that left a node with
	// no gossip fallback isolated, if that node held the instance.
	r = base()
	delete(r.Events[1].Concerns, fcPair{"n2", "VI_1"})
	r.Stalls = []fcStall{{From: at(11), To: at(12)}}
	if v := r.check(); len(v) != 1 || v[0].Rule != ruleUnconcerned {
		t.Errorf("a stall with every node on gossip excuses nothing: %v", v)
	}
	r.Events[1].State.NoFallback = map[string]bool{"n2": true}
	if v := r.check(); len(v) != 0 {
		t.Errorf("a stall isolating n2 concerns n2: %v", v)
	}
	r.Stalls = []fcStall{{From: at(1), To: at(1.5)}}
	if v := r.check(); len(v) != 1 || v[0].Rule != ruleUnconcerned {
		t.Errorf("a stall long before the transition excuses nothing: %v", v)
	}

	// No holder is fine while nobody is eligible.
	r = base()
	r.Events[1].State.Eligible = map[string][]string{}
	r.Holders = r.Holders[:3]
	r.Transitions = r.Transitions[:1]
	r.Settles[0].Held = map[string][]string{}
	if v := r.check(); len(v) != 0 {
		t.Errorf("nobody eligible: a VIP held by nobody is fine: %v", v)
	}
}
