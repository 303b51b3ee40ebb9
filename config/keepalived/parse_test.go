package keepalived

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/config"
)

// cmpModel compares models, netip values by value.
var cmpModel = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

func at(file string, line int) config.Pos { return config.Pos{File: "testdata/" + file, Line: line} }
func addr(s string) netip.Addr            { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix           { return netip.MustParsePrefix(s) }
func secs(f float64) config.Duration      { return config.Duration(f * float64(time.Second)) }
func intp(v int) *int                     { return &v }

// diagStrings renders diagnostics the way an operator sees them.
func diagStrings(ds config.Diagnostics) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func testOptions() Options { return Options{ConfigIDs: []string{"node1"}} }

func TestParseFixturesMapsEveryKeywordToTheModel(t *testing.T) {
	tests := []struct {
		file      string
		want      *config.Model
		wantDiags []string
	}{
		{
			file: "sample.conf",
			want: &config.Model{
				Global: config.Global{
					Pos:                   at("sample.conf", 3),
					RouterID:              "LVS_DEVEL",
					ScriptUser:            "root",
					EnableScriptSecurity:  true,
					NotificationEmail:     []string{"ops@example.com", "noc@example.com"},
					NotificationEmailFrom: "keepalived@lb1.example.com",
					SMTPServer:            "192.0.2.25:25",
					SMTPConnectTimeout:    secs(30),
					Garp: config.Garp{
						MasterDelay: secs(10), MasterRepeat: 3, MasterRefresh: secs(60), MasterRefreshRepeat: 2,
						LowerPrioDelay: secs(2), LowerPrioRepeat: 1, Interval: secs(0.001), GNAInterval: secs(0.002),
					},
					CheckUnicastSrc: true,
				},
				Scripts: []*config.Script{{
					Pos: at("sample.conf", 26), Name: "chk_proc", Script: "/bin/true --check 'x y'",
					Interval: secs(2), Timeout: secs(3), Weight: -20, WeightReverse: true,
					Rise: 2, Fall: 3, User: "root", InitFail: true,
				}},
				Instances: []*config.Instance{{
					Pos: at("sample.conf", 37), Name: "VI_1", State: "BACKUP", Interface: "eth0",
					VRID: 50, Priority: 150, AdvertInt: secs(1), NoPreempt: true,
					Auth: &config.Auth{Type: "PASS", Pass: "1111"},
					VIPs: []config.VIP{
						{Pos: at("sample.conf", 60), Prefix: pfx("192.168.200.16/32")},
						{Pos: at("sample.conf", 61), Prefix: pfx("192.168.200.17/24"), Dev: "eth1"},
						{Pos: at("sample.conf", 62), Prefix: pfx("192.168.200.18/24"), Brd: addr("192.168.200.255"), Dev: "eth1", Scope: "global", Label: "eth1:vip"},
						{Pos: at("sample.conf", 63), Prefix: pfx("192.168.200.19/24")},
					},
					ExcludedVIPs: []config.VIP{{Pos: at("sample.conf", 66), Prefix: pfx("192.168.201.16/32"), Scope: "link"}},
					Routes: []config.Route{
						{Pos: at("sample.conf", 69), Dst: pfx("192.168.109.0/24"), Via: addr("192.168.200.254"), Src: addr("192.168.100.1"), Dev: "eth1",
							RawSource: "src 192.168.100.1 to 192.168.109.0/24 via 192.168.200.254 dev eth1"},
						{Pos: at("sample.conf", 70), Dst: pfx("192.168.110.0/24"), Via: addr("192.168.200.254"), Dev: "eth1", Metric: 10, Table: 100,
							RawSource: "192.168.110.0/24 via 192.168.200.254 dev eth1 metric 10 table 100"},
						{Pos: at("sample.conf", 71), Dst: pfx("192.168.111.0/24"), Type: "blackhole", RawSource: "blackhole 192.168.111.0/24 no_track"},
						{Pos: at("sample.conf", 72), Dst: pfx("0.0.0.0/0"), Via: addr("192.168.200.1"), Dev: "eth0", Onlink: true,
							RawSource: "default via 192.168.200.1 dev eth0 onlink"},
					},
					McastSrcIP:       addr("192.0.2.1"),
					TrackScripts:     []config.Track{{Pos: at("sample.conf", 45), Name: "chk_proc", Weight: intp(5)}},
					TrackInterfaces:  []config.Track{{Pos: at("sample.conf", 42), Name: "eth1", Weight: intp(-10)}},
					DontTrackPrimary: true,
					Notify: config.Notify{
						Master: "/bin/true master arg", Backup: "/bin/true", Fault: "/bin/true",
						Stop: "/bin/true stop", Generic: "/bin/true",
					},
					Garp: config.Garp{MasterDelay: secs(3), MasterRepeat: 2, MasterRefresh: secs(30)},
				}},
			},
			wantDiags: []string{
				"testdata/sample.conf:23: warning: keyword enable_traps is not implemented by vipd",
				"testdata/sample.conf:63: warning: virtual_ipaddress 192.168.200.19/24: option no_track is not implemented by vipd",
				"testdata/sample.conf:75: warning: notify_backup: running as user root is not implemented by vipd (quote a command with arguments)",
			},
		},
		{
			file: "lvs-dr.conf",
			want: &config.Model{
				Global: config.Global{Pos: at("lvs-dr.conf", 1), RouterID: "lb-dr", ScriptUser: "root", EnableScriptSecurity: true},
				VirtualServerGroups: []*config.VirtualServerGroup{{
					Pos: at("lvs-dr.conf", 7), Name: "web_vips",
					Members: []config.VSGEntry{
						{Pos: at("lvs-dr.conf", 8), Address: addr("10.10.10.2"), Port: 80},
						{Pos: at("lvs-dr.conf", 9), Address: addr("10.10.10.3"), RangeTo: addr("10.10.10.5"), Port: 80},
						{Pos: at("lvs-dr.conf", 10), FWMark: 7},
					},
				}},
				VirtualServers: []*config.VirtualServer{
					{
						Pos: at("lvs-dr.conf", 13), Name: "10.10.10.2 80", Address: addr("10.10.10.2"), Port: 80,
						Protocol: "TCP", DelayLoop: secs(6), LBAlgo: "wrr", LBKind: "DR", PersistenceTimeout: secs(50),
						Quorum: 1, Alpha: true, Omega: true,
						SorryServer: &config.RealServer{Pos: at("lvs-dr.conf", 25), Address: addr("192.168.200.200"), Port: 80},
						RealServers: []*config.RealServer{
							{
								Pos: at("lvs-dr.conf", 27), Address: addr("192.168.200.2"), Port: 80, Weight: ptr(2), Inhibit: true,
								NotifyUp: "/bin/true up", NotifyDown: "/bin/true down",
								Checkers: []*config.Checker{{
									Pos: at("lvs-dr.conf", 32), Type: config.CheckHTTP, ConnectPort: 8080,
									ConnectTimeout: secs(3), Retry: ptr(3), DelayBeforeRetry: secs(3),
									URLs: []config.URL{
										{Path: "/healthz", Digest: "9b3a0c85a887a256d6939da88aabd8cd", StatusCode: []int{200, 301, 302}},
										{Path: "/ready"},
									},
								}},
							},
							{
								Pos: at("lvs-dr.conf", 47), Address: addr("192.168.200.3"), Port: 80, Weight: ptr(1),
								Checkers: []*config.Checker{{
									Pos: at("lvs-dr.conf", 49), Type: config.CheckSSL, BindTo: addr("192.168.200.1"),
									ConnectTimeout: secs(3), Retry: ptr(2), VirtualHost: "www.example.com",
									URLs: []config.URL{{Path: "/", Digest: "9b3a0c85a887a256d6939da88aabd8cd"}},
								}},
							},
							{
								Pos: at("lvs-dr.conf", 59), Address: addr("192.168.200.4"), Port: 80,
								Checkers: []*config.Checker{{
									Pos: at("lvs-dr.conf", 60), Type: config.CheckMisc, ConnectTimeout: secs(4), Retry: ptr(2),
									MiscPath: "/bin/true 192.168.200.4", MiscTimeout: secs(5), MiscDynamic: true,
								}},
							},
							{
								Pos: at("lvs-dr.conf", 66), Address: addr("192.168.200.5"), Port: 80,
								Checkers: []*config.Checker{{
									Pos: at("lvs-dr.conf", 67), Type: config.CheckTCP, ConnectIP: addr("192.168.200.5"), ConnectPort: 80,
									ConnectTimeout: secs(4), Retry: ptr(4), DelayBeforeRetry: secs(2),
								}},
							},
						},
					},
					{
						Pos: at("lvs-dr.conf", 76), Name: "fwmark 7", FWMark: 7, DelayLoop: secs(10), LBAlgo: "rr", LBKind: "TUN",
						RealServers: []*config.RealServer{{Pos: at("lvs-dr.conf", 80), Address: addr("192.168.200.6"), Weight: ptr(3)}},
					},
					{
						Pos: at("lvs-dr.conf", 85), Name: "group web_vips", Group: "web_vips", Protocol: "TCP", LBAlgo: "lc", LBKind: "NAT",
						RealServers: []*config.RealServer{{
							Pos: at("lvs-dr.conf", 89), Address: addr("192.168.200.7"), Port: 80,
							Checkers: []*config.Checker{{Pos: at("lvs-dr.conf", 90), Type: config.CheckTCP}},
						}},
					},
				},
			},
		},
		{
			file: "v3-ipv6-vmac.conf",
			want: &config.Model{
				Global: config.Global{Pos: at("v3-ipv6-vmac.conf", 1), RouterID: "v6node", VRRPVersion: 3},
				Instances: []*config.Instance{{
					Pos: at("v3-ipv6-vmac.conf", 6), Name: "VI_6", State: "BACKUP", Interface: "eth0",
					VRID: 60, Priority: 120, AdvertInt: secs(0.5), Version: 3,
					VIPs: []config.VIP{
						{Pos: at("v3-ipv6-vmac.conf", 18), Prefix: pfx("fd00:60::100/64")},
						{Pos: at("v3-ipv6-vmac.conf", 19), Prefix: pfx("fd00:60::101/64"), Dev: "eth0"},
					},
					ExcludedVIPs: []config.VIP{{Pos: at("v3-ipv6-vmac.conf", 22), Prefix: pfx("fe80::60/64")}},
					NativeIPv6:   true, UseVMAC: true, VMACName: "vrrp6.60", VMACXmitBase: true,
				}},
			},
		},
		{
			file: "sync-unicast.conf",
			want: &config.Model{
				Global:     config.Global{Pos: at("sync-unicast.conf", 1), RouterID: "uc1", ScriptUser: "root", EnableScriptSecurity: true},
				Scripts:    []*config.Script{{Pos: at("sync-unicast.conf", 7), Name: "chk_up", Script: "/bin/true", Interval: secs(1)}},
				TrackFiles: []*config.TrackFile{{Pos: at("sync-unicast.conf", 12), Name: "tf_maint", File: "/tmp/vipd-tf-maint", Weight: intp(-2), WeightReverse: true}},
				SyncGroups: []*config.SyncGroup{{
					Pos: at("sync-unicast.conf", 17), Name: "SG_1", Members: []string{"VI_A", "VI_B"},
					TrackScripts: []config.Track{{Pos: at("sync-unicast.conf", 23), Name: "chk_up"}},
					TrackFiles:   []config.Track{{Pos: at("sync-unicast.conf", 26), Name: "tf_maint", Weight: intp(3)}},
					Notify:       config.Notify{Master: "/bin/true sg master"},
				}},
				Instances: []*config.Instance{
					{
						Pos: at("sync-unicast.conf", 31), Name: "VI_A", State: "BACKUP", Interface: "eth0", VRID: 71, Priority: 100,
						UnicastSrcIP: addr("10.71.0.1"), UnicastPeers: []netip.Addr{addr("10.71.0.2"), addr("10.71.0.3")},
						CheckUnicastSrc: true,
						VIPs:            []config.VIP{{Pos: at("sync-unicast.conf", 43), Prefix: pfx("10.71.0.100/24")}},
					},
					{
						Pos: at("sync-unicast.conf", 47), Name: "VI_B", State: "BACKUP", Interface: "eth1", VRID: 72, Priority: 100,
						UnicastSrcIP: addr("10.72.0.1"), UnicastPeers: []netip.Addr{addr("10.72.0.2")}, NoAccept: true,
						VIPs: []config.VIP{{Pos: at("sync-unicast.conf", 58), Prefix: pfx("10.72.0.100/24")}},
					},
				},
			},
		},
		{
			file: "include-main.conf",
			want: &config.Model{
				Global:  config.Global{Pos: at("include-main.conf", 2), RouterID: "inc", ScriptUser: "root", EnableScriptSecurity: true},
				Scripts: []*config.Script{{Pos: at("conf.d/scripts.inc", 1), Name: "chk_inc", Script: "/bin/true"}},
				Instances: []*config.Instance{
					{
						Pos: at("conf.d/10-vi1.conf", 1), Name: "VI_I1", Interface: "eth0", VRID: 81,
						TrackScripts: []config.Track{{Pos: at("conf.d/10-vi1.conf", 5), Name: "chk_inc"}},
						VIPs:         []config.VIP{{Pos: at("conf.d/10-vi1.conf", 8), Prefix: pfx("10.81.0.1/24")}},
					},
					{
						Pos: at("conf.d/20-vi2.conf", 1), Name: "VI_I2", Interface: "eth1", VRID: 82,
						VIPs: []config.VIP{{Pos: at("conf.d/20-vi2.conf", 5), Prefix: pfx("10.82.0.1/24")}},
					},
				},
			},
		},
		{
			file: "vars.conf",
			want: &config.Model{
				Global: config.Global{Pos: at("vars.conf", 7), RouterID: "node1", ScriptUser: "root", EnableScriptSecurity: true},
				Instances: []*config.Instance{{
					Pos: at("vars.conf", 14), Name: "VI_91", Interface: "eth0", VRID: 91, Priority: 200,
					VIPs: []config.VIP{
						{Pos: at("vars.conf", 20), Prefix: pfx("10.91.0.1/24")},
						{Pos: at("vars.conf", 20), Prefix: pfx("10.91.0.2/24")},
					},
					Notify: config.Notify{Master: "/bin/true eth0", Backup: "/bin/true with # hash"},
				}},
			},
		},
		{
			file: "oneline.conf",
			want: &config.Model{
				Global:  config.Global{Pos: at("oneline.conf", 1), RouterID: "one", ScriptUser: "root", EnableScriptSecurity: true},
				Scripts: []*config.Script{{Pos: at("oneline.conf", 4), Name: "chk", Script: "/bin/true"}},
				Instances: []*config.Instance{
					{
						Pos: at("oneline.conf", 5), Name: "VI_1", State: "MASTER", Interface: "eth0", VRID: 95, Priority: 100,
						Auth:         &config.Auth{Type: "PASS", Pass: "1111"},
						TrackScripts: []config.Track{{Pos: at("oneline.conf", 11), Name: "chk"}},
						UnicastPeers: []netip.Addr{addr("10.95.0.2")},
						VIPs:         []config.VIP{{Pos: at("oneline.conf", 13), Prefix: pfx("10.95.0.1/24")}},
					},
					{
						Pos: at("oneline.conf", 15), Name: "VI_2", Interface: "eth1", VRID: 96,
						VIPs: []config.VIP{{Pos: at("oneline.conf", 17), Prefix: pfx("10.96.0.1/24")}},
					},
				},
				SyncGroups: []*config.SyncGroup{{Pos: at("oneline.conf", 18), Name: "SG", Members: []string{"VI_1", "VI_2"}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, diags := ParseFile(filepath.Join("testdata", tt.file), testOptions())
			if diff := cmp.Diff(tt.wantDiags, diagStrings(diags), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, cmpModel...); diff != "" {
				t.Errorf("model (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseKeepalivedCaptureConfigs(t *testing.T) {
	tests := []struct {
		file     string
		version  int
		vrid     int
		priority int
		advert   config.Duration
		auth     *config.Auth
		vips     []string
		peers    []netip.Addr
	}{
		{"uc-node1.conf", 0, 53, 101, secs(1), &config.Auth{Type: "PASS", Pass: "pw"}, []string{"10.99.0.103/24"}, []netip.Addr{addr("10.99.0.2")}},
		{"uc-node2.conf", 0, 53, 102, secs(1), &config.Auth{Type: "PASS", Pass: "pw"}, []string{"10.99.0.103/24"}, []netip.Addr{addr("10.99.0.1")}},
		{"v2pass-node1.conf", 2, 51, 101, secs(1), &config.Auth{Type: "PASS", Pass: "secret1"}, []string{"10.99.0.100/24", "10.99.0.101/24"}, nil},
		{"v2pass-node2.conf", 2, 51, 102, secs(1), &config.Auth{Type: "PASS", Pass: "secret1"}, []string{"10.99.0.100/24", "10.99.0.101/24"}, nil},
		{"v3-node1.conf", 3, 52, 101, secs(0.1), nil, []string{"10.99.0.102/24"}, nil},
		{"v3-node2.conf", 3, 52, 102, secs(0.1), nil, []string{"10.99.0.102/24"}, nil},
		{"v3v6-node1.conf", 3, 52, 101, secs(1), nil, []string{"fd00:99::100/64"}, nil},
		{"v3v6-node2.conf", 3, 52, 102, secs(1), nil, []string{"fd00:99::100/64"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, diags := ParseFile(filepath.Join("testdata", "captures", tt.file), testOptions())
			if len(diags) != 0 {
				t.Fatalf("unexpected diagnostics: %q", diagStrings(diags))
			}
			if len(m.Instances) != 1 {
				t.Fatalf("got %d instances, want 1", len(m.Instances))
			}
			in := m.Instances[0]
			var vips []string
			for _, v := range in.VIPs {
				vips = append(vips, v.Prefix.String())
			}
			got := []any{m.Global.VRRPVersion, in.Name, in.State, in.Interface, in.VRID, in.Priority, in.AdvertInt, in.Auth, vips, in.UnicastPeers}
			want := []any{tt.version, "VI_1", "BACKUP", "eth0", tt.vrid, tt.priority, tt.advert, tt.auth, tt.vips, tt.peers}
			if diff := cmp.Diff(want, got, cmpModel...); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBrokenFileReportsEveryErrorWithFileAndLine(t *testing.T) {
	_, diags := ParseFile("testdata/broken.conf", testOptions())
	want := []string{
		"testdata/broken.conf:6: state SLAVE: must be MASTER or BACKUP",
		"testdata/broken.conf:8: virtual_router_id 300: must be 1..255",
		"testdata/broken.conf:9: priority 0: must be 1..255",
		"testdata/broken.conf:10: advert_int fast: not a number of seconds",
		"testdata/broken.conf:12: virtual_ipaddress 10.0.0.300/24: not an IP address",
		"testdata/broken.conf:13: virtual_ipaddress 10.0.0.1/24: dev without value",
		"testdata/broken.conf:20: unicast_src_ip not-an-ip: not an IP address",
		"testdata/broken.conf:22: unexpected '}' (no block open)",
	}
	if diff := cmp.Diff(want, diagStrings(diags)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if err := diags.Err(); err == nil || strings.Count(err.Error(), "\n") != len(want)-1 {
		t.Errorf("Err() = %v, want all %d errors", err, len(want))
	}
}

func ptr[T any](v T) *T { return &v }
