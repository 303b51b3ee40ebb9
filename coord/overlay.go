package coord

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/vipd/vipd/config"
)

// Overlay is what the store says on top of the configuration file, read
// from one snapshot of the keys under the prefix (Build, BuildFrom). It is a
// value computed by a pure function: no I/O, and nothing in it is modified
// afterwards by this package (Merge copies what it takes).
type Overlay struct {
	// Instances, VirtualServers and Scripts are the config/* objects by
	// name. They replace the file's objects of the same name (Merge).
	Instances      map[string]*config.Instance
	VirtualServers map[string]*config.VirtualServer
	Scripts        map[string]*config.Script
	// Priorities are the priority overrides by {instance, node}.
	Priorities map[[2]string]int
	// Maintenance holds the reasons of maintenance/<node> keys by node.
	Maintenance map[string]string
	// InstanceMaintenance holds the reasons of maintenance/<node>/<instance>
	// keys by {node, instance}.
	InstanceMaintenance map[[2]string]string
	// Rejected lists the keys whose key or value is bad, in key order.
	Rejected []Rejection
	// Warnings are the parse warnings of the config/* values taken from
	// this snapshot, each at "etcd:<key>:LINE" (every build repeats those of
	// the values that did not change).
	Warnings config.Diagnostics

	// keywords are where the keywords of the config/* objects written as
	// keepalived blocks are, for validation messages.
	keywords config.KeywordPositions
}

// Rejection is a key of the snapshot that was not taken: an unknown or
// malformed key, or a value that does not decode. Its error names the key.
type Rejection struct {
	Key string
	Err error
	// Kept reports that the key's last good value, from the previous
	// overlay given to BuildFrom or ComposeFrom, stays in force.
	Kept bool
}

// String renders the rejection as one log line (the errors of a config
// value joined by "; ").
func (r Rejection) String() string {
	msg := strings.ReplaceAll(r.Err.Error(), "\n", "; ")
	if r.Kept {
		return msg + " (rejected; the last good value stays in force)"
	}
	return msg + " (rejected)"
}

// Build reads a full snapshot of the keys under prefix (key -> value) into
// an Overlay. A bad key or value goes to Rejected and never stops the
// others; status/ and arbiter/ keys are not part of the overlay and are
// skipped. Build is BuildFrom with no previous overlay.
func Build(prefix string, kvs map[string][]byte) Overlay {
	return BuildFrom(prefix, kvs, Overlay{})
}

// BuildFrom is Build that keeps the last good state: when the value of a key
// is bad and prev (the overlay of the previous snapshot) has a value for the
// same key, prev's value stays in force (Rejection.Kept). A key absent from
// kvs is gone, whatever prev had.
func BuildFrom(prefix string, kvs map[string][]byte, prev Overlay) Overlay {
	ov := Overlay{
		Instances:           map[string]*config.Instance{},
		VirtualServers:      map[string]*config.VirtualServer{},
		Scripts:             map[string]*config.Script{},
		Priorities:          map[[2]string]int{},
		Maintenance:         map[string]string{},
		InstanceMaintenance: map[[2]string]string{},
	}
	keys := make([]string, 0, len(kvs))
	for k := range kvs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	reject := func(key string, err error, kept bool) {
		ov.Rejected = append(ov.Rejected, Rejection{Key: key, Err: err, Kept: kept})
	}
	for _, k := range keys {
		val := kvs[k]
		key, err := ParseKey(prefix, k)
		if err != nil {
			reject(k, err, false)
			continue
		}
		if len(val) > MaxValueSize && key.Kind != KindStatus && key.Kind != KindArbiter {
			reject(k, &KeyError{Key: k, Err: fmt.Errorf("value of %d bytes: over the limit of %d bytes, not read", len(val), MaxValueSize)},
				ov.keepLastGood(key, prev))
			continue
		}
		switch key.Kind {
		case KindInstance, KindVirtualServer, KindScript:
			ov.takeObject(key, k, val, prev, reject)
		case KindPriority:
			ik := [2]string{key.Instance, key.Node}
			p, err := DecodePriority(val)
			if err != nil {
				old, kept := prev.Priorities[ik]
				if kept {
					ov.Priorities[ik] = old
				}
				reject(k, &KeyError{Key: k, Err: err}, kept)
				continue
			}
			ov.Priorities[ik] = p
		case KindMaintenance:
			reason := DecodeMaintenance(val)
			if key.Instance == "" {
				ov.Maintenance[key.Node] = reason
			} else {
				ov.InstanceMaintenance[[2]string{key.Node, key.Instance}] = reason
			}
		case KindStatus, KindArbiter:
			// Written by the nodes themselves; not configuration.
		}
	}
	return ov
}

// keepLastGood puts prev's value of key in ov, when prev has one, and
// reports whether it did.
func (ov *Overlay) keepLastGood(key Key, prev Overlay) bool {
	switch key.Kind {
	case KindInstance:
		return keepObject(ov.Instances, prev.Instances, key.Name, prev.keywords, &ov.keywords)
	case KindVirtualServer:
		return keepObject(ov.VirtualServers, prev.VirtualServers, key.Name, prev.keywords, &ov.keywords)
	case KindScript:
		return keepObject(ov.Scripts, prev.Scripts, key.Name, prev.keywords, &ov.keywords)
	case KindPriority:
		ik := [2]string{key.Instance, key.Node}
		p, ok := prev.Priorities[ik]
		if ok {
			ov.Priorities[ik] = p
		}
		return ok
	case KindMaintenance:
		if key.Instance == "" {
			r, ok := prev.Maintenance[key.Node]
			if ok {
				ov.Maintenance[key.Node] = r
			}
			return ok
		}
		nk := [2]string{key.Node, key.Instance}
		r, ok := prev.InstanceMaintenance[nk]
		if ok {
			ov.InstanceMaintenance[nk] = r
		}
		return ok
	}
	return false
}

// takeObject decodes one config/* value into ov, or keeps prev's object of
// that name when the value is bad.
func (ov *Overlay) takeObject(key Key, k string, val []byte, prev Overlay, reject func(string, error, bool)) {
	m, ds := decodeObject(key.Kind, k, key.Name, val)
	if err := ds.Err(); err != nil {
		reject(k, err, ov.keepLastGood(key, prev))
		return
	}
	ov.Warnings = append(ov.Warnings, ds.Warnings()...)
	switch key.Kind {
	case KindInstance:
		ov.Instances[key.Name] = cloneWithKeywords(m.Instances[0], m.Keywords, &ov.keywords)
	case KindVirtualServer:
		ov.VirtualServers[key.Name] = cloneWithKeywords(m.VirtualServers[0], m.Keywords, &ov.keywords)
	case KindScript:
		ov.Scripts[key.Name] = cloneWithKeywords(m.Scripts[0], m.Keywords, &ov.keywords)
	}
}

func keepObject[T any](dst, prev map[string]*T, name string, from config.KeywordPositions, to *config.KeywordPositions) bool {
	old, ok := prev[name]
	if !ok || old == nil {
		return false
	}
	dst[name] = cloneWithKeywords(old, from, to)
	return true
}

// NodeOverrides is what an Overlay says about one node (Overlay.For).
type NodeOverrides struct {
	// Priorities are the priority overrides of the node's instances, by
	// instance name.
	Priorities map[string]int
	// Maintenance is the reason of the node-wide maintenance key, "" when
	// there is none.
	Maintenance string
	// InstanceMaintenance are the reasons of the node's per-instance
	// maintenance keys, by instance name.
	InstanceMaintenance map[string]string
}

// For returns the priority overrides and maintenance of node. The maps are
// never nil.
func (o Overlay) For(node string) NodeOverrides {
	n := NodeOverrides{Priorities: map[string]int{}, InstanceMaintenance: map[string]string{}}
	for k, p := range o.Priorities {
		if k[1] == node {
			n.Priorities[k[0]] = p
		}
	}
	n.Maintenance = o.Maintenance[node]
	for k, r := range o.InstanceMaintenance {
		if k[0] == node {
			n.InstanceMaintenance[k[1]] = r
		}
	}
	return n
}

// Merge returns a new model: the file's, where every store object replaces
// the file's object of the same name in place, and the store objects the
// file does not have are appended in name order. Everything else (global
// settings, sync groups, virtual server groups, track files) is the file's.
// Neither file nor ov is modified, and the result shares no memory with them
// (it can be normalized and handed on while they are still read). Where the
// keywords of the objects were written is carried over. Priority overrides
// and maintenance are not part of the model (the agent applies them as keyed
// overrides: Overlay.For). Merge does not Normalize or Validate: Compose
// does.
func Merge(file *config.Model, ov Overlay) *config.Model {
	if file == nil {
		file = &config.Model{}
	}
	c := newCloner(file.Keywords)
	out := cloneOf(c, file)
	out.Keywords = config.KeywordPositions{}
	c.transfer(&out.Keywords)
	transferKeywords(file.Keywords, &out.Keywords, &file.Global, &out.Global, keywordsOf(reflect.TypeFor[config.Global]()))

	sc := newCloner(ov.keywords)
	out.Instances = overlayList(out.Instances, ov.Instances, sc, func(in *config.Instance) string { return in.Name })
	out.VirtualServers = overlayList(out.VirtualServers, ov.VirtualServers, sc, func(vs *config.VirtualServer) string { return vs.Name })
	out.Scripts = overlayList(out.Scripts, ov.Scripts, sc, func(s *config.Script) string { return s.Name })
	sc.transfer(&out.Keywords)
	return out
}

// overlayList replaces the entries of list named as a store object by (a
// copy of) that object, the first of them in place, and appends the other
// store objects in name order.
func overlayList[T any](list []*T, store map[string]*T, c *cloner, name func(*T) string) []*T {
	if len(store) == 0 {
		return list
	}
	out := make([]*T, 0, len(list)+len(store))
	used := map[string]bool{}
	for _, x := range list {
		if x != nil {
			if s := store[name(x)]; s != nil && !used[name(x)] {
				used[name(x)] = true
				out = append(out, cloneOf(c, s))
				continue
			}
		}
		out = append(out, x)
	}
	names := make([]string, 0, len(store))
	for n, s := range store {
		if s != nil && !used[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, cloneOf(c, store[n]))
	}
	return out
}

// Compose is the model a node runs: Merge, then config.Normalize and
// config.Validate (without the host interface check: the file's own load
// made it). A store object's positions, in the model and in the
// diagnostics, read "etcd:<key>:LINE". The model is usable when the
// diagnostics hold no error.
func Compose(file *config.Model, ov Overlay) (*config.Model, config.Diagnostics) {
	m := Merge(file, ov)
	config.Normalize(m)
	return m, config.Validate(m, config.ValidateOptions{})
}

// ComposeFrom is Compose that keeps the last good state of each key also
// against validation. A store object that is new or changed since prev and
// that the composed model's errors are about (a VRID out of range, a VRID
// another instance uses, a track_script naming no script) is rejected like
// a value that does not decode: prev's object of that name stays in force
// (Rejection.Kept), or, for a new key, the object is left out; then the
// model is composed again. The overlay returned is ov with those changes,
// the one to pass as prev to the next BuildFrom and ComposeFrom.
//
// A key deleted while its object is still in use (a script that an
// instance still tracks) is refused the same way: when putting prev's
// object back leaves fewer errors, it stays in force (Rejection.Kept) until
// nothing uses it. An error left after that blames no key: it is returned,
// and the caller keeps running its last good model, as for an error in the
// file.
func ComposeFrom(file *config.Model, ov Overlay, prev Overlay) (*config.Model, config.Diagnostics, Overlay) {
	ov = ov.clone()
	for {
		m, ds := Compose(file, ov)
		bad := map[string]config.Diagnostics{}
		var order []string
		for _, d := range ds.Errors() {
			k, ok := ov.blame(d)
			if !ok {
				continue
			}
			if _, seen := bad[k]; !seen {
				order = append(order, k)
			}
			bad[k] = append(bad[k], d)
		}
		changed := false
		for _, k := range order {
			key, ok := ov.objectKey(k)
			if !ok || !ov.changedSince(key, prev) {
				continue
			}
			kept := ov.revert(key, prev)
			ov.Rejected = append(ov.Rejected, Rejection{Key: k, Err: bad[k].Err(), Kept: kept})
			changed = true
		}
		if !changed && ds.Err() != nil {
			if k, key, ok := ov.deletionInUse(file, prev, len(ds.Errors())); ok {
				ov.revert(key, prev)
				ov.Rejected = append(ov.Rejected, Rejection{Key: k,
					Err: fmt.Errorf("%s: deleted while still in use, kept until nothing uses it: %w", k, ds.Err()), Kept: true})
				changed = true
			}
		}
		if !changed {
			slices.SortStableFunc(ov.Rejected, func(a, b Rejection) int { return strings.Compare(a.Key, b.Key) })
			return m, ds, ov
		}
	}
}

// deletionInUse finds a store object that prev had and o has not (its key
// was deleted) whose return leaves fewer than errs errors: the deletion is
// what broke the model. It returns the object's key, the first in key order.
func (o Overlay) deletionInUse(file *config.Model, prev Overlay, errs int) (string, Key, bool) {
	now := o.objectPositions()
	var gone []Key
	for key := range prev.objectPositions() {
		if _, ok := now[key]; !ok {
			gone = append(gone, key)
		}
	}
	slices.SortFunc(gone, func(a, b Key) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, key := range gone {
		trial := o.clone()
		trial.revert(key, prev)
		if _, ds := Compose(file, trial); len(ds.Errors()) < errs {
			k, _ := KeyOfPos(prev.objectPositions()[key])
			return k, key, true
		}
	}
	return "", Key{}, false
}

// blame returns the key of the store object an error is about: the key it
// is reported at, or else a store object's key its message names (a VRID
// that a file object, listed after the store's, shares with it).
func (o Overlay) blame(d config.Diagnostic) (string, bool) {
	if k, ok := KeyOfPos(d.Pos); ok {
		return k, true
	}
	var keys []string
	for _, p := range o.objectPositions() {
		if k, ok := KeyOfPos(p); ok && strings.Contains(d.Msg, PosFile(k)+":") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "", false
	}
	return slices.Min(keys), true
}

// KeyOfPos returns the store key a position is in ("etcd:<key>:LINE"), if it
// is in one.
func KeyOfPos(p config.Pos) (string, bool) {
	k, ok := strings.CutPrefix(p.File, "etcd:")
	return k, ok && k != ""
}

// clone copies o deeply, so that changing the copy (its maps, its keyword
// positions) leaves o as it is.
func (o Overlay) clone() Overlay {
	c := o
	cl := newCloner(o.keywords)
	c.keywords = config.KeywordPositions{}
	c.Instances = cloneMap(cl, o.Instances)
	c.VirtualServers = cloneMap(cl, o.VirtualServers)
	c.Scripts = cloneMap(cl, o.Scripts)
	cl.transfer(&c.keywords)
	c.Priorities = maps.Clone(o.Priorities)
	c.Maintenance = maps.Clone(o.Maintenance)
	c.InstanceMaintenance = maps.Clone(o.InstanceMaintenance)
	c.Rejected = slices.Clone(o.Rejected)
	c.Warnings = slices.Clone(o.Warnings)
	return c
}

func cloneMap[T any](c *cloner, m map[string]*T) map[string]*T {
	if m == nil {
		return nil
	}
	out := make(map[string]*T, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = cloneOf(c, v)
		}
	}
	return out
}

// objectPositions returns the positions of o's config/* objects by their
// Key (kind and name).
func (o Overlay) objectPositions() map[Key]config.Pos {
	out := map[Key]config.Pos{}
	for n, x := range o.Instances {
		if x != nil {
			out[Key{Kind: KindInstance, Name: n}] = x.Pos
		}
	}
	for n, x := range o.VirtualServers {
		if x != nil {
			out[Key{Kind: KindVirtualServer, Name: n}] = x.Pos
		}
	}
	for n, x := range o.Scripts {
		if x != nil {
			out[Key{Kind: KindScript, Name: n}] = x.Pos
		}
	}
	return out
}

// objectKey finds the config/* object of o whose position is in key k.
func (o Overlay) objectKey(k string) (Key, bool) {
	for key, p := range o.objectPositions() {
		if p.File == PosFile(k) {
			return key, true
		}
	}
	return Key{}, false
}

// changedSince reports whether o's object of key is new or differs from
// prev's.
func (o Overlay) changedSince(key Key, prev Overlay) bool {
	switch key.Kind {
	case KindInstance:
		return !reflect.DeepEqual(o.Instances[key.Name], prev.Instances[key.Name])
	case KindVirtualServer:
		return !reflect.DeepEqual(o.VirtualServers[key.Name], prev.VirtualServers[key.Name])
	case KindScript:
		return !reflect.DeepEqual(o.Scripts[key.Name], prev.Scripts[key.Name])
	}
	return false
}

// revert puts prev's object of key in o, or removes o's when prev has none,
// and reports whether prev had one.
func (o *Overlay) revert(key Key, prev Overlay) bool {
	switch key.Kind {
	case KindInstance:
		return revertObject(o.Instances, prev.Instances, key.Name, prev.keywords, &o.keywords)
	case KindVirtualServer:
		return revertObject(o.VirtualServers, prev.VirtualServers, key.Name, prev.keywords, &o.keywords)
	case KindScript:
		return revertObject(o.Scripts, prev.Scripts, key.Name, prev.keywords, &o.keywords)
	}
	return false
}

func revertObject[T any](dst, prev map[string]*T, name string, from config.KeywordPositions, to *config.KeywordPositions) bool {
	old := prev[name]
	if old == nil {
		delete(dst, name)
		return false
	}
	dst[name] = cloneWithKeywords(old, from, to)
	return true
}

// --- copies ---

// cloner deep-copies values of the model: pointers, slices, maps and
// structs; structs with unexported fields (netip.Addr, netip.Prefix) are
// values that are never modified in place and are copied as they are. The
// model is a tree: a pointer met twice is copied twice. The cloner notes the
// objects that can have keyword positions, so that those can follow them
// (transfer).
type cloner struct {
	from  config.KeywordPositions
	pairs [][2]any // {source object, its copy}
}

func newCloner(from config.KeywordPositions) *cloner {
	return &cloner{from: from}
}

func cloneOf[T any](c *cloner, x *T) *T {
	if x == nil {
		return nil
	}
	cp := reflect.New(reflect.TypeFor[T]())
	c.copyInto(cp.Elem(), reflect.ValueOf(x).Elem())
	out := cp.Interface().(*T)
	c.note(x, out)
	return out
}

// cloneWithKeywords copies x and the keyword positions of its objects.
func cloneWithKeywords[T any](x *T, from config.KeywordPositions, to *config.KeywordPositions) *T {
	c := newCloner(from)
	out := cloneOf(c, x)
	c.transfer(to)
	return out
}

// note records src and its copy when src may have keyword positions.
func (c *cloner) note(src, dst any) {
	if keywordsOf(reflect.TypeOf(src).Elem()) != nil {
		c.pairs = append(c.pairs, [2]any{src, dst})
	}
}

// copyInto sets dst, a settable zero value, to a deep copy of src.
func (c *cloner) copyInto(dst, src reflect.Value) {
	t := src.Type()
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		cp := reflect.New(t.Elem())
		c.copyInto(cp.Elem(), src.Elem())
		dst.Set(cp)
		c.note(src.Interface(), cp.Interface())
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		cp := reflect.MakeSlice(t, src.Len(), src.Len())
		if needsCopy(t.Elem()) {
			for i := 0; i < src.Len(); i++ {
				c.copyInto(cp.Index(i), src.Index(i))
			}
		} else {
			reflect.Copy(cp, src)
		}
		dst.Set(cp)
	case reflect.Array:
		dst.Set(src)
		if needsCopy(t.Elem()) {
			for i := 0; i < src.Len(); i++ {
				dst.Index(i).SetZero()
				c.copyInto(dst.Index(i), src.Index(i))
			}
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		cp := reflect.MakeMapWithSize(t, src.Len())
		iter := src.MapRange()
		for iter.Next() {
			v := reflect.New(t.Elem()).Elem()
			c.copyInto(v, iter.Value())
			cp.SetMapIndex(iter.Key(), v)
		}
		dst.Set(cp)
	case reflect.Interface:
		if src.IsNil() {
			return
		}
		v := reflect.New(src.Elem().Type()).Elem()
		c.copyInto(v, src.Elem())
		dst.Set(v)
	case reflect.Struct:
		dst.Set(src)
		for _, i := range refFields(t) {
			f := dst.Field(i)
			f.SetZero()
			c.copyInto(f, src.Field(i))
		}
	default:
		dst.Set(src)
	}
}

var refFieldsCache sync.Map // reflect.Type -> []int

// refFields returns the fields of struct type t that refer to memory a copy
// must not share (pointers, slices, maps, interfaces, directly or in a
// struct). A struct with unexported fields (netip.Addr) is a value that is
// never modified in place: it has none.
func refFields(t reflect.Type) []int {
	if v, ok := refFieldsCache.Load(t); ok {
		return v.([]int)
	}
	var out []int
	exported := true
	for i := 0; i < t.NumField(); i++ {
		exported = exported && t.Field(i).IsExported()
	}
	if exported {
		for i := 0; i < t.NumField(); i++ {
			if needsCopy(t.Field(i).Type) {
				out = append(out, i)
			}
		}
	}
	refFieldsCache.Store(t, out)
	return out
}

// needsCopy reports whether a value of type t refers to memory a copy must
// not share.
func needsCopy(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	case reflect.Array:
		return needsCopy(t.Elem())
	case reflect.Struct:
		return len(refFields(t)) > 0
	}
	return false
}

// transfer records, in to, the keyword positions that c.from has for the
// objects c copied, for their copies.
func (c *cloner) transfer(to *config.KeywordPositions) {
	for _, p := range c.pairs {
		src, dst := p[0], p[1]
		transferKeywords(c.from, to, src, dst, keywordsOf(reflect.TypeOf(src).Elem()))
		if in, ok := src.(*config.Instance); ok {
			for _, a := range in.UnicastPeers {
				kw := "unicast_peer " + a.String()
				transferKeywords(c.from, to, src, dst, []string{kw})
			}
		}
	}
}

// probe is a position no keyword has: At returns it when obj has none of
// the keywords asked.
var probe = config.Pos{File: "\x00coord probe", Line: -1}

func transferKeywords(from config.KeywordPositions, to *config.KeywordPositions, src, dst any, kws []string) {
	if from.At(src, probe, kws...) == probe {
		return // none of them (one look-up of src)
	}
	for _, kw := range kws {
		if p := from.At(src, probe, kw); p != probe {
			to.Set(dst, kw, p)
		}
	}
}

// keywordAliases are keywords of keepalived.conf that record a position in
// config.Model.Keywords under another name than the field's YAML key.
var keywordAliases = map[reflect.Type][]string{
	reflect.TypeFor[config.Global]():        {"vrrp_gna_interval", "vrrp_garp_interval"},
	reflect.TypeFor[config.Instance]():      {"preempt", "accept", "unicast_peer"},
	reflect.TypeFor[config.VirtualServer](): {"lvs_sched", "lvs_method"},
	reflect.TypeFor[config.RealServer]():    {"lvs_method"},
	reflect.TypeFor[config.Checker]():       {"nb_get_retry"},
}

// keywordPrefixes: the garp settings are keywords of their own in
// keepalived.conf, "garp_master_delay" in an instance and
// "vrrp_garp_master_delay" in global_defs.
var keywordPrefixes = map[reflect.Type]string{
	reflect.TypeFor[config.Global]():   "vrrp_garp_",
	reflect.TypeFor[config.Instance](): "garp_",
}

var keywordLists sync.Map // reflect.Type -> []string

// keywordsOf returns the keywords that config.Model.Keywords may hold for
// an object of type t: its fields' YAML keys (which are keepalived's
// keywords), the garp keywords and the aliases. It is nil for types that
// hold no keyword positions.
func keywordsOf(t reflect.Type) []string {
	if v, ok := keywordLists.Load(t); ok {
		return v.([]string)
	}
	var kws []string
	switch t {
	case reflect.TypeFor[config.Global](), reflect.TypeFor[config.Instance](), reflect.TypeFor[config.Script](),
		reflect.TypeFor[config.VirtualServer](), reflect.TypeFor[config.RealServer](), reflect.TypeFor[config.Checker](),
		reflect.TypeFor[config.SyncGroup](), reflect.TypeFor[config.TrackFile](), reflect.TypeFor[config.VirtualServerGroup]():
		kws = yamlKeys(t)
		if p, ok := keywordPrefixes[t]; ok {
			for _, k := range yamlKeys(reflect.TypeFor[config.Garp]()) {
				kws = append(kws, p+k)
			}
		}
		kws = append(kws, keywordAliases[t]...)
		slices.Sort(kws)
		kws = slices.Compact(kws)
	}
	keywordLists.Store(t, kws)
	return kws
}

func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// String renders the overlay's contents in key order, for logs and tests.
func (o Overlay) String() string {
	var b strings.Builder
	objs := o.objectPositions()
	keys := slices.Collect(maps.Keys(objs))
	slices.SortFunc(keys, func(a, b Key) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s at %s\n", objectKindOf(k.Kind).block, k.Name, posText(objs[k]))
	}
	pk := make([][2]string, 0, len(o.Priorities))
	for k := range o.Priorities {
		pk = append(pk, k)
	}
	slices.SortFunc(pk, cmpPair)
	for _, k := range pk {
		fmt.Fprintf(&b, "priority %s on %s: %d\n", k[0], k[1], o.Priorities[k])
	}
	for _, n := range sortedKeys(o.Maintenance) {
		fmt.Fprintf(&b, "maintenance %s: %q\n", n, o.Maintenance[n])
	}
	mk := make([][2]string, 0, len(o.InstanceMaintenance))
	for k := range o.InstanceMaintenance {
		mk = append(mk, k)
	}
	slices.SortFunc(mk, cmpPair)
	for _, k := range mk {
		fmt.Fprintf(&b, "maintenance %s on %s: %q\n", k[1], k[0], o.InstanceMaintenance[k])
	}
	for _, r := range o.Rejected {
		fmt.Fprintf(&b, "%s\n", r)
	}
	for _, d := range o.Warnings {
		fmt.Fprintf(&b, "%s\n", d)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func cmpPair(a, b [2]string) int {
	if c := strings.Compare(a[0], b[0]); c != 0 {
		return c
	}
	return strings.Compare(a[1], b[1])
}

func posText(p config.Pos) string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}
