package lab

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// capturesDir holds real keepalived 2.2.7 captures (copied into the repository from
// ../shared/testdata/keepalived-captures, see vrrp/testdata/captures/README.md).
const capturesDir = "../../vrrp/testdata/captures"

// ether builds an Ethernet header for etherType, optionally with an 802.1Q tag.
func ether(etherType uint16, vlan bool) []byte {
	h := []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0x02, 0, 0, 0, 0, 1}
	if vlan {
		h = append(h, 0x81, 0x00, 0x00, 0x07)
	}
	return binary.BigEndian.AppendUint16(h, etherType)
}

func ipv4(proto, ttl byte, src [4]byte, payload []byte, fragOff uint16) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[6:], fragOff)
	h[8], h[9] = ttl, proto
	copy(h[12:], src[:])
	copy(h[16:], []byte{224, 0, 0, 18})
	return append(h, payload...)
}

func ipv6(next, hop byte, src netip.Addr, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, hop
	s := src.As16()
	copy(h[8:], s[:])
	d := netip.MustParseAddr("ff02::12").As16()
	copy(h[24:], d[:])
	return append(h, payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseVRRPFrameFindsTheAdvertOrRejects(t *testing.T) {
	advert := []byte{0x21, 51, 100, 1, 0, 1, 0xaa, 0xbb, 10, 99, 0, 100}
	v3 := []byte{0x31, 51, 100, 1, 0, 100, 0xaa, 0xbb}
	src4 := [4]byte{10, 99, 0, 1}
	ll := netip.MustParseAddr("fe80::1")
	hopByHop := cat([]byte{112, 0, 5, 2, 0, 0, 1, 0}) // next 112, len 8, router alert option
	padded := cat(ether(0x0800, false), ipv4(112, 255, src4, advert, 0), make([]byte, 10))

	tests := []struct {
		name        string
		frame       []byte
		wantOK      bool
		wantSrc     netip.Addr
		wantTTL     int
		wantPayload []byte
	}{
		{"IPv4 advert", cat(ether(0x0800, false), ipv4(112, 255, src4, advert, 0)), true, netip.AddrFrom4(src4), 255, advert},
		{"IPv4 advert with ethernet padding cut to IP length", padded, true, netip.AddrFrom4(src4), 255, advert},
		{"IPv4 advert behind a VLAN tag", cat(ether(0x0800, true), ipv4(112, 254, src4, advert, 0)), true, netip.AddrFrom4(src4), 254, advert},
		{"IPv6 advert", cat(ether(0x86dd, false), ipv6(112, 255, ll, v3)), true, ll, 255, v3},
		{"IPv6 advert after hop-by-hop header", cat(ether(0x86dd, false), ipv6(0, 255, ll, cat(hopByHop, v3))), true, ll, 255, v3},
		{"IPv4 other protocol", cat(ether(0x0800, false), ipv4(17, 64, src4, advert, 0)), false, netip.Addr{}, 0, nil},
		{"IPv4 later fragment", cat(ether(0x0800, false), ipv4(112, 255, src4, advert, 3)), false, netip.Addr{}, 0, nil},
		{"IPv6 other next header", cat(ether(0x86dd, false), ipv6(58, 255, ll, v3)), false, netip.Addr{}, 0, nil},
		{"ARP", cat(ether(0x0806, false), make([]byte, 28)), false, netip.Addr{}, 0, nil},
		{"IPv4 length beyond frame", cat(ether(0x0800, false), ipv4(112, 255, src4, advert, 0)[:25]), false, netip.Addr{}, 0, nil},
		{"IPv6 truncated extension header", cat(ether(0x86dd, false), ipv6(0, 255, ll, []byte{112, 0, 0})), false, netip.Addr{}, 0, nil},
		{"short frame", []byte{1, 2, 3}, false, netip.Addr{}, 0, nil},
		{"empty", nil, false, netip.Addr{}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, ttl, payload, ok := ParseVRRPFrame(tt.frame)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if src != tt.wantSrc || ttl != tt.wantTTL || !bytes.Equal(payload, tt.wantPayload) {
				t.Errorf("got (%v, %d, %x), want (%v, %d, %x)", src, ttl, payload, tt.wantSrc, tt.wantTTL, tt.wantPayload)
			}
		})
	}
}

func TestParseVRRPFrameNeverPanicsOnTruncation(t *testing.T) {
	frames := [][]byte{
		cat(ether(0x0800, true), ipv4(112, 255, [4]byte{10, 0, 0, 1}, []byte{0x21, 1, 100, 0}, 0)),
		cat(ether(0x86dd, false), ipv6(0, 255, netip.MustParseAddr("fe80::1"), []byte{112, 0, 5, 2, 0, 0, 1, 0, 0x31, 1, 100, 0})),
	}
	for _, f := range frames {
		for i := 0; i <= len(f); i++ {
			ParseVRRPFrame(f[:i])
		}
	}
}

func FuzzParseVRRPFrame(f *testing.F) {
	f.Add(cat(ether(0x0800, false), ipv4(112, 255, [4]byte{10, 0, 0, 1}, []byte{0x21, 1, 100, 0}, 0)))
	f.Add(cat(ether(0x86dd, false), ipv6(0, 255, netip.MustParseAddr("fe80::1"), []byte{112, 0, 5, 2, 0, 0, 1, 0, 0x31, 1, 100, 0})))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, payload, ok := ParseVRRPFrame(data)
		if !ok && payload != nil {
			t.Errorf("payload %x returned with ok=false", payload)
		}
	})
}

// pcapFile builds a classic pcap file with the given byte order and timestamp precision.
func pcapFile(order binary.AppendByteOrder, nano bool, recs ...Packet) []byte {
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, 262144)
	b = order.AppendUint32(b, LinkTypeEthernet)
	for _, r := range recs {
		frac := uint32(r.Time.Nanosecond())
		if !nano {
			frac /= 1000
		}
		b = order.AppendUint32(b, uint32(r.Time.Unix()))
		b = order.AppendUint32(b, frac)
		b = order.AppendUint32(b, uint32(len(r.Data)))
		b = order.AppendUint32(b, uint32(r.OrigLen))
		b = append(b, r.Data...)
	}
	return b
}

func TestParsePcapReadsBothPrecisionsAndByteOrders(t *testing.T) {
	t0 := time.Unix(1700000000, 123456789)
	recs := []Packet{
		{Time: t0, Data: []byte{1, 2, 3}, OrigLen: 3},
		{Time: t0.Add(1500 * time.Millisecond), Data: []byte{4, 5}, OrigLen: 60},
	}
	for _, tt := range []struct {
		name     string
		order    binary.AppendByteOrder
		nano     bool
		wantTime time.Time
	}{
		{"little endian microseconds", binary.LittleEndian, false, t0.Truncate(time.Microsecond)},
		{"big endian microseconds", binary.BigEndian, false, t0.Truncate(time.Microsecond)},
		{"little endian nanoseconds", binary.LittleEndian, true, t0},
		{"big endian nanoseconds", binary.BigEndian, true, t0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pkts, err := ParsePcap(pcapFile(tt.order, tt.nano, recs...))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != 2 {
				t.Fatalf("got %d packets, want 2", len(pkts))
			}
			if !pkts[0].Time.Equal(tt.wantTime) {
				t.Errorf("first time = %v, want %v", pkts[0].Time, tt.wantTime)
			}
			if gap := pkts[1].Time.Sub(pkts[0].Time); gap != 1500*time.Millisecond {
				t.Errorf("gap = %v, want 1.5s", gap)
			}
			if !bytes.Equal(pkts[1].Data, []byte{4, 5}) || pkts[1].OrigLen != 60 || pkts[1].LinkType != LinkTypeEthernet {
				t.Errorf("second packet = %+v", pkts[1])
			}
		})
	}
}

func TestParsePcapToleratesATruncatedLastRecordAndRejectsGarbage(t *testing.T) {
	full := pcapFile(binary.LittleEndian, true, Packet{Time: time.Unix(1, 0), Data: []byte{1, 2, 3, 4}, OrigLen: 4},
		Packet{Time: time.Unix(2, 0), Data: []byte{5, 6, 7, 8}, OrigLen: 4})
	pkts, err := ParsePcap(full[:len(full)-2])
	if err != nil || len(pkts) != 1 {
		t.Errorf("truncated last record: got %d packets, err %v; want 1, nil", len(pkts), err)
	}
	for name, b := range map[string][]byte{
		"short header": full[:10],
		"bad magic":    append([]byte{0, 0, 0, 0}, full[4:]...),
	} {
		if _, err := ParsePcap(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestVRRPAdvertsFromRealKeepalivedCaptures(t *testing.T) {
	tests := []struct {
		file        string
		wantVersion int
		wantIPv6    bool
		wantPrio0   bool
	}{
		{"vrrp-v2-pass.pcap", 2, false, true},
		{"vrrp-v3-ipv4.pcap", 3, false, true},
		{"vrrp-v3-ipv6.pcap", 3, true, true},
		{"vrrp-v2-unicast.pcap", 2, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(capturesDir, tt.file)
			if _, err := os.Stat(path); err != nil {
				t.Skipf("real captures not beside the repository (%v)", err)
			}
			pkts, err := ReadPcap(path)
			if err != nil {
				t.Fatal(err)
			}
			adverts := VRRPAdverts(pkts)
			if len(adverts) < 2 {
				t.Fatalf("%d adverts in %d packets, want several", len(adverts), len(pkts))
			}
			sawPrio0 := false
			for _, a := range adverts {
				if a.Version != tt.wantVersion || a.TTL != 255 || a.Src.Is6() != tt.wantIPv6 || a.VRID == 0 {
					t.Errorf("advert %+v: want version %d, TTL 255, IPv6 %v, a VRID", a, tt.wantVersion, tt.wantIPv6)
				}
				sawPrio0 = sawPrio0 || a.Priority == 0
			}
			if sawPrio0 != tt.wantPrio0 {
				t.Errorf("priority-0 advert seen = %v, want %v", sawPrio0, tt.wantPrio0)
			}
			for i := 1; i < len(adverts); i++ {
				if adverts[i].Time.Before(adverts[i-1].Time) {
					t.Errorf("advert %d earlier than the one before", i)
				}
			}
		})
	}
}

func TestMarkerTellsALiveCreatorFromADeadOne(t *testing.T) {
	start, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !(marker{pid: os.Getpid(), start: start}).alive() {
		t.Error("own marker not alive")
	}
	if (marker{pid: os.Getpid(), start: start + 1}).alive() {
		t.Error("recycled pid (other start time) taken for alive")
	}
	if (marker{pid: 1 << 30, start: start}).alive() {
		t.Error("nonexistent pid taken for alive")
	}
}

func TestLabNamespaceNamesAreRecognised(t *testing.T) {
	for name, want := range map[string]bool{
		"vl0a1b2c-a":      true,
		"vl0a1b2c-switch": true,
		"vl0A1b2c-a":      false,
		"vl0a1b2-a":       false,
		"vl0a1b2c-":       false,
		"other":           false,
		"xvl0a1b2c-a":     false,
	} {
		if got := labNSRE.MatchString(name); got != want {
			t.Errorf("%q: lab namespace = %v, want %v", name, got, want)
		}
	}
}

func TestMasterGapMeasuresFromTheOldMastersLastAdvert(t *testing.T) {
	t0 := time.Unix(100, 0)
	old, newM, other := netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.3")
	adv := func(ms int, src netip.Addr, vrid, prio int) VRRPAdvert {
		return VRRPAdvert{Time: t0.Add(time.Duration(ms) * time.Millisecond), Src: src, VRID: vrid, Priority: prio, TTL: 255, Version: 3}
	}
	tests := []struct {
		name    string
		adverts []VRRPAdvert
		wantGap time.Duration
		wantOK  bool
	}{
		{"crash: gap from the last advert", []VRRPAdvert{adv(0, newM, 1, 100), adv(0, old, 1, 200), adv(100, old, 1, 200), adv(460, newM, 1, 100)}, 360 * time.Millisecond, true},
		{"graceful: gap from the priority-0 advert", []VRRPAdvert{adv(0, old, 1, 200), adv(100, old, 1, 0), adv(161, newM, 1, 100)}, 61 * time.Millisecond, true},
		{"other VRIDs and senders ignored", []VRRPAdvert{adv(0, old, 1, 200), adv(50, newM, 2, 100), adv(60, other, 1, 50), adv(400, newM, 1, 100)}, 400 * time.Millisecond, true},
		{"new master never took over", []VRRPAdvert{adv(0, old, 1, 200), adv(100, old, 1, 200)}, 0, false},
		{"no advert from the old master", []VRRPAdvert{adv(0, newM, 1, 100)}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gap, ok := MasterGap(tt.adverts, 1, old, newM)
			if gap != tt.wantGap || ok != tt.wantOK {
				t.Errorf("MasterGap = %v, %v; want %v, %v", gap, ok, tt.wantGap, tt.wantOK)
			}
		})
	}
}

func TestMasterGapOnRealKeepalivedHandoverIsTheSkewTime(t *testing.T) {
	path := filepath.Join(capturesDir, "vrrp-v3-ipv4.pcap")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("real captures not beside the repository (%v)", err)
	}
	pkts, err := ReadPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	adverts := VRRPAdverts(pkts)
	if len(adverts) == 0 {
		t.Fatal("no adverts")
	}
	// node2 (10.99.0.2) sends priority 0; node1 (priority 101) takes over after its skew time,
	// (256-101)/256 * 100 ms = 60.5 ms.
	gap, ok := MasterGap(adverts, adverts[0].VRID, netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.1"))
	if !ok || gap < 40*time.Millisecond || gap > 120*time.Millisecond {
		t.Errorf("handover gap = %v (found %v), want about 60 ms", gap, ok)
	}
}
