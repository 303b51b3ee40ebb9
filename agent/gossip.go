package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/gossip"
)

// DefaultGossipBind is where gossip listens when it is on (--join or
// --gossip-key-file) and --gossip-bind is not given.
const DefaultGossipBind = "0.0.0.0:7946"

// gossipOn reports whether the options turn gossip on.
func (o Options) gossipOn() bool {
	return o.GossipBind != "" || len(o.Join) > 0 || o.GossipKeyFile != ""
}

// startGossip starts the fleet layer when the options ask for it. The
// returned stop leaves the cluster gracefully (a stop of vipd); a restart
// exit does not call it, so the node comes back under the same name
// without having left.
func (a *Agent) startGossip() (collector prometheus.Collector, stop func(), err error) {
	if !a.opts.gossipOn() {
		return nil, func() {}, nil
	}
	bind := a.opts.GossipBind
	if bind == "" {
		bind = DefaultGossipBind
	}
	n, err := gossip.New(gossip.Config{
		NodeName:   a.opts.NodeName,
		Bind:       bind,
		Advertise:  a.opts.GossipAdvertise,
		Join:       a.opts.Join,
		KeyFile:    a.opts.GossipKeyFile,
		TuningFile: a.opts.GossipTuningFile,
		Log:        a.log.With("component", "gossip"),
	}, a)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	// A bind error shows at once: give Run a moment to say so.
	select {
	case err := <-done:
		cancel()
		if err != nil {
			return nil, nil, err
		}
		return nil, func() {}, nil
	case <-time.After(100 * time.Millisecond):
	}
	a.mu.Lock()
	a.fleet = n
	a.mu.Unlock()
	return n.Collector(), func() {
		cancel()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			a.log.Warn("gossip did not leave the cluster in time")
		}
	}, nil
}

// Snapshot is this node's share of the fleet view (gossip.Local).
func (a *Agent) Snapshot() gossip.NodeState {
	st := a.hub.snapshot()
	a.mu.Lock()
	defer a.mu.Unlock()
	ns := gossip.NodeState{Version: a.opts.Version}
	for _, mt := range a.maint {
		if mt.nodeOn {
			ns.Maintenance = mt.node
			if ns.Maintenance == "" {
				ns.Maintenance = "maintenance"
			}
		}
	}
	for _, s := range st {
		ri := a.running[s.Name]
		if ri == nil {
			continue
		}
		fi := api.FleetInstance{InstanceStatus: s, Family: "ipv4", AdvertInt: ri.cfg.AdvertInt.D().String(),
			AuthHash: authHash(ri.cfg.Auth)}
		if ri.cfg.IsIPv6() {
			fi.Family = "ipv6"
		}
		if ri.src.IsValid() {
			fi.Source = ri.src.String()
		}
		if ri.segment.IsValid() {
			fi.Segment = ri.segment.String()
		}
		ns.Instances = append(ns.Instances, fi)
	}
	return ns
}

// authHash identifies authentication settings without revealing them:
// nodes of one VRID must agree ("" when none).
func authHash(au *config.Auth) string {
	if au == nil || au.Type == "" {
		return ""
	}
	h := sha256.Sum256([]byte("vipd-auth\x00" + au.Type + "\x00" + au.Pass))
	return hex.EncodeToString(h[:6])
}
