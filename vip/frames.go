package vip

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Frame lengths: Ethernet header (14) + ARP for IPv4 over Ethernet (28), and
// Ethernet + IPv6 header (40) + neighbour advertisement (24) + target
// link-layer address option (8).
const (
	garpFrameLen = 14 + 28
	naFrameLen   = 14 + 40 + 24 + 8
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// GratuitousARP builds the Ethernet frame keepalived sends to announce an
// IPv4 VIP (vrrp_arp.c, send_gratuitous_arp_immediate): an ARP *request*
// broadcast to ff:ff:ff:ff:ff:ff, with sender and target protocol address
// both the VIP, sender hardware address srcMAC and target hardware address
// the broadcast address. The frame is not padded to the Ethernet minimum;
// the driver pads it, as it does keepalived's.
func GratuitousARP(srcMAC net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	if len(srcMAC) != 6 {
		return nil, fmt.Errorf("gratuitous ARP for %s: source MAC %q is not a 6-byte Ethernet address", vip, srcMAC)
	}
	ip := vip.Unmap()
	if !ip.Is4() {
		return nil, fmt.Errorf("gratuitous ARP for %s: not an IPv4 address", vip)
	}
	a := ip.As4()
	b := make([]byte, garpFrameLen)
	copy(b[0:6], broadcastMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x0806) // ETHERTYPE_ARP
	arp := b[14:]
	binary.BigEndian.PutUint16(arp[0:2], 1)      // ar_hrd: ARPHRD_ETHER
	binary.BigEndian.PutUint16(arp[2:4], 0x0800) // ar_pro: ETHERTYPE_IP
	arp[4] = 6                                   // ar_hln
	arp[5] = 4                                   // ar_pln
	binary.BigEndian.PutUint16(arp[6:8], 1)      // ar_op: ARPOP_REQUEST
	copy(arp[8:14], srcMAC)                      // sender hardware address
	copy(arp[14:18], a[:])                       // sender protocol address
	copy(arp[18:24], broadcastMAC)               // target hardware address
	copy(arp[24:28], a[:])                       // target protocol address
	return b, nil
}

// NA flags (RFC 4861 4.4), in the first byte of the flags/reserved word.
const (
	naFlagRouter   = 0x80
	naFlagOverride = 0x20
)

// UnsolicitedNA builds the Ethernet frame keepalived sends to announce an
// IPv6 VIP (vrrp_ndisc.c, ndisc_send_unsolicited_na_immediate): a neighbour
// advertisement from the VIP to all-nodes ff02::1 (Ethernet 33:33:00:00:00:01)
// with hop limit 255, the override flag set, the solicited flag clear, the
// router flag set when router is true (keepalived sets it when IPv6
// forwarding is enabled on the interface), and a target link-layer address
// option carrying srcMAC.
func UnsolicitedNA(srcMAC net.HardwareAddr, vip netip.Addr, router bool) ([]byte, error) {
	if len(srcMAC) != 6 {
		return nil, fmt.Errorf("neighbour advertisement for %s: source MAC %q is not a 6-byte Ethernet address", vip, srcMAC)
	}
	if !vip.Is6() || vip.Is4In6() {
		return nil, fmt.Errorf("neighbour advertisement for %s: not an IPv6 address", vip)
	}
	src := vip.WithZone("").As16()
	dst := netip.IPv6LinkLocalAllNodes().As16()

	b := make([]byte, naFrameLen)
	copy(b[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x86dd) // ETHERTYPE_IPV6

	ip6 := b[14:54]
	ip6[0] = 6 << 4                            // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(ip6[4:6], 24+8) // payload length
	ip6[6] = 58                                // next header: ICMPv6
	ip6[7] = 255                               // hop limit (RFC 4861 requires 255)
	copy(ip6[8:24], src[:])
	copy(ip6[24:40], dst[:])

	icmp := b[54:]
	icmp[0] = 136 // ND_NEIGHBOR_ADVERT
	icmp[1] = 0   // code
	flags := byte(naFlagOverride)
	if router {
		flags |= naFlagRouter
	}
	icmp[4] = flags
	copy(icmp[8:24], src[:]) // target address
	icmp[24] = 2             // ND_OPT_TARGET_LINKADDR
	icmp[25] = 1             // length in units of 8 bytes
	copy(icmp[26:32], srcMAC)
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(src, dst, icmp))
	return b, nil
}

// icmpv6Checksum is the Internet checksum over the IPv6 pseudo-header
// (RFC 8200 8.1) and the ICMPv6 message, whose checksum field must be zero.
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var ph [8]byte
	binary.BigEndian.PutUint32(ph[0:4], uint32(len(msg)))
	ph[7] = 58
	add(ph[:])
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
