package wire

// This file is the VRRP advertisement codec: VRRPv2 (RFC 3768) and VRRPv3
// (RFC 5798) over IPv4 and IPv6, as keepalived 2.2.7 puts them on the wire
// (vrrp_build_vrrp_v2/v3) and checks them (vrrp_check_packet). It sees only
// the VRRP payload; the IP header is the socket layer's, which passes the IP
// source and destination in for the checksums.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// VRRPv2 authentication types (RFC 2338 5.3.6; RFC 3768 keeps the field for
// compatibility). vipd implements AuthNone and AuthPass, as keepalived does
// unless it is built with AH support.
const (
	AuthNone = 0 // no authentication
	AuthPass = 1 // simple text password, 8 bytes zero-padded
	AuthAH   = 2 // IPsec AH (IP protocol 51); not implemented
)

// VRRP multicast groups (RFC 5798 5.1.1.2, 5.1.2.2).
var (
	MulticastGroup4 = netip.MustParseAddr("224.0.0.18")
	MulticastGroup6 = netip.MustParseAddr("ff02::12")
)

// Wire layout constants.
const (
	pktHeaderLen   = 8   // version/type, VRID, priority, count, v2 auth type + adver int | v3 rsvd + max adver int, checksum
	pktAuthDataLen = 8   // v2 over IPv4: authentication data trailer
	pktCARPLen     = 36  // a CARP advertisement (OpenBSD ip_carp.h: struct carp_header)
	pktTypeAdvert  = 1   // the only VRRP packet type
	pktProtoVRRP   = 112 // IP protocol number of VRRP (and CARP)
	pktV3IntMask   = 0x0fff
	pktMaxV2Int    = 255 * time.Second
	pktMaxV3Int    = pktV3IntMask * 10 * time.Millisecond
)

// Advert is one VRRP advertisement, version 2 or 3, IPv4 or IPv6.
type Advert struct {
	Version  int   // 2 or 3
	VRID     uint8 // virtual router identifier, 1..255 on a sane network (0 is decoded, not rejected)
	Priority uint8 // 0 (the master leaves), 1..254, 255 (address owner)
	// AuthType is the v2 Auth Type field: AuthNone, AuthPass or AuthAH.
	// Zero for v3.
	AuthType uint8
	// AuthData is the v2 authentication data trailer as sent (IPv4 only):
	// the PASS password zero-padded to 8 bytes. Zero for v3 and for v2 over
	// IPv6, which has no trailer.
	AuthData [8]byte
	// Interval is the v2 Adver Int (whole seconds, 0..255 s) or the v3 Max
	// Adver Int (12 bits of centiseconds, 0..40.95 s).
	Interval time.Duration
	// Addrs are the virtual addresses the advert carries, all of the
	// family of the IP packet that carried it.
	Addrs []netip.Addr
	// Checksum is the checksum as read by Parse, or as computed by
	// AppendMarshal.
	Checksum uint16
}

// ChecksumOpt selects keepalived's checksum compatibility behaviour.
type ChecksumOpt struct {
	// OldUnicastChecksum is keepalived's old_unicast_checksum: for VRRPv3
	// over IPv4 to a unicast destination the pseudo-header carries the
	// multicast group 224.0.0.18 instead of the real destination (keepalived
	// <= 1.3.6 did this). AppendMarshal then sends that form; Parse accepts
	// both forms.
	OldUnicastChecksum bool
	// Group4 is the multicast group keepalived puts in that pseudo-header:
	// the global vrrp_mcast_group4 (invalid: 224.0.0.18).
	Group4 netip.Addr
}

// oldGroup is the pseudo-header destination of the old_unicast_checksum form.
func (o ChecksumOpt) oldGroup() netip.Addr {
	if o.Group4.Is4() {
		return o.Group4
	}
	return MulticastGroup4
}

// pktFamily works out the IP family of an advert from its IP source and
// destination: 4 or 6, or 0 when neither is known. Mixed families and
// IPv4-mapped IPv6 addresses are an error.
func pktFamily(src, dst netip.Addr) (int, error) {
	fam := 0
	for _, a := range [2]netip.Addr{src, dst} {
		if !a.IsValid() {
			continue
		}
		if a.Is4In6() {
			return 0, fmt.Errorf("IPv4-mapped IPv6 address %s: pass the plain IPv4 address", a)
		}
		f := 4
		if a.Is6() {
			f = 6
		}
		if fam != 0 && f != fam {
			return 0, fmt.Errorf("IP source %s and destination %s of different families", src, dst)
		}
		fam = f
	}
	return fam, nil
}

// pktExpectedLen is the length of a VRRP packet with count addresses.
func pktExpectedLen(version, fam, count int) int {
	if fam == 6 {
		return pktHeaderLen + 16*count
	}
	n := pktHeaderLen + 4*count
	if version == 2 {
		n += pktAuthDataLen
	}
	return n
}

// AppendMarshal appends the wire form of a (no IP header) to b with the
// checksum filled in, and stores that checksum in a.Checksum. src and dst
// are the IP source and destination: VRRPv3 and anything over IPv6 checksum
// a pseudo-header (RFC 5798 5.2.8), so they are required there; a VRRPv2
// IPv4 advert needs neither (the family then comes from a.Addrs). With
// opt.OldUnicastChecksum a VRRPv3 IPv4 advert to a unicast dst is summed
// with 224.0.0.18 (or opt.Group4) as the pseudo-header destination, as
// keepalived's old_unicast_checksum does. It does not allocate when b has room.
func (a *Advert) AppendMarshal(b []byte, src, dst netip.Addr, opt ChecksumOpt) ([]byte, error) {
	if a.Version != 2 && a.Version != 3 {
		return b, fmt.Errorf("vrrp: marshal advert: version %d: must be 2 or 3", a.Version)
	}
	if len(a.Addrs) > 255 {
		return b, fmt.Errorf("vrrp: marshal advert: %d addresses: at most 255 fit", len(a.Addrs))
	}
	fam, err := pktFamily(src, dst)
	if err != nil {
		return b, fmt.Errorf("vrrp: marshal advert: %w", err)
	}
	if fam == 0 && len(a.Addrs) > 0 && a.Addrs[0].Is6() {
		fam = 6
	}
	if fam == 0 {
		fam = 4
	}
	if (a.Version == 3 || fam == 6) && (!src.IsValid() || !dst.IsValid()) {
		return b, fmt.Errorf("vrrp: marshal advert: VRRPv%d over IPv%d: IP source and destination are needed for the checksum pseudo-header", a.Version, fam)
	}
	for _, v := range a.Addrs {
		if !v.IsValid() || v.Is4In6() || (fam == 4) != v.Is4() || v.Zone() != "" {
			return b, fmt.Errorf("vrrp: marshal advert: address %s in an IPv%d advert: every address must be a plain IPv%d address", v, fam, fam)
		}
	}
	var intField uint16
	switch a.Version {
	case 2:
		if a.Interval < 0 || a.Interval > pktMaxV2Int || a.Interval%time.Second != 0 {
			return b, fmt.Errorf("vrrp: marshal advert: VRRPv2 advert interval %s: must be whole seconds, 0..255s", a.Interval)
		}
		if a.AuthType > AuthAH {
			return b, fmt.Errorf("vrrp: marshal advert: auth type %d: must be 0 (none), 1 (PASS) or 2 (AH)", a.AuthType)
		}
		if fam == 6 && a.AuthData != ([8]byte{}) {
			return b, fmt.Errorf("vrrp: marshal advert: VRRPv2 over IPv6 carries no authentication data")
		}
		intField = uint16(a.AuthType)<<8 | uint16(a.Interval/time.Second)
	case 3:
		if a.Interval < 0 || a.Interval > pktMaxV3Int || a.Interval%(10*time.Millisecond) != 0 {
			return b, fmt.Errorf("vrrp: marshal advert: VRRPv3 advert interval %s: must be whole centiseconds, 0..40.95s", a.Interval)
		}
		if a.AuthType != AuthNone || a.AuthData != ([8]byte{}) {
			return b, fmt.Errorf("vrrp: marshal advert: VRRPv3 has no authentication (auth type %d)", a.AuthType)
		}
		intField = uint16(a.Interval / (10 * time.Millisecond))
	}

	start := len(b)
	b = append(b, byte(a.Version<<4|pktTypeAdvert), a.VRID, a.Priority, byte(len(a.Addrs)),
		byte(intField>>8), byte(intField), 0, 0)
	for _, v := range a.Addrs {
		if fam == 4 {
			v4 := v.As4()
			b = append(b, v4[:]...)
		} else {
			v6 := v.As16()
			b = append(b, v6[:]...)
		}
	}
	if a.Version == 2 && fam == 4 {
		b = append(b, a.AuthData[:]...)
	}
	pkt := b[start:]
	var sum uint32
	if a.Version == 3 || fam == 6 {
		pdst := dst
		if opt.OldUnicastChecksum && a.Version == 3 && fam == 4 && !dst.IsMulticast() {
			pdst = opt.oldGroup()
		}
		sum = pktPseudoSum(src, pdst, len(pkt))
	}
	a.Checksum = pktFold(pktSum(sum, pkt))
	binary.BigEndian.PutUint16(pkt[6:8], a.Checksum)
	return b, nil
}

// pktAdvertBuf lets Parse allocate an Advert and a few addresses at once.
type pktAdvertBuf struct {
	a     Advert
	addrs [4]netip.Addr
}

// Parse decodes the VRRP payload b (no IP header) received from IP source
// src to IP destination dst and checks everything intrinsic to the packet:
// at least a header; version 2 or 3; type advertisement; a CARP packet
// (version 2, 36 bytes, not a 5-address VRRPv2 advert) is recognised; the
// length matches the address count (plus the 8-byte auth trailer for v2
// over IPv4); a v2 auth type of 0, 1 or 2; the checksum: v2 over IPv4 plain,
// anything else over the pseudo-header of src and dst, and for v3 IPv4
// unicast also keepalived's old_unicast_checksum form when opt says so. The
// v3 reserved bits are ignored, as RFC 5798 5.2.5 and keepalived do. The
// family comes from src/dst (IPv4 when neither is valid); VRRPv3 and IPv6
// need both. A rejection is a *DropError.
func Parse(b []byte, src, dst netip.Addr, opt ChecksumOpt) (*Advert, error) {
	buf := &pktAdvertBuf{}
	if err := ParseInto(&buf.a, buf.addrs[:0], b, src, dst, opt); err != nil {
		return nil, err
	}
	return &buf.a, nil
}

// ParseInto is Parse into a caller's Advert, with its address list in
// addrs' storage when it fits (cap(addrs)), so the receive path allocates
// nothing. a is overwritten whole; on an error its content is undefined.
func ParseInto(a *Advert, addrs []netip.Addr, b []byte, src, dst netip.Addr, opt ChecksumOpt) error {
	fam, err := pktFamily(src, dst)
	if err != nil {
		return pktDrop(DropFamily, "%v", err)
	}
	if fam == 0 {
		fam = 4
	}
	if len(b) < pktHeaderLen {
		return pktDrop(DropTruncated, "%d bytes, a VRRP header is %d", len(b), pktHeaderLen)
	}
	version, typ, count := int(b[0]>>4), b[0]&0x0f, int(b[3])
	if version != 2 && version != 3 {
		return pktDrop(DropBadVersion, "version %d, want 2 or 3", version)
	}
	if typ != pktTypeAdvert {
		return pktDrop(DropBadType, "type %d, want 1 (advertisement)", typ)
	}
	want := pktExpectedLen(version, fam, count)
	if version == 2 && len(b) == pktCARPLen && want != pktCARPLen {
		return pktDrop(DropCARP, "a CARP advertisement (vhid %d), not VRRP", b[1])
	}
	if len(b) != want {
		return pktDrop(DropAddrCount, "%d bytes for %d IPv%d addresses, want %d", len(b), count, fam, want)
	}
	if version == 2 && b[4] > AuthAH {
		return pktDrop(DropAuthType, "invalid auth type %d", b[4])
	}
	if (version == 3 || fam == 6) && (!src.IsValid() || !dst.IsValid()) {
		return pktDrop(DropFamily, "VRRPv%d over IPv%d needs the IP source and destination for the checksum", version, fam)
	}

	var ok bool
	switch {
	case version == 2 && fam == 4:
		ok = pktFold(pktSum(0, b)) == 0
	default:
		ok = pktFold(pktSum(pktPseudoSum(src, dst, len(b)), b)) == 0
		if !ok && version == 3 && fam == 4 && !dst.IsMulticast() &&
			pktFold(pktSum(pktPseudoSum(src, opt.oldGroup(), len(b)), b)) == 0 {
			if !opt.OldUnicastChecksum {
				return pktDrop(DropOldUnicastChecksum, "VRRPv3 checksum %#04x from %s verifies only with %s in the pseudo-header (old_unicast_checksum)", binary.BigEndian.Uint16(b[6:8]), src, opt.oldGroup())
			}
			ok = true
		}
	}
	if !ok {
		return pktDrop(DropBadChecksum, "VRRPv%d checksum %#04x from %s does not verify", version, binary.BigEndian.Uint16(b[6:8]), src)
	}

	*a = Advert{}
	a.Version = version
	a.VRID = b[1]
	a.Priority = b[2]
	a.Checksum = binary.BigEndian.Uint16(b[6:8])
	if version == 2 {
		a.AuthType = b[4]
		a.Interval = time.Duration(b[5]) * time.Second
	} else {
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&pktV3IntMask) * 10 * time.Millisecond
	}
	switch {
	case count == 0:
	case count <= cap(addrs):
		a.Addrs = addrs[:count:count]
	default:
		a.Addrs = make([]netip.Addr, count)
	}
	p := b[pktHeaderLen:]
	for i := range a.Addrs {
		if fam == 4 {
			a.Addrs[i] = netip.AddrFrom4([4]byte(p[:4]))
			p = p[4:]
		} else {
			a.Addrs[i] = netip.AddrFrom16([16]byte(p[:16]))
			p = p[16:]
		}
	}
	if version == 2 && fam == 4 {
		copy(a.AuthData[:], p)
	}
	return nil
}

// pktPseudoSum is the unfolded one's-complement sum of the IPv4 (RFC 768
// style) or IPv6 (RFC 8200 8.1) pseudo-header for a VRRP packet of n bytes.
func pktPseudoSum(src, dst netip.Addr, n int) uint32 {
	var sum uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = pktSum(0, s[:])
		sum = pktSum(sum, d[:])
	} else {
		s, d := src.As16(), dst.As16()
		sum = pktSum(0, s[:])
		sum = pktSum(sum, d[:])
	}
	// Length (16 bits for IPv4, 32 for IPv6; n < 65536 either way) and the
	// next header / protocol; the zero bytes add nothing.
	return sum + uint32(n) + pktProtoVRRP
}

// pktSum adds b as big-endian 16-bit words to sum (RFC 1071); an odd last
// byte is padded with zero.
func pktSum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// pktFold folds a 32-bit sum into the 16-bit one's complement checksum.
func pktFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
