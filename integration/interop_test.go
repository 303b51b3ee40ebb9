package integration

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// keepalivedComplaints matches what keepalived logs about adverts it finds
// wrong. vipd's adverts must never trigger any of these.
var keepalivedComplaints = regexp.MustCompile(`(?i)invalid|mismatch|bad (checksum|ttl|version|type|auth)|wrong|authentication|ip address associated with vrid|unknown vrid|received an invalid|discarded`)

// TestMixedFleetWithKeepalived runs one vipd and one real keepalived in the
// same VRID, in both roles, for VRRPv2 with PASS auth and VRRPv3.
func TestMixedFleetWithKeepalived(t *testing.T) {
	lab.Keepalived(t)
	variants := []struct {
		name string
		vip  string
		conf func(prio int, node string) instanceConf
	}{
		{"v2-PASS", "10.99.0.100", func(prio int, _ string) instanceConf { return vi(2, prio, "10.99.0.100/24") }},
		{"v3-100ms", "10.99.0.100", func(prio int, _ string) instanceConf { return vi(3, prio, "10.99.0.100/24") }},
		{"v3-IPv6", "fd00:99::100", func(prio int, _ string) instanceConf {
			return instanceConf{Name: "VI_6", VRID: 61, Priority: prio, Version: 3, AdvertInt: "0.1", VIPs: []string{"fd00:99::100/64"}}
		}},
		{"v3-IPv6-unicast", "fd00:99::100", func(prio int, node string) instanceConf {
			c := instanceConf{Name: "VI_6", VRID: 61, Priority: prio, Version: 3, AdvertInt: "0.1", VIPs: []string{"fd00:99::100/64"}}
			c.UnicastSrc, c.UnicastPeer = "fd00:99::1", []string{"fd00:99::2"}
			if node == "node2" {
				c.UnicastSrc, c.UnicastPeer = "fd00:99::2", []string{"fd00:99::1"}
			}
			return c
		}},
		{"v2-unicast", "10.99.0.100", func(prio int, node string) instanceConf {
			c := vi(2, prio, "10.99.0.100/24")
			c.UnicastSrc, c.UnicastPeer = "10.99.0.1", []string{"10.99.0.2"}
			if node == "node2" {
				c.UnicastSrc, c.UnicastPeer = "10.99.0.2", []string{"10.99.0.1"}
			}
			return c
		}},
	}
	for _, v := range variants {
		for _, kaMaster := range []bool{true, false} {
			name := v.name + "/vipd-master"
			if kaMaster {
				name = v.name + "/keepalived-master"
			}
			t.Run(name, func(t *testing.T) {
				_, nv, nk := twoNodes(t) // node1 runs vipd, node2 keepalived
				vconf, kconf := v.conf(100, "node1"), v.conf(150, "node2")
				master, backup := nk, nv
				if !kaMaster {
					vconf, kconf = v.conf(150, "node1"), v.conf(100, "node2")
					master, backup = nv, nk
				}
				start := func(which *lab.Node) *daemon {
					if which == nv {
						return startVipd(t, nv, renderConf(t, "vipd", false, vconf))
					}
					return startKeepalived(t, nk, renderConf(t, "keepalived", true, kconf))
				}
				vipAddr := v.vip
				prefix := vconf.VIPs[0]
				dm := start(master)
				db := start(backup)
				waitVIP(t, 10*time.Second, vipAddr, master, backup)
				holdSteady(t, 1500*time.Millisecond, "election is stable", func() bool {
					return hasVIP(master, vipAddr) && !hasVIP(backup, vipAddr)
				})

				// Graceful stop of the master: the backup takes over.
				dm.stop()
				waitVIP(t, 5*time.Second, vipAddr, backup, master)

				// The master returns and preempts.
				dm = start(master)
				waitVIP(t, 10*time.Second, vipAddr, master, backup)

				// Crash of the master (kill -9): the backup takes over after
				// Master_Down_Interval. A killed keepalived/vipd leaves its
				// VIP on the interface; remove it as the dead box would.
				_ = dm.proc.Kill()
				master.Exec("ip", "addr", "del", prefix, "dev", "eth0")
				waitVIP(t, 6*time.Second, vipAddr, backup, master)

				for _, d := range []*daemon{dm, db} {
					if d.kind != "keepalived" {
						continue
					}
					for _, line := range regexp.MustCompile("\n").Split(d.proc.Output(), -1) {
						if keepalivedComplaints.MatchString(line) {
							t.Errorf("keepalived complained about an advert: %s", line)
						}
					}
				}
			})
		}
	}
}

// TestKeepalivedComplaintsAreSeen proves the complaint check above can fail:
// a vipd with the wrong password makes keepalived log a line it matches.
func TestKeepalivedComplaintsAreSeen(t *testing.T) {
	lab.Keepalived(t)
	_, nv, nk := twoNodes(t)
	bad := vi(2, 150, "10.99.0.100/24")
	bad.AuthPass = "wrong"
	startVipd(t, nv, renderConf(t, "vipd", false, bad))
	dk := startKeepalived(t, nk, renderConf(t, "keepalived", true, vi(2, 100, "10.99.0.100/24")))
	lab.Eventually(t, 8*time.Second, "keepalived complains about the wrong password", func() bool {
		return keepalivedComplaints.MatchString(dk.proc.Output())
	})
}

// TestAddressOwnerPreemptsAtOnce: a vipd instance with priority 255 (the
// address owner) takes the VRID from a running keepalived master at start,
// without waiting for a master-down interval.
func TestAddressOwnerPreemptsAtOnce(t *testing.T) {
	lab.Keepalived(t)
	_, nv, nk := twoNodes(t)
	startKeepalived(t, nk, renderConf(t, "keepalived", true, vi(2, 100, "10.99.0.100/24")))
	waitVIP(t, 10*time.Second, "10.99.0.100", nk, nv)
	start := time.Now()
	dv := startVipd(t, nv, renderConf(t, "vipd", false, vi(2, 255, "10.99.0.100/24")))
	waitVIP(t, 3*time.Second, "10.99.0.100", nv, nk)
	if c := instanceStatus(t, dv, "VI_1").Cause; !strings.Contains(c, "address owner") {
		t.Errorf("cause %q does not say address owner", c)
	}
	t.Logf("owner took over %v after start", time.Since(start))
}
