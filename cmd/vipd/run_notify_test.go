package main

import (
	"os"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/sdnotify"
)

func TestRunTakesSystemdsNotifySocketOutOfTheEnvironment(t *testing.T) {
	t.Setenv(sdnotify.EnvSocket, "/run/systemd/notify")
	t.Setenv(sdnotify.EnvWatchdogUsec, "10000000")
	t.Setenv(sdnotify.EnvWatchdogPID, "")
	os.Unsetenv(sdnotify.EnvWatchdogPID)
	r, got := vipd(t, "run", "--config", "k.conf")
	if r.code != 0 || got == nil {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got.Notify == nil || got.Notify.WatchdogInterval() != 10*time.Second {
		t.Fatalf("the agent got notifier %v: want one with a 10s watchdog", got.Notify)
	}
	// Scripts the agent starts must not find them.
	for _, k := range []string{sdnotify.EnvSocket, sdnotify.EnvWatchdogUsec} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("%s left in the environment", k)
		}
	}
}

func TestRunWithoutSystemdHasNoNotifier(t *testing.T) {
	t.Setenv(sdnotify.EnvSocket, "")
	os.Unsetenv(sdnotify.EnvSocket)
	_, got := vipd(t, "run", "--config", "k.conf")
	if got == nil || got.Notify != nil {
		t.Fatalf("options %+v: want no notifier", got)
	}
}
