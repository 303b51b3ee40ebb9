package integration

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// twoNodes builds a lab with node1 (10.99.0.1) and node2 (10.99.0.2).
func twoNodes(t *testing.T) (*lab.Lab, *lab.Node, *lab.Node) {
	t.Helper()
	l := lab.New(t)
	n1 := l.AddNode("node1", "10.99.0.1/24", "fd00:99::1/64")
	n2 := l.AddNode("node2", "10.99.0.2/24", "fd00:99::2/64")
	return l, n1, n2
}

// vi returns a v3 100 ms instance (fast tests) or a v2 1 s PASS one.
func vi(version, prio int, vips ...string) instanceConf {
	c := instanceConf{Name: "VI_1", VRID: 51, Priority: prio, VIPs: vips}
	if version == 3 {
		c.Version, c.AdvertInt = 3, "0.1"
	} else {
		c.AuthPass = "secret1"
	}
	return c
}

func TestElectionByPriorityAndGracefulHandover(t *testing.T) {
	for _, version := range []int{2, 3} {
		t.Run(map[int]string{2: "v2-1s-PASS", 3: "v3-100ms"}[version], func(t *testing.T) {
			_, n1, n2 := twoNodes(t)
			d1 := startVipd(t, n1, renderConf(t, "node1", false, vi(version, 100, "10.99.0.100/24")))
			d2 := startVipd(t, n2, renderConf(t, "node2", false, vi(version, 150, "10.99.0.100/24")))
			waitVIP(t, 10*time.Second, "10.99.0.100", n2, n1)
			lab.Eventually(t, 5*time.Second, "node1 BACKUP, node2 MASTER", func() bool {
				return d1.state("VI_1") == "BACKUP" && d2.state("VI_1") == "MASTER"
			})

			// Graceful: SIGTERM the master, which sends priority 0 and removes its VIP.
			start := time.Now()
			_ = d2.proc.Signal(syscall.SIGTERM)
			code, err := d2.proc.Wait(2 * time.Second)
			if err != nil {
				t.Fatalf("vipd did not exit within 2 s of SIGTERM: %v", err)
			}
			if code != 0 {
				t.Fatalf("vipd exit code %d after SIGTERM", code)
			}
			if hasVIP(n2, "10.99.0.100") {
				t.Fatalf("node2 still holds the VIP after a graceful stop")
			}
			waitVIP(t, 3*time.Second, "10.99.0.100", n1, n2)
			t.Logf("graceful handover observed after %v", time.Since(start))
			if !strings.Contains(d1.proc.Output(), "received priority 0") && !strings.Contains(d1.proc.Output(), "master down timer expired") {
				t.Errorf("node1 log does not explain the takeover:\n%s", d1.proc.Output())
			}
		})
	}
}

func TestCrashFailoverAndPreemptionOnReturn(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	conf1 := renderConf(t, "node1", false, vi(3, 200, "10.99.0.100/24"))
	d1 := startVipd(t, n1, conf1)
	d2 := startVipd(t, n2, renderConf(t, "node2", false, vi(3, 100, "10.99.0.100/24")))
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)

	// kill -9: no priority 0, the backup waits Master_Down_Interval.
	_ = d1.proc.Kill()
	lab.Eventually(t, 3*time.Second, "node2 MASTER after the crash", func() bool { return d2.state("VI_1") == "MASTER" })
	if !hasVIP(n2, "10.99.0.100") {
		t.Fatal("node2 is MASTER but does not hold the VIP")
	}
	if !strings.Contains(d2.proc.Output(), "master down timer expired") {
		t.Errorf("node2 log does not say why it took over:\n%s", d2.proc.Output())
	}
	// The crashed process left its VIP behind on node1 (a real crash would
	// take the box down). A restarted vipd must clean it up if it does not
	// become master; here it does (priority 200 preempts), so it must end
	// up the only holder.
	if !hasVIP(n1, "10.99.0.100") {
		t.Log("note: the killed vipd left no VIP behind")
	}
	startVipd(t, n1, conf1)
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 3*time.Second, "node2 back to BACKUP", func() bool { return d2.state("VI_1") == "BACKUP" })
}

func TestLeftoverVIPIsRemovedWhenNotMaster(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	startVipd(t, n2, renderConf(t, "node2", false, vi(3, 200, "10.99.0.100/24")))
	waitVIP(t, 5*time.Second, "10.99.0.100", n2)
	// As if an earlier vipd on node1 crashed holding the VIP.
	n1.MustExec("ip", "addr", "add", "10.99.0.100/24", "dev", "eth0")
	d1 := startVipd(t, n1, renderConf(t, "node1", false, vi(3, 100, "10.99.0.100/24")))
	lab.Eventually(t, 3*time.Second, "node1 BACKUP", func() bool { return d1.state("VI_1") == "BACKUP" })
	waitVIP(t, 3*time.Second, "10.99.0.100", n2, n1)
}

func TestNoPreemptKeepsTheCurrentMaster(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	low := vi(3, 100, "10.99.0.100/24")
	high := vi(3, 200, "10.99.0.100/24")
	high.NoPreempt = true
	d2 := startVipd(t, n2, renderConf(t, "node2", false, low))
	waitVIP(t, 5*time.Second, "10.99.0.100", n2, n1)
	d1 := startVipd(t, n1, renderConf(t, "node1", false, high))
	lab.Eventually(t, 3*time.Second, "node1 BACKUP", func() bool { return d1.state("VI_1") == "BACKUP" })
	holdSteady(t, 2*time.Second, "node2 stays MASTER with nopreempt on node1", func() bool {
		return d2.state("VI_1") == "MASTER" && hasVIP(n2, "10.99.0.100") && !hasVIP(n1, "10.99.0.100")
	})
}

// TestEqualPriorityHigherAddressWins: with equal priorities a backup keeps
// deferring to whoever is master (RFC 5798 6.4.2: priority >= ours resets
// the down timer); the primary address breaks the tie when two masters meet,
// e.g. after a partition heals.
func TestEqualPriorityHigherAddressWins(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	c := vi(3, 100, "10.99.0.100/24")
	n1.DropVRRP()
	n2.DropVRRP()
	d1 := startVipd(t, n1, renderConf(t, "node1", false, c))
	d2 := startVipd(t, n2, renderConf(t, "node2", false, c))
	lab.Eventually(t, 5*time.Second, "both MASTER while partitioned", func() bool {
		return d1.state("VI_1") == "MASTER" && d2.state("VI_1") == "MASTER"
	})
	n1.AllowVRRP()
	n2.AllowVRRP()
	waitVIP(t, 3*time.Second, "10.99.0.100", n2, n1)
	holdSteady(t, time.Second, "10.99.0.2 stays master", func() bool {
		return d2.state("VI_1") == "MASTER" && d1.state("VI_1") == "BACKUP"
	})
	if !strings.Contains(d1.proc.Output(), "same priority 100 from higher address 10.99.0.2") {
		t.Errorf("node1 does not explain why it yielded:\n%s", d1.proc.Output())
	}
}

func TestIPv6Election(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	c := instanceConf{Name: "VI_6", VRID: 61, Version: 3, AdvertInt: "0.1", VIPs: []string{"fd00:99::100/64"}}
	c1, c2 := c, c
	c1.Priority, c2.Priority = 100, 150
	d1 := startVipd(t, n1, renderConf(t, "node1", false, c1))
	d2 := startVipd(t, n2, renderConf(t, "node2", false, c2))
	waitVIP(t, 5*time.Second, "fd00:99::100", n2, n1)
	d2.stop()
	waitVIP(t, 3*time.Second, "fd00:99::100", n1, n2)
	if d1.state("VI_6") != "MASTER" {
		t.Fatalf("node1 state %q, want MASTER", d1.state("VI_6"))
	}
}

func TestUnicastPeers(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	c := vi(2, 100, "10.99.0.100/24")
	c1, c2 := c, c
	c1.UnicastSrc, c1.UnicastPeer = "10.99.0.1", []string{"10.99.0.2"}
	c2.UnicastSrc, c2.UnicastPeer, c2.Priority = "10.99.0.2", []string{"10.99.0.1"}, 150
	d1 := startVipd(t, n1, renderConf(t, "node1", false, c1))
	cap1 := n1.Capture("eth0", "ip proto 112")
	d2 := startVipd(t, n2, renderConf(t, "node2", false, c2))
	waitVIP(t, 8*time.Second, "10.99.0.100", n2, n1)
	lab.Eventually(t, 3*time.Second, "node1 BACKUP", func() bool { return d1.state("VI_1") == "BACKUP" })
	time.Sleep(1500 * time.Millisecond)
	advs := lab.VRRPAdverts(cap1.Stop())
	if len(advs) == 0 {
		t.Fatal("no adverts captured on node1")
	}
	for _, a := range advs {
		if a.TTL != 255 {
			t.Errorf("advert from %s with TTL %d, want 255", a.Src, a.TTL)
		}
	}
	_ = d2
}

func TestBadConfigOnSIGHUPChangesNothing(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	d1 := startVipd(t, n1, renderConf(t, "node1", false, vi(3, 200, "10.99.0.100/24")))
	startVipd(t, n2, renderConf(t, "node2", false, vi(3, 100, "10.99.0.100/24")))
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)
	st, err := d1.status()
	if err != nil {
		t.Fatal(err)
	}
	since := st.Instances[0].Since

	writeFile(t, d1.conf, "vrrp_instance VI_1 {\n  virtual_router_id 300\n  interface eth0\n  priority 10\n") // broken
	_ = d1.proc.Signal(syscall.SIGHUP)
	lab.Eventually(t, 3*time.Second, "reload rejected in the log", func() bool {
		return strings.Contains(d1.proc.Output(), "reload rejected")
	})
	holdSteady(t, time.Second, "node1 keeps the VIP", func() bool { return hasVIP(n1, "10.99.0.100") && d1.state("VI_1") == "MASTER" })
	st2, _ := d1.status()
	if !st2.Instances[0].Since.Equal(since) {
		t.Fatalf("instance transitioned on a rejected reload: since %v -> %v", since, st2.Instances[0].Since)
	}

	// A good reload that changes nothing keeps the state; one that lowers
	// the priority hands the VIP over.
	writeFile(t, d1.conf, renderConf(t, "node1", false, vi(3, 200, "10.99.0.100/24")))
	_ = d1.proc.Signal(syscall.SIGHUP)
	holdSteady(t, time.Second, "unchanged reload keeps node1 MASTER", func() bool { return d1.state("VI_1") == "MASTER" })
	st3, _ := d1.status()
	if !st3.Instances[0].Since.Equal(since) {
		t.Fatalf("unchanged instance flapped on reload")
	}
	writeFile(t, d1.conf, renderConf(t, "node1", false, vi(3, 50, "10.99.0.100/24")))
	_ = d1.proc.Signal(syscall.SIGHUP)
	waitVIP(t, 3*time.Second, "10.99.0.100", n2, n1)
}

// TestVipdReloadCommand drives a reload through the control socket, as an
// operator would: a good file is applied live (same instance, new
// priority), a bad one is refused with FILE:LINE and exit status 1.
func TestVipdReloadCommand(t *testing.T) {
	_, n1, _ := twoNodes(t)
	d1 := startVipd(t, n1, renderConf(t, "node1", false, vi(3, 150, "10.99.0.100/24")))
	lab.Eventually(t, 5*time.Second, "node1 MASTER", func() bool { return d1.state("VI_1") == "MASTER" })
	since := instanceStatus(t, d1, "VI_1").Since
	bin := lab.BuildVipd(t)

	writeFile(t, d1.conf, renderConf(t, "node1", false, vi(3, 160, "10.99.0.100/24")))
	if out, err := exec.Command(bin, "reload", "--socket", d1.socket).CombinedOutput(); err != nil {
		t.Fatalf("vipd reload: %v\n%s", err, out)
	}
	st := instanceStatus(t, d1, "VI_1")
	if st.Priority != 160 || st.EffectivePriority != 160 || !st.Since.Equal(since) || st.State != "MASTER" {
		t.Fatalf("after reload: %+v (since was %v)", st, since)
	}

	writeFile(t, d1.conf, "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 0\n}\n")
	out, err := exec.Command(bin, "reload", "--socket", d1.socket).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("vipd reload of a bad file: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), d1.conf+":4: priority 0: must be 1..255") {
		t.Fatalf("reload error does not point at FILE:LINE:\n%s", out)
	}
	if st := instanceStatus(t, d1, "VI_1"); st.Priority != 160 || st.State != "MASTER" {
		t.Fatalf("a rejected reload changed the running instance: %+v", st)
	}
}
