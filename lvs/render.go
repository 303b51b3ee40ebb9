package lvs

import (
	"slices"
	"strconv"
	"strings"
)

// Render writes pools the way `ipvsadm -Sn` does: one -A line per service
// followed by one -a line per destination.
func Render(pools []Pool) string {
	var b strings.Builder
	for _, p := range pools {
		b.WriteString(ServiceLine(p.Service))
		b.WriteByte('\n')
		for _, d := range sortedDests(p.Dests) {
			b.WriteString(DestLine(p.Key, d))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// ServiceLine is a service in ipvsadm -Sn form: "-A -t 10.0.0.1:80 -s rr".
func ServiceLine(s Service) string { return "-A " + s.Key.String() + s.flags() }

// DestLine is a destination in ipvsadm -Sn form:
// "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1".
func DestLine(k ServiceKey, d Dest) string {
	return "-a " + k.String() + " -r " + d.Key().String() + " " + forwardFlag(d.Forward) + " -w " + strconv.Itoa(d.Weight)
}

// SortPools orders pools by service key and each pool's destinations by
// address and port, in place: the order of Render and of the backends.
func SortPools(pools []Pool) {
	slices.SortFunc(pools, func(a, b Pool) int { return compareKey(a.Key, b.Key) })
	for i := range pools {
		slices.SortStableFunc(pools[i].Dests, func(a, b Dest) int { return compareDest(a.Key(), b.Key()) })
	}
}
