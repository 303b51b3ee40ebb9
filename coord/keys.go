package coord

import (
	"errors"
	"fmt"
	"strings"
)

// The key schema of DESIGN.md 3.3 (a contract), relative to the prefix:
//
//	config/instances/<name>          one vrrp_instance
//	config/virtual_servers/<name>    one virtual_server ("10.0.0.1 80", "fwmark 5", "group G")
//	config/scripts/<name>            one vrrp_script
//	priority/<instance>/<node>       priority override, 1..254
//	maintenance/<node>               every instance of the node in maintenance
//	maintenance/<node>/<instance>    one instance of the node in maintenance
//	status/<node>                    the node's status JSON, under its lease
//	arbiter/<anything>               split-brain arbitration (internal)
//
// A name is one segment: it keeps its case, may hold spaces, and holds no
// "/". The builders below write these keys and ParseKey reads them back.

// DefaultPrefix is the default of --etcd-prefix.
const DefaultPrefix = "/vipd"

// Kind is what a key of the schema is for.
type Kind int

// The kinds of keys. KindMaintenance covers both the node-wide key
// (Key.Instance empty) and the per-instance one.
const (
	KindInstance Kind = iota + 1
	KindVirtualServer
	KindScript
	KindPriority
	KindMaintenance
	KindStatus
	KindArbiter
)

// String names the kind as its key does ("config/instances", "priority", ...).
func (k Kind) String() string {
	switch k {
	case KindInstance:
		return "config/" + sectionInstances
	case KindVirtualServer:
		return "config/" + sectionVirtualServers
	case KindScript:
		return "config/" + sectionScripts
	case KindPriority:
		return segPriority
	case KindMaintenance:
		return segMaintenance
	case KindStatus:
		return segStatus
	case KindArbiter:
		return segArbiter
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// The key segments. The config sections are spelled as the lists of
// vipd.yaml that hold the same objects.
const (
	segConfig             = "config"
	segPriority           = "priority"
	segMaintenance        = "maintenance"
	segStatus             = "status"
	segArbiter            = "arbiter"
	sectionInstances      = "instances"
	sectionVirtualServers = "virtual_servers"
	sectionScripts        = "scripts"
)

// Key is one parsed key of the schema. Which fields are set depends on Kind:
//
//	KindInstance, KindVirtualServer, KindScript: Name (the object's name)
//	KindPriority:    Instance, Node
//	KindMaintenance: Node, and Instance for the per-instance key
//	KindStatus:      Node
//	KindArbiter:     Name (everything after "arbiter/", which may hold "/")
type Key struct {
	Kind     Kind
	Name     string
	Instance string
	Node     string
}

// Under returns the full key of k under prefix; for a Key from ParseKey it is
// the key that was parsed (with the prefix written without trailing slash).
func (k Key) Under(prefix string) string {
	switch k.Kind {
	case KindInstance:
		return InstanceKey(prefix, k.Name)
	case KindVirtualServer:
		return VirtualServerKey(prefix, k.Name)
	case KindScript:
		return ScriptKey(prefix, k.Name)
	case KindPriority:
		return PriorityKey(prefix, k.Instance, k.Node)
	case KindMaintenance:
		return MaintenanceKey(prefix, k.Node, k.Instance)
	case KindStatus:
		return StatusKey(prefix, k.Node)
	case KindArbiter:
		return ArbiterKey(prefix, k.Name)
	}
	return WatchPrefix(prefix)
}

// WatchPrefix returns the string every key of the schema under prefix starts
// with: the prefix with exactly one trailing slash ("/vipd/"), "" meaning
// DefaultPrefix. A Get or Watch of the whole schema uses it, so that the
// prefix /vipd does not also match the keys of /vipd2.
func WatchPrefix(prefix string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return strings.TrimRight(prefix, "/") + "/"
}

// InstanceKey is <prefix>/config/instances/<name>.
func InstanceKey(prefix, name string) string {
	return join(prefix, segConfig, sectionInstances, name)
}

// VirtualServerKey is <prefix>/config/virtual_servers/<name>, name as written
// after virtual_server in keepalived.conf ("10.0.0.1 80").
func VirtualServerKey(prefix, name string) string {
	return join(prefix, segConfig, sectionVirtualServers, name)
}

// ScriptKey is <prefix>/config/scripts/<name>.
func ScriptKey(prefix, name string) string {
	return join(prefix, segConfig, sectionScripts, name)
}

// PriorityKey is <prefix>/priority/<instance>/<node>.
func PriorityKey(prefix, instance, node string) string {
	return join(prefix, segPriority, instance, node)
}

// MaintenanceKey is <prefix>/maintenance/<node>/<instance>, or the node-wide
// <prefix>/maintenance/<node> when instance is "".
func MaintenanceKey(prefix, node, instance string) string {
	if instance == "" {
		return join(prefix, segMaintenance, node)
	}
	return join(prefix, segMaintenance, node, instance)
}

// StatusKey is <prefix>/status/<node>.
func StatusKey(prefix, node string) string {
	return join(prefix, segStatus, node)
}

// ArbiterKey is <prefix>/arbiter/<name>; name may hold "/".
func ArbiterKey(prefix, name string) string {
	return join(prefix, segArbiter, name)
}

// ClaimKey is <prefix>/arbiter/claim/<instance>: the split-brain claim of
// an instance, under its holder's lease.
func ClaimKey(prefix, instance string) string { return ArbiterKey(prefix, "claim/"+instance) }

// PreemptKey is <prefix>/arbiter/preempt/<instance>/<node>: node asks the
// holder of the instance's claim to yield, under node's lease.
func PreemptKey(prefix, instance, node string) string {
	return ArbiterKey(prefix, "preempt/"+instance+"/"+node)
}

// ParseArbiterName splits the name of an arbiter key (everything after
// "arbiter/"): a claim ("claim/<instance>") or a preemption request
// ("preempt/<instance>/<node>"); ok is false for anything else.
func ParseArbiterName(name string) (kind, instance, node string, ok bool) {
	segs := strings.Split(name, "/")
	switch {
	case len(segs) == 2 && segs[0] == "claim" && segs[1] != "":
		return "claim", segs[1], "", true
	case len(segs) == 3 && segs[0] == "preempt" && segs[1] != "" && segs[2] != "":
		return "preempt", segs[1], segs[2], true
	}
	return "", "", "", false
}

// ArbiterPrefix is <prefix>/arbiter/, under which the arbiter keeps its keys.
func ArbiterPrefix(prefix string) string {
	return join(prefix, segArbiter) + "/"
}

func join(prefix string, segs ...string) string {
	return WatchPrefix(prefix) + strings.Join(segs, "/")
}

// CheckName reports whether s can be one segment of a key: an instance,
// virtual server, script or node name. It must not be empty and must not
// hold "/". The builders do not check; a key built from a bad name does not
// parse back to the same Key.
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case strings.Contains(s, "/"):
		return fmt.Errorf("%q: a name in a key must not contain '/'", s)
	}
	return nil
}

// KeyError is a problem with one key of the store or with its value. Its
// message names the key: "etcd /vipd/priority/VI_1/node3: ...".
type KeyError struct {
	Key string
	Err error
}

// Error implements error.
func (e *KeyError) Error() string { return "etcd " + e.Key + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *KeyError) Unwrap() error { return e.Err }

func keyErrorf(key, format string, args ...any) error {
	return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
}

// ParseKey reads a key of the schema under prefix ("" is DefaultPrefix; a
// trailing slash is tolerated). Names keep their case. A key outside the
// prefix, of an unknown kind, with the wrong number of segments or with an
// empty segment is an error (a *KeyError) naming the key.
func ParseKey(prefix, key string) (Key, error) {
	root := WatchPrefix(prefix)
	rest, ok := strings.CutPrefix(key, root)
	if !ok {
		return Key{}, keyErrorf(key, "not under the prefix %s", root)
	}
	if rest == "" {
		return Key{}, keyErrorf(key, "no kind after the prefix (want config, priority, maintenance, status or arbiter)")
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		if s == "" {
			return Key{}, keyErrorf(key, "empty segment %d after the prefix (a name must not be empty or contain '/')", i+1)
		}
	}
	want := func(shape string) (Key, error) {
		return Key{}, keyErrorf(key, "want %s%s", root, shape)
	}
	switch segs[0] {
	case segConfig:
		if len(segs) < 2 {
			return want("config/{instances,virtual_servers,scripts}/<name>")
		}
		var kind Kind
		switch segs[1] {
		case sectionInstances:
			kind = KindInstance
		case sectionVirtualServers:
			kind = KindVirtualServer
		case sectionScripts:
			kind = KindScript
		default:
			return Key{}, keyErrorf(key, "unknown config section %q (want instances, virtual_servers or scripts)", segs[1])
		}
		if len(segs) != 3 {
			return want(kind.String() + "/<name>")
		}
		return Key{Kind: kind, Name: segs[2]}, nil
	case segPriority:
		if len(segs) != 3 {
			return want("priority/<instance>/<node>")
		}
		return Key{Kind: KindPriority, Instance: segs[1], Node: segs[2]}, nil
	case segMaintenance:
		switch len(segs) {
		case 2:
			return Key{Kind: KindMaintenance, Node: segs[1]}, nil
		case 3:
			return Key{Kind: KindMaintenance, Node: segs[1], Instance: segs[2]}, nil
		}
		return want("maintenance/<node> or " + root + "maintenance/<node>/<instance>")
	case segStatus:
		if len(segs) != 2 {
			return want("status/<node>")
		}
		return Key{Kind: KindStatus, Node: segs[1]}, nil
	case segArbiter:
		if len(segs) < 2 {
			return want("arbiter/<name>")
		}
		return Key{Kind: KindArbiter, Name: strings.Join(segs[1:], "/")}, nil
	}
	return Key{}, keyErrorf(key, "unknown kind %q (want config, priority, maintenance, status or arbiter)", segs[0])
}
