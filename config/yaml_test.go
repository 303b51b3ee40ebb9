package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var ignorePos = cmp.Options{cmpModel, cmpopts.IgnoreTypes(Pos{}), cmpopts.IgnoreFields(Route{}, "RawSource")}

func TestYAMLRoundTripOfNormalizedModel(t *testing.T) {
	want := exampleModel()
	Normalize(want)
	out, err := EncodeYAML(want)
	if err != nil {
		t.Fatalf("EncodeYAML: %v", err)
	}
	got, ds := DecodeYAML("rt.yaml", out)
	if len(ds) != 0 {
		t.Fatalf("DecodeYAML: %v\n%s", ds, out)
	}
	Normalize(got)
	if diff := cmp.Diff(want, got, ignorePos); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\nYAML:\n%s", diff, out)
	}
}

func TestYAMLRoundTripKeepsValuesThatAreNotDefaults(t *testing.T) {
	// Without Normalize on either side: nothing is dropped or added.
	want := exampleModel()
	out, err := EncodeYAML(want)
	if err != nil {
		t.Fatalf("EncodeYAML: %v", err)
	}
	got, ds := DecodeYAML("rt.yaml", out)
	if len(ds) != 0 {
		t.Fatalf("DecodeYAML: %v", ds)
	}
	if diff := cmp.Diff(want, got, ignorePos); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\nYAML:\n%s", diff, out)
	}
}

func TestEncodeYAMLKeepsNamesCaseAndOmitsInheritedValues(t *testing.T) {
	m := exampleModel()
	Normalize(m)
	out, err := EncodeYAML(m)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"name: VI_Public", "name: vi_v6", "name: chk_Web", "- VI_Public", "address: 192.0.2.100/24", "via: 192.0.2.1", "unicast_src_ip: fe80::1", "advert_int: 100ms", "master_refresh: 60s"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// garp values equal to the global ones, version 3 of an IPv6 instance
	// and the checker's connect_ip are derived by Normalize: not written.
	for _, unwanted := range []string{"master_delay", "version: 3", "connect_ip", "gna_interval"} {
		if strings.Contains(s, unwanted) {
			t.Errorf("output contains %q:\n%s", unwanted, s)
		}
	}
	if m.Instances[1].Version != 3 {
		t.Error("EncodeYAML modified its argument")
	}
}

func TestEncodeYAMLRejectsNil(t *testing.T) {
	if _, err := EncodeYAML(nil); err == nil {
		t.Error("EncodeYAML(nil) returned no error")
	}
}

func TestDecodeYAMLGivesPositions(t *testing.T) {
	src := `global:
  router_id: r1
scripts:
  - name: chk
    script: /bin/true
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 1
    virtual_ipaddress:
      - 10.0.0.1/24
      - address: 10.0.0.2/24
    track_script: [chk]
virtual_servers:
  - name: vs
    real_servers:
      - address: 10.0.1.1
        checkers:
          - type: TCP_CHECK
`
	m, ds := DecodeYAML("p.yaml", []byte(src))
	if len(ds) != 0 {
		t.Fatalf("DecodeYAML: %v", ds)
	}
	got := map[string]Pos{
		"global":     m.Global.Pos,
		"script":     m.Scripts[0].Pos,
		"instance":   m.Instances[0].Pos,
		"vip0":       m.Instances[0].VIPs[0].Pos,
		"vip1":       m.Instances[0].VIPs[1].Pos,
		"track":      m.Instances[0].TrackScripts[0].Pos,
		"vs":         m.VirtualServers[0].Pos,
		"realserver": m.VirtualServers[0].RealServers[0].Pos,
		"checker":    m.VirtualServers[0].RealServers[0].Checkers[0].Pos,
	}
	want := map[string]Pos{
		"global": {"p.yaml", 2}, "script": {"p.yaml", 4}, "instance": {"p.yaml", 7},
		"vip0": {"p.yaml", 11}, "vip1": {"p.yaml", 12}, "track": {"p.yaml", 13},
		"vs": {"p.yaml", 15}, "realserver": {"p.yaml", 17}, "checker": {"p.yaml", 19},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
}

func TestDecodeYAMLReportsProblemsWithLines(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"not YAML", "instances: [\n", []string{"f.yaml:1: did not find expected node content"}},
		{"top level is a list", "- a\n- b\n", []string{"f.yaml:1: the top level must be a mapping (global:, instances:, ...)"}},
		{"unknown keys are warnings", "global:\n  router_id: x\n  routerid: y\ninstances:\n  - name: A\n    prio: 5\n",
			[]string{"f.yaml:3: warning: routerid: unknown key (ignored)", "f.yaml:6: warning: prio: unknown key (ignored)"}},
		{"number expected", "instances:\n  - name: A\n    virtual_router_id: fifty\n",
			[]string{`f.yaml:3: virtual_router_id: expected a whole number, got "fifty"`}},
		{"bad duration", "instances:\n  - name: A\n\n    advert_int: soon\n",
			[]string{`f.yaml:4: advert_int: "soon": not a duration (write 1s, 100ms or a number of seconds)`}},
		{"bad address in a list", "instances:\n  - name: A\n    unicast_peer:\n      - 10.0.0.1\n      - 10.0.0.300\n",
			[]string{`f.yaml:5: unicast_peer[1]: ParseAddr("10.0.0.300"): IPv4 field has value >255`}},
		{"bad VIP string", "instances:\n  - name: A\n    virtual_ipaddress:\n      - 10.0.0.1/24 device eth0\n",
			[]string{"f.yaml:4: virtual_ipaddress[0]: device: unknown option (want dev, brd, scope or label)"}},
		{"empty list entry", "instances:\n  - name: A\n  -\n",
			[]string{"f.yaml:3: instances[1]: empty entry"}},
		{"mapping where a string is expected", "instances:\n  - name: {a: 1}\n",
			[]string{"f.yaml:2: name: expected a string, got a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ds := DecodeYAML("f.yaml", []byte(tt.src))
			var got []string
			for _, d := range ds {
				got = append(got, d.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeYAMLAcceptsShortForms(t *testing.T) {
	src := `instances:
  - name: VI_Mixed_Case
    advert_int: 0.5
    preempt_delay: 10
    unicast_peer: 10.0.0.2
    virtual_ipaddress:
      - 10.0.0.1 dev eth0 label eth0:1 brd 10.0.0.255 scope link
      - 10.0.0.9
    track_interface: [eth1, {name: eth2, weight: -10}]
`
	m, ds := DecodeYAML("s.yaml", []byte(src))
	if len(ds) != 0 {
		t.Fatalf("DecodeYAML: %v", ds)
	}
	want := &Instance{
		Name:         "VI_Mixed_Case",
		AdvertInt:    Duration(500 * time.Millisecond),
		PreemptDelay: Duration(10 * time.Second),
		UnicastPeers: []netip.Addr{netip.MustParseAddr("10.0.0.2")},
		VIPs: []VIP{
			{Prefix: netip.MustParsePrefix("10.0.0.1/32"), Dev: "eth0", Label: "eth0:1", Brd: netip.MustParseAddr("10.0.0.255"), Scope: "link"},
			{Prefix: netip.MustParsePrefix("10.0.0.9/32")},
		},
		TrackInterfaces: []Track{{Name: "eth1"}, {Name: "eth2", Weight: ptr(-10)}},
	}
	if diff := cmp.Diff(want, m.Instances[0], ignorePos); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestDecodeYAMLOfEmptyFileIsAnEmptyModel(t *testing.T) {
	m, ds := DecodeYAML("e.yaml", nil)
	if m == nil || len(ds) != 0 {
		t.Fatalf("DecodeYAML(empty) = %v, %v; want an empty model", m, ds)
	}
}
