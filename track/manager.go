// Package track owns keepalived's tracking: it runs the vrrp_script checks
// on their interval with rise/fall, follows the state of tracked network
// interfaces (track_interface and each instance's own interface) through
// netlink, reads track_file values, and computes an instance's effective
// priority and FAULT reasons from the results (Compute, a pure function).
//
// One Manager serves a whole node: each tracked object is checked once,
// however many instances track it; each instance reads its view through
// ItemsFor and Compute. The package decides nothing about VRRP states and
// touches no addresses; the agent feeds the results to the instances.
package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/script"
)

// Options configure a Manager.
type Options struct {
	Log *slog.Logger
	// ScriptUser and ScriptGroup are global_defs script_user: the default
	// user of vrrp_scripts that name none.
	ScriptUser, ScriptGroup string
	// ScriptSecurity is enable_script_security: a script that a non-root
	// user could modify is disabled, as keepalived does.
	ScriptSecurity bool
	// Clock is the time source of the schedules; nil is the system clock.
	Clock Clock
	// Links is the link table to watch; nil opens netlink in the network
	// namespace of the goroutine that calls NewManager.
	Links LinkSource
	// OnResult, when set, is called after every run of a vrrp_script with
	// its result (the state stream's script events).
	OnResult func(script string, ok bool, d time.Duration)
}

// runFunc runs one command; script.Run in production.
type runFunc func(ctx context.Context, c script.Command, extra []string, o script.Options) script.Result

// Manager runs the checks of one node and notifies changes.
type Manager struct {
	log   *slog.Logger
	opts  Options
	clock Clock
	links LinkSource
	// ownLinks is the netlink source NewManager opened (closed when Run
	// ends); nil when the caller passed Options.Links.
	ownLinks *NetlinkSource
	run      runFunc
	// afterResult, when set (tests), is called after a script result has
	// been applied.
	afterResult func(name string)

	linkMu sync.Mutex // orders interface lookups against link events

	mu      sync.Mutex
	scripts map[string]*scriptState
	ifaces  map[string]*ifaceState
	files   map[string]*fileState
	subs    []chan struct{}
	runCtx  context.Context // set while Run runs
	// restartAll makes the next Configure restart every script (the
	// script defaults changed, see SetScriptDefaults).
	restartAll bool
	stopping   bool
	started    bool
	wg         sync.WaitGroup
}

type scriptState struct {
	cfg      *config.Script
	cmd      script.Command
	disabled error // set when the script cannot run (parse, security)
	rf       riseFall
	last     script.Result
	cancel   context.CancelFunc // stops its loop; nil when not running
}

type ifaceState struct {
	up, known bool
}

type fileState struct {
	cfg     *config.TrackFile
	value   int
	known   bool
	invalid bool
	lastErr string
}

// NewManager returns a Manager that watches nothing yet.
func NewManager(o Options) *Manager {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	m := &Manager{
		log:     o.Log,
		opts:    o,
		clock:   o.Clock,
		links:   o.Links,
		run:     script.Run,
		scripts: map[string]*scriptState{},
		ifaces:  map[string]*ifaceState{},
		files:   map[string]*fileState{},
	}
	if m.links == nil {
		src, err := NewNetlinkSource()
		if err != nil {
			m.log.Error("track: interface tracking unavailable", "err", err)
		} else {
			m.links, m.ownLinks = src, src
		}
	}
	return m
}

// Configure sets the scripts, interfaces and files to watch. It is
// idempotent and applies the difference: a script whose command and
// schedule are unchanged keeps its rise/fall state and its schedule (a
// weight change does not restart it), removed objects stop being watched,
// new ones start (at once when Run is running). interfaces are those named
// by track_interface plus each instance's own interface unless
// dont_track_primary; the caller builds the list.
//
// Scripts that cannot run (a command that does not parse, or one refused by
// enable_script_security) are disabled with an error log and are left out
// of every instance's items, as keepalived drops them; Configure returns
// an error naming them, but applies everything else.
func (m *Manager) Configure(scripts []*config.Script, interfaces []string, files []*config.TrackFile) error {
	var errs []error
	var newIfaces []string
	var newFiles []*fileState

	m.mu.Lock()
	// Scripts.
	want := map[string]*config.Script{}
	for _, s := range scripts {
		if s != nil && s.Name != "" {
			want[s.Name] = s
		}
	}
	for name, st := range m.scripts {
		if w, ok := want[name]; ok && !m.restartAll && sameSchedule(st.cfg, w) {
			st.cfg = w // weights may have changed; the state stays
			if st.disabled != nil {
				errs = append(errs, st.disabled)
			}
			continue
		}
		if st.cancel != nil {
			st.cancel()
		}
		delete(m.scripts, name)
	}
	for _, name := range sortedKeys(want) {
		if _, ok := m.scripts[name]; ok {
			continue
		}
		st := m.newScript(want[name])
		m.scripts[name] = st
		if st.disabled != nil {
			errs = append(errs, st.disabled)
			continue
		}
		if m.runCtx != nil && !m.stopping {
			m.startScript(st)
		}
	}

	m.restartAll = false

	// Interfaces.
	wantIf := map[string]bool{}
	for _, n := range interfaces {
		if n != "" {
			wantIf[n] = true
		}
	}
	for n := range m.ifaces {
		if !wantIf[n] {
			delete(m.ifaces, n)
		}
	}
	for _, n := range sortedKeys(wantIf) {
		if _, ok := m.ifaces[n]; !ok {
			m.ifaces[n] = &ifaceState{}
			newIfaces = append(newIfaces, n)
		}
	}

	// Files.
	wantF := map[string]*config.TrackFile{}
	for _, f := range files {
		if f != nil && f.Name != "" {
			wantF[f.Name] = f
		}
	}
	for n, fs := range m.files {
		w, ok := wantF[n]
		if !ok || w.File != fs.cfg.File {
			delete(m.files, n)
			continue
		}
		fs.cfg = w
	}
	for _, n := range sortedKeys(wantF) {
		if _, ok := m.files[n]; !ok {
			fs := &fileState{cfg: wantF[n]}
			m.files[n] = fs
			newFiles = append(newFiles, fs)
		}
	}
	m.mu.Unlock()

	changed := false
	for _, n := range newIfaces {
		m.lookupInterface(n)
	}
	for _, f := range newFiles {
		if m.readFile(f) {
			changed = true
		}
	}
	if changed {
		m.notify()
	}
	if len(errs) > 0 {
		return fmt.Errorf("track: %w", errors.Join(errs...))
	}
	return nil
}

// SetScriptDefaults changes global_defs' script_user / script_group and
// enable_script_security (a reload changed them). They apply from the next
// Configure, which then restarts every script so each is checked and run
// under the new settings.
func (m *Manager) SetScriptDefaults(user, group string, security bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.ScriptUser == user && m.opts.ScriptGroup == group && m.opts.ScriptSecurity == security {
		return
	}
	m.opts.ScriptUser, m.opts.ScriptGroup, m.opts.ScriptSecurity = user, group, security
	m.restartAll = true
}

// sameSchedule reports whether two vrrp_script definitions run the same
// command the same way (weights aside).
func sameSchedule(a, b *config.Script) bool {
	return a.Script == b.Script && a.Interval == b.Interval && a.Timeout == b.Timeout &&
		a.Rise == b.Rise && a.Fall == b.Fall && a.User == b.User && a.Group == b.Group &&
		a.InitFail == b.InitFail
}

// newScript prepares a script's state; m.mu is held.
func (m *Manager) newScript(s *config.Script) *scriptState {
	st := &scriptState{cfg: s, rf: newRiseFall(s.Rise, s.Fall, s.InitFail)}
	cmd, err := script.Parse(s.Script)
	if err != nil {
		st.disabled = fmt.Errorf("vrrp_script %s disabled: %w", s.Name, err)
		m.log.Error("track: vrrp_script disabled: its command does not parse", "script", s.Name, "err", err)
		return st
	}
	st.cmd = cmd
	if m.opts.ScriptSecurity {
		if err := script.CheckSecure(cmd); err != nil {
			st.disabled = fmt.Errorf("vrrp_script %s disabled by enable_script_security: %w", s.Name, err)
			m.log.Error("track: vrrp_script disabled due to enable_script_security; instances ignore it", "script", s.Name, "err", err)
			return st
		}
	}
	user := s.User
	if user == "" {
		user = m.opts.ScriptUser
	}
	m.log.Debug("track: vrrp_script", "script", s.Name, "runs", cmd.Describe(), "user", user,
		"interval", s.Interval.D(), "timeout", timeoutOf(s), "rise", st.rf.rise, "fall", st.rf.fall)
	return st
}

// timeoutOf is the script's timeout; keepalived's default is the interval.
func timeoutOf(s *config.Script) time.Duration {
	if s.Timeout > 0 {
		return s.Timeout.D()
	}
	return intervalOf(s)
}

func intervalOf(s *config.Script) time.Duration {
	if s.Interval > 0 {
		return s.Interval.D()
	}
	return config.DefaultScriptInterval.D()
}

// Subscribe returns a channel that receives a value every time any
// object's result changes. Sends never block the manager: changes that
// arrive while one is pending coalesce into it; the subscriber then reads
// the results (ItemsFor, Script, Interface, File).
func (m *Manager) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs = append(m.subs, ch)
	m.mu.Unlock()
	return ch
}

func (m *Manager) notify() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Script returns a vrrp_script's current result: ok, and whether a result
// exists yet (false also for an unknown or disabled script).
func (m *Manager) Script(name string) (ok bool, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, found := m.scripts[name]
	if !found || st.disabled != nil || !st.rf.known {
		return false, false
	}
	return st.rf.ok(), true
}

// ScriptDisabled returns why a vrrp_script does not run (its command does
// not parse, or enable_script_security refused it), or nil.
func (m *Manager) ScriptDisabled(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.scripts[name]; ok {
		return st.disabled
	}
	return nil
}

// Interface returns whether a tracked interface is up, and whether its
// state is known yet.
func (m *Manager) Interface(name string) (up bool, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.ifaces[name]
	if !ok {
		return false, false
	}
	return st.up, st.known
}

// File returns a track_file's current value (by track_file name), and
// whether it has been read yet.
func (m *Manager) File(name string) (value int, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return 0, false
	}
	return f.value, f.known
}

// Run runs the checks until ctx is done, then stops every script (killing
// the ones still running) and returns once all goroutines and child
// processes have ended. A second concurrent call returns at once.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return
	}
	m.started = true
	m.runCtx = ctx
	for _, name := range sortedKeys(m.scripts) {
		if st := m.scripts[name]; st.disabled == nil {
			m.startScript(st)
		}
	}
	m.wg.Add(1)
	go m.pollFiles(ctx.Done())
	if m.links != nil {
		m.wg.Add(1)
		go m.watchLinks(ctx)
	}
	m.mu.Unlock()

	<-ctx.Done()

	m.mu.Lock()
	m.stopping = true
	for _, st := range m.scripts {
		if st.cancel != nil {
			st.cancel()
			st.cancel = nil
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
	if m.ownLinks != nil {
		m.linkMu.Lock()
		m.links = nil // later Configure calls leave interfaces unknown
		m.linkMu.Unlock()
		m.ownLinks.Close()
	}
}

// startScript starts a script's loop; m.mu is held and m.runCtx set.
func (m *Manager) startScript(st *scriptState) {
	ctx, cancel := context.WithCancel(m.runCtx)
	st.cancel = cancel
	m.wg.Add(1)
	go m.scriptLoop(ctx, st)
}

// scriptLoop runs one script at once and then every interval, one run at
// a time: a tick that finds the previous run still going is skipped.
func (m *Manager) scriptLoop(ctx context.Context, st *scriptState) {
	defer m.wg.Done()
	m.mu.Lock()
	cfg, cmd := st.cfg, st.cmd
	defUser, defGroup := m.opts.ScriptUser, m.opts.ScriptGroup
	m.mu.Unlock()
	interval := intervalOf(cfg)
	opts := script.Options{User: cfg.User, Group: cfg.Group, Timeout: timeoutOf(cfg)}
	if opts.User == "" {
		opts.User, opts.Group = defUser, defGroup
	}

	results := make(chan script.Result, 1)
	var runs sync.WaitGroup
	defer runs.Wait() // Run kills the child when ctx ends
	running := false
	for {
		t := m.clock.NewTimer(interval)
		if running {
			m.log.Debug("track: vrrp_script still running at its next interval; skipping this run", "script", cfg.Name)
		} else {
			running = true
			runs.Add(1)
			go func() {
				defer runs.Done()
				res := m.run(ctx, cmd, nil, opts)
				select {
				case results <- res:
				case <-ctx.Done():
				}
			}()
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case res := <-results:
				running = false
				if ctx.Err() != nil {
					t.Stop()
					return
				}
				m.scriptResult(st, res)
			case <-t.C():
				break wait
			}
		}
	}
}

// scriptResult applies one run's result.
func (m *Manager) scriptResult(st *scriptState, res script.Result) {
	success := res.OK()
	m.mu.Lock()
	wasKnown := st.rf.known
	changed := st.rf.observe(success)
	ok := st.rf.ok()
	prev := st.last
	st.last = res
	name := st.cfg.Name
	hook := m.afterResult
	m.mu.Unlock()

	if changed {
		attrs := []any{"script", name, "exit_code", res.ExitCode, "duration", res.Duration.Round(time.Millisecond)}
		if res.TimedOut {
			attrs = append(attrs, "timed_out", true)
		}
		if res.Err != nil {
			attrs = append(attrs, "err", res.Err)
		}
		state := "FAILED"
		if ok {
			state = "OK"
		}
		if !wasKnown {
			attrs = append(attrs, "first_result", true)
		}
		if len(res.Output) > 0 && !ok {
			attrs = append(attrs, "output", string(trimOutput(res.Output)))
		}
		m.log.Info("track: vrrp_script now "+state, attrs...)
		m.notify()
	} else if res.ExitCode != prev.ExitCode || res.TimedOut != prev.TimedOut {
		m.log.Debug("track: vrrp_script result", "script", name, "exit_code", res.ExitCode, "timed_out", res.TimedOut, "state_ok", ok)
	}
	if m.opts.OnResult != nil {
		m.opts.OnResult(name, success, res.Duration)
	}
	if hook != nil {
		hook(name)
	}
}

func trimOutput(b []byte) []byte {
	const limit = 200
	if len(b) > limit {
		b = append(b[:limit:limit], "..."...)
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
