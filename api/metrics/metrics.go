// Package metrics serves vipd's Prometheus metrics (vipd run
// --metrics-listen HOST:PORT). A Collector follows the agent's state stream
// (api.Stream: a snapshot, then every change) and reads the agent's
// monotonic counters at scrape time; Serve exposes it on GET /metrics, with
// GET /healthz for liveness probes.
//
// Two sets of names are served. vipd's own (prefix vipd_) follow the
// Prometheus naming conventions. Next to them, the names and labels of the
// keepalived exporter keepalived users scrape today
// (github.com/mehdy/keepalived-exporter, formerly
// cafebazaar/keepalived-exporter; the names DESIGN.md 3.1 lists) are served
// where they describe the same thing, so existing dashboards and alerts keep
// working when keepalived is replaced by vipd.
//
// The per-instance label is vrrp_instance, not instance: a metric label
// named instance collides with the target label Prometheus adds to every
// scraped series and would be renamed exported_instance.
//
// vipd's metrics (L = vrrp_instance, interface, vrid), each with its
// keepalived exporter twin after the arrow, if it has one:
//
//	vipd_build_info{version,revision,goversion,node}               gauge, 1
//	vipd_vrrp_state{L,state}                                       gauge, 1 current state, 0 others (INIT BACKUP MASTER FAULT STOP)
//	                                                               -> keepalived_vrrp_state{iname,intf,vrid,ip_address}
//	vipd_vrrp_priority{L}                                          gauge, base priority
//	vipd_vrrp_effective_priority{L}                                gauge
//	vipd_vrrp_vip_held{L,address}                                  gauge, 1 while MASTER
//	vipd_vrrp_last_transition_timestamp_seconds{L}                 gauge
//	vipd_vrrp_transitions_total{L,from,to,cause_kind}              counter
//	vipd_vrrp_adverts_sent_total{L}                                counter -> keepalived_advertisements_sent_total{iname,intf,vrid}
//	vipd_vrrp_adverts_received_total{L}                            counter -> keepalived_advertisements_received_total{iname,intf,vrid}
//	vipd_vrrp_priority_zero_sent_total{L}                          counter -> keepalived_priority_zero_sent_total{iname,intf,vrid}
//	vipd_vrrp_priority_zero_received_total{L}                      counter -> keepalived_priority_zero_received_total{iname,intf,vrid}
//	vipd_vrrp_become_master_total{L}                               counter -> keepalived_become_master_total{iname,intf,vrid}
//	vipd_vrrp_release_master_total{L}                              counter -> keepalived_release_master_total{iname,intf,vrid}
//	vipd_vrrp_master_down_expiries_total{L}                        counter
//	vipd_vip_heals_total{L}                                        counter
//	vipd_vrrp_adverts_dropped_total{reason,interface,vrid}         counter -> per reason, below
//	vipd_vrrp_script_result{script}                                gauge, 1 ok, 0 failed -> keepalived_script_status{name}
//	vipd_vrrp_script_duration_seconds{script}                      histogram
//	vipd_notify_runs_total{vrrp_instance,sync_group,state}         counter
//	vipd_notify_failures_total{vrrp_instance,sync_group,state}     counter
//	vipd_notify_duration_seconds{vrrp_instance,sync_group,state}   histogram
//	keepalived_up                                                  gauge, 1 once the agent's snapshot arrived
//
// keepalived_vrrp_state has keepalived's numbers (INIT 0, BACKUP 1, MASTER
// 2, FAULT 3, and keepalived's internal STOP 98) and, as the exporter, one
// series per VIP with ip_address written as keepalived writes it (no /32 or
// /128 suffix for a host address), or one series with ip_address="" for an
// instance without VIPs. intf is the instance's interface (the exporter
// uses the VIP's dev, which is the same unless a VIP names another dev).
//
// Drop reasons onto the exporter's per-instance error counters (a drop is
// attributed to the instance with its interface and VRID; drops with VRID
// 0, or on an interface and VRID no instance runs, have no twin):
//
//	truncated, addr_count                       keepalived_packet_length_errors_total
//	bad_ttl                                     keepalived_ip_ttl_errors_total
//	bad_type                                    keepalived_invalid_type_received_total
//	interval_mismatch                           keepalived_advertisements_interval_errors_total
//	mcast_unicast_mismatch                      keepalived_address_list_errors_total
//	auth_type                                   keepalived_authentication_mismatch_total
//	auth_pass                                   keepalived_authentication_failure_total
//	(none: vipd counts an unknown auth type as auth_type)  keepalived_authentication_invalid_total, always 0
//
// Not served: the exporter's keepalived_script_state (whether a script is
// running at scrape time; vipd's stream reports finished runs),
// keepalived_vrrp_excluded_state, keepalived_gratuitous_arp_delay_total,
// keepalived_exporter_check_script_status and the keepalived_lvs_* metrics.
// METRICS.md holds the same list as a table.
package metrics

import (
	"context"
	"net/netip"
	"runtime"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/api"
)

// Options describe the node in vipd_build_info.
type Options struct {
	NodeName  string // the agent's node name (--node-name)
	Version   string // vipd's version
	Commit    string // the VCS revision vipd was built from
	GoVersion string // the Go release vipd was built with; runtime.Version() when empty
}

// States in the order the state gauge lists them.
var states = []string{"INIT", "BACKUP", "MASTER", "FAULT", "STOP"}

// keepalivedStates are keepalived's numbers for the states (keepalived's
// vrrp.h VRRP_STATE_*; STOP is internal to keepalived, 98).
var keepalivedStates = map[string]float64{"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3, "STOP": 98}

// keepalivedDrops maps a vipd drop reason onto the keepalived exporter's
// error counter counting the same kind of packet.
var keepalivedDrops = map[string]string{
	"truncated":              "keepalived_packet_length_errors_total",
	"addr_count":             "keepalived_packet_length_errors_total",
	"bad_ttl":                "keepalived_ip_ttl_errors_total",
	"bad_type":               "keepalived_invalid_type_received_total",
	"interval_mismatch":      "keepalived_advertisements_interval_errors_total",
	"mcast_unicast_mismatch": "keepalived_address_list_errors_total",
	"auth_type":              "keepalived_authentication_mismatch_total",
	"auth_pass":              "keepalived_authentication_failure_total",
}

// keepalivedDropMetrics are the exporter's error counters, with their HELP,
// served for every instance (at 0 until a drop maps onto them).
var keepalivedDropMetrics = []struct{ name, help string }{
	{"keepalived_packet_length_errors_total", "Adverts dropped for a length that does not match their header (keepalived exporter name; vipd reasons truncated, addr_count)."},
	{"keepalived_ip_ttl_errors_total", "Adverts dropped for an IPv4 TTL / IPv6 hop limit other than 255 (keepalived exporter name; vipd reason bad_ttl)."},
	{"keepalived_invalid_type_received_total", "Packets dropped for a VRRP type other than advertisement (keepalived exporter name; vipd reason bad_type)."},
	{"keepalived_advertisements_interval_errors_total", "Adverts dropped for an advert interval other than ours (keepalived exporter name; vipd reason interval_mismatch)."},
	{"keepalived_address_list_errors_total", "Adverts with an address list or a unicast/multicast mode other than ours (keepalived exporter name; vipd reason mcast_unicast_mismatch; vipd accepts an advert whose VIP list differs, and logs it, where keepalived drops and counts it)."},
	{"keepalived_authentication_invalid_total", "Adverts with an unknown auth type (keepalived exporter name); always 0: vipd counts those in keepalived_authentication_mismatch_total."},
	{"keepalived_authentication_mismatch_total", "Adverts dropped for an auth type other than ours (keepalived exporter name; vipd reason auth_type)."},
	{"keepalived_authentication_failure_total", "Adverts dropped for a wrong password (keepalived exporter name; vipd reason auth_pass)."},
}

// Collector follows the agent's state stream and is a prometheus.Collector
// for vipd's metrics. Create it with New, start Run, and serve it with
// Serve (or register it in a registry of your own).
type Collector struct {
	src  api.Stream
	opts Options

	mu      sync.Mutex
	synced  bool                          // the snapshot arrived
	seq     uint64                        // last event applied
	inst    map[string]api.InstanceStatus // by instance name
	scripts map[string]bool               // last result by vrrp_script name

	transitions *prometheus.CounterVec
	scriptDur   *prometheus.HistogramVec
	notifyRuns  *prometheus.CounterVec
	notifyFails *prometheus.CounterVec
	notifyDur   *prometheus.HistogramVec

	buildInfo, up                        *prometheus.Desc
	state, prio, effPrio, vipHeld, since *prometheus.Desc
	scriptResult                         *prometheus.Desc
	advSent, advRcvd, pzSent, pzRcvd     *prometheus.Desc
	becomeMaster, releaseMaster          *prometheus.Desc
	masterDown, heals, drops             *prometheus.Desc

	kaState, kaScript                        *prometheus.Desc
	kaAdvSent, kaAdvRcvd, kaPZSent, kaPZRcvd *prometheus.Desc
	kaBecome, kaRelease                      *prometheus.Desc
	kaDrops                                  map[string]*prometheus.Desc
}

// Label names.
var (
	instLabels = []string{"vrrp_instance", "interface", "vrid"}
	kaLabels   = []string{"iname", "intf", "vrid"}
)

func withLabels(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

// New returns a Collector for the agent's stream src. Call Run to follow it.
func New(src api.Stream, opts Options) *Collector {
	if opts.GoVersion == "" {
		opts.GoVersion = runtime.Version()
	}
	d := prometheus.NewDesc
	c := &Collector{
		src:     src,
		opts:    opts,
		inst:    map[string]api.InstanceStatus{},
		scripts: map[string]bool{},

		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_vrrp_transitions_total",
			Help: "State transitions of a VRRP instance, by old state, new state and kind of cause.",
		}, withLabels(instLabels, "from", "to", "cause_kind")),
		scriptDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipd_vrrp_script_duration_seconds",
			Help:    "Run time of a vrrp_script.",
			Buckets: prometheus.DefBuckets,
		}, []string{"script"}),
		notifyRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_notify_runs_total",
			Help: "Notify script runs, by VRRP instance (or sync group) and notified state.",
		}, []string{"vrrp_instance", "sync_group", "state"}),
		notifyFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_notify_failures_total",
			Help: "Notify script runs that did not exit 0 in time, by VRRP instance (or sync group) and notified state.",
		}, []string{"vrrp_instance", "sync_group", "state"}),
		notifyDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipd_notify_duration_seconds",
			Help:    "Run time of a notify script, by VRRP instance (or sync group) and notified state.",
			Buckets: prometheus.DefBuckets,
		}, []string{"vrrp_instance", "sync_group", "state"}),

		buildInfo: d("vipd_build_info", "vipd's version, VCS revision and Go version, and the node name; always 1.",
			[]string{"version", "revision", "goversion", "node"}, nil),
		up: d("keepalived_up", "1 once vipd's metrics follow the agent's state (keepalived exporter name: the VRRP daemon is up).", nil, nil),

		state:   d("vipd_vrrp_state", "State of a VRRP instance: 1 for the current state, 0 for the others.", withLabels(instLabels, "state"), nil),
		prio:    d("vipd_vrrp_priority", "Configured (base) priority of a VRRP instance.", instLabels, nil),
		effPrio: d("vipd_vrrp_effective_priority", "Effective priority of a VRRP instance (base priority with tracking weights and overrides), the one it advertises.", instLabels, nil),
		vipHeld: d("vipd_vrrp_vip_held", "A virtual address of a VRRP instance: 1 while the instance is MASTER and holds it, 0 otherwise.", withLabels(instLabels, "address"), nil),
		since:   d("vipd_vrrp_last_transition_timestamp_seconds", "Time of a VRRP instance's last state change, in seconds since the epoch.", instLabels, nil),

		scriptResult: d("vipd_vrrp_script_result", "Last result of a vrrp_script: 1 succeeded, 0 failed.", []string{"script"}, nil),

		advSent:       d("vipd_vrrp_adverts_sent_total", "VRRP adverts sent by an instance.", instLabels, nil),
		advRcvd:       d("vipd_vrrp_adverts_received_total", "Valid VRRP adverts received by an instance.", instLabels, nil),
		pzSent:        d("vipd_vrrp_priority_zero_sent_total", "Priority-0 adverts sent by an instance (handing over as master).", instLabels, nil),
		pzRcvd:        d("vipd_vrrp_priority_zero_received_total", "Priority-0 adverts received by an instance (the master handing over).", instLabels, nil),
		becomeMaster:  d("vipd_vrrp_become_master_total", "Entries of a VRRP instance into MASTER.", instLabels, nil),
		releaseMaster: d("vipd_vrrp_release_master_total", "Exits of a VRRP instance from MASTER.", instLabels, nil),
		masterDown:    d("vipd_vrrp_master_down_expiries_total", "Expiries of a VRRP instance's master down timer.", instLabels, nil),
		heals:         d("vipd_vip_heals_total", "Virtual addresses and routes of an instance put back, or removed on a BACKUP, by self-healing.", instLabels, nil),
		drops:         d("vipd_vrrp_adverts_dropped_total", "Received VRRP adverts dropped, by reason, interface and VRID (0: not known).", []string{"reason", "interface", "vrid"}, nil),

		kaState: d("keepalived_vrrp_state", "State of a VRRP instance in keepalived's numbers: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT, 98 STOP; one series per VIP (keepalived exporter name).",
			[]string{"iname", "intf", "vrid", "ip_address"}, nil),
		kaScript:  d("keepalived_script_status", "Last result of a vrrp_script: 1 GOOD, 0 BAD (keepalived exporter name).", []string{"name"}, nil),
		kaAdvSent: d("keepalived_advertisements_sent_total", "VRRP adverts sent (keepalived exporter name).", kaLabels, nil),
		kaAdvRcvd: d("keepalived_advertisements_received_total", "Valid VRRP adverts received (keepalived exporter name).", kaLabels, nil),
		kaPZSent:  d("keepalived_priority_zero_sent_total", "Priority-0 adverts sent (keepalived exporter name).", kaLabels, nil),
		kaPZRcvd:  d("keepalived_priority_zero_received_total", "Priority-0 adverts received (keepalived exporter name).", kaLabels, nil),
		kaBecome:  d("keepalived_become_master_total", "Entries into MASTER (keepalived exporter name).", kaLabels, nil),
		kaRelease: d("keepalived_release_master_total", "Exits from MASTER (keepalived exporter name).", kaLabels, nil),
		kaDrops:   map[string]*prometheus.Desc{},
	}
	for _, m := range keepalivedDropMetrics {
		c.kaDrops[m.name] = d(m.name, m.help, kaLabels, nil)
	}
	return c
}

// Run follows the agent's stream: it takes the snapshot, then applies every
// change, until ctx ends (or the stream closes its channel).
func (c *Collector) Run(ctx context.Context) {
	snap, events := c.src.Subscribe(ctx)
	c.applySnapshot(snap)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			c.apply(ev)
		}
	}
}

func (c *Collector) applySnapshot(s api.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.synced = true
	c.inst = map[string]api.InstanceStatus{}
	for _, in := range s.Instances {
		c.inst[in.Name] = in
		c.trackedScripts(in)
	}
}

// trackedScripts takes the current results of the scripts an instance
// tracks, so they are known before their next run.
func (c *Collector) trackedScripts(in api.InstanceStatus) {
	for _, t := range in.Tracked {
		if t.Kind == "script" {
			c.scripts[t.Name] = t.OK
		}
	}
}

func (c *Collector) apply(ev api.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq = ev.Seq
	switch ev.Kind {
	case api.EventInstance, api.EventTransition:
		if ev.Status == nil {
			break
		}
		st := *ev.Status
		if ev.Kind == api.EventTransition {
			kind := ev.CauseKind
			if kind == "" {
				kind = "unknown"
			}
			if m, err := c.transitions.GetMetricWithLabelValues(st.Name, st.Interface, strconv.Itoa(st.VRID), ev.From, ev.To, kind); err == nil {
				m.Inc()
			}
		}
		if old, ok := c.inst[st.Name]; ok && (old.Interface != st.Interface || old.VRID != st.VRID) {
			c.transitions.DeletePartialMatch(prometheus.Labels{"vrrp_instance": old.Name, "interface": old.Interface, "vrid": strconv.Itoa(old.VRID)})
		}
		c.inst[st.Name] = st
		c.trackedScripts(st)
	case api.EventInstanceRemoved:
		name := ev.Instance
		if ev.Status != nil {
			name = ev.Status.Name
		}
		old, ok := c.inst[name]
		if !ok {
			break
		}
		delete(c.inst, name)
		c.transitions.DeletePartialMatch(prometheus.Labels{"vrrp_instance": name})
		// Scripts no remaining instance tracks go with it.
		for _, t := range old.Tracked {
			if t.Kind == "script" && !c.tracked(t.Name) {
				delete(c.scripts, t.Name)
			}
		}
	case api.EventScript:
		c.scripts[ev.Name] = ev.OK
		if m, err := c.scriptDur.GetMetricWithLabelValues(ev.Name); err == nil {
			m.Observe(ev.Duration.Seconds())
		}
	case api.EventNotify:
		// (GetMetricWithLabelValues: a label value that is not valid UTF-8
		// loses the event rather than panicking the daemon.)
		l := []string{ev.Instance, ev.Group, ev.State}
		runs, err1 := c.notifyRuns.GetMetricWithLabelValues(l...)
		fails, err2 := c.notifyFails.GetMetricWithLabelValues(l...) // at 0 from the first run
		dur, err3 := c.notifyDur.GetMetricWithLabelValues(l...)
		if err1 != nil || err2 != nil || err3 != nil {
			break
		}
		runs.Inc()
		if !ev.OK {
			fails.Inc()
		}
		dur.Observe(ev.Duration.Seconds())
	}
}

// tracked reports whether a running instance tracks script name.
func (c *Collector) tracked(name string) bool {
	for _, in := range c.inst {
		for _, t := range in.Tracked {
			if t.Kind == "script" && t.Name == name {
				return true
			}
		}
	}
	return false
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo, c.up, c.state, c.prio, c.effPrio, c.vipHeld, c.since, c.scriptResult,
		c.advSent, c.advRcvd, c.pzSent, c.pzRcvd, c.becomeMaster, c.releaseMaster, c.masterDown, c.heals, c.drops,
		c.kaState, c.kaScript, c.kaAdvSent, c.kaAdvRcvd, c.kaPZSent, c.kaPZRcvd, c.kaBecome, c.kaRelease,
	} {
		ch <- d
	}
	for _, m := range keepalivedDropMetrics {
		ch <- c.kaDrops[m.name]
	}
	c.transitions.Describe(ch)
	c.scriptDur.Describe(ch)
	c.notifyRuns.Describe(ch)
	c.notifyFails.Describe(ch)
	c.notifyDur.Describe(ch)
}

// Collect implements prometheus.Collector: the state followed from the
// stream, and the agent's counters read now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	// NewConstMetric, not MustNewConstMetric: a label value that is not
	// valid UTF-8 (an odd interface or script name) must fail that series'
	// scrape, not panic the daemon.
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) { emit(d, prometheus.GaugeValue, v, labels...) }
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		emit(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.buildInfo, 1, c.opts.Version, c.opts.Commit, c.opts.GoVersion, c.opts.NodeName)

	c.mu.Lock()
	synced := c.synced
	insts := make([]api.InstanceStatus, 0, len(c.inst))
	for _, in := range c.inst {
		insts = append(insts, in)
	}
	scripts := make(map[string]bool, len(c.scripts))
	for n, ok := range c.scripts {
		scripts[n] = ok
	}
	c.mu.Unlock()

	gauge(c.up, b2f(synced))
	for _, in := range insts {
		vrid := strconv.Itoa(in.VRID)
		for _, s := range states {
			gauge(c.state, b2f(in.State == s), in.Name, in.Interface, vrid, s)
		}
		gauge(c.prio, float64(in.Priority), in.Name, in.Interface, vrid)
		gauge(c.effPrio, float64(in.EffectivePriority), in.Name, in.Interface, vrid)
		if !in.Since.IsZero() {
			gauge(c.since, float64(in.Since.UnixNano())/1e9, in.Name, in.Interface, vrid)
		}
		seen := map[string]bool{}
		for _, v := range in.VIPs {
			if seen[v] {
				continue
			}
			seen[v] = true
			gauge(c.vipHeld, b2f(in.State == "MASTER"), in.Name, in.Interface, vrid, v)
		}
		if n, ok := keepalivedStates[in.State]; ok {
			seenKA := map[string]bool{}
			for _, v := range in.VIPs {
				a := keepalivedAddr(v)
				if seenKA[a] {
					continue
				}
				seenKA[a] = true
				gauge(c.kaState, n, in.Name, in.Interface, vrid, a)
			}
			if len(in.VIPs) == 0 {
				gauge(c.kaState, n, in.Name, in.Interface, vrid, "")
			}
		}
	}
	for name, ok := range scripts {
		gauge(c.scriptResult, b2f(ok), name)
		gauge(c.kaScript, b2f(ok), name)
	}

	cnt := c.src.Counters()
	type ifVRID struct {
		intf string
		vrid int
	}
	byIfVRID := map[ifVRID]string{} // the instance a drop is attributed to
	kaDrops := map[string]map[string]uint64{}
	for _, ic := range cnt.Instances {
		// Of two instances on one interface and VRID (IPv4 and IPv6), the
		// first by name.
		k := ifVRID{ic.Interface, ic.VRID}
		if cur, ok := byIfVRID[k]; !ok || ic.Name < cur {
			byIfVRID[k] = ic.Name
		}
	}
	for _, d := range cnt.Drops {
		vrid := strconv.Itoa(d.VRID)
		counter(c.drops, d.Count, d.Reason, d.Interface, vrid)
		m, ok := keepalivedDrops[d.Reason]
		if !ok || d.VRID == 0 {
			continue
		}
		name, ok := byIfVRID[ifVRID{d.Interface, d.VRID}]
		if !ok {
			continue
		}
		if kaDrops[name] == nil {
			kaDrops[name] = map[string]uint64{}
		}
		kaDrops[name][m] += d.Count
	}
	for _, ic := range cnt.Instances {
		l := []string{ic.Name, ic.Interface, strconv.Itoa(ic.VRID)}
		counter(c.advSent, ic.AdvertsSent, l...)
		counter(c.advRcvd, ic.AdvertsReceived, l...)
		counter(c.pzSent, ic.PriorityZeroSent, l...)
		counter(c.pzRcvd, ic.PriorityZeroReceived, l...)
		counter(c.becomeMaster, ic.BecomeMaster, l...)
		counter(c.releaseMaster, ic.ReleaseMaster, l...)
		counter(c.masterDown, ic.MasterDownExpiries, l...)
		counter(c.heals, ic.VIPHeals, l...)

		counter(c.kaAdvSent, ic.AdvertsSent, l...)
		counter(c.kaAdvRcvd, ic.AdvertsReceived, l...)
		counter(c.kaPZSent, ic.PriorityZeroSent, l...)
		counter(c.kaPZRcvd, ic.PriorityZeroReceived, l...)
		counter(c.kaBecome, ic.BecomeMaster, l...)
		counter(c.kaRelease, ic.ReleaseMaster, l...)
		for _, m := range keepalivedDropMetrics {
			counter(c.kaDrops[m.name], kaDrops[ic.Name][m.name], l...)
		}
	}

	c.transitions.Collect(ch)
	c.scriptDur.Collect(ch)
	c.notifyRuns.Collect(ch)
	c.notifyFails.Collect(ch)
	c.notifyDur.Collect(ch)
}

// keepalivedAddr writes a VIP as keepalived does: the prefix length only
// when it is not a host address's.
func keepalivedAddr(v string) string {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return v
	}
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
