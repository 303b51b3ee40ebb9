package agent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/lvs"
	"github.com/vipd/vipd/lvs/ipvs"
	"github.com/vipd/vipd/script"
)

// lvsScriptTimeout bounds notify_up/down and quorum_up/down scripts.
const lvsScriptTimeout = 30 * time.Second

// lvsSide is the IPVS half of the daemon: started at the first
// configuration that has a virtual_server, then fed every configuration.
type lvsSide struct {
	mgr     *lvs.Manager
	cancel  context.CancelFunc
	done    chan struct{}
	global  *globalScripts
	scripts sync.WaitGroup // notify_up/down and quorum_up/down scripts running
	close   func()         // closes the IPVS handle; nil without one
}

// globalScripts are the global_defs script settings the LVS scripts and
// MISC_CHECKs run with; replaced at every apply.
type globalScripts struct {
	mu       sync.Mutex
	user     string
	group    string
	security bool
}

func (g *globalScripts) set(gd config.Global) {
	g.mu.Lock()
	g.user, g.group, g.security = gd.ScriptUser, gd.ScriptGroup, gd.EnableScriptSecurity
	g.mu.Unlock()
}

func (g *globalScripts) get() (user, group string, security bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.user, g.group, g.security
}

// applyLVS hands the model's virtual servers to the LVS side, starting it
// when the first virtual_server appears. Called with applyMu held.
func (a *Agent) applyLVS(m *config.Model) {
	a.mu.Lock()
	side := a.lvs
	a.mu.Unlock()
	if side == nil {
		if len(m.VirtualServers) == 0 {
			return
		}
		side = a.startLVS()
		a.mu.Lock()
		a.lvs = side
		a.mu.Unlock()
	}
	side.global.set(m.Global)
	side.mgr.Apply(m.VirtualServers, m.VirtualServerGroups)
}

func (a *Agent) startLVS() *lvsSide {
	side := &lvsSide{global: &globalScripts{}, done: make(chan struct{})}
	var backend lvs.Backend
	reason := ""
	if a.opts.LVSBackend != nil {
		backend = a.opts.LVSBackend
	} else if b, err := ipvs.New(); err != nil {
		reason = err.Error()
		if errors.Is(err, lvs.ErrUnavailable) {
			a.log.Error("lvs: IPVS not available in this kernel: virtual servers are checked and shown (vipd lvs), not installed; VRRP runs", "err", err)
		} else {
			a.log.Error("lvs: cannot open IPVS: virtual servers are checked and shown (vipd lvs), not installed; VRRP runs", "err", err)
		}
	} else {
		backend = b
		side.close = func() { _ = b.Close() }
	}
	runScript := func(keyword, command string) {
		user, group, security := side.global.get()
		side.scripts.Add(1)
		go func() {
			defer side.scripts.Done()
			runLVSScript(a, keyword, command, user, group, security)
		}()
	}
	var mgr *lvs.Manager
	checks := lvs.NewChecks(lvs.ChecksOptions{
		Clock:  a.opts.Clock,
		Log:    a.log,
		Result: func(r lvs.CheckResult) { mgr.Result(r) },
		Scripts: func() (string, string, bool) {
			return side.global.get()
		},
	})
	mgr = lvs.New(lvs.Options{Backend: backend, Reason: reason, Clock: a.opts.Clock, Log: a.log,
		Checks: checks, IsLocal: isLocalAddr, RunScript: runScript})
	side.mgr = mgr
	ctx, cancel := context.WithCancel(context.Background())
	side.cancel = cancel
	go func() { defer close(side.done); mgr.Run(ctx) }()
	a.log.Info("lvs: started", "ipvs", backend != nil)
	return side
}

// stopLVS ends the LVS side; release removes vipd's services from IPVS
// (a graceful stop; a restart or an upgrade keeps them).
func (a *Agent) stopLVS(release bool) {
	a.mu.Lock()
	side := a.lvs
	a.lvs = nil
	a.mu.Unlock()
	if side == nil {
		return
	}
	side.cancel()
	<-side.done
	if release {
		if err := side.mgr.Release(); err != nil {
			a.log.Error("lvs: could not remove every virtual service from IPVS", "err", err)
		}
		// The down scripts of omega run now: give them what keepalived
		// gives them on its way out (1 s), within the 2 s of a stop.
		waited := make(chan struct{})
		go func() { side.scripts.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(lvsStopScriptWait):
			a.log.Warn("lvs: scripts still running at exit are left to finish on their own", "waited", lvsStopScriptWait)
		}
	}
	if side.close != nil {
		side.close()
	}
}

// lvsStopScriptWait is how long a stop waits for the LVS scripts it ran
// (check/ipwrapper.c runs them with a 1 s timeout when stopping).
const lvsStopScriptWait = time.Second

// LVS implements api.Agent: the IPVS side's status.
func (a *Agent) LVS(context.Context) (api.LVS, error) {
	a.mu.Lock()
	side := a.lvs
	a.mu.Unlock()
	if side == nil {
		return api.LVS{Available: true, Reason: "no virtual_server in the configuration"}, nil
	}
	return side.mgr.Status(), nil
}

// lvsCollector returns the LVS metrics, or nil before the side exists; the
// metrics server asks at every scrape.
type lvsCollector struct{ a *Agent }

func (c lvsCollector) Describe(ch chan<- *prometheus.Desc) {
	// Unchecked collector: the LVS side may not exist yet.
}

func (c lvsCollector) Collect(ch chan<- prometheus.Metric) {
	c.a.mu.Lock()
	side := c.a.lvs
	c.a.mu.Unlock()
	if side != nil {
		side.mgr.Collector().Collect(ch)
	}
}

// lvsAddressesChanged tells the LVS side that this node's addresses
// changed (ha_suspend).
func (a *Agent) lvsAddressesChanged() {
	a.mu.Lock()
	side := a.lvs
	a.mu.Unlock()
	if side != nil {
		side.mgr.AddressesChanged()
	}
}

func runLVSScript(a *Agent, keyword, command, user, group string, security bool) {
	c, err := script.Parse(command)
	if err != nil {
		a.log.Error("lvs: "+keyword+" script does not parse", "script", command, "err", err)
		return
	}
	if security {
		if err := script.CheckSecure(c); err != nil {
			a.log.Error("lvs: "+keyword+" script refused (enable_script_security)", "script", command, "err", err)
			return
		}
	}
	res := script.Run(context.Background(), c, nil, script.Options{User: user, Group: group, Timeout: lvsScriptTimeout})
	if !res.OK() {
		a.log.Warn("lvs: "+keyword+" script failed", "script", command, "exit", res.ExitCode, "timed_out", res.TimedOut, "err", res.Err)
		return
	}
	a.log.Debug("lvs: "+keyword+" script ran", "script", command, "duration", res.Duration)
}

// isLocalAddr reports whether addr is on one of this node's interfaces
// (ha_suspend).
func isLocalAddr(addr string) bool {
	want, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr().Unmap() == want.Unmap() {
			return true
		}
	}
	return false
}
