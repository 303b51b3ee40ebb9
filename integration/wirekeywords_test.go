package integration

import (
	"encoding/binary"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// wireAdvert is one captured IPv4 VRRP advert with its destination.
type wireAdvert struct {
	Src, Dst netip.Addr
	TTL      int
	VRID     int
	Priority int
}

// ipv4Adverts picks the IPv4 VRRP adverts, with their IP destination, out of
// a capture on a lab veth (Ethernet frames).
func ipv4Adverts(pkts []lab.Packet) []wireAdvert {
	var out []wireAdvert
	for _, p := range pkts {
		if p.LinkType != 0 && p.LinkType != lab.LinkTypeEthernet {
			continue
		}
		src, ttl, payload, ok := lab.ParseVRRPFrame(p.Data)
		if !ok || !src.Is4() || len(payload) < 4 || payload[0]&0x0f != 1 {
			continue
		}
		ip := p.Data[14:]
		if binary.BigEndian.Uint16(p.Data[12:14]) == 0x8100 {
			ip = p.Data[18:]
		}
		out = append(out, wireAdvert{Src: src, Dst: netip.AddrFrom4([4]byte(ip[16:20])), TTL: ttl,
			VRID: int(payload[1]), Priority: int(payload[2])})
	}
	return out
}

// withGlobal adds lines to the global_defs block of a rendered conf.
func withGlobal(conf string, lines ...string) string {
	return strings.Replace(conf, "global_defs {", "global_defs {\n    "+strings.Join(lines, "\n    "), 1)
}

// checkNoComplaints fails the test for every line of keepalived's output
// that complains about an advert.
func checkNoComplaints(t *testing.T, d *daemon) {
	t.Helper()
	for _, line := range regexp.MustCompile("\n").Split(d.proc.Output(), -1) {
		if keepalivedComplaints.MatchString(line) {
			t.Errorf("keepalived complained about an advert: %s", line)
		}
	}
}

// TestWireKeywordsWithKeepalived runs vipd next to real keepalived with the
// keywords that change what goes on the wire: vrrp_mcast_group4 on both
// sides (each hears the other's adverts to 224.0.0.88 only, elects and fails
// over), and unicast_ttl on the vipd side (its unicast adverts carry TTL 10
// and keepalived, which checks no TTL on unicast, accepts them).
func TestWireKeywordsWithKeepalived(t *testing.T) {
	lab.Keepalived(t)

	t.Run("vrrp_mcast_group4", func(t *testing.T) {
		group := netip.MustParseAddr("224.0.0.88")
		_, nv, nk := twoNodes(t) // node1 runs vipd, node2 keepalived
		capt := nk.Capture("eth0", "ip proto 112")
		global := "vrrp_mcast_group4 " + group.String()
		const vip = "10.99.0.100"
		kconf := func(prio int) string {
			return withGlobal(renderConf(t, "keepalived", true, vi(3, prio, vip+"/24")), global)
		}

		// keepalived (150) is MASTER; vipd (100) must hear its adverts to
		// the group and stay BACKUP (else both would hold the VIP).
		dk := startKeepalived(t, nk, kconf(150))
		waitVIP(t, 10*time.Second, vip, nk, nv)
		dv := startVipd(t, nv, withGlobal(renderConf(t, "vipd", false, vi(3, 100, vip+"/24")), global))
		lab.Eventually(t, 10*time.Second, "vipd BACKUP", func() bool { return dv.state("VI_1") == "BACKUP" })
		holdSteady(t, 1500*time.Millisecond, "keepalived MASTER, vipd BACKUP", func() bool {
			return hasVIP(nk, vip) && !hasVIP(nv, vip) && dv.state("VI_1") == "BACKUP"
		})

		// keepalived crashes: vipd takes over after Master_Down_Interval.
		_ = dk.proc.Kill()
		_, _ = dk.proc.Wait(5 * time.Second)
		nk.Exec("ip", "addr", "del", vip+"/24", "dev", "eth0")
		waitVIP(t, 5*time.Second, vip, nv, nk)
		checkNoComplaints(t, dk)

		// keepalived comes back at 50: it must hear vipd's adverts to the
		// group and stay BACKUP.
		dk2 := startKeepalived(t, nk, kconf(50))
		time.Sleep(time.Second) // keepalived's start and several of vipd's adverts
		holdSteady(t, 1500*time.Millisecond, "vipd MASTER, keepalived BACKUP", func() bool {
			return hasVIP(nv, vip) && !hasVIP(nk, vip)
		})
		checkNoComplaints(t, dk2)

		ads := ipv4Adverts(capt.Stop())
		bySrc := map[netip.Addr]int{}
		bad := 0
		for _, a := range ads {
			if a.VRID != 51 {
				continue
			}
			if a.Dst != group || a.TTL != 255 {
				if bad++; bad <= 3 {
					t.Errorf("advert from %s to %s with TTL %d, want to %s with TTL 255", a.Src, a.Dst, a.TTL, group)
				}
			}
			bySrc[a.Src]++
		}
		if bad > 3 {
			t.Errorf("%d adverts in all not to %s with TTL 255", bad, group)
		}
		vipdAddr, kaAddr := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
		if bySrc[vipdAddr] < 10 || bySrc[kaAddr] < 10 {
			t.Errorf("adverts captured by source %v, want many from both vipd (%s) and keepalived (%s)", bySrc, vipdAddr, kaAddr)
		}
	})

	t.Run("unicast_ttl", func(t *testing.T) {
		_, nv, nk := twoNodes(t)
		capt := nk.Capture("eth0", "ip proto 112")
		const vip = "10.99.0.100"
		conf := func(prio int, src, peer, extra string) instanceConf {
			c := vi(3, prio, vip+"/24")
			c.UnicastSrc, c.UnicastPeer, c.Extra = src, []string{peer}, extra
			return c
		}
		dv := startVipd(t, nv, renderConf(t, "vipd", false, conf(150, "10.99.0.1", "10.99.0.2", "    unicast_ttl 10")))
		dk := startKeepalived(t, nk, renderConf(t, "keepalived", true, conf(100, "10.99.0.2", "10.99.0.1", "")))
		waitVIP(t, 10*time.Second, vip, nv, nk)
		time.Sleep(time.Second) // keepalived settles as BACKUP on vipd's adverts
		holdSteady(t, 1500*time.Millisecond, "vipd MASTER, keepalived BACKUP", func() bool {
			return hasVIP(nv, vip) && !hasVIP(nk, vip) && dv.state("VI_1") == "MASTER"
		})
		checkNoComplaints(t, dk)

		ads := ipv4Adverts(capt.Stop())
		vipdAddr, kaAddr := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
		n, bad := 0, 0
		for _, a := range ads {
			if a.VRID != 51 || a.Src != vipdAddr {
				continue
			}
			n++
			if a.TTL != 10 || a.Dst != kaAddr {
				if bad++; bad <= 3 {
					t.Errorf("vipd advert to %s with TTL %d, want TTL 10 to %s", a.Dst, a.TTL, kaAddr)
				}
			}
		}
		if bad > 3 {
			t.Errorf("%d of %d vipd adverts not to %s with TTL 10", bad, n, kaAddr)
		}
		if n < 10 {
			t.Errorf("%d adverts from vipd captured, want many", n)
		}
	})
}
