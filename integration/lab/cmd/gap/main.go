// Command gap measures a VRRP failover on the wire from a pcap file, as scripts/demo.sh does
// after a crash or a graceful hand-over:
//
//	gap FILE VRID OLD_MASTER NEW_MASTER
//
// It prints the gap from the last advert of OLD_MASTER for VRID (its priority-0 advert in a
// graceful hand-over) to the first advert of NEW_MASTER, and the protocol bound the new master
// had to respect: Skew_Time after a priority-0 advert, else Master_Down_Interval
// (3 x Advertisement_Interval + Skew_Time), computed from the adverts' own interval and the new
// master's priority. Exit status 1 when the gap cannot be read off the capture.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gap: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	if len(args) != 4 {
		return errors.New("usage: gap FILE VRID OLD_MASTER NEW_MASTER")
	}
	vrid, err := strconv.Atoi(args[1])
	if err != nil || vrid < 1 || vrid > 255 {
		return fmt.Errorf("VRID %q: want 1..255", args[1])
	}
	oldM, err := netip.ParseAddr(args[2])
	if err != nil {
		return fmt.Errorf("old master: %w", err)
	}
	newM, err := netip.ParseAddr(args[3])
	if err != nil {
		return fmt.Errorf("new master: %w", err)
	}
	pkts, err := lab.ReadPcap(args[0])
	if err != nil {
		return err
	}
	m, err := measure(pkts, vrid, oldM, newM)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	fmt.Fprintln(w, m)
	return nil
}

// measurement is one failover read off a capture.
type measurement struct {
	Gap      time.Duration
	Bound    time.Duration
	Graceful bool // the old master's last advert had priority 0
	Version  int
	Interval time.Duration // advert interval of the new master
	Priority int           // priority of the new master
}

func (m measurement) String() string {
	kind := "3 x advert + skew"
	if m.Graceful {
		kind = "skew (priority 0 seen)"
	}
	return fmt.Sprintf("failover gap: %s (protocol bound %s = %s, %s ms off it; VRRPv%d, advert %s, new master priority %d)",
		ms(m.Gap), kind, ms(m.Bound), signedMS(m.Gap-m.Bound), m.Version, m.Interval, m.Priority)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func signedMS(d time.Duration) string {
	return fmt.Sprintf("%+.1f", float64(d)/float64(time.Millisecond))
}

// measure finds the failover from oldM to newM for vrid in the captured frames.
func measure(pkts []lab.Packet, vrid int, oldM, newM netip.Addr) (measurement, error) {
	adverts := lab.VRRPAdverts(pkts)
	gap, ok := lab.MasterGap(adverts, vrid, oldM, newM)
	if !ok {
		return measurement{}, fmt.Errorf("no advert of VRID %d from %s after one from %s (%d adverts captured)", vrid, newM, oldM, len(adverts))
	}
	// The old master's last advert before the new master's first one, and that first one.
	var lastOld, firstNew *lab.VRRPAdvert
	var firstNewIdx int
	for i := range adverts {
		a := &adverts[i]
		if a.VRID != vrid {
			continue
		}
		if a.Src == oldM {
			lastOld = a
		} else if a.Src == newM && lastOld != nil {
			firstNew, firstNewIdx = a, i
			break
		}
	}
	if lastOld == nil || firstNew == nil {
		return measurement{}, errors.New("capture changed while reading it") // unreachable: MasterGap found both
	}
	interval, err := advertInterval(pkts, adverts, firstNewIdx)
	if err != nil {
		return measurement{}, err
	}
	m := measurement{
		Gap:      gap,
		Graceful: lastOld.Priority == 0,
		Version:  firstNew.Version,
		Interval: interval,
		Priority: firstNew.Priority,
	}
	m.Bound = bound(m.Version, interval, m.Priority, m.Graceful)
	return m, nil
}

// advertInterval reads the advertisement interval carried by the idx-th VRRP advert of the
// capture (v2: seconds in byte 5; v3: centiseconds in the low 12 bits of bytes 4..5).
func advertInterval(pkts []lab.Packet, adverts []lab.VRRPAdvert, idx int) (time.Duration, error) {
	n := -1
	for _, p := range pkts {
		if p.LinkType != 0 && p.LinkType != lab.LinkTypeEthernet {
			continue
		}
		_, _, payload, ok := lab.ParseVRRPFrame(p.Data)
		if !ok || len(payload) < 4 || payload[0]&0x0f != 1 {
			continue
		}
		n++
		if n != idx {
			continue
		}
		if len(payload) < 6 {
			return 0, fmt.Errorf("advert at %s: truncated header", adverts[idx].Time.Format(time.StampMicro))
		}
		if adverts[idx].Version == 3 {
			cs := int(payload[4]&0x0f)<<8 | int(payload[5])
			return time.Duration(cs) * 10 * time.Millisecond, nil
		}
		return time.Duration(payload[5]) * time.Second, nil
	}
	return 0, fmt.Errorf("advert %d not found in the capture", idx)
}

// bound is the protocol's limit on the failover gap: Skew_Time after a priority-0 advert, else
// Master_Down_Interval. Skew_Time is (256-priority)/256 s in VRRPv2 and
// (256-priority) * interval / 256 in VRRPv3 (RFC 3768 6.1, RFC 5798 6.1, as keepalived does).
func bound(version int, interval time.Duration, priority int, graceful bool) time.Duration {
	var skew time.Duration
	if version == 3 {
		skew = time.Duration(256-priority) * interval / 256
	} else {
		skew = time.Duration(256-priority) * time.Second / 256
	}
	if graceful {
		return skew
	}
	return 3*interval + skew
}
