package agent

import (
	"context"
	"errors"
	"net/netip"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/vrrp"
)

// fleetLayer is the gossip node as the agent uses it (gossip.Node): the
// fleet view, joins, maintenance requests for other nodes and the gossip
// keyring of the fleet.
type fleetLayer interface {
	Fleet() api.Fleet
	Join(addrs []string) (int, error)
	SendMaintenance(ctx context.Context, node string, req api.MaintRequest) error
	Keys(ctx context.Context, op api.KeyOp) (api.KeysResult, error)
}

var errNoGossip = errors.New("gossip is off on this node: start vipd run with --join, --gossip-bind or --gossip-key-file")

// Fleet is the fleet view through gossip (control socket).
func (a *Agent) Fleet(context.Context) (api.Fleet, error) {
	fl := a.fleetNode()
	if fl == nil {
		return api.Fleet{}, errNoGossip
	}
	return fl.Fleet(), nil
}

// fleetNode is the gossip node, nil when gossip is off (or not started
// yet: the control socket answers before it is).
func (a *Agent) fleetNode() fleetLayer {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fleet
}

// Join joins the gossip cluster through addrs (control socket).
func (a *Agent) Join(_ context.Context, req api.JoinRequest) (api.JoinResult, error) {
	fl := a.fleetNode()
	if fl == nil {
		return api.JoinResult{}, errNoGossip
	}
	if len(req.Addrs) == 0 {
		return api.JoinResult{}, errors.New("join: no address given (HOST:PORT of a member)")
	}
	n, err := fl.Join(req.Addrs)
	return api.JoinResult{Joined: n}, err
}

// Keys applies a gossip keyring operation on every node of the fleet
// (control socket, vipd keys).
func (a *Agent) Keys(ctx context.Context, op api.KeyOp) (api.KeysResult, error) {
	fl := a.fleetNode()
	if fl == nil {
		return api.KeysResult{}, errNoGossip
	}
	return fl.Keys(ctx, op)
}

// setSource records where ri runs: its advert source and the segment (the
// subnet of the interface address holding it; interface names are local,
// the segment is what nodes share).
func (a *Agent) setSource(ri *runningInstance, ifname string, src netip.Addr) {
	seg := segmentOf(ifname, src, a.segMemo)
	a.mu.Lock()
	ri.src, ri.segment = src, seg
	a.mu.Unlock()
}

// segKey is a memo key of segmentOf (one apply's).
type segKey struct {
	ifname string
	src    netip.Addr
}

// segmentOf is the subnet of the address of ifname that holds src (a /32
// or /128 when the interface has no such address: a unicast source set by
// hand). memo (nil: none) holds the apply's answers.
func segmentOf(ifname string, src netip.Addr, memo map[segKey]netip.Prefix) netip.Prefix {
	if !src.IsValid() {
		return netip.Prefix{}
	}
	k := segKey{ifname, src}
	if p, ok := memo[k]; ok {
		return p
	}
	seg := netip.PrefixFrom(src, src.BitLen())
	if src.Is6() && src.IsLinkLocalUnicast() {
		// Every link has fe80::/64: an IPv6 instance (which advertises
		// from its link-local address) is placed by the interface's first
		// global or unique-local prefix; none: no segment, compared with
		// nothing.
		seg = netip.Prefix{}
	}
	prefixes, _ := vrrp.InterfacePrefixes(ifname) // none: the fallback above
	for _, p := range prefixes {
		ip := p.Addr()
		if ip == src.Unmap() && !ip.IsLinkLocalUnicast() {
			seg = p.Masked()
			break
		}
		if src.Is6() && src.IsLinkLocalUnicast() && ip.Is6() && !ip.IsLinkLocalUnicast() && !seg.IsValid() {
			seg = p.Masked()
		}
	}
	if memo != nil {
		memo[k] = seg
	}
	return seg
}
