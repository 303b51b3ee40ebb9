package vip

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
)

const capturesDir = "testdata"

func loadCapture(t *testing.T, name string) [][]byte {
	t.Helper()
	frames, err := readPcap(filepath.Join(capturesDir, name))
	if err != nil {
		t.Fatalf("read golden capture: %v", err)
	}
	return frames
}

func isARP(f []byte) bool { return len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == 0x0806 }

func isNA(f []byte) bool {
	return len(f) >= 86 && binary.BigEndian.Uint16(f[12:14]) == 0x86dd && f[20] == 58 && f[54] == 136
}

// Every gratuitous ARP keepalived 2.2.7 sent in the capture is rebuilt byte
// for byte from its source MAC and VIP alone.
func TestGratuitousARPMatchesKeepalivedCapture(t *testing.T) {
	n := 0
	for i, f := range loadCapture(t, "vrrp-v2-pass.pcap") {
		if !isARP(f) {
			continue
		}
		n++
		mac := net.HardwareAddr(f[6:12])
		vip := netip.AddrFrom4([4]byte(f[28:32]))
		got, err := GratuitousARP(mac, vip)
		if err != nil {
			t.Fatalf("frame %d: GratuitousARP(%s, %s): %v", i, mac, vip, err)
		}
		if !bytes.Equal(got, f) {
			t.Errorf("frame %d (%s from %s):\n got % x\nwant % x", i, vip, mac, got, f)
		}
	}
	// Two VIPs, five repeats, two takeovers (node2, then node1).
	if n != 20 {
		t.Errorf("checked %d gratuitous ARPs in the capture, want 20", n)
	}
}

// Every unsolicited NA keepalived 2.2.7 sent in the capture is rebuilt byte
// for byte, checksum included, from its source MAC, VIP and router flag.
func TestUnsolicitedNAMatchesKeepalivedCapture(t *testing.T) {
	n := 0
	for i, f := range loadCapture(t, "vrrp-v3-ipv6.pcap") {
		if !isNA(f) {
			continue
		}
		n++
		mac := net.HardwareAddr(f[6:12])
		vip := netip.AddrFrom16([16]byte(f[62:78]))
		router := f[58]&0x80 != 0
		got, err := UnsolicitedNA(mac, vip, router)
		if err != nil {
			t.Fatalf("frame %d: UnsolicitedNA(%s, %s): %v", i, mac, vip, err)
		}
		if !bytes.Equal(got, f) {
			t.Errorf("frame %d (%s from %s):\n got % x\nwant % x", i, vip, mac, got, f)
		}
	}
	if n != 10 {
		t.Errorf("checked %d neighbour advertisements in the capture, want 10", n)
	}
}

// The first captured frames, spelled out, so that a reader sees what the
// builders must produce without opening the pcap.
func TestAnnounceFramesFieldByField(t *testing.T) {
	mac := net.HardwareAddr{0xfe, 0x18, 0x38, 0x76, 0xee, 0x04}
	garp, err := GratuitousARP(mac, netip.MustParseAddr("10.99.0.100"))
	if err != nil {
		t.Fatal(err)
	}
	wantGARP := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x18, 0x38, 0x76, 0xee, 0x04, 0x08, 0x06, // broadcast, ARP
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
		0xfe, 0x18, 0x38, 0x76, 0xee, 0x04, 10, 99, 0, 100, // sender: our MAC, the VIP
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 10, 99, 0, 100, // target: broadcast, the VIP
	}
	if !bytes.Equal(garp, wantGARP) {
		t.Errorf("GARP:\n got % x\nwant % x", garp, wantGARP)
	}

	na, err := UnsolicitedNA(mac, netip.MustParseAddr("fd00:99::100"), false)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what string
		off  int
		want []byte
	}{
		{"dst MAC 33:33:00:00:00:01", 0, []byte{0x33, 0x33, 0, 0, 0, 1}},
		{"src MAC", 6, mac},
		{"ethertype IPv6", 12, []byte{0x86, 0xdd}},
		{"payload length 32, ICMPv6, hop limit 255", 18, []byte{0, 32, 58, 255}},
		{"source is the VIP", 22, netip.MustParseAddr("fd00:99::100").AsSlice()},
		{"destination ff02::1", 38, netip.MustParseAddr("ff02::1").AsSlice()},
		{"type 136 code 0, checksum 0x34d8", 54, []byte{136, 0, 0x34, 0xd8}},
		{"flags: override only", 58, []byte{0x20, 0, 0, 0}},
		{"target link-layer address option", 78, append([]byte{2, 1}, mac...)},
	}
	for _, c := range checks {
		if got := na[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("NA %s: got % x, want % x", c.what, got, c.want)
		}
	}
}

// onesComplementSum verifies a checksum independently of the builder: the
// sum over pseudo-header and message, checksum included, is 0xffff.
func onesComplementSum(frame []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(frame[22:54]) // source and destination addresses
	sum += uint32(len(frame) - 54)
	sum += 58
	add(frame[54:])
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func TestUnsolicitedNARouterFlag(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	vip := netip.MustParseAddr("2001:db8::7")
	for _, tc := range []struct {
		name      string
		router    bool
		wantFlags byte
	}{
		{"forwarding off: override only", false, 0x20},
		{"forwarding on: router and override", true, 0xa0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := UnsolicitedNA(mac, vip, tc.router)
			if err != nil {
				t.Fatal(err)
			}
			if f[58] != tc.wantFlags {
				t.Errorf("flags byte = %#x, want %#x", f[58], tc.wantFlags)
			}
			if s := onesComplementSum(f); s != 0xffff {
				t.Errorf("checksum does not verify: sum %#x", s)
			}
		})
	}
}

func TestAnnounceFramesRefuseBadInput(t *testing.T) {
	good := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name  string
		build func() ([]byte, error)
	}{
		{"GARP with an 8-byte MAC", func() ([]byte, error) { return GratuitousARP(net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}, v4) }},
		{"GARP with no MAC", func() ([]byte, error) { return GratuitousARP(nil, v4) }},
		{"GARP for an IPv6 VIP", func() ([]byte, error) { return GratuitousARP(good, v6) }},
		{"GARP for the zero Addr", func() ([]byte, error) { return GratuitousARP(good, netip.Addr{}) }},
		{"NA with a short MAC", func() ([]byte, error) { return UnsolicitedNA(good[:4], v6, false) }},
		{"NA for an IPv4 VIP", func() ([]byte, error) { return UnsolicitedNA(good, v4, false) }},
		{"NA for a 4-in-6 VIP", func() ([]byte, error) {
			return UnsolicitedNA(good, netip.MustParseAddr("::ffff:192.0.2.1"), false)
		}},
		{"NA for the zero Addr", func() ([]byte, error) { return UnsolicitedNA(good, netip.Addr{}, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f, err := tc.build(); err == nil {
				t.Errorf("built % x, want an error", f)
			}
		})
	}
}

func TestGratuitousARPAcceptsMappedIPv4(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	a, err := GratuitousARP(mac, netip.MustParseAddr("::ffff:192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GratuitousARP(mac, netip.MustParseAddr("192.0.2.1"))
	if !bytes.Equal(a, b) {
		t.Errorf("mapped address gave a different frame:\n% x\n% x", a, b)
	}
}
