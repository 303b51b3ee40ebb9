package lab

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// vrrpProto is VRRP's IP protocol number.
const vrrpProto = 112

// ParseVRRPFrame picks a VRRP packet out of an Ethernet frame (one 802.1Q tag allowed) carrying
// IPv4 with protocol 112, or IPv6 with next header 112 (after any hop-by-hop, routing or
// destination options headers). It returns the IP source, the TTL / hop limit (255 for a valid
// advert) and the VRRP payload (cut to the IP length, ethernet padding removed). ok is false for
// anything else, including truncated frames; it never panics.
func ParseVRRPFrame(data []byte) (src netip.Addr, ttl int, payload []byte, ok bool) {
	if len(data) < 14 {
		return netip.Addr{}, 0, nil, false
	}
	etherType := binary.BigEndian.Uint16(data[12:14])
	ip := data[14:]
	if etherType == 0x8100 || etherType == 0x88a8 {
		if len(data) < 18 {
			return netip.Addr{}, 0, nil, false
		}
		etherType = binary.BigEndian.Uint16(data[16:18])
		ip = data[18:]
	}
	switch etherType {
	case 0x0800:
		return parseVRRPv4(ip)
	case 0x86dd:
		return parseVRRPv6(ip)
	}
	return netip.Addr{}, 0, nil, false
}

func parseVRRPv4(ip []byte) (netip.Addr, int, []byte, bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return netip.Addr{}, 0, nil, false
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < 20 || total < ihl || total > len(ip) || ip[9] != vrrpProto {
		return netip.Addr{}, 0, nil, false
	}
	// A fragment other than the first carries no VRRP header.
	if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
		return netip.Addr{}, 0, nil, false
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	return src, int(ip[8]), ip[ihl:total], true
}

func parseVRRPv6(ip []byte) (netip.Addr, int, []byte, bool) {
	if len(ip) < 40 || ip[0]>>4 != 6 {
		return netip.Addr{}, 0, nil, false
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if 40+plen > len(ip) {
		return netip.Addr{}, 0, nil, false
	}
	next := ip[6]
	hop := int(ip[7])
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	rest := ip[40 : 40+plen]
	for {
		switch next {
		case vrrpProto:
			return src, hop, rest, true
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(rest) < 8 {
				return netip.Addr{}, 0, nil, false
			}
			n := (int(rest[1]) + 1) * 8
			if n > len(rest) {
				return netip.Addr{}, 0, nil, false
			}
			next = rest[0]
			rest = rest[n:]
		default:
			return netip.Addr{}, 0, nil, false
		}
	}
}

// VRRPAdvert is the part of a captured VRRP advertisement that failover measurements need.
type VRRPAdvert struct {
	Time     time.Time
	Src      netip.Addr
	TTL      int
	Version  int // 2 or 3
	VRID     int
	Priority int
}

// VRRPAdverts picks the VRRP advertisements (type 1) out of captured Ethernet frames, in capture
// order. Frames that are not VRRP are skipped.
func VRRPAdverts(pkts []Packet) []VRRPAdvert {
	var out []VRRPAdvert
	for _, p := range pkts {
		if p.LinkType != 0 && p.LinkType != LinkTypeEthernet {
			continue
		}
		src, ttl, payload, ok := ParseVRRPFrame(p.Data)
		if !ok || len(payload) < 4 || payload[0]&0x0f != 1 {
			continue
		}
		out = append(out, VRRPAdvert{
			Time:     p.Time,
			Src:      src,
			TTL:      ttl,
			Version:  int(payload[0] >> 4),
			VRID:     int(payload[1]),
			Priority: int(payload[2]),
		})
	}
	return out
}

// MasterGap measures a failover on the wire: the time from the last advertisement of VRID vrid
// sent by oldMaster to the first one sent by newMaster after it. A priority-0 advert of the old
// master counts as its last (the graceful handover case). ok is false when newMaster never sent
// for the VRID after oldMaster did.
func MasterGap(adverts []VRRPAdvert, vrid int, oldMaster, newMaster netip.Addr) (gap time.Duration, ok bool) {
	var last time.Time
	seenOld := false
	for _, a := range adverts {
		if a.VRID != vrid {
			continue
		}
		switch a.Src {
		case oldMaster:
			last, seenOld = a.Time, true
		case newMaster:
			if seenOld {
				return a.Time.Sub(last), true
			}
		}
	}
	return 0, false
}
