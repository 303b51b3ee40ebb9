package agent

import "github.com/prometheus/client_golang/prometheus"

// The outcomes of Reload (the result label of vipd_config_reloads_total).
const (
	reloadApplied  = "applied"
	reloadRejected = "rejected"
)

// newReloadCounter is vipd_config_reloads_total{result}: reloads of the
// configuration file (SIGHUP, vipd reload, systemctl reload), applied or
// rejected (the running configuration stayed).
func newReloadCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vipd_config_reloads_total",
		Help: "Reloads of the configuration file (SIGHUP, vipd reload): applied, or rejected with the running configuration unchanged.",
	}, []string{"result"})
	c.WithLabelValues(reloadApplied)
	c.WithLabelValues(reloadRejected)
	return c
}
