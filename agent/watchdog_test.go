package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/sdnotify"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
)

// fakeManager is systemd's end of NOTIFY_SOCKET: every datagram vipd
// sends, in order.
type fakeManager struct {
	path string
	msgs chan string
}

func newFakeManager(t *testing.T) *fakeManager {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeManager{path: path, msgs: make(chan string, 4096)}
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			m.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return m
}

// next returns the next datagram.
func (m *fakeManager) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-m.msgs:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("systemd received nothing for 5s")
		return ""
	}
}

// waitFor returns the first datagram that has every one of lines, skipping
// the others.
func (m *fakeManager) waitFor(t *testing.T, lines ...string) string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-m.msgs:
			if hasLines(s, lines...) {
				return s
			}
		case <-deadline:
			t.Fatalf("systemd never received %q", lines)
			return ""
		}
	}
}

// during returns every datagram received within d.
func (m *fakeManager) during(d time.Duration) []string {
	var out []string
	deadline := time.After(d)
	for {
		select {
		case s := <-m.msgs:
			out = append(out, s)
		case <-deadline:
			return out
		}
	}
}

// hasLines reports whether msg has every line: "K=V" exactly, or "K=" any
// value, or "K=prefix*".
func hasLines(msg string, lines ...string) bool {
	have := strings.Split(strings.TrimSuffix(msg, "\n"), "\n")
next:
	for _, want := range lines {
		for _, h := range have {
			if h == want || (strings.HasSuffix(want, "*") && strings.HasPrefix(h, strings.TrimSuffix(want, "*"))) {
				continue next
			}
		}
		return false
	}
	return true
}

// syncBuffer is a log shared by the run's goroutines and the test.
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

// startRun runs the agent's whole run loop (Run without the host: memory
// VIP plane, VRRP sockets on a silent segment) on m until the returned
// stop, which returns what run returned.
func startRun(t *testing.T, opts Options, m *config.Model, setup func(*Agent)) (*Agent, *syncBuffer, func() error) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	tr := vrrp.NewTransportWith(log, func(string, bool) (vrrp.PacketConn, error) {
		return &silentConn{closed: make(chan struct{})}, nil
	})
	opts.NodeName, opts.Logger = "n1", log
	opts.SocketPath = filepath.Join(t.TempDir(), "vipd.sock")
	opts.Restart = make(chan os.Signal)
	a := newAgent(opts, vip.NewMemory(), tr)
	if setup != nil {
		setup(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, m) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return 10s after its stop")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return a, logs, stop
}

const notifyTestConf = `global_defs {
    vrrp_version 3
}
vrrp_instance VI_1 {
    interface lo
    virtual_router_id 51
    priority PRIO
    advert_int 0.05
    mcast_src_ip 10.0.0.1
    virtual_ipaddress {
        10.0.0.100/24
    }
}
`

func TestRunTellsSystemdReadyStatusReloadAndStop(t *testing.T) {
	fm := newFakeManager(t)
	t.Setenv(sdnotify.EnvSocket, fm.path)
	t.Setenv(sdnotify.EnvWatchdogUsec, "400000")
	t.Setenv(sdnotify.EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	sd, err := sdnotify.FromEnv()
	if err != nil || sd == nil {
		t.Fatalf("FromEnv: %v, %v", sd, err)
	}
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(notifyTestConf, "PRIO", "100", 1))
	m, err := load(conf, nil, slog.New(slog.NewTextHandler(&syncBuffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a, _, stop := startRun(t, Options{ConfigPath: conf, Notify: sd}, m, nil)

	// The first word is READY=1, once the first configuration is applied
	// and the control socket serves, with the summary and the watchdog's
	// own timeout.
	first := fm.next(t)
	if !hasLines(first, "READY=1", "STATUS=1 instance: 1 *", "WATCHDOG_USEC=400000", "WATCHDOG=1") {
		t.Fatalf("first notification %q: want READY=1 with STATUS, WATCHDOG_USEC and WATCHDOG", first)
	}
	if !a.applied.Load() {
		t.Error("READY=1 before the first apply")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := api.NewClient(a.opts.SocketPath).Status(ctx); err != nil || len(st.Instances) != 1 {
		t.Errorf("control socket right after READY=1: %v, %+v", err, st)
	}

	// The status follows the instance; keep-alives keep coming.
	fm.waitFor(t, "STATUS=1 instance: 1 MASTER")
	for range 3 {
		fm.waitFor(t, "WATCHDOG=1")
	}

	// SIGHUP: RELOADING=1 with the monotonic clock, READY=1 when done.
	write(strings.Replace(notifyTestConf, "PRIO", "120", 1))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fm.waitFor(t, "RELOADING=1", "MONOTONIC_USEC=*", "STATUS=reloading "+conf)
	if got := fm.next(t); !hasLines(got, "READY=1", "STATUS=1 instance: 1 MASTER") {
		t.Errorf("after a reload: %q, want READY=1 with the status", got)
	}
	if st := a.Status().Instances[0]; st.EffectivePriority != 120 || st.State != "MASTER" {
		t.Errorf("after the reload: %+v", st)
	}

	// A rejected reload is ready too, and says so in the status until the
	// next reload.
	write("vrrp_instance VI_1 {\n    virtual_router_id 300\n}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fm.waitFor(t, "RELOADING=1")
	if got := fm.next(t); !hasLines(got, "READY=1", "STATUS=1 instance: 1 MASTER; last reload rejected, running configuration unchanged: *") {
		t.Errorf("after a rejected reload: %q", got)
	}

	// `vipd reload` through the control socket: the same words as a
	// SIGHUP, and the answer comes once the reload is done.
	write(strings.Replace(notifyTestConf, "PRIO", "130", 1))
	if err := api.NewClient(a.opts.SocketPath).Reload(ctx); err != nil {
		t.Fatalf("reload through the socket: %v", err)
	}
	if st := a.Status().Instances[0]; st.EffectivePriority != 130 {
		t.Errorf("socket reload answered before it was applied: %+v", st)
	}
	fm.waitFor(t, "RELOADING=1", "MONOTONIC_USEC=*", "STATUS=reloading "+conf)
	if got := fm.next(t); !hasLines(got, "READY=1", "STATUS=1 instance: 1 MASTER") || strings.Contains(got, "rejected") {
		t.Errorf("after a socket reload: %q, want READY=1 with the status and no rejection note", got)
	}
	write("vrrp_instance VI_1 {\n    virtual_router_id 300\n}\n")
	if err := api.NewClient(a.opts.SocketPath).Reload(ctx); err == nil || !strings.Contains(err.Error(), "300") {
		t.Errorf("a rejected socket reload answered %v, want the file's error", err)
	}
	fm.waitFor(t, "RELOADING=1")
	if got := fm.next(t); !hasLines(got, "READY=1", "STATUS=1 instance: 1 MASTER; last reload rejected, running configuration unchanged: *") {
		t.Errorf("after a rejected socket reload: %q", got)
	}

	// A stop: STOPPING=1 first, and no keep-alive after it.
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	fm.waitFor(t, "STOPPING=1")
	for _, s := range fm.during(300 * time.Millisecond) {
		if hasLines(s, "WATCHDOG=1") || hasLines(s, "READY=1") {
			t.Errorf("after STOPPING=1: %q", s)
		}
	}
}

// hangingGate keeps the instance BACKUP; once hang is set, the next
// question blocks its runner until release is closed.
type hangingGate struct {
	hang    atomic.Bool
	once    sync.Once
	hung    chan struct{}
	release chan struct{}
}

func (g *hangingGate) MayBecomeMaster(string, int, string) bool {
	if g.hang.Load() {
		g.once.Do(func() { close(g.hung) })
		<-g.release
	}
	return false
}

func TestKeepAlivesStopWhileAVRRPRunnerHangs(t *testing.T) {
	fm := newFakeManager(t)
	g := &hangingGate{hung: make(chan struct{}), release: make(chan struct{})}
	var released sync.Once
	release := func() { released.Do(func() { close(g.release) }) }
	a, logs, stop := startRun(t, Options{Notify: sdnotify.New(fm.path, 400*time.Millisecond)},
		model(inst("VI_1", 51, 100, "10.0.0.100/24")),
		func(a *Agent) { a.gate.Store(&gateBox{g: g}) })
	t.Cleanup(release) // before the stop: the runner must come back to stop

	fm.waitFor(t, "READY=1")
	waitState(t, a, "VI_1", "BACKUP")
	fm.waitFor(t, "WATCHDOG=1")
	fm.waitFor(t, "WATCHDOG=1")

	// The instance's runner blocks (in its gate, on its next down timer).
	g.hang.Store(true)
	select {
	case <-g.hung:
	case <-time.After(5 * time.Second):
		t.Fatal("the gate was never asked")
	}
	fm.during(50 * time.Millisecond) // a keep-alive already on its way
	for _, s := range fm.during(1500 * time.Millisecond) {
		if hasLines(s, "WATCHDOG=1") {
			t.Fatalf("keep-alive sent while the runner hangs: %q", s)
		}
	}
	if l := logs.String(); !strings.Contains(l, "keep-alive held back") || !strings.Contains(l, "VRRP runner of eth0 (instance VI_1) did not answer") {
		t.Errorf("the log does not say why keep-alives stopped:\n%s", l)
	}

	// It answers again: so do the keep-alives.
	release()
	fm.waitFor(t, "WATCHDOG=1")
	if !strings.Contains(logs.String(), "the runtime answers again") {
		t.Error("the log does not say keep-alives resumed")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAlivesStopWhileTheStateStreamHangs(t *testing.T) {
	fm := newFakeManager(t)
	a, _, stop := startRun(t, Options{Notify: sdnotify.New(fm.path, 400*time.Millisecond)},
		model(inst("VI_1", 51, 100, "10.0.0.100/24")), nil)
	fm.waitFor(t, "READY=1")
	fm.waitFor(t, "WATCHDOG=1")

	a.hub.mu.Lock()
	fm.during(50 * time.Millisecond)
	for _, s := range fm.during(1200 * time.Millisecond) {
		if hasLines(s, "WATCHDOG=1") {
			a.hub.mu.Unlock()
			t.Fatalf("keep-alive sent while the state stream hangs: %q", s)
		}
	}
	a.hub.mu.Unlock()
	fm.waitFor(t, "WATCHDOG=1")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeIsAReloadForSystemd(t *testing.T) {
	fm := newFakeManager(t)
	sd := sdnotify.New(fm.path, 400*time.Millisecond)
	a, _, stop := startRun(t, Options{Notify: sd}, model(inst("VI_1", 51, 100, "10.0.0.100/24")), nil)
	t.Cleanup(a.transport.Close) // an upgrade leaves its instances running
	fm.waitFor(t, "READY=1")

	// The old image: RELOADING=1, and the watchdog extended by the new
	// image's start deadline, from a keep-alive now.
	a.upgradeReq <- &UpgradeExec{Binary: "/usr/local/sbin/vipd", ReadyWithin: 2 * time.Second}
	fm.waitFor(t, "RELOADING=1", "MONOTONIC_USEC=*", "WATCHDOG=1", "WATCHDOG_USEC=2400000",
		"STATUS=upgrading: executing /usr/local/sbin/vipd in place")
	var up *UpgradeExec
	if err := stop(); !errors.As(err, &up) {
		t.Fatalf("run returned %v, want the upgrade", err)
	}
	for _, s := range fm.during(300 * time.Millisecond) {
		if hasLines(s, "WATCHDOG=1") {
			t.Errorf("keep-alive from the old image after it handed over: %q", s)
		}
	}

	// The new image (same PID): READY=1 ends the reload and puts the
	// watchdog's own timeout back.
	_, _, stop2 := startRun(t, Options{Notify: sd}, model(inst("VI_1", 51, 100, "10.0.0.100/24")), nil)
	fm.waitFor(t, "READY=1", "WATCHDOG_USEC=400000", "WATCHDOG=1")
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func TestStatusSummary(t *testing.T) {
	st := func(states ...string) []api.InstanceStatus {
		var out []api.InstanceStatus
		for _, s := range states {
			out = append(out, api.InstanceStatus{State: s})
		}
		return out
	}
	for _, tc := range []struct {
		in   []api.InstanceStatus
		want string
	}{
		{nil, "no instances"},
		{st("BACKUP"), "1 instance: 1 BACKUP"},
		{st("BACKUP", "MASTER", "MASTER"), "3 instances: 2 MASTER, 1 BACKUP"},
		{st("INIT", "FAULT", "BACKUP", "MASTER", "FAULT"), "5 instances: 1 MASTER, 1 BACKUP, 2 FAULT, 1 INIT"},
	} {
		if got := summarize(tc.in); got != tc.want {
			t.Errorf("summarize(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A reload asked of a run that ended answers at once that vipd is
// stopping; one whose asker gives up returns the asker's error.
func TestReloadAfterTheRunEndedOrGivenUp(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(conf, []byte(strings.Replace(notifyTestConf, "PRIO", "100", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := load(conf, nil, slog.New(slog.NewTextHandler(&syncBuffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a, logs, stop := startRun(t, Options{ConfigPath: conf}, m, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// As `vipd reload` does: through the socket, once it serves.
	for {
		if _, err := api.NewClient(a.opts.SocketPath).Status(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("the control socket never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := api.NewClient(a.opts.SocketPath).Reload(ctx); err != nil {
		t.Fatalf("reload of a running agent: %v", err)
	}
	if !strings.Contains(logs.String(), "control socket: reloading configuration") {
		t.Errorf("the loop did not log the reload with its source:\n%s", logs.String())
	}
	gone, giveUp := context.WithCancel(context.Background())
	giveUp()
	if err := a.Reload(gone); err == nil || !errors.Is(err, context.Canceled) {
		// The loop may take it first; a cancelled asker must not block either way.
		if err != nil {
			t.Errorf("reload by an asker that gave up: %v, want context.Canceled or nil", err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Reload(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("reload after the run ended: %v, want \"vipd is stopping\"", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a reload after the run ended is still waiting after 2 s")
	}
}
