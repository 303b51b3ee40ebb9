package integration

// Split-brain arbitration through etcd (issue 18, item 5; docs/arbitration.md), on a real
// three-member etcd cluster, three vipd nodes joined by gossip and one classic keepalived node
// in one VRID:
//
//   - VRRP filtered between two vipd nodes that both reach etcd, 20 s, five times: never two
//     holders on 20 ms samples of every node's addresses, no transition anywhere, nothing moves
//     when it heals; the same filter with arbitration off gives two holders (the test can fail);
//   - the master cut off from everything gives its VIP up before its lease can expire, and a
//     backup takes over with no sample of two holders; the master comes back and preempts
//     through the arbiter, again without two holders;
//   - a stop releases the claim: the hand-over takes Skew_Time, not the lease's TTL;
//   - etcd killed for everyone moves nothing (failsafe on gossip), and a master killed while
//     etcd is down is still replaced by plain VRRP.

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

const (
	arbVIP    = "10.99.0.100"
	arbAdvert = time.Second
)

// arbLab is the lab of these tests: vipd on n1..n3 (priorities 150, 120, 110, gossip, etcd),
// keepalived on ka (100), etcd on e1..e3.
type arbLab struct {
	l     *lab.Lab
	vipd  []*lab.Node
	ka    *lab.Node
	etcd  *etcdCluster
	ds    []*daemon
	kd    *daemon
	all   []*lab.Node
	extra []string
}

var arbPrio = []int{150, 120, 110}

func arbInst(prio int) instanceConf {
	return instanceConf{Name: "VI_1", VRID: 51, Priority: prio, AdvertInt: "1", Version: 3, VIPs: []string{arbVIP + "/24"}}
}

func newArbLab(t *testing.T, keepalived bool, extra ...string) *arbLab {
	t.Helper()
	a := &arbLab{l: lab.New(t), extra: extra}
	for i := range arbPrio {
		a.vipd = append(a.vipd, a.l.AddNode(fmt.Sprintf("n%d", i+1), fmt.Sprintf("10.99.0.%d/24", i+1)))
	}
	a.all = append(a.all, a.vipd...)
	if keepalived {
		lab.Keepalived(t)
		a.ka = a.l.AddNode("ka", "10.99.0.4/24")
		a.all = append(a.all, a.ka)
	}
	eaddrs := []string{"10.99.0.21", "10.99.0.22", "10.99.0.23"}
	var enodes []*lab.Node
	for i, ad := range eaddrs {
		enodes = append(enodes, a.l.AddNode(fmt.Sprintf("e%d", i+1), ad+"/24"))
	}
	a.etcd = startEtcd(t, a.l, enodes, eaddrs)
	for i := range a.vipd {
		a.ds = append(a.ds, nil)
		a.start(t, i, extra...)
		if i == 0 {
			flWaitLog(t, a.ds[0], 10*time.Second, time.Time{}, `msg="gossip started"`)
		}
	}
	if keepalived {
		a.kd = startKeepalived(t, a.ka, renderConf(t, "ka", true, arbInst(100)))
	}
	waitVIP(t, 15*time.Second, arbVIP, a.vipd[0], a.all...)
	a.waitClaim(t, "n1")
	return a
}

// start (re)starts vipd on node i with the lab's flags and extra.
func (a *arbLab) start(t *testing.T, i int, extra ...string) *daemon {
	t.Helper()
	n := a.vipd[i]
	args := []string{"--etcd-endpoints", a.etcd.Endpoints(), "--gossip-bind", fmt.Sprintf("10.99.0.%d:%s", i+1, flPort)}
	if i > 0 {
		args = append(args, "--join", "10.99.0.1:"+flPort)
	}
	args = append(args, extra...)
	a.ds[i] = startVipd(t, n, renderConf(t, n.Name, false, arbInst(arbPrio[i])), args...)
	return a.ds[i]
}

// claim returns the node named by the claim of VI_1 in etcd ("" when there is none).
func (a *arbLab) claim() string {
	out, err := a.etcd.ctl("get", "--print-value-only", "/vipd/arbiter/claim/VI_1")
	if err != nil {
		return "?"
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	i := strings.Index(out, `"node":"`)
	if i < 0 {
		return "?"
	}
	rest := out[i+len(`"node":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

func (a *arbLab) waitClaim(t *testing.T, node string) {
	t.Helper()
	lab.Eventually(t, 10*time.Second, "the claim of VI_1 held by "+node, func() bool { return a.claim() == node })
}

// transitions counts every daemon's transitions so far.
func (a *arbLab) transitions() []int {
	var c []int
	for _, d := range a.daemons() {
		c = append(c, len(chTransitions(d)))
	}
	return c
}

func (a *arbLab) daemons() []*daemon {
	ds := append([]*daemon{}, a.ds...)
	if a.kd != nil {
		ds = append(ds, a.kd)
	}
	return ds
}

// newTransitions lists the transitions logged since counts.
func (a *arbLab) newTransitions(counts []int) []string {
	var out []string
	for k, d := range a.daemons() {
		for _, l := range chNewTransitions(d, counts[k]) {
			out = append(out, d.node.Name+": "+l)
		}
	}
	return out
}

// filterVRRPBetween drops VRRP between nodes x and y in both of them (by source address);
// other traffic, VRRP with the other nodes, gossip and etcd pass.
func filterVRRPBetween(t *testing.T, x, y *lab.Node, xip, yip string) func() {
	t.Helper()
	rule := func(n *lab.Node, peer string) {
		p := filepath.Join(t.TempDir(), n.Name+"-vrrp-"+peer+".nft")
		writeFile(t, p, fmt.Sprintf("table inet arblab_vrrp {\n\tchain in {\n\t\ttype filter hook input priority -300; policy accept;\n\t\tip saddr %s meta l4proto 112 counter drop\n\t}\n}\n", peer))
		n.MustExec(flNft(t), "-f", p)
	}
	rule(x, yip)
	rule(y, xip)
	return func() {
		x.MustExec(flNft(t), "delete", "table", "inet", "arblab_vrrp")
		y.MustExec(flNft(t), "delete", "table", "inet", "arblab_vrrp")
	}
}

// TestArbiterSplitBrainNeverTwoHolders: five rounds of 20 s of VRRP filtered between the master
// and a backup that both reach etcd. The backup's down timer runs out again and again, and the
// gate keeps it out of MASTER every time: no sample of two holders, no transition, and nothing
// moves when the filter goes. Then the same filter with arbitration off on the backup: two
// holders within Master_Down_Interval, which is what the arbiter prevents.
func TestArbiterSplitBrainNeverTwoHolders(t *testing.T) {
	a := newArbLab(t, true)
	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	pairs := [][2]int{{0, 1}, {0, 2}, {0, 1}, {0, 2}, {0, 1}}
	for round, p := range pairs {
		x, y := a.vipd[p[0]], a.vipd[p[1]]
		counts := a.transitions()
		w.Report()
		heal := filterVRRPBetween(t, x, y, fmt.Sprintf("10.99.0.%d", p[0]+1), fmt.Sprintf("10.99.0.%d", p[1]+1))
		time.Sleep(20 * time.Second)
		heal()
		time.Sleep(3 * time.Second) // it heals: nothing may move either
		r := w.Report()
		t.Logf("round %d (VRRP cut between %s and %s, 20 s): %s", round+1, x.Name, y.Name, r)
		if len(r.Doubles) > 0 {
			t.Errorf("round %d: two holders of %s on %d samples of 20 ms, first at %s", round+1, arbVIP, len(r.Doubles), r.Doubles[0].Format("15:04:05.000"))
		}
		if len(r.None) > 0 || len(r.Changes) != 1 || r.Changes[0].Holder != "n1" {
			t.Errorf("round %d: the VIP moved (it must stay on n1): %s", round+1, r)
		}
		if tr := a.newTransitions(counts); len(tr) > 0 {
			t.Errorf("round %d: transitions during the split brain:\n%s", round+1, strings.Join(tr, "\n"))
		}
		if r.Samples < 500 {
			t.Errorf("round %d: only %d samples in 23 s (want one per 20 ms)", round+1, r.Samples)
		}
		if !chLogged(a.ds[p[1]], "MASTER held back by the gate") {
			t.Errorf("round %d: %s never asked the gate: the filter did not cut VRRP", round+1, y.Name)
		}
		if t.Failed() {
			for _, d := range a.ds {
				t.Logf("%s:\n%s", d.node.Name, lastLines(d.proc.Output(), 30))
			}
			t.FailNow()
		}
	}

	// The control: n2 without arbitration, the same filter: two holders.
	a.ds[1].stop()
	a.start(t, 1, "--arbiter=false")
	lab.Eventually(t, 10*time.Second, "n2 BACKUP again", func() bool { return a.ds[1].state("VI_1") == "BACKUP" })
	w.Report()
	heal := filterVRRPBetween(t, a.vipd[0], a.vipd[1], "10.99.0.1", "10.99.0.2")
	defer heal()
	lab.Eventually(t, 4*arbAdvert+2*time.Second, "two holders without arbitration", func() bool {
		return hasVIP(a.vipd[0], arbVIP) && hasVIP(a.vipd[1], arbVIP)
	})
	t.Logf("control, arbitration off on n2: %s", w.Report())
}

// TestArbiterIsolatedMasterReleasesFirst: every packet in and out of the master is dropped
// (VRRP, gossip and etcd gone at once; the link stays up, so no interface fault takes the VIP
// away). It gives the VIP up on its own deadline, before its lease can expire in etcd; a
// backup takes the claim once the lease is gone and takes over; no sample shows two holders.
// When the link comes back, n1 (priority 150) preempts through the arbiter, again without two
// holders.
func TestArbiterIsolatedMasterReleasesFirst(t *testing.T) {
	a := newArbLab(t, false)
	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	w.Report()
	cut := time.Now()
	unisolate := isolate(t, a.vipd[0])
	lab.Eventually(t, 4*time.Second, "n1 gives its VIP up", func() bool { return !hasVIP(a.vipd[0], arbVIP) })
	released := time.Since(cut)
	waitVIP(t, 10*time.Second, arbVIP, a.vipd[1], a.all...)
	took := time.Since(cut)
	r := w.Report()
	t.Logf("n1 cut off: released after %v, n2 holds after %v; %s", released.Round(time.Millisecond), took.Round(time.Millisecond), r)
	if len(r.Doubles) > 0 {
		t.Errorf("two holders on %d samples after the cut", len(r.Doubles))
	}
	if !chLogged(a.ds[0], "cut off from etcd and every gossip peer") {
		t.Errorf("n1's log does not say why it gave the VIP up:\n%s", lastLines(a.ds[0].proc.Output(), 30))
	}
	a.waitClaim(t, "n2")

	unisolate()
	waitVIP(t, 20*time.Second, arbVIP, a.vipd[0], a.all...)
	r = w.Report()
	t.Logf("n1 back: %s", r)
	if len(r.Doubles) > 0 {
		t.Errorf("two holders on %d samples while n1 came back and preempted", len(r.Doubles))
	}
	a.waitClaim(t, "n1")
	a.logArbiter(t)
}

// logArbiter logs every node's arbiter and transition lines (go test -v).
func (a *arbLab) logArbiter(t *testing.T) {
	for _, d := range a.ds {
		var lines []string
		for _, l := range strings.Split(d.proc.Output(), "\n") {
			if strings.Contains(l, "arbiter") || strings.Contains(l, `msg="entering `) || strings.Contains(l, "held back") {
				lines = append(lines, l)
			}
		}
		t.Logf("%s:\n%s", d.node.Name, strings.Join(lines, "\n"))
	}
}

// isolate drops every packet in and out of node n but loopback; the returned func undoes it.
func isolate(t *testing.T, n *lab.Node) func() {
	t.Helper()
	p := filepath.Join(t.TempDir(), n.Name+"-isolate.nft")
	writeFile(t, p, "table inet arblab_iso {\n\tchain in {\n\t\ttype filter hook input priority -300; policy drop;\n\t\tiif lo accept\n\t}\n\tchain out {\n\t\ttype filter hook output priority -300; policy drop;\n\t\toif lo accept\n\t}\n}\n")
	n.MustExec(flNft(t), "-f", p)
	return func() { n.MustExec(flNft(t), "delete", "table", "inet", "arblab_iso") }
}

// TestArbiterStopHandsOverWithoutWaitingForTheLease: SIGTERM on the master releases its claim
// (the lease is revoked), so the backup takes over after Skew_Time, well before the lease's TTL
// would have let it.
func TestArbiterStopHandsOverWithoutWaitingForTheLease(t *testing.T) {
	a := newArbLab(t, false)
	// vipd status shows the arbiter: the table's last line and the JSON.
	out, err := exec.Command(lab.BuildVipd(t), "status", "--socket", a.ds[0].socket).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "arbiter: etcd (lease live); claims held: VI_1") {
		t.Errorf("vipd status on n1: %v\n%s", err, out)
	}
	if st, err := a.ds[1].status(); err != nil || st.Daemon == nil || st.Daemon.Arbiter == nil ||
		st.Daemon.Arbiter.Mode != "etcd" || len(st.Daemon.Arbiter.Claims) != 0 {
		t.Errorf("n2's status: the arbiter in mode etcd holding no claim, got %+v %v", st.Daemon, err)
	}
	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	w.Report()
	start := time.Now()
	_ = a.ds[0].proc.Signal(syscall.SIGTERM)
	waitVIP(t, 10*time.Second, arbVIP, a.vipd[1], a.vipd[1:]...)
	took := time.Since(start)
	r := w.Report()
	t.Logf("stop of the master: n2 holds after %v; %s", took.Round(time.Millisecond), r)
	if len(r.Doubles) > 0 {
		t.Errorf("two holders on %d samples during the hand-over", len(r.Doubles))
	}
	// Skew_Time at priority 120 is 0.53 s; the lease alone would hold n2 for up to 3 s.
	if took > 2*time.Second {
		t.Errorf("the hand-over took %v: the claim was not released at the stop", took)
	}
}

// TestArbiterEtcdDownMovesNothing: every etcd member killed; the nodes keep their roles
// (failsafe: gossip peers answer and none is MASTER), and a master killed while etcd is down is
// still replaced by plain VRRP.
func TestArbiterEtcdDownMovesNothing(t *testing.T) {
	a := newArbLab(t, true)
	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	counts := a.transitions()
	w.Report()
	a.etcd.killAll()
	time.Sleep(8 * time.Second)
	r := w.Report()
	t.Logf("etcd down for 8 s: %s", r)
	if len(r.Doubles) > 0 || len(r.None) > 0 || len(r.Changes) != 1 || r.Changes[0].Holder != "n1" {
		t.Errorf("the VIP moved with etcd down: %s", r)
	}
	if tr := a.newTransitions(counts); len(tr) > 0 {
		t.Errorf("transitions with etcd down:\n%s", strings.Join(tr, "\n"))
	}
	if !chLogged(a.ds[0], "arbiter: failsafe") {
		t.Errorf("n1's log does not say it runs failsafe:\n%s", lastLines(a.ds[0].proc.Output(), 20))
	}

	// A dead machine: silent, then gone (a process killed in the lab would leave its VIP on the
	// interface of a namespace that still exists; the watch leaves n1 out from here on).
	w.Stop()
	w = lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all[1:]...)
	isolate(t, a.vipd[0])
	_ = a.ds[0].proc.Kill()
	waitVIP(t, 4*arbAdvert+3*time.Second, arbVIP, a.vipd[1], a.all[1:]...)
	r = w.Report()
	t.Logf("n1 killed with etcd down: %s", r)
	if len(r.Doubles) > 0 {
		t.Errorf("two holders on %d samples", len(r.Doubles))
	}
}

// TestArbiterFailoverBench (make bench-lab): a crash failover (kill -9 of the master, advert_int
// 1 s, backup priority 120) with arbitration and without it, in one run on one lab, the gap read
// off the wire. With arbitration the backup waits for max(Master_Down_Interval, what is left of
// the dead master's lease); the lease TTL (3 s, kept alive every second) is chosen so that this
// slows the failover by at most one advert interval.
func TestArbiterFailoverBench(t *testing.T) {
	if os.Getenv("VIPD_BENCH") != "1" {
		t.Skip("arbiter failover benchmark: runs only with VIPD_BENCH=1 (make bench-lab sets it)")
	}
	runs := 3
	if s := os.Getenv("VIPD_BENCH_RUNS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			runs = n
		}
	}
	l := lab.New(t)
	nm := l.AddNode("n1", "10.99.0.1/24")
	nb := l.AddNode("n2", "10.99.0.2/24")
	eaddrs := []string{"10.99.0.21", "10.99.0.22", "10.99.0.23"}
	var enodes []*lab.Node
	for i, ad := range eaddrs {
		enodes = append(enodes, l.AddNode(fmt.Sprintf("e%d", i+1), ad+"/24"))
	}
	etcd := startEtcd(t, l, enodes, eaddrs)
	masterIP, backupIP := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	mdi := failoverBound(3, arbAdvert, 120, false)
	gaps := map[bool][]time.Duration{}
	for _, arbitrate := range []bool{false, true} {
		for run := 0; run < runs; run++ {
			for _, n := range []*lab.Node{nm, nb} {
				_, _ = n.Exec("ip", "addr", "del", arbVIP+"/24", "dev", "eth0")
			}
			args := func(i int) []string {
				a := []string{"--log-level", "info", "--etcd-endpoints", etcd.Endpoints(), "--arbiter=" + strconv.FormatBool(arbitrate),
					"--gossip-bind", fmt.Sprintf("10.99.0.%d:%s", i, flPort)}
				if i > 1 {
					a = append(a, "--join", "10.99.0.1:"+flPort)
				}
				return a
			}
			capture := nb.Capture("eth0", "ip proto 112")
			dm := startVipd(t, nm, renderConf(t, "n1", false, arbInst(150)), args(1)...)
			waitVIP(t, 15*time.Second, arbVIP, nm, nb)
			db := startVipd(t, nb, renderConf(t, "n2", false, arbInst(120)), args(2)...)
			if err := waitBackupReady(db, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := waitAdvert(capture.Path(), masterIP, time.Now(), 3*arbAdvert); err != nil {
				t.Fatal(err)
			}
			// The backup's lease must be live before the crash, or its start is timed too.
			time.Sleep(2 * arbAdvert)
			_ = dm.proc.Kill()
			_, _ = nm.Exec("ip", "addr", "del", arbVIP+"/24", "dev", "eth0")
			killed := time.Now()
			if err := waitAdvert(capture.Path(), backupIP, killed, 15*time.Second); err != nil {
				t.Fatalf("arbitration %v, run %d: the backup never took over: %v\n%s", arbitrate, run+1, err, lastLines(db.proc.Output(), 20))
			}
			_, _ = dm.proc.Wait(5 * time.Second)
			gap, ok := lab.MasterGap(lab.VRRPAdverts(capture.Stop()), 51, masterIP, backupIP)
			if !ok {
				t.Fatalf("arbitration %v, run %d: no master-to-backup change captured", arbitrate, run+1)
			}
			t.Logf("arbitration %v, run %d: gap %v (Master_Down_Interval %v)", arbitrate, run+1, gap, mdi)
			gaps[arbitrate] = append(gaps[arbitrate], gap)
			db.stop() // releases its claim
		}
	}
	off, on := median(gaps[false]), median(gaps[true])
	fmt.Printf("\nCrash failover (kill -9), VRRPv3, advert_int 1 s, backup priority 120, %d runs each, gap on the wire:\n", runs)
	fmt.Printf("  %-28s median %8.1f ms  max %8.1f ms\n", "without arbitration", msf(off), msf(slices.Max(gaps[false])))
	fmt.Printf("  %-28s median %8.1f ms  max %8.1f ms\n", "with arbitration (TTL 3 s)", msf(on), msf(slices.Max(gaps[true])))
	fmt.Printf("  ratio with/without: %.2f; Master_Down_Interval %v; allowed: + one advert interval (%v)\n\n", float64(on)/float64(off), mdi, arbAdvert)
	if slices.Max(gaps[true]) > mdi+arbAdvert+200*time.Millisecond {
		t.Errorf("with arbitration the failover took up to %v, more than Master_Down_Interval %v + one advert interval", slices.Max(gaps[true]), mdi)
	}
}
