package track

import (
	"context"
	"time"
)

// LinkEvent is one change of a network interface.
type LinkEvent struct {
	Index int
	Name  string
	// Up is keepalived's IF_FLAGS_UP: IFF_UP and IFF_RUNNING both set
	// (administratively up and the carrier / operational state is up).
	Up bool
	// Gone is set when the interface was deleted.
	Gone bool
}

// LinkSource is what the manager needs from the kernel's link table. The
// netlink implementation is NetlinkSource; tests use a fake.
type LinkSource interface {
	// Watch delivers link changes on ch until ctx is done or the source
	// fails, then closes ch. It returns an error when it cannot start.
	Watch(ctx context.Context, ch chan<- LinkEvent) error
	// Link reports whether the named interface exists and is up. A missing
	// interface is (false, nil).
	Link(name string) (up bool, err error)
}

// linkRetry is how long the manager waits before resubscribing after the
// link source failed.
const linkRetry = time.Second

// watchLinks follows link changes until ctx is done, resubscribing after a
// failure.
func (m *Manager) watchLinks(ctx context.Context) {
	defer m.wg.Done()
	for {
		ch := make(chan LinkEvent, 64)
		err := m.links.Watch(ctx, ch)
		if err != nil {
			m.log.Error("track: cannot watch network interfaces; retrying", "err", err)
		} else {
			// Events before the subscription are lost: read the state now.
			m.refreshInterfaces()
			names := map[int]string{}
			for ev := range ch {
				m.linkEvent(names, ev)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			m.log.Warn("track: network interface watch ended; resubscribing")
		}
		t := m.clock.NewTimer(linkRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// linkEvent applies one event. names maps ifindex to the last name seen, so
// that a renamed interface reads as gone under its old name.
func (m *Manager) linkEvent(names map[int]string, ev LinkEvent) {
	m.linkMu.Lock()
	defer m.linkMu.Unlock()
	if ev.Index != 0 {
		if old, ok := names[ev.Index]; ok && old != ev.Name {
			m.setInterface(old, false)
		}
		if ev.Gone {
			delete(names, ev.Index)
		} else {
			names[ev.Index] = ev.Name
		}
	}
	m.setInterface(ev.Name, ev.Up && !ev.Gone)
}

// setInterface records a tracked interface's state and notifies a change.
func (m *Manager) setInterface(name string, up bool) {
	m.mu.Lock()
	st, ok := m.ifaces[name]
	if !ok {
		m.mu.Unlock()
		return
	}
	changed := !st.known || st.up != up
	wasKnown := st.known
	st.up, st.known = up, true
	m.mu.Unlock()
	if !changed {
		return
	}
	if wasKnown {
		m.log.Info("track: interface "+updown(up), "interface", name)
	} else {
		m.log.Debug("track: interface "+updown(up), "interface", name)
	}
	m.notify()
}

// refreshInterfaces reads every tracked interface's state from the source.
func (m *Manager) refreshInterfaces() {
	m.mu.Lock()
	names := make([]string, 0, len(m.ifaces))
	for n := range m.ifaces {
		names = append(names, n)
	}
	m.mu.Unlock()
	for _, n := range names {
		m.lookupInterface(n)
	}
}

// lookupInterface reads one interface's state from the source.
func (m *Manager) lookupInterface(name string) {
	// linkMu orders this read against the events: a state read here is
	// never overwritten by an older event, nor the reverse.
	m.linkMu.Lock()
	defer m.linkMu.Unlock()
	if m.links == nil {
		return
	}
	up, err := m.links.Link(name)
	if err != nil {
		m.log.Warn("track: cannot read interface state", "interface", name, "err", err)
		return
	}
	m.setInterface(name, up)
}

func updown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
