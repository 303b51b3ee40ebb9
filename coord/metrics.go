package coord

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the etcd side's Prometheus metrics. One value is shared by the
// Watcher (which sets the first three) and the consumer of its snapshots
// (which counts the values it rejects); register it once.
//
//	vipd_etcd_up                            gauge: 1 while etcd answers the watcher, 0 while it does not (and before it first did)
//	vipd_etcd_watch_restarts_total{reason}  counter: re-reads of the prefix after the watch ended: compacted, no_leader, closed, canceled, unreachable
//	vipd_etcd_revision                      gauge: the store revision of the last snapshot delivered
//	vipd_etcd_rejected_values_total         counter: values in the store rejected as invalid (the last good state stayed)
//	vipd_arbiter_mode{mode}                 gauge: 1 for the arbiter's mode now (starting, etcd, failsafe, isolated, alone), 0 for the others
//	vipd_arbiter_claims                     gauge: claims this node holds in etcd
//	vipd_arbiter_demotions_total            counter: instances the arbiter took out of MASTER
type Metrics struct {
	up        prometheus.Gauge
	restarts  *prometheus.CounterVec
	revision  prometheus.Gauge
	rejected  prometheus.Counter
	arbMode   *prometheus.GaugeVec
	arbClaims prometheus.Gauge
	arbDemote prometheus.Counter
}

// Why a watch was restarted (the reason label).
const (
	RestartCompacted   = "compacted"   // the revision to resume from was compacted away
	RestartNoLeader    = "no_leader"   // the member lost its leader (WithRequireLeader)
	RestartClosed      = "closed"      // the watch channel closed without a reason
	RestartCanceled    = "canceled"    // the server canceled the watch (another error)
	RestartUnreachable = "unreachable" // the probe read failed: etcd down, slow or cut off
)

// NewMetrics returns the metrics, every series at zero.
func NewMetrics() *Metrics {
	m := &Metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vipd_etcd_up",
			Help: "1 while etcd answers this node's watcher, 0 while it does not (VRRP then runs on the last good configuration).",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_etcd_watch_restarts_total",
			Help: "Times the watch of the prefix ended and the prefix was read again, by reason: compacted, no_leader, closed, canceled, unreachable.",
		}, []string{"reason"}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vipd_etcd_revision",
			Help: "The etcd revision of the last snapshot of the prefix delivered to the agent.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vipd_etcd_rejected_values_total",
			Help: "Values in etcd rejected as invalid (a bad priority, broken YAML, an unknown instance); the last good state stayed in force.",
		}),
		arbMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vipd_arbiter_mode",
			Help: "1 for the split-brain arbiter's mode now (starting, etcd, failsafe, isolated, alone), 0 for the others; all 0 when arbitration is off.",
		}, []string{"mode"}),
		arbClaims: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vipd_arbiter_claims",
			Help: "Instances whose claim in etcd this node holds (a node enters MASTER only with the claim while etcd answers).",
		}),
		arbDemote: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vipd_arbiter_demotions_total",
			Help: "Instances the split-brain arbiter took out of MASTER (another node holds the claim, a preemption, cut off from etcd and every peer).",
		}),
	}
	for _, md := range []ArbMode{ModeStarting, ModeEtcd, ModeFailsafe, ModeIsolated, ModeAlone} {
		m.arbMode.WithLabelValues(string(md))
	}
	for _, r := range []string{RestartCompacted, RestartNoLeader, RestartClosed, RestartCanceled, RestartUnreachable} {
		m.restarts.WithLabelValues(r)
	}
	return m
}

// RejectedValue counts one value of the store rejected by its consumer.
func (m *Metrics) RejectedValue() { m.rejected.Inc() }

func (m *Metrics) setUp(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.up.Set(v)
}

func (m *Metrics) restart(reason string) { m.restarts.WithLabelValues(reason).Inc() }

func (m *Metrics) setRevision(rev int64) { m.revision.Set(float64(rev)) }

func (m *Metrics) setArbMode(mode ArbMode) {
	for _, md := range []ArbMode{ModeStarting, ModeEtcd, ModeFailsafe, ModeIsolated, ModeAlone} {
		v := 0.0
		if md == mode {
			v = 1
		}
		m.arbMode.WithLabelValues(string(md)).Set(v)
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.up.Describe(ch)
	m.restarts.Describe(ch)
	m.revision.Describe(ch)
	m.rejected.Describe(ch)
	m.arbMode.Describe(ch)
	m.arbClaims.Describe(ch)
	m.arbDemote.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.up.Collect(ch)
	m.restarts.Collect(ch)
	m.revision.Collect(ch)
	m.rejected.Collect(ch)
	m.arbMode.Collect(ch)
	m.arbClaims.Collect(ch)
	m.arbDemote.Collect(ch)
}
