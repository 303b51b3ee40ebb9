package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
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
		Use:   "status [--fleet] [-o table|json] [--watch [--interval 2s]] [--color WHEN]",
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
   "warnings": [{"kind", "instance", "vrid", "nodes", "detail"}]}

Colours (--color auto, the default): on a terminal, STATE is coloured: MASTER
green, BACKUP plain, FAULT red, INIT and STOP yellow; failed tracked items are
red. In --fleet, routers are coloured by state; red: a node down, the ! of a
group without exactly one MASTER or with a split_brain warning, the MASTERs of
a group with several, split_brain; yellow: suspect nodes, maintenance,
config_mismatch. Nothing is coloured when stdout is not a terminal (a pipe, a
file), when NO_COLOR is set (https://no-color.org) or TERM is dumb; --color
always colours anyway (for less -R), --color never turns it off; -o json is
never coloured. Colours never shift a column.

--watch refreshes every --interval (default 2s, at least 100ms) until Ctrl-C
or SIGTERM, and exits 0. On a terminal it clears the screen and redraws under
a header line naming the node and the time; into a pipe or a file each refresh
is appended, the header first, a blank line between refreshes. A refresh that
fails (vipd restarting) prints its error to stderr and the watch goes on.
-o json --watch prints one JSON document per refresh, each on a single line
(NDJSON: one document per line), and no header.`,
		Example: `  # Who is MASTER here, and since when
  vipd status

  # The instances that are not where you expect, for a check script
  vipd status -o json | jq -r '.instances[] | select(.state != "MASTER") | .name'

  # The vipd running in network namespace lb2
  vipd status --socket /run/vipd/lb2.sock

  # Every node of the fleet, the keepalived routers next to them, what is wrong
  vipd status --fleet

  # Alert on a split brain from any node
  vipd status --fleet -o json | jq -e '[.warnings[] | select(.kind == "split_brain")] | length == 0'

  # Watch a failover happen: redraws every 2 s until Ctrl-C
  vipd status --watch

  # The whole fleet, redrawn every second
  vipd status --fleet --watch --interval 1s

  # Colours into a pager; none on a terminal
  vipd status --fleet --color=always | less -R
  vipd status --color=never

  # Log each instance's state every 5 s, one JSON document per line (NDJSON)
  vipd status -o json --watch --interval 5s | jq -c '[.instances[] | {name, state}]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			output := v.GetString("output")
			if output != "table" && output != "json" {
				return fail(exitUsage, "-o %q: want table or json", output)
			}
			color := v.GetString("color")
			if !validColor(color) {
				return fail(exitUsage, "--color %q: want auto, always or never", color)
			}
			interval := v.GetDuration("interval")
			watch := v.GetBool("watch")
			switch {
			case cmd.Flags().Changed("interval") && !watch:
				return fail(exitUsage, "--interval needs --watch")
			case watch && interval < minWatchInterval:
				return fail(exitUsage, "--interval %v: want at least %v", interval, minWatchInterval)
			}
			q := statusQuery{
				client: api.NewClient(v.GetString("socket")),
				fleet:  v.GetBool("fleet"),
				json:   output == "json",
				pal:    palette{on: output == "table" && env.colorOn(color)},
			}
			if !watch {
				return q.once(cmd.Context(), env)
			}
			return q.watch(cmd.Context(), env, interval)
		},
	}
	fs := cmd.Flags()
	fs.StringP("output", "o", "table", "output format: table or json (with --watch: one JSON document per line, NDJSON)")
	fs.Bool("fleet", false, "the whole fleet: gossip nodes, classic VRRP peers, warnings")
	fs.String("color", colorAuto, "colour states: auto (on a terminal unless NO_COLOR is set), always or never")
	fs.BoolP("watch", "w", false, "refresh every --interval until Ctrl-C (clears the screen on a terminal)")
	fs.Duration("interval", 2*time.Second, "time between refreshes of --watch (at least 100ms)")
	addSocketFlag(fs)
	return cmd
}

// statusQuery is what vipd status asks the daemon and how it shows it.
type statusQuery struct {
	client *api.Client
	fleet  bool    // --fleet
	json   bool    // -o json
	pal    palette // the table's colours
}

// statusReport is one answer of the daemon.
type statusReport struct {
	node   string     // the node answering ("" when unknown)
	status api.Status // without --fleet
	fleet  api.Fleet  // with --fleet
}

// fetch asks the daemon for one report; with withNode, a --fleet report
// also gets the node's name (an extra status request, whose failure only
// leaves the name unknown).
func (q statusQuery) fetch(ctx context.Context, withNode bool) (statusReport, error) {
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	if !q.fleet {
		st, err := q.client.Status(ctx)
		return statusReport{node: st.Node, status: st}, err
	}
	f, err := q.client.Fleet(ctx)
	if err != nil {
		return statusReport{}, err
	}
	r := statusReport{fleet: f}
	if withNode {
		if st, err := q.client.Status(ctx); err == nil {
			r.node = st.Node
		}
	}
	return r, nil
}

// render writes r: a table, or JSON indented (for people) or on one line
// (NDJSON, for --watch).
func (q statusQuery) render(w io.Writer, r statusReport, now time.Time, oneLine bool) error {
	write := writeJSON
	if oneLine {
		write = writeJSONLine
	}
	switch {
	case q.fleet && q.json:
		return write(w, normalizedFleet(r.fleet))
	case q.fleet:
		return renderFleetTableColor(w, r.fleet, q.pal)
	case q.json:
		return write(w, normalizedStatus(r.status))
	default:
		return renderStatusTableColor(w, r.status, now, q.pal)
	}
}

// once prints one report.
func (q statusQuery) once(ctx context.Context, env *cliEnv) error {
	r, err := q.fetch(ctx, false)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	if err := q.render(env.stdout, r, env.now(), false); err != nil {
		return fail(exitFailure, "status: write: %v", err)
	}
	return nil
}

// watch prints a report every interval until the user stops it. Each
// refresh is one write: on a terminal the screen cleared, a header and the
// table; elsewhere a blank line between refreshes; with -o json one line.
// A failed request is reported on stderr and the watch goes on; a failed
// write ends it.
func (q statusQuery) watch(ctx context.Context, env *cliEnv, interval time.Duration) error {
	tty := env.stdoutIsTerminal()
	title := "vipd status"
	if q.fleet {
		title += " --fleet"
	}
	return env.watch(ctx, interval, func(ctx context.Context, n int) error {
		r, err := q.fetch(ctx, !q.json)
		if ctx.Err() != nil {
			return nil // stopped while asking: nothing more to show
		}
		now := env.now()
		var b bytes.Buffer
		if !q.json {
			switch {
			case tty:
				b.WriteString(clearScreen)
			case n > 0:
				b.WriteByte('\n')
			}
			b.WriteString(watchHeader(title, r.node, interval, now))
		}
		if err == nil {
			// A bytes.Buffer does not fail.
			_ = q.render(&b, r, now, true)
		}
		if b.Len() > 0 {
			if _, werr := env.stdout.Write(b.Bytes()); werr != nil {
				return fail(exitFailure, "status: write: %v", werr)
			}
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "vipd: %v\n", err)
		}
		return nil
	})
}

// watchHeader is the line above each refresh of the table, and a blank
// line: "vipd status --fleet on lb1, every 2s: 2025-03-01 12:33:12 UTC".
func watchHeader(title, node string, interval time.Duration, now time.Time) string {
	if node != "" {
		title += " on " + node
	}
	return fmt.Sprintf("%s, every %v: %s\n\n", title, interval, now.Format("2006-01-02 15:04:05 MST"))
}

// renderStatusTable writes st as an aligned table; ages are relative to now.
func renderStatusTable(w io.Writer, st api.Status, now time.Time) error {
	return renderStatusTableColor(w, st, now, palette{})
}

// renderStatusTableColor is renderStatusTable with states and failed
// tracked items coloured by p.
func renderStatusTableColor(w io.Writer, st api.Status, now time.Time, p palette) error {
	var t table
	t.row(cells("NAME", "VRID", "IF", "STATE", "PRIO", "EFF", "VIPS", "MASTER", "SINCE", "TRACKED", "CAUSE")...)
	for _, in := range st.Instances {
		t.row(plainCell(dash(in.Name)), plainCell(strconv.Itoa(in.VRID)), plainCell(dash(in.Interface)),
			paintedCell(stateColor(in.State), dash(in.State)),
			plainCell(strconv.Itoa(in.Priority)), plainCell(strconv.Itoa(in.EffectivePriority)),
			plainCell(dash(strings.Join(in.VIPs, ","))), plainCell(dash(in.Master)),
			plainCell(age(in.Since, now)), trackedCell(in.Tracked), plainCell(dash(in.Cause)))
	}
	if err := t.render(w, p); err != nil {
		return err
	}
	if st.Daemon != nil && st.Daemon.Arbiter != nil {
		ar := st.Daemon.Arbiter
		_, err := fmt.Fprintf(w, "\narbiter: %s (%s); claims held: %s\n", ar.Mode, ar.Why, dash(strings.Join(ar.Claims, ",")))
		return err
	}
	return nil
}

// cells are plain cells of the given texts.
func cells(texts ...string) []cell {
	out := make([]cell, len(texts))
	for i, s := range texts {
		out[i] = plainCell(s)
	}
	return out
}

// trackedCell renders tracked items compactly, the failed ones in red:
// "chk_main:FAIL(-2),eth0:ok,prio_file:0(1)".
func trackedCell(items []api.TrackedStatus) cell {
	if len(items) == 0 {
		return plainCell("-")
	}
	var c cell
	for i, it := range items {
		if i > 0 {
			c = c.then(sgrNone, ",")
		}
		sgr := sgrNone
		if it.Kind != "file" && !it.OK {
			sgr = sgrRed
		}
		c = c.then(sgr, trackedItem(it))
	}
	return c
}

// trackedItem is one item of trackedCell: "chk_main:FAIL(-2)".
func trackedItem(it api.TrackedStatus) string {
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
	return p
}

// normalizedStatus is st as -o json prints it: "instances" and each
// instance's "vips" are [] when empty, never null. st is not modified.
func normalizedStatus(st api.Status) api.Status {
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
	return st
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

// writeJSONLine writes v as one line of NDJSON: compact, one newline.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
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
