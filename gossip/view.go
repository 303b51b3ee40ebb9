package gossip

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/api"
)

// Member states, as memberlist names them.
const (
	stateAlive   = "alive"
	stateSuspect = "suspect"
	stateDead    = "dead"
	stateLeft    = "left"
)

// nodeView is what the fleet view is computed from: one node of the
// gossip cluster, its membership state and its last known NodeState.
type nodeView struct {
	Name  string
	Addr  string // gossip HOST:PORT, "" when not known
	State string // alive, suspect, dead, left
	// Heard is when the node itself last sent us something (now for this
	// node); zero when never.
	Heard time.Time
	NodeState
}

// heardSlack absorbs clock skew between the node that became MASTER (its
// since) and this one (when it heard the other MASTER).
const heardSlack = 250 * time.Millisecond

// alive: the node takes part in the cluster (alive or suspect).
func (v *nodeView) alive(self string) bool {
	return v.Name == self || v.State == stateAlive || v.State == stateSuspect
}

// vrrpGroup is one VRRP virtual router as the fleet sees it: the VRID on
// one segment for one address family.
type vrrpGroup struct {
	Segment string
	Family  string
	VRID    int
}

// groupMember is one instance of a virtual router and the node running it.
type groupMember struct {
	node string
	in   *api.FleetInstance
}

type peerKey struct {
	Segment string
	VRID    int
	Addr    string
}

// view computes the fleet view from every node's state: the nodes sorted
// by name (instances by name), the classic VRRP peers the nodes hear, and
// the warnings (split brain, configuration mismatch, maintenance). self is
// this node: its instances count as alive ones whatever memberlist says
// (its own state is always current). A pure function.
//
// Instances without a segment (the agent could not tell the subnet) take
// no part in peers, split brain or mismatch: there is nothing to say they
// share a network with anyone.
func view(nodes []nodeView, self string) api.Fleet {
	f, _ := compute(nodes, self)
	return f
}

// splitBrain is one split brain of the view, with the segment the
// warning's Detail only spells out.
type splitBrain struct {
	// Unconfirmed (in compute's unconfirmed list, not here) are MASTERs
	// not heard since the group's newest MASTER began.
	Group  vrrpGroup
	Nodes  []string
	Detail string
}

// compute is view, also returning the split brains.
func compute(nodes []nodeView, self string) (api.Fleet, []splitBrain) {
	f, splits, _ := computeAll(nodes, self)
	return f, splits
}

// computeAll is compute, also returning the nodes whose MASTER state was
// left out of a split brain for want of news: a node killed while MASTER
// keeps its last state until memberlist declares it dead (seconds), and
// its backup becomes MASTER meanwhile; that is no split brain. Such a
// MASTER counts only once heard after the group's newest MASTER began —
// the caller asks those nodes for their state, and a live one answers in
// milliseconds.
func computeAll(nodes []nodeView, self string) (api.Fleet, []splitBrain, []string) {
	var unconfirmed []string
	var splits []splitBrain
	nodes = slices.Clone(nodes)
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })

	f := api.Fleet{
		Nodes:    make([]api.FleetNode, 0, len(nodes)),
		Peers:    []api.Peer{},
		Warnings: []api.Warning{},
	}
	for i := range nodes {
		v := &nodes[i]
		insts := make([]api.FleetInstance, len(v.Instances))
		for j := range v.Instances {
			insts[j] = cloneInstance(v.Instances[j])
		}
		sort.SliceStable(insts, func(a, b int) bool { return insts[a].Name < insts[b].Name })
		v.Instances = insts
		f.Nodes = append(f.Nodes, api.FleetNode{
			Name:        v.Name,
			Addr:        v.Addr,
			Alive:       v.State == stateAlive || v.State == stateSuspect,
			State:       v.State,
			Maintenance: v.Maintenance,
			Instances:   insts,
			Version:     v.Version,
		})
	}

	// The addresses gossip nodes advertise from, whatever their state: a
	// master heard at one of them is a vipd node, not a classic peer.
	gossipSource := map[peerKey]bool{}
	for _, v := range nodes {
		for _, in := range v.Instances {
			if in.Source != "" && in.Segment != "" {
				gossipSource[peerKey{in.Segment, in.VRID, normAddr(in.Source)}] = true
			}
		}
	}

	// Classic peers: masters heard by alive nodes' BACKUPs that are no
	// gossip node.
	type peerInfo struct {
		api.Peer
		family  string
		heardBy map[string]bool
	}
	peers := map[peerKey]*peerInfo{}
	for _, v := range nodes {
		if !v.alive(self) {
			continue
		}
		for _, in := range v.Instances {
			if in.State != "BACKUP" || in.Master == "" || in.MasterPriority <= 0 || in.Segment == "" {
				continue
			}
			k := peerKey{in.Segment, in.VRID, normAddr(in.Master)}
			if gossipSource[k] {
				continue
			}
			p := peers[k]
			if p == nil {
				p = &peerInfo{
					Peer:    api.Peer{Addr: k.Addr, VRID: in.VRID, State: "MASTER", Segment: in.Segment},
					family:  in.Family,
					heardBy: map[string]bool{},
				}
				peers[k] = p
			}
			p.Priority = max(p.Priority, in.MasterPriority)
			p.heardBy[v.Name] = true
		}
	}
	for _, p := range peers {
		p.HeardBy = sortedKeys(p.heardBy)
		f.Peers = append(f.Peers, p.Peer)
	}
	sort.Slice(f.Peers, func(i, j int) bool {
		a, b := f.Peers[i], f.Peers[j]
		if a.Segment != b.Segment {
			return a.Segment < b.Segment
		}
		if a.VRID != b.VRID {
			return a.VRID < b.VRID
		}
		return a.Addr < b.Addr
	})

	// Alive nodes' instances by virtual router.
	groups := map[vrrpGroup][]groupMember{}
	for i := range nodes {
		v := &nodes[i]
		if !v.alive(self) {
			continue
		}
		for j := range v.Instances {
			in := &v.Instances[j]
			if in.Segment == "" {
				continue
			}
			g := vrrpGroup{in.Segment, in.Family, in.VRID}
			groups[g] = append(groups[g], groupMember{v.Name, in})
		}
	}
	peersOf := map[vrrpGroup][]*peerInfo{}
	for k, p := range peers {
		g := vrrpGroup{k.Segment, p.family, k.VRID}
		peersOf[g] = append(peersOf[g], p)
	}
	allGroups := map[vrrpGroup]bool{}
	for g := range groups {
		allGroups[g] = true
	}
	for g := range peersOf {
		allGroups[g] = true
	}

	heard := map[string]time.Time{}
	for i := range nodes {
		heard[nodes[i].Name] = nodes[i].Heard
	}
	for g := range allGroups {
		// Split brain: two or more MASTERs for one virtual router, each
		// heard after the newest of them began.
		var newest time.Time
		for _, m := range groups[g] {
			if m.in.State == "MASTER" && m.in.Since.After(newest) {
				newest = m.in.Since
			}
		}
		var masterNodes []string
		masterSources := map[string]bool{}
		instNames := map[string]bool{}
		count := 0
		for _, m := range groups[g] {
			if m.in.State != "MASTER" {
				continue
			}
			if m.node != self && heard[m.node].Add(heardSlack).Before(newest) {
				unconfirmed = append(unconfirmed, m.node)
				if m.in.Source != "" {
					masterSources[normAddr(m.in.Source)] = true // not a classic peer either
				}
				continue
			}
			count++
			masterNodes = append(masterNodes, m.node)
			instNames[m.in.Name] = true
			if m.in.Source != "" {
				masterSources[normAddr(m.in.Source)] = true
			}
		}
		var peerAddrs []string
		for _, p := range peersOf[g] {
			if !masterSources[p.Addr] {
				count++
				peerAddrs = append(peerAddrs, p.Addr)
			}
		}
		if count >= 2 {
			sort.Strings(masterNodes)
			masterNodes = slices.Compact(masterNodes)
			sort.Strings(peerAddrs)
			who := slices.Clone(masterNodes)
			for _, a := range peerAddrs {
				who = append(who, a+" (classic VRRP peer)")
			}
			w := api.Warning{
				Kind:     api.WarnSplitBrain,
				Instance: onlyName(instNames),
				VRID:     g.VRID,
				Nodes:    append(masterNodes, peerAddrs...),
				Detail:   fmt.Sprintf("%d MASTERs for VRID %d on %s: %s", count, g.VRID, g.Segment, strings.Join(who, ", ")),
			}
			f.Warnings = append(f.Warnings, w)
			splits = append(splits, splitBrain{Group: g, Nodes: w.Nodes, Detail: w.Detail})
		}

		// Configuration mismatch between nodes of one virtual router.
		if w, ok := mismatch(g, groups[g]); ok {
			f.Warnings = append(f.Warnings, w)
		}
	}

	// One instance name on one segment with different VRIDs on different
	// nodes: the same virtual router configured apart (each VRID alone
	// looks fine).
	type nameKey struct{ segment, family, name string }
	vridsOf := map[nameKey]map[int][]string{}
	for i := range nodes {
		v := &nodes[i]
		if !v.alive(self) {
			continue
		}
		for _, in := range v.Instances {
			if in.Segment == "" {
				continue
			}
			k := nameKey{in.Segment, in.Family, in.Name}
			if vridsOf[k] == nil {
				vridsOf[k] = map[int][]string{}
			}
			vridsOf[k][in.VRID] = append(vridsOf[k][in.VRID], v.Name)
		}
	}
	for k, byVRID := range vridsOf {
		if len(byVRID) < 2 {
			continue
		}
		vrids := slices.Sorted(maps.Keys(byVRID))
		var parts, who []string
		for _, id := range vrids {
			ns := slices.Sorted(slices.Values(byVRID[id]))
			parts = append(parts, fmt.Sprintf("VRID %d on %s", id, strings.Join(ns, ", ")))
			who = append(who, ns...)
		}
		slices.Sort(who)
		f.Warnings = append(f.Warnings, api.Warning{
			Kind: api.WarnConfigMismatch, Instance: k.name, VRID: vrids[0], Nodes: slices.Compact(who),
			Detail: fmt.Sprintf("%s on %s: virtual_router_id differs: %s", k.name, k.segment, strings.Join(parts, "; ")),
		})
	}

	// Maintenance: nodes, and instances of nodes not in maintenance as a
	// whole.
	for _, v := range nodes {
		if v.Maintenance != "" {
			f.Warnings = append(f.Warnings, api.Warning{
				Kind: api.WarnMaintenance, Nodes: []string{v.Name}, Detail: v.Maintenance,
			})
			continue
		}
		for _, in := range v.Instances {
			if cause, ok := maintenanceFault(in.Faults); ok {
				f.Warnings = append(f.Warnings, api.Warning{
					Kind: api.WarnMaintenance, Instance: in.Name, VRID: in.VRID,
					Nodes: []string{v.Name}, Detail: cause,
				})
			}
		}
	}

	sort.Slice(f.Warnings, func(i, j int) bool {
		a, b := f.Warnings[i], f.Warnings[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.VRID != b.VRID {
			return a.VRID < b.VRID
		}
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		if an, bn := strings.Join(a.Nodes, ","), strings.Join(b.Nodes, ","); an != bn {
			return an < bn
		}
		return a.Detail < b.Detail
	})
	sort.Slice(splits, func(i, j int) bool { return splits[i].Detail < splits[j].Detail })
	sort.Strings(unconfirmed)
	return f, splits, slices.Compact(unconfirmed)
}

// mismatch compares the settings nodes must agree on for one virtual
// router: VIPs (as a set), advert interval, VRRP version, authentication.
func mismatch(g vrrpGroup, members []groupMember) (api.Warning, bool) {
	nodeSet := map[string]bool{}
	for _, m := range members {
		nodeSet[m.node] = true
	}
	if len(nodeSet) < 2 {
		return api.Warning{}, false
	}
	// A node with several instances in the group is named node/instance.
	perNode := map[string]int{}
	for _, m := range members {
		perNode[m.node]++
	}
	label := func(node, inst string) string {
		if perNode[node] > 1 {
			return node + "/" + inst
		}
		return node
	}
	type attr struct {
		name  string // with its verb
		value func(*api.FleetInstance) string
	}
	attrs := []attr{
		{"vips differ", func(in *api.FleetInstance) string { return vipSet(in.VIPs) }},
		{"advert_int differs", func(in *api.FleetInstance) string { return orNone(in.AdvertInt) }},
		{"version differs", func(in *api.FleetInstance) string {
			if in.Version == 0 {
				return "none"
			}
			return strconv.Itoa(in.Version)
		}},
		{"auth_hash differs", func(in *api.FleetInstance) string { return orNone(in.AuthHash) }},
	}
	var parts []string
	instNames := map[string]bool{}
	for _, m := range members {
		instNames[m.in.Name] = true
	}
	for _, a := range attrs {
		byValue := map[string][]string{}
		for _, m := range members {
			v := a.value(m.in)
			byValue[v] = append(byValue[v], label(m.node, m.in.Name))
		}
		if len(byValue) < 2 {
			continue
		}
		var vals []string
		for _, v := range sortedKeys(byValue) {
			who := byValue[v]
			sort.Strings(who)
			vals = append(vals, v+" on "+strings.Join(who, ", "))
		}
		parts = append(parts, a.name+" ("+strings.Join(vals, "; ")+")")
	}
	if len(parts) == 0 {
		return api.Warning{}, false
	}
	return api.Warning{
		Kind:     api.WarnConfigMismatch,
		Instance: onlyName(instNames),
		VRID:     g.VRID,
		Nodes:    sortedKeys(nodeSet),
		Detail:   fmt.Sprintf("VRID %d on %s: %s", g.VRID, g.Segment, strings.Join(parts, "; ")),
	}, true
}

// maintenanceFault returns the cause of an instance's maintenance fault
// ("maintenance/<source>"), if it has one.
func maintenanceFault(faults map[string]string) (string, bool) {
	for _, k := range slices.Sorted(maps.Keys(faults)) {
		if strings.HasPrefix(k, "maintenance/") || k == "maintenance" {
			return faults[k], true
		}
	}
	return "", false
}

// vipSet is the VIPs as a sorted set, a host prefix written as the bare
// address ("10.0.0.10/32" = "10.0.0.10").
func vipSet(vips []string) string {
	if len(vips) == 0 {
		return "none"
	}
	out := make([]string, 0, len(vips))
	for _, v := range vips {
		v = strings.TrimSpace(v)
		if p, err := netip.ParsePrefix(v); err == nil && p.Bits() == p.Addr().BitLen() {
			v = p.Addr().String()
		} else if a, err := netip.ParseAddr(v); err == nil {
			v = a.String()
		}
		out = append(out, v)
	}
	sort.Strings(out)
	return strings.Join(slices.Compact(out), ",")
}

// normAddr writes an IP address canonically (an IPv4-mapped IPv6 address
// as IPv4); anything else is kept as it is.
func normAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// onlyName returns the single name in the set, "" when there are several.
func onlyName(names map[string]bool) string {
	if len(names) != 1 {
		return ""
	}
	for n := range names {
		return n
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// cloneInstance copies an instance so the view shares nothing with the
// stored states.
func cloneInstance(in api.FleetInstance) api.FleetInstance {
	in.VIPs = slices.Clone(in.VIPs)
	in.Tracked = slices.Clone(in.Tracked)
	in.Overrides = slices.Clone(in.Overrides)
	in.Faults = maps.Clone(in.Faults)
	return in
}
