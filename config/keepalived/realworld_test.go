package keepalived

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/config"
)

// Patterns found in keepalived.conf files written for keepalived 2.2.7 (its
// own doc/samples and configurations published by other projects), each
// reduced to a minimal fixture: what keepalived accepts must read, with the
// same meaning, and a warning at the line where keepalived ignores
// something.
func TestRealWorldPatterns(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  []string // diagnostics
		check func(t *testing.T, m *config.Model)
	}{
		{
			name: "a second notify_master is ignored: the first one is used",
			src:  instanceBlock("    notify_master /bin/first.sh\n    notify_master /bin/second.sh\n"),
			want: []string{"k.conf:5: warning: notify_master given twice; ignored, the first one is used (as keepalived does)"},
			check: func(t *testing.T, m *config.Model) {
				if got := m.Instances[0].Notify.Master; got != "/bin/first.sh" {
					t.Errorf("notify_master = %q, want /bin/first.sh", got)
				}
			},
		},
		{
			name: "state BACKUP after state MASTER keeps MASTER",
			src:  instanceBlock("    state MASTER\n    state BACKUP\n"),
			want: []string{"k.conf:5: warning: state BACKUP: state already given as MASTER; ignored (as keepalived does)"},
			check: func(t *testing.T, m *config.Model) {
				if got := m.Instances[0].State; got != config.StateMaster {
					t.Errorf("state = %q, want MASTER", got)
				}
			},
		},
		{
			// keepalived -t: exit 5, "\"or\" for routes is deprecated" and
			// "cannot track route ... with no interface specified"; keepalived
			// runs it.
			name: "deprecated 'or' in virtual_routes is a warning like nexthop",
			src:  instanceBlock("    virtual_routes {\n        10.3.0.0/24 via 10.0.0.252 or 10.0.0.253\n    }\n"),
			want: []string{
				`k.conf:5: warning: virtual_routes 10.3.0.0/24 via 10.0.0.252 or 10.0.0.253: or 10.0.0.253: a second gateway is not implemented by vipd (keepalived -t reports "or" as deprecated; use nexthop); ignored`,
				`k.conf:5: warning: virtual_routes 10.3.0.0/24 via 10.0.0.252 or 10.0.0.253: no dev: keepalived -t fails on it ("cannot track route ... with no interface specified") and keepalived runs the route untracked; vipd accepts it (add dev, or no_track)`,
			},
			check: func(t *testing.T, m *config.Model) {
				r := m.Instances[0].Routes
				if len(r) != 1 || r[0].Dst != pfx("10.3.0.0/24") || r[0].Via.String() != "10.0.0.252" {
					t.Errorf("routes = %+v, want 10.3.0.0/24 via 10.0.0.252", r)
				}
			},
		},
		{
			name: "IPv6 address with a scope: the scope is ignored",
			src:  instanceBlock("    virtual_ipaddress_excluded {\n        fe80::1/64 dev eth1 scope link\n        10.0.0.9/24 dev eth1 scope link\n    }\n"),
			want: []string{"k.conf:5: warning: virtual_ipaddress_excluded fe80::1/64: scope is not settable on an IPv6 address; ignored (as keepalived does)"},
			check: func(t *testing.T, m *config.Model) {
				ex := m.Instances[0].ExcludedVIPs
				if len(ex) != 2 || ex[0].Scope != "" || ex[0].Dev != "eth1" || ex[1].Scope != "link" {
					t.Errorf("excluded = %+v, want fe80::1 without scope, 10.0.0.9 scope link", ex)
				}
			},
		},
		{
			name: "persistence_timeout without a value is 6 minutes",
			src:  "virtual_server 10.0.0.1 80 {\n    persistence_timeout\n}\n",
			check: func(t *testing.T, m *config.Model) {
				if got := m.VirtualServers[0].PersistenceTimeout; got != config.Duration(6*time.Minute) {
					t.Errorf("persistence_timeout = %s, want 6m0s", got)
				}
			},
		},
		{
			name: "a second group list of a sync group is ignored",
			src:  "vrrp_sync_group G {\n    group {\n        A\n    }\n    group {\n        B\n    }\n}\n",
			want: []string{"k.conf:5: warning: vrrp_sync_group G: group list given twice; ignored, the first one is used (as keepalived does)"},
			check: func(t *testing.T, m *config.Model) {
				if diff := cmp.Diff([]string{"A"}, m.SyncGroups[0].Members); diff != "" {
					t.Errorf("members (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "auth_pass before auth_type and quoted",
			src:  instanceBlock("    authentication {\n        auth_pass \"s3cr3t\"\n        auth_type PASS\n    }\n"),
			check: func(t *testing.T, m *config.Model) {
				if a := m.Instances[0].Auth; a == nil || a.Type != "PASS" || a.Pass != "s3cr3t" {
					t.Errorf("auth = %+v, want PASS s3cr3t", a)
				}
			},
		},
		{
			name: "quoted values: state, interface, VIP, route words",
			src: "vrrp_instance VI_1 {\n    state \"BACKUP\"\n    interface \"eth0\"\n    virtual_router_id 51\n" +
				"    virtual_ipaddress {\n        \"10.11.12.100/24\"\n    }\n" +
				"    virtual_routes {\n        \"10.11.12.0/24\" src \"10.11.12.100\" metric 1 dev \"eth0\" scope link\n    }\n}\n",
			check: func(t *testing.T, m *config.Model) {
				in := m.Instances[0]
				if in.State != config.StateBackup || in.Interface != "eth0" || len(in.VIPs) != 1 || len(in.Routes) != 1 ||
					in.Routes[0].Src.String() != "10.11.12.100" || in.Routes[0].Scope != "link" || in.Routes[0].Dev != "eth0" {
					t.Errorf("instance = %+v", in)
				}
			},
		},
		{
			name: "opening brace on the line after the name",
			src:  "vrrp_script check_ng\n{\n    script \"/bin/true\"\n    weight 20\n}\n",
			check: func(t *testing.T, m *config.Model) {
				if len(m.Scripts) != 1 || m.Scripts[0].Name != "check_ng" || m.Scripts[0].Weight != 20 {
					t.Errorf("scripts = %+v", m.Scripts)
				}
			},
		},
		{
			name: "use_vmac with a name and vmac_xmit_base",
			src:  instanceBlock("    use_vmac eth1v10v4\n    vmac_xmit_base\n"),
			check: func(t *testing.T, m *config.Model) {
				if in := m.Instances[0]; !in.UseVMAC || in.VMACName != "eth1v10v4" || !in.VMACXmitBase {
					t.Errorf("vmac = %v %q %v", in.UseVMAC, in.VMACName, in.VMACXmitBase)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, diags := Parse("k.conf", []byte(tt.src), testOptions())
			if diff := cmp.Diff(tt.want, diagStrings(diags), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestIncludeBraces(t *testing.T) {
	files := memFS{
		"/etc/k/main.conf":        "include {vrrp,lvs}/*.conf\ninclude x{1,2}.inc\n",
		"/etc/k/vrrp/a.conf":      "vrrp_instance A { }\n",
		"/etc/k/lvs/b.conf":       "vrrp_instance B { }\n",
		"/etc/k/x1.inc":           "vrrp_instance X1 { }\n",
		"/etc/k/x2.inc":           "vrrp_instance X2 { }\n",
		"/etc/k/other/c.conf":     "vrrp_instance C { }\n",
		"/etc/k/{vrrp,lvs}/z.txt": "",
	}
	m, diags := ParseFile("/etc/k/main.conf", files.options())
	var names []string
	for _, in := range m.Instances {
		names = append(names, in.Name)
	}
	if diff := cmp.Diff([]string{"A", "B", "X1", "X2"}, names); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}
	if len(diags) != 0 {
		t.Errorf("diagnostics %q, want none", diagStrings(diags))
	}
}

func TestExpandBraces(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/a/b.conf", []string{"/a/b.conf"}},
		{"/a/{b,c}.conf", []string{"/a/b.conf", "/a/c.conf"}},
		{"{a,b{c,d}}e", []string{"ae", "bce", "bde"}},
		{"x{y}z", []string{"xyz"}},
		{"{a,b}{1,2}", []string{"a1", "a2", "b1", "b2"}},
		{"open{a,b", []string{"open{a,b"}},
		{"{,x}y", []string{"y", "xy"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, expandBraces(tt.in)); diff != "" {
			t.Errorf("expandBraces(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	// A pattern that would expand to 2^20 names is cut at the bound.
	big := ""
	for range 20 {
		big += "{a,b}"
	}
	if got := len(expandBraces(big)); got != maxBraceExpansions {
		t.Errorf("expandBraces(20 pairs) gave %d patterns, want %d", got, maxBraceExpansions)
	}
}

// What runs must be what keepalived runs from the same file: after
// Normalize and Validate, the model carries keepalived's corrections.
func TestRealWorldPatternsRunAsKeepalivedDoes(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  []string // warnings and errors of parse and validation, in order
		check func(t *testing.T, m *config.Model)
	}{
		{
			name: "one-line authentication block: no password, so no authentication",
			src: "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n" +
				"    authentication { auth_type PASS auth_pass 1111 }\n    virtual_ipaddress { 10.0.0.100/24 }\n}\n",
			want: []string{
				"k.conf:4: warning: auth_pass on the same line as auth_type: ignored (as keepalived does); put it on its own line",
				"k.conf:4: warning: authentication: no auth_pass given; ignored (as keepalived does)",
			},
			check: func(t *testing.T, m *config.Model) {
				if a := m.Instances[0].Auth; a != nil {
					t.Errorf("auth = %+v, want none", a)
				}
			},
		},
		{
			name: "conditional vrrp_script empty on this host: the track_script is ignored",
			src: "vrrp_script chk {\n@otherhost script /bin/true\n}\n" +
				"vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    track_script {\n        chk\n    }\n" +
				"    virtual_ipaddress { 10.0.0.100/24 }\n}\n",
			want: []string{
				"k.conf:1: warning: vrrp_script chk: no script, ignored",
				"k.conf:8: warning: track_script chk: vrrp_script chk has no script; ignored (as keepalived does)",
			},
			check: func(t *testing.T, m *config.Model) {
				if ts := m.Instances[0].TrackScripts; len(ts) != 0 {
					t.Errorf("track_script = %+v, want none", ts)
				}
			},
		},
		{
			name: "track_interface of the instance's own interface with a weight is ignored",
			src: "vrrp_instance VI_1 {\n    interface ens160\n    virtual_router_id 51\n" +
				"    track_interface {\n        ens160 weight 50\n        ens161\n    }\n    virtual_ipaddress { 10.0.0.100/24 }\n}\n",
			want: []string{"k.conf:5: warning: track_interface ens160: the instance's own interface is always tracked; ignored (as keepalived does)"},
			check: func(t *testing.T, m *config.Model) {
				if ti := m.Instances[0].TrackInterfaces; len(ti) != 1 || ti[0].Name != "ens161" {
					t.Errorf("track_interface = %+v, want only ens161", ti)
				}
			},
		},
		{
			name: "VRRPv2 advert_int 1.5 is rounded to 2 seconds",
			src:  "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    advert_int 1.5\n    virtual_ipaddress { 10.0.0.100/24 }\n}\n",
			want: []string{"k.conf:4: warning: advert_int 1.5: VRRPv2 needs whole seconds 1..255; rounded to 2 (as keepalived does)"},
			check: func(t *testing.T, m *config.Model) {
				if got := m.Instances[0].AdvertInt; got != config.Duration(2*time.Second) {
					t.Errorf("advert_int = %s, want 2s", got)
				}
			},
		},
		{
			name: "vrrp_strict: a MASTER that is not the address owner starts as BACKUP, without authentication",
			src: "global_defs {\n    vrrp_strict\n}\nvrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    priority 100\n" +
				"    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n    virtual_ipaddress { 10.0.0.100/24 }\n}\n",
			want: []string{
				"k.conf:2: warning: vrrp_strict: no_accept (strict mode): vipd does not install the firewall rules that drop traffic to the VIPs; they accept traffic as with accept",
				// Reported at the state and authentication lines, no longer
				// at the vrrp_instance line.
				"k.conf:5: warning: state MASTER: in strict mode the initial state must match being the address owner (priority 255); using BACKUP (as keepalived does)",
				"k.conf:9: warning: authentication: strict mode has none; ignored (as keepalived does)",
			},
			check: func(t *testing.T, m *config.Model) {
				if in := m.Instances[0]; in.State != config.StateBackup || in.Auth != nil {
					t.Errorf("state %s auth %+v, want BACKUP and none", in.State, in.Auth)
				}
			},
		},
		{
			name: "sync group naming an instance that does not exist keeps the others",
			src: "vrrp_sync_group VG1 {\n    group {\n        VI_1\n        VI_2\n    }\n}\n" +
				"vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress { 10.0.0.100/24 }\n}\n",
			want: []string{"k.conf:1: warning: vrrp_sync_group VG1: vrrp_instance VI_2: no vrrp_instance of that name; ignored (as keepalived does)"},
			check: func(t *testing.T, m *config.Model) {
				if len(m.SyncGroups) != 1 || len(m.SyncGroups[0].Members) != 1 {
					t.Errorf("sync groups = %+v, want VG1 with VI_1", m.SyncGroups)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, diags := Parse("k.conf", []byte(tt.src), testOptions())
			config.Normalize(m)
			diags = append(diags, config.Validate(m, config.ValidateOptions{})...)
			if diff := cmp.Diff(tt.want, diagStrings(diags), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			tt.check(t, m)
		})
	}
}
