package gossip

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics of the gossip layer (Node.Collector):
//
//	vipd_gossip_members{state}                         gauge: members by state (alive, suspect, dead, left), this node included
//	vipd_split_brain{vrid,segment}                     gauge: 1 while a split brain this node is part of lasts
//	vipd_gossip_messages_total{direction,kind}         counter: vipd's messages sent and received (state, maint)
//	vipd_gossip_errors_total{kind}                     counter: decode, send, join, maint, unknown_node
type metrics struct {
	messages *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

var (
	membersDesc = prometheus.NewDesc("vipd_gossip_members",
		"Members of the gossip cluster by state as this node sees them (this node included).", []string{"state"}, nil)
	splitDesc = prometheus.NewDesc("vipd_split_brain",
		"1 while two or more MASTERs exist for a VRID on a segment with this node among them.", []string{"vrid", "segment"}, nil)
)

func newMetrics() *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_gossip_messages_total",
			Help: "vipd's own gossip messages (fleet states, maintenance requests and answers) sent and received.",
		}, []string{"direction", "kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_gossip_errors_total",
			Help: "Gossip errors: decode (undecodable message), send, join, maint (a maintenance request failed or timed out), unknown_node.",
		}, []string{"kind"}),
	}
	for _, d := range []string{"sent", "received"} {
		for _, k := range []string{"state", "maint"} {
			m.messages.WithLabelValues(d, k)
		}
	}
	for _, k := range []string{"decode", "send", "join", "maint", "unknown_node"} {
		m.errors.WithLabelValues(k)
	}
	return m
}

func (m *metrics) message(direction, kind string) { m.messages.WithLabelValues(direction, kind).Inc() }
func (m *metrics) error(kind string)              { m.errors.WithLabelValues(kind).Inc() }

// Collector returns the gossip metrics, read at scrape time.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Node }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- membersDesc
	ch <- splitDesc
	c.n.metrics.messages.Describe(ch)
	c.n.metrics.errors.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	counts := map[string]int{stateAlive: 0, stateSuspect: 0, stateDead: 0, stateLeft: 0}
	n.mu.Lock()
	if n.members[n.cfg.NodeName] == nil {
		counts[stateAlive]++ // not running yet: this node alone
	}
	for _, m := range n.members {
		counts[m.state]++
	}
	type split struct{ vrid, segment string }
	var splits []split
	for g := range n.splits {
		splits = append(splits, split{strconv.Itoa(g.VRID), g.Segment})
	}
	n.mu.Unlock()
	for state, c := range counts {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(c), state)
	}
	seen := map[split]bool{}
	for _, s := range splits {
		if seen[s] { // one VRID on one segment for both families
			continue
		}
		seen[s] = true
		ch <- prometheus.MustNewConstMetric(splitDesc, prometheus.GaugeValue, 1, s.vrid, s.segment)
	}
	n.metrics.messages.Collect(ch)
	n.metrics.errors.Collect(ch)
}
