package keepalived

import (
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vipd/vipd/config"
)

// Routes and rules are read as keepalived 2.2.7 reads them
// (vrrp/vrrp_iproute.c alloc_route, vrrp/vrrp_iprule.c alloc_rule), one
// word at a time. What makes keepalived drop the entry is an error here
// (keepalived -t fails on it too); what keepalived complains about but
// keeps is a warning that says so.

// rtprotKeepalived is RTPROT_KEEPALIVED, the protocol keepalived gives
// every tracked route and rule (and vipd every route).
const rtprotKeepalived = 18

// ipLine walks the words of one route, rule or address line.
type ipLine struct {
	p      *parser
	l      *node
	kw     string // the block: virtual_routes, static_rules, ...
	w      []string
	i      int
	failed bool
	fam    int // 0 (not known yet), 4 or 6
}

func (p *parser) newIPLine(kw string, l *node) *ipLine {
	return &ipLine{p: p, l: l, kw: kw, w: texts(l.words)}
}

// errorf reports why keepalived drops the line; the walk stops.
func (x *ipLine) errorf(format string, args ...any) {
	if !x.failed {
		x.p.errorf(x.l, "%s %s: "+format, append([]any{x.kw, x.l.line()}, args...)...)
	}
	x.failed = true
}

func (x *ipLine) warnf(format string, args ...any) {
	x.p.warnf(x.l, "%s %s: "+format, append([]any{x.kw, x.l.line()}, args...)...)
}

// notImpl warns about an option vipd accepts and does not apply.
func (x *ipLine) notImpl(opt string) {
	x.warnf("option %s is not implemented by vipd", opt)
}

// value steps to the word after opt; keepalived -t fails on a missing one.
func (x *ipLine) value(opt string) (string, bool) {
	if x.i+1 >= len(x.w) {
		x.errorf("%s without value", opt)
		return "", false
	}
	x.i++
	return x.w[x.i], true
}

// lockValue is value for the metrics that take an optional "lock" first.
func (x *ipLine) lockValue(opt string) (string, bool) {
	v, ok := x.value(opt)
	if ok && v == "lock" {
		return x.value(opt + " lock")
	}
	return v, ok
}

// family sets the line's address family, failing on a mix.
func (x *ipLine) family(f int, what string) bool {
	switch {
	case f == 0 || x.fam == f:
	case x.fam == 0:
		x.fam = f
	default:
		x.errorf("%s: cannot mix IPv4 and IPv6", what)
		return false
	}
	return true
}

// inetWord handles "inet"/"inet6". keepalived steps over the word that
// follows as well (both parsers advance twice), so that word is ignored.
func (x *ipLine) inetWord(what string) bool {
	opt := x.w[x.i]
	f := 4
	if opt == "inet6" {
		f = 6
	}
	if x.fam != 0 && x.fam != f {
		x.errorf("%s given for an IPv%d %s", opt, x.fam, what)
		return false
	}
	x.fam = f
	if x.i+1 < len(x.w) {
		x.i++
		x.warnf("%s: keepalived skips the word after it (%s); so does vipd", opt, x.w[x.i])
	}
	return true
}

func addrFamily(s string) int {
	if strings.Contains(s, ":") {
		return 6
	}
	return 4
}

// kaAddr is parse_ipaddress without a mask: the family is IPv6 when the
// word has a ':'.
func kaAddr(s string) (netip.Addr, int, bool) {
	a, err := parseAddr(s)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	return a, addrFamily(s), true
}

// kaPrefix is parse_route: default, any and all are the default route of
// the line's family (fam 0), default6 the IPv6 one; otherwise ADDR[/LEN].
// bad is why the word is no prefix ("" when it is an address with a bad
// length: keepalived then uses the full length and keepalived -t fails).
func kaPrefix(s string) (pfx netip.Prefix, fam int, isDefault bool, bad string) {
	switch s {
	case "default", "any", "all":
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), 0, true, ""
	case "default6":
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), 6, true, ""
	}
	addr, length, hasLen := strings.Cut(s, "/")
	a, f, ok := kaAddr(addr)
	if !ok {
		return netip.Prefix{}, 0, false, "not an IP address"
	}
	bits := a.BitLen()
	if hasLen {
		n, why := kaUnsigned(length, 10, 0, uint64(bits))
		if why != "" {
			return netip.Prefix{}, f, false, "prefix length " + length + ": " + why
		}
		bits = int(n)
	}
	return netip.PrefixFrom(a, bits), f, false, ""
}

// realmsOK is get_realms: REALM or FROM/TO, numbers or rt_realms names.
// trackGroupOpt reads a track_group option of a static route or rule into
// *group, as keepalived does; false ends the line.
func (p *parser) trackGroupOpt(x *ipLine, opt string, static bool, what, block string, group *string) bool {
	if !static {
		x.errorf("unknown %s track_group (only %s take it)", what, block)
		return false
	}
	v, ok := x.value(opt)
	if !ok {
		return false
	}
	if *group != "" {
		x.warnf("track_group %s: a second track_group; keepalived ignores it and the rest of the line (keepalived -t reports it)", v)
		x.i = len(x.w)
		return false
	}
	if p.trackGroups[v] {
		*group = v
	} else {
		x.warnf("track_group %s not found (keepalived ignores it; keepalived -t reports it)", v)
	}
	return true
}

func (p *parser) realmsOK(s string) bool {
	a, b, two := strings.Cut(s, "/")
	if _, ok := p.rtLookup(rtRealms, a); !ok {
		return false
	}
	if two {
		_, ok := p.rtLookup(rtRealms, b)
		return ok
	}
	return true
}

// rttOK is get_time_rtt: a number of the metric's unit, or with s/sec/secs
// (up to 3 decimals) or ms/msec/msecs; no exponent.
func rttOK(s string) bool {
	s = strings.TrimLeft(s, " \t")
	num, decimals := s, 0
	if i := strings.IndexAny(s, "sS"); i >= 0 {
		switch strings.ToLower(s[i:]) {
		case "s", "sec", "secs":
		default:
			return false
		}
		num, decimals = s[:i], 3
		if strings.HasSuffix(num, "m") || strings.HasSuffix(num, "M") {
			num, decimals = num[:len(num)-1], 0
		}
	}
	whole, frac, dot := strings.Cut(num, ".")
	if whole == "" && !dot || strings.ContainsAny(num, "eE") || len(frac) > decimals {
		return false
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// routeTypeName is find_rttables_rtntype: a type name or 0..255.
func routeTypeName(s string) (uint8, bool) {
	names := map[string]uint8{
		"local": 2, "nat": 10, "broadcast": 3, "brd": 3, "anycast": 4, "multicast": 5,
		"prohibit": 8, "unreachable": 7, "blackhole": 6, "xresolve": 11, "unicast": 1, "throw": 9,
	}
	if t, ok := names[s]; ok {
		return t, true
	}
	if strings.HasPrefix(s, "-") {
		return 0, false
	}
	v, n, ok := cStrtoul(s, 0)
	if !ok || n != len(s) || v > 255 {
		return 0, false
	}
	return uint8(v), true
}

// vipdRouteTypes are the route types vipd installs, by number.
var vipdRouteTypes = map[uint8]string{1: "", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw"}

// scopeString names a route scope for the model: its iproute2 name when it
// has one, else the number.
func scopeString(id uint32) string {
	switch id {
	case 0:
		return "global"
	case 200:
		return "site"
	case 253:
		return "link"
	case 254:
		return "host"
	case 255:
		return "nowhere"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// u32Opt checks the value of a route metric read by get_u32/get_u8.
// viaValue reads the gateway of a via (or gw) option, with keepalived's
// optional family word first ("via inet6 fe80::1"); what names the option
// in messages. false ends the line.
func (x *ipLine) viaValue(opt, what string) (string, bool) {
	v, ok := x.value(opt)
	if ok && (v == "inet" || v == "inet6") {
		f := 4
		if v == "inet6" {
			f = 6
		}
		if !x.family(f, what+" "+v) {
			return "", false
		}
		v, ok = x.value(opt + " " + v)
	}
	return v, ok
}

func (x *ipLine) uintOpt(opt, v string, hi uint64) bool {
	if _, why := kaUnsigned(v, 10, 0, hi); why != "" {
		x.errorf("%s %s: %s", opt, v, why)
		return false
	}
	return true
}

// route reads one line of virtual_routes, or of static_routes (static),
// where track_group is allowed and any route type is (vipd does not
// install static routes):
// [src X] [TYPE|to] DST [via [inet|inet6] Y] [dev IF] [metric N] [table T] [scope S] ...
func (p *parser) route(kw string, l *node, static bool) (config.Route, bool) {
	r := config.Route{Pos: l.pos, RawSource: l.line()}
	x := p.newIPLine(kw, l)
	noTrack, dstDefault := false, false
	trackGroup := ""
	proto := -1
loop:
	for ; x.i < len(x.w) && !x.failed; x.i++ {
		opt := x.w[x.i]
		switch opt {
		case "inet", "inet6":
			x.inetWord("route")
		case "src":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			a, f, ok := kaAddr(v)
			if !ok {
				x.errorf("src %s: not an IP address", v)
				break loop
			}
			if x.family(f, "src "+v) {
				r.Src = a
			}
		case "as":
			v, ok := x.value(opt)
			if ok && v == "to" {
				v, ok = x.value("as to")
			}
			if ok {
				x.warnf("as %s: keepalived ignores it (\"as to\" for MPLS only; keepalived -t reports it)", v)
			}
		case "via", "gw":
			if opt == "gw" {
				x.warnf("gw is deprecated, read as via (keepalived -t reports it); write via")
			}
			v, ok := x.viaValue(opt, opt)
			if !ok {
				break loop
			}
			a, f, ok := kaAddr(v)
			if !ok {
				x.errorf("%s %s: not an IP address", opt, v)
				break loop
			}
			if x.family(f, opt+" "+v) {
				r.Via = a
			}
		case "from":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			_, f, _, bad := kaPrefix(v)
			switch {
			case bad != "":
				x.errorf("from %s: %s", v, bad)
			case f != 6:
				x.errorf("from %s: a source prefix is for IPv6 routes only", v)
			case x.family(f, "from "+v):
				x.notImpl(opt)
			}
		case "tos", "dsfield":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			if _, ok := p.rtLookup(rtDSField, v); !ok {
				x.errorf("%s %s: not a TOS value (0..255 or a name in rt_dsfield)", opt, v)
				break loop
			}
			x.notImpl(opt)
		case "table":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			t, ok := p.rtLookup(rtTables, v)
			if !ok {
				x.errorf("table %s: no such routing table (a number, or a name in %s)", v, p.rtFile(rtTables))
				break loop
			}
			r.Table = int(t)
		case "protocol":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			pr, ok := p.rtLookup(rtProtos, v)
			if !ok {
				x.errorf("protocol %s: no such protocol (0..255 or a name in rt_protos)", v)
				break loop
			}
			proto = int(pr)
		case "scope":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			s, ok := p.rtLookup(rtScopes, v)
			if !ok {
				x.errorf("scope %s: must be global, site, link, host, nowhere, a name in rt_scopes or 0..255", v)
				break loop
			}
			r.Scope = scopeString(s)
		case "metric", "priority", "preference":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			n, why := kaUnsigned(v, 10, 0, math.MaxUint32)
			switch why {
			case "":
				r.Metric = int(n)
			case "invalid number", "negative number":
				x.errorf("%s %s: not a number", opt, v)
			default:
				x.errorf("%s %s: %s", opt, v, why)
			}
		case "dev", "oif":
			if v, ok := x.value(opt); ok {
				r.Dev = v
			}
		case "onlink":
			r.Onlink = true
		case "encap":
			x.warnf("encap is not implemented by vipd, rest of line ignored")
			x.i = len(x.w)
		case "expires", "pref":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			if x.fam == 4 {
				x.errorf("%s is only valid for IPv6", opt)
				break loop
			}
			x.fam = 6
			if opt == "pref" && (v == "low" || v == "medium" || v == "high") {
				x.notImpl(opt)
				continue
			}
			hi := uint64(math.MaxUint32)
			if opt == "pref" {
				hi = 255
			}
			if x.uintOpt(opt, v, hi) {
				x.notImpl(opt)
			}
		case "mtu", "advmss", "reordering", "cwnd", "ssthresh":
			if v, ok := x.lockValue(opt); ok && x.uintOpt(opt, v, math.MaxUint32) {
				x.notImpl(opt)
			}
		case "window", "initcwnd", "initrwnd":
			if v, ok := x.value(opt); ok && x.uintOpt(opt, v, math.MaxUint32) {
				x.notImpl(opt)
			}
		case "hoplimit":
			if v, ok := x.value(opt); ok && x.uintOpt(opt, v, 255) {
				x.notImpl(opt)
			}
		case "quickack", "fastopen_no_cookie":
			if v, ok := x.value(opt); ok && x.uintOpt(opt, v, 1) {
				x.notImpl(opt)
			}
		case "rtt", "rttvar", "rto_min":
			v, ok := x.lockValue(opt)
			if !ok {
				break loop
			}
			if !rttOK(v) {
				x.errorf("%s %s: not a time (N, Ns or Nms)", opt, v)
				break loop
			}
			x.notImpl(opt)
		case "realms":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			if !p.realmsOK(v) {
				x.errorf("realms %s: not a realm (0..255 or a name in rt_realms, or FROM/TO)", v)
				break loop
			}
			if x.fam == 6 {
				x.errorf("realms are only valid for IPv4")
				break loop
			}
			x.fam = 4
			x.notImpl(opt)
		case "features":
			if v, ok := x.value(opt); ok {
				if v != "ecn" {
					x.warnf("features %s: keepalived knows only ecn and ignores it (keepalived -t reports it)", v)
				} else {
					x.notImpl(opt)
				}
			}
		case "congctl":
			if _, ok := x.lockValue(opt); ok {
				x.notImpl(opt)
			}
		case "ttl-propagate":
			if v, ok := x.value(opt); ok {
				if v != "enabled" && v != "disabled" {
					x.warnf("ttl-propagate %s: must be enabled or disabled; keepalived ignores it (keepalived -t reports it)", v)
				} else {
					x.notImpl(opt)
				}
			}
		case "add", "prepend", "append":
			x.notImpl(opt)
		case "or":
			// The deprecated spelling of a second gateway.
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			if _, _, ok := kaAddr(v); !ok {
				x.errorf("or %s: not an IP address", v)
				break loop
			}
			x.warnf("or %s: a second gateway is not implemented by vipd (keepalived -t reports \"or\" as deprecated; use nexthop); ignored", v)
		case "nexthop":
			if x.nexthops() {
				x.warnf("nexthop is not implemented by vipd, rest of line ignored")
			}
			break loop
		case "no_track":
			noTrack = true
		case "vrf":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			if !static {
				x.errorf("vrf %s: vipd does not implement vrf (which puts the route in the VRF's table); use table", v)
				break loop
			}
			x.warnf("vrf %s: keepalived needs the VRF to exist on this host; vipd does not check it", v)
		case "track_group":
			if !p.trackGroupOpt(x, opt, static, "route keyword", "static_routes", &trackGroup) {
				break loop
			}
		default:
			// [to] DST or TYPE DST (keepalived does not take "to TYPE DST").
			if opt == "to" {
				x.i++
			} else if t, ok := routeTypeName(opt); ok {
				vt, known := vipdRouteTypes[t]
				if !known && !static {
					x.errorf("route type %s: not implemented by vipd (it installs unicast, blackhole, unreachable, prohibit and throw routes)", opt)
					break loop
				}
				r.Type = vt
				x.i++
			}
			if x.i >= len(x.w) {
				x.errorf("%s without destination", opt)
				break loop
			}
			d := x.w[x.i]
			dst, f, isDefault, bad := kaPrefix(d)
			switch {
			case bad == "not an IP address":
				x.errorf("unknown route keyword %s", d)
			case bad != "":
				x.errorf("%s: %s", d, bad)
			case x.family(f, d):
				r.Dst, dstDefault = dst, isDefault
			}
		}
	}
	if x.failed {
		return r, false
	}
	if !r.Dst.IsValid() {
		x.errorf("no destination")
		return r, false
	}
	if dstDefault && x.fam == 6 {
		r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	if !noTrack {
		if proto >= 0 && proto != rtprotKeepalived {
			x.warnf("protocol: keepalived sets protocol keepalived (18) on a tracked route instead (keepalived -t reports it); so does vipd")
		}
		if r.Dev == "" {
			x.warnf("no dev: keepalived -t fails on it (\"cannot track route ... with no interface specified\") and keepalived runs the route untracked; vipd accepts it (add dev, or no_track)")
		}
	} else if proto >= 0 && proto != rtprotKeepalived {
		x.warnf("protocol: not implemented by vipd, which gives its routes protocol keepalived (18)")
	}
	if trackGroup != "" && r.Dev == "" {
		x.warnf("track_group %s without dev: keepalived ignores it (keepalived -t reports it)", trackGroup)
	}
	return r, true
}

// nexthops checks "nexthop [via [inet|inet6] A] [dev IF] [weight N] [onlink]
// [realms R] ..." to the end of the line (parse_nexthops). It reports
// whether they were well formed.
func (x *ipLine) nexthops() bool {
	for x.i < len(x.w) && x.w[x.i] == "nexthop" && !x.failed {
		x.i++
	hop:
		for ; x.i < len(x.w) && !x.failed; x.i++ {
			opt := x.w[x.i]
			switch opt {
			case "via":
				v, ok := x.viaValue(opt, "nexthop via")
				if !ok {
					return false
				}
				_, f, ok := kaAddr(v)
				if !ok {
					x.errorf("nexthop via %s: not an IP address", v)
					return false
				}
				x.family(f, "nexthop via "+v)
			case "dev":
				x.value(opt)
			case "weight":
				v, ok := x.value(opt)
				if !ok {
					return false
				}
				if n, why := kaUnsigned(v, 10, 0, 256); why != "" || n == 0 {
					x.errorf("nexthop weight %s: must be 1..256", v)
				}
			case "onlink":
			case "encap":
				x.i = len(x.w)
				return true
			case "realms":
				v, ok := x.value(opt)
				if !ok {
					return false
				}
				if !x.p.realmsOK(v) {
					x.errorf("nexthop realms %s: not a realm", v)
				} else {
					x.family(4, "nexthop realms")
				}
			case "as":
				x.errorf("nexthop as: not supported by keepalived")
			default:
				break hop
			}
		}
	}
	if !x.failed && x.i < len(x.w) {
		x.errorf("%s after the nexthops: not a nexthop option", x.w[x.i])
	}
	return !x.failed
}

// Rule actions (FR_ACT_*), for the checks after the line is read.
const (
	ruleActNone = iota
	ruleActTable
	ruleActGoto
	ruleActNop
	ruleActBlackhole
	ruleActUnreachable
	ruleActProhibit
)

// rule checks one line of virtual_rules or static_rules. vipd does not
// install rules; the line is read only to refuse what keepalived refuses.
func (p *parser) rule(kw string, l *node, static bool) {
	x := p.newIPLine(kw, l)
	action := ruleActNone
	var pref, gotoTarget uint64
	hasPref, tableOption, noTrack := false, false, false
	trackGroup, iif := "", false
	proto := -1
	setAction := func(a int) bool {
		if action != ruleActNone {
			x.errorf("more than one of table, goto, nop, blackhole, prohibit, unreachable and l3mdev")
			return false
		}
		action = a
		return true
	}
	prefix := func(opt string) bool {
		v, ok := x.value(opt)
		if !ok {
			return false
		}
		_, f, _, bad := kaPrefix(v)
		if bad != "" {
			x.errorf("%s %s: %s", opt, v, bad)
			return false
		}
		return x.family(f, opt+" "+v)
	}
loop:
	for ; x.i < len(x.w) && !x.failed; x.i++ {
		opt := x.w[x.i]
		switch opt {
		case "inet", "inet6":
			x.inetWord("rule")
		case "from", "to":
			if !prefix(opt) {
				break loop
			}
		case "table", "lookup":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			t, ok := p.rtLookup(rtTables, v)
			switch {
			case !ok:
				x.errorf("%s %s: no such routing table (a number, or a name in %s)", opt, v, p.rtFile(rtTables))
			case t == 0:
				x.errorf("%s %s: table 0 is not valid", opt, v)
			default:
				setAction(ruleActTable)
			}
		case "not":
		case "preference", "order", "priority":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			n, why := kaUnsigned(v, 0, 0, math.MaxUint32)
			if why != "" {
				x.errorf("%s %s: %s", opt, v, why)
				break loop
			}
			pref, hasPref = n, true
		case "tos", "dsfield":
			v, ok := x.value(opt)
			if ok {
				if _, ok := p.rtLookup(rtDSField, v); !ok {
					x.errorf("%s %s: not a TOS value (0..255 or a name in rt_dsfield)", opt, v)
				}
			}
		case "fwmark":
			v, ok := x.value(opt)
			if ok && !fwmarkOK(v) {
				x.errorf("fwmark %s: must be MARK or MARK/MASK, numbers up to 0xffffffff", v)
			}
		case "realms":
			v, ok := x.value(opt)
			if !ok {
				break loop
			}
			if !p.realmsOK(v) {
				x.errorf("realms %s: not a realm (0..255 or a name in rt_realms, or FROM/TO)", v)
				break loop
			}
			tableOption = true
			if x.fam == 6 {
				x.errorf("realms are only valid for IPv4")
				break loop
			}
			x.fam = 4
		case "suppress_prefixlength", "sup_pl":
			v, ok := x.value(opt)
			if ok {
				if _, why := kaUnsigned(v, 10, 0, math.MaxInt32); why != "" {
					x.errorf("%s %s: %s", opt, v, why)
				}
				tableOption = true
			}
		case "suppress_ifgroup", "sup_group":
			v, ok := x.value(opt)
			if ok {
				if _, ok := p.rtLookup(rtGroups, v); !ok {
					x.errorf("%s %s: not an interface group (a number, or a name in group)", opt, v)
				}
				tableOption = true
			}
		case "dev", "iif":
			if _, ok := x.value(opt); ok {
				iif = true
			}
		case "oif":
			x.value(opt)
		case "tunnel-id":
			if v, ok := x.value(opt); ok {
				if _, why := kaUnsigned(v, 10, 0, math.MaxUint64); why != "" {
					x.errorf("tunnel-id %s: %s", v, why)
				}
			}
		case "uidrange":
			if v, ok := x.value(opt); ok && !uidrangeOK(v) {
				x.errorf("uidrange %s: must be FIRST-LAST", v)
			}
		case "l3mdev":
			setAction(ruleActTable)
		case "protocol":
			if v, ok := x.value(opt); ok {
				if n, why := kaUnsigned(v, 10, 0, 255); why != "" {
					x.warnf("protocol %s: %s; keepalived ignores it (keepalived -t reports it)", v, why)
				} else {
					proto = int(n)
				}
			}
		case "ipproto":
			if v, ok := x.value(opt); ok && !ipprotoOK(v) {
				x.warnf("ipproto %s: not an IP protocol; keepalived ignores it (keepalived -t reports it)", v)
			}
		case "sport", "dport":
			// keepalived 2.2.7 reads only FIRST-LAST; a single port is
			// reported and ignored (the rule then matches any port).
			if v, ok := x.value(opt); ok && !portRangeOK(v) {
				x.warnf("%s %s: keepalived 2.2.7 takes only a range FIRST-LAST and ignores this (keepalived -t reports it), so the rule matches any port; write %s-%s", opt, v, v, v)
			}
		case "no_track":
			noTrack = true
		case "track_group":
			if !p.trackGroupOpt(x, opt, static, "rule option", "static_rules", &trackGroup) {
				break loop
			}
		default:
			word := opt
			if opt == "type" {
				v, ok := x.value(opt)
				if !ok {
					break loop
				}
				word = v
			}
			switch word {
			case "goto":
				v, ok := x.value(word)
				if !ok {
					break loop
				}
				n, why := kaUnsigned(v, 10, 0, math.MaxUint32)
				if why != "" {
					x.errorf("goto %s: %s", v, why)
					break loop
				}
				gotoTarget = n
				setAction(ruleActGoto)
			case "nop":
				setAction(ruleActNop)
			case "blackhole":
				setAction(ruleActBlackhole)
			case "unreachable":
				setAction(ruleActUnreachable)
			case "prohibit":
				setAction(ruleActProhibit)
			default:
				t, ok := routeTypeName(word)
				switch {
				case !ok:
					x.errorf("unknown rule option %s", word)
				case t == 6:
					setAction(ruleActBlackhole)
				case t == 7:
					setAction(ruleActUnreachable)
				case t == 8:
					setAction(ruleActProhibit)
				default:
					x.errorf("%s: not a rule action (table, goto, nop, blackhole, unreachable or prohibit)", word)
				}
			}
		}
	}
	if x.failed {
		return
	}
	switch {
	case action == ruleActGoto && !hasPref:
		x.errorf("goto %d without a preference", gotoTarget)
	case action == ruleActGoto && pref >= gotoTarget:
		x.errorf("preference %d must be below the goto target %d", pref, gotoTarget)
	case action == ruleActNone:
		x.errorf("no action (table, goto, nop, blackhole, unreachable, prohibit or l3mdev)")
	case tableOption && action != ruleActTable:
		x.errorf("realms and suppress_* need a table action")
	}
	if x.failed {
		return
	}
	if !noTrack && proto >= 0 && proto != rtprotKeepalived {
		x.warnf("protocol: keepalived sets protocol keepalived (18) on a tracked rule instead (keepalived -t reports it)")
	}
	if trackGroup != "" && !iif {
		x.warnf("track_group %s without dev/iif: keepalived ignores it (keepalived -t reports it)", trackGroup)
	}
	if !hasPref {
		x.warnf("no preference: keepalived gives it one, counting down from 16384 (keepalived -t reports it); set priority")
	}
}

func fwmarkOK(s string) bool {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, "-") {
		return false
	}
	v, n, _ := cStrtoul(s, 0)
	if v > math.MaxUint32 {
		return false
	}
	rest := s[n:]
	if mask, ok := strings.CutPrefix(rest, "/"); ok {
		if mask == "" || mask[0] == '-' || strings.IndexByte(" \t\n\v\f\r", mask[0]) >= 0 {
			// strtoul reads no digit from an empty mask: 0, nothing left.
			return mask == ""
		}
		m, k, _ := cStrtoul(mask, 0)
		return m <= math.MaxUint32 && k == len(mask)
	}
	return rest == ""
}

// uidrangeOK is sscanf("%u-%u") == 2.
func uidrangeOK(s string) bool {
	_, n, ok := cStrtoul(s, 10)
	if !ok || n >= len(s) || s[n] != '-' {
		return false
	}
	_, _, ok = cStrtoul(s[n+1:], 10)
	return ok
}

// portRangeOK is keepalived 2.2.7's sport/dport check: sscanf("%hu-%hu") == 2.
func portRangeOK(s string) bool { return uidrangeOK(s) }

// ipprotoOK is iproute2's inet_proto_a2n: a number 0..255 or a protocol name.
func ipprotoOK(s string) bool {
	if v, n, ok := cStrtoul(s, 0); ok && n == len(s) {
		return v <= 255
	}
	switch strings.ToLower(s) {
	case "ip", "hopopt", "icmp", "igmp", "ggp", "ipencap", "st", "tcp", "egp", "igp", "pup", "udp",
		"hmp", "xns-idp", "rdp", "iso-tp4", "dccp", "xtp", "ddp", "idpr-cmtp", "ipv6", "ipv6-route",
		"ipv6-frag", "idrp", "rsvp", "gre", "esp", "ah", "skip", "ipv6-icmp", "icmpv6", "ipv6-nonxt",
		"ipv6-opts", "rspf", "vmtp", "eigrp", "ospf", "ax.25", "ipip", "etherip", "encap", "pim",
		"ipcomp", "vrrp", "l2tp", "isis", "sctp", "fc", "mobility-header", "udplite", "mpls-in-ip",
		"manet", "hip", "shim6", "wesp", "rohc", "ethernet", "mptcp":
		return true
	}
	return false
}

// rtFile names an iproute2 table file for messages.
func (p *parser) rtFile(t *rtTable) string {
	dir := p.opts.IPRoute2Dir
	if dir == "" {
		dir = DefaultIPRoute2Dir
	}
	return dir + "/" + t.file
}

// staticBlock reads static_ipaddress, static_routes or static_rules: vipd
// does not install them (a warning at the block says so), and checks each
// line as keepalived does.
func (p *parser) staticBlock(n *node) {
	p.notImplemented(n)
	for _, l := range p.valueBlock(n) {
		switch n.kw() {
		case "static_ipaddress":
			p.vip(n.kw(), l)
		case "static_routes":
			p.route(n.kw(), l, true)
		case "static_rules":
			p.rule(n.kw(), l, true)
		}
	}
}

// trackGroup records a track_group block, which vipd does not implement.
func (p *parser) trackGroup(n *node) {
	p.notImplemented(n)
	if a := n.args(); len(a) > 0 {
		if p.trackGroups == nil {
			p.trackGroups = map[string]bool{}
		}
		p.trackGroups[a[0].text] = true
	}
}
