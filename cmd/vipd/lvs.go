package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/vipd/vipd/api"
)

func newLVSCmd(env *cliEnv, v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lvs",
		Short: "Show the IPVS virtual and real servers: desired and actual, ipvsadm -Sn style, with health",
		Long: `Show what vipd does with IPVS, the job of keepalived's checker process.

For every virtual_server: its IPVS services, its quorum, and each real server
with its weight, whether its health checks pass (TCP_CHECK, HTTP_GET, SSL_GET,
MISC_CHECK, DNS_CHECK, SMTP_CHECK) with the last result and its cause, whether
it is in the desired pool, and whether IPVS holds it.

Then the desired table and the actual table (vipd's services as last read back
from the kernel), both in the form of ipvsadm -Sn, so "diff" and "ipvsadm -R"
work on them. vipd only ever touches the services of its configuration: other
services in IPVS are neither shown here nor changed.

A kernel without IPVS (no ip_vs module) is said at the top: the checks still
run and the desired table is still computed and shown, nothing is installed,
and VRRP runs as usual.

Exit status: 0 shown, 1 the daemon could not be reached, 2 bad flags.`,
		Example: `  vipd lvs
  vipd lvs -o json | jq '.virtual_servers[].real_servers[] | select(.up | not) | .address'

  # What vipd wants in IPVS, as ipvsadm would save it
  vipd lvs -o json | jq -r .desired

  # The vipd running in network namespace lb2
  vipd lvs --socket /run/vipd/lb2.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			output := v.GetString("output")
			if output != "table" && output != "json" {
				return fail(exitUsage, "-o %q: want table or json", output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
			defer cancel()
			l, err := api.NewClient(v.GetString("socket")).LVS(ctx)
			if err != nil {
				return fail(exitFailure, "%v", err)
			}
			if output == "json" {
				err = writeJSON(env.stdout, l)
			} else {
				err = renderLVSTable(env.stdout, l)
			}
			if err != nil {
				return fail(exitFailure, "lvs: write: %v", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringP("output", "o", "table", "output format: table or json")
	addSocketFlag(fs)
	return cmd
}

// renderLVSTable writes the IPVS side for a person.
func renderLVSTable(w io.Writer, l api.LVS) error {
	var b strings.Builder
	switch {
	case !l.Available:
		fmt.Fprintf(&b, "IPVS: not available (%s): checks run, the desired table is shown, nothing is installed\n", l.Reason)
	case len(l.VirtualServers) == 0:
		fmt.Fprintf(&b, "IPVS: no virtual_server configured\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	if e := l.Reconcile.LastError; e != "" {
		fmt.Fprintf(&b, "last reconcile failed (retrying): %s\n", e)
	}
	tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
	for _, vs := range l.VirtualServers {
		q := "quorum up"
		if !vs.QuorumUp {
			q = "QUORUM LOST"
		}
		extra := ""
		if vs.SorryActive {
			extra += ", sorry server in"
		}
		if vs.Suspended {
			extra += ", suspended (ha_suspend: address not on this node)"
		}
		fmt.Fprintf(tw, "virtual_server %s  %s  (%s: alive weight %d of quorum %d%s)\n", vs.Name, strings.Join(vs.Services, " "), q, vs.AliveWeight, vs.Quorum, extra)
		for _, p := range vs.Problems {
			fmt.Fprintf(tw, "  ! %s\n", p)
		}
		fmt.Fprintf(tw, "  REAL SERVER\tFWD\tWEIGHT\tHEALTH\tIPVS\tLAST CHECK\n")
		for _, rs := range vs.RealServers {
			name := rs.Address
			if rs.Sorry {
				name += " (sorry)"
			}
			weight := fmt.Sprint(rs.Weight)
			if rs.Effective != rs.Weight {
				weight = fmt.Sprintf("%d (%d)", rs.Effective, rs.Weight)
			}
			health := "up"
			switch {
			case rs.Sorry && rs.Up:
				health = "in (quorum lost)"
			case rs.Sorry:
				health = "standby"
			case !rs.Up:
				health = "DOWN"
			}
			in := "-"
			switch {
			case rs.InIPVS && rs.IPVSWeight != nil:
				in = fmt.Sprintf("w %d", *rs.IPVSWeight)
			case rs.InPool && l.Available:
				in = "missing"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", name, rs.Forward, weight, health, in, lastCheck(rs.Checks))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\ndesired (ipvsadm -Sn):\n%s", indentOrNone(l.Desired))
	if l.Available {
		fmt.Fprintf(&b, "\nactual, vipd's services (ipvsadm -Sn):\n%s", indentOrNone(l.Actual))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func lastCheck(cs []api.LVSCheck) string {
	if len(cs) == 0 {
		return "no checker"
	}
	var parts []string
	for _, c := range cs {
		s := c.Type + " " + c.Result
		if c.Cause != "" {
			s += ": " + c.Cause
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func indentOrNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "  (none)\n"
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
