package keepalived

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/config"
)

// memFS serves files from a map, for include tests.
type memFS map[string]string

func (m memFS) options() Options {
	return Options{
		ConfigIDs: []string{"node1"},
		ReadFile: func(name string) ([]byte, error) {
			s, ok := m[name]
			if !ok {
				return nil, fs.ErrNotExist
			}
			return []byte(s), nil
		},
		Glob: func(pattern string) ([]string, error) {
			var out []string
			for name := range m {
				if ok, err := filepath.Match(pattern, name); err != nil {
					return nil, err
				} else if ok {
					out = append(out, name)
				}
			}
			// filepath.Glob returns sorted names.
			for i := 1; i < len(out); i++ {
				for j := i; j > 0 && out[j] < out[j-1]; j-- {
					out[j], out[j-1] = out[j-1], out[j]
				}
			}
			return out, nil
		},
	}
}

func instanceBlock(body string) string {
	return "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n" + body + "}\n"
}

func TestParseDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown keyword is a warning",
			src:  "global_defs {\n  router_idd x\n}\n",
			want: []string{"k.conf:2: warning: unknown keyword router_idd"},
		},
		{
			name: "known but unimplemented keyword is a warning",
			src:  instanceBlock("    track_process {\n      p1\n    }\n    lvs_sync_daemon_interface eth0\n"),
			want: []string{
				// track_process changes the priority, so it is refused (see
				// TestWireKeywords); keepalived -t accepts the file.
				"k.conf:4: vipd does not implement track_process, which changes the priority or state by tracked processes and so changes what goes on the wire or when a backup takes over; remove it",
				"k.conf:7: warning: keyword lvs_sync_daemon_interface is not implemented by vipd",
			},
		},
		{
			name: "unimplemented top-level block is skipped whole",
			src:  "static_ipaddress {\n  10.0.0.1/24 dev eth0\n}\nvrrp_track_process p { process x }\n",
			want: []string{
				"k.conf:1: warning: keyword static_ipaddress is not implemented by vipd",
				"k.conf:4: warning: keyword vrrp_track_process is not implemented by vipd",
			},
		},
		{
			name: "auth_pass on the auth_type line is ignored with a warning, as keepalived does",
			src:  instanceBlock("    authentication { auth_type PASS auth_pass 1111 }\n"),
			want: []string{"k.conf:4: warning: auth_pass on the same line as auth_type: ignored (as keepalived does); put it on its own line"},
		},
		{
			name: "two addresses on one virtual_ipaddress line",
			src:  instanceBlock("    virtual_ipaddress { 10.0.0.1/24 10.0.0.2/24 }\n"),
			want: []string{"k.conf:4: virtual_ipaddress 10.0.0.1/24: unexpected 10.0.0.2/24 (one address per line)"},
		},
		{
			name: "value errors of every kind, all reported",
			src: instanceBlock(`    advert_int 0
    advert_int -1
    priority 256
    version 4
    preempt_delay 1.1234567
    garp_master_repeat x
    virtual_ipaddress {
        10.0.0.1/33
        10.0.0.2/24 scope galaxy
        10.0.0.3/24 brd fe80::1
        10.0.0.4/24 bogus
    }
    virtual_routes {
        via 10.0.0.1
        10.1.0.0/16 via nowhere
        10.2.0.0/16 metric x
    }
    unicast_peer {
        10.0.0.9 10.0.0.10
    }
    track_script {
        chk weight 300
        chk2 weigh 3
    }
    authentication {
        auth_type MD5
    }
    use_vmac averyveryverylongname
`),
			want: []string{
				"k.conf:4: advert_int 0: must be more than 0",
				"k.conf:5: advert_int -1: not a number of seconds",
				"k.conf:6: priority 256: must be 1..255",
				"k.conf:7: version 4: must be 2..3",
				"k.conf:8: preempt_delay 1.1234567: more precise than a microsecond",
				"k.conf:9: garp_master_repeat x: not an integer",
				"k.conf:11: virtual_ipaddress 10.0.0.1/33: not an IP address",
				"k.conf:12: virtual_ipaddress 10.0.0.2/24: scope galaxy: must be global, site, link, host or nowhere",
				"k.conf:13: virtual_ipaddress 10.0.0.3/24: brd fe80::1: not an IPv4 address",
				"k.conf:14: virtual_ipaddress 10.0.0.4/24: unknown option bogus",
				"k.conf:17: virtual_routes via 10.0.0.1: no destination",
				"k.conf:18: virtual_routes 10.1.0.0/16 via nowhere: via nowhere: not an IP address",
				"k.conf:19: virtual_routes 10.2.0.0/16 metric x: metric x: not a number",
				"k.conf:22: unicast_peer 10.0.0.9: unknown option 10.0.0.10 (one address per line)",
				"k.conf:25: track_script chk weight 300: must be -253..253",
				"k.conf:26: track_script chk2: unknown option weigh",
				"k.conf:29: auth_type MD5: must be PASS or AH",
				"k.conf:31: use_vmac averyveryverylongname: interface name longer than 15 characters",
			},
		},
		{
			name: "missing close brace is reported at the block that is never closed",
			src:  "vrrp_instance VI_1 {\n    interface eth0\n    virtual_ipaddress {\n        10.0.0.1/24\n}\n",
			want: []string{"k.conf:1: vrrp_instance block is never closed (missing '}')"},
		},
		{
			name: "a top-level block inside another points at the missing brace",
			src:  "vrrp_instance VI_1 {\n    interface eth0\nvrrp_instance VI_2 {\n    interface eth1\n}\n",
			want: []string{
				"k.conf:1: vrrp_instance block is never closed (missing '}')",
				"k.conf:3: vrrp_instance inside vrrp_instance (missing '}' above?)",
			},
		},
		{
			name: "stray open brace",
			src:  "global_defs {\n}\n{\n}\n",
			want: []string{"k.conf:3: unexpected '{'"},
		},
		{
			name: "unmatched quote",
			src:  "global_defs {\n  router_id \"abc\n}\n",
			want: []string{"k.conf:2: unterminated quote", "k.conf:2: unmatched quote"},
		},
		{
			name: "block keyword without a block",
			src:  "vrrp_instance VI_1\nglobal_defs\n",
			want: []string{"k.conf:1: vrrp_instance: missing '{'", "k.conf:2: global_defs: missing '{'"},
		},
		{
			name: "lvs value errors",
			src: `virtual_server 10.0.0.1 99999 {
}
virtual_server 10.0.0.300 80 {
}
virtual_server 10.0.0.1 80 {
    protocol ICMP
    real_server 10.0.1.1 80 {
        HTTP_GET {
            url {
                status_code 200-99
            }
        }
        MISC_CHECK {
        }
    }
}
virtual_server_group g {
    10.0.0.1-0 80
    fwmark x
}
`,
			want: []string{
				"k.conf:1: virtual_server 10.0.0.1 port 99999: must be 0..65535",
				"k.conf:3: virtual_server 10.0.0.300: not an IP address",
				"k.conf:6: protocol ICMP: must be TCP, UDP or SCTP",
				"k.conf:9: url: no path",
				"k.conf:10: status_code 99: must be 200..599",
				"k.conf:13: MISC_CHECK: no misc_path",
				"k.conf:18: virtual_server_group entry 10.0.0.1-0: bad range (a.b.c.d-e)",
				"k.conf:19: fwmark x: not an integer",
			},
		},
		{
			name: "scripts without script and files without file are dropped",
			src:  "vrrp_script s {\n  interval 1\n}\ntrack_file f {\n  weight 1\n}\nvrrp_sync_group g {\n}\n",
			want: []string{
				"k.conf:1: warning: vrrp_script s: no script, ignored",
				"k.conf:4: warning: track_file f: no file, ignored",
				"k.conf:7: warning: vrrp_sync_group g: no group { ... } of instances, ignored",
			},
		},
		{
			name: "~SEQ is not implemented",
			src:  "~SEQ(ID, 1, 3) vrrp_instance VI_$ID { }\n",
			want: []string{"k.conf:1: warning: ~SEQ: not implemented by vipd, line ignored"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse("k.conf", []byte(tt.src), testOptions())
			if diff := cmp.Diff(tt.want, diagStrings(diags), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTextFeatures(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opts func(*Options)
		want *config.Instance
	}{
		{
			name: "comments with # and ! anywhere, escaped outside quotes",
			src:  "vrrp_instance VI_1 { # c1\n  interface eth0 ! c2\n  notify_master \"/x #1 !2\" # c3\n  notify_backup /y\\#z\n}\n",
			want: &config.Instance{Pos: config.Pos{File: "k.conf", Line: 1}, Name: "VI_1", Interface: "eth0",
				Notify: config.Notify{Master: "/x #1 !2", Backup: "/y#z"}},
		},
		{
			name: "defines from options and ${NAME} braces, undefined $X kept",
			src:  "vrrp_instance VI_${N}0 {\n  interface $IF\n  notify \"/bin/x $UNDEF\"\n}\n",
			opts: func(o *Options) { o.Defines = map[string]string{"N": "7", "IF": "eth3"} },
			want: &config.Instance{Pos: config.Pos{File: "k.conf", Line: 1}, Name: "VI_70", Interface: "eth3",
				Notify: config.Notify{Generic: "/bin/x $UNDEF"}},
		},
		{
			name: "a definition may hold a conditional line and a block",
			src:  "$PRI=@node1 priority 10\n$BLK=virtual_ipaddress { 10.0.0.1 }\nvrrp_instance VI_1 {\n  $PRI\n  $BLK\n}\n",
			want: &config.Instance{Pos: config.Pos{File: "k.conf", Line: 3}, Name: "VI_1", Priority: 10,
				VIPs: []config.VIP{{Pos: config.Pos{File: "k.conf", Line: 5}, Prefix: pfx("10.0.0.1/32")}}},
		},
		{
			name: "@^id lines apply when the id is not ours",
			src:  "vrrp_instance VI_1 {\n@^node1 priority 1\n@^node2 priority 2\n@node2 interface eth9\n}\n",
			want: &config.Instance{Pos: config.Pos{File: "k.conf", Line: 1}, Name: "VI_1", Priority: 2},
		},
		{
			name: "notify with user keeps only the command",
			src:  "vrrp_instance VI_1 {\n  notify_master \"/bin/x a 'b c'\" root\n}\n",
			want: &config.Instance{Pos: config.Pos{File: "k.conf", Line: 1}, Name: "VI_1",
				Notify: config.Notify{Master: "/bin/x a 'b c'"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			m, diags := Parse("k.conf", []byte(tt.src), opts)
			if errs := diags.Errors(); len(errs) != 0 {
				t.Fatalf("unexpected errors: %q", diagStrings(errs))
			}
			if len(m.Instances) != 1 {
				t.Fatalf("got %d instances, want 1", len(m.Instances))
			}
			if diff := cmp.Diff(tt.want, m.Instances[0], cmpModel...); diff != "" {
				t.Errorf("instance (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIncludes(t *testing.T) {
	tests := []struct {
		name      string
		files     memFS
		wantNames []string
		wantDiags []string
	}{
		{
			name: "glob relative to the including file, in sorted order, nested",
			files: memFS{
				"/etc/k/main.conf":      "include conf.d/*.conf\n",
				"/etc/k/conf.d/b.conf":  "vrrp_instance B { }\n",
				"/etc/k/conf.d/a.conf":  "vrrp_instance A { }\ninclude ../sub/c.inc\n",
				"/etc/k/sub/c.inc":      "vrrp_instance C { }\n",
				"/etc/k/conf.d/x.other": "vrrp_instance X { }\n",
			},
			wantNames: []string{"A", "C", "B"},
		},
		{
			name:      "missing file is an error, empty glob a warning",
			files:     memFS{"/etc/k/main.conf": "include nothere.conf\ninclude none/*.conf\n"},
			wantDiags: []string{"/etc/k/main.conf:1: include nothere.conf: no such file", "/etc/k/main.conf:2: warning: include none/*.conf: no file matches"},
		},
		{
			name:      "include loop is an error, not a hang",
			files:     memFS{"/etc/k/main.conf": "include main.conf\n"},
			wantDiags: []string{"/etc/k/main.conf:1: include main.conf: /etc/k/main.conf includes itself"},
		},
		{
			name: "block spanning files",
			files: memFS{
				"/etc/k/main.conf": "vrrp_instance A {\ninclude body.inc\n}\n",
				"/etc/k/body.inc":  "  interface eth0\n",
			},
			wantNames: []string{"A"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, diags := ParseFile("/etc/k/main.conf", tt.files.options())
			var names []string
			for _, in := range m.Instances {
				names = append(names, in.Name)
			}
			if diff := cmp.Diff(tt.wantNames, names, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("instances (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDiags, diagStrings(diags), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFileUnreadableIsAnError(t *testing.T) {
	m, diags := ParseFile("/nonexistent/keepalived.conf", Options{ReadFile: func(string) ([]byte, error) { return nil, errors.New("boom") }})
	if m == nil || len(diags.Errors()) != 1 || !strings.Contains(diags[0].String(), "boom") {
		t.Errorf("got model %v, diags %q; want empty model and one error", m, diagStrings(diags))
	}
}

func TestExpansionBlowUpIsBounded(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"self reference", "$A=$A\nglobal_defs { router_id $A }\n", "$ definitions nested too deeply"},
		{"doubling", "$A=$A$A\nglobal_defs { router_id $A }\n", "after $ expansion"},
		{"multi-line fan-out", "$A=x \\\n$A \\\n$A\n$A\n", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse("k.conf", []byte(tt.src), testOptions())
			found := false
			for _, d := range diags.Errors() {
				found = found || strings.Contains(d.Msg, tt.want)
			}
			if !found {
				t.Errorf("diags %q, want an error containing %q", diagStrings(diags), tt.want)
			}
		})
	}
}
