package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func at(line int) Pos { return Pos{File: "k.conf", Line: line} }

// validModel is a normalized model Validate accepts without a word: line
// numbers are per object so that tests can assert them.
func validModel() *Model {
	m := &Model{
		Global:  Global{Pos: at(1)},
		Scripts: []*Script{{Pos: at(5), Name: "chk", Script: "/bin/true"}},
		Instances: []*Instance{
			{Pos: at(10), Name: "VI_1", Interface: "eth0", VRID: 51,
				VIPs:         []VIP{{Pos: at(12), Prefix: netip.MustParsePrefix("10.0.0.100/24")}},
				TrackScripts: []Track{{Pos: at(14), Name: "chk"}}},
			{Pos: at(20), Name: "VI_2", Interface: "eth0", VRID: 52,
				VIPs: []VIP{{Pos: at(22), Prefix: netip.MustParsePrefix("10.0.0.101/24")}}},
		},
		SyncGroups:          []*SyncGroup{{Pos: at(30), Name: "G1", Members: []string{"VI_1", "VI_2"}}},
		VirtualServerGroups: []*VirtualServerGroup{{Pos: at(35), Name: "VSG", Members: []VSGEntry{{Pos: at(36), Address: netip.MustParseAddr("10.0.0.100"), Port: 80}}}},
		VirtualServers: []*VirtualServer{{Pos: at(40), Name: "10.0.0.100 80", Address: netip.MustParseAddr("10.0.0.100"), Port: 80,
			RealServers: []*RealServer{{Pos: at(42), Address: netip.MustParseAddr("10.0.1.1"), Checkers: []*Checker{{Pos: at(43), Type: CheckTCP}}}}}},
	}
	Normalize(m)
	return m
}

func TestValidateAcceptsValidModel(t *testing.T) {
	if ds := Validate(validModel(), ValidateOptions{InterfaceExists: func(string) bool { return true }}); len(ds) != 0 {
		t.Fatalf("Validate() = %v, want nothing", ds)
	}
}

func TestValidateReportsEachRuleAtItsLine(t *testing.T) {
	v6 := func(in *Instance) {
		in.VIPs = []VIP{{Pos: Pos{File: "k.conf", Line: in.Line + 2}, Prefix: netip.MustParsePrefix("fe80::1/64")}}
	}
	tests := []struct {
		name   string
		mutate func(m *Model)
		opts   ValidateOptions
		want   []string
		check  func(t *testing.T, m *Model)
	}{
		{"VRID out of range", func(m *Model) { m.Instances[0].VRID = 300 },
			ValidateOptions{}, []string{"k.conf:10: virtual_router_id 300: must be 1..255"}, nil},
		{"priority out of range", func(m *Model) { m.Instances[0].Priority = 256 },
			ValidateOptions{}, []string{"k.conf:10: priority 256: must be 1..255"}, nil},
		{"unknown state", func(m *Model) { m.Instances[0].State = "master" },
			ValidateOptions{}, []string{`k.conf:10: state "master": must be MASTER or BACKUP`}, nil},
		{"no_accept is a warning: no firewall rules", func(m *Model) { m.Instances[0].NoAccept = true },
			ValidateOptions{}, []string{"k.conf:10: warning: no_accept (strict mode): vipd does not install the firewall rules that drop traffic to the VIPs; they accept traffic as with accept"}, nil},
		{"unknown version", func(m *Model) { m.Instances[0].Version = 4 },
			ValidateOptions{}, []string{"k.conf:10: version 4: must be 2 or 3"}, nil},
		{"unknown global vrrp_version", func(m *Model) { m.Global.VRRPVersion = 1; m.Instances[1].Version = 2 },
			ValidateOptions{}, []string{"k.conf:1: vrrp_version 1: must be 2 or 3"}, nil},
		{"VRRPv2 advert_int not whole seconds", func(m *Model) { m.Instances[0].AdvertInt = Duration(1500 * time.Millisecond) },
			ValidateOptions{}, []string{"k.conf:10: warning: advert_int 1.5: VRRPv2 needs whole seconds 1..255; rounded to 2 (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if got := m.Instances[0].AdvertInt; got != Duration(2*time.Second) {
					t.Errorf("AdvertInt = %s, want 2s", got)
				}
			}},
		{"VRRPv2 advert_int below a second is out of range", func(m *Model) { m.Instances[0].AdvertInt = Duration(300 * time.Millisecond) },
			ValidateOptions{}, []string{"k.conf:10: advert_int 0.3: VRRPv2 needs whole seconds 1..255"}, nil},
		{"VRRPv2 advert_int above 255s", func(m *Model) { m.Instances[0].AdvertInt = Duration(256 * time.Second) },
			ValidateOptions{}, []string{"k.conf:10: advert_int 256: VRRPv2 needs whole seconds 1..255"}, nil},
		{"VRRPv3 advert_int below 10ms", func(m *Model) { m.Instances[0].Version = 3; m.Instances[0].AdvertInt = Duration(5 * time.Millisecond) },
			ValidateOptions{}, []string{"k.conf:10: advert_int 0.005: VRRPv3 needs 0.01..40.95 seconds in steps of 0.01"}, nil},
		{"VRRPv3 advert_int not in centiseconds", func(m *Model) {
			m.Instances[0].Version = 3
			m.Instances[0].AdvertInt = Duration(105 * time.Millisecond)
		},
			ValidateOptions{}, []string{"k.conf:10: warning: advert_int 0.105: VRRPv3 needs 0.01..40.95 seconds in steps of 0.01; rounded to 0.11 (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if got := m.Instances[0].AdvertInt; got != Duration(110*time.Millisecond) {
					t.Errorf("AdvertInt = %s, want 110ms", got)
				}
			}},
		{"VRRPv3 advert_int 40.95s is the maximum", func(m *Model) {
			m.Instances[0].Version = 3
			m.Instances[0].AdvertInt = Duration(40950 * time.Millisecond)
		},
			ValidateOptions{}, nil, nil},
		{"VRRPv3 advert_int above 40.95s", func(m *Model) { m.Instances[0].Version = 3; m.Instances[0].AdvertInt = Duration(41 * time.Second) },
			ValidateOptions{}, []string{"k.conf:10: advert_int 41: VRRPv3 needs 0.01..40.95 seconds in steps of 0.01"}, nil},
		{"version 2 on IPv6 becomes 3 with a warning", func(m *Model) { v6(m.Instances[0]); m.Instances[0].Version = 2 },
			ValidateOptions{}, []string{"k.conf:10: warning: version 2: VRRPv2 does not run over IPv6; using version 3 (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if m.Instances[0].Version != 3 {
					t.Errorf("Version = %d, want 3", m.Instances[0].Version)
				}
			}},
		{"authentication on VRRPv3 is dropped with a warning", func(m *Model) {
			m.Instances[0].Version = 3
			m.Instances[0].Auth = &Auth{Type: "PASS", Pass: "x"}
		}, ValidateOptions{}, []string{"k.conf:10: warning: authentication: VRRPv3 has none; ignored (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if m.Instances[0].Auth != nil {
					t.Errorf("Auth = %+v, want nil", m.Instances[0].Auth)
				}
			}},
		{"AH is refused", func(m *Model) { m.Instances[0].Auth = &Auth{Type: "AH", Pass: "x"} },
			ValidateOptions{}, []string{"k.conf:10: auth_type AH: not supported by vipd"}, nil},
		{"unknown auth_type", func(m *Model) { m.Instances[0].Auth = &Auth{Type: "MD5", Pass: "x"} },
			ValidateOptions{}, []string{`k.conf:10: auth_type "MD5": must be PASS or AH`}, nil},
		{"auth_pass longer than 8 is a warning", func(m *Model) { m.Instances[0].Auth = &Auth{Type: "PASS", Pass: "123456789"} },
			ValidateOptions{}, []string{"k.conf:10: warning: auth_pass: longer than 8 characters; only the first 8 are used (as keepalived does)"}, nil},
		{"auth_pass of exactly 8 is fine", func(m *Model) { m.Instances[0].Auth = &Auth{Type: "PASS", Pass: "12345678"} },
			ValidateOptions{}, nil, nil},
		{"same VRID on one interface and family names both lines", func(m *Model) { m.Instances[1].VRID = 51 },
			ValidateOptions{}, []string{"k.conf:20: virtual_router_id 51: already used on eth0 (IPv4) by vrrp_instance VI_1 at k.conf:10"}, nil},
		{"same VRID on another interface is fine", func(m *Model) { m.Instances[1].VRID = 51; m.Instances[1].Interface = "eth1" },
			ValidateOptions{}, nil, nil},
		{"same VRID in the other family is fine", func(m *Model) { m.Instances[1].VRID = 51; v6(m.Instances[1]); m.Instances[1].Version = 3 },
			ValidateOptions{}, nil, nil},
		{"same VRID unicast with the same source and a common peer", func(m *Model) {
			for _, in := range m.Instances {
				in.VRID = 51
				in.UnicastSrcIP = netip.MustParseAddr("10.0.0.1")
				in.UnicastPeers = []netip.Addr{netip.MustParseAddr("10.0.0.2")}
			}
		}, ValidateOptions{}, []string{"k.conf:20: virtual_router_id 51: already used on eth0 (IPv4) by vrrp_instance VI_1 at k.conf:10"}, nil},
		{"same VRID unicast to different peers is fine", func(m *Model) {
			for i, in := range m.Instances {
				in.VRID = 51
				in.UnicastSrcIP = netip.MustParseAddr("10.0.0.1")
				in.UnicastPeers = []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + i)})}
			}
		}, ValidateOptions{}, nil, nil},
		{"track_script naming no vrrp_script is an error", func(m *Model) { m.Instances[0].TrackScripts[0].Name = "chk_missing" },
			ValidateOptions{}, []string{"k.conf:14: track_script chk_missing: no vrrp_script of that name"}, nil},
		{"track_file naming no track_file block is dropped with a warning", func(m *Model) {
			m.TrackFiles = []*TrackFile{{Pos: at(7), Name: "tf", File: "/run/w"}}
			m.Instances[0].TrackFiles = []Track{{Pos: at(15), Name: "tf"}, {Pos: at(16), Name: "/run/w"}}
		}, ValidateOptions{}, []string{"k.conf:16: warning: track_file /run/w: no track_file of that name; ignored (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if got := m.Instances[0].TrackFiles; len(got) != 1 || got[0].Name != "tf" {
					t.Errorf("TrackFiles = %+v, want only tf", got)
				}
			}},
		{"track_interface of the instance's own interface is dropped with a warning", func(m *Model) {
			m.Instances[0].TrackInterfaces = []Track{{Pos: at(16), Name: "eth0", Weight: ptr(50)}, {Pos: at(17), Name: "eth1"}}
		}, ValidateOptions{}, []string{"k.conf:16: warning: track_interface eth0: the instance's own interface is always tracked; ignored (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if got := m.Instances[0].TrackInterfaces; len(got) != 1 || got[0].Name != "eth1" {
					t.Errorf("TrackInterfaces = %+v, want only eth1", got)
				}
			}},
		{"preempt_delay with state MASTER is cleared", func(m *Model) {
			m.Instances[0].State = StateMaster
			m.Instances[0].PreemptDelay = Duration(10 * time.Second)
		}, ValidateOptions{}, []string{"k.conf:10: warning: preempt_delay: does not work with state MASTER; ignored (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if m.Instances[0].PreemptDelay != 0 {
					t.Error("PreemptDelay still set")
				}
			}},
		{"preempt_delay with nopreempt is cleared", func(m *Model) {
			m.Instances[0].NoPreempt = true
			m.Instances[0].PreemptDelay = Duration(10 * time.Second)
		}, ValidateOptions{}, []string{"k.conf:10: warning: preempt_delay: incompatible with nopreempt; ignored (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if m.Instances[0].PreemptDelay != 0 || !m.Instances[0].NoPreempt {
					t.Errorf("PreemptDelay = %s, NoPreempt = %v; want 0, true", m.Instances[0].PreemptDelay, m.Instances[0].NoPreempt)
				}
			}},
		{"vrrp_strict drops authentication and makes a non-owner MASTER a BACKUP", func(m *Model) {
			m.Global.Strict = true
			m.Instances[0].State = StateMaster
			m.Instances[0].Auth = &Auth{Type: "PASS", Pass: "x"}
		}, ValidateOptions{}, []string{
			"k.conf:1: warning: vrrp_strict: no_accept (strict mode): vipd does not install the firewall rules that drop traffic to the VIPs; they accept traffic as with accept",
			"k.conf:10: warning: state MASTER: in strict mode the initial state must match being the address owner (priority 255); using BACKUP (as keepalived does)",
			"k.conf:10: warning: authentication: strict mode has none; ignored (as keepalived does)",
		}, func(t *testing.T, m *Model) {
			if in := m.Instances[0]; in.State != StateBackup || in.Auth != nil {
				t.Errorf("State = %s, Auth = %+v; want BACKUP, nil", in.State, in.Auth)
			}
		}},
		{"strict_mode on one instance makes its address owner MASTER", func(m *Model) {
			m.Instances[1].StrictMode = true
			m.Instances[1].Priority = OwnerPriority
		}, ValidateOptions{}, []string{
			"k.conf:20: warning: state BACKUP: in strict mode the initial state must match being the address owner (priority 255); using MASTER (as keepalived does)",
		}, func(t *testing.T, m *Model) {
			if m.Instances[1].State != StateMaster || m.Instances[0].State != StateBackup {
				t.Errorf("states %s, %s; want BACKUP, MASTER", m.Instances[0].State, m.Instances[1].State)
			}
		}},
		{"track weight out of range", func(m *Model) { m.Instances[0].TrackScripts[0].Weight = ptr(254) },
			ValidateOptions{}, []string{"k.conf:14: track_script chk weight 254: must be -253..253"}, nil},
		{"sync group member naming no instance is dropped with a warning", func(m *Model) { m.SyncGroups[0].Members = append(m.SyncGroups[0].Members, "VI_9") },
			ValidateOptions{}, []string{"k.conf:30: warning: vrrp_sync_group G1: vrrp_instance VI_9: no vrrp_instance of that name; ignored (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if diff := cmp.Diff([]string{"VI_1", "VI_2"}, m.SyncGroups[0].Members); diff != "" {
					t.Errorf("Members (-want +got):\n%s", diff)
				}
			}},
		{"instance in two sync groups stays in the first; the emptied group is removed", func(m *Model) {
			m.SyncGroups = append(m.SyncGroups, &SyncGroup{Pos: at(33), Name: "G2", Members: []string{"VI_2"}})
		}, ValidateOptions{}, []string{
			"k.conf:33: warning: vrrp_sync_group G2: vrrp_instance VI_2 is already in vrrp_sync_group G1 at k.conf:30; ignored here (as keepalived does)",
			"k.conf:33: warning: vrrp_sync_group G2: no usable vrrp_instance left; group removed (as keepalived does)",
		}, func(t *testing.T, m *Model) {
			if len(m.SyncGroups) != 1 || m.SyncGroups[0].Name != "G1" {
				t.Errorf("SyncGroups = %+v, want only G1", m.SyncGroups)
			}
		}},
		{"unicast_peer of the other family", func(m *Model) {
			m.Instances[0].UnicastPeers = []netip.Addr{netip.MustParseAddr("fe80::2")}
		}, ValidateOptions{}, []string{"k.conf:10: unicast_peer fe80::2: address family must match the instance's (IPv4)"}, nil},
		{"unicast_src_ip of the other family", func(m *Model) { m.Instances[0].UnicastSrcIP = netip.MustParseAddr("fe80::2") },
			ValidateOptions{}, []string{"k.conf:10: unicast_src_ip fe80::2: address family must match the instance's (IPv4)"}, nil},
		{"VIPs of mixed families", func(m *Model) {
			m.Instances[0].VIPs = append(m.Instances[0].VIPs, VIP{Pos: at(13), Prefix: netip.MustParsePrefix("fd00::1/64")})
		}, ValidateOptions{}, []string{"k.conf:13: virtual_ipaddress fd00::1/64: address family must match the instance's (IPv4); put it in virtual_ipaddress_excluded"}, nil},
		{"excluded VIPs may be of the other family", func(m *Model) {
			m.Instances[0].ExcludedVIPs = []VIP{{Pos: at(13), Prefix: netip.MustParsePrefix("fd00::1/64")}}
		}, ValidateOptions{}, nil, nil},
		{"VRRPv3 without VIPs is an error", func(m *Model) { m.Instances[0].VIPs = nil; m.Instances[0].Version = 3 },
			ValidateOptions{}, []string{"k.conf:10: virtual_ipaddress: none given; VRRPv3 needs at least one"}, nil},
		{"VRRPv2 without VIPs is a warning", func(m *Model) { m.Instances[0].VIPs = nil },
			ValidateOptions{}, []string{"k.conf:10: warning: virtual_ipaddress: none given; at least one is sensible"}, nil},
		{"missing interface", func(m *Model) { m.Instances[0].Interface = "" },
			ValidateOptions{}, []string{"k.conf:10: interface: missing (only a unicast instance with unicast_src_ip may omit it)"}, nil},
		{"interface absent on this host is a warning", func(m *Model) { m.Instances[1].Interface = "eth9" },
			ValidateOptions{InterfaceExists: func(n string) bool { return n == "eth0" }},
			[]string{"k.conf:20: warning: interface eth9: does not exist on this host"}, nil},
		{"interfaces are not checked without InterfaceExists", func(m *Model) { m.Instances[1].Interface = "eth9" },
			ValidateOptions{}, nil, nil},
		{"nopreempt with state MASTER is cleared", func(m *Model) { m.Instances[0].State = StateMaster; m.Instances[0].NoPreempt = true },
			ValidateOptions{}, []string{"k.conf:10: warning: nopreempt: does not work with state MASTER; ignored (as keepalived does)"},
			func(t *testing.T, m *Model) {
				if m.Instances[0].NoPreempt {
					t.Error("NoPreempt still set")
				}
			}},
		{"duplicate instance name", func(m *Model) { m.Instances[1].Name = "VI_1"; m.SyncGroups = nil },
			ValidateOptions{}, []string{"k.conf:20: vrrp_instance VI_1: defined twice (first at k.conf:10)"}, nil},
		{"script without command", func(m *Model) { m.Scripts[0].Script = " " },
			ValidateOptions{}, []string{"k.conf:5: vrrp_script chk: no script to run"}, nil},
		{"unknown lb_algo, lb_kind and protocol are all reported", func(m *Model) {
			vs := m.VirtualServers[0]
			vs.LBAlgo, vs.LBKind, vs.Protocol = "fastest", "nat", "ICMP"
		}, ValidateOptions{}, []string{
			"k.conf:40: lb_algo fastest: must be one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos",
			"k.conf:40: lb_kind nat: must be one of NAT, DR, TUN",
			"k.conf:40: protocol ICMP: must be one of TCP, UDP, SCTP",
		}, nil},
		{"real server without address", func(m *Model) { m.VirtualServers[0].RealServers[0].Address = netip.Addr{} },
			ValidateOptions{}, []string{"k.conf:42: real_server: no address"}, nil},
		{"virtual server referencing an unknown group", func(m *Model) {
			m.VirtualServers[0].Address, m.VirtualServers[0].Group = netip.Addr{}, "NOPE"
		}, ValidateOptions{}, []string{"k.conf:40: virtual_server group NOPE: no virtual_server_group of that name"}, nil},
		{"virtual server with nothing to serve", func(m *Model) { m.VirtualServers[0].Address = netip.Addr{} },
			ValidateOptions{}, []string{"k.conf:40: virtual_server 10.0.0.100 80: needs an address and port, a fwmark or a group"}, nil},
		{"unknown checker type", func(m *Model) { m.VirtualServers[0].RealServers[0].Checkers[0].Type = "PING_CHECK" },
			ValidateOptions{}, []string{`k.conf:43: checker "PING_CHECK": must be one of TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK, SMTP_CHECK`}, nil},
		{"all errors are collected", func(m *Model) {
			m.Instances[0].VRID = 0
			m.Instances[1].Priority = -1
			m.VirtualServers[0].RealServers[0].Address = netip.Addr{}
		}, ValidateOptions{}, []string{
			"k.conf:10: virtual_router_id: missing (every vrrp_instance needs one, 1..255)",
			"k.conf:20: priority -1: must be 1..255",
			"k.conf:42: real_server: no address",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validModel()
			tt.mutate(m)
			ds := Validate(m, tt.opts)
			var got []string
			for _, d := range ds {
				got = append(got, d.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestValidateToleratesNilAndEmpty(t *testing.T) {
	if ds := Validate(nil, ValidateOptions{}); ds.Err() == nil {
		t.Error("Validate(nil) reported no error")
	}
	m := &Model{Instances: []*Instance{nil}, VirtualServers: []*VirtualServer{{RealServers: []*RealServer{nil}}}}
	Normalize(m)
	ds := Validate(m, ValidateOptions{})
	if !strings.Contains(ds.Err().Error(), "instances[0]: empty entry") {
		t.Errorf("Validate() = %v, want an empty entry error", ds)
	}
}
