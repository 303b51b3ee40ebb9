package keepalived

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultIPRoute2Dir is where keepalived 2.2.7 reads the iproute2 name
// tables (lib/rttables.c): rt_tables, rt_dsfield, rt_realms, rt_protos,
// rt_scopes and group.
const DefaultIPRoute2Dir = "/etc/iproute2"

// rtTable is one iproute2 name table: the file keepalived reads, the
// largest id it takes, and the names it knows without the file.
type rtTable struct {
	file     string
	max      uint64
	defaults []rtName
}

type rtName struct {
	id   uint32
	name string
}

// The tables keepalived looks names up in, with its built-in defaults
// (added for the ids the file does not name).
var (
	rtTables = &rtTable{file: "rt_tables", max: math.MaxUint32, defaults: []rtName{
		{253, "default"}, {254, "main"}, {255, "local"},
	}}
	rtDSField = &rtTable{file: "rt_dsfield", max: 255}
	rtRealms  = &rtTable{file: "rt_realms", max: 255}
	rtProtos  = &rtTable{file: "rt_protos", max: 255, defaults: []rtName{
		{0, "none"}, {1, "redirect"}, {2, "kernel"}, {3, "boot"}, {4, "static"},
		{8, "gated"}, {9, "ra"}, {10, "mrt"}, {11, "zebra"}, {12, "bird"}, {42, "babel"},
		{13, "dnrouted"}, {14, "xorp"}, {15, "ntk"}, {16, "dhcp"},
	}}
	rtScopes = &rtTable{file: "rt_scopes", max: 255, defaults: []rtName{
		{0, "global"}, {255, "nowhere"}, {254, "host"}, {253, "link"}, {200, "site"},
	}}
	rtGroups = &rtTable{file: "group", max: math.MaxInt32}
)

// rtLookup resolves s as keepalived's find_entry does: a whole C number
// (strtoul base 0, so 0x10 and 010 too) truncated to 32 bits and at most
// t.max, or else a name of the table's file, or of its defaults.
func (p *parser) rtLookup(t *rtTable, s string) (uint32, bool) {
	if v, n, ok := cStrtoul(s, 0); ok && n == len(s) {
		id := uint32(v)
		return id, uint64(id) <= t.max
	}
	for _, e := range p.rtNames(t) {
		if e.name == s {
			return e.id, true
		}
	}
	return 0, false
}

// rtNames reads the table's file once (lines of exactly two words, the
// id first; '#' starts a comment) and adds the defaults for ids it lacks.
func (p *parser) rtNames(t *rtTable) []rtName {
	if names, ok := p.rtCache[t]; ok {
		return names
	}
	var names []rtName
	dir := p.opts.IPRoute2Dir
	if dir == "" {
		dir = DefaultIPRoute2Dir
	}
	if b, err := os.ReadFile(filepath.Join(dir, t.file)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.IndexAny(line, "#!"); i >= 0 {
				line = line[:i]
			}
			f := strings.Fields(line)
			if len(f) != 2 || strings.HasPrefix(f[0], "-") {
				continue
			}
			v, n, ok := cStrtoul(f[0], 0)
			if !ok || n != len(f[0]) || v > t.max {
				continue
			}
			names = append(names, rtName{uint32(v), f[1]})
		}
	}
	for _, d := range t.defaults {
		found := false
		for _, e := range names {
			if e.id == d.id {
				found = true
				break
			}
		}
		if !found {
			names = append(names, d)
		}
	}
	if p.rtCache == nil {
		p.rtCache = map[*rtTable][]rtName{}
	}
	p.rtCache[t] = names
	return names
}

// cStrtoul is C's strtoul on a 64-bit host: leading white space, an
// optional sign (a '-' negates modulo 2^64), base 0 reads 0x.. as hex and
// 0.. as octal; an overflow gives MaxUint64. It returns the value, how many
// bytes of s were read, and whether any digit was.
func cStrtoul(s string, base int) (uint64, int, bool) {
	i := 0
	for i < len(s) && strings.IndexByte(" \t\n\v\f\r", s[i]) >= 0 {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	hexPrefix := i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') &&
		i+2 < len(s) && digitVal(s[i+2]) < 16
	switch {
	case (base == 0 || base == 16) && hexPrefix:
		base = 16
		i += 2
	case base == 0 && i < len(s) && s[i] == '0':
		base = 8
	case base == 0:
		base = 10
	}
	var v uint64
	overflow := false
	start := i
	for ; i < len(s); i++ {
		d := digitVal(s[i])
		if d >= base {
			break
		}
		if v > (math.MaxUint64-uint64(d))/uint64(base) {
			overflow = true
		}
		v = v*uint64(base) + uint64(d)
	}
	if i == start {
		return 0, 0, false
	}
	switch {
	case overflow:
		v = math.MaxUint64
	case neg:
		v = -v
	}
	return v, i, true
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// kaUnsigned is keepalived's read_unsigned_base (lib/parser.c): the whole
// word a number in [lo, hi], no sign. It returns why not, in keepalived's
// words, when it is not.
func kaUnsigned(s string, base int, lo, hi uint64) (uint64, string) {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	v, n, _ := cStrtoul(t, base)
	switch {
	case strings.HasPrefix(t, "-"):
		return 0, "negative number"
	case n != len(t) && t != "":
		return 0, "invalid number"
	case v > math.MaxUint32 && hi <= math.MaxUint32:
		return 0, "number outside unsigned integer range"
	case v < lo || v > hi:
		return 0, "number outside range [" + strconv.FormatUint(lo, 10) + ", " + strconv.FormatUint(hi, 10) + "]"
	}
	return v, ""
}
