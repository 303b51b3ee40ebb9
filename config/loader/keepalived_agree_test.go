package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
)

// loadSnippet runs what `vipd check` runs on src as k.conf.
func loadSnippet(t *testing.T, src string) (*config.Model, []string) {
	t.Helper()
	read := func(string) ([]byte, error) { return []byte(src), nil }
	m, ds := Load("k.conf", Options{Keepalived: keepalived.Options{ReadFile: read, ConfigIDs: []string{"node1"}}})
	var got []string
	for _, d := range ds {
		got = append(got, d.String())
	}
	return m, got
}

func vi(body string) string {
	return "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n" + body +
		"    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n"
}

// TestCheckAgreesWithKeepalived holds small files run through
// `keepalived -t -f FILE` (keepalived 2.2.7); the comment of each case
// gives keepalived's verdict (exit code and log), and want is what vipd
// check reports for it.
func TestCheckAgreesWithKeepalived(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  []string
		check func(t *testing.T, m *config.Model)
	}{
		{
			// keepalived -t: exit 0, nothing logged; the handlers of these
			// keywords never read an argument, so "0" still sets the flag.
			name: "flag keywords with an argument: the argument is ignored",
			src: "global_defs {\n    enable_script_security 0\n    vrrp_check_unicast_src no\n}\n" +
				vi("    nopreempt 1\n    dont_track_primary 1\n    accept 0\n"),
			want: []string{
				"k.conf:2: warning: enable_script_security 0: keepalived ignores the argument and sets enable_script_security; so does vipd",
				"k.conf:3: warning: vrrp_check_unicast_src no: keepalived ignores the argument and sets vrrp_check_unicast_src; so does vipd",
				"k.conf:8: warning: nopreempt 1: keepalived ignores the argument and sets nopreempt; so does vipd",
				"k.conf:9: warning: dont_track_primary 1: keepalived ignores the argument and sets dont_track_primary; so does vipd",
				"k.conf:10: warning: accept 0: keepalived ignores the argument and sets accept; so does vipd",
			},
			check: func(t *testing.T, m *config.Model) {
				in := m.Instances[0]
				if !m.Global.EnableScriptSecurity || !m.Global.CheckUnicastSrc || !in.NoPreempt || !in.DontTrackPrimary || in.NoAccept {
					t.Errorf("flags not set as keepalived sets them: %+v", in)
				}
			},
		},
		{
			// keepalived -t: exit 0 apart from "no scheduler set" notes
			// (pure flags in virtual_server and MISC_CHECK).
			name: "virtual_server flags with an argument",
			src: "global_defs {\n    script_user root\n    enable_script_security\n}\n" +
				"virtual_server 10.0.0.1 80 {\n    alpha 0\n    omega 0\n    inhibit_on_failure 0\n    protocol TCP\n    real_server 10.0.1.1 80 {\n" +
				"        MISC_CHECK {\n            misc_path /bin/true\n            misc_dynamic 0\n        }\n    }\n}\n",
			want: []string{
				"k.conf:6: warning: alpha 0: keepalived ignores the argument and sets alpha; so does vipd",
				"k.conf:7: warning: omega 0: keepalived ignores the argument and sets omega; so does vipd",
				"k.conf:8: warning: inhibit_on_failure 0: keepalived ignores the argument and sets inhibit_on_failure; so does vipd",
				"k.conf:13: warning: misc_dynamic 0: keepalived ignores the argument and sets misc_dynamic; so does vipd",
			},
			check: func(t *testing.T, m *config.Model) {
				vs := m.VirtualServers[0]
				if !vs.Alpha || !vs.Omega || !vs.Inhibit || !vs.RealServers[0].Checkers[0].MiscDynamic {
					t.Errorf("flags not set: %+v", vs)
				}
			},
		},
		{
			// keepalived -t: exit 5, "(VI_1) invalid strict_mode 0 specified" and
			// "Invalid inhibit_on_failure parameter 0": these two read
			// true/on/yes/false/off/no and nothing else.
			name: "true/false keywords refuse 0",
			src: vi("    strict_mode 0\n") +
				"virtual_server 10.0.0.1 80 {\n    real_server 10.0.1.1 80 {\n        inhibit_on_failure 0\n    }\n}\n",
			want: []string{
				"k.conf:4: strict_mode 0: must be true, on, yes, false, off or no",
				"k.conf:11: inhibit_on_failure 0: must be true, on, yes, false, off or no",
			},
		},
		{
			// keepalived -t: exit 0; inet_stosockaddr drops what follows '/'.
			name: "unicast_src_ip and unicast_peer with a mask",
			src:  vi("    unicast_src_ip 10.0.0.2/24\n    unicast_peer {\n        10.0.0.3/24\n    }\n"),
			want: []string{
				"k.conf:4: warning: unicast_src_ip 10.0.0.2/24: /24 ignored, the address is 10.0.0.2 (as keepalived does)",
				"k.conf:6: warning: unicast_peer 10.0.0.3/24: /24 ignored, the address is 10.0.0.3 (as keepalived does)",
			},
			check: func(t *testing.T, m *config.Model) {
				in := m.Instances[0]
				if in.UnicastSrcIP.String() != "10.0.0.2" || len(in.UnicastPeers) != 1 || in.UnicastPeers[0].String() != "10.0.0.3" {
					t.Errorf("unicast_src_ip %s peers %v", in.UnicastSrcIP, in.UnicastPeers)
				}
			},
		},
		{
			// keepalived -t: exit 0, nothing logged about the second group;
			// ipvs_get_group_by_name finds the first definition.
			name: "virtual_server_group defined twice: the first is used",
			src: "virtual_server_group G {\n    10.0.0.1 80\n}\nvirtual_server_group G {\n    10.0.0.2 80\n}\n" +
				"virtual_server group G {\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    real_server 10.0.1.1 80 {\n        weight 1\n    }\n}\n",
			want: []string{
				"k.conf:4: warning: virtual_server_group G: defined twice (first at k.conf:1); this definition is ignored, the first is used (as keepalived does)",
			},
			check: func(t *testing.T, m *config.Model) {
				if len(m.VirtualServerGroups) != 1 || m.VirtualServerGroups[0].Members[0].Address.String() != "10.0.0.1" {
					t.Errorf("groups %+v", m.VirtualServerGroups)
				}
			},
		},
		{
			// keepalived -t: exit 5, "(k.conf: Line 4) Unknown keyword
			// 'nb_get_retry'": TCP_CHECK keeps its retry (1).
			name: "nb_get_retry in TCP_CHECK is ignored",
			src:  "virtual_server 10.0.0.1 80 {\n    real_server 10.0.1.1 80 {\n        TCP_CHECK {\n            nb_get_retry 3\n        }\n    }\n}\n",
			want: []string{
				"k.conf:4: warning: nb_get_retry: keepalived ignores it in TCP_CHECK (it is only for HTTP_GET and SSL_GET; keepalived -t reports an unknown keyword); so does vipd, use retry",
			},
			check: func(t *testing.T, m *config.Model) {
				if r := m.VirtualServers[0].RealServers[0].Checkers[0].Retry; r == nil || *r != config.DefaultCheckerRetry {
					t.Errorf("retry = %v, want %d", r, config.DefaultCheckerRetry)
				}
			},
		},
		{
			// keepalived -t: exit 5, "number '0' outside range [1, 2678400]",
			// "number '0' outside range [0.000001, 4294.967295]" (twice).
			name: "persistence_timeout, vrrp_garp_interval and vrrp_gna_interval 0 are refused",
			src: "global_defs {\n    vrrp_garp_interval 0\n    vrrp_gna_interval 0\n}\n" +
				"virtual_server 10.0.0.1 80 {\n    persistence_timeout 0\n}\n",
			want: []string{
				"k.conf:2: vrrp_garp_interval 0: must be 0.000001..4294.967295 seconds",
				"k.conf:3: vrrp_gna_interval 0: must be 0.000001..4294.967295 seconds",
				"k.conf:6: persistence_timeout 0: must be 1..2678400",
			},
		},
		{
			// keepalived -t: exit 5, "(k.conf: Line 2) Invalid lvs_scheduler
			// 'fastest' - ignoring", at the lb_algo line.
			name: "a bad lb_algo is reported at its own line",
			src:  "virtual_server 10.0.0.1 80 {\n    lb_algo fastest\n    protocol TCP\n}\n",
			want: []string{
				"k.conf:2: lb_algo fastest: must be one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos",
			},
		},
		{
			// keepalived -t: exit 0 (the global true is not overridden by the
			// instance's false there; vipd cannot carry that, so refuses it).
			// These change the wire or the takeover and are carried by the
			// model for the runtime. unicast_ttl without unicast_peer is a
			// keepalived -t error ("Cannot use unicast_ttl without unicast
			// peers - resetting").
			name: "wire keywords vipd carries",
			src: "global_defs {\n    vrrp_mcast_group4 224.0.0.19\n    vrrp_down_timer_adverts 5\n    vrrp_startup_delay 2.5\n" +
				"    vrrp_lower_prio_no_advert\n    vrrp_higher_prio_send_advert true\n}\n" +
				vi("    unicast_ttl 64\n    unicast_peer {\n        10.0.0.7\n    }\n") +
				"vrrp_instance VI_2 {\n    interface eth0\n    virtual_router_id 52\n    mcast_dst_ip 224.0.0.20\n    down_timer_adverts 1\n" +
				"    higher_prio_send_advert false\n    virtual_ipaddress {\n        10.0.0.2/24\n    }\n}\n",
			want: []string{
				"k.conf:24: higher_prio_send_advert false: vipd cannot turn it off for one instance while vrrp_higher_prio_send_advert is set in global_defs; remove one of them",
			},
			check: func(t *testing.T, m *config.Model) {
				a, b := m.Instances[0], m.Instances[1]
				if a.McastGroup.String() != "224.0.0.19" || a.DownTimerAdverts != 5 || a.UnicastTTL != 64 || !a.LowerPrioNoAdvert || !a.HigherPrioSendAdvert {
					t.Errorf("VI_1 %+v", a)
				}
				if b.McastGroup.String() != "224.0.0.20" || b.DownTimerAdverts != 1 {
					t.Errorf("VI_2 %+v", b)
				}
				if m.Global.StartupDelay.String() != "2.5s" {
					t.Errorf("startup delay %s", m.Global.StartupDelay)
				}
			},
		},
		{
			// keepalived -t: exit 5, "(VI_1) down_timer_adverts is
			// incompatible with strict mode - resetting"; exit 0 for
			// unicast_ttl 0 (vipd refuses TTL 0) and for min_ttl, track_src_ip,
			// vrrp_min_garp (which vipd does not implement).
			name: "wire keywords vipd refuses",
			src: "global_defs {\n    vrrp_min_garp\n    vrrp_strict\n}\n" +
				vi("    down_timer_adverts 2\n    unicast_ttl 0\n    track_src_ip\n    unicast_peer {\n        10.0.0.3 min_ttl 10\n    }\n"),
			want: []string{
				"k.conf:2: vipd does not implement vrrp_min_garp, which sets the gratuitous ARP defaults to one packet with no delay and so changes what goes on the wire or when a backup takes over; set vrrp_garp_master_repeat 1 and vrrp_garp_master_refresh_repeat instead",
				"k.conf:9: unicast_ttl 0: vipd does not implement sending adverts with TTL 0 (keepalived does); use 1..255",
				"k.conf:10: vipd does not implement track_src_ip, which tracks the source address of the adverts (FAULT when it goes) and so changes what goes on the wire or when a backup takes over; remove it",
				"k.conf:12: unicast_peer 10.0.0.3 min_ttl: vipd does not implement min_ttl/max_ttl, which drop adverts from the peer by their TTL and so change when a backup takes over; remove it",
				"k.conf:3: warning: vrrp_strict: no_accept (strict mode): vipd does not install the firewall rules that drop traffic to the VIPs; they accept traffic as with accept",
				"k.conf:8: down_timer_adverts 2: incompatible with strict mode (which needs 3)",
			},
		},
		{
			// keepalived -t: exit 5, "vrrp_mcast_group4 [10.0.0.1] is not
			// multicast. Skipping" and "(VI_1) mcast_dst_ip 10.0.0.9 not multicast".
			name: "multicast groups must be multicast",
			src:  "global_defs {\n    vrrp_mcast_group4 10.0.0.1\n}\n" + vi("    mcast_dst_ip 10.0.0.9\n"),
			want: []string{
				"k.conf:2: vrrp_mcast_group4 10.0.0.1: not a multicast address",
				"k.conf:7: mcast_dst_ip 10.0.0.9: not a multicast address",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, got := loadSnippet(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if tt.check != nil && len(m.Instances)+len(m.VirtualServers) > 0 {
				tt.check(t, m)
			}
		})
	}
}

// TestBuiltinDefinitions: keepalived 2.2.7 lib/parser.c set_std_definitions.
func TestBuiltinDefinitions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.conf")
	src := "global_defs {\n    router_id ${_INSTANCE}\n    notification_email_from \"a${_BANG}b${_HASH}c\"\n" +
		"    smtp_server ${_PWD}\n}\n" +
		"vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id ${_RANDOM 7 9}\n    priority ${_RANDOM}\n" +
		"    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	m, ds := Load(path, Options{Keepalived: keepalived.Options{ConfigIDs: []string{"node7"}}})
	for _, d := range ds.Errors() {
		if !strings.Contains(d.Msg, "priority") { // ${_RANDOM} may exceed 255
			t.Errorf("unexpected error %s", d)
		}
	}
	g := m.Global
	if g.RouterID != "node7" {
		t.Errorf("${_INSTANCE} = %q, want node7", g.RouterID)
	}
	// Quoted: keepalived decomments the line again after expanding it
	// (lib/parser.c read_line), so a bare ${_BANG} would start a comment.
	if g.NotificationEmailFrom != "a!b#c" {
		t.Errorf("${_BANG}/${_HASH} = %q, want a!b#c", g.NotificationEmailFrom)
	}
	if g.SMTPServer != dir {
		t.Errorf("${_PWD} = %q, want %q", g.SMTPServer, dir)
	}
	if v := m.Instances[0].VRID; v < 7 || v > 9 {
		t.Errorf("${_RANDOM 7 9} = %d, want 7..9", v)
	}
}
