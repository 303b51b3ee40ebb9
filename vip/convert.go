package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vipd/vipd/config"
)

// Scopes as the kernel numbers them (rtnetlink.h RT_SCOPE_*).
const (
	scopeUniverse uint8 = 0
	scopeSite     uint8 = 200
	scopeLink     uint8 = 253
	scopeHost     uint8 = 254
	scopeNowhere  uint8 = 255
)

// maxLabelLen is the longest address label the kernel keeps (IFNAMSIZ-1);
// keepalived refuses longer ones.
const maxLabelLen = 15

// RTPROT_KEEPALIVED: keepalived marks its routes with this protocol number,
// and so does vipd, so that "ip route show proto keepalived" lists them.
const protoKeepalived = 18

// parseScope reads a scope as keepalived and iproute2 accept it: a name from
// rt_scopes or a number 0..255. The empty string is global.
func parseScope(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "", "global", "universe":
		return scopeUniverse, nil
	case "site":
		return scopeSite, nil
	case "link":
		return scopeLink, nil
	case "host":
		return scopeHost, nil
	case "nowhere":
		return scopeNowhere, nil
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("scope %q: want global, site, link, host, nowhere or 0..255", s)
	}
	return uint8(n), nil
}

// vipPrefix returns the VIP's address with its prefix length, defaulting to
// the full length (/32, /128) when the VIP was written without one. The
// address keeps its host bits (10.0.0.5/24 stays 10.0.0.5/24).
func vipPrefix(p netip.Prefix) (netip.Prefix, error) {
	addr := p.Addr()
	if !addr.IsValid() {
		return netip.Prefix{}, errors.New("no address")
	}
	bits := p.Bits()
	if addr.Is4In6() {
		addr = addr.Unmap()
		if bits >= 96 {
			bits -= 96
		} else {
			bits = -1
		}
	}
	if bits < 0 {
		bits = addr.BitLen()
	}
	return netip.PrefixFrom(addr, bits), nil
}

// addrSpec is a VIP as it goes to the kernel, after keepalived's rules have
// been applied. It is what both planes work from.
type addrSpec struct {
	Dev    string
	Prefix netip.Prefix
	Brd    netip.Addr // IPv4 only; invalid: no IFA_BROADCAST (keepalived sends none unless "brd" is given)
	Scope  uint8      // IPv4 only; IPv6 VIPs are always global (keepalived ignores scope for IPv6)
	Label  string     // IPv4 only; keepalived ignores labels on IPv6
	// NoDAD: IPv6 VIPs skip duplicate address detection, so they are usable
	// at once and never end up "dadfailed" during a split brain.
	NoDAD bool
	// Deprecated: keepalived adds IPv6 /128 VIPs with preferred_lft 0 so that
	// they are not picked as source addresses (its default when
	// preferred_lft is not configured).
	Deprecated bool
}

// String renders the spec like "ip addr" arguments, for errors and logs.
func (s addrSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s dev %s", s.Prefix, s.Dev)
	if s.Brd.IsValid() {
		fmt.Fprintf(&b, " brd %s", s.Brd)
	}
	if s.Label != "" {
		fmt.Fprintf(&b, " label %s", s.Label)
	}
	return b.String()
}

// vipSpec applies keepalived's rules to one VIP: the device is VIP.Dev or
// ifname; the prefix length defaults to the full length; broadcast, scope and
// label apply to IPv4 only (keepalived ignores scope and label on IPv6 and
// refuses a broadcast there).
func vipSpec(ifname string, v config.VIP) (addrSpec, error) {
	var s addrSpec
	p, err := vipPrefix(v.Prefix)
	if err != nil {
		return s, fmt.Errorf("virtual_ipaddress %s: %w", v.Prefix, err)
	}
	s.Prefix = p
	s.Dev = v.Dev
	if s.Dev == "" {
		s.Dev = ifname
	}
	if s.Dev == "" {
		return s, fmt.Errorf("virtual_ipaddress %s: no interface (neither dev nor the instance's interface)", p)
	}
	if p.Addr().Is6() {
		if v.Brd.IsValid() {
			return s, fmt.Errorf("virtual_ipaddress %s: brd %s: IPv6 has no broadcast address", p, v.Brd)
		}
		s.NoDAD = true
		s.Deprecated = p.Bits() == 128
		return s, nil
	}
	if v.Brd.IsValid() {
		brd := v.Brd.Unmap()
		if !brd.Is4() {
			return s, fmt.Errorf("virtual_ipaddress %s: brd %s is not an IPv4 address", p, v.Brd)
		}
		s.Brd = brd
	}
	if s.Scope, err = parseScope(v.Scope); err != nil {
		return s, fmt.Errorf("virtual_ipaddress %s: %w", p, err)
	}
	if len(v.Label) > maxLabelLen {
		return s, fmt.Errorf("virtual_ipaddress %s: label %q is longer than %d characters", p, v.Label, maxLabelLen)
	}
	s.Label = v.Label
	return s, nil
}

// Route types (rtnetlink.h RTN_*).
const (
	rtnUnicast     = 1
	rtnBlackhole   = 6
	rtnUnreachable = 7
	rtnProhibit    = 8
	rtnThrow       = 9
)

// routeSpec is a virtual route as it goes to the kernel.
type routeSpec struct {
	Dev    string // "" for no RTA_OIF
	Dst    netip.Prefix
	Via    netip.Addr
	Src    netip.Addr // RTA_PREFSRC ("src" in ip route / virtual_routes)
	Metric int
	Table  int
	Scope  uint8
	// ScopeSet: an explicit scope was configured. Without it a delete matches
	// any scope (RT_SCOPE_NOWHERE), as keepalived does.
	ScopeSet bool
	Type     int
	Onlink   bool
}

// String renders the spec like "ip route" arguments, for errors and logs.
func (s routeSpec) String() string {
	var b strings.Builder
	switch s.Type {
	case rtnBlackhole:
		b.WriteString("blackhole ")
	case rtnUnreachable:
		b.WriteString("unreachable ")
	case rtnProhibit:
		b.WriteString("prohibit ")
	case rtnThrow:
		b.WriteString("throw ")
	}
	b.WriteString(s.Dst.String())
	if s.Via.IsValid() {
		fmt.Fprintf(&b, " via %s", s.Via)
	}
	if s.Dev != "" {
		fmt.Fprintf(&b, " dev %s", s.Dev)
	}
	if s.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", s.Src)
	}
	if s.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", s.Metric)
	}
	if s.Table != tableMain {
		fmt.Fprintf(&b, " table %d", s.Table)
	}
	return b.String()
}

const tableMain = 254

// routeSpecOf applies keepalived's rules to one virtual route: table main
// unless given, scope global unless given, type unicast unless given.
//
// The device is Route.Dev; a unicast route that names neither a device nor a
// gateway goes out of defaultDev (keepalived would send it without a device
// and the kernel would refuse it). A route with a gateway and no device is
// left to the kernel to resolve, as keepalived does, so that a gateway
// reachable through another interface still works. blackhole, unreachable,
// prohibit and throw routes take no device and no gateway (the kernel refuses
// them).
func routeSpecOf(defaultDev string, r config.Route) (routeSpec, error) {
	var s routeSpec
	if !r.Dst.IsValid() {
		return s, fmt.Errorf("virtual_routes %q: no destination", r.RawSource)
	}
	dst := r.Dst
	if dst.Addr().Is4In6() {
		p, err := vipPrefix(dst)
		if err != nil {
			return s, fmt.Errorf("virtual_routes %s: %w", r.Dst, err)
		}
		dst = p
	}
	s.Dst = dst.Masked()
	name := s.Dst.String()
	is4 := s.Dst.Addr().Is4()
	sameFamily := func(a netip.Addr) bool { return a.Unmap().Is4() == is4 }

	switch strings.ToLower(r.Type) {
	case "", "unicast":
		s.Type = rtnUnicast
	case "blackhole":
		s.Type = rtnBlackhole
	case "unreachable":
		s.Type = rtnUnreachable
	case "prohibit":
		s.Type = rtnProhibit
	case "throw":
		s.Type = rtnThrow
	default:
		return s, fmt.Errorf("virtual_routes %s: type %q: want unicast, blackhole, unreachable, prohibit or throw", name, r.Type)
	}
	if r.Via.IsValid() {
		if !sameFamily(r.Via) {
			return s, fmt.Errorf("virtual_routes %s: via %s: gateway of another address family", name, r.Via)
		}
		s.Via = r.Via
		if is4 {
			s.Via = r.Via.Unmap()
		}
	}
	if r.Src.IsValid() {
		if !sameFamily(r.Src) {
			return s, fmt.Errorf("virtual_routes %s: src %s: source of another address family", name, r.Src)
		}
		s.Src = r.Src
		if is4 {
			s.Src = r.Src.Unmap()
		}
	}
	s.Dev = r.Dev
	if s.Type != rtnUnicast {
		if s.Dev != "" || s.Via.IsValid() {
			return s, fmt.Errorf("virtual_routes %s: a %s route takes no dev and no via", name, r.Type)
		}
	} else if s.Dev == "" && !s.Via.IsValid() {
		s.Dev = defaultDev
		if s.Dev == "" {
			return s, fmt.Errorf("virtual_routes %s: no dev, no via and no default interface", name)
		}
	}
	if r.Metric < 0 || int64(r.Metric) > 0xFFFFFFFF {
		return s, fmt.Errorf("virtual_routes %s: metric %d out of range", name, r.Metric)
	}
	s.Metric = r.Metric
	switch {
	case r.Table == 0:
		s.Table = tableMain
	case r.Table < 0 || int64(r.Table) > 0xFFFFFFFF:
		return s, fmt.Errorf("virtual_routes %s: table %d out of range", name, r.Table)
	default:
		s.Table = r.Table
	}
	if r.Scope != "" {
		sc, err := parseScope(r.Scope)
		if err != nil {
			return s, fmt.Errorf("virtual_routes %s: %w", name, err)
		}
		s.Scope, s.ScopeSet = sc, true
	}
	s.Onlink = r.Onlink
	return s, nil
}
