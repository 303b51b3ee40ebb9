package agent

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/vrrp"
)

// hub is the agent's state stream: it holds the latest status of every
// instance, merged from what the runtime reports (state, effective
// priority, master, faults) and what the agent knows (base priority,
// tracking, overrides, sync group), and hands every change to its
// subscribers in order. Status and metrics read it; nothing polls the
// instances. It has its own lock, so status answers while a reload waits
// for instances to stop.
type hub struct {
	mu      sync.Mutex
	seq     uint64
	entries map[*runningInstance]*hubEntry
	subs    map[*subscriber]struct{}
	now     func() time.Time
}

type hubEntry struct {
	rt    vrrp.InstanceStatus // from the runtime
	ag    agentPart           // from the agent
	err   string              // the instance could not start
	since time.Time           // for instances that could not start
}

// agentPart is what the agent adds to an instance's status.
type agentPart struct {
	name      string
	iface     string
	vrid      int
	version   int
	base      int
	vips      []string
	tracked   []api.TrackedStatus
	overrides []api.PriorityOverride
	group     string
}

// subscriber is one reader's queue. A status event (EventInstance) that
// is still queued when a newer one for the same instance comes is dropped
// (left as a zero Event, skipped on delivery): a reader that falls behind
// holds at most one pending status per instance, plus the transitions and
// removals, which are all kept. The queue never blocks the agent.
type subscriber struct {
	mu      sync.Mutex
	q       []api.Event
	pending map[string]int // instance -> index in q of its queued status event
	dropped int            // zero Events in q
	sig     chan struct{}
}

// add queues ev. s.mu is held.
func (s *subscriber) add(ev api.Event) {
	if ev.Kind == api.EventInstance && ev.Instance != "" {
		if i, ok := s.pending[ev.Instance]; ok {
			s.q[i] = api.Event{}
			s.dropped++
		}
		if s.pending == nil {
			s.pending = map[string]int{}
		}
		s.pending[ev.Instance] = len(s.q)
	}
	s.q = append(s.q, ev)
	if s.dropped > 64 && s.dropped > len(s.q)/2 {
		s.compact()
	}
}

// compact removes the dropped events from q. s.mu is held.
func (s *subscriber) compact() {
	q := make([]api.Event, 0, len(s.q)-s.dropped)
	for _, ev := range s.q {
		if ev.Seq == 0 {
			continue
		}
		if ev.Kind == api.EventInstance && ev.Instance != "" {
			s.pending[ev.Instance] = len(q)
		}
		q = append(q, ev)
	}
	s.q, s.dropped = q, 0
}

// take returns the queue and empties it. s.mu is held.
func (s *subscriber) take() []api.Event {
	q := s.q
	s.q, s.dropped = nil, 0
	clear(s.pending)
	return q
}

func newHub() *hub {
	return &hub{entries: map[*runningInstance]*hubEntry{}, subs: map[*subscriber]struct{}{}, now: time.Now}
}

func (h *hub) entry(ri *runningInstance) *hubEntry {
	e := h.entries[ri]
	if e == nil {
		e = &hubEntry{}
		h.entries[ri] = e
	}
	return e
}

func (e *hubEntry) status() api.InstanceStatus {
	ag := e.ag
	s := api.InstanceStatus{
		Name: ag.name, VRID: ag.vrid, Interface: ag.iface, Version: ag.version,
		Priority: ag.base, VIPs: append([]string{}, ag.vips...),
		Tracked: ag.tracked, Overrides: ag.overrides, Group: ag.group,
	}
	if e.err != "" || e.rt.Name == "" {
		s.State, s.EffectivePriority, s.Cause, s.Since = "FAULT", ag.base, e.err, e.since
		if e.err == "" {
			s.State, s.Cause = "INIT", "starting"
		}
		return s
	}
	rt := e.rt
	s.State, s.EffectivePriority, s.Since, s.Cause = rt.State.String(), rt.EffectivePriority, rt.Since, rt.Cause
	if rt.Master.IsValid() {
		s.Master, s.MasterPriority = rt.Master.String(), rt.MasterPriority
	}
	if len(rt.Faults) > 0 {
		s.Faults = map[string]string{}
		for k, v := range rt.Faults {
			s.Faults[k] = v
		}
	}
	s.GateHeld = rt.GateHeld
	return s
}

// publish appends ev (with the entry's status) to every subscriber. h.mu
// is held.
func (h *hub) publishLocked(ev api.Event) {
	h.seq++
	ev.Seq = h.seq
	if ev.Time.IsZero() {
		ev.Time = h.now()
	}
	for s := range h.subs {
		s.mu.Lock()
		s.add(ev)
		s.mu.Unlock()
		select {
		case s.sig <- struct{}{}:
		default:
		}
	}
}

func (h *hub) emit(ri *runningInstance, e *hubEntry, ev api.Event) {
	st := e.status()
	ev.Instance = st.Name
	ev.Status = &st
	h.publishLocked(ev)
}

// setAgent updates the agent's part of an instance's status.
func (h *hub) setAgent(ri *runningInstance, fn func(*agentPart)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(ri)
	before := e.status()
	fn(&e.ag)
	after := e.status()
	if before.Name != "" && before.Name != after.Name {
		// A rename: readers keyed by name (metrics) drop the old name.
		h.publishLocked(api.Event{Kind: api.EventInstanceRemoved, Instance: before.Name, Status: &before})
	}
	if !statusEqual(before, after) {
		h.emit(ri, e, api.Event{Kind: api.EventInstance})
	}
}

// failed records an instance that could not start.
func (h *hub) failed(ri *runningInstance, err string, since time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(ri)
	e.err, e.since = err, since
	h.emit(ri, e, api.Event{Kind: api.EventInstance})
}

// runtime records a status reported by the instance.
func (h *hub) runtime(ri *runningInstance, s vrrp.InstanceStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.entries[ri]
	if !ok {
		return // removed already
	}
	before := e.status()
	e.rt = s
	if !statusEqual(before, e.status()) {
		h.emit(ri, e, api.Event{Kind: api.EventInstance})
	}
}

// transition records a state change.
func (h *hub) transition(ri *runningInstance, s vrrp.InstanceStatus, tr vrrp.Transition) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.entries[ri]
	if !ok {
		return
	}
	e.rt = s
	h.emit(ri, e, api.Event{Kind: api.EventTransition, Time: tr.At, From: tr.From.String(), To: tr.To.String(),
		Cause: tr.Cause, CauseKind: string(tr.CauseKind)})
}

// remove drops an instance and publishes its last status.
func (h *hub) remove(ri *runningInstance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.entries[ri]
	if !ok {
		return
	}
	delete(h.entries, ri)
	h.emit(ri, e, api.Event{Kind: api.EventInstanceRemoved})
}

// event publishes an event that is not about an instance's status.
func (h *hub) event(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishLocked(ev)
}

// snapshot returns every instance's status, sorted by name.
func (h *hub) snapshot() []api.InstanceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshotLocked()
}

func (h *hub) snapshotLocked() []api.InstanceStatus {
	out := make([]api.InstanceStatus, 0, len(h.entries))
	for _, e := range h.entries {
		out = append(out, e.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// subscribe returns the snapshot and a channel of every later event; the
// channel closes when ctx ends. Events queue per subscriber, so the agent
// never waits for one.
func (h *hub) subscribe(ctx context.Context) ([]api.InstanceStatus, <-chan api.Event) {
	s := &subscriber{sig: make(chan struct{}, 1)}
	h.mu.Lock()
	snap := h.snapshotLocked()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	out := make(chan api.Event)
	go func() {
		defer close(out)
		defer func() { h.mu.Lock(); delete(h.subs, s); h.mu.Unlock() }()
		for {
			s.mu.Lock()
			q := s.take()
			s.mu.Unlock()
			for _, ev := range q {
				if ev.Seq == 0 {
					continue // superseded by a later status of its instance
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-s.sig:
			case <-ctx.Done():
				return
			}
		}
	}()
	return snap, out
}

// statusEqual compares two statuses on what a subscriber would see change.
func statusEqual(a, b api.InstanceStatus) bool {
	if a.Name != b.Name || a.State != b.State || a.Priority != b.Priority || a.EffectivePriority != b.EffectivePriority ||
		a.Master != b.Master || a.MasterPriority != b.MasterPriority || !a.Since.Equal(b.Since) || a.Cause != b.Cause || a.Group != b.Group || a.GateHeld != b.GateHeld ||
		a.VRID != b.VRID || a.Interface != b.Interface || a.Version != b.Version {
		return false
	}
	if len(a.VIPs) != len(b.VIPs) || len(a.Tracked) != len(b.Tracked) || len(a.Overrides) != len(b.Overrides) || len(a.Faults) != len(b.Faults) {
		return false
	}
	for k := range a.VIPs {
		if a.VIPs[k] != b.VIPs[k] {
			return false
		}
	}
	for k := range a.Tracked {
		if a.Tracked[k] != b.Tracked[k] {
			return false
		}
	}
	for k := range a.Overrides {
		if a.Overrides[k] != b.Overrides[k] {
			return false
		}
	}
	for k, v := range a.Faults {
		if b.Faults[k] != v {
			return false
		}
	}
	return true
}
