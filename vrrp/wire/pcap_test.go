package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// capturesDir holds keepalived 2.2.7's captures and configs (copied from
// ../shared/testdata/keepalived-captures). They stay in vrrp/testdata, where
// config/loader's and integration/lab's tests read the configs too.
const capturesDir = "../testdata/captures"

// captureAdvert is one VRRP packet read from a pcap file.
type captureAdvert struct {
	frame    int    // 1-based frame number, as tcpdump counts
	payload  []byte // the VRRP payload, no IP header
	src, dst netip.Addr
	ttl      int // IPv4 TTL / IPv6 hop limit
}

// readCaptureAdverts reads a classic libpcap file (LINKTYPE_ETHERNET) and
// returns its VRRP packets (IP protocol / next header 112), skipping
// everything else (ARP, ICMPv6).
func readCaptureAdverts(path string) ([]captureAdvert, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 24 {
		return nil, fmt.Errorf("%s: %d bytes: too short for a pcap header", path, len(data))
	}
	var bo binary.ByteOrder
	switch magic := binary.LittleEndian.Uint32(data); magic {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: magic %#x: not a classic pcap file", path, magic)
	}
	if lt := bo.Uint32(data[20:24]); lt != 1 {
		return nil, fmt.Errorf("%s: link type %d: only LINKTYPE_ETHERNET (1) is supported", path, lt)
	}
	var out []captureAdvert
	rest := data[24:]
	for frame := 1; len(rest) > 0; frame++ {
		if len(rest) < 16 {
			return nil, fmt.Errorf("%s: frame %d: truncated record header", path, frame)
		}
		incl := int(bo.Uint32(rest[8:12]))
		if len(rest) < 16+incl {
			return nil, fmt.Errorf("%s: frame %d: record of %d bytes, %d left", path, frame, incl, len(rest)-16)
		}
		pkt := rest[16 : 16+incl]
		rest = rest[16+incl:]
		adv, ok, err := captureDecodeEthernet(pkt)
		if err != nil {
			return nil, fmt.Errorf("%s: frame %d: %w", path, frame, err)
		}
		if ok {
			adv.frame = frame
			out = append(out, adv)
		}
	}
	return out, nil
}

// captureDecodeEthernet finds the VRRP payload of an Ethernet frame; ok is
// false for frames that are not VRRP.
func captureDecodeEthernet(f []byte) (adv captureAdvert, ok bool, err error) {
	if len(f) < 14 {
		return adv, false, errors.New("short Ethernet header")
	}
	etype, p := binary.BigEndian.Uint16(f[12:14]), f[14:]
	if etype == 0x8100 { // one 802.1Q tag
		if len(p) < 4 {
			return adv, false, errors.New("short VLAN tag")
		}
		etype, p = binary.BigEndian.Uint16(p[2:4]), p[4:]
	}
	switch etype {
	case 0x0800:
		if len(p) < 20 || p[0]>>4 != 4 {
			return adv, false, errors.New("bad IPv4 header")
		}
		ihl, total := int(p[0]&0x0f)*4, int(binary.BigEndian.Uint16(p[2:4]))
		if ihl < 20 || total < ihl || total > len(p) {
			return adv, false, fmt.Errorf("IPv4 header length %d, total length %d, %d bytes captured", ihl, total, len(p))
		}
		if p[9] != pktProtoVRRP {
			return adv, false, nil
		}
		return captureAdvert{
			payload: p[ihl:total], // total length strips Ethernet padding
			src:     netip.AddrFrom4([4]byte(p[12:16])),
			dst:     netip.AddrFrom4([4]byte(p[16:20])),
			ttl:     int(p[8]),
		}, true, nil
	case 0x86dd:
		if len(p) < 40 || p[0]>>4 != 6 {
			return adv, false, errors.New("bad IPv6 header")
		}
		plen := int(binary.BigEndian.Uint16(p[4:6]))
		if 40+plen > len(p) {
			return adv, false, fmt.Errorf("IPv6 payload length %d, %d bytes captured", plen, len(p)-40)
		}
		if p[6] != pktProtoVRRP { // keepalived sends no extension headers
			return adv, false, nil
		}
		return captureAdvert{
			payload: p[40 : 40+plen],
			src:     netip.AddrFrom16([16]byte(p[8:24])),
			dst:     netip.AddrFrom16([16]byte(p[24:40])),
			ttl:     int(p[7]),
		}, true, nil
	}
	return adv, false, nil
}

// captureNode is one keepalived node of a capture: the priority it sends
// and how it would receive, from its capturesDir/*-node*.conf.
type captureNode struct {
	priority uint8
	expect   RecvExpect
}

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// captureCases describe capturesDir (copied from
// ../shared/testdata/keepalived-captures): per capture, what every advert
// carries and, per sender address, the sending node.
func captureCases() []struct {
	file      string
	wantCount int // VRRP packets in the capture
	version   int
	vrid      uint8
	authType  uint8
	authData  string
	interval  time.Duration
	vips      []netip.Addr
	nodes     map[netip.Addr]captureNode
} {
	v2pass := RecvExpect{Version: 2, AuthType: AuthPass, AuthPass: "secret1", Interval: time.Second, VIPs: mustAddrs("10.99.0.100", "10.99.0.101")}
	v2n1, v2n2 := v2pass, v2pass
	v2n1.OwnAddrs, v2n2.OwnAddrs = mustAddrs("10.99.0.1"), mustAddrs("10.99.0.2")

	uc := RecvExpect{Version: 2, AuthType: AuthPass, AuthPass: "pw", Interval: time.Second, Unicast: true, CheckUnicastSrc: true, VIPs: mustAddrs("10.99.0.103")}
	uc1, uc2 := uc, uc
	uc1.OwnAddrs, uc1.UnicastPeers = mustAddrs("10.99.0.1"), mustAddrs("10.99.0.2")
	uc2.OwnAddrs, uc2.UnicastPeers = mustAddrs("10.99.0.2"), mustAddrs("10.99.0.1")

	v3 := RecvExpect{Version: 3, Interval: 100 * time.Millisecond, VIPs: mustAddrs("10.99.0.102")}
	v31, v32 := v3, v3
	v31.OwnAddrs, v32.OwnAddrs = mustAddrs("10.99.0.1"), mustAddrs("10.99.0.2")

	// node1 and node2 send from their link-local addresses.
	ll1, ll2 := "fe80::c8d2:3dff:fe29:ab43", "fe80::fc18:38ff:fe76:ee04"
	v6 := RecvExpect{Version: 3, Interval: time.Second, VIPs: mustAddrs("fd00:99::100")}
	v61, v62 := v6, v6
	v61.OwnAddrs, v62.OwnAddrs = mustAddrs(ll1), mustAddrs(ll2)

	type node = map[netip.Addr]captureNode
	return []struct {
		file      string
		wantCount int
		version   int
		vrid      uint8
		authType  uint8
		authData  string
		interval  time.Duration
		vips      []netip.Addr
		nodes     map[netip.Addr]captureNode
	}{
		{
			file: "vrrp-v2-pass.pcap", wantCount: 6, version: 2, vrid: 51,
			authType: AuthPass, authData: "secret1", interval: time.Second,
			vips: mustAddrs("10.99.0.100", "10.99.0.101"),
			nodes: node{
				netip.MustParseAddr("10.99.0.1"): {priority: 101, expect: v2n1},
				netip.MustParseAddr("10.99.0.2"): {priority: 102, expect: v2n2},
			},
		},
		{
			file: "vrrp-v2-unicast.pcap", wantCount: 5, version: 2, vrid: 53,
			authType: AuthPass, authData: "pw", interval: time.Second,
			vips: mustAddrs("10.99.0.103"),
			nodes: node{
				netip.MustParseAddr("10.99.0.1"): {priority: 101, expect: uc1},
				netip.MustParseAddr("10.99.0.2"): {priority: 102, expect: uc2},
			},
		},
		{
			file: "vrrp-v3-ipv4.pcap", wantCount: 23, version: 3, vrid: 52,
			interval: 100 * time.Millisecond,
			vips:     mustAddrs("10.99.0.102"),
			nodes: node{
				netip.MustParseAddr("10.99.0.1"): {priority: 101, expect: v31},
				netip.MustParseAddr("10.99.0.2"): {priority: 102, expect: v32},
			},
		},
		{
			file: "vrrp-v3-ipv6.pcap", wantCount: 6, version: 3, vrid: 52,
			interval: time.Second,
			vips:     mustAddrs("fd00:99::100"),
			nodes: node{
				netip.MustParseAddr(ll1): {priority: 101, expect: v61},
				netip.MustParseAddr(ll2): {priority: 102, expect: v62},
			},
		},
	}
}

// TestKeepalivedCapturesParseRemarshalAndPassRecvChecks is the golden test:
// every VRRP packet keepalived 2.2.7 sent in the captures parses to what its
// config says, re-marshals byte for byte (checksum included), passes
// CheckRecv on the other node and is its sender's own advert.
func TestKeepalivedCapturesParseRemarshalAndPassRecvChecks(t *testing.T) {
	for _, tc := range captureCases() {
		t.Run(tc.file, func(t *testing.T) {
			adverts, err := readCaptureAdverts(filepath.Join(capturesDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(adverts) != tc.wantCount {
				t.Fatalf("found %d VRRP packets, want %d", len(adverts), tc.wantCount)
			}
			var authData [8]byte
			copy(authData[:], tc.authData)
			prioZero := 0
			for _, c := range adverts {
				sender, ok := tc.nodes[c.src]
				if !ok {
					t.Fatalf("frame %d: advert from unknown node %s", c.frame, c.src)
				}
				a, err := Parse(c.payload, c.src, c.dst, ChecksumOpt{})
				if err != nil {
					t.Fatalf("frame %d: Parse: %v", c.frame, err)
				}
				want := Advert{
					Version: tc.version, VRID: tc.vrid, Priority: sender.priority,
					AuthType: tc.authType, AuthData: authData, Interval: tc.interval,
					Addrs: tc.vips, Checksum: binary.BigEndian.Uint16(c.payload[6:8]),
				}
				if a.Priority == 0 { // the SIGTERM goodbye
					want.Priority = 0
					prioZero++
				}
				if diff := cmp.Diff(want, *a, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
					t.Errorf("frame %d: Parse (-want +got):\n%s", c.frame, diff)
				}

				out, err := a.AppendMarshal(nil, c.src, c.dst, ChecksumOpt{})
				if err != nil {
					t.Fatalf("frame %d: AppendMarshal: %v", c.frame, err)
				}
				if !bytes.Equal(out, c.payload) {
					t.Errorf("frame %d: AppendMarshal\n got % x\nwant % x", c.frame, out, c.payload)
				}

				meta := RecvMeta{Src: c.src, Dst: c.dst, TTL: c.ttl}
				for addr, receiver := range tc.nodes {
					res := CheckRecv(a, meta, receiver.expect)
					if addr == c.src {
						if res.Drop == nil || res.Drop.Reason != DropOwnAdvert {
							t.Errorf("frame %d: CheckRecv on the sender itself = %+v, want own_advert", c.frame, res)
						}
						continue
					}
					if res != (RecvResult{}) {
						t.Errorf("frame %d: CheckRecv on %s = %+v (drop %v), want a clean accept", c.frame, addr, res, res.Drop)
					}
				}
			}
			if prioZero != 1 {
				t.Errorf("found %d priority-0 adverts, want the one of the SIGTERM handover", prioZero)
			}
		})
	}
}

// TestKeepalivedCapturesCopiedUnchanged keeps vrrp/testdata/captures in step with
// the shared captures when they are around.
func TestKeepalivedCapturesCopiedUnchanged(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "testdata", "keepalived-captures")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared captures not present (%v): nothing to compare", err)
	}
	for _, tc := range captureCases() {
		a, err := os.ReadFile(filepath.Join(shared, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(capturesDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("vrrp/testdata/captures/%s differs from %s: copy it again", tc.file, shared)
		}
	}
}
