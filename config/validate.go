package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ValidateOptions are the host facts Validate may consult.
type ValidateOptions struct {
	// InterfaceExists reports whether a network interface exists on this
	// host. nil skips the check (the file may be meant for another host).
	InterfaceExists func(name string) bool
}

// Limits of VRRP fields and keepalived keywords.
const (
	maxAuthPass    = 8 // bytes of auth_pass on the wire (RFC 3768 5.3.10)
	maxTrackWeight = 253
	v3AdvertStep   = 10 * time.Millisecond
	v3AdvertMax    = 4095 * v3AdvertStep // 12-bit field of centiseconds
	v2AdvertMax    = 255 * time.Second   // 8-bit field of seconds
	maxPort        = 65535
	// maxRealServerWeight: check/check_parser.c weight_handler reads 0..65535.
	maxRealServerWeight = 65535
	maxVRRPAdverts      = 255 // "Count IPvX Addr" is 8 bits
	// maxDownTimerAdverts: vrrp_parser.c vrrp_down_timer_adverts_handler [1:100].
	maxDownTimerAdverts = 100
	maxTTL              = 255
	familyIPv4          = "IPv4"
	familyIPv6          = "IPv6"
	keepalivedAlike     = "(as keepalived does)"
)

// LB algorithms (IPVS schedulers), forwarding methods and protocols vipd knows.
var (
	knownLBAlgos    = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
	knownLBKinds    = []string{"NAT", "DR", "TUN"}
	knownProtocols  = []string{"TCP", "UDP", "SCTP"}
	knownCheckTypes = []string{CheckTCP, CheckHTTP, CheckSSL, CheckMisc, CheckDNS, CheckSMTP}
	knownDNSTypes   = []string{"A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"}
)

// Validate checks m, which Normalize has filled, and returns every problem it
// finds, each with the position of the object it concerns. Errors make the
// configuration unusable; warnings describe something vipd runs differently
// from what is written, or something that is probably a mistake.
//
// Where keepalived corrects a value and carries on (authentication on a
// VRRPv3 instance, "version 2" on an IPv6 instance, nopreempt with state
// MASTER), Validate makes the same correction in m and warns, so that the
// runtime runs what keepalived would run.
func Validate(m *Model, opts ValidateOptions) Diagnostics {
	var ds Diagnostics
	if m == nil {
		ds.Errorf(Pos{}, "empty configuration")
		return ds
	}
	v := validator{m: m, opts: opts, ds: &ds}
	v.global()
	scripts := v.scripts()
	trackFiles := v.trackFiles()
	instances := v.instances(scripts, trackFiles)
	v.vrids()
	v.syncGroups(scripts, trackFiles, instances)
	groups := v.virtualServerGroups()
	v.virtualServers(groups)
	return ds
}

type validator struct {
	m    *Model
	opts ValidateOptions
	ds   *Diagnostics
}

// posString renders a position for naming another object in a message.
func posString(p Pos) string {
	switch {
	case p.File != "":
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	case p.Line > 0:
		return fmt.Sprintf("line %d", p.Line)
	default:
		return "unknown position"
	}
}

// at returns where keyword kw (or the first of its aliases) of obj was
// written, else fallback (the object's position).
func (v *validator) at(obj any, fallback Pos, kws ...string) Pos {
	return v.m.Keywords.At(obj, fallback, kws...)
}

// or returns p unless it is zero, then fallback.
func or(p, fallback Pos) Pos {
	if p.IsZero() {
		return fallback
	}
	return p
}

func family(v6 bool) string {
	if v6 {
		return familyIPv6
	}
	return familyIPv4
}

func (v *validator) global() {
	g := &v.m.Global
	if g.VRRPVersion != 2 && g.VRRPVersion != 3 {
		v.ds.Errorf(v.at(g, g.Pos, "vrrp_version"), "vrrp_version %d: must be 2 or 3", g.VRRPVersion)
	}
	v.garp(g, g.Pos, "vrrp_garp", g.Garp)
	for _, m := range []struct {
		kw   string
		addr netip.Addr
		v6   bool
	}{{"vrrp_mcast_group4", g.McastGroup4, false}, {"vrrp_mcast_group6", g.McastGroup6, true}} {
		if m.addr.IsValid() && (m.addr.Is6() != m.v6 || !m.addr.IsMulticast()) {
			v.ds.Errorf(v.at(g, g.Pos, m.kw), "%s %s: must be an %s multicast address", m.kw, m.addr, family(m.v6))
		}
	}
	if g.DownTimerAdverts != 0 && (g.DownTimerAdverts < 1 || g.DownTimerAdverts > maxDownTimerAdverts) {
		v.ds.Errorf(v.at(g, g.Pos, "vrrp_down_timer_adverts"), "vrrp_down_timer_adverts %d: must be 1..100", g.DownTimerAdverts)
	}
	if g.StartupDelay < 0 {
		v.ds.Errorf(v.at(g, g.Pos, "vrrp_startup_delay"), "vrrp_startup_delay %s: must not be negative", g.StartupDelay)
	}
	if g.Strict {
		v.ds.Warnf(v.at(g, g.Pos, "vrrp_strict"), "vrrp_strict: %s", noAcceptWarning)
	}
}

func (v *validator) garp(obj any, p Pos, prefix string, g Garp) {
	for _, d := range []struct {
		name string
		val  Duration
	}{
		{"master_delay", g.MasterDelay}, {"master_refresh", g.MasterRefresh},
		{"lower_prio_delay", g.LowerPrioDelay}, {"interval", g.Interval}, {"gna_interval", g.GNAInterval},
	} {
		if d.val < 0 {
			v.ds.Errorf(v.at(obj, p, prefix+"_"+d.name), "%s_%s %s: must not be negative", prefix, d.name, d.val)
		}
	}
	for _, r := range []struct {
		name string
		val  int
	}{
		{"master_repeat", g.MasterRepeat}, {"master_refresh_repeat", g.MasterRefreshRepeat}, {"lower_prio_repeat", g.LowerPrioRepeat},
	} {
		if r.val < 0 {
			v.ds.Errorf(v.at(obj, p, prefix+"_"+r.name), "%s_%s %d: must not be negative", prefix, r.name, r.val)
		}
	}
}

// strict reports whether the instance runs in strict mode: its own
// strict_mode or the global vrrp_strict.
func (v *validator) strict(in *Instance) bool { return in.StrictMode || v.m.Global.Strict }

// noAcceptWarning: keepalived's no_accept (explicit, or implied by
// vrrp_strict / strict_mode) installs firewall rules that drop traffic to
// the VIPs; vipd adds the VIPs but no such rules.
const noAcceptWarning = "no_accept (strict mode): vipd does not install the firewall rules that drop traffic to the VIPs; they accept traffic as with accept"

// named records that an object called name (a `what`, e.g. "vrrp_script")
// is defined at pos; a missing name or a second definition is an error. It
// reports whether the name is new.
func (v *validator) named(seen map[string]Pos, what, name string, pos Pos) bool {
	first, dup := seen[name]
	switch {
	case name == "":
		v.ds.Errorf(pos, "%s: missing name", what)
		return false
	case dup:
		v.ds.Errorf(pos, "%s %s: defined twice (first at %s)", what, name, posString(first))
		return false
	}
	seen[name] = pos
	return true
}

// trackFiles checks the track_file blocks and returns them by name.
func (v *validator) trackFiles() map[string]*TrackFile {
	byName, seen := map[string]*TrackFile{}, map[string]Pos{}
	for i, tf := range v.m.TrackFiles {
		if tf == nil {
			v.ds.Errorf(Pos{}, "track_files[%d]: empty entry", i)
			continue
		}
		if v.named(seen, "track_file", tf.Name, tf.Pos) {
			byName[tf.Name] = tf
		}
		if strings.TrimSpace(tf.File) == "" {
			v.ds.Errorf(tf.Pos, "track_file %s: no file", tf.Name)
		}
	}
	return byName
}

func (v *validator) scripts() map[string]*Script {
	byName, seen := map[string]*Script{}, map[string]Pos{}
	for i, s := range v.m.Scripts {
		if s == nil {
			v.ds.Errorf(Pos{}, "scripts[%d]: empty entry", i)
			continue
		}
		if v.named(seen, "vrrp_script", s.Name, s.Pos) {
			byName[s.Name] = s
		}
		if strings.TrimSpace(s.Script) == "" {
			v.ds.Errorf(s.Pos, "vrrp_script %s: no script to run", s.Name)
		}
		if s.Interval <= 0 {
			v.ds.Errorf(v.at(s, s.Pos, "interval"), "interval %s: must be positive", s.Interval)
		}
		if s.Timeout <= 0 {
			v.ds.Errorf(v.at(s, s.Pos, "timeout"), "timeout %s: must be positive", s.Timeout)
		}
		if s.Weight < -maxTrackWeight || s.Weight > maxTrackWeight {
			v.ds.Errorf(v.at(s, s.Pos, "weight"), "weight %d: must be -253..253", s.Weight)
		}
		if s.Rise < 1 {
			v.ds.Errorf(v.at(s, s.Pos, "rise"), "rise %d: must be at least 1", s.Rise)
		}
		if s.Fall < 1 {
			v.ds.Errorf(v.at(s, s.Pos, "fall"), "fall %d: must be at least 1", s.Fall)
		}
	}
	return byName
}

func (v *validator) instances(scripts map[string]*Script, trackFiles map[string]*TrackFile) map[string]*Instance {
	byName, seen := map[string]*Instance{}, map[string]Pos{}
	for i, in := range v.m.Instances {
		if in == nil {
			v.ds.Errorf(Pos{}, "instances[%d]: empty entry", i)
			continue
		}
		if v.named(seen, "vrrp_instance", in.Name, in.Pos) {
			byName[in.Name] = in
		}
		v.instance(in, scripts, trackFiles)
	}
	return byName
}

func (v *validator) instance(in *Instance, scripts map[string]*Script, trackFiles map[string]*TrackFile) {
	p := in.Pos
	switch {
	case in.VRID == VRIDInvalid:
		// The parser reported it at its line.
	case in.VRID == 0:
		v.ds.Errorf(p, "virtual_router_id: missing (every vrrp_instance needs one, 1..255)")
	case in.VRID < 1 || in.VRID > 255:
		v.ds.Errorf(p, "virtual_router_id %d: must be 1..255", in.VRID)
	}
	if in.Priority < 1 || in.Priority > 255 {
		v.ds.Errorf(v.at(in, p, "priority"), "priority %d: must be 1..255", in.Priority)
	}
	if (in.NoAccept || in.StrictMode) && in.Priority != 255 {
		v.ds.Warnf(v.at(in, p, "no_accept", "strict_mode"), "%s", noAcceptWarning)
	}
	if in.State != StateMaster && in.State != StateBackup {
		v.ds.Errorf(v.at(in, p, "state"), "state %q: must be MASTER or BACKUP", in.State)
	}
	// vrrp/vrrp.c vrrp_complete_instance: in strict mode only the address
	// owner (priority 255) may start as MASTER, and it always does.
	if v.strict(in) && in.Priority >= 1 && in.Priority <= 255 {
		want := StateBackup
		if in.Priority == OwnerPriority {
			want = StateMaster
		}
		if in.State != want && (in.State == StateMaster || in.State == StateBackup) {
			v.ds.Warnf(v.at(in, p, "state", "priority"), "state %s: in strict mode the initial state must match being the address owner (priority 255); using %s %s", in.State, want, keepalivedAlike)
			in.State = want
		}
	}

	v6 := in.IsIPv6()
	switch {
	case in.Version == 2 && v6:
		// vrrp/vrrp_parser.c vrrp_version_handler ignores "version 2" on an
		// IPv6 instance; vrrp.c forces 3 in strict mode.
		v.ds.Warnf(v.at(in, p, "version"), "version 2: VRRPv2 does not run over IPv6; using version 3 %s", keepalivedAlike)
		in.Version = 3
	case in.Version != 2 && in.Version != 3:
		v.ds.Errorf(v.at(in, p, "version"), "version %d: must be 2 or 3", in.Version)
	}
	v.advertInt(in)
	v.auth(in)
	v.addresses(in, v6)

	if in.Interface == "" {
		if !(in.UnicastSrcIP.IsValid() && len(in.UnicastPeers) > 0) {
			v.ds.Errorf(p, "interface: missing (only a unicast instance with unicast_src_ip may omit it)")
		}
	} else if v.opts.InterfaceExists != nil && !v.opts.InterfaceExists(in.Interface) {
		v.ds.Warnf(v.at(in, p, "interface"), "interface %s: does not exist on this host", in.Interface)
	}

	if in.NoPreempt && in.Priority == OwnerPriority {
		v.ds.Warnf(v.at(in, p, "nopreempt"), "nopreempt: incompatible with priority 255; ignored %s", keepalivedAlike)
		in.NoPreempt = false
	}
	if in.NoPreempt && in.State == StateMaster {
		v.ds.Warnf(v.at(in, p, "nopreempt"), "nopreempt: does not work with state MASTER; ignored %s", keepalivedAlike)
		in.NoPreempt = false
	}
	if in.PreemptDelay < 0 {
		v.ds.Errorf(v.at(in, p, "preempt_delay"), "preempt_delay %s: must not be negative", in.PreemptDelay)
	}
	// vrrp/vrrp.c vrrp_complete_instance clears preempt_delay where it
	// cannot apply.
	if in.PreemptDelay > 0 {
		switch {
		case in.State == StateMaster:
			v.ds.Warnf(v.at(in, p, "preempt_delay"), "preempt_delay: does not work with state MASTER; ignored %s", keepalivedAlike)
			in.PreemptDelay = 0
		case v.strict(in):
			v.ds.Warnf(v.at(in, p, "preempt_delay"), "preempt_delay: incompatible with strict mode; ignored %s", keepalivedAlike)
			in.PreemptDelay = 0
		case in.NoPreempt:
			v.ds.Warnf(v.at(in, p, "preempt_delay"), "preempt_delay: incompatible with nopreempt; ignored %s", keepalivedAlike)
			in.PreemptDelay = 0
		}
	}
	v.garp(in, p, "garp", in.Garp)
	v.wire(in, v6)

	// A track_script naming no vrrp_script is an error (issue 2 lists it;
	// keepalived only logs "not found, ignoring..." and runs without the
	// check, which hides a typo in a health check). A track_file naming
	// nothing is ignored with a warning, as keepalived does.
	in.TrackScripts = v.knownTracks(p, "track_script", in.TrackScripts, func(t Track) bool {
		_, ok := scripts[t.Name]
		return ok
	}, "vrrp_script", Error)
	in.TrackFiles = v.knownTracks(p, "track_file", in.TrackFiles, func(t Track) bool {
		_, ok := trackFiles[t.Name]
		return ok
	}, "track_file", Warning)
	v.tracks(p, "track_interface", in.TrackInterfaces, func(t Track) {
		if v.opts.InterfaceExists != nil && !v.opts.InterfaceExists(t.Name) {
			v.ds.Warnf(or(t.Pos, p), "track_interface %s: does not exist on this host", t.Name)
		}
	})
	// vrrp/vrrp.c vrrp_complete_instance: "Ignoring track_interface %s
	// since own interface" - the instance's interface is tracked anyway
	// (down means FAULT), and a weight given for it does not apply.
	if in.Interface != "" {
		in.TrackInterfaces = slices.DeleteFunc(in.TrackInterfaces, func(t Track) bool {
			if t.Name != in.Interface {
				return false
			}
			v.ds.Warnf(or(t.Pos, p), "track_interface %s: the instance's own interface is always tracked; ignored %s", t.Name, keepalivedAlike)
			return true
		})
	}
}

// wire checks the instance keywords that change its adverts or its
// takeover (mcast_dst_ip, unicast_ttl, down_timer_adverts,
// higher_prio_send_advert) as vrrp/vrrp_parser.c and vrrp.c
// vrrp_complete_instance do.
func (v *validator) wire(in *Instance, v6 bool) {
	p := in.Pos
	if a := in.McastGroup; a.IsValid() {
		switch {
		case a.Unmap().Is6() != v6:
			v.ds.Errorf(v.at(in, p, "mcast_dst_ip"), "mcast_dst_ip %s: address family must match the instance's (%s)", a, family(v6))
		case !a.IsMulticast():
			v.ds.Errorf(v.at(in, p, "mcast_dst_ip"), "mcast_dst_ip %s: not a multicast address", a)
		case v6 && !a.IsLinkLocalMulticast():
			v.ds.Errorf(v.at(in, p, "mcast_dst_ip"), "mcast_dst_ip %s: not a link-local multicast address (ff02::/16)", a)
		}
	}
	switch {
	case in.UnicastTTL < 0 || in.UnicastTTL > maxTTL:
		v.ds.Errorf(v.at(in, p, "unicast_ttl"), "unicast_ttl %d: must be 1..255", in.UnicastTTL)
	case in.UnicastTTL != 0 && len(in.UnicastPeers) == 0:
		// vrrp.c vrrp_complete_instance: "Cannot use unicast_ttl without
		// unicast peers - resetting", a configuration error.
		v.ds.Errorf(v.at(in, p, "unicast_ttl"), "unicast_ttl: only for a unicast instance (no unicast_peer given)")
	}
	if in.DownTimerAdverts < 1 || in.DownTimerAdverts > maxDownTimerAdverts {
		v.ds.Errorf(v.at(in, p, "down_timer_adverts"), "down_timer_adverts %d: must be 1..100", in.DownTimerAdverts)
	}
	if v.strict(in) {
		// vrrp.c vrrp_complete_instance: configuration errors for keepalived -t.
		if in.DownTimerAdverts != DefaultDownTimerAdverts {
			v.ds.Errorf(v.at(in, v.at(&v.m.Global, p, "vrrp_down_timer_adverts"), "down_timer_adverts"), "down_timer_adverts %d: incompatible with strict mode (which needs %d)", in.DownTimerAdverts, DefaultDownTimerAdverts)
		}
		if in.HigherPrioSendAdvert {
			v.ds.Errorf(v.at(in, p, "higher_prio_send_advert"), "higher_prio_send_advert: strict mode requires it to be off")
		}
		// Normalize already sets it for keepalived.conf and YAML alike
		// (an explicit "lower_prio_no_advert false" in strict mode is
		// refused by the parser); a hand-built model gets it here.
		in.LowerPrioNoAdvert = true
	}
}

// knownTracks returns ts without the entries known rejects, warning for
// each: keepalived ignores a tracked object that is not defined.
func (v *validator) knownTracks(p Pos, kw string, ts []Track, known func(Track) bool, what string, sev Severity) []Track {
	v.tracks(p, kw, ts, nil)
	return slices.DeleteFunc(ts, func(t Track) bool {
		if t.Name == "" || known(t) {
			return false
		}
		if sev == Error {
			v.ds.Errorf(or(t.Pos, p), "%s %s: no %s of that name", kw, t.Name, what)
		} else {
			v.ds.Warnf(or(t.Pos, p), "%s %s: no %s of that name; ignored %s", kw, t.Name, what, keepalivedAlike)
		}
		return true
	})
}

// advertInt mirrors vrrp/vrrp.c vrrp_complete_instance: an interval the
// version cannot carry is rounded to the nearest one it can (at least one
// step), with a warning; one out of range is an error.
func (v *validator) advertInt(in *Instance) {
	a := in.AdvertInt.D()
	step, lo, hi, what := time.Second, time.Second, v2AdvertMax, "VRRPv2 needs whole seconds 1..255"
	if in.Version == 3 {
		step, lo, hi, what = v3AdvertStep, v3AdvertStep, v3AdvertMax, "VRRPv3 needs 0.01..40.95 seconds in steps of 0.01"
	} else if in.Version != 2 {
		return
	}
	// Outside what the version can carry is an error (issue 2: "advert_int
	// out of range for the VRRP version"); a value inside the range that
	// the version cannot carry exactly (1.5 s on v2, 0.015 s on v3) is
	// rounded with a warning, as keepalived does.
	if a < lo || a > hi {
		v.ds.Errorf(v.at(in, in.Pos, "advert_int"), "advert_int %s: %s", seconds(in.AdvertInt), what)
		return
	}
	if a%step == 0 {
		return
	}
	r := min(max((a+step/2)/step*step, lo), hi)
	v.ds.Warnf(v.at(in, in.Pos, "advert_int"), "advert_int %s: %s; rounded to %s %s", seconds(in.AdvertInt), what, seconds(Duration(r)), keepalivedAlike)
	in.AdvertInt = Duration(r)
}

// auth mirrors vrrp/vrrp.c vrrp_complete_instance: authentication is dropped
// with a warning on VRRPv3 and when no password is given.
func (v *validator) auth(in *Instance) {
	a := in.Auth
	if a == nil {
		return
	}
	p := v.at(in, in.Pos, "authentication")
	switch {
	case v.strict(in):
		v.ds.Warnf(p, "authentication: strict mode has none; ignored %s", keepalivedAlike)
		in.Auth = nil
	case in.Version == 3:
		v.ds.Warnf(p, "authentication: VRRPv3 has none; ignored %s", keepalivedAlike)
		in.Auth = nil
	case a.Type == "AH":
		v.ds.Errorf(p, "auth_type AH: not supported by vipd")
	case a.Type != "PASS":
		v.ds.Errorf(p, "auth_type %q: must be PASS or AH", a.Type)
	case a.Pass == "":
		v.ds.Warnf(p, "authentication: no auth_pass given; ignored %s", keepalivedAlike)
		in.Auth = nil
	case len(a.Pass) > maxAuthPass:
		v.ds.Warnf(p, "auth_pass: longer than %d characters; only the first %d are used %s", maxAuthPass, maxAuthPass, keepalivedAlike)
	}
}

func (v *validator) addresses(in *Instance, v6 bool) {
	p := in.Pos
	fam := family(v6)
	if len(in.VIPs) == 0 {
		// vrrp/vrrp.c vrrp_complete_instance: required for v3, sensible for v2.
		if in.Version == 3 {
			v.ds.Errorf(p, "virtual_ipaddress: none given; VRRPv3 needs at least one")
		} else {
			v.ds.Warnf(p, "virtual_ipaddress: none given; at least one is sensible")
		}
	}
	if len(in.VIPs) > maxVRRPAdverts {
		v.ds.Errorf(p, "virtual_ipaddress: %d addresses; an advertisement carries at most %d (use virtual_ipaddress_excluded)", len(in.VIPs), maxVRRPAdverts)
	}
	for _, vip := range in.VIPs {
		vp := or(vip.Pos, p)
		if !vip.Prefix.IsValid() {
			v.ds.Errorf(vp, "virtual_ipaddress: missing or invalid address")
			continue
		}
		// vrrp/vrrp_data.c alloc_vrrp_vip: "address family must match VRRP
		// instance - ignoring" (a configuration error for keepalived -t).
		if vip.Prefix.Addr().Unmap().Is6() != v6 {
			v.ds.Errorf(vp, "virtual_ipaddress %s: address family must match the instance's (%s); put it in virtual_ipaddress_excluded", vip.Prefix, fam)
		}
		v.vipDev(vp, "virtual_ipaddress", vip)
	}
	for _, vip := range in.ExcludedVIPs {
		vp := or(vip.Pos, p)
		if !vip.Prefix.IsValid() {
			v.ds.Errorf(vp, "virtual_ipaddress_excluded: missing or invalid address")
			continue
		}
		v.vipDev(vp, "virtual_ipaddress_excluded", vip)
	}
	for _, r := range in.Routes {
		if !r.Dst.IsValid() {
			v.ds.Errorf(or(r.Pos, p), "virtual_routes: missing or invalid destination")
			continue
		}
		v.route(or(r.Pos, p), r)
	}
	for _, a := range []struct {
		kw   string
		addr netip.Addr
	}{{"unicast_src_ip", in.UnicastSrcIP}, {"mcast_src_ip", in.McastSrcIP}} {
		if a.addr.IsValid() && a.addr.Unmap().Is6() != v6 {
			v.ds.Errorf(v.at(in, p, a.kw), "%s %s: address family must match the instance's (%s)", a.kw, a.addr, fam)
		}
	}
	for _, peer := range in.UnicastPeers {
		if !peer.IsValid() {
			v.ds.Errorf(v.at(in, p, "unicast_peer "+peer.String(), "unicast_peer"), "unicast_peer: invalid address")
			continue
		}
		if peer.Unmap().Is6() != v6 {
			v.ds.Errorf(v.at(in, p, "unicast_peer "+peer.String(), "unicast_peer"), "unicast_peer %s: address family must match the instance's (%s)", peer, fam)
		}
	}
}

// route checks a virtual route against what vipd (and the kernel) can
// install; the keepalived parser has already refused what keepalived refuses.
func (v *validator) route(p Pos, r Route) {
	name := r.RawSource
	if name == "" {
		name = r.Dst.String()
	}
	is6 := r.Dst.Addr().Unmap().Is6()
	switch r.Type {
	case "", "unicast":
	case "blackhole", "unreachable", "prohibit", "throw":
		// fib_create_info: "Gateway, device and multipath can not be
		// specified for this route type". keepalived -t accepts the line
		// and then fails to add the route.
		if r.Dev != "" || r.Via.IsValid() {
			v.ds.Errorf(p, "virtual_routes %s: a route of type %s takes no dev and no via (the kernel refuses it)", name, r.Type)
		}
	default:
		v.ds.Errorf(p, "virtual_routes %s: type %s is not implemented by vipd (it installs unicast, blackhole, unreachable, prohibit and throw routes)", name, r.Type)
	}
	for _, a := range []struct {
		kw   string
		addr netip.Addr
	}{{"via", r.Via}, {"src", r.Src}} {
		if a.addr.IsValid() && a.addr.Unmap().Is6() != is6 {
			v.ds.Errorf(p, "virtual_routes %s: %s %s: cannot mix IPv4 and IPv6 in a route", name, a.kw, a.addr)
		}
	}
	if r.Dev != "" && v.opts.InterfaceExists != nil && !v.opts.InterfaceExists(r.Dev) {
		v.ds.Warnf(p, "virtual_routes %s: dev %s: interface does not exist on this host (keepalived drops the route)", name, r.Dev)
	}
}

func (v *validator) vipDev(p Pos, kw string, vip VIP) {
	if vip.Dev != "" && v.opts.InterfaceExists != nil && !v.opts.InterfaceExists(vip.Dev) {
		v.ds.Warnf(p, "%s %s dev %s: interface does not exist on this host", kw, vip.Prefix, vip.Dev)
	}
}

func (v *validator) tracks(p Pos, kw string, ts []Track, check func(Track)) {
	for _, t := range ts {
		tp := or(t.Pos, p)
		if t.Name == "" {
			v.ds.Errorf(tp, "%s: missing name", kw)
			continue
		}
		if t.Weight != nil && (*t.Weight < -maxTrackWeight || *t.Weight > maxTrackWeight) {
			v.ds.Errorf(tp, "%s %s weight %d: must be -253..253", kw, t.Name, *t.Weight)
		}
		if check != nil {
			check(t)
		}
	}
}

// vrids mirrors vrrp/vrrp.c check_vrid_conflicts: two multicast instances
// may not share a VRID on one interface and address family; two unicast
// instances may not when they also share the source address and a peer.
func (v *validator) vrids() {
	ins := v.m.Instances
	for j, b := range ins {
		if b == nil {
			continue
		}
		for _, a := range ins[:j] {
			if a == nil || a.VRID != b.VRID || a.VRID < 1 || a.IsIPv6() != b.IsIPv6() {
				continue
			}
			aUni, bUni := len(a.UnicastPeers) > 0, len(b.UnicastPeers) > 0
			if aUni != bUni {
				continue // separate VRID spaces
			}
			if !aUni {
				if a.Interface != b.Interface {
					continue
				}
			} else {
				if a.Interface != "" && b.Interface != "" && a.Interface != b.Interface {
					continue
				}
				if !a.UnicastSrcIP.IsValid() || a.UnicastSrcIP != b.UnicastSrcIP {
					continue // unknown or different local addresses
				}
				if !slices.ContainsFunc(a.UnicastPeers, func(p netip.Addr) bool { return slices.Contains(b.UnicastPeers, p) }) {
					continue
				}
			}
			where := b.Interface
			if where == "" {
				where = b.UnicastSrcIP.String()
			}
			v.ds.Errorf(b.Pos, "virtual_router_id %d: already used on %s (%s) by vrrp_instance %s at %s",
				b.VRID, where, family(b.IsIPv6()), a.Name, posString(a.Pos))
		}
	}
}

// syncGroups mirrors vrrp/vrrp_sync.c vrrp_sync_set_group: a member that
// names no vrrp_instance, or one already in another group, is ignored with
// a warning, and a group left without members is removed.
func (v *validator) syncGroups(scripts map[string]*Script, trackFiles map[string]*TrackFile, instances map[string]*Instance) {
	inGroup := map[string]*SyncGroup{}
	names := map[string]Pos{}
	kept := v.m.SyncGroups[:0]
	for i, g := range v.m.SyncGroups {
		if g == nil {
			v.ds.Errorf(Pos{}, "sync_groups[%d]: empty entry", i)
			kept = append(kept, g)
			continue
		}
		v.named(names, "vrrp_sync_group", g.Name, g.Pos)
		if len(g.Members) == 0 {
			v.ds.Errorf(g.Pos, "vrrp_sync_group %s: group lists no vrrp_instance", g.Name)
			kept = append(kept, g)
			continue
		}
		members := g.Members[:0]
		for _, name := range g.Members {
			if _, ok := instances[name]; !ok {
				v.ds.Warnf(g.Pos, "vrrp_sync_group %s: vrrp_instance %s: no vrrp_instance of that name; ignored %s", g.Name, name, keepalivedAlike)
				continue
			}
			if other, ok := inGroup[name]; ok {
				v.ds.Warnf(g.Pos, "vrrp_sync_group %s: vrrp_instance %s is already in vrrp_sync_group %s at %s; ignored here %s", g.Name, name, other.Name, posString(other.Pos), keepalivedAlike)
				continue
			}
			inGroup[name] = g
			members = append(members, name)
		}
		g.Members = members
		if len(members) == 0 {
			v.ds.Warnf(g.Pos, "vrrp_sync_group %s: no usable vrrp_instance left; group removed %s", g.Name, keepalivedAlike)
			continue
		}
		g.TrackScripts = v.knownTracks(g.Pos, "track_script", g.TrackScripts, func(t Track) bool {
			_, ok := scripts[t.Name]
			return ok
		}, "vrrp_script", Error)
		g.TrackFiles = v.knownTracks(g.Pos, "track_file", g.TrackFiles, func(t Track) bool {
			_, ok := trackFiles[t.Name]
			return ok
		}, "track_file", Warning)
		v.tracks(g.Pos, "track_interface", g.TrackInterfaces, func(t Track) {
			if v.opts.InterfaceExists != nil && !v.opts.InterfaceExists(t.Name) {
				v.ds.Warnf(or(t.Pos, g.Pos), "track_interface %s: does not exist on this host", t.Name)
			}
		})
		kept = append(kept, g)
	}
	clear(v.m.SyncGroups[len(kept):])
	v.m.SyncGroups = kept
}

func (v *validator) virtualServerGroups() map[string]*VirtualServerGroup {
	byName, seen := map[string]*VirtualServerGroup{}, map[string]Pos{}
	for i, g := range v.m.VirtualServerGroups {
		if g == nil {
			v.ds.Errorf(Pos{}, "virtual_server_groups[%d]: empty entry", i)
			continue
		}
		if v.named(seen, "virtual_server_group", g.Name, g.Pos) {
			byName[g.Name] = g
		}
		for _, e := range g.Members {
			ep := or(e.Pos, g.Pos)
			switch {
			case e.FWMark < 0:
				v.ds.Errorf(ep, "fwmark %d: must not be negative", e.FWMark)
			case e.FWMark > 0:
			case !e.Address.IsValid():
				v.ds.Errorf(ep, "virtual_server_group %s: entry needs an address or a fwmark", g.Name)
			case e.RangeTo.IsValid() && (e.RangeTo.Is6() != e.Address.Is6() || e.RangeTo.Less(e.Address)):
				v.ds.Errorf(ep, "virtual_server_group %s: range %s-%s: must run upwards within one family", g.Name, e.Address, e.RangeTo)
			}
			if e.Port < 0 || e.Port > maxPort {
				v.ds.Errorf(ep, "port %d: must be 0..65535", e.Port)
			}
		}
	}
	return byName
}

func (v *validator) virtualServers(groups map[string]*VirtualServerGroup) {
	for i, vs := range v.m.VirtualServers {
		if vs == nil {
			v.ds.Errorf(Pos{}, "virtual_servers[%d]: empty entry", i)
			continue
		}
		p := vs.Pos
		switch {
		case vs.Group != "":
			if _, ok := groups[vs.Group]; !ok {
				v.ds.Errorf(p, "virtual_server group %s: no virtual_server_group of that name", vs.Group)
			}
		case vs.FWMark > 0:
		case vs.Address.IsValid():
		default:
			v.ds.Errorf(p, "virtual_server %s: needs an address and port, a fwmark or a group", vs.Name)
		}
		if vs.FWMark < 0 {
			v.ds.Errorf(p, "fwmark %d: must not be negative", vs.FWMark)
		}
		if vs.Port < 0 || vs.Port > maxPort {
			v.ds.Errorf(p, "port %d: must be 0..65535", vs.Port)
		}
		if !slices.Contains(knownLBAlgos, vs.LBAlgo) {
			v.ds.Errorf(v.at(vs, p, "lb_algo", "lvs_sched"), "lb_algo %s: must be one of %s", vs.LBAlgo, strings.Join(knownLBAlgos, ", "))
		}
		if !slices.Contains(knownLBKinds, vs.LBKind) {
			v.ds.Errorf(v.at(vs, p, "lb_kind", "lvs_method"), "lb_kind %s: must be one of %s", vs.LBKind, strings.Join(knownLBKinds, ", "))
		}
		if vs.Protocol != "" && !slices.Contains(knownProtocols, vs.Protocol) {
			v.ds.Errorf(v.at(vs, p, "protocol"), "protocol %s: must be one of %s", vs.Protocol, strings.Join(knownProtocols, ", "))
		}
		if vs.DelayLoop <= 0 {
			v.ds.Errorf(v.at(vs, p, "delay_loop"), "delay_loop %s: must be positive", vs.DelayLoop)
		}
		if vs.Quorum < 1 {
			v.ds.Errorf(v.at(vs, p, "quorum"), "quorum %d: must be at least 1", vs.Quorum)
		}
		if vs.Hysteresis < 0 {
			v.ds.Errorf(v.at(vs, p, "hysteresis"), "hysteresis %d: must not be negative", vs.Hysteresis)
		}
		if vs.SorryServer != nil {
			v.realServer(vs.SorryServer, p, "sorry_server")
		}
		for j, rs := range vs.RealServers {
			if rs == nil {
				v.ds.Errorf(p, "real_servers[%d]: empty entry", j)
				continue
			}
			v.realServer(rs, p, "real_server")
		}
	}
}

func (v *validator) realServer(rs *RealServer, vsPos Pos, kw string) {
	p := or(rs.Pos, vsPos)
	if !rs.Address.IsValid() {
		v.ds.Errorf(p, "%s: no address", kw)
	}
	if rs.Port < 0 || rs.Port > maxPort {
		v.ds.Errorf(p, "%s port %d: must be 0..65535", kw, rs.Port)
	}
	if rs.Weight != nil && (*rs.Weight < 0 || *rs.Weight > maxRealServerWeight) {
		v.ds.Errorf(v.at(rs, p, "weight"), "weight %d: must be 0..%d", *rs.Weight, maxRealServerWeight)
	}
	if rs.LBKind != "" && !slices.Contains(knownLBKinds, rs.LBKind) {
		v.ds.Errorf(v.at(rs, p, "lb_kind", "lvs_method"), "lb_kind %s: must be one of %s", rs.LBKind, strings.Join(knownLBKinds, ", "))
	}
	for k, c := range rs.Checkers {
		if c == nil {
			v.ds.Errorf(p, "checkers[%d]: empty entry", k)
			continue
		}
		cp := or(c.Pos, p)
		if !slices.Contains(knownCheckTypes, c.Type) {
			v.ds.Errorf(cp, "checker %q: must be one of %s", c.Type, strings.Join(knownCheckTypes, ", "))
			continue
		}
		if c.Type == CheckMisc && strings.TrimSpace(c.MiscPath) == "" {
			v.ds.Errorf(cp, "MISC_CHECK: no misc_path")
		}
		if (c.Type == CheckHTTP || c.Type == CheckSSL) && len(c.URLs) == 0 {
			v.ds.Errorf(cp, "%s: no url", c.Type)
		}
		if c.Type == CheckDNS && c.DNSType != "" && !slices.Contains(knownDNSTypes, c.DNSType) {
			v.ds.Errorf(v.at(c, cp, "dns_type", "type"), "DNS_CHECK type %s: must be one of %s", c.DNSType, strings.Join(knownDNSTypes, ", "))
		}
		if c.ConnectPort < 0 || c.ConnectPort > maxPort {
			v.ds.Errorf(v.at(c, cp, "connect_port"), "connect_port %d: must be 0..65535", c.ConnectPort)
		}
		if c.ConnectTimeout <= 0 {
			v.ds.Errorf(v.at(c, cp, "connect_timeout"), "connect_timeout %s: must be positive", c.ConnectTimeout)
		}
		if c.Retry != nil && *c.Retry < 0 {
			v.ds.Errorf(v.at(c, cp, "retry", "nb_get_retry"), "retry %d: must not be negative", *c.Retry)
		}
	}
}

// IsIPv6 reports the instance's address family as keepalived derives it:
// native_ipv6, else the first virtual_ipaddress, else unicast_src_ip, else
// the first unicast_peer, else mcast_src_ip; IPv4 when none is known.
func (i *Instance) IsIPv6() bool {
	if i == nil {
		return false
	}
	if i.NativeIPv6 {
		return true
	}
	for _, v := range i.VIPs {
		if v.Prefix.IsValid() {
			return v.Prefix.Addr().Unmap().Is6()
		}
	}
	if i.UnicastSrcIP.IsValid() {
		return i.UnicastSrcIP.Unmap().Is6()
	}
	for _, p := range i.UnicastPeers {
		if p.IsValid() {
			return p.Unmap().Is6()
		}
	}
	if i.McastSrcIP.IsValid() {
		return i.McastSrcIP.Unmap().Is6()
	}
	return false
}

// seconds renders d the way keepalived.conf writes it: "1", "0.1", "300".
func seconds(d Duration) string {
	return strconv.FormatFloat(d.D().Seconds(), 'f', -1, 64)
}
