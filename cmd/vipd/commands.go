package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"

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

func newMaintCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maint on|off",
		Short: "Put this node, or one of its instances, in maintenance",
		Long: `Put this node (or one of its vrrp_instances) in maintenance, or take it out.

In maintenance an instance hands over at once — a MASTER sends a priority-0
advert, so a backup takes over after Skew_Time, not Master_Down_Interval — and
then stays in FAULT with the cause "maintenance: REASON" until maint off.
maint off clears only the maintenance: an instance that is also in FAULT for
another reason (a tracked interface down) stays in FAULT for that reason.
It is what you would do with keepalived by stopping it or by writing to a
track_file, with a reason shown in vipd status and in the logs.

Today maint acts on the local node (the vipd behind --socket). --node, for
another node of the fleet, needs gossip or etcd: not built yet, so it is
refused. Maintenance survives restarts of vipd, graceful or not: it is kept in
the state directory (vipd run --state-dir) until maint off.`,
		Example: `  # Drain this node before a kernel upgrade
  vipd maint on --reason "kernel upgrade, ticket OPS-123"

  # Move only VI_1 away from this node
  vipd maint on --instance VI_1 --reason "NIC replacement"

  # Back into service
  vipd maint off`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"on", "off"},
		RunE: func(cmd *cobra.Command, args []string) error {
			var on bool
			switch args[0] {
			case "on":
				on = true
			case "off":
			default:
				return fail(exitUsage, "maint %q: want on or off", args[0])
			}
			if node := v.GetString("node"); node != "" {
				return fail(exitUsage, "maint --node %s: maintenance of another node needs gossip or etcd, which are not built yet; run vipd maint on that node", node)
			}
			socket := v.GetString("socket")
			ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
			defer cancel()
			req := api.MaintRequest{On: on, Instance: v.GetString("instance"), Reason: v.GetString("reason")}
			if err := api.NewClient(socket).Maintenance(ctx, req); err != nil {
				return fail(exitFailure, "%v", err)
			}
			what := "node"
			if req.Instance != "" {
				what = "instance " + req.Instance
			}
			fmt.Fprintf(env.stdout, "vipd at %s: %s maintenance %s\n", socket, what, args[0])
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("node", "", "node to put in maintenance (default: this node; other nodes need gossip or etcd)")
	fs.String("instance", "", "only this vrrp_instance (default: every instance of the node)")
	fs.String("reason", "", "why, shown in status and logs")
	addSocketFlag(fs)
	return cmd
}

func newPriorityCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "priority INSTANCE PRIORITY|clear",
		Short: "Override an instance's priority on this node, live",
		Long: `Set the operator's priority override of a vrrp_instance on this node (1..254),
or clear it. The override replaces the configured priority until cleared, across
reloads; tracking weights still apply on top. vipd status shows every override
with its source (operator, etcd); each source clears only its own, and the
operator's wins over etcd's.

A MASTER advertises the new priority at once: a backup with a higher priority
preempts it, as with a priority change in keepalived.conf and a reload.`,
		Example: `  # Make this node the preferred master of VI_1 for now
  vipd priority VI_1 250

  # Back to the configured priority
  vipd priority VI_1 clear`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.PriorityRequest{Instance: args[0]}
			if args[1] == "clear" {
				req.Clear = true
			} else {
				p, err := strconv.Atoi(args[1])
				if err != nil || p < 1 || p > 254 {
					return fail(exitUsage, "priority %q: want 1..254 or clear", args[1])
				}
				req.Priority = p
			}
			socket := v.GetString("socket")
			ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
			defer cancel()
			if err := api.NewClient(socket).OverridePriority(ctx, req); err != nil {
				return fail(exitFailure, "%v", err)
			}
			fmt.Fprintf(env.stdout, "vipd at %s: %s priority %s\n", socket, args[0], args[1])
			return nil
		},
	}
	addSocketFlag(cmd.Flags())
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
