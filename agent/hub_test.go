package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
)

// A reader that falls behind holds one pending status per instance, not
// every status the runtime reported; transitions are all kept, and what it
// reads is in order and ends with each instance's latest status.
func TestHubQueueKeepsOneStatusPerInstanceForASlowReader(t *testing.T) {
	h := newHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events := h.subscribe(ctx)
	var sub *subscriber
	h.mu.Lock()
	for s := range h.subs {
		sub = s
	}
	h.mu.Unlock()

	const instances, rounds = 10, 2000
	status := func(name string, prio int) *api.InstanceStatus {
		return &api.InstanceStatus{Name: name, EffectivePriority: prio}
	}
	// The reader's goroutine takes the first event and blocks handing it
	// over; everything after it queues.
	h.event(api.Event{Kind: api.EventScript, Name: "first"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		sub.mu.Lock()
		n := len(sub.q)
		sub.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for r := range rounds {
		h.mu.Lock()
		for i := range instances {
			name := fmt.Sprintf("VI_%d", i)
			h.publishLocked(api.Event{Kind: api.EventInstance, Instance: name, Status: status(name, r)})
		}
		if r%500 == 0 {
			h.publishLocked(api.Event{Kind: api.EventTransition, Instance: "VI_0", Status: status("VI_0", r), From: "BACKUP", To: "MASTER"})
		}
		h.mu.Unlock()
	}
	sub.mu.Lock()
	live := 0
	for _, ev := range sub.q {
		if ev.Seq != 0 {
			live++
		}
	}
	queued := len(sub.q)
	sub.mu.Unlock()
	if want := instances + rounds/500; live != want {
		t.Errorf("%d events pending after %d statuses, want %d (one status per instance and the transitions)", live, instances*rounds, want)
	}
	if queued > 4*(instances+rounds/500)+200 {
		t.Errorf("the queue holds %d slots for %d live events: dropped ones are not compacted", queued, live)
	}

	var got []api.Event
	timeout := time.After(5 * time.Second)
	for len(got) < 1+live {
		select {
		case ev := <-events:
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("read %d events, want %d", len(got), 1+live)
		}
	}
	last := map[string]int{}
	transitions := 0
	for i, ev := range got {
		if i > 0 && ev.Seq <= got[i-1].Seq {
			t.Fatalf("event %d has seq %d after %d: out of order", i, ev.Seq, got[i-1].Seq)
		}
		switch ev.Kind {
		case api.EventTransition:
			transitions++
		case api.EventInstance:
			last[ev.Instance] = ev.Status.EffectivePriority
		}
	}
	if transitions != rounds/500 {
		t.Errorf("%d transitions read, want %d", transitions, rounds/500)
	}
	for i := range instances {
		if p := last[fmt.Sprintf("VI_%d", i)]; p != rounds-1 {
			t.Errorf("VI_%d: last status read has priority %d, want the latest, %d", i, p, rounds-1)
		}
	}
}
