package integration

// The soak (make soak; not in CI): two vipd nodes carrying VIPD_SOAK_INSTANCES instances (1000)
// between them, gossiping, following a real etcd, under continuous churn for VIPD_SOAK_DURATION
// (30m): reloads with changed configurations, etcd edits, maintenance, failovers. node1 is never
// restarted; its memory, goroutines, open fds and CPU are sampled every 10 s, drawn as a PNG and
// judged by soak.Flat: flat or the test fails.

import (
	"context"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/integration/soak"
)

const (
	soakSampleEvery = 10 * time.Second
	soakMetrics     = "127.0.0.1:9650"
	soakExtras      = 4 // VI_X1..VI_X4, on eth0 VRIDs 251..254, added and removed by reloads
)

// soakEnv reads the soak's settings from the environment.
type soakEnv struct {
	duration  time.Duration // VIPD_SOAK_DURATION, default 30m
	instances int           // VIPD_SOAK_INSTANCES, default 1000
	step      time.Duration // VIPD_SOAK_STEP: one churn action every step, default 10s
	warmup    time.Duration // VIPD_SOAK_WARMUP, default max(one churn cycle + a step, duration/6)
	out       string        // VIPD_SOAK_OUT, default bin/soak/soak.png under the repository
}

func readSoakEnv(t *testing.T) soakEnv {
	t.Helper()
	e := soakEnv{duration: 30 * time.Minute, instances: 1000, step: 10 * time.Second}
	dur := func(name string, into *time.Duration) {
		if s := os.Getenv(name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a positive duration (30m, 4m, 90s)", name, s)
			}
			*into = d
		}
	}
	dur("VIPD_SOAK_DURATION", &e.duration)
	dur("VIPD_SOAK_STEP", &e.step)
	if s := os.Getenv("VIPD_SOAK_INSTANCES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 40 || n > 16*scalePerIf {
			t.Fatalf("VIPD_SOAK_INSTANCES=%q: want 40..%d", s, 16*scalePerIf)
		}
		e.instances = n
	}
	e.warmup = max(time.Duration(len(soakActions))*e.step+e.step, e.duration/6)
	dur("VIPD_SOAK_WARMUP", &e.warmup)
	e.out = os.Getenv("VIPD_SOAK_OUT")
	if e.out == "" {
		e.out = filepath.Join("bin", "soak", "soak.png")
	}
	if !filepath.IsAbs(e.out) {
		e.out = filepath.Join(repoRoot(t), e.out) // go test runs in integration/
	}
	return e
}

// repoRoot is the directory of go.mod above the working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// soakRules are the flatness allowances per series (soak.Flat): growth of the last third's
// median (goroutines: 0.2-quantile) over the first third's (after the warm-up), and the trend
// over the window, at most max(Abs, Rel x baseline).
func soakRules(warmup float64) map[string]soak.Rule {
	return map[string]soak.Rule{
		"RSS":       {Warmup: warmup, Rel: 0.20, Abs: 16}, // MiB
		"live heap": {Warmup: warmup, Rel: 0.25, Abs: 8},  // MiB live after the last GC
		// By its floor (the 0.2-quantile): 500 instances changing state at once start
		// thousands of short-lived goroutines, and a sample may catch them.
		"goroutines": {Warmup: warmup, Rel: 0.05, Abs: 25, Q: 0.2},
		"fds":        {Warmup: warmup, Rel: 0.10, Abs: 10},
		// By the mean: CPU alternates between churn bursts and quiet, and a median jumps
		// between the two with the share of burst samples in a stretch.
		"CPU": {Warmup: warmup, Rel: 0.50, Abs: 10, Mean: true}, // percentage points of one core
	}
}

// soakNode is one vipd of the soak with fixed paths (config, socket, state), so that it can be
// reloaded with a new configuration and restarted where it left off.
type soakNode struct {
	t       *testing.T
	n       *lab.Node
	bin     string
	args    []string
	d       *daemon
	variant int // configuration variant (soakConf); a reload moves to the next
	starts  int
}

func newSoakNode(t *testing.T, n *lab.Node, extra ...string) *soakNode {
	dir := t.TempDir()
	s := &soakNode{t: t, n: n, bin: lab.BuildVipd(t)}
	s.d = &daemon{t: t, node: n, kind: "vipd", conf: filepath.Join(dir, n.Name+".conf"), socket: filepath.Join(dir, "vipd.sock")}
	s.args = append([]string{"run", "--config", s.d.conf, "--socket", s.d.socket, "--node-name", n.Name,
		"--state-dir", filepath.Join(dir, "state"), "--log-level", "info"}, extra...)
	return s
}

func (s *soakNode) start() {
	s.t.Helper()
	s.starts++
	s.d.proc = s.n.Start(s.bin, s.args...)
}

// cli runs the vipd CLI against this node's socket.
func (s *soakNode) cli(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bin, append(args, "--socket", s.d.socket)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vipd %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// soakConf is node's configuration of n instances in variant v. VI_k (k odd) is node1's (150
// against 100), VI_k (k even) node2's. Odd variants add VI_X1..VI_X4; variant v also sets
// node1's priority of VI_1 to 150 or 140 (a live change, nothing moves) and of VI_2 to 100 or
// 160 (VI_2 moves to node1 and back).
func soakConf(t *testing.T, node string, n, v int) string {
	t.Helper()
	insts := make([]instanceConf, 0, n+soakExtras)
	for i := 0; i < n; i++ {
		k, vrid := i/scalePerIf, i%scalePerIf+1
		mine := (i%2 == 0) == (node == "node1")
		prio := 100
		if mine {
			prio = 150
		}
		if node == "node1" && i == 0 && v%2 == 1 {
			prio = 140
		}
		if node == "node1" && i == 1 && v%4 >= 2 {
			prio = 160
		}
		insts = append(insts, instanceConf{
			Name:      fmt.Sprintf("VI_%d", i+1),
			Interface: fmt.Sprintf("eth%d", k),
			VRID:      vrid,
			Priority:  prio,
			AdvertInt: "1",
			VIPs:      []string{fmt.Sprintf("172.%d.%d.1/32", 16+k, vrid)},
		})
	}
	if v%2 == 1 {
		for j := 1; j <= soakExtras; j++ {
			prio := 110
			if node == "node1" {
				prio = 120
			}
			insts = append(insts, instanceConf{Name: fmt.Sprintf("VI_X%d", j), Interface: "eth0", VRID: 250 + j,
				Priority: prio, AdvertInt: "1", VIPs: []string{fmt.Sprintf("172.16.%d.1/32", 250+j)}})
		}
	}
	return renderConf(t, node, false, insts...)
}

// soakEtcdInstance is an instance defined in etcd only (config/instances/VI_E), on both nodes.
const soakEtcdInstance = `vrrp_instance VI_E {
    interface eth0
    virtual_router_id 255
    priority 100
    advert_int 1
    virtual_ipaddress {
        172.16.255.1/32
    }
}`

// soakRig is everything the churn acts on.
type soakRig struct {
	t          *testing.T
	n          int // instances
	n1, n2     *soakNode
	etcd       *etcdCluster
	prioInsts  []string // node2's instances node1 takes with an etcd priority override
	maintInsts []string // node1's instances put in maintenance in etcd
	toggles    map[string]bool
	killSeq    int
}

// soakAction is one kind of churn; it returns a short description of what it did.
type soakAction struct {
	kind string // reload, etcd, maintenance, failover: the plot's legend
	do   func(r *soakRig) (string, error)
}

var soakActions = []soakAction{
	{"reload", func(r *soakRig) (string, error) {
		r.n1.variant++
		writeFile(r.t, r.n1.d.conf, soakConf(r.t, "node1", r.n, r.n1.variant))
		return fmt.Sprintf("node1 SIGHUP, config variant %d", r.n1.variant), r.n1.d.proc.Signal(syscall.SIGHUP)
	}},
	{"etcd", func(r *soakRig) (string, error) {
		on := r.toggle("prio")
		for _, name := range r.prioInsts {
			key := "/vipd/priority/" + name + "/node1"
			if err := r.etcdSet(key, "200", on); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("etcd priority overrides of %d instances to node1 %s", len(r.prioInsts), onOff(on)), nil
	}},
	{"reload", func(r *soakRig) (string, error) {
		r.n1.variant++
		r.n2.variant++
		writeFile(r.t, r.n1.d.conf, soakConf(r.t, "node1", r.n, r.n1.variant))
		writeFile(r.t, r.n2.d.conf, soakConf(r.t, "node2", r.n, r.n2.variant))
		if err := r.n2.cli("reload"); err != nil {
			return "", err
		}
		return fmt.Sprintf("vipd reload on both, variants %d and %d", r.n1.variant, r.n2.variant), r.n1.cli("reload")
	}},
	{"maintenance", func(r *soakRig) (string, error) {
		on := r.toggle("maint-inst")
		for _, name := range r.maintInsts {
			if err := r.etcdSet("/vipd/maintenance/node1/"+name, "soak", on); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("etcd maintenance of %d node1 instances %s", len(r.maintInsts), onOff(on)), nil
	}},
	{"failover", func(r *soakRig) (string, error) {
		r.killSeq++
		sig, how := []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGQUIT}[r.killSeq%3], ""
		switch sig {
		case syscall.SIGKILL:
			how = "kill -9"
			if err := r.n2.d.proc.Kill(); err != nil {
				return "", err
			}
		default:
			how = sig.String()
			if err := r.n2.d.proc.Signal(sig); err != nil {
				return "", err
			}
		}
		if _, err := r.n2.d.proc.Wait(10 * time.Second); err != nil {
			return "", err
		}
		if sig != syscall.SIGQUIT {
			time.Sleep(5 * time.Second) // node1 takes node2's instances over
		}
		r.n2.start()
		return fmt.Sprintf("node2 %s, restarted", how), nil
	}},
	{"maintenance", func(r *soakRig) (string, error) {
		viaEtcd := r.toggle("maint-node-etcd")
		set := func(on bool) error {
			if viaEtcd {
				return r.etcdSet("/vipd/maintenance/node1", "soak", on)
			}
			return r.n1.cli("maint", onOff(on), "--reason", "soak")
		}
		if err := set(true); err != nil {
			return "", err
		}
		time.Sleep(5 * time.Second)
		how := "vipd maint"
		if viaEtcd {
			how = "etcd"
		}
		return "node1 in maintenance for 5 s (" + how + ")", set(false)
	}},
	{"etcd", func(r *soakRig) (string, error) {
		on := r.toggle("etcd-instance")
		return "etcd config/instances/VI_E " + onOff(on), r.etcdSet("/vipd/config/instances/VI_E", soakEtcdInstance, on)
	}},
	{"maintenance", func(r *soakRig) (string, error) {
		if err := r.etcdSet("/vipd/maintenance/node2", "soak", true); err != nil {
			return "", err
		}
		time.Sleep(5 * time.Second)
		return "node2 in maintenance for 5 s (etcd)", r.etcdSet("/vipd/maintenance/node2", "soak", false)
	}},
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// toggle flips a named switch and returns its new value.
func (r *soakRig) toggle(name string) bool {
	r.toggles[name] = !r.toggles[name]
	return r.toggles[name]
}

// etcdSet puts key=value (on) or deletes key (off).
func (r *soakRig) etcdSet(key, value string, on bool) error {
	args := []string{"del", key}
	if on {
		args = []string{"put", key, value}
	}
	// A busy machine can make one call time out: three tries before it counts as a failure.
	var err error
	for try := 0; try < 3; try++ {
		var out string
		if out, err = r.etcd.ctl(args...); err == nil {
			return nil
		}
		err = fmt.Errorf("etcdctl %s %s: %v: %s", args[0], key, err, lastLines(strings.TrimSpace(out), 2))
	}
	return err
}

// soakSample is one reading of node1.
type soakSample struct {
	t          float64 // seconds since the churn began
	rssMiB     float64
	heapMiB    float64
	goroutines float64
	fds        float64
	cpuPct     float64 // of one core, since the previous sample
}

// soakEtcdDBSize is the (first) etcd member's database size in bytes.
func soakEtcdDBSize(c *etcdCluster) (int64, error) {
	sts, err := c.endpointStatus()
	if err != nil {
		return 0, err
	}
	return sts[0].Status.DBSize, nil
}

// soakRead reads pid's RSS, open fds and CPU time from /proc, and goroutines and the live heap
// (what the last GC marked live: go_gc_heap_live_bytes) from vipd's /metrics (NaN where a read
// fails). The heap in use (go_memstats_heap_inuse_bytes) is not the leak's measure: it holds
// what waits for the next GC too, and swings with the GC's phase; RSS covers it.
func soakRead(n *lab.Node, pid int) (s soakSample, cpu time.Duration) {
	s = soakSample{rssMiB: math.NaN(), heapMiB: math.NaN(), goroutines: math.NaN(), fds: math.NaN(), cpuPct: math.NaN()}
	cpu = -1
	if u, err := readUsage(pid); err == nil {
		s.rssMiB = float64(u.rss) / (1 << 20)
		cpu = u.cpu
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = float64(len(ents))
	}
	if text, err := soakScrape(n); err == nil {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				s.goroutines, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
			if v, ok := strings.CutPrefix(line, "go_gc_heap_live_bytes "); ok {
				if b, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					s.heapMiB = b / (1 << 20)
				}
			}
		}
	}
	return s, cpu
}

// soakVIPMismatch names (up to 10 of) the instances that d reports MASTER without their VIPs
// on the node, or not MASTER with them.
func soakVIPMismatch(d *daemon, n *lab.Node) string {
	st, err := d.status()
	if err != nil {
		return fmt.Sprintf("%s: status: %v", n.Name, err)
	}
	held := map[string]bool{}
	for _, ps := range n.AllAddrs() {
		for _, p := range ps {
			held[p.Addr().String()] = true
		}
	}
	var bad []string
	for _, in := range st.Instances {
		for _, vip := range in.VIPs {
			addr, _, _ := strings.Cut(vip, "/")
			if (in.State == "MASTER") != held[addr] && len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("%s %s %s held=%v", in.Name, in.State, vip, held[addr]))
			}
		}
	}
	return fmt.Sprintf("%s: VIP mismatches %v", n.Name, bad)
}

// soakScrape fetches node1's /metrics from inside its namespace (as mtGet does), allowing 10 s:
// at 1000 instances the page is large and the machine may be busy.
func soakScrape(n *lab.Node) (string, error) {
	return mtGetWithin(n, soakMetrics, 5*time.Second, 10*time.Second)
}

// TestSoak: see the top of the file. It runs only with VIPD_SOAK=1 (make soak). It fails when a
// series of node1 is not flat (soak.Flat, allowances in soakRules), when node1 exits, when more
// than a tenth of the churn actions fail, or when the fleet does not settle back to every
// instance on its preferred node at the end. It writes VIPD_SOAK_OUT (a PNG), and next to it
// the samples (.csv) and the verdict (.txt).
func TestSoak(t *testing.T) {
	if os.Getenv("VIPD_SOAK") != "1" {
		t.Skip("soak test: runs only with VIPD_SOAK=1 (make soak runs it: 30 minutes, 1000 instances); not part of make test")
	}
	env := readSoakEnv(t)
	links := (env.instances + scalePerIf - 1) / scalePerIf
	t.Logf("soak: %d instances on %d links, %v of churn (one action every %v), warm-up %v, samples every %v, output %s",
		env.instances, links, env.duration, env.step, env.warmup, soakSampleEvery, env.out)

	l := lab.New(t)
	n1 := l.AddNode("node1", "10.99.0.1/24")
	n2 := l.AddNode("node2", "10.99.0.2/24")
	en := l.AddNode("etcd", "10.99.0.21/24")
	sw := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", l.SwitchNS()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("switch namespace: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for k := 1; k < links; k++ {
		br := fmt.Sprintf("br%d", k)
		sw("link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
		sw("link", "set", br, "up")
		for host, n := range []*lab.Node{n1, n2} {
			n.AddLink(fmt.Sprintf("eth%d", k), fmt.Sprintf("10.99.%d.%d/24", k, host+1))
			sw("link", "set", switchPort(t, n, fmt.Sprintf("eth%d", k), sw), "master", br)
		}
	}
	etcd := startEtcd(t, l, []*lab.Node{en}, []string{"10.99.0.21"})

	common := []string{"--etcd-endpoints", etcd.Endpoints()}
	r := &soakRig{t: t, n: env.instances, etcd: etcd, toggles: map[string]bool{}}
	r.n1 = newSoakNode(t, n1, append(common, "--gossip-bind", "10.99.0.1:7946", "--metrics-listen", soakMetrics)...)
	r.n2 = newSoakNode(t, n2, append(common, "--gossip-bind", "10.99.0.2:7946", "--join", "10.99.0.1:7946")...)
	for j := 0; j < 10; j++ {
		idx := j * env.instances / 10
		r.maintInsts = append(r.maintInsts, fmt.Sprintf("VI_%d", (idx&^1)+1+2)) // node1's (odd names), not VI_1
		r.prioInsts = append(r.prioInsts, fmt.Sprintf("VI_%d", (idx|1)+1+2))    // node2's (even names), not VI_2
	}
	half1, half2 := (env.instances+1)/2, env.instances/2
	settled := func(what string, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for {
			m1, m2 := countStates(r.n1.d)["MASTER"], countStates(r.n2.d)["MASTER"]
			v1, v2 := countVIPsOn(n1, scaleLinks(links)), countVIPsOn(n2, scaleLinks(links))
			if m1 == half1 && m2 == half2 && v1 == half1 && v2 == half2 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not settled after %v: MASTER %d/%d and VIPs %d/%d on node1/node2, want %d/%d; states: node1 %v, node2 %v; %s; %s",
					what, timeout, m1, m2, v1, v2, half1, half2, countStates(r.n1.d), countStates(r.n2.d),
					soakVIPMismatch(r.n1.d, n1), soakVIPMismatch(r.n2.d, n2))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	writeFile(t, r.n1.d.conf, soakConf(t, "node1", env.instances, 0))
	writeFile(t, r.n2.d.conf, soakConf(t, "node2", env.instances, 0))
	r.n1.start()
	lab.Eventually(t, 90*time.Second, "node1 MASTER of every instance", func() bool {
		return countStates(r.n1.d)["MASTER"] == env.instances
	})
	r.n2.start()
	if err := settled("start", 120*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: both nodes up, %d/%d MASTERs; the churn begins", half1, half2)

	// etcd's database before the churn: vipd's writes (status, claims, the
	// churn's own edits) grow it, as nothing compacts this lab's etcd (as
	// nothing compacts a default one).
	dbBefore, dbErr := soakEtcdDBSize(etcd)
	if dbErr != nil {
		t.Logf("soak: etcd db size: %v", dbErr)
	}

	// The sampler: node1 every 10 s, from the start of the churn.
	pid := r.n1.d.proc.Pid()
	begin := time.Now()
	var (
		mu      sync.Mutex
		samples []soakSample
		marks   []soak.Mark
		// scrapes of /metrics that failed (their heap and goroutines are missing)
		scrapeFails atomic.Int32
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		prevCPU, prevAt := time.Duration(-1), time.Time{}
		tick := time.NewTicker(soakSampleEvery)
		defer tick.Stop()
		for {
			at := time.Now()
			s, cpu := soakRead(n1, pid)
			if math.IsNaN(s.goroutines) {
				scrapeFails.Add(1)
			}
			s.t = at.Sub(begin).Seconds()
			if cpu >= 0 && prevCPU >= 0 {
				s.cpuPct = 100 * float64(cpu-prevCPU) / float64(at.Sub(prevAt))
			}
			prevCPU, prevAt = cpu, at
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	stopSampler := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopSampler()

	markColor := map[string]color.RGBA{
		"reload":      {0x94, 0x67, 0xbd, 0xff},
		"etcd":        {0x17, 0xbe, 0xcf, 0xff},
		"maintenance": {0xff, 0x7f, 0x0e, 0xff},
		"failover":    {0x8c, 0x56, 0x4b, 0xff},
	}
	actions, failed := 0, 0
	for k := 0; time.Since(begin) < env.duration; k++ {
		next := begin.Add(time.Duration(k+1) * env.step)
		a := soakActions[k%len(soakActions)]
		at := time.Since(begin)
		what, err := a.do(r)
		actions++
		mu.Lock()
		marks = append(marks, soak.Mark{T: at.Seconds(), Label: a.kind, Color: markColor[a.kind]})
		mu.Unlock()
		if err != nil {
			failed++
			t.Logf("soak %7.1fs: %s FAILED: %v", at.Seconds(), a.kind, err)
		} else {
			t.Logf("soak %7.1fs: %s", at.Seconds(), what)
		}
		if r.n1.d.proc.Exited() {
			t.Fatalf("node1 exited during the soak: %s", lastLines(r.n1.d.proc.Output(), 30))
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	// Keep sampling until the full duration, then stop.
	if d := time.Until(begin.Add(env.duration)); d > 0 {
		time.Sleep(d)
	}
	stopSampler()
	elapsed := time.Since(begin)
	dbAfter, dbErr2 := soakEtcdDBSize(etcd)
	etcdLine := "etcd db size: not read"
	if dbErr == nil && dbErr2 == nil {
		etcdLine = fmt.Sprintf("etcd db size %.1f MiB -> %.1f MiB (%.2f MiB a minute of churn, uncompacted)",
			float64(dbBefore)/(1<<20), float64(dbAfter)/(1<<20), float64(dbAfter-dbBefore)/(1<<20)/elapsed.Minutes())
	}

	// Back to the base configuration: every instance on its preferred node.
	for _, key := range []string{"/vipd/maintenance/node1", "/vipd/maintenance/node2", "/vipd/config/instances/VI_E"} {
		_ = r.etcdSet(key, "", false)
	}
	for _, name := range r.prioInsts {
		_ = r.etcdSet("/vipd/priority/"+name+"/node1", "", false)
	}
	for _, name := range r.maintInsts {
		_ = r.etcdSet("/vipd/maintenance/node1/"+name, "", false)
	}
	r.n1.variant, r.n2.variant = 0, 0
	writeFile(t, r.n1.d.conf, soakConf(t, "node1", env.instances, 0))
	writeFile(t, r.n2.d.conf, soakConf(t, "node2", env.instances, 0))
	_ = r.n1.d.proc.Signal(syscall.SIGHUP)
	if r.n2.d.proc.Exited() {
		r.n2.start()
	} else {
		_ = r.n2.d.proc.Signal(syscall.SIGHUP)
	}
	settleErr := settled("end", 120*time.Second)
	alarms, alarmErr := etcd.ctl("alarm", "list") // after the settle: an alarm raised then counts too
	if v, err := etcd.ctl("get", "--print-value-only", "/vipd/status/node1"); err == nil {
		etcdLine += fmt.Sprintf("; node1's status value %.0f KB", float64(len(strings.TrimSpace(v)))/1000)
	}
	if settleErr != nil {
		// What etcd holds that could keep an instance away from its node.
		for _, prefix := range []string{"/vipd/maintenance", "/vipd/priority", "/vipd/config/instances"} {
			out, err := etcd.ctl("get", "--prefix", "--keys-only", prefix)
			t.Logf("after the churn, etcd %s: %v\n%s", prefix, err, lastLines(strings.TrimSpace(out), 20))
		}
		out, err := etcd.ctl("get", "--prefix", "--count-only", "/vipd/arbiter/claim/")
		t.Logf("after the churn, arbiter claims: %v %s", err, strings.TrimSpace(out))
		t.Logf("node1's log:\n%s\nnode2's log:\n%s", lastLines(r.n1.d.proc.Output(), 60), lastLines(r.n2.d.proc.Output(), 60))
	}

	// The verdict, the table, the plot, the CSV.
	mu.Lock()
	defer mu.Unlock()
	series := []soak.Series{
		{Name: "RSS", Unit: "MiB"}, {Name: "live heap", Unit: "MiB"}, {Name: "goroutines"}, {Name: "fds"}, {Name: "CPU", Unit: "%"},
	}
	var tw strings.Builder
	w := tabwriter.NewWriter(&tw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "t s\tRSS MiB\theap MiB\tgoroutines\tfds\tCPU %%\t\n")
	for _, s := range samples {
		for i, v := range []float64{s.rssMiB, s.heapMiB, s.goroutines, s.fds, s.cpuPct} {
			series[i].T = append(series[i].T, s.t)
			series[i].V = append(series[i].V, v)
		}
		fmt.Fprintf(w, "%.0f\t%.1f\t%.1f\t%.0f\t%.0f\t%.1f\t\n", s.t, s.rssMiB, s.heapMiB, s.goroutines, s.fds, s.cpuPct)
	}
	_ = w.Flush()
	rules := soakRules(env.warmup.Seconds())
	var verdicts []soak.Verdict
	chart := &soak.Chart{
		Title: fmt.Sprintf("vipd soak: node1 of 2, %d instances, %v of churn (%d actions), samples every %v",
			env.instances, elapsed.Round(time.Second), actions, soakSampleEvery),
		Warmup: env.warmup.Seconds(),
		Marks:  marks,
	}
	for _, kind := range []string{"reload", "etcd", "maintenance", "failover"} {
		chart.Legend = append(chart.Legend, soak.Mark{Label: kind, Color: markColor[kind]})
	}
	for _, s := range series {
		v := soak.Flat(s, rules[s.Name])
		verdicts = append(verdicts, v)
		chart.Panels = append(chart.Panels, soak.Panel{Series: s, Verdict: &v})
	}
	report := soak.Report(verdicts)
	base := strings.TrimSuffix(env.out, filepath.Ext(env.out))
	if err := chart.WritePNG(env.out); err != nil {
		t.Errorf("writing the plot: %v", err)
	}
	if f, err := os.Create(base + ".csv"); err != nil {
		t.Errorf("writing the samples: %v", err)
	} else {
		if err := soak.WriteCSV(f, series); err != nil {
			t.Errorf("writing the samples: %v", err)
		}
		f.Close()
	}
	summary := fmt.Sprintf("node1 (pid %d, never restarted), %d samples (%d scrapes of /metrics failed):\n%s\nchurn: %d actions, %d failed; node2 started %d times; %s\n"+
		"flatness (after a %v warm-up: median of the last third against the first third (goroutines: 0.2-quantile), and the Theil-Sen trend over the window, within max(abs, rel x baseline)):\n%s",
		pid, len(samples), scrapeFails.Load(), tw.String(), actions, failed, r.n2.starts, etcdLine, env.warmup, report)
	if err := os.WriteFile(base+".txt", []byte(summary), 0o644); err != nil {
		t.Errorf("writing the report: %v", err)
	}
	t.Logf("soak:\n%s\nplot %s, samples %s.csv, report %s.txt", summary, env.out, base, base)

	if !soak.AllOK(verdicts) {
		t.Errorf("node1 is not flat over the soak:\n%s", report)
	}
	if alarmErr != nil || strings.TrimSpace(alarms) != "" {
		t.Errorf("etcd raised an alarm during the soak (NOSPACE: vipd wrote too much): %q, %v", strings.TrimSpace(alarms), alarmErr)
	}
	if failed*10 > actions {
		t.Errorf("%d of %d churn actions failed", failed, actions)
	}
	if settleErr != nil {
		t.Error(settleErr)
	}
	// node1 still stops as it should after the soak (with VIPD_MEMPROFILE set, vipd writes its
	// heap profile now).
	if err := r.n1.d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Error(err)
	} else if code, err := r.n1.d.proc.Wait(10 * time.Second); err != nil || code != 0 {
		t.Errorf("node1 after SIGTERM: exit %d, %v: %s", code, err, lastLines(r.n1.d.proc.Output(), 10))
	}
}
