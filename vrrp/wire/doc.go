// Package wire is vipd's VRRP wire format: VRRPv2 (RFC 3768, with
// keepalived's PASS authentication) and VRRPv3 (RFC 5798) advertisements
// over IPv4 and IPv6, as keepalived 2.2.7 puts them on the wire and checks
// them. It is pure: no I/O, no clock, no goroutines, no logging.
//
// It owns:
//
//   - the codec (packet.go): Advert, Parse and ParseInto (the latter
//     allocation-free, into a caller's Advert) and AppendMarshal, the RFC
//     1071 checksums with their pseudo-headers and keepalived's
//     old_unicast_checksum form (ChecksumOpt), the auth types (AuthNone,
//     AuthPass, AuthAH) and the multicast groups (MulticastGroup4/6);
//   - the receive checks (recvcheck.go): CheckRecv, what keepalived's
//     vrrp_check_packet refuses once an advert is known to be for one
//     instance, as a function of the advert, what the socket saw (RecvMeta)
//     and the instance's expectations (RecvExpect);
//   - the drop reasons (drop.go): DropReason, every reason an advert is
//     counted as dropped for — Parse's, CheckRecv's and the two the runtime's
//     transport finds (DropUnknownVRID, DropQueueFull) — listed by
//     DropReasons and indexed by DropIndex for arrays of counters, and
//     DropError, which carries one with its detail.
//
// It does not own the IP header, sockets, TTL/hop limit handling on send,
// demultiplexing by VRID, counting drops, the state machine or timers: those
// are package vrrp's, which sees only the VRRP payload through this package.
//
// It is tested against keepalived's own captures (vrrp/testdata/captures:
// every advert parses to its config, re-marshals byte for byte and passes
// CheckRecv on the other node) and fuzzed (FuzzParse: Parse never panics and
// what it accepts round-trips; the seed corpus is testdata/fuzz/FuzzParse).
package wire
