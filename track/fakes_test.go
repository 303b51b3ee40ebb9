package track

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock: timers fire only on Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	cond   *sync.Cond
}

func newFakeClock() *fakeClock {
	c := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c.cond = sync.NewCond(&c.mu)
	return c
}

type fakeTimer struct {
	c     *fakeClock
	at    time.Time
	ch    chan time.Time
	fired bool
	stop  bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.cond.Broadcast()
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.fired && !t.stop
	t.stop = true
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.fired && !t.stop
	t.at, t.fired, t.stop = t.c.now.Add(d), false, false
	keep := true
	for _, o := range t.c.timers {
		if o == t {
			keep = false
		}
	}
	if keep {
		t.c.timers = append(t.c.timers, t)
	}
	t.c.cond.Broadcast()
	return was
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stop:
		case !t.at.After(c.now):
			t.fired = true
			t.ch <- c.now
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

// awaitPending blocks until at least one timer is pending.
func (c *fakeClock) awaitPending() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.pendingLocked() == 0 {
		c.cond.Wait()
	}
}

func (c *fakeClock) pendingLocked() int {
	n := 0
	for _, t := range c.timers {
		if !t.stop && !t.fired {
			n++
		}
	}
	return n
}

// fakeLinks is a LinkSource driven by the test.
type fakeLinks struct {
	mu      sync.Mutex
	up      map[string]bool // missing key: no such interface
	watchCh chan<- LinkEvent
	watchOn chan struct{} // closed once Watch has been called
}

func newFakeLinks(up map[string]bool) *fakeLinks {
	return &fakeLinks{up: up, watchOn: make(chan struct{})}
}

func (f *fakeLinks) Watch(ctx context.Context, ch chan<- LinkEvent) error {
	f.mu.Lock()
	f.watchCh = ch
	close(f.watchOn)
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		close(ch)
		f.watchCh = nil
	}()
	return nil
}

func (f *fakeLinks) Link(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up[name], nil
}

// set changes an interface and sends the event (after Watch).
func (f *fakeLinks) set(t *testing.T, ev LinkEvent) {
	t.Helper()
	<-f.watchOn
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Gone {
		delete(f.up, ev.Name)
	} else {
		f.up[ev.Name] = ev.Up
	}
	if f.watchCh != nil {
		f.watchCh <- ev
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitFor receives from ch or fails after a generous real-time bound (the
// bound only guards against a hang; it never decides a result).
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// startManager runs m until the test ends and waits for Run to return.
func startManager(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		waitFor(t, done, "Run to return")
	})
}
