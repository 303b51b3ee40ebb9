package lvs

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The LVS metrics (Manager.Collector):
//
//	vipd_lvs_checks_total{type,result}                counter: checker rounds by result (ok, failed)
//	vipd_lvs_check_duration_seconds{type}             histogram: duration of a round's last attempt
//	vipd_lvs_real_servers{virtual_server,protocol}    gauge: real servers configured
//	vipd_lvs_real_servers_up{virtual_server,protocol} gauge: real servers whose checkers are all up
//	vipd_lvs_quorum_up{virtual_server,protocol}       gauge: 1 while the virtual server has quorum
//	vipd_lvs_reconcile_operations_total{op}           counter: IPVS operations carried out
//	vipd_lvs_reconcile_errors_total                   counter: reconciles that failed
//	vipd_lvs_reconcile_duration_seconds               histogram: time to carry out one reconcile's operations
//	vipd_lvs_ipvs_available                           gauge: 1 when the kernel's IPVS is reachable
type metrics struct {
	checks   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ops      *prometheus.CounterVec
	errors   prometheus.Counter
	recon    prometheus.Histogram

	mu      sync.Mutex
	servers map[[2]string][3]int // by virtual server and protocol: configured, up, quorum
}

var (
	rsDesc     = prometheus.NewDesc("vipd_lvs_real_servers", "Real servers configured per virtual server.", []string{"virtual_server", "protocol"}, nil)
	rsUpDesc   = prometheus.NewDesc("vipd_lvs_real_servers_up", "Real servers whose checkers are all up, per virtual server.", []string{"virtual_server", "protocol"}, nil)
	quorumDesc = prometheus.NewDesc("vipd_lvs_quorum_up", "1 while the virtual server has quorum (alive weight >= quorum).", []string{"virtual_server", "protocol"}, nil)
	availDesc  = prometheus.NewDesc("vipd_lvs_ipvs_available", "1 when the kernel's IPVS is reachable; 0 on a kernel without IPVS.", nil, nil)
)

func newMetrics() *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_lvs_checks_total", Help: "Health checker rounds by checker type and result (ok, failed).",
		}, []string{"type", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vipd_lvs_check_duration_seconds", Help: "Duration of the last attempt of a checker round.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"type"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_lvs_reconcile_operations_total", Help: "IPVS operations carried out by the reconciler, by kind.",
		}, []string{"op"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vipd_lvs_reconcile_errors_total", Help: "Reconciles that failed (IPVS is read back and the plan retried).",
		}),
		recon: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vipd_lvs_reconcile_duration_seconds", Help: "Time to carry out one reconcile's IPVS operations.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		servers: map[[2]string][3]int{},
	}
	for k := OpAddService; k <= OpDelService; k++ {
		m.ops.WithLabelValues(k.String())
	}
	return m
}

func (m *metrics) check(r CheckResult) {
	res := "failed"
	if r.OK {
		res = "ok"
	}
	m.checks.WithLabelValues(r.Type, res).Inc()
	m.duration.WithLabelValues(r.Type).Observe(r.Duration.Seconds())
}

func (m *metrics) reconciled(done []Op, failed bool, d time.Duration) {
	for _, op := range done {
		m.ops.WithLabelValues(op.Kind.String()).Inc()
	}
	if failed {
		m.errors.Inc()
	}
	m.recon.Observe(d.Seconds())
}

func (m *metrics) observe(views []VirtualServerView) {
	s := make(map[[2]string][3]int, len(views))
	for _, v := range views {
		var c [3]int
		for _, r := range v.Servers {
			if r.Sorry {
				continue
			}
			c[0]++
			if r.Up {
				c[1]++
			}
		}
		if v.QuorumUp {
			c[2] = 1
		}
		// The protocol tells apart "10.0.0.1 53" over TCP and over UDP.
		s[[2]string{v.Name, strings.TrimPrefix(v.ID[len(v.Name):], "/")}] = c
	}
	m.mu.Lock()
	m.servers = s
	m.mu.Unlock()
}

// Collector returns the LVS metrics, read at scrape time.
func (m *Manager) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Manager }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rsDesc
	ch <- rsUpDesc
	ch <- quorumDesc
	ch <- availDesc
	mt := c.m.metrics
	mt.checks.Describe(ch)
	mt.duration.Describe(ch)
	mt.ops.Describe(ch)
	mt.errors.Describe(ch)
	mt.recon.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	mt := c.m.metrics
	mt.mu.Lock()
	for k, v := range mt.servers {
		ch <- prometheus.MustNewConstMetric(rsDesc, prometheus.GaugeValue, float64(v[0]), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(rsUpDesc, prometheus.GaugeValue, float64(v[1]), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(quorumDesc, prometheus.GaugeValue, float64(v[2]), k[0], k[1])
	}
	mt.mu.Unlock()
	avail := 0.0
	if c.m.availableNow.Load() {
		avail = 1
	}
	ch <- prometheus.MustNewConstMetric(availDesc, prometheus.GaugeValue, avail)
	mt.checks.Collect(ch)
	mt.duration.Collect(ch)
	mt.ops.Collect(ch)
	mt.errors.Collect(ch)
	mt.recon.Collect(ch)
}
