package ipvs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/lvs"
)

// parseIpvsadmSave reads `ipvsadm -Sn` (ipvsadm 1.31) into pools, sorted as
// Pools sorts them: the independent reading of the kernel's table that the
// VM tests compare Pools with. Anything it does not know is an error, so
// that a format it misreads cannot pass unnoticed.
func parseIpvsadmSave(out string) ([]lvs.Pool, error) {
	var pools []lvs.Pool
	index := map[lvs.ServiceKey]int{}
	for n, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fail := func(format string, a ...any) error {
			return fmt.Errorf("ipvsadm -Sn line %d %q: %s", n+1, line, fmt.Sprintf(format, a...))
		}
		if len(f) < 3 || (f[0] != "-A" && f[0] != "-a") {
			return nil, fail("want -A or -a and a service")
		}
		var k lvs.ServiceKey
		i := 3
		switch f[1] {
		case "-t", "-u", "--sctp-service":
			ap, err := netip.ParseAddrPort(f[2])
			if err != nil {
				return nil, fail("%v", err)
			}
			k = lvs.ServiceKey{Protocol: map[string]string{"-t": lvs.TCP, "-u": lvs.UDP, "--sctp-service": lvs.SCTP}[f[1]], Addr: ap.Addr(), Port: ap.Port()}
		case "-f":
			// ipvsadm prints the mark with %d: 0xfffffff0 is "-16".
			mark, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil || mark < -1<<31 || mark > 1<<32-1 {
				return nil, fail("fwmark %s", f[2])
			}
			k = lvs.ServiceKey{FWMark: uint32(mark)}
			if len(f) > 3 && f[3] == "-6" {
				k.IPv6 = true
				i = 4
			}
		default:
			return nil, fail("service flag %s", f[1])
		}
		opts := map[string]string{}
		for ; i < len(f); i++ {
			switch o := f[i]; o {
			case "-m", "-g", "-i":
				opts["fwd"] = o
			case "-s", "-p", "-M", "-r", "-w", "--tun-type":
				if i+1 == len(f) {
					return nil, fail("%s without a value", o)
				}
				opts[o] = f[i+1]
				i++
			default:
				return nil, fail("option %s", o)
			}
		}
		if f[0] == "-A" {
			s := lvs.Service{Key: k, Scheduler: opts["-s"]}
			if v, ok := opts["-p"]; ok {
				t, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return nil, fail("-p: %v", err)
				}
				s.Timeout = uint32(t)
			}
			if v, ok := opts["-M"]; ok {
				if k.Is6() {
					s.Netmask, _ = strconv.Atoi(v)
				} else if m, err := netip.ParseAddr(v); err == nil && m.Is4() {
					s.Netmask = maskBits(m.As4())
				}
				if s.Netmask <= 0 {
					return nil, fail("-M %s", v)
				}
				if s.Netmask == 32 || s.Netmask == 128 {
					s.Netmask = 0
				}
			}
			if _, dup := index[k]; dup {
				return nil, fail("service listed twice")
			}
			index[k] = len(pools)
			pools = append(pools, lvs.Pool{Service: s, Dests: []lvs.Dest{}})
			continue
		}
		pi, ok := index[k]
		if !ok {
			return nil, fail("destination before its service")
		}
		ap, err := netip.ParseAddrPort(opts["-r"])
		if err != nil {
			return nil, fail("-r: %v", err)
		}
		w, err := strconv.Atoi(opts["-w"])
		if err != nil {
			return nil, fail("-w: %v", err)
		}
		fwd, ok := map[string]string{"-m": lvs.NAT, "-g": lvs.DR, "-i": lvs.TUN}[opts["fwd"]]
		if !ok {
			return nil, fail("no forwarding method")
		}
		if tt, ok := opts["--tun-type"]; ok && (fwd != lvs.TUN || tt != "ipip") {
			return nil, fail("--tun-type %s: only ipip (the default) on tunnels is expected", tt)
		}
		pools[pi].Dests = append(pools[pi].Dests, lvs.Dest{Addr: ap.Addr(), Port: ap.Port(), Weight: w, Forward: fwd})
	}
	lvs.SortPools(pools)
	return pools, nil
}

// maskBits is the prefix length of a contiguous IPv4 mask, -1 otherwise.
func maskBits(b [4]byte) int {
	m := binary.BigEndian.Uint32(b[:])
	n := bits.LeadingZeros32(^m)
	if m<<n != 0 {
		return -1
	}
	return n
}

// poolsDiff compares tables; netip.Addr has no exported fields for cmp.
func poolsDiff(want, got []lvs.Pool) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }))
}

// What ipvsadm 1.31 printed in the VM (Debian 12, kernel 6.1) for a table
// made with ipvsadm (the last service with -f 4294967280): the reference
// for the parser.
const savedByIpvsadm = `-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 0
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -g -w 5
-a -t 10.0.0.1:80 -r 10.0.0.4:80 -i -w 65535 --tun-type ipip
-A -t 10.0.0.1:443 -s wlc -p 300 -M 255.255.255.0
-A --sctp-service 10.0.0.1:3868 -s mh
-A -u [2001:db8::1]:53 -s sh -p 60 -M 64
-a -u [2001:db8::1]:53 -r [2001:db8::6]:53 -m -w 2
-A -f 5 -s rr
-a -f 5 -r 10.0.0.4:0 -i -w 2 --tun-type ipip
-A -f 6 -6 -s rr -p 360
-a -f 6 -6 -r [2001:db8::5]:0 -g -w 2
-A -f -16 -6 -s wrr
`

// savedPools is savedByIpvsadm in lvs's words, in Pools order.
func savedPools() []lvs.Pool {
	a := netip.MustParseAddr
	return []lvs.Pool{
		{Service: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.SCTP, Addr: a("10.0.0.1"), Port: 3868}, Scheduler: "mh"}},
		{Service: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: a("10.0.0.1"), Port: 80}, Scheduler: "rr"}, Dests: []lvs.Dest{
			{Addr: a("10.0.0.2"), Port: 8080, Weight: 0, Forward: lvs.NAT},
			{Addr: a("10.0.0.3"), Port: 80, Weight: 5, Forward: lvs.DR},
			{Addr: a("10.0.0.4"), Port: 80, Weight: 65535, Forward: lvs.TUN},
		}},
		{Service: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.TCP, Addr: a("10.0.0.1"), Port: 443}, Scheduler: "wlc", Timeout: 300, Netmask: 24}},
		{Service: lvs.Service{Key: lvs.ServiceKey{Protocol: lvs.UDP, Addr: a("2001:db8::1"), Port: 53}, Scheduler: "sh", Timeout: 60, Netmask: 64}, Dests: []lvs.Dest{
			{Addr: a("2001:db8::6"), Port: 53, Weight: 2, Forward: lvs.NAT},
		}},
		{Service: lvs.Service{Key: lvs.ServiceKey{FWMark: 5}, Scheduler: "rr"}, Dests: []lvs.Dest{
			{Addr: a("10.0.0.4"), Port: 0, Weight: 2, Forward: lvs.TUN},
		}},
		{Service: lvs.Service{Key: lvs.ServiceKey{FWMark: 6, IPv6: true}, Scheduler: "rr", Timeout: 360}, Dests: []lvs.Dest{
			{Addr: a("2001:db8::5"), Port: 0, Weight: 2, Forward: lvs.DR},
		}},
		{Service: lvs.Service{Key: lvs.ServiceKey{FWMark: 0xfffffff0, IPv6: true}, Scheduler: "wrr"}},
	}
}

func TestParseIpvsadmSave(t *testing.T) {
	got, err := parseIpvsadmSave(savedByIpvsadm)
	if err != nil {
		t.Fatal(err)
	}
	if diff := poolsDiff(savedPools(), got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"-A -t 10.0.0.1:80 -s rr -o",                       // one-packet scheduling: not in lvs
		"-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1",         // no service
		"-A -t 10.0.0.1:80 -s rr -p 10 -M 255.0.255.0",     // not a prefix
		"-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr", // twice
		"-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1 -x 10",
		"-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type gue",
		"-A -f 4294967296 -s rr",
	} {
		if _, err := parseIpvsadmSave(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
