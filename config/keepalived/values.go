package keepalived

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/config"
)

// parser maps the statement tree onto the model.
type parser struct {
	m     *config.Model
	diags *config.Diagnostics
	// emptyScripts are vrrp_scripts declared without a script line (for
	// instance because it is @conditional for another host): keepalived
	// ignores them and the track_script entries that name them.
	emptyScripts map[string]bool
	// explicitFalse are instance keywords set to false whose global
	// default may be true (lower_prio_no_advert ...).
	explicitFalse map[*config.Instance][]*node
	opts          Options
	// rtCache holds the iproute2 name tables read so far.
	rtCache map[*rtTable][]rtName
	// trackGroups are the track_group blocks seen so far: keepalived looks
	// a static entry's track_group up while parsing, so only earlier ones
	// count.
	trackGroups map[string]bool
}

func (p *parser) errorf(n *node, format string, args ...any) {
	p.diags.Errorf(n.pos, format, args...)
}

func (p *parser) warnf(n *node, format string, args ...any) {
	p.diags.Warnf(n.pos, format, args...)
}

func (p *parser) notImplemented(n *node) {
	p.warnf(n, "keyword %s is not implemented by vipd", n.kw())
}

// arg returns the single argument of n. A missing argument is an error;
// extra words are a warning.
func (p *parser) arg(n *node) (string, bool) {
	a := n.args()
	if len(a) == 0 {
		p.errorf(n, "%s: missing value", n.kw())
		return "", false
	}
	if len(a) > 1 {
		p.warnf(n, "%s: extra words ignored: %s", n.kw(), joinRaw(a[1:]))
	}
	return a[0].text, true
}

// intArg reads the single argument of n as an integer in [lo, hi].
func (p *parser) intArg(n *node, lo, hi int) (int, bool) {
	s, ok := p.arg(n)
	if !ok {
		return 0, false
	}
	return p.intValue(n, n.kw(), s, lo, hi)
}

// intValue reads s (the value of what, at n) as an integer in [lo, hi].
func (p *parser) intValue(n *node, what, s string, lo, hi int) (int, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.errorf(n, "%s %s: not an integer", what, s)
		return 0, false
	}
	if v < int64(lo) || v > int64(hi) {
		p.errorf(n, "%s %s: must be %d..%d", what, s, lo, hi)
		return 0, false
	}
	return int(v), true
}

// secondsArg reads the single argument of n as keepalived seconds.
func (p *parser) secondsArg(n *node) (config.Duration, bool) {
	s, ok := p.arg(n)
	if !ok {
		return 0, false
	}
	return p.secondsValue(n, n.kw(), s)
}

func (p *parser) secondsValue(n *node, what, s string) (config.Duration, bool) {
	d, err := parseSeconds(s)
	if err != nil {
		p.errorf(n, "%s %s: %v", what, s, err)
		return 0, false
	}
	return d, true
}

// pureFlag reads a keyword keepalived treats as a plain flag: its handler
// sets the flag and never looks at an argument, so "nopreempt 1",
// "nopreempt 0" and "nopreempt false" all set it. vipd does the same and
// warns that the argument is ignored.
func (p *parser) pureFlag(n *node) bool {
	if a := n.args(); len(a) > 0 {
		p.warnf(n, "%s %s: keepalived ignores the argument and sets %s; so does vipd", n.kw(), joinRaw(a), n.kw())
	}
	return true
}

// boolArg reads keepalived's check_true_false argument (lib/parser.c):
// none means true; exactly true/on/yes or false/off/no; anything else
// ("1", "TRUE") is an error, as keepalived -t reports it.
func (p *parser) boolArg(n *node) (bool, bool) {
	a := n.args()
	if len(a) == 0 {
		return true, true
	}
	if len(a) > 1 {
		p.warnf(n, "%s: extra words ignored: %s", n.kw(), joinRaw(a[1:]))
	}
	switch a[0].text {
	case "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	p.errorf(n, "%s %s: must be true, on, yes, false, off or no", n.kw(), a[0].text)
	return false, false
}

// sockAddrArg reads the single argument of n as keepalived's
// inet_stosockaddr does (lib/utils.c): whatever follows a '-' or '/' is
// dropped, so "10.0.0.2/24" is 10.0.0.2.
func (p *parser) sockAddrArg(n *node) (netip.Addr, bool) {
	s, ok := p.arg(n)
	if !ok {
		return netip.Addr{}, false
	}
	return p.sockAddrValue(n, n.kw(), s)
}

func (p *parser) sockAddrValue(n *node, what, s string) (netip.Addr, bool) {
	if i := strings.IndexAny(s, "-/"); i >= 0 {
		if strings.Contains(s, "-") {
			i = strings.IndexByte(s, '-')
		}
		a, err := parseAddr(s[:i])
		if err != nil {
			p.errorf(n, "%s %s: not an IP address", what, s)
			return netip.Addr{}, false
		}
		p.warnf(n, "%s %s: %s ignored, the address is %s (as keepalived does)", what, s, s[i:], a)
		return a, true
	}
	return p.addrValue(n, what, s)
}

// addrArg reads the single argument of n as an IP address.
func (p *parser) addrArg(n *node) (netip.Addr, bool) {
	s, ok := p.arg(n)
	if !ok {
		return netip.Addr{}, false
	}
	return p.addrValue(n, n.kw(), s)
}

func (p *parser) addrValue(n *node, what, s string) (netip.Addr, bool) {
	a, err := parseAddr(s)
	if err != nil {
		p.errorf(n, "%s %s: not an IP address", what, s)
		return netip.Addr{}, false
	}
	return a, true
}

// commandArg reads "KEYWORD COMMAND [USER [GROUP]]" (notify_*, script,
// misc_path, ...): the command is one word, quoted when it has arguments
// ("/path/script.sh arg"), and is returned without its quotes; the words
// after it name the user and group to run it as.
func (p *parser) commandArg(n *node) (cmd, user, group string, ok bool) {
	a := n.args()
	if len(a) == 0 {
		p.errorf(n, "%s: missing command", n.kw())
		return "", "", "", false
	}
	if len(a) > 1 {
		user = a[1].text
	}
	if len(a) > 2 {
		group = a[2].text
	}
	if len(a) > 3 {
		p.warnf(n, "%s: extra words ignored: %s (quote a command with arguments)", n.kw(), joinRaw(a[3:]))
	}
	return a[0].text, user, group, true
}

func joinRaw(ws []word) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.raw
	}
	return strings.Join(parts, " ")
}

func texts(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out
}

// parseAddr reads an IPv4 or IPv6 address without zone.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("zone not allowed")
	}
	return a, nil
}

// parsePrefix reads "addr" (a host prefix) or "addr/len"; the address keeps
// its host bits (10.0.0.5/24 stays 10.0.0.5/24).
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := parseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if pfx.Addr().Zone() != "" {
		return netip.Prefix{}, errors.New("zone not allowed")
	}
	return pfx, nil
}

// parseSeconds reads keepalived's decimal seconds ("1", "0.1", "2.5") with up
// to microsecond precision.
func parseSeconds(s string) (config.Duration, error) {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" && (!hasDot || frac == "") {
		return 0, errors.New("not a number of seconds")
	}
	if !allDigits(intPart) || !allDigits(frac) {
		return 0, errors.New("not a number of seconds")
	}
	if len(intPart) > 9 {
		return 0, errors.New("too large")
	}
	if len(frac) > 6 {
		return 0, errors.New("more precise than a microsecond")
	}
	var secs int64
	if intPart != "" {
		v, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not a number of seconds")
		}
		secs = v
	}
	var us int64
	if frac != "" {
		v, err := strconv.ParseInt((frac + "000000")[:6], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not a number of seconds")
		}
		us = v
	}
	return config.Duration(time.Duration(secs)*time.Second + time.Duration(us)*time.Microsecond), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// wordSet builds a set from a space-separated list.
func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}
