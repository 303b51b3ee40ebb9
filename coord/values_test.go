package coord

import (
	"errors"
	"strings"
	"testing"

	"github.com/vipd/vipd/config"
)

func TestDecodePriorityAcceptsOnlyIntegers1To254(t *testing.T) {
	for _, tt := range []struct {
		val  string
		want int
		err  string
	}{
		{val: "200", want: 200},
		{val: " 200\n", want: 200},
		{val: "1", want: 1},
		{val: "254", want: 254},
		{val: "banana", err: `"banana": must be an integer 1..254`},
		{val: "0", err: `"0": must be an integer 1..254`},
		{val: "255", err: `"255": must be an integer 1..254`},
		{val: "-5", err: `"-5": must be an integer 1..254`},
		{val: "2.5", err: `"2.5": must be an integer 1..254`},
		{val: "", err: `"": must be an integer 1..254`},
		{val: "99999999999999999999", err: `"99999999999999999999": must be an integer 1..254`},
		{val: strings.Repeat("9", 100), err: `... (100 bytes): must be an integer 1..254`},
	} {
		t.Run(tt.val, func(t *testing.T) {
			got, err := DecodePriority([]byte(tt.val))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("DecodePriority = %d, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DecodePriority = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestDecodeMaintenanceIsOneLineOfFreeText(t *testing.T) {
	for _, tt := range []struct{ val, want string }{
		{"disk swap", "disk swap"},
		{"  disk swap\n", "disk swap"},
		{"", "maintenance"},
		{" \n\t", "maintenance"},
		{"line one\nline two", "line one line two"},
		{"a\x00b\x1b[31mc", "a b [31mc"},
		{"caf\xe9", "caf\uFFFD"},
		{"Rack 4 / PSU", "Rack 4 / PSU"},
	} {
		if got := DecodeMaintenance([]byte(tt.val)); got != tt.want {
			t.Errorf("DecodeMaintenance(%q) = %q, want %q", tt.val, got, tt.want)
		}
	}
}

// encodeOne renders one object as vipd.yaml text, for comparing objects
// whatever their positions.
func encodeOne(t *testing.T, m *config.Model) string {
	t.Helper()
	out, err := config.EncodeYAML(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const instKey = "/vipd/config/instances/VI_1"

func TestDecodeInstanceReadsYAMLJSONAndTheKeepalivedBlockAlike(t *testing.T) {
	values := map[string]string{
		"yaml": `name: VI_1
interface: eth0
virtual_router_id: 51
priority: 150
advert_int: 1
virtual_ipaddress:
  - 10.0.0.100/24 dev eth0
track_script:
  - chk_web
`,
		"yaml without name": `interface: eth0
virtual_router_id: 51
priority: 150
advert_int: 1s
virtual_ipaddress: [10.0.0.100/24 dev eth0]
track_script: [chk_web]
`,
		"json": `{
	"name": "VI_1",
	"interface": "eth0",
	"virtual_router_id": 51,
	"priority": 150,
	"advert_int": "1s",
	"virtual_ipaddress": [{"address": "10.0.0.100/24", "dev": "eth0"}],
	"track_script": [{"name": "chk_web"}]
}`,
		"keepalived": `# pasted from keepalived.conf
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24 dev eth0
    }
    track_script {
        chk_web
    }
}
`,
		"keepalived with a definition": `$IF=eth0
vrrp_instance VI_1 {
    interface $IF
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24 dev ${IF}
    }
    track_script {
        chk_web
    }
}
`,
		"yaml document with directive and markers": `%YAML 1.1
---
name: VI_1
interface: eth0
virtual_router_id: 51
priority: 150
advert_int: 1
virtual_ipaddress: ["10.0.0.100/24 dev eth0"]
track_script: [chk_web]
...
`,
	}
	var want string
	for _, syntax := range []string{"yaml", "yaml without name", "json", "keepalived", "keepalived with a definition", "yaml document with directive and markers"} {
		t.Run(syntax, func(t *testing.T) {
			in, warns, err := DecodeInstance(instKey, "VI_1", []byte(values[syntax]))
			if err != nil || len(warns) != 0 {
				t.Fatalf("DecodeInstance: %v, warnings %v", err, warns)
			}
			if in.Pos.File != "etcd:"+instKey || in.Pos.Line < 1 {
				t.Errorf("position %+v, want etcd:%s:LINE", in.Pos, instKey)
			}
			got := encodeOne(t, &config.Model{Instances: []*config.Instance{in}})
			if want == "" {
				want = got
			} else if got != want {
				t.Errorf("decoded\n%s\nwant (as the first syntax)\n%s", got, want)
			}
		})
	}
}

func TestDecodeVirtualServerReadsYAMLJSONAndTheKeepalivedBlockAlike(t *testing.T) {
	const key = "/vipd/config/virtual_servers/10.0.0.1 80"
	values := []string{
		`name: 10.0.0.1 80
address: 10.0.0.1
port: 80
lb_algo: rr
real_servers:
  - address: 10.0.1.1
    port: 8080
    checkers:
      - type: TCP_CHECK
        connect_timeout: 3s
`,
		`{"address": "10.0.0.1", "port": 80, "lb_algo": "rr",
  "real_servers": [{"address": "10.0.1.1", "port": 8080,
    "checkers": [{"type": "TCP_CHECK", "connect_timeout": 3}]}]}`,
		`virtual_server 10.0.0.1 80 {
    lb_algo rr
    real_server 10.0.1.1 8080 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}`,
	}
	var want string
	for i, v := range values {
		vs, warns, err := DecodeVirtualServer(key, "10.0.0.1 80", []byte(v))
		if err != nil || len(warns) != 0 {
			t.Fatalf("value %d: %v, warnings %v", i, err, warns)
		}
		got := encodeOne(t, &config.Model{VirtualServers: []*config.VirtualServer{vs}})
		if i == 0 {
			want = got
		} else if got != want {
			t.Errorf("value %d decoded\n%s\nwant\n%s", i, got, want)
		}
	}
}

func TestDecodeScriptReadsYAMLJSONAndTheKeepalivedBlockAlike(t *testing.T) {
	const key = "/vipd/config/scripts/chk_web"
	values := []string{
		"script: /usr/bin/curl -sf http://localhost/\ninterval: 2s\nweight: -20\nfall: 2\n",
		`{"name": "chk_web", "script": "/usr/bin/curl -sf http://localhost/", "interval": 2, "weight": -20, "fall": 2}`,
		"vrrp_script chk_web {\n  script \"/usr/bin/curl -sf http://localhost/\"\n  interval 2\n  weight -20\n  fall 2\n}\n",
	}
	var want string
	for i, v := range values {
		s, warns, err := DecodeScript(key, "chk_web", []byte(v))
		if err != nil || len(warns) != 0 {
			t.Fatalf("value %d: %v, warnings %v", i, err, warns)
		}
		got := encodeOne(t, &config.Model{Scripts: []*config.Script{s}})
		if i == 0 {
			want = got
		} else if got != want {
			t.Errorf("value %d decoded\n%s\nwant\n%s", i, got, want)
		}
	}
}

func TestDecodeErrorsPointAtTheLineOfTheValueUnderTheKey(t *testing.T) {
	for _, tt := range []struct {
		name, val string
		want      []string // the error's lines, in order
	}{
		{"yaml wrong type", "name: VI_1\ninterface: eth0\nvirtual_router_id: fifty\n",
			[]string{`etcd:/vipd/config/instances/VI_1:3: virtual_router_id: expected a whole number, got "fifty"`}},
		{"yaml bad address in a list", "interface: eth0\nvirtual_ipaddress:\n  - 10.0.0.1/24\n  - 10.0.0.300/24\n",
			[]string{`etcd:/vipd/config/instances/VI_1:4: virtual_ipaddress[1]: 10.0.0.300/24: not an address/prefix length`}},
		{"broken yaml", "name: VI_1\ninterface: eth0\n priority: 100\n",
			[]string{`etcd:/vipd/config/instances/VI_1:3: mapping values are not allowed in this context`}},
		{"after a document start marker", "---\nname: VI_1\ninterface: eth0\nvirtual_router_id: x\n",
			[]string{`etcd:/vipd/config/instances/VI_1:4: virtual_router_id: expected a whole number, got "x"`}},
		{"lines ended by a lone CR", "name: VI_1\rinterface: eth0\rvirtual_router_id: x\r",
			[]string{`etcd:/vipd/config/instances/VI_1:3: virtual_router_id: expected a whole number, got "x"`}},
		{"json", "{\n  \"name\": \"VI_1\",\n  \"priority\": \"high\"\n}",
			[]string{`etcd:/vipd/config/instances/VI_1:3: priority: expected a whole number, got "high"`}},
		{"keepalived block", "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 300\n}\n",
			[]string{`etcd:/vipd/config/instances/VI_1:3: virtual_router_id 300: must be 1..255`}},
		{"another name in yaml", "\nname: VI_2\ninterface: eth0\n",
			[]string{`etcd:/vipd/config/instances/VI_1:2: vrrp_instance VI_2: the name must be the key's, VI_1`}},
		{"another name in a block", "vrrp_instance vi_1 {\n  interface eth0\n}\n",
			[]string{`etcd:/vipd/config/instances/VI_1:1: vrrp_instance vi_1: the name must be the key's, VI_1`}},
		{"a second block", "vrrp_instance VI_1 {\n}\nvrrp_instance VI_2 {\n}\n",
			[]string{`etcd:/vipd/config/instances/VI_1:3: a second vrrp_instance block: a key holds exactly one instance`}},
		{"global_defs with the block", "global_defs {\n  router_id x\n}\nvrrp_instance VI_1 {\n  interface eth0\n}\n",
			[]string{`etcd:/vipd/config/instances/VI_1:1: global_defs: a config/instances key holds one vrrp_instance block and nothing else`}},
		{"the wrong block", "virtual_server 10.0.0.1 80 {\n}\n",
			[]string{`etcd:/vipd/config/instances/VI_1:1: virtual_server: a config/instances key holds one vrrp_instance block and nothing else`}},
		{"include", "include /etc/keepalived/other.conf\nvrrp_instance VI_1 {\n}\n",
			[]string{`etcd:/vipd/config/instances/VI_1:1: include /etc/keepalived/other.conf: a value stored in etcd cannot include files`}},
		{"a second block through a definition", "$B=vrrp_instance VI_2 { }\nvrrp_instance VI_1 {\n}\n$B\n",
			[]string{`etcd:/vipd/config/instances/VI_1: the value must define exactly one vrrp_instance block and nothing else`}},
		{"a second yaml document", "name: VI_1\n---\nname: VI_2\n",
			[]string{`etcd:/vipd/config/instances/VI_1:3: a second YAML document: a key holds exactly one instance`}},
		{"a yaml list", "- name: VI_1\n",
			[]string{`etcd:/vipd/config/instances/VI_1:1: want one instance as a YAML or JSON mapping, or a vrrp_instance block`}},
		{"a scalar", "VI_1\n",
			[]string{`etcd:/vipd/config/instances/VI_1:1: want one instance as a YAML or JSON mapping, or a vrrp_instance block`}},
		{"empty", "",
			[]string{`etcd:/vipd/config/instances/VI_1: empty value: want one instance as YAML or JSON, or a vrrp_instance block`}},
		{"only comments", "# nothing yet\n",
			[]string{`etcd:/vipd/config/instances/VI_1: empty value: want one instance as YAML or JSON, or a vrrp_instance block`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in, _, err := DecodeInstance(instKey, "VI_1", []byte(tt.val))
			if err == nil {
				t.Fatalf("DecodeInstance = %+v, want an error", in)
			}
			if in != nil {
				t.Errorf("a rejected value gave an object")
			}
			var ce *config.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.ConfigError", err)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDecodeReturnsWarningsWithTheObject(t *testing.T) {
	for _, tt := range []struct {
		name, val, want string
	}{
		{"unknown yaml key", "interface: eth0\nvirtual_router_id: 5\nbananas: 3\n",
			"etcd:/vipd/config/instances/VI_1:3: warning: bananas: unknown key (ignored)"},
		{"unknown keepalived keyword", "vrrp_instance VI_1 {\n  interface eth0\n  bananas 3\n}\n",
			"etcd:/vipd/config/instances/VI_1:3: warning: unknown keyword bananas"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in, warns, err := DecodeInstance(instKey, "VI_1", []byte(tt.val))
			if err != nil || in == nil {
				t.Fatalf("DecodeInstance: %v", err)
			}
			if len(warns) != 1 || warns[0].String() != tt.want {
				t.Errorf("warnings %q, want [%q]", warns, tt.want)
			}
		})
	}
}

func TestDecodedPositionsOfNestedObjectsAreLinesOfTheValue(t *testing.T) {
	val := "# web pool\nname: 10.0.0.1 80\naddress: 10.0.0.1\nport: 80\nreal_servers:\n  - address: 10.0.1.1\n    checkers:\n      - type: TCP_CHECK\n"
	vs, _, err := DecodeVirtualServer("/vipd/config/virtual_servers/10.0.0.1 80", "10.0.0.1 80", []byte(val))
	if err != nil {
		t.Fatal(err)
	}
	file := "etcd:/vipd/config/virtual_servers/10.0.0.1 80"
	for _, tt := range []struct {
		what string
		got  config.Pos
		line int
	}{
		{"virtual server", vs.Pos, 2},
		{"real server", vs.RealServers[0].Pos, 6},
		{"checker", vs.RealServers[0].Checkers[0].Pos, 8},
	} {
		if tt.got != (config.Pos{File: file, Line: tt.line}) {
			t.Errorf("%s at %+v, want %s:%d", tt.what, tt.got, file, tt.line)
		}
	}
}

func TestFirstWordTellsKeepalivedFromYAML(t *testing.T) {
	for _, tt := range []struct {
		val        string
		keepalived bool
	}{
		{"vrrp_instance VI_1 {", true},
		{"\n  # comment\n! another\nvirtual_server 10.0.0.1 80 {", true},
		{"vrrp_script{", true},
		{"global_defs {", true},
		{"$IF=eth0\n", true},
		{"@node1 vrrp_instance VI_1 {", true},
		{"include x.conf", true},
		{"name: VI_1", false},
		{"{\"name\": \"VI_1\"}", false},
		{"---\nname: x", false},
		{"$ref: x", false},
		{"vrrp_instance: x", false},
		{"", false},
	} {
		if got := isKeepalivedBlock([]byte(tt.val)); got != tt.keepalived {
			t.Errorf("isKeepalivedBlock(%q) = %v, want %v", tt.val, got, tt.keepalived)
		}
	}
}

// fuzzDecoder checks the properties every config decoder has on any bytes:
// no panic; either an object named name and no error, or an error and no
// object; every diagnostic at the key, on a line the value has.
func fuzzDecoder[T any](t *testing.T, key, name string, val []byte, decode func(key, name string, val []byte) (*T, config.Diagnostics, error), nameOf func(*T) string) {
	obj, warns, err := decode(key, name, val)
	lines := strings.Count(lineBreaks.Replace(string(val)), "\n") + 1
	check := func(ds config.Diagnostics) {
		for _, d := range ds {
			if d.Pos.File != PosFile(key) || d.Pos.Line < 0 || d.Pos.Line > lines {
				t.Fatalf("diagnostic %q not on a line of the value (%d lines)", d, lines)
			}
		}
	}
	check(warns)
	if err != nil {
		if obj != nil {
			t.Fatal("an error and an object")
		}
		var ce *config.ConfigError
		if !errors.As(err, &ce) || len(ce.Diags) == 0 {
			t.Fatalf("error %v is not a *config.ConfigError with diagnostics", err)
		}
		check(ce.Diags)
		return
	}
	if obj == nil || nameOf(obj) != name {
		t.Fatalf("no error, object %+v (want the name %q)", obj, name)
	}
}

// FuzzDecodeInstance: see fuzzDecoder. Seeds in testdata/fuzz/FuzzDecodeInstance.
func FuzzDecodeInstance(f *testing.F) {
	f.Add([]byte("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 5\n}\n"))
	f.Add([]byte("name: VI_1\ninterface: eth0\n"))
	f.Fuzz(func(t *testing.T, val []byte) {
		fuzzDecoder(t, instKey, "VI_1", val, DecodeInstance, func(in *config.Instance) string { return in.Name })
	})
}

// FuzzDecodeVirtualServer: see fuzzDecoder. Seeds in
// testdata/fuzz/FuzzDecodeVirtualServer.
func FuzzDecodeVirtualServer(f *testing.F) {
	f.Add([]byte("virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n }\n}\n"))
	f.Add([]byte("{\"address\": \"10.0.0.1\", \"port\": 80}"))
	f.Fuzz(func(t *testing.T, val []byte) {
		fuzzDecoder(t, "/vipd/config/virtual_servers/10.0.0.1 80", "10.0.0.1 80", val, DecodeVirtualServer, func(vs *config.VirtualServer) string { return vs.Name })
	})
}

// FuzzDecodeScript: see fuzzDecoder. Seeds in testdata/fuzz/FuzzDecodeScript.
func FuzzDecodeScript(f *testing.F) {
	f.Add([]byte("vrrp_script chk {\n script /bin/true\n}\n"))
	f.Add([]byte("script: /bin/true\n"))
	f.Fuzz(func(t *testing.T, val []byte) {
		fuzzDecoder(t, "/vipd/config/scripts/chk", "chk", val, DecodeScript, func(s *config.Script) string { return s.Name })
	})
}

// FuzzDecodePriority: no panic; a value is accepted exactly when it is an
// integer 1..254. Seeds in testdata/fuzz/FuzzDecodePriority.
func FuzzDecodePriority(f *testing.F) {
	f.Add([]byte("200"))
	f.Add([]byte("banana"))
	f.Fuzz(func(t *testing.T, val []byte) {
		p, err := DecodePriority(val)
		if err == nil && (p < 1 || p > 254) {
			t.Fatalf("DecodePriority(%q) = %d", val, p)
		}
		if err != nil && p != 0 {
			t.Fatalf("DecodePriority(%q) = %d with error %v", val, p, err)
		}
		if r := DecodeMaintenance(val); r == "" || strings.ContainsAny(r, "\n\r\x00") {
			t.Fatalf("DecodeMaintenance(%q) = %q", val, r)
		}
	})
}
