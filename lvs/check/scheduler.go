package check

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
)

// DefaultMaxConcurrent is how many probes run at once when
// SchedulerOptions.MaxConcurrent is 0.
const DefaultMaxConcurrent = 64

// Check is one checker to run: its configuration, its prober (from New) and
// a stable ID the caller chooses (e.g. "10.0.0.1:80/10.0.1.5:80/0").
type Check struct {
	ID string
	// Config is the normalized checker; the scheduler reads its timings and
	// compares it with the next Set's, so it must not change once handed over.
	Config *config.Checker
	Prober Prober
	// StartDown: the virtual server has alpha, so a new (or restarted)
	// check starts DOWN rather than UP.
	StartDown bool
}

// Report is the end of a round: a success, or a failure with no retry left.
type Report struct {
	ID        string
	WasUp, Up bool
	Changed   bool // WasUp != Up
	Outcome   Outcome
	At        time.Time // on the scheduler's clock
}

// Status is a snapshot of one check.
type Status struct {
	Up        bool
	Last      Outcome   // of the last attempt (a retry's too)
	LastCheck time.Time // when the last attempt ended; zero before the first
	// OKRounds and FailedRounds count the rounds that ended in a success and
	// in a failure (retries exhausted, or any failure while DOWN).
	OKRounds, FailedRounds uint64
}

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	Clock         clock.Clock  // nil: clock.System
	Log           *slog.Logger // nil: slog.Default()
	MaxConcurrent int          // probes in flight at most; 0: DefaultMaxConcurrent
	// Jitter returns a random duration in [0, max]; it spreads the first
	// rounds of new checks. nil: uniformly random.
	Jitter func(max time.Duration) time.Duration
	// OnResult, when set, is called for every Report, in order, from one
	// goroutine of Run's. It must return: Run waits for it when it ends.
	OnResult func(Report)
}

// Scheduler runs every checker of a node on one clock: a heap of wake-ups
// and a bounded pool of probes in flight. It owns the checkers' states; its
// methods are safe for concurrent use.
type Scheduler struct {
	clk      clock.Clock
	log      *slog.Logger
	max      int
	jitter   func(time.Duration) time.Duration
	onResult func(Report)
	kick     chan struct{} // wakes Run's loop: the set or the pool changed
	delivery chan struct{} // wakes the OnResult goroutine

	mu       sync.Mutex
	entries  map[string]*entry
	wakes    wakeHeap
	ready    []*entry // due, waiting for a free probe slot, in order
	inFlight int
	running  bool
	reports  []Report // for OnResult
}

// entry is one check's runtime state, guarded by Scheduler.mu.
type entry struct {
	check  Check
	timing timing
	state  state
	status Status
	seq    uint64             // of the entry's current wake-up; older heap items are stale
	cancel context.CancelFunc // of the probe in flight; nil when none
	gone   bool               // removed, or replaced by a changed config
}

// NewScheduler returns a scheduler with no checks; Set gives it some and Run
// runs them.
func NewScheduler(o SchedulerOptions) *Scheduler {
	s := &Scheduler{
		clk:      o.Clock,
		log:      o.Log,
		max:      o.MaxConcurrent,
		jitter:   o.Jitter,
		onResult: o.OnResult,
		kick:     make(chan struct{}, 1),
		delivery: make(chan struct{}, 1),
		entries:  map[string]*entry{},
	}
	if s.clk == nil {
		s.clk = clock.System{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = DefaultMaxConcurrent
	}
	if s.jitter == nil {
		s.jitter = func(max time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(max) + 1)) }
	}
	return s
}

// Set replaces the set of checks. A check whose ID was there before with an
// identical configuration (positions aside) keeps its state and schedule,
// and its new Prober is used from its next attempt. A check that is new or
// whose configuration changed starts afresh (UP, or DOWN with StartDown)
// after its warmup. A check no longer in the set stops, and its probe in
// flight is cancelled and its result dropped. An invalid set (empty or
// duplicate ID, nil Config or Prober, delay_loop not positive) is refused
// whole.
func (s *Scheduler) Set(checks []Check) error {
	byID := make(map[string]Check, len(checks))
	for i, c := range checks {
		switch {
		case c.ID == "":
			return fmt.Errorf("check %d: empty ID", i)
		case c.Config == nil || c.Prober == nil:
			return fmt.Errorf("check %s: nil Config or Prober", c.ID)
		case c.Config.DelayLoop <= 0:
			return fmt.Errorf("check %s: delay_loop %s: must be positive", c.ID, c.Config.DelayLoop)
		}
		if _, dup := byID[c.ID]; dup {
			return fmt.Errorf("check %s: duplicate ID", c.ID)
		}
		byID[c.ID] = c
	}
	now := s.clk.Now()
	s.mu.Lock()
	for id, e := range s.entries {
		if c, ok := byID[id]; !ok || !sameConfig(c.Config, e.check.Config) {
			e.gone = true
			if e.cancel != nil {
				e.cancel()
			}
			delete(s.entries, id)
		}
	}
	for _, c := range checks {
		if e, ok := s.entries[c.ID]; ok {
			e.check = c
			continue
		}
		e := &entry{check: c, timing: timingOf(c.Config)}
		var at time.Time
		e.state, at = e.timing.start(c.StartDown, now, s.jitter)
		e.status.Up = e.state.up
		s.entries[c.ID] = e
		s.schedule(e, at)
	}
	s.mu.Unlock()
	s.poke()
	return nil
}

// sameConfig compares two checkers, ignoring where they were written.
func sameConfig(a, b *config.Checker) bool {
	x, y := *a, *b
	x.Pos, y.Pos = config.Pos{}, config.Pos{}
	return reflect.DeepEqual(x, y)
}

// States returns a snapshot of every check by ID.
func (s *Scheduler) States() map[string]Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]Status, len(s.entries))
	for id, e := range s.entries {
		m[id] = e.status
	}
	return m
}

// Run runs the checks until ctx is done, then cancels the probes in flight
// (their results are dropped, like reports not yet delivered) and returns
// nil once every goroutine it started has ended. It may be called once; a
// second call returns an error.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("check: Scheduler.Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	var wg sync.WaitGroup // probes in flight and the OnResult goroutine
	defer wg.Wait()
	if s.onResult != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.deliver(ctx)
		}()
	}
	timer := s.clk.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if d, ok := s.dispatch(ctx, &wg); ok {
			timer.Reset(d)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil // the probes' contexts derive from ctx: they end too
		case <-timer.C():
		case <-s.kick:
		}
	}
}

// dispatch starts the probes that are due, as far as the pool allows, and
// returns how long until the next wake-up, if any.
func (s *Scheduler) dispatch(ctx context.Context, wg *sync.WaitGroup) (time.Duration, bool) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.wakes) > 0 && !s.wakes[0].at.After(now) {
		if w := heap.Pop(&s.wakes).(wake); w.current() {
			s.ready = append(s.ready, w.e)
		}
	}
	for s.inFlight < s.max && len(s.ready) > 0 {
		e := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		if !e.gone {
			s.launch(ctx, wg, e)
		}
	}
	for len(s.wakes) > 0 && !s.wakes[0].current() {
		heap.Pop(&s.wakes)
	}
	if len(s.wakes) == 0 {
		return 0, false
	}
	return s.wakes[0].at.Sub(now), true
}

// launch starts e's probe; s.mu is held.
func (s *Scheduler) launch(ctx context.Context, wg *sync.WaitGroup, e *entry) {
	pctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	s.inFlight++
	p := e.check.Prober
	wg.Add(1)
	go func() {
		defer wg.Done()
		o := p.Probe(pctx)
		s.finish(e, o, pctx.Err() != nil)
		cancel()
	}()
}

// finish applies a probe's outcome to its check, unless the check was
// removed or Run is ending (cancelled).
func (s *Scheduler) finish(e *entry, o Outcome, cancelled bool) {
	now := s.clk.Now()
	s.mu.Lock()
	s.inFlight--
	if e.gone || cancelled {
		s.mu.Unlock()
		s.poke()
		return
	}
	e.cancel = nil
	was := e.state.up
	r := e.timing.step(e.state, o.OK, now)
	e.state = r.state
	e.status.Up, e.status.Last, e.status.LastCheck = r.state.up, o, now
	if r.roundDone {
		if o.OK {
			e.status.OKRounds++
		} else {
			e.status.FailedRounds++
		}
		if s.onResult != nil {
			s.reports = append(s.reports, Report{ID: e.check.ID, WasUp: was, Up: r.state.up, Changed: r.changed, Outcome: o, At: now})
		}
	}
	if r.changed {
		s.logTransition(e, was, o)
	}
	s.schedule(e, r.next)
	s.mu.Unlock()
	if r.roundDone && s.onResult != nil {
		select {
		case s.delivery <- struct{}{}:
		default:
		}
	}
	s.poke()
}

// logTransition writes the one line of an UP/DOWN change; s.mu is held, so
// a check's lines come in order.
func (s *Scheduler) logTransition(e *entry, was bool, o Outcome) {
	c := e.check.Config
	level, msg := slog.LevelInfo, "health check UP"
	if was {
		level, msg = slog.LevelWarn, "health check DOWN"
	}
	s.log.Log(context.Background(), level, msg, "id", e.check.ID, "checker", c.Type,
		"target", Target(c), "from", upDown(was), "to", upDown(!was), "cause", o.Cause)
}

func upDown(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}

// deliver calls OnResult for the queued reports, in order, until ctx is done.
func (s *Scheduler) deliver(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.delivery:
		}
		s.mu.Lock()
		batch := s.reports
		s.reports = nil
		s.mu.Unlock()
		for _, r := range batch {
			if ctx.Err() != nil {
				return
			}
			s.onResult(r)
		}
	}
}

// schedule sets e's next attempt; s.mu is held.
func (s *Scheduler) schedule(e *entry, at time.Time) {
	e.seq++
	heap.Push(&s.wakes, wake{at: at, e: e, seq: e.seq})
}

func (s *Scheduler) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// wake is a check's next attempt in the heap; a wake whose entry has moved
// on (gone, or rescheduled) is stale and skipped.
type wake struct {
	at  time.Time
	e   *entry
	seq uint64
}

func (w wake) current() bool { return !w.e.gone && w.seq == w.e.seq }

type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = wake{}
	*h = old[:len(old)-1]
	return w
}
