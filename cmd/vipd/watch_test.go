package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/api"
)

// frames records each write to stdout as one frame (a --watch refresh is
// one write) and calls onFrame with the count after each.
type frames struct {
	mu      sync.Mutex
	writes  []string
	onFrame func(n int)
	err     error // returned by every write
}

func (f *frames) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.writes = append(f.writes, string(p))
	n := len(f.writes)
	f.mu.Unlock()
	if f.onFrame != nil {
		f.onFrame(n)
	}
	if f.err != nil {
		return 0, f.err
	}
	return len(p), nil
}

func (f *frames) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

// watchRun is a --watch command run with a fake clock (2 s later at each
// reading), a ticker that is always due, and a context cancelled once
// stdout has had stop frames.
type watchRun struct {
	result
	frames    []string
	intervals []time.Duration // what the ticker was asked for
}

func runWatch(t *testing.T, stop int, terminal bool, args ...string) watchRun {
	t.Helper()
	var (
		out       = &frames{}
		errb      bytes.Buffer
		cancel    context.CancelFunc
		intervals []time.Duration
		reads     int
	)
	out.onFrame = func(n int) {
		if n == stop {
			cancel()
		}
	}
	always := make(chan time.Time)
	close(always) // a receive never waits: the next refresh is always due
	r := vipdWith(t, func(env *cliEnv) {
		env.stdout = out
		env.stderr = &errb
		env.isTerminal = func() bool { return terminal }
		env.now = func() time.Time {
			reads++
			return testNow.Add(time.Duration(reads-1) * 2 * time.Second)
		}
		env.ticker = func(d time.Duration) (<-chan time.Time, func()) {
			intervals = append(intervals, d)
			return always, func() {}
		}
		env.interruptible = func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel = context.WithCancel(ctx)
			return ctx, cancel
		}
	}, args...)
	r.stderr = errb.String()
	fs := out.all()
	r.stdout = strings.Join(fs, "")
	return watchRun{result: r, frames: fs, intervals: intervals}
}

func TestStatusWatchIntoAPipe(t *testing.T) {
	t.Setenv("TERM", "xterm")
	socket := serve(t, &fakeAgent{status: sampleStatus()})
	r := runWatch(t, 3, false, "status", "--watch", "--socket", socket)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d stderr %q, want 0 once stopped", r.code, r.stderr)
	}
	if len(r.frames) != 3 {
		t.Fatalf("%d refreshes, want 3 (stopped after the third)", len(r.frames))
	}
	if diff := cmp.Diff([]time.Duration{2 * time.Second}, r.intervals); diff != "" {
		t.Errorf("ticker intervals (-want +got):\n%s", diff)
	}
	// Header, blank line, the table as vipd status prints it at that
	// time; a blank line between refreshes; no escape, no clearing.
	golden(t, "status.watch.golden", r.stdout)
	for i, f := range r.frames {
		now := testNow.Add(time.Duration(i) * 2 * time.Second)
		var table bytes.Buffer
		if err := renderStatusTable(&table, sampleStatus(), now); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("vipd status on lb1, every 2s: %s\n\n%s", now.Format("2006-01-02 15:04:05 MST"), table.String())
		if i > 0 {
			want = "\n" + want
		}
		if diff := cmp.Diff(want, f); diff != "" {
			t.Errorf("refresh %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestStatusWatchOnATerminal(t *testing.T) {
	socket := serve(t, &fakeAgent{status: sampleStatus(), fleet: sampleFleet()})
	for _, tc := range []struct {
		name    string
		args    []string
		header  string
		colored bool
	}{
		{"status", []string{"--interval", "1500ms"}, "vipd status on lb1, every 1.5s: ", true},
		{"fleet", []string{"--fleet"}, "vipd status --fleet on lb1, every 2s: ", true},
		{"never colour, still redraw", []string{"--color=never"}, "vipd status on lb1, every 2s: ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TERM", "xterm")
			t.Setenv("NO_COLOR", "")
			r := runWatch(t, 2, true, append([]string{"status", "--watch", "--socket", socket}, tc.args...)...)
			if r.code != 0 || r.stderr != "" || len(r.frames) != 2 {
				t.Fatalf("exit %d stderr %q, %d refreshes; want 0, nothing, 2", r.code, r.stderr, len(r.frames))
			}
			for i, f := range r.frames {
				if !strings.HasPrefix(f, clearScreen+tc.header) {
					t.Errorf("refresh %d does not clear the screen and start with %q: %q", i, tc.header, visible(f))
				}
				if got := strings.Contains(strings.TrimPrefix(f, clearScreen), "\x1b"); got != tc.colored {
					t.Errorf("refresh %d coloured: %v, want %v", i, got, tc.colored)
				}
				// The table under the header is what vipd status prints.
				_, body, _ := strings.Cut(stripSGR(f), "\n\n")
				var want bytes.Buffer
				now := testNow.Add(time.Duration(i) * 2 * time.Second)
				var err error
				if strings.Contains(tc.name, "fleet") {
					err = renderFleetTable(&want, sampleFleet())
				} else {
					err = renderStatusTable(&want, sampleStatus(), now)
				}
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want.String(), body); diff != "" {
					t.Errorf("refresh %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestStatusWatchJSONIsNDJSON(t *testing.T) {
	socket := serve(t, &fakeAgent{status: sampleStatus(), fleet: sampleFleet()})
	for _, fleet := range []bool{false, true} {
		args := []string{"status", "-o", "json", "--watch", "--color=always", "--socket", socket}
		if fleet {
			args = append(args, "--fleet")
		}
		// On a terminal too: no clearing, no header, no colour.
		r := runWatch(t, 3, true, args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("fleet %v: exit %d stderr %q", fleet, r.code, r.stderr)
		}
		lines := strings.SplitAfter(r.stdout, "\n")
		if last := lines[len(lines)-1]; last != "" {
			t.Fatalf("fleet %v: output does not end with a newline: %q", fleet, last)
		}
		lines = lines[:len(lines)-1]
		if len(lines) != 3 || len(r.frames) != 3 {
			t.Fatalf("fleet %v: %d lines in %d writes, want one document per refresh, one per line:\n%s",
				fleet, len(lines), len(r.frames), r.stdout)
		}
		for i, l := range lines {
			if strings.Contains(l, "\x1b") {
				t.Errorf("fleet %v: line %d has escapes: %q", fleet, i, l)
			}
			var b bytes.Buffer
			var err error
			if fleet {
				var got api.Fleet
				err = json.Unmarshal([]byte(l), &got)
				if err == nil {
					err = renderFleetJSON(&b, got)
				}
				if !strings.Contains(l, `"peers":[`) {
					t.Errorf("line %d is not the fleet document: %s", i, l)
				}
			} else {
				var got api.Status
				err = json.Unmarshal([]byte(l), &got)
				if err == nil && (got.Node != "lb1" || len(got.Instances) != 3) {
					t.Errorf("line %d: node %q, %d instances", i, got.Node, len(got.Instances))
				}
				// Lists stay [] as in -o json.
				if !strings.Contains(l, `"vips":[]`) {
					t.Errorf("line %d lacks \"vips\":[]: %s", i, l)
				}
			}
			if err != nil {
				t.Errorf("fleet %v: line %d is not a JSON document: %v\n%s", fleet, i, err, l)
			}
		}
	}
}

func TestStatusWatchGoesOnWhenARefreshFails(t *testing.T) {
	t.Run("no daemon", func(t *testing.T) {
		socket := filepath.Join(t.TempDir(), "vipd.sock")
		r := runWatch(t, 2, false, "status", "--watch", "--socket", socket)
		if r.code != 0 || len(r.frames) != 2 {
			t.Fatalf("exit %d, %d refreshes; want 0 and 2", r.code, len(r.frames))
		}
		want := "vipd status, every 2s: 2025-03-01 12:33:12 UTC\n\n" +
			"\nvipd status, every 2s: 2025-03-01 12:33:14 UTC\n\n"
		if r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
		if n := strings.Count(r.stderr, "vipd: cannot reach vipd at "+socket); n != 2 {
			t.Errorf("stderr %q: want the error once per refresh", r.stderr)
		}
	})
	t.Run("gossip off", func(t *testing.T) {
		off := errors.New("gossip is off on this node")
		socket := serve(t, &fakeAgent{status: sampleStatus(), fleetErr: off})
		r := runWatch(t, 2, false, "status", "--fleet", "--watch", "--socket", socket)
		if r.code != 0 || r.stderr != "vipd: gossip is off on this node\nvipd: gossip is off on this node\n" {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}

func TestStatusWatchEndsWhenStopped(t *testing.T) {
	socket := serve(t, &fakeAgent{status: sampleStatus()})

	// Stopped before the first refresh: nothing printed.
	r := vipdWith(t, func(env *cliEnv) {
		env.interruptible = func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx, cancel
		}
	}, "status", "--watch", "--socket", socket)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("cancelled at once: exit %d stdout %q stderr %q, want 0 and nothing", r.code, r.stdout, r.stderr)
	}

	// A failing write (stdout closed) ends the watch with an error.
	r = vipdWith(t, func(env *cliEnv) {
		env.stdout = &frames{err: errors.New("broken pipe")}
	}, "status", "--watch", "--socket", socket)
	if r.code != 1 || r.stderr != "vipd: status: write: broken pipe\n" {
		t.Errorf("write failure: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestStatusWatchEndsOnSIGINT sends this process a real SIGINT (Ctrl-C)
// after the second refresh, with the real ticker: the watch ends, exit 0.
func TestStatusWatchEndsOnSIGINT(t *testing.T) {
	socket := serve(t, &fakeAgent{status: sampleStatus()})
	out := &frames{}
	out.onFrame = func(n int) {
		if n == 2 {
			// The watch holds SIGINT from before its first refresh until
			// it returns, and it returns only once it has seen it.
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
				t.Error(err)
			}
		}
	}
	done := make(chan result, 1)
	go func() {
		var errb bytes.Buffer
		env := &cliEnv{stdout: out, stderr: &errb, now: func() time.Time { return testNow }}
		code := execute([]string{"status", "--watch", "--interval", "100ms", "--socket", socket}, env)
		done <- result{code: code, stderr: errb.String()}
	}()
	select {
	case r := <-done:
		if r.code != 0 || r.stderr != "" {
			t.Errorf("exit %d stderr %q, want 0 and nothing", r.code, r.stderr)
		}
		if n := len(out.all()); n < 2 {
			t.Errorf("%d refreshes, want at least 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("vipd status --watch still running 10 s after SIGINT")
	}
}

func TestStatusWatchFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--interval", "5s"}, "--interval needs --watch"},
		{[]string{"--watch", "--interval", "10ms"}, "--interval 10ms: want at least 100ms"},
		{[]string{"--watch", "--interval", "-1s"}, "--interval -1s: want at least 100ms"},
		{[]string{"--watch", "-o", "yaml"}, `-o "yaml": want table or json`},
	} {
		r := vipdWith(t, nil, append([]string{"status", "--socket", "/nonexistent"}, tc.args...)...)
		if r.code != 2 || r.stdout != "" || r.stderr != "vipd: "+tc.want+"\n" {
			t.Errorf("%v: exit %d stdout %q stderr %q, want 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

func TestStatusHelpTeachesWatchAndColour(t *testing.T) {
	r, _ := vipd(t, "status", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, w := range []string{
		"vipd status --watch", "vipd status --fleet --watch --interval 1s",
		"vipd status --fleet --color=always | less -R", "vipd status --color=never",
		"vipd status -o json --watch", "NDJSON", "one JSON document per refresh",
		"NO_COLOR", "--color", "--interval", "INIT and STOP yellow", "FAULT red", "Ctrl-C",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("vipd status --help lacks %q", w)
		}
	}
	text, _, _ := strings.Cut(r.stdout, "\nFlags:")
	for _, l := range strings.Split(text, "\n") {
		if len(l) > 100 {
			t.Errorf("line of %d columns: %q", len(l), l)
		}
	}
}
