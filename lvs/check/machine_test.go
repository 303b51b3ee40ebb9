package check

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// transcript feeds results to a checker, each at the time the previous step
// asked for, and writes one line per step: when, the result, the state after
// it, the delay to the next attempt, and whether the round ended or the
// state changed.
func transcript(tm timing, startDown bool, results string) []string {
	s, at := tm.start(startDown, t0, func(time.Duration) time.Duration { return 0 })
	out := []string{fmt.Sprintf("start %s", upDown(s.up))}
	for _, c := range results {
		r := tm.step(s, c == '+', at)
		line := fmt.Sprintf("%v %c %s next+%v", at.Sub(t0), c, upDown(r.state.up), r.next.Sub(at))
		if r.roundDone {
			line += " round"
		}
		if r.changed {
			line += " CHANGED"
		}
		out = append(out, line)
		s, at = r.state, r.next
	}
	return out
}

func TestStateMachineFollowsKeepalivedEpilog(t *testing.T) {
	tm := timing{retry: 2, delayBeforeRetry: 3 * time.Second, delayLoop: 10 * time.Second}
	tests := []struct {
		name      string
		timing    timing
		startDown bool
		results   string // + success, - failure
		want      []string
	}{
		{
			name: "UP checker retries twice before going DOWN, then one success brings it UP", timing: tm,
			results: "+---+",
			want: []string{
				"start UP",
				"0s + UP next+10s round",
				"10s - UP next+3s",
				"13s - UP next+3s",
				"16s - DOWN next+10s round CHANGED",
				"26s + UP next+10s round CHANGED",
			},
		},
		{
			name: "a failure while DOWN is a failed round, with no retries", timing: tm,
			results: "+-----",
			want: []string{
				"start UP",
				"0s + UP next+10s round",
				"10s - UP next+3s",
				"13s - UP next+3s",
				"16s - DOWN next+10s round CHANGED",
				"26s - DOWN next+10s round",
				"36s - DOWN next+10s round",
			},
		},
		{
			name: "a success during retries ends the round UP and resets the retries", timing: tm,
			results: "+--+---",
			want: []string{
				"start UP",
				"0s + UP next+10s round",
				"10s - UP next+3s",
				"13s - UP next+3s",
				"16s + UP next+10s round",
				"26s - UP next+3s",
				"29s - UP next+3s",
				"32s - DOWN next+10s round CHANGED",
			},
		},
		{
			name: "the first failure of a new checker is enough (keepalived: one failure initially)", timing: tm,
			results: "-+",
			want: []string{
				"start UP",
				"0s - DOWN next+10s round CHANGED",
				"10s + UP next+10s round CHANGED",
			},
		},
		{
			name: "alpha starts DOWN and one success brings it UP", timing: tm, startDown: true,
			results: "--+",
			want: []string{
				"start DOWN",
				"0s - DOWN next+10s round",
				"10s - DOWN next+10s round",
				"20s + UP next+10s round CHANGED",
			},
		},
		{
			name:    "retry 0: one failure takes it DOWN",
			timing:  timing{delayBeforeRetry: time.Second, delayLoop: 5 * time.Second},
			results: "+-+",
			want: []string{
				"start UP",
				"0s + UP next+5s round",
				"5s - DOWN next+5s round CHANGED",
				"10s + UP next+5s round CHANGED",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := transcript(tt.timing, tt.startDown, tt.results)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("transcript (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStartSpreadsFirstRoundOverWarmupOrDelayLoop(t *testing.T) {
	tests := []struct {
		name   string
		timing timing
		jitter time.Duration // what the jitter source returns
		want   string        // "asked <max> -> first at <delay>"
	}{
		{"warmup bounds the spread", timing{delayLoop: 10 * time.Second, warmup: 4 * time.Second}, 3 * time.Second, "asked 4s -> first at 3s"},
		{"no warmup spreads over delay_loop (keepalived's default warmup)", timing{delayLoop: 10 * time.Second}, 7 * time.Second, "asked 10s -> first at 7s"},
		{"a jitter beyond the spread is clamped", timing{delayLoop: 2 * time.Second}, time.Minute, "asked 2s -> first at 2s"},
		{"a negative jitter is clamped", timing{delayLoop: 2 * time.Second}, -time.Second, "asked 2s -> first at 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			s, at := tt.timing.start(false, t0, func(max time.Duration) time.Duration {
				asked = append(asked, max.String())
				return tt.jitter
			})
			got := fmt.Sprintf("asked %s -> first at %v", strings.Join(asked, ","), at.Sub(t0))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !s.up {
				t.Error("a checker without alpha starts DOWN")
			}
		})
	}
}
