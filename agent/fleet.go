package agent

import (
	"context"
	"errors"

	"github.com/vipd/vipd/api"
)

// fleetLayer is the gossip node as the agent uses it (gossip.Node): the
// fleet view, joins, and maintenance requests for other nodes.
type fleetLayer interface {
	Fleet() api.Fleet
	Join(addrs []string) (int, error)
	SendMaintenance(ctx context.Context, node string, req api.MaintRequest) error
}

var errNoGossip = errors.New("gossip is off on this node: start vipd run with --gossip-bind or --join")

// Fleet is the fleet view through gossip (control socket).
func (a *Agent) Fleet(context.Context) (api.Fleet, error) {
	if a.fleet == nil {
		return api.Fleet{}, errNoGossip
	}
	return a.fleet.Fleet(), nil
}

// Join joins the gossip cluster through addrs (control socket).
func (a *Agent) Join(_ context.Context, req api.JoinRequest) (api.JoinResult, error) {
	if a.fleet == nil {
		return api.JoinResult{}, errNoGossip
	}
	if len(req.Addrs) == 0 {
		return api.JoinResult{}, errors.New("join: no address given (HOST:PORT of a member)")
	}
	n, err := a.fleet.Join(req.Addrs)
	return api.JoinResult{Joined: n}, err
}
