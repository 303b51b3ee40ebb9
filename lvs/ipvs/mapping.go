package ipvs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"net/netip"

	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/lvs"
)

// Service flags (include/uapi/linux/ip_vs.h).
const (
	svcPersistent = 0x0001 // IP_VS_SVC_F_PERSISTENT
)

// Local is the forwarding method the kernel reports for a destination whose
// address is local to the director, whatever was asked for (ipvsadm -L
// shows "Local"): lvs.Local.
const Local = lvs.Local

// maxWeight is ipvsadm's upper bound; moby/ipvs reads weights back as
// 16 bits.
const maxWeight = 65535

var protoNumbers = map[string]uint16{
	lvs.TCP:  unix.IPPROTO_TCP,
	lvs.UDP:  unix.IPPROTO_UDP,
	lvs.SCTP: unix.IPPROTO_SCTP,
}

var protoNames = map[uint16]string{
	unix.IPPROTO_TCP:  lvs.TCP,
	unix.IPPROTO_UDP:  lvs.UDP,
	unix.IPPROTO_SCTP: lvs.SCTP,
}

var forwardFlags = map[string]uint32{
	lvs.NAT: ipvs.ConnectionFlagMasq,
	lvs.DR:  ipvs.ConnectionFlagDirectRoute,
	lvs.TUN: ipvs.ConnectionFlagTunnel,
}

func addressFamily(v6 bool) uint16 {
	if v6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// keyService is the IPVS service that only identifies k, for deletes and
// destination commands (the kernel reads nothing else from it there).
func keyService(k lvs.ServiceKey) (*ipvs.Service, error) {
	if k.FWMark != 0 {
		if k.Protocol != "" || k.Addr.IsValid() || k.Port != 0 {
			return nil, fmt.Errorf("a fwmark service has no protocol, address or port (got %q %v port %d)", k.Protocol, k.Addr, k.Port)
		}
		return &ipvs.Service{FWMark: k.FWMark, AddressFamily: addressFamily(k.IPv6)}, nil
	}
	proto, ok := protoNumbers[k.Protocol]
	if !ok {
		return nil, fmt.Errorf("protocol %q: want TCP, UDP or SCTP", k.Protocol)
	}
	if !k.Addr.IsValid() {
		return nil, fmt.Errorf("no address")
	}
	a := k.Addr.Unmap()
	return &ipvs.Service{
		Address:       net.IP(a.AsSlice()),
		Protocol:      proto,
		Port:          k.Port,
		AddressFamily: addressFamily(a.Is6()),
	}, nil
}

// toService is s as IPVS takes it: Timeout > 0 makes it persistent, and
// the netmask is the prefix length turned into the kernel's form (an IPv4
// mask in network byte order, an IPv6 prefix length).
func toService(s lvs.Service) (*ipvs.Service, error) {
	svc, err := keyService(s.Key)
	if err != nil {
		return nil, err
	}
	if s.Scheduler == "" {
		return nil, fmt.Errorf("no scheduler")
	}
	svc.SchedName = s.Scheduler
	if s.Timeout > 0 {
		svc.Flags = svcPersistent
		svc.Timeout = s.Timeout
	}
	svc.Netmask, err = netmask(s.Key.Is6(), s.Netmask)
	if err != nil {
		return nil, err
	}
	return svc, nil
}

// netmask is IPVS_SVC_ATTR_NETMASK for a prefix length (0: the whole
// address). moby/ipvs writes the value in host byte order; the kernel reads
// an IPv4 mask as __be32 and an IPv6 one as a plain prefix length.
func netmask(v6 bool, prefix int) (uint32, error) {
	if v6 {
		switch {
		case prefix == 0:
			return 128, nil
		case prefix < 0 || prefix > 128:
			return 0, fmt.Errorf("netmask /%d: want 1..128 for IPv6", prefix)
		}
		return uint32(prefix), nil
	}
	switch {
	case prefix == 0:
		prefix = 32
	case prefix < 0 || prefix > 32:
		return 0, fmt.Errorf("netmask /%d: want 1..32 for IPv4", prefix)
	}
	var be [4]byte
	binary.BigEndian.PutUint32(be[:], ^uint32(0)<<(32-prefix))
	return binary.NativeEndian.Uint32(be[:]), nil
}

// prefixLen reverses netmask; the whole address is 0, lvs's default.
func prefixLen(v6, persistent bool, raw uint32) (int, error) {
	if v6 {
		switch {
		case raw == 0 && !persistent, raw == 128:
			return 0, nil
		case raw == 0 || raw > 128:
			return 0, fmt.Errorf("IPv6 netmask %d: want 1..128", raw)
		}
		return int(raw), nil
	}
	var be [4]byte
	binary.NativeEndian.PutUint32(be[:], raw)
	m := binary.BigEndian.Uint32(be[:])
	n := bits.LeadingZeros32(^m)
	switch {
	case m<<n != 0:
		return 0, fmt.Errorf("netmask %s is not a prefix", netip.AddrFrom4(be))
	case n == 32:
		return 0, nil
	case n == 0 && !persistent:
		// 0.0.0.0 on a service that is not persistent: never used; some
		// tools leave it unset.
		return 0, nil
	case n == 0:
		return 0, fmt.Errorf("netmask 0.0.0.0 (one persistence template for every client) cannot be represented")
	}
	return n, nil
}

// fromService is s in lvs's words. The address of an address service is
// unmapped, and ServiceKey.IPv6 is set only for fwmark services.
func fromService(s *ipvs.Service) (lvs.Service, error) {
	var v6 bool
	switch s.AddressFamily {
	case unix.AF_INET:
	case unix.AF_INET6:
		v6 = true
	default:
		return lvs.Service{}, fmt.Errorf("service with address family %d", s.AddressFamily)
	}
	var k lvs.ServiceKey
	if s.FWMark != 0 {
		k = lvs.ServiceKey{FWMark: s.FWMark, IPv6: v6}
	} else {
		proto, ok := protoNames[s.Protocol]
		if !ok {
			return lvs.Service{}, fmt.Errorf("service with IP protocol %d", s.Protocol)
		}
		a, err := addr(s.Address, v6)
		if err != nil {
			return lvs.Service{}, fmt.Errorf("%s service: %w", proto, err)
		}
		k = lvs.ServiceKey{Protocol: proto, Addr: a, Port: s.Port}
	}
	out := lvs.Service{Key: k, Scheduler: s.SchedName}
	persistent := s.Flags&svcPersistent != 0
	if persistent {
		out.Timeout = s.Timeout
	}
	n, err := prefixLen(v6, persistent, s.Netmask)
	if err != nil {
		return lvs.Service{}, fmt.Errorf("%s: %w", k, err)
	}
	out.Netmask = n
	return out, nil
}

func addr(ip net.IP, v6 bool) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("address %v of %d bytes", ip, len(ip))
	}
	if !v6 {
		a = a.Unmap()
		if !a.Is4() {
			return netip.Addr{}, fmt.Errorf("address %v in an IPv4 service", a)
		}
	}
	return a, nil
}

// destKey is the IPVS destination that only identifies dk in k's service.
func destKey(k lvs.ServiceKey, dk lvs.DestKey) (*ipvs.Destination, error) {
	if !dk.Addr.IsValid() {
		return nil, fmt.Errorf("destination without address")
	}
	a := dk.Addr.Unmap()
	if a.Is6() != k.Is6() {
		return nil, fmt.Errorf("destination %s: not of the service's address family", lvs.DestKey{Addr: a, Port: dk.Port})
	}
	return &ipvs.Destination{
		Address:       net.IP(a.AsSlice()),
		Port:          dk.Port,
		AddressFamily: addressFamily(a.Is6()),
	}, nil
}

// toDest is d as IPVS takes it in k's service.
func toDest(k lvs.ServiceKey, d lvs.Dest) (*ipvs.Destination, error) {
	dst, err := destKey(k, d.Key())
	if err != nil {
		return nil, err
	}
	fwd, ok := forwardFlags[d.Forward]
	if !ok {
		return nil, fmt.Errorf("destination %s: forwarding method %q: want NAT, DR or TUN", d.Key(), d.Forward)
	}
	if d.Weight < 0 || d.Weight > maxWeight {
		return nil, fmt.Errorf("destination %s: weight %d: want 0..%d", d.Key(), d.Weight, maxWeight)
	}
	dst.ConnectionFlags = fwd
	dst.Weight = d.Weight
	return dst, nil
}

// fromDest is d in lvs's words.
func fromDest(d *ipvs.Destination) (lvs.Dest, error) {
	var v6 bool
	switch d.AddressFamily {
	case unix.AF_INET:
	case unix.AF_INET6:
		v6 = true
	default:
		return lvs.Dest{}, fmt.Errorf("destination with address family %d", d.AddressFamily)
	}
	a, err := addr(d.Address, v6)
	if err != nil {
		return lvs.Dest{}, fmt.Errorf("destination: %w", err)
	}
	out := lvs.Dest{Addr: a, Port: d.Port, Weight: d.Weight}
	switch d.ConnectionFlags & ipvs.ConnectionFlagFwdMask {
	case ipvs.ConnectionFlagMasq:
		out.Forward = lvs.NAT
	case ipvs.ConnectionFlagDirectRoute:
		out.Forward = lvs.DR
	case ipvs.ConnectionFlagTunnel:
		out.Forward = lvs.TUN
	case ipvs.ConnectionFlagLocalNode:
		out.Forward = Local
	default:
		return lvs.Dest{}, fmt.Errorf("destination %s: forwarding method %#x", out.Key(), d.ConnectionFlags&ipvs.ConnectionFlagFwdMask)
	}
	return out, nil
}
