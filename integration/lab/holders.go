package lab

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// HolderWatch samples, at a fixed interval, which of a set of nodes hold an address on eth0,
// through a netlink handle per node namespace (no process per sample, so 20 ms samples hold).
type HolderWatch struct {
	addr    netip.Addr
	nodes   []*Node
	handles []*netlink.Handle
	every   time.Duration

	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples int
	doubles []time.Time // samples where two or more nodes held the address
	none    []time.Time // samples where nobody held it
	changes []HolderChange
	last    string
	errs    int
}

// HolderChange is a change of the holder seen by a HolderWatch ("" when nobody, "a+b" for two).
type HolderChange struct {
	At     time.Time
	Holder string
}

// WatchHolders starts sampling which of nodes hold addr every interval until Stop.
func WatchHolders(t testing.TB, addr netip.Addr, every time.Duration, nodes ...*Node) *HolderWatch {
	t.Helper()
	w := &HolderWatch{addr: addr, nodes: nodes, every: every, stop: make(chan struct{}), done: make(chan struct{}), last: "?"}
	for _, n := range nodes {
		ns, err := netns.GetFromPath("/run/netns/" + n.NS)
		if err != nil {
			t.Fatalf("lab: namespace of %s: %v", n.Name, err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			t.Fatalf("lab: netlink handle in %s: %v", n.Name, err)
		}
		w.handles = append(w.handles, h)
	}
	go w.run()
	t.Cleanup(func() { w.Stop() })
	return w
}

func (w *HolderWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		w.sample()
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

func (w *HolderWatch) sample() {
	now := time.Now()
	holder, count := "", 0
	for i, h := range w.handles {
		addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			w.mu.Lock()
			w.errs++
			w.mu.Unlock()
			continue
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == w.addr {
				if count > 0 {
					holder += "+"
				}
				holder += w.nodes[i].Name
				count++
				break
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	switch count {
	case 0:
		w.none = append(w.none, now)
	case 1:
	default:
		w.doubles = append(w.doubles, now)
	}
	if holder != w.last {
		w.changes = append(w.changes, HolderChange{At: now, Holder: holder})
		w.last = holder
	}
}

// Stop ends the sampling (idempotent).
func (w *HolderWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	for _, h := range w.handles {
		h.Close()
	}
	w.handles = nil
}

// HolderReport is what a HolderWatch saw.
type HolderReport struct {
	Samples int
	Doubles []time.Time
	None    []time.Time
	Changes []HolderChange
	Errors  int
}

// Holder is the holder of the last sample ("" none, "?" not sampled yet),
// without ending the window.
func (w *HolderWatch) Holder() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Report returns what was seen so far, and resets it (a new window starts).
func (w *HolderWatch) Report() HolderReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := HolderReport{Samples: w.samples, Doubles: w.doubles, None: w.none, Changes: w.changes, Errors: w.errs}
	w.samples, w.doubles, w.none, w.changes, w.errs = 0, nil, nil, nil, 0
	if w.last != "?" {
		// The new window starts with the current holder.
		w.changes = []HolderChange{{At: time.Now(), Holder: w.last}}
	}
	return r
}

// String summarizes the report.
func (r HolderReport) String() string {
	s := fmt.Sprintf("%d samples, %d with two holders, %d with none, %d read errors; holders:", r.Samples, len(r.Doubles), len(r.None), r.Errors)
	for _, c := range r.Changes {
		h := c.Holder
		if h == "" {
			h = "(none)"
		}
		s += fmt.Sprintf(" %s@%s", h, c.At.Format("15:04:05.000"))
	}
	return s
}
