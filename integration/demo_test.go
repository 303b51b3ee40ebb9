package integration

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// demoCmd is scripts/demo.sh with steps, non-interactive, under a namespace prefix of its own.
func demoCmd(t *testing.T, prefix string, out io.Writer, steps ...string) *exec.Cmd {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "demo.sh"), steps...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DEMO_FAST=1", "DEMO_PREFIX="+prefix, "VIPD="+lab.BuildVipd(t))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// demoLeftovers lists what a demo run under prefix left behind: namespaces, and processes
// started from its work directory.
func demoLeftovers(prefix, work string) []string {
	var left []string
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, prefix) {
				left = append(left, "namespace "+strings.Fields(l)[0])
			}
		}
	}
	if work != "" {
		if out, err := exec.Command("pgrep", "-af", work).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			left = append(left, "processes:\n"+string(out))
		}
		if _, err := os.Stat(work); err == nil {
			left = append(left, "work directory "+work)
		}
	}
	return left
}

var demoWork = regexp.MustCompile(`/tmp/vipd-demo\.[A-Za-z0-9]+`)

// TestDemoRunsEveryStepAndLeavesNothing: `make demo`'s script, run as DEMO_FAST=1 does, reaches
// every step of the narrated timeline (the check, convert and broken-file steps, then the live
// fleet: election, fleet view with keepalived as a classic peer, an etcd priority put, maintenance,
// reloads and a restart that move nothing, a crash failover, an arbitrated split brain, a
// virtual server from etcd in every node's vipd lvs) and leaves no namespace, process or file.
func TestDemoRunsEveryStepAndLeavesNothing(t *testing.T) {
	lab.Keepalived(t)
	prefix := fmt.Sprintf("vdt%d-", os.Getpid())
	var out bytes.Buffer
	cmd := demoCmd(t, prefix, &out)
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("scripts/demo.sh: %v\n%s", err, out.String())
		}
	case <-time.After(8 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		<-done
		t.Fatalf("scripts/demo.sh did not finish in 8 minutes:\n%s", out.String())
	}
	text := out.String()
	for i := 1; i <= 14; i++ {
		if !strings.Contains(text, fmt.Sprintf("== %d. ", i)) {
			t.Errorf("step %d never reached", i)
		}
	}
	for _, want := range []string{
		"(classic, 100)", // keepalived in the fleet view
		"claims held: VI_DEMO",
		"n1 alone held 10.98.0.100 in every one",
		"failover gap: ",
		"MASTER held back by the gate",
		"-a -t 10.98.0.100:80 -r 10.98.0.31:80 -g -w 2",
		"demo: done",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if left := demoLeftovers(prefix, demoWork.FindString(text)); len(left) > 0 {
		t.Errorf("the demo left: %s", strings.Join(left, "; "))
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", text)
	}
}

// TestDemoInterruptedLeavesNothing: ^C in the middle of the live part tears the lab down.
func TestDemoInterruptedLeavesNothing(t *testing.T) {
	lab.Keepalived(t)
	prefix := fmt.Sprintf("vdi%d-", os.Getpid())
	var out syncBuffer
	cmd := demoCmd(t, prefix, &out, "live")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	lab.Eventually(t, 3*time.Minute, "the demo at step 7", func() bool { return strings.Contains(out.String(), "== 7. ") })
	work := demoWork.FindString(out.String())
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the demo did not end within 30 s of ^C:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "demo: lab torn down") {
		t.Errorf("no teardown line after ^C:\n%s", out.String())
	}
	if left := demoLeftovers(prefix, work); len(left) > 0 {
		t.Errorf("^C left: %s", strings.Join(left, "; "))
	}
}

// syncBuffer is a bytes.Buffer written by a process's output and read by the test meanwhile.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
