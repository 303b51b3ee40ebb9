package lvs

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
)

// fakeChecks records the specs the manager hands its scheduler.
type fakeChecks struct {
	mu    sync.Mutex
	specs []CheckSpec
}

func (f *fakeChecks) Set(s []CheckSpec) { f.mu.Lock(); f.specs = s; f.mu.Unlock() }
func (f *fakeChecks) Run(ctx context.Context) {
	<-ctx.Done()
}
func (f *fakeChecks) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.specs {
		out = append(out, s.ID)
	}
	return out
}

type scripts struct {
	mu  sync.Mutex
	ran []string
}

func (s *scripts) run(kw, cmd string) { s.mu.Lock(); s.ran = append(s.ran, kw+" "+cmd); s.mu.Unlock() }
func (s *scripts) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ran
	s.ran = nil
	return r
}

type harness struct {
	t       *testing.T
	log     *logBuffer
	m       *Manager
	mem     *Memory
	clk     *clock.Fake
	checks  *fakeChecks
	scripts *scripts
}

func newHarness(t *testing.T, mem *Memory) *harness {
	h := &harness{t: t, log: &logBuffer{}, mem: mem, clk: clock.NewFake(time.Unix(1_700_000_000, 0)), checks: &fakeChecks{}, scripts: &scripts{}}
	var b Backend
	if mem != nil {
		b = mem
	}
	h.m = New(Options{Backend: b, Reason: "test: no backend", Clock: h.clk, Log: slog.New(slog.NewTextHandler(h.log, nil)), Checks: h.checks,
		Resync: 10 * time.Second, RunScript: h.scripts.run})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// settle waits until the manager has done everything sent so far, the
// queued check results included.
func (h *harness) settle() {
	done := make(chan struct{})
	h.m.send(func() { h.m.takeResults(); close(done) })
	<-done
}

func (h *harness) apply(m *config.Model) {
	h.m.Apply(m.VirtualServers, m.VirtualServerGroups)
	h.settle()
}

func (h *harness) result(id string, up bool, cause string) {
	h.m.Result(CheckResult{ID: id, Type: "TCP_CHECK", Up: up, OK: up, Cause: cause})
	h.settle()
}

func (h *harness) expect(step string, want ...string) {
	h.t.Helper()
	if diff := cmp.Diff(want, h.mem.Transcript()); diff != "" {
		h.t.Errorf("%s: IPVS operations (-want +got):\n%s", step, diff)
	}
}

const pool = `
virtual_server 10.0.0.1 80 {
    lb_algo rr
    quorum 2
    quorum_up "/bin/echo up"
    quorum_down "/bin/echo down"
    real_server 10.0.0.2 80 {
        weight %W
        notify_down "/bin/echo rs2 down"
        notify_up "/bin/echo rs2 up"
        TCP_CHECK {
        }
    }
    real_server 10.0.0.3 80 {
        TCP_CHECK {
        }
    }
}
`

func poolConf(w string) string { return strings.Replace(pool, "%W", w, 1) }

const (
	rs2check = "10.0.0.1 80/TCP/10.0.0.2:80#0/TCP_CHECK"
	rs3check = "10.0.0.1 80/TCP/10.0.0.3:80#0/TCP_CHECK"
)

// TestManagerTranscript is the golden sequence: a configuration, checker
// results, a reload changing one weight, a removal; someone else's service
// is never touched.
func TestManagerTranscript(t *testing.T) {
	foreign := Pool{Service{Key: ServiceKey{Protocol: TCP, Addr: mustAddr("192.0.2.1"), Port: 443}, Scheduler: "wlc"}, nil}
	h := newHarness(t, NewMemory(foreign))

	h.apply(load(t, poolConf("1")))
	h.expect("first configuration",
		"-A -t 10.0.0.1:80 -s rr",
		"-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1",
		"-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1")
	if diff := cmp.Diff([]string{rs2check, rs3check}, h.checks.ids()); diff != "" {
		t.Errorf("checks handed to the scheduler (-want +got):\n%s", diff)
	}

	h.result(rs2check, true, "connected")
	h.expect("a check that confirms the start state changes nothing")

	h.result(rs2check, false, "connect: connection refused")
	h.expect("real server down", "-d -t 10.0.0.1:80 -r 10.0.0.2:80")
	// keepalived's order (perform_svr_state): the real server's notify, then the quorum's.
	if diff := cmp.Diff([]string{"notify_down /bin/echo rs2 down", "quorum_down /bin/echo down"}, h.scripts.take()); diff != "" {
		t.Errorf("scripts (-want +got):\n%s", diff)
	}
	st := h.m.Status()
	rs := st.VirtualServers[0].RealServers[0]
	if rs.Up || rs.InPool || rs.InIPVS || rs.Checks[0].Cause != "connect: connection refused" || st.VirtualServers[0].QuorumUp {
		t.Errorf("status after rs2 down: %+v quorum %v", rs, st.VirtualServers[0].QuorumUp)
	}

	h.result(rs2check, true, "connected")
	h.expect("real server back", "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1")
	if diff := cmp.Diff([]string{"notify_up /bin/echo rs2 up", "quorum_up /bin/echo up"}, h.scripts.take()); diff != "" {
		t.Errorf("scripts (-want +got):\n%s", diff)
	}

	h.apply(load(t, poolConf("0")))
	h.expect("a reload changing one weight edits only that destination", "-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 0")

	h.scripts.take()
	h.apply(&config.Model{})
	h.expect("virtual server removed", "-D -t 10.0.0.1:80")
	// The weight-0 reload already lost the quorum (1 < 2): only notify_down.
	if diff := cmp.Diff([]string{"notify_down /bin/echo rs2 down"}, h.scripts.take()); diff != "" {
		t.Errorf("scripts of a removal by reload, as keepalived's clear_service_vs (-want +got):\n%s", diff)
	}
	if got, _ := h.mem.Pools(); len(got) != 1 || got[0].Key != foreign.Key {
		t.Errorf("left in IPVS: %v, want only the foreign service", got)
	}
}

// TestManagerResyncRepairsAndRetries: a destination deleted behind vipd's
// back comes back at the next resync; a failed operation is retried after
// a back-off, reading IPVS back first.
func TestManagerResyncRepairsAndRetries(t *testing.T) {
	h := newHarness(t, NewMemory())
	h.apply(load(t, poolConf("1")))
	h.mem.Transcript()

	// Behind vipd's back.
	k := ServiceKey{Protocol: TCP, Addr: mustAddr("10.0.0.1"), Port: 80}
	if err := h.mem.DelDest(k, DestKey{mustAddr("10.0.0.3"), 80}); err != nil {
		t.Fatal(err)
	}
	h.mem.Transcript()
	h.clk.Advance(10 * time.Second)
	h.settle()
	h.expect("resync", "-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1")

	var fail sync.Mutex
	failing := true
	h.mem.Fail = func(op Op) error {
		fail.Lock()
		defer fail.Unlock()
		if failing && op.Kind == OpDelDest {
			return errors.New("no memory")
		}
		return nil
	}
	h.result(rs2check, false, "refused")
	h.expect("failed operation")
	if st := h.m.Status(); st.Reconcile.Errors != 1 || !strings.Contains(st.Reconcile.LastError, "no memory") {
		t.Errorf("reconcile status %+v", st.Reconcile)
	}
	fail.Lock()
	failing = false
	fail.Unlock()
	h.clk.Advance(retryMin)
	h.settle()
	h.expect("retried after the back-off", "-d -t 10.0.0.1:80 -r 10.0.0.2:80")
	if st := h.m.Status(); st.Reconcile.LastError != "" {
		t.Errorf("error still shown after success: %+v", st.Reconcile)
	}
}

// A service IPVS refuses (a scheduler the kernel lacks) backs off on its
// own: the services planned after it are installed, health changes keep
// reaching them while it waits, it is logged once, and it goes in when the
// kernel takes it.
func TestManagerRefusedServiceDoesNotHoldUpTheOthers(t *testing.T) {
	h := newHarness(t, NewMemory())
	var fail sync.Mutex
	refuse := true
	h.mem.Fail = func(op Op) error {
		fail.Lock()
		defer fail.Unlock()
		if refuse && op.Service.Scheduler == "twos" {
			return errors.New("no such file or directory")
		}
		return nil
	}
	conf := `
virtual_server 9.0.0.9 443 {
    lb_algo twos
    real_server 10.0.0.5 443 {
        TCP_CHECK {
        }
    }
}
` + poolConf("1")
	h.apply(load(t, conf))
	h.expect("the twos service refused, the rr one installed",
		"-A -t 10.0.0.1:80 -s rr",
		"-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1",
		"-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1")
	st := h.m.Status()
	if st.Reconcile.Errors != 1 || !strings.Contains(st.Reconcile.LastError, "-A -t 9.0.0.9:443 -s twos: no such file or directory") {
		t.Errorf("reconcile status %+v", st.Reconcile)
	}
	// The rr pool follows health while the twos one backs off.
	h.result(rs2check, false, "connection refused")
	h.expect("a health change during the back-off", "-d -t 10.0.0.1:80 -r 10.0.0.2:80")
	for range 3 { // retried on its back-off (IPVS read back each time), still refused
		h.clk.Advance(retryMax)
		h.settle()
	}
	h.expect("retries of a refused service write nothing")
	if n := strings.Count(h.log.String(), "IPVS refused an operation"); n != 1 {
		t.Errorf("the refusal was logged %d times at the default level, want once:\n%s", n, h.log)
	}
	fail.Lock()
	refuse = false
	fail.Unlock()
	h.clk.Advance(retryMax)
	h.settle()
	h.expect("the kernel takes it",
		"-A -t 9.0.0.9:443 -s twos",
		"-a -t 9.0.0.9:443 -r 10.0.0.5:443 -m -w 1")
	if st := h.m.Status(); st.Reconcile.LastError != "" {
		t.Errorf("error still shown after the service went in: %+v", st.Reconcile)
	}
	if !strings.Contains(h.log.String(), "IPVS took the service's operations again") {
		t.Errorf("no line for the recovery:\n%s", h.log)
	}
}

// A refused destination or service update holds up nothing else of its
// own service either: health keeps reaching the other real servers while
// the refused operation backs off, and a reload's weight change is logged
// with the reload as its cause.
func TestManagerRefusedOperationsHoldUpNothingElse(t *testing.T) {
	h := newHarness(t, NewMemory())
	logged := h.log.String
	var fail sync.Mutex
	refuse := func(Op) error { return nil }
	h.mem.Fail = func(op Op) error { fail.Lock(); defer fail.Unlock(); return refuse(op) }
	setRefuse := func(f func(Op) error) { fail.Lock(); refuse = f; fail.Unlock() }

	// rs3's destination is refused; rs2 goes in.
	setRefuse(func(op Op) error {
		if op.Kind == OpAddDest && op.Dest.Addr == mustAddr("10.0.0.3") {
			return errors.New("no memory")
		}
		return nil
	})
	h.apply(load(t, poolConf("1")))
	h.expect("rs3 refused, the rest in", "-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1")
	h.result(rs2check, false, "connect: connection refused")
	h.expect("rs2's health still reaches IPVS while rs3's add backs off", "-d -t 10.0.0.1:80 -r 10.0.0.2:80")
	h.result(rs2check, true, "connected")
	h.expect("and back", "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1")
	setRefuse(func(Op) error { return nil })
	h.clk.Advance(retryMax)
	h.settle()
	h.expect("rs3 retried after its back-off", "-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1")
	if st := h.m.Status(); st.Reconcile.LastError != "" {
		t.Errorf("error still shown once everything went in: %+v", st.Reconcile)
	}

	// A reload to a scheduler the kernel refuses (-E): the service keeps
	// its old one, and a dead real server still leaves.
	setRefuse(func(op Op) error {
		if op.Kind == OpUpdateService {
			return errors.New("no such file or directory")
		}
		return nil
	})
	h.apply(load(t, strings.Replace(poolConf("3"), "lb_algo rr", "lb_algo twos", 1)))
	h.expect("the -E refused, the weight edit done", "-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3")
	if st := h.m.Status(); !strings.Contains(st.Reconcile.LastError, "-E -t 10.0.0.1:80 -s twos: no such file or directory") {
		t.Errorf("reconcile status %+v", st.Reconcile)
	}
	h.result(rs3check, false, "connect: connection refused")
	h.expect("a dead server leaves the service whose update is refused", "-d -t 10.0.0.1:80 -r 10.0.0.3:80")
	if out := logged(); !strings.Contains(out, `msg="lvs: real server weight changed" virtual_server="10.0.0.1 80" real_server=10.0.0.2:80 from=1 to=3 cause=configuration`) {
		t.Errorf("the reload's weight change is not logged with the reload as its cause:\n%s", out)
	}

	// No IPVS any more: the refused service is forgotten (no retry timer
	// left spinning on it).
	h.mem.Unavailable = true
	h.clk.Advance(retryMax)
	h.settle()
	done := make(chan int)
	h.m.send(func() { done <- len(h.m.svcFails) })
	if n := <-done; n != 0 {
		t.Errorf("%d refused services kept after IPVS went away", n)
	}
}

// logBuffer is a manager's log, written by its goroutine and read by the
// test.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// keepalived's scripts at a start and their log lines' causes: an alpha
// server's first failed check runs notify_down though it was down already;
// a virtual server that starts without quorum and has a sorry server runs
// quorum_down; a quorum line names the real servers that moved it, an up
// line the check that saw it, a misc_dynamic weight change has its line.
func TestManagerStartScriptsAndCauses(t *testing.T) {
	h := newHarness(t, NewMemory())
	logged := h.log.String
	h.apply(load(t, `
virtual_server 10.0.0.1 80 {
    lb_algo rr
    alpha
    quorum 2
    quorum_up "/bin/echo up"
    quorum_down "/bin/echo down"
    sorry_server 10.0.0.9 80
    real_server 10.0.0.2 80 {
        notify_down "/bin/echo rs2 down"
        notify_up "/bin/echo rs2 up"
        TCP_CHECK {
        }
    }
    real_server 10.0.0.3 80 {
        MISC_CHECK {
            misc_path /bin/true
            misc_dynamic
        }
    }
}
`))
	if diff := cmp.Diff([]string{"quorum_down /bin/echo down"}, h.scripts.take()); diff != "" {
		t.Errorf("start without quorum, with a sorry server (-want +got):\n%s", diff)
	}
	if !strings.Contains(logged(), "starting with quorum down") {
		t.Errorf("no start line:\n%s", logged())
	}

	h.result(rs2check, false, "connect: connection refused")
	if diff := cmp.Diff([]string{"notify_down /bin/echo rs2 down"}, h.scripts.take()); diff != "" {
		t.Errorf("an alpha server's first failed check (-want +got):\n%s", diff)
	}
	h.result(rs2check, false, "connect: connection refused")
	if got := h.scripts.take(); len(got) != 0 {
		t.Errorf("a second failed check ran %q", got)
	}

	misc := "10.0.0.1 80/TCP/10.0.0.3:80#0/MISC_CHECK"
	w := 1 // alive weight 1: still short of the quorum (2)
	h.m.Result(CheckResult{ID: misc, Type: "MISC_CHECK", Target: "/bin/true", Up: true, OK: true, Cause: "exit 3", Weight: &w})
	h.settle()
	h.m.Result(CheckResult{ID: rs2check, Type: "TCP_CHECK", Target: "10.0.0.2:80", Up: true, OK: true, Cause: "connected"})
	h.settle()
	if diff := cmp.Diff([]string{"notify_up /bin/echo rs2 up", "quorum_up /bin/echo up"}, h.scripts.take()); diff != "" {
		t.Errorf("rs2 up gains the quorum, notify first (-want +got):\n%s", diff)
	}
	w = 3
	h.m.Result(CheckResult{ID: misc, Type: "MISC_CHECK", Target: "/bin/true", Up: true, OK: true, Cause: "exit 5", Weight: &w})
	h.settle()
	out := logged()
	for _, want := range []string{
		`msg="lvs: real server down at its first check (alpha)"`,
		`msg="lvs: real server up" virtual_server="10.0.0.1 80" real_server=10.0.0.2:80 weight=1 cause="TCP_CHECK 10.0.0.2:80: connected"`,
		`msg="lvs: quorum gained"`,
		`cause="10.0.0.2:80 up (TCP_CHECK 10.0.0.2:80: connected)"`,
		`msg="lvs: real server weight changed" virtual_server="10.0.0.1 80" real_server=10.0.0.3:80 from=1 to=3 cause="MISC_CHECK /bin/true: exit 5"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestManagerWithoutIPVSStillShowsTheDesiredState(t *testing.T) {
	mem := NewMemory()
	mem.Unavailable = true
	h := newHarness(t, mem)
	h.apply(load(t, poolConf("3")))
	st := h.m.Status()
	if st.Available || !strings.Contains(st.Reason, "IPVS not available") {
		t.Errorf("available %v reason %q", st.Available, st.Reason)
	}
	if !strings.Contains(st.Desired, "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3") {
		t.Errorf("desired:\n%s", st.Desired)
	}
	h.result(rs3check, false, "refused")
	if st := h.m.Status(); strings.Contains(st.Desired, "10.0.0.3") || st.VirtualServers[0].RealServers[1].Up {
		t.Errorf("health not followed without IPVS:\n%s", st.Desired)
	}
}

func TestManagerReleaseRemovesOnlyVipdsServices(t *testing.T) {
	foreign := Pool{Service{Key: ServiceKey{Protocol: UDP, Addr: mustAddr("192.0.2.1"), Port: 53}, Scheduler: "rr"}, nil}
	mem := NewMemory(foreign)
	h := newHarness(t, mem)
	h.apply(load(t, poolConf("1")))
	if err := h.m.Release(); err != nil {
		t.Fatal(err)
	}
	if got, _ := mem.Pools(); len(got) != 1 || got[0].Key != foreign.Key {
		t.Errorf("after release: %v", got)
	}
	if got := h.scripts.take(); len(got) != 0 {
		t.Errorf("a stop without omega ran %q", got)
	}
	// With omega, a stop runs the down scripts.
	h2 := newHarness(t, NewMemory())
	h2.apply(load(t, strings.Replace(poolConf("1"), "lb_algo rr", "lb_algo rr\n    omega", 1)))
	if err := h2.m.Release(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"notify_down /bin/echo rs2 down", "quorum_down /bin/echo down"}, h2.scripts.take()); diff != "" {
		t.Errorf("omega on stop (-want +got):\n%s", diff)
	}
}

func TestManagerAlphaStartsDownAndHASuspend(t *testing.T) {
	local := map[string]bool{}
	var mu sync.Mutex
	h := &harness{t: t, mem: NewMemory(), clk: clock.NewFake(time.Unix(0, 0)), checks: &fakeChecks{}, scripts: &scripts{}}
	h.m = New(Options{Backend: h.mem, Clock: h.clk, Log: slog.New(slog.DiscardHandler), Checks: h.checks, Resync: time.Second,
		IsLocal: func(a string) bool { mu.Lock(); defer mu.Unlock(); return local[a] }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	h.apply(load(t, `
virtual_server 10.0.0.1 80 {
    alpha
    real_server 10.0.0.2 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.5 80 {
    ha_suspend
    real_server 10.0.0.6 80 { TCP_CHECK { } }
}`))
	h.expect("alpha: the service is there, its real server waits for a check; ha_suspend: the service is in IPVS, its checks are not run",
		"-A -t 10.0.0.1:80 -s wlc", "-A -t 10.0.0.5:80 -s wlc", "-a -t 10.0.0.5:80 -r 10.0.0.6:80 -m -w 1")
	if diff := cmp.Diff([]string{"10.0.0.1 80/TCP/10.0.0.2:80#0/TCP_CHECK"}, h.checks.ids()); diff != "" {
		t.Errorf("checks (ha_suspend's suspended) (-want +got):\n%s", diff)
	}
	h.result("10.0.0.1 80/TCP/10.0.0.2:80#0/TCP_CHECK", true, "connected")
	h.expect("first success", "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1")

	// The address arrives and leaves: AddressesChanged (the agent calls it
	// on every address event) makes the manager follow at once, without
	// the clock moving (no resync).
	setLocal := func(v bool) {
		t.Helper()
		mu.Lock()
		local["10.0.0.5"] = v
		mu.Unlock()
		h.m.AddressesChanged()
		deadline := time.Now().Add(10 * time.Second)
		for {
			h.settle()
			if st := h.m.Status(); st.VirtualServers[1].Suspended == !v {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ha_suspend did not follow the address (local %v) without a resync", v)
			}
			time.Sleep(time.Millisecond)
		}
	}
	const rs6 = "10.0.0.5 80/TCP/10.0.0.6:80#0/TCP_CHECK"
	setLocal(true)
	if diff := cmp.Diff([]string{"10.0.0.1 80/TCP/10.0.0.2:80#0/TCP_CHECK", rs6}, h.checks.ids()); diff != "" {
		t.Errorf("the address arrived: checks (-want +got):\n%s", diff)
	}
	h.result(rs6, false, "refused")
	h.expect("a failure while active", "-d -t 10.0.0.5:80 -r 10.0.0.6:80")
	setLocal(false)
	if ids := h.checks.ids(); len(ids) != 1 {
		t.Errorf("the address left: checks %v, want the other server's only", ids)
	}
	h.expect("suspended: the pool stays as the last result left it")
	if st := h.m.Status(); !st.VirtualServers[1].Suspended || st.VirtualServers[1].RealServers[0].Up {
		t.Errorf("suspended view %+v", st.VirtualServers[1])
	}
}

// TestManagerStartAdoptsIPVSAsFound: a start finding its service in IPVS
// without one real server (a previous run took it out) does not add it back
// before its first check; nothing else changes.
func TestManagerStartAdoptsIPVSAsFound(t *testing.T) {
	k := ServiceKey{Protocol: TCP, Addr: mustAddr("10.0.0.1"), Port: 80}
	mem := NewMemory(Pool{Service{Key: k, Scheduler: "rr"}, []Dest{dst("10.0.0.3", 80, 1, NAT)}})
	h := newHarness(t, mem)
	h.apply(load(t, poolConf("1")))
	h.expect("a restart finding its pool")
	if st := h.m.Status(); st.VirtualServers[0].RealServers[0].Up || st.VirtualServers[0].RealServers[0].InPool {
		t.Errorf("rs2 before its first check: %+v", st.VirtualServers[0].RealServers[0])
	}
	h.result(rs2check, true, "connected")
	h.expect("its first check passed", "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1")
}

// TestManagerRestartEdgeCases: the ways a start could move what a previous
// run left in IPVS, and the ways a configuration could stop every check.
func TestManagerRestartEdgeCases(t *testing.T) {
	k := ServiceKey{Protocol: TCP, Addr: mustAddr("10.0.0.1"), Port: 80}
	t.Run("alpha does not empty a pool found in IPVS", func(t *testing.T) {
		h := newHarness(t, NewMemory(Pool{Service{Key: k, Scheduler: "rr"}, []Dest{dst("10.0.0.2", 80, 1, NAT), dst("10.0.0.3", 80, 1, NAT)}}))
		h.apply(load(t, strings.Replace(poolConf("1"), "lb_algo rr", "lb_algo rr\n    alpha", 1)))
		h.expect("a restart with alpha")
		h.result(rs3check, false, "refused")
		h.expect("its first failure", "-d -t 10.0.0.1:80 -r 10.0.0.3:80")
	})
	t.Run("a server inhibited at weight 0 stays there until its first check", func(t *testing.T) {
		h := newHarness(t, NewMemory(Pool{Service{Key: k, Scheduler: "rr"}, []Dest{dst("10.0.0.2", 80, 0, NAT), dst("10.0.0.3", 80, 1, NAT)}}))
		h.apply(load(t, strings.Replace(poolConf("1"), "lb_algo rr", "lb_algo rr\n    inhibit_on_failure", 1)))
		h.expect("a restart with inhibit_on_failure")
		h.result(rs2check, true, "connected")
		h.expect("its first success", "-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1")
	})
	t.Run("a local destination converges", func(t *testing.T) {
		h := newHarness(t, NewMemory(Pool{Service{Key: k, Scheduler: "rr"}, []Dest{dst("10.0.0.2", 80, 1, Local), dst("10.0.0.3", 80, 1, NAT)}}))
		h.apply(load(t, poolConf("1")))
		h.clk.Advance(10 * time.Second)
		h.settle()
		h.expect("the kernel reports Local for a local address: nothing to edit")
	})
	t.Run("a real server written twice runs its checks once", func(t *testing.T) {
		h := newHarness(t, NewMemory())
		conf := strings.Replace(poolConf("1"), "    real_server 10.0.0.3 80 {", "    real_server 10.0.0.3 80 {\n        TCP_CHECK {\n        }\n    }\n    real_server 10.0.0.3 80 {", 1)
		h.apply(load(t, conf))
		if diff := cmp.Diff([]string{rs2check, rs3check}, h.checks.ids()); diff != "" {
			t.Errorf("checks (-want +got):\n%s", diff)
		}
	})
	t.Run("a real server dropped by a reload runs notify_down", func(t *testing.T) {
		h := newHarness(t, NewMemory())
		h.apply(load(t, poolConf("1")))
		h.scripts.take()
		h.mem.Transcript()
		h.apply(load(t, `virtual_server 10.0.0.1 80 {
    lb_algo rr
    real_server 10.0.0.3 80 {
        TCP_CHECK {
        }
    }
}`))
		h.expect("rs2 dropped", "-d -t 10.0.0.1:80 -r 10.0.0.2:80")
		if got := h.scripts.take(); !slices.Contains(got, "notify_down /bin/echo rs2 down") {
			t.Errorf("scripts %q, want rs2's notify_down (keepalived's clear_diff_rs)", got)
		}
	})
}
