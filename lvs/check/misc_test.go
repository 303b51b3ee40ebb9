package check

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
)

// miscChecker writes a shell script with body into a temporary directory
// and returns a MISC_CHECK running it.
func miscChecker(t *testing.T, body string) *config.Checker {
	t.Helper()
	path := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &config.Checker{Type: config.CheckMisc, MiscPath: path, DelayLoop: config.Duration(5 * time.Second)}
}

func TestMiscCheckJudgesTheExitStatus(t *testing.T) {
	weight := func(o Outcome) int {
		if o.Weight == nil {
			return -1
		}
		return *o.Weight
	}
	tests := []struct {
		name       string
		body       string
		dynamic    bool
		ok         bool
		cause      string
		wantWeight int // -1: none
	}{
		{"exit 0 passes", "exit 0", false, true, "exit status 0", -1},
		{"exit 1 fails", "exit 1", false, false, "exit status 1", -1},
		{"exit 5 fails without misc_dynamic", "exit 5", false, false, "exit status 5", -1},
		{"misc_dynamic exit 0 passes with the configured weight", "exit 0", true, true, "exit status 0", -1},
		{"misc_dynamic exit 1 fails", "exit 1", true, false, "exit status 1", -1},
		{"misc_dynamic exit 5 passes with weight 3", "exit 5", true, true, "exit status 5: weight 3", 3},
		{"misc_dynamic exit 2 passes with weight 0", "exit 2", true, true, "exit status 2: weight 0", 0},
		{"misc_dynamic exit 255 passes with weight 253", "exit 255", true, true, "exit status 255: weight 253", 253},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := miscChecker(t, tt.body)
			c.MiscDynamic = tt.dynamic
			o := probeOnce(t, c, Options{})
			expect(t, o, tt.ok, tt.cause)
			if got := weight(o); got != tt.wantWeight {
				t.Errorf("weight %d, want %d (-1: none)", got, tt.wantWeight)
			}
		})
	}
}

func TestMiscCheckIsKilledAtMiscTimeout(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "finished")
	c := miscChecker(t, "sleep 1; touch "+marker+"; exit 0")
	c.MiscTimeout = config.Duration(100 * time.Millisecond)
	expect(t, probeOnce(t, c, Options{}), false, "timeout after 100ms (killed)")
	time.Sleep(1500 * time.Millisecond) // longer than the script's sleep
	if _, err := os.Stat(marker); err == nil {
		t.Error("the timed-out script kept running and finished")
	}
}

func TestMiscCheckTimeoutUserAndSecurityDefaults(t *testing.T) {
	c := miscChecker(t, "exit 0")
	p, err := New(c, Options{ScriptUser: "nobody", ScriptGroup: "nogroup"})
	if err != nil {
		t.Fatal(err)
	}
	m := p.(*miscProber)
	if m.run.Timeout != 5*time.Second || m.run.User != "nobody" || m.run.Group != "nogroup" {
		t.Errorf("run options %+v, want delay_loop as timeout and the global script user", m.run)
	}
	c.User, c.MiscTimeout = "daemon", config.Duration(time.Second)
	p, err = New(c, Options{ScriptUser: "nobody", ScriptGroup: "nogroup"})
	if err != nil {
		t.Fatal(err)
	}
	if m := p.(*miscProber); m.run.Timeout != time.Second || m.run.User != "daemon" || m.run.Group != "" {
		t.Errorf("run options %+v, want misc_timeout and the checker's own user", m.run)
	}

	// enable_script_security refuses a script in a world-writable directory.
	insecure := miscChecker(t, "exit 0")
	if err := os.Chmod(filepath.Dir(insecure.MiscPath), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := New(insecure, Options{}); err != nil {
		t.Errorf("without enable_script_security: %v", err)
	}
	if _, err := New(insecure, Options{ScriptSecurity: true}); err == nil {
		t.Error("enable_script_security accepted a script in a world-writable directory")
	}
}
