package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a clock for tests: time stands still until Advance moves it, and
// timers fire (in deadline order) only then. It is safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when Advance passes now+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), at: f.now.Add(d), active: true}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the time forward by d, firing every timer whose deadline
// is reached on the way, earliest first. A timer's channel holds one
// firing, as time.Timer's does.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		var due []*fakeTimer
		for _, t := range f.timers {
			if t.active && !t.at.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			break
		}
		sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
		t := due[0]
		if t.at.After(f.now) {
			f.now = t.at
		}
		t.active = false
		select {
		case t.c <- f.now:
		default:
		}
	}
	f.now = end
}

// NextDeadline returns the earliest active timer's deadline, and false when
// no timer is active.
func (f *Fake) NextDeadline() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	ok := false
	for _, t := range f.timers {
		if t.active && (!ok || t.at.Before(next)) {
			next, ok = t.at, true
		}
	}
	return next, ok
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	at     time.Time
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.at = t.f.now.Add(d)
	t.active = true
	return was
}

// Fired reports how many timers have fired and not been read yet: a test
// waits for it to reach 0 to know the code under test took every firing.
func (f *Fake) Fired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		n += len(t.c)
	}
	return n
}
