package agent

import (
	"github.com/vipd/vipd/api"
)

// Status returns the node's status for the API, from the state stream: it
// never waits for an instance or a reload.
func (a *Agent) Status() api.Status {
	return api.Status{Node: a.opts.NodeName, Instances: a.hub.snapshot(), Drops: a.dropTotals()}
}
