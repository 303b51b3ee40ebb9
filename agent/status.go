package agent

import (
	"os"

	"github.com/vipd/vipd/api"
)

// Status returns the node's status for the API, from the state stream: it
// never waits for an instance or a reload.
func (a *Agent) Status() api.Status {
	return api.Status{Node: a.opts.NodeName, Instances: a.hub.snapshot(), Drops: a.dropTotals(), Daemon: a.daemon()}
}

// daemon describes the process for status.
func (a *Agent) daemon() *api.Daemon {
	a.mu.Lock()
	d := &api.Daemon{PID: os.Getpid(), Version: a.opts.Version, Started: a.started,
		StateDir: a.opts.StateDir, Ready: a.applied.Load(), Resumed: a.resumed, Upgrade: a.opts.UpgradeNote}
	side := a.arbiter
	a.mu.Unlock()
	if side != nil {
		mode, why := side.arb.Mode()
		claims := side.arb.Claims()
		if claims == nil {
			claims = []string{}
		}
		d.Arbiter = &api.ArbiterStatus{Mode: string(mode), Why: why, Claims: claims}
	}
	return d
}
