package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// These tests check the lab itself, so that a failing end-to-end test points at vipd, not at the
// test network.

// labPair builds a lab with nodes a (10.99.0.1, fd00:99::1) and b (.2, ::2).
func labPair(t *testing.T) (*lab.Lab, *lab.Node, *lab.Node) {
	t.Helper()
	l := lab.New(t)
	a := l.AddNode("a", "10.99.0.1/24", "fd00:99::1/64")
	b := l.AddNode("b", "10.99.0.2/24", "fd00:99::2/64")
	return l, a, b
}

func labPings(n *lab.Node, dst string) bool {
	_, err := n.Exec("ping", "-c", "1", "-W", "1", dst)
	return err == nil
}

func labNamespaces(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func TestLabNodesReachEachOtherOverTheBridge(t *testing.T) {
	_, a, b := labPair(t)
	for _, dst := range []string{"10.99.0.2", "fd00:99::2"} {
		if !labPings(a, dst) {
			t.Errorf("a cannot ping %s", dst)
		}
	}
	if !labPings(b, "10.99.0.1") {
		t.Error("b cannot ping 10.99.0.1")
	}
	if !a.HasAddr("eth0", netip.MustParseAddr("10.99.0.1")) || !a.HasAddr("eth0", netip.MustParseAddr("fd00:99::1")) {
		t.Errorf("a eth0 addresses = %v, want 10.99.0.1 and fd00:99::1", a.Addrs("eth0"))
	}
	if a.HasAddr("eth0", netip.MustParseAddr("10.99.0.2")) {
		t.Error("a claims b's address")
	}
	var sawPrefix, sawLinkLocal bool
	for _, p := range a.Addrs("eth0") {
		sawPrefix = sawPrefix || p == netip.MustParsePrefix("10.99.0.1/24")
		sawLinkLocal = sawLinkLocal || p.Addr().IsLinkLocalUnicast()
	}
	if !sawPrefix || !sawLinkLocal {
		t.Errorf("a eth0 addresses = %v, want 10.99.0.1/24 and a link-local address", a.Addrs("eth0"))
	}
	if got := a.Addrs("nosuch0"); got != nil {
		t.Errorf("Addrs of a missing interface = %v, want nil", got)
	}
}

func TestLabAddLinkJoinsASecondInterface(t *testing.T) {
	_, a, b := labPair(t)
	a.AddLink("eth1", "10.98.0.1/24")
	b.AddLink("eth1", "10.98.0.2/24")
	if !labPings(a, "10.98.0.2") {
		t.Error("a cannot ping b over eth1")
	}
	a.LinkDown("eth1")
	if labPings(a, "10.98.0.2") {
		t.Error("a pings 10.98.0.2 with eth1 down")
	}
	a.LinkUp("eth1")
	lab.Eventually(t, 5*time.Second, "a reaching 10.98.0.2 after LinkUp", func() bool { return labPings(a, "10.98.0.2") })
}

func TestLabCutLinkLosesCarrierAndRestoreLinkHeals(t *testing.T) {
	_, a, b := labPair(t)
	if !labPings(a, "10.99.0.2") {
		t.Fatal("no connectivity before the cut")
	}
	a.CutLink()
	out := a.MustExec("ip", "link", "show", "dev", "eth0")
	if !strings.Contains(out, "NO-CARRIER") {
		t.Errorf("after CutLink a's eth0 should have no carrier: %s", out)
	}
	if labPings(b, "10.99.0.1") {
		t.Error("b still reaches a after CutLink")
	}
	a.RestoreLink()
	lab.Eventually(t, 5*time.Second, "b reaching a after RestoreLink", func() bool { return labPings(b, "10.99.0.1") })
}

// rawVRRP opens a raw IP protocol 112 socket inside a node (network "ip4:112" or "ip6:112").
func rawVRRP(t *testing.T, n *lab.Node, network string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = net.ListenPacket(network, "")
		return err
	})
	if err != nil {
		t.Fatalf("raw %s socket in %s: %v", network, n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// vrrpDelivered sends marked protocol-112 packets from one socket to dst for up to window and
// reports whether the receiving socket got one.
func vrrpDelivered(t *testing.T, from, to net.PacketConn, dst netip.Addr, window time.Duration) bool {
	t.Helper()
	mark := []byte(fmt.Sprintf("vipd-lab-%d", time.Now().UnixNano()))
	got := make(chan struct{}, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		buf := make([]byte, 1500)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = to.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, _, err := to.ReadFrom(buf)
			if err == nil && bytes.Contains(buf[:n], mark) {
				got <- struct{}{}
				return
			}
		}
	}()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		if _, err := from.WriteTo(mark, &net.IPAddr{IP: dst.AsSlice()}); err != nil && !errors.Is(err, syscall.EPERM) {
			// EPERM is what the nftables output drop returns to the sender.
			t.Fatalf("sending protocol 112 to %v: %v", dst, err)
		}
		select {
		case <-got:
			return true
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

func TestLabDropVRRPBlocksProtocol112BothWaysAndNothingElse(t *testing.T) {
	_, a, b := labPair(t)
	a4, b4 := rawVRRP(t, a, "ip4:112"), rawVRRP(t, b, "ip4:112")
	a6, b6 := rawVRRP(t, a, "ip6:112"), rawVRRP(t, b, "ip6:112")
	b4addr, b6addr := netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("fd00:99::2")
	const pass, block = 2 * time.Second, 600 * time.Millisecond

	if !vrrpDelivered(t, a4, b4, b4addr, pass) || !vrrpDelivered(t, a6, b6, b6addr, pass) {
		t.Fatal("protocol 112 not delivered before any filter: the probe itself is broken")
	}

	a.DropVRRP()
	if rules := a.MustExec("nft", "list", "ruleset"); !strings.Contains(rules, "meta l4proto vrrp") && !strings.Contains(rules, "meta l4proto 112") {
		t.Errorf("a's ruleset has no VRRP drop rule:\n%s", rules)
	}
	if vrrpDelivered(t, a4, b4, b4addr, block) {
		t.Error("IPv4 protocol 112 left a although a drops VRRP")
	}
	if vrrpDelivered(t, a6, b6, b6addr, block) {
		t.Error("IPv6 next header 112 left a although a drops VRRP")
	}
	if !labPings(a, "10.99.0.2") || !labPings(a, "fd00:99::2") {
		t.Error("DropVRRP also blocked ping")
	}
	a.DropVRRP() // twice is harmless
	a.AllowVRRP()
	if !vrrpDelivered(t, a4, b4, b4addr, pass) {
		t.Error("protocol 112 still blocked after AllowVRRP")
	}
	a.AllowVRRP() // without a table is harmless

	b.DropVRRP()
	if vrrpDelivered(t, a4, b4, b4addr, block) || vrrpDelivered(t, a6, b6, b6addr, block) {
		t.Error("protocol 112 reached b although b drops VRRP")
	}
	counters := b.MustExec("nft", "list", "chain", "inet", "vipdlab_vrrp", "in")
	if strings.Contains(counters, "packets 0 ") || !strings.Contains(counters, "packets ") {
		t.Errorf("b's input drop rule counted nothing:\n%s", counters)
	}
	b.AllowVRRP()
	if out := b.MustExec("nft", "list", "ruleset"); strings.Contains(out, "vipdlab_vrrp") {
		t.Errorf("AllowVRRP left the table:\n%s", out)
	}
}

func TestLabCaptureReturnsTimestampedVRRPFrames(t *testing.T) {
	_, a, b := labPair(t)
	a4, b4 := rawVRRP(t, a, "ip4:112"), rawVRRP(t, b, "ip4:112")
	c := b.Capture("eth0", "ip proto 112")
	before := time.Now()
	for i := 0; i < 3; i++ {
		if !vrrpDelivered(t, a4, b4, netip.MustParseAddr("10.99.0.2"), 2*time.Second) {
			t.Fatal("probe not delivered")
		}
	}
	pkts := c.Stop()
	if len(pkts) < 3 {
		t.Fatalf("captured %d packets, want at least 3", len(pkts))
	}
	for _, p := range pkts {
		src, ttl, payload, ok := lab.ParseVRRPFrame(p.Data)
		if !ok || src != netip.MustParseAddr("10.99.0.1") || ttl == 0 || !bytes.HasPrefix(payload, []byte("vipd-lab-")) {
			t.Errorf("frame not parsed as a's probe: ok=%v src=%v ttl=%d payload=%q", ok, src, ttl, payload)
		}
		if p.Time.Before(before.Add(-time.Second)) || p.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("packet time %v outside the test's run", p.Time)
		}
	}
	if _, err := os.Stat(c.Path()); err != nil {
		t.Errorf("pcap file: %v", err)
	}
	if again := c.Stop(); len(again) != len(pkts) {
		t.Errorf("second Stop returned %d packets, want %d", len(again), len(pkts))
	}
}

func TestLabProcessesRunInTheNodeAndReportExit(t *testing.T) {
	_, a, _ := labPair(t)

	p := a.Start("sh", "-c", "ip -4 addr show dev eth0; echo done; exit 3")
	code, err := p.Wait(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	if out := p.Output(); !strings.Contains(out, "10.99.0.1/24") || !strings.Contains(out, "done") {
		t.Errorf("process did not run inside node a, output:\n%s", out)
	}

	sleeper := a.Start("sleep", "600")
	if sleeper.Exited() {
		t.Fatal("sleep exited at once")
	}
	if _, err := sleeper.Wait(50 * time.Millisecond); err == nil {
		t.Error("Wait on a running process returned no error at its timeout")
	}
	if err := sleeper.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := sleeper.Wait(5 * time.Second); err != nil || code != -1 {
		t.Errorf("after SIGTERM: exit %d, err %v; want -1 (signalled), nil", code, err)
	}
	if err := sleeper.Kill(); err != nil {
		t.Errorf("Kill after exit: %v", err)
	}
	if err := sleeper.Signal(syscall.SIGTERM); err == nil {
		t.Error("Signal to an exited process returned no error")
	}
}

func TestLabTeardownKillsProcessesAndDeletesEveryNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("the lab needs root; running as uid %d", os.Geteuid())
	}
	before := labNamespaces(t)
	var prefix string
	var pid int
	t.Run("lab", func(t *testing.T) {
		l, a, _ := labPair(t)
		a.AddLink("eth1")
		prefix = l.Prefix()
		// A process that ignores SIGTERM and lives in its own group: teardown must still end it.
		p := a.Start("sh", "-c", "trap '' TERM; sleep 600")
		pid = p.Pid()
		if got := withPrefix(labNamespaces(t), prefix); len(got) != 3 {
			t.Errorf("lab namespaces = %v, want switch, a and b", got)
		}
	})
	if prefix == "" {
		t.Fatal("lab not built")
	}
	if left := withPrefix(labNamespaces(t), prefix); len(left) != 0 {
		t.Errorf("namespaces left after teardown: %v", left)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists after teardown (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(filepath.Join("/run/vipd-lab", prefix)); !os.IsNotExist(err) {
		t.Errorf("lab marker left after teardown: %v", err)
	}
	if got, want := len(labNamespaces(t)), len(before); got > want {
		t.Errorf("%d namespaces after the test, %d before", got, want)
	}
}

func TestLabSweepRemovesOnlyLabsOfDeadCreators(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("sweep needs root to create namespaces; running as uid %d", os.Geteuid())
	}
	// A dead creator: a process that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("%06x", os.Getpid()&0xffffff)
	leaked, alive := "vl"+suffix[:5]+"e-x", "vl"+suffix[:5]+"f-x"
	for _, c := range []struct {
		ns     string
		marker string
	}{
		{leaked, fmt.Sprintf("%d 1\n", dead.Process.Pid)},
		{alive, ""},
	} {
		ns := c.ns
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		prefix := ns[:9]
		marker := c.marker
		if marker == "" {
			stat, err := os.ReadFile("/proc/self/stat")
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			marker = fmt.Sprintf("%d %s\n", os.Getpid(), f[19])
		}
		if err := os.MkdirAll("/run/vipd-lab", 0o755); err != nil {
			t.Fatal(err)
		}
		mp := filepath.Join("/run/vipd-lab", prefix)
		if err := os.WriteFile(mp, []byte(marker), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(mp) })
	}

	removed, err := lab.Sweep()
	if err != nil {
		t.Errorf("Sweep: %v", err)
	}
	left := labNamespaces(t)
	if len(withPrefix(left, leaked)) != 0 || !slices.Contains(removed, leaked) {
		t.Errorf("leaked lab %s not swept (removed %v)", leaked, removed)
	}
	if len(withPrefix(left, alive)) != 1 || slices.Contains(removed, alive) {
		t.Errorf("lab %s of a live creator was swept (removed %v)", alive, removed)
	}
	if _, err := os.Stat(filepath.Join("/run/vipd-lab", leaked[:9])); !os.IsNotExist(err) {
		t.Errorf("marker of the leaked lab kept: %v", err)
	}
}
