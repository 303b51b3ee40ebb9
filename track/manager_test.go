package track

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/script"
)

func ptr[T any](v T) *T { return &v }

func chkScript(name, cmd string, interval time.Duration) *config.Script {
	return &config.Script{Name: name, Script: cmd, Interval: config.Duration(interval), Rise: 1, Fall: 1}
}

// newTestManager returns a manager on a fake clock and fake links whose
// script results are reported on the returned channel.
func newTestManager(t *testing.T, links *fakeLinks) (*Manager, *fakeClock, chan string) {
	t.Helper()
	clk := newFakeClock()
	if links == nil {
		links = newFakeLinks(map[string]bool{})
	}
	m := NewManager(Options{Log: quietLog(), Clock: clk, Links: links})
	results := make(chan string, 1000)
	m.afterResult = func(name string) { results <- name }
	return m, clk, results
}

// scripted is a fake runner: each script name has a queue of outcomes,
// '+' exit 0, '-' exit 1, 'h' hang until cancelled.
type scripted struct {
	mu    sync.Mutex
	queue map[string]string
	runs  map[string]int
}

func (s *scripted) run(ctx context.Context, c script.Command, _ []string, _ script.Options) script.Result {
	name := c.Argv[len(c.Argv)-1] // commands are "/bin/true NAME"
	s.mu.Lock()
	s.runs[name]++
	q := s.queue[name]
	next := byte('+')
	if q != "" {
		next, s.queue[name] = q[0], q[1:]
	}
	s.mu.Unlock()
	switch next {
	case 'h':
		<-ctx.Done()
		return script.Result{ExitCode: -1, Err: ctx.Err()}
	case '-':
		return script.Result{ExitCode: 1}
	}
	return script.Result{}
}

func (s *scripted) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[name]
}

func TestFlappingScriptWithRise2Fall2ChangesOnlyAfterTwoInARow(t *testing.T) {
	m, clk, results := newTestManager(t, nil)
	fake := &scripted{queue: map[string]string{"flap": "+-+-+--++"}, runs: map[string]int{}}
	m.run = fake.run
	s := chkScript("flap", "/bin/true flap", time.Second)
	s.Rise, s.Fall = 2, 2
	if err := m.Configure([]*config.Script{s}, nil, nil); err != nil {
		t.Fatal(err)
	}
	changes := m.Subscribe()
	startManager(t, m)

	want := "OOOOOOFFO" // state after each run
	var got strings.Builder
	notified := 0
	for i := range len(want) {
		if i > 0 {
			clk.Advance(time.Second)
		}
		waitFor(t, results, "a script result")
		select {
		case <-changes:
			notified++
		default:
		}
		ok, known := m.Script("flap")
		if !known {
			t.Fatalf("run %d: result unknown", i+1)
		}
		if ok {
			got.WriteByte('O')
		} else {
			got.WriteByte('F')
		}
	}
	if got.String() != want {
		t.Errorf("states = %s, want %s", got.String(), want)
	}
	if notified != 3 { // first result, OK->FAILED, FAILED->OK
		t.Errorf("notified %d times, want 3", notified)
	}
}

func TestHangingScriptDoesNotDelayAnotherScriptsSchedule(t *testing.T) {
	m, clk, results := newTestManager(t, nil)
	fake := &scripted{queue: map[string]string{"hang": "h"}, runs: map[string]int{}}
	m.run = fake.run
	err := m.Configure([]*config.Script{
		chkScript("hang", "/bin/true hang", time.Second),
		chkScript("quick", "/bin/true quick", time.Second),
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	startManager(t, m)

	if got := waitFor(t, results, "the quick script's first result"); got != "quick" {
		t.Fatalf("first result from %q, want quick", got)
	}
	for i := range 5 {
		clk.Advance(time.Second)
		if got := waitFor(t, results, "a quick result"); got != "quick" {
			t.Fatalf("tick %d: result from %q, want quick", i+1, got)
		}
	}
	if n := fake.count("quick"); n != 6 {
		t.Errorf("quick ran %d times in 5 intervals, want 6", n)
	}
	// Its one start runs on its own goroutine, which may not have reached
	// the runner yet: wait for it, then make sure no tick started another.
	for deadline := time.Now().Add(5 * time.Second); fake.count("hang") == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := fake.count("hang"); n != 1 {
		t.Errorf("hanging script started %d times, want 1 (ticks are skipped while it runs)", n)
	}
	if _, known := m.Script("hang"); known {
		t.Error("hanging script has a result")
	}
}

func TestScriptTimeoutCountsAsFailureAndKillsIt(t *testing.T) {
	m, _, results := newTestManager(t, nil)
	s := chkScript("slow", "sleep 10", time.Hour)
	s.Timeout = config.Duration(100 * time.Millisecond)
	if err := m.Configure([]*config.Script{s}, nil, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	startManager(t, m)
	waitFor(t, results, "the timed-out result")
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("result after %v; the timeout is 100ms", el)
	}
	ok, known := m.Script("slow")
	if ok || !known {
		t.Errorf("Script(slow) = ok %v known %v, want a known failure", ok, known)
	}
	m.mu.Lock()
	last := m.scripts["slow"].last
	m.mu.Unlock()
	if !last.TimedOut {
		t.Errorf("result %+v, want TimedOut", last)
	}
}

func TestShellSyntaxScriptRunsAsOperatorsWriteIt(t *testing.T) {
	down := filepath.Join(t.TempDir(), "down")
	m, clk, results := newTestManager(t, nil)
	s := chkScript("chk_main", "[[ -f "+down+" ]] && exit 1 || exit 0", time.Second)
	s.Weight = -2
	if err := m.Configure([]*config.Script{s}, nil, nil); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	inst := &config.Instance{Name: "VI_1", Priority: 100, DontTrackPrimary: true,
		TrackScripts: []config.Track{{Name: "chk_main"}}}

	waitFor(t, results, "first run")
	if ok, _ := m.Script("chk_main"); !ok {
		t.Fatal("check fails while the maintenance file is absent")
	}
	if prio, _ := Compute(100, m.ItemsFor(inst)); prio != 100 {
		t.Errorf("priority %d with the check passing, want 100", prio)
	}

	if err := os.WriteFile(down, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	waitFor(t, results, "second run")
	if ok, _ := m.Script("chk_main"); ok {
		t.Fatal("check passes while the maintenance file exists")
	}
	if prio, faults := Compute(100, m.ItemsFor(inst)); prio != 98 || faults != nil {
		t.Errorf("Compute = %d %v with the file present, want 98 and no fault", prio, faults)
	}
}

func TestInsecureScriptIsDisabledAndLeftOutOfInstances(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chk.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil { // past the umask: world-writable
		t.Fatal(err)
	}
	clk := newFakeClock()
	m := NewManager(Options{Log: quietLog(), Clock: clk, Links: newFakeLinks(nil), ScriptSecurity: true})
	var ran atomic.Int32
	m.run = func(context.Context, script.Command, []string, script.Options) script.Result {
		ran.Add(1)
		return script.Result{}
	}
	err := m.Configure([]*config.Script{
		chkScript("chk_bad", path, time.Second),
		chkScript("chk_ok", "/bin/true", time.Second),
	}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "chk_bad") || strings.Contains(err.Error(), "chk_ok") {
		t.Fatalf("Configure error = %v, want one naming chk_bad only", err)
	}
	if m.ScriptDisabled("chk_bad") == nil || m.ScriptDisabled("chk_ok") != nil {
		t.Errorf("ScriptDisabled: chk_bad %v, chk_ok %v", m.ScriptDisabled("chk_bad"), m.ScriptDisabled("chk_ok"))
	}
	inst := &config.Instance{Name: "VI_1", Priority: 100, DontTrackPrimary: true,
		TrackScripts: []config.Track{{Name: "chk_bad"}, {Name: "chk_ok"}}}
	items := m.ItemsFor(inst)
	if len(items) != 1 || items[0].Name != "chk_ok" {
		t.Errorf("items = %+v, want chk_ok only", items)
	}
	results := make(chan string, 10)
	m.afterResult = func(n string) { results <- n }
	startManager(t, m)
	if got := waitFor(t, results, "chk_ok result"); got != "chk_ok" {
		t.Errorf("result from %s", got)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("%d runs, want 1 (the insecure script never runs)", n)
	}
}

func TestTrackFileValueChangesAreReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prio")
	m, clk, _ := newTestManager(t, nil)
	w5 := 5
	tf := &config.TrackFile{Name: "tf", File: path, Weight: &w5}
	changes := m.Subscribe()
	if err := m.Configure(nil, nil, []*config.TrackFile{tf}); err != nil {
		t.Fatal(err)
	}
	if v, known := m.File("tf"); v != 0 || !known {
		t.Errorf("missing file: File = %d %v, want 0 known", v, known)
	}
	select { // the first read is a change
	case <-changes:
	default:
		t.Error("no notification for the first read")
	}
	startManager(t, m)
	inst := &config.Instance{Name: "VI_1", Priority: 100, DontTrackPrimary: true, TrackFiles: []config.Track{{Name: "tf"}}}

	for _, step := range []struct {
		content  string
		want     int
		wantPrio int
		fault    bool
	}{
		{"3\n", 3, 115, false},
		{"-4", -4, 80, false},
		{"-60", -60, 100, true}, // -300 <= -254
		{"", 0, 100, false},
	} {
		if err := os.WriteFile(path, []byte(step.content), 0o644); err != nil {
			t.Fatal(err)
		}
		// The poll timer exists once the manager has started; fire it.
		clk.awaitPending()
		clk.Advance(FilePollInterval)
		waitFor(t, changes, "value "+step.content)
		if v, _ := m.File("tf"); v != step.want {
			t.Errorf("%q: File = %d, want %d", step.content, v, step.want)
		}
		prio, faults := Compute(inst.Priority, m.ItemsFor(inst))
		if prio != step.wantPrio || (len(faults) > 0) != step.fault {
			t.Errorf("%q: Compute = %d %v, want %d fault %v", step.content, prio, faults, step.wantPrio, step.fault)
		}
	}
}

func TestInterfaceUpDownComesFromTheLinkSource(t *testing.T) {
	links := newFakeLinks(map[string]bool{"eth0": true, "eth1": true})
	m, _, _ := newTestManager(t, links)
	if err := m.Configure(nil, []string{"eth0", "eth1", "eth9"}, nil); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"eth0": true, "eth1": true, "eth9": false} {
		if up, known := m.Interface(name); up != want || !known {
			t.Errorf("Interface(%s) = %v %v, want %v known", name, up, known, want)
		}
	}
	changes := m.Subscribe()
	startManager(t, m)
	inst := &config.Instance{Name: "VI_1", Interface: "eth0", Priority: 100,
		TrackInterfaces: []config.Track{{Name: "eth1", Weight: ptr(-20)}}}

	steps := []struct {
		ev        LinkEvent
		wantPrio  int
		wantFault []string
	}{
		{LinkEvent{Index: 3, Name: "eth1", Up: false}, 80, nil},
		{LinkEvent{Index: 2, Name: "eth0", Up: false}, 80, []string{"interface eth0 down"}},
		{LinkEvent{Index: 2, Name: "eth0", Up: true}, 80, nil},
		{LinkEvent{Index: 3, Name: "eth1", Up: true}, 100, nil},
		{LinkEvent{Index: 2, Name: "eth0", Gone: true}, 100, []string{"interface eth0 down"}},
		{LinkEvent{Index: 5, Name: "eth0", Up: true}, 100, nil},
		{LinkEvent{Index: 5, Name: "wan0", Up: true}, 100, []string{"interface eth0 down"}}, // renamed away
	}
	for _, st := range steps {
		links.set(t, st.ev)
		waitFor(t, changes, "change after "+st.ev.Name)
		prio, faults := Compute(inst.Priority, m.ItemsFor(inst))
		if prio != st.wantPrio || !cmp.Equal(faults, st.wantFault) {
			t.Errorf("after %+v: Compute = %d %v, want %d %v", st.ev, prio, faults, st.wantPrio, st.wantFault)
		}
	}
}

func TestConfigureAppliesTheDifferenceAndKeepsUnchangedScripts(t *testing.T) {
	m, clk, results := newTestManager(t, newFakeLinks(map[string]bool{"eth0": true}))
	fake := &scripted{queue: map[string]string{"keep": "-", "change": "-"}, runs: map[string]int{}}
	m.run = fake.run
	keep := chkScript("keep", "/bin/true keep", time.Second)
	keep.Rise = 3
	change := chkScript("change", "/bin/true change", time.Second)
	gone := chkScript("gone", "/bin/true gone", time.Second)
	if err := m.Configure([]*config.Script{keep, change, gone}, []string{"eth0"}, nil); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	for range 3 {
		waitFor(t, results, "first results")
	}
	// keep: one failure, then a success: 1 of the 3 successes it needs.
	clk.Advance(time.Second)
	for range 3 {
		waitFor(t, results, "second results")
	}
	if ok, known := m.Script("keep"); ok || !known {
		t.Fatalf("keep = %v %v, want FAILED", ok, known)
	}

	// Reload: keep gets a new weight only, change gets a new interval,
	// gone is removed.
	keep2 := *keep
	keep2.Weight = -10
	change2 := *change
	change2.Interval = config.Duration(2 * time.Second)
	if err := m.Configure([]*config.Script{&keep2, &change2}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, known := m.Script("change"); known {
		t.Error("a script whose schedule changed kept its old result")
	}
	if _, known := m.Script("gone"); known {
		t.Error("a removed script still has a result")
	}
	if _, known := m.Interface("eth0"); known {
		t.Error("a removed interface is still tracked")
	}
	waitFor(t, results, "the restarted script's first result")
	if got := fake.count("change"); got != 3 {
		t.Errorf("change ran %d times, want 3 (restarted at once)", got)
	}
	// keep still counts toward its rise: one more success makes 2 of 3...
	clk.Advance(time.Second)
	waitForName(t, results, "keep")
	if ok, _ := m.Script("keep"); ok {
		t.Fatal("keep became OK after 2 successes; rise 3")
	}
	// ...and the third makes it OK: the rise state survived the reload.
	clk.Advance(time.Second)
	waitForName(t, results, "keep")
	if ok, _ := m.Script("keep"); !ok {
		t.Fatal("keep is not OK after 3 successes")
	}
	items := m.ItemsFor(&config.Instance{Name: "VI", Priority: 100, DontTrackPrimary: true,
		TrackScripts: []config.Track{{Name: "keep"}}})
	if len(items) != 1 || items[0].Weight != -10 {
		t.Errorf("items = %+v, want keep with the new weight -10", items)
	}
	if n := fake.count("gone"); n != 2 {
		t.Errorf("removed script ran %d times, want 2 (none after removal)", n)
	}
}

// waitForName waits for a result of the named script, skipping others.
func waitForName(t *testing.T, results chan string, name string) {
	t.Helper()
	for waitFor(t, results, name) != name {
	}
}

func TestItemsForAppliesOverridesAndKeepalivedRules(t *testing.T) {
	links := newFakeLinks(map[string]bool{"eth0": true, "eth1": false})
	m, _, _ := newTestManager(t, links)
	path := filepath.Join(t.TempDir(), "v")
	if err := os.WriteFile(path, []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	scripts := []*config.Script{
		{Name: "chk_a", Script: "/bin/true", Weight: -2},
		{Name: "chk_b", Script: "/bin/true", Weight: 10, WeightReverse: true},
		{Name: "chk_c", Script: "/bin/true"},
	}
	five := 5
	files := []*config.TrackFile{{Name: "tf1", File: path}, {Name: "tf5", File: path, Weight: &five}}
	if err := m.Configure(scripts, []string{"eth0", "eth1"}, files); err != nil {
		t.Fatal(err)
	}
	// Results without running: chk_a failed, chk_b ok, chk_c unknown.
	m.mu.Lock()
	m.scripts["chk_a"].rf.observe(false)
	m.scripts["chk_b"].rf.observe(true)
	m.mu.Unlock()

	base := &config.Instance{Name: "VI_1", Interface: "eth0", Priority: 100,
		TrackScripts: []config.Track{
			{Name: "chk_a", Weight: ptr(-7)},
			{Name: "chk_b"},
			{Name: "chk_c"},
			{Name: "chk_a"},    // duplicate: ignored
			{Name: "chk_nope"}, // no such script: left out
		},
		TrackInterfaces: []config.Track{{Name: "eth1", Weight: ptr(-5)}, {Name: "eth0", Weight: ptr(50)}},
		TrackFiles:      []config.Track{{Name: "tf1"}, {Name: "tf5", Weight: ptr(-1), Reverse: true}},
	}
	tests := []struct {
		name  string
		mod   func(in *config.Instance)
		group *config.SyncGroup
		want  []ItemState
	}{
		{"plain instance", nil, nil, []ItemState{
			{Kind: KindScript, Name: "chk_a", Known: true, Weight: -7},
			{Kind: KindScript, Name: "chk_b", Known: true, OK: true, Weight: 10, Reverse: true},
			{Kind: KindScript, Name: "chk_c", Fault: true},
			{Kind: KindInterface, Name: "eth0", Known: true, OK: true},
			{Kind: KindInterface, Name: "eth1", Known: true, Weight: -5},
			{Kind: KindFile, Name: "tf1", Known: true, Value: 2, Weight: 1},
			{Kind: KindFile, Name: "tf5", Known: true, Value: 2, Weight: -1, Reverse: true},
		}},
		{"dont_track_primary lets track_interface weigh the own interface", func(in *config.Instance) { in.DontTrackPrimary = true }, nil, []ItemState{
			{Kind: KindScript, Name: "chk_a", Known: true, Weight: -7},
			{Kind: KindScript, Name: "chk_b", Known: true, OK: true, Weight: 10, Reverse: true},
			{Kind: KindScript, Name: "chk_c", Fault: true},
			{Kind: KindInterface, Name: "eth1", Known: true, Weight: -5},
			{Kind: KindInterface, Name: "eth0", Known: true, OK: true, Weight: 50},
			{Kind: KindFile, Name: "tf1", Known: true, Value: 2, Weight: 1},
			{Kind: KindFile, Name: "tf5", Known: true, Value: 2, Weight: -1, Reverse: true},
		}},
		{"address owner: track_file weight 1 becomes unweighted", func(in *config.Instance) { in.Priority = 255 }, nil, []ItemState{
			{Kind: KindScript, Name: "chk_a", Known: true, Weight: -7},
			{Kind: KindScript, Name: "chk_b", Known: true, OK: true, Weight: 10, Reverse: true},
			{Kind: KindScript, Name: "chk_c", Fault: true},
			{Kind: KindInterface, Name: "eth0", Known: true, OK: true},
			{Kind: KindInterface, Name: "eth1", Known: true, Weight: -5},
			{Kind: KindFile, Name: "tf1", Known: true, Value: 2, Weight: 0, Fault: true},
			{Kind: KindFile, Name: "tf5", Known: true, Value: 2, Weight: -1, Reverse: true},
		}},
		{"sync group member without tracking weight", nil,
			&config.SyncGroup{Name: "G", TrackScripts: []config.Track{{Name: "chk_b", Weight: ptr(3)}}}, []ItemState{
				{Kind: KindScript, Name: "chk_c", Fault: true},
				{Kind: KindInterface, Name: "eth0", Known: true, OK: true},
				{Kind: KindInterface, Name: "eth1", Known: true, Weight: 0, Fault: true},
				{Kind: KindFile, Name: "tf1", Known: true, Value: 2, Weight: 0, Fault: true},
				{Kind: KindScript, Name: "chk_b", Known: true, OK: true, Weight: 3, Reverse: true},
			}},
		{"sync group with sync_group_tracking_weight: group weight wins over a weighted member entry", nil,
			&config.SyncGroup{Name: "G", TrackingWeight: true, TrackScripts: []config.Track{{Name: "chk_a", Weight: ptr(-1)}, {Name: "chk_c", Weight: ptr(4)}}}, []ItemState{
				{Kind: KindScript, Name: "chk_a", Known: true, Weight: -1},
				{Kind: KindScript, Name: "chk_b", Known: true, OK: true, Weight: 10, Reverse: true},
				{Kind: KindScript, Name: "chk_c", Fault: true}, // the member's unweighted entry stays
				{Kind: KindInterface, Name: "eth0", Known: true, OK: true},
				{Kind: KindInterface, Name: "eth1", Known: true, Weight: -5},
				{Kind: KindFile, Name: "tf1", Known: true, Value: 2, Weight: 1},
				{Kind: KindFile, Name: "tf5", Known: true, Value: 2, Weight: -1, Reverse: true},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := *base
			if tt.mod != nil {
				tt.mod(&in)
			}
			got := m.ItemsForMember(&in, tt.group)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
		})
	}
	if got := m.ItemsFor(nil); got != nil {
		t.Errorf("ItemsFor(nil) = %v", got)
	}
}

func TestRunEndsEveryGoroutineAndChild(t *testing.T) {
	m, _, results := newTestManager(t, newFakeLinks(map[string]bool{}))
	s := chkScript("hang", "sleep 30", time.Hour)
	s.Timeout = config.Duration(time.Hour)
	if err := m.Configure([]*config.Script{s, chkScript("quick", "/bin/true", time.Hour)}, []string{"eth0"},
		[]*config.TrackFile{{Name: "f", File: "/nonexistent"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	waitFor(t, results, "quick result")
	start := time.Now()
	cancel()
	waitFor(t, done, "Run to return with a script still running")
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Run took %v to stop", el)
	}
	// Configure after Run starts nothing.
	if err := m.Configure([]*config.Script{chkScript("late", "/bin/true", time.Hour)}, nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-results:
		t.Errorf("script %s ran after Run returned", n)
	default:
	}
}

// TestTrackFileWeightZeroMeansFaultOnNonZero: "weight 0" written in a
// track_file block is not the default weight 1: a non-zero value puts the
// instance in FAULT (keepalived's track_file semantics).
func TestTrackFileWeightZeroMeansFaultOnNonZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, _ := newTestManager(t, nil)
	zero := 0
	if err := m.Configure(nil, nil, []*config.TrackFile{{Name: "tf", File: path, Weight: &zero}}); err != nil {
		t.Fatal(err)
	}
	inst := &config.Instance{Name: "VI_1", Priority: 100, DontTrackPrimary: true, TrackFiles: []config.Track{{Name: "tf"}}}
	prio, faults := Compute(inst.Priority, m.ItemsFor(inst))
	if len(faults) == 0 || prio != 100 {
		t.Fatalf("weight 0, value 1: priority %d faults %v, want FAULT", prio, faults)
	}
}

// TestReloadTurningOnScriptSecurityDisablesAnInsecureScript: a reload that
// adds enable_script_security re-checks every script.
func TestReloadTurningOnScriptSecurityDisablesAnInsecureScript(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chk.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	m := NewManager(Options{Log: quietLog(), Clock: newFakeClock(), Links: newFakeLinks(nil)})
	scripts := []*config.Script{chkScript("chk", path, time.Second)}
	if err := m.Configure(scripts, nil, nil); err != nil {
		t.Fatalf("without security: %v", err)
	}
	if m.ScriptDisabled("chk") != nil {
		t.Fatal("disabled without enable_script_security")
	}
	m.SetScriptDefaults("", "", true)
	if err := m.Configure(scripts, nil, nil); err == nil {
		t.Fatal("Configure after turning security on reports nothing")
	}
	if m.ScriptDisabled("chk") == nil {
		t.Fatal("a world-writable script still runs after enable_script_security was turned on")
	}
}
