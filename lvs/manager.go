package lvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
)

// Defaults of the manager's timings.
const (
	// DefaultResync is how often the table is read back from IPVS (a
	// service changed or deleted behind vipd's back is put back).
	DefaultResync = 10 * time.Second
	// retryMin and retryMax bound the back-off after a failed operation.
	retryMin = 500 * time.Millisecond
	retryMax = 30 * time.Second
)

// CheckResult is the outcome of one checker's round, as the manager needs
// it (lvs/check reports it; see checks.go).
type CheckResult struct {
	ID       string // the checker: RealServerID + "#" + index
	Type     string // TCP_CHECK, ...
	Target   string // what was probed, "10.0.0.2:80"
	Up       bool   // the checker's state after the round
	OK       bool   // the round's last attempt succeeded
	Cause    string // why the last attempt failed, or what it saw
	Weight   *int   // misc_dynamic weight
	At       time.Time
	Duration time.Duration
}

// Checks is what the manager needs from the checkers' scheduler: the set of
// checks to run, replaced whole at every configuration (unchanged ones keep
// their state), and its loop.
type Checks interface {
	Set(specs []CheckSpec)
	Run(ctx context.Context)
}

// CheckSpec is one checker to run.
type CheckSpec struct {
	ID        string
	Checker   *config.Checker
	StartDown bool   // alpha: the checker starts DOWN
	VirtHost  string // the virtual server's virtualhost (HTTP_GET/SSL_GET fallback)
}

// Options configure a Manager.
type Options struct {
	// Backend is IPVS; nil or an unavailable one: desired state is computed
	// and shown, nothing installed (Reason says why).
	Backend Backend
	// Reason is why there is no Backend ("" when there is one).
	Reason string
	Clock  clock.Clock
	Log    *slog.Logger
	// Checks runs the checkers; the manager feeds it from the configuration
	// and receives results through Result.
	Checks Checks
	// Resync is the period of reading IPVS back (DefaultResync when 0).
	Resync time.Duration
	// IsLocal reports whether an address is on this node (ha_suspend).
	IsLocal func(addr string) bool
	// RunScript runs notify_up/notify_down/quorum_up/quorum_down commands
	// (in the background; it must not block).
	RunScript func(keyword, command string)
}

// Manager keeps IPVS in step with the virtual servers and their checkers'
// results. One goroutine (Run) owns its state; the other methods send it
// work or read the last published Status.
type Manager struct {
	o        Options
	work     chan func()
	kick     chan struct{}
	resKick  chan struct{}
	addrKick chan struct{} // AddressesChanged
	resMu    sync.Mutex
	results  []CheckResult
	status   atomic.Pointer[Status]
	running  atomic.Bool // Run is running: Status asks it for a fresh status
	// availableNow mirrors available for the metrics, read at scrape time.
	availableNow atomic.Bool
	metrics      *metrics

	// Owned by Run.
	servers   []*config.VirtualServer
	groups    []*config.VirtualServerGroup
	checks    map[string]CheckResult // by checker ID
	checkSpec map[string][]string    // real server ID -> its checker IDs
	alpha     map[string]bool        // real server IDs whose checkers start down
	firstDown map[string]int         // alpha real servers: checkers whose first result (this round) failed
	rsOf      map[string]string      // checker ID -> real server ID
	quorum    map[string]bool
	suspended map[string]bool
	views     map[string]RealServerView // the previous computation, by real server ID
	owned     map[ServiceKey]bool
	cache     *Memory // what vipd believes IPVS holds
	desired   []Pool
	vsViews   []VirtualServerView
	available bool
	reason    string
	resyncDue bool
	failures  int       // reads of IPVS that failed in a row
	nextTry   time.Time // the next read after failures
	// svcFails: services an operation of which IPVS refused, retried on
	// their own back-off while the others go on.
	svcFails map[ServiceKey]*svcFail
	recon    ReconcileStatus
	applied  bool
	dirty    bool // the published status is older than the state
	// seeded: IPVS was read before the first plan; pending are the real
	// servers (by ID) that IPVS did not hold then, which join only after
	// their first successful check, so a restart adds back no server a
	// previous run had taken out.
	seeded  bool
	pending map[string]bool
	// seededUp are the real servers IPVS held at the first plan: up until
	// their first result, whatever alpha says, so a restart empties no pool.
	seededUp map[string]bool
}

// New returns a Manager; Run starts it.
func New(o Options) *Manager {
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	m := &Manager{
		o:         o,
		work:      make(chan func(), 64),
		kick:      make(chan struct{}, 1),
		resKick:   make(chan struct{}, 1),
		addrKick:  make(chan struct{}, 1),
		metrics:   newMetrics(),
		checks:    map[string]CheckResult{},
		checkSpec: map[string][]string{},
		alpha:     map[string]bool{},
		firstDown: map[string]int{},
		pending:   map[string]bool{},
		seededUp:  map[string]bool{},
		rsOf:      map[string]string{},
		quorum:    map[string]bool{},
		suspended: map[string]bool{},
		views:     map[string]RealServerView{},
		owned:     map[ServiceKey]bool{},
		cache:     NewMemory(),
		available: o.Backend != nil,
		reason:    o.Reason,
		resyncDue: true,
	}
	m.status.Store(&Status{Available: m.available, Reason: m.reason})
	m.availableNow.Store(m.available)
	return m
}

// Apply gives the manager a new configuration: the virtual servers and
// groups of a model. Only what differs changes in IPVS.
func (m *Manager) Apply(servers []*config.VirtualServer, groups []*config.VirtualServerGroup) {
	m.send(func() {
		m.removed(servers, false)
		m.servers, m.groups = servers, groups
		m.applied = true
		m.setChecks("configuration")
		m.reconcile("configuration")
	})
}

// causeHealth is the reconcile cause of check results.
const causeHealth = "health check"

// AddressesChanged tells the manager that this node's addresses changed
// (a VIP added or removed): virtual servers with ha_suspend follow at once.
// It never blocks.
func (m *Manager) AddressesChanged() {
	select {
	case m.addrKick <- struct{}{}:
	default:
	}
}

// hasHASuspend reports whether a virtual server of the configuration has
// ha_suspend.
func (m *Manager) hasHASuspend() bool {
	for _, vs := range m.servers {
		if vs != nil && vs.HASuspend {
			return true
		}
	}
	return false
}

// Result delivers a checker's result (called by the checks' scheduler).
// It never blocks: results queue until Run takes them, all at once.
func (m *Manager) Result(r CheckResult) {
	m.metrics.check(r)
	m.resMu.Lock()
	m.results = append(m.results, r)
	m.resMu.Unlock()
	select {
	case m.resKick <- struct{}{}:
	default:
	}
}

// takeResults applies the queued results and reconciles once.
func (m *Manager) takeResults() {
	m.resMu.Lock()
	rs := m.results
	m.results = nil
	m.resMu.Unlock()
	n := 0
	for _, r := range rs {
		rsID, ok := m.rsOf[r.ID]
		if !ok {
			continue // a checker removed by a configuration since
		}
		if _, had := m.checks[r.ID]; !had && !r.Up && m.alpha[rsID] {
			m.firstDown[rsID]++ // keepalived notifies once per checker's first failure
		}
		m.checks[r.ID] = r
		delete(m.pending, rsID)
		delete(m.seededUp, rsID)
		n++
	}
	if n > 0 {
		m.reconcile(causeHealth)
	}
}

func (m *Manager) send(f func()) { m.work <- f }

// Status returns the last published state (for vipd lvs).
//
// The status is built on demand (building it for 10,000 real servers costs
// more than a reconcile): while Run runs, Status asks it for a fresh one
// when anything changed since the last; otherwise it returns the last.
func (m *Manager) Status() Status {
	if m.running.Load() {
		done := make(chan struct{})
		select {
		case m.work <- func() { m.publishIfDirty(); close(done) }:
			select {
			case <-done:
			case <-time.After(statusWait):
			}
		case <-time.After(statusWait):
		}
	}
	return *m.status.Load()
}

// statusWait bounds how long Status waits for Run (busy applying a large
// configuration, say) before it answers with the last status.
const statusWait = 2 * time.Second

func (m *Manager) publishIfDirty() {
	if m.dirty {
		m.publish()
		m.dirty = false
	}
}

// Run owns the manager's state until ctx ends. It does not remove vipd's
// services from IPVS on the way out: Release does, for a graceful stop.
func (m *Manager) Run(ctx context.Context) {
	m.running.Store(true)
	defer func() {
		m.publishIfDirty()
		m.running.Store(false)
	}()
	if m.o.Checks != nil {
		go m.o.Checks.Run(ctx)
	}
	t := m.o.Clock.NewTimer(m.o.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-m.work:
			f()
		case <-m.resKick:
			m.takeResults()
		case <-m.addrKick:
			// ha_suspend follows the address at once, not at the next
			// resync (reconcile re-reads which virtual servers are local,
			// and hands the checks over only if that changed).
			if m.applied && m.hasHASuspend() {
				m.reconcile("address change")
			}
		case <-m.kick:
			if !t.Stop() {
				select {
				case <-t.C():
				default:
				}
			}
			t.Reset(m.wait())
		case <-t.C():
			m.resyncDue = true
			if m.applied {
				m.reconcile("resync")
			}
			t.Reset(m.wait())
		}
	}
}

// svcFail is a service whose operation IPVS refused.
type svcFail struct {
	n    int             // failures in a row
	next time.Time       // its next try
	ops  map[string]bool // the refused operations (ipvsadm's words), held back until next
	err  string          // the last refusal
}

// retryAfter is the back-off after n failures in a row.
func retryAfter(n int) time.Duration {
	d := retryMin << min(n-1, 6)
	if d > retryMax {
		d = retryMax
	}
	return d
}

// wait is the time to the next resync or retry.
func (m *Manager) wait() time.Duration {
	now := m.o.Clock.Now()
	if m.failures > 0 {
		if d := m.nextTry.Sub(now); d > 0 {
			return d
		}
		return retryMin
	}
	w := m.o.Resync
	for _, f := range m.svcFails {
		d := f.next.Sub(now)
		if d < retryMin {
			d = retryMin
		}
		w = min(w, d)
	}
	return w
}

// Release removes every service vipd owns from IPVS (a graceful stop, like
// keepalived's checker process on SIGTERM), on the caller's goroutine: call
// it only after Run has returned (it reads Run's state).
func (m *Manager) Release() error {
	m.removed(nil, true)
	if !m.available || m.o.Backend == nil {
		return nil
	}
	actual, err := m.o.Backend.Pools()
	if err != nil {
		return err
	}
	ops := Plan(nil, actual, m.owned)
	done, err := Execute(m.o.Backend, ops)
	m.o.Log.Info("lvs: released vipd's virtual services from IPVS", "services", len(done))
	return err
}

// setChecks hands the scheduler the checkers of the configuration, minus
// those of suspended virtual servers.
func (m *Manager) setChecks(cause string) {
	m.updateSuspended(cause)
	clear(m.checkSpec)
	clear(m.alpha)
	clear(m.rsOf)
	var specs []CheckSpec
	keep := map[string]bool{}
	for _, vs := range m.servers {
		if vs == nil {
			continue
		}
		vsID := VirtualServerID(vs)
		for _, rs := range vs.RealServers {
			if rs == nil {
				continue
			}
			rsID := RealServerID(vsID, rs)
			m.alpha[rsID] = vs.Alpha
			for i, c := range rs.Checkers {
				if c == nil {
					continue
				}
				id := checkID(rsID, i, c.Type)
				if _, dup := m.rsOf[id]; dup {
					// The same real server twice (or the same virtual
					// server twice): its checkers run once.
					continue
				}
				m.rsOf[id] = rsID
				m.checkSpec[rsID] = append(m.checkSpec[rsID], id)
				keep[id] = true
				if m.suspended[vsID] {
					continue
				}
				specs = append(specs, CheckSpec{ID: id, Checker: c, StartDown: vs.Alpha, VirtHost: vs.VirtualHost})
			}
		}
	}
	for id := range m.checks {
		if !keep[id] {
			delete(m.checks, id)
		}
	}
	if m.o.Checks != nil {
		m.o.Checks.Set(specs)
	}
}

func checkID(rsID string, i int, typ string) string {
	return rsID + "#" + strconv.Itoa(i) + "/" + typ
}

// updateSuspended evaluates ha_suspend: a virtual server whose address is
// not on this node is suspended. It reports whether anything changed.
func (m *Manager) updateSuspended(cause string) bool {
	changed := false
	seen := map[string]bool{}
	for _, vs := range m.servers {
		if vs == nil || !vs.HASuspend || !vs.Address.IsValid() || m.o.IsLocal == nil {
			continue
		}
		id := VirtualServerID(vs)
		seen[id] = true
		s := !m.o.IsLocal(vs.Address.Unmap().String())
		if m.suspended[id] != s {
			changed = true
			if s {
				m.o.Log.Info("lvs: virtual server suspended: its address is not on this node (ha_suspend)", "virtual_server", vs.Name, "cause", cause)
			} else {
				m.o.Log.Info("lvs: virtual server resumed: its address is on this node (ha_suspend)", "virtual_server", vs.Name, "cause", cause)
			}
		}
		m.suspended[id] = s
	}
	for id := range m.suspended {
		if !seen[id] {
			delete(m.suspended, id)
			changed = true
		}
	}
	return changed
}

// health is Desired's view of the checkers: a real server is up when all
// its checkers are; a misc_dynamic weight comes from its checker. A
// checker with no result yet counts as its start state.
func (m *Manager) health(rsID string) (Health, bool) {
	ids := m.checkSpec[rsID]
	if len(ids) == 0 {
		return Health{}, false
	}
	// Before any result of its checkers (takeResults clears both marks):
	// a real server IPVS lacked at the first plan waits, one it held stays.
	if m.pending[rsID] {
		return Health{}, true
	}
	h := Health{Up: true}
	for _, id := range ids {
		r, ok := m.checks[id]
		if !ok {
			if m.alpha[rsID] && !m.seededUp[rsID] {
				h.Up = false
			}
			continue
		}
		if !r.Up {
			h.Up = false
		}
		if r.Weight != nil {
			h.Weight = r.Weight
		}
	}
	return h, true
}

// reconcile recomputes the desired table and brings IPVS to it.
func (m *Manager) reconcile(cause string) {
	if m.updateSuspended(cause) {
		m.setChecks(cause)
	}
	if !m.seeded && m.available && m.o.Backend != nil {
		m.seed()
	}
	pools, views := Desired(Input{Servers: m.servers, Groups: m.groups, Health: m.health, QuorumUp: m.quorum, Suspended: m.suspended})
	m.transitions(views, cause)
	m.desired, m.vsViews = pools, views
	if m.available && m.o.Backend != nil {
		m.sync()
	}
	m.metrics.observe(m.vsViews)
	m.availableNow.Store(m.available)
	m.dirty = true
}

// seed reads IPVS before the first plan and adopts it as found: a real
// server with checkers that an existing service of the configuration does
// not hold waits for its first check (pending) instead of being added back
// at once, as it would be at a cold start.
func (m *Manager) seed() {
	actual, err := m.o.Backend.Pools()
	if err != nil {
		return // sync reports it and retries
	}
	m.cache = NewMemory(actual...)
	m.resyncDue = false
	m.seeded = true
	have := map[ServiceKey]*Pool{}
	for i := range actual {
		have[actual[i].Key] = &actual[i]
	}
	_, views := Desired(Input{Servers: m.servers, Groups: m.groups})
	n := 0
	for _, v := range views {
		for _, r := range v.Servers {
			if !r.Checked || r.Sorry {
				continue
			}
			for _, k := range v.Keys {
				p := have[k]
				if p == nil {
					continue // a new service: a cold start
				}
				i := slices.IndexFunc(p.Dests, func(d Dest) bool { return d.Key() == DestKey{r.Addr, DestPort(r.Port, k)} })
				// Absent, or at weight 0 when its weight is not (a failed
				// server kept by inhibit_on_failure): it waits.
				if i < 0 || (p.Dests[i].Weight == 0 && r.Weight > 0) {
					m.pending[r.ID] = true
					delete(m.seededUp, r.ID)
					n++
					break
				}
				m.seededUp[r.ID] = true
			}
		}
	}
	if n > 0 {
		m.o.Log.Info("lvs: IPVS adopted as found; real servers it does not hold wait for their first check", "waiting", n)
	}
}

// transitions logs and notifies the real servers and quorums that changed.
func (m *Manager) transitions(views []VirtualServerView, cause string) {
	seen := map[string]bool{}
	quorum := map[string]bool{}
	vsByID := map[string]*config.VirtualServer{}
	for _, vs := range m.servers {
		if vs != nil {
			vsByID[VirtualServerID(vs)] = vs
		}
	}
	for _, v := range views {
		vs := vsByID[v.ID]
		quorum[v.ID] = v.QuorumUp
		// Real servers first, then the quorum they moved, as keepalived's
		// perform_svr_state: notify_up/notify_down, then quorum_up/down.
		var moved []string // this round's real server changes: the quorum's cause
		for _, r := range v.Servers {
			seen[r.ID] = true
			prev, ok := m.views[r.ID]
			m.views[r.ID] = r
			if !ok || r.Sorry {
				continue
			}
			rs := realServerOf(vs, r.ID)
			switch {
			case prev.Up != r.Up && r.Up:
				why := m.upCause(r.ID, cause)
				m.o.Log.Info("lvs: real server up", "virtual_server", v.Name, "real_server", addrPort(r), "weight", r.Effective, "cause", why)
				moved = append(moved, addrPort(r)+" up ("+why+")")
				if rs != nil {
					m.script("notify_up", rs.NotifyUp)
				}
			case prev.Up != r.Up || !r.Up && m.firstDown[r.ID] > 0:
				// A change to down, or an alpha server's first failed check
				// (down from the start, it stays down): keepalived runs
				// notify_down for both.
				why := m.downCause(r.ID)
				msg := "lvs: real server down"
				if prev.Up == r.Up {
					msg = "lvs: real server down at its first check (alpha)"
				}
				m.o.Log.Warn(msg, "virtual_server", v.Name, "real_server", addrPort(r), "cause", why, "inhibit", r.InPool)
				if prev.Up != r.Up {
					moved = append(moved, addrPort(r)+" down ("+why+")")
				}
				runs := 1
				if prev.Up == r.Up {
					runs = m.firstDown[r.ID]
				}
				for i := 0; rs != nil && i < runs; i++ {
					m.script("notify_down", rs.NotifyDown)
				}
			case r.Up && prev.Effective != r.Effective:
				why := cause // a reload or an etcd edit of the weight
				if cause == causeHealth {
					why = m.upCause(r.ID, cause) // misc_dynamic
				}
				m.o.Log.Info("lvs: real server weight changed", "virtual_server", v.Name, "real_server", addrPort(r),
					"from", prev.Effective, "to", r.Effective, "cause", why)
				moved = append(moved, fmt.Sprintf("%s weight %d -> %d (%s)", addrPort(r), prev.Effective, r.Effective, why))
			}
		}
		qcause := cause
		if len(moved) > 0 {
			qcause = strings.Join(moved, ", ")
		}
		prev, ok := m.quorum[v.ID]
		switch {
		case ok && prev != v.QuorumUp && v.QuorumUp:
			m.o.Log.Info("lvs: quorum gained", "virtual_server", v.Name, "alive_weight", v.Alive, "quorum", v.Quorum, "sorry_server", false, "cause", qcause)
			m.script("quorum_up", vs.QuorumUp)
		case ok && prev != v.QuorumUp:
			m.o.Log.Warn("lvs: quorum lost", "virtual_server", v.Name, "alive_weight", v.Alive, "quorum", v.Quorum, "sorry_server", v.SorryActive, "cause", qcause)
			m.script("quorum_down", vs.QuorumDown)
		case !ok && !v.QuorumUp && v.SorryActive:
			// keepalived's "Starting with quorum down": a new virtual server
			// whose sorry server goes in at once.
			m.o.Log.Warn("lvs: starting with quorum down: the sorry server serves", "virtual_server", v.Name, "alive_weight", v.Alive, "quorum", v.Quorum, "cause", qcause)
			m.script("quorum_down", vs.QuorumDown)
		}
	}
	for id := range m.views {
		if !seen[id] {
			delete(m.views, id)
		}
	}
	clear(m.firstDown)
	m.quorum = quorum
}

// upCause is what the latest successful check of a real server saw, or
// fallback (what made the manager recompute: a reload, say).
func (m *Manager) upCause(rsID, fallback string) string {
	var best CheckResult
	for _, id := range m.checkSpec[rsID] {
		r, ok := m.checks[id]
		if !ok || !r.Up {
			continue
		}
		if best.Type == "" || r.At.After(best.At) {
			best = r
		}
	}
	if best.Type == "" {
		return fallback
	}
	if best.Cause == "" {
		return best.Type + " " + best.Target + ": up"
	}
	return best.Type + " " + best.Target + ": " + best.Cause
}

// removed runs the down scripts of the virtual servers of the running
// configuration that are not in next, as keepalived's clear_service_vs
// does: notify_down of each live real server, then quorum_down if the
// quorum was up. On a stop (stopping) only virtual servers with omega do.
func (m *Manager) removed(next []*config.VirtualServer, stopping bool) {
	keep := map[string]bool{}
	for _, vs := range next {
		if vs != nil {
			keep[VirtualServerID(vs)] = true
		}
	}
	nextRS := map[string]bool{}
	for _, vs := range next {
		if vs == nil {
			continue
		}
		for _, rs := range vs.RealServers {
			if rs != nil {
				nextRS[RealServerID(VirtualServerID(vs), rs)] = true
			}
		}
	}
	for _, vs := range m.servers {
		if vs == nil || (stopping && !vs.Omega) {
			continue
		}
		id := VirtualServerID(vs)
		if keep[id] {
			// A kept virtual server: its real servers the next
			// configuration drops (keepalived's clear_diff_rs).
			for _, rs := range vs.RealServers {
				if rs == nil || nextRS[RealServerID(id, rs)] {
					continue
				}
				if r, ok := m.views[RealServerID(id, rs)]; ok && r.Up {
					m.script("notify_down", rs.NotifyDown)
				}
			}
			continue
		}
		for _, rs := range vs.RealServers {
			if rs == nil {
				continue
			}
			if r, ok := m.views[RealServerID(id, rs)]; ok && r.Up {
				m.script("notify_down", rs.NotifyDown)
			}
		}
		if m.quorum[id] {
			m.o.Log.Info("lvs: virtual server removed: quorum_down", "virtual_server", vs.Name, "stopping", stopping)
			m.script("quorum_down", vs.QuorumDown)
		}
	}
}

func (m *Manager) downCause(rsID string) string {
	for _, id := range m.checkSpec[rsID] {
		if r, ok := m.checks[id]; ok && !r.Up {
			return r.Type + " " + r.Target + ": " + r.Cause
		}
	}
	return "alpha: checkers start down"
}

func (m *Manager) script(keyword, cmd string) {
	if cmd != "" && m.o.RunScript != nil {
		m.o.RunScript(keyword, cmd)
	}
}

func realServerOf(vs *config.VirtualServer, id string) *config.RealServer {
	if vs == nil {
		return nil
	}
	vsID := VirtualServerID(vs)
	for _, rs := range vs.RealServers {
		if rs != nil && RealServerID(vsID, rs) == id {
			return rs
		}
	}
	return nil
}

// sync brings IPVS to the desired table: from the cache normally, after
// reading IPVS back when a resync is due or the last operation failed.
func (m *Manager) sync() {
	now := m.o.Clock.Now()
	if m.failures > 0 && now.Before(m.nextTry) {
		return // backing off; the timer brings us back
	}
	if m.resyncDue || m.failures > 0 {
		actual, err := m.o.Backend.Pools()
		if err != nil {
			m.fail(err, now)
			return
		}
		m.cache = NewMemory(actual...)
		m.resyncDue = false
		if m.failures > 0 {
			m.o.Log.Info("lvs: IPVS read again after failures", "failures", m.failures)
			m.failures = 0
		}
	}
	actual, _ := m.cache.Pools()
	ops, held := m.skipBackingOff(Plan(m.desired, actual, m.owned), now)
	if len(ops) == 0 {
		m.succeed(now, 0)
		return
	}
	start := time.Now()
	done, err := Execute(m.o.Backend, ops)
	m.metrics.reconciled(done, err != nil, time.Since(start))
	_, _ = Execute(m.cache, done)
	for _, op := range done {
		switch op.Kind {
		case OpAddService:
			m.owned[op.Service.Key] = true
		case OpDelService:
			delete(m.owned, op.Service.Key)
		}
		m.o.Log.Info("lvs: ipvs " + op.String())
	}
	for _, p := range m.desired {
		m.owned[p.Key] = true // adopted services are vipd's from now on
	}
	if errors.Is(err, ErrUnavailable) {
		m.fail(err, now)
		return
	}
	m.serviceOutcomes(ops, held, err, now)
	if err != nil {
		m.recon.Errors++
		m.recon.LastError = m.refusals()
		m.kickTimer()
		return
	}
	m.succeed(now, len(done))
}

// skipBackingOff holds back, until their retry is due, the operations IPVS
// refused (and the destinations of a service whose creation it refused);
// every other operation goes through, so a service with one refused
// operation still follows health. It returns the services it held
// something back for, and forgets the failures of services with nothing
// left to do.
func (m *Manager) skipBackingOff(ops []Op, now time.Time) ([]Op, map[ServiceKey]bool) {
	if len(m.svcFails) == 0 {
		return ops, nil
	}
	planned := make(map[ServiceKey]bool, len(m.svcFails))
	held := map[ServiceKey]bool{}
	out := ops[:0:0]
	for _, op := range ops {
		k := op.Service.Key
		planned[k] = true
		f := m.svcFails[k]
		if f != nil && now.Before(f.next) {
			if f.ops[op.String()] {
				held[k] = true
				continue
			}
			if op.Kind == OpAddDest && f.ops[Op{Kind: OpAddService, Service: op.Service}.String()] {
				held[k] = true // its service is not there: held back with it
				continue
			}
		}
		out = append(out, op)
	}
	for k := range m.svcFails {
		if !planned[k] {
			m.o.Log.Info("lvs: a service IPVS refused needs nothing any more", "service", k.String())
			delete(m.svcFails, k)
		}
	}
	return out, held
}

// serviceOutcomes records, per service of ops, the operations IPVS
// refused: they back off together (logged at the first failure), and a
// service all of whose operations went through (none held back) is logged
// as recovered.
func (m *Manager) serviceOutcomes(ops []Op, held map[ServiceKey]bool, err error, now time.Time) {
	refused := map[ServiceKey][]*OpError{}
	for _, e := range unjoin(err) {
		var oe *OpError
		if errors.As(e, &oe) {
			refused[oe.Op.Service.Key] = append(refused[oe.Op.Service.Key], oe)
		}
	}
	seen := map[ServiceKey]bool{}
	for _, op := range ops {
		k := op.Service.Key
		if seen[k] {
			continue
		}
		seen[k] = true
		f := m.svcFails[k]
		if es := refused[k]; len(es) > 0 {
			if f == nil {
				f = &svcFail{ops: map[string]bool{}}
				if m.svcFails == nil {
					m.svcFails = map[ServiceKey]*svcFail{}
				}
				m.svcFails[k] = f
			}
			for _, e := range es {
				f.ops[e.Op.String()] = true
			}
			f.err = es[len(es)-1].Error()
			f.n++
			d := retryAfter(f.n)
			f.next = now.Add(d)
			if f.n == 1 {
				m.o.Log.Error("lvs: IPVS refused an operation: it is retried with back-off, the service's other operations and the other services go on", "err", es[0], "refused", len(es), "retry_in", d)
			} else {
				m.o.Log.Debug("lvs: IPVS refused an operation again", "err", es[0], "failures", f.n, "retry_in", d)
			}
			continue
		}
		if f != nil && !held[k] {
			m.o.Log.Info("lvs: IPVS took the service's operations again after failures", "service", k.String(), "failures", f.n)
			delete(m.svcFails, k)
		}
	}
}

// refusals is the status's last error while services are refused: their
// last refusals, in service order.
func (m *Manager) refusals() string {
	keys := make([]ServiceKey, 0, len(m.svcFails))
	for k := range m.svcFails {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKey)
	errs := make([]string, len(keys))
	for i, k := range keys {
		errs[i] = m.svcFails[k].err
	}
	return strings.Join(errs, "; ")
}

// unjoin lists the errors of an errors.Join (err alone otherwise).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (m *Manager) fail(err error, now time.Time) {
	if errors.Is(err, ErrUnavailable) {
		clear(m.svcFails) // nothing is tried any more
		m.available = false
		m.reason = err.Error()
		m.o.Log.Error("lvs: IPVS not available in this kernel: virtual servers are checked and shown (vipd lvs), not installed", "err", err)
		m.recon.LastError = err.Error()
		return
	}
	m.failures++
	d := retryAfter(m.failures)
	m.nextTry = now.Add(d)
	m.recon.Errors++
	m.recon.LastError = err.Error()
	m.o.Log.Error("lvs: reconcile failed; IPVS will be read back and retried", "err", err, "retry_in", d)
	m.kickTimer()
}

func (m *Manager) succeed(now time.Time, ops int) {
	m.recon.At = now
	m.recon.Ops = ops
	m.recon.Total += uint64(ops)
	m.recon.LastError = m.refusals()
}

// kickTimer makes Run re-arm its timer for a retry; the resync timer is
// re-armed after each tick with wait(), so a retry is picked up on the next
// tick at the latest.
func (m *Manager) kickTimer() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
