package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
	"github.com/vipd/vipd/vrrp/wire"
)

// silentConn is a VRRP socket on a segment where nobody else speaks.
type silentConn struct {
	once   sync.Once
	closed chan struct{}
}

func (c *silentConn) Send([]byte, netip.Addr, netip.Addr) error { return nil }
func (c *silentConn) Recv([]byte) ([]byte, wire.RecvMeta, error) {
	<-c.closed
	return nil, wire.RecvMeta{}, net.ErrClosed
}
func (c *silentConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func testAgent(t *testing.T) (*Agent, *vip.Memory) {
	t.Helper()
	return testAgentWith(t, Options{})
}

func testAgentWith(t *testing.T, opts Options) (*Agent, *vip.Memory) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	plane := vip.NewMemory()
	tr := vrrp.NewTransportWith(log, func(string, bool) (vrrp.PacketConn, error) {
		return &silentConn{closed: make(chan struct{})}, nil
	})
	opts.NodeName, opts.Logger = "n1", log
	a := newAgent(opts, plane, tr)
	ctx, cancel := context.WithCancel(context.Background())
	a.runCtx = ctx
	t.Cleanup(func() { a.shutdown(cancel) })
	return a, plane
}

func inst(name string, vrid, prio int, vips ...string) *config.Instance {
	ic := &config.Instance{Name: name, Interface: "eth0", VRID: vrid, Priority: prio,
		McastSrcIP: netip.MustParseAddr("10.0.0.1"), Pos: config.Pos{File: "a.conf", Line: vrid}}
	for _, v := range vips {
		ic.VIPs = append(ic.VIPs, config.VIP{Prefix: netip.MustParsePrefix(v)})
	}
	return ic
}

func model(insts ...*config.Instance) *config.Model {
	m := &config.Model{Instances: insts}
	for _, ic := range insts {
		ic.AdvertInt = config.Duration(50 * time.Millisecond)
		ic.Version = 3
	}
	config.Normalize(m)
	return m
}

func waitState(t *testing.T, a *Agent, name, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range a.Status().Instances {
			if s.Name == name && s.State == state {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never reached %s: %+v", name, state, a.Status())
}

func TestReloadKeepsUnchangedInstancesAndRestartsChangedOnes(t *testing.T) {
	a, plane := testAgent(t)
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24")))
	waitState(t, a, "VI_1", "MASTER")
	waitState(t, a, "VI_2", "MASTER")
	before := map[string]*vrrp.Instance{"VI_1": a.running["VI_1"].inst, "VI_2": a.running["VI_2"].inst}
	since := a.Status().Instances[0].Since

	// Same content, positions moved (a comment was added at the top).
	m2 := model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24"))
	m2.Instances[0].Pos.Line = 99
	a.apply(m2)
	if a.running["VI_1"].inst != before["VI_1"] || a.running["VI_2"].inst != before["VI_2"] {
		t.Fatal("an unchanged instance was recreated by a reload")
	}
	if got := a.Status().Instances[0].Since; !got.Equal(since) {
		t.Fatalf("unchanged instance transitioned: since %v -> %v", since, got)
	}

	// Priority only: same runtime, new effective priority.
	a.apply(model(inst("VI_1", 51, 120, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24")))
	if a.running["VI_1"].inst != before["VI_1"] {
		t.Fatal("a priority change recreated the instance")
	}
	if st := a.Status().Instances[0]; st.EffectivePriority != 120 || st.State != "MASTER" {
		t.Fatalf("after priority change: %+v", st)
	}

	// VIP change: applied live to the same instance, no transition; its
	// old VIP goes, the new one comes at once.
	since2 := a.Status().Instances[1].Since
	a.apply(model(inst("VI_1", 51, 120, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.102/24")))
	if a.running["VI_2"].inst != before["VI_2"] {
		t.Fatal("a VIP change recreated the instance")
	}
	if st := a.Status().Instances[1]; st.State != "MASTER" || !st.Since.Equal(since2) {
		t.Fatalf("a VIP change made a transition: %+v", st)
	}
	if has(plane, "10.0.0.101/24") || !has(plane, "10.0.0.102/24") || !has(plane, "10.0.0.100/24") {
		t.Fatalf("addresses after VIP change: %v", plane.Addrs("eth0"))
	}

	// Removal: VI_1 goes away and releases its VIP.
	a.apply(model(inst("VI_2", 52, 100, "10.0.0.102/24")))
	if _, ok := a.running["VI_1"]; ok || has(plane, "10.0.0.100/24") {
		t.Fatalf("removed instance still running or holding its VIP: %v", plane.Addrs("eth0"))
	}
}

func TestLeavingASyncGroupKeepsTheMemberRunning(t *testing.T) {
	a, _ := testAgent(t)
	m := model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24"))
	m.SyncGroups = []*config.SyncGroup{{Name: "G", Members: []string{"VI_1", "VI_2"}}}
	a.apply(m)
	waitState(t, a, "VI_1", "MASTER")
	waitState(t, a, "VI_2", "MASTER")
	g := a.groups["G"]
	if g == nil || g.g.Len() != 2 {
		t.Fatalf("group G not built with 2 members: %v", g)
	}
	old := a.running["VI_1"].inst
	since := a.Status().Instances[0].Since

	m2 := model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.101/24"))
	a.apply(m2) // group dissolved
	if a.running["VI_1"].inst != old {
		t.Fatal("leaving a sync group restarted the member")
	}
	if st := a.Status().Instances[0]; st.State != "MASTER" || !st.Since.Equal(since) || st.Group != "" {
		t.Fatalf("leaving a sync group moved the member: %+v", st)
	}
	if _, ok := a.groups["G"]; ok {
		t.Fatal("dissolved group still present")
	}
}

func TestInstanceWithoutSourceAddressIsFaultInStatus(t *testing.T) {
	a, _ := testAgent(t)
	ic := inst("VI_9", 9, 100, "10.0.0.109/24")
	ic.McastSrcIP = netip.Addr{}
	ic.Interface = "no-such-if0"
	a.apply(model(ic))
	st := a.Status().Instances[0]
	if st.State != "FAULT" || st.Cause == "" || st.Since.IsZero() {
		t.Fatalf("status %+v, want FAULT with a cause and a since", st)
	}
}

func has(p *vip.Memory, prefix string) bool {
	for _, a := range p.Addrs("eth0") {
		if a == netip.MustParsePrefix(prefix) {
			return true
		}
	}
	return false
}

func TestReloadAppliesNotifyAndTrackingChangesWithoutRestart(t *testing.T) {
	a, _ := testAgent(t)
	a.apply(model(inst("VI_1", 51, 100, "10.0.0.100/24")))
	waitState(t, a, "VI_1", "MASTER")
	before := a.running["VI_1"].inst
	since := a.Status().Instances[0].Since

	ic := inst("VI_1", 51, 100, "10.0.0.100/24")
	ic.Notify.Master = "/bin/true master"
	ic.TrackInterfaces = []config.Track{{Name: "eth9"}}
	a.apply(model(ic))
	ri := a.running["VI_1"]
	if ri.inst != before {
		t.Fatal("a notify/tracking change restarted the instance")
	}
	if ri.notifier.Load() == nil {
		t.Fatal("the new notify scripts were not installed")
	}
	if got := a.Status().Instances[0]; !got.Since.Equal(since) || got.State != "MASTER" {
		t.Fatalf("instance flapped on a live change: %+v", got)
	}

	// A change of VRID is not live: restart.
	a.apply(model(inst("VI_1", 52, 100, "10.0.0.100/24")))
	if a.running["VI_1"].inst == before {
		t.Fatal("a VRID change did not restart the instance")
	}
}

func TestReloadOfScriptSettingsRebuildsNotifiers(t *testing.T) {
	a, _ := testAgent(t)
	ic := inst("VI_1", 51, 100, "10.0.0.100/24")
	ic.Notify.Master = "/bin/true"
	a.apply(model(ic))
	ri := a.running["VI_1"]
	before := ri.notifier.Load()
	if before == nil {
		t.Fatal("no notifier")
	}
	ic2 := inst("VI_1", 51, 100, "10.0.0.100/24")
	ic2.Notify.Master = "/bin/true"
	m := model(ic2)
	m.Global.ScriptUser = "nobody"
	a.apply(m)
	if a.running["VI_1"] != ri || ri.notifier.Load() == before {
		t.Fatal("script_user changed but the running instance's notify scripts were not rebuilt")
	}
}
