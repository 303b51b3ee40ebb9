package coord

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
	"github.com/vipd/vipd/config/loader"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/overlay")

const fileConf = "testdata/overlay/file.conf"

// loadFile loads the node's keepalived.conf the overlay goes on.
func loadFile(t testing.TB) *config.Model {
	t.Helper()
	m, ds := loader.Load(fileConf, loader.Options{})
	if err := ds.Err(); err != nil {
		t.Fatalf("loading %s: %v", fileConf, err)
	}
	return m
}

// step is one change of the store, applied to the snapshot of the step
// before: puts, then deletes.
type step struct {
	what string
	put  map[string]string
	del  []string
}

func TestOverlaySequenceComposesTheFleetsModel(t *testing.T) {
	steps := []step{
		{what: "empty store: the file's model, unchanged"},
		{what: "a good priority and a banana for another instance: the banana is rejected, the good one is in force",
			put: map[string]string{
				"/vipd/priority/VI_1/node3": "200",
				"/vipd/priority/VI_2/node3": "banana",
			}},
		{what: "a banana where a good priority was: rejected, the last good priority stays",
			put: map[string]string{"/vipd/priority/VI_1/node3": "banana"}},
		{what: "VI_2 from the store (YAML) replaces the file's VI_2 in place",
			put: map[string]string{"/vipd/config/instances/VI_2": `interface: eth0
virtual_router_id: 52
priority: 90
virtual_ipaddress: [10.0.0.101/24, 10.0.0.102/24]
`}},
		{what: "broken YAML for VI_2: rejected, the store's previous VI_2 stays",
			put: map[string]string{"/vipd/config/instances/VI_2": "interface: eth0\n virtual_router_id: 52\n"}},
		{what: "the VI_2 key deleted: the file's VI_2 comes back",
			del: []string{"/vipd/config/instances/VI_2"}},
		{what: "a new instance pasted as a keepalived block, tracking a script from the store: both appended",
			put: map[string]string{
				"/vipd/config/instances/VI_9": `vrrp_instance VI_9 {
    interface eth1
    virtual_router_id 99
    priority 120
    virtual_ipaddress {
        192.168.9.1/24 dev eth1
    }
    track_script {
        chk_store weight -30
    }
}
`,
				"/vipd/config/scripts/chk_store": `{"script": "/usr/local/bin/check store", "interval": "3s", "fall": 2}`,
			}},
		{what: "the virtual server replaced by JSON: another scheduler and real servers",
			put: map[string]string{"/vipd/config/virtual_servers/10.0.0.100 80": `{
  "address": "10.0.0.100", "port": 80, "protocol": "TCP", "delay_loop": "5s",
  "lb_algo": "wlc", "lb_kind": "NAT",
  "real_servers": [
    {"address": "10.0.1.2", "port": 80, "weight": 2, "checkers": [{"type": "TCP_CHECK"}]},
    {"address": "10.0.1.3", "port": 80, "checkers": [{"type": "TCP_CHECK"}]}
  ]
}`}},
		{what: "maintenance for node3 and for VI_1 on node2, status and arbiter keys (ignored), junk keys (rejected)",
			put: map[string]string{
				"/vipd/maintenance/node3":      "disk swap\n",
				"/vipd/maintenance/node2/VI_1": "",
				"/vipd/status/node3":           `{"instances":[]}`,
				"/vipd/arbiter/VI_1":           "node1",
				"/vipd/bananas/1":              "x",
				"/vipd/priority/VI_1":          "100",
			}},
		{what: "a store instance with VRID 300: decoded, refused by validation at its key and settled out; the rest applies",
			put: map[string]string{"/vipd/config/instances/VI_BAD": "interface: eth0\nvirtual_router_id: 300\nvirtual_ipaddress: [10.0.0.200/24]\n"}},
		{what: "the script key deleted while VI_9 still tracks it: the deletion is refused (the script stays) and the rest applies",
			del: []string{"/vipd/config/instances/VI_BAD", "/vipd/config/scripts/chk_store"}},
		{what: "everything deleted: the file's model again",
			del: []string{
				"/vipd/priority/VI_1/node3", "/vipd/priority/VI_2/node3", "/vipd/config/instances/VI_9",
				"/vipd/config/virtual_servers/10.0.0.100 80", "/vipd/maintenance/node3", "/vipd/maintenance/node2/VI_1",
				"/vipd/status/node3", "/vipd/arbiter/VI_1", "/vipd/bananas/1", "/vipd/priority/VI_1",
			}},
	}

	// The loop is what the watcher does with each snapshot: build on the
	// overlay in force, compose, settle what validation refuses at a key,
	// and run the result when it is valid, else keep the last good model.
	file := loadFile(t)
	kvs := map[string][]byte{}
	var prev Overlay // the overlay of the model in force
	running, runningStep := file, 0
	var out strings.Builder
	for i, st := range steps {
		for k, v := range st.put {
			kvs[k] = []byte(v)
		}
		for _, k := range st.del {
			delete(kvs, k)
		}
		ov := BuildFrom("/vipd", kvs, prev)
		fmt.Fprintf(&out, "== %d. %s\n", i+1, st.what)
		writeOverlay(&out, ov)
		for _, n := range []string{"node2", "node3"} {
			fmt.Fprintf(&out, "for %s: %s\n", n, nodeText(ov.For(n)))
		}
		_, ds := Compose(file, ov)
		for _, d := range ds {
			fmt.Fprintf(&out, "compose: %s\n", d)
		}
		m, sds, settled := ComposeFrom(file, ov, prev)
		for _, r := range newRejections(ov.Rejected, settled.Rejected) {
			fmt.Fprintf(&out, "settle: %s\n", r)
		}
		if len(newRejections(settled.Rejected, ov.Rejected)) != 0 {
			t.Errorf("step %d: ComposeFrom dropped a rejection of BuildFrom", i+1)
		}
		if err := sds.Err(); err != nil {
			fmt.Fprintf(&out, "settle: errors remain, not at a changed store object: the model of step %d stays in force\n", runningStep)
		} else {
			running, runningStep, prev = m, i+1, settled
		}
		writeModel(t, &out, running)
		out.WriteString("\n")
	}
	golden(t, "testdata/overlay/sequence.golden", out.String())
}

// newRejections returns the rejections of after that before does not have.
func newRejections(before, after []Rejection) []Rejection {
	var out []Rejection
	for _, a := range after {
		if !slices.ContainsFunc(before, func(b Rejection) bool { return b.Key == a.Key && b.Err.Error() == a.Err.Error() }) {
			out = append(out, a)
		}
	}
	return out
}

func writeOverlay(b *strings.Builder, ov Overlay) {
	for _, line := range strings.Split(strings.TrimSuffix(ov.String(), "\n"), "\n") {
		if line != "" {
			fmt.Fprintf(b, "overlay: %s\n", line)
		}
	}
}

func nodeText(n NodeOverrides) string {
	var parts []string
	for _, in := range sortedKeys(n.Priorities) {
		parts = append(parts, fmt.Sprintf("priority %s=%d", in, n.Priorities[in]))
	}
	if n.Maintenance != "" {
		parts = append(parts, fmt.Sprintf("maintenance %q", n.Maintenance))
	}
	for _, in := range sortedKeys(n.InstanceMaintenance) {
		parts = append(parts, fmt.Sprintf("maintenance %s %q", in, n.InstanceMaintenance[in]))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// writeModel writes one line per object (in the model's order, with where
// it comes from), then the objects that come from the store as vipd.yaml.
func writeModel(t *testing.T, b *strings.Builder, m *config.Model) {
	t.Helper()
	fromStore := &config.Model{}
	store := func(p config.Pos) bool { return strings.HasPrefix(p.File, "etcd:") }
	for _, s := range m.Scripts {
		fmt.Fprintf(b, "script %s: %q every %s, at %s\n", s.Name, s.Script, s.Interval, posText(s.Pos))
		if store(s.Pos) {
			fromStore.Scripts = append(fromStore.Scripts, s)
		}
	}
	for _, in := range m.Instances {
		var vips []string
		for _, v := range in.VIPs {
			vips = append(vips, v.Prefix.String())
		}
		fmt.Fprintf(b, "instance %s: vrid %d, priority %d, vips %s, at %s\n", in.Name, in.VRID, in.Priority, strings.Join(vips, " "), posText(in.Pos))
		if store(in.Pos) {
			fromStore.Instances = append(fromStore.Instances, in)
		}
	}
	for _, vs := range m.VirtualServers {
		var rss []string
		for _, rs := range vs.RealServers {
			rss = append(rss, fmt.Sprintf("%s:%d", rs.Address, rs.Port))
		}
		fmt.Fprintf(b, "virtual_server %s: %s, real servers %s, at %s\n", vs.Name, vs.LBAlgo, strings.Join(rss, " "), posText(vs.Pos))
		if store(vs.Pos) {
			fromStore.VirtualServers = append(fromStore.VirtualServers, vs)
		}
	}
	if len(fromStore.Instances)+len(fromStore.Scripts)+len(fromStore.VirtualServers) == 0 {
		return
	}
	y, err := config.EncodeYAML(fromStore)
	if err != nil {
		t.Fatal(err)
	}
	inGlobal := false
	for _, line := range strings.Split(strings.TrimSuffix(string(y), "\n"), "\n") {
		if !strings.HasPrefix(line, " ") {
			inGlobal = strings.HasPrefix(line, "global:")
		}
		if !inGlobal {
			fmt.Fprintf(b, "  | %s\n", line)
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -run %s -update rewrites it; review the diff):\n%s", path, t.Name(), lineDiff(string(want), got))
	}
}

// lineDiff lists the lines that differ, for a readable failure.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

func TestBuildRejectsABananaAndKeepsTheLastGoodPriority(t *testing.T) {
	const k = "/vipd/priority/VI_1/node3"
	prev := Build("/vipd", map[string][]byte{k: []byte("200")})
	ov := BuildFrom("/vipd", map[string][]byte{
		k:                           []byte("banana"),
		"/vipd/priority/VI_2/node3": []byte("150"),
	}, prev)
	if got := ov.Priorities; !reflect.DeepEqual(got, map[[2]string]int{{"VI_1", "node3"}: 200, {"VI_2", "node3"}: 150}) {
		t.Errorf("priorities %v", got)
	}
	want := `etcd /vipd/priority/VI_1/node3: "banana": must be an integer 1..254`
	if len(ov.Rejected) != 1 || ov.Rejected[0].Key != k || ov.Rejected[0].Err.Error() != want || !ov.Rejected[0].Kept {
		t.Errorf("rejected %v, want [%s, kept]", ov.Rejected, want)
	}
	// Without a previous overlay nothing is in force for that key.
	ov = Build("/vipd", map[string][]byte{k: []byte("banana")})
	if len(ov.Priorities) != 0 || len(ov.Rejected) != 1 || ov.Rejected[0].Kept {
		t.Errorf("priorities %v, rejected %v", ov.Priorities, ov.Rejected)
	}
}

func TestBuildFromKeepsThePreviousObjectWhenItsNewValueIsBroken(t *testing.T) {
	k := InstanceKey("/vipd", "VI_2")
	prev := Build("/vipd", map[string][]byte{k: []byte("interface: eth0\nvirtual_router_id: 52\npriority: 90\n")})
	for _, bad := range []string{
		"interface: eth0\nvirtual_router_id: [52\n",
		"vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 999\n}\n",
		"name: VI_3\n",
		"",
	} {
		ov := BuildFrom("/vipd", map[string][]byte{k: []byte(bad)}, prev)
		in := ov.Instances["VI_2"]
		if in == nil || in.Priority != 90 {
			t.Errorf("value %q: VI_2 = %+v, want the previous one (priority 90)", bad, in)
		}
		if len(ov.Rejected) != 1 || !ov.Rejected[0].Kept || !strings.Contains(ov.Rejected[0].Err.Error(), "etcd:"+k) {
			t.Errorf("value %q: rejected %v", bad, ov.Rejected)
		}
		if in == prev.Instances["VI_2"] {
			t.Errorf("value %q: the kept object is prev's own, not a copy", bad)
		}
	}
	// A good value after the bad ones is taken.
	ov := BuildFrom("/vipd", map[string][]byte{k: []byte("interface: eth0\nvirtual_router_id: 52\npriority: 80\n")}, prev)
	if in := ov.Instances["VI_2"]; in == nil || in.Priority != 80 || len(ov.Rejected) != 0 {
		t.Errorf("VI_2 = %+v, rejected %v", in, ov.Rejected)
	}
}

func TestBuildSkipsStatusAndArbiterAndRejectsForeignKeysWithoutDroppingOthers(t *testing.T) {
	ov := Build("/vipd/", map[string][]byte{
		"/vipd/status/node1":               []byte("{}"),
		"/vipd/arbiter/VI_1/claim":         []byte("x"),
		"/vipd/config/instances/VI_1":      []byte("interface: eth0\nvirtual_router_id: 1\n"),
		"/vipd/config/things/x":            []byte("x"),
		"/vipd/maintenance/node1":          []byte("  "),
		"/vipd/maintenance/node1/VI_1/x/y": []byte("x"),
		"/elsewhere/priority/VI_1/node1":   []byte("100"),
	})
	if len(ov.Instances) != 1 || ov.Maintenance["node1"] != "maintenance" {
		t.Errorf("instances %v, maintenance %v", ov.Instances, ov.Maintenance)
	}
	var keys []string
	for _, r := range ov.Rejected {
		keys = append(keys, r.Key)
		if !strings.Contains(r.Err.Error(), r.Key) {
			t.Errorf("rejection %q does not name its key", r)
		}
	}
	want := []string{"/elsewhere/priority/VI_1/node1", "/vipd/config/things/x", "/vipd/maintenance/node1/VI_1/x/y"}
	if !slices.Equal(keys, want) {
		t.Errorf("rejected keys %q, want %q", keys, want)
	}
}

func TestBuildKeepsTheWarningsOfAcceptedValues(t *testing.T) {
	ov := Build("/vipd", map[string][]byte{
		"/vipd/config/scripts/chk": []byte("vrrp_script chk {\n  script /bin/true\n  bananas 1\n}\n"),
	})
	want := "etcd:/vipd/config/scripts/chk:3: warning: unknown keyword bananas"
	if len(ov.Warnings) != 1 || ov.Warnings[0].String() != want {
		t.Errorf("warnings %q, want [%q]", ov.Warnings, want)
	}
}

func TestForReturnsWhatConcernsOneNode(t *testing.T) {
	ov := Build("/vipd", map[string][]byte{
		"/vipd/priority/VI_1/node3":    []byte("200"),
		"/vipd/priority/VI_2/node3":    []byte("201"),
		"/vipd/priority/VI_1/node2":    []byte("50"),
		"/vipd/maintenance/node3":      []byte("disk swap"),
		"/vipd/maintenance/node3/VI_2": []byte("nic"),
		"/vipd/maintenance/node2/VI_1": []byte(""),
	})
	for _, tt := range []struct {
		node string
		want NodeOverrides
	}{
		{"node3", NodeOverrides{
			Priorities:          map[string]int{"VI_1": 200, "VI_2": 201},
			Maintenance:         "disk swap",
			InstanceMaintenance: map[string]string{"VI_2": "nic"},
		}},
		{"node2", NodeOverrides{
			Priorities:          map[string]int{"VI_1": 50},
			InstanceMaintenance: map[string]string{"VI_1": "maintenance"},
		}},
		{"node1", NodeOverrides{Priorities: map[string]int{}, InstanceMaintenance: map[string]string{}}},
	} {
		if got := ov.For(tt.node); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("For(%s) = %+v, want %+v", tt.node, got, tt.want)
		}
	}
}

func TestMergeReplacesInPlaceAndAppendsNewObjectsInNameOrder(t *testing.T) {
	file := &config.Model{Instances: []*config.Instance{{Name: "A", VRID: 1}, {Name: "B", VRID: 2}, {Name: "C", VRID: 3}}}
	ov := Overlay{Instances: map[string]*config.Instance{
		"Z": {Name: "Z", VRID: 26},
		"B": {Name: "B", VRID: 20},
		"M": {Name: "M", VRID: 13},
	}}
	m := Merge(file, ov)
	var got []string
	for _, in := range m.Instances {
		got = append(got, fmt.Sprintf("%s/%d", in.Name, in.VRID))
	}
	if want := []string{"A/1", "B/20", "C/3", "M/13", "Z/26"}; !slices.Equal(got, want) {
		t.Errorf("instances %v, want %v", got, want)
	}
	if file.Instances[1].VRID != 2 || len(file.Instances) != 3 {
		t.Error("Merge modified the file's model")
	}
	if m2 := Merge(nil, ov); len(m2.Instances) != 3 {
		t.Errorf("Merge(nil) = %d instances, want the store's 3", len(m2.Instances))
	}
}

func TestComposeLeavesTheFileAndOverlayUntouchedAndSharesNoMemory(t *testing.T) {
	file := loadFile(t)
	pristine := loadFile(t)
	ov := Build("/vipd", map[string][]byte{
		"/vipd/config/instances/VI_2":               []byte("interface: eth0\nvirtual_router_id: 52\n"),
		"/vipd/config/virtual_servers/10.0.0.9 443": []byte("virtual_server 10.0.0.9 443 {\n real_server 10.0.1.1 443 {\n  weight 3\n }\n}\n"),
	})
	before := ov.String()
	m, ds := Compose(file, ov)
	if err := ds.Err(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Global", "Scripts", "Instances", "SyncGroups", "VirtualServerGroups", "VirtualServers", "TrackFiles"} {
		if !reflect.DeepEqual(reflect.ValueOf(*file).FieldByName(f).Interface(), reflect.ValueOf(*pristine).FieldByName(f).Interface()) {
			t.Errorf("Compose modified the file's %s", f)
		}
	}
	if ov.String() != before || ov.Instances["VI_2"].Priority != 0 {
		t.Error("Compose modified the overlay (Normalize ran on its objects)")
	}
	if m.Instances[1].Priority != config.DefaultPriority {
		t.Errorf("the composed VI_2 is not normalized: priority %d", m.Instances[1].Priority)
	}
	shared := pointers(reflect.ValueOf(m), map[uintptr]bool{})
	for what, src := range map[string]any{"file": file, "overlay instances": ov.Instances, "overlay virtual servers": ov.VirtualServers} {
		for p := range pointers(reflect.ValueOf(src), map[uintptr]bool{}) {
			if shared[p] {
				t.Errorf("the composed model shares memory with the %s", what)
				break
			}
		}
	}
}

// pointers collects the addresses of every pointer and slice array
// reachable from v.
func pointers(v reflect.Value, seen map[uintptr]bool) map[uintptr]bool {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return seen
		}
		seen[v.Pointer()] = true
		pointers(v.Elem(), seen)
	case reflect.Slice:
		if v.Len() > 0 {
			seen[v.Pointer()] = true
		}
		for i := 0; i < v.Len(); i++ {
			pointers(v.Index(i), seen)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			pointers(iter.Value(), seen)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				pointers(v.Field(i), seen)
			}
		}
	}
	return seen
}

func TestComposeRunsConcurrentlyWithReadersOfTheFileModel(t *testing.T) {
	// Under -race: composing normalizes only copies.
	file := loadFile(t)
	ov := Build("/vipd", map[string][]byte{"/vipd/config/instances/VI_2": []byte("interface: eth0\nvirtual_router_id: 52\n")})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			_, _ = config.EncodeYAML(file)
		}
	}()
	for range 20 {
		Compose(file, ov)
	}
	<-done
}

func TestComposeReportsAStoreInstanceThatFailsValidationAtItsKey(t *testing.T) {
	ov := Build("/vipd", map[string][]byte{
		"/vipd/config/instances/VI_BAD": []byte("\ninterface: eth0\nvirtual_router_id: 300\n"),
		"/vipd/config/instances/VI_DUP": []byte("vrrp_instance VI_DUP {\n  interface eth0\n  virtual_router_id 51\n}\n"),
	})
	if len(ov.Rejected) != 0 {
		t.Fatalf("rejected %v: validation is Compose's", ov.Rejected)
	}
	_, ds := Compose(loadFile(t), ov)
	var errs []string
	for _, d := range ds.Errors() {
		errs = append(errs, d.String())
	}
	want := []string{
		"etcd:/vipd/config/instances/VI_BAD:2: virtual_router_id 300: must be 1..255",
		"etcd:/vipd/config/instances/VI_DUP:1: virtual_router_id 51: already used on eth0 (IPv4) by vrrp_instance VI_1 at testdata/overlay/file.conf:11",
	}
	if !slices.Equal(errs, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
}

func TestComposeFromKeepsTheLastGoodObjectWhenTheNewOneFailsValidation(t *testing.T) {
	file := loadFile(t)
	k := InstanceKey("/vipd", "VI_9")
	good := map[string][]byte{k: []byte("interface: eth1\nvirtual_router_id: 99\nvirtual_ipaddress: [192.168.9.1/24]\n")}
	_, ds, prev := ComposeFrom(file, Build("/vipd", good), Overlay{})
	if ds.Err() != nil {
		t.Fatal(ds)
	}
	bad := map[string][]byte{
		k:                         []byte("interface: eth1\nvirtual_router_id: 300\nvirtual_ipaddress: [192.168.9.1/24]\n"),
		InstanceKey("/vipd", "N"): []byte("interface: eth1\nvirtual_router_id: 7\nvirtual_ipaddress: [192.168.7.1/24]\n"),
	}
	ov := BuildFrom("/vipd", bad, prev)
	before := ov.String()
	m, ds, settled := ComposeFrom(file, ov, prev)
	if ds.Err() != nil {
		t.Fatalf("settled model has errors: %v", ds)
	}
	var got []string
	for _, in := range m.Instances {
		got = append(got, fmt.Sprintf("%s/%d", in.Name, in.VRID))
	}
	if want := []string{"VI_1/51", "VI_2/52", "N/7", "VI_9/99"}; !slices.Equal(got, want) {
		t.Errorf("instances %v, want %v (the good new one applies, VI_9 keeps its last good VRID)", got, want)
	}
	want := "etcd:/vipd/config/instances/VI_9:1: virtual_router_id 300: must be 1..255 (rejected; the last good value stays in force)"
	if len(settled.Rejected) != 1 || settled.Rejected[0].String() != want {
		t.Errorf("rejected %v, want [%s]", settled.Rejected, want)
	}
	if ov.String() != before {
		t.Error("ComposeFrom modified its overlay argument")
	}
	// The next snapshot, unchanged, builds on the settled overlay: VI_9
	// stays at 99 and is rejected again by validation.
	m, ds, _ = ComposeFrom(file, BuildFrom("/vipd", bad, settled), settled)
	if ds.Err() != nil || m.Instances[3].VRID != 99 {
		t.Errorf("second round: %v, VI_9 VRID %d", ds, m.Instances[3].VRID)
	}
}

func TestComposeFromBlamesTheStoreObjectAFileObjectsErrorNames(t *testing.T) {
	// VI_1 from the store takes VRID 52; the clash is reported at the
	// file's VI_2, listed after it, naming the store key: the store's VI_1
	// is refused and the file's comes back.
	file := loadFile(t)
	ov := Build("/vipd", map[string][]byte{InstanceKey("/vipd", "VI_1"): []byte("interface: eth0\nvirtual_router_id: 52\nvirtual_ipaddress: [10.0.0.100/24]\n")})
	_, raw := Compose(file, ov)
	if e := raw.Errors(); len(e) != 1 || e[0].Pos.File != fileConf || !strings.Contains(e[0].Msg, "etcd:/vipd/config/instances/VI_1:1") {
		t.Fatalf("Compose errors %v: want one at the file's VI_2 naming the store key", e)
	}
	m, ds, settled := ComposeFrom(file, ov, Overlay{})
	if ds.Err() != nil || m.Instances[0].VRID != 51 || m.Instances[0].Pos.File != fileConf {
		t.Errorf("settled: %v, VI_1 %+v", ds, m.Instances[0])
	}
	if len(settled.Rejected) != 1 || settled.Rejected[0].Key != "/vipd/config/instances/VI_1" || settled.Rejected[0].Kept {
		t.Errorf("rejected %v", settled.Rejected)
	}
	if len(settled.Instances) != 0 {
		t.Errorf("the settled overlay still holds %v", settled.Instances)
	}
}

func TestComposeKeepsTheLinesOfKeywords(t *testing.T) {
	// no_accept makes Validate warn at the keyword's line: line 28 of the
	// file, line 4 of the value stored as a keepalived block.
	ov := Build("/vipd", map[string][]byte{
		"/vipd/config/instances/VI_7": []byte("vrrp_instance VI_7 {\n  interface eth0\n  virtual_router_id 77\n  no_accept\n  virtual_ipaddress {\n    10.0.7.1/24\n  }\n}\n"),
	})
	_, ds := Compose(loadFile(t), ov)
	var got []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%s:%d", d.Pos.File, d.Pos.Line))
	}
	want := []string{fileConf + ":28", "etcd:/vipd/config/instances/VI_7:4"}
	if !slices.Equal(got, want) {
		t.Errorf("diagnostics at %v, want %v\n%s", got, want, ds)
	}
	// The same through a BuildFrom that keeps VI_7 after a bad value.
	ov = BuildFrom("/vipd", map[string][]byte{"/vipd/config/instances/VI_7": []byte("{")}, ov)
	_, ds = Compose(loadFile(t), ov)
	got = got[:0]
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%s:%d", d.Pos.File, d.Pos.Line))
	}
	if !slices.Equal(got, want) {
		t.Errorf("after a kept value: diagnostics at %v, want %v\n%s", got, want, ds)
	}
}

func TestComposeOfAnEmptyOverlayValidatesLikeTheFilesOwnModel(t *testing.T) {
	// Every keepalived.conf fixture of the parser, loaded as the agent
	// holds it: Compose with nothing in the store gives the same model, and
	// the diagnostics that validating the loaded model again gives, keyword
	// lines included (although Compose works on copies).
	paths, _ := filepath.Glob("../config/keepalived/testdata/*.conf")
	if len(paths) == 0 {
		t.Skip("no fixtures")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			file, ds := loader.Load(p, loader.Options{})
			if ds.Err() != nil {
				t.Skip("a fixture with errors")
			}
			again, _ := loader.Load(p, loader.Options{})
			want := config.Validate(again, config.ValidateOptions{})
			m, got := Compose(file, Overlay{})
			if diagText(got) != diagText(want) {
				t.Errorf("Compose diagnostics:\n%s\nvalidating the loaded model:\n%s", diagText(got), diagText(want))
			}
			a, _ := config.EncodeYAML(m)
			b, _ := config.EncodeYAML(file)
			if string(a) != string(b) {
				t.Errorf("composed model differs from the file's:\n%s\n---\n%s", a, b)
			}
		})
	}
}

func diagText(ds config.Diagnostics) string {
	var lines []string
	for _, d := range ds {
		lines = append(lines, d.String())
	}
	return strings.Join(lines, "\n")
}

// TestKeywordListCoversWhatValidatePointsAt reads config/validate.go: every
// keyword it asks a position for must be one Merge carries to the copies,
// or its messages would point at the block instead of the line.
func TestKeywordListCoversWhatValidatePointsAt(t *testing.T) {
	src, err := os.ReadFile("../config/validate.go")
	if err != nil {
		t.Skip(err)
	}
	var all []string
	for _, typ := range []reflect.Type{
		reflect.TypeFor[config.Global](), reflect.TypeFor[config.Instance](), reflect.TypeFor[config.Script](),
		reflect.TypeFor[config.VirtualServer](), reflect.TypeFor[config.RealServer](), reflect.TypeFor[config.Checker](),
	} {
		all = append(all, keywordsOf(typ)...)
	}
	calls := regexp.MustCompile(`v\.at\([^\n]*`).FindAll(src, -1)
	lit := regexp.MustCompile(`"([a-z_0-9 ]+)"`)
	n := 0
	for _, c := range calls {
		for _, m := range lit.FindAllSubmatch(c, -1) {
			kw := string(m[1])
			if strings.HasSuffix(kw, " ") || kw == "_" {
				continue // "unicast_peer "+addr (carried per peer), prefix+"_"+name (garp)
			}
			n++
			if !slices.Contains(all, kw) {
				t.Errorf("validate.go points at keyword %q, which Merge does not carry over (keywordAliases)", kw)
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d keywords in validate.go: has its form changed?", n)
	}
}

// FuzzBuildAndCompose: no snapshot makes Build, Compose or For panic, and
// every key is either in force, skipped (status, arbiter) or rejected.
// Seeds in testdata/fuzz/FuzzBuildAndCompose.
func FuzzBuildAndCompose(f *testing.F) {
	f.Add("/vipd/config/instances/VI_1", []byte("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n}\n"), "/vipd/priority/VI_1/n1", []byte("7"))
	f.Add("/vipd/config/virtual_servers/10.0.0.1 80", []byte("{\"address\":\"10.0.0.1\",\"port\":80}"), "/vipd/maintenance/n1", []byte(""))
	file := loadFile(f)
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, k2 string, v2 []byte) {
		kvs := map[string][]byte{k1: v1, k2: v2}
		ov := Build("/vipd", kvs)
		m, _ := Compose(file, ov)
		if m == nil {
			t.Fatal("nil model")
		}
		ov.For("n1")
		taken := len(ov.Instances) + len(ov.VirtualServers) + len(ov.Scripts) + len(ov.Priorities) + len(ov.Maintenance) + len(ov.InstanceMaintenance)
		skipped := 0
		for k := range kvs {
			if key, err := ParseKey("/vipd", k); err == nil && (key.Kind == KindStatus || key.Kind == KindArbiter) {
				skipped++
			}
		}
		if taken+skipped+len(ov.Rejected) != len(kvs) {
			t.Fatalf("%d keys: %d taken, %d skipped, %d rejected\n%s", len(kvs), taken, skipped, len(ov.Rejected), ov)
		}
	})
}

// BenchmarkComposeLargeFile: one etcd change on a node with 1000 instances
// and 100 virtual servers of 100 real servers each (the whole model is
// copied, normalized and validated).
func BenchmarkComposeLargeFile(b *testing.B) {
	var src strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&src, "vrrp_instance VI_%d {\n interface eth0\n virtual_router_id %d\n priority 100\n virtual_ipaddress {\n  10.%d.%d.1/24\n }\n}\n", i, i%255+1, i/250, i%250)
	}
	for v := range 100 {
		fmt.Fprintf(&src, "virtual_server 10.200.%d.1 80 {\n lb_algo rr\n", v)
		for r := range 100 {
			fmt.Fprintf(&src, " real_server 10.201.%d.%d 80 {\n  TCP_CHECK {\n   connect_timeout 3\n  }\n }\n", v, r)
		}
		src.WriteString("}\n")
	}
	file, _ := keepalived.Parse("big.conf", []byte(src.String()), keepalived.Options{})
	config.Normalize(file)
	ov := Build("/vipd", map[string][]byte{
		"/vipd/config/instances/VI_5":  []byte("interface: eth1\nvirtual_router_id: 6\nvirtual_ipaddress: [10.9.9.9/24]\n"),
		"/vipd/priority/VI_1/node1":    []byte("200"),
		"/vipd/config/instances/EXTRA": []byte("vrrp_instance EXTRA {\n interface eth1\n virtual_router_id 200\n}\n"),
	})
	b.ResetTimer()
	for range b.N {
		Compose(file, ov)
	}
}
