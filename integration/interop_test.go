package integration

import (
	"regexp"
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
	for _, version := range []int{2, 3} {
		for _, kaMaster := range []bool{true, false} {
			name := map[int]string{2: "v2-PASS", 3: "v3-100ms"}[version]
			if kaMaster {
				name += "/keepalived-master"
			} else {
				name += "/vipd-master"
			}
			t.Run(name, func(t *testing.T) {
				_, nv, nk := twoNodes(t) // node1 runs vipd, node2 keepalived
				high, low := vi(version, 150, "10.99.0.100/24"), vi(version, 100, "10.99.0.100/24")
				vconf, kconf := low, high
				master, backup := nk, nv
				if !kaMaster {
					vconf, kconf = high, low
					master, backup = nv, nk
				}
				start := func(which *lab.Node) *daemon {
					if which == nv {
						return startVipd(t, nv, renderConf(t, "vipd", false, vconf))
					}
					return startKeepalived(t, nk, renderConf(t, "keepalived", true, kconf))
				}
				dm := start(master)
				db := start(backup)
				waitVIP(t, 10*time.Second, "10.99.0.100", master, backup)
				holdSteady(t, 1500*time.Millisecond, "election is stable", func() bool {
					return hasVIP(master, "10.99.0.100") && !hasVIP(backup, "10.99.0.100")
				})

				// Graceful stop of the master: the backup takes over.
				dm.stop()
				waitVIP(t, 5*time.Second, "10.99.0.100", backup, master)

				// The master returns and preempts.
				dm = start(master)
				waitVIP(t, 10*time.Second, "10.99.0.100", master, backup)

				// Crash of the master (kill -9): the backup takes over after
				// Master_Down_Interval. A killed keepalived/vipd leaves its
				// VIP on the interface; remove it as the dead box would.
				_ = dm.proc.Kill()
				master.Exec("ip", "addr", "del", "10.99.0.100/24", "dev", "eth0")
				waitVIP(t, 6*time.Second, "10.99.0.100", backup, master)

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
