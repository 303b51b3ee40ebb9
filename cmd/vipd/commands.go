package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/api"
)

func newReloadCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Re-read the configuration and apply only what changed (SIGHUP)",
		Long: `Ask the running vipd to re-read its --config file and apply the difference,
exactly like sending it SIGHUP (kill -HUP, systemctl reload vipd) but with an
answer: vipd reload waits for the outcome and exits 1 with the FILE:LINE
errors when the new file is rejected.

Unchanged instances are not touched: no state change, no VIP dropped, no
advert missed. A rejected file changes nothing; the running configuration
stays in force. Run vipd check --config FILE first to see problems without
asking the daemon.`,
		Example: `  # After editing keepalived.conf
  vipd check --config /etc/keepalived/keepalived.conf && vipd reload

  # The vipd of network namespace lb2
  vipd reload --socket /run/vipd/lb2.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			socket := v.GetString("socket")
			ctx, cancel := context.WithTimeout(cmd.Context(), reloadTimeout)
			defer cancel()
			if err := api.NewClient(socket).Reload(ctx); err != nil {
				return fail(exitFailure, "%v", err)
			}
			fmt.Fprintf(env.stdout, "vipd at %s: configuration reloaded\n", socket)
			return nil
		},
	}
	addSocketFlag(cmd.Flags())
	return cmd
}

// notImplemented is what the commands of later releases answer.
func notImplemented(what string) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		return fail(exitUsage, "%s: not implemented yet", what)
	}
}

func newJoinCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "join HOST:PORT...",
		Short: "Join the gossip cluster through the given nodes (not implemented yet)",
		Long: `Ask the running vipd to join the gossip cluster through one or more of its
members, as --join does at startup. Gossip carries node and instance states
for vipd status --fleet, and maintenance requests when etcd is not used.

Not implemented yet: it needs gossip. The command exits 2.`,
		Example: `  vipd join 10.0.0.12:7946 10.0.0.13:7946`,
		Args:    cobra.MinimumNArgs(1),
		RunE:    notImplemented("join (needs gossip)"),
	}
	addSocketFlag(cmd.Flags())
	return cmd
}

func newMaintCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maint on|off",
		Short: "Put a node or one instance in maintenance (not implemented yet)",
		Long: `Put a node (or one of its vrrp_instances) in maintenance, or take it out.
In maintenance an instance hands over at once (a MASTER sends a priority-0
advert) and stays in FAULT with the cause "maintenance" until maint off,
across restarts. It is what you would do with keepalived by stopping it or by
a track_file you write to, but fleet-wide and recorded with a reason.

Not implemented yet: it needs gossip or etcd. The command exits 2.`,
		Example: `  # Drain this node before a kernel upgrade
  vipd maint on --reason "kernel upgrade, ticket OPS-123"

  # Move only VI_1 away from lb2
  vipd maint on --node lb2 --instance VI_1 --reason "NIC replacement"

  vipd maint off --node lb2`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"on", "off"},
		RunE:      notImplemented("maint (needs gossip or etcd)"),
	}
	fs := cmd.Flags()
	fs.String("node", "", "node to put in maintenance (default: this node)")
	fs.String("instance", "", "only this vrrp_instance (default: every instance of the node)")
	fs.String("reason", "", "why, shown in status and logs")
	addSocketFlag(fs)
	return cmd
}

func newLVSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lvs",
		Short: "Show the IPVS state, ipvsadm -Sn style (not implemented yet)",
		Long: `Show the IPVS virtual and real servers vipd manages, with the health check
result of each real server, in the form of ipvsadm -Sn.

Not implemented yet: it needs the LVS runtime. Until then, ipvsadm -Ln shows
the kernel's table. The command exits 2.`,
		Example: `  vipd lvs
  vipd lvs --socket /run/vipd/lb2.sock`,
		Args: cobra.NoArgs,
		RunE: notImplemented("lvs (needs the LVS runtime)"),
	}
	addSocketFlag(cmd.Flags())
	return cmd
}

func newVersionCmd(env *cliEnv) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print vipd's version and the Go version it was built with",
		Long: `Print vipd's version (set at build time with
-ldflags "-X main.version=...", "dev" otherwise), the Go version and platform.`,
		Example: `  vipd version`,
		Args:    cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(env.stdout, versionLine())
		},
	}
}

func versionLine() string {
	return fmt.Sprintf("vipd %s (%s %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
