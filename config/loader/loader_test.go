package loader

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
)

var ignorePos = cmp.Options{
	cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}),
	cmpopts.EquateEmpty(),
	cmpopts.IgnoreTypes(config.Pos{}),
	// RawSource keeps the keepalived.conf line for warnings; YAML has none.
	cmpopts.IgnoreFields(config.Route{}, "RawSource"),
}

func TestExamplesLoadWithoutErrors(t *testing.T) {
	for _, path := range []string{"../../deploy/examples/vipd.yaml", "../../deploy/examples/keepalived.conf"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m, ds := Load(path, Options{})
			if len(ds) != 0 {
				t.Fatalf("Load(%s) diagnostics:\n%v", path, ds.Err())
			}
			if len(m.Instances) < 2 || len(m.VirtualServers) == 0 || len(m.SyncGroups) == 0 || len(m.Scripts) == 0 {
				t.Errorf("example is missing sections: %d instances, %d virtual servers, %d sync groups, %d scripts",
					len(m.Instances), len(m.VirtualServers), len(m.SyncGroups), len(m.Scripts))
			}
		})
	}
}

func TestExampleYAMLCoversEverySection(t *testing.T) {
	m, ds := Load("../../deploy/examples/vipd.yaml", Options{})
	if ds.Err() != nil {
		t.Fatal(ds.Err())
	}
	var checkers = map[string]bool{}
	for _, vs := range m.VirtualServers {
		for _, rs := range vs.RealServers {
			for _, c := range rs.Checkers {
				checkers[c.Type] = true
			}
		}
	}
	if len(checkers) != 6 || len(m.VirtualServerGroups) == 0 || m.VirtualServers[0].SorryServer == nil {
		t.Errorf("vipd.yaml should show all six checkers, a virtual_server_group and a sorry_server; has %v", checkers)
	}
}

func TestLoadPicksTheSyntaxByExtension(t *testing.T) {
	lines := map[string]int{"/etc/vipd/a.yaml": 2, "/etc/vipd/a.YML": 2, "/etc/vipd/a.conf": 1}
	files := map[string]string{
		"/etc/vipd/a.yaml": "instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 7\n    virtual_ipaddress: [10.0.0.1/24]\n",
		"/etc/vipd/a.YML":  "instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 7\n    virtual_ipaddress: [10.0.0.1/24]\n",
		"/etc/vipd/a.conf": "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n  10.0.0.1/24\n }\n}\n",
	}
	opts := Options{Keepalived: keepalived.Options{ReadFile: func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}}}
	var models []*config.Model
	for path := range files {
		m, ds := Load(path, opts)
		if len(ds) != 0 {
			t.Fatalf("Load(%s): %v", path, ds)
		}
		if want := (config.Pos{File: path, Line: lines[path]}); m.Instances[0].Pos != want {
			t.Errorf("Load(%s): instance at %+v", path, m.Instances[0].Pos)
		}
		models = append(models, m)
	}
	for _, m := range models[1:] {
		if diff := cmp.Diff(models[0], m, ignorePos); diff != "" {
			t.Errorf("the three syntaxes give different models (-first +other):\n%s", diff)
		}
	}
}

func TestLoadReportsIOErrorsAtTheFile(t *testing.T) {
	for _, path := range []string{"/nonexistent/vipd.yaml", "/nonexistent/keepalived.conf"} {
		m, ds := Load(path, Options{})
		if m == nil {
			t.Fatalf("Load(%s) returned a nil model", path)
		}
		errs := ds.Errors()
		if len(errs) == 0 || errs[0].Pos.File != path || !strings.Contains(errs[0].Msg, "no such file") {
			t.Errorf("Load(%s) = %v, want a 'no such file' error at the file", path, ds)
		}
	}
}

func TestLoadReportsAYAMLDecodingErrorOnce(t *testing.T) {
	read := func(string) ([]byte, error) {
		return []byte("instances:\n  - name: A\n    virtual_router_id: x\n"), nil
	}
	_, ds := Load("bad.yaml", Options{Keepalived: keepalived.Options{ReadFile: read}})
	if len(ds) != 1 || ds[0].String() != `bad.yaml:3: virtual_router_id: expected a whole number, got "x"` {
		t.Errorf("Load = %v, want only the decoding error", ds)
	}
}

// TestLoadReportsEveryErrorOfAFileInOneRun: syntax/value errors from the
// parser and semantic errors from validation come out together, each once,
// at its line.
func TestLoadReportsEveryErrorOfAFileInOneRun(t *testing.T) {
	src := `vrrp_script chk {
    script "/bin/true"
}
vrrp_instance A {
    interface eth0
    virtual_router_id 300
    advert_int 500
    virtual_ipaddress {
        10.0.0.300/24
    }
    track_script {
        nosuch
    }
}
vrrp_instance B {
    state ACTIVE
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.1/24
    }
}
vrrp_instance C {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.2/24
    }
}
virtual_server 10.0.0.1 80 {
    lb_algo bogus
    real_server 10.0.0.5 80 {
        weight 1
    }
}
vrrp_instance D {
    interface eth0
`
	read := func(string) ([]byte, error) { return []byte(src), nil }
	_, ds := Load("k.conf", Options{Keepalived: keepalived.Options{ReadFile: read}})
	want := []string{
		"k.conf:6: virtual_router_id 300: must be 1..255",
		"k.conf:9: virtual_ipaddress 10.0.0.300/24: not an IP address",
		"k.conf:16: state ACTIVE: must be MASTER or BACKUP",
		"k.conf:36: vrrp_instance block is never closed (missing '}')",
		// advert_int and lb_algo are reported at their own line, not at
		// the vrrp_instance / virtual_server line.
		"k.conf:7: advert_int 500: VRRPv2 needs whole seconds 1..255",
		"k.conf:12: track_script nosuch: no vrrp_script of that name",
		"k.conf:36: virtual_router_id: missing (every vrrp_instance needs one, 1..255)",
		"k.conf:23: virtual_router_id 51: already used on eth0 (IPv4) by vrrp_instance B at k.conf:15",
		"k.conf:31: lb_algo bogus: must be one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos",
	}
	var got []string
	for _, d := range ds.Errors() {
		got = append(got, d.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestLoadValidatesAndWarnsAboutMissingInterfaces(t *testing.T) {
	read := func(string) ([]byte, error) {
		return []byte("instances:\n  - name: A\n    interface: nosuch0\n    virtual_router_id: 300\n    virtual_ipaddress: [10.0.0.1]\n"), nil
	}
	_, ds := Load("v.yaml", Options{InterfaceExists: HostInterfaceExists, Keepalived: keepalived.Options{ReadFile: read}})
	want := []string{"v.yaml:2: virtual_router_id 300: must be 1..255", "v.yaml:2: warning: interface nosuch0: does not exist on this host"}
	var got []string
	for _, d := range ds {
		got = append(got, d.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

// TestLoadLooksUpEachInterfaceOnce: a host lookup reads the whole link
// table, so thousands of instances on a few interfaces ask once per name
// (every warning is still given).
func TestLoadLooksUpEachInterfaceOnce(t *testing.T) {
	var conf strings.Builder
	conf.WriteString("instances:\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&conf, "  - name: I%d\n    interface: eth%d\n    virtual_router_id: %d\n    virtual_ipaddress: [10.0.%d.1]\n", i, i%2, i, i)
	}
	read := func(string) ([]byte, error) { return []byte(conf.String()), nil }
	asked := map[string]int{}
	exists := func(name string) bool { asked[name]++; return name == "eth0" }
	_, ds := Load("v.yaml", Options{InterfaceExists: exists, Keepalived: keepalived.Options{ReadFile: read}})
	if want := map[string]int{"eth0": 1, "eth1": 1}; !maps.Equal(asked, want) {
		t.Errorf("lookups %v, want %v", asked, want)
	}
	warned := 0
	for _, d := range ds {
		if strings.Contains(d.String(), "interface eth1: does not exist") {
			warned++
		}
	}
	if warned != 10 {
		t.Errorf("%d warnings about eth1, want one per instance on it (10): %v", warned, ds)
	}
}

func TestHostInterfaceExists(t *testing.T) {
	if !HostInterfaceExists("lo") {
		t.Error(`HostInterfaceExists("lo") = false`)
	}
	if HostInterfaceExists("vipd-none0") {
		t.Error(`HostInterfaceExists("vipd-none0") = true`)
	}
}

func TestConvertGivesYAMLThatLoadsToTheSameModel(t *testing.T) {
	out, ds := Convert("../../deploy/examples/keepalived.conf", Options{})
	if ds.Err() != nil {
		t.Fatal(ds.Err())
	}
	want, _ := Load("../../deploy/examples/keepalived.conf", Options{})
	got, ds := config.DecodeYAML("converted.yaml", out)
	if len(ds) != 0 {
		t.Fatalf("decoding converted YAML: %v", ds)
	}
	config.Normalize(got)
	if diff := cmp.Diff(want, got, ignorePos); diff != "" {
		t.Errorf("convert (-keepalived.conf +yaml):\n%s", diff)
	}
}

// keepalivedFixtures are the real keepalived configurations of the captures
// and the parser's fixtures.
func keepalivedFixtures(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{
		"../../vrrp/testdata/captures/*.conf", // real keepalived 2.2.7 configs (copied from ../shared)
		"../keepalived/testdata/*.conf",
		"../keepalived/testdata/*/*.conf",
		"../../deploy/examples/*.conf",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no keepalived fixtures found")
	}
	return files
}

// TestKeepalivedToYAMLPreservesTheModel is the conversion property: for every
// keepalived fixture, keepalived.conf -> model -> vipd.yaml -> model gives
// the model parsed from the original (both normalized, positions aside).
func TestKeepalivedToYAMLPreservesTheModel(t *testing.T) {
	converted := 0
	for _, path := range keepalivedFixtures(t) {
		t.Run(path, func(t *testing.T) {
			want, ds := keepalived.ParseFile(path, keepalived.Options{})
			if ds.Err() != nil {
				t.Skipf("fixture has parse errors on purpose or is a fragment: %v", firstLine(ds.Err()))
			}
			config.Normalize(want)
			out, err := config.EncodeYAML(want)
			if err != nil {
				t.Fatalf("EncodeYAML: %v", err)
			}
			got, ds := config.DecodeYAML(path+".yaml", out)
			if len(ds) != 0 {
				t.Fatalf("DecodeYAML: %v\n%s", ds, out)
			}
			config.Normalize(got)
			if diff := cmp.Diff(want, got, ignorePos); diff != "" {
				t.Errorf("keepalived -> YAML -> model (-keepalived +yaml):\n%s\nYAML:\n%s", diff, out)
			}
			converted++
		})
	}
	if converted < 8 {
		t.Errorf("only %d fixtures converted; expected the 8 capture configs at least", converted)
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestRandomModelsSurviveYAML is the randomized property: any model survives
// EncodeYAML and DecodeYAML (after Normalize on both sides).
func TestRandomModelsSurviveYAML(t *testing.T) {
	for seed := uint64(1); seed <= 100; seed++ {
		g := gen{rand.New(rand.NewPCG(seed, seed*7919))}
		m := g.model()
		want := cloneDirect(m)
		config.Normalize(want)
		out, err := config.EncodeYAML(m)
		if err != nil {
			t.Fatalf("seed %d: EncodeYAML: %v", seed, err)
		}
		got, ds := config.DecodeYAML("random.yaml", out)
		if ds.Err() != nil {
			t.Fatalf("seed %d: DecodeYAML: %v\n%s", seed, ds, out)
		}
		config.Normalize(got)
		if diff := cmp.Diff(want, got, ignorePos); diff != "" {
			t.Fatalf("seed %d: (-want +got):\n%s\nYAML:\n%s", seed, diff, out)
		}
	}
}

// cloneDirect copies the parts of a model the generator fills.
func cloneDirect(m *config.Model) *config.Model {
	c := *m
	c.Global.NotificationEmail = append([]string(nil), m.Global.NotificationEmail...)
	c.Scripts = nil
	for _, s := range m.Scripts {
		s2 := *s
		c.Scripts = append(c.Scripts, &s2)
	}
	c.Instances = nil
	for _, in := range m.Instances {
		i2 := *in
		i2.VIPs = append([]config.VIP(nil), in.VIPs...)
		i2.UnicastPeers = append([]netip.Addr(nil), in.UnicastPeers...)
		i2.TrackScripts = append([]config.Track(nil), in.TrackScripts...)
		if in.Auth != nil {
			a := *in.Auth
			i2.Auth = &a
		}
		c.Instances = append(c.Instances, &i2)
	}
	c.SyncGroups = nil
	for _, g := range m.SyncGroups {
		g2 := *g
		g2.Members = append([]string(nil), g.Members...)
		c.SyncGroups = append(c.SyncGroups, &g2)
	}
	c.VirtualServers = nil
	for _, vs := range m.VirtualServers {
		v2 := *vs
		v2.RealServers = nil
		for _, rs := range vs.RealServers {
			r2 := *rs
			r2.Checkers = nil
			for _, ch := range rs.Checkers {
				c2 := *ch
				r2.Checkers = append(r2.Checkers, &c2)
			}
			v2.RealServers = append(v2.RealServers, &r2)
		}
		c.VirtualServers = append(c.VirtualServers, &v2)
	}
	return &c
}

type gen struct{ r *rand.Rand }

func (g gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g gen) maybe() bool              { return g.r.IntN(2) == 0 }

// name mixes case and characters YAML treats specially.
func (g gen) name() string {
	return g.pick("VI_1", "vi_Web", "Chk-DB", "null", "yes", "123", "a: b", "#hash", " lead", "München", "x.y.z", "") + fmt.Sprint(g.r.IntN(3))
}

func (g gen) dur() config.Duration {
	switch g.r.IntN(4) {
	case 0:
		return 0
	case 1:
		return config.Duration(time.Duration(g.r.IntN(300)) * time.Second)
	case 2:
		return config.Duration(time.Duration(g.r.IntN(5000)) * 10 * time.Millisecond)
	}
	return config.Duration(g.r.Int64N(int64(time.Hour)))
}

func (g gen) addr(v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(g.r.IntN(256)), byte(g.r.IntN(256)), byte(g.r.IntN(256))})
}

func (g gen) model() *config.Model {
	m := &config.Model{Global: config.Global{
		RouterID: g.name(), VRRPVersion: g.r.IntN(4), CheckUnicastSrc: g.maybe(),
		Garp: config.Garp{MasterDelay: g.dur(), MasterRepeat: g.r.IntN(7), LowerPrioDelay: g.dur(), MasterRefresh: g.dur()},
	}}
	if g.maybe() {
		m.Global.NotificationEmail = []string{g.name(), g.name()}
	}
	for range g.r.IntN(3) {
		m.Scripts = append(m.Scripts, &config.Script{Name: g.name(), Script: g.name(), Interval: g.dur(), Timeout: g.dur(),
			Weight: g.r.IntN(507) - 253, Rise: g.r.IntN(3), Fall: g.r.IntN(3), WeightReverse: g.maybe()})
	}
	for range g.r.IntN(4) {
		v6 := g.maybe()
		in := &config.Instance{
			Name: g.name(), State: g.pick("", config.StateMaster, config.StateBackup), Interface: g.pick("", "eth0", "Bond0.7"),
			VRID: g.r.IntN(300), Priority: g.r.IntN(256), AdvertInt: g.dur(), Version: g.r.IntN(4),
			NoPreempt: g.maybe(), PreemptDelay: g.dur(), NativeIPv6: v6 && g.maybe(), UseVMAC: g.maybe(),
			Garp: config.Garp{MasterRepeat: g.r.IntN(3), GNAInterval: g.dur(), LowerPrioRepeat: g.r.IntN(3)},
		}
		for range g.r.IntN(4) {
			a := g.addr(v6)
			in.VIPs = append(in.VIPs, config.VIP{Prefix: netip.PrefixFrom(a, g.r.IntN(a.BitLen()+1)), Dev: g.pick("", "eth0"), Label: g.pick("", "eth0:1")})
		}
		for range g.r.IntN(3) {
			in.UnicastPeers = append(in.UnicastPeers, g.addr(v6))
		}
		if g.maybe() {
			in.UnicastSrcIP = g.addr(v6)
		}
		if g.maybe() {
			in.Auth = &config.Auth{Type: g.pick("PASS", "AH"), Pass: g.name()}
		}
		for range g.r.IntN(3) {
			t := config.Track{Name: g.name(), Reverse: g.maybe()}
			if g.maybe() {
				w := g.r.IntN(100) - 50
				t.Weight = &w
			}
			in.TrackScripts = append(in.TrackScripts, t)
		}
		m.Instances = append(m.Instances, in)
	}
	if len(m.Instances) > 0 && g.maybe() {
		m.SyncGroups = []*config.SyncGroup{{Name: g.name(), Members: []string{m.Instances[0].Name}}}
	}
	for range g.r.IntN(3) {
		vs := &config.VirtualServer{Name: g.name(), Port: g.r.IntN(65536), LBAlgo: g.pick("", "rr", "wlc"), LBKind: g.pick("", "DR", "NAT"),
			Protocol: g.pick("", "TCP", "UDP"), DelayLoop: g.dur(), Quorum: g.r.IntN(3)}
		switch g.r.IntN(3) {
		case 0:
			vs.Address = g.addr(g.maybe())
		case 1:
			vs.FWMark = 1 + g.r.IntN(100)
		default:
			vs.Group = g.name()
		}
		for range g.r.IntN(3) {
			rs := &config.RealServer{Address: g.addr(g.maybe()), Port: g.r.IntN(3) * 8080, Weight: g.weight()}
			for range g.r.IntN(3) {
				rs.Checkers = append(rs.Checkers, &config.Checker{
					Type: g.pick(config.CheckTCP, config.CheckHTTP, config.CheckSSL, config.CheckMisc), ConnectPort: g.r.IntN(2) * 80,
					ConnectTimeout: g.dur(), Retry: g.retry(), DelayBeforeRetry: g.dur(), DelayLoop: g.dur(), MiscPath: g.name(),
				})
			}
			vs.RealServers = append(vs.RealServers, rs)
		}
		m.VirtualServers = append(m.VirtualServers, vs)
	}
	return m
}

// weight is a real server weight: unset (nil) or 0..3, 0 included.
func (g gen) weight() *int {
	if g.maybe() {
		return nil
	}
	w := g.r.IntN(4)
	return &w
}

// retry is a checker retry: unset (nil) or 0..2, 0 included.
func (g gen) retry() *int {
	if g.maybe() {
		return nil
	}
	r := g.r.IntN(3)
	return &r
}
