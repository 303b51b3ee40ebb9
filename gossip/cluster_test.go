package gossip

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/api"
)

// Clusters of memberlist nodes in one process on 127.0.0.1. Every wait
// polls with a deadline; no test asserts how long something took.

const within = 15 * time.Second

func threeNodes(t *testing.T) (a, b, c *testNode) {
	t.Helper()
	a = startNode(t, "node-a", newFakeLocal(NodeState{Version: "1.0.0", Instances: []api.FleetInstance{
		fi("VI_1", 51, "MASTER", "10.0.0.1"),
	}}), nodeOpts{})
	b = startNode(t, "node-b", newFakeLocal(NodeState{Version: "1.0.0", Instances: []api.FleetInstance{
		fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100)),
	}}), nodeOpts{join: []string{a.Addr()}})
	c = startNode(t, "node-c", newFakeLocal(NodeState{Version: "1.0.1", Instances: []api.FleetInstance{
		fi("VI_1", 51, "BACKUP", "10.0.0.3", hears("10.0.0.1", 100)),
	}}), nodeOpts{join: []string{b.Addr()}})
	return a, b, c
}

func TestThreeNodesJoinAndAgreeOnTheFleet(t *testing.T) {
	t.Parallel()
	a, b, c := threeNodes(t)
	nodes := []*testNode{a, b, c}
	eventually(t, within, func() (bool, string) {
		fa := a.Fleet()
		if len(fa.Nodes) != 3 {
			return false, "node-a sees " + states(fa)
		}
		for _, fn := range fa.Nodes {
			if fn.State != stateAlive || len(fn.Instances) != 1 {
				return false, fmt.Sprintf("node-a sees %s with %d instances", states(fa), len(fn.Instances))
			}
		}
		for _, n := range nodes[1:] {
			if d := cmp.Diff(fa, n.Fleet()); d != "" {
				return false, n.cfg.NodeName + " disagrees with node-a (-a +other):\n" + d
			}
		}
		return true, ""
	})
	f := b.Fleet()
	na, _ := fleetNode(f, "node-a")
	if na.Addr != a.Addr() || !na.Alive || na.Version != "1.0.0" || na.Instances[0].State != "MASTER" {
		t.Errorf("node-a as node-b sees it: %+v", na)
	}
	if len(f.Peers) != 0 || len(f.Warnings) != 0 {
		t.Errorf("peers %v, warnings %v: want none (the master heard is node-a)", f.Peers, f.Warnings)
	}
}

func TestStateChangeReachesTheOthers(t *testing.T) {
	t.Parallel()
	a, b, c := threeNodes(t)
	instState := func(n *testNode, of string) string {
		fn, ok := fleetNode(n.Fleet(), of)
		if !ok || len(fn.Instances) == 0 {
			return ""
		}
		return fn.Instances[0].State
	}
	eventually(t, within, func() (bool, string) {
		return instState(b, "node-a") == "MASTER" && instState(c, "node-a") == "MASTER", "node-a not yet seen as MASTER"
	})
	a.local.update(func(st *NodeState) {
		st.Instances[0].State = "BACKUP"
		st.Instances[0].Master = "10.0.0.2"
	})
	b.local.update(func(st *NodeState) {
		st.Instances[0].State = "MASTER"
		st.Instances[0].Master = "10.0.0.2"
	})
	eventually(t, within, func() (bool, string) {
		for _, n := range []*testNode{a, b, c} {
			if instState(n, "node-a") != "BACKUP" || instState(n, "node-b") != "MASTER" {
				return false, n.cfg.NodeName + " sees " + instState(n, "node-a") + "/" + instState(n, "node-b")
			}
		}
		return true, ""
	})
}

func TestLeavingNodeIsSeenAsLeftAndKilledNodeAsDead(t *testing.T) {
	t.Parallel()
	a, b, c := threeNodes(t)
	eventually(t, within, func() (bool, string) {
		f := a.Fleet()
		return states(f) == "node-a=alive node-b=alive node-c=alive", states(f)
	})

	c.stop(t)
	eventually(t, within, func() (bool, string) {
		fa, fb := a.Fleet(), b.Fleet()
		nc, _ := fleetNode(fa, "node-c")
		return nc.State == stateLeft && !nc.Alive && states(fb) == states(fa), "a: " + states(fa) + "; b: " + states(fb)
	})
	// A node that left stays listed with its last known instances.
	nc, _ := fleetNode(a.Fleet(), "node-c")
	if len(nc.Instances) != 1 || nc.Instances[0].Source != "10.0.0.3" {
		t.Errorf("node-c after leaving: %+v, want its last known instance", nc)
	}

	b.kill()
	eventually(t, within, func() (bool, string) {
		f := a.Fleet()
		return states(f) == "node-a=alive node-b=dead node-c=left", states(f)
	})
}

func TestPartitionHealsByItselfThroughRejoin(t *testing.T) {
	t.Parallel()
	pa, pb, pc := &partition{}, &partition{}, &partition{}
	// Only node-a re-joins (node-b and node-c would wait an hour), and it
	// has no configured member: the last known addresses of the dead
	// members are what brings them back.
	a := startNode(t, "node-a", newFakeLocal(NodeState{}), nodeOpts{wrap: wrapWith(pa)})
	b := startNode(t, "node-b", newFakeLocal(NodeState{}), nodeOpts{wrap: wrapWith(pb), join: []string{a.Addr()}, rejoinEvery: time.Hour})
	c := startNode(t, "node-c", newFakeLocal(NodeState{}), nodeOpts{wrap: wrapWith(pc), join: []string{a.Addr()}, rejoinEvery: time.Hour})
	all := "node-a=alive node-b=alive node-c=alive"
	eventually(t, within, func() (bool, string) {
		for _, n := range []*testNode{a, b, c} {
			if s := states(n.Fleet()); s != all {
				return false, n.cfg.NodeName + ": " + s
			}
		}
		return true, ""
	})

	// Cut node-a from node-b and node-c.
	pa.block(b.Addr(), c.Addr())
	pb.block(a.Addr())
	pc.block(a.Addr())
	eventually(t, within, func() (bool, string) {
		sa, sb := states(a.Fleet()), states(b.Fleet())
		return sa == "node-a=alive node-b=dead node-c=dead" && sb == "node-a=dead node-b=alive node-c=alive", "a: " + sa + "; b: " + sb
	})
	// Past gossip_to_the_dead_time memberlist never contacts a dead node
	// again by itself: only the re-join loop can merge the halves.
	time.Sleep(1500 * time.Millisecond)
	pa.heal()
	pb.heal()
	pc.heal()
	eventually(t, within, func() (bool, string) {
		for _, n := range []*testNode{a, b, c} {
			if s := states(n.Fleet()); s != all {
				return false, n.cfg.NodeName + ": " + s
			}
		}
		return true, ""
	})
}

func TestThousandInstancesOfOneNodeAreFullyVisibleOnAnother(t *testing.T) {
	t.Parallel()
	var insts []api.FleetInstance
	for i := range 1000 {
		insts = append(insts, fi(fmt.Sprintf("VI_%04d", i), i%255+1, "MASTER", "10.0.0.1", func(in *api.FleetInstance) {
			in.Segment = fmt.Sprintf("10.%d.%d.0/24", i/250, i%250)
			in.VIPs = []string{fmt.Sprintf("10.%d.%d.100", i/250, i%250), fmt.Sprintf("10.%d.%d.101", i/250, i%250)}
			in.Tracked = []api.TrackedStatus{{Kind: "script", Name: "chk_haproxy", OK: true, Weight: -20}}
			in.AuthHash = "sha256:0123456789abcdef"
		}))
	}
	a := startNode(t, "node-a", newFakeLocal(NodeState{Version: "1.0.0", Instances: insts}), nodeOpts{})
	b := startNode(t, "node-b", newFakeLocal(NodeState{Version: "1.0.0"}), nodeOpts{join: []string{a.Addr()}})
	want, _ := fleetNode(a.Fleet(), "node-a")
	eventually(t, within, func() (bool, string) {
		got, ok := fleetNode(b.Fleet(), "node-a")
		if !ok {
			return false, "node-b does not know node-a"
		}
		if d := cmp.Diff(want.Instances, got.Instances); d != "" {
			return false, fmt.Sprintf("node-b sees %d instances of node-a", len(got.Instances))
		}
		return true, ""
	})
	// A mass change is visible in full too.
	a.local.update(func(st *NodeState) {
		for i := range st.Instances {
			st.Instances[i].State = "BACKUP"
		}
	})
	eventually(t, within, func() (bool, string) {
		got, _ := fleetNode(b.Fleet(), "node-a")
		backups := 0
		for _, in := range got.Instances {
			if in.State == "BACKUP" {
				backups++
			}
		}
		return backups == 1000, fmt.Sprintf("%d of 1000 instances BACKUP on node-b", backups)
	})
}

func TestNodeWithAnotherKeyCannotJoin(t *testing.T) {
	t.Parallel()
	k1 := writeKey(t, []byte("0123456789abcdef0123456789abcdef"))
	k2 := writeKey(t, []byte("fedcba9876543210fedcba9876543210"))
	a := startNode(t, "node-a", newFakeLocal(NodeState{}), nodeOpts{keyFile: k1})
	friend := startNode(t, "node-f", newFakeLocal(NodeState{}), nodeOpts{keyFile: k1, join: []string{a.Addr()}})
	eventually(t, within, func() (bool, string) {
		s := states(a.Fleet())
		return s == "node-a=alive node-f=alive", s
	})
	_ = friend

	for _, tc := range []struct{ name, key string }{{"node-x", k2}, {"node-p", ""}} {
		x := startNode(t, tc.name, newFakeLocal(NodeState{}), nodeOpts{keyFile: tc.key, rejoinEvery: time.Hour})
		if n, err := x.Join([]string{a.Addr()}); err == nil {
			t.Errorf("%s (key %q) joined an encrypted cluster (%d contacted)", tc.name, tc.key, n)
		}
		if s := states(x.Fleet()); s != tc.name+"=alive" {
			t.Errorf("%s sees %s, want itself alone", tc.name, s)
		}
		if _, ok := fleetNode(a.Fleet(), tc.name); ok {
			t.Errorf("node-a lists %s, which has the wrong key", tc.name)
		}
	}
}

func TestMaintenanceTravelsToTheNodeAndBack(t *testing.T) {
	t.Parallel()
	a, b, c := threeNodes(t)
	eventually(t, within, func() (bool, string) {
		s := states(a.Fleet())
		return s == "node-a=alive node-b=alive node-c=alive", s
	})
	ctx := context.Background()

	req := api.MaintRequest{On: true, Reason: "NIC swap", Node: "node-b"}
	if err := a.SendMaintenance(ctx, "node-b", req); err != nil {
		t.Fatalf("SendMaintenance: %v", err)
	}
	if got, want := b.local.calls(), []maintCall{{"operator", "", "NIC swap", true}}; !cmp.Equal(got, want) {
		t.Errorf("node-b's SetMaintenance calls: %v, want %v", got, want)
	}
	// The maintenance shows in every node's fleet view.
	eventually(t, within, func() (bool, string) {
		nb, _ := fleetNode(c.Fleet(), "node-b")
		return nb.Maintenance == "NIC swap", "node-c sees node-b's maintenance as " + nb.Maintenance
	})
	wantWarn := api.Warning{Kind: api.WarnMaintenance, Nodes: []string{"node-b"}, Detail: "NIC swap"}
	if ws := c.Fleet().Warnings; len(ws) != 1 || !cmp.Equal(ws[0], wantWarn) {
		t.Errorf("warnings on node-c: %+v, want %+v", ws, wantWarn)
	}

	// The target's error comes back.
	c.local.mu.Lock()
	c.local.maintErr = errors.New(`maintenance: no instance "VI_9" on this node`)
	c.local.mu.Unlock()
	err := a.SendMaintenance(ctx, "node-c", api.MaintRequest{On: true, Instance: "VI_9"})
	if err == nil || !strings.Contains(err.Error(), `no instance "VI_9"`) || !strings.Contains(err.Error(), "node-c") {
		t.Errorf("SendMaintenance to node-c: %v, want node-c's error", err)
	}

	// Unknown and gone nodes fail at once, naming the node.
	err = a.SendMaintenance(ctx, "node-z", api.MaintRequest{On: true})
	if err == nil || !strings.Contains(err.Error(), "node-z") {
		t.Errorf("SendMaintenance to an unknown node: %v", err)
	}
	c.stop(t)
	eventually(t, within, func() (bool, string) {
		nc, _ := fleetNode(a.Fleet(), "node-c")
		return nc.State == stateLeft, "node-c is " + nc.State
	})
	err = a.SendMaintenance(ctx, "node-c", api.MaintRequest{On: false})
	if err == nil || !strings.Contains(err.Error(), "node-c") || !strings.Contains(err.Error(), "left") {
		t.Errorf("SendMaintenance to a node that left: %v", err)
	}

	// This node itself: straight to the agent.
	if err := a.SendMaintenance(ctx, "node-a", api.MaintRequest{On: true, Instance: "VI_1"}); err != nil {
		t.Fatal(err)
	}
	if got := a.local.calls(); len(got) != 1 || got[0] != (maintCall{"operator", "VI_1", "", true}) {
		t.Errorf("node-a's calls: %v", got)
	}
}

func TestSplitBrainIsLoggedAndMeasuredWhileItLasts(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	a := startNode(t, "node-a", newFakeLocal(NodeState{Instances: []api.FleetInstance{
		fi("VI_1", 51, "MASTER", "10.0.0.1"),
	}}), nodeOpts{log: logs.logger()})
	b := startNode(t, "node-b", newFakeLocal(NodeState{Instances: []api.FleetInstance{
		fi("VI_1", 51, "MASTER", "10.0.0.2"),
	}}), nodeOpts{join: []string{a.Addr()}})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(a.Collector())
	eventually(t, within, func() (bool, string) {
		v, ok := gauge(t, reg, "vipd_split_brain", map[string]string{"vrid": "51", "segment": "10.0.0.0/24"})
		return ok && v == 1, "no vipd_split_brain{vrid=51} on node-a"
	})
	var sb []api.Warning
	for _, w := range a.Fleet().Warnings {
		if w.Kind == api.WarnSplitBrain {
			sb = append(sb, w)
		}
	}
	want := []api.Warning{{Kind: api.WarnSplitBrain, Instance: "VI_1", VRID: 51, Nodes: []string{"node-a", "node-b"},
		Detail: "2 MASTERs for VRID 51 on 10.0.0.0/24: node-a, node-b"}}
	if d := cmp.Diff(want, sb); d != "" {
		t.Errorf("split brain warnings (-want +got):\n%s", d)
	}
	if v, _ := gauge(t, reg, "vipd_gossip_members", map[string]string{"state": "alive"}); v != 2 {
		t.Errorf("vipd_gossip_members{state=alive} = %v, want 2", v)
	}

	b.local.update(func(st *NodeState) {
		st.Instances[0].State = "BACKUP"
		st.Instances[0].Master, st.Instances[0].MasterPriority = "10.0.0.1", 100
	})
	eventually(t, within, func() (bool, string) {
		_, ok := gauge(t, reg, "vipd_split_brain", nil)
		return !ok, "vipd_split_brain still on node-a"
	})
	if got := logs.count("WARN", "split brain: 2 MASTERs for VRID 51 on 10.0.0.0/24: node-a, node-b"); got != 1 {
		t.Errorf("%d warnings logged for the split brain, want 1:\n%s", got, logs)
	}
	if got := logs.count("INFO", "split brain over"); got != 1 {
		t.Errorf("%d infos logged for its end, want 1:\n%s", got, logs)
	}
	if v, _ := counter(t, reg, "vipd_gossip_messages_total", map[string]string{"direction": "received", "kind": "state"}); v == 0 {
		t.Errorf("no state message counted as received")
	}
}

func TestNewRefusesBadSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, []byte("MDEyMzQ1Njc4OWFiY2RlZg==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	badTuning := filepath.Join(dir, "tuning.json")
	if err := os.WriteFile(badTuning, []byte(`{"probe_interval":"1s","probe_timeot":"100ms"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	slowProbe := filepath.Join(dir, "slow.yaml")
	if err := os.WriteFile(slowProbe, []byte("probe_interval: 1s\nprobe_timeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	local := newFakeLocal(NodeState{})
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"key file readable by others", Config{NodeName: "n", KeyFile: open}, []string{open, "0644"}},
		{"missing key file", Config{NodeName: "n", KeyFile: filepath.Join(dir, "nope")}, []string{"nope"}},
		{"no node name", Config{}, []string{"node name"}},
		{"bind without port", Config{NodeName: "n", Bind: "10.0.0.1"}, []string{"10.0.0.1", "HOST:PORT"}},
		{"bind to a name", Config{NodeName: "n", Bind: "localhost:7946"}, []string{"localhost", "IP address"}},
		{"advertise port 0", Config{NodeName: "n", Advertise: "10.0.0.1:0"}, []string{"port 0"}},
		{"bad join", Config{NodeName: "n", Join: []string{"10.0.0.2"}}, []string{"10.0.0.2"}},
		{"unknown tuning key", Config{NodeName: "n", TuningFile: badTuning}, []string{badTuning, `"probe_timeot"`}},
		{"probe timeout over interval", Config{NodeName: "n", TuningFile: slowProbe}, []string{"probe_timeout"}},
		{"negative rejoin", Config{NodeName: "n", RejoinEvery: -time.Second}, []string{"rejoin"}},
	} {
		tc.cfg.Log = testLog()
		_, err := New(tc.cfg, local)
		if err == nil {
			t.Errorf("%s: New accepted %+v", tc.name, tc.cfg)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
}

func TestNewWarnsWithoutEncryption(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	if _, err := New(Config{NodeName: "n", Log: logs.logger()}, newFakeLocal(NodeState{})); err != nil {
		t.Fatal(err)
	}
	if logs.count("WARN", "gossip is not encrypted") != 1 {
		t.Errorf("no warning about the missing encryption:\n%s", logs)
	}
}

func TestJoinAtRuntimeIsRememberedForRejoin(t *testing.T) {
	t.Parallel()
	a := startNode(t, "node-a", newFakeLocal(NodeState{}), nodeOpts{})
	b := startNode(t, "node-b", newFakeLocal(NodeState{}), nodeOpts{})
	if _, err := b.Join([]string{"not-an-address"}); err == nil {
		t.Error("Join accepted an address without a port")
	}
	n, err := b.Join([]string{a.Addr()})
	if err != nil || n != 1 {
		t.Fatalf("Join: %d, %v", n, err)
	}
	b.mu.Lock()
	remembered := append([]string(nil), b.joinAddrs...)
	b.mu.Unlock()
	if !cmp.Equal(remembered, []string{a.Addr()}) {
		t.Errorf("remembered %v, want %v", remembered, []string{a.Addr()})
	}
	eventually(t, within, func() (bool, string) {
		s := states(a.Fleet())
		return s == "node-a=alive node-b=alive", s
	})
}

func TestRestartedNodeReplacesItsOldState(t *testing.T) {
	t.Parallel()
	a := startNode(t, "node-a", newFakeLocal(NodeState{}), nodeOpts{})
	b := startNode(t, "node-b", newFakeLocal(NodeState{Version: "1.0.0", Instances: []api.FleetInstance{
		fi("VI_1", 51, "MASTER", "10.0.0.2"),
	}}), nodeOpts{join: []string{a.Addr()}})
	eventually(t, within, func() (bool, string) {
		nb, _ := fleetNode(a.Fleet(), "node-b")
		return nb.Version == "1.0.0" && nb.State == stateAlive, "node-a sees node-b as " + nb.State + " " + nb.Version
	})
	addr := b.Addr()
	b.stop(t)
	eventually(t, within, func() (bool, string) {
		nb, _ := fleetNode(a.Fleet(), "node-b")
		return nb.State == stateLeft, "node-b is " + nb.State
	})
	// The same name on the same address: an upgrade of vipd.
	startNode(t, "node-b", newFakeLocal(NodeState{Version: "1.1.0", Instances: []api.FleetInstance{
		fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100)),
	}}), nodeOpts{bind: addr, join: []string{a.Addr()}})
	eventually(t, within, func() (bool, string) {
		nb, _ := fleetNode(a.Fleet(), "node-b")
		ok := nb.State == stateAlive && nb.Version == "1.1.0" && len(nb.Instances) == 1 && nb.Instances[0].State == "BACKUP"
		return ok, fmt.Sprintf("node-a sees node-b as %s %s %v", nb.State, nb.Version, nb.Instances)
	})
}

func TestBurstOfChangesTravelsAsFewMessages(t *testing.T) {
	t.Parallel()
	var insts []api.FleetInstance
	for i := range 200 {
		insts = append(insts, fi(fmt.Sprintf("VI_%03d", i), i+1, "BACKUP", "10.0.0.1"))
	}
	a := startNode(t, "node-a", newFakeLocal(NodeState{Instances: insts}), nodeOpts{})
	b := startNode(t, "node-b", newFakeLocal(NodeState{}), nodeOpts{join: []string{a.Addr()}})
	eventually(t, within, func() (bool, string) {
		nb, _ := fleetNode(b.Fleet(), "node-a")
		return len(nb.Instances) == 200, "node-b does not see node-a's instances yet"
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(a.Collector())
	sentBefore, _ := counter(t, reg, "vipd_gossip_messages_total", map[string]string{"direction": "sent", "kind": "state"})

	// A mass failover: every instance becomes MASTER, one event each.
	for i := range 200 {
		a.local.update(func(st *NodeState) { st.Instances[i].State = "MASTER" })
	}
	eventually(t, within, func() (bool, string) {
		nb, _ := fleetNode(b.Fleet(), "node-a")
		masters := 0
		for _, in := range nb.Instances {
			if in.State == "MASTER" {
				masters++
			}
		}
		return masters == 200, fmt.Sprintf("%d of 200 MASTER on node-b", masters)
	})
	sent, _ := counter(t, reg, "vipd_gossip_messages_total", map[string]string{"direction": "sent", "kind": "state"})
	if n := sent - sentBefore; n > 20 {
		t.Errorf("%v state messages for one burst of 200 changes to one member, want a few", n)
	}
}

func TestOutboxMergesWhatIsOwedToAMember(t *testing.T) {
	o := newOutbox()
	for range 1000 {
		o.add("node-b", taskPush)
	}
	o.add("node-c", taskRequest)
	o.add("node-b", taskRequest)
	var got []string
	for {
		node, tk, ok := o.take()
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%s:%d", node, tk))
	}
	if want := []string{fmt.Sprintf("node-b:%d", taskPush|taskRequest), fmt.Sprintf("node-c:%d", taskRequest)}; !cmp.Equal(got, want) {
		t.Errorf("taken %v, want %v", got, want)
	}
}
