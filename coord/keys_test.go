package coord

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKeyReadsEveryKeyOfTheSchema(t *testing.T) {
	for _, tt := range []struct {
		key  string
		want Key
	}{
		{"/vipd/config/instances/VI_1", Key{Kind: KindInstance, Name: "VI_1"}},
		{"/vipd/config/instances/vi_Public", Key{Kind: KindInstance, Name: "vi_Public"}},
		{"/vipd/config/virtual_servers/10.0.0.1 80", Key{Kind: KindVirtualServer, Name: "10.0.0.1 80"}},
		{"/vipd/config/virtual_servers/2001:db8::1 443", Key{Kind: KindVirtualServer, Name: "2001:db8::1 443"}},
		{"/vipd/config/virtual_servers/fwmark 5", Key{Kind: KindVirtualServer, Name: "fwmark 5"}},
		{"/vipd/config/scripts/chk_Web", Key{Kind: KindScript, Name: "chk_Web"}},
		{"/vipd/priority/VI_1/node3", Key{Kind: KindPriority, Instance: "VI_1", Node: "node3"}},
		{"/vipd/maintenance/node3", Key{Kind: KindMaintenance, Node: "node3"}},
		{"/vipd/maintenance/node3/VI_1", Key{Kind: KindMaintenance, Node: "node3", Instance: "VI_1"}},
		{"/vipd/status/Node-3", Key{Kind: KindStatus, Node: "Node-3"}},
		{"/vipd/arbiter/VI_1", Key{Kind: KindArbiter, Name: "VI_1"}},
		{"/vipd/arbiter/claims/VI_1/51", Key{Kind: KindArbiter, Name: "claims/VI_1/51"}},
	} {
		t.Run(tt.key, func(t *testing.T) {
			got, err := ParseKey("/vipd", tt.key)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseKey = %+v, want %+v", got, tt.want)
			}
			if back := got.Under("/vipd"); back != tt.key {
				t.Errorf("Under = %q, want the key back", back)
			}
		})
	}
}

func TestParseKeyRefusesMalformedKeysNamingThem(t *testing.T) {
	for _, tt := range []struct {
		key, want string
	}{
		{"/other/priority/VI_1/n1", "not under the prefix /vipd/"},
		{"/vipd2/priority/VI_1/n1", "not under the prefix /vipd/"},
		{"/vipd", "not under the prefix"},
		{"/vipd/", "no kind after the prefix"},
		{"/vipd/banana/x", `unknown kind "banana"`},
		{"/vipd/Priority/VI_1/n1", `unknown kind "Priority"`},
		{"/vipd/config/instance/VI_1", `unknown config section "instance"`},
		{"/vipd/config", "want /vipd/config/{instances,virtual_servers,scripts}/<name>"},
		{"/vipd/config/instances", "want /vipd/config/instances/<name>"},
		{"/vipd/config/instances/", "empty segment 3"},
		{"/vipd/config/instances/a/b", "want /vipd/config/instances/<name>"},
		{"/vipd/priority/VI_1", "want /vipd/priority/<instance>/<node>"},
		{"/vipd/priority//node3", "empty segment 2"},
		{"/vipd/priority/VI_1/node3/x", "want /vipd/priority/<instance>/<node>"},
		{"/vipd/maintenance", "want /vipd/maintenance/<node> or"},
		{"/vipd/maintenance/n1/VI_1/x", "want /vipd/maintenance/<node> or"},
		{"/vipd/maintenance/n1/", "empty segment 3"},
		{"/vipd/status", "want /vipd/status/<node>"},
		{"/vipd/status/n1/x", "want /vipd/status/<node>"},
		{"/vipd/arbiter", "want /vipd/arbiter/<name>"},
		{"/vipd/arbiter/a//b", "empty segment 3"},
		{"/vipd//priority/VI_1/n1", "empty segment 1"},
	} {
		t.Run(tt.key, func(t *testing.T) {
			k, err := ParseKey("/vipd", tt.key)
			if err == nil {
				t.Fatalf("ParseKey = %+v, want an error", k)
			}
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != tt.key {
				t.Errorf("error %v is not a *KeyError for %q", err, tt.key)
			}
			if !strings.HasPrefix(err.Error(), "etcd "+tt.key+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to start with the key and contain %q", err, tt.want)
			}
		})
	}
}

func TestPrefixDefaultsToVipdAndToleratesATrailingSlash(t *testing.T) {
	for _, tt := range []struct {
		prefix, watch, priority string
	}{
		{"", "/vipd/", "/vipd/priority/VI_1/n1"},
		{"/vipd", "/vipd/", "/vipd/priority/VI_1/n1"},
		{"/vipd/", "/vipd/", "/vipd/priority/VI_1/n1"},
		{"/vipd//", "/vipd/", "/vipd/priority/VI_1/n1"},
		{"/site/a", "/site/a/", "/site/a/priority/VI_1/n1"},
		{"/", "/", "/priority/VI_1/n1"},
		{"vipd", "vipd/", "vipd/priority/VI_1/n1"},
	} {
		t.Run(tt.prefix, func(t *testing.T) {
			if got := WatchPrefix(tt.prefix); got != tt.watch {
				t.Errorf("WatchPrefix = %q, want %q", got, tt.watch)
			}
			if got := PriorityKey(tt.prefix, "VI_1", "n1"); got != tt.priority {
				t.Errorf("PriorityKey = %q, want %q", got, tt.priority)
			}
			k, err := ParseKey(tt.prefix, tt.priority)
			if err != nil || k != (Key{Kind: KindPriority, Instance: "VI_1", Node: "n1"}) {
				t.Errorf("ParseKey = %+v, %v", k, err)
			}
		})
	}
}

func TestBuildersWriteTheSchemaOfDesign33(t *testing.T) {
	const p = "/vipd"
	for _, tt := range []struct{ got, want string }{
		{InstanceKey(p, "VI_1"), "/vipd/config/instances/VI_1"},
		{VirtualServerKey(p, "10.0.0.1 80"), "/vipd/config/virtual_servers/10.0.0.1 80"},
		{ScriptKey(p, "chk"), "/vipd/config/scripts/chk"},
		{PriorityKey(p, "VI_1", "node3"), "/vipd/priority/VI_1/node3"},
		{MaintenanceKey(p, "node3", ""), "/vipd/maintenance/node3"},
		{MaintenanceKey(p, "node3", "VI_1"), "/vipd/maintenance/node3/VI_1"},
		{StatusKey(p, "node3"), "/vipd/status/node3"},
		{ArbiterKey(p, "VI_1"), "/vipd/arbiter/VI_1"},
		{ArbiterPrefix(p), "/vipd/arbiter/"},
		{ArbiterPrefix(p + "/"), "/vipd/arbiter/"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestCheckNameRefusesWhatCannotBeOneSegment(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"VI_1", true},
		{"10.0.0.1 80", true},
		{"", false},
		{"a/b", false},
		{"/", false},
	} {
		if err := CheckName(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestKindStringIsTheKeysSpelling(t *testing.T) {
	for k, want := range map[Kind]string{
		KindInstance: "config/instances", KindVirtualServer: "config/virtual_servers", KindScript: "config/scripts",
		KindPriority: "priority", KindMaintenance: "maintenance", KindStatus: "status", KindArbiter: "arbiter",
		Kind(0): "Kind(0)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// FuzzParseKey: no key makes ParseKey panic, and a key it accepts is
// rebuilt exactly by the builders (Key.Under), under every spelling of the
// prefix. Seeds are in testdata/fuzz/FuzzParseKey.
func FuzzParseKey(f *testing.F) {
	f.Add("/vipd", "/vipd/config/virtual_servers/10.0.0.1 80")
	f.Add("/vipd/", "/vipd/maintenance/n1/VI_1")
	f.Fuzz(func(t *testing.T, prefix, key string) {
		k, err := ParseKey(prefix, key)
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != key {
				t.Fatalf("error %v does not name the key %q", err, key)
			}
			return
		}
		if got := k.Under(prefix); got != key {
			t.Fatalf("ParseKey(%q, %q) = %+v, rebuilt as %q", prefix, key, k, got)
		}
		for _, name := range []string{k.Name, k.Instance, k.Node} {
			if name == "" {
				continue
			}
			if k.Kind != KindArbiter && CheckName(name) != nil {
				t.Fatalf("ParseKey(%q) gave the name %q, which CheckName refuses", key, name)
			}
		}
		k2, err := ParseKey(prefix, k.Under(prefix))
		if err != nil || k2 != k {
			t.Fatalf("second parse: %+v, %v; first %+v", k2, err, k)
		}
	})
}
