package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mustParse(t *testing.T, raw string) Command {
	t.Helper()
	c, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%q): %v", raw, err)
	}
	return c
}

func TestRunReportsExitCodesAndOutput(t *testing.T) {
	dir := t.TempDir()
	down := filepath.Join(dir, "down")
	if err := os.WriteFile(down, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		raw        string
		extra      []string
		wantCode   int
		wantOutput string
	}{
		{"exec success", "/bin/true", nil, 0, ""},
		{"exec failure", "/bin/false", nil, 1, ""},
		{"exec through PATH", "test -f " + down, nil, 0, ""},
		{"exec keeps quoted words", `/bin/echo "a  b" c`, nil, 0, "a  b c\n"},
		{"exec appends extra args", "/bin/echo notify", []string{"INSTANCE", "VI_1", "MASTER", "100"}, 0, "notify INSTANCE VI_1 MASTER 100\n"},
		{"shell exit status", "exit 7", nil, 7, ""},
		{"shell maintenance check, file present", "[[ -f " + down + " ]] && exit 1 || exit 0", nil, 1, ""},
		{"shell maintenance check, file absent", "[ -f " + down + ".none ] && exit 1 || exit 0", nil, 0, ""},
		{"shell pipe", "echo abc | tr a-c x-z", nil, 0, "xyz\n"},
		{"shell extra args are positional", `echo "$#:$1:$4"; exit 0`, []string{"GROUP", "G1", "BACKUP", "0"}, 0, "4:GROUP:0\n"},
		{"stderr is captured", "echo oops >&2; exit 2", nil, 2, "oops\n"},
		{"killed by signal reports 128+N", "kill -TERM $$", nil, 128 + int(syscall.SIGTERM), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.raw)
			r := Run(context.Background(), c, tt.extra, Options{Timeout: 10 * time.Second})
			if r.Err != nil || r.TimedOut {
				t.Fatalf("Run: err %v timedOut %v", r.Err, r.TimedOut)
			}
			if r.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d (output %q)", r.ExitCode, tt.wantCode, r.Output)
			}
			if string(r.Output) != tt.wantOutput {
				t.Errorf("Output = %q, want %q", r.Output, tt.wantOutput)
			}
			if r.OK() != (tt.wantCode == 0) {
				t.Errorf("OK() = %v with exit code %d", r.OK(), r.ExitCode)
			}
		})
	}
}

func TestRunReportsCommandsThatCannotStart(t *testing.T) {
	tests := []struct {
		name string
		c    Command
		o    Options
	}{
		{"missing executable", mustParse(t, "/nonexistent/vipd-check"), Options{}},
		{"not in PATH", mustParse(t, "no-such-command-vipd-test"), Options{}},
		{"unknown user", mustParse(t, "/bin/true"), Options{User: "no-such-user-vipd"}},
		{"unknown group", mustParse(t, "/bin/true"), Options{Group: "no-such-group-vipd"}},
		{"empty command", Command{}, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Run(context.Background(), tt.c, nil, tt.o)
			if r.Err == nil {
				t.Fatalf("Run: no error, exit %d", r.ExitCode)
			}
			if r.ExitCode != -1 || r.OK() {
				t.Errorf("ExitCode = %d OK = %v, want -1 and false", r.ExitCode, r.OK())
			}
		})
	}
}

func TestRunKeepsOnlyTheFirstOutputBytes(t *testing.T) {
	r := Run(context.Background(), mustParse(t, "head -c 100000 /dev/zero"), nil, Options{Timeout: 10 * time.Second})
	if r.Err != nil || r.ExitCode != 0 {
		t.Fatalf("Run: %+v", r)
	}
	if len(r.Output) != OutputLimit {
		t.Errorf("len(Output) = %d, want %d", len(r.Output), OutputLimit)
	}
}

func TestRunPassesStdinAndEnv(t *testing.T) {
	r := Run(context.Background(), mustParse(t, `read l; echo "$l $VIPD_X"`), nil,
		Options{Stdin: strings.NewReader("hello\n"), Env: []string{"VIPD_X=world"}, Timeout: 10 * time.Second})
	if r.Err != nil || string(r.Output) != "hello world\n" {
		t.Errorf("Run = err %v output %q, want \"hello world\\n\"", r.Err, r.Output)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone waits (bounded) for pid to disappear: a killed grandchild is an
// orphan that init reaps asynchronously, so this polls.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

func TestRunKillsTheWholeGroupAtTheTimeout(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	c := mustParse(t, "sleep 100 & echo $! > "+pidfile+"; echo $$ >> "+pidfile+"; wait")
	r := Run(context.Background(), c, nil, Options{Timeout: 300 * time.Millisecond})
	if !r.TimedOut {
		t.Fatalf("TimedOut = false: %+v", r)
	}
	if r.OK() {
		t.Error("a timed-out command is OK()")
	}
	if r.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("ExitCode = %d, want %d (SIGKILL)", r.ExitCode, 128+int(syscall.SIGKILL))
	}
	if r.Duration < 300*time.Millisecond || r.Duration > 5*time.Second {
		t.Errorf("Duration = %v, want about the 300ms timeout", r.Duration)
	}
	b, _ := os.ReadFile(pidfile)
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		waitGone(t, pid)
	}
	if len(strings.Fields(string(b))) != 2 {
		t.Fatalf("pid file %q: want the background child and the shell", b)
	}
}

func TestRunKillsBackgroundChildrenLeftByACommandThatExited(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	c := mustParse(t, "sleep 100 > /dev/null 2>&1 & echo $! > "+pidfile+"; exit 0")
	r := Run(context.Background(), c, nil, Options{})
	if !r.OK() {
		t.Fatalf("Run: %+v", r)
	}
	if r.Duration > 5*time.Second {
		t.Errorf("Run waited %v for the background child", r.Duration)
	}
	waitGone(t, readPid(t, pidfile))
}

func TestRunDoesNotWaitForAChildHoldingTheOutputPipe(t *testing.T) {
	// The background child keeps stdout open; the group kill closes it.
	c := mustParse(t, "sleep 100 & exit 0")
	r := Run(context.Background(), c, nil, Options{})
	if !r.OK() || r.Duration > 5*time.Second {
		t.Fatalf("Run = %+v", r)
	}
}

func TestRunStopsOnContextCancel(t *testing.T) {
	pidfifo := filepath.Join(t.TempDir(), "pid")
	if err := syscall.Mkfifo(pidfifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := mustParse(t, "echo $$ > "+pidfifo+"; exec sleep 100")
	done := make(chan Result)
	go func() { done <- Run(ctx, c, nil, Options{}) }()
	b, err := os.ReadFile(pidfifo) // returns once the command runs
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid %q: %v", b, err)
	}
	cancel()
	r := <-done
	if !errors.Is(r.Err, context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", r.Err)
	}
	if r.TimedOut || r.OK() {
		t.Errorf("TimedOut %v OK %v after cancel", r.TimedOut, r.OK())
	}
	if alive(pid) { // exec'ed sleep is the command itself: reaped by Run
		t.Errorf("command %d alive after cancel", pid)
	}
}

func TestRunDoesNotStartWithADoneContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := Run(ctx, mustParse(t, "/bin/true"), nil, Options{})
	if !errors.Is(r.Err, context.Canceled) || r.ExitCode != -1 {
		t.Errorf("Run = %+v, want not started", r)
	}
}

// zombieChildren lists this process's children that are zombies.
func zombieChildren(t *testing.T) []string {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var zs []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid ...
		if len(f) >= 2 && f[1] == me && f[0] == "Z" {
			zs = append(zs, s[:i+1])
		}
	}
	return zs
}

func TestRunLeavesNoZombies(t *testing.T) {
	cmds := []Command{mustParse(t, "/bin/true"), mustParse(t, "exit 3"), mustParse(t, "sleep 5 & exit 0")}
	for i := 0; i < 50; i++ {
		c := cmds[i%len(cmds)]
		if r := Run(context.Background(), c, nil, Options{Timeout: 10 * time.Second}); r.Err != nil {
			t.Fatalf("Run %d: %v", i, r.Err)
		}
	}
	if zs := zombieChildren(t); len(zs) > 0 {
		t.Errorf("zombie children left: %v", zs)
	}
}

func TestRunAsAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching user needs root (run the tests as root to cover it)")
	}
	tests := []struct {
		name     string
		o        Options
		wantID   string
		wantCode int
	}{
		{"user with its primary group", Options{User: "nobody"}, "65534 65534 65534", 0},
		{"numeric user", Options{User: "65534"}, "65534 65534 65534", 0},
		{"user and group", Options{User: "nobody", Group: "root"}, "65534 0 0", 0},
		{"group only keeps root", Options{Group: "nogroup"}, "0 65534 65534", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Run(context.Background(), mustParse(t, `echo "$(id -u) $(id -g) $(id -G)"`), nil, tt.o)
			if r.Err != nil || r.ExitCode != tt.wantCode {
				t.Fatalf("Run = %+v", r)
			}
			if got := strings.TrimSpace(string(r.Output)); got != tt.wantID {
				t.Errorf("uid gid groups = %q, want %q", got, tt.wantID)
			}
		})
	}
}

func TestRunAsSelfWorksWithoutRoot(t *testing.T) {
	self := strconv.Itoa(os.Getuid())
	r := Run(context.Background(), mustParse(t, "id -u"), nil, Options{User: self})
	if r.Err != nil || strings.TrimSpace(string(r.Output)) != self {
		t.Errorf("Run as %s = %+v", self, r)
	}
}
