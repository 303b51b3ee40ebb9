package coord

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsRegisterLintCleanAndCountRejections(t *testing.T) {
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatalf("register: %v", err)
	}
	problems, err := testutil.CollectAndLint(m)
	if err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	m.RejectedValue()
	m.RejectedValue()
	m.setUp(true)
	m.setRevision(42)
	m.restart(RestartCompacted)
	m.setArbMode(ModeFailsafe)
	m.arbClaims.Set(2)
	m.arbDemote.Inc()
	want := `
# HELP vipd_arbiter_claims Instances whose claim in etcd this node holds (a node enters MASTER only with the claim while etcd answers).
# TYPE vipd_arbiter_claims gauge
vipd_arbiter_claims 2
# HELP vipd_arbiter_demotions_total Instances the split-brain arbiter took out of MASTER (another node holds the claim, a preemption, cut off from etcd and every peer).
# TYPE vipd_arbiter_demotions_total counter
vipd_arbiter_demotions_total 1
# HELP vipd_arbiter_mode 1 for the split-brain arbiter's mode now (starting, etcd, failsafe, isolated, alone), 0 for the others; all 0 when arbitration is off.
# TYPE vipd_arbiter_mode gauge
vipd_arbiter_mode{mode="alone"} 0
vipd_arbiter_mode{mode="etcd"} 0
vipd_arbiter_mode{mode="failsafe"} 1
vipd_arbiter_mode{mode="isolated"} 0
vipd_arbiter_mode{mode="starting"} 0
# HELP vipd_etcd_rejected_values_total Values in etcd rejected as invalid (a bad priority, broken YAML, an unknown instance); the last good state stayed in force.
# TYPE vipd_etcd_rejected_values_total counter
vipd_etcd_rejected_values_total 2
# HELP vipd_etcd_revision The etcd revision of the last snapshot of the prefix delivered to the agent.
# TYPE vipd_etcd_revision gauge
vipd_etcd_revision 42
# HELP vipd_etcd_up 1 while etcd answers this node's watcher, 0 while it does not (VRRP then runs on the last good configuration).
# TYPE vipd_etcd_up gauge
vipd_etcd_up 1
# HELP vipd_etcd_watch_restarts_total Times the watch of the prefix ended and the prefix was read again, by reason: compacted, no_leader, closed, canceled, unreachable.
# TYPE vipd_etcd_watch_restarts_total counter
vipd_etcd_watch_restarts_total{reason="canceled"} 0
vipd_etcd_watch_restarts_total{reason="closed"} 0
vipd_etcd_watch_restarts_total{reason="compacted"} 1
vipd_etcd_watch_restarts_total{reason="no_leader"} 0
vipd_etcd_watch_restarts_total{reason="unreachable"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
