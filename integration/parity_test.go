package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

func instanceStatus(t *testing.T, d *daemon, name string) api.InstanceStatus {
	t.Helper()
	st, err := d.status()
	if err != nil {
		t.Fatalf("status of %s: %v", d.node.Name, err)
	}
	for _, in := range st.Instances {
		if in.Name == name {
			return in
		}
	}
	t.Fatalf("%s has no instance %s", d.node.Name, name)
	return api.InstanceStatus{}
}

// TestLinkCutPutsTheMasterInFaultAndItRecovers: carrier loss on the
// master's interface is FAULT (VIP released, the backup takes over); the
// link coming back is BACKUP and a re-election.
func TestLinkCutPutsTheMasterInFaultAndItRecovers(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	d1 := startVipd(t, n1, renderConf(t, "node1", false, vi(3, 150, "10.99.0.100/24")))
	d2 := startVipd(t, n2, renderConf(t, "node2", false, vi(3, 100, "10.99.0.100/24")))
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)

	n1.CutLink()
	lab.Eventually(t, 3*time.Second, "node1 FAULT", func() bool { return d1.state("VI_1") == "FAULT" })
	if hasVIP(n1, "10.99.0.100") {
		t.Fatal("node1 kept its VIP in FAULT")
	}
	if c := instanceStatus(t, d1, "VI_1").Cause; !strings.Contains(c, "eth0") {
		t.Errorf("FAULT cause %q does not name the interface", c)
	}
	lab.Eventually(t, 3*time.Second, "node2 MASTER", func() bool { return d2.state("VI_1") == "MASTER" })

	n1.RestoreLink()
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 3*time.Second, "node2 back to BACKUP", func() bool { return d2.state("VI_1") == "BACKUP" })
}

// TestSyncGroupMovesTogetherWhenATrackedInterfaceGoesDown: two instances
// in a sync group; one tracks eth1, which goes down: both leave.
func TestSyncGroupMovesTogetherWhenATrackedInterfaceGoesDown(t *testing.T) {
	runSyncGroupTrackedInterface(t, false)
}

// TestSyncGroupWithKeepalivedPeer: the same with node2 running keepalived's
// own sync group: the groups move across the two daemons together.
func TestSyncGroupWithKeepalivedPeer(t *testing.T) {
	lab.Keepalived(t)
	runSyncGroupTrackedInterface(t, true)
}

func runSyncGroupTrackedInterface(t *testing.T, keepalivedPeer bool) {
	_, n1, n2 := twoNodes(t)
	n1.AddLink("eth1", "10.98.0.1/24")
	n2.AddLink("eth1", "10.98.0.2/24")
	log := newNotifyLog(t)
	conf := func(node string, prio int) string {
		a := vi(3, prio, "10.99.0.100/24")
		a.Name = "VI_A"
		a.Extra = "    track_interface {\n        eth1\n    }"
		b := vi(3, prio, "10.98.0.100/24")
		b.Name, b.VRID, b.Interface = "VI_B", 52, "eth1"
		script := log.script(t, node)
		return renderConf(t, node, keepalivedPeer && node == "node2", a, b) + fmt.Sprintf(`
vrrp_sync_group G1 {
    group {
        VI_A
        VI_B
    }
    notify_master "%[1]s MASTER"
    notify_backup "%[1]s BACKUP"
    notify_fault "%[1]s FAULT"
}
`, script)
	}
	d1 := startVipd(t, n1, conf("node1", 150))
	var d2 *daemon
	if keepalivedPeer {
		d2 = startKeepalived(t, n2, conf("node2", 100))
	} else {
		d2 = startVipd(t, n2, conf("node2", 100))
	}
	n2holds := func() bool {
		return n2.HasAddr("eth0", mustAddr("10.99.0.100")) && n2.HasAddr("eth1", mustAddr("10.98.0.100"))
	}
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 3*time.Second, "node1 holds both", func() bool { return n1.HasAddr("eth1", mustAddr("10.98.0.100")) })

	// eth1 down inside node1: VI_B's own interface and VI_A's tracked one.
	n1.LinkDown("eth1")
	lab.Eventually(t, 4*time.Second, "node2 MASTER for both", n2holds)
	if s := d1.state("VI_A"); s != "FAULT" {
		t.Errorf("node1 VI_A %s, want FAULT (sync group)", s)
	}
	if hasVIP(n1, "10.99.0.100") {
		t.Error("node1 kept VI_A's VIP")
	}
	log.waitLast("node1", "FAULT")
	log.waitLast("node2", "MASTER")

	n1.LinkUp("eth1")
	lab.Eventually(t, 5*time.Second, "node1 MASTER for both again", func() bool {
		return d1.state("VI_A") == "MASTER" && d1.state("VI_B") == "MASTER"
	})
	waitVIP(t, 3*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 3*time.Second, "node2 released both", func() bool {
		return !n2.HasAddr("eth0", mustAddr("10.99.0.100")) && !n2.HasAddr("eth1", mustAddr("10.98.0.100"))
	})
	log.waitLast("node1", "MASTER")
	log.waitLast("node2", "BACKUP")
	if keepalivedPeer {
		for _, line := range splitLines(d2.proc.Output()) {
			if keepalivedComplaints.MatchString(line) {
				t.Errorf("keepalived complained: %s", line)
			}
		}
	}
}

// TestVirtualRoutesFollowMaster: virtual_routes are added on MASTER and
// removed on leaving it.
func TestVirtualRoutesFollowMaster(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	c := vi(3, 150, "10.99.0.100/24")
	c.Extra = "    virtual_routes {\n        192.0.2.0/24 via 10.99.0.254 dev eth0\n        blackhole 198.51.100.0/24\n    }"
	d1 := startVipd(t, n1, renderConf(t, "node1", false, c))
	c2 := c
	c2.Priority = 100
	startVipd(t, n2, renderConf(t, "node2", false, c2))
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)
	routes := func(n *lab.Node) string {
		out, _ := n.Exec("ip", "route", "show", "table", "all")
		return out
	}
	lab.Eventually(t, 2*time.Second, "routes on node1", func() bool {
		r := routes(n1)
		return strings.Contains(r, "192.0.2.0/24 via 10.99.0.254") && strings.Contains(r, "blackhole 198.51.100.0/24")
	})
	if r := routes(n2); strings.Contains(r, "192.0.2.0/24") {
		t.Fatalf("backup has the virtual route:\n%s", r)
	}
	d1.stop()
	if r := routes(n1); strings.Contains(r, "192.0.2.0/24") || strings.Contains(r, "198.51.100.0/24") {
		t.Fatalf("stopped master kept its virtual routes:\n%s", r)
	}
	lab.Eventually(t, 3*time.Second, "routes on node2", func() bool { return strings.Contains(routes(n2), "192.0.2.0/24 via 10.99.0.254") })
}

// TestVMACInstance: use_vmac puts the VIP on a macvlan with the VRRP
// virtual MAC, adverts come from it, and it is removed at stop.
// vmacPair starts two vipd nodes whose instance VI_1 (VRID 51) uses a VMAC
// with the extra keywords given, and waits for node1 to be MASTER with the
// VIP on vrrp.51.
func vmacPair(t *testing.T, extra string) (n1, n2 *lab.Node, d1, d2 *daemon) {
	t.Helper()
	_, n1, n2 = twoNodes(t)
	c := vi(3, 150, "10.99.0.100/24")
	c.Extra = extra
	d1 = startVipd(t, n1, renderConf(t, "node1", false, c))
	c.Priority = 100
	d2 = startVipd(t, n2, renderConf(t, "node2", false, c))
	lab.Eventually(t, 5*time.Second, "node1 MASTER, node2 BACKUP", func() bool {
		return d1.state("VI_1") == "MASTER" && d2.state("VI_1") == "BACKUP"
	})
	lab.Eventually(t, 2*time.Second, "VIP on vrrp.51", func() bool { return n1.HasAddr("vrrp.51", mustAddr("10.99.0.100")) })
	return n1, n2, d1, d2
}

func TestVMACInstance(t *testing.T) {
	n1, n2, d1, d2 := vmacPair(t, "    use_vmac")
	out := n1.MustExec("ip", "-j", "-d", "link", "show", "vrrp.51")
	var links []struct {
		Address  string `json:"address"`
		LinkInfo struct {
			InfoKind string `json:"info_kind"`
			InfoData struct {
				Mode string `json:"mode"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip link: %v %s", err, out)
	}
	if links[0].Address != "00:00:5e:00:01:33" || links[0].LinkInfo.InfoKind != "macvlan" || links[0].LinkInfo.InfoData.Mode != "private" {
		t.Fatalf("vrrp.51 = %+v, want macvlan private 00:00:5e:00:01:33", links[0])
	}
	// Adverts on the wire come from the virtual MAC.
	capt := n2.Capture("eth0", "ip proto 112")
	time.Sleep(500 * time.Millisecond)
	pkts := capt.Stop()
	found := false
	for _, p := range pkts {
		if len(p.Data) > 12 && fmt.Sprintf("%x", p.Data[6:12]) == "00005e000133" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no advert from 00:00:5e:00:01:33 among %d captured frames", len(pkts))
	}
	// Failover still works through the VMACs, and stop removes it.
	d1.stop()
	lab.Eventually(t, 3*time.Second, "node2 MASTER", func() bool { return d2.state("VI_1") == "MASTER" })
	if _, err := n1.Exec("ip", "link", "show", "vrrp.51"); err == nil {
		t.Fatal("vrrp.51 still exists after vipd stopped")
	}
}

// TestInsecureScriptIsRefused: with enable_script_security, a script others
// can write is refused with a clear log line and does not affect priority.
func TestInsecureScriptIsRefused(t *testing.T) {
	_, n1, _ := twoNodes(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	script := filepath.Join(dir, "check.sh")
	writeFile(t, script, "#!/bin/sh\nexit 1\n")
	os.Chmod(script, 0o777)
	c := vi(3, 150, "10.99.0.100/24")
	c.Extra = "    track_script {\n        chk\n    }"
	conf := strings.Replace(renderConf(t, "node1", true, c), "vrrp_instance", fmt.Sprintf("vrrp_script chk {\n    script %q\n    weight -100\n}\n\nvrrp_instance", script), 1)
	d1 := startVipd(t, n1, conf)
	lab.Eventually(t, 5*time.Second, "node1 MASTER", func() bool { return d1.state("VI_1") == "MASTER" })
	if p := instanceStatus(t, d1, "VI_1").EffectivePriority; p != 150 {
		t.Fatalf("effective priority %d: the insecure script was run", p)
	}
	if out := d1.proc.Output(); !strings.Contains(out, "check.sh") || !strings.Contains(strings.ToLower(out), "secur") {
		t.Fatalf("no clear log line about the refused script:\n%s", out)
	}
}

// TestHangingScriptIsKilledAndCountsAsFailed: a vrrp_script that never
// returns is killed at its timeout, counts as failed (weight applies), and
// the daemon stays responsive.
func TestHangingScriptIsKilledAndCountsAsFailed(t *testing.T) {
	_, n1, _ := twoNodes(t)
	c := vi(3, 150, "10.99.0.100/24")
	c.Extra = "    track_script {\n        hang\n    }"
	conf := strings.Replace(renderConf(t, "node1", false, c), "vrrp_instance",
		"vrrp_script hang {\n    script \"/bin/sleep 100\"\n    interval 1\n    timeout 1\n    weight -50\n}\n\nvrrp_instance", 1)
	d1 := startVipd(t, n1, conf)
	lab.Eventually(t, 6*time.Second, "effective priority 100", func() bool {
		st, err := d1.status()
		return err == nil && len(st.Instances) == 1 && st.Instances[0].EffectivePriority == 100
	})
	time.Sleep(2 * time.Second)
	out, _ := n1.Exec("sh", "-c", "ps -eo stat,args | grep '[s]leep 100' || true")
	if n := strings.Count(out, "sleep 100"); n > 2 {
		t.Fatalf("hung scripts pile up (%d running):\n%s", n, out)
	}
	if strings.Contains(out, "Z") {
		t.Fatalf("zombie left:\n%s", out)
	}
	if _, err := d1.status(); err != nil {
		t.Fatalf("daemon unresponsive: %v", err)
	}
	tracked := instanceStatus(t, d1, "VI_1").Tracked
	if len(tracked) == 0 {
		t.Fatal("status shows no tracked items")
	}
	for _, it := range tracked {
		if it.Kind == "script" && it.Name == "hang" && it.OK {
			t.Fatalf("hanging script reported OK: %+v", it)
		}
	}
}

// TestFlappingScriptNeedsFallAndRiseInARow: with fall 3 / rise 3 at 1 s, a
// check that fails once does not move the VIP; one that keeps failing does;
// recovery needs three good runs in a row.
func TestFlappingScriptNeedsFallAndRiseInARow(t *testing.T) {
	_, n1, n2 := twoNodes(t)
	// The nodes share the host's file system: each checks its own file.
	down := filepath.Join(t.TempDir(), "down")
	conf := func(node string, prio int, file string) string {
		c := vi(3, prio, "10.99.0.100/24")
		c.Extra = "    track_script {\n        chk\n    }"
		return strings.Replace(renderConf(t, node, false, c), "vrrp_instance", fmt.Sprintf(
			"vrrp_script chk {\n    script \"/usr/bin/test ! -f %s\"\n    interval 1\n    fall 3\n    rise 3\n    weight -100\n}\n\nvrrp_instance", file), 1)
	}
	d1 := startVipd(t, n1, conf("node1", 150, down))
	startVipd(t, n2, conf("node2", 100, down+".node2"))
	waitVIP(t, 5*time.Second, "10.99.0.100", n1, n2)

	// One failed run (the file exists for ~1.2 s): no change.
	writeFile(t, down, "")
	time.Sleep(1200 * time.Millisecond)
	os.Remove(down)
	holdSteady(t, 3*time.Second, "node1 keeps the VIP after one failure", func() bool {
		return hasVIP(n1, "10.99.0.100") && instanceStatus(t, d1, "VI_1").EffectivePriority == 150
	})

	// Failing for good: after three runs, priority 50 and node2 takes over.
	writeFile(t, down, "")
	lab.Eventually(t, 6*time.Second, "node1 priority 50", func() bool { return instanceStatus(t, d1, "VI_1").EffectivePriority == 50 })
	waitVIP(t, 3*time.Second, "10.99.0.100", n2, n1)

	// Recovery: three good runs, then node1 preempts back.
	os.Remove(down)
	lab.Eventually(t, 6*time.Second, "node1 priority 150", func() bool { return instanceStatus(t, d1, "VI_1").EffectivePriority == 150 })
	waitVIP(t, 3*time.Second, "10.99.0.100", n1, n2)
}

// TestVMACXmitBase: with vmac_xmit_base the VIP lives on the VMAC but the
// adverts leave from the base interface's own MAC; election still works.
func TestVMACXmitBase(t *testing.T) {
	n1, n2, d1, d2 := vmacPair(t, "    use_vmac\n    vmac_xmit_base")
	base := strings.TrimSpace(n1.MustExec("cat", "/sys/class/net/eth0/address"))
	capt := n2.Capture("eth0", "ip proto 112")
	time.Sleep(500 * time.Millisecond)
	var fromBase, fromVMAC int
	for _, p := range capt.Stop() {
		if len(p.Data) < 12 {
			continue
		}
		switch net.HardwareAddr(p.Data[6:12]).String() {
		case base:
			fromBase++
		case "00:00:5e:00:01:33":
			fromVMAC++
		}
	}
	if fromBase == 0 || fromVMAC != 0 {
		t.Fatalf("adverts from base MAC %s: %d, from the VMAC: %d; want all from the base", base, fromBase, fromVMAC)
	}
	d1.stop()
	lab.Eventually(t, 3*time.Second, "node2 MASTER", func() bool { return d2.state("VI_1") == "MASTER" })
}
