package gossip

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"go.yaml.in/yaml/v3"
)

// tuning overrides memberlist's LAN timings (Config.TuningFile). A nil
// field keeps memberlist's default.
type tuning struct {
	ProbeInterval       *time.Duration
	ProbeTimeout        *time.Duration
	SuspicionMult       *int
	GossipInterval      *time.Duration
	GossipNodes         *int
	PushPullInterval    *time.Duration
	TCPTimeout          *time.Duration
	GossipToTheDeadTime *time.Duration
	RetransmitMult      *int
	// The rest of memberlist's failure-detection knobs.
	IndirectChecks          *int
	SuspicionMaxTimeoutMult *int
	AwarenessMaxMultiplier  *int
	DeadNodeReclaimTime     *time.Duration
	UDPBufferSize           *int
	HandoffQueueDepth       *int
}

// tuningKeys are the keys of a tuning file, in the order of the docs.
var tuningKeys = []string{
	"probe_interval", "probe_timeout", "suspicion_mult", "gossip_interval", "gossip_nodes",
	"push_pull_interval", "tcp_timeout", "gossip_to_the_dead_time", "retransmit_mult",
	"indirect_checks", "suspicion_max_timeout_mult", "awareness_max_multiplier", "dead_node_reclaim_time",
	"udp_buffer_size", "handoff_queue_depth",
}

func (t *tuning) fields() map[string]any {
	return map[string]any{
		"probe_interval":             &t.ProbeInterval,
		"probe_timeout":              &t.ProbeTimeout,
		"suspicion_mult":             &t.SuspicionMult,
		"gossip_interval":            &t.GossipInterval,
		"gossip_nodes":               &t.GossipNodes,
		"push_pull_interval":         &t.PushPullInterval,
		"tcp_timeout":                &t.TCPTimeout,
		"gossip_to_the_dead_time":    &t.GossipToTheDeadTime,
		"retransmit_mult":            &t.RetransmitMult,
		"indirect_checks":            &t.IndirectChecks,
		"suspicion_max_timeout_mult": &t.SuspicionMaxTimeoutMult,
		"awareness_max_multiplier":   &t.AwarenessMaxMultiplier,
		"dead_node_reclaim_time":     &t.DeadNodeReclaimTime,
		"udp_buffer_size":            &t.UDPBufferSize,
		"handoff_queue_depth":        &t.HandoffQueueDepth,
	}
}

// loadTuning reads a tuning file: JSON or YAML, every key optional,
// durations as Go duration strings ("200ms"), multipliers and counts as
// positive integers. An unknown key is an error naming it.
func loadTuning(path string) (tuning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return tuning{}, fmt.Errorf("gossip tuning: %w", err)
	}
	t, err := parseTuning(data)
	if err != nil {
		return tuning{}, fmt.Errorf("gossip tuning file %s: %w", path, err)
	}
	return t, nil
}

func parseTuning(data []byte) (tuning, error) {
	var t tuning
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return t, err
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := t.fields()
	for _, k := range keys {
		f, ok := fields[k]
		if !ok {
			return tuning{}, fmt.Errorf("unknown key %q (known: %s)", k, strings.Join(tuningKeys, ", "))
		}
		v := raw[k]
		switch p := f.(type) {
		case **time.Duration:
			s, ok := v.(string)
			if !ok {
				return tuning{}, fmt.Errorf("%s: %v: want a duration such as \"200ms\"", k, v)
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				return tuning{}, fmt.Errorf("%s: %v", k, err)
			}
			if d <= 0 {
				return tuning{}, fmt.Errorf("%s: %s: must be positive", k, s)
			}
			*p = &d
		case **int:
			n, ok := v.(int)
			if !ok {
				return tuning{}, fmt.Errorf("%s: %v: want a positive integer", k, v)
			}
			if n <= 0 {
				return tuning{}, fmt.Errorf("%s: %d: must be positive", k, n)
			}
			*p = &n
		}
	}
	return t, nil
}

// apply sets the overrides on c and checks the result.
func (t tuning) apply(c *memberlist.Config) error {
	setD := func(dst *time.Duration, v *time.Duration) {
		if v != nil {
			*dst = *v
		}
	}
	setI := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setD(&c.ProbeInterval, t.ProbeInterval)
	setD(&c.ProbeTimeout, t.ProbeTimeout)
	setI(&c.SuspicionMult, t.SuspicionMult)
	setD(&c.GossipInterval, t.GossipInterval)
	setI(&c.GossipNodes, t.GossipNodes)
	setD(&c.PushPullInterval, t.PushPullInterval)
	setD(&c.TCPTimeout, t.TCPTimeout)
	setD(&c.GossipToTheDeadTime, t.GossipToTheDeadTime)
	setI(&c.RetransmitMult, t.RetransmitMult)
	setI(&c.IndirectChecks, t.IndirectChecks)
	setI(&c.SuspicionMaxTimeoutMult, t.SuspicionMaxTimeoutMult)
	setI(&c.AwarenessMaxMultiplier, t.AwarenessMaxMultiplier)
	setD(&c.DeadNodeReclaimTime, t.DeadNodeReclaimTime)
	setI(&c.UDPBufferSize, t.UDPBufferSize)
	setI(&c.HandoffQueueDepth, t.HandoffQueueDepth)
	if c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("probe_timeout %s must be shorter than probe_interval %s", c.ProbeTimeout, c.ProbeInterval)
	}
	return nil
}
