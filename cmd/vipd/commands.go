package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"

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

func newJoinCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "join HOST:PORT...",
		Short: "Join the gossip cluster through the given nodes",
		Long: `Ask the running vipd to join the gossip cluster through one or more of its
members, given by their gossip address (their --gossip-bind HOST:PORT). One
member that answers is enough: the others learn of this node from it.

Gossip carries, between the vipd of a fleet, each node's name and liveness,
the state of its instances and the classic VRRP routers it hears (for vipd
status --fleet), and maintenance requests for another node (vipd maint
--node). It never decides who is MASTER: VRRP on the wire does, with or
without gossip.

vipd run --join HOST:PORT,... does the same at start; vipd join is for a node
started alone, or to point it at other members. A partition needs no vipd
join: each side keeps running VRRP, and when the network heals the nodes find
each other again by themselves.

The daemon must run with gossip (--gossip-bind or --join); otherwise it says
so and vipd join exits 1, as it does when no member answers.`,
		Example: `  # Join through two members; one answering is enough
  vipd join 10.0.0.12:7946 10.0.0.13:7946

  # The vipd of network namespace lb2
  vipd join --socket /run/vipd/lb2.sock 10.0.0.12:7946`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addrs := splitList(args)
			if len(addrs) == 0 {
				return fail(exitUsage, "join: want HOST:PORT of at least one member of the gossip cluster")
			}
			socket := v.GetString("socket")
			ctx, cancel := context.WithTimeout(cmd.Context(), joinTimeout)
			defer cancel()
			res, err := api.NewClient(socket).Join(ctx, addrs)
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			if res.Joined == 0 {
				return fail(exitFailure, "vipd at %s: join: no member answered (%s)", socket, strings.Join(addrs, ", "))
			}
			fmt.Fprintf(env.stdout, "vipd at %s: joined through %s\n", socket, plural(res.Joined, "node"))
			return nil
		},
	}
	addSocketFlag(cmd.Flags())
	return cmd
}

func newMaintCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maint on|off",
		Short: "Put a node of the fleet, or one of its instances, in maintenance",
		Long: `Put a node (or one of its vrrp_instances) in maintenance, or take it out:
this node, or with --node another node of the fleet.

In maintenance an instance hands over at once — a MASTER sends a priority-0
advert, so a backup takes over after Skew_Time, not Master_Down_Interval — and
then stays in FAULT with the cause "maintenance: REASON" until maint off.
maint off clears only the maintenance: an instance that is also in FAULT for
another reason (a tracked interface down) stays in FAULT for that reason.
It is what you would do with keepalived by stopping it or by writing to a
track_file, with a reason shown in vipd status and in the logs.

Without --node, maint acts on the local node (the vipd behind --socket).
--node NAME acts on another node of the fleet, from any node: the local vipd
sends the request by gossip to NAME (the name vipd status --fleet shows), and
NAME applies it as its own operator's maintenance. NAME must be alive in
gossip, and gossip on here (vipd run --gossip-bind or --join); otherwise the
request is refused and maint exits 1. --node with this node's own name is the
same as no --node.

Maintenance survives restarts of vipd, graceful or not: the node that applies
it keeps it in its state directory (vipd run --state-dir) until maint off.

With etcd (vipd run --etcd-endpoints), maint writes the key
PREFIX/maintenance/NODE[/INSTANCE] instead (deleted by maint off), with or
without --node: every node applies it from etcd, and deleting the key with
etcdctl ends it too. When etcd cannot be written, maint on this node still
applies it locally (and says so in the log); --node then falls back to gossip.`,
		Example: `  # Drain this node before a kernel upgrade
  vipd maint on --reason "kernel upgrade, ticket OPS-123"

  # Move only VI_1 away from this node
  vipd maint on --instance VI_1 --reason "NIC replacement"

  # Back into service
  vipd maint off

  # From any node: drain lb2 (sent to it by gossip)
  vipd maint on --node lb2 --reason "PSU swap"
  vipd maint off --node lb2`,
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
			socket := v.GetString("socket")
			ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
			defer cancel()
			req := api.MaintRequest{On: on, Instance: v.GetString("instance"), Reason: v.GetString("reason"), Node: v.GetString("node")}
			if err := api.NewClient(socket).Maintenance(ctx, req); err != nil {
				return fail(exitFailure, "%v", err)
			}
			if req.Node != "" {
				scope := "every instance"
				if req.Instance != "" {
					scope = req.Instance
				}
				fmt.Fprintf(env.stdout, "vipd at %s: node %s: maintenance %s (%s)\n", socket, req.Node, args[0], scope)
				return nil
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
	fs.String("node", "", "node to put in maintenance, by its name in gossip (default: this node)")
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
