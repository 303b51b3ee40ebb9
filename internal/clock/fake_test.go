package clock

import (
	"testing"
	"time"
)

func TestFakeFiresTimersInDeadlineOrderOnlyWhenAdvanced(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(t0)
	a := f.NewTimer(3 * time.Second)
	b := f.NewTimer(time.Second)
	f.Advance(500 * time.Millisecond)
	if f.Fired() != 0 {
		t.Fatalf("a timer fired before its deadline")
	}
	f.Advance(time.Second)
	select {
	case at := <-b.C():
		if !at.Equal(t0.Add(time.Second)) {
			t.Errorf("b fired at %v, want its deadline", at.Sub(t0))
		}
	default:
		t.Fatal("b did not fire at its deadline")
	}
	if a.Reset(time.Second) != true {
		t.Error("Reset of an active timer reports false")
	}
	f.Advance(999 * time.Millisecond)
	if f.Fired() != 0 {
		t.Fatal("a reset timer fired early")
	}
	f.Advance(time.Millisecond)
	if f.Fired() != 1 {
		t.Fatal("a reset timer did not fire")
	}
	<-a.C()
	if a.Stop() {
		t.Error("Stop of a fired timer reports true")
	}
	if _, ok := f.NextDeadline(); ok {
		t.Error("no timer is active, NextDeadline says one is")
	}
}
