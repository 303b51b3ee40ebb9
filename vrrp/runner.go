package vrrp

import (
	"container/heap"
	"sync"
	"time"
)

// runner owns a set of instances — every instance on one socket — and runs
// all their work on one goroutine: received adverts, requests, sync group
// orders and timers. Instances have no goroutine of their own: a node with
// thousands of instances runs one runner per interface and family, with
// one timer (the earliest deadline of a heap) instead of one per instance,
// and instances whose deadlines fall on the same instant are served in one
// wake-up.
type runner struct {
	clock Clock

	mu    sync.Mutex
	inbox []work
	spare []work // the other half of the double buffer
	sig   chan struct{}
	quit  bool

	// Owned by the runner goroutine.
	timers  timerHeap
	armedAt time.Time // the runner's timer fires then; zero: not armed
	done    chan struct{}
}

type workKind uint8

const (
	workRx workKind = iota + 1
	workCtl
	workOrder
	workStart
	workStop
)

// work is one piece of an instance's work, by value.
type work struct {
	inst  *Instance
	kind  workKind
	rx    rxItem
	ctl   ctlItem
	order order
}

func newRunner(c Clock) *runner {
	if c == nil {
		c = SystemClock{}
	}
	r := &runner{clock: c, sig: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	return r
}

// post queues w without waiting; false when the runner has stopped.
func (r *runner) post(w work) bool {
	r.mu.Lock()
	if r.quit {
		r.mu.Unlock()
		return false
	}
	r.inbox = append(r.inbox, w)
	r.mu.Unlock()
	select {
	case r.sig <- struct{}{}:
	default:
	}
	return true
}

// close stops the runner once its inbox is done.
func (r *runner) close() {
	r.mu.Lock()
	r.quit = true
	r.mu.Unlock()
	select {
	case r.sig <- struct{}{}:
	default:
	}
	<-r.done
}

func (r *runner) run() {
	defer close(r.done)
	timer := r.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		var batch []work
		if len(r.inbox) > 0 {
			// Swap the halves of the double buffer: posters fill the
			// spare while this batch runs.
			batch = r.inbox
			r.inbox, r.spare = r.spare[:0], nil
		}
		quit := r.quit && len(batch) == 0
		r.mu.Unlock()
		if quit {
			return
		}
		if len(batch) > 0 {
			now := r.clock.Now() // one instant for the whole batch
			for k := range batch {
				r.handle(&batch[k], now)
				batch[k] = work{} // drop references
			}
			r.mu.Lock()
			if r.spare == nil {
				r.spare = batch[:0]
			}
			r.mu.Unlock()
			continue // more may have come while we worked
		}
		r.arm(timer)
		select {
		case <-r.sig:
		case <-timer.C():
			r.armedAt = time.Time{}
			r.fire(r.clock.Now())
		}
	}
}

func (r *runner) handle(w *work, now time.Time) {
	i := w.inst
	switch w.kind {
	case workStart:
		i.begin(now)
		i.begun = true
		// Work that came before the start (a request racing Run's
		// goroutine) runs now, in its order.
		early := i.early
		i.early = nil
		for k := range early {
			r.handle(&early[k], now)
		}
	case workStop:
		i.end(now)
		i.early = nil
		r.timers.remove(i)
		return
	default:
		if !i.begun && !i.ended {
			i.early = append(i.early, *w)
			return
		}
	}
	if i.ended {
		if w.kind == workCtl {
			close(w.ctl.done) // the caller sees ErrStopped
		}
		return
	}
	switch w.kind {
	case workRx:
		i.rxPending.Add(-1)
		i.receive(w.rx)
	case workCtl:
		i.apply(w.ctl.fn(now))
		*w.ctl.ran = true
		close(w.ctl.done)
	case workOrder:
		i.forcing = w.order.forced
		i.apply(w.order.fn(now))
		i.forcing = false
	}
	r.schedule(i)
}

// fire runs the timers of every instance whose deadline has come.
func (r *runner) fire(now time.Time) {
	for len(r.timers) > 0 && !r.timers[0].heapAt.After(now) {
		i := heap.Pop(&r.timers).(*Instance)
		i.timer(now)
		r.schedule(i)
	}
}

// schedule puts i in the heap at its next deadline. Lazily: an entry due
// no later than that stays (it fires early, finds nothing due, and is
// scheduled again), so a backup's down timer, which moves on every advert,
// costs a heap update about once per Master_Down_Interval.
func (r *runner) schedule(i *Instance) {
	defer i.armed.Add(1)
	next := i.nextDeadline()
	switch {
	case i.ended:
		r.timers.remove(i)
	case next.IsZero():
		// Nothing to run; a stale entry fires once, harmlessly.
	case i.heapIdx < 0:
		i.heapAt = next
		heap.Push(&r.timers, i)
	case next.Before(i.heapAt):
		i.heapAt = next
		heap.Fix(&r.timers, i.heapIdx)
	}
}

// arm sets the runner's timer for the earliest deadline.
func (r *runner) arm(t Timer) {
	if len(r.timers) == 0 {
		return
	}
	next := r.timers[0].heapAt
	if !r.armedAt.IsZero() && !next.Before(r.armedAt) {
		return
	}
	r.armedAt = next
	d := next.Sub(r.clock.Now())
	if d < 0 {
		d = 0
	}
	if !t.Stop() {
		select {
		case <-t.C():
		default:
		}
	}
	t.Reset(d)
}

// timerHeap orders instances by their next deadline.
type timerHeap []*Instance

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(a, b int) bool { return h[a].heapAt.Before(h[b].heapAt) }
func (h timerHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].heapIdx, h[b].heapIdx = a, b
}
func (h *timerHeap) Push(x any) {
	i := x.(*Instance)
	i.heapIdx = len(*h)
	*h = append(*h, i)
}
func (h *timerHeap) Pop() any {
	old := *h
	i := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	i.heapIdx = -1
	return i
}

func (h *timerHeap) remove(i *Instance) {
	if i.heapIdx >= 0 && i.heapIdx < len(*h) && (*h)[i.heapIdx] == i {
		heap.Remove(h, i.heapIdx)
	}
}
