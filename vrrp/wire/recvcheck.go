package wire

import (
	"crypto/subtle"
	"net/netip"
	"time"
)

// pktTTL is the IPv4 TTL / IPv6 hop limit every multicast VRRP advert must
// carry (RFC 5798 5.1.1.3, 5.1.2.3), so that an advert cannot come from
// beyond the link.
const pktTTL = 255

// RecvMeta is what the socket layer knows about a received advert beyond
// its payload (from the source address and the control messages).
type RecvMeta struct {
	Src, Dst netip.Addr // IP source and destination; Dst invalid when unknown
	TTL      int        // IPv4 TTL or IPv6 hop limit; -1 when unknown
	IfIndex  int        // receiving interface; informational
}

// RecvExpect is the part of an instance's configuration that decides
// whether it accepts an advert.
type RecvExpect struct {
	Version  int   // our VRRP version, 2 or 3
	AuthType uint8 // v2: AuthNone or AuthPass
	// AuthPass is the v2 PASS password. Like keepalived, only its first 8
	// bytes count, compared zero-padded to 8.
	AuthPass string
	// Interval is the advert interval we send. A v2 advert must carry
	// exactly this (in whole seconds, as it goes on the wire).
	Interval time.Duration
	// Unicast is true when the instance has unicast peers: it then takes
	// only unicast adverts, otherwise only multicast ones.
	Unicast      bool
	UnicastPeers []netip.Addr
	// Group is a multicast instance's group (mcast_dst_ip,
	// vrrp_mcast_group4/6). keepalived's socket is bound to it, so an
	// advert to another group never reaches the instance; the shared
	// socket here gets every group joined on the interface, so a
	// multicast advert to another group is dropped as
	// mcast_unicast_mismatch. Invalid: any multicast destination.
	Group netip.Addr
	// CheckUnicastSrc is check_unicast_src / vrrp_check_unicast_src: a
	// unicast advert must come from one of UnicastPeers.
	CheckUnicastSrc bool
	// OwnAddrs are our own source addresses (the interface's primary
	// address, unicast_src_ip): an advert from one of them is our own.
	OwnAddrs []netip.Addr
	// VIPs are our configured virtual addresses, compared with the
	// advert's list.
	VIPs []netip.Addr
}

// RecvResult is the verdict of CheckRecv.
type RecvResult struct {
	// Drop is non-nil when the advert must be ignored; the runtime counts it
	// (per interface and VRID) and logs it, loudly for
	// DropIntervalMismatch, which keepalived peers hit too.
	Drop *DropError
	// AddrListDiffers: the advert's addresses are not our VIPs (another
	// count, or one of ours missing). Accepted anyway; worth one log line
	// per change of sender or list, not one per advert.
	AddrListDiffers bool
	// IntervalMismatch: a v3 advert with another Max Adver Int than ours.
	// Accepted: a backup learns the master's interval (RFC 5798 6.4.2).
	IntervalMismatch bool
}

// CheckRecv applies the checks that need the instance's configuration to an
// advert that Parse accepted and that was demultiplexed to the instance by
// VRID, in the order keepalived's vrrp_check_packet applies them:
//
//   - an advert from one of OwnAddrs: own_advert;
//   - a multicast advert with a TTL/hop limit other than 255: bad_ttl
//     (keepalived checks no TTL on unicast instances, whose adverts may be
//     routed, and neither does this);
//   - a version other than ours: bad_version;
//   - v2: an auth type other than ours: auth_type; a PASS password other
//     than ours: auth_pass; an Adver Int other than ours: interval_mismatch
//     (v3: accepted, IntervalMismatch set);
//   - a multicast destination on a unicast instance or the reverse, or a
//     multicast destination other than Group: mcast_unicast_mismatch
//     (skipped when Dst is unknown);
//   - with CheckUnicastSrc, a unicast source not in UnicastPeers: unicast_src;
//   - addresses of the other family than our VIPs: family.
//
// An address list that differs from VIPs only sets AddrListDiffers.
func CheckRecv(a *Advert, m RecvMeta, e RecvExpect) RecvResult {
	var r RecvResult
	src := m.Src.WithZone("").Unmap()
	if pktContains(e.OwnAddrs, src) {
		r.Drop = pktDrop(DropOwnAdvert, "advert from our own address %s", src)
		return r
	}
	if !e.Unicast && m.TTL != -1 && m.TTL != pktTTL {
		r.Drop = pktDrop(DropBadTTL, "TTL/hop limit %d from %s, want %d", m.TTL, src, pktTTL)
		return r
	}
	if a.Version != e.Version {
		r.Drop = pktDrop(DropBadVersion, "VRRPv%d advert from %s, we run VRRPv%d", a.Version, src, e.Version)
		return r
	}
	if a.Version == 2 {
		if a.AuthType != e.AuthType {
			r.Drop = pktDrop(DropAuthType, "auth type %d from %s, ours is %d", a.AuthType, src, e.AuthType)
			return r
		}
		if e.AuthType == AuthPass {
			var want [8]byte
			copy(want[:], e.AuthPass)
			if subtle.ConstantTimeCompare(a.AuthData[:], want[:]) != 1 {
				r.Drop = pktDrop(DropAuthPass, "wrong PASS password from %s", src)
				return r
			}
		}
		if a.Interval != e.Interval {
			r.Drop = pktDrop(DropIntervalMismatch, "advert interval %s from %s, ours is %s: VRRPv2 routers (keepalived too) drop adverts whose interval differs, so both sides become MASTER", a.Interval, src, e.Interval)
			return r
		}
	} else if a.Interval != e.Interval {
		r.IntervalMismatch = true
	}
	if m.Dst.IsValid() && m.Dst.IsMulticast() == e.Unicast {
		if e.Unicast {
			r.Drop = pktDrop(DropMcastUnicastMismatch, "multicast advert from %s to %s on a unicast instance", src, m.Dst)
		} else {
			r.Drop = pktDrop(DropMcastUnicastMismatch, "unicast advert from %s to %s on a multicast instance", src, m.Dst)
		}
		return r
	}
	if !e.Unicast && e.Group.IsValid() && m.Dst.IsValid() && m.Dst.WithZone("") != e.Group {
		r.Drop = pktDrop(DropMcastUnicastMismatch, "multicast advert from %s to %s, our group is %s", src, m.Dst, e.Group)
		return r
	}
	if e.Unicast && e.CheckUnicastSrc && !pktContains(e.UnicastPeers, src) {
		r.Drop = pktDrop(DropUnicastSrc, "unicast advert from %s, not a unicast_peer", src)
		return r
	}
	if len(e.VIPs) > 0 && len(a.Addrs) > 0 && e.VIPs[0].Is4() != a.Addrs[0].Is4() {
		r.Drop = pktDrop(DropFamily, "advert from %s carries %s, our VIPs are %s", src, a.Addrs[0], e.VIPs[0])
		return r
	}
	r.AddrListDiffers = pktAddrListDiffers(a.Addrs, e.VIPs)
	return r
}

// pktAddrListDiffers mirrors keepalived's test (vrrp_in_chk_vips): the
// counts differ, or one of our VIPs is missing from the advert.
func pktAddrListDiffers(got, ours []netip.Addr) bool {
	if len(got) != len(ours) {
		return true
	}
	for _, v := range ours {
		if !pktContains(got, v.WithZone("")) {
			return true
		}
	}
	return false
}

func pktContains(list []netip.Addr, a netip.Addr) bool {
	for _, v := range list {
		if v.WithZone("") == a {
			return true
		}
	}
	return false
}
