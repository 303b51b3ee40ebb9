package gossip

import "sync"

// waiters are requests sent to one node each (maintenance, key
// operations), waiting for that node's answer of type T.
type waiters[T any] struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]*waiter[T]
}

type waiter[T any] struct {
	node string // the node the request went to: only it may answer
	ch   chan T
}

// add registers a request to node: its id, where its answer arrives, and
// done to call when no longer waiting.
func (w *waiters[T]) add(node string) (id uint64, answer <-chan T, done func()) {
	ch := make(chan T, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = map[uint64]*waiter[T]{}
	}
	w.next++
	id = w.next
	w.m[id] = &waiter[T]{node: node, ch: ch}
	w.mu.Unlock()
	return id, ch, func() {
		w.mu.Lock()
		delete(w.m, id)
		w.mu.Unlock()
	}
}

// deliver hands v, the answer from node from to request id, to its
// waiter; false when no request of that id went to that node.
func (w *waiters[T]) deliver(id uint64, from string, v T) bool {
	w.mu.Lock()
	p := w.m[id]
	w.mu.Unlock()
	if p == nil || p.node != from {
		return false
	}
	select {
	case p.ch <- v:
	default:
	}
	return true
}
