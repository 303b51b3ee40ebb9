package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/agent/state"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vrrp"
)

// What outlives the process (issue 15): the state file in --state-dir,
// written at every transition and touched while the run is alive, and
// what a start does with it.

// identityString renders an instance's identity for the state file: a
// start resumes only an instance whose identity is the same.
func identityString(ic *config.Instance) string {
	id := identityOf(ic)
	fam := "ipv4"
	if id.v6 {
		fam = "ipv6"
	}
	mode := "multicast"
	if id.unicast {
		mode = "unicast"
	}
	s := fmt.Sprintf("vrid=%d family=%s interface=%s mode=%s", id.vrid, fam, id.ifname, mode)
	if id.vmac {
		s += fmt.Sprintf(" use_vmac=%s xmit_base=%t", id.vmacName, id.vmacXmit)
	}
	return s
}

// heldVIPs are the addresses a MASTER of ic holds, each on its device
// (vmac: the VMAC interface the instance runs on, "" when none).
func heldVIPs(ic *config.Instance, vmac string) []state.VIP {
	dev := ic.Interface
	if vmac != "" {
		dev = vmac
	}
	var out []state.VIP
	for _, list := range [][]config.VIP{ic.VIPs, ic.ExcludedVIPs} {
		for _, v := range list {
			d := v.Dev
			if d == "" {
				d = dev
			}
			out = append(out, state.VIP{Prefix: v.Prefix, Dev: d})
		}
	}
	return out
}

// previous is what a start learned from the state the last run left.
type previous struct {
	file      state.File
	heartbeat time.Time // the old run was last known alive then
	byName    map[string]*state.Instance
}

// decideResume says whether ic, which the previous run (mode, last alive
// age ago) left as prev (nil: not in the file), resumes MASTER at start,
// and why or why not. has reports whether an address is on a device now.
// It is pure: the rules are in the order a reader would check them.
func decideResume(prev *state.Instance, mode state.Mode, age time.Duration, ic *config.Instance, has func(state.VIP) bool) (bool, string) {
	switch {
	case prev == nil:
		return false, "not in the previous run's state"
	case mode == state.ModeStopped || mode == state.ModeReleased:
		return false, fmt.Sprintf("the previous run ended %s: its VIPs were released", mode)
	case prev.State != vrrp.StateMaster.String():
		return false, "was " + prev.State + " before the restart"
	}
	if id := identityString(ic); id != prev.Identity {
		return false, fmt.Sprintf("identity changed (%s, was %s)", id, prev.Identity)
	}
	// The backups' down timers run from our last advert, which came up to
	// one advert interval before the state's heartbeat.
	if mdi, adv := vrrp.MasterDownIntervalOf(ic), ic.AdvertInt.D(); age+adv >= mdi {
		return false, fmt.Sprintf("state is %s old: with the advert interval %s, past the Master_Down_Interval %s, a backup may have taken over",
			age.Round(time.Millisecond), adv, mdi.Round(time.Millisecond))
	}
	if len(prev.VIPs) == 0 {
		return false, "held no VIPs"
	}
	for _, v := range prev.VIPs {
		if !has(v) {
			return false, fmt.Sprintf("VIP %s is gone from %s", v.Prefix, v.Dev)
		}
	}
	how := "a restart"
	switch mode {
	case state.ModeUpgrading:
		how = "an upgrade"
	case state.ModeRunning:
		how = "a crash"
	}
	return true, fmt.Sprintf("resumed MASTER after %s of vipd (%s ago, VIPs in place)", how, age.Round(time.Millisecond))
}

// loadPrevious reads the state directory at start. Nothing there, or a
// file it cannot use, is a plain start (logged).
func (a *Agent) loadPrevious() *previous {
	if a.opts.StateDir == "" {
		return nil
	}
	f, hb, err := state.Read(a.opts.StateDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("state of the previous run unusable: starting afresh", "err", err)
		}
		return nil
	}
	if f.Node != "" && f.Node != a.opts.NodeName {
		a.log.Warn("state directory written by another node: not resuming from it, nor keeping its maintenance",
			"dir", a.opts.StateDir, "written_by", f.Node, "node", a.opts.NodeName)
		return nil
	}
	p := &previous{file: f, heartbeat: hb, byName: map[string]*state.Instance{}}
	for i := range f.Instances {
		p.byName[f.Instances[i].Name] = &f.Instances[i]
	}
	// A run that died (mode running) soon after its start counts in the
	// crash streak; one that lived, or ended otherwise, starts a new one.
	streak := 0
	if f.Mode == state.ModeRunning && hb.Sub(f.Started) < state.CrashWindow {
		streak = f.CrashStreak + 1
	}
	a.mu.Lock()
	a.crashStreak = streak
	a.mu.Unlock()
	a.log.Info("state of the previous run found", "dir", a.opts.StateDir, "mode", f.Mode, "pid", f.PID,
		"age", a.now().Sub(hb).Round(time.Millisecond), "instances", len(f.Instances), "crash_streak", streak)
	return p
}

// firstState is what this run writes before its first apply: the
// previous run's instances as found, marked as this run's (mode running,
// started now, the crash streak), so a crash from here on counts, and a
// stale state stays stale (the heartbeat moves only once the first apply
// is done).
func (a *Agent) firstState(p *previous) state.File {
	f := a.snapshot(state.ModeRunning)
	if p != nil {
		f.Instances = p.file.Instances
	}
	return f
}

// releaseOrphans removes, at the first apply, the VIPs the previous run
// held that no resumed instance holds now: an instance removed from the
// configuration, one whose identity changed, a VIP dropped from a list.
// (An instance that starts as usual releases its own VIPs too; this
// covers what no instance of the new configuration would.)
func (a *Agent) releaseOrphans(p *previous, resumes map[string]*vrrp.Resume, m *config.Model) {
	if p == nil || p.file.Mode == state.ModeStopped || p.file.Mode == state.ModeReleased {
		return
	}
	kept := map[state.VIP]bool{}
	for _, ic := range m.Instances {
		if resumes[ic.Name] != nil {
			for _, v := range heldVIPs(ic, "") {
				kept[v] = true
			}
		}
	}
	has := a.vipChecker()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, in := range p.file.Instances {
		for _, v := range in.VIPs {
			if kept[v] || !has(v) {
				continue
			}
			if err := a.plane.DelAddrs(ctx, v.Dev, []config.VIP{{Prefix: v.Prefix, Dev: v.Dev}}); err != nil {
				a.log.Error("cannot remove a VIP the previous run left", "vip", v.Prefix, "dev", v.Dev, "err", err)
				continue
			}
			a.log.Info("removed a VIP the previous run left and no instance holds now", "vip", v.Prefix, "dev", v.Dev, "instance", in.Name)
		}
	}
}

// restoreIntents puts back the operator's maintenance and priority
// overrides of the previous run, whatever way it ended.
func (a *Agent) restoreIntents(p *previous) {
	if p == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if m := p.file.Maintenance; m != nil && (m.Node || len(m.Instances) > 0) {
		mt := maintenance{nodeOn: m.Node, node: m.Reason, instances: map[string]string{}}
		for k, v := range m.Instances {
			mt.instances[k] = v
		}
		a.maint[SourceOperator] = mt
		a.log.Info("operator maintenance kept from the previous run", "node", m.Node, "reason", m.Reason, "instances", len(m.Instances))
	}
	for inst, prio := range p.file.Priorities {
		if a.overrides[inst] == nil {
			a.overrides[inst] = map[string]int{}
		}
		a.overrides[inst][SourceOperator] = prio
		a.log.Info("operator priority override kept from the previous run", "instance", inst, "priority", prio)
	}
}

// planResumes decides, at the first apply of m, which instances resume
// MASTER. A sync group resumes whole or not at all: its members moved
// together before the restart and must after it.
func (a *Agent) planResumes(m *config.Model) map[string]*vrrp.Resume {
	p := a.prev
	if p == nil {
		return nil
	}
	age := a.now().Sub(p.heartbeat)
	if age < 0 {
		age = 0
	}
	a.mu.Lock()
	streak := a.crashStreak
	a.mu.Unlock()
	if streak > state.MaxCrashStreak {
		a.log.Warn("not resuming: the last runs crashed soon after their start; starting as usual (VIPs released, VRRP decides)",
			"crashes", streak, "within", state.CrashWindow)
		return nil
	}
	out := map[string]*vrrp.Resume{}
	has := a.vipChecker()
	for _, ic := range m.Instances {
		prev := p.byName[ic.Name]
		ok, why := decideResume(prev, p.file.Mode, age, ic, has)
		if ok {
			out[ic.Name] = &vrrp.Resume{Cause: why, Since: prev.Since}
			a.resuming.Store(ic.Name, why)
		} else if prev != nil && prev.State == vrrp.StateMaster.String() {
			a.log.Info("not resuming MASTER: starting as usual", "instance", ic.Name, "why", why)
		}
	}
	for _, g := range m.SyncGroups {
		all := true
		for _, name := range g.Members {
			if out[name] == nil {
				all = false
			}
		}
		if all {
			continue
		}
		for _, name := range g.Members {
			if out[name] != nil {
				a.log.Info("not resuming MASTER: starting as usual", "instance", name,
					"why", "another member of sync group "+g.Name+" does not resume")
				delete(out, name)
			}
		}
	}
	return out
}

// addrLister lists a device's addresses in one request (both planes do).
type addrLister interface {
	AddrsOf(ifname string) ([]netip.Addr, error)
}

// vipChecker returns a "is v on its device now" for one start: each
// device is listed once, not once per VIP (thousands of instances on a
// handful of interfaces would read every address of the host each).
func (a *Agent) vipChecker() func(state.VIP) bool {
	l, ok := a.plane.(addrLister)
	if !ok {
		return func(v state.VIP) bool {
			has, err := a.plane.HasAddr(v.Dev, v.Prefix.Addr())
			return err == nil && has
		}
	}
	byDev := map[string]map[netip.Addr]bool{}
	return func(v state.VIP) bool {
		set, seen := byDev[v.Dev]
		if !seen {
			addrs, err := l.AddrsOf(v.Dev)
			if err != nil {
				a.log.Warn("cannot list addresses: resuming nothing on this device", "dev", v.Dev, "err", err)
			}
			set = make(map[netip.Addr]bool, len(addrs))
			for _, ad := range addrs {
				set[ad] = true
			}
			byDev[v.Dev] = set
		}
		return set[v.Prefix.Addr().Unmap()]
	}
}

func (a *Agent) now() time.Time {
	if a.opts.Clock != nil {
		return a.opts.Clock.Now()
	}
	return time.Now()
}

// snapshot is the state file of the run now, in mode.
func (a *Agent) snapshot(mode state.Mode) state.File {
	f := state.File{Node: a.opts.NodeName, PID: os.Getpid(), Mode: mode, Written: a.now()}
	a.mu.Lock()
	f.Started, f.CrashStreak = a.started, a.crashStreak
	if f.Written.Sub(a.started) > state.CrashWindow {
		f.CrashStreak = 0 // this run lived: a crash now starts a new streak
	}
	type item struct {
		ri   *runningInstance
		cfg  *config.Instance
		name string
	}
	items := make([]item, 0, len(a.running))
	for name, ri := range a.running {
		items = append(items, item{ri, ri.cfg, name})
	}
	if mt, ok := a.maint[SourceOperator]; ok {
		f.Maintenance = &state.Maintenance{Node: mt.nodeOn, Reason: mt.node, Instances: map[string]string{}}
		for k, v := range mt.instances {
			f.Maintenance.Instances[k] = v
		}
	}
	for inst, bySrc := range a.overrides {
		if p, ok := bySrc[SourceOperator]; ok {
			if f.Priorities == nil {
				f.Priorities = map[string]int{}
			}
			f.Priorities[inst] = p
		}
	}
	a.mu.Unlock()
	f.Instances = make([]state.Instance, 0, len(items))
	for _, it := range items {
		si := state.Instance{Name: it.name, Identity: identityString(it.cfg), State: vrrp.StateInit.String()}
		if it.ri.inst != nil {
			st := it.ri.inst.Status()
			si.State, si.Since = st.State.String(), st.Since
			if st.State == vrrp.StateMaster {
				si.VIPs = heldVIPs(it.cfg, it.ri.vmac)
			}
		}
		f.Instances = append(f.Instances, si)
	}
	sortInstances(f.Instances)
	return f
}

// sortInstances orders the state file's instances by name (stable files
// for people and tests).
func sortInstances(in []state.Instance) {
	slices.SortFunc(in, func(x, y state.Instance) int { return strings.Compare(x.Name, y.Name) })
}

// heartbeatEvery is how often a live run touches its state file: often
// enough that a start after a crash measures the old run's death within
// a fraction of the shortest Master_Down_Interval.
func heartbeatEvery(m *config.Model) time.Duration {
	d := time.Second
	if m != nil {
		for _, ic := range m.Instances {
			if h := ic.AdvertInt.D() / 2; h < d {
				d = h
			}
		}
	}
	return max(d, 50*time.Millisecond)
}

// stateLoop owns the state file while the run lives: it writes the
// snapshot when kicked (every transition, apply and operator change,
// coalesced: a burst of transitions makes one write) and touches the
// heartbeat in between. It ends with ctx; the last write of the run
// (stopped, restarting, upgrading) is the caller's, after it.
func (a *Agent) stateLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	every := heartbeatEvery(a.currentModel())
	tick := time.NewTicker(every)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.stateKick:
			dirty = !a.writeState()
			if e := heartbeatEvery(a.currentModel()); e != every {
				every = e
				tick.Reset(every)
			}
		case <-tick.C:
			switch {
			case dirty:
				// The last write failed: the file is behind. Write it
				// again, and never vouch for it with a heartbeat.
				dirty = !a.writeState()
			case !a.applied.Load():
				// Until the first apply is done the file holds the
				// previous run's instances: its heartbeat must age.
			default:
				if err := state.Touch(a.opts.StateDir, time.Now()); err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						dirty = !a.writeState() // removed behind our back
					} else {
						a.warnState(err)
					}
				}
			}
		}
	}
}

// writeState writes the snapshot of the run; false when it failed.
func (a *Agent) writeState() bool {
	if err := state.Write(a.opts.StateDir, a.snapshot(state.ModeRunning)); err != nil {
		a.warnState(err)
		return false
	}
	return true
}

// kickState asks stateLoop for a write; it never blocks.
func (a *Agent) kickState() {
	select {
	case a.stateKick <- struct{}{}:
	default: // a write is pending already: it will see this change too
	}
}

// warnState logs a failed state write, once a minute.
func (a *Agent) warnState(err error) {
	now := time.Now()
	if now.Sub(a.stateWarned) < time.Minute {
		return
	}
	a.stateWarned = now
	a.log.Warn("cannot write the state file: retrying; until it works a restart resumes from older state, or none", "dir", a.opts.StateDir, "err", err)
}

// finalState writes the run's last state (stopped, restarting, upgrading).
func (a *Agent) finalState(mode state.Mode) error {
	if a.opts.StateDir == "" {
		return nil
	}
	if err := state.Write(a.opts.StateDir, a.snapshot(mode)); err != nil {
		return err
	}
	return nil
}

func (a *Agent) currentModel() *config.Model {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.model
}
