package check

import (
	"context"
	"fmt"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/script"
)

// miscProber is MISC_CHECK: misc_path exits 0 for a success. With
// misc_dynamic, exit 1 is a failure and 2..255 a success that sets the real
// server's weight to the exit status - 2.
type miscProber struct {
	cmd     script.Command
	run     script.Options
	dynamic bool
}

func newMiscProber(c *config.Checker, opts Options) (Prober, error) {
	if c.MiscPath == "" {
		return nil, errorf(c, "no misc_path")
	}
	cmd, err := script.Parse(c.MiscPath)
	if err != nil {
		return nil, errorf(c, "misc_path: %v", err)
	}
	if opts.ScriptSecurity {
		if err := script.CheckSecure(cmd); err != nil {
			return nil, errorf(c, "misc_path %s refused by enable_script_security: %v", c.MiscPath, err)
		}
	}
	// keepalived: misc_timeout 0 (unset) is the delay loop.
	timeout := c.MiscTimeout.D()
	if timeout <= 0 {
		timeout = c.DelayLoop.D()
	}
	if timeout <= 0 {
		return nil, errorf(c, "neither misc_timeout nor delay_loop set")
	}
	run := script.Options{User: opts.ScriptUser, Group: opts.ScriptGroup, Timeout: timeout}
	if c.User != "" {
		run = script.Options{User: c.User, Timeout: timeout}
	}
	return &miscProber{cmd: cmd, run: run, dynamic: c.MiscDynamic}, nil
}

func (p *miscProber) Probe(ctx context.Context) Outcome {
	r := script.Run(ctx, p.cmd, nil, p.run)
	o := Outcome{Duration: r.Duration}
	switch {
	case ctx.Err() != nil:
		o.Cause = "cancelled"
	case r.TimedOut:
		o.Cause = "timeout after " + p.run.Timeout.String() + " (killed)"
	case r.Err != nil:
		o.Cause = r.Err.Error()
	case r.ExitCode == 0:
		o.OK, o.Cause = true, "exit status 0"
	case p.dynamic && r.ExitCode >= 2 && r.ExitCode <= 255:
		w := r.ExitCode - 2
		o.OK, o.Weight = true, &w
		o.Cause = fmt.Sprintf("exit status %d: weight %d", r.ExitCode, w)
	default:
		o.Cause = fmt.Sprintf("exit status %d", r.ExitCode)
	}
	return o
}
