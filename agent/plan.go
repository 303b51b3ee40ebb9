package agent

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/vipd/vipd/config"
)

// This file decides what applying a model changes, as a pure function of
// the running configuration and the desired model: plan. The executor
// (apply.go) carries the plan out.
//
// Identity follows keepalived: an instance is the same instance when its
// VRID, address family, interface and unicast/multicast mode are unchanged,
// even under another name. vipd adds the VMAC settings to the interface (a
// VMAC is the interface the instance runs on). The same instance takes every
// other change live; only an identity change replaces it.

// ChangeKind is what a Change does.
type ChangeKind int

// Change kinds, in the order the executor carries them out.
const (
	ChangeRemove      ChangeKind = iota // stop a running instance the model no longer has
	ChangeReplace                       // same name, another identity: stop the old, start the new
	ChangeLeave                         // a member leaves its sync group
	ChangeGroupRemove                   // a sync group the model no longer has
	ChangeGroupAdd                      // a new sync group
	ChangeGroupUpdate                   // a sync group's notify scripts or tracking changed
	ChangeUpdate                        // same instance, applied live (Fields says what)
	ChangeAdd                           // start a new instance
	ChangeJoin                          // an instance joins a sync group
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeRemove:
		return "remove"
	case ChangeReplace:
		return "replace"
	case ChangeLeave:
		return "leave"
	case ChangeGroupRemove:
		return "group-remove"
	case ChangeGroupAdd:
		return "group-add"
	case ChangeGroupUpdate:
		return "group-update"
	case ChangeUpdate:
		return "update"
	case ChangeAdd:
		return "add"
	case ChangeJoin:
		return "join"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change is one step of a plan.
type Change struct {
	Kind ChangeKind
	// Instance is the running name (Remove, Replace, Update, Leave), or the
	// new instance's name (Add, Join of a new instance).
	Instance string
	// NewName is the name in the model when an Update renames the
	// instance; "" otherwise.
	NewName string
	// Group is the sync group (Leave, Join, Group*).
	Group string
	// Fields lists what changed, by the configuration's names (Update,
	// GroupUpdate), sorted.
	Fields []string
	// Why says why an instance is replaced (Replace).
	Why string
}

func (c Change) String() string {
	var b strings.Builder
	b.WriteString(c.Kind.String())
	switch c.Kind {
	case ChangeGroupAdd, ChangeGroupRemove, ChangeGroupUpdate:
		b.WriteString(" " + c.Group)
	default:
		b.WriteString(" " + c.Instance)
		if c.NewName != "" {
			b.WriteString(" -> " + c.NewName)
		}
		if c.Group != "" {
			b.WriteString(" group " + c.Group)
		}
	}
	if len(c.Fields) > 0 {
		b.WriteString(": " + strings.Join(c.Fields, ", "))
	}
	if c.Why != "" {
		b.WriteString(" (" + c.Why + ")")
	}
	return b.String()
}

// Plan is the list of changes that takes the running configuration to the
// desired one; empty when nothing changes.
type Plan []Change

func (p Plan) String() string {
	if len(p) == 0 {
		return "no change\n"
	}
	var b strings.Builder
	for _, c := range p {
		b.WriteString(c.String() + "\n")
	}
	return b.String()
}

// Running is the part of the running state the planner reads.
type Running struct {
	Instances map[string]*config.Instance  // by running name
	GroupOf   map[string]string            // running instance name -> its sync group
	Groups    map[string]*config.SyncGroup // running sync groups by name
}

// RunningFromModel describes the running state m would have once applied.
func RunningFromModel(m *config.Model) Running {
	r := Running{Instances: map[string]*config.Instance{}, GroupOf: map[string]string{}, Groups: map[string]*config.SyncGroup{}}
	if m == nil {
		return r
	}
	for _, ic := range m.Instances {
		r.Instances[ic.Name] = ic
	}
	for _, g := range m.SyncGroups {
		r.Groups[g.Name] = g
		for _, member := range g.Members {
			r.GroupOf[member] = g.Name
		}
	}
	return r
}

// identity is what makes two configurations the same instance.
type identity struct {
	vrid     int
	v6       bool
	ifname   string
	unicast  bool
	vmac     bool
	vmacName string
	vmacXmit bool
}

func identityOf(ic *config.Instance) identity {
	id := identity{vrid: ic.VRID, v6: ic.IsIPv6(), ifname: ic.Interface, unicast: len(ic.UnicastPeers) > 0}
	if ic.UseVMAC {
		id.vmac, id.vmacName, id.vmacXmit = true, ic.VMACName, ic.VMACXmitBase
	}
	return id
}

func (id identity) differs(o identity) string {
	var d []string
	if id.vrid != o.vrid {
		d = append(d, "virtual_router_id")
	}
	if id.v6 != o.v6 {
		d = append(d, "address family")
	}
	if id.ifname != o.ifname {
		d = append(d, "interface")
	}
	if id.unicast != o.unicast {
		d = append(d, "unicast/multicast mode")
	}
	if id.vmac != o.vmac || id.vmacName != o.vmacName || id.vmacXmit != o.vmacXmit {
		d = append(d, "use_vmac")
	}
	return strings.Join(d, ", ") + " changed"
}

// plan returns the changes that take cur to the desired model. It is pure:
// no I/O, no clock, the same answer for the same inputs.
func plan(cur Running, desired *config.Model) Plan {
	want := RunningFromModel(desired)
	var p Plan

	// Match desired instances to running ones: by name when the identity
	// is the same, then by identity alone (a rename).
	match := map[string]string{} // desired name -> running name
	used := map[string]bool{}    // running names matched
	for _, ic := range desired.Instances {
		if rc, ok := cur.Instances[ic.Name]; ok && identityOf(rc) == identityOf(ic) {
			match[ic.Name], used[ic.Name] = ic.Name, true
		}
	}
	byID := map[identity][]string{}
	for _, name := range sortedKeys(cur.Instances) {
		if !used[name] {
			id := identityOf(cur.Instances[name])
			byID[id] = append(byID[id], name)
		}
	}
	for _, ic := range desired.Instances {
		if _, ok := match[ic.Name]; ok {
			continue
		}
		id := identityOf(ic)
		if names := byID[id]; len(names) > 0 {
			match[ic.Name], used[names[0]] = names[0], true
			byID[id] = names[1:]
		}
	}

	// Instances the model no longer has, or whose name now belongs to
	// another identity.
	replaced := map[string]bool{} // running names replaced by a same-name instance
	for _, name := range sortedKeys(cur.Instances) {
		if used[name] {
			continue
		}
		if nc, ok := want.Instances[name]; ok {
			if _, matched := match[name]; !matched {
				p = append(p, Change{Kind: ChangeReplace, Instance: name,
					Why: identityOf(cur.Instances[name]).differs(identityOf(nc))})
				replaced[name] = true
				continue
			}
		}
		p = append(p, Change{Kind: ChangeRemove, Instance: name})
	}

	// Sync group membership: a member that stays keeps its group
	// untouched; one that moves leaves and joins.
	desiredName := make(map[string]string, len(match)) // running name -> desired name
	for d, r := range match {
		desiredName[r] = d
	}
	for _, name := range sortedKeys(cur.Instances) {
		g := cur.GroupOf[name]
		if g == "" || !used[name] {
			continue // removed or replaced instances leave with their stop
		}
		if want.GroupOf[desiredName[name]] != g {
			p = append(p, Change{Kind: ChangeLeave, Instance: name, Group: g})
		}
	}
	for _, g := range sortedKeys(cur.Groups) {
		if _, ok := want.Groups[g]; !ok {
			p = append(p, Change{Kind: ChangeGroupRemove, Group: g})
		}
	}
	for _, g := range sortedKeys(want.Groups) {
		old, ok := cur.Groups[g]
		switch {
		case !ok:
			p = append(p, Change{Kind: ChangeGroupAdd, Group: g})
		default:
			if f := groupFields(old, want.Groups[g]); len(f) > 0 {
				p = append(p, Change{Kind: ChangeGroupUpdate, Group: g, Fields: f})
			}
		}
	}

	// Live updates of matched instances, then new ones.
	for _, ic := range desired.Instances {
		rname, ok := match[ic.Name]
		if !ok {
			continue
		}
		fields := instanceFields(cur.Instances[rname], ic)
		if len(fields) == 0 && rname == ic.Name {
			continue
		}
		c := Change{Kind: ChangeUpdate, Instance: rname, Fields: fields}
		if rname != ic.Name {
			c.NewName = ic.Name
		}
		p = append(p, c)
	}
	for _, ic := range desired.Instances {
		if _, ok := match[ic.Name]; ok {
			continue
		}
		c := Change{Kind: ChangeAdd, Instance: ic.Name}
		if replaced[ic.Name] {
			c.Why = "replaces the running instance of that name"
		}
		p = append(p, c)
	}
	for _, ic := range desired.Instances {
		g := want.GroupOf[ic.Name]
		if g == "" {
			continue
		}
		rname, ok := match[ic.Name]
		if ok && cur.GroupOf[rname] == g {
			continue // stays in its group
		}
		p = append(p, Change{Kind: ChangeJoin, Instance: ic.Name, Group: g})
	}
	sort.SliceStable(p, func(i, j int) bool { return p[i].Kind < p[j].Kind })
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// instanceFields lists the fields of two configurations of one instance
// that differ, by their YAML names, ignoring source positions.
func instanceFields(a, b *config.Instance) []string {
	return diffFields(reflect.ValueOf(*a), reflect.ValueOf(*b))
}

// groupFields lists what differs between two definitions of a sync group,
// ignoring positions and members (membership changes are Leave/Join).
func groupFields(a, b *config.SyncGroup) []string {
	x, y := *a, *b
	x.Members, y.Members = nil, nil
	return diffFields(reflect.ValueOf(x), reflect.ValueOf(y))
}

var posType = reflect.TypeOf(config.Pos{})

// diffFields compares two structs of one type field by field on values
// (never pointers or formatting) and returns the names of the top-level
// fields that differ.
func diffFields(a, b reflect.Value) []string {
	var out []string
	t := a.Type()
	for k := 0; k < t.NumField(); k++ {
		f := t.Field(k)
		if f.Type == posType || !f.IsExported() {
			continue
		}
		if !equalValues(a.Field(k), b.Field(k)) {
			out = append(out, fieldName(f))
		}
	}
	sort.Strings(out)
	return out
}

func fieldName(f reflect.StructField) string {
	if tag := f.Tag.Get("yaml"); tag != "" && tag != "-" {
		if n, _, _ := strings.Cut(tag, ","); n != "" {
			return n
		}
	}
	return f.Name
}

// equalValues is deep equality on values, skipping config.Pos wherever it
// appears and treating a nil and an empty slice or map alike.
func equalValues(a, b reflect.Value) bool {
	if a.Type() == posType {
		return true
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Struct:
		if a.Type().PkgPath() != posType.PkgPath() && a.Type().Comparable() {
			// Value types of other packages (netip.Addr, time.Time's
			// kin) are compared as their package means them to be.
			return a.Equal(b)
		}
		for k := 0; k < a.NumField(); k++ {
			if !a.Type().Field(k).IsExported() {
				continue // config structs carry no hidden state
			}
			if !equalValues(a.Field(k), b.Field(k)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for k := 0; k < a.Len(); k++ {
			if !equalValues(a.Index(k), b.Index(k)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !equalValues(it.Value(), bv) {
				return false
			}
		}
		return true
	case reflect.Func, reflect.Chan:
		return a.IsNil() && b.IsNil()
	}
	if a.CanInterface() {
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
	return true
}
