package loader

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
)

// loadIPRouteSnippet is loadSnippet with the iproute2 name tables of
// testdata/iproute2 (the host's rt_tables plus "100 vips" and
// "0x65 hexname") instead of /etc/iproute2.
func loadIPRouteSnippet(t *testing.T, src string) (*config.Model, []string) {
	t.Helper()
	read := func(string) ([]byte, error) { return []byte(src), nil }
	m, ds := Load("k.conf", Options{Keepalived: keepalived.Options{ReadFile: read, ConfigIDs: []string{"node1"}, IPRoute2Dir: "testdata/iproute2"}})
	var got []string
	for _, d := range ds {
		got = append(got, d.String())
	}
	return m, got
}

// TestRoutesAndRulesAgreeWithKeepalived: virtual_routes, virtual_rules,
// static_routes, static_rules and static_ipaddress lines run through
// keepalived 2.2.7 -t -f (an instance on eth0, which exists on the host
// where it was run). keepalived -t fails (exit 5) on every message it
// prints; vipd refuses a line keepalived drops, and warns about one
// keepalived keeps (with the option ignored or reset). Each comment gives
// keepalived's exit code and messages for the lines of the case.
func TestRoutesAndRulesAgreeWithKeepalived(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  []string
		check func(t *testing.T, m *config.Model)
	}{
		{
			// keepalived -t: exit 5:
			//   5: Cannot mix IPv4 and IPv6 addresses for route
			//   6: Cannot mix IPv4 and IPv6 addresses for route (10.1.0.0/16)
			//   7: invalid route via address nowhere
			//   8: Invalid metric 0x10 specified for route
			//   9: Routing table foo not found for route
			//   10: Scope universe not found or invalid for route
			//   11: Protocol bogus not found or invalid for route
			//   12: unknown route keyword type
			//   13: unknown route keyword unicast
			//   14: Route must have a destination
			//   15: route from address only supported with IPv6 (10.0.0.0/8)
			//   16: TOS value bogus is invalid
			//   17: realms are only valid for IPv4
			//   18: expires is only valid for IPv6
			//   19: number '300' outside range [0, 255]
			//   19: Invalid hoplimit 300 specified for route
			//   20: Invalid rtt bogus for route
			//   21: Invalid quickack value 2 specified for route
			//   22: Invalid weight 0 specified for route
			//   22: Warning - cannot track route 10.1.0.0/16 with no interface specified, not tracking
			//   23: Route has trailing nonsense after nexthops - bogus
			//   23: Warning - cannot track route 10.1.0.0/16 with no interface specified, not tracking
			//   24: unknown route keyword track_group
			//   25: Route must have a destination
			//   26: number '33' outside range [0, 32]
			//   26: Invalid address prefix len 33 for address 10.1.0.0/33 - using 32
			//   27: invalid route src address 10.0.0.1/24
			//   28: VRF foo not found for route
			// vipd also refuses 10.1.0.0/33 (keepalived uses /32).
			name: "virtual_routes lines keepalived drops are errors at their line",
			src:  vi("    virtual_routes {\n        10.1.0.0/16 via 2001:db8::1 dev eth0\n        src 2001:db8::1 10.1.0.0/16 dev eth0\n        10.1.0.0/16 via nowhere dev eth0\n        10.1.0.0/16 dev eth0 metric 0x10\n        10.1.0.0/16 dev eth0 table foo\n        10.1.0.0/16 dev eth0 scope universe\n        10.1.0.0/16 dev eth0 protocol bogus\n        type blackhole 10.1.0.0/16 no_track\n        to unicast 10.1.0.0/16 dev eth0\n        via 10.0.0.1 dev eth0\n        from 10.0.0.0/8 10.1.0.0/16 dev eth0\n        10.1.0.0/16 dev eth0 tos bogus\n        2001:db8:1::/64 dev eth0 realms 1\n        10.1.0.0/16 dev eth0 expires 10\n        10.1.0.0/16 dev eth0 hoplimit 300\n        10.1.0.0/16 dev eth0 rtt bogus\n        10.1.0.0/16 dev eth0 quickack 2\n        10.1.0.0/16 nexthop via 10.0.0.1 dev eth0 weight 0\n        10.1.0.0/16 nexthop via 10.0.0.1 dev eth0 bogus\n        10.1.0.0/16 dev eth0 track_group G\n        inet6 default dev eth0\n        10.1.0.0/33 dev eth0\n        10.1.0.0/16 src 10.0.0.1/24 dev eth0\n        10.1.0.0/16 dev eth0 vrf foo\n    }\n"),
			want: []string{
				"k.conf:5: virtual_routes 10.1.0.0/16 via 2001:db8::1 dev eth0: via 2001:db8::1: cannot mix IPv4 and IPv6",
				"k.conf:6: virtual_routes src 2001:db8::1 10.1.0.0/16 dev eth0: 10.1.0.0/16: cannot mix IPv4 and IPv6",
				"k.conf:7: virtual_routes 10.1.0.0/16 via nowhere dev eth0: via nowhere: not an IP address",
				"k.conf:8: virtual_routes 10.1.0.0/16 dev eth0 metric 0x10: metric 0x10: not a number",
				"k.conf:9: virtual_routes 10.1.0.0/16 dev eth0 table foo: table foo: no such routing table (a number, or a name in testdata/iproute2/rt_tables)",
				"k.conf:10: virtual_routes 10.1.0.0/16 dev eth0 scope universe: scope universe: must be global, site, link, host, nowhere, a name in rt_scopes or 0..255",
				"k.conf:11: virtual_routes 10.1.0.0/16 dev eth0 protocol bogus: protocol bogus: no such protocol (0..255 or a name in rt_protos)",
				"k.conf:12: virtual_routes type blackhole 10.1.0.0/16 no_track: unknown route keyword type",
				"k.conf:13: virtual_routes to unicast 10.1.0.0/16 dev eth0: unknown route keyword unicast",
				"k.conf:14: virtual_routes via 10.0.0.1 dev eth0: no destination",
				"k.conf:15: virtual_routes from 10.0.0.0/8 10.1.0.0/16 dev eth0: from 10.0.0.0/8: a source prefix is for IPv6 routes only",
				"k.conf:16: virtual_routes 10.1.0.0/16 dev eth0 tos bogus: tos bogus: not a TOS value (0..255 or a name in rt_dsfield)",
				"k.conf:17: virtual_routes 2001:db8:1::/64 dev eth0 realms 1: realms are only valid for IPv4",
				"k.conf:18: virtual_routes 10.1.0.0/16 dev eth0 expires 10: expires is only valid for IPv6",
				"k.conf:19: virtual_routes 10.1.0.0/16 dev eth0 hoplimit 300: hoplimit 300: number outside range [0, 255]",
				"k.conf:20: virtual_routes 10.1.0.0/16 dev eth0 rtt bogus: rtt bogus: not a time (N, Ns or Nms)",
				"k.conf:21: virtual_routes 10.1.0.0/16 dev eth0 quickack 2: quickack 2: number outside range [0, 1]",
				"k.conf:22: virtual_routes 10.1.0.0/16 nexthop via 10.0.0.1 dev eth0 weight 0: nexthop weight 0: must be 1..256",
				"k.conf:23: virtual_routes 10.1.0.0/16 nexthop via 10.0.0.1 dev eth0 bogus: bogus after the nexthops: not a nexthop option",
				"k.conf:24: virtual_routes 10.1.0.0/16 dev eth0 track_group G: unknown route keyword track_group (only static_routes take it)",
				"k.conf:25: warning: virtual_routes inet6 default dev eth0: inet6: keepalived skips the word after it (default); so does vipd",
				"k.conf:25: virtual_routes inet6 default dev eth0: no destination",
				"k.conf:26: virtual_routes 10.1.0.0/33 dev eth0: 10.1.0.0/33: prefix length 33: number outside range [0, 32]",
				"k.conf:27: virtual_routes 10.1.0.0/16 src 10.0.0.1/24 dev eth0: src 10.0.0.1/24: not an IP address",
				"k.conf:28: virtual_routes 10.1.0.0/16 dev eth0 vrf foo: vrf foo: vipd does not implement vrf (which puts the route in the VRF's table); use table",
			},
		},
		{
			// keepalived -t: exit 2:
			//   5: *** Configuration line starting `10.1.0.0/16` is missing a parameter after keyword `metric` at word position 3
			name: "a route option without its value",
			src:  vi("    virtual_routes {\n        10.1.0.0/16 metric\n    }\n"),
			want: []string{
				"k.conf:5: virtual_routes 10.1.0.0/16 metric: metric without value",
			},
		},
		{
			// keepalived -t: exit 0, nothing logged.
			// table 4294967296 wraps to 0 (the main table) as keepalived's strtoul does.
			name: "virtual_routes keepalived accepts: numbers in any C base, types, IPv6 default",
			src:  vi("    virtual_routes {\n        10.1.0.0/16 via 10.0.0.254 dev eth0 metric 4294967295 table 0x10 scope 0x10\n        to 10.2.0.0/16 dev eth0 tos 0x10 realms 1/2 mtu lock 1400 rtt 1s congctl lock cubic\n        unreachable 10.3.0.0/16 no_track\n        7 10.4.0.0/16 no_track\n        10.5.0.0/16 via 10.0.0.254 no_track\n        default via 2001:db8::1 dev eth0\n        from 2001:db8::/64 2001:db8:1::/64 dev eth0\n        10.6.0.0/16 dev eth0 table 4294967296\n        10.7.0.0/16 dev eth0 protocol static no_track\n    }\n"),
			want: []string{
				"k.conf:6: warning: virtual_routes to 10.2.0.0/16 dev eth0 tos 0x10 realms 1/2 mtu lock 1400 rtt 1s congctl lock cubic: option tos is not implemented by vipd",
				"k.conf:6: warning: virtual_routes to 10.2.0.0/16 dev eth0 tos 0x10 realms 1/2 mtu lock 1400 rtt 1s congctl lock cubic: option realms is not implemented by vipd",
				"k.conf:6: warning: virtual_routes to 10.2.0.0/16 dev eth0 tos 0x10 realms 1/2 mtu lock 1400 rtt 1s congctl lock cubic: option mtu is not implemented by vipd",
				"k.conf:6: warning: virtual_routes to 10.2.0.0/16 dev eth0 tos 0x10 realms 1/2 mtu lock 1400 rtt 1s congctl lock cubic: option rtt is not implemented by vipd",
				"k.conf:6: warning: virtual_routes to 10.2.0.0/16 dev eth0 tos 0x10 realms 1/2 mtu lock 1400 rtt 1s congctl lock cubic: option congctl is not implemented by vipd",
				"k.conf:11: warning: virtual_routes from 2001:db8::/64 2001:db8:1::/64 dev eth0: option from is not implemented by vipd",
				"k.conf:13: warning: virtual_routes 10.7.0.0/16 dev eth0 protocol static no_track: protocol: not implemented by vipd, which gives its routes protocol keepalived (18)",
			},
			check: func(t *testing.T, m *config.Model) {
				r := m.Instances[0].Routes
				if len(r) != 9 {
					t.Fatalf("routes %+v", r)
				}
				if r[0].Metric != 4294967295 || r[0].Table != 16 || r[0].Scope != "16" || r[0].Via.String() != "10.0.0.254" {
					t.Errorf("route 0 %+v", r[0])
				}
				if r[2].Type != "unreachable" || r[3].Type != "unreachable" || r[3].Dst.String() != "10.4.0.0/16" {
					t.Errorf("routes 2, 3 %+v %+v", r[2], r[3])
				}
				if r[5].Dst.String() != "::/0" || r[5].Via.String() != "2001:db8::1" {
					t.Errorf("IPv6 default %+v", r[5])
				}
				if r[7].Table != 0 {
					t.Errorf("table 4294967296 = %d, want 0", r[7].Table)
				}
			},
		},
		{
			// keepalived -t: exit 5:
			//   5: Warning - cannot track route 10.1.0.0/16 with no interface specified, not tracking
			//   6: "gw" for routes is deprecated. Please use "via"
			//   7: Route cannot be tracked if protocol is not RTPROT_KEEPALIVED(18), resetting protocol
			//   8: Warning - cannot track route 10.4.0.0/16 with no interface specified, not tracking
			//   9: feature x not supported
			//   10: ttl-propagate value x not recognised
			//   11: "as to" for MPLS only - ignoring
			// keepalived runs these routes as written (or without the ignored option); vipd warns.
			name: "virtual_routes keepalived keeps but complains about are warnings",
			src:  vi("    virtual_routes {\n        10.1.0.0/16 via 10.0.0.254\n        10.2.0.0/16 gw 10.0.0.254 dev eth0\n        10.3.0.0/16 dev eth0 protocol static\n        blackhole 10.4.0.0/16\n        10.5.0.0/16 dev eth0 features x\n        10.6.0.0/16 dev eth0 ttl-propagate x\n        10.7.0.0/16 dev eth0 as to 10.9.9.9\n    }\n"),
			want: []string{
				`k.conf:5: warning: virtual_routes 10.1.0.0/16 via 10.0.0.254: no dev: keepalived -t fails on it ("cannot track route ... with no interface specified") and keepalived runs the route untracked; vipd accepts it (add dev, or no_track)`,
				"k.conf:6: warning: virtual_routes 10.2.0.0/16 gw 10.0.0.254 dev eth0: gw is deprecated, read as via (keepalived -t reports it); write via",
				"k.conf:7: warning: virtual_routes 10.3.0.0/16 dev eth0 protocol static: protocol: keepalived sets protocol keepalived (18) on a tracked route instead (keepalived -t reports it); so does vipd",
				`k.conf:8: warning: virtual_routes blackhole 10.4.0.0/16: no dev: keepalived -t fails on it ("cannot track route ... with no interface specified") and keepalived runs the route untracked; vipd accepts it (add dev, or no_track)`,
				"k.conf:9: warning: virtual_routes 10.5.0.0/16 dev eth0 features x: features x: keepalived knows only ecn and ignores it (keepalived -t reports it)",
				"k.conf:10: warning: virtual_routes 10.6.0.0/16 dev eth0 ttl-propagate x: ttl-propagate x: must be enabled or disabled; keepalived ignores it (keepalived -t reports it)",
				`k.conf:11: warning: virtual_routes 10.7.0.0/16 dev eth0 as to 10.9.9.9: as 10.9.9.9: keepalived ignores it ("as to" for MPLS only; keepalived -t reports it)`,
			},
		},
		{
			// keepalived -t: exit 0, nothing logged.
			// vipd installs unicast, blackhole, unreachable, prohibit and throw routes only; it refuses the others.
			name: "a route type vipd does not install is refused",
			src:  vi("    virtual_routes {\n        local 10.1.0.0/16 dev eth0\n    }\n"),
			want: []string{
				"k.conf:5: virtual_routes local 10.1.0.0/16 dev eth0: route type local: not implemented by vipd (it installs unicast, blackhole, unreachable, prohibit and throw routes)",
			},
		},
		{
			// keepalived -t: exit 0, nothing logged.
			// The kernel refuses them when adding ("Gateway, device and multipath can not be
			// specified for this route type"), so vipd refuses them up front.
			name: "blackhole/unreachable routes with dev or via are refused",
			src:  vi("    virtual_routes {\n        unreachable 10.1.0.0/16 dev eth0\n        blackhole 10.2.0.0/16 via 10.0.0.254 dev eth0\n    }\n"),
			want: []string{
				"k.conf:5: virtual_routes unreachable 10.1.0.0/16 dev eth0: a route of type unreachable takes no dev and no via (the kernel refuses it)",
				"k.conf:6: virtual_routes blackhole 10.2.0.0/16 via 10.0.0.254 dev eth0: a route of type blackhole takes no dev and no via (the kernel refuses it)",
			},
		},
		{
			// keepalived -t: exit 5:
			//   5: Invalid rule from address bogus
			//   6: rule specification has mixed IPv4 and IPv6
			//   7: Routing table foo not found for rule
			//   8: Table 0 is not valid
			//   9: Invalid rule preference priority specified
			//   10: Unknown rule option pref
			//   11: Invalid rule fwmark bogus specified
			//   12: Invalid rule fwmark -1 specified
			//   13: Cannot specify more than one of table/nop/goto/blackhole/prohibit/unreachable for rule
			//   14: Invalid uidrange uidrange specified
			//   15: Invalid rule - goto target 200 specified without preference
			//   16: Invalid rule - preference 100 >= goto target 50
			//   17: suppressor/realm specified for non table action - skipping
			//   18: Invalid suppress_prefixlength sup_pl specified
			//   19: Invalid rule action nat
			//   20: Invalid rule action throw
			//   21: No action specified for rule - ignoring
			//   22: Cannot specify more than one of table/nop/goto/blackhole/prohibit/unreachable/l3mdev for rule
			//   23: Unknown rule option 2001:db8::/32
			//   24: Unknown rule option track_group
			//   25: number '4294967296' outside unsigned integer range
			//   25: Invalid rule preference priority specified
			//   26: TOS value bogus is invalid
			name: "virtual_rules lines keepalived drops are errors at their line",
			src:  vi("    virtual_rules {\n        from bogus table 100 priority 100\n        from 10.0.0.0/8 to 2001:db8::/32 table 100 priority 1\n        from 10.0.0.0/8 table foo priority 1\n        from 10.0.0.0/8 table 0 priority 1\n        from 10.0.0.0/8 table 100 priority x\n        from 10.0.0.0/8 table 100 pref 100\n        fwmark bogus table 100 priority 1\n        fwmark -1 table 100 priority 1\n        l3mdev table 100 priority 1\n        uidrange 1000 table 100 priority 1\n        goto 200\n        goto 50 priority 100\n        realms 1 blackhole priority 1\n        sup_pl x table main priority 1\n        nat 1.2.3.4 priority 1\n        throw priority 1\n        from 10.0.0.0/8 priority 100\n        table 100 blackhole priority 1\n        inet6 from 2001:db8::/32 table 100 priority 1\n        track_group G table 100 priority 1\n        from 10.0.0.1 table 100 priority 4294967296\n        tos bogus table 100 priority 1\n    }\n"),
			want: []string{
				"k.conf:4: warning: keyword virtual_rules is not implemented by vipd",
				"k.conf:5: virtual_rules from bogus table 100 priority 100: from bogus: not an IP address",
				"k.conf:6: virtual_rules from 10.0.0.0/8 to 2001:db8::/32 table 100 priority 1: to 2001:db8::/32: cannot mix IPv4 and IPv6",
				"k.conf:7: virtual_rules from 10.0.0.0/8 table foo priority 1: table foo: no such routing table (a number, or a name in testdata/iproute2/rt_tables)",
				"k.conf:8: virtual_rules from 10.0.0.0/8 table 0 priority 1: table 0: table 0 is not valid",
				"k.conf:9: virtual_rules from 10.0.0.0/8 table 100 priority x: priority x: invalid number",
				"k.conf:10: virtual_rules from 10.0.0.0/8 table 100 pref 100: unknown rule option pref",
				"k.conf:11: virtual_rules fwmark bogus table 100 priority 1: fwmark bogus: must be MARK or MARK/MASK, numbers up to 0xffffffff",
				"k.conf:12: virtual_rules fwmark -1 table 100 priority 1: fwmark -1: must be MARK or MARK/MASK, numbers up to 0xffffffff",
				"k.conf:13: virtual_rules l3mdev table 100 priority 1: more than one of table, goto, nop, blackhole, prohibit, unreachable and l3mdev",
				"k.conf:14: virtual_rules uidrange 1000 table 100 priority 1: uidrange 1000: must be FIRST-LAST",
				"k.conf:15: virtual_rules goto 200: goto 200 without a preference",
				"k.conf:16: virtual_rules goto 50 priority 100: preference 100 must be below the goto target 50",
				"k.conf:17: virtual_rules realms 1 blackhole priority 1: realms and suppress_* need a table action",
				"k.conf:18: virtual_rules sup_pl x table main priority 1: sup_pl x: invalid number",
				"k.conf:19: virtual_rules nat 1.2.3.4 priority 1: nat: not a rule action (table, goto, nop, blackhole, unreachable or prohibit)",
				"k.conf:20: virtual_rules throw priority 1: throw: not a rule action (table, goto, nop, blackhole, unreachable or prohibit)",
				"k.conf:21: virtual_rules from 10.0.0.0/8 priority 100: no action (table, goto, nop, blackhole, unreachable, prohibit or l3mdev)",
				"k.conf:22: virtual_rules table 100 blackhole priority 1: more than one of table, goto, nop, blackhole, prohibit, unreachable and l3mdev",
				"k.conf:23: warning: virtual_rules inet6 from 2001:db8::/32 table 100 priority 1: inet6: keepalived skips the word after it (from); so does vipd",
				"k.conf:23: virtual_rules inet6 from 2001:db8::/32 table 100 priority 1: unknown rule option 2001:db8::/32",
				"k.conf:24: virtual_rules track_group G table 100 priority 1: unknown rule option track_group (only static_rules take it)",
				"k.conf:25: virtual_rules from 10.0.0.1 table 100 priority 4294967296: priority 4294967296: number outside unsigned integer range",
				"k.conf:26: virtual_rules tos bogus table 100 priority 1: tos bogus: not a TOS value (0..255 or a name in rt_dsfield)",
			},
		},
		{
			// keepalived -t: exit 0, nothing logged.
			name: "virtual_rules keepalived accepts: only the not-implemented warning",
			src:  vi("    virtual_rules {\n        from 10.0.0.0/8 lookup main priority 1\n        from 10.0.0.0/8 table 100 priority 0x10\n        from 10.0.0.0/8 table 100 order 100\n        iif eth0 oif eth0 table 100 priority 1\n        fwmark 0x10/0xff table 100 priority 1\n        l3mdev priority 1\n        uidrange 1000-2000 table 100 priority 1\n        not from 10.0.0.0/8 table 100 priority 1 no_track\n        goto 200 priority 100\n        ipproto tcp table 100 priority 1\n        protocol 5 table 100 priority 1 no_track\n        tos 0x10 realms 1/2 table 100 priority 1\n        suppress_prefixlength 0 suppress_ifgroup 1 table main priority 1\n        blackhole priority 1\n        type unreachable priority 1\n        nop priority 1\n        tunnel-id 5 table 100 priority 1\n        from all to default table 100 priority 1\n    }\n"),
			want: []string{
				"k.conf:4: warning: keyword virtual_rules is not implemented by vipd",
			},
		},
		{
			// keepalived -t: exit 5:
			//   5: Rule has no preference specified - setting to 16384. This is probably not what you want.
			//   6: invalid sport range 80
			//   7: Invalid ipproto bogus
			//   8: Rule cannot be tracked if protocol is not RTPROT_KEEPALIVED(18), resetting protocol
			//   9: Invalid protocol bogus
			name: "virtual_rules keepalived keeps but complains about are warnings",
			src:  vi("    virtual_rules {\n        from 10.0.0.0/8 table 100\n        sport 80 table 100 priority 1\n        ipproto bogus table 100 priority 1\n        protocol 5 table 100 priority 1\n        protocol bogus table 100 priority 1 no_track\n    }\n"),
			want: []string{
				"k.conf:4: warning: keyword virtual_rules is not implemented by vipd",
				"k.conf:5: warning: virtual_rules from 10.0.0.0/8 table 100: no preference: keepalived gives it one, counting down from 16384 (keepalived -t reports it); set priority",
				"k.conf:6: warning: virtual_rules sport 80 table 100 priority 1: sport 80: keepalived 2.2.7 takes only a range FIRST-LAST and ignores this (keepalived -t reports it), so the rule matches any port; write 80-80",
				"k.conf:7: warning: virtual_rules ipproto bogus table 100 priority 1: ipproto bogus: not an IP protocol; keepalived ignores it (keepalived -t reports it)",
				"k.conf:8: warning: virtual_rules protocol 5 table 100 priority 1: protocol: keepalived sets protocol keepalived (18) on a tracked rule instead (keepalived -t reports it)",
				"k.conf:9: warning: virtual_rules protocol bogus table 100 priority 1 no_track: protocol bogus: invalid number; keepalived ignores it (keepalived -t reports it)",
			},
		},
		{
			// keepalived -t: exit 5:
			//   15: track_group H not found
			//   17: invalid route via address nowhere
			//   18: VRF foo not found for route
			name: "static_routes: track_group, any route type, bad via",
			src:  "track_group G {\n    group {\n        VI_1\n    }\n}\n" + vi("") + "static_routes {\n    10.1.0.0/16 dev eth0 track_group G\n    10.2.0.0/16 dev eth0 track_group H\n    local 10.3.0.0/16 dev eth0\n    10.4.0.0/16 via nowhere\n    10.5.0.0/16 dev eth0 vrf foo\n}\n",
			want: []string{
				"k.conf:1: warning: keyword track_group is not implemented by vipd",
				"k.conf:13: warning: keyword static_routes is not implemented by vipd",
				"k.conf:15: warning: static_routes 10.2.0.0/16 dev eth0 track_group H: track_group H not found (keepalived ignores it; keepalived -t reports it)",
				"k.conf:17: static_routes 10.4.0.0/16 via nowhere: via nowhere: not an IP address",
				"k.conf:18: warning: static_routes 10.5.0.0/16 dev eth0 vrf foo: vrf foo: keepalived needs the VRF to exist on this host; vipd does not check it",
			},
		},
		{
			// keepalived -t: exit 5:
			//   9: track_group H not found
			//   10: track_group H not found
			//   12: Routing table foo not found for rule
			name: "static_rules: track_group and tables",
			src:  "" + vi("") + "static_rules {\n    from 10.0.0.0/8 table 100 priority 1 iif eth0 track_group H\n    from 10.0.0.0/8 table 100 priority 2 track_group H\n    from 10.0.0.0/8 table 100 priority 3\n    from 10.0.0.0/8 table foo priority 4\n}\n",
			want: []string{
				"k.conf:8: warning: keyword static_rules is not implemented by vipd",
				"k.conf:9: warning: static_rules from 10.0.0.0/8 table 100 priority 1 iif eth0 track_group H: track_group H not found (keepalived ignores it; keepalived -t reports it)",
				"k.conf:10: warning: static_rules from 10.0.0.0/8 table 100 priority 2 track_group H: track_group H not found (keepalived ignores it; keepalived -t reports it)",
				"k.conf:12: static_rules from 10.0.0.0/8 table foo priority 4: table foo: no such routing table (a number, or a name in testdata/iproute2/rt_tables)",
			},
		},
		{
			// keepalived -t: exit 5:
			//   11: Cannot specify ipaddress device more than once for 10.9.0.2/24
			//   12: VRRP is trying to assign a broadcast brd to the IPv6 address 2001:db8::1/64 !!?? WTF... skipping VIP...
			//   13: Address label verylonglabelname123 is longer than maximum length 15 - removing address
			//   14: Unknown configuration entry 'use_vmac' for ip address - ignoring
			//   15: track_group H not found
			//   16: Cannot specify label for IPv6 addresses (2001:db8::5/64) - ignoring label
			//   17: Invalid scope 'bogus' specified for 10.9.0.6/24 - ignoring
			// vipd refuses use_vmac and scope bogus (keepalived ignores them), as for virtual_ipaddress.
			name: "static_ipaddress lines",
			src:  "" + vi("") + "static_ipaddress {\n    10.9.0.1/24\n    bogus dev eth0\n    10.9.0.2/24 dev eth0 dev eth0\n    2001:db8::1/64 dev eth0 brd 1.2.3.4\n    10.9.0.3/24 dev eth0 label verylonglabelname123\n    10.9.0.4/24 dev eth0 use_vmac\n    10.9.0.5/24 dev eth0 track_group H\n    2001:db8::5/64 dev eth0 label foo\n    10.9.0.6/24 dev eth0 scope bogus\n}\n",
			want: []string{
				"k.conf:8: warning: keyword static_ipaddress is not implemented by vipd",
				"k.conf:10: static_ipaddress bogus: not an IP address",
				"k.conf:11: static_ipaddress 10.9.0.2/24: dev given twice",
				"k.conf:12: static_ipaddress 2001:db8::1/64: brd on an IPv6 address",
				"k.conf:13: static_ipaddress 10.9.0.3/24: label verylonglabelname123: longer than 15 characters",
				"k.conf:14: static_ipaddress 10.9.0.4/24: unknown option use_vmac (not for static addresses)",
				"k.conf:15: warning: static_ipaddress 10.9.0.5/24: track_group H not found (keepalived ignores it; keepalived -t reports it)",
				"k.conf:16: warning: static_ipaddress 2001:db8::5/64: label is not settable on an IPv6 address; ignored (as keepalived does)",
				"k.conf:17: static_ipaddress 10.9.0.6/24: scope bogus: must be global, site, link, host or nowhere",
			},
		},
		{
			// keepalived -t: exit 0 with testdata/iproute2/rt_tables bind-mounted
			// over /etc/iproute2/rt_tables (unshare -m); exit 5 without it,
			// "Routing table vips not found for route" / "... for rule".
			name: "table names come from rt_tables",
			src: vi("    virtual_routes {\n        10.8.0.0/16 dev eth0 table vips\n        10.9.0.0/16 dev eth0 table hexname\n    }\n" +
				"    virtual_rules {\n        from 10.0.0.0/8 table vips priority 7\n    }\n"),
			want: []string{"k.conf:8: warning: keyword virtual_rules is not implemented by vipd"},
			check: func(t *testing.T, m *config.Model) {
				r := m.Instances[0].Routes
				if len(r) != 2 || r[0].Table != 100 || r[1].Table != 101 {
					t.Errorf("routes %+v, want tables 100 and 101", r)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, got := loadIPRouteSnippet(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}
