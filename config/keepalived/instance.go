package keepalived

import (
	"math"
	"strings"

	"github.com/vipd/vipd/config"
)

func (p *parser) instance(n *node) {
	name, ok := p.name(n)
	if !ok || !p.needBlock(n) {
		return
	}
	in := &config.Instance{Pos: n.pos, Name: name}
	p.m.Instances = append(p.m.Instances, in)
	garp := &in.Garp
	p.walkObj(in, n, "vrrp_instance", p.addWireNotImpl(handlers{
		"state": func(c *node) {
			s, ok := p.arg(c)
			if !ok {
				return
			}
			switch {
			case s == config.StateBackup && in.State == config.StateMaster:
				// vrrp_parser.c vrrp_state_handler keeps an earlier MASTER.
				p.warnf(c, "state BACKUP: state already given as MASTER; ignored (as keepalived does)")
			case s == config.StateMaster || s == config.StateBackup:
				in.State = s
			default:
				p.errorf(c, "state %s: must be MASTER or BACKUP", s)
			}
		},
		"interface": func(c *node) { p.setString(c, &in.Interface) },
		"virtual_router_id": func(c *node) {
			if !p.setIntOK(c, &in.VRID, 1, 255) {
				in.VRID = config.VRIDInvalid // reported here; Validate stays quiet about it
			}
		},
		"priority": func(c *node) { p.setInt(c, &in.Priority, 1, 255) },
		"advert_int": func(c *node) {
			d, ok := p.secondsArg(c)
			if !ok {
				return
			}
			if d <= 0 {
				p.errorf(c, "advert_int %s: must be more than 0", c.args()[0].text)
				return
			}
			in.AdvertInt = d
		},
		"version":       func(c *node) { p.setInt(c, &in.Version, 2, 3) },
		"nopreempt":     func(c *node) { in.NoPreempt = p.pureFlag(c) },
		"preempt":       func(c *node) { in.NoPreempt = !p.pureFlag(c) },
		"preempt_delay": func(c *node) { p.setSeconds(c, &in.PreemptDelay) },
		"authentication": func(c *node) {
			p.authentication(c, in)
		},
		"virtual_ipaddress": func(c *node) {
			in.VIPs = append(in.VIPs, p.vips(c)...)
		},
		"virtual_ipaddress_excluded": func(c *node) {
			in.ExcludedVIPs = append(in.ExcludedVIPs, p.vips(c)...)
		},
		"virtual_routes": func(c *node) {
			for _, l := range p.valueBlock(c) {
				if r, ok := p.route(c.kw(), l, false); ok {
					in.Routes = append(in.Routes, r)
				}
			}
		},
		// vipd does not install virtual_rules (a warning says so); each
		// line is checked as keepalived checks it.
		"virtual_rules": func(c *node) {
			p.notImplemented(c)
			for _, l := range p.valueBlock(c) {
				p.rule(c.kw(), l, false)
			}
		},
		"mcast_src_ip": func(c *node) {
			if a, ok := p.sockAddrArg(c); ok {
				in.McastSrcIP = a
			}
		},
		"unicast_src_ip": func(c *node) {
			if a, ok := p.sockAddrArg(c); ok {
				in.UnicastSrcIP = a
			}
		},
		"mcast_dst_ip": func(c *node) {
			if a, ok := p.sockAddrArg(c); ok {
				in.McastGroup = a
			}
		},
		"unicast_ttl": func(c *node) {
			// vrrp_parser.c vrrp_ttl_handler accepts 0..255.
			v, ok := p.intArg(c, 0, 255)
			switch {
			case !ok:
			case v == 0:
				p.errorf(c, "unicast_ttl 0: vipd does not implement sending adverts with TTL 0 (keepalived does); use 1..255")
			default:
				in.UnicastTTL = v
			}
		},
		"down_timer_adverts":      func(c *node) { p.setIntOK(c, &in.DownTimerAdverts, 1, 100) },
		"lower_prio_no_advert":    func(c *node) { p.instanceBool(c, in, &in.LowerPrioNoAdvert) },
		"higher_prio_send_advert": func(c *node) { p.instanceBool(c, in, &in.HigherPrioSendAdvert) },
		// vrrp_parser.c: skip_check_adv_addr takes an optional true/false,
		// and even "false" sets it. vipd never drops an advert for
		// its address list (it logs the difference), which is what
		// skip_check_adv_addr asks for.
		"skip_check_adv_addr": func(c *node) { p.boolArg(c) },
		"unicast_peer": func(c *node) {
			for _, l := range p.valueBlock(c) {
				a, ok := p.sockAddrValue(l, "unicast_peer", l.words[0].text)
				if !ok {
					continue
				}
				in.UnicastPeers = append(in.UnicastPeers, a)
				p.m.Keywords.Set(in, "unicast_peer "+a.String(), l.pos)
				if rest := l.words[1:]; len(rest) > 0 {
					if rest[0].text == "min_ttl" || rest[0].text == "max_ttl" {
						// vrrp_parser.c vrrp_unicast_peer_handler: adverts from
						// this peer outside the TTL range are dropped, which
						// decides when a backup takes over.
						p.errorf(l, "unicast_peer %s %s: vipd does not implement min_ttl/max_ttl, which drop adverts from the peer by their TTL and so change when a backup takes over; remove it", a, rest[0].text)
					} else {
						p.errorf(l, "unicast_peer %s: unknown option %s (one address per line)", a, rest[0].text)
					}
				}
			}
		},
		"check_unicast_src":    func(c *node) { in.CheckUnicastSrc = p.pureFlag(c) },
		"old_unicast_checksum": func(c *node) { in.OldUnicastChecksum = p.oldUnicastChecksum(c) },
		"native_ipv6":          func(c *node) { in.NativeIPv6 = p.pureFlag(c) },
		"track_script": func(c *node) {
			in.TrackScripts = append(in.TrackScripts, p.tracks(c, -253, 253)...)
		},
		"track_interface": func(c *node) {
			in.TrackInterfaces = append(in.TrackInterfaces, p.tracks(c, -253, 253)...)
		},
		"track_file": func(c *node) {
			in.TrackFiles = append(in.TrackFiles, p.tracks(c, -254, 254)...)
		},
		"dont_track_primary":         func(c *node) { in.DontTrackPrimary = p.pureFlag(c) },
		"notify_master":              func(c *node) { p.setCommand(c, &in.Notify.Master) },
		"notify_backup":              func(c *node) { p.setCommand(c, &in.Notify.Backup) },
		"notify_fault":               func(c *node) { p.setCommand(c, &in.Notify.Fault) },
		"notify_stop":                func(c *node) { p.setCommand(c, &in.Notify.Stop) },
		"notify":                     func(c *node) { p.setCommand(c, &in.Notify.Generic) },
		"garp_master_delay":          func(c *node) { p.setSeconds(c, &garp.MasterDelay) },
		"garp_master_repeat":         func(c *node) { p.setInt(c, &garp.MasterRepeat, 1, math.MaxInt32) },
		"garp_master_refresh":        func(c *node) { p.setSeconds(c, &garp.MasterRefresh) },
		"garp_master_refresh_repeat": func(c *node) { p.setInt(c, &garp.MasterRefreshRepeat, 1, math.MaxInt32) },
		"garp_lower_prio_delay":      func(c *node) { p.setSeconds(c, &garp.LowerPrioDelay) },
		"garp_lower_prio_repeat":     func(c *node) { p.setInt(c, &garp.LowerPrioRepeat, 1, math.MaxInt32) },
		"use_vmac": func(c *node) {
			in.UseVMAC = true
			for _, a := range c.args() {
				if strings.Contains(a.text, ":") {
					p.warnf(c, "use_vmac: a MAC address (%s) is not implemented by vipd", a.text)
					continue
				}
				if len(a.text) > 15 {
					p.errorf(c, "use_vmac %s: interface name longer than 15 characters", a.text)
					continue
				}
				in.VMACName = a.text
			}
		},
		"vmac_xmit_base": func(c *node) { in.VMACXmitBase = p.pureFlag(c) },
		"accept":         func(c *node) { in.NoAccept = !p.pureFlag(c) },
		"no_accept":      func(c *node) { in.NoAccept = p.pureFlag(c) },
		"strict_mode": func(c *node) {
			if v, ok := p.boolArg(c); ok {
				in.StrictMode = v
			}
		},
	}, wireNotImplInstance), notImplInstance)
}

// oldUnicastChecksum reads "old_unicast_checksum [never]"; any other
// argument is an error (vrrp_parser.c vrrp_unicast_chksum_handler:
// "Unknown old_unicast_chksum mode", which fails keepalived -t).
func (p *parser) oldUnicastChecksum(c *node) bool {
	a := c.args()
	if len(a) == 0 {
		return true
	}
	if len(a) > 1 {
		p.warnf(c, "%s: extra words ignored: %s", c.kw(), joinRaw(a[1:]))
	}
	if a[0].text != "never" {
		p.errorf(c, "old_unicast_checksum %s: the only argument it takes is never", a[0].text)
	}
	return false
}

// instanceBool reads a true/false instance keyword whose global default
// Normalize applies (lower_prio_no_advert, higher_prio_send_advert): an
// explicit false is remembered so that a global true cannot override it.
func (p *parser) instanceBool(c *node, in *config.Instance, dst *bool) {
	v, ok := p.boolArg(c)
	if !ok {
		return
	}
	*dst = v
	if !v {
		if p.explicitFalse == nil {
			p.explicitFalse = map[*config.Instance][]*node{}
		}
		p.explicitFalse[in] = append(p.explicitFalse[in], c)
	}
}

// authentication reads "authentication { auth_type PASS|AH auth_pass X }".
// keepalived reads one keyword per line and ignores what follows a
// keyword's value, so "auth_type PASS auth_pass 1111" on one line sets no
// password, and keepalived then runs the instance without authentication
// (vrrp.c: "Authentication specified but no password given"). vipd does the
// same, with a warning, so that it stays compatible with a keepalived peer
// reading the same file.
func (p *parser) authentication(n *node, in *config.Instance) {
	if !p.needBlock(n) {
		return
	}
	if in.Auth == nil {
		in.Auth = &config.Auth{}
	}
	auth := in.Auth
	h := handlers{}
	h["auth_type"] = func(c *node) {
		a := c.args()
		if len(a) == 0 {
			p.errorf(c, "auth_type: missing value")
			return
		}
		switch a[0].text {
		case "PASS", "AH":
			auth.Type = a[0].text
		default:
			p.errorf(c, "auth_type %s: must be PASS or AH", a[0].text)
		}
		p.authRest(c, a[1:], h)
	}
	h["auth_pass"] = func(c *node) {
		a := c.args()
		if len(a) == 0 {
			p.errorf(c, "auth_pass: missing value")
			return
		}
		pass := a[0].text
		if len(pass) > 8 {
			p.warnf(c, "auth_pass: longer than 8 characters, truncated to %q as keepalived does", pass[:8])
			pass = pass[:8]
		}
		auth.Pass = pass
		p.authRest(c, a[1:], h)
	}
	p.walk(n, "authentication", h, nil)
}

// authRest warns about words after an authentication keyword's value,
// which keepalived ignores.
func (p *parser) authRest(c *node, rest []word, h handlers) {
	if len(rest) == 0 {
		return
	}
	if _, ok := h[rest[0].text]; ok {
		p.warnf(c, "%s on the same line as %s: ignored (as keepalived does); put it on its own line", rest[0].text, c.kw())
		return
	}
	p.warnf(c, "%s: extra words ignored: %s", c.kw(), joinRaw(rest))
}

// vipOptsNotImpl are virtual_ipaddress options vipd accepts but ignores,
// with the number of values each takes.
var vipOptsNotImpl = map[string]int{
	"peer": 1, "home": 0, "-nodad": 0, "mngtmpaddr": 0, "noprefixroute": 0,
	"autojoin": 0, "no_track": 0, "preferred_lft": 1, "use_vmac": 0, "track_group": 1,
}

// vips reads the lines of a virtual_ipaddress block:
// <ip>[/len] [brd X] [dev IF] [scope S] [label L].
func (p *parser) vips(n *node) []config.VIP {
	var out []config.VIP
	for _, l := range p.valueBlock(n) {
		if v, ok := p.vip(n.kw(), l); ok {
			out = append(out, v)
		}
	}
	return out
}

func (p *parser) vip(kw string, l *node) (config.VIP, bool) {
	first := l.words[0].text
	pfx, err := parsePrefix(first)
	if err != nil {
		p.errorf(l, "%s %s: not an IP address", kw, first)
		return config.VIP{}, false
	}
	v := config.VIP{Pos: l.pos, Prefix: pfx}
	ok := true
	w := l.words[1:]
	for len(w) > 0 {
		opt := w[0].text
		needVal := func() (string, bool) {
			if len(w) < 2 {
				p.errorf(l, "%s %s: %s without value", kw, first, opt)
				ok = false
				w = nil
				return "", false
			}
			val := w[1].text
			w = w[2:]
			return val, true
		}
		static := kw == "static_ipaddress"
		switch {
		case opt == "track_group" && static:
			// vrrp_ipaddress.c alloc_ipaddress: looked up while parsing;
			// one not (yet) defined is reported and ignored.
			if val, got := needVal(); got && !p.trackGroups[val] {
				p.warnf(l, "%s %s: track_group %s not found (keepalived ignores it; keepalived -t reports it)", kw, first, val)
			}
			continue
		case opt == "use_vmac" && static:
			p.errorf(l, "%s %s: unknown option use_vmac (not for static addresses)", kw, first)
			ok = false
			w = nil
			continue
		}
		switch opt {
		case "dev":
			if val, got := needVal(); got {
				// keepalived drops the address: "Cannot specify ipaddress
				// device more than once".
				if v.Dev != "" {
					p.errorf(l, "%s %s: dev given twice", kw, first)
					ok = false
				}
				v.Dev = val
			}
		case "scope":
			if val, got := needVal(); got {
				if s, good := scopeName(val); good {
					v.Scope = s
				} else {
					p.errorf(l, "%s %s: scope %s: must be global, site, link, host or nowhere", kw, first, val)
					ok = false
				}
			}
		case "brd", "broadcast":
			if val, got := needVal(); got {
				if pfx.Addr().Unmap().Is6() {
					// keepalived: "VRRP is trying to assign a broadcast ...
					// to the IPv6 address ... skipping VIP".
					p.errorf(l, "%s %s: brd on an IPv6 address", kw, first)
					ok = false
					continue
				}
				switch val {
				case "-":
				case "+":
					p.warnf(l, "%s %s: brd + is not implemented by vipd", kw, first)
				default:
					a, err := parseAddr(val)
					if err != nil || !a.Is4() {
						p.errorf(l, "%s %s: brd %s: not an IPv4 address", kw, first, val)
						ok = false
						continue
					}
					v.Brd = a
				}
			}
		case "label":
			if val, got := needVal(); got {
				// keepalived: "Address label ... is longer than maximum
				// length 15 - removing address".
				if len(val) > 15 {
					p.errorf(l, "%s %s: label %s: longer than 15 characters", kw, first, val)
					ok = false
				}
				v.Label = val
			}
		default:
			if nargs, known := vipOptsNotImpl[opt]; known {
				p.warnf(l, "%s %s: option %s is not implemented by vipd", kw, first, opt)
				if len(w) < 1+nargs {
					w = nil
				} else {
					w = w[1+nargs:]
				}
				continue
			}
			if _, err := parsePrefix(opt); err == nil {
				p.errorf(l, "%s %s: unexpected %s (one address per line)", kw, first, opt)
			} else {
				p.errorf(l, "%s %s: unknown option %s", kw, first, opt)
			}
			ok = false
			w = nil
		}
	}
	// vrrp/vrrp_ipaddress.c parse_ipaddress: "Cannot specify scope for
	// IPv6 addresses - ignoring scope" (the kernel derives it).
	if v.Scope != "" && pfx.Addr().Unmap().Is6() {
		p.warnf(l, "%s %s: scope is not settable on an IPv6 address; ignored (as keepalived does)", kw, first)
		v.Scope = ""
	}
	// "Cannot specify label for IPv6 addresses - ignoring label".
	if v.Label != "" && pfx.Addr().Unmap().Is6() {
		p.warnf(l, "%s %s: label is not settable on an IPv6 address; ignored (as keepalived does)", kw, first)
		v.Label = ""
	}
	return v, ok
}

// scopeName normalises an address/route scope (name or number).
func scopeName(s string) (string, bool) {
	switch s {
	case "global", "universe", "0":
		return "global", true
	case "site", "200":
		return "site", true
	case "link", "253":
		return "link", true
	case "host", "254":
		return "host", true
	case "nowhere", "255":
		return "nowhere", true
	}
	return "", false
}
