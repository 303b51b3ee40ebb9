// Package agent wires vipd together: it builds the runtime components (VRRP
// instances, the VIP plane, trackers) from a config.Model, applies the
// difference when the model changes (SIGHUP, vipd reload), owns the runtime
// state and publishes snapshots to the API. It does no parsing and opens no
// sockets itself.
package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"context"
	"errors"
	"fmt"
	"github.com/vipd/vipd/agent/state"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
	"github.com/vipd/vipd/config/loader"
	"github.com/vipd/vipd/coord"
	"github.com/vipd/vipd/internal/clock"
	"github.com/vipd/vipd/internal/sdnotify"
	"github.com/vipd/vipd/lvs"
	"github.com/vipd/vipd/notify"
	"github.com/vipd/vipd/track"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
	"github.com/vipd/vipd/vrrp/wire"
)

// DefaultSocketPath is where the control socket lives unless --socket says
// otherwise.
const DefaultSocketPath = api.DefaultSocketPath

// ShutdownBudget bounds the graceful shutdown (DESIGN.md 3.1: within 2 s).
const ShutdownBudget = 1500 * time.Millisecond

// Options are the settings of one vipd process (DESIGN.md 3.1, `vipd run`).
type Options struct {
	ConfigPath string
	ConfigIDs  []string // keepalived -i: ids for @id lines (default: short hostname)
	NodeName   string   // default: hostname
	SocketPath string   // control socket; default DefaultSocketPath
	GossipBind string
	// GossipAdvertise is the HOST:PORT other nodes reach this one at
	// ("": memberlist's choice); GossipTuningFile overrides memberlist's
	// timings (gossip.Config.TuningFile).
	GossipAdvertise  string
	GossipTuningFile string
	Join             []string
	GossipKeyFile    string
	EtcdEndpoints    []string
	EtcdPrefix       string
	// EtcdCACert, EtcdCert and EtcdKey are PEM files for TLS to etcd;
	// EtcdUserFile holds "user:password" for etcd's auth.
	EtcdCACert, EtcdCert, EtcdKey, EtcdUserFile string
	// ArbiterOff turns split-brain arbitration off (it is on with etcd).
	ArbiterOff bool
	// ArbiterTTL is the arbiter lease's TTL (coord.DefaultArbiterTTL when
	// zero); ArbiterIsolation what a node cut off from etcd and every
	// gossip peer does (coord.IsolationRelease when empty).
	ArbiterTTL       time.Duration
	ArbiterIsolation coord.Isolation
	MetricsListen    string
	Version          string // vipd's version, for metrics
	Logger           *slog.Logger
	// Watcher reports address and link events (self-healing); nil: the
	// plane's own when it has one, else the host's netlink.
	Watcher vip.Watcher
	// Clock drives the instances' timers; nil is the system clock (tests
	// inject a fake one).
	Clock clock.Clock
	// StateDir holds the state that outlives the process (state.json):
	// written at every transition, read at start to resume MASTERs after
	// a restart, a crash or an upgrade. Empty: no state kept.
	StateDir string
	// Executable is the path of the running binary (vipd upgrade runs the
	// file found there now); empty: upgrade is refused.
	Executable string
	// Ready, when set, is called once the first configuration is applied.
	Ready func()
	// Notify is the service manager's notification socket (systemd's
	// Type=notify, WatchdogSec=; watchdog.go); nil: not run by one.
	Notify *sdnotify.Notifier
	// Restart delivers the restart signal; nil: Run listens for
	// RestartSignal itself (the CLI registers it before loading anything,
	// so Go's default for SIGQUIT never applies).
	Restart <-chan os.Signal
	// RunArgs are the arguments of this `vipd run` (without the program):
	// vipd upgrade has the new binary check them (run --preflight).
	RunArgs []string
	// UpgradeNote says how the vipd upgrade that started this run ended
	// (shown in status); "" when this run is no upgrade's.
	UpgradeNote string
	// LVSBackend is IPVS for the virtual servers; nil: the kernel's (tests
	// inject lvs.Memory).
	LVSBackend lvs.Backend
}

// RestartSignal makes vipd exit for a restart: no priority 0, VIPs kept,
// the state written for the next start to resume (systemd's
// RestartKillSignal). keepalived gives SIGQUIT no meaning.
const RestartSignal = syscall.SIGQUIT

// ErrRestart is what Run returns after the restart signal: the process
// should exit 0 at once, leaving its VIPs in place.
var ErrRestart = errors.New("exited for a restart: VIPs kept, state written")

// ExitRestart is the exit status after the restart signal: not 0, so a
// restart signal that came from anything but systemctl restart makes
// systemd start vipd again (the unit's RestartForceExitStatus=) instead
// of leaving the VIPs with no daemon.
const ExitRestart = 75

// UpgradeExec is what Run returns when vipd upgrade asked for the binary
// at Binary: the caller executes it in place of the process (same PID);
// the state is written for it to resume.
type UpgradeExec struct {
	Binary string
	// ReadyWithin is how long the new image has to apply its
	// configuration before the old one is put back: less than the
	// shortest Master_Down_Interval less one advert interval, so the
	// backups never notice a rollback either.
	ReadyWithin time.Duration
}

func (u *UpgradeExec) Error() string { return "upgrade: re-executing " + u.Binary }

// Agent is one running vipd node. It is the single owner of the runtime:
// everything outside (the control socket, metrics, and the fleet layer)
// goes through its door — Apply, overrides, faults, maintenance, the gate,
// Demote, Subscribe — never into a running instance.
type Agent struct {
	opts      Options
	log       *slog.Logger
	plane     vrrp.AddressPlane
	transport *vrrp.Transport
	tracker   *track.Manager // nil: no tracking (unit tests)
	lvs       *lvsSide       // guarded by mu; nil until a virtual_server is configured
	// fileModel is the configuration file's model, before the store's
	// overlay (guarded by applyMu); etcd is the store's side, nil without
	// --etcd-endpoints.
	fileModel *config.Model
	etcd      *overlayState
	etcdSide  *etcdSide
	etcdCfg   coord.Config
	hub       *hub

	// applyMu serialises applies (SIGHUP, API, sources) and door changes
	// against each other; it is never held by a reader.
	applyMu sync.Mutex
	// trackMu serialises refreshes (see refresh).
	trackMu sync.Mutex

	mu        sync.Mutex // guards everything below; never held while waiting on an instance
	model     *config.Model
	running   map[string]*runningInstance
	groups    map[string]*syncGroup        // by vrrp_sync_group name
	overrides map[string]map[string]int    // instance -> source -> priority
	maint     map[string]maintenance       // source -> what is in maintenance
	faults    map[string]map[string]string // instance -> fault key -> cause (SetFault)
	runCtx    context.Context
	// The state directory (resume.go): prev is the previous run's state
	// until the first apply; resumes what that apply resumes; stateKick
	// asks the state loop for a write.
	prev        *previous
	resumes     map[string]*vrrp.Resume
	stateKick   chan struct{}
	stateWarned time.Time // stateLoop's own
	upgradeReq  chan *UpgradeExec
	// reloadReq carries the control socket's reloads to Run's loop, which
	// runs them like a SIGHUP (log lines, RELOADING=1 then READY=1 for
	// systemd); looping says the loop takes them, loopDone that it ended.
	reloadReq   chan reloadRequest
	looping     atomic.Bool
	loopDone    chan struct{}
	fleet       fleetLayer              // gossip; nil when off
	applied     atomic.Bool             // the first apply is done (the state's heartbeat may move)
	started     time.Time               // guarded by mu
	resumed     int                     // instances the first apply resumed; guarded by mu
	crashStreak int                     // quick crashes in a row before this run (state.File.CrashStreak); guarded by mu
	srcMemo     map[srcKey]srcAddr      // source addresses looked up by the apply in progress (applyMu)
	segMemo     map[segKey]netip.Prefix // segments looked up by the apply in progress (applyMu)

	gate atomic.Pointer[gateBox]
	// reloads counts Reload's outcomes (vipd_config_reloads_total).
	reloads *prometheus.CounterVec
	// resuming maps the instances the first apply resumes as MASTER to
	// the resume's cause: that resume passes the gate (MayBecomeMaster).
	resuming sync.Map
	// arbiter is the split-brain arbiter (etcd configured, arbitration on).
	arbiter *arbiterSide

	closed bool // shut down: applies are refused (guarded by applyMu)
}

type gateBox struct{ g vrrp.Gate }

// maintenance is what one source put in maintenance.
type maintenance struct {
	node      string            // reason when the whole node is in maintenance, "" otherwise
	nodeOn    bool              // the whole node
	instances map[string]string // instance -> reason
}

// syncGroup is a running vrrp_sync_group with its notify scripts.
type syncGroup struct {
	g        *vrrp.SyncGroup
	cfg      *config.SyncGroup
	notifier atomic.Pointer[notify.Notifier]
}

type runningInstance struct {
	inst     *vrrp.Instance
	cfg      *config.Instance                // guarded by Agent.mu
	notifier atomic.Pointer[notify.Notifier] // swapped live by a reload
	vmac     string                          // the VMAC interface made for it, "" if none

	// Guarded by Agent.mu.
	group     string            // vrrp_sync_group it belongs to, "" if none
	sentEff   int               // effective priority last sent
	sent      bool              // SetTracking/SetPriority was called once
	sentFault map[string]string // keyed faults (tracking, maintenance, SetFault) last sent

	err string // set when the instance could not start (status shows FAULT)
	// Where it runs, for the fleet view; guarded by Agent.mu.
	src     netip.Addr
	segment netip.Prefix
	since   time.Time // when it was started
}

// Run runs the daemon until ctx is cancelled (SIGTERM/SIGINT), then shuts
// down gracefully: masters send priority 0, VIPs are removed, notify stop runs.
// Reload requests arrive through SIGHUP and the control socket.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SocketPath == "" {
		opts.SocketPath = DefaultSocketPath
	}
	if opts.NodeName == "" {
		opts.NodeName, _ = os.Hostname()
	}
	log := opts.Logger
	model, err := load(opts.ConfigPath, opts.ConfigIDs, log)
	if err != nil {
		return err
	}
	plane, err := vip.NewNetlink(log)
	if err != nil {
		return fmt.Errorf("vip plane: %w", err)
	}
	defer plane.Close()
	a := newAgent(opts, plane, vrrp.NewTransport(log))
	a.tracker = track.NewManager(track.Options{
		Log: log,
		OnResult: func(name string, ok bool, d time.Duration) {
			a.hub.event(api.Event{Kind: api.EventScript, Name: name, OK: ok, Duration: d})
		},
		ScriptUser:     model.Global.ScriptUser,
		ScriptGroup:    model.Global.ScriptGroup,
		ScriptSecurity: model.Global.EnableScriptSecurity,
	})
	return a.run(ctx, model)
}

func newAgent(opts Options, plane vrrp.AddressPlane, tr *vrrp.Transport) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Agent{
		opts:       opts,
		log:        opts.Logger,
		plane:      plane,
		transport:  tr,
		hub:        newHub(),
		reloads:    newReloadCounter(),
		running:    map[string]*runningInstance{},
		groups:     map[string]*syncGroup{},
		overrides:  map[string]map[string]int{},
		maint:      map[string]maintenance{},
		faults:     map[string]map[string]string{},
		upgradeReq: make(chan *UpgradeExec, 1),
		reloadReq:  make(chan reloadRequest),
		loopDone:   make(chan struct{}),
		stateKick:  make(chan struct{}, 1),
	}
}

func load(path string, configIDs []string, log *slog.Logger) (*config.Model, error) {
	m, diags := loader.Load(path, loader.Options{InterfaceExists: loader.HostInterfaceExists,
		Keepalived: keepalived.Options{ConfigIDs: configIDs}})
	for _, d := range diags.Warnings() {
		log.Warn("config: " + d.String())
	}
	if err := diags.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func (a *Agent) run(ctx context.Context, model *config.Model) error {
	// From here on reloads are the loop's: one asked through the control
	// socket before the loop runs waits for it (the first apply is not
	// undone by a reload that raced it), and any return ends the wait.
	a.looping.Store(true)
	defer close(a.loopDone)
	runCtx, stopInstances := context.WithCancel(context.Background())
	defer stopInstances()
	a.runCtx = runCtx
	restart := a.opts.Restart
	if restart == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, RestartSignal)
		defer signal.Stop(ch)
		restart = ch
	}
	a.mu.Lock()
	a.started = a.now()
	a.mu.Unlock()

	// The state directory first, before anything answers on the socket:
	// one vipd per directory, the previous run's state and the operator's
	// intents, then this run's first state.
	if dir := a.opts.StateDir; dir != "" {
		unlock, err := state.Lock(dir, 2*time.Second)
		if err != nil {
			return err
		}
		defer unlock()
		a.prev = a.loadPrevious()
		a.restoreIntents(a.prev)
		if prev := a.prev; prev != nil {
			// A start that fails before its first apply (a socket or a
			// metrics port in use, say) leaves the previous state as it
			// found it, heartbeat included: what comes next (a rollback,
			// systemd's next start) judges it as if this run never was.
			defer func() {
				if !a.applied.Load() {
					if err := state.Write(dir, prev.file); err == nil {
						_ = state.Touch(dir, prev.heartbeat)
					}
				}
			}()
		}
		if err := state.Write(dir, a.firstState(a.prev)); err != nil {
			a.log.Warn("cannot write the state file", "dir", dir, "err", err)
		}
	}

	// The etcd client before the control socket serves (Maintenance reads
	// it): lazily connected, so nothing waits for etcd here.
	var etcdMetrics prometheus.Collector
	if len(a.opts.EtcdEndpoints) > 0 {
		a.etcd = newOverlayState(a.opts.EtcdPrefix)
		a.etcdSide = &etcdSide{metrics: coord.NewMetrics()}
		etcdMetrics = a.etcdSide.metrics
		if err := a.connectEtcd(); err != nil {
			return err
		}
		defer a.stopEtcd(false) // closes the client if the start fails below
	}
	srv := api.NewServer(a, a.log)
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvErr := make(chan error, 1)
	srvStopped := false // Serve returned on its own: nothing more to wait for
	go func() { srvErr <- srv.Serve(srvCtx, a.opts.SocketPath) }()
	// A second vipd on the same socket must not start: give Serve a moment
	// to refuse before we touch any address.
	select {
	case err := <-srvErr:
		stopSrv()
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
	case <-time.After(50 * time.Millisecond):
	}

	a.log.Info("vipd starting", "node", a.opts.NodeName, "config", a.opts.ConfigPath,
		"instances", len(model.Instances), "socket", a.opts.SocketPath)
	gossipMetrics, stopGossip, err := a.startGossip()
	if err != nil {
		stopSrv()
		<-srvErr
		return fmt.Errorf("gossip: %w", err)
	}
	metricsErr, err := a.startMetrics(runCtx, gossipMetrics, lvsCollector{a}, etcdMetrics, a.reloads)
	if err != nil {
		stopGossip()
		stopSrv()
		<-srvErr
		return err
	}
	if w := a.watcher(); w != nil {
		go a.watchAddresses(runCtx, w)
	}
	var trackDone chan struct{}
	if a.tracker != nil {
		trackDone = make(chan struct{})
		sub := a.tracker.Subscribe()
		go func() { defer close(trackDone); a.tracker.Run(runCtx) }()
		go a.trackLoop(runCtx, sub)
	}
	stateCtx, stopState := context.WithCancel(context.Background())
	defer stopState()
	stateDone := make(chan struct{})
	if a.opts.StateDir != "" {
		go a.stateLoop(stateCtx, stateDone)
	} else {
		close(stateDone)
	}
	a.startArbiter() // the gate before the first instance can ask it
	defer a.stopArbiter(false)
	a.fileModel = model
	// With etcd, the store's last good state saved by the previous run
	// applies from the start: a restart while etcd is unreachable keeps
	// the store's instances, priorities and maintenance.
	first, fromEtcd, resumed := a.resumeEtcd(model)
	if resumed {
		// Node-wide maintenance and priorities before the instances start,
		// so they start out of MASTER; an instance's own maintenance once
		// it runs (below).
		a.etcdOverrides(fromEtcd)
	}
	a.apply(first)
	a.applied.Store(true)
	if resumed {
		a.etcdOverrides(fromEtcd)
	}
	a.arbiterApplied()
	if err := a.startEtcd(); err != nil {
		a.log.Error("etcd: not followed: the file's configuration runs alone", "err", err)
	}
	if a.opts.Ready != nil {
		a.opts.Ready()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// Ready for systemd once a reload signal is taken too.
	sm := a.newServiceManager()
	defer sm.stop()
	sm.ready()
	// leave ends the run without a graceful stop (restart, upgrade): the
	// instances keep running until the process goes, nothing is released,
	// no notify script runs; the last state says how the run ended.
	leave := func(mode state.Mode) error {
		a.applyMu.Lock()
		a.closed = true
		a.applyMu.Unlock()
		a.stopLVS(false) // IPVS kept as it is: the next start adopts it
		a.stopArbiter(false)
		a.stopEtcd(false)
		stopState()
		<-stateDone
		err := a.finalState(mode)
		stopSrv()
		if !srvStopped {
			<-srvErr
		}
		return err
	}
	// reload is one reload, asked by a SIGHUP or through the control socket.
	reload := func(from string) error {
		a.log.Info(from+": reloading configuration", "config", a.opts.ConfigPath)
		sm.reloading()
		err := a.reload(ctx)
		if err != nil {
			a.log.Error("reload rejected, running configuration unchanged", "from", from, "err", err)
		}
		sm.reloaded(err)
		return err
	}
	srvSel := srvErr // nil once Serve returned
	for {
		select {
		case <-ctx.Done():
			sm.stopping()
			a.shutdown(stopInstances) // the hand-over first: never wait on etcd for it
			a.stopArbiter(true)
			a.stopEtcd(true)
			a.stopLVS(true)
			stopGossip() // leave the cluster: the others see "left", not "dead"
			if trackDone != nil {
				<-trackDone
			}
			stopState()
			<-stateDone
			if err := a.finalState(state.ModeStopped); err != nil {
				a.log.Warn("cannot write the state file", "err", err)
			}
			stopSrv()
			if !srvStopped {
				<-srvErr
			}
			return nil
		case <-restart:
			a.log.Info("restart signal (SIGQUIT): exiting at once for a restart, VIPs kept",
				"state_dir", a.opts.StateDir)
			if a.opts.StateDir == "" {
				a.log.Warn("no --state-dir: the next start cannot resume; its instances start as BACKUP")
			}
			sm.restarting()
			if err := leave(state.ModeRestarting); err != nil {
				a.log.Error("cannot write the state file: the next start will not resume", "err", err)
			}
			return ErrRestart
		case up := <-a.upgradeReq:
			if ctx.Err() != nil {
				continue // a stop came with it: the stop wins, on the next round
			}
			a.log.Info("upgrade: re-executing in place, VIPs kept", "binary", up.Binary, "ready_within", up.ReadyWithin)
			if err := leave(state.ModeUpgrading); err != nil {
				a.log.Error("cannot write the state file: the new binary will not resume", "err", err)
			}
			sm.upgrading(up)
			return up
		case <-hup:
			_ = reload("SIGHUP")
		case r := <-a.reloadReq:
			r.done <- reload(r.from)
		case <-sm.tick:
			sm.probe()
		case r := <-sm.results:
			sm.probed(r)
		case err := <-srvSel:
			if err != nil {
				a.log.Error("control socket stopped", "err", err)
			}
			srvSel, srvStopped = nil, true
		case err := <-metricsErr:
			if err != nil {
				a.log.Error("metrics server stopped", "err", err)
			}
			metricsErr = nil
		}
	}
}

// watcher returns the source of address events.
func (a *Agent) watcher() vip.Watcher {
	if a.opts.Watcher != nil {
		return a.opts.Watcher
	}
	if w, ok := a.plane.(vip.Watcher); ok {
		return w
	}
	w, err := vip.NewNetlinkWatcher(a.log)
	if err != nil {
		a.log.Error("cannot watch addresses: VIPs removed behind vipd's back will not heal", "err", err)
		return nil
	}
	return w
}

func (a *Agent) shutdown(stopInstances context.CancelFunc) {
	// No apply runs during or after the shutdown (a reload from the
	// control socket would start instances on a closed transport).
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	a.closed = true
	a.log.Info("shutting down: releasing VIPs")
	stopInstances()
	a.mu.Lock()
	running := a.running
	a.mu.Unlock()
	for _, ri := range running {
		if ri.inst != nil {
			ri.inst.Stop()
		}
	}
	budget := time.NewTimer(ShutdownBudget)
	defer budget.Stop()
wait:
	for _, ri := range running {
		if ri.inst == nil {
			continue
		}
		select {
		case <-ri.inst.Done():
		case <-budget.C:
			a.log.Warn("shutdown budget exceeded; some instances did not finish releasing")
			break wait
		}
	}
	a.mu.Lock()
	running = a.running
	a.running = map[string]*runningInstance{}
	groups := a.groups
	a.groups = map[string]*syncGroup{}
	a.mu.Unlock()
	for _, ri := range running {
		if ri.inst != nil {
			a.transport.Detach(ri.inst)
		}
	}
	a.transport.Close()
	// notify_stop scripts were queued by the STOP transitions; give them
	// what is left of the budget.
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownBudget/2)
	defer cancel()
	for _, ri := range running {
		a.finish(ctx, ri)
	}
	for _, sg := range groups {
		if n := sg.notifier.Load(); n != nil {
			n.Transition(notify.StateStop, 0)
			_ = n.Close(ctx)
		}
	}
	a.log.Info("vipd stopped")
}

type reloadRequest struct {
	from string
	done chan error // buffered: the loop never waits on the asker
}

// Reload re-reads the configuration file and applies only the difference.
// While Run's loop runs, the loop does it, as for a SIGHUP: the same log
// lines, and systemd hears RELOADING=1 and READY=1 around it.
func (a *Agent) Reload(ctx context.Context) error {
	if !a.looping.Load() {
		return a.reload(ctx)
	}
	r := reloadRequest{from: "control socket", done: make(chan error, 1)}
	select {
	case a.reloadReq <- r:
	case <-a.loopDone:
		return errors.New("reload: vipd is stopping")
	case <-ctx.Done():
		return fmt.Errorf("reload: %w", ctx.Err())
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("reload: waiting for it to finish: %w", ctx.Err())
	}
}

// reload is Reload's work, on the caller's goroutine.
func (a *Agent) reload(ctx context.Context) error {
	m, err := load(a.opts.ConfigPath, a.opts.ConfigIDs, a.log)
	if err != nil {
		a.reloads.WithLabelValues(reloadRejected).Inc()
		return err
	}
	a.applyMu.Lock()
	run, err := a.compose(m)
	if err != nil {
		a.applyMu.Unlock()
		a.reloads.WithLabelValues(reloadRejected).Inc()
		return fmt.Errorf("the file with the store's objects: %w", err)
	}
	a.reloads.WithLabelValues(reloadApplied).Inc()
	a.fileModel = m
	a.applyLocked(run)
	a.applyMu.Unlock()
	if ov, ok := a.etcd.overlay(); ok {
		// Maintenance or priorities for an instance the reload added.
		a.etcdOverrides(ov.For(a.opts.NodeName))
	}
	return nil
}

// Apply makes m the running model: it plans the difference with the
// running configuration (plan, a pure function) and carries it out,
// touching only what changed. The same instance takes every change live
// with no transition; only an identity change replaces one. It returns the
// plan carried out.
func (a *Agent) Apply(ctx context.Context, m *config.Model) (Plan, error) {
	if m == nil {
		return nil, errors.New("apply: no model")
	}
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	return a.applyLocked(m), nil
}

// apply is Apply for callers that hold no lock (start-up, tests).
func (a *Agent) apply(m *config.Model) Plan {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	return a.applyLocked(m)
}

func (a *Agent) applyLocked(m *config.Model) Plan {
	if a.closed {
		return nil
	}
	start := time.Now()
	a.mu.Lock()
	cur := Running{Instances: map[string]*config.Instance{}, GroupOf: map[string]string{}, Groups: map[string]*config.SyncGroup{}}
	for name, ri := range a.running {
		cur.Instances[name] = ri.cfg
		if ri.group != "" {
			cur.GroupOf[name] = ri.group
		}
	}
	for name, sg := range a.groups {
		cur.Groups[name] = sg.cfg
	}
	oldModel := a.model
	a.mu.Unlock()

	p := plan(cur, m)
	a.srcMemo, a.segMemo = map[srcKey]srcAddr{}, map[segKey]netip.Prefix{}
	if oldModel == nil {
		a.resumes = a.planResumes(m)
		a.releaseOrphans(a.prev, a.resumes, m)
		a.prev = nil
		a.mu.Lock()
		a.resumed = len(a.resumes)
		a.mu.Unlock()
	}
	a.execute(p, m, oldModel == nil)
	a.srcMemo, a.segMemo, a.resumes = nil, nil, nil
	a.mu.Lock()
	// Script settings changed: rebuild the notifiers of the instances that
	// kept running, so every notify script runs under the new settings.
	if oldModel != nil && notifyGlobals(oldModel.Global) != notifyGlobals(m.Global) {
		for _, ri := range a.running {
			if ri.inst == nil {
				continue
			}
			if old := ri.notifier.Swap(a.newNotifier(ri.cfg, m.Global)); old != nil {
				go old.Close(context.Background())
			}
		}
	}
	a.model = m
	a.mu.Unlock()
	a.configureTracking(m)
	a.applyLVS(m)
	a.refresh()
	a.kickState()
	if len(p) > 0 {
		a.log.Info("configuration applied", "changes", len(p), "took", time.Since(start).Round(time.Microsecond))
		// Parsing and planning a configuration of thousands of instances
		// leaves megabytes of garbage, and in steady state vipd allocates
		// almost nothing, so no GC would come round to return it: collect
		// and give it back to the system now, off the caller's path.
		go debug.FreeOSMemory()
	}
	return p
}

// notifyGlobals is what of global_defs notify scripts depend on.
func notifyGlobals(g config.Global) [3]string {
	return [3]string{g.ScriptUser, g.ScriptGroup, fmt.Sprint(g.EnableScriptSecurity)}
}

// stopInstance stops a running instance (a master hands over with
// priority 0) and waits for it. Called without a.mu.
func (a *Agent) stopInstance(ri *runningInstance) {
	defer a.hub.remove(ri)
	if ri.inst == nil {
		return
	}
	a.mu.Lock()
	sg := a.groups[ri.group]
	a.mu.Unlock()
	if sg != nil {
		sg.g.Remove(ri.inst)
	}
	ri.inst.Stop()
	select {
	case <-ri.inst.Done():
	case <-time.After(ShutdownBudget):
		a.log.Warn("instance did not stop in time", "instance", ri.cfg.Name)
	}
	a.transport.Detach(ri.inst)
	// The VMAC goes now (a restarted instance may want the same name);
	// notify scripts (notify_stop) run out in the background.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	a.removeVMAC(ctx, ri)
	cancel()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		a.closeNotifier(ctx, ri)
	}()
}

// finish runs after an instance stopped at shutdown: queued notify scripts
// (notify_stop) run out, and its VMAC goes.
func (a *Agent) finish(ctx context.Context, ri *runningInstance) {
	a.closeNotifier(ctx, ri)
	a.removeVMAC(ctx, ri)
}

func (a *Agent) closeNotifier(ctx context.Context, ri *runningInstance) {
	if n := ri.notifier.Load(); n != nil {
		if err := n.Close(ctx); err != nil {
			a.log.Warn("notify scripts still running at shutdown", "instance", ri.cfg.Name, "err", err)
		}
	}
}

// newNotifier builds an instance's notifier; nil when it has no notify
// scripts. Refused scripts are logged; the others run.
func (a *Agent) newNotifier(ic *config.Instance, global config.Global) *notify.Notifier {
	if ic.Notify == (config.Notify{}) {
		return nil
	}
	n, err := notify.New(notify.KindInstance, ic.Name, notifyScripts(ic.Notify), a.notifyOptions(global, notify.KindInstance, ic.Name))
	if err != nil {
		a.log.Error("notify scripts refused", "instance", ic.Name, "err", err)
	}
	return n
}

func (a *Agent) removeVMAC(ctx context.Context, ri *runningInstance) {
	if ri.vmac != "" {
		if vm, ok := a.plane.(vip.VMACs); ok {
			if err := vm.RemoveVMAC(ctx, ri.vmac); err != nil {
				a.log.Error("cannot remove VMAC", "instance", ri.cfg.Name, "vmac", ri.vmac, "err", err)
			}
		}
	}
}

func (a *Agent) newSyncGroup(gc *config.SyncGroup, global config.Global) *syncGroup {
	sg := &syncGroup{g: vrrp.NewSyncGroup(gc.Name, a.log), cfg: gc}
	a.setGroupNotifier(sg, gc, global)
	sg.g.OnState = func(_ string, st vrrp.State) {
		if n := sg.notifier.Load(); n != nil && (st == vrrp.StateMaster || st == vrrp.StateBackup || st == vrrp.StateFault) {
			n.Transition(st.String(), 0)
		}
	}
	return sg
}

// setGroupNotifier (re)builds a sync group's notify scripts.
func (a *Agent) setGroupNotifier(sg *syncGroup, gc *config.SyncGroup, global config.Global) {
	var n *notify.Notifier
	if gc.Notify != (config.Notify{}) {
		var err error
		n, err = notify.New(notify.KindGroup, gc.Name, notifyScripts(gc.Notify), a.notifyOptions(global, notify.KindGroup, gc.Name))
		if err != nil {
			a.log.Error("sync group notify scripts refused", "sync_group", gc.Name, "err", err)
		}
	}
	if old := sg.notifier.Swap(n); old != nil {
		go old.Close(context.Background())
	}
}

func notifyScripts(n config.Notify) notify.Scripts {
	return notify.Scripts{Master: n.Master, Backup: n.Backup, Fault: n.Fault, Stop: n.Stop, Generic: n.Generic}
}

func (a *Agent) notifyOptions(g config.Global, kind, name string) notify.Options {
	return notify.Options{Security: g.EnableScriptSecurity, User: g.ScriptUser, Group: g.ScriptGroup, Log: a.log,
		OnRun: func(keyword, state string, ok bool, d time.Duration) {
			ev := api.Event{Kind: api.EventNotify, Name: keyword, State: state, OK: ok, Duration: d}
			if kind == notify.KindGroup {
				ev.Group = name
			} else {
				ev.Instance = name
			}
			a.hub.event(ev)
		}}
}

func (a *Agent) startInstance(ic *config.Instance, group *vrrp.SyncGroup, global config.Global, startupDelay time.Duration) *runningInstance {
	ri := &runningInstance{cfg: ic, since: time.Now()}
	log := a.log
	a.hub.setAgent(ri, func(p *agentPart) {
		p.fromConfig(ic)
		if group != nil {
			p.group = group.Name()
		}
	})
	fail := func(msg string, err string) *runningInstance {
		ri.err = err
		log.Error(msg, "instance", ic.Name, "interface", ic.Interface, "err", err)
		a.hub.failed(ri, err, ri.since)
		return ri
	}
	primary, err := primaryAddr(ic, a.srcMemo)
	if err != nil {
		return fail("instance cannot start: FAULT", err.Error())
	}
	a.setSource(ri, ic.Interface, primary)
	runCfg, sendIf := ic, ""
	if ic.UseVMAC {
		name, err := a.ensureVMAC(ic)
		if err != nil {
			return fail("instance cannot create its VMAC: FAULT", err.Error())
		}
		// keepalived: VIPs live on the VMAC and adverts go out of it and
		// are read from it (a peer's adverts to its own VMAC only reach
		// our VMAC, see vip/vmac.go).
		c := *ic
		c.Interface = name
		runCfg, ri.vmac = &c, name
		if ic.VMACXmitBase {
			sendIf = ic.Interface
		}
	}
	ri.notifier.Store(a.newNotifier(ic, global))
	inst := vrrp.NewInstance(vrrp.InstanceOptions{
		Config:        runCfg,
		Primary:       primary,
		Plane:         a.plane,
		Log:           log,
		WaitTracking:  a.tracker != nil,
		SendInterface: sendIf,
		StartupDelay:  startupDelay,
		Resume:        a.resumes[ic.Name],
		Clock:         a.opts.Clock,
		Gate:          a,
		HeldElsewhere: func(addr netip.Addr) bool { return a.heldElsewhere(ri, addr) },
		OnTransition: func(tr vrrp.Transition) {
			a.hub.transition(ri, ri.inst.Status(), tr)
			a.kickState()
			n := ri.notifier.Load()
			if n == nil || tr.CauseKind == vrrp.CauseResume {
				return // a resume changes nothing on the network: no notify
			}
			switch tr.To {
			case vrrp.StateMaster, vrrp.StateBackup, vrrp.StateFault, vrrp.StateStop:
				n.Transition(tr.To.String(), tr.Priority)
			}
		},
		OnStatus: func(s vrrp.InstanceStatus) { a.hub.runtime(ri, s) },
		OnHeal: func(h vrrp.Heal) {
			a.hub.event(api.Event{Kind: api.EventVIPHeal, Instance: h.Instance, Detail: h.What})
		},
		OnPeerDrop: func(r wire.DropReason, peer netip.Addr, detail string) {
			a.hub.event(api.Event{Kind: api.EventPeerDrop, Instance: ri.inst.Name(), Reason: string(r), Peer: peer.String(), Detail: detail})
		},
	})
	ri.inst = inst
	if group != nil {
		group.Add(inst)
	}
	if err := a.transport.Attach(inst); err != nil {
		if group != nil {
			group.Remove(inst)
		}
		ri.inst = nil
		msg := err.Error()
		if errors.Is(err, syscall.EPERM) {
			msg += " (vipd needs root, or CAP_NET_RAW and CAP_NET_ADMIN)"
		}
		return fail("instance cannot open its VRRP socket: FAULT", msg)
	}
	a.hub.runtime(ri, inst.Status())
	// It runs on its socket's runner from here until stopInstance or the
	// shutdown stops it: no goroutine of its own.
	inst.Start()
	return ri
}

func (a *Agent) ensureVMAC(ic *config.Instance) (string, error) {
	vm, ok := a.plane.(vip.VMACs)
	if !ok {
		return "", errors.New("use_vmac: the VIP plane cannot make VMAC interfaces")
	}
	name := ic.VMACName
	if name == "" {
		name = vip.DefaultVMACName(ic.VRID)
	}
	ctx, cancel := context.WithTimeout(a.runCtx, 5*time.Second)
	defer cancel()
	if _, _, err := vm.EnsureVMAC(ctx, ic.Interface, name, ic.VRID, ic.IsIPv6()); err != nil {
		return "", fmt.Errorf("use_vmac %s on %s: %w", name, ic.Interface, err)
	}
	return name, nil
}

// srcKey and srcAddr are one apply's memo of interface source addresses:
// each host lookup reads every address of the host, which thousands of
// instances on a handful of interfaces would otherwise repeat each.
type srcKey struct {
	ifname string
	v6     bool
}

type srcAddr struct {
	addr netip.Addr
	err  error
}

// primaryAddr returns the address ic advertises from. memo (nil: none)
// holds the lookups of the apply in progress.
func primaryAddr(ic *config.Instance, memo map[srcKey]srcAddr) (netip.Addr, error) {
	if ic.UnicastSrcIP.IsValid() {
		return ic.UnicastSrcIP, nil
	}
	if ic.McastSrcIP.IsValid() {
		return ic.McastSrcIP, nil
	}
	k := srcKey{ic.Interface, ic.IsIPv6()}
	r, ok := memo[k]
	if !ok {
		r.addr, r.err = vrrp.PrimaryAddr(ic.Interface, ic.IsIPv6())
		if r.err != nil {
			r.err = fmt.Errorf("source address for %s: %w", ic.Interface, r.err)
		}
		if memo != nil {
			memo[k] = r
		}
	}
	return r.addr, r.err
}
