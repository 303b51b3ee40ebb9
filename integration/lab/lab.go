// Package lab builds throw-away networks out of Linux network namespaces for vipd's integration
// tests: a "switch" namespace holding a bridge, one namespace per node joined to the bridge by
// veth pairs, and helpers to run processes in a node, read its addresses, capture its traffic,
// cut its link or filter VRRP only.
//
// Every lab has a unique name prefix ("vl" + 6 hex digits + "-") and is torn down in t.Cleanup,
// also after a panic or t.Fatal. A lab leaked by a test binary that was killed (a test timeout,
// SIGKILL) is removed by Sweep, which New also runs once per process.
//
// The lab never touches the host's own interfaces: every link it makes is created directly inside
// its own namespaces. It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for the netns mounts);
// without it New skips the test with the reason.
//
// The package does not know vipd or keepalived; tests start them with Node.Start.
package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// switchName is the node name reserved for the switch namespace.
const switchName = "switch"

// markerDir holds one file per live lab, named after its prefix, with the creator's pid and
// start time, so that Sweep can tell a leaked lab from one in use.
const markerDir = "/run/vipd-lab"

// Lab is one isolated network: a switch namespace with bridge br0 and the nodes joined to it.
type Lab struct {
	t      testing.TB
	prefix string
	sw     string // switch namespace
	logDir string

	mu       sync.Mutex
	nodes    map[string]*Node
	nsList   []string // namespaces created, in creation order (switch first)
	procs    []*Proc
	ports    int // switch ports made so far, for unique port names
	tornDown bool
}

var sweepOnce sync.Once

// New builds an empty lab: a "switch" namespace with bridge br0 (up, no STP, forward delay 0,
// multicast snooping off) and a unique name prefix "vl<6 random hex>-". It needs root and skips
// the test otherwise. Teardown is registered with t.Cleanup: it kills the processes started
// through the lab and deletes every namespace the lab made, also after a panic or t.Fatal.
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("lab: needs root to create network namespaces (CAP_NET_ADMIN, CAP_SYS_ADMIN); running as uid %d", os.Geteuid())
	}
	for _, tool := range []string{"ip"} {
		if _, err := lookPath(tool); err != nil {
			t.Fatalf("lab: %s not found (install iproute2: scripts/deps.sh): %v", tool, err)
		}
	}
	sweepOnce.Do(func() {
		removed, err := Sweep()
		for _, ns := range removed {
			t.Logf("lab: swept leaked namespace %s", ns)
		}
		if err != nil {
			t.Logf("lab: sweeping leaked labs: %v", err)
		}
	})

	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("lab: random prefix: %v", err)
	}
	l := &Lab{
		t:      t,
		prefix: "vl" + hex.EncodeToString(rnd[:]) + "-",
		nodes:  map[string]*Node{},
		// TempDir first: its removal is then registered before the lab's teardown and so
		// runs after it (cleanups run last-in first-out), keeping logs readable in teardown.
		logDir: t.TempDir(),
	}
	l.sw = l.prefix + switchName
	if err := writeMarker(l.prefix); err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(l.teardown)

	l.addNamespace(l.sw)
	// The switch is a plain L2 bridge: no IPv6 of its own (no RS/MLD noise in captures).
	l.mustRun("ip", "netns", "exec", l.sw, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	l.mustRun("ip", "-n", l.sw, "link", "set", "lo", "up")
	l.mustRun("ip", "-n", l.sw, "link", "add", "br0", "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	l.mustRun("ip", "-n", l.sw, "link", "set", "br0", "up")
	return l
}

// Prefix returns the lab's namespace name prefix, e.g. "vl3f09a2-".
func (l *Lab) Prefix() string { return l.prefix }

// SwitchNS returns the name of the switch namespace (bridge br0 and the nodes' ports).
func (l *Lab) SwitchNS() string { return l.sw }

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

// AddNode creates namespace <prefix><name> with lo up and a veth pair: "eth0" in the node, its
// peer a port of br0 in the switch. eth0 comes up with addrs ("10.99.0.1/24", "fd00:99::1/64";
// IPv6 addresses are added with nodad) and duplicate address detection off (accept_dad=0,
// dad_transmits=0), so that VRRP over IPv6 can start at once. It returns when eth0 is up and its
// IPv6 link-local address is usable.
func (l *Lab) AddNode(name string, addrs ...string) *Node {
	l.t.Helper()
	if !nodeNameRE.MatchString(name) || name == switchName {
		l.t.Fatalf("lab: bad node name %q: want [A-Za-z0-9_.-], at most 32, not %q", name, switchName)
	}
	l.mu.Lock()
	if _, dup := l.nodes[name]; dup {
		l.mu.Unlock()
		l.t.Fatalf("lab: node %q added twice", name)
	}
	n := &Node{Name: name, NS: l.prefix + name, lab: l, t: l.t, ports: map[string]string{}}
	l.nodes[name] = n
	l.mu.Unlock()

	l.addNamespace(n.NS)
	// New links inherit "default": DAD off from the start, IPv6 on whatever the host says.
	l.mustRun("ip", "netns", "exec", n.NS, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=0",
		"net.ipv6.conf.default.disable_ipv6=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.ipv6.conf.default.dad_transmits=0")
	l.mustRun("ip", "-n", n.NS, "link", "set", "lo", "up")
	n.AddLink("eth0", addrs...)
	return n
}

// Node returns the node added under name, or nil.
func (l *Lab) Node(name string) *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[name]
}

func (l *Lab) addNamespace(ns string) {
	l.t.Helper()
	l.mu.Lock()
	l.nsList = append(l.nsList, ns)
	l.mu.Unlock()
	l.mustRun("ip", "netns", "add", ns)
}

func (l *Lab) newPortName() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ports++
	return fmt.Sprintf("p%d", l.ports)
}

// mustRun runs a command (outside any namespace unless the command says so) and fails the test
// with its output on error.
func (l *Lab) mustRun(name string, args ...string) string {
	l.t.Helper()
	out, err := run(name, args...)
	if err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	return out
}

// teardown kills every process started through the lab (and anything else left inside its
// namespaces), then deletes the namespaces. Errors are logged, never fatal: a teardown must
// finish.
func (l *Lab) teardown() {
	l.mu.Lock()
	if l.tornDown {
		l.mu.Unlock()
		return
	}
	l.tornDown = true
	procs := append([]*Proc(nil), l.procs...)
	nsList := append([]string(nil), l.nsList...)
	l.mu.Unlock()

	for _, p := range procs {
		_ = p.Kill()
	}
	for _, p := range procs {
		if _, err := p.Wait(5 * time.Second); err != nil && !p.Exited() {
			l.t.Logf("lab teardown: %s: %v", p, err)
		}
	}
	if l.t.Failed() {
		for _, p := range procs {
			l.t.Logf("lab: output of %s (exit %s), last lines:\n%s", p, p.exitString(), tail(p.Output(), 40))
		}
	}
	// Delete nodes first, the switch last (it was created first).
	for i := len(nsList) - 1; i >= 0; i-- {
		if err := deleteNamespace(nsList[i]); err != nil {
			l.t.Logf("lab teardown: %v", err)
		}
	}
	if err := os.Remove(filepath.Join(markerDir, l.prefix)); err != nil && !os.IsNotExist(err) {
		l.t.Logf("lab teardown: %v", err)
	}
}

// deleteNamespace kills every process in ns, then deletes it. A namespace that does not exist is
// not an error.
func deleteNamespace(ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); os.IsNotExist(err) {
		return nil
	}
	for attempt := 0; attempt < 50; attempt++ {
		pids := namespacePids(ns)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := run("ip", "netns", "del", ns); err != nil {
		return fmt.Errorf("deleting namespace %s: %w (%s)", ns, err, strings.TrimSpace(out))
	}
	return nil
}

// namespacePids lists the pids of processes in namespace ns (`ip netns pids`).
func namespacePids(ns string) []int {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// run runs a command and returns its combined output; the error names the command and carries
// the output.
func run(name string, args ...string) (string, error) {
	path, err := lookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// lookPath finds a tool on PATH or in the sbin directories, which a non-login root shell may
// lack on PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("%s: not found", name)
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH or in /usr/sbin, /sbin", name)
}

// Eventually polls cond every 20 ms until it is true, or fails the test after timeout with
// "timed out after <timeout> waiting for <what>".
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parsePrefixes parses interface addresses in CIDR form, failing the test on a bad one.
func parsePrefixes(t testing.TB, addrs []string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			t.Fatalf("lab: address %q: want CIDR form like 10.99.0.1/24: %v", a, err)
		}
		out = append(out, p)
	}
	return out
}

func tail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
