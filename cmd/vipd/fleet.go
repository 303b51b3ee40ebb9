package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vipd/vipd/api"
)

// joinTimeout bounds vipd join: the daemon contacts each address in turn,
// and an unreachable one costs a connection timeout.
const joinTimeout = time.Minute

// renderFleetJSON writes f as the contract JSON (DESIGN 3.4), 2-space
// indented, every list as [] when empty, never null. f is not modified.
func renderFleetJSON(w io.Writer, f api.Fleet) error {
	return writeJSON(w, normalizedFleet(f))
}

// normalizedFleet is a copy of f with empty lists instead of nil ones.
func normalizedFleet(f api.Fleet) api.Fleet {
	out := api.Fleet{
		Nodes:    make([]api.FleetNode, len(f.Nodes)),
		Peers:    make([]api.Peer, len(f.Peers)),
		Warnings: make([]api.Warning, len(f.Warnings)),
	}
	for i, n := range f.Nodes {
		insts := make([]api.FleetInstance, len(n.Instances))
		for j, in := range n.Instances {
			if in.VIPs == nil {
				in.VIPs = []string{}
			}
			insts[j] = in
		}
		n.Instances = insts
		out.Nodes[i] = n
	}
	copy(out.Peers, f.Peers)
	for i, w := range f.Warnings {
		if w.Nodes == nil {
			w.Nodes = []string{}
		}
		out.Warnings[i] = w
	}
	return out
}

// Marks in the first two columns of the fleet table.
const (
	markNone    = "  "
	markProblem = "! "
	markMaster  = "*"
)

// renderFleetTable writes f in three sections: NODES, INSTANCES (one line
// per segment and VRID, every router of it on the line) and WARNINGS.
func renderFleetTable(w io.Writer, f api.Fleet) error {
	// NODES: one line per gossip node; ! marks a node that is not alive.
	fmt.Fprintln(w, "NODES")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(f.Nodes) == 0 {
		fmt.Fprintln(tw, markNone+"(no nodes)")
	} else {
		fmt.Fprintln(tw, markNone+"NAME\tADDR\tSTATE\tINSTANCES\tMASTER\tMAINTENANCE")
	}
	for _, n := range f.Nodes {
		mark := markNone
		if nodeDown(n) {
			mark = markProblem
		}
		masters := 0
		for _, in := range n.Instances {
			if in.State == "MASTER" {
				masters++
			}
		}
		// What a node that is down last said is not current: no MASTER.
		mastersCell := strconv.Itoa(masters)
		if nodeDown(n) {
			mastersCell = "-"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%d\t%s\t%s\n", mark, dash(n.Name), dash(n.Addr), nodeState(n),
			len(n.Instances), mastersCell, dash(n.Maintenance))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// INSTANCES: * marks a MASTER; ! a line without exactly one MASTER or
	// named by a split_brain or config_mismatch warning.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "INSTANCES (*MASTER, ! not exactly one MASTER or a warning)")
	groups := fleetGroups(f)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(groups) == 0 {
		fmt.Fprintln(tw, markNone+"(no instances)")
	} else {
		fmt.Fprintln(tw, markNone+"SEGMENT\tVRID\tNAME\tROUTERS")
	}
	for _, g := range groups {
		mark := markNone
		if g.masters != 1 || g.warned(f.Warnings) {
			mark = markProblem
		}
		fmt.Fprintf(tw, "%s%s\t%d\t%s\t%s\n", mark, dash(g.segment), g.vrid,
			dash(strings.Join(g.names, "/")), strings.Join(g.routers, "  "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(f.Warnings) == 0 {
		_, err := fmt.Fprintln(w, "no warnings")
		return err
	}
	fmt.Fprintln(w, "WARNINGS")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, markNone+"KIND\tVRID\tINSTANCE\tNODES\tDETAIL")
	for _, wa := range f.Warnings {
		vrid := "-"
		if wa.VRID != 0 {
			vrid = strconv.Itoa(wa.VRID)
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", markNone, dash(wa.Kind), vrid, dash(wa.Instance),
			dash(strings.Join(wa.Nodes, ",")), dash(wa.Detail))
	}
	return tw.Flush()
}

// nodeState is memberlist's view of n, or alive/dead when it is not given.
func nodeState(n api.FleetNode) string {
	switch {
	case n.State != "":
		return n.State
	case n.Alive:
		return "alive"
	default:
		return "dead"
	}
}

// nodeDown: what n says of its instances is no longer current.
func nodeDown(n api.FleetNode) bool {
	s := nodeState(n)
	return !n.Alive || (s != "alive" && s != "suspect")
}

// fleetGroup is one VRRP group: a VRID on a segment, with every router of
// it, gossip nodes first, then the classic peers.
type fleetGroup struct {
	segment string
	vrid    int
	names   []string // instance names, as the nodes call it
	routers []string // *lb1(150), lb2(100, FAULT), *10.0.0.9(classic, 200)
	masters int      // the MASTERs among them (nodes alive, peers)
}

// warned says whether a split_brain or config_mismatch warning is about g.
func (g *fleetGroup) warned(ws []api.Warning) bool {
	for _, w := range ws {
		if w.Kind != api.WarnSplitBrain && w.Kind != api.WarnConfigMismatch {
			continue
		}
		if w.VRID != 0 && w.VRID != g.vrid {
			continue
		}
		if w.Instance == "" {
			if w.VRID == g.vrid {
				return true
			}
			continue
		}
		if slices.Contains(g.names, w.Instance) {
			return true
		}
	}
	return false
}

// fleetGroups gathers the instances of f's nodes and its peers by segment
// and VRID, sorted by segment then VRID.
func fleetGroups(f api.Fleet) []*fleetGroup {
	type key struct {
		segment string
		vrid    int
	}
	byKey := map[key]*fleetGroup{}
	var groups []*fleetGroup
	group := func(segment string, vrid int) *fleetGroup {
		k := key{segment, vrid}
		g := byKey[k]
		if g == nil {
			g = &fleetGroup{segment: segment, vrid: vrid}
			byKey[k] = g
			groups = append(groups, g)
		}
		return g
	}
	for _, n := range f.Nodes {
		down := nodeDown(n)
		for _, in := range n.Instances {
			g := group(in.Segment, in.VRID)
			if in.Name != "" && !slices.Contains(g.names, in.Name) {
				g.names = append(g.names, in.Name)
			}
			prio := in.EffectivePriority
			if prio == 0 {
				prio = in.Priority
			}
			var r string
			switch {
			case down:
				r = fmt.Sprintf("%s(%s)", dash(n.Name), nodeState(n))
			case in.State == "MASTER":
				g.masters++
				r = fmt.Sprintf("%s%s(%d)", markMaster, dash(n.Name), prio)
			case in.State == "BACKUP":
				r = fmt.Sprintf("%s(%d)", dash(n.Name), prio)
			default:
				r = fmt.Sprintf("%s(%d, %s)", dash(n.Name), prio, dash(in.State))
			}
			g.routers = append(g.routers, r)
		}
	}
	for _, p := range f.Peers {
		g := group(p.Segment, p.VRID)
		var r string
		switch p.State {
		case "MASTER":
			g.masters++
			r = fmt.Sprintf("%s%s(classic, %d)", markMaster, dash(p.Addr), p.Priority)
		case "":
			r = fmt.Sprintf("%s(classic, %d)", dash(p.Addr), p.Priority)
		default:
			r = fmt.Sprintf("%s(classic, %d, %s)", dash(p.Addr), p.Priority, p.State)
		}
		g.routers = append(g.routers, r)
	}
	slices.SortStableFunc(groups, func(a, b *fleetGroup) int {
		if c := compareSegments(a.segment, b.segment); c != 0 {
			return c
		}
		return a.vrid - b.vrid
	})
	return groups
}

// compareSegments orders prefixes by address then length (10.0.2.0/24
// before 10.0.10.0/24, IPv4 before IPv6), anything unparsable after them.
func compareSegments(a, b string) int {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	switch {
	case errA == nil && errB == nil:
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	default:
		return strings.Compare(a, b)
	}
}
