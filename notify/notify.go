// Package notify runs the notify scripts of a vrrp_instance or a
// vrrp_sync_group: notify_master, notify_backup, notify_fault, notify_stop
// with their arguments as written, and the generic notify with the arguments
// "INSTANCE"|"GROUP", name, state, priority appended, as keepalived does
// (keepalived/vrrp/vrrp_notify.c: the notify_<state> script first, then the
// generic one).
//
// A Notifier runs its scripts asynchronously, one at a time and in the order
// of the transitions, so the state machine never waits for a script and an
// operator's script never sees MASTER after a later BACKUP (keepalived forks
// them all at once, and they may overlap or race). Each script is killed at
// its timeout (Options.Timeout, DefaultTimeout when zero: keepalived sets none
// except 1s for stop scripts, and a hung script would hold up every later
// notification of the instance).
//
// The package decides nothing about states: the caller reports transitions.
// Running a command is package script's job.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/vipd/vipd/script"
)

// DefaultTimeout is the timeout of a notify script when Options.Timeout is 0.
const DefaultTimeout = 60 * time.Second

// queueWarn is the queue length at which a Notifier logs that its scripts
// do not keep up with the transitions (and again at every multiple).
const queueWarn = 64

// Kinds of notifier: the first argument of the generic notify script.
const (
	KindInstance = "INSTANCE"
	KindGroup    = "GROUP"
)

// States a notify is sent for.
const (
	StateMaster = "MASTER"
	StateBackup = "BACKUP"
	StateFault  = "FAULT"
	StateStop   = "STOP"
)

// Scripts are the notify commands as written in the configuration (the
// config.Notify fields); empty means none.
type Scripts struct{ Master, Backup, Fault, Stop, Generic string }

// Options say how to run the scripts.
type Options struct {
	// Security is enable_script_security: a script a non-root user could
	// change is refused.
	Security bool
	// User and Group are script_user (empty: vipd's own user).
	User, Group string
	// Timeout kills a script that runs longer; 0 means DefaultTimeout.
	Timeout time.Duration
	// Log receives one line per failed script (and debug lines for every
	// run); nil means slog.Default().
	Log *slog.Logger
	// OnRun, when set, is called after every script run with its keyword
	// (notify_master, ...), the state notified, whether it exited 0 in
	// time, and how long it ran (the state stream's notify events).
	OnRun func(keyword, state string, ok bool, d time.Duration)
}

// job is one script run.
type job struct {
	keyword string // notify_master, ..., notify
	cmd     script.Command
	extra   []string
	state   string
}

// Notifier runs one instance's (or sync group's) notify scripts.
// The zero value and a nil *Notifier do nothing.
type Notifier struct {
	kind, name string
	cmds       map[string]script.Command // by state; "" for the generic notify
	opts       script.Options
	log        *slog.Logger
	onRun      func(keyword, state string, ok bool, d time.Duration)

	mu      sync.Mutex
	queue   []job
	closed  bool
	cut     bool          // shutdown killed a script or dropped queued ones
	wake    chan struct{} // 1-buffered: work was queued or Close was called
	done    chan struct{} // closed when the worker ends
	stopRun context.CancelFunc
	runCtx  context.Context
}

// New parses the scripts of the instance or group called name (kind is
// KindInstance or KindGroup) and starts the Notifier's worker.
//
// A script that does not parse, or, with Security, that CheckSecure refuses,
// is left out, like keepalived disables it; New then returns the Notifier,
// which runs the other scripts, together with an error naming every script
// left out and why, for the caller to log. An unknown kind returns a nil
// Notifier (whose methods do nothing) and an error.
func New(kind, name string, s Scripts, o Options) (*Notifier, error) {
	if kind != KindInstance && kind != KindGroup {
		return nil, fmt.Errorf("notify %s: kind %q: must be %s or %s", name, kind, KindInstance, KindGroup)
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{
		kind:    kind,
		name:    name,
		cmds:    map[string]script.Command{},
		opts:    script.Options{User: o.User, Group: o.Group, Timeout: timeout},
		log:     log.With("notify", kind, "name", name),
		onRun:   o.OnRun,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		runCtx:  ctx,
		stopRun: cancel,
	}
	var errs []error
	for _, e := range []struct{ keyword, state, raw string }{
		{"notify_master", StateMaster, s.Master},
		{"notify_backup", StateBackup, s.Backup},
		{"notify_fault", StateFault, s.Fault},
		{"notify_stop", StateStop, s.Stop},
		{"notify", "", s.Generic},
	} {
		if e.raw == "" {
			continue
		}
		c, err := script.Parse(e.raw)
		if err == nil && o.Security {
			if serr := script.CheckSecure(c); serr != nil {
				err = fmt.Errorf("refused by enable_script_security: %w", serr)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w (not run)", e.keyword, e.raw, err))
			continue
		}
		n.cmds[e.state] = c
		n.log.Debug("notify script ready", "keyword", e.keyword, "runs", c.Describe())
	}
	go n.work()
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("%s %s: %w", kindWord(kind), name, errors.Join(errs...))
	}
	return n, err
}

func kindWord(kind string) string {
	if kind == KindGroup {
		return "vrrp_sync_group"
	}
	return "vrrp_instance"
}

func keywordFor(state string) string {
	switch state {
	case StateMaster:
		return "notify_master"
	case StateBackup:
		return "notify_backup"
	case StateFault:
		return "notify_fault"
	case StateStop:
		return "notify_stop"
	}
	return "notify_" + state
}

// Transition queues the notifications of entering state (MASTER, BACKUP,
// FAULT, STOP) with the given priority (keepalived passes the effective
// priority for an instance and 0 for a sync group): notify_<state> with its
// arguments as written, then the generic notify with "INSTANCE"|"GROUP",
// name, state, priority appended. It never blocks. After Close it logs and
// drops the transition.
func (n *Notifier) Transition(state string, priority int) {
	if n == nil || n.cmds == nil {
		return
	}
	var jobs []job
	if c, ok := n.cmds[state]; ok {
		jobs = append(jobs, job{keyword: keywordFor(state), cmd: c, state: state})
	}
	if c, ok := n.cmds[""]; ok {
		jobs = append(jobs, job{keyword: "notify", cmd: c, state: state,
			extra: []string{n.kind, n.name, state, strconv.Itoa(priority)}})
	}
	if len(jobs) == 0 {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.log.Warn("notify after shutdown, not run", "state", state)
		return
	}
	before := len(n.queue)
	n.queue = append(n.queue, jobs...)
	after := len(n.queue)
	n.mu.Unlock()
	if after/queueWarn > before/queueWarn {
		n.log.Warn("notify scripts fall behind the transitions", "queued", after)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Close runs what is queued (a STOP transition queued before Close runs:
// keepalived runs notify_stop at shutdown), then ends the worker. When ctx
// ends first, the running script is killed, the rest of the queue is dropped
// (and logged), and Close returns an error. Close is safe to call twice.
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil || n.done == nil {
		return nil
	}
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	select {
	case <-n.done:
		n.stopRun()
		return nil
	case <-ctx.Done():
	}
	n.stopRun()
	<-n.done
	n.mu.Lock()
	cut := n.cut
	n.mu.Unlock()
	if !cut {
		return nil
	}
	return fmt.Errorf("notify %s %s: shutdown cut short: %w", n.kind, n.name, ctx.Err())
}

// work runs queued jobs one at a time until closed and drained, or until
// the run context is cancelled.
func (n *Notifier) work() {
	defer close(n.done)
	for {
		n.mu.Lock()
		if n.runCtx.Err() != nil {
			dropped := len(n.queue)
			n.queue = nil
			n.cut = n.cut || dropped > 0
			n.mu.Unlock()
			if dropped > 0 {
				n.log.Warn("notify scripts dropped at shutdown", "dropped", dropped)
			}
			return
		}
		if len(n.queue) == 0 {
			closed := n.closed
			n.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-n.wake:
			case <-n.runCtx.Done():
			}
			continue
		}
		j := n.queue[0]
		n.queue[0] = job{}
		n.queue = n.queue[1:]
		n.mu.Unlock()
		n.run(j)
	}
}

func (n *Notifier) run(j job) {
	r := script.Run(n.runCtx, j.cmd, j.extra, n.opts)
	if r.Err != nil && n.runCtx.Err() != nil {
		n.mu.Lock()
		n.cut = true
		n.mu.Unlock()
	}
	attrs := []any{"keyword", j.keyword, "state", j.state, "runs", j.cmd.Describe(),
		"duration", r.Duration.Round(time.Millisecond)}
	if len(j.extra) > 0 {
		attrs = append(attrs, "args", j.extra)
	}
	switch {
	case r.Err != nil:
		n.log.Warn("notify script failed to run", append(attrs, "err", r.Err)...)
	case r.TimedOut:
		n.log.Warn("notify script killed at its timeout", append(attrs, "timeout", n.opts.Timeout, "output", string(r.Output))...)
	case r.ExitCode != 0:
		n.log.Warn("notify script failed", append(attrs, "exit", r.ExitCode, "output", string(r.Output))...)
	default:
		n.log.Debug("notify script ran", attrs...)
	}
	if n.onRun != nil {
		n.onRun(j.keyword, j.state, r.Err == nil && !r.TimedOut && r.ExitCode == 0, r.Duration)
	}
}
