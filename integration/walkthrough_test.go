package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// notifyLog is a file notify scripts append "node state" lines to.
type notifyLog struct {
	t    *testing.T
	path string
}

func newNotifyLog(t *testing.T) *notifyLog {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &notifyLog{t: t, path: filepath.Join(dir, "notify.log")}
}

func (l *notifyLog) lines() []string {
	b, _ := os.ReadFile(l.path)
	var out []string
	for _, s := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (l *notifyLog) last(node string) string {
	ls := l.lines()
	for k := len(ls) - 1; k >= 0; k-- {
		if strings.HasPrefix(ls[k], node+" ") {
			return strings.TrimPrefix(ls[k], node+" ")
		}
	}
	return ""
}

func (l *notifyLog) waitLast(node, state string) {
	l.t.Helper()
	lab.Eventually(l.t, 8*time.Second, fmt.Sprintf("notify says %s %s", node, state), func() bool {
		return l.last(node) == state
	})
}

// notifyScript writes an executable root-owned script (enable_script_security
// accepts it) appending "<node> <state>" to the log.
func (l *notifyLog) script(t *testing.T, node string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "notify-"+node+".sh")
	body := fmt.Sprintf("#!/bin/sh\necho \"%s $1\" >> %s\n", node, l.path)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// walkthroughConf is the tutorial configuration most keepalived guides
// teach: VRID 157, PASS 1111, a maintenance-file check with weight -2 and
// notify scripts per state.
func walkthroughConf(node, state string, prio int, check, downFile, notify string) string {
	return fmt.Sprintf(`global_defs {
    router_id %[1]s
    script_user root
    enable_script_security
}

vrrp_script chk_main {
    script "%[5]s"
    interval 1
    weight -2
}

vrrp_instance VI_1 {
    state %[2]s
    interface eth0
    virtual_router_id 157
    priority %[3]d
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        10.99.0.157/24
    }
    track_script {
        chk_main
    }
    notify_master "%[7]s MASTER"
    notify_backup "%[7]s BACKUP"
    notify_fault "%[7]s FAULT"
}
`, node, state, prio, "", strings.ReplaceAll(check, "FILE", downFile), "", notify)
}

// TestKeepalivedTutorialWalkthrough is the walkthrough of the issue with two
// vipd nodes: MASTER 100 / BACKUP 99, a maintenance file that lowers node1
// by 2, notify scripts recording every transition.
func TestKeepalivedTutorialWalkthrough(t *testing.T) {
	runWalkthrough(t, false)
}

// TestKeepalivedTutorialWalkthroughWithKeepalivedPeer replaces node2 by real
// keepalived (with a check command keepalived 2.x accepts).
func TestKeepalivedTutorialWalkthroughWithKeepalivedPeer(t *testing.T) {
	lab.Keepalived(t)
	runWalkthrough(t, true)
}

func runWalkthrough(t *testing.T, keepalivedPeer bool) {
	_, n1, n2 := twoNodes(t)
	log := newNotifyLog(t)
	down1 := filepath.Join(t.TempDir(), "down")
	down2 := filepath.Join(t.TempDir(), "down")
	shellCheck := "[[ -f FILE ]] && exit 1 || exit 0"
	conf1 := walkthroughConf("node1", "MASTER", 100, shellCheck, down1, log.script(t, "node1"))
	start1 := func() *daemon { return startVipd(t, n1, conf1) }
	start2 := func() *daemon {
		if keepalivedPeer {
			return startKeepalived(t, n2, walkthroughConf("node2", "BACKUP", 99, "/usr/bin/test ! -f FILE", down2, log.script(t, "node2")))
		}
		return startVipd(t, n2, walkthroughConf("node2", "BACKUP", 99, shellCheck, down2, log.script(t, "node2")))
	}

	// Start both: node1 holds the VIP.
	d1 := start1()
	d2 := start2()
	waitVIP(t, 10*time.Second, "10.99.0.157", n1, n2)
	log.waitLast("node1", "MASTER")
	log.waitLast("node2", "BACKUP")

	// Stop node1: node2 takes the VIP and says MASTER.
	d1.stop()
	waitVIP(t, 5*time.Second, "10.99.0.157", n2, n1)
	log.waitLast("node2", "MASTER")

	// Start node1 again: it takes the VIP back.
	d1 = start1()
	waitVIP(t, 10*time.Second, "10.99.0.157", n1, n2)
	log.waitLast("node1", "MASTER")
	log.waitLast("node2", "BACKUP")

	// Maintenance file on node1: 100-2 = 98 < 99, node2 preempts.
	writeFile(t, down1, "")
	waitVIP(t, 8*time.Second, "10.99.0.157", n2, n1)
	log.waitLast("node1", "BACKUP")
	log.waitLast("node2", "MASTER")
	if !keepalivedPeer {
		st, err := d1.status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Instances[0].EffectivePriority != 98 {
			t.Errorf("node1 effective priority %d, want 98", st.Instances[0].EffectivePriority)
		}
	}

	// Remove it: node1 takes the VIP back.
	if err := os.Remove(down1); err != nil {
		t.Fatal(err)
	}
	waitVIP(t, 8*time.Second, "10.99.0.157", n1, n2)
	log.waitLast("node1", "MASTER")
	log.waitLast("node2", "BACKUP")
	if keepalivedPeer {
		for _, line := range strings.Split(d2.proc.Output(), "\n") {
			if keepalivedComplaints.MatchString(line) {
				t.Errorf("keepalived complained: %s", line)
			}
		}
	}
	t.Logf("notify log:\n%s", strings.Join(log.lines(), "\n"))
}
