package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/vipd/vipd/api"
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
	args := []string{"check", "--config", a.opts.ConfigPath}
	for _, id := range a.opts.ConfigIDs {
		args = append(args, "--config-id", id)
	}
	if _, err := preflight(ctx, bin, args...); err != nil {
		return api.UpgradeResult{}, fmt.Errorf("upgrade refused, nothing changed: the new binary rejects %s: %w", a.opts.ConfigPath, err)
	}
	a.applyMu.Lock()
	closed := a.closed
	a.applyMu.Unlock()
	if closed {
		return api.UpgradeResult{}, errors.New("upgrade: vipd is stopping")
	}
	select {
	case a.upgradeReq <- bin:
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
