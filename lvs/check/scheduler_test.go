package check

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
)

// proberFunc is a Prober made of a function.
type proberFunc func(ctx context.Context) Outcome

func (f proberFunc) Probe(ctx context.Context) Outcome { return f(ctx) }

// scripted returns a prober that answers the results in order ('+' success,
// '-' failure; the last one repeats) and records the clock time of each call.
func scripted(clk clock.Clock, results string) (Prober, <-chan time.Time) {
	calls := make(chan time.Time, 100)
	var n atomic.Int64
	return proberFunc(func(context.Context) Outcome {
		i := min(int(n.Add(1))-1, len(results)-1)
		calls <- clk.Now()
		if results[i] == '+' {
			return Outcome{OK: true, Cause: "connected"}
		}
		return Outcome{Cause: "connect: connection refused"}
	}), calls
}

func tcpConfig(retry int, dbr, loop, warmup time.Duration) *config.Checker {
	return &config.Checker{
		Type: config.CheckTCP, ConnectIP: mustAddr("10.0.1.5"), ConnectPort: 80,
		ConnectTimeout: config.Duration(time.Second), Retry: &retry,
		DelayBeforeRetry: config.Duration(dbr), DelayLoop: config.Duration(loop), Warmup: config.Duration(warmup),
	}
}

// harness runs a Scheduler on a fake clock and collects its reports and logs.
type harness struct {
	t       *testing.T
	clk     *clock.Fake
	s       *Scheduler
	reports chan Report
	logs    *syncBuffer
	done    chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newHarness starts a scheduler whose jitter returns firstDelay (clamped to
// the spread) and which runs until the test ends.
func newHarness(t *testing.T, firstDelay time.Duration, maxConcurrent int) *harness {
	return newHarnessJitter(t, func(time.Duration) time.Duration { return firstDelay }, maxConcurrent)
}

func newHarnessJitter(t *testing.T, jitter func(time.Duration) time.Duration, maxConcurrent int) *harness {
	t.Helper()
	h := &harness{
		t: t, clk: clock.NewFake(t0), reports: make(chan Report, 1000),
		logs: &syncBuffer{}, done: make(chan struct{}),
	}
	h.s = NewScheduler(SchedulerOptions{
		Clock:         h.clk,
		Log:           slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{ReplaceAttr: dropTime})),
		MaxConcurrent: maxConcurrent,
		Jitter:        jitter,
		OnResult:      func(r Report) { h.reports <- r },
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(h.done)
		if err := h.s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	return h
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// waitFor polls cond until it holds; the deadline only bounds a broken test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// probeAt waits until the scheduler's next wake-up is at (it must be: no
// earlier one), moves the clock there, and waits until each of ids has run
// and its result is applied.
func (h *harness) probeAt(at time.Duration, ids ...string) {
	h.t.Helper()
	want := t0.Add(at)
	waitFor(h.t, fmt.Sprintf("next wake-up at %v", at), func() bool {
		d, ok := h.clk.NextDeadline()
		return ok && d.Equal(want)
	})
	h.clk.Advance(want.Sub(h.clk.Now()))
	for _, id := range ids {
		waitFor(h.t, fmt.Sprintf("%s checked at %v", id, at), func() bool {
			return h.s.States()[id].LastCheck.Equal(want)
		})
	}
}

// drain returns the reports delivered so far, as "at id WAS->NOW [changed]".
func (h *harness) drain(n int) []string {
	h.t.Helper()
	var out []string
	for range n {
		select {
		case r := <-h.reports:
			line := fmt.Sprintf("%v %s %s->%s", r.At.Sub(t0), r.ID, upDown(r.WasUp), upDown(r.Up))
			if r.Changed {
				line += " changed"
			}
			out = append(out, line)
		case <-time.After(10 * time.Second):
			h.t.Fatalf("only %d of %d reports arrived: %v", len(out), n, out)
		}
	}
	select {
	case r := <-h.reports:
		h.t.Errorf("unexpected report %+v", r)
	default:
	}
	return out
}

func TestSchedulerRetriesWithDelayBeforeRetryThenGoesDownAndRecovers(t *testing.T) {
	h := newHarness(t, time.Second, 0)
	p, calls := scripted(h.clk, "+---+")
	if err := h.s.Set([]Check{{ID: "a", Config: tcpConfig(2, 3*time.Second, 10*time.Second, 0), Prober: p}}); err != nil {
		t.Fatal(err)
	}
	// First round after the jitter (1s), then every delay_loop (10s); two
	// retries 3s apart before DOWN; one success brings it back.
	for _, at := range []time.Duration{1, 11, 14, 17, 27} {
		h.probeAt(at*time.Second, "a")
	}
	if len(calls) != 5 {
		t.Errorf("%d probes, want 5", len(calls))
	}
	got := h.drain(3)
	want := []string{"1s a UP->UP", "17s a UP->DOWN changed", "27s a DOWN->UP changed"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	st := h.s.States()["a"]
	if !st.Up || st.OKRounds != 2 || st.FailedRounds != 1 || !st.LastCheck.Equal(t0.Add(27*time.Second)) {
		t.Errorf("status = %+v, want UP with 2 OK rounds and 1 failed, last at 27s", st)
	}
	// One log line per transition, with its cause.
	lines := strings.Split(strings.TrimSpace(h.logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines:\n%s\nwant 2", h.logs)
	}
	for i, want := range []string{
		`level=WARN msg="health check DOWN" id=a checker=TCP_CHECK target=10.0.1.5:80 from=UP to=DOWN cause="connect: connection refused"`,
		`level=INFO msg="health check UP" id=a checker=TCP_CHECK target=10.0.1.5:80 from=DOWN to=UP cause=connected`,
	} {
		if lines[i] != want {
			t.Errorf("log line %d:\n got %s\nwant %s", i, lines[i], want)
		}
	}
}

func TestSchedulerStartsAlphaDownAndWaitsForWarmup(t *testing.T) {
	var asked []time.Duration
	var mu sync.Mutex
	h := newHarnessJitter(t, func(max time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, max)
		return max / 2
	}, 0)
	pa, _ := scripted(h.clk, "+")
	pb, _ := scripted(h.clk, "+")
	err := h.s.Set([]Check{
		{ID: "warm", Config: tcpConfig(1, time.Second, 10*time.Second, 6*time.Second), Prober: pa, StartDown: true},
		{ID: "loop", Config: tcpConfig(1, time.Second, 10*time.Second, 0), Prober: pb},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := h.s.States(); st["warm"].Up || !st["loop"].Up {
		t.Errorf("before any check: warm (alpha) Up=%v, loop Up=%v; want DOWN and UP", st["warm"].Up, st["loop"].Up)
	}
	h.probeAt(3*time.Second, "warm") // half of warmup 6s
	h.probeAt(5*time.Second, "loop") // half of delay_loop 10s: keepalived's default warmup
	if diff := cmp.Diff([]string{"3s warm DOWN->UP changed", "5s loop UP->UP"}, h.drain(2)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]time.Duration{6 * time.Second, 10 * time.Second}, asked); diff != "" {
		t.Errorf("jitter spreads (-want +got):\n%s", diff)
	}
}

func TestSchedulerSetKeepsUnchangedChecksAndRestartsChangedOnes(t *testing.T) {
	h := newHarness(t, time.Second, 0)
	p1, _ := scripted(h.clk, "-")
	cfg := tcpConfig(1, time.Second, 10*time.Second, 0)
	if err := h.s.Set([]Check{{ID: "a", Config: cfg, Prober: p1}, {ID: "b", Config: cfg, Prober: p1}}); err != nil {
		t.Fatal(err)
	}
	h.probeAt(time.Second, "a", "b") // one failure initially is enough: DOWN
	h.drain(2)

	// A reload: "a" identical but for its position and a new prober, "b"
	// with another connect_timeout.
	same := *cfg
	same.Pos = config.Pos{File: "keepalived.conf", Line: 99}
	changed := *cfg
	changed.ConnectTimeout = config.Duration(2 * time.Second)
	p2, calls2 := scripted(h.clk, "+")
	h.clk.Advance(4 * time.Second) // now 5s; nothing is due before 11s
	if err := h.s.Set([]Check{{ID: "a", Config: &same, Prober: p2}, {ID: "b", Config: &changed, Prober: p2}}); err != nil {
		t.Fatal(err)
	}
	st := h.s.States()
	if st["a"].Up || st["a"].FailedRounds != 1 {
		t.Errorf("unchanged a = %+v, want DOWN with its failed round kept", st["a"])
	}
	if !st["b"].Up || st["b"].FailedRounds != 0 {
		t.Errorf("changed b = %+v, want a fresh UP check", st["b"])
	}
	h.probeAt(6*time.Second, "b")  // restarted: jitter after the Set at 5s
	h.probeAt(11*time.Second, "a") // kept its schedule: 1s + delay_loop
	if diff := cmp.Diff([]string{"6s b UP->UP", "11s a DOWN->UP changed"}, h.drain(2)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if len(calls2) != 2 {
		t.Errorf("the new prober ran %d times, want 2 (a kept its state but uses the new prober)", len(calls2))
	}
}

func TestSchedulerRemovalCancelsTheProbeInFlight(t *testing.T) {
	h := newHarness(t, 0, 0)
	started := make(chan struct{})
	ended := make(chan error, 1)
	p := proberFunc(func(ctx context.Context) Outcome {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return Outcome{Cause: "cancelled"}
	})
	if err := h.s.Set([]Check{{ID: "a", Config: tcpConfig(1, time.Second, 10*time.Second, 0), Prober: p}}); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := h.s.Set(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if err != context.Canceled {
			t.Errorf("probe ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("removing the check did not cancel its probe")
	}
	waitFor(t, "the probe slot to be free", func() bool {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		return h.s.inFlight == 0
	})
	if len(h.s.States()) != 0 {
		t.Errorf("States() = %v after removal, want none", h.s.States())
	}
	if _, ok := h.clk.NextDeadline(); ok {
		t.Error("a removed check is still scheduled")
	}
	h.drain(0)
	if strings.Contains(h.logs.String(), "DOWN") {
		t.Errorf("the cancelled probe of a removed check was logged as a failure:\n%s", h.logs)
	}
}

func TestSchedulerBoundsProbesInFlight(t *testing.T) {
	h := newHarness(t, 0, 3)
	var inFlight, peak atomic.Int64
	started := make(chan struct{}, 100)
	release := make(chan struct{})
	p := proberFunc(func(ctx context.Context) Outcome {
		n := inFlight.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		inFlight.Add(-1)
		return Outcome{OK: true}
	})
	var checks []Check
	for i := range 10 {
		checks = append(checks, Check{ID: fmt.Sprint(i), Config: tcpConfig(1, time.Second, time.Hour, 0), Prober: p})
	}
	if err := h.s.Set(checks); err != nil { // all ten are due at once
		t.Fatal(err)
	}
	for range 3 {
		<-started
	}
	// Give a scheduler without a bound the chance to start a fourth.
	select {
	case <-started:
		t.Fatal("a fourth probe started while three were in flight")
	case <-time.After(100 * time.Millisecond):
	}
	for i := 3; i < 10; i++ {
		release <- struct{}{}
		<-started
	}
	for range 3 {
		release <- struct{}{}
	}
	h.drain(10)
	if peak.Load() != 3 {
		t.Errorf("peak of probes in flight = %d, want 3", peak.Load())
	}
}

func TestSchedulerRunEndsOnCancelWithoutLeakingGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	clk := clock.NewFake(t0)
	started := make(chan struct{}, 10)
	p := proberFunc(func(ctx context.Context) Outcome {
		started <- struct{}{}
		<-ctx.Done()
		return Outcome{Cause: "cancelled"}
	})
	reports := 0
	s := NewScheduler(SchedulerOptions{
		Clock: clk, Log: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)),
		Jitter:   func(time.Duration) time.Duration { return 0 },
		OnResult: func(Report) { reports++ },
	})
	var checks []Check
	for i := range 5 {
		checks = append(checks, Check{ID: fmt.Sprint(i), Config: tcpConfig(1, time.Second, time.Second, 0), Prober: p})
	}
	if err := s.Set(checks); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for range 5 {
		<-started
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end on cancel")
	}
	if reports != 0 {
		t.Errorf("%d reports of probes cancelled by shutdown, want 0", reports)
	}
	for _, st := range s.States() {
		if !st.Up {
			t.Errorf("a probe cancelled by shutdown took its check DOWN: %+v", st)
		}
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if err := s.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted")
	}
}

func TestSchedulerSetRefusesAnInvalidSetWhole(t *testing.T) {
	p := proberFunc(func(context.Context) Outcome { return Outcome{OK: true} })
	good := tcpConfig(1, time.Second, time.Second, 0)
	noLoop := tcpConfig(1, time.Second, 0, 0)
	tests := []struct {
		name   string
		checks []Check
		want   string
	}{
		{"empty ID", []Check{{Config: good, Prober: p}}, "check 0: empty ID"},
		{"duplicate ID", []Check{{ID: "a", Config: good, Prober: p}, {ID: "a", Config: good, Prober: p}}, "check a: duplicate ID"},
		{"no prober", []Check{{ID: "a", Config: good}}, "check a: nil Config or Prober"},
		{"no delay_loop", []Check{{ID: "a", Config: noLoop, Prober: p}}, "check a: delay_loop 0s: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewScheduler(SchedulerOptions{Clock: clock.NewFake(t0)})
			if err := s.Set([]Check{{ID: "kept", Config: good, Prober: p}}); err != nil {
				t.Fatal(err)
			}
			err := s.Set(tt.checks)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Set = %v, want %q", err, tt.want)
			}
			if _, ok := s.States()["kept"]; !ok {
				t.Error("a refused Set changed the running set")
			}
		})
	}
}

func TestDefaultJitterSpreadsTheFirstRoundsOverDelayLoop(t *testing.T) {
	s := NewScheduler(SchedulerOptions{Clock: clock.NewFake(t0)})
	p := proberFunc(func(context.Context) Outcome { return Outcome{OK: true} })
	var checks []Check
	for i := range 1000 {
		checks = append(checks, Check{ID: fmt.Sprint(i), Config: tcpConfig(1, time.Second, time.Second, 0), Prober: p})
	}
	if err := s.Set(checks); err != nil {
		t.Fatal(err)
	}
	firsts := map[time.Time]bool{}
	var inFirstHalf int
	for _, w := range s.wakes {
		if w.at.Before(t0) || w.at.After(t0.Add(time.Second)) {
			t.Fatalf("first round at %v, outside [0, delay_loop]", w.at.Sub(t0))
		}
		firsts[w.at] = true
		if w.at.Before(t0.Add(time.Second / 2)) {
			inFirstHalf++
		}
	}
	if len(firsts) < 990 || inFirstHalf < 400 || inFirstHalf > 600 {
		t.Errorf("1000 first rounds: %d distinct times, %d in the first half second; want them spread evenly", len(firsts), inFirstHalf)
	}
}
