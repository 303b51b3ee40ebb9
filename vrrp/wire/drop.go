package wire

import "fmt"

// DropReason says why a received advert was discarded. The values are short
// snake_case labels, stable, and usable as a metric label.
type DropReason string

// Drop reasons. Every reason is declared here, whichever layer finds it, so
// that DropReasons is the whole list: Parse finds the packet-intrinsic ones,
// CheckRecv the ones that need the instance's configuration, and the
// runtime's transport (package vrrp) the two of demultiplexing and
// delivery, DropUnknownVRID and DropQueueFull. The transport counts all of
// them.
const (
	// DropTruncated: shorter than the 8-byte VRRP header.
	DropTruncated DropReason = "truncated"
	// DropBadVersion: version not 2 or 3 (Parse), or not our version (CheckRecv).
	DropBadVersion DropReason = "bad_version"
	// DropBadType: packet type is not 1 (advertisement).
	DropBadType DropReason = "bad_type"
	// DropBadChecksum: the checksum does not verify.
	DropBadChecksum DropReason = "bad_checksum"
	// DropOldUnicastChecksum: a VRRPv3 IPv4 unicast advert whose checksum
	// verifies only in keepalived's old_unicast_checksum form, received
	// without ChecksumOpt.OldUnicastChecksum. keepalived's default reacts by
	// switching the instance to the old form; a runtime that wants the same
	// re-parses with the option set and sends the old form from then on.
	DropOldUnicastChecksum DropReason = "old_unicast_checksum"
	// DropAddrCount: the length does not match the address count (plus the
	// v2 authentication trailer over IPv4).
	DropAddrCount DropReason = "addr_count"
	// DropCARP: a CARP advertisement (same IP protocol and version 2, 36 bytes).
	DropCARP DropReason = "carp"
	// DropBadTTL: a multicast advert with an IPv4 TTL / IPv6 hop limit other than 255.
	DropBadTTL DropReason = "bad_ttl"
	// DropAuthType: a v2 auth type that is unknown (Parse) or not ours (CheckRecv).
	DropAuthType DropReason = "auth_type"
	// DropAuthPass: a v2 PASS advert with the wrong password.
	DropAuthPass DropReason = "auth_pass"
	// DropIntervalMismatch: a v2 advert whose Adver Int differs from ours;
	// keepalived drops those too (RFC 3768 7.1), so both sides fall MASTER.
	DropIntervalMismatch DropReason = "interval_mismatch"
	// DropOwnAdvert: an advert sent from one of our own addresses.
	DropOwnAdvert DropReason = "own_advert"
	// DropUnicastSrc: a unicast advert from a source that is not a unicast
	// peer, with check_unicast_src set.
	DropUnicastSrc DropReason = "unicast_src"
	// DropMcastUnicastMismatch: a multicast advert on a unicast instance or
	// a unicast advert on a multicast instance.
	DropMcastUnicastMismatch DropReason = "mcast_unicast_mismatch"
	// DropFamily: IP source/destination/addresses of mixed families, or of
	// a family the instance does not run.
	DropFamily DropReason = "family"
	// DropUnknownVRID (the transport's): an advert for a VRID no instance
	// runs on that interface (normal on a shared segment; counted, not
	// logged).
	DropUnknownVRID DropReason = "unknown_vrid"
	// DropQueueFull (the transport's): the instance did not keep up with
	// its adverts.
	DropQueueFull DropReason = "queue_full"
	// WarnAddrListDiffers is not a drop: the advert's address list differs
	// from our configured VIPs (RecvResult.AddrListDiffers).
	WarnAddrListDiffers DropReason = "addr_list_differs"
)

// DropReasons lists every reason an advert is dropped for and counted —
// by Parse, CheckRecv and the transport's demultiplexer — exactly, sorted,
// so a metric can be exported at zero before the first drop.
func DropReasons() []DropReason { return append([]DropReason(nil), dropReasons[:]...) }

// NumDropReasons is len(DropReasons()), a constant, for arrays of counters
// indexed by DropIndex.
const NumDropReasons = len(dropReasons)

var dropReasons = [...]DropReason{
	DropAddrCount, DropAuthPass, DropAuthType, DropBadChecksum, DropBadTTL,
	DropBadType, DropBadVersion, DropCARP, DropFamily, DropIntervalMismatch,
	DropMcastUnicastMismatch, DropOldUnicastChecksum, DropOwnAdvert,
	DropQueueFull, DropTruncated, DropUnicastSrc, DropUnknownVRID,
}

// DropIndex is r's place in DropReasons, 0..NumDropReasons-1, or -1 when r
// is not a counted reason (WarnAddrListDiffers, an unknown value). It does
// not allocate.
func DropIndex(r DropReason) int {
	for k, x := range dropReasons {
		if x == r {
			return k
		}
	}
	return -1
}

// DropError is the error Parse returns for a rejected advert; CheckRecv
// reports one in RecvResult.Drop.
type DropError struct {
	Reason DropReason
	Detail string
}

// pktDrop returns a *DropError for r with a detail formatted as by
// fmt.Sprintf.
func pktDrop(r DropReason, format string, args ...any) *DropError {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Error implements error: "vrrp: dropped advert: <reason>: <detail>".
func (e *DropError) Error() string {
	if e.Detail == "" {
		return "vrrp: dropped advert: " + string(e.Reason)
	}
	return "vrrp: dropped advert: " + string(e.Reason) + ": " + e.Detail
}
