package gossip

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sample finds the series of name whose labels include want (nil: any).
func sample(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (*dto.Metric, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			return m, true
		}
	}
	return nil, false
}

func gauge(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	m, ok := sample(t, g, name, want)
	if !ok {
		return 0, false
	}
	return m.GetGauge().GetValue(), true
}

func counter(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	m, ok := sample(t, g, name, want)
	if !ok {
		return 0, false
	}
	return m.GetCounter().GetValue(), true
}

func TestCollectorBeforeRunShowsThisNodeAlone(t *testing.T) {
	n, err := New(Config{NodeName: "n", Log: testLog()}, newFakeLocal(NodeState{}))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(n.Collector())
	for state, want := range map[string]float64{"alive": 1, "suspect": 0, "dead": 0, "left": 0} {
		if v, ok := gauge(t, reg, "vipd_gossip_members", map[string]string{"state": state}); !ok || v != want {
			t.Errorf("vipd_gossip_members{state=%s} = %v (%v), want %v", state, v, ok, want)
		}
	}
	for _, kind := range []string{"decode", "send", "join", "maint", "unknown_node"} {
		if _, ok := counter(t, reg, "vipd_gossip_errors_total", map[string]string{"kind": kind}); !ok {
			t.Errorf("vipd_gossip_errors_total{kind=%s} not served", kind)
		}
	}
	n.receive([]byte("garbage"))
	if v, _ := counter(t, reg, "vipd_gossip_errors_total", map[string]string{"kind": "decode"}); v != 1 {
		t.Errorf("decode errors = %v after one garbage message, want 1", v)
	}
}
