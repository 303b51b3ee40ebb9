package integration

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// TestEtcdMaintenanceSurvivesARestartWithEtcdDown: n1 is in maintenance by an etcd key, every
// etcd member dies, and n1's vipd is stopped and started again: it starts on the store's last
// good state saved in --state-dir, so it stays in maintenance and the VIP stays on n2.
func TestEtcdMaintenanceSurvivesARestartWithEtcdDown(t *testing.T) {
	a := newArbLab(t, false)
	state := filepath.Join(t.TempDir(), "n1-state")
	saved := filepath.Join(state, "etcd-snapshot.json")
	a.ds[0].stop()
	a.start(t, 0, "--state-dir", state)
	waitVIP(t, 15*time.Second, arbVIP, a.vipd[0], a.all...)

	a.etcd.put("/vipd/maintenance/n1", "disk swap")
	waitVIP(t, 10*time.Second, arbVIP, a.vipd[1], a.all...)
	lab.Eventually(t, 5*time.Second, "n1 in FAULT, its saved store state with the maintenance", func() bool {
		b, err := os.ReadFile(saved)
		return a.ds[0].state("VI_1") == "FAULT" && err == nil && strings.Contains(string(b), "disk swap")
	})
	a.etcd.killAll()

	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	a.ds[0].stop()
	a.start(t, 0, "--state-dir", state)
	lab.Eventually(t, 10*time.Second, "n1 answers", func() bool { return a.ds[0].state("VI_1") != "" })
	holdSteady(t, 6*time.Second, "n1 stays in maintenance after a restart with etcd down", func() bool {
		return a.ds[0].state("VI_1") == "FAULT"
	})
	r := w.Report()
	t.Logf("restart of n1 with etcd down: %s", r)
	if len(r.Doubles) > 0 || len(r.None) > 0 || len(r.Changes) != 1 || r.Changes[0].Holder != "n2" {
		t.Errorf("the VIP moved when n1 restarted with etcd down: %s", r)
	}
	if !chLogged(a.ds[0], "etcd: starting on the store's last good state") {
		t.Errorf("n1's log does not say it started on the saved store state:\n%s", lastLines(a.ds[0].proc.Output(), 20))
	}
}

// TestArbiterRestartAndCrashRestartMoveNothing: with arbitration on, a restart (SIGQUIT, then
// vipd run again on the same --state-dir) and a crash restart (kill -9, then run again) of the
// master keep the VIP where it is: the new run resumes MASTER, takes over the previous run's
// lease and keeps the same claim (same create revision).
func TestArbiterRestartAndCrashRestartMoveNothing(t *testing.T) {
	a := newArbLab(t, false)
	state := filepath.Join(t.TempDir(), "n1-state")
	a.ds[0].stop()
	a.start(t, 0, "--state-dir", state)
	waitVIP(t, 15*time.Second, arbVIP, a.vipd[0], a.all...)
	a.waitClaim(t, "n1")
	rev := func() string {
		out, err := a.etcd.ctl("get", "-w", "fields", "/vipd/arbiter/claim/VI_1")
		if err != nil {
			return "?"
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, `"CreateRevision" : `) {
				return strings.TrimPrefix(l, `"CreateRevision" : `)
			}
		}
		return ""
	}
	before := rev()
	w := lab.WatchHolders(t, netip.MustParseAddr(arbVIP), 20*time.Millisecond, a.all...)
	for _, how := range []string{"restart (SIGQUIT)", "crash restart (kill -9)"} {
		w.Report()
		old := a.ds[0]
		if how == "restart (SIGQUIT)" {
			_ = old.proc.Signal(syscall.SIGQUIT)
		} else {
			_ = old.proc.Kill()
		}
		if _, err := old.proc.Wait(5 * time.Second); err != nil {
			t.Fatalf("%s: n1 did not exit: %v", how, err)
		}
		if b, err := os.ReadFile(filepath.Join(state, "state.json")); err == nil {
			t.Logf("%s: state file:\n%s", how, b)
		}
		d := a.start(t, 0, "--state-dir", state)
		lab.Eventually(t, 10*time.Second, "n1 MASTER again", func() bool { return d.state("VI_1") == "MASTER" })
		time.Sleep(5 * time.Second) // more than a Master_Down_Interval and the lease's TTL
		r := w.Report()
		t.Logf("%s of n1: %s", how, r)
		if len(r.Doubles) > 0 || len(r.None) > 0 || len(r.Changes) != 1 || r.Changes[0].Holder != "n1" {
			t.Errorf("%s of n1 moved the VIP: %s\nthe new run's log:\n%s", how, r, lastLines(d.proc.Output(), 60))
		}
		if got := rev(); got != before || got == "" {
			t.Errorf("%s: the claim's create revision is %q, was %q: the claim was not kept", how, got, before)
		}
		if !chLogged(d, "arbiter: kept the lease of the previous run") {
			t.Errorf("%s: n1 did not take over its previous lease:\n%s", how, lastLines(d.proc.Output(), 30))
		}
	}
}
