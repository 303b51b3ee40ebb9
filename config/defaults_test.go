package config

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpModel = cmp.Options{
	cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}),
	cmpopts.EquateEmpty(),
}

func ptr[T any](v T) *T { return &v }

func TestNormalizeFillsKeepalivedDefaults(t *testing.T) {
	sec := func(n float64) Duration { return Duration(n * float64(time.Second)) }
	// Every expectation is keepalived 2.2.7's value; the source line is in
	// the comment of the constant in defaults.go.
	defaultGarp := Garp{MasterDelay: sec(5), MasterRepeat: 5, MasterRefreshRepeat: 1, LowerPrioDelay: sec(5), LowerPrioRepeat: 5}
	tests := []struct {
		name string
		in   Model
		want Model
	}{
		{
			name: "empty instance is BACKUP priority 100 advert 1s VRRPv2 with garp 5x5s",
			in:   Model{Instances: []*Instance{{Name: "VI_1"}}},
			want: Model{
				Global:    Global{VRRPVersion: 2, Garp: defaultGarp},
				Instances: []*Instance{{Name: "VI_1", State: StateBackup, Priority: 100, AdvertInt: sec(1), Version: 2, Garp: defaultGarp, DownTimerAdverts: 3}},
			},
		},
		{
			// vrrp.c vrrp_complete_instance: "If no priority has been set,
			// derive it from the initial state".
			name: "state MASTER without priority is the address owner 255",
			in:   Model{Instances: []*Instance{{State: StateMaster}}},
			want: Model{
				Global:    Global{VRRPVersion: 2, Garp: defaultGarp},
				Instances: []*Instance{{State: StateMaster, Priority: 255, AdvertInt: sec(1), Version: 2, Garp: defaultGarp, DownTimerAdverts: 3}},
			},
		},
		{
			name: "priority 255 without state starts MASTER",
			in:   Model{Instances: []*Instance{{Priority: 255}}},
			want: Model{
				Global:    Global{VRRPVersion: 2, Garp: defaultGarp},
				Instances: []*Instance{{State: StateMaster, Priority: 255, AdvertInt: sec(1), Version: 2, Garp: defaultGarp, DownTimerAdverts: 3}},
			},
		},
		{
			name: "IPv6 instance is VRRPv3 even when vrrp_version is 2",
			in: Model{Instances: []*Instance{{
				VIPs: []VIP{{Prefix: netip.MustParsePrefix("fd00::1/64")}},
			}}},
			want: Model{
				Global: Global{VRRPVersion: 2, Garp: defaultGarp},
				Instances: []*Instance{{State: StateBackup, Priority: 100, AdvertInt: sec(1), Version: 3, Garp: defaultGarp, DownTimerAdverts: 3,
					VIPs: []VIP{{Prefix: netip.MustParsePrefix("fd00::1/64")}}}},
			},
		},
		{
			name: "instance inherits vrrp_version, vrrp_garp_* and vrrp_check_unicast_src",
			in: Model{
				Global:    Global{VRRPVersion: 3, CheckUnicastSrc: true, Garp: Garp{MasterDelay: sec(2), MasterRefresh: sec(60), Interval: Duration(time.Millisecond)}},
				Instances: []*Instance{{Garp: Garp{MasterRepeat: 2}}},
			},
			want: Model{
				Global: Global{VRRPVersion: 3, CheckUnicastSrc: true, Garp: Garp{
					MasterDelay: sec(2), MasterRepeat: 5, MasterRefresh: sec(60), MasterRefreshRepeat: 1,
					LowerPrioDelay: sec(2), LowerPrioRepeat: 5, Interval: Duration(time.Millisecond)}},
				Instances: []*Instance{{State: StateBackup, Priority: 100, AdvertInt: sec(1), Version: 3, CheckUnicastSrc: true, DownTimerAdverts: 3, Garp: Garp{
					// lower_prio_repeat comes from the global value (5), not
					// from the instance's master_repeat 2: vrrp.c
					// "vrrp->garp_lower_prio_rep = global_data->vrrp_garp_lower_prio_rep".
					MasterDelay: sec(2), MasterRepeat: 2, MasterRefresh: sec(60), MasterRefreshRepeat: 1,
					LowerPrioDelay: sec(2), LowerPrioRepeat: 5, Interval: Duration(time.Millisecond)}}},
			},
		},
		{
			name: "use_vmac names the interface vrrp.VRID",
			in:   Model{Instances: []*Instance{{VRID: 7, UseVMAC: true}}},
			want: Model{
				Global:    Global{VRRPVersion: 2, Garp: defaultGarp},
				Instances: []*Instance{{VRID: 7, UseVMAC: true, VMACName: "vrrp.7", State: StateBackup, Priority: 100, AdvertInt: sec(1), Version: 2, Garp: defaultGarp, DownTimerAdverts: 3}},
			},
		},
		{
			// vrrp_track.h VRRP_SCRIPT_DI 1, VRRP_SCRIPT_DT 0 (= interval in
			// vrrp_scheduler.c), vrrp_data.c rise = fall = 1.
			name: "script interval 1s, timeout its interval, rise and fall 1",
			in:   Model{Scripts: []*Script{{Name: "a"}, {Name: "b", Interval: sec(3)}}},
			want: Model{
				Global: Global{VRRPVersion: 2, Garp: defaultGarp},
				Scripts: []*Script{
					{Name: "a", Interval: sec(1), Timeout: sec(1), Rise: 1, Fall: 1},
					{Name: "b", Interval: sec(3), Timeout: sec(3), Rise: 1, Fall: 1},
				},
			},
		},
		{
			// check_data.c alloc_vs and validate_check_config; check_api.c,
			// check_http.c and check_misc.c for the checker defaults.
			name: "virtual server, real servers and checkers",
			in: Model{VirtualServers: []*VirtualServer{{
				Address: netip.MustParseAddr("192.0.2.1"), Port: 80,
				RealServers: []*RealServer{{
					Address:  netip.MustParseAddr("10.0.0.1"),
					Checkers: []*Checker{{Type: CheckTCP}, {Type: CheckHTTP, ConnectPort: 8080}, {Type: CheckMisc, MiscPath: "/bin/true"}},
				}},
				SorryServer: &RealServer{Address: netip.MustParseAddr("10.0.0.9")},
			}}},
			want: Model{
				Global: Global{VRRPVersion: 2, Garp: defaultGarp},
				VirtualServers: []*VirtualServer{{
					Address: netip.MustParseAddr("192.0.2.1"), Port: 80,
					Protocol: "TCP", DelayLoop: sec(60), LBAlgo: "wlc", LBKind: "NAT", Quorum: 1,
					RealServers: []*RealServer{{
						Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Weight: ptr(1),
						Checkers: []*Checker{
							{Type: CheckTCP, ConnectIP: netip.MustParseAddr("10.0.0.1"), ConnectPort: 80, ConnectTimeout: sec(5), Retry: ptr(1), DelayBeforeRetry: sec(1), DelayLoop: sec(60)},
							{Type: CheckHTTP, ConnectIP: netip.MustParseAddr("10.0.0.1"), ConnectPort: 8080, ConnectTimeout: sec(5), Retry: ptr(1), DelayBeforeRetry: sec(3), DelayLoop: sec(60)},
							{Type: CheckMisc, MiscPath: "/bin/true", ConnectTimeout: sec(5), Retry: ptr(0), DelayBeforeRetry: sec(1), DelayLoop: sec(60)},
						},
					}},
					SorryServer: &RealServer{Address: netip.MustParseAddr("10.0.0.9"), Port: 80, Weight: ptr(1)},
				}},
			},
		},
		{
			name: "fwmark service keeps no protocol and real server port 0",
			in:   Model{VirtualServers: []*VirtualServer{{FWMark: 3, RealServers: []*RealServer{{Address: netip.MustParseAddr("10.0.0.1")}}}}},
			want: Model{
				Global: Global{VRRPVersion: 2, Garp: defaultGarp},
				VirtualServers: []*VirtualServer{{FWMark: 3, DelayLoop: sec(60), LBAlgo: "wlc", LBKind: "NAT", Quorum: 1,
					RealServers: []*RealServer{{Address: netip.MustParseAddr("10.0.0.1"), Weight: ptr(1)}}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.in
			Normalize(&m)
			if diff := cmp.Diff(tt.want, m, cmpModel); diff != "" {
				t.Errorf("Normalize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNormalizeIsIdempotent(t *testing.T) {
	m := exampleModel()
	Normalize(m)
	once := cloneForTest(t, m)
	Normalize(m)
	if diff := cmp.Diff(once, m, cmpModel, cmpopts.IgnoreTypes(Pos{})); diff != "" {
		t.Errorf("second Normalize changed the model (-first +second):\n%s", diff)
	}
}

func TestNormalizeToleratesNilEntries(t *testing.T) {
	Normalize(nil)
	m := &Model{
		Scripts: []*Script{nil}, Instances: []*Instance{nil},
		VirtualServers: []*VirtualServer{nil, {RealServers: []*RealServer{nil, {Checkers: []*Checker{nil}}}}},
	}
	Normalize(m) // must not panic
	if w := m.VirtualServers[1].RealServers[1].Weight; w == nil || *w != 1 {
		t.Errorf("real server after a nil entry not normalized")
	}
}

func TestDefaultInstanceIsWhatNormalizeFills(t *testing.T) {
	m := &Model{Instances: []*Instance{{}}}
	Normalize(m)
	if diff := cmp.Diff(DefaultInstance(), m.Instances[0], cmpModel); diff != "" {
		t.Errorf("DefaultInstance differs from a normalized empty instance (-default +normalized):\n%s", diff)
	}
}

func TestIsIPv6FollowsKeepalivedsOrder(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fe80::1")
	tests := []struct {
		name string
		in   Instance
		want bool
	}{
		{"nothing known is IPv4", Instance{}, false},
		{"native_ipv6", Instance{NativeIPv6: true}, true},
		{"first VIP decides", Instance{VIPs: []VIP{{Prefix: netip.PrefixFrom(v6, 64)}, {Prefix: netip.PrefixFrom(v4, 32)}}}, true},
		{"first VIP over unicast_src_ip", Instance{VIPs: []VIP{{Prefix: netip.PrefixFrom(v4, 32)}}, UnicastSrcIP: v6}, false},
		{"unicast_src_ip without VIPs", Instance{UnicastSrcIP: v6}, true},
		{"unicast_peer without VIPs or source", Instance{UnicastPeers: []netip.Addr{v6}}, true},
		{"IPv4-mapped IPv6 VIP is IPv4", Instance{VIPs: []VIP{{Prefix: netip.MustParsePrefix("::ffff:10.0.0.1/128")}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.IsIPv6(); got != tt.want {
				t.Errorf("IsIPv6() = %v, want %v", got, tt.want)
			}
		})
	}
}

// cloneForTest deep-copies a model (positions are dropped).
func cloneForTest(t *testing.T, m *Model) *Model {
	t.Helper()
	c, err := cloneModel(m)
	if err != nil {
		t.Fatalf("clone: %v", err)
	}
	return c
}

// exampleModel is a model using most fields, not normalized.
func exampleModel() *Model {
	return &Model{
		Global: Global{RouterID: "LB1", NotificationEmail: []string{"a@b"}, Garp: Garp{MasterRefresh: Duration(time.Minute)}},
		Scripts: []*Script{
			{Name: "chk_Web", Script: "/bin/true", Interval: Duration(2 * time.Second), Weight: -20, WeightReverse: true},
		},
		Instances: []*Instance{
			{
				Name: "VI_Public", State: StateMaster, Interface: "eth0", VRID: 51, Priority: 150,
				Auth: &Auth{Type: "PASS", Pass: "secret"},
				VIPs: []VIP{
					{Prefix: netip.MustParsePrefix("192.0.2.100/24"), Dev: "eth0", Label: "eth0:vip", Brd: netip.MustParseAddr("192.0.2.255"), Scope: "global"},
					{Prefix: netip.MustParsePrefix("192.0.2.101/32")},
				},
				ExcludedVIPs:    []VIP{{Prefix: netip.MustParsePrefix("2001:db8::1/64")}},
				Routes:          []Route{{Dst: netip.MustParsePrefix("198.51.100.0/24"), Via: netip.MustParseAddr("192.0.2.1"), Metric: 5, Table: 100}},
				TrackScripts:    []Track{{Name: "chk_Web"}, {Name: "chk_Web", Weight: ptr(-30), Reverse: true}},
				TrackInterfaces: []Track{{Name: "eth1", Weight: ptr(0)}},
				Notify:          Notify{Master: "/bin/notify master", Generic: "/bin/notify"},
				Garp:            Garp{MasterRepeat: 3},
			},
			{
				Name: "vi_v6", Interface: "eth0", VRID: 52, AdvertInt: Duration(100 * time.Millisecond),
				VIPs:         []VIP{{Prefix: netip.MustParsePrefix("fe80::52/64")}},
				UnicastSrcIP: netip.MustParseAddr("fe80::1"), UnicastPeers: []netip.Addr{netip.MustParseAddr("fe80::2")},
				NoPreempt: true, UseVMAC: true,
			},
		},
		SyncGroups: []*SyncGroup{{Name: "VG_1", Members: []string{"VI_Public", "vi_v6"}}},
		VirtualServerGroups: []*VirtualServerGroup{{Name: "Grp", Members: []VSGEntry{
			{Address: netip.MustParseAddr("192.0.2.10"), RangeTo: netip.MustParseAddr("192.0.2.20"), Port: 80}, {FWMark: 9},
		}}},
		VirtualServers: []*VirtualServer{
			{
				Name: "192.0.2.100 80", Address: netip.MustParseAddr("192.0.2.100"), Port: 80, LBAlgo: "rr",
				PersistenceTimeout: Duration(50 * time.Second),
				SorryServer:        &RealServer{Address: netip.MustParseAddr("10.0.0.99"), Port: 80},
				RealServers: []*RealServer{
					{Address: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: ptr(2), Checkers: []*Checker{
						{Type: CheckHTTP, URLs: []URL{{Path: "/", StatusCode: []int{200, 301}, Digest: "abc"}}},
					}},
				},
			},
			{Name: "group Grp", Group: "Grp", LBKind: "DR"},
		},
	}
}
