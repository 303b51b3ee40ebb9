package lvs

import (
	"context"
	"log/slog"
	"sync"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/internal/clock"
	"github.com/vipd/vipd/lvs/check"
)

// ChecksOptions configure NewChecks.
type ChecksOptions struct {
	Clock clock.Clock
	Log   *slog.Logger
	// Result receives every checker round's result (Manager.Result).
	Result func(CheckResult)
	// Scripts returns global_defs script_user, its group and
	// enable_script_security, for MISC_CHECK.
	Scripts func() (user, group string, security bool)
}

// NewChecks returns the Checks that runs the checkers on lvs/check's
// scheduler.
func NewChecks(o ChecksOptions) Checks {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	c := &checks{o: o, specs: map[string]*config.Checker{}}
	c.sched = check.NewScheduler(check.SchedulerOptions{Clock: o.Clock, Log: o.Log, OnResult: c.report})
	return c
}

type checks struct {
	o     ChecksOptions
	sched *check.Scheduler

	mu    sync.Mutex
	specs map[string]*config.Checker // by ID, for reports
}

// Set implements Checks. A checker that cannot be built (a misc_path
// refused by enable_script_security, say) is reported failed with the
// reason: its real server is not trusted on a check that never runs.
func (c *checks) Set(specs []CheckSpec) {
	var user, group string
	var security bool
	if c.o.Scripts != nil {
		user, group, security = c.o.Scripts()
	}
	list := make([]check.Check, 0, len(specs))
	byID := make(map[string]*config.Checker, len(specs))
	var broken []CheckResult
	for _, s := range specs {
		byID[s.ID] = s.Checker
		p, err := check.New(s.Checker, check.Options{VirtualHost: s.VirtHost, ScriptUser: user, ScriptGroup: group, ScriptSecurity: security})
		if err != nil {
			c.o.Log.Error("lvs: checker cannot run; its real server counts as down", "checker", s.ID, "err", err)
			broken = append(broken, CheckResult{ID: s.ID, Type: s.Checker.Type, Target: check.Target(s.Checker), Cause: err.Error()})
			continue
		}
		list = append(list, check.Check{ID: s.ID, Config: s.Checker, Prober: p, StartDown: s.StartDown})
	}
	c.mu.Lock()
	c.specs = byID
	c.mu.Unlock()
	if err := c.sched.Set(list); err != nil {
		c.o.Log.Error("lvs: checkers not all accepted", "err", err)
	}
	for _, r := range broken {
		c.o.Result(r)
	}
}

// Run implements Checks.
func (c *checks) Run(ctx context.Context) {
	if err := c.sched.Run(ctx); err != nil && ctx.Err() == nil {
		c.o.Log.Error("lvs: checker scheduler stopped", "err", err)
	}
}

func (c *checks) report(r check.Report) {
	c.mu.Lock()
	ck := c.specs[r.ID]
	c.mu.Unlock()
	if ck == nil {
		return
	}
	c.o.Result(CheckResult{ID: r.ID, Type: ck.Type, Target: check.Target(ck), Up: r.Up, OK: r.Outcome.OK,
		Cause: r.Outcome.Cause, Weight: r.Outcome.Weight, At: r.At, Duration: r.Outcome.Duration})
}
