package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
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
	return renderFleetTableColor(w, f, palette{})
}

// renderFleetTableColor is renderFleetTable coloured by p: what is wrong in
// red (a node down, a split brain or a group without MASTER, FAULT), what
// needs a look in yellow (maintenance, a config mismatch, INIT, suspect),
// MASTERs in green.
func renderFleetTableColor(w io.Writer, f api.Fleet, p palette) error {
	// NODES: one line per gossip node; ! marks a node that is not alive.
	fmt.Fprintln(w, "NODES")
	var t table
	if len(f.Nodes) == 0 {
		t.row(plainCell(markNone + "(no nodes)"))
	} else {
		t.row(plainCell(markNone+"NAME"), plainCell("ADDR"), plainCell("STATE"), plainCell("INSTANCES"),
			plainCell("MASTER"), plainCell("MAINTENANCE"))
	}
	for _, n := range f.Nodes {
		name := plainCell(markNone + dash(n.Name))
		if nodeDown(n) {
			name = paintedCell(sgrRed, markProblem).then(sgrNone, dash(n.Name))
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
		maint := paintedCell(sgrYellow, n.Maintenance)
		if n.Maintenance == "" {
			maint = plainCell("-")
		}
		t.row(name, plainCell(dash(n.Addr)), paintedCell(nodeStateColor(n), nodeState(n)),
			plainCell(strconv.Itoa(len(n.Instances))), plainCell(mastersCell), maint)
	}
	if err := t.render(w, p); err != nil {
		return err
	}

	// INSTANCES: * marks a MASTER; ! a line without exactly one MASTER or
	// named by a split_brain or config_mismatch warning.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "INSTANCES (*MASTER, ! not exactly one MASTER or a warning)")
	groups := fleetGroups(f)
	t = table{}
	if len(groups) == 0 {
		t.row(plainCell(markNone + "(no instances)"))
	} else {
		t.row(plainCell(markNone+"SEGMENT"), plainCell("VRID"), plainCell("NAME"), plainCell("ROUTERS"))
	}
	for _, g := range groups {
		first := plainCell(markNone)
		switch warned := g.warning(f.Warnings); {
		case g.masters != 1 || warned == api.WarnSplitBrain:
			first = paintedCell(sgrRed, markProblem)
		case warned != "":
			first = paintedCell(sgrYellow, markProblem)
		}
		var routers cell
		for i, r := range g.routers {
			if i > 0 {
				routers = routers.then(sgrNone, "  ")
			}
			sgr := r.sgr
			if r.master && g.masters > 1 {
				sgr = sgrRed // one of the MASTERs of a split brain
			}
			routers = routers.then(sgr, r.text)
		}
		t.row(first.then(sgrNone, dash(g.segment)), plainCell(strconv.Itoa(g.vrid)),
			plainCell(dash(strings.Join(g.names, "/"))), routers)
	}
	if err := t.render(w, p); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(f.Warnings) == 0 {
		_, err := fmt.Fprintln(w, p.paint(sgrGreen, "no warnings"))
		return err
	}
	fmt.Fprintln(w, "WARNINGS")
	t = table{}
	t.row(plainCell(markNone+"KIND"), plainCell("VRID"), plainCell("INSTANCE"), plainCell("NODES"), plainCell("DETAIL"))
	for _, wa := range f.Warnings {
		vrid := "-"
		if wa.VRID != 0 {
			vrid = strconv.Itoa(wa.VRID)
		}
		t.row(plainCell(markNone).then(warningColor(wa.Kind), dash(wa.Kind)), plainCell(vrid),
			plainCell(dash(wa.Instance)), plainCell(dash(strings.Join(wa.Nodes, ","))), plainCell(dash(wa.Detail)))
	}
	return t.render(w, p)
}

// warningColor: a split brain is red, every other warning yellow.
func warningColor(kind string) string {
	if kind == api.WarnSplitBrain {
		return sgrRed
	}
	return sgrYellow
}

// nodeStateColor: a node down is red, a suspect one yellow.
func nodeStateColor(n api.FleetNode) string {
	switch {
	case nodeDown(n):
		return sgrRed
	case nodeState(n) != "alive":
		return sgrYellow
	default:
		return sgrNone
	}
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
	routers []router // *lb1(150), lb2(100, FAULT), *10.0.0.9(classic, 200)
	masters int      // the MASTERs among them (nodes alive, peers)
}

// router is one router of a fleetGroup as the table shows it.
type router struct {
	text   string // lb2(100, FAULT)
	sgr    string // its colour: its state's, red when its node is down
	master bool
}

// warning is the kind of the warning about g, split_brain before
// config_mismatch; "" when neither names it.
func (g *fleetGroup) warning(ws []api.Warning) string {
	kind := ""
	for _, w := range ws {
		if w.Kind != api.WarnSplitBrain && w.Kind != api.WarnConfigMismatch {
			continue
		}
		if w.VRID != 0 && w.VRID != g.vrid {
			continue
		}
		if w.Instance == "" {
			if w.VRID != g.vrid {
				continue
			}
		} else if !slices.Contains(g.names, w.Instance) {
			continue
		}
		if w.Kind == api.WarnSplitBrain {
			return w.Kind
		}
		kind = w.Kind
	}
	return kind
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
			var r router
			switch {
			case down:
				r = router{text: fmt.Sprintf("%s(%s)", dash(n.Name), nodeState(n)), sgr: sgrRed}
			case in.State == "MASTER":
				g.masters++
				r = router{text: fmt.Sprintf("%s%s(%d)", markMaster, dash(n.Name), prio), master: true}
			case in.State == "BACKUP":
				r = router{text: fmt.Sprintf("%s(%d)", dash(n.Name), prio)}
			default:
				r = router{text: fmt.Sprintf("%s(%d, %s)", dash(n.Name), prio, dash(in.State))}
			}
			if !down {
				r.sgr = stateColor(in.State)
			}
			g.routers = append(g.routers, r)
		}
	}
	for _, p := range f.Peers {
		g := group(p.Segment, p.VRID)
		var r router
		switch p.State {
		case "MASTER":
			g.masters++
			r = router{text: fmt.Sprintf("%s%s(classic, %d)", markMaster, dash(p.Addr), p.Priority), master: true}
		case "":
			r = router{text: fmt.Sprintf("%s(classic, %d)", dash(p.Addr), p.Priority)}
		default:
			r = router{text: fmt.Sprintf("%s(classic, %d, %s)", dash(p.Addr), p.Priority, p.State)}
		}
		r.sgr = stateColor(p.State)
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
