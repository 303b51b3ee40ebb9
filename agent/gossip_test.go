package agent

import (
	"net/netip"
	"testing"

	"github.com/vipd/vipd/config"
)

// TestSnapshotIsTheNodesShareOfTheFleet: every instance with what the
// fleet compares (family, advert interval, an authentication hash that
// reveals nothing), and the node's maintenance.
func TestSnapshotIsTheNodesShareOfTheFleet(t *testing.T) {
	a, _ := testAgent(t)
	v4 := inst("VI_4", 51, 150, "10.0.0.100/24")
	v4.Auth = &config.Auth{Type: "PASS", Pass: "secret1"}
	v6 := inst("VI_6", 52, 150, "fd00::100/64")
	v6.McastSrcIP = netip.MustParseAddr("fe80::1")
	a.apply(model(v4, v6))
	waitState(t, a, "VI_4", "BACKUP")
	a.setSource(a.running["VI_4"], "nosuch0", netip.MustParseAddr("10.0.0.1"))

	ns := a.Snapshot()
	if len(ns.Instances) != 2 {
		t.Fatalf("instances %+v", ns.Instances)
	}
	byName := map[string]int{}
	for i, in := range ns.Instances {
		byName[in.Name] = i
	}
	i4, i6 := ns.Instances[byName["VI_4"]], ns.Instances[byName["VI_6"]]
	if i4.Family != "ipv4" || i6.Family != "ipv6" || i4.AdvertInt != "50ms" || i4.Source != "10.0.0.1" {
		t.Errorf("VI_4 %+v / VI_6 %+v", i4, i6)
	}
	// No such interface: the source's own /32 stands for the segment.
	if i4.Segment != "10.0.0.1/32" {
		t.Errorf("segment %q, want 10.0.0.1/32", i4.Segment)
	}
	if i4.AuthHash == "" || i6.AuthHash != "" || i4.AuthHash == "secret1" || len(i4.AuthHash) != 12 {
		t.Errorf("auth hashes %q / %q", i4.AuthHash, i6.AuthHash)
	}
	other := authHash(&config.Auth{Type: "PASS", Pass: "secret2"})
	if other == i4.AuthHash {
		t.Error("two passwords, one hash")
	}
	if ns.Maintenance != "" {
		t.Errorf("maintenance %q before any", ns.Maintenance)
	}
	if err := a.SetMaintenance(SourceOperator, "", "kernel", true); err != nil {
		t.Fatal(err)
	}
	if got := a.Snapshot().Maintenance; got != "kernel" {
		t.Errorf("maintenance %q, want kernel", got)
	}
}

func TestSegmentOfTheLoopback(t *testing.T) {
	memo := map[segKey]netip.Prefix{}
	if got := segmentOf("lo", netip.MustParseAddr("127.0.0.1"), memo); got != netip.MustParsePrefix("127.0.0.0/8") {
		t.Errorf("segmentOf(lo, 127.0.0.1) = %v, want 127.0.0.0/8", got)
	}
	if len(memo) != 1 {
		t.Errorf("memo %v", memo)
	}
}

// TestIPv6SegmentIsNotTheLinkLocalPrefix: every link has fe80::/64, so an
// IPv6 instance is placed by its interface's other prefix, or by nothing.
func TestIPv6SegmentIsNotTheLinkLocalPrefix(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	got := segmentOf("lo", ll, nil)
	if got.IsValid() && got.Addr().IsLinkLocalUnicast() {
		t.Errorf("segmentOf(lo, fe80::1) = %v: a link-local prefix", got)
	}
	if got := segmentOf("nosuch0", ll, nil); got.IsValid() {
		t.Errorf("segmentOf(nosuch0, fe80::1) = %v, want none (compared with nothing)", got)
	}
}
