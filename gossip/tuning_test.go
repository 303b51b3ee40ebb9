package gossip

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestTuningOverridesOnlyWhatItNames(t *testing.T) {
	for _, tc := range []struct{ name, file string }{
		{"yaml", "probe_interval: 2s\nsuspicion_mult: 3\ngossip_to_the_dead_time: 5s\n"},
		{"json", `{"probe_interval": "2s", "suspicion_mult": 3, "gossip_to_the_dead_time": "5s"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tu, err := parseTuning([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c := memberlist.DefaultLANConfig()
			if err := tu.apply(c); err != nil {
				t.Fatal(err)
			}
			def := memberlist.DefaultLANConfig()
			if c.ProbeInterval != 2*time.Second || c.SuspicionMult != 3 || c.GossipToTheDeadTime != 5*time.Second {
				t.Errorf("overrides not applied: %v %v %v", c.ProbeInterval, c.SuspicionMult, c.GossipToTheDeadTime)
			}
			if c.ProbeTimeout != def.ProbeTimeout || c.PushPullInterval != def.PushPullInterval || c.GossipNodes != def.GossipNodes {
				t.Error("a setting the file does not name changed")
			}
		})
	}
}

func TestTuningEveryKey(t *testing.T) {
	tu, err := parseTuning([]byte(fastTuning + "gossip_nodes: 4\nindirect_checks: 5\nsuspicion_max_timeout_mult: 7\n" +
		"awareness_max_multiplier: 9\ndead_node_reclaim_time: 30s\nudp_buffer_size: 1300\nhandoff_queue_depth: 2048\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := memberlist.DefaultLANConfig()
	if err := tu.apply(c); err != nil {
		t.Fatal(err)
	}
	got := []any{c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult, c.GossipInterval, c.GossipNodes,
		c.PushPullInterval, c.TCPTimeout, c.GossipToTheDeadTime, c.RetransmitMult,
		c.IndirectChecks, c.SuspicionMaxTimeoutMult, c.AwarenessMaxMultiplier, c.DeadNodeReclaimTime,
		c.UDPBufferSize, c.HandoffQueueDepth}
	want := []any{200 * time.Millisecond, 100 * time.Millisecond, 3, 50 * time.Millisecond, 4,
		2 * time.Second, 2 * time.Second, time.Second, 3,
		5, 7, 9, 30 * time.Second, 1300, 2048}
	if len(want) != len(tuningKeys) {
		t.Fatalf("%d keys checked, %d known", len(want), len(tuningKeys))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s = %v, want %v", tuningKeys[i], got[i], want[i])
		}
	}
}

func TestTuningErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"probe_intervl: 1s\n", `unknown key "probe_intervl"`},
		{`{"gossip_nodes": 3, "extra": 1}`, `unknown key "extra"`},
		{"probe_interval: 1\n", "probe_interval: 1: want a duration"},
		{"probe_interval: soon\n", "probe_interval"},
		{"tcp_timeout: -1s\n", "tcp_timeout: -1s: must be positive"},
		{"suspicion_mult: 0\n", "suspicion_mult: 0: must be positive"},
		{"retransmit_mult: 2.5\n", "retransmit_mult: 2.5: want a positive integer"},
		{"gossip_nodes: \"3\"\n", "gossip_nodes"},
		{"[1, 2]", "cannot unmarshal"},
	} {
		_, err := parseTuning([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.file, err, tc.want)
		}
	}
	if tu, err := parseTuning(nil); err != nil || tu.ProbeInterval != nil {
		t.Errorf("empty file: %+v, %v: want no overrides", tu, err)
	}
	tu, err := parseTuning([]byte("probe_interval: 200ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tu.apply(memberlist.DefaultLANConfig()); err == nil || !strings.Contains(err.Error(), "probe_timeout 500ms must be shorter than probe_interval 200ms") {
		t.Errorf("probe interval under the default timeout: %v", err)
	}
}
