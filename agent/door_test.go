package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
)

func statusOf(t *testing.T, a *Agent, name string) api.InstanceStatus {
	t.Helper()
	for _, s := range a.Status().Instances {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no instance %s in status", name)
	return api.InstanceStatus{}
}

func TestMaintenanceHandsOverThenFaultAndOffComesBack(t *testing.T) {
	a, plane := testAgent(t)
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24")))
	waitState(t, a, "VI_1", "MASTER")
	waitState(t, a, "VI_2", "MASTER")

	if err := a.SetMaintenance(SourceOperator, "VI_1", "NIC swap", true); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_1", "FAULT")
	st := statusOf(t, a, "VI_1")
	if !strings.Contains(st.Cause, "maintenance: NIC swap") || st.Faults["maintenance/operator"] == "" {
		t.Errorf("maintenance status %+v", st)
	}
	if has(plane, "10.0.0.100/24") {
		t.Error("an instance in maintenance still holds its VIP")
	}
	if s2 := statusOf(t, a, "VI_2"); s2.State != "MASTER" {
		t.Errorf("instance maintenance moved another instance: %+v", s2)
	}
	// A fault of another source stays when maintenance goes.
	a.SetFault("VI_1", "link/test", "interface down")
	if err := a.SetMaintenance(SourceOperator, "VI_1", "", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let a wrong recovery show
	if st := statusOf(t, a, "VI_1"); st.State != "FAULT" || st.Faults["link/test"] == "" || st.Faults["maintenance/operator"] != "" {
		t.Errorf("clearing maintenance cleared another fault: %+v", st)
	}
	a.SetFault("VI_1", "link/test", "")
	waitState(t, a, "VI_1", "MASTER")

	// Node-wide maintenance covers every instance, and instances added
	// while it is on.
	if err := a.SetMaintenance(SourceOperator, "", "kernel upgrade", true); err != nil {
		t.Fatal(err)
	}
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24"), inst("VI_3", 53, 100, "10.0.0.102/24")))
	for _, n := range []string{"VI_1", "VI_2", "VI_3"} {
		waitState(t, a, n, "FAULT")
	}
	if err := a.SetMaintenance(SourceOperator, "", "", false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"VI_1", "VI_2", "VI_3"} {
		waitState(t, a, n, "MASTER")
	}
	if err := a.SetMaintenance(SourceOperator, "NOPE", "", true); err == nil {
		t.Error("maintenance of an unknown instance accepted")
	}
}

func TestPriorityOverridesAreKeyedBySourceAndSurviveAReload(t *testing.T) {
	a, _ := testAgent(t)
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24")))
	waitState(t, a, "VI_1", "MASTER")
	if err := a.SetPriorityOverride("VI_1", "etcd", 150); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPriorityOverride("VI_1", SourceOperator, 200); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "operator override in force", func() bool { return statusOf(t, a, "VI_1").EffectivePriority == 200 })
	st := statusOf(t, a, "VI_1")
	if len(st.Overrides) != 2 || st.Overrides[0] != (api.PriorityOverride{Source: "operator", Priority: 200}) || st.Priority != 100 {
		t.Errorf("overrides %+v priority %d", st.Overrides, st.Priority)
	}
	a.apply(model(inst("VI_1", 51, 110, "10.0.0.100/24")))
	if st := statusOf(t, a, "VI_1"); st.EffectivePriority != 200 || st.Priority != 110 {
		t.Errorf("after a reload: %+v", st)
	}
	a.ClearPriorityOverride("VI_1", "etcd") // clears only etcd's
	if st := statusOf(t, a, "VI_1"); st.EffectivePriority != 200 || len(st.Overrides) != 1 {
		t.Errorf("etcd clearing touched the operator's override: %+v", st)
	}
	a.ClearPriorityOverride("VI_1", SourceOperator)
	waitFor(t, "configured priority back", func() bool { return statusOf(t, a, "VI_1").EffectivePriority == 110 })
	if err := a.SetPriorityOverride("VI_1", SourceOperator, 255); err == nil {
		t.Error("override 255 accepted")
	}
}

func TestStreamGivesASnapshotThenEveryTransitionInOrder(t *testing.T) {
	a, _ := testAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snap, events := a.Subscribe(ctx)
	if len(snap.Instances) != 0 {
		t.Fatalf("snapshot before any model: %+v", snap.Instances)
	}
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24")))
	var trans []string
	var last uint64
	deadline := time.After(5 * time.Second)
	for len(trans) < 2 {
		select {
		case ev := <-events:
			if ev.Seq <= last {
				t.Fatalf("events out of order: %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			if ev.Kind == api.EventTransition {
				trans = append(trans, fmt.Sprintf("%s %s->%s %s", ev.Instance, ev.From, ev.To, ev.CauseKind))
				if ev.Status == nil || ev.Status.State != ev.To {
					t.Errorf("transition event carries status %+v", ev.Status)
				}
			}
		case <-deadline:
			t.Fatalf("transitions seen: %v", trans)
		}
	}
	want := []string{"VI_1 INIT->BACKUP startup", "VI_1 BACKUP->MASTER master_down"}
	if strings.Join(trans, "|") != strings.Join(want, "|") {
		t.Errorf("transitions %v, want %v", trans, want)
	}
	a.apply(model())
	for {
		select {
		case ev := <-events:
			if ev.Kind == api.EventInstanceRemoved && ev.Instance == "VI_1" {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no instance_removed event")
		}
	}
}

func TestAVIPRemovedBehindOurBackHealsAndStaysMaster(t *testing.T) {
	a, plane := testAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.watchAddresses(ctx, plane)
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24")))
	waitState(t, a, "VI_1", "MASTER")
	since := statusOf(t, a, "VI_1").Since
	if !plane.RemoveBehindBack("eth0", netip.MustParsePrefix("10.0.0.100/24")) {
		t.Fatal("VIP was not on eth0")
	}
	waitFor(t, "VIP back", func() bool { return has(plane, "10.0.0.100/24") })
	if st := statusOf(t, a, "VI_1"); st.State != "MASTER" || !st.Since.Equal(since) {
		t.Errorf("healing moved the instance: %+v", st)
	}
	if c := a.Counters(); len(c.Instances) != 1 || c.Instances[0].VIPHeals != 1 {
		t.Errorf("heals counted: %+v", c.Instances)
	}
}

func TestStatusAnswersWhileAReloadWaitsForAnInstanceToStop(t *testing.T) {
	a, _ := testAgent(t)
	ic := inst("VI_1", 51, 100, "10.0.0.100/24")
	ic.Notify.Stop = "sleep 5"
	a.apply(model(ic, inst("VI_2", 52, 100, "10.0.0.101/24")))
	waitState(t, a, "VI_1", "MASTER")
	done := make(chan struct{})
	go func() { defer close(done); a.apply(model(inst("VI_2", 52, 100, "10.0.0.101/24"))) }()
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		a.Status()
		if d := time.Since(t0); d > 200*time.Millisecond {
			t.Fatalf("status took %v during a reload", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-done
}

func TestReplacingAFaultyGroupMemberReleasesTheOthers(t *testing.T) {
	a, _ := testAgent(t)
	m := model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24"))
	m.SyncGroups = []*config.SyncGroup{{Name: "G", Members: []string{"VI_1", "VI_2"}}}
	a.apply(m)
	waitState(t, a, "VI_2", "MASTER")
	a.SetFault("VI_1", "link/test", "interface down")
	waitState(t, a, "VI_2", "FAULT")
	// VI_1 takes another VRID: replaced, its fault goes with it.
	a.SetFault("VI_1", "link/test", "")
	m2 := model(inst("VI_1", 61, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24"))
	m2.SyncGroups = []*config.SyncGroup{{Name: "G", Members: []string{"VI_2"}}}
	a.SetFault("VI_1", "link/test", "interface down")
	a.apply(m2)
	waitState(t, a, "VI_2", "MASTER")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestNotifyRunsAreOnTheStream(t *testing.T) {
	a, _ := testAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events := a.Subscribe(ctx)
	ic := inst("VI_1", 51, 100, "10.0.0.100/24")
	ic.Notify.Master = "/bin/false"
	a.apply(model(ic))
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == api.EventNotify {
				if ev.Instance != "VI_1" || ev.Name != "notify_master" || ev.State != "MASTER" || ev.OK {
					t.Fatalf("notify event %+v, want VI_1 notify_master MASTER failed", ev)
				}
				return
			}
		case <-deadline:
			t.Fatal("no notify event")
		}
	}
}

// Two instances sharing a VIP (one MASTER, one not) must not take it from
// each other forever through self-healing.
func TestASharedVIPDoesNotLoopThroughSelfHealing(t *testing.T) {
	a, plane := testAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.watchAddresses(ctx, plane)
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.100/24")))
	if err := a.SetMaintenance(SourceOperator, "VI_2", "hold it out", true); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_1", "MASTER")
	waitState(t, a, "VI_2", "FAULT")
	plane.RemoveBehindBack("eth0", netip.MustParsePrefix("10.0.0.100/24")) // VI_1 puts it back
	time.Sleep(200 * time.Millisecond)
	var heals uint64
	for _, c := range a.Counters().Instances {
		heals += c.VIPHeals
	}
	if heals > 3 || !has(plane, "10.0.0.100/24") {
		t.Errorf("a shared VIP: %d heals, held %v", heals, has(plane, "10.0.0.100/24"))
	}
}

// A swap of two names (and a chain A->B, B->C) keeps both instances
// running under their new names, and maintenance follows the instance.
func TestRenameSwapKeepsBothInstancesAndTheirMaintenance(t *testing.T) {
	a, _ := testAgent(t)
	a.apply(model(inst("A", 51, 100, "10.0.0.100/24"), inst("B", 52, 100, "10.0.0.101/24")))
	waitState(t, a, "A", "MASTER")
	waitState(t, a, "B", "MASTER")
	ia, ib := a.running["A"].inst, a.running["B"].inst
	if err := a.SetMaintenance(SourceOperator, "A", "swap", true); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "A", "FAULT")
	p := a.apply(model(inst("B", 51, 100, "10.0.0.100/24"), inst("A", 52, 100, "10.0.0.101/24")))
	if len(p) != 2 {
		t.Fatalf("swap planned:\n%s", p)
	}
	if a.running["B"].inst != ia || a.running["A"].inst != ib || len(a.running) != 2 {
		t.Fatalf("after a swap: running %v", a.running)
	}
	if st := statusOf(t, a, "B"); st.VRID != 51 || st.State != "FAULT" {
		t.Errorf("the instance in maintenance, renamed B: %+v", st)
	}
	if st := statusOf(t, a, "A"); st.VRID != 52 || st.State != "MASTER" {
		t.Errorf("the other, renamed A: %+v", st)
	}
	// A chain: B->C, A->B.
	a.apply(model(inst("C", 51, 100, "10.0.0.100/24"), inst("B", 52, 100, "10.0.0.101/24")))
	if a.running["C"].inst != ia || a.running["B"].inst != ib || len(a.running) != 2 {
		t.Fatalf("after a chain: running %v", a.running)
	}
	if st := statusOf(t, a, "C"); st.State != "FAULT" || st.Faults["maintenance/operator"] == "" {
		t.Errorf("maintenance did not follow the rename: %+v", st)
	}
}

func TestAVirtualRouteRemovedBehindOurBackIsPutBack(t *testing.T) {
	a, plane := testAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.watchAddresses(ctx, plane)
	ic := inst("VI_1", 51, 100, "10.0.0.100/24")
	route := config.Route{Dst: netip.MustParsePrefix("10.98.0.0/24"), Dev: "eth0"}
	ic.Routes = []config.Route{route}
	a.apply(model(ic))
	waitState(t, a, "VI_1", "MASTER")
	if !plane.RemoveRouteBehindBack(route, "eth0") {
		t.Fatalf("route not installed: %v", plane.Routes())
	}
	waitFor(t, "route back", func() bool { return len(plane.Routes()) == 1 })
	if st := statusOf(t, a, "VI_1"); st.State != "MASTER" {
		t.Errorf("route healing moved the instance: %+v", st)
	}
	if c := a.Counters(); c.Instances[0].VIPHeals != 1 {
		t.Errorf("heals counted: %+v", c.Instances)
	}
}
