package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/readme"
)

// The README's commands, run as written. TestReadmeCommandsRunInALab runs
// every line of the README's ```sh blocks in a lab whose nodes have the
// README's addresses (lb1..lb3 at 10.0.0.11..13, etcd at 10.0.0.21..23):
// each line goes to `sh -c` as it is, with two rewrites a shared host needs
// (/etc/ becomes the node's own directory; the node's socket, name and state
// directory come from VIPD_SOCKET, VIPD_NODE_NAME and VIPD_STATE_DIR), and
// each is checked for what it is said to do. A README line this test does
// not know fails it, so a new command in the README needs a run here.

// readmeNode is one of the README's hosts.
type readmeNode struct {
	n    *lab.Node
	name string // lb1
	addr string // 10.0.0.11
	dir  string // its /etc, socket, state and working directory
	run  *lab.Proc
}

type readmeLab struct {
	t      *testing.T
	l      *lab.Lab
	bin    string // directory with vipd on PATH
	nodes  []*readmeNode
	etcd   *etcdCluster
	lines  []readme.Line
	used   map[int]bool
	ctlEnv []string
	spans  map[string]bool // inline commands this test ran
}

// span notes that the README's inline command text is run here.
func (r *readmeLab) span(text string) string {
	r.spans[text] = true
	return text
}

// take returns the first README line not yet run whose command (before its
// comment, spaces collapsed) is cmd, and marks it run; none fails the test.
func (r *readmeLab) take(cmd string) string {
	r.t.Helper()
	for i, l := range r.lines {
		if !r.used[i] && readmeCommand(l.Text) == cmd {
			r.used[i] = true
			r.spans[cmd] = true
			return l.Text
		}
	}
	r.t.Fatalf("README: no ```sh line (not run yet) is %q any more: update this test with the README", cmd)
	return ""
}

// elsewhere is take for a line another test runs: marked, not run here.
func (r *readmeLab) elsewhere(cmd string) {
	r.t.Helper()
	r.take(cmd)
	delete(r.spans, cmd)
}

// readmeCommand is a README line's command: up to a " #" comment, with
// runs of spaces collapsed.
func readmeCommand(line string) string {
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	return strings.Join(strings.Fields(line), " ")
}

// env is the environment a README line runs in on node n.
func (r *readmeLab) env(n *readmeNode) []string {
	return append([]string{
		"PATH=" + r.bin + ":" + os.Getenv("PATH"),
		"VIPD_SOCKET=" + filepath.Join(n.dir, "vipd.sock"),
		"VIPD_NODE_NAME=" + n.name,
		"VIPD_STATE_DIR=" + filepath.Join(n.dir, "state"),
	}, r.ctlEnv...)
}

// local rewrites a README line for node n: its /etc is the node's own.
func (n *readmeNode) local(line string) string {
	return strings.ReplaceAll(line, " /etc/", " "+n.dir+"/etc/")
}

// sh runs line on node n with `sh -c` in the node's directory; a failure
// fails the test with the output.
func (r *readmeLab) sh(n *readmeNode, line string) string {
	r.t.Helper()
	out, err := r.shErr(n, line)
	if err != nil {
		r.t.Fatalf("%s: %s: %v\n%s", n.name, line, err, out)
	}
	return out
}

func (r *readmeLab) shErr(n *readmeNode, line string) (string, error) {
	args := append([]string{"env"}, r.env(n)...)
	args = append(args, "sh", "-c", "cd "+n.dir+" && "+n.local(line))
	return n.n.Exec(args...)
}

// start runs a README `vipd run` line on node n in the background and waits
// for its control socket.
func (r *readmeLab) start(n *readmeNode, line string, env ...string) {
	r.t.Helper()
	args := append(r.env(n), env...)
	args = append(args, "sh", "-c", "cd "+n.dir+" && exec "+n.local(line))
	n.run = n.n.Start("env", args...)
	lab.Eventually(r.t, 15*time.Second, n.name+" answering on its socket", func() bool {
		_, err := r.status(n)
		return err == nil
	})
}

// stop ends node n's vipd with SIGTERM, as systemctl stop does.
func (r *readmeLab) stop(n *readmeNode) {
	r.t.Helper()
	if n.run == nil {
		return
	}
	_ = n.run.Signal(syscall.SIGTERM)
	if _, err := n.run.Wait(10 * time.Second); err != nil {
		r.t.Fatalf("%s: vipd did not stop on SIGTERM: %v", n.name, err)
	}
	n.run = nil
}

func (r *readmeLab) stopAll() {
	r.t.Helper()
	for _, n := range r.nodes {
		r.stop(n)
	}
}

func (r *readmeLab) status(n *readmeNode) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return api.NewClient(filepath.Join(n.dir, "vipd.sock")).Status(ctx)
}

// instance returns node n's status of instance name (zero when absent).
func (r *readmeLab) instance(n *readmeNode, name string) api.InstanceStatus {
	st, err := r.status(n)
	if err != nil {
		return api.InstanceStatus{}
	}
	for _, in := range st.Instances {
		if in.Name == name {
			return in
		}
	}
	return api.InstanceStatus{}
}

func (r *readmeLab) eventually(what string, cond func() bool) {
	r.t.Helper()
	lab.Eventually(r.t, 20*time.Second, what, cond)
}

// The README's keepalived.conf: VI_1 on every node, lb1 first.
const readmeConf = `global_defs {
    router_id %s
    vrrp_version 3
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int 0.2
    virtual_ipaddress {
        10.0.0.100/24
    }
}
`

const readmeVI2 = `vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    version 3
    priority 100
    advert_int 0.2
    virtual_ipaddress {
        10.0.0.101/24
    }
}`

const readmeVS = `virtual_server 10.0.0.100 80 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.0.0.31 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}`

func TestReadmeCommandsRunInALab(t *testing.T) {
	bin := lab.BuildVipd(t)
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Fatal("etcdctl is not installed: run scripts/deps.sh")
	}
	md, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	r := &readmeLab{t: t, l: lab.New(t), lines: readme.ShellLines(string(md)), used: map[int]bool{}, spans: map[string]bool{}}
	r.bin = t.TempDir()
	if err := os.Symlink(bin, filepath.Join(r.bin, "vipd")); err != nil {
		t.Fatal(err)
	}
	for i, prio := range []int{150, 100, 50} {
		n := &readmeNode{name: fmt.Sprintf("lb%d", i+1), addr: fmt.Sprintf("10.0.0.%d", 11+i), dir: t.TempDir()}
		n.n = r.l.AddNode(n.name, n.addr+"/24")
		conf := fmt.Sprintf(readmeConf, n.name, prio)
		if err := os.MkdirAll(filepath.Join(n.dir, "etc/keepalived"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"etc/keepalived/keepalived.conf", "keepalived.conf"} {
			writeFile(t, filepath.Join(n.dir, p), conf)
		}
		writeFile(t, filepath.Join(n.dir, "vi2.conf"), readmeVI2)
		writeFile(t, filepath.Join(n.dir, "vs.conf"), readmeVS)
		r.nodes = append(r.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range r.nodes {
			if n.run != nil {
				_ = n.run.Signal(syscall.SIGTERM)
				_, _ = n.run.Wait(5 * time.Second)
			}
		}
	})
	lb1, lb2, lb3 := r.nodes[0], r.nodes[1], r.nodes[2]

	r.part("quick start", func() { r.quickStart(lb1, lb2) })
	r.part("maintenance and priority", func() { r.maintenance(lb1, lb2) })
	r.stopAll()
	r.part("gossip", func() { r.gossip(lb1, lb2, lb3) })
	r.stopAll()

	var eNodes []*lab.Node
	var eAddrs []string
	for i := range 3 {
		a := fmt.Sprintf("10.0.0.%d", 21+i)
		eNodes = append(eNodes, r.l.AddNode(fmt.Sprintf("e%d", i+1), a+"/24"))
		eAddrs = append(eAddrs, a)
	}
	r.etcd = startEtcd(t, r.l, eNodes, eAddrs)
	// etcdctl as the README writes it, without --endpoints: the lab's
	// cluster through etcdctl's own environment.
	r.ctlEnv = []string{"ETCDCTL_API=3", "ETCDCTL_ENDPOINTS=" + r.etcd.Endpoints()}
	r.part("etcd", func() { r.etcdEdits(lb1, lb2, lb3) })
	r.stopAll()
	r.part("arbitration", func() { r.arbitration(lb1, lb2) })
	r.stopAll()
	r.part("packaging", func() { r.packaging() })

	// make demo and make test are the README's first two lines, run
	// elsewhere: the demo by TestDemoRunsEveryStepAndLeavesNothing
	// (integration/demo_test.go: scripts/demo.sh as `make demo
	// DEMO_FAST=1` runs it), make test by CI (.ci/run).
	r.elsewhere("make demo")
	r.elsewhere("make test")
	for i, l := range r.lines {
		if !r.used[i] {
			t.Errorf("README line %d is not run by this test: %s", l.N, l.Text)
		}
	}
	r.checkSpans(string(md))
}

// readmeSpans says, for each command the README shows inline that this test
// does not run itself, which test runs it ("TestName file", checked to exist)
// or why it is a mention rather than a command to run ("mention: ..."). The
// sh lines this test runs count as run for the spans that repeat them.
var readmeSpans = map[string]string{
	"make demo":             "TestDemoRunsEveryStepAndLeavesNothing demo_test.go",
	"make demo DEMO_FAST=1": "TestDemoRunsEveryStepAndLeavesNothing demo_test.go",
	"make test":             "mention: what CI runs (.ci/run)",
	"make unit":             "mention: make test's go test without root; CI runs it as root",
	"make test-ipvs":        "TestIPVSInVM ipvsvm/vm_test.go",
	"make fuzz":             "mention: run by .ci/run",
	"make bench":            "mention: run by .ci/run with small settings",
	"make bench-lab":        "mention: run by .ci/run with small settings (make bench runs it)",
	"make chaos":            "TestFleetChaos fleet_chaos_test.go",
	"make soak":             "mention: not run by any test or CI (40 minutes); TestSoak in soak_test.go is what it runs",
	"etcdctl put":           "mention: the command's name",
	"vipd check":            "mention: the command's name",
	"vipd convert":          "mention: the command's name",
	"vipd release":          "mention: the command's name",
	"vipd join":             "mention: the command's name",
	"vipd maint":            "mention: the command's name",
	"vipd maint --node":     "mention: the flag's name (vipd maint on --node lb3 runs in this test)",
	"vipd maint --node N":   "mention: the flag's name (vipd maint on --node lb3 runs in this test)",
	"vipd maint on|off [--node N] [--instance I]": "mention: the synopsis (each form runs in this test)",
	"vipd priority":            "mention: the command's name",
	"vipd run":                 "mention: the command's name",
	"vipd run --config FILE":   "mention: the synopsis (vipd run --config ... runs in this test)",
	"vipd":                     "mention: the binary's name",
	"vipd upgrade":             "TestUpgradeInPlaceKeepsTheVIPAndThePID restart_test.go",
	"vipd run ... --preflight": "TestUpgradeInPlaceKeepsTheVIPAndThePID restart_test.go",
	"vipd run --config /etc/vipd/keepalived.conf": "TestStaticVipdInImage ../deploy/image/main_test.go",
	"vipd completion bash|zsh|fish|powershell":    "TestCompletionScripts ../cmd/vipd/gen_test.go",
	"vipd __complete":                     "TestCompletionOffersCommandsAndFlags ../cmd/vipd/gen_test.go",
	"vipd gen-man DIR":                    "TestGenManWritesAPagePerCommand ../cmd/vipd/gen_test.go",
	"go run ./deploy/image -check-static": "mention: what make static runs (run here)",
	"go tool pprof":                       "mention: Go's profiler, not vipd's",
	"systemctl restart":                   "TestRestartKeepsVIPsStopHandsOver ../deploy/deploy_test.go",
	"systemctl restart vipd":              "TestRestartKeepsVIPsStopHandsOver ../deploy/deploy_test.go",
	"systemctl stop vipd":                 "TestRestartKeepsVIPsStopHandsOver ../deploy/deploy_test.go",
	"systemctl reload":                    "TestRunTellsSystemdReadyStatusReloadAndStop ../agent/watchdog_test.go",
	"keepalived -t":                       "mention: keepalived's flag vipd check stands for",
	"keepalived -i":                       "mention: keepalived's flag --config-id stands for",
	"ip addr del":                         "TestVIPDeletedByHandComesBack change_test.go",
	"ip route del":                        "TestAVirtualRouteRemovedBehindOurBackIsPutBack ../agent/door_test.go",
	"ipvsadm -e":                          "TestVipdLVSInVM ipvsvm/vm_test.go",
	"ipvsadm -D":                          "mention: an operator's command for a leftover service",
	"ipvsadm -Sn":                         "TestIPVSInVM ipvsvm/vm_test.go",
	"promtool check metrics":              "TestMetricsDuringFailover metrics_test.go",
	"promtool check rules":                "TestAlertRulesPromtoolCheck ../deploy/observability_test.go",
	"promtool test rules":                 "TestAlertRulesPromtoolUnitTests ../deploy/observability_test.go",
}

// checkSpans holds every inline command of the README to a run: this test's
// own, or a named test's, or a stated reason why it is a mention.
func (r *readmeLab) checkSpans(md string) {
	t := r.t
	for _, sp := range readme.Spans(md, "vipd", "etcdctl", "make", "kill", "systemctl", "ipvsadm", "ip", "head", "keepalived", "go", "promtool") {
		if r.spans[sp.Text] {
			continue
		}
		how, ok := readmeSpans[sp.Text]
		switch {
		case !ok:
			t.Errorf("README line %d shows `%s`: run it in this test or name the test that does in readmeSpans", sp.N, sp.Text)
		case strings.HasPrefix(how, "mention: "):
		default:
			name, file, _ := strings.Cut(how, " ")
			b, err := os.ReadFile(file)
			if err != nil || !strings.Contains(string(b), "func "+name+"(") {
				t.Errorf("README line %d: `%s` is said to be run by %s in %s, which is not there (%v)", sp.N, sp.Text, name, file, err)
			}
		}
	}
}

// part runs fn as a subtest: r's helpers fail the subtest, and a fatal
// failure ends the whole test (later parts build on earlier ones).
func (r *readmeLab) part(name string, fn func()) {
	parent := r.t
	ok := parent.Run(name, func(t *testing.T) {
		r.t = t
		fn()
	})
	r.t = parent
	if !ok {
		parent.FailNow()
	}
}

func (r *readmeLab) quickStart(lb1, lb2 *readmeNode) {
	t := r.t
	check := r.take("vipd check --config /etc/keepalived/keepalived.conf")
	if out := r.sh(lb1, check); !strings.Contains(out, "OK (1 instance") {
		t.Errorf("vipd check printed %q", out)
	}
	// An invalid file: exit 1 with FILE:LINE.
	bad := filepath.Join(lb2.dir, "etc/keepalived/keepalived.conf")
	writeFile(t, bad, "vrrp_instance VI_1 {\n    virtual_router_id 300\n}\n")
	out, err := r.shErr(lb2, check)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, bad+":2: ") {
		t.Errorf("vipd check of a bad file: %v, %q: want exit 1 and %s:2", err, out, bad)
	}
	writeFile(t, bad, fmt.Sprintf(readmeConf, "lb2", 100))

	run := r.take("vipd run --config /etc/keepalived/keepalived.conf")
	r.start(lb1, run)
	r.start(lb2, run)
	r.eventually("lb1 MASTER of VI_1 with the VIP", func() bool {
		return r.instance(lb1, "VI_1").State == "MASTER" && hasVIP(lb1.n, "10.0.0.100")
	})
	if out := r.sh(lb1, r.take("vipd status")); !strings.Contains(out, "VI_1") || !strings.Contains(out, "MASTER") {
		t.Errorf("vipd status: %q", out)
	}
	// vipd reload: a priority changed in the file is in force, nothing moved.
	writeFile(t, filepath.Join(lb2.dir, "etc/keepalived/keepalived.conf"), fmt.Sprintf(readmeConf, "lb2", 110))
	r.sh(lb2, r.take("vipd reload"))
	if in := r.instance(lb2, "VI_1"); in.Priority != 110 || in.State != "BACKUP" {
		t.Errorf("after vipd reload on lb2: %+v, want priority 110, BACKUP", in)
	}
	if out := r.sh(lb1, r.take("vipd lvs")); !strings.Contains(strings.ToLower(out), "ipvs") {
		t.Errorf("vipd lvs: %q", out)
	}

	// The inline commands of the same sections.
	var st api.Status
	if out := r.sh(lb1, r.span("vipd status -o json")); json.Unmarshal([]byte(out), &st) != nil || st.Node != "lb1" || len(st.Instances) != 1 {
		t.Errorf("vipd status -o json: %q", out)
	}
	out, _ = r.shErr(lb1, "timeout -s INT 4.5 "+r.span("vipd status --watch"))
	if strings.Count(out, "VI_1") < 2 {
		t.Errorf("vipd status --watch for 4.5 s (default interval 2s) drew the table %d times, want 2 or more:\n%s", strings.Count(out, "VI_1"), out)
	}
	out, _ = r.shErr(lb1, "timeout -s INT 4.5 "+r.span("vipd status -o json --watch"))
	docs := strings.Split(strings.TrimSpace(out), "\n")
	for _, d := range docs {
		if json.Unmarshal([]byte(d), &st) != nil {
			t.Errorf("vipd status -o json --watch: a line is not one JSON document: %q", d)
		}
	}
	if len(docs) < 2 {
		t.Errorf("vipd status -o json --watch for 4.5 s: %d documents, want 2 or more", len(docs))
	}
	if out := r.sh(lb1, r.span("vipd version")); !strings.Contains(out, "go1.") {
		t.Errorf("vipd version: %q", out)
	}
	r.sh(lb1, r.span("vipd convert keepalived.conf > vipd.yaml"))
	if out := r.sh(lb1, "vipd check --config vipd.yaml"); !strings.Contains(out, "OK (1 instance") {
		t.Errorf("vipd check of the converted vipd.yaml: %q", out)
	}
	// Metrics, with the configuration from the environment (VIPD_CONFIG).
	lb3 := r.nodes[2]
	r.start(lb3, r.span("vipd run --metrics-listen 127.0.0.1:9650"), "VIPD_CONFIG="+filepath.Join(lb3.dir, "keepalived.conf"))
	r.eventually("lb3's metrics with keepalived-exporter's names", func() bool {
		out, err := r.shErr(lb3, "wget -qO- http://127.0.0.1:9650/metrics")
		return err == nil && strings.Contains(out, `keepalived_vrrp_state{`) && strings.Contains(out, `vipd_vrrp_state{`)
	})
	r.stop(lb3)
}

func (r *readmeLab) maintenance(lb1, lb2 *readmeNode) {
	t := r.t
	r.sh(lb1, r.take(`vipd maint on --reason "kernel upgrade"`))
	r.eventually("lb1 in maintenance, lb2 MASTER", func() bool {
		return r.instance(lb1, "VI_1").State == "FAULT" && r.instance(lb2, "VI_1").State == "MASTER" && hasVIP(lb2.n, "10.0.0.100")
	})
	r.sh(lb1, r.take("vipd maint off"))
	r.eventually("lb1 MASTER again", func() bool { return r.instance(lb1, "VI_1").State == "MASTER" })
	r.sh(lb1, r.take(`vipd maint on --instance VI_1 --reason "NIC"`))
	r.eventually("lb1's VI_1 in maintenance", func() bool { return r.instance(lb1, "VI_1").State == "FAULT" })
	r.sh(lb1, "vipd maint off --instance VI_1")
	r.eventually("lb1 MASTER again", func() bool { return r.instance(lb1, "VI_1").State == "MASTER" })

	r.sh(lb2, r.take("vipd priority VI_1 250"))
	r.eventually("lb2 MASTER at priority 250", func() bool {
		in := r.instance(lb2, "VI_1")
		return in.State == "MASTER" && in.EffectivePriority == 250
	})
	r.sh(lb2, r.take("vipd priority VI_1 clear"))
	r.eventually("lb1 MASTER again after the clear", func() bool {
		return r.instance(lb2, "VI_1").EffectivePriority == 110 && r.instance(lb1, "VI_1").State == "MASTER"
	})
	if t.Failed() {
		t.Logf("lb1 log:\n%s", lb1.run.Output())
	}
}

// gossipLine is the README's gossip run line for node n: lb1's as written,
// lb2's with the two addresses swapped, lb3's without --join (the README's
// `vipd join` brings it in).
func gossipLine(line string, n *readmeNode) string {
	switch n.name {
	case "lb2":
		line = strings.NewReplacer("10.0.0.11:", "10.0.0.12:", "10.0.0.12:", "10.0.0.11:").Replace(line)
	case "lb3":
		line = strings.Replace(line, "10.0.0.11:", "10.0.0.13:", 1)
		line = regexp.MustCompile(`--join \S+ `).ReplaceAllString(line, "")
	}
	return line
}

func (r *readmeLab) gossip(lb1, lb2, lb3 *readmeNode) {
	t := r.t
	run := r.take("vipd run --config /etc/keepalived/keepalived.conf --gossip-bind 10.0.0.11:7946 --join 10.0.0.12:7946 --gossip-key-file /etc/vipd/gossip.key")
	for _, n := range []*readmeNode{lb1, lb2, lb3} {
		// The key as the README makes it, and its mode.
		r.sh(n, "mkdir -p /etc/vipd && "+r.span("head -c 32 /dev/urandom | base64 > /etc/vipd/gossip.key")+" && chmod 600 /etc/vipd/gossip.key")
	}
	// One key for the fleet.
	key, err := os.ReadFile(filepath.Join(lb1.dir, "etc/vipd/gossip.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*readmeNode{lb2, lb3} {
		if err := os.WriteFile(filepath.Join(n.dir, "etc/vipd/gossip.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*readmeNode{lb1, lb2, lb3} {
		r.start(n, gossipLine(run, n))
	}
	fleetNodes := func(n *readmeNode) int {
		out, err := r.shErr(n, "vipd status --fleet -o json")
		if err != nil {
			return -1
		}
		var f api.Fleet
		if json.Unmarshal([]byte(out), &f) != nil {
			return -1
		}
		alive := 0
		for _, fn := range f.Nodes {
			if fn.Alive {
				alive++
			}
		}
		return alive
	}
	r.eventually("lb1 and lb2 in one fleet", func() bool { return fleetNodes(lb1) == 2 && fleetNodes(lb2) == 2 })
	r.eventually("lb3 alone: it joined nobody", func() bool { return fleetNodes(lb3) == 1 })
	r.sh(lb1, r.take("vipd join 10.0.0.13:7946"))
	r.eventually("three nodes in every node's fleet view", func() bool {
		return fleetNodes(lb1) == 3 && fleetNodes(lb2) == 3 && fleetNodes(lb3) == 3
	})
	out := r.sh(lb2, r.take("vipd status --fleet"))
	for _, name := range []string{"lb1", "lb2", "lb3", "VI_1"} {
		if !strings.Contains(out, name) {
			t.Errorf("vipd status --fleet on lb2 does not name %s:\n%s", name, out)
		}
	}
	// Key rotation as the README tells it, from lb2.
	oldKey := strings.TrimSpace(string(key))
	newKey := strings.TrimSpace(r.sh(lb2, "head -c 32 /dev/urandom | base64"))
	for _, c := range []string{"vipd keys install NEWKEY", "vipd keys use NEWKEY", "vipd keys remove OLDKEY"} {
		out := r.sh(lb2, strings.NewReplacer("NEWKEY", newKey, "OLDKEY", oldKey).Replace(r.span(c)))
		if len(regexp.MustCompile(`(?m)^lb[123]\s+ok$`).FindAllString(out, -1)) != 3 {
			t.Errorf("%s: want an ok from each of the 3 nodes:\n%s", c, out)
		}
	}
	if out := r.sh(lb3, r.span("vipd keys list")); strings.Count(out, "sha256:") != 3 {
		t.Errorf("vipd keys list after the rotation: want one key on each of 3 nodes:\n%s", out)
	}
	r.eventually("the fleet whole on the new key", func() bool { return fleetNodes(lb1) == 3 && fleetNodes(lb3) == 3 })

	r.sh(lb1, r.take(`vipd maint on --node lb3 --reason "kernel"`))
	r.eventually("lb3 in maintenance (asked from lb1)", func() bool { return r.instance(lb3, "VI_1").State == "FAULT" })
	r.sh(lb1, "vipd maint off --node lb3")
	r.eventually("lb3 out of maintenance", func() bool { return r.instance(lb3, "VI_1").State == "BACKUP" })
}

func (r *readmeLab) etcdEdits(lb1, lb2, lb3 *readmeNode) {
	t := r.t
	run := r.take("vipd run --config /etc/keepalived/keepalived.conf --etcd-endpoints http://10.0.0.21:2379,http://10.0.0.22:2379,http://10.0.0.23:2379")
	for _, n := range []*readmeNode{lb1, lb2, lb3} {
		r.start(n, run)
	}
	r.eventually("lb1 MASTER through etcd's claim", func() bool { return r.instance(lb1, "VI_1").State == "MASTER" })

	r.sh(lb1, r.take("etcdctl put /vipd/priority/VI_1/lb3 200"))
	r.eventually("lb3 MASTER at 200", func() bool {
		in := r.instance(lb3, "VI_1")
		return in.EffectivePriority == 200 && in.State == "MASTER" && hasVIP(lb3.n, "10.0.0.100")
	})
	r.sh(lb1, r.take(`etcdctl put /vipd/maintenance/lb3 "disk swap"`))
	r.eventually("lb3 in maintenance, lb1 MASTER", func() bool {
		return r.instance(lb3, "VI_1").State == "FAULT" && r.instance(lb1, "VI_1").State == "MASTER"
	})
	r.sh(lb1, "etcdctl del /vipd/maintenance/lb3")
	r.sh(lb1, r.take(`etcdctl put /vipd/maintenance/lb3/VI_1 "app"`))
	r.eventually("lb3's VI_1 in maintenance", func() bool {
		in := r.instance(lb3, "VI_1")
		return in.State == "FAULT" && strings.Contains(fmt.Sprint(in.Faults), "maintenance")
	})
	r.sh(lb1, r.take(`etcdctl put /vipd/config/instances/VI_2 "$(cat vi2.conf)"`))
	r.eventually("every node runs VI_2 from etcd", func() bool {
		for _, n := range []*readmeNode{lb1, lb2, lb3} {
			if r.instance(n, "VI_2").Name == "" {
				return false
			}
		}
		return true
	})
	r.sh(lb1, r.take(`etcdctl put "/vipd/config/virtual_servers/10.0.0.100 80" "$(cat vs.conf)"`))
	r.eventually("the virtual server in every node's vipd lvs", func() bool {
		for _, n := range []*readmeNode{lb1, lb2, lb3} {
			out, err := r.shErr(n, "vipd lvs")
			if err != nil || !strings.Contains(out, "10.0.0.100:80") || !strings.Contains(out, "10.0.0.31:80") {
				return false
			}
		}
		return true
	})
	out := r.sh(lb2, r.take("etcdctl get --prefix /vipd/status/"))
	for _, name := range []string{"lb1", "lb2", "lb3"} {
		if !strings.Contains(out, "/vipd/status/"+name) {
			t.Errorf("etcdctl get --prefix /vipd/status/ has no %s:\n%s", name, out)
		}
	}
}

func (r *readmeLab) arbitration(lb1, lb2 *readmeNode) {
	t := r.t
	run := r.take("vipd run --config keepalived.conf --etcd-endpoints http://10.0.0.21:2379 --gossip-bind 10.0.0.11:7946 --join 10.0.0.12:7946")
	// The README's line is lb1's; lb2 binds its own address and joins lb1.
	r.start(lb1, run)
	r.start(lb2, gossipLine(run, lb2))
	r.eventually("lb1 MASTER holding the claim", func() bool { return r.instance(lb1, "VI_1").State == "MASTER" })
	r.eventually("lb1's claim in etcd", func() bool {
		out, err := r.shErr(lb2, "etcdctl get --prefix /vipd/arbiter/")
		return err == nil && strings.Contains(out, "/vipd/arbiter/claim/VI_1") && strings.Contains(out, `"node":"lb1"`)
	})
	if out := r.sh(lb2, r.take("etcdctl get --prefix /vipd/arbiter/")); !strings.Contains(out, "claim/VI_1") {
		t.Errorf("etcdctl get --prefix /vipd/arbiter/: %q", out)
	}
	if out := r.sh(lb1, r.take("vipd lvs")); !strings.Contains(out, "10.0.0.100:80") {
		t.Errorf("vipd lvs: %q", out)
	}
	out := r.sh(lb1, r.take("vipd lvs -o json"))
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Errorf("vipd lvs -o json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"available", "virtual_servers"} {
		if _, ok := v[k]; !ok {
			t.Errorf("vipd lvs -o json has no %q: %s", k, out)
		}
	}

	// A crash leaves the VIP; vipd release removes what the dead run left.
	r.span("kill -9")
	if err := lb1.run.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = lb1.run.Wait(5 * time.Second)
	lb1.run = nil
	if !hasVIP(lb1.n, "10.0.0.100") {
		t.Fatal("the VIP went with the kill -9: nothing left for vipd release")
	}
	r.sh(lb1, strings.Replace(r.span("vipd release --state-dir DIR"), "DIR", filepath.Join(lb1.dir, "state"), 1))
	if hasVIP(lb1.n, "10.0.0.100") {
		t.Error("vipd release --state-dir left the dead run's VIP")
	}
}

// packaging runs the README's make lines into a directory of the test's
// (OUTDIR), from the repository's root.
func (r *readmeLab) packaging() {
	t := r.t
	out := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cmd  string
		want []string
	}{
		{"make static", []string{"vipd-static"}},
		{"make image", []string{"vipd-rootfs.tar", "vipd-oci/index.json", "vipd-oci/oci-layout"}},
		{"make completions", []string{"completions/vipd.bash", "completions/vipd.zsh", "completions/vipd.fish"}},
		{"make man", []string{"man/vipd.1", "man/vipd-run.1"}},
	} {
		line := r.take(c.cmd)
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = root
		// OUTDIR as if on make's command line (the Makefile ignores the environment's).
		cmd.Env = append(os.Environ(), "MAKEFLAGS=OUTDIR="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", line, err, b)
			continue
		}
		for _, f := range c.want {
			if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s: no %s in OUTDIR (%v)", line, f, err)
			}
		}
	}
}
