package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/agent"
	"github.com/vipd/vipd/api"
)

// vipdWith runs the real command tree like vipd, with env changed by mod
// first (a terminal, a ticker, ...).
func vipdWith(t *testing.T, mod func(*cliEnv), args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{
		stdout:          &out,
		stderr:          &errb,
		interfaceExists: func(string) bool { return true },
		runAgent:        func(context.Context, agent.Options) error { return nil },
		now:             func() time.Time { return testNow },
	}
	if mod != nil {
		mod(env)
	}
	code := execute(args, env)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

var sgrRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

// stripSGR removes colour escapes: what a terminal shows, as text.
func stripSGR(s string) string { return sgrRE.ReplaceAllString(s, "") }

// visible shows escapes as \e, for golden files one can read.
func visible(s string) string { return strings.ReplaceAll(s, "\x1b", `\e`) }

func TestTableLaysOutLikeTabwriter(t *testing.T) {
	tests := [][][]string{
		{{"NAME", "VRID", "STATE"}, {"VI_1", "51", "MASTER"}, {"a-long-name", "7", "INIT"}},
		// Ragged rows: a column runs over consecutive lines that have it.
		{{"a", "bb", "c"}, {"aaaa"}, {"a", "b", "ccc", "d"}, {"aaaaaa", "b", "c", "dddd", "e"}, {"x", "y"}},
		{{"", "", "last"}, {"é", "ü", "non-ASCII is counted in runes"}},
		{{"only one cell"}, {}, {"two", "cells"}},
	}
	for i, rows := range tests {
		var want bytes.Buffer
		tw := tabwriter.NewWriter(&want, 0, 8, 2, ' ', 0)
		var tab table
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
			tab.row(cells(r...)...)
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := tab.render(&got, palette{}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("table %d (-tabwriter +table):\n%s", i, diff)
		}
	}
}

func TestColoursDoNotShiftColumns(t *testing.T) {
	// Painting every other cell (even a whole column but its header)
	// changes nothing once the escapes are removed.
	var plain, painted table
	for i, r := range [][]string{{"NAME", "STATE", "PRIO"}, {"VI_1", "MASTER", "150"}, {"VI_22", "INIT", "7"}} {
		plain.row(cells(r...)...)
		var row []cell
		for j, s := range r {
			if (i+j)%2 == 1 {
				row = append(row, paintedCell(sgrRed, s))
			} else {
				row = append(row, plainCell(s))
			}
		}
		painted.row(row...)
	}
	var a, b bytes.Buffer
	if err := plain.render(&a, palette{}); err != nil {
		t.Fatal(err)
	}
	if err := painted.render(&b, palette{on: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\x1b[31m") {
		t.Fatalf("nothing painted:\n%q", b.String())
	}
	if diff := cmp.Diff(a.String(), stripSGR(b.String())); diff != "" {
		t.Errorf("colours moved the columns (-plain +painted, escapes removed):\n%s", diff)
	}
}

func TestStatusTableColours(t *testing.T) {
	st := sampleStatus()
	st.Instances = append(st.Instances,
		api.InstanceStatus{Name: "VI_4", VRID: 8, Interface: "eth0", State: "FAULT", Priority: 100, EffectivePriority: 100,
			Cause: "interface eth0 down"},
		api.InstanceStatus{Name: "VI_5", VRID: 9, Interface: "eth0", State: "STOP", Priority: 100, EffectivePriority: 100})
	var plain, never, always bytes.Buffer
	if err := renderStatusTable(&plain, st, testNow); err != nil {
		t.Fatal(err)
	}
	if err := renderStatusTableColor(&never, st, testNow, palette{}); err != nil {
		t.Fatal(err)
	}
	if err := renderStatusTableColor(&always, st, testNow, palette{on: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.colors-never.golden", never.String())
	golden(t, "status.colors-always.golden", visible(always.String()))
	if never.String() != plain.String() || strings.Contains(never.String(), "\x1b") {
		t.Errorf("without colours the table differs from renderStatusTable:\n%s", never.String())
	}
	if diff := cmp.Diff(plain.String(), stripSGR(always.String())); diff != "" {
		t.Errorf("colours moved the columns (-plain +colours, escapes removed):\n%s", diff)
	}
	for _, want := range []string{
		"\x1b[32mMASTER\x1b[0m", "\x1b[31mFAULT\x1b[0m", "\x1b[33mINIT\x1b[0m", "\x1b[33mSTOP\x1b[0m",
		"\x1b[31mchk_main:FAIL(-20)\x1b[0m,eth0:ok,prio_file:0(1)",
		"  BACKUP  ", // plain
	} {
		if !strings.Contains(always.String(), want) {
			t.Errorf("coloured table lacks %q:\n%s", visible(want), visible(always.String()))
		}
	}
}

func TestFleetTableColours(t *testing.T) {
	f := sampleFleet()
	f.Nodes = append(f.Nodes, api.FleetNode{Name: "lb4", Addr: "10.0.0.14:7946", Alive: true, State: "suspect"})
	var plain, always bytes.Buffer
	if err := renderFleetTable(&plain, f); err != nil {
		t.Fatal(err)
	}
	if err := renderFleetTableColor(&always, f, palette{on: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "fleet.colors-always.golden", visible(always.String()))
	if diff := cmp.Diff(plain.String(), stripSGR(always.String())); diff != "" {
		t.Errorf("colours moved the columns (-plain +colours, escapes removed):\n%s", diff)
	}
	lines := strings.Split(always.String(), "\n")
	has := func(prefix string, want ...string) {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(stripSGR(l), prefix) {
				for _, w := range want {
					if !strings.Contains(l, w) {
						t.Errorf("line %q lacks %q", visible(l), visible(w))
					}
				}
				return
			}
		}
		t.Errorf("no line starting with %q", prefix)
	}
	red, yellow, green := "\x1b[31m", "\x1b[33m", "\x1b[32m"
	end := "\x1b[0m"
	has("! lb3", red+"! "+end+"lb3", red+"dead"+end)
	has("  lb4", yellow+"suspect"+end)
	has("  lb2", yellow+"kernel upgrade, ticket OPS-123"+end)
	// One MASTER, a node in FAULT, a node down.
	has("  10.0.0.0/24   51", green+"*lb1(150)"+end, red+"lb2(100, FAULT)"+end, red+"lb3(dead)"+end)
	// A split brain: the mark and both MASTERs red.
	has("! 10.0.2.0/24", red+"! "+end, red+"*lb1(150)"+end, red+"*10.0.2.9(classic, 200)"+end)
	// A config mismatch with one MASTER: the mark yellow, the MASTER green.
	has("! 10.0.10.0/24", yellow+"! "+end, green+"*lb1(150)"+end)
	has("  split_brain", red+"split_brain"+end)
	has("  config_mismatch", yellow+"config_mismatch"+end)
	has("  maintenance", yellow+"maintenance"+end)

	// A group without any MASTER is red; no warnings is green.
	f = api.Fleet{Nodes: []api.FleetNode{{Name: "lb1", Alive: true, State: "alive", Instances: []api.FleetInstance{
		{InstanceStatus: api.InstanceStatus{Name: "VI_1", VRID: 1, State: "BACKUP", Priority: 100}, Segment: "10.0.0.0/24"}}}}}
	always.Reset()
	if err := renderFleetTableColor(&always, f, palette{on: true}); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(always.String(), "\n")
	has("! 10.0.0.0/24", red+"! "+end)
	has("no warnings", green+"no warnings"+end)
}

func TestStatusColorFlagAndNoColor(t *testing.T) {
	socket := serve(t, &fakeAgent{status: sampleStatus(), fleet: sampleFleet()})
	plainStatus, _ := os.ReadFile(filepath.Join("testdata", "status.golden"))
	plainFleet, _ := os.ReadFile(filepath.Join("testdata", "fleet.golden"))
	terminal := func(env *cliEnv) { env.isTerminal = func() bool { return true } }
	notTerminal := func(env *cliEnv) { env.isTerminal = func() bool { return false } }
	tests := []struct {
		name    string
		env     map[string]string // environment variables
		mod     func(*cliEnv)
		args    []string
		colored bool
	}{
		{name: "auto on a terminal", mod: terminal, colored: true},
		{name: "auto on a terminal, fleet", mod: terminal, args: []string{"--fleet"}, colored: true},
		{name: "auto, not a terminal", mod: notTerminal},
		{name: "auto, not a terminal, fleet", mod: notTerminal, args: []string{"--fleet"}},
		{name: "auto, a buffer is not a terminal", args: []string{"--color", "auto"}},
		{name: "auto, NO_COLOR", env: map[string]string{"NO_COLOR": "1"}, mod: terminal},
		{name: "auto, NO_COLOR, fleet", env: map[string]string{"NO_COLOR": "1"}, mod: terminal, args: []string{"--fleet"}},
		{name: "auto, TERM=dumb", env: map[string]string{"TERM": "dumb"}, mod: terminal},
		{name: "never on a terminal", mod: terminal, args: []string{"--color=never"}},
		{name: "always into a pipe", mod: notTerminal, args: []string{"--color=always"}, colored: true},
		{name: "always beats NO_COLOR", env: map[string]string{"NO_COLOR": "1"}, args: []string{"--color", "always"}, colored: true},
		{name: "VIPD_COLOR=always", env: map[string]string{"VIPD_COLOR": "always"}, colored: true},
		{name: "json is never coloured", mod: terminal, args: []string{"--color=always", "-o", "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TERM", "xterm")
			t.Setenv("NO_COLOR", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := vipdWith(t, tt.mod, append([]string{"status", "--socket", socket}, tt.args...)...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d stderr %q", r.code, r.stderr)
			}
			if got := strings.Contains(r.stdout, "\x1b["); got != tt.colored {
				t.Fatalf("coloured: %v, want %v:\n%s", got, tt.colored, visible(r.stdout))
			}
			want := string(plainStatus)
			switch {
			case strings.Contains(strings.Join(tt.args, " "), "json"):
				if !strings.HasPrefix(r.stdout, "{\n  \"node\": \"lb1\",") {
					t.Errorf("not the JSON document:\n%s", r.stdout)
				}
				return
			case strings.Contains(strings.Join(tt.args, " "), "--fleet"):
				want = string(plainFleet)
			}
			if diff := cmp.Diff(want, stripSGR(r.stdout)); diff != "" {
				t.Errorf("escapes removed, the table differs from the golden one (-want +got):\n%s", diff)
			}
		})
	}
	r := vipdWith(t, nil, "status", "--color", "sometimes", "--socket", socket)
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, `--color "sometimes": want auto, always or never`) {
		t.Errorf("--color sometimes: exit %d stdout %q stderr %q, want 2", r.code, r.stdout, r.stderr)
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe is a terminal")
	}
	// And the other way round: a pseudo-terminal is one.
	pty, err := openPTY(t)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	if !isTerminal(pty) {
		t.Error("a pseudo-terminal is not a terminal")
	}
}

// openPTY opens a new pseudo-terminal and returns its terminal side (what
// a program run in a terminal emulator has as stdout), closed at the end
// of the test with the other side.
func openPTY(t *testing.T) (*os.File, error) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ptmx.Close() })
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return nil, fmt.Errorf("ptsname: %w", err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { pts.Close() })
	return pts, nil
}
