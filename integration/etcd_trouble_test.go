package integration

// etcd in trouble under a running fleet, on a real three-member etcd cluster (Debian's etcd
// 3.4) and three vipd nodes joined by gossip (arbiter_test.go's lab):
//
//   - one member killed (the leader): the fleet follows etcd through the other two; a priority
//     put still moves the VIP through the arbiter's preemption, nothing else moves, no node
//     stays out of mode etcd for long; the member comes back and the cluster is healthy again;
//   - every member stalled (SIGSTOP: connections open, no answers) for 8 s: nothing moves, the
//     arbiter runs failsafe on gossip, every vipd keeps answering; SIGCONT: etcd is back on every
//     node and a put moves the VIP again;
//   - a cluster with TLS only (client certificates required): vipd with --etcd-cacert,
//     --etcd-cert and --etcd-key follows it end to end; a vipd given the wrong CA says so in its
//     log and runs VRRP on its file.

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// etMetrics is where every vipd of these tests serves /metrics, inside its own namespace.
const etMetrics = "127.0.0.1:9650"

// etHealth is one node's view of etcd over a window of samples of its metrics.
type etHealth struct {
	samples  int
	bad      int           // samples with vipd_etcd_up or vipd_arbiter_mode{mode="etcd"} not 1
	failed   int           // scrapes that failed (vipd did not answer)
	longest  time.Duration // the longest run of bad samples, first to last
	lastFine bool          // the last sample was fine
}

func (h etHealth) String() string {
	return fmt.Sprintf("%d samples, %d out of etcd (longest %v), %d failed scrapes, fine at the end: %v",
		h.samples, h.bad, h.longest.Round(time.Millisecond), h.failed, h.lastFine)
}

// etFine reports whether node n's vipd says etcd is up and its arbiter is in mode etcd.
func etFine(n *lab.Node) (fine, scraped bool) {
	text, err := mtGet(n, etMetrics)
	if err != nil {
		return false, false
	}
	s, err := mtParse(text)
	if err != nil {
		return false, false
	}
	up, mode := 0.0, 0.0
	for _, smp := range s.find("vipd_etcd_up", nil) {
		up = smp.value
	}
	for _, smp := range s.find("vipd_arbiter_mode", map[string]string{"mode": "etcd"}) {
		mode = smp.value
	}
	return up == 1 && mode == 1, true
}

// etSampleHealth samples every vipd node's etcd health every 100 ms for d.
func etSampleHealth(a *arbLab, d time.Duration) map[string]*etHealth {
	out := map[string]*etHealth{}
	start := map[string]time.Time{}
	for _, n := range a.vipd {
		out[n.Name] = &etHealth{}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, n := range a.vipd {
			h := out[n.Name]
			fine, scraped := etFine(n)
			now := time.Now()
			h.samples++
			if !scraped {
				h.failed++
			}
			if fine {
				delete(start, n.Name)
			} else {
				h.bad++
				if _, ok := start[n.Name]; !ok {
					start[n.Name] = now
				}
				if run := now.Sub(start[n.Name]); run > h.longest {
					h.longest = run
				}
			}
			h.lastFine = fine
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// etWaitFine waits until every vipd node says etcd is up and its arbiter is in mode etcd.
func etWaitFine(t *testing.T, a *arbLab, timeout time.Duration, what string) {
	t.Helper()
	lab.Eventually(t, timeout, what, func() bool {
		for _, n := range a.vipd {
			if fine, _ := etFine(n); !fine {
				return false
			}
		}
		return true
	})
}

// etLogged returns d's log lines logged at or after since with every one of parts, each
// prefixed with the node's name.
func etLogged(d *daemon, since time.Time, parts ...string) []string {
	var out []string
	for _, l := range flLogLines(d.proc.Output(), since, parts...) {
		out = append(out, d.node.Name+": "+l)
	}
	return out
}

// etOutOfEtcd sums, from d's log since since, the time its arbiter spent out of mode etcd: from
// each line of a mode change away from etcd to the next "etcd answers" (or now).
func etOutOfEtcd(d *daemon, since time.Time) time.Duration {
	var total time.Duration
	var left time.Time
	for _, l := range flLogLines(d.proc.Output(), since, "component=arbiter", "was=") {
		at := flLogTime(l)
		switch {
		case strings.Contains(l, "arbiter: etcd answers"):
			if !left.IsZero() {
				total += at.Sub(left)
				left = time.Time{}
			}
		case strings.Contains(l, "was=etcd"):
			left = at
		}
	}
	if !left.IsZero() {
		total += time.Since(left)
	}
	return total
}

// etHolders lists the holders a report saw, in order ("" for nobody).
func etHolders(r lab.HolderReport) []string {
	var hs []string
	for _, c := range r.Changes {
		hs = append(hs, c.Holder)
	}
	return hs
}

// etOnlyHeldBy fails the test unless the report shows holder, and holder only, the whole time.
func etOnlyHeldBy(t *testing.T, phase string, r lab.HolderReport, holder string) {
	t.Helper()
	t.Logf("%s: %s", phase, r)
	if len(r.Doubles) > 0 || len(r.None) > 0 || len(r.Changes) != 1 || r.Changes[0].Holder != holder {
		t.Errorf("%s: the VIP moved (it must stay on %s): %s", phase, holder, r)
	}
}

// etMovedOnce fails the test unless the report shows the VIP going from `from` to `to`, with no
// sample of two holders and no one else holding it (a sample or two of nobody between the
// demotion and the takeover is the hand-over itself).
func etMovedOnce(t *testing.T, phase string, r lab.HolderReport, from, to string) {
	t.Helper()
	t.Logf("%s: %s", phase, r)
	if len(r.Doubles) > 0 {
		t.Errorf("%s: two holders on %d samples: %s", phase, len(r.Doubles), r)
	}
	hs := etHolders(r)
	ok := len(hs) >= 2 && hs[0] == from && hs[len(hs)-1] == to
	for _, h := range hs {
		if h != from && h != to && h != "" {
			ok = false
		}
	}
	if !ok || len(hs) > 3 {
		t.Errorf("%s: the VIP did not go straight from %s to %s: %v", phase, from, to, hs)
	}
	if gap := time.Duration(len(r.None)) * 20 * time.Millisecond; gap > time.Second {
		t.Errorf("%s: nobody held the VIP for about %v during the hand-over", phase, gap)
	}
}

// etProcsAlive fails the test if a vipd exited.
func etProcsAlive(t *testing.T, a *arbLab, phase string) {
	t.Helper()
	for _, d := range a.ds {
		if d.proc.Exited() {
			t.Fatalf("%s: vipd on %s exited:\n%s", phase, d.node.Name, lastLines(d.proc.Output(), 30))
		}
	}
}

// TestEtcdOneMemberKilled: the etcd leader killed with SIGKILL under a running fleet. The
// vipd nodes go on through the other two members: the VIP stays put, no transition, no
// demotion, no node out of mode etcd for more than a blip, and a priority put still moves the
// VIP to n3 through the arbiter's preemption. The member restarts, the cluster is healthy
// again, the member serves what was written while it was dead, and a further put moves the VIP
// again.
func TestEtcdOneMemberKilled(t *testing.T) {
	a := newArbLab(t, false, "--metrics-listen", etMetrics)
	etWaitFine(t, a, 10*time.Second, "every vipd up on etcd, arbiter in mode etcd")
	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	counts := a.transitions()
	w.Report()

	victim, err := a.etcd.leader()
	if err != nil {
		victim = a.etcd.member("e2")
		t.Logf("leader not found (%v): killing %s", err, victim.name)
	} else {
		t.Logf("the etcd leader is %s (%s): killing it", victim.name, victim.addr)
	}
	killed := time.Now()
	a.etcd.kill(victim)

	// 6 s: the client's failover to another endpoint, a new leader elected (election timeout
	// 1 s), at least one lease TTL (3 s) and two watcher probes (2 s).
	health := etSampleHealth(a, 6*time.Second)
	etOnlyHeldBy(t, "6 s after the kill", w.Report(), "n1")
	if tr := a.newTransitions(counts); len(tr) > 0 {
		t.Errorf("transitions after one etcd member was killed:\n%s", strings.Join(tr, "\n"))
	}
	for _, d := range a.ds {
		h := health[d.node.Name]
		t.Logf("%s: etcd health after the kill: %s", d.node.Name, h)
		// A blip while the client fails over and a new leader is elected is allowed; a
		// node out of mode etcd for a whole lease TTL is not.
		if h.longest > 3*time.Second || !h.lastFine || h.failed > 0 {
			t.Errorf("%s: etcd health after one member was killed: %s", d.node.Name, h)
		}
		for _, bad := range []string{"arbiter: demoting", "arbiter: cut off", "arbiter: lease expired"} {
			if ls := etLogged(d, killed, bad); len(ls) > 0 {
				t.Errorf("after one etcd member was killed:\n%s", strings.Join(ls, "\n"))
			}
		}
		down, back := etLogged(d, killed, `msg="etcd unreachable`), etLogged(d, killed, `msg="etcd back"`)
		left, returned := etLogged(d, killed, "arbiter: failsafe"), etLogged(d, killed, "arbiter: etcd answers")
		for _, l := range append(append(append(down, back...), left...), returned...) {
			t.Logf("  %s", l)
		}
		if len(down) > len(back) || len(left) > len(returned) {
			t.Errorf("%s: etcd still unreachable for it 6 s after one member was killed", d.node.Name)
		}
		if out := etOutOfEtcd(d, killed); out > 3*time.Second {
			t.Errorf("%s: its arbiter was out of mode etcd for %v after one member was killed", d.node.Name, out)
		} else if out > 0 {
			t.Logf("%s: arbiter out of mode etcd for %v in all", d.node.Name, out)
		}
	}
	etProcsAlive(t, a, "after the kill")
	if t.Failed() {
		a.logArbiter(t)
		t.FailNow()
	}

	// A put through the two members left moves the VIP to n3 (preemption through the arbiter).
	counts = a.transitions()
	put := time.Now()
	a.etcd.put("/vipd/priority/VI_1/n3", "200")
	waitVIP(t, 10*time.Second, arbVIP, a.vipd[2], a.all...)
	t.Logf("priority put with %s dead: n3 holds the VIP %v after the put", victim.name, time.Since(put).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	etMovedOnce(t, "the put with one member dead", w.Report(), "n1", "n3")
	a.waitClaim(t, "n3")
	if !chLogged(a.ds[2], "arbiter: asked the holder to yield") {
		t.Errorf("n3 did not preempt through the arbiter:\n%s", lastLines(a.ds[2].proc.Output(), 30))
	}
	if tr := chNewTransitions(a.ds[1], counts[1]); len(tr) > 0 {
		t.Errorf("n2 moved on a put for n3:\n%s", strings.Join(tr, "\n"))
	}

	// The member comes back: the cluster is healthy, the member serves the key written while it
	// was dead, and nothing moves.
	a.etcd.restart(victim)
	lab.Eventually(t, 30*time.Second, "the etcd cluster healthy again with "+victim.name, func() bool {
		return a.etcd.healthy() == nil
	})
	lab.Eventually(t, 10*time.Second, victim.name+" serving the priority written while it was dead", func() bool {
		out, err := a.etcd.ctlAt(victim, "get", "--print-value-only", "/vipd/priority/VI_1/n3")
		return err == nil && strings.TrimSpace(out) == "200"
	})
	if _, err := a.etcd.leader(); err != nil {
		t.Errorf("after %s's restart: %v", victim.name, err)
	}
	etWaitFine(t, a, 10*time.Second, "every vipd on etcd after the restart of "+victim.name)
	time.Sleep(time.Second)
	etOnlyHeldBy(t, "the restart of "+victim.name, w.Report(), "n3")

	// And a further put still works.
	put = time.Now()
	a.etcd.put("/vipd/priority/VI_1/n2", "250")
	waitVIP(t, 10*time.Second, arbVIP, a.vipd[1], a.all...)
	t.Logf("priority put after %s's restart: n2 holds the VIP %v after the put", victim.name, time.Since(put).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	etMovedOnce(t, "the put after the restart", w.Report(), "n3", "n2")
	a.waitClaim(t, "n2")
	etProcsAlive(t, a, "at the end")
}

// TestEtcdStalledThenBack: every etcd member stopped with SIGSTOP for 8 s (connections open,
// no answers: a hung etcd, not a dead one). On 20 ms samples nothing moves and no node
// transitions; the arbiter goes failsafe because gossip peers answer; every vipd keeps
// running and answering its control socket. SIGCONT: every node logs etcd back and its
// arbiter in mode etcd again, still nothing moves, and a priority put moves the VIP.
func TestEtcdStalledThenBack(t *testing.T) {
	a := newArbLab(t, false)
	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	counts := a.transitions()
	w.Report()

	stalled := time.Now()
	a.etcd.pause(a.etcd.members...)
	// The control socket of every vipd answers while etcd hangs: nothing in vipd waits on it.
	slow := map[string]int{}
	for time.Since(stalled) < 8*time.Second {
		for _, d := range a.ds {
			if _, err := d.status(); err != nil {
				slow[d.node.Name]++
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	etOnlyHeldBy(t, "etcd stalled for 8 s", w.Report(), "n1")
	if len(slow) > 0 {
		t.Errorf("vipd status did not answer (within 2 s) while etcd was stalled: %v", slow)
	}
	if tr := a.newTransitions(counts); len(tr) > 0 {
		t.Errorf("transitions while etcd was stalled:\n%s", strings.Join(tr, "\n"))
	}
	for _, d := range a.ds {
		if ls := etLogged(d, stalled, "arbiter: failsafe"); len(ls) == 0 {
			t.Errorf("%s's arbiter did not go failsafe while etcd was stalled:\n%s", d.node.Name, lastLines(d.proc.Output(), 20))
		} else {
			t.Logf("%s", ls[0])
		}
		for _, bad := range []string{"arbiter: demoting", "arbiter: cut off"} {
			if ls := etLogged(d, stalled, bad); len(ls) > 0 {
				t.Errorf("while etcd was stalled:\n%s", strings.Join(ls, "\n"))
			}
		}
	}
	if len(etLogged(a.ds[0], stalled, `msg="etcd unreachable`)) == 0 {
		t.Errorf("n1 never noticed that etcd stopped answering:\n%s", lastLines(a.ds[0].proc.Output(), 20))
	}
	etProcsAlive(t, a, "etcd stalled")
	if t.Failed() {
		a.resumeAndLog(t)
		t.FailNow()
	}

	resumed := time.Now()
	a.etcd.resume(a.etcd.members...)
	for _, d := range a.ds {
		back := flWaitLog(t, d, 20*time.Second, resumed, `msg="etcd back"`)
		mode := flWaitLog(t, d, 20*time.Second, resumed, "arbiter: etcd answers")
		t.Logf("%s:\n  %s\n  %s", d.node.Name, back, mode)
	}
	a.waitClaim(t, "n1")
	time.Sleep(time.Second)
	etOnlyHeldBy(t, "etcd back", w.Report(), "n1")
	if tr := a.newTransitions(counts); len(tr) > 0 {
		t.Errorf("transitions when etcd came back:\n%s", strings.Join(tr, "\n"))
	}

	counts = a.transitions()
	put := time.Now()
	a.etcd.put("/vipd/priority/VI_1/n3", "200")
	waitVIP(t, 10*time.Second, arbVIP, a.vipd[2], a.all...)
	t.Logf("priority put after the stall: n3 holds the VIP %v after the put", time.Since(put).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	etMovedOnce(t, "the put after the stall", w.Report(), "n1", "n3")
	a.waitClaim(t, "n3")
	if tr := chNewTransitions(a.ds[1], counts[1]); len(tr) > 0 {
		t.Errorf("n2 moved on a put for n3:\n%s", strings.Join(tr, "\n"))
	}
	etProcsAlive(t, a, "at the end")
}

// resumeAndLog resumes every etcd member (so that the lab's teardown finds them running) and
// logs the arbiter's lines of every node.
func (a *arbLab) resumeAndLog(t *testing.T) {
	for _, m := range a.etcd.members {
		_ = m.proc.Signal(syscall.SIGCONT)
	}
	a.logArbiter(t)
}

// TestEtcdTLSInTheLab: a three-member etcd cluster that speaks TLS only, to clients and peers,
// and requires client certificates; the certificates (one CA, IP SANs for the members' lab
// addresses) are made by the test. n1 and n2 run vipd with --etcd-cacert, --etcd-cert and
// --etcd-key and follow it end to end: their status appears under /vipd/status/, n1 holds the
// claim, and a priority put moves the VIP to n2. n3 is given another CA: its log names the TLS
// problem and the flag to check, nothing of it reaches etcd, and its VRRP runs on its file (it
// is BACKUP for VI_1 and holds the VIP of an instance of its own).
func TestEtcdTLSInTheLab(t *testing.T) {
	l := lab.New(t)
	n1 := l.AddNode("n1", "10.99.0.1/24")
	n2 := l.AddNode("n2", "10.99.0.2/24")
	n3 := l.AddNode("n3", "10.99.0.3/24")
	eaddrs := []string{"10.99.0.21", "10.99.0.22", "10.99.0.23"}
	var enodes []*lab.Node
	for i, ad := range eaddrs {
		enodes = append(enodes, l.AddNode(fmt.Sprintf("e%d", i+1), ad+"/24"))
	}
	pki := newEtcdPKI(t, eaddrs)
	wrong := newEtcdPKI(t, eaddrs)
	etcd := startEtcdTLS(t, l, enodes, eaddrs, pki)
	nodes := []*lab.Node{n1, n2, n3}

	// Plain http is refused by the members: the cluster really is TLS only.
	if out, err := n1.Exec("env", "ETCDCTL_API=3", "etcdctl", "--endpoints", "http://10.99.0.21:2379", "--dial-timeout", "1s", "--command-timeout", "2s", "get", "/x"); err == nil {
		t.Fatalf("etcdctl over plain http got an answer from a TLS member:\n%s", out)
	}

	vi1 := func(prio int) instanceConf {
		return instanceConf{Name: "VI_1", VRID: 51, Priority: prio, AdvertInt: "0.1", Version: 3, VIPs: []string{"10.99.0.100/24"}}
	}
	tlsFlags := func(ca string) []string {
		return []string{"--etcd-endpoints", etcd.Endpoints(), "--etcd-cacert", ca, "--etcd-cert", pki.ClientCert, "--etcd-key", pki.ClientKey}
	}
	d1 := startVipd(t, n1, renderConf(t, "n1", false, vi1(150)), tlsFlags(pki.CA)...)
	d2 := startVipd(t, n2, renderConf(t, "n2", false, vi1(120)), tlsFlags(pki.CA)...)
	d3 := startVipd(t, n3, renderConf(t, "n3", false, vi1(100),
		instanceConf{Name: "VI_9", VRID: 59, Priority: 100, AdvertInt: "0.1", Version: 3, VIPs: []string{"10.99.0.109/24"}}),
		tlsFlags(wrong.CA)...)

	waitVIP(t, 15*time.Second, "10.99.0.100", n1, nodes...)
	lab.Eventually(t, 10*time.Second, "the status of n1 and n2, and only theirs, under /vipd/status/", func() bool {
		out, err := etcd.ctl("get", "--prefix", "--keys-only", "/vipd/status/")
		return err == nil && strings.Contains(out, "/vipd/status/n1") && strings.Contains(out, "/vipd/status/n2") &&
			strings.Count(out, "/vipd/status/") == 2
	})
	lab.Eventually(t, 10*time.Second, "n1's claim of VI_1 over TLS", func() bool {
		out, err := etcd.ctl("get", "--print-value-only", "/vipd/arbiter/claim/VI_1")
		return err == nil && strings.Contains(out, `"node":"n1"`)
	})
	for _, d := range []*daemon{d1, d2} {
		if !chLogged(d, `msg="etcd reached"`) {
			t.Errorf("%s never logged etcd reached:\n%s", d.node.Name, lastLines(d.proc.Output(), 30))
		}
		for _, bad := range []string{"tls:", "x509:", `msg="etcd unreachable`, "first read failed"} {
			if chLogged(d, bad) {
				t.Errorf("%s logged %q with the right certificates:\n%s", d.node.Name, bad, lastLines(d.proc.Output(), 30))
			}
		}
	}

	// A put over TLS moves the VIP.
	put := time.Now()
	etcd.put("/vipd/priority/VI_1/n2", "200")
	waitVIP(t, 10*time.Second, "10.99.0.100", n2, nodes...)
	t.Logf("priority put over TLS: n2 holds the VIP %v after the put", time.Since(put).Round(time.Millisecond))
	lab.Eventually(t, 10*time.Second, "n2's claim of VI_1 over TLS", func() bool {
		out, err := etcd.ctl("get", "--print-value-only", "/vipd/arbiter/claim/VI_1")
		return err == nil && strings.Contains(out, `"node":"n2"`)
	})

	// The wrong CA: a clear log line, and VRRP on the file.
	line := flWaitLog(t, d3, 15*time.Second, time.Time{}, "level=WARN", "etcd", "certificate signed by unknown authority")
	t.Logf("n3 with the wrong CA: %s", line)
	if !strings.Contains(line, "TLS") || !strings.Contains(line, "--etcd-cacert") {
		t.Errorf("n3's log line does not say TLS and name the flag to check: %s", line)
	}
	waitVIP(t, 10*time.Second, "10.99.0.109", n3, nodes...)
	if s := d3.state("VI_1"); s != "BACKUP" {
		t.Errorf("n3's VI_1 is %q, want BACKUP (the file's priority 100)", s)
	}
	// A put for n3 cannot reach it: nothing moves.
	etcd.put("/vipd/priority/VI_1/n3", "250")
	holdSteady(t, 1500*time.Millisecond, "a put n3 cannot read moves nothing", func() bool {
		return hasVIP(n2, "10.99.0.100") && !hasVIP(n3, "10.99.0.100") && hasVIP(n3, "10.99.0.109")
	})
	if d3.proc.Exited() {
		t.Fatalf("vipd with the wrong CA exited:\n%s", d3.proc.Output())
	}
	if chLogged(d3, `msg="etcd reached"`) {
		t.Errorf("n3 reached etcd with the wrong CA:\n%s", lastLines(d3.proc.Output(), 30))
	}
}
