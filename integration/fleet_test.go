package integration

// The fleet layer (gossip, issue 16) in the lab, with real vipd processes and keepalived 2.2.7:
// every node's `vipd status --fleet` shows the same fleet with the keepalived master as a classic
// peer; a node started alone joins later with `vipd join`; a node killed with SIGKILL is seen
// dead by every other node; a split brain (VRRP filtered, gossip flowing) is warned of on both
// nodes within 3 s and cleared when it ends; `vipd maint --node` drains another node gracefully
// and the maintenance survives its restart; a gossip partition heals by itself (re-join); a node
// with another gossip key cannot join an encrypted fleet.
//
// Each node runs vipd with --gossip-bind on its lab address, port 7946; every node but node1
// joins node1 at start. Views are polled through the control socket (api.Client.Fleet) and the
// final assertions read the CLI (`vipd status --fleet -o json|table`), as an operator would.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

const (
	flPort    = "7946"
	flSegment = "10.99.0.0/24"
)

// flIP is the lab address of node i (1-based).
func flIP(i int) string { return fmt.Sprintf("10.99.0.%d", i) }

// flLab builds a lab of count nodes, node<i> at 10.99.0.<i>/24.
func flLab(t *testing.T, count int) []*lab.Node {
	t.Helper()
	l := lab.New(t)
	var ns []*lab.Node
	for i := 1; i <= count; i++ {
		ns = append(ns, l.AddNode(fmt.Sprintf("node%d", i), flIP(i)+"/24"))
	}
	return ns
}

// flNode is one vipd of a fleet test: the same configuration, socket, state directory and
// arguments at every start, so a restart keeps its state (maintenance included).
type flNode struct {
	t        *testing.T
	n        *lab.Node
	ip       string
	conf     string
	socket   string
	stateDir string
	extra    []string
	runs     []*daemon
}

func newFlNode(t *testing.T, n *lab.Node, ip, confText string, extra ...string) *flNode {
	t.Helper()
	conf := writeConf(t, n.Name, confText)
	dir := filepath.Dir(conf)
	return &flNode{t: t, n: n, ip: ip, conf: conf, socket: filepath.Join(dir, "vipd.sock"),
		stateDir: filepath.Join(dir, "state"), extra: extra}
}

// start runs a new `vipd run` with the node's fixed arguments.
func (f *flNode) start() *daemon {
	f.t.Helper()
	args := append([]string{"run", "--config", f.conf, "--socket", f.socket, "--node-name", f.n.Name,
		"--log-level", "debug", "--state-dir", f.stateDir}, f.extra...)
	d := &daemon{t: f.t, node: f.n, kind: "vipd", conf: f.conf, socket: f.socket, proc: f.n.Start(lab.BuildVipd(f.t), args...)}
	f.runs = append(f.runs, d)
	return d
}

// d is the latest run.
func (f *flNode) d() *daemon { return f.runs[len(f.runs)-1] }

func (f *flNode) name() string   { return f.n.Name }
func (f *flNode) gossip() string { return f.ip + ":" + flPort }

// flInst is a VRRPv3 100 ms instance of vrid with VIP 10.99.0.(100+vrid).
func flInst(vrid, prio int) instanceConf {
	return instanceConf{Name: fmt.Sprintf("VI_%d", vrid), VRID: vrid, Priority: prio, Version: 3, AdvertInt: "0.1",
		VIPs: []string{fmt.Sprintf("10.99.0.%d/24", 100+vrid)}}
}

// flVIP is the VIP of flInst(vrid).
func flVIP(vrid int) string { return fmt.Sprintf("10.99.0.%d", 100+vrid) }

// flStartFleet starts vipd on nodes[i] with insts(i) (0-based) and gossip on its address;
// every node but the first joins the first. extra is added to every node's arguments.
//
// The others start once the first one's gossip listens: a --join that finds nobody listening
// is retried only at the next re-join tick, 15 s later (started together, the fleet would
// form in 0.5 s or in 15 s by the luck of a millisecond).
func flStartFleet(t *testing.T, nodes []*lab.Node, insts func(i int) []instanceConf, extra ...string) []*flNode {
	t.Helper()
	var out []*flNode
	for i, n := range nodes {
		args := []string{"--gossip-bind", flIP(i+1) + ":" + flPort}
		if i > 0 {
			args = append(args, "--join", flIP(1)+":"+flPort)
		}
		args = append(args, extra...)
		f := newFlNode(t, n, flIP(i+1), renderConf(t, n.Name, false, insts(i)...), args...)
		f.start()
		if i == 0 {
			flWaitLog(t, f.d(), 10*time.Second, time.Time{}, `msg="gossip started"`)
		}
		out = append(out, f)
	}
	return out
}

// flKeyFile writes a gossip key file: base64 of 32 random bytes, mode 0600.
func flKeyFile(t *testing.T) string {
	t.Helper()
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// flCLI runs the vipd CLI on the host: stdout, stderr and the exit code.
func flCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, lab.BuildVipd(t), args...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return so.String(), se.String(), 0
	case errors.As(err, &ee):
		return so.String(), se.String(), ee.ExitCode()
	default:
		t.Fatalf("vipd %s: %v", strings.Join(args, " "), err)
		return "", "", -1
	}
}

// flMustCLI is flCLI that fails the test unless the command exits 0.
func flMustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := flCLI(t, args...)
	if code != 0 {
		t.Fatalf("vipd %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// flFleetCLI is `vipd status --fleet -o json` on f's socket.
func flFleetCLI(t *testing.T, f *flNode) api.Fleet {
	t.Helper()
	raw := flMustCLI(t, "status", "--fleet", "-o", "json", "--socket", f.socket)
	var fl api.Fleet
	if err := json.Unmarshal([]byte(raw), &fl); err != nil {
		t.Fatalf("vipd status --fleet -o json on %s: %v\n%s", f.name(), err, raw)
	}
	return fl
}

// flTableCLI is `vipd status --fleet` (the table) on f's socket.
func flTableCLI(t *testing.T, f *flNode) string {
	t.Helper()
	return flMustCLI(t, "status", "--fleet", "--socket", f.socket)
}

// flFleetAPI reads f's fleet view through the control socket (for polling).
func flFleetAPI(f *flNode) (api.Fleet, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return api.NewClient(f.socket).Fleet(ctx)
}

// flSummary is a one-line rendering of what views must agree on (no times).
func flSummary(fl api.Fleet) string {
	var b strings.Builder
	for _, n := range fl.Nodes {
		fmt.Fprintf(&b, "[%s %s alive=%v addr=%s maint=%q", n.Name, n.State, n.Alive, n.Addr, n.Maintenance)
		for _, in := range n.Instances {
			fmt.Fprintf(&b, " %s/%d=%s(%d) master=%s(%d)", in.Name, in.VRID, in.State, in.EffectivePriority, in.Master, in.MasterPriority)
		}
		b.WriteString("] ")
	}
	for _, p := range fl.Peers {
		fmt.Fprintf(&b, "peer{%s vrid=%d prio=%d %s %s heard_by=%v} ", p.Addr, p.VRID, p.Priority, p.State, p.Segment, p.HeardBy)
	}
	for _, w := range fl.Warnings {
		fmt.Fprintf(&b, "warning{%s vrid=%d inst=%s nodes=%v %q} ", w.Kind, w.VRID, w.Instance, w.Nodes, w.Detail)
	}
	return strings.TrimSpace(b.String())
}

func flFind(fl api.Fleet, name string) *api.FleetNode {
	for i := range fl.Nodes {
		if fl.Nodes[i].Name == name {
			return &fl.Nodes[i]
		}
	}
	return nil
}

func flInstOf(n *api.FleetNode, name string) *api.FleetInstance {
	for i := range n.Instances {
		if n.Instances[i].Name == name {
			return &n.Instances[i]
		}
	}
	return nil
}

func flNames(fl api.Fleet) []string {
	var out []string
	for _, n := range fl.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// flWantNodes checks that fl lists exactly the nodes of want, each in the given membership
// state (alive, dead, left), alive ones with Alive true.
func flWantNodes(fl api.Fleet, want map[string]string) error {
	if len(fl.Nodes) != len(want) {
		return fmt.Errorf("%d nodes %v, want %d", len(fl.Nodes), flNames(fl), len(want))
	}
	for name, st := range want {
		n := flFind(fl, name)
		if n == nil {
			return fmt.Errorf("node %s missing (nodes %v)", name, flNames(fl))
		}
		if n.State != st || n.Alive != (st == "alive" || st == "suspect") {
			return fmt.Errorf("node %s state %s alive=%v, want %s", name, n.State, n.Alive, st)
		}
	}
	return nil
}

// flWantInstance checks the state of instance inst of node name in fl (master "": not checked).
func flWantInstance(fl api.Fleet, name, inst, state, master string) error {
	n := flFind(fl, name)
	if n == nil {
		return fmt.Errorf("node %s missing", name)
	}
	in := flInstOf(n, inst)
	if in == nil {
		return fmt.Errorf("node %s has no instance %s", name, inst)
	}
	if in.State != state {
		return fmt.Errorf("%s %s is %s, want %s", name, inst, in.State, state)
	}
	if master != "" && in.Master != master {
		return fmt.Errorf("%s %s master %q, want %q", name, inst, in.Master, master)
	}
	return nil
}

func flWarnings(fl api.Fleet, kind string) []api.Warning {
	var out []api.Warning
	for _, w := range fl.Warnings {
		if w.Kind == kind {
			out = append(out, w)
		}
	}
	return out
}

// flWaitSame polls the fleet view of every node of fs until check passes on each and all views
// are the same (flSummary); it returns the views and how long it took. On timeout it fails the
// test with what each node last said.
func flWaitSame(t *testing.T, timeout time.Duration, what string, fs []*flNode, check func(api.Fleet) error) ([]api.Fleet, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		views := make([]api.Fleet, len(fs))
		var problems []string
		for i, f := range fs {
			fl, err := flFleetAPI(f)
			if err == nil {
				err = check(fl)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v\n    view: %s", f.name(), err, flSummary(fl)))
			}
			views[i] = fl
		}
		if len(problems) == 0 {
			for i := 1; i < len(views); i++ {
				if a, b := flSummary(views[0]), flSummary(views[i]); a != b {
					problems = append(problems, fmt.Sprintf("views differ:\n    %s: %s\n    %s: %s", fs[0].name(), a, fs[i].name(), b))
				}
			}
		}
		if len(problems) == 0 {
			return views, time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s:\n  %s", timeout, what, strings.Join(problems, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flWaitEach polls each node of fs until check passes on its view and returns, per node, how
// long after `since` it was first seen passing.
func flWaitEach(t *testing.T, timeout time.Duration, what string, since time.Time, fs []*flNode, check func(api.Fleet) error) []time.Duration {
	t.Helper()
	seen := make([]time.Duration, len(fs))
	done := make([]bool, len(fs))
	last := make([]string, len(fs))
	for {
		all := true
		for i, f := range fs {
			if done[i] {
				continue
			}
			fl, err := flFleetAPI(f)
			if err == nil {
				err = check(fl)
			}
			if err == nil {
				seen[i], done[i] = time.Since(since), true
				continue
			}
			all = false
			last[i] = fmt.Sprintf("%s: %v\n    view: %s", f.name(), err, flSummary(fl))
		}
		if all {
			return seen
		}
		if time.Since(since) > timeout {
			var ps []string
			for i := range fs {
				if !done[i] {
					ps = append(ps, last[i])
				}
			}
			t.Fatalf("timed out after %v waiting for %s:\n  %s", timeout, what, strings.Join(ps, "\n  "))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// flLogLines returns the lines of a vipd log containing every one of parts and logged at or
// after since (by their time=).
func flLogLines(log string, since time.Time, parts ...string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok && !flLogTime(line).Before(since) {
			out = append(out, line)
		}
	}
	return out
}

// flLogTime is the time= of a vipd text log line (zero when it has none).
func flLogTime(line string) time.Time {
	f := strings.Fields(line)
	if len(f) == 0 {
		return time.Time{}
	}
	ts, _ := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
	return ts
}

// flWaitLog waits until d's log has a line with every one of parts logged at or after since, and
// returns the first.
func flWaitLog(t *testing.T, d *daemon, timeout time.Duration, since time.Time, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ls := flLogLines(d.proc.Output(), since, parts...); len(ls) > 0 {
			return ls[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's log has no line with %q within %v; last lines:\n%s", d.node.Name, parts, timeout, lastLines(d.proc.Output(), 30))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// flGossipTable is the nftables table flCutGossip installs.
const flGossipTable = "fleetlab_gossip"

// flCutGossip drops gossip (TCP and UDP port 7946, either end) in and out of node n; VRRP and
// everything else pass.
func flCutGossip(t *testing.T, n *lab.Node) {
	t.Helper()
	rules := ""
	for _, dir := range []string{"in", "out"} {
		hook := map[string]string{"in": "input", "out": "output"}[dir]
		rules += fmt.Sprintf(`	chain %s {
		type filter hook %s priority -300; policy accept;
		tcp dport %[3]s counter drop
		udp dport %[3]s counter drop
		tcp sport %[3]s counter drop
		udp sport %[3]s counter drop
	}
`, dir, hook, flPort)
	}
	p := filepath.Join(t.TempDir(), "gossip-cut.nft")
	writeFile(t, p, fmt.Sprintf("table inet %s {\n%s}\n", flGossipTable, rules))
	n.MustExec(flNft(t), "-f", p)
}

// flHealGossip removes flCutGossip's table.
func flHealGossip(t *testing.T, n *lab.Node) {
	t.Helper()
	n.MustExec(flNft(t), "delete", "table", "inet", flGossipTable)
}

func flNft(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nft"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("nft not found (install nftables: scripts/deps.sh)")
	return ""
}

// flNoWarnings is a check that fl has no warning at all.
func flNoWarnings(fl api.Fleet) error {
	if len(fl.Warnings) > 0 {
		return fmt.Errorf("warnings: %+v", fl.Warnings)
	}
	return nil
}

// TestFleetStatusFromEveryNode: three vipd nodes and a keepalived. VRID 51: vipd node1 (150) is
// MASTER, node2 (120) and node3 (100) BACKUP, keepalived (90) BACKUP. VRID 52: keepalived (200)
// is MASTER, the vipd nodes (110, 105, 100) BACKUP. Every vipd node's `vipd status --fleet -o
// json` lists the same three nodes alive with the same instance states, keepalived's address as
// the one classic peer (MASTER of VRID 52, priority 200, heard by the three vipd nodes) and no
// warning; the table marks it classic.
func TestFleetStatusFromEveryNode(t *testing.T) {
	lab.Keepalived(t)
	ns := flLab(t, 4)
	kaIP := flIP(4)
	dk := startKeepalived(t, ns[3], renderConf(t, "node4", true, flInst(51, 90), flInst(52, 200)))
	prio51, prio52 := []int{150, 120, 100}, []int{110, 105, 100}
	fs := flStartFleet(t, ns[:3], func(i int) []instanceConf {
		return []instanceConf{flInst(51, prio51[i]), flInst(52, prio52[i])}
	})
	start := time.Now()
	waitVIP(t, 10*time.Second, flVIP(51), ns[0], ns[1], ns[2], ns[3])
	waitVIP(t, 10*time.Second, flVIP(52), ns[3], ns[0], ns[1], ns[2])

	check := func(fl api.Fleet) error {
		if err := flWantNodes(fl, map[string]string{"node1": "alive", "node2": "alive", "node3": "alive"}); err != nil {
			return err
		}
		for i, f := range fs {
			n := flFind(fl, f.name())
			if n.Addr != f.gossip() || n.Maintenance != "" || len(n.Instances) != 2 {
				return fmt.Errorf("node %s: addr %s maintenance %q %d instances, want addr %s, no maintenance, 2 instances",
					n.Name, n.Addr, n.Maintenance, len(n.Instances), f.gossip())
			}
			state51 := "BACKUP"
			if i == 0 {
				state51 = "MASTER"
			}
			if err := flWantInstance(fl, f.name(), "VI_51", state51, flIP(1)); err != nil {
				return err
			}
			if err := flWantInstance(fl, f.name(), "VI_52", "BACKUP", kaIP); err != nil {
				return err
			}
			for _, in := range n.Instances {
				if in.Segment != flSegment || in.Family != "ipv4" || in.Source != f.ip {
					return fmt.Errorf("%s %s: segment %q family %q source %q, want %s ipv4 %s", n.Name, in.Name, in.Segment, in.Family, in.Source, flSegment, f.ip)
				}
			}
			if in := flInstOf(n, "VI_52"); in.MasterPriority != 200 {
				return fmt.Errorf("%s VI_52: master priority %d, want 200", n.Name, in.MasterPriority)
			}
		}
		if len(fl.Peers) != 1 {
			return fmt.Errorf("%d classic peers %+v, want 1 (keepalived, VRID 52)", len(fl.Peers), fl.Peers)
		}
		p := fl.Peers[0]
		if p.Addr != kaIP || p.VRID != 52 || p.Priority != 200 || p.State != "MASTER" || p.Segment != flSegment ||
			!slices.Equal(p.HeardBy, []string{"node1", "node2", "node3"}) {
			return fmt.Errorf("classic peer %+v, want %s VRID 52 priority 200 MASTER on %s heard by node1, node2, node3", p, kaIP, flSegment)
		}
		return flNoWarnings(fl)
	}
	views, took := flWaitSame(t, 20*time.Second, "the same fleet on every vipd node", fs, check)
	t.Logf("every node showed the same fleet %v after the VIPs settled (%v after the vipd starts): %s",
		took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), flSummary(views[0]))

	// What the operator sees, on every node.
	var first string
	for _, f := range fs {
		fl := flFleetCLI(t, f)
		if err := check(fl); err != nil {
			t.Errorf("vipd status --fleet -o json on %s: %v\n%s", f.name(), err, flSummary(fl))
		}
		if first == "" {
			first = flSummary(fl)
		} else if s := flSummary(fl); s != first {
			t.Errorf("vipd status --fleet -o json differs on %s:\n%s\nnode1:\n%s", f.name(), s, first)
		}
		table := flTableCLI(t, f)
		if !strings.Contains(table, "*"+kaIP+"(classic, 200)") {
			t.Errorf("vipd status --fleet on %s does not show keepalived as a classic MASTER (*%s(classic, 200)):\n%s", f.name(), kaIP, table)
		}
		if !strings.Contains(table, "*node1(150)") || !strings.Contains(table, "no warnings") {
			t.Errorf("vipd status --fleet on %s: want *node1(150) and \"no warnings\":\n%s", f.name(), table)
		}
		if f == fs[0] {
			t.Logf("vipd status --fleet on node1:\n%s", table)
		}
	}
	if !chLogged(dk, "(VI_52) Entering MASTER STATE") {
		t.Errorf("keepalived never logged entering MASTER for VI_52:\n%s", strings.Join(chTransitions(dk), "\n"))
	}
}

// TestFleetJoinLaterAndDeadNode: an encrypted fleet (one key file for all). node4 starts alone
// (--gossip-bind only) and `vipd join node1:7946` makes it a member in every node's view. node5
// has another key: its start-up join and a `vipd join` fail, its view stays alone and nobody
// lists it. Then node1, the MASTER of VRID 51, is killed with SIGKILL: every remaining node
// shows node1 dead (time logged) and node2 the MASTER of VRID 51, without a warning.
func TestFleetJoinLaterAndDeadNode(t *testing.T) {
	ns := flLab(t, 5)
	key, otherKey := flKeyFile(t), flKeyFile(t)
	prios := []int{150, 120, 100}
	fs := flStartFleet(t, ns[:3], func(i int) []instanceConf { return []instanceConf{flInst(51, prios[i])} },
		"--gossip-key-file", key)
	waitVIP(t, 10*time.Second, flVIP(51), ns[0], ns[1], ns[2])
	notRogue := func(fl api.Fleet) error {
		if flFind(fl, "node5") != nil {
			return fmt.Errorf("node5 (another gossip key) is listed: %s", flSummary(fl))
		}
		return nil
	}
	three := map[string]string{"node1": "alive", "node2": "alive", "node3": "alive"}
	_, took := flWaitSame(t, 20*time.Second, "three alive nodes on every node", fs, func(fl api.Fleet) error {
		if err := flWantNodes(fl, three); err != nil {
			return err
		}
		return flWantInstance(fl, "node1", "VI_51", "MASTER", "")
	})
	t.Logf("encrypted fleet of 3 formed %v after the VIP settled", took.Round(time.Millisecond))
	for _, f := range fs {
		if !chLogged(f.d(), `msg="gossip started"`, "encrypted=true") {
			t.Errorf("%s's log does not say gossip started encrypted:\n%s", f.name(), lastLines(f.d().proc.Output(), 20))
		}
	}

	// node4: gossip on, alone.
	f4 := newFlNode(t, ns[3], flIP(4), renderConf(t, "node4", false, flInst(51, 80)),
		"--gossip-bind", flIP(4)+":"+flPort, "--gossip-key-file", key)
	f4.start()
	// node5: another key, joining node1 at start.
	f5 := newFlNode(t, ns[4], flIP(5), renderConf(t, "node5", false, flInst(51, 70)),
		"--gossip-bind", flIP(5)+":"+flPort, "--join", flIP(1)+":"+flPort, "--gossip-key-file", otherKey)
	f5.start()
	alone := func(name string) func(api.Fleet) error {
		return func(fl api.Fleet) error {
			if err := flWantNodes(fl, map[string]string{name: "alive"}); err != nil {
				return err
			}
			return flWantInstance(fl, name, "VI_51", "BACKUP", flIP(1))
		}
	}
	flWaitSame(t, 10*time.Second, "node4 alone in its fleet", []*flNode{f4}, alone("node4"))
	flWaitSame(t, 10*time.Second, "node5 alone in its fleet", []*flNode{f5}, alone("node5"))
	flWaitLog(t, f5.d(), 10*time.Second, time.Time{}, "could not join any member yet")
	for _, f := range fs {
		fl := flFleetCLI(t, f)
		if err := flWantNodes(fl, three); err != nil {
			t.Errorf("%s lists a node that has not joined: %v", f.name(), err)
		}
	}

	joinAt := time.Now()
	out := flMustCLI(t, "join", fs[0].gossip(), "--socket", f4.socket)
	t.Logf("vipd join on node4: %s (%v)", strings.TrimSpace(out), time.Since(joinAt).Round(time.Millisecond))
	if !strings.Contains(out, "joined through 1 node") {
		t.Errorf("vipd join on node4 said %q, want \"joined through 1 node\"", out)
	}
	four := []*flNode{fs[0], fs[1], fs[2], f4}
	_, took = flWaitSame(t, 10*time.Second, "node4 in every node's fleet", four, func(fl api.Fleet) error {
		if err := flWantNodes(fl, map[string]string{"node1": "alive", "node2": "alive", "node3": "alive", "node4": "alive"}); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node4", "VI_51", "BACKUP", flIP(1)); err != nil {
			return err
		}
		if err := notRogue(fl); err != nil {
			return err
		}
		if len(fl.Peers) > 0 {
			return fmt.Errorf("classic peers %+v, want none (every master is a gossip node)", fl.Peers)
		}
		return flNoWarnings(fl)
	})
	t.Logf("node4 listed alive with its instance on all 4 nodes %v after vipd join", took.Round(time.Millisecond))

	// The node with another key cannot join, by hand either.
	out, errOut, code := flCLI(t, "join", fs[0].gossip(), "--socket", f5.socket)
	t.Logf("vipd join on node5 (another key): exit %d: %s%s", code, strings.TrimSpace(out), strings.TrimSpace(errOut))
	if code != 1 {
		t.Errorf("vipd join through node1 with another gossip key: exit %d, want 1", code)
	}
	holdSteady(t, 2*time.Second, "node5 stays alone and nobody lists it", func() bool {
		fl, err := flFleetAPI(f5)
		if err != nil || alone("node5")(fl) != nil {
			return false
		}
		for _, f := range four {
			fl, err := flFleetAPI(f)
			if err != nil || notRogue(fl) != nil {
				return false
			}
		}
		return true
	})

	// kill -9 the MASTER of VRID 51. A killed vipd leaves its VIP: remove it as the dead box
	// would.
	killAt := time.Now()
	if err := fs[0].d().proc.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs[0].d().proc.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ns[0].Exec("ip", "addr", "del", flVIP(51)+"/24", "dev", "eth0")
	rest := []*flNode{fs[1], fs[2], f4}
	deadSeen := flWaitEach(t, 35*time.Second, "node1 dead and node2 MASTER of VRID 51 on every remaining node", killAt, rest, func(fl api.Fleet) error {
		if err := flWantNodes(fl, map[string]string{"node1": "dead", "node2": "alive", "node3": "alive", "node4": "alive"}); err != nil {
			return err
		}
		return flWantInstance(fl, "node2", "VI_51", "MASTER", "")
	})
	for i, f := range rest {
		t.Logf("%s saw node1 dead and node2 MASTER %v after the kill", f.name(), deadSeen[i].Round(time.Millisecond))
	}
	waitVIP(t, 5*time.Second, flVIP(51), ns[1], ns[2], ns[3])
	views, _ := flWaitSame(t, 5*time.Second, "the same fleet without warnings on the remaining nodes", rest, func(fl api.Fleet) error {
		if err := flWantNodes(fl, map[string]string{"node1": "dead", "node2": "alive", "node3": "alive", "node4": "alive"}); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node2", "VI_51", "MASTER", ""); err != nil {
			return err
		}
		if err := notRogue(fl); err != nil {
			return err
		}
		if len(fl.Peers) > 0 {
			return fmt.Errorf("classic peers %+v, want none", fl.Peers)
		}
		return flNoWarnings(fl)
	})
	t.Logf("fleet after the kill: %s", flSummary(views[0]))
	for _, f := range rest {
		fl := flFleetCLI(t, f)
		if n := flFind(fl, "node1"); n == nil || n.State != "dead" || n.Alive {
			t.Errorf("vipd status --fleet -o json on %s: node1 %+v, want dead", f.name(), n)
		}
		table := flTableCLI(t, f)
		marked := false
		for _, line := range strings.Split(table, "\n") {
			if strings.HasPrefix(line, "! node1") && strings.Contains(line, "dead") {
				marked = true
			}
		}
		if !marked {
			t.Errorf("vipd status --fleet on %s does not mark node1 dead (\"! node1 ... dead\"):\n%s", f.name(), table)
		}
		if !strings.Contains(table, "*node2(120)") || !strings.Contains(table, "node1(dead)") {
			t.Errorf("vipd status --fleet on %s: want *node2(120) and node1(dead) in VRID 51's routers:\n%s", f.name(), table)
		}
	}
	for _, f := range rest {
		if ls := flLogLines(f.d().proc.Output(), killAt, "gossip member failed"); len(ls) > 0 {
			t.Logf("%s: %s", f.name(), ls[0])
		}
	}
}

// TestFleetSplitBrainSeenAndCleared: two vipd nodes of VRID 51 (node1 150 MASTER, node2 100).
// VRRP is dropped in node2 (nftables, protocol 112; gossip on port 7946 still flows): node2
// becomes MASTER too. Both nodes' `vipd status --fleet` show the split_brain warning within 3 s
// of node2 entering MASTER, and each logs a "split brain" warning. Allowing VRRP again ends it:
// the warning goes and each node logs that it is over.
func TestFleetSplitBrainSeenAndCleared(t *testing.T) {
	ns := flLab(t, 2)
	prios := []int{150, 100}
	fs := flStartFleet(t, ns, func(i int) []instanceConf { return []instanceConf{flInst(51, prios[i])} })
	waitVIP(t, 10*time.Second, flVIP(51), ns[0], ns[1])
	_, took := flWaitSame(t, 20*time.Second, "node1 MASTER, node2 BACKUP on both nodes", fs, func(fl api.Fleet) error {
		if err := flWantNodes(fl, map[string]string{"node1": "alive", "node2": "alive"}); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node1", "VI_51", "MASTER", ""); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node2", "VI_51", "BACKUP", flIP(1)); err != nil {
			return err
		}
		return flNoWarnings(fl)
	})
	t.Logf("fleet of 2 formed %v after the VIP settled", took.Round(time.Millisecond))

	cutAt := time.Now()
	ns[1].DropVRRP()
	line := flWaitLog(t, fs[1].d(), 5*time.Second, cutAt, `msg="entering MASTER state"`)
	masterAt := flLogTime(line)
	t.Logf("node2 entered MASTER %v after VRRP was dropped: %s", masterAt.Sub(cutAt).Round(time.Millisecond), line)
	split := func(fl api.Fleet) error {
		if err := flWantInstance(fl, "node1", "VI_51", "MASTER", ""); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node2", "VI_51", "MASTER", ""); err != nil {
			return err
		}
		ws := flWarnings(fl, api.WarnSplitBrain)
		if len(ws) != 1 || ws[0].VRID != 51 || !slices.Equal(ws[0].Nodes, []string{"node1", "node2"}) {
			return fmt.Errorf("split_brain warnings %+v, want one for VRID 51 naming node1, node2", ws)
		}
		if len(fl.Warnings) != 1 {
			return fmt.Errorf("warnings %+v, want only the split brain", fl.Warnings)
		}
		return nil
	}
	seen := flWaitEach(t, 10*time.Second, "the split_brain warning on both nodes", masterAt, fs, split)
	for i, f := range fs {
		t.Logf("%s's fleet showed the split brain %v after node2 entered MASTER", f.name(), seen[i].Round(time.Millisecond))
		if seen[i] >= 3*time.Second {
			t.Errorf("%s's fleet showed the split brain %v after node2 entered MASTER, want < 3 s", f.name(), seen[i].Round(time.Millisecond))
		}
	}
	if st := instanceStatus(t, fs[1].d(), "VI_51"); st.State == "MASTER" {
		t.Logf("node2's status: MASTER since %s (%v before its log line)", st.Since.Format("15:04:05.000"), masterAt.Sub(st.Since).Round(time.Millisecond))
	}
	for _, f := range fs {
		line := flWaitLog(t, f.d(), 3*time.Second, cutAt, "level=WARN", `msg="split brain: `)
		at := flLogTime(line).Sub(masterAt)
		t.Logf("%s logged the split brain %v after node2 entered MASTER: %s", f.name(), at.Round(time.Millisecond), line)
		if at >= 3*time.Second {
			t.Errorf("%s logged the split brain %v after node2 entered MASTER, want < 3 s", f.name(), at.Round(time.Millisecond))
		}
		fl := flFleetCLI(t, f)
		if err := split(fl); err != nil {
			t.Errorf("vipd status --fleet -o json on %s: %v", f.name(), err)
		} else if w := flWarnings(fl, api.WarnSplitBrain)[0]; !strings.Contains(w.Detail, "2 MASTERs for VRID 51 on "+flSegment) {
			t.Errorf("split_brain detail %q, want \"2 MASTERs for VRID 51 on %s ...\"", w.Detail, flSegment)
		}
		table := flTableCLI(t, f)
		if !strings.Contains(table, "split_brain") || !strings.Contains(table, "*node1(150)  *node2(100)") {
			t.Errorf("vipd status --fleet on %s: no split_brain warning or not both MASTERs marked:\n%s", f.name(), table)
		}
		if f == fs[0] {
			t.Logf("vipd status --fleet on node1 during the split brain:\n%s", table)
		}
	}

	healAt := time.Now()
	ns[1].AllowVRRP()
	cleared := flWaitEach(t, 10*time.Second, "the split brain cleared on both nodes", healAt, fs, func(fl api.Fleet) error {
		if err := flWantInstance(fl, "node2", "VI_51", "BACKUP", flIP(1)); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node1", "VI_51", "MASTER", ""); err != nil {
			return err
		}
		return flNoWarnings(fl)
	})
	for i, f := range fs {
		t.Logf("%s's fleet cleared %v after VRRP was allowed again", f.name(), cleared[i].Round(time.Millisecond))
		line := flWaitLog(t, f.d(), 3*time.Second, healAt, `msg="split brain over`)
		t.Logf("%s: %s", f.name(), line)
	}
	waitVIP(t, 5*time.Second, flVIP(51), ns[0], ns[1])
	for _, f := range fs {
		if err := flNoWarnings(flFleetCLI(t, f)); err != nil {
			t.Errorf("vipd status --fleet -o json on %s after the split brain: %v", f.name(), err)
		}
	}
}

// TestFleetMaintenanceAcrossNodes: three vipd nodes of VRID 53 (VRRPv2, 1 s, PASS), node3 (150)
// MASTER, node2 (120), node1 (100). From node1, `vipd maint on --node node3 --reason kernel`:
// node3 hands over with a priority-0 advert (node2 takes over after Skew_Time, well before
// Master_Down_Interval), sits in FAULT with a maintenance cause, and node1's fleet shows node3 in
// maintenance "kernel" with a maintenance warning. node3 restarted (SIGTERM, same --state-dir)
// stays in maintenance. `vipd maint off --node node3` from node1: node3 preempts and takes the
// VIP back.
func TestFleetMaintenanceAcrossNodes(t *testing.T) {
	ns := flLab(t, 3)
	prios := []int{100, 120, 150}
	inst := func(prio int) instanceConf {
		return instanceConf{Name: "VI_53", VRID: 53, Priority: prio, AuthPass: "secret1", VIPs: []string{flVIP(53) + "/24"}}
	}
	fs := flStartFleet(t, ns, func(i int) []instanceConf { return []instanceConf{inst(prios[i])} })
	f1, f3 := fs[0], fs[2]
	vip := flVIP(53)
	waitVIP(t, 15*time.Second, vip, ns[2], ns[0], ns[1])
	all := map[string]string{"node1": "alive", "node2": "alive", "node3": "alive"}
	_, took := flWaitSame(t, 20*time.Second, "node3 MASTER of VRID 53 on every node", fs, func(fl api.Fleet) error {
		if err := flWantNodes(fl, all); err != nil {
			return err
		}
		for _, n := range []string{"node1", "node2"} {
			if err := flWantInstance(fl, n, "VI_53", "BACKUP", flIP(3)); err != nil {
				return err
			}
		}
		if err := flWantInstance(fl, "node3", "VI_53", "MASTER", ""); err != nil {
			return err
		}
		return flNoWarnings(fl)
	})
	t.Logf("fleet of 3 formed %v after the VIP settled", took.Round(time.Millisecond))

	capt := ns[1].Capture("eth0", "ip proto 112")
	if err := waitAdvert(capt.Path(), mustAddr(flIP(3)), time.Now(), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := flMustCLI(t, "maint", "on", "--node", "node3", "--reason", "kernel", "--socket", f1.socket)
	t.Logf("vipd maint on --node node3 from node1 (%v): %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	waitVIP(t, 5*time.Second, vip, ns[1], ns[0], ns[2])
	moved := time.Since(start)
	mdi := failoverBound(2, time.Second, 120, false)
	t.Logf("VIP on node2 %v after the command (node2's Skew_Time %v, Master_Down_Interval %v)", moved.Round(time.Millisecond), skewTime(2, time.Second, 120), mdi)
	if err := waitAdvert(capt.Path(), mustAddr(flIP(2)), start, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	adverts := lab.VRRPAdverts(capt.Stop())
	gap, ok := lab.MasterGap(adverts, 53, mustAddr(flIP(3)), mustAddr(flIP(2)))
	switch {
	case !ok:
		t.Errorf("no takeover by node2 on the wire (%d adverts captured)", len(adverts))
	case !lastAdvertHadPriorityZero(adverts, mustAddr(flIP(3)), mustAddr(flIP(2))):
		t.Errorf("node3's last advert before node2's first was not priority 0: no graceful hand-over")
	default:
		t.Logf("hand-over on the wire: %v from node3's last advert (priority 0) to node2's first", gap.Round(time.Millisecond))
		if gap >= 2*time.Second {
			t.Errorf("node2 took over %v after node3's last advert, want < 2 s (Master_Down_Interval %v)", gap, mdi)
		}
	}
	if moved >= mdi {
		t.Errorf("the VIP reached node2 %v after maint on, want < Master_Down_Interval %v", moved, mdi)
	}
	if st := instanceStatus(t, f3.d(), "VI_53"); st.State != "FAULT" || !strings.Contains(st.Cause, "maintenance") || !strings.Contains(st.Cause, "kernel") {
		t.Errorf("node3 VI_53: %s cause %q, want FAULT with a maintenance cause naming kernel", st.State, st.Cause)
	} else {
		t.Logf("node3 VI_53: %s, cause %q", st.State, st.Cause)
	}
	inMaint := func(fl api.Fleet) error {
		if err := flWantNodes(fl, all); err != nil {
			return err
		}
		if n := flFind(fl, "node3"); n.Maintenance != "kernel" {
			return fmt.Errorf("node3 maintenance %q, want kernel", n.Maintenance)
		}
		if err := flWantInstance(fl, "node3", "VI_53", "FAULT", ""); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node2", "VI_53", "MASTER", ""); err != nil {
			return err
		}
		ws := fl.Warnings
		if len(ws) != 1 || ws[0].Kind != api.WarnMaintenance || !slices.Equal(ws[0].Nodes, []string{"node3"}) || ws[0].Detail != "kernel" {
			return fmt.Errorf("warnings %+v, want one maintenance warning for node3 (kernel)", ws)
		}
		return nil
	}
	flWaitSame(t, 5*time.Second, "node3 in maintenance on every node", fs, inMaint)
	if err := inMaint(flFleetCLI(t, f1)); err != nil {
		t.Errorf("vipd status --fleet -o json on node1: %v", err)
	}
	table := flTableCLI(t, f1)
	t.Logf("vipd status --fleet on node1 with node3 in maintenance:\n%s", table)
	if !strings.Contains(table, "maintenance") || !strings.Contains(table, "kernel") {
		t.Errorf("the fleet table on node1 does not show node3's maintenance:\n%s", table)
	}

	// Restart node3: it stays in maintenance.
	_ = f3.d().proc.Signal(syscall.SIGTERM)
	if code, err := f3.d().proc.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("node3 after SIGTERM: exit %d, %v", code, err)
	}
	stopAt := time.Now()
	left := flWaitEach(t, 5*time.Second, "node3 left on node1 and node2", stopAt, fs[:2], func(fl api.Fleet) error {
		if n := flFind(fl, "node3"); n == nil || n.State != "left" || n.Alive {
			return fmt.Errorf("node3: %+v, want left", n)
		}
		return nil
	})
	t.Logf("node3 seen left by node1 %v, node2 %v after its exit", left[0].Round(time.Millisecond), left[1].Round(time.Millisecond))
	d3 := f3.start()
	restartAt := time.Now()
	lab.Eventually(t, 10*time.Second, "the new node3 run up in FAULT (maintenance)", func() bool {
		st, err := d3.status()
		if d3.proc.Exited() {
			t.Fatalf("node3's new run exited: %s", lastLines(d3.proc.Output(), 20))
		}
		return err == nil && st.Daemon != nil && st.Daemon.PID == d3.proc.Pid() && len(st.Instances) == 1 &&
			st.Instances[0].State == "FAULT"
	})
	if st := instanceStatus(t, d3, "VI_53"); !strings.Contains(st.Cause, "maintenance") || !strings.Contains(st.Cause, "kernel") {
		t.Errorf("node3 after the restart: %s cause %q, want a maintenance cause naming kernel", st.State, st.Cause)
	}
	holdSteady(t, 4*time.Second, "node3 stays in FAULT without the VIP, node2 keeps it", func() bool {
		return d3.state("VI_53") == "FAULT" && !hasVIP(ns[2], vip) && hasVIP(ns[1], vip)
	})
	flWaitSame(t, 20*time.Second, "node3 back in the fleet, still in maintenance", fs, inMaint)
	t.Logf("node3 back in every view, in maintenance, %v after its restart", time.Since(restartAt).Round(time.Millisecond))

	offAt := time.Now()
	out = flMustCLI(t, "maint", "off", "--node", "node3", "--socket", f1.socket)
	t.Logf("vipd maint off --node node3 from node1: %s", strings.TrimSpace(out))
	waitVIP(t, 10*time.Second, vip, ns[2], ns[0], ns[1])
	t.Logf("node3 took the VIP back %v after maint off", time.Since(offAt).Round(time.Millisecond))
	flWaitSame(t, 5*time.Second, "node3 MASTER again, no warnings", fs, func(fl api.Fleet) error {
		if err := flWantNodes(fl, all); err != nil {
			return err
		}
		if n := flFind(fl, "node3"); n.Maintenance != "" {
			return fmt.Errorf("node3 maintenance %q, want none", n.Maintenance)
		}
		if err := flWantInstance(fl, "node3", "VI_53", "MASTER", ""); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node2", "VI_53", "BACKUP", flIP(3)); err != nil {
			return err
		}
		return flNoWarnings(fl)
	})
	if st := instanceStatus(t, d3, "VI_53"); len(st.Faults) != 0 {
		t.Errorf("node3 after maint off still reports faults %v", st.Faults)
	}
	if ls := flLogLines(d3.proc.Output(), time.Time{}, "maintenance request from another node"); len(ls) == 0 {
		t.Errorf("node3's log does not show the maintenance request from node1:\n%s", lastLines(d3.proc.Output(), 20))
	} else {
		t.Logf("node3: %s", ls[len(ls)-1])
	}
}

// TestFleetPartitionHealsByItself: two vipd nodes with short gossip timings (tuning file). Gossip
// between them is cut (nftables drops TCP and UDP port 7946 in node1; VRRP flows) until each sees
// the other dead and longer than gossip_to_the_dead_time; then the cut is removed and, without a
// vipd join, each sees the other alive again (the re-join loop, every 15 s: not settable from
// the command line).
func TestFleetPartitionHealsByItself(t *testing.T) {
	ns := flLab(t, 2)
	const deadTime = 2 * time.Second
	tuning := filepath.Join(t.TempDir(), "tuning.yaml")
	writeFile(t, tuning, "probe_interval: 200ms\nprobe_timeout: 100ms\nsuspicion_mult: 2\ngossip_to_the_dead_time: 2s\npush_pull_interval: 2s\n")
	prios := []int{150, 100}
	fs := flStartFleet(t, ns, func(i int) []instanceConf { return []instanceConf{flInst(51, prios[i])} },
		"--gossip-tuning-file", tuning)
	waitVIP(t, 10*time.Second, flVIP(51), ns[0], ns[1])
	both := func(fl api.Fleet) error {
		if err := flWantNodes(fl, map[string]string{"node1": "alive", "node2": "alive"}); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node1", "VI_51", "MASTER", ""); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node2", "VI_51", "BACKUP", flIP(1)); err != nil {
			return err
		}
		if len(fl.Peers) > 0 {
			return fmt.Errorf("classic peers %+v, want none", fl.Peers)
		}
		return flNoWarnings(fl)
	}
	flWaitSame(t, 20*time.Second, "both nodes alive on both", fs, both)

	cutAt := time.Now()
	flCutGossip(t, ns[0])
	other := map[string]string{"node1": "node2", "node2": "node1"}
	dead := make([]time.Duration, 2)
	for i, f := range fs {
		self, peer := f.name(), other[f.name()]
		dead[i] = flWaitEach(t, 15*time.Second, self+" sees "+peer+" dead", cutAt, []*flNode{f}, func(fl api.Fleet) error {
			if err := flWantNodes(fl, map[string]string{self: "alive", peer: "dead"}); err != nil {
				return err
			}
			// node1's advert source is a gossip node's even while it is dead: no classic peer.
			if len(fl.Peers) > 0 {
				return fmt.Errorf("classic peers %+v, want none", fl.Peers)
			}
			return flNoWarnings(fl)
		})[0]
		t.Logf("%s saw %s dead %v after the cut", self, peer, dead[i].Round(time.Millisecond))
	}
	// Past gossip_to_the_dead_time: memberlist no longer talks to the dead member at all.
	time.Sleep(time.Until(cutAt.Add(max(dead[0], dead[1]) + deadTime + time.Second)))
	for _, f := range fs {
		fl, err := flFleetAPI(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := flWantNodes(fl, map[string]string{f.name(): "alive", other[f.name()]: "dead"}); err != nil {
			t.Fatalf("%s before the heal: %v", f.name(), err)
		}
	}

	healAt := time.Now()
	flHealGossip(t, ns[0])
	t.Logf("gossip cut for %v", healAt.Sub(cutAt).Round(time.Millisecond))
	merged := flWaitEach(t, 40*time.Second, "each node sees the other alive again (no vipd join)", healAt, fs, both)
	for i, f := range fs {
		t.Logf("%s saw %s alive again %v after the heal", f.name(), other[f.name()], merged[i].Round(time.Millisecond))
	}
	views, _ := flWaitSame(t, 5*time.Second, "the same fleet on both nodes after the heal", fs, both)
	t.Logf("fleet after the heal: %s", flSummary(views[0]))
	for _, f := range fs {
		if err := both(flFleetCLI(t, f)); err != nil {
			t.Errorf("vipd status --fleet -o json on %s after the heal: %v", f.name(), err)
		}
		// Who merged: the re-join loop logs `gossip: joined` (debug) when it contacted the other.
		log := f.d().proc.Output()
		for _, l := range append(flLogLines(log, cutAt, "gossip member"), flLogLines(log, healAt, `msg="gossip: joined"`)...) {
			t.Logf("%s: %s", f.name(), l)
		}
	}
}
