package agent

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/agent/state"
	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
)

func TestDecideResume(t *testing.T) {
	ic := inst("VI_1", 51, 150, "10.0.0.100/24")
	ic.AdvertInt = config.Duration(time.Second)
	ic.Version = 2
	// Master_Down_Interval of a v2 priority-150 instance at 1 s: 3 s + 106/256 s.
	mdi := 3*time.Second + 106*time.Second/256
	master := func(mut func(*state.Instance)) *state.Instance {
		s := &state.Instance{Name: "VI_1", Identity: identityString(ic), State: "MASTER",
			VIPs: []state.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24"), Dev: "eth0"}}}
		if mut != nil {
			mut(s)
		}
		return s
	}
	present := func(state.VIP) bool { return true }
	gone := func(state.VIP) bool { return false }
	for _, tc := range []struct {
		name string
		prev *state.Instance
		mode state.Mode
		age  time.Duration
		has  func(state.VIP) bool
		ok   bool
		why  string
	}{
		{"restart", master(nil), state.ModeRestarting, 300 * time.Millisecond, present, true, "resumed MASTER after a restart of vipd (300ms ago, VIPs in place)"},
		{"crash", master(nil), state.ModeRunning, time.Second, present, true, "after a crash"},
		{"upgrade", master(nil), state.ModeUpgrading, 50 * time.Millisecond, present, true, "after an upgrade"},
		// The backups' timers run from the last advert, up to an advert interval before the heartbeat.
		{"just inside the MDI", master(nil), state.ModeRunning, mdi - time.Second - time.Millisecond, present, true, "resumed"},
		{"stale", master(nil), state.ModeRestarting, mdi - time.Second, present, false, "past the Master_Down_Interval 3.414s"},
		{"new instance", nil, state.ModeRestarting, 0, present, false, "not in the previous run's state"},
		{"graceful stop", master(nil), state.ModeStopped, 0, present, false, "ended stopped"},
		{"released", master(nil), state.ModeReleased, 0, present, false, "ended released"},
		{"was backup", master(func(s *state.Instance) { s.State = "BACKUP" }), state.ModeRestarting, 0, present, false, "was BACKUP"},
		{"identity changed", master(func(s *state.Instance) { s.Identity = "vrid=52 family=ipv4 interface=eth0 mode=multicast" }),
			state.ModeRestarting, 0, present, false, "identity changed"},
		{"VIPs gone", master(nil), state.ModeRestarting, 0, gone, false, "VIP 10.0.0.100/24 is gone from eth0"},
		{"held nothing", master(func(s *state.Instance) { s.VIPs = nil }), state.ModeRestarting, 0, present, false, "held no VIPs"},
	} {
		ok, why := decideResume(tc.prev, tc.mode, tc.age, ic, tc.has)
		if ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("%s: decideResume = %v %q, want %v and %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
}

func TestIdentityStringFollowsTheIdentity(t *testing.T) {
	a := inst("VI_1", 51, 100, "10.0.0.100/24")
	b := inst("VI_1", 51, 200, "10.0.0.101/24") // priority and VIPs are not identity
	if identityString(a) != identityString(b) {
		t.Errorf("%q != %q", identityString(a), identityString(b))
	}
	for _, mut := range []func(*config.Instance){
		func(c *config.Instance) { c.VRID = 52 },
		func(c *config.Instance) { c.Interface = "eth1" },
		func(c *config.Instance) { c.UnicastPeers = []netip.Addr{netip.MustParseAddr("10.0.0.2")} },
		func(c *config.Instance) { c.UseVMAC = true },
	} {
		c := inst("VI_1", 51, 100, "10.0.0.100/24")
		mut(c)
		if identityString(c) == identityString(a) {
			t.Errorf("identity %q did not change", identityString(c))
		}
	}
}

// resumeAgent is an agent on the in-memory plane whose first apply finds
// prev in its state directory (written age ago on its clock).
func resumeAgent(t *testing.T, prev state.File, age time.Duration) (*Agent, *vip.Memory, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	if err := state.Write(dir, prev); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(state.Path(dir), time.Time{}, fc.Now().Add(-age)); err != nil {
		t.Fatal(err)
	}
	a, plane := testAgentWith(t, Options{Clock: fc, StateDir: dir})
	a.prev = a.loadPrevious()
	return a, plane, fc
}

func masterState(names ...string) state.File {
	f := state.File{Mode: state.ModeRestarting, Started: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	for i, n := range names {
		ic := inst(n, 51+i, 150, "10.0.0."+string(rune('1'+i))+"00/24")
		model(ic)
		f.Instances = append(f.Instances, state.Instance{Name: n, Identity: identityString(ic), State: "MASTER",
			Since: time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), VIPs: heldVIPs(ic, "")})
	}
	return f
}

// TestStartResumesAMasterWhoseVIPsAreInPlace: with the clock never moving,
// only a resume can make an instance MASTER; it keeps its old since and
// counts no entry into MASTER, and the instance whose VIP is gone starts
// as a plain BACKUP.
func TestStartResumesAMasterWhoseVIPsAreInPlace(t *testing.T) {
	// 100 ms: inside the Master_Down_Interval of 50 ms adverts (171 ms).
	a, plane, _ := resumeAgent(t, masterState("VI_1", "VI_2"), 100*time.Millisecond)
	ctx := t.Context()
	if err := plane.AddAddrs(ctx, "eth0", []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}); err != nil {
		t.Fatal(err)
	}
	m := model(inst("VI_1", 51, 150, "10.0.0.100/24"), inst("VI_2", 52, 150, "10.0.0.200/24"))
	a.apply(m)
	a.prev = nil
	waitState(t, a, "VI_1", "MASTER")
	waitState(t, a, "VI_2", "BACKUP")
	for _, s := range a.Status().Instances {
		if s.Name != "VI_1" {
			continue
		}
		if !strings.HasPrefix(s.Cause, "resumed MASTER after a restart") {
			t.Errorf("cause %q", s.Cause)
		}
		if want := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC); !s.Since.Equal(want) {
			t.Errorf("since %v, want the old run's %v", s.Since, want)
		}
	}
	for _, c := range a.Counters().Instances {
		if c.BecomeMaster != 0 {
			t.Errorf("%s: become_master %d after a resume, want 0", c.Name, c.BecomeMaster)
		}
	}
	if got := a.Status().Daemon.Resumed; got != 1 {
		t.Errorf("daemon.resumed = %d, want 1", got)
	}
}

func TestASyncGroupResumesWholeOrNotAtAll(t *testing.T) {
	a, plane, _ := resumeAgent(t, masterState("VI_1", "VI_2"), 0)
	// Only VI_1's VIP is still there: the group starts as usual.
	if err := plane.AddAddrs(t.Context(), "eth0", []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}); err != nil {
		t.Fatal(err)
	}
	m := model(inst("VI_1", 51, 150, "10.0.0.100/24"), inst("VI_2", 52, 150, "10.0.0.200/24"))
	m.SyncGroups = []*config.SyncGroup{{Name: "G", Members: []string{"VI_1", "VI_2"}}}
	if got := a.planResumes(m); len(got) != 0 {
		t.Errorf("resumes %v, want none", got)
	}
	if err := plane.AddAddrs(t.Context(), "eth0", []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.200/24")}}); err != nil {
		t.Fatal(err)
	}
	if got := a.planResumes(m); len(got) != 2 {
		t.Errorf("resumes %v, want both members", got)
	}
}

func TestACrashLoopStopsResuming(t *testing.T) {
	for streak, want := range map[int]int{0: 1, state.MaxCrashStreak - 1: 1, state.MaxCrashStreak: 0} {
		f := masterState("VI_1")
		f.Mode, f.CrashStreak = state.ModeRunning, streak
		// The crashed run lived 10 s: a quick crash.
		f.Started = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC).Add(-10 * time.Second)
		a, plane, _ := resumeAgent(t, f, 0)
		if err := plane.AddAddrs(t.Context(), "eth0", []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}); err != nil {
			t.Fatal(err)
		}
		if got := len(a.planResumes(model(inst("VI_1", 51, 150, "10.0.0.100/24")))); got != want {
			t.Errorf("after %d quick crashes: %d resumes, want %d", streak+1, got, want)
		}
		if a.crashStreak != streak+1 {
			t.Errorf("crash streak %d, want %d", a.crashStreak, streak+1)
		}
	}
}

func TestOperatorIntentsSurviveTheRestart(t *testing.T) {
	f := masterState("VI_1")
	f.Mode = state.ModeStopped
	f.Maintenance = &state.Maintenance{Instances: map[string]string{"VI_1": "NIC swap"}}
	f.Priorities = map[string]int{"VI_1": 120}
	a, _, _ := resumeAgent(t, f, time.Hour)
	a.restoreIntents(a.prev)
	a.apply(model(inst("VI_1", 51, 150, "10.0.0.100/24")))
	waitState(t, a, "VI_1", "FAULT")
	snap := a.snapshot(state.ModeRunning)
	if snap.Maintenance == nil || snap.Maintenance.Instances["VI_1"] != "NIC swap" || snap.Priorities["VI_1"] != 120 {
		t.Errorf("snapshot lost the operator's intents: %+v %v", snap.Maintenance, snap.Priorities)
	}
	a.mu.Lock()
	ovr := a.overridesOf("VI_1")
	a.mu.Unlock()
	if len(ovr) == 0 {
		t.Error("the priority override is not in force")
	}
}

// TestCauseKindsAreTheAPIs: the runtime's cause kinds travel as the API's
// strings (metric labels, status); a kind added to one must exist in both.
func TestCauseKindsAreTheAPIs(t *testing.T) {
	pairs := map[vrrp.CauseKind]string{
		vrrp.CauseStartup: api.CauseStartup, vrrp.CauseMasterDown: api.CauseMasterDown,
		vrrp.CausePriorityZero: api.CausePriorityZero, vrrp.CausePreempt: api.CausePreempt,
		vrrp.CauseHigherPriority: api.CauseHigherPriority, vrrp.CauseOwner: api.CauseOwner,
		vrrp.CauseFault: api.CauseFault, vrrp.CauseFaultCleared: api.CauseFaultCleared,
		vrrp.CauseMaintenance: api.CauseMaintenance, vrrp.CauseSyncGroup: api.CauseSyncGroup,
		vrrp.CauseDemote: api.CauseDemote, vrrp.CauseShutdown: api.CauseShutdown, vrrp.CauseResume: api.CauseResume,
	}
	for k, v := range pairs {
		if string(k) != v {
			t.Errorf("vrrp %q is api %q", k, v)
		}
	}
}

// TestFirstApplyRemovesVIPsNoInstanceHoldsNow: a VIP of an instance
// removed from the file, and one dropped from a resumed instance's list,
// are removed at start; the resumed instance's VIP stays.
func TestFirstApplyRemovesVIPsNoInstanceHoldsNow(t *testing.T) {
	f := masterState("VI_1")
	f.Instances[0].VIPs = append(f.Instances[0].VIPs, state.VIP{Prefix: netip.MustParsePrefix("10.0.0.101/24"), Dev: "eth0"})
	f.Instances = append(f.Instances, state.Instance{Name: "VI_GONE", Identity: "vrid=99 family=ipv4 interface=eth1 mode=multicast",
		State: "MASTER", VIPs: []state.VIP{{Prefix: netip.MustParsePrefix("10.9.0.50/24"), Dev: "eth1"}}})
	a, plane, _ := resumeAgent(t, f, 20*time.Millisecond)
	for _, v := range []struct{ dev, p string }{{"eth0", "10.0.0.100/24"}, {"eth0", "10.0.0.101/24"}, {"eth1", "10.9.0.50/24"}} {
		if err := plane.AddAddrs(t.Context(), v.dev, []config.VIP{{Prefix: netip.MustParsePrefix(v.p)}}); err != nil {
			t.Fatal(err)
		}
	}
	a.apply(model(inst("VI_1", 51, 150, "10.0.0.100/24")))
	waitState(t, a, "VI_1", "MASTER")
	has := func(dev, addr string) bool { ok, _ := plane.HasAddr(dev, netip.MustParseAddr(addr)); return ok }
	if !has("eth0", "10.0.0.100") {
		t.Error("the resumed instance's VIP was removed")
	}
	if has("eth0", "10.0.0.101") {
		t.Error("the VIP dropped from VI_1's list is still there")
	}
	if has("eth1", "10.9.0.50") {
		t.Error("the removed instance's VIP is still there")
	}
}

func TestStateOfAnotherNodeIsNotUsed(t *testing.T) {
	f := masterState("VI_1")
	f.Node = "lb9"
	f.Maintenance = &state.Maintenance{Node: true, Reason: "lb9's"}
	a, _, _ := resumeAgent(t, f, 0)
	if a.prev != nil {
		t.Errorf("state written by lb9 used by n1: %+v", a.prev.file)
	}
}

// TestStateLoopVouchesOnlyForWhatItWrote: the heartbeat does not move
// before the first apply is done (the file holds the previous run's
// instances), nor while a write is failing; a failed write is retried.
func TestStateLoopVouchesOnlyForWhatItWrote(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "state")
	a, _ := testAgentWith(t, Options{StateDir: dir})
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := state.Write(dir, masterState("VI_1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(state.Path(dir), time.Time{}, old); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go a.stateLoop(ctx, done)
	defer func() { cancel(); <-done }()
	heartbeat := func() time.Time {
		_, hb, err := state.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		return hb
	}
	time.Sleep(1200 * time.Millisecond) // more than a heartbeat period (1 s with no model)
	if hb := heartbeat(); !hb.Equal(old) {
		t.Fatalf("heartbeat moved to %v before the first apply", hb)
	}
	a.applied.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for heartbeat().Equal(old) {
		if time.Now().After(deadline) {
			t.Fatal("heartbeat never moved after the first apply")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Writes fail (the directory is replaced by a file): no heartbeat.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a.kickState()
	time.Sleep(1200 * time.Millisecond)
	// Writable again: the loop writes by itself, no kick needed.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := state.Read(dir); err == nil {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("a failed write was never retried")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closedGate refuses every entry into MASTER and records the causes asked.
type closedGate struct {
	mu    sync.Mutex
	asked []string
}

func (g *closedGate) MayBecomeMaster(_ string, _ int, cause string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, cause)
	return false
}

// TestResumePassesAClosedGateOnce: a gate that says no (the arbiter before
// etcd answers) does not stop a MASTER resumed after a restart; the gate
// is not asked for the resume, and any other way into MASTER still asks it.
func TestResumePassesAClosedGateOnce(t *testing.T) {
	a, plane, _ := resumeAgent(t, masterState("VI_1"), 100*time.Millisecond)
	if err := plane.AddAddrs(t.Context(), "eth0", []config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}}); err != nil {
		t.Fatal(err)
	}
	g := &closedGate{}
	a.SetGate(g)
	a.apply(model(inst("VI_1", 51, 150, "10.0.0.100/24")))
	a.prev = nil
	waitState(t, a, "VI_1", "MASTER")
	g.mu.Lock()
	asked := len(g.asked)
	g.mu.Unlock()
	if asked != 0 {
		t.Errorf("the gate was asked %v for the resume", g.asked)
	}
	if c, ok := a.resuming.Load("VI_1"); ok {
		t.Errorf("the resume's pass is still there after it was used: %v", c)
	}
	if a.MayBecomeMaster("VI_1", 51, "master down timer expired") {
		t.Error("a later entry into MASTER passed the closed gate")
	}
}
