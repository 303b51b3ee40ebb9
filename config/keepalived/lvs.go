package keepalived

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/config"
)

// checkerDefaults are connect_timeout, retry, delay_before_retry, warmup and
// delay_loop given at virtual_server or real_server level: keepalived uses
// them for every checker below that does not set its own.
type checkerDefaults struct {
	connectTimeout   config.Duration
	retry            *int
	delayBeforeRetry config.Duration
	warmup           config.Duration
	delayLoop        config.Duration
}

func (d checkerDefaults) apply(c *config.Checker) {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.connectTimeout
	}
	if c.Retry == nil && d.retry != nil {
		r := *d.retry
		c.Retry = &r
	}
	if c.DelayBeforeRetry == 0 {
		c.DelayBeforeRetry = d.delayBeforeRetry
	}
	if c.Warmup == 0 {
		c.Warmup = d.warmup
	}
	if c.DelayLoop == 0 {
		c.DelayLoop = d.delayLoop
	}
}

// over returns d with the fields set in o replacing d's.
func (d checkerDefaults) over(o checkerDefaults) checkerDefaults {
	if o.connectTimeout != 0 {
		d.connectTimeout = o.connectTimeout
	}
	if o.retry != nil {
		d.retry = o.retry
	}
	if o.delayBeforeRetry != 0 {
		d.delayBeforeRetry = o.delayBeforeRetry
	}
	if o.warmup != 0 {
		d.warmup = o.warmup
	}
	if o.delayLoop != 0 {
		d.delayLoop = o.delayLoop
	}
	return d
}

func (p *parser) addDefaultHandlers(h handlers, d *checkerDefaults) {
	h["connect_timeout"] = func(c *node) { p.setSeconds(c, &d.connectTimeout) }
	h["retry"] = func(c *node) { p.setIntPtr(c, &d.retry, 0, math.MaxInt32) }
	h["delay_before_retry"] = func(c *node) { p.setSeconds(c, &d.delayBeforeRetry) }
	h["warmup"] = func(c *node) { p.setSeconds(c, &d.warmup) }
}

// defaultPersistenceTimeout is a bare persistence_timeout: keepalived's
// include/libipvs.h IPVS_SVC_PERSISTENT_TIMEOUT (6*60 seconds).
const defaultPersistenceTimeout = config.Duration(6 * time.Minute)

// maxPersistenceTimeout is include/ipvswrapper.h LVS_MAX_TIMEOUT (31 days).
const maxPersistenceTimeout = 86400 * 31

// --- virtual_server_group ---

func (p *parser) virtualServerGroup(n *node) {
	name, ok := p.name(n)
	if !ok || !p.needBlock(n) {
		return
	}
	g := &config.VirtualServerGroup{Pos: n.pos, Name: name}
	// check/check_parser.c vsg_handler allocates a second group of the same
	// name without complaint, and ipvs_get_group_by_name finds the first:
	// the later definition is never used.
	dup := false
	for _, other := range p.m.VirtualServerGroups {
		if other.Name == name {
			p.warnf(n, "virtual_server_group %s: defined twice (first at %s:%d); this definition is ignored, the first is used (as keepalived does)", name, other.Pos.File, other.Pos.Line)
			dup = true
			break
		}
	}
	if !dup {
		p.m.VirtualServerGroups = append(p.m.VirtualServerGroups, g)
	}
	for _, l := range p.valueLines(n) {
		if e, ok := p.vsgEntry(l); ok {
			g.Members = append(g.Members, e)
		}
	}
}

// vsgEntry reads "IP PORT", "IP-LAST PORT" or "fwmark N".
func (p *parser) vsgEntry(l *node) (config.VSGEntry, bool) {
	e := config.VSGEntry{Pos: l.pos}
	w := texts(l.words)
	if w[0] == "fwmark" {
		if len(w) < 2 {
			p.errorf(l, "virtual_server_group fwmark: missing value")
			return e, false
		}
		v, ok := p.intValue(l, "fwmark", w[1], 1, math.MaxUint32>>1)
		e.FWMark = v
		return e, ok
	}
	addr, last, isRange := strings.Cut(w[0], "-")
	a, err := parseAddr(addr)
	if err != nil {
		p.errorf(l, "virtual_server_group entry %s: not an IP address", w[0])
		return e, false
	}
	e.Address = a
	if isRange {
		to, ok := rangeEnd(a, last)
		if !ok {
			p.errorf(l, "virtual_server_group entry %s: bad range (a.b.c.d-e)", w[0])
			return e, false
		}
		e.RangeTo = to
	}
	if len(w) < 2 {
		p.errorf(l, "virtual_server_group entry %s: missing port", w[0])
		return e, false
	}
	port, ok := p.intValue(l, "port", w[1], 0, 65535)
	e.Port = port
	if len(w) > 2 {
		p.warnf(l, "virtual_server_group entry %s: extra words ignored: %s", w[0], strings.Join(w[2:], " "))
	}
	return e, ok
}

// rangeEnd computes the last address of a range: the last byte (IPv4) or
// last 16-bit group in hex (IPv6) replaced by last, which must not be below
// the first.
func rangeEnd(a netip.Addr, last string) (netip.Addr, bool) {
	if a.Is4() {
		b := a.As4()
		v, err := strconv.ParseUint(last, 10, 8)
		if err != nil || byte(v) < b[3] {
			return netip.Addr{}, false
		}
		b[3] = byte(v)
		return netip.AddrFrom4(b), true
	}
	b := a.As16()
	v, err := strconv.ParseUint(last, 16, 16)
	if err != nil || v < uint64(b[14])<<8|uint64(b[15]) {
		return netip.Addr{}, false
	}
	b[14], b[15] = byte(v>>8), byte(v)
	return netip.AddrFrom16(b), true
}

// --- virtual_server ---

func (p *parser) virtualServer(n *node) {
	if !p.needBlock(n) {
		return
	}
	a := n.args()
	vs := &config.VirtualServer{Pos: n.pos, Name: joinRaw(a)}
	switch {
	case len(a) == 0:
		p.errorf(n, "virtual_server: missing address and port, fwmark or group")
		return
	case a[0].text == "fwmark":
		if len(a) < 2 {
			p.errorf(n, "virtual_server fwmark: missing value")
			return
		}
		v, ok := p.intValue(n, "virtual_server fwmark", a[1].text, 1, math.MaxUint32>>1)
		if !ok {
			return
		}
		vs.FWMark = v
	case a[0].text == "group":
		if len(a) < 2 {
			p.errorf(n, "virtual_server group: missing name")
			return
		}
		vs.Group = a[1].text
	default:
		addr, ok := p.addrValue(n, "virtual_server", a[0].text)
		if !ok {
			return
		}
		vs.Address = addr
		if len(a) < 2 {
			p.errorf(n, "virtual_server %s: missing port", a[0].text)
			return
		}
		port, ok := p.intValue(n, "virtual_server "+a[0].text+" port", a[1].text, 0, 65535)
		if !ok {
			return
		}
		vs.Port = port
	}
	p.m.VirtualServers = append(p.m.VirtualServers, vs)
	var defs checkerDefaults
	var rsNodes []*node
	h := handlers{
		"delay_loop": func(c *node) {
			p.setSeconds(c, &vs.DelayLoop)
		},
		"lb_algo":    func(c *node) { p.setString(c, &vs.LBAlgo) },
		"lvs_sched":  func(c *node) { p.setString(c, &vs.LBAlgo) },
		"lb_kind":    func(c *node) { p.setString(c, &vs.LBKind) },
		"lvs_method": func(c *node) { p.setString(c, &vs.LBKind) },
		"persistence_timeout": func(c *node) {
			// check_parser.c pto_handler: without a value the timeout
			// is IPVS_SVC_PERSISTENT_TIMEOUT (6 minutes).
			if len(c.args()) == 0 {
				vs.PersistenceTimeout = defaultPersistenceTimeout
				return
			}
			// read_unsigned_strvec(1, LVS_MAX_TIMEOUT): whole seconds,
			// 1..2678400 (31 days); 0 fails keepalived -t.
			if v, ok := p.intArg(c, 1, maxPersistenceTimeout); ok {
				vs.PersistenceTimeout = config.Duration(time.Duration(v) * time.Second)
			}
		},
		"persistence_granularity": func(c *node) { p.setString(c, &vs.PersistenceGranularity) },
		"protocol": func(c *node) {
			if s, ok := p.arg(c); ok {
				switch strings.ToUpper(s) {
				case "TCP", "UDP", "SCTP":
					vs.Protocol = strings.ToUpper(s)
				default:
					p.errorf(c, "protocol %s: must be TCP, UDP or SCTP", s)
				}
			}
		},
		"virtualhost":        func(c *node) { p.setString(c, &vs.VirtualHost) },
		"quorum":             func(c *node) { p.setInt(c, &vs.Quorum, 1, math.MaxInt32) },
		"hysteresis":         func(c *node) { p.setInt(c, &vs.Hysteresis, 0, math.MaxInt32) },
		"quorum_up":          func(c *node) { p.setCommand(c, &vs.QuorumUp) },
		"quorum_down":        func(c *node) { p.setCommand(c, &vs.QuorumDown) },
		"alpha":              func(c *node) { vs.Alpha = p.pureFlag(c) },
		"omega":              func(c *node) { vs.Omega = p.pureFlag(c) },
		"inhibit_on_failure": func(c *node) { vs.Inhibit = p.pureFlag(c) },
		"ha_suspend":         func(c *node) { vs.HASuspend = p.pureFlag(c) },
		"sorry_server": func(c *node) {
			if rs, ok := p.serverAddr(c); ok {
				vs.SorryServer = rs
			}
		},
		"real_server": func(c *node) { rsNodes = append(rsNodes, c) },
	}
	p.addDefaultHandlers(h, &defs)
	p.walkObj(vs, n, "virtual_server", h, notImplVS)
	// Real servers are read after the whole block so that checker defaults
	// given after them still apply, as in keepalived.
	for _, c := range rsNodes {
		if rs := p.realServer(c, defs); rs != nil {
			vs.RealServers = append(vs.RealServers, rs)
		}
	}
}

// serverAddr reads "IP [PORT]" after real_server / sorry_server.
func (p *parser) serverAddr(n *node) (*config.RealServer, bool) {
	a := n.args()
	if len(a) == 0 {
		p.errorf(n, "%s: missing address", n.kw())
		return nil, false
	}
	addr, ok := p.addrValue(n, n.kw(), a[0].text)
	if !ok {
		return nil, false
	}
	rs := &config.RealServer{Pos: n.pos, Address: addr}
	if len(a) > 1 {
		port, ok := p.intValue(n, n.kw()+" "+a[0].text+" port", a[1].text, 0, 65535)
		if !ok {
			return nil, false
		}
		rs.Port = port
	}
	if len(a) > 2 {
		p.warnf(n, "%s: extra words ignored: %s", n.kw(), joinRaw(a[2:]))
	}
	return rs, true
}

func (p *parser) realServer(n *node, vsDefs checkerDefaults) *config.RealServer {
	rs, ok := p.serverAddr(n)
	if !ok {
		return nil
	}
	if !n.hasBlock {
		return rs // a real server without checkers is allowed
	}
	var defs checkerDefaults
	h := handlers{
		"weight": func(c *node) {
			// check/check_parser.c weight_handler: 0..65535; 0 is a
			// real weight (no new connections), not "the default".
			p.setIntPtr(c, &rs.Weight, 0, 65535)
		},
		"inhibit_on_failure": func(c *node) {
			// check_parser.c rs_inhibit_handler reads true/false.
			if v, ok := p.boolArg(c); ok {
				rs.Inhibit = v
			}
		},
		"notify_up":   func(c *node) { p.setCommand(c, &rs.NotifyUp) },
		"notify_down": func(c *node) { p.setCommand(c, &rs.NotifyDown) },
		"lvs_method":  func(c *node) { p.setString(c, &rs.LBKind) },
		"lb_kind":     func(c *node) { p.setString(c, &rs.LBKind) },
		"delay_loop":  func(c *node) { p.setSeconds(c, &defs.delayLoop) },
		"alpha":       func(c *node) { p.notImplemented(c) },
		"virtualhost": func(c *node) { p.notImplemented(c) },
	}
	p.addDefaultHandlers(h, &defs)
	for _, typ := range []string{config.CheckTCP, config.CheckHTTP, config.CheckSSL, config.CheckMisc, config.CheckDNS, config.CheckSMTP} {
		h[typ] = func(c *node) {
			if ck := p.checker(c); ck != nil {
				rs.Checkers = append(rs.Checkers, ck)
			}
		}
	}
	p.walkObj(rs, n, "real_server", h, notImplRS)
	d := vsDefs.over(defs)
	for _, ck := range rs.Checkers {
		d.apply(ck)
	}
	return rs
}

func (p *parser) checker(n *node) *config.Checker {
	if !p.needBlock(n) {
		return nil
	}
	ck := &config.Checker{Pos: n.pos, Type: n.kw()}
	h := handlers{
		"connect_ip": func(c *node) {
			if a, ok := p.addrArg(c); ok {
				ck.ConnectIP = a
			}
		},
		"connect_port": func(c *node) { p.setInt(c, &ck.ConnectPort, 1, 65535) },
		"bindto": func(c *node) {
			if a, ok := p.addrArg(c); ok {
				ck.BindTo = a
			}
		},
		"connect_timeout": func(c *node) { p.setSeconds(c, &ck.ConnectTimeout) },
		"retry":           func(c *node) { p.setIntPtr(c, &ck.Retry, 0, math.MaxInt32) },
		"nb_get_retry": func(c *node) {
			// check_http.c installs nb_get_retry (deprecated, "please use
			// 'retry'") for HTTP_GET and SSL_GET only; in TCP_CHECK and
			// MISC_CHECK keepalived does not know it ("Unknown keyword
			// 'nb_get_retry'", keepalived -t exits 5) and the checker keeps
			// its retry.
			if ck.Type != config.CheckHTTP && ck.Type != config.CheckSSL {
				p.warnf(c, "nb_get_retry: keepalived ignores it in %s (it is only for HTTP_GET and SSL_GET; keepalived -t reports an unknown keyword); so does vipd, use retry", ck.Type)
				return
			}
			p.warnf(c, "nb_get_retry: deprecated, use retry (keepalived -t reports it)")
			p.setIntPtr(c, &ck.Retry, 0, math.MaxInt32)
		},
		"delay_before_retry": func(c *node) { p.setSeconds(c, &ck.DelayBeforeRetry) },
		"delay_loop":         func(c *node) { p.setSeconds(c, &ck.DelayLoop) },
		"warmup":             func(c *node) { p.setSeconds(c, &ck.Warmup) },
	}
	switch ck.Type {
	case config.CheckHTTP, config.CheckSSL:
		h["url"] = func(c *node) {
			if u, ok := p.url(c); ok {
				ck.URLs = append(ck.URLs, u)
			}
		}
		h["virtualhost"] = func(c *node) { p.setString(c, &ck.VirtualHost) }
	case config.CheckDNS:
		h["type"] = func(c *node) {
			if v, ok := p.arg(c); ok {
				ck.DNSType = strings.ToUpper(v)
			}
		}
		h["name"] = func(c *node) { p.setString(c, &ck.DNSName) }
	case config.CheckSMTP:
		h["helo_name"] = func(c *node) { p.setString(c, &ck.HeloName) }
	case config.CheckMisc:
		h["misc_path"] = func(c *node) {
			if cmd, user, group, ok := p.commandArg(c); ok {
				ck.MiscPath = cmd
				if user != "" {
					ck.User = user
				}
				if group != "" {
					p.warnf(c, "misc_path: group %s is not implemented by vipd", group)
				}
			}
		}
		h["misc_timeout"] = func(c *node) { p.setSeconds(c, &ck.MiscTimeout) }
		h["misc_dynamic"] = func(c *node) { ck.MiscDynamic = p.pureFlag(c) }
		h["user"] = func(c *node) {
			var group string
			p.userGroup(c, &ck.User, &group)
			if group != "" {
				p.warnf(c, "user: group %s is not implemented by vipd", group)
			}
		}
	}
	p.walkObj(ck, n, ck.Type, h, notImplChecker)
	if ck.Type == config.CheckMisc && ck.MiscPath == "" {
		p.errorf(n, "MISC_CHECK: no misc_path")
		return nil
	}
	return ck
}

func (p *parser) url(n *node) (config.URL, bool) {
	var u config.URL
	if !p.needBlock(n) {
		return u, false
	}
	p.walk(n, "url", handlers{
		"path":   func(c *node) { p.setString(c, &u.Path) },
		"digest": func(c *node) { p.setString(c, &u.Digest) },
		"status_code": func(c *node) {
			if len(c.args()) == 0 {
				p.errorf(c, "status_code: missing value")
			}
			for _, a := range c.args() {
				lo, hi, isRange := strings.Cut(a.text, "-")
				if !isRange {
					hi = lo
				}
				from, ok1 := p.intValue(c, "status_code", lo, 100, 599)
				if !ok1 {
					continue
				}
				to, ok2 := p.intValue(c, "status_code", hi, from, 599)
				if !ok2 {
					continue
				}
				for s := from; s <= to; s++ {
					u.StatusCode = append(u.StatusCode, s)
				}
			}
		},
	}, notImplURL)
	if u.Path == "" {
		p.errorf(n, "url: no path")
		return u, false
	}
	return u, true
}
