// Package deploy holds no code: its test checks the systemd units.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on the units (with the
// binary path pointed at an executable that exists here) and wants it
// silent: it exits 0 even for a key it ignores, and says so on stderr.
func TestSystemdUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check the units (Debian: systemd, installed by scripts/deps.sh): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	units, err := filepath.Glob("systemd/*.service")
	if err != nil || len(units) < 2 {
		t.Fatalf("units %v (%v): want vipd.service and vipd-release.service", units, err)
	}
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/sbin/vipd", self)
		p := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var out bytes.Buffer
	cmd := exec.Command(sa, append([]string{"verify"}, paths...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out.String())
	}
}

// TestRestartKeepsVIPsStopHandsOver pins the contract of the unit: restart
// is the signal vipd exits on keeping its VIPs, stop the graceful one.
func TestRestartKeepsVIPsStopHandsOver(t *testing.T) {
	b, err := os.ReadFile("systemd/vipd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RestartKillSignal=SIGQUIT", "KillSignal=SIGTERM", "RestartForceExitStatus=75", "SuccessExitStatus=75", "--state-dir /var/lib/vipd/default",
		"OnFailure=vipd-release.service", "StateDirectory=vipd", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(b), "\n"+want) && !strings.Contains(string(b), " "+want) {
			t.Errorf("vipd.service lacks %q", want)
		}
	}
}

// TestNotifyAndWatchdog pins the systemd integration: vipd says when it is
// ready (after its first apply) and keeps the watchdog alive from its main
// loop; only vipd itself may notify (its scripts run in the same cgroup).
func TestNotifyAndWatchdog(t *testing.T) {
	b, err := os.ReadFile("systemd/vipd.service")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			lines[k] = v
		}
	}
	for k, want := range map[string]string{"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "10s", "TimeoutStartSec": "30s"} {
		if got, ok := lines[k]; !ok || got != want {
			t.Errorf("vipd.service: %s=%q, want %s=%s", k, got, k, want)
		}
	}
}
