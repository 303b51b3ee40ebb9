// Package vip is vipd's VIP plane: it puts virtual IP addresses
// (virtual_ipaddress, virtual_ipaddress_excluded) and virtual routes
// (virtual_routes) on interfaces and takes them off again, and it announces
// a takeover to the segment with gratuitous ARP (IPv4) and unsolicited
// neighbour advertisements (IPv6), in the same frame format as keepalived
// 2.2.7. VMAC macvlans will live here too.
//
// It owns:
//   - the conversion of config.VIP / config.Route into netlink requests, with
//     keepalived's semantics (default prefix /32 and /128, no broadcast unless
//     "brd" is given, IPv6 VIPs added with IFA_F_NODAD, IPv6 /128 VIPs added
//     deprecated, routes with protocol "keepalived" (18) in table main);
//   - building GARP / NA frames (pure functions, byte-compatible with
//     keepalived) and sending them on an AF_PACKET socket;
//   - two implementations of Plane: *Netlink (the kernel, through
//     vishvananda/netlink) and *Memory (an in-memory record with a
//     transcript, for unit tests of the code that drives the plane).
//
// It does not decide anything: when to add or remove addresses, when and how
// often to announce (garp_master_delay, garp_master_repeat,
// garp_master_refresh, vrrp_garp_interval) are the vrrp runtime's decisions,
// taken with its own clock. Announce sends exactly one round.
//
// It also owns watching the host for VIPs that vanish behind vipd's back:
// Watcher delivers address and link events (AddrRemoved, AddrAdded, LinkUp,
// LinkDown, Resync) of the process's network namespace. *NetlinkWatcher
// subscribes to rtnetlink's address and link groups with
// vishvananda/netlink, names interfaces from a cache kept up to date by the
// link events, counts a link up when IFF_UP and IFF_RUNNING are both set (as
// keepalived does), and heals its own failures: a receive buffer overflow
// (ENOBUFS) or any other end of a subscription is followed by a
// resubscription and a Resync. *Memory emits the same events for its own
// changes and for those a test makes behind its back (AddBehindBack,
// RemoveBehindBack, SetLink, Overflow). Every Watch starts with a Resync.
// The watcher reports; whether and when to put an address back, or to count
// an interface as faulty, is the vrrp runtime's decision.
package vip
