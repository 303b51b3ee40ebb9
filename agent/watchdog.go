package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/internal/sdnotify"
	"github.com/vipd/vipd/vrrp"
)

// The service manager's side of the run (systemd, Type=notify): readiness,
// a status line, reloads, the stop, and the watchdog's keep-alives. Run's
// loop drives it; nothing here runs on the advert path.
//
// A keep-alive is sent only after a probe of the runtime answered, and the
// probe is started and read by Run's loop, so a daemon that stops
// answering stops the keep-alives and systemd's watchdog ends it
// (WatchdogSec=). The probe reads the state stream (the hub's lock: what
// status and metrics wait on) and makes one round trip through every VRRP
// runner (the goroutine that runs all the instances of one socket) with a
// request that changes nothing. A SIGHUP reload runs on the loop too: one
// that holds it for more than half the watchdog's timeout may be taken for
// a hang.

// statusEvery is how often the loop refreshes STATUS= (and probes the
// runtime) when the watchdog asks for nothing more often.
const statusEvery = 5 * time.Second

// probeFaultKey is the fault the probe clears on one instance of each
// runner. It is never raised, so clearing it changes nothing: the request
// is a pure round trip through the runner.
const probeFaultKey = "watchdog-probe"

// serviceManager notifies the service manager for Run. Its methods run on
// Run's loop only. With no notifier every method does nothing.
type serviceManager struct {
	a        *Agent
	n        *sdnotify.Notifier
	watchdog time.Duration // the watchdog's timeout; 0: none
	ticker   *time.Ticker
	tick     <-chan time.Time // nil: never (no notifier)
	results  chan probeResult
	probing  time.Time // when the probe in flight started; zero: none
	status   string    // the last STATUS= text sent
	note     string    // added to the status line: the last reload was rejected
	failing  string    // why the last probe failed; "" when it answered
	stalled  bool      // the probe in flight is overdue (logged)
}

type probeResult struct {
	summary string
	err     error
}

func (a *Agent) newServiceManager() *serviceManager {
	n := a.opts.Notify
	sm := &serviceManager{a: a, n: n, watchdog: n.WatchdogInterval(), results: make(chan probeResult, 1)}
	if n == nil {
		return sm
	}
	every := statusEvery
	if sm.watchdog > 0 {
		every = min(every, sm.watchdog/2)
	}
	sm.ticker = time.NewTicker(every)
	sm.tick = sm.ticker.C
	return sm
}

func (sm *serviceManager) stop() {
	if sm.ticker != nil {
		sm.ticker.Stop()
	}
}

func (sm *serviceManager) send(lines ...string) {
	if err := sm.n.Send(lines...); err != nil {
		sm.a.log.Warn("cannot notify the service manager", "err", err)
	}
}

// ready says the start (or a reload, or an upgrade's new image) is done:
// the control socket serves, the VRRP sockets are open, the first
// configuration is applied. It puts back the watchdog's own timeout, which
// an upgrade extended for the new image's start, with a first keep-alive.
func (sm *serviceManager) ready() {
	if sm.n == nil {
		return
	}
	lines := []string{sdnotify.Ready, sm.statusLine(summarize(sm.a.hub.snapshot()))}
	if sm.watchdog > 0 {
		lines = append(lines, sdnotify.WatchdogUsec(sm.watchdog), sdnotify.Watchdog)
	}
	sm.send(lines...)
}

// reloading says a SIGHUP reload began; reloaded that it ended (ready
// again, whether the file was taken or rejected).
func (sm *serviceManager) reloading() {
	if sm.n == nil {
		return
	}
	sm.send(sdnotify.Reloading, sdnotify.MonotonicUsec(), sdnotify.Status("reloading "+sm.a.opts.ConfigPath))
}

func (sm *serviceManager) reloaded(err error) {
	if sm.n == nil {
		return
	}
	sm.note = ""
	if err != nil {
		sm.note = "last reload rejected, running configuration unchanged: " + firstLine(err.Error())
	}
	sm.send(sdnotify.Ready, sm.statusLine(summarize(sm.a.hub.snapshot())))
}

// stopping says the graceful stop began.
func (sm *serviceManager) stopping() {
	sm.stop()
	if sm.n == nil {
		return
	}
	sm.send(sdnotify.Stopping, sdnotify.Status("stopping: MASTERs hand over (priority 0) and remove their VIPs"))
}

// restarting says vipd exits for a restart (no stop: systemd is stopping
// it for systemctl restart, or restarts it by RestartForceExitStatus=).
func (sm *serviceManager) restarting() {
	sm.stop()
	if sm.n == nil {
		return
	}
	sm.send(sdnotify.Status("restarting: exiting with the VIPs kept; the next start resumes"))
}

// upgrading says the process is about to execute a new image in place
// (same PID, so systemd keeps it as the main process): a reload as far as
// systemd is concerned, which the new image ends with READY=1. The
// watchdog gets the new image's whole time to start (it is rolled back
// after ReadyWithin) on top of its own timeout, from a keep-alive now: the
// new image's ready puts the timeout back.
func (sm *serviceManager) upgrading(up *UpgradeExec) {
	sm.stop()
	if sm.n == nil {
		return
	}
	lines := []string{sdnotify.Reloading, sdnotify.MonotonicUsec(), sdnotify.Status("upgrading: executing " + up.Binary + " in place")}
	if sm.watchdog > 0 {
		lines = append(lines, sdnotify.Watchdog, sdnotify.WatchdogUsec(sm.watchdog+up.ReadyWithin))
	}
	sm.send(lines...)
}

// probe starts a probe of the runtime, unless one is in flight; a probe
// overdue by more than the watchdog's timeout is logged once.
func (sm *serviceManager) probe() {
	if !sm.probing.IsZero() {
		if late := time.Since(sm.probing); !sm.stalled && late > max(sm.watchdog, statusEvery) {
			sm.stalled = true
			sm.a.log.Error("watchdog: the runtime has not answered a liveness probe: keep-alives stopped",
				"for", late.Round(time.Millisecond))
		}
		return
	}
	sm.probing = time.Now()
	checkRunners := sm.watchdog > 0
	timeout := max(sm.watchdog/2, time.Second)
	go func() {
		ctx, cancel := context.WithTimeout(sm.a.runCtx, timeout)
		defer cancel()
		sum, err := sm.a.probeRuntime(ctx, checkRunners)
		sm.results <- probeResult{summary: sum, err: err}
	}()
}

// probed takes a probe's answer: a keep-alive when it answered, and the
// status line when it changed.
func (sm *serviceManager) probed(r probeResult) {
	sm.probing, sm.stalled = time.Time{}, false
	if r.err != nil {
		if sm.failing == "" {
			sm.a.log.Error("watchdog: keep-alive held back", "err", r.err)
		}
		sm.failing = r.err.Error()
		return
	}
	if sm.failing != "" {
		sm.a.log.Info("watchdog: the runtime answers again; keep-alives resume")
		sm.failing = ""
	}
	var lines []string
	if sm.watchdog > 0 {
		lines = append(lines, sdnotify.Watchdog)
	}
	if text := sm.statusText(r.summary); text != sm.status {
		lines = append(lines, sm.statusLine(r.summary))
	}
	if len(lines) > 0 {
		sm.send(lines...)
	}
}

func (sm *serviceManager) statusText(summary string) string {
	if sm.note != "" {
		return summary + "; " + sm.note
	}
	return summary
}

// statusLine is the STATUS= line for summary, remembered as sent.
func (sm *serviceManager) statusLine(summary string) string {
	sm.status = sm.statusText(summary)
	return sdnotify.Status(sm.status)
}

// probeRuntime checks that the runtime answers: the state stream, and with
// checkRunners one round trip through each VRRP runner. It returns the
// status summary, or why the runtime did not answer (ctx's deadline).
func (a *Agent) probeRuntime(ctx context.Context, checkRunners bool) (string, error) {
	summary := summarize(a.hub.snapshot())
	if !checkRunners {
		return summary, nil
	}
	// One instance per runner: the instances of one interface and family
	// share its socket and its runner.
	type runnerKey struct {
		ifname string
		v6     bool
	}
	a.mu.Lock()
	seen := map[runnerKey]bool{}
	var insts []*vrrp.Instance
	for _, ri := range a.running {
		if ri.inst == nil {
			continue
		}
		k := runnerKey{ri.inst.Interface(), ri.cfg.IsIPv6()}
		if !seen[k] {
			seen[k] = true
			insts = append(insts, ri.inst)
		}
	}
	a.mu.Unlock()
	for _, inst := range insts {
		err := inst.SetFault(ctx, probeFaultKey, "")
		if err != nil && !errors.Is(err, vrrp.ErrStopped) { // stopped meanwhile (a reload): not a hang
			return summary, fmt.Errorf("the VRRP runner of %s (instance %s) did not answer: %w", inst.Interface(), inst.Name(), err)
		}
	}
	return summary, nil
}

// summarize is the status line's summary: "3 instances: 2 MASTER, 1 BACKUP".
func summarize(insts []api.InstanceStatus) string {
	if len(insts) == 0 {
		return "no instances"
	}
	count := map[string]int{}
	for _, s := range insts {
		count[s.State]++
	}
	rank := map[string]int{"MASTER": 0, "BACKUP": 1, "FAULT": 2, "INIT": 3, "STOP": 4}
	states := make([]string, 0, len(count))
	for st := range count {
		states = append(states, st)
	}
	sort.Slice(states, func(i, j int) bool {
		ri, iok := rank[states[i]]
		rj, jok := rank[states[j]]
		if iok != jok {
			return iok
		}
		if ri != rj {
			return ri < rj
		}
		return states[i] < states[j]
	})
	parts := make([]string, len(states))
	for k, st := range states {
		parts[k] = fmt.Sprintf("%d %s", count[st], st)
	}
	noun := "instances"
	if len(insts) == 1 {
		noun = "instance"
	}
	return fmt.Sprintf("%d %s: %s", len(insts), noun, strings.Join(parts, ", "))
}

// firstLine is the first line of s (a rejected file's errors are one a
// line), with a count of the others.
func firstLine(s string) string {
	first, rest, ok := strings.Cut(strings.TrimSpace(s), "\n")
	if !ok {
		return first
	}
	return fmt.Sprintf("%s (and %d more)", first, strings.Count(rest, "\n")+1)
}
