package keepalived

import (
	"math"
	"net"
	"net/netip"
	"strconv"

	"github.com/vipd/vipd/config"
)

// handlers maps the keywords of one block to what they do.
type handlers map[string]func(*node)

// Keywords that open a top-level object. Found inside another block they
// almost always mean a missing '}' above.
var rootKeywords = wordSet(`global_defs vrrp_script vrrp_instance vrrp_sync_group
	track_file vrrp_track_file virtual_server_group virtual_server`)

// keepalived keywords vipd knows but does not implement, per block.
var (
	notImplRoot = wordSet(`SSL bfd_instance child_wait_time garp_group instance
		interface_up_down_delays linkbeat_interfaces linkbeat_use_polling
		namespace_with_ipsets net_namespace net_namespace_ipvs use_pid_dir
		vrrp_track_process`)
	notImplGlobal = wordSet(`linkbeat_use_polling net_namespace net_namespace_ipvs
		namespace_with_ipsets use_pid_dir instance child_wait_time process_names
		process_name vrrp_process_name checker_process_name lvs_process_name
		bfd_process_name smtp_helo_name smtp_alert startup_script
		startup_script_timeout shutdown_script shutdown_script_timeout
		max_auto_priority min_auto_priority_delay smtp_alert_vrrp
		smtp_alert_checker checker_log_all_failures dynamic_interfaces
		no_email_faults default_interface disable_local_igmp lvs_timeouts
		lvs_flush lvs_flush_on_stop lvs_flush_onstop lvs_sync_daemon
		vrrp_iptables
		vrrp_ipsets nftables nftables_priority nftables_ifindex nftables_ipvs
		nftables_ipvs_priority nftables_ipvs_start_fwmark nftables_counters
		vrrp_priority vrrp_no_swap vrrp_rt_priority
		vrrp_cpu_affinity vrrp_rlimit_rttime vrrp_rlimit_rtime notify_fifo
		notify_fifo_script vrrp_notify_fifo vrrp_notify_fifo_script
		vrrp_notify_priority_changes fifo_write_vrrp_states_on_reload
		lvs_notify_fifo lvs_notify_fifo_script checker_priority checker_no_swap
		checker_rt_priority checker_cpu_affinity checker_rlimit_rttime
		checker_rlimit_rtime bfd_priority bfd_no_swap bfd_rt_priority
		bfd_cpu_affinity bfd_rlimit_rttime bfd_rlimit_rtime snmp_socket
		enable_traps enable_snmp_vrrp enable_snmp_keepalived enable_snmp_rfc
		enable_snmp_rfcv2 enable_snmp_rfcv3 enable_snmp_checker enable_dbus
		dbus_service_name vrrp_netlink_cmd_rcv_bufs
		vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
		vrrp_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs
		process_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs
		lvs_netlink_cmd_rcv_bufs_force lvs_netlink_monitor_rcv_bufs
		lvs_netlink_monitor_rcv_bufs_force rs_init_notifies no_checker_emails
		vrrp_rx_bufs_policy vrrp_rx_bufs_multiplier
		log_unknown_vrids vmac_prefix vmac_addr_prefix umask random_seed
		reload_check_config reload_time_file reload_repeat reload_file
		include_check config_save_dir tmp_config_directory data_use_instance`)
	notImplInstance = wordSet(`promote_secondaries linkbeat_use_polling
		debug notify_deleted notify_master_rx_lower_pri
		smtp_alert notify_priority_changes lvs_sync_daemon_interface
		kernel_rx_buf_size`)
	notImplSyncGroup = wordSet(`smtp_alert notify_priority_changes`)
	notImplTrackFile = wordSet(`init_file`)
	notImplVS        = wordSet(`ip_family hashed ops flag-1 flag-2 flag-3 sh-port
		sh-fallback mh-port mh-fallback persistence_engine smtp_alert
		snmp_name sorry_server_inhibit sorry_server_lvs_method weight`)
	notImplRS = wordSet(`uthreshold lthreshold smtp_alert snmp_name
		PING_CHECK UDP_CHECK FILE_CHECK BFD_CHECK`)
	notImplChecker = wordSet(`bind_port bind_if fwmark alpha log_all_failures
		http_protocol enable_sni fast_recovery`)
	notImplURL = wordSet(`virtualhost regex regex_no_match regex_options
		regex_min_offset regex_max_offset regex_stack`)
)

// walk dispatches the children of block n to h.
func (p *parser) walk(n *node, ctx string, h handlers, notImpl map[string]bool) {
	p.walkObj(nil, n, ctx, h, notImpl)
}

// walkObj is walk recording, for a non-nil obj, where each keyword of the
// block was written (config.Model.Keywords), so validation can point at it.
func (p *parser) walkObj(obj any, n *node, ctx string, h handlers, notImpl map[string]bool) {
	for _, c := range n.children {
		k := c.kw()
		if k == "" {
			continue // a block after a stray '{', already reported
		}
		if f, ok := h[k]; ok {
			if obj != nil {
				p.m.Keywords.Set(obj, k, c.pos)
			}
			f(c)
			continue
		}
		if rootKeywords[k] {
			p.errorf(c, "%s inside %s (missing '}' above?)", k, ctx)
			p.rootNode(c)
			continue
		}
		if notImpl[k] {
			p.notImplemented(c)
			continue
		}
		p.warnf(c, "unknown keyword %s", k)
	}
}

// needBlock reports whether n has a block, and reports an error if not.
func (p *parser) needBlock(n *node) bool {
	if !n.hasBlock {
		p.errorf(n, "%s: missing '{'", n.kw())
		return false
	}
	return true
}

// valueBlock checks a block of values (virtual_ipaddress { ... }) and
// returns its lines.
func (p *parser) valueBlock(n *node) []*node {
	if !p.needBlock(n) {
		return nil
	}
	if len(n.args()) > 0 {
		p.warnf(n, "%s: extra words before '{' ignored: %s", n.kw(), joinRaw(n.args()))
	}
	return p.valueLines(n)
}

// valueLines returns the non-empty lines of block n.
func (p *parser) valueLines(n *node) []*node {
	var out []*node
	for _, c := range n.children {
		if c.hasBlock {
			p.errorf(c, "%s: unexpected block inside %s", c.line(), n.kw())
			continue
		}
		if len(c.words) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// valueWords returns every word of a value block (group { A B }).
func (p *parser) valueWords(n *node) []string {
	var out []string
	for _, c := range p.valueBlock(n) {
		out = append(out, texts(c.words)...)
	}
	return out
}

// name returns the object name after a top-level keyword.
func (p *parser) name(n *node) (string, bool) {
	a := n.args()
	if len(a) == 0 {
		p.errorf(n, "%s: missing name", n.kw())
		return "", false
	}
	if len(a) > 1 {
		p.warnf(n, "%s %s: extra words ignored: %s", n.kw(), a[0].text, joinRaw(a[1:]))
	}
	return a[0].text, true
}

func (p *parser) root(nodes []*node) {
	for _, n := range nodes {
		p.rootNode(n)
	}
}

func (p *parser) rootNode(n *node) {
	switch k := n.kw(); {
	case k == "":
	case k == "global_defs":
		p.globalDefs(n)
	case k == "vrrp_script":
		p.script(n)
	case k == "vrrp_instance":
		p.instance(n)
	case k == "vrrp_sync_group":
		p.syncGroup(n)
	case k == "track_file" || k == "vrrp_track_file":
		p.trackFile(n)
	case k == "virtual_server_group":
		p.virtualServerGroup(n)
	case k == "virtual_server":
		p.virtualServer(n)
	case k == "static_ipaddress" || k == "static_routes" || k == "static_rules":
		p.staticBlock(n)
	case k == "track_group":
		p.trackGroup(n)
	case notImplRoot[k]:
		p.notImplemented(n)
	default:
		p.warnf(n, "unknown keyword %s", k)
	}
}

// --- global_defs ---

func (p *parser) globalDefs(n *node) {
	if !p.needBlock(n) {
		return
	}
	g := &p.m.Global
	if g.Pos.IsZero() {
		g.Pos = n.pos
	}
	p.walkObj(g, n, "global_defs", handlers{
		"router_id": func(c *node) { g.RouterID, _ = p.arg(c) },
		"vrrp_version": func(c *node) {
			if v, ok := p.intArg(c, 2, 3); ok {
				g.VRRPVersion = v
			}
		},
		"script_user": func(c *node) {
			a := c.args()
			switch {
			case len(a) == 0:
				p.errorf(c, "script_user: missing user")
			case len(a) > 2:
				p.warnf(c, "script_user: extra words ignored: %s", joinRaw(a[2:]))
				fallthrough
			case len(a) == 2:
				g.ScriptGroup = a[1].text
				fallthrough
			default:
				g.ScriptUser = a[0].text
			}
		},
		"enable_script_security":          func(c *node) { g.EnableScriptSecurity = p.pureFlag(c) },
		"vrrp_garp_master_delay":          func(c *node) { p.setSeconds(c, &g.Garp.MasterDelay) },
		"vrrp_garp_master_repeat":         func(c *node) { p.setInt(c, &g.Garp.MasterRepeat, 1, math.MaxInt32) },
		"vrrp_garp_master_refresh":        func(c *node) { p.setSeconds(c, &g.Garp.MasterRefresh) },
		"vrrp_garp_master_refresh_repeat": func(c *node) { p.setInt(c, &g.Garp.MasterRefreshRepeat, 1, math.MaxInt32) },
		"vrrp_garp_lower_prio_delay":      func(c *node) { p.setSeconds(c, &g.Garp.LowerPrioDelay) },
		"vrrp_garp_lower_prio_repeat":     func(c *node) { p.setInt(c, &g.Garp.LowerPrioRepeat, 1, math.MaxInt32) },
		"vrrp_garp_interval":              func(c *node) { p.setMicros(c, &g.Garp.Interval, 1, math.MaxUint32) },
		"vrrp_gna_interval":               func(c *node) { p.setMicros(c, &g.Garp.GNAInterval, 1, math.MaxUint32) },
		"vrrp_mcast_group4":               func(c *node) { p.mcastGroup(c, &g.McastGroup4, false) },
		"vrrp_mcast_group6":               func(c *node) { p.mcastGroup(c, &g.McastGroup6, true) },
		"vrrp_down_timer_adverts":         func(c *node) { p.setInt(c, &g.DownTimerAdverts, 1, 100) },
		// TIMER_HZ/1000 .. UINT_MAX microseconds.
		"vrrp_startup_delay": func(c *node) { p.setMicros(c, &g.StartupDelay, 1000, math.MaxUint32) },
		"vrrp_lower_prio_no_advert": func(c *node) {
			if v, ok := p.boolArg(c); ok {
				g.LowerPrioNoAdvert = v
			}
		},
		"vrrp_higher_prio_send_advert": func(c *node) {
			if v, ok := p.boolArg(c); ok {
				g.HigherPrioSendAdvert = v
			}
		},
		// A pure flag in keepalived; vipd never drops an advert for its
		// address list (it logs the difference), which is what it asks.
		"vrrp_skip_check_adv_addr": func(c *node) { p.pureFlag(c) },
		"vrrp_min_garp": func(c *node) {
			p.wireNotImpl(c, "sets the gratuitous ARP defaults to one packet with no delay", "set vrrp_garp_master_repeat 1 and vrrp_garp_master_refresh_repeat instead")
		},
		"vrrp_garp_extra_if": func(c *node) {
			p.wireNotImpl(c, "sends gratuitous ARPs on the base interface of a use_vmac instance too", "remove it")
		},
		"vrrp_vmac_garp_intvl": func(c *node) {
			p.wireNotImpl(c, "sends gratuitous ARPs on the base interface of a use_vmac instance too", "remove it")
		},
		"vrrp_strict":            func(c *node) { g.Strict = p.pureFlag(c) },
		"vrrp_check_unicast_src": func(c *node) { g.CheckUnicastSrc = p.pureFlag(c) },
		"notification_email": func(c *node) {
			g.NotificationEmail = append(g.NotificationEmail, p.valueWords(c)...)
		},
		"notification_email_from": func(c *node) { g.NotificationEmailFrom, _ = p.arg(c) },
		"smtp_server": func(c *node) {
			a := c.args()
			switch {
			case len(a) == 0:
				p.errorf(c, "smtp_server: missing address")
			case len(a) == 1:
				g.SMTPServer = a[0].text
			default:
				if _, ok := p.intValue(c, "smtp_server port", a[1].text, 1, 65535); ok {
					g.SMTPServer = net.JoinHostPort(a[0].text, a[1].text)
				}
				if len(a) > 2 {
					p.warnf(c, "smtp_server: extra words ignored: %s", joinRaw(a[2:]))
				}
			}
		},
		"smtp_connect_timeout": func(c *node) { p.setSeconds(c, &g.SMTPConnectTimeout) },
	}, notImplGlobal)
}

// wireNoImpl are keywords keepalived knows that change what goes on the
// wire or when a backup takes over, and that vipd does not implement: they
// are refused, never merely warned about, so a mixed fleet cannot
// silently disagree. The value says what the keyword does.
var wireNotImplInstance = map[string]string{
	"garp_extra_if":         "sends gratuitous ARPs on the base interface of a use_vmac instance too",
	"vmac_garp_intvl":       "sends gratuitous ARPs on the base interface of a use_vmac instance too",
	"unicast_fault_no_peer": "puts a unicast instance without peers in FAULT",
	"track_src_ip":          "tracks the source address of the adverts (FAULT when it goes)",
	"use_vmac_addr":         "sends the adverts from the virtual MAC without a macvlan",
	"use_ipvlan":            "sends the adverts from an ipvlan interface",
	"vrf":                   "binds the adverts to a VRF",
	"track_process":         "changes the priority or state by tracked processes",
	"track_bfd":             "changes the priority or state by BFD sessions",
}

var wireNotImplSyncGroup = map[string]string{
	"track_process": "changes the state of the group by tracked processes",
	"track_bfd":     "changes the state of the group by BFD sessions",
}

// addWireNotImpl adds a refusing handler for each keyword of m to h.
func (p *parser) addWireNotImpl(h handlers, m map[string]string) handlers {
	for kw, what := range m {
		h[kw] = func(c *node) { p.wireNotImpl(c, what, "remove it") }
	}
	return h
}

// wireNotImpl refuses a keyword that changes the wire or the takeover.
func (p *parser) wireNotImpl(c *node, what, fix string) {
	p.errorf(c, "vipd does not implement %s, which %s and so changes what goes on the wire or when a backup takes over; %s", c.kw(), what, fix)
}

// setMicros reads keepalived's read_decimal_unsigned_strvec seconds with
// six decimals, in [lo, hi] microseconds.
func (p *parser) setMicros(c *node, dst *config.Duration, lo, hi int64) {
	d, ok := p.secondsArg(c)
	if !ok {
		return
	}
	us := d.D().Microseconds()
	if us < lo || us > hi {
		p.errorf(c, "%s %s: must be %s..%s seconds", c.kw(), c.args()[0].text, microsString(lo), microsString(hi))
		return
	}
	*dst = d
}

func microsString(us int64) string {
	return strconv.FormatFloat(float64(us)/1e6, 'f', -1, 64)
}

// mcastGroup reads vrrp_mcast_group4/6 (core/global_parser.c): an address
// of the family, multicast; an IPv6 group should be link-local.
func (p *parser) mcastGroup(c *node, dst *netip.Addr, v6 bool) {
	a, ok := p.sockAddrArg(c)
	if !ok {
		return
	}
	switch {
	case a.Is6() != v6:
		p.errorf(c, "%s %s: not an %s address", c.kw(), a, map[bool]string{false: "IPv4", true: "IPv6"}[v6])
	case !a.IsMulticast():
		p.errorf(c, "%s %s: not a multicast address", c.kw(), a)
	default:
		if v6 && !a.IsLinkLocalMulticast() {
			p.warnf(c, "%s %s: should be link-local multicast (ff02::/16)", c.kw(), a)
		}
		*dst = a
	}
}

func (p *parser) setSeconds(c *node, dst *config.Duration) {
	if d, ok := p.secondsArg(c); ok {
		*dst = d
	}
}

func (p *parser) setInt(c *node, dst *int, lo, hi int) {
	p.setIntOK(c, dst, lo, hi)
}

// setIntPtr is setInt for an optional value: *dst is set only when the
// value is valid (0 included, which is not "unset").
func (p *parser) setIntPtr(c *node, dst **int, lo, hi int) {
	var v int
	if p.setIntOK(c, &v, lo, hi) {
		*dst = &v
	}
}

// setIntOK is setInt reporting whether the value was valid.
func (p *parser) setIntOK(c *node, dst *int, lo, hi int) bool {
	v, ok := p.intArg(c, lo, hi)
	if ok {
		*dst = v
	}
	return ok
}

func (p *parser) setString(c *node, dst *string) {
	if s, ok := p.arg(c); ok {
		*dst = s
	}
}

// setCommand stores a notify-style command. A user/group after the
// command is not implemented for these (vipd runs them as script_user).
// As in keepalived (vrrp_parser.c, check_parser.c "script already specified
// - ignoring"), the first one given wins.
func (p *parser) setCommand(c *node, dst *string) {
	if *dst != "" {
		p.warnf(c, "%s given twice; ignored, the first one is used (as keepalived does)", c.kw())
		return
	}
	cmd, user, _, ok := p.commandArg(c)
	if !ok {
		return
	}
	if user != "" {
		p.warnf(c, "%s: running as user %s is not implemented by vipd (quote a command with arguments)", c.kw(), user)
	}
	*dst = cmd
}

// --- vrrp_script ---

func (p *parser) script(n *node) {
	name, ok := p.name(n)
	if !ok || !p.needBlock(n) {
		return
	}
	s := &config.Script{Pos: n.pos, Name: name}
	p.walkObj(s, n, "vrrp_script", handlers{
		"script": func(c *node) {
			if cmd, user, group, ok := p.commandArg(c); ok {
				s.Script = cmd
				if user != "" {
					s.User, s.Group = user, group
				}
			}
		},
		"interval": func(c *node) { p.setSeconds(c, &s.Interval) },
		"timeout":  func(c *node) { p.setSeconds(c, &s.Timeout) },
		"weight": func(c *node) {
			a := c.args()
			if len(a) == 0 {
				p.errorf(c, "weight: missing value")
				return
			}
			if v, ok := p.intValue(c, "weight", a[0].text, -253, 253); ok {
				s.Weight = v
			}
			s.WeightReverse = p.reverse(c, a[1:])
		},
		"rise":      func(c *node) { p.setInt(c, &s.Rise, 1, math.MaxInt32) },
		"fall":      func(c *node) { p.setInt(c, &s.Fall, 1, math.MaxInt32) },
		"user":      func(c *node) { p.userGroup(c, &s.User, &s.Group) },
		"init_fail": func(c *node) { s.InitFail = p.pureFlag(c) },
	}, nil)
	if s.Script == "" {
		p.warnf(n, "vrrp_script %s: no script, ignored", name)
		if p.emptyScripts == nil {
			p.emptyScripts = map[string]bool{}
		}
		p.emptyScripts[name] = true
		return
	}
	p.m.Scripts = append(p.m.Scripts, s)
}

// reverse reads an optional "reverse"/"noreverse" after a weight.
func (p *parser) reverse(c *node, rest []word) bool {
	if len(rest) == 0 {
		return false
	}
	rev := false
	switch rest[0].text {
	case "reverse":
		rev = true
	case "noreverse":
	default:
		p.errorf(c, "%s: unknown weight option %s (reverse or noreverse)", c.kw(), rest[0].text)
		return false
	}
	if len(rest) > 1 {
		p.warnf(c, "%s: extra words ignored: %s", c.kw(), joinRaw(rest[1:]))
	}
	return rev
}

func (p *parser) userGroup(c *node, user, group *string) {
	a := c.args()
	if len(a) == 0 {
		p.errorf(c, "%s: missing user", c.kw())
		return
	}
	*user = a[0].text
	if len(a) > 1 {
		*group = a[1].text
	}
	if len(a) > 2 {
		p.warnf(c, "%s: extra words ignored: %s", c.kw(), joinRaw(a[2:]))
	}
}

// --- track_file ---

func (p *parser) trackFile(n *node) {
	name, ok := p.name(n)
	if !ok || !p.needBlock(n) {
		return
	}
	tf := &config.TrackFile{Pos: n.pos, Name: name}
	p.walk(n, n.kw(), handlers{
		"file": func(c *node) { p.setString(c, &tf.File) },
		"weight": func(c *node) {
			a := c.args()
			if len(a) == 0 {
				p.errorf(c, "weight: missing value")
				return
			}
			if v, ok := p.intValue(c, "weight", a[0].text, -254, 254); ok {
				tf.Weight = &v
			}
			tf.WeightReverse = p.reverse(c, a[1:])
		},
	}, notImplTrackFile)
	if tf.File == "" {
		p.warnf(n, "%s %s: no file, ignored", n.kw(), name)
		return
	}
	p.m.TrackFiles = append(p.m.TrackFiles, tf)
}

// --- tracking lists (track_script, track_interface, track_file) ---

// tracks reads lines "NAME [weight N [reverse|noreverse]]".
func (p *parser) tracks(n *node, lo, hi int) []config.Track {
	var out []config.Track
	for _, c := range p.valueBlock(n) {
		t := config.Track{Pos: c.pos, Name: c.words[0].text}
		rest := c.words[1:]
		if len(rest) > 0 {
			if rest[0].text != "weight" {
				p.errorf(c, "%s %s: unknown option %s", n.kw(), t.Name, rest[0].text)
				continue
			}
			if len(rest) < 2 {
				p.errorf(c, "%s %s: weight without value", n.kw(), t.Name)
				continue
			}
			v, ok := p.intValue(c, n.kw()+" "+t.Name+" weight", rest[1].text, lo, hi)
			if !ok {
				continue
			}
			t.Weight = &v
			if len(rest) > 2 {
				switch rest[2].text {
				case "reverse":
					t.Reverse = true
				case "noreverse":
				default:
					p.errorf(c, "%s %s: unknown weight option %s", n.kw(), t.Name, rest[2].text)
				}
				if len(rest) > 3 {
					p.warnf(c, "%s %s: extra words ignored: %s", n.kw(), t.Name, joinRaw(rest[3:]))
				}
			}
		}
		out = append(out, t)
	}
	return out
}

// --- vrrp_sync_group ---

func (p *parser) syncGroup(n *node) {
	name, ok := p.name(n)
	if !ok || !p.needBlock(n) {
		return
	}
	g := &config.SyncGroup{Pos: n.pos, Name: name}
	p.walk(n, "vrrp_sync_group", p.addWireNotImpl(handlers{
		"group": func(c *node) {
			// vrrp_parser.c vrrp_group_handler: "Group list already
			// specified for sync group" - the later list is ignored.
			if len(g.Members) > 0 {
				p.warnf(c, "vrrp_sync_group %s: group list given twice; ignored, the first one is used (as keepalived does)", name)
				return
			}
			g.Members = append(g.Members, p.valueWords(c)...)
		},
		"track_script":               func(c *node) { g.TrackScripts = append(g.TrackScripts, p.tracks(c, -253, 253)...) },
		"track_interface":            func(c *node) { g.TrackInterfaces = append(g.TrackInterfaces, p.tracks(c, -253, 253)...) },
		"track_file":                 func(c *node) { g.TrackFiles = append(g.TrackFiles, p.tracks(c, -254, 254)...) },
		"notify_master":              func(c *node) { p.setCommand(c, &g.Notify.Master) },
		"notify_backup":              func(c *node) { p.setCommand(c, &g.Notify.Backup) },
		"notify_fault":               func(c *node) { p.setCommand(c, &g.Notify.Fault) },
		"notify_stop":                func(c *node) { p.setCommand(c, &g.Notify.Stop) },
		"notify":                     func(c *node) { p.setCommand(c, &g.Notify.Generic) },
		"global_tracking":            func(c *node) { g.GlobalTracking = p.pureFlag(c) },
		"sync_group_tracking_weight": func(c *node) { g.TrackingWeight = p.pureFlag(c) },
	}, wireNotImplSyncGroup), notImplSyncGroup)
	if len(g.Members) == 0 {
		p.warnf(n, "vrrp_sync_group %s: no group { ... } of instances, ignored", name)
		return
	}
	p.m.SyncGroups = append(p.m.SyncGroups, g)
}
