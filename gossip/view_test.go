package gossip

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func nv(name, state string, insts ...api.FleetInstance) nodeView {
	return nodeView{Name: name, Addr: name + ":7946", State: state, NodeState: NodeState{Version: "1.0.0", Instances: insts}}
}

func withMaint(v nodeView, reason string) nodeView {
	v.Maintenance = reason
	return v
}

func TestViewPeersAndWarnings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		nodes    []nodeView
		peers    []api.Peer
		warnings []api.Warning
	}{{
		name: "backup hearing a gossip master: no peer, no warning",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100))),
		},
	}, {
		name: "classic peer heard by two backups, deduplicated",
		nodes: []nodeView{
			nv("node2", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.9", 150))),
			nv("node1", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.1", hears("10.0.0.9", 150))),
		},
		peers: []api.Peer{{Addr: "10.0.0.9", VRID: 51, Priority: 150, State: "MASTER", Segment: "10.0.0.0/24", HeardBy: []string{"node1", "node2"}}},
	}, {
		name: "a master heard at a dead gossip node's address is no classic peer",
		nodes: []nodeView{
			nv("node1", stateDead, fi("VI_1", 51, "BACKUP", "10.0.0.1")),
			nv("node2", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100))),
		},
	}, {
		name: "no master priority or no master: no peer",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.1", hears("10.0.0.9", 0))),
			nv("node2", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("", 0))),
		},
	}, {
		name: "dead nodes report no peers",
		nodes: []nodeView{
			nv("node1", stateDead, fi("VI_1", 51, "BACKUP", "10.0.0.1", hears("10.0.0.9", 150))),
		},
	}, {
		name: "one VRID on two segments: two peers, sorted by segment",
		nodes: []nodeView{
			nv("node1", stateAlive,
				fi("VI_2", 51, "BACKUP", "10.0.1.1", hears("10.0.1.9", 120), func(in *api.FleetInstance) { in.Segment = "10.0.1.0/24" }),
				fi("VI_1", 51, "BACKUP", "10.0.0.1", hears("10.0.0.9", 150)),
			),
		},
		peers: []api.Peer{
			{Addr: "10.0.0.9", VRID: 51, Priority: 150, State: "MASTER", Segment: "10.0.0.0/24", HeardBy: []string{"node1"}},
			{Addr: "10.0.1.9", VRID: 51, Priority: 120, State: "MASTER", Segment: "10.0.1.0/24", HeardBy: []string{"node1"}},
		},
	}, {
		name: "two gossip masters: split brain",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.2")),
		},
		warnings: []api.Warning{{Kind: api.WarnSplitBrain, Instance: "VI_1", VRID: 51, Nodes: []string{"node1", "node2"},
			Detail: "2 MASTERs for VRID 51 on 10.0.0.0/24: node1, node2"}},
	}, {
		name: "a suspect node still counts",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateSuspect, fi("VI_1", 51, "MASTER", "10.0.0.2")),
		},
		warnings: []api.Warning{{Kind: api.WarnSplitBrain, Instance: "VI_1", VRID: 51, Nodes: []string{"node1", "node2"},
			Detail: "2 MASTERs for VRID 51 on 10.0.0.0/24: node1, node2"}},
	}, {
		name: "gossip master and a classic peer heard by a third node: split brain",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100))),
			nv("node3", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.3", hears("10.0.0.9", 200))),
		},
		peers: []api.Peer{{Addr: "10.0.0.9", VRID: 51, Priority: 200, State: "MASTER", Segment: "10.0.0.0/24", HeardBy: []string{"node3"}}},
		warnings: []api.Warning{{Kind: api.WarnSplitBrain, Instance: "VI_1", VRID: 51, Nodes: []string{"node1", "10.0.0.9"},
			Detail: "2 MASTERs for VRID 51 on 10.0.0.0/24: node1, 10.0.0.9 (classic VRRP peer)"}},
	}, {
		name: "dead and left masters do not count for split brain",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateDead, fi("VI_1", 51, "MASTER", "10.0.0.2")),
			nv("node3", stateLeft, fi("VI_1", 51, "MASTER", "10.0.0.3")),
		},
	}, {
		name: "this node's instances count whatever memberlist says of it",
		nodes: []nodeView{
			nv("self", stateLeft, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.2")),
		},
		warnings: []api.Warning{{Kind: api.WarnSplitBrain, Instance: "VI_1", VRID: 51, Nodes: []string{"node2", "self"},
			Detail: "2 MASTERs for VRID 51 on 10.0.0.0/24: node2, self"}},
	}, {
		name: "one VRID on two segments or in two families: no split brain",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateAlive, fi("VI_1", 51, "MASTER", "10.0.1.2", func(in *api.FleetInstance) { in.Segment = "10.0.1.0/24" })),
			nv("node3", stateAlive, fi("VI_6", 51, "MASTER", "fd00::3", func(in *api.FleetInstance) {
				in.Family, in.Segment, in.VIPs = "ipv6", "fd00::/64", []string{"fd00::100"}
			})),
		},
	}, {
		name: "instances without a segment are not compared",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1", func(in *api.FleetInstance) { in.Segment = "" })),
			nv("node2", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.2", func(in *api.FleetInstance) { in.Segment = "" })),
		},
	}, {
		name: "config mismatch: VIPs, advert interval, version and authentication",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1", func(in *api.FleetInstance) {
				in.VIPs = []string{"10.0.0.101", "10.0.0.100/32"}
				in.AuthHash = "h1"
			})),
			nv("node2", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100), func(in *api.FleetInstance) {
				in.VIPs = []string{"10.0.0.100"}
				in.AdvertInt, in.Version = "2s", 3
			})),
			nv("node3", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.3", hears("10.0.0.1", 100), func(in *api.FleetInstance) {
				in.VIPs = []string{"10.0.0.100", "10.0.0.101"}
				in.AuthHash = "h1"
			})),
		},
		warnings: []api.Warning{{Kind: api.WarnConfigMismatch, Instance: "VI_1", VRID: 51, Nodes: []string{"node1", "node2", "node3"},
			Detail: "VRID 51 on 10.0.0.0/24: vips differ (10.0.0.100 on node2; 10.0.0.100,10.0.0.101 on node1, node3); " +
				"advert_int differs (1s on node1, node3; 2s on node2); version differs (2 on node1, node3; 3 on node2); " +
				"auth_hash differs (h1 on node1, node3; none on node2)"}},
	}, {
		name: "same VIPs in another order and host prefixes: no mismatch",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1", func(in *api.FleetInstance) { in.VIPs = []string{"10.0.0.101", "10.0.0.100/32"} })),
			nv("node2", stateAlive, fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100), func(in *api.FleetInstance) { in.VIPs = []string{"10.0.0.100", "10.0.0.101"} })),
		},
	}, {
		name: "a dead node's old configuration is no mismatch",
		nodes: []nodeView{
			nv("node1", stateAlive, fi("VI_1", 51, "MASTER", "10.0.0.1")),
			nv("node2", stateDead, fi("VI_1", 51, "BACKUP", "10.0.0.2", func(in *api.FleetInstance) { in.AdvertInt = "3s" })),
		},
	}, {
		name: "maintenance of a node and of an instance",
		nodes: []nodeView{
			withMaint(nv("node1", stateAlive, fi("VI_1", 51, "FAULT", "10.0.0.1", func(in *api.FleetInstance) {
				in.Faults = map[string]string{"maintenance/operator": "maintenance: NIC swap (operator)"}
			})), "NIC swap"),
			nv("node2", stateAlive,
				fi("VI_1", 51, "MASTER", "10.0.0.2"),
				fi("VI_2", 52, "FAULT", "10.0.0.2", func(in *api.FleetInstance) {
					in.Faults = map[string]string{"maintenance/etcd": "maintenance (etcd)", "tracking": "chk down"}
				})),
			withMaint(nv("node3", stateDead), "maintenance"),
		},
		warnings: []api.Warning{
			{Kind: api.WarnMaintenance, Nodes: []string{"node1"}, Detail: "NIC swap"},
			{Kind: api.WarnMaintenance, Nodes: []string{"node3"}, Detail: "maintenance"},
			{Kind: api.WarnMaintenance, Instance: "VI_2", VRID: 52, Nodes: []string{"node2"}, Detail: "maintenance (etcd)"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := view(tc.nodes, "self")
			want := tc.peers
			if want == nil {
				want = []api.Peer{}
			}
			if d := cmp.Diff(want, f.Peers); d != "" {
				t.Errorf("peers (-want +got):\n%s", d)
			}
			wantW := tc.warnings
			if wantW == nil {
				wantW = []api.Warning{}
			}
			if d := cmp.Diff(wantW, f.Warnings); d != "" {
				t.Errorf("warnings (-want +got):\n%s", d)
			}
		})
	}
}

func TestViewListsEveryNodeSortedWithAliveFromItsState(t *testing.T) {
	nodes := []nodeView{
		nv("node3", stateLeft, fi("VI_2", 52, "BACKUP", "10.0.0.3"), fi("VI_1", 51, "BACKUP", "10.0.0.3")),
		nv("node1", stateSuspect),
		nv("node2", stateDead, fi("VI_1", 51, "MASTER", "10.0.0.2")),
	}
	f := view(nodes, "node1")
	var got []string
	for _, n := range f.Nodes {
		got = append(got, n.Name+" "+n.State+" "+map[bool]string{true: "alive", false: "down"}[n.Alive])
	}
	if d := cmp.Diff([]string{"node1 suspect alive", "node2 dead down", "node3 left down"}, got); d != "" {
		t.Errorf("nodes (-want +got):\n%s", d)
	}
	if f.Nodes[0].Instances == nil {
		t.Error("a node without instances has nil Instances: JSON null, want []")
	}
	if n := f.Nodes[2]; n.Instances[0].Name != "VI_1" || n.Instances[1].Name != "VI_2" {
		t.Errorf("node3's instances not sorted by name: %v", n.Instances)
	}
	// The view shares nothing with its input.
	f.Nodes[2].Instances[0].VIPs[0] = "changed"
	if nodes[0].Instances[1].VIPs[0] != "10.0.0.100" {
		t.Error("changing the view changed the node states")
	}
}

// TestViewGolden pins the JSON of a whole fleet (vipd status --fleet -o
// json): go test ./gossip -run Golden -update rewrites it.
func TestViewGolden(t *testing.T) {
	nodes := []nodeView{
		nv("lb2", stateAlive,
			fi("VI_WEB", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 150), func(in *api.FleetInstance) { in.Priority, in.EffectivePriority = 100, 100 }),
			fi("VI_DB", 52, "MASTER", "10.0.0.2", func(in *api.FleetInstance) { in.VIPs = []string{"10.0.0.200"} }),
			fi("VI_V6", 60, "BACKUP", "fd00::2", hears("fd00::9", 254), func(in *api.FleetInstance) {
				in.Family, in.Segment, in.VIPs, in.Version = "ipv6", "fd00::/64", []string{"fd00::100"}, 3
			}),
		),
		nv("lb1", stateAlive,
			fi("VI_WEB", 51, "MASTER", "10.0.0.1", func(in *api.FleetInstance) { in.Priority, in.EffectivePriority, in.MasterPriority = 150, 150, 150 }),
			fi("VI_DB", 52, "MASTER", "10.0.0.1", func(in *api.FleetInstance) { in.VIPs = []string{"10.0.0.200"} }),
		),
		withMaint(nv("lb3", stateLeft,
			fi("VI_WEB", 51, "FAULT", "10.0.0.3", func(in *api.FleetInstance) {
				in.AdvertInt = "3s"
				in.Faults = map[string]string{"maintenance/operator": "maintenance: kernel upgrade (operator)"}
			}),
		), "kernel upgrade"),
	}
	got, err := json.MarshalIndent(view(nodes, "lb1"), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "fleet.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("fleet JSON differs from %s (-want +got):\n%s", path, d)
	}
}

// TestSplitBrainNeedsNewsOfEachMaster: a node killed while MASTER keeps
// its last state until it is declared dead, while its backup takes over;
// that MASTER counts only once heard after the new one began, so a crash
// is no split brain and a live second MASTER (which answers when asked)
// is one.
func TestSplitBrainNeedsNewsOfEachMaster(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	since := func(at time.Time) func(*api.FleetInstance) { return func(in *api.FleetInstance) { in.Since = at } }
	nodes := func(heardA time.Time) []nodeView {
		return []nodeView{
			{Name: "node-a", State: stateAlive, Heard: heardA, NodeState: NodeState{Instances: []api.FleetInstance{
				fi("VI_1", 51, "MASTER", "10.0.0.1", since(t0))}}},
			{Name: "node-b", State: stateAlive, Heard: t0.Add(10 * time.Second), NodeState: NodeState{Instances: []api.FleetInstance{
				fi("VI_1", 51, "MASTER", "10.0.0.2", since(t0.Add(4*time.Second)))}}},
		}
	}
	// node-b's view: node-a last heard before node-b became MASTER.
	f, splits, unconfirmed := computeAll(nodes(t0.Add(time.Second)), "node-b")
	if len(splits) != 0 || len(f.Warnings) != 0 {
		t.Errorf("a master not heard since the takeover made a split brain: %+v", f.Warnings)
	}
	if !slices.Equal(unconfirmed, []string{"node-a"}) {
		t.Errorf("unconfirmed %v, want node-a (to be asked)", unconfirmed)
	}
	if len(f.Peers) != 0 {
		t.Errorf("node-a's address became a classic peer: %+v", f.Peers)
	}
	// node-a answered after the takeover: a real split brain.
	_, splits, unconfirmed = computeAll(nodes(t0.Add(5*time.Second)), "node-b")
	if len(splits) != 1 || len(unconfirmed) != 0 {
		t.Errorf("splits %+v unconfirmed %v, want one split brain", splits, unconfirmed)
	}
	// This node's own MASTER always counts.
	if _, splits, _ := computeAll(nodes(t0.Add(time.Second)), "node-a"); len(splits) != 1 {
		t.Errorf("node-a's own view: splits %+v, want one (its own MASTER and node-b's)", splits)
	}
}

func TestViewSeesOneInstanceWithTwoVRIDs(t *testing.T) {
	nodes := []nodeView{
		{Name: "node-a", State: stateAlive, NodeState: NodeState{Instances: []api.FleetInstance{fi("VI_1", 51, "MASTER", "10.0.0.1")}}},
		{Name: "node-b", State: stateAlive, NodeState: NodeState{Instances: []api.FleetInstance{fi("VI_1", 52, "MASTER", "10.0.0.2")}}},
	}
	f := view(nodes, "node-a")
	var got []api.Warning
	for _, w := range f.Warnings {
		if w.Kind == api.WarnConfigMismatch {
			got = append(got, w)
		}
	}
	if len(got) != 1 || got[0].Instance != "VI_1" || !slices.Equal(got[0].Nodes, []string{"node-a", "node-b"}) ||
		got[0].Detail != "VI_1 on 10.0.0.0/24: virtual_router_id differs: VRID 51 on node-a; VRID 52 on node-b" {
		t.Errorf("config_mismatch warnings %+v", got)
	}
}
