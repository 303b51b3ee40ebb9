package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/api"
)

// clientTimeout bounds a status request; reloadTimeout a reload, which may
// run scripts and touch many addresses.
const (
	clientTimeout = 10 * time.Second
	reloadTimeout = time.Minute
)

func newStatusCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [--fleet] [-o table|json]",
		Short: "Show the state of every vrrp_instance on this node, or of the fleet",
		Long: `Ask the running vipd, over its control socket, for the state of each
vrrp_instance: what keepalived only tells you in syslog lines and
/tmp/keepalived.data dumps.

Columns (-o table, the default):
  NAME    vrrp_instance name        VRID    virtual_router_id
  IF      interface                 STATE   INIT, BACKUP, MASTER, FAULT or STOP
  PRIO    configured priority       EFF     effective priority, after track_script
                                            and track_interface weights
  VIPS    virtual_ipaddress list    MASTER  address of the master seen on the wire
  SINCE   time in this state        CAUSE   why the last transition happened

-o json prints the same as a stable JSON document for scripts and monitoring:
  {"node": NAME, "instances": [{"name", "vrid", "interface", "state",
   "priority", "effective_priority", "vips": [...], "master", "since" (RFC 3339),
   "cause", "version", "tracked": [...], "faults": {KEY: CAUSE},
   "overrides": [{"source", "priority"}], "sync_group", "gate_held"}],
   "drops": {REASON: COUNT}}
  faults are keyed by cause (tracking/interface/eth0, sync_group,
  maintenance/operator, ...);
  overrides come from vipd priority (source operator); drops count received
  adverts refused, by reason (auth_pass, interval_mismatch, bad_ttl, ...).

--fleet shows the whole fleet as this node sees it through gossip (vipd run
--gossip-bind/--join; without gossip the daemon says so and status exits 1):
  NODES      every gossip node: its gossip address, memberlist's state (alive,
             suspect, dead, left; ! when dead or left), its number of
             instances and of MASTERs, its maintenance reason
  INSTANCES  one line per VRRP group (a VRID on a segment, the subnet of the
             interface): every router of it, gossip nodes as NAME(PRIORITY),
             NAME(PRIORITY, STATE) when not BACKUP, NAME(dead) when the node
             is down, then the classic VRRP routers heard on the segment
             (keepalived without vipd, a router) as ADDR(classic, PRIORITY);
             * marks each MASTER, ! a group without exactly one MASTER or
             named by a warning
  WARNINGS   split_brain (several MASTERs for one VRID on a segment),
             config_mismatch (nodes of one VRID whose settings differ, e.g.
             VIPs, advert_int or authentication), maintenance (a node or an
             instance in maintenance), or "no warnings"

--fleet -o json is the same as a stable JSON document (lists are [] when empty):
  {"nodes": [{"name", "addr", "alive", "state", "maintenance", "version",
   "instances": [the objects above, plus "family", "segment", "source",
   "advert_int", "auth_hash"]}],
   "peers": [{"addr", "vrid", "priority", "state", "segment", "heard_by"}],
   "warnings": [{"kind", "instance", "vrid", "nodes", "detail"}]}`,
		Example: `  # Who is MASTER here, and since when
  vipd status

  # The instances that are not where you expect, for a check script
  vipd status -o json | jq -r '.instances[] | select(.state != "MASTER") | .name'

  # The vipd running in network namespace lb2
  vipd status --socket /run/vipd/lb2.sock

  # Every node of the fleet, the keepalived routers next to them, what is wrong
  vipd status --fleet

  # Alert on a split brain from any node
  vipd status --fleet -o json | jq -e '[.warnings[] | select(.kind == "split_brain")] | length == 0'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			output := v.GetString("output")
			if output != "table" && output != "json" {
				return fail(exitUsage, "-o %q: want table or json", output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
			defer cancel()
			client := api.NewClient(v.GetString("socket"))
			if v.GetBool("fleet") {
				f, err := client.Fleet(ctx)
				if err != nil {
					return fail(exitFailure, "%v", err)
				}
				if output == "json" {
					err = renderFleetJSON(env.stdout, f)
				} else {
					err = renderFleetTable(env.stdout, f)
				}
				if err != nil {
					return fail(exitFailure, "status: write: %v", err)
				}
				return nil
			}
			st, err := client.Status(ctx)
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			if output == "json" {
				err = renderStatusJSON(env.stdout, st)
			} else {
				err = renderStatusTable(env.stdout, st, env.now())
			}
			if err != nil {
				return fail(exitFailure, "status: write: %v", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringP("output", "o", "table", "output format: table or json")
	fs.Bool("fleet", false, "the whole fleet: gossip nodes, classic VRRP peers, warnings")
	addSocketFlag(fs)
	return cmd
}

// renderStatusTable writes st as an aligned table; ages are relative to now.
func renderStatusTable(w io.Writer, st api.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVRID\tIF\tSTATE\tPRIO\tEFF\tVIPS\tMASTER\tSINCE\tTRACKED\tCAUSE")
	for _, in := range st.Instances {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
			dash(in.Name), in.VRID, dash(in.Interface), dash(in.State),
			in.Priority, in.EffectivePriority,
			dash(strings.Join(in.VIPs, ",")), dash(in.Master),
			age(in.Since, now), dash(trackedSummary(in.Tracked)), dash(in.Cause))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.Daemon != nil && st.Daemon.Arbiter != nil {
		ar := st.Daemon.Arbiter
		_, err := fmt.Fprintf(w, "\narbiter: %s (%s); claims held: %s\n", ar.Mode, ar.Why, dash(strings.Join(ar.Claims, ",")))
		return err
	}
	return nil
}

// trackedSummary renders tracked items compactly: "chk_main:FAIL(-2),eth0:ok".
func trackedSummary(items []api.TrackedStatus) string {
	parts := make([]string, 0, len(items))
	for _, it := range items {
		p := it.Name + ":"
		switch {
		case it.Kind == "file":
			p += strconv.Itoa(it.Value)
		case it.OK:
			p += "ok"
		default:
			p += "FAIL"
		}
		if it.Weight != 0 {
			p += "(" + strconv.Itoa(it.Weight) + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

// renderStatusJSON writes st as the contract JSON, 2-space indented.
func renderStatusJSON(w io.Writer, st api.Status) error {
	if st.Instances == nil {
		st.Instances = []api.InstanceStatus{}
	}
	insts := make([]api.InstanceStatus, len(st.Instances))
	for i, in := range st.Instances {
		if in.VIPs == nil {
			in.VIPs = []string{}
		}
		insts[i] = in
	}
	st.Instances = insts
	return writeJSON(w, st)
}

// writeJSON writes v as the CLI's JSON: 2-space indented, one newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age renders how long ago t was, compactly: 42s, 3m12s, 5h07m, 2d03h.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0 // clock skew between the daemon and us
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + "s"
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
}
