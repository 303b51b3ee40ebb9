package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReloadsAreCounted: an applied reload and a rejected one (a broken
// file: the running configuration stays) are counted by result.
func TestReloadsAreCounted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.conf")
	good := "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n priority 100\n mcast_src_ip 10.0.0.1\n virtual_ipaddress {\n  10.0.0.100/24\n }\n}\n"
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := testAgentWith(t, Options{ConfigPath: path})
	if err := a.Reload(context.Background()); err != nil {
		t.Fatalf("reload of a good file: %v", err)
	}
	if err := os.WriteFile(path, []byte("vrrp_instance VI_1 {\n virtual_router_id 300\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(context.Background()); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if got := testutil.ToFloat64(a.reloads.WithLabelValues(reloadApplied)); got != 1 {
		t.Errorf("applied reloads = %v, want 1", got)
	}
	if got := testutil.ToFloat64(a.reloads.WithLabelValues(reloadRejected)); got != 1 {
		t.Errorf("rejected reloads = %v, want 1", got)
	}
	if problems, err := testutil.CollectAndLint(a.reloads); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}
