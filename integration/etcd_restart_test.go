package integration

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
