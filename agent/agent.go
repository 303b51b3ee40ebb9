// Package agent wires vipd together: it builds the runtime components (VRRP
// instances, the VIP plane, trackers) from a config.Model, applies the
// difference when the model changes (SIGHUP, vipd reload), owns the runtime
// state and publishes snapshots to the API. It does no parsing and opens no
// sockets itself.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
	"github.com/vipd/vipd/config/loader"
	"github.com/vipd/vipd/notify"
	"github.com/vipd/vipd/track"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
)

// DefaultSocketPath is where the control socket lives unless --socket says
// otherwise.
const DefaultSocketPath = api.DefaultSocketPath

// ShutdownBudget bounds the graceful shutdown (DESIGN.md 3.1: within 2 s).
const ShutdownBudget = 1500 * time.Millisecond

// Options are the settings of one vipd process (DESIGN.md 3.1, `vipd run`).
type Options struct {
	ConfigPath    string
	ConfigIDs     []string // keepalived -i: ids for @id lines (default: short hostname)
	NodeName      string   // default: hostname
	SocketPath    string   // control socket; default DefaultSocketPath
	GossipBind    string
	Join          []string
	GossipKeyFile string
	EtcdEndpoints []string
	EtcdPrefix    string
	MetricsListen string
	Logger        *slog.Logger
}

// Agent is one running vipd node.
type Agent struct {
	opts      Options
	log       *slog.Logger
	plane     vrrp.AddressPlane
	transport *vrrp.Transport
	tracker   *track.Manager // nil: no tracking (unit tests)

	// reloadMu serialises reloads (SIGHUP and API) against each other.
	reloadMu sync.Mutex
	// trackMu serialises tracking updates (see updateTracking).
	trackMu sync.Mutex

	mu        sync.Mutex // guards running and model
	model     *config.Model
	running   map[string]*runningInstance
	groups    map[string]*syncGroup // by vrrp_sync_group name
	runCtx    context.Context
	instances sync.WaitGroup
}

// syncGroup is a running vrrp_sync_group with its notify scripts.
type syncGroup struct {
	g        *vrrp.SyncGroup
	cfg      *config.SyncGroup
	notifier *notify.Notifier
}

type runningInstance struct {
	inst     *vrrp.Instance
	cfg      *config.Instance
	notifier atomic.Pointer[notify.Notifier] // swapped live by a reload
	vmac     string                          // the VMAC interface made for it, "" if none

	// Tracking results, guarded by Agent.mu.
	tracked   []track.ItemState
	trackEff  int
	trackWhy  string
	trackSent bool
	group     string // vrrp_sync_group it belongs to, "" if none
	gkey      string // the group's definition, to notice a change
	cancel    context.CancelFunc
	done      chan struct{}
	err       string    // set when the instance could not start (status shows FAULT)
	since     time.Time // when it was started
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
	a := newAgent(opts, plane, vrrp.NewTransport(log, &vrrp.DropCounters{}))
	a.tracker = track.NewManager(track.Options{
		Log:            log,
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
		opts:      opts,
		log:       opts.Logger,
		plane:     plane,
		transport: tr,
		running:   map[string]*runningInstance{},
		groups:    map[string]*syncGroup{},
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
	for _, vs := range m.VirtualServers {
		log.Warn(fmt.Sprintf("config: %s:%d: virtual_server %s: LVS is not implemented by vipd yet; the VRRP side runs, IPVS is left alone",
			vs.Pos.File, vs.Pos.Line, vs.Name))
	}
	return m, nil
}

func (a *Agent) run(ctx context.Context, model *config.Model) error {
	runCtx, stopInstances := context.WithCancel(context.Background())
	defer stopInstances()
	a.runCtx = runCtx

	srv := api.NewServer(a, a.log)
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvErr := make(chan error, 1)
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
	if a.opts.GossipBind != "" || len(a.opts.Join) > 0 || a.opts.GossipKeyFile != "" ||
		len(a.opts.EtcdEndpoints) > 0 || a.opts.MetricsListen != "" {
		a.log.Warn("gossip, etcd and metrics are not implemented yet: those flags are ignored; running as a standalone VRRP node")
	}
	var trackDone chan struct{}
	if a.tracker != nil {
		trackDone = make(chan struct{})
		sub := a.tracker.Subscribe()
		go func() { defer close(trackDone); a.tracker.Run(runCtx) }()
		go a.trackLoop(runCtx, sub)
	}
	a.apply(model)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			a.shutdown(stopInstances)
			if trackDone != nil {
				<-trackDone
			}
			stopSrv()
			<-srvErr
			return nil
		case <-hup:
			a.log.Info("SIGHUP: reloading configuration", "config", a.opts.ConfigPath)
			if err := a.Reload(ctx); err != nil {
				a.log.Error("reload rejected, running configuration unchanged", "err", err)
			}
		case err := <-srvErr:
			if err != nil {
				a.log.Error("control socket stopped", "err", err)
			}
			srvErr = nil
		}
	}
}

func (a *Agent) shutdown(stopInstances context.CancelFunc) {
	a.log.Info("shutting down: releasing VIPs")
	stopInstances()
	done := make(chan struct{})
	go func() { a.instances.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(ShutdownBudget):
		a.log.Warn("shutdown budget exceeded; some instances did not finish releasing")
	}
	a.mu.Lock()
	running := a.running
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
		if sg.notifier != nil {
			sg.notifier.Transition(notify.StateStop, 0)
			_ = sg.notifier.Close(ctx)
		}
	}
	a.log.Info("vipd stopped")
}

// Reload re-reads the configuration file and applies only the difference.
func (a *Agent) Reload(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	m, err := load(a.opts.ConfigPath, a.opts.ConfigIDs, a.log)
	if err != nil {
		return err
	}
	a.apply(m)
	return nil
}

// apply diffs m against the running model and touches only what changed.
func (a *Agent) apply(m *config.Model) {
	a.applyInstances(m)
	a.configureTracking(m)
	a.updateTracking()
}

func (a *Agent) applyInstances(m *config.Model) {
	a.mu.Lock()
	defer a.mu.Unlock()
	want := map[string]*config.Instance{}
	for _, ic := range m.Instances {
		want[ic.Name] = ic
	}
	groupOf, groupKey := syncGroups(m)
	var stopped []*runningInstance
	for name, ri := range a.running {
		nc, ok := want[name]
		switch {
		case !ok:
			a.log.Info("instance removed by configuration", "instance", name)
			stopped = append(stopped, ri)
			delete(a.running, name)
		case ri.group != groupOf[name] || ri.gkey != groupKey[groupOf[name]]:
			a.log.Info("instance's sync group changed by configuration: restarting it", "instance", name)
			stopped = append(stopped, ri)
			delete(a.running, name)
		case sameInstance(ri.cfg, nc):
			ri.cfg = nc // positions may have moved
		case ri.inst != nil && onlyLiveFieldsDiffer(ri.cfg, nc):
			// Priority, tracking and notify scripts apply to the running
			// instance: no restart, no flap.
			a.log.Info("instance changed by configuration: applied live", "instance", name,
				"priority", nc.Priority, "notify_changed", ri.cfg.Notify != nc.Notify)
			if ri.cfg.Notify != nc.Notify {
				old := ri.notifier.Swap(a.newNotifier(nc, m.Global))
				if old != nil {
					go old.Close(context.Background())
				}
			}
			prioChanged := ri.cfg.Priority != nc.Priority
			ri.cfg = nc
			ri.trackSent = false // recompute the effective priority and faults
			if a.tracker == nil && prioChanged {
				if err := ri.inst.SetPriority(a.runCtx, nc.Priority); err != nil {
					a.log.Error("cannot change priority", "instance", name, "err", err)
				}
			}
		default:
			a.log.Info("instance changed by configuration: restarting it", "instance", name)
			stopped = append(stopped, ri)
			delete(a.running, name)
		}
	}
	for _, ri := range stopped {
		a.stopInstance(ri)
	}
	// Groups whose definition changed restart with all their members
	// (above); drop group objects nobody uses any more.
	for name, sg := range a.groups {
		if sg.g.Len() == 0 {
			delete(a.groups, name)
			if sg.notifier != nil {
				go sg.notifier.Close(context.Background())
			}
		}
	}
	groupCfg := map[string]*config.SyncGroup{}
	for _, g := range m.SyncGroups {
		groupCfg[g.Name] = g
	}
	for _, ic := range m.Instances {
		if _, ok := a.running[ic.Name]; !ok {
			gname := groupOf[ic.Name]
			var g *vrrp.SyncGroup
			if gname != "" {
				sg := a.groups[gname]
				if sg == nil {
					sg = a.newSyncGroup(groupCfg[gname], m.Global)
					a.groups[gname] = sg
				}
				sg.cfg = groupCfg[gname]
				g = sg.g
			}
			ri := a.startInstance(ic, g, m.Global)
			ri.group, ri.gkey = gname, groupKey[gname]
			a.running[ic.Name] = ri
		}
	}
	// Script settings changed: rebuild the notifiers of the instances that
	// kept running, so every notify script runs under the new settings.
	if a.model != nil && notifyGlobals(a.model.Global) != notifyGlobals(m.Global) {
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
}

// notifyGlobals is what of global_defs notify scripts depend on.
func notifyGlobals(g config.Global) [3]string {
	return [3]string{g.ScriptUser, g.ScriptGroup, fmt.Sprint(g.EnableScriptSecurity)}
}

func (a *Agent) stopInstance(ri *runningInstance) {
	if ri.inst == nil {
		return
	}
	if sg := a.groups[ri.group]; sg != nil {
		sg.g.Remove(ri.inst)
	}
	ri.cancel()
	select {
	case <-ri.done:
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
	n, err := notify.New(notify.KindInstance, ic.Name, notifyScripts(ic.Notify), a.notifyOptions(global))
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
	if gc.Notify != (config.Notify{}) {
		n, err := notify.New(notify.KindGroup, gc.Name, notifyScripts(gc.Notify), a.notifyOptions(global))
		if err != nil {
			a.log.Error("sync group notify scripts refused", "sync_group", gc.Name, "err", err)
		}
		sg.notifier = n
		sg.g.OnState = func(_ string, st vrrp.State) {
			if st == vrrp.StateMaster || st == vrrp.StateBackup || st == vrrp.StateFault {
				n.Transition(st.String(), 0)
			}
		}
	}
	return sg
}

func notifyScripts(n config.Notify) notify.Scripts {
	return notify.Scripts{Master: n.Master, Backup: n.Backup, Fault: n.Fault, Stop: n.Stop, Generic: n.Generic}
}

func (a *Agent) notifyOptions(g config.Global) notify.Options {
	return notify.Options{Security: g.EnableScriptSecurity, User: g.ScriptUser, Group: g.ScriptGroup, Log: a.log}
}

func (a *Agent) startInstance(ic *config.Instance, group *vrrp.SyncGroup, global config.Global) *runningInstance {
	ri := &runningInstance{cfg: ic, done: make(chan struct{}), since: time.Now()}
	log := a.log
	primary, err := primaryAddr(ic)
	if err != nil {
		ri.err = err.Error()
		log.Error("instance cannot start: FAULT", "instance", ic.Name, "err", err)
		return ri
	}
	runCfg, sendIf := ic, ""
	if ic.UseVMAC {
		name, err := a.ensureVMAC(ic)
		if err != nil {
			ri.err = err.Error()
			log.Error("instance cannot create its VMAC: FAULT", "instance", ic.Name, "err", err)
			return ri
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
		OnTransition: func(tr vrrp.Transition) {
			n := ri.notifier.Load()
			if n == nil {
				return
			}
			switch tr.To {
			case vrrp.StateMaster, vrrp.StateBackup, vrrp.StateFault, vrrp.StateStop:
				n.Transition(tr.To.String(), tr.Priority)
			}
		},
	})
	if group != nil {
		group.Add(inst)
	}
	if err := a.transport.Attach(inst); err != nil {
		if group != nil {
			group.Remove(inst)
		}
		ri.err = err.Error()
		if errors.Is(err, syscall.EPERM) {
			ri.err += " (vipd needs root, or CAP_NET_RAW and CAP_NET_ADMIN)"
		}
		log.Error("instance cannot open its VRRP socket: FAULT", "instance", ic.Name, "interface", ic.Interface, "err", ri.err)
		return ri
	}
	ctx, cancel := context.WithCancel(a.runCtx)
	ri.inst, ri.cancel = inst, cancel
	a.instances.Add(1)
	go func() {
		defer a.instances.Done()
		defer close(ri.done)
		inst.Run(ctx)
	}()
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

func primaryAddr(ic *config.Instance) (netip.Addr, error) {
	if ic.UnicastSrcIP.IsValid() {
		return ic.UnicastSrcIP, nil
	}
	if ic.McastSrcIP.IsValid() {
		return ic.McastSrcIP, nil
	}
	a, err := vrrp.PrimaryAddr(ic.Interface, ic.IsIPv6())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("source address for %s: %w", ic.Interface, err)
	}
	return a, nil
}
