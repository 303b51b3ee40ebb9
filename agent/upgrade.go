package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/vrrp"
)

// preflightTimeout bounds each check of a new binary before vipd upgrade
// re-executes it.
const preflightTimeout = 10 * time.Second

// Upgrade re-executes the binary found at the running executable's path
// in place of this process (same PID), with the same arguments, carrying
// the state: nothing is released, MASTERs resume, no backup notices.
// Before anything moves, the new binary must answer `version` and accept
// the running configuration with `check`; otherwise the upgrade is
// refused and this run goes on. It returns once the run loop has the
// request; the caller's answer goes out before the process re-executes.
func (a *Agent) Upgrade(ctx context.Context) (api.UpgradeResult, error) {
	bin := a.opts.Executable
	if bin == "" {
		return api.UpgradeResult{}, errors.New("upgrade: the path of the running binary is unknown")
	}
	if a.opts.StateDir == "" {
		return api.UpgradeResult{}, errors.New("upgrade: needs a state directory (--state-dir) to carry the state across")
	}
	out, err := preflight(ctx, bin, "version")
	if err != nil {
		return api.UpgradeResult{}, fmt.Errorf("upgrade refused, nothing changed: %s version: %w", bin, err)
	}
	to := strings.TrimSpace(out)
	// The new binary must take this very command line and configuration:
	// run --preflight parses the flags and loads the file, then exits.
	args := append(slices.Clone(a.opts.RunArgs), "--preflight")
	if len(a.opts.RunArgs) == 0 {
		args = []string{"run", "--config", a.opts.ConfigPath, "--preflight"}
	}
	if _, err := preflight(ctx, bin, args...); err != nil {
		return api.UpgradeResult{}, fmt.Errorf("upgrade refused, nothing changed: the new binary does not take `vipd %s`: %w",
			strings.Join(args, " "), err)
	}
	a.applyMu.Lock()
	closed := a.closed
	a.applyMu.Unlock()
	if closed {
		return api.UpgradeResult{}, errors.New("upgrade: vipd is stopping")
	}
	select {
	case a.upgradeReq <- &UpgradeExec{Binary: bin, ReadyWithin: a.readyWithin()}:
	default:
		return api.UpgradeResult{}, errors.New("upgrade: one is already under way")
	}
	return api.UpgradeResult{Binary: bin, From: a.opts.Version, To: to}, nil
}

// preflight runs bin with args and returns its output; a failure carries
// what it printed.
func preflight(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		if msg != "" {
			return "", fmt.Errorf("%w: %s", err, msg)
		}
		return "", err
	}
	return out.String(), nil
}

// readyWithin is how long a new image may take to apply its
// configuration before it is rolled back: the shortest Master_Down_Interval
// less one advert interval and half a second of margin, so that even a
// rollback moves nothing; at least 1 s, at most 10 s.
func (a *Agent) readyWithin() time.Duration {
	d := 10 * time.Second
	if m := a.currentModel(); m != nil {
		for _, ic := range m.Instances {
			if w := vrrp.MasterDownIntervalOf(ic) - ic.AdvertInt.D() - 500*time.Millisecond; w < d {
				d = w
			}
		}
	}
	return max(d, time.Second)
}
