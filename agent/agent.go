// Package agent wires vipd together: it builds the runtime components (VRRP
// instances, the VIP plane, trackers) from a config.Model, applies the
// difference when the model changes (SIGHUP, vipd reload), owns the runtime
// state and publishes snapshots to the API. It does no parsing and opens no
// sockets itself.
package agent

import (
	"context"
	"errors"
	"log/slog"
)

// Options are the settings of one vipd process (DESIGN.md 3.1, `vipd run`).
type Options struct {
	ConfigPath    string
	NodeName      string // default: hostname
	SocketPath    string // control socket; default /run/vipd/vipd.sock
	GossipBind    string
	Join          []string
	GossipKeyFile string
	EtcdEndpoints []string
	EtcdPrefix    string
	MetricsListen string
	Logger        *slog.Logger
}

// Run runs the daemon until ctx is cancelled (SIGTERM/SIGINT), then shuts
// down gracefully: masters send priority 0, VIPs are removed, notify stop runs.
// Reload requests arrive through the control socket or Reload.
func Run(ctx context.Context, opts Options) error {
	return errors.New("agent: runtime not implemented yet")
}
