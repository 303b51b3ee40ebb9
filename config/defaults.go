package config

import (
	"fmt"
	"time"
)

// keepalived 2.2.7's defaults. The source line each one comes from is cited so
// that a reader can check them; the tests assert the same values.
const (
	// DefaultVRRPVersion: core/global_data.c set_vrrp_defaults,
	// "data->vrrp_version = VRRP_VERSION_2".
	DefaultVRRPVersion = 2
	// DefaultPriority: include/vrrp.h VRRP_PRIO_DFL 100.
	DefaultPriority = 100
	// OwnerPriority: include/vrrp.h VRRP_PRIO_OWNER 255. vrrp.c
	// vrrp_complete_instance gives an instance with "state MASTER" and no
	// priority this priority, and an instance with priority 255 and no state
	// the state MASTER.
	OwnerPriority = 255
	// DefaultAdvertInt: include/vrrp.h VRRP_ADVER_DFL 1 (second).
	DefaultAdvertInt = Duration(time.Second)

	// DefaultGarpMasterDelay: include/vrrp.h VRRP_GARP_DELAY (5 * TIMER_HZ).
	DefaultGarpMasterDelay = Duration(5 * time.Second)
	// DefaultGarpMasterRepeat: include/vrrp.h VRRP_GARP_REP 5.
	DefaultGarpMasterRepeat = 5
	// DefaultGarpMasterRefresh: include/vrrp.h VRRP_GARP_REFRESH 0 (off).
	DefaultGarpMasterRefresh = Duration(0)
	// DefaultGarpMasterRefreshRepeat: include/vrrp.h VRRP_GARP_REFRESH_REP 1.
	DefaultGarpMasterRefreshRepeat = 1
	// vrrp_garp_interval and vrrp_gna_interval default to 0 (no pause between
	// the packets of a burst): global_data is zero-allocated and only
	// core/global_parser.c sets them.

	// DefaultDownTimerAdverts: include/vrrp.h VRRP_DOWN_TIMER_ADVERTS 3
	// (adverts missed before the master down timer fires).
	DefaultDownTimerAdverts = 3

	// DefaultScriptInterval: include/vrrp_track.h VRRP_SCRIPT_DI 1 (second).
	DefaultScriptInterval = Duration(time.Second)
	// A vrrp_script's timeout is VRRP_SCRIPT_DT 0, which
	// vrrp/vrrp_scheduler.c reads as "the interval"; Normalize writes that
	// out. Rise and fall are 1 (vrrp/vrrp_data.c alloc_vrrp_script).

	// DefaultDelayLoop: check/check_data.c alloc_vs,
	// "new->delay_loop = KEEPALIVED_DEFAULT_DELAY" (60 * TIMER_HZ).
	DefaultDelayLoop = Duration(60 * time.Second)
	// DefaultLBAlgo: include/ipvswrapper.h IPVS_DEF_SCHED "wlc"
	// (check/check_data.c: "no scheduler set, setting default").
	DefaultLBAlgo = "wlc"
	// DefaultLBKind: check/check_data.c "no forwarding method set, setting
	// default NAT".
	DefaultLBKind = "NAT"
	// DefaultProtocol: keepalived itself falls back to UDP with a
	// configuration error when a virtual server has no protocol
	// (check/check_data.c "no protocol set - defaulting to UDP"); vipd uses
	// TCP, the common case, since such a file fails "keepalived -t" anyway.
	DefaultProtocol = "TCP"
	// DefaultQuorum: check/check_data.c alloc_vs "new->quorum = 1".
	DefaultQuorum = 1
	// DefaultRealServerWeight: check/check_data.c alloc_vs "new->weight = 1",
	// which real servers inherit (rs->effective_weight = vs->weight).
	DefaultRealServerWeight = 1
	// DefaultDNSType and DefaultDNSName: check/check_dns.c
	// dns_check_handler "dns_check->type = DNS_DEFAULT_TYPE" (SOA) and
	// "dns_check->name = DNS_DEFAULT_NAME" (".").
	DefaultDNSType = "SOA"
	DefaultDNSName = "."
	// DefaultDNSRetry: check/check_dns.h DNS_DEFAULT_RETRY.
	DefaultDNSRetry = 3
	// DefaultConnectTimeout: check/check_data.c alloc_vs
	// "new->connection_to = 5 * TIMER_HZ", inherited by checkers.
	DefaultConnectTimeout = Duration(5 * time.Second)
	// DefaultCheckerRetry: check/check_api.c queue_checker
	// "checker->default_retry = 1"; MISC_CHECK overrides it with 0
	// (check/check_misc.c).
	DefaultCheckerRetry = 1
	// DefaultDelayBeforeRetry: check/check_api.c
	// "checker->default_delay_before_retry = 1 * TIMER_HZ"; HTTP_GET and
	// SSL_GET use 3 s (check/check_http.c).
	DefaultDelayBeforeRetry     = Duration(time.Second)
	DefaultHTTPDelayBeforeRetry = Duration(3 * time.Second)
)

// DefaultGarp returns keepalived's gratuitous ARP schedule. The lower-priority
// values equal the master ones (vrrp/vrrp.c: "vrrp_garp_lower_prio_rep =
// vrrp_garp_rep", "vrrp_garp_lower_prio_delay = vrrp_garp_delay").
func DefaultGarp() Garp {
	return Garp{
		MasterDelay:         DefaultGarpMasterDelay,
		MasterRepeat:        DefaultGarpMasterRepeat,
		MasterRefresh:       DefaultGarpMasterRefresh,
		MasterRefreshRepeat: DefaultGarpMasterRefreshRepeat,
		LowerPrioDelay:      DefaultGarpMasterDelay,
		LowerPrioRepeat:     DefaultGarpMasterRepeat,
	}
}

// DefaultInstance returns an instance with every default Normalize would fill
// in for a model whose global_defs are left at keepalived's defaults. It has
// no name, interface, VRID or VIPs: the caller sets those.
func DefaultInstance() *Instance {
	return &Instance{
		State:     StateBackup,
		Priority:  DefaultPriority,
		AdvertInt: DefaultAdvertInt,
		Version:   DefaultVRRPVersion,
		Garp:      DefaultGarp(),

		DownTimerAdverts: DefaultDownTimerAdverts,
	}
}

// Normalize fills keepalived's defaults into every zero field of m, in place.
// Instances inherit from global_defs where keepalived's instances do (VRRP
// version, the garp schedule, vrrp_check_unicast_src). It is idempotent and
// never fails; Validate reports what is wrong afterwards. A nil m or nil
// entries in its lists are left alone.
//
// Because zero means "default", a value written explicitly as 0 where
// keepalived's default is not 0 (garp_master_repeat 0, TCP_CHECK retry 0,
// real server weight 0) reads back as the default.
func Normalize(m *Model) {
	if m == nil {
		return
	}
	g := &m.Global
	if g.VRRPVersion == 0 {
		g.VRRPVersion = DefaultVRRPVersion
	}
	normalizeGlobalGarp(&g.Garp)

	for _, s := range m.Scripts {
		if s == nil {
			continue
		}
		normalizeScript(s)
	}
	for _, in := range m.Instances {
		if in == nil {
			continue
		}
		normalizeInstance(in, g)
	}
	for _, vs := range m.VirtualServers {
		if vs == nil {
			continue
		}
		normalizeVirtualServer(vs)
	}
}

func normalizeGlobalGarp(g *Garp) {
	d := DefaultGarp()
	if g.MasterDelay == 0 {
		g.MasterDelay = d.MasterDelay
	}
	if g.MasterRepeat == 0 {
		g.MasterRepeat = d.MasterRepeat
	}
	if g.MasterRefreshRepeat == 0 {
		g.MasterRefreshRepeat = d.MasterRefreshRepeat
	}
	// vrrp/vrrp.c (vrrp_complete_instances): unset lower_prio values take the
	// global master ones.
	if g.LowerPrioDelay == 0 {
		g.LowerPrioDelay = g.MasterDelay
	}
	if g.LowerPrioRepeat == 0 {
		g.LowerPrioRepeat = g.MasterRepeat
	}
}

func normalizeScript(s *Script) {
	if s.Interval == 0 {
		s.Interval = DefaultScriptInterval
	}
	if s.Timeout == 0 {
		s.Timeout = s.Interval
	}
	if s.Rise == 0 {
		s.Rise = 1
	}
	if s.Fall == 0 {
		s.Fall = 1
	}
}

func normalizeInstance(in *Instance, g *Global) {
	// vrrp/vrrp.c vrrp_complete_instance: "If no priority has been set,
	// derive it from the initial state" and the reverse.
	if in.Priority == 0 {
		if in.State == StateMaster {
			in.Priority = OwnerPriority
		} else {
			in.Priority = DefaultPriority
		}
	}
	if in.State == "" {
		if in.Priority == OwnerPriority {
			in.State = StateMaster
		} else {
			in.State = StateBackup
		}
	}
	if in.AdvertInt == 0 {
		in.AdvertInt = DefaultAdvertInt
	}
	// vrrp/vrrp.c vrrp_complete_instance: an IPv6 instance without a version
	// is version 3 whatever vrrp_version says; others take vrrp_version.
	if in.Version == 0 {
		if in.IsIPv6() {
			in.Version = 3
		} else {
			in.Version = g.VRRPVersion
		}
	}
	// vrrp/vrrp_data.c alloc_vrrp: the garp_master_* values start from the
	// global vrrp_garp_* ones; lower_prio values take the global lower_prio
	// values (vrrp.c vrrp_complete_instance), not the instance's master ones.
	ig, gg := &in.Garp, g.Garp
	if ig.MasterDelay == 0 {
		ig.MasterDelay = gg.MasterDelay
	}
	if ig.MasterRepeat == 0 {
		ig.MasterRepeat = gg.MasterRepeat
	}
	if ig.MasterRefresh == 0 {
		ig.MasterRefresh = gg.MasterRefresh
	}
	if ig.MasterRefreshRepeat == 0 {
		ig.MasterRefreshRepeat = gg.MasterRefreshRepeat
	}
	if ig.LowerPrioDelay == 0 {
		ig.LowerPrioDelay = gg.LowerPrioDelay
	}
	if ig.LowerPrioRepeat == 0 {
		ig.LowerPrioRepeat = gg.LowerPrioRepeat
	}
	if ig.Interval == 0 {
		ig.Interval = gg.Interval
	}
	if ig.GNAInterval == 0 {
		ig.GNAInterval = gg.GNAInterval
	}
	if g.CheckUnicastSrc {
		in.CheckUnicastSrc = true
	}
	// vrrp/vrrp.c vrrp_complete_instance: without mcast_dst_ip the
	// instance sends to vrrp_mcast_group4/6 of its family.
	if !in.McastGroup.IsValid() {
		if in.IsIPv6() {
			in.McastGroup = g.McastGroup6
		} else {
			in.McastGroup = g.McastGroup4
		}
	}
	// vrrp/vrrp_data.c alloc_vrrp: down_timer_adverts starts from
	// vrrp_down_timer_adverts (default 3).
	if in.DownTimerAdverts == 0 {
		in.DownTimerAdverts = g.DownTimerAdverts
		if in.DownTimerAdverts == 0 {
			in.DownTimerAdverts = DefaultDownTimerAdverts
		}
	}
	// vrrp/vrrp.c vrrp_complete_instance: unset, lower_prio_no_advert is
	// true in strict mode, else the global value; higher_prio_send_advert
	// is false in strict mode, else the global value.
	strict := in.StrictMode || g.Strict
	if strict || g.LowerPrioNoAdvert {
		in.LowerPrioNoAdvert = true
	}
	if !strict && g.HigherPrioSendAdvert {
		in.HigherPrioSendAdvert = true
	}
	if in.UseVMAC && in.VMACName == "" && in.VRID > 0 {
		in.VMACName = fmt.Sprintf("vrrp.%d", in.VRID)
	}
}

func normalizeVirtualServer(vs *VirtualServer) {
	if vs.DelayLoop == 0 {
		vs.DelayLoop = DefaultDelayLoop
	}
	if vs.LBKind == "" {
		vs.LBKind = DefaultLBKind
	}
	if vs.LBAlgo == "" {
		vs.LBAlgo = DefaultLBAlgo
	}
	// check/check_data.c: a fwmark service ignores the protocol.
	if vs.Protocol == "" && vs.FWMark == 0 {
		vs.Protocol = DefaultProtocol
	}
	if vs.Quorum == 0 {
		vs.Quorum = DefaultQuorum
	}
	for _, rs := range vs.RealServers {
		if rs != nil {
			normalizeRealServer(rs, vs)
		}
	}
	if vs.SorryServer != nil {
		normalizeRealServer(vs.SorryServer, vs)
	}
}

func normalizeRealServer(rs *RealServer, vs *VirtualServer) {
	if rs.Weight == nil {
		w := DefaultRealServerWeight
		rs.Weight = &w
	}
	// check/check_data.c validate_check_config: a real server without a
	// port takes the virtual server's (not for fwmark services).
	if rs.Port == 0 && vs.FWMark == 0 && vs.Group == "" {
		rs.Port = vs.Port
	}
	for _, c := range rs.Checkers {
		if c == nil {
			continue
		}
		normalizeChecker(c, rs, vs)
	}
}

// DefaultRetry is keepalived's retry of a checker type: 1, 0 for
// MISC_CHECK (check/check_misc.c), 3 for DNS_CHECK (check/check_dns.h).
func DefaultRetry(typ string) int {
	switch typ {
	case CheckMisc:
		return 0
	case CheckDNS:
		return DefaultDNSRetry
	}
	return DefaultCheckerRetry
}

func normalizeChecker(c *Checker, rs *RealServer, vs *VirtualServer) {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Retry == nil {
		r := DefaultRetry(c.Type)
		c.Retry = &r
	}
	if c.DelayBeforeRetry == 0 {
		if c.Type == CheckHTTP || c.Type == CheckSSL {
			c.DelayBeforeRetry = DefaultHTTPDelayBeforeRetry
		} else {
			c.DelayBeforeRetry = DefaultDelayBeforeRetry
		}
	}
	if c.DelayLoop == 0 {
		c.DelayLoop = vs.DelayLoop
	}
	if c.Type == CheckMisc {
		return
	}
	if c.Type == CheckDNS {
		if c.DNSType == "" {
			c.DNSType = DefaultDNSType
		}
		if c.DNSName == "" {
			c.DNSName = DefaultDNSName
		}
	}
	if !c.ConnectIP.IsValid() {
		c.ConnectIP = rs.Address
	}
	if c.ConnectPort == 0 {
		c.ConnectPort = rs.Port
	}
}
