package sdnotify

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// manager is the service manager's end: a unixgram socket at addr.
func manager(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("the service manager received nothing: %v", err)
	}
	return string(buf[:n])
}

// unsetAll makes the test's environment that of a process no service
// manager started, and puts the caller's back afterwards.
func unsetAll(t *testing.T) {
	for _, k := range []string{EnvSocket, EnvWatchdogUsec, EnvWatchdogPID} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestReadyStatusAndWatchdogReachAPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c := manager(t, path)
	n := New(path, 0)
	if err := n.Send(Ready, Status("3 instances: 2 MASTER, 1 BACKUP")); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(t, c), "READY=1\nSTATUS=3 instances: 2 MASTER, 1 BACKUP\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := n.Send(Watchdog); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "WATCHDOG=1\n" {
		t.Errorf("got %q, want WATCHDOG=1", got)
	}
	if err := n.Send(Reloading, MonotonicUsec()); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("got %q, want RELOADING=1 with MONOTONIC_USEC", got)
	}
	if err := n.Send(Stopping); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "STOPPING=1\n" {
		t.Errorf("got %q, want STOPPING=1", got)
	}
}

func TestAbstractSocketFromTheEnvironment(t *testing.T) {
	unsetAll(t)
	addr := fmt.Sprintf("@vipd-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c := manager(t, addr)
	t.Setenv(EnvSocket, addr)
	n, err := FromEnv()
	if err != nil || n == nil {
		t.Fatalf("FromEnv: %v, %v", n, err)
	}
	if err := n.Send(Ready); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "READY=1\n" {
		t.Errorf("got %q on the abstract socket, want READY=1", got)
	}
	if _, err := os.Stat(addr); err == nil {
		t.Errorf("a file %q was made: the socket is not the abstract one", addr)
	}
}

func TestNoSocketNoOp(t *testing.T) {
	unsetAll(t)
	n, err := FromEnv()
	if n != nil || err != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET = %v, %v; want nil, nil", n, err)
	}
	if err := n.Send(Ready, Status("x")); err != nil {
		t.Errorf("nil notifier: Send = %v", err)
	}
	if d := n.WatchdogInterval(); d != 0 {
		t.Errorf("nil notifier: watchdog %v", d)
	}
	n.Export()
	if _, ok := os.LookupEnv(EnvSocket); ok {
		t.Error("nil notifier exported NOTIFY_SOCKET")
	}
	// A watchdog without a socket to send to is no watchdog.
	t.Setenv(EnvWatchdogUsec, "1000000")
	if n, err := FromEnv(); n != nil || err != nil {
		t.Errorf("WATCHDOG_USEC alone: %v, %v", n, err)
	}
}

func TestTheVariablesAreTakenOutOfTheEnvironmentForScripts(t *testing.T) {
	unsetAll(t)
	path := filepath.Join(t.TempDir(), "notify")
	t.Setenv(EnvSocket, path)
	t.Setenv(EnvWatchdogUsec, "10000000")
	t.Setenv(EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	n, err := FromEnv()
	if err != nil || n == nil {
		t.Fatalf("FromEnv: %v, %v", n, err)
	}
	if d := n.WatchdogInterval(); d != 10*time.Second {
		t.Errorf("watchdog %v, want 10s", d)
	}
	// A process started now (a notify or track script) gets none of them.
	out, err := exec.Command("env").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{EnvSocket, EnvWatchdogUsec, EnvWatchdogPID} {
		if strings.Contains(string(out), k+"=") {
			t.Errorf("a child process inherited %s", k)
		}
	}
	// An exec of a new image in this process gets them back.
	want := []string{EnvSocket + "=" + path, EnvWatchdogUsec + "=10000000", EnvWatchdogPID + "=" + strconv.Itoa(os.Getpid())}
	if got := n.Env(); !slices.Equal(got, want) {
		t.Errorf("Env() = %q, want %q", got, want)
	}
	n.Export()
	if os.Getenv(EnvSocket) != path || os.Getenv(EnvWatchdogUsec) != "10000000" {
		t.Errorf("Export: NOTIFY_SOCKET=%q WATCHDOG_USEC=%q", os.Getenv(EnvSocket), os.Getenv(EnvWatchdogUsec))
	}
	n.Unexport()
	for _, k := range []string{EnvSocket, EnvWatchdogUsec, EnvWatchdogPID} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("Unexport left %s", k)
		}
	}
}

func TestWatchdogSettings(t *testing.T) {
	self := os.Getpid()
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		err             bool
	}{
		{"none", "", "", 0, false},
		{"for this process", "4000000", strconv.Itoa(self), 4 * time.Second, false},
		{"no PID given", "500000", "", 500 * time.Millisecond, false},
		{"for another process", "4000000", "1", 0, false},
		{"zero", "0", "", 0, true},
		{"not a number", "10s", "", 0, true},
		{"PID not a number", "4000000", "x", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := watchdogFor(tc.usec, tc.pid, self)
			if got != tc.want || (err != nil) != tc.err {
				t.Errorf("watchdogFor(%q, %q) = %v, %v; want %v, error %v", tc.usec, tc.pid, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestBadWatchdogKeepsTheNotifier(t *testing.T) {
	unsetAll(t)
	t.Setenv(EnvSocket, "/run/x")
	t.Setenv(EnvWatchdogUsec, "soon")
	n, err := FromEnv()
	if n == nil || err == nil || n.WatchdogInterval() != 0 {
		t.Errorf("FromEnv = %v, %v; want a notifier without watchdog, and an error", n, err)
	}
}

func TestRelativeSocketIsRefused(t *testing.T) {
	unsetAll(t)
	t.Setenv(EnvSocket, "notify.sock")
	n, err := FromEnv()
	if n != nil || err == nil {
		t.Errorf("FromEnv = %v, %v; want nil and an error", n, err)
	}
}

func TestStatusIsOneShortLine(t *testing.T) {
	if got := Status("reload rejected:\nk.conf:3: bad"); got != "STATUS=reload rejected: k.conf:3: bad" {
		t.Errorf("got %q", got)
	}
	long := Status(strings.Repeat("é", 2*maxStatus))
	if len(long) > len("STATUS=")+maxStatus+3 || !strings.HasSuffix(long, "...") || !utf8.ValidString(long) {
		t.Errorf("long status: %d bytes, valid UTF-8 %v", len(long), utf8.ValidString(long))
	}
	if err := New("/nonexistent", 0).Send("READY=1\nSTOPPING=1"); err == nil {
		t.Error("a line with a newline was sent")
	}
}

func TestMonotonicUsecIsTheMonotonicClock(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	before := ts.Sec*1_000_000 + ts.Nsec/1_000
	got, err := strconv.ParseInt(strings.TrimPrefix(MonotonicUsec(), "MONOTONIC_USEC="), 10, 64)
	if err != nil || got < before || got > before+1_000_000 {
		t.Errorf("MONOTONIC_USEC %d (%v), clock was %d", got, err, before)
	}
}

func TestSendToNoListenerFails(t *testing.T) {
	if err := New(filepath.Join(t.TempDir(), "gone"), 0).Send(Ready); err == nil {
		t.Error("Send to a socket nobody listens on: no error")
	}
}
