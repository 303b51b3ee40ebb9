// Package sdnotify speaks the service manager's notification protocol
// (systemd's sd_notify(3)) without libsystemd: one datagram of
// newline-separated VARIABLE=value lines to the unix socket named by
// $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace), and the
// watchdog's settings from $WATCHDOG_USEC and $WATCHDOG_PID.
//
// It owns the socket and the environment, not the policy: what to send and
// when (readiness, status, reloads, keep-alives) is the caller's. Outside a
// service manager (no $NOTIFY_SOCKET) the Notifier is nil and every method
// is a no-op.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The environment the service manager sets.
const (
	EnvSocket       = "NOTIFY_SOCKET"
	EnvWatchdogUsec = "WATCHDOG_USEC"
	EnvWatchdogPID  = "WATCHDOG_PID"
)

// The state lines of the protocol.
const (
	// Ready: start-up, or a reload announced with Reloading, is done.
	Ready = "READY=1"
	// Reloading: a reload began; Ready follows when it is done. Send it
	// with MonotonicUsec (Type=notify-reload insists on it).
	Reloading = "RELOADING=1"
	// Stopping: a graceful stop began.
	Stopping = "STOPPING=1"
	// Watchdog: the keep-alive, at least once per WatchdogInterval.
	Watchdog = "WATCHDOG=1"
)

// maxStatus bounds a STATUS= text: the service manager takes datagrams of
// a few kilobytes, and a status line is read by a person.
const maxStatus = 1024

// Status is the STATUS= line: a one-line summary shown by systemctl
// status. Newlines become spaces; a long text is cut.
func Status(text string) string {
	text = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, text)
	if len(text) > maxStatus {
		cut := maxStatus
		for cut > 0 && !isRuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "..."
	}
	return "STATUS=" + text
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// MonotonicUsec is the MONOTONIC_USEC= line for now: CLOCK_MONOTONIC in
// microseconds, sent with Reloading so the service manager can tell this
// reload from one that began before it asked.
func MonotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "MONOTONIC_USEC=0" // cannot happen on Linux
	}
	return "MONOTONIC_USEC=" + strconv.FormatInt(ts.Sec*1_000_000+ts.Nsec/1_000, 10)
}

// WatchdogUsec is the WATCHDOG_USEC= line: it sets the watchdog's timeout
// to d until another such line (or the service's next start).
func WatchdogUsec(d time.Duration) string {
	return "WATCHDOG_USEC=" + strconv.FormatInt(d.Microseconds(), 10)
}

// Notifier sends to the service manager's socket. A nil *Notifier (not run
// by a service manager) sends nothing.
type Notifier struct {
	addr     string        // the socket: a path, or "@name" (abstract)
	watchdog time.Duration // $WATCHDOG_USEC when meant for this process; 0: none
	env      []string      // the variables as found, for a re-exec of this process
}

// FromEnv returns the notifier $NOTIFY_SOCKET names, nil when it is unset,
// and removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the
// environment, so that the processes started later (scripts) do not
// inherit them, as sd_notify's unset_environment does; Env gives them back
// for a re-exec of this very process. An error says what was unusable:
// a socket address it cannot send to (the notifier is nil), or a watchdog
// setting it ignores (the notifier works, without a watchdog).
func FromEnv() (*Notifier, error) {
	var env []string
	get := func(key string) string {
		v, ok := os.LookupEnv(key)
		if ok {
			env = append(env, key+"="+v)
			os.Unsetenv(key)
		}
		return v
	}
	sock, usec, pid := get(EnvSocket), get(EnvWatchdogUsec), get(EnvWatchdogPID)
	if sock == "" {
		return nil, nil
	}
	if sock[0] != '/' && sock[0] != '@' {
		return nil, fmt.Errorf("%s=%q: not an absolute path or an abstract socket (@name); not notifying the service manager", EnvSocket, sock)
	}
	n := &Notifier{addr: sock, env: env}
	wd, err := watchdogFor(usec, pid, os.Getpid())
	n.watchdog = wd
	return n, err
}

// New returns a notifier for the socket at addr (a path, or "@name") with
// the watchdog interval wd (0: none), for tests and callers that do not
// read the environment.
func New(addr string, wd time.Duration) *Notifier {
	return &Notifier{addr: addr, watchdog: wd}
}

// watchdogFor reads the watchdog settings: the interval when they are
// meant for process self, 0 when there is no watchdog.
func watchdogFor(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: not a PID; no watchdog keep-alives", EnvWatchdogPID, pid)
		}
		if p != self {
			return 0, nil // meant for another process (the one that started us)
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 || u > uint64(1<<63-1)/1000 {
		return 0, fmt.Errorf("%s=%q: not a positive number of microseconds; no watchdog keep-alives", EnvWatchdogUsec, usec)
	}
	return time.Duration(u) * time.Microsecond, nil
}

// WatchdogInterval is the watchdog's timeout ($WATCHDOG_USEC): a
// keep-alive (Watchdog) must reach the service manager within it, so send
// one at least every half of it. 0: no watchdog.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Env returns the service manager's variables as this process found them
// (KEY=VALUE). Nil when there were none.
func (n *Notifier) Env() []string {
	if n == nil {
		return nil
	}
	return append([]string(nil), n.env...)
}

// Export puts the service manager's variables back into the environment,
// for an exec of a new image in this same process (same PID): the new
// image must notify and keep the watchdog alive too. Processes started
// meanwhile inherit them; Unexport removes them again.
func (n *Notifier) Export() {
	if n == nil {
		return
	}
	for _, kv := range n.env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
}

// Unexport removes the variables Export put back.
func (n *Notifier) Unexport() {
	if n == nil {
		return
	}
	for _, kv := range n.env {
		k, _, _ := strings.Cut(kv, "=")
		os.Unsetenv(k)
	}
}

// Send sends the lines (Ready, Status(...), ...) in one datagram. Nil n:
// nothing is sent.
func (n *Notifier) Send(lines ...string) error {
	if n == nil || len(lines) == 0 {
		return nil
	}
	for _, l := range lines {
		if strings.ContainsAny(l, "\n") || !strings.Contains(l, "=") {
			return fmt.Errorf("sdnotify: %q is not one VARIABLE=value line", l)
		}
	}
	// A socket per message, as sd_notify does: the service manager may
	// re-create its socket (systemctl daemon-reexec) at any time.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	msg := strings.Join(lines, "\n") + "\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.addr, err)
	}
	return nil
}
