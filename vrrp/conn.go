package vrrp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/vrrp/wire"
)

// IPProtoVRRP is VRRP's IP protocol number.
const IPProtoVRRP = 112

// tosInternetControl is the TOS keepalived puts on adverts (IPTOS_PREC_INTERNETCONTROL).
const tosInternetControl = 0xc0

// defaultTTL is the TTL / hop limit of every advert without unicast_ttl.
const defaultTTL = 255

// TTLSender is a Sender that can also set the IPv4 TTL / IPv6 hop limit of
// one packet (unicast_ttl on a socket shared with other instances).
type TTLSender interface {
	Sender
	// SendTTL is Send with TTL / hop limit ttl (0: 255).
	SendTTL(payload []byte, src, dst netip.Addr, ttl int) error
}

// Conn is one raw VRRP socket bound to one interface for one address
// family. All instances on that interface and family share it.
type Conn struct {
	ifi *net.Interface
	v6  bool
	pc  net.PacketConn
	rc  syscall.RawConn
	r4  *ipv4.RawConn
	p6  *ipv6.PacketConn

	// The send path builds each packet in these, under wmu, so sending
	// an advert allocates nothing: IPv4 goes out with our own header
	// (IP_HDRINCL: TTL per packet), IPv6 with IPV6_PKTINFO and
	// IPV6_HOPLIMIT control messages (hop limit per packet).
	wmu   sync.Mutex
	wpkt  []byte // IPv4: header and payload; IPv6: the payload
	woob  []byte // IPv6 control messages
	wsa4  unix.SockaddrInet4
	wsa6  unix.SockaddrInet6
	werr  error
	write func(fd uintptr) bool

	gmu    sync.Mutex
	groups map[netip.Addr]bool // groups joined besides the standard one

	// The receive path: one reader (the transport's) calls Recv, which
	// reads with recvmsg(2) into these, so receiving allocates nothing.
	rmsg  unix.Msghdr
	riov  unix.Iovec
	rname unix.RawSockaddrInet6 // large enough for an IPv4 name too
	roob  []byte
	rbuf  []byte
	rn    int
	rerr  error
	read  func(fd uintptr) bool
}

// ListenConn opens the raw IP protocol 112 socket for ifname, binds it to
// the device, joins the standard VRRP multicast group (224.0.0.18 /
// ff02::12) on it (JoinGroup adds others), and turns multicast loopback
// off. Adverts leave with TTL / hop limit 255 unless SendTTL says otherwise.
func ListenConn(ifname string, v6 bool) (*Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
			if serr == nil {
				// Room for bursts: 1000 instances advertise on one socket.
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	network, laddr := "ip4:112", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:112", "::"
	}
	pc, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
	}
	c := &Conn{ifi: ifi, v6: v6, pc: pc, groups: map[netip.Addr]bool{}}
	if err := c.setup(); err != nil {
		pc.Close()
		return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
	}
	return c, nil
}

func (c *Conn) setup() error {
	sc, ok := c.pc.(syscall.Conn)
	if !ok {
		return errors.New("raw socket without a file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	c.rc = rc
	if c.v6 {
		c.roob = make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo)+unix.CmsgSpace(4)+64)
	}
	c.read = c.recvmsg
	if c.v6 {
		c.woob = make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo)+unix.CmsgSpace(4))
		c.write = func(fd uintptr) bool {
			_, c.werr = unix.SendmsgN(int(fd), c.wpkt, c.woob, &c.wsa6, 0)
			return c.werr != unix.EAGAIN
		}
	} else {
		c.write = func(fd uintptr) bool {
			c.werr = unix.Sendto(int(fd), c.wpkt, 0, &c.wsa4)
			return c.werr != unix.EAGAIN
		}
	}
	if c.v6 {
		p := ipv6.NewPacketConn(c.pc)
		c.p6 = p
		if err := p.JoinGroup(c.ifi, &net.IPAddr{IP: wire.MulticastGroup6.AsSlice()}); err != nil {
			return fmt.Errorf("join ff02::12: %w", err)
		}
		if err := p.SetMulticastInterface(c.ifi); err != nil {
			return err
		}
		if err := p.SetMulticastHopLimit(255); err != nil {
			return err
		}
		if err := p.SetHopLimit(255); err != nil {
			return err
		}
		if err := p.SetMulticastLoopback(false); err != nil {
			return err
		}
		return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
	}
	r, err := ipv4.NewRawConn(c.pc)
	if err != nil {
		return err
	}
	c.r4 = r
	if err := r.JoinGroup(c.ifi, &net.IPAddr{IP: wire.MulticastGroup4.AsSlice()}); err != nil {
		return fmt.Errorf("join 224.0.0.18: %w", err)
	}
	if err := r.SetMulticastInterface(c.ifi); err != nil {
		return err
	}
	if err := r.SetMulticastLoopback(false); err != nil {
		return err
	}
	return r.SetControlMessage(ipv4.FlagInterface, true)
}

// Interface is the interface the socket is bound to.
func (c *Conn) Interface() *net.Interface { return c.ifi }

// Close closes the socket.
func (c *Conn) Close() error { return c.pc.Close() }

// Send sends one VRRP payload from src to dst with TTL / hop limit 255.
func (c *Conn) Send(payload []byte, src, dst netip.Addr) error {
	return c.SendTTL(payload, src, dst, defaultTTL)
}

// SendTTL sends one VRRP payload from src (invalid: the kernel chooses) to
// dst with TTL / hop limit ttl (0: 255). It is safe for concurrent use and
// allocates nothing.
func (c *Conn) SendTTL(payload []byte, src, dst netip.Addr, ttl int) error {
	if ttl <= 0 || ttl > 255 {
		ttl = defaultTTL
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.v6 {
		if !dst.Is6() || dst.Is4In6() {
			return fmt.Errorf("vrrp: send to %s on an IPv6 socket", dst)
		}
		c.wpkt = payload
		c.woob = putCmsg6(c.woob[:0], src, c.ifi.Index, ttl)
		c.wsa6.Addr = dst.As16()
		c.wsa6.ZoneId = 0
		if scopedDst(dst) {
			c.wsa6.ZoneId = uint32(c.ifi.Index)
		}
	} else {
		if !dst.Is4() {
			return fmt.Errorf("vrrp: send to %s on an IPv4 socket", dst)
		}
		c.wpkt = putIPv4Header(c.wpkt[:0], src, dst, ttl, len(payload))
		c.wpkt = append(c.wpkt, payload...)
		c.wsa4.Addr = dst.As4()
	}
	c.werr = nil
	err := c.rc.Write(c.write)
	if c.v6 {
		c.wpkt = nil // the caller's buffer: do not keep it
	}
	if err != nil {
		return err
	}
	return c.werr
}

// scopedDst reports whether an IPv6 destination needs the interface as its
// zone (link-local, or multicast of link or interface scope).
func scopedDst(dst netip.Addr) bool {
	return dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast()
}

// putIPv4Header appends the IPv4 header keepalived puts on an advert
// (vrrp.c vrrp_build_ip4: TOS internet control, no fragment flags, TTL,
// protocol 112) for a payload of n bytes. With IP_HDRINCL the kernel fills
// in the checksum, the ID (left 0) and the source when src is invalid.
func putIPv4Header(b []byte, src, dst netip.Addr, ttl, n int) []byte {
	var s4 [4]byte
	if src.Is4() {
		s4 = src.As4()
	}
	d4 := dst.As4()
	total := ipv4.HeaderLen + n
	return append(b,
		ipv4.Version<<4|ipv4.HeaderLen>>2, tosInternetControl, byte(total>>8), byte(total),
		0, 0, 0, 0, // ID, flags and fragment offset
		byte(ttl), IPProtoVRRP, 0, 0, // checksum: the kernel's
		s4[0], s4[1], s4[2], s4[3],
		d4[0], d4[1], d4[2], d4[3])
}

// putCmsg6 appends the control messages of an IPv6 advert: IPV6_PKTINFO
// (source address, unspecified when src is invalid, and outgoing
// interface) and IPV6_HOPLIMIT (hop limit), as keepalived's
// vrrp_build_ancillary_data does.
func putCmsg6(b []byte, src netip.Addr, ifindex, hops int) []byte {
	var a16 [16]byte
	if src.Is6() && !src.Is4In6() {
		a16 = src.As16()
	}
	off := len(b)
	end := off + unix.CmsgSpace(unix.SizeofInet6Pktinfo) + unix.CmsgSpace(4)
	if cap(b) < end {
		b = append(b, make([]byte, end-off)...)
	}
	b = b[:end]
	clear(b[off:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	d := b[off+unix.CmsgLen(0):]
	copy(d, a16[:])
	binary.NativeEndian.PutUint32(d[16:], uint32(ifindex))
	off += unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	h = (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[off+unix.CmsgLen(0):], uint32(hops))
	return b
}

// JoinGroup makes the socket receive adverts to the multicast group g
// (mcast_dst_ip, vrrp_mcast_group4/6) on its interface. The standard group
// is always joined.
func (c *Conn) JoinGroup(g netip.Addr) error {
	if !g.IsMulticast() || g == c.standardGroup() {
		return nil
	}
	c.gmu.Lock()
	defer c.gmu.Unlock()
	if c.groups[g] {
		return nil
	}
	var err error
	if c.v6 {
		err = c.p6.JoinGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()})
	} else {
		err = c.r4.JoinGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()})
	}
	if err != nil {
		return fmt.Errorf("join multicast group %s on %s: %w", g, c.ifi.Name, err)
	}
	c.groups[g] = true
	return nil
}

// LeaveGroup undoes JoinGroup (the standard group stays joined).
func (c *Conn) LeaveGroup(g netip.Addr) error {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	if !c.groups[g] {
		return nil
	}
	delete(c.groups, g)
	if c.v6 {
		return c.p6.LeaveGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()})
	}
	return c.r4.LeaveGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()})
}

func (c *Conn) standardGroup() netip.Addr {
	if c.v6 {
		return wire.MulticastGroup6
	}
	return wire.MulticastGroup4
}

// Recv reads one packet into buf and returns the VRRP payload (a slice of
// buf) with what the IP layer told about it.
func (c *Conn) Recv(buf []byte) ([]byte, wire.RecvMeta, error) {
	if len(buf) == 0 {
		return nil, wire.RecvMeta{}, errors.New("vrrp: empty receive buffer")
	}
	c.rbuf = buf
	err := c.rc.Read(c.read)
	if err == nil {
		err = c.rerr
	}
	if err != nil {
		return nil, wire.RecvMeta{}, err
	}
	b := buf[:c.rn]
	if c.v6 {
		meta := wire.RecvMeta{TTL: -1, IfIndex: c.ifi.Index, Src: netip.AddrFrom16(c.rname.Addr).Unmap()}
		parseCmsg6(c.roob[:c.rmsg.Controllen], &meta)
		return b, meta, nil
	}
	// A raw IPv4 socket hands over the IP header: the TTL and the
	// addresses come from it.
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil, wire.RecvMeta{}, errors.New("vrrp: packet without IPv4 header")
	}
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if hl < 20 || hl > len(b) {
		return nil, wire.RecvMeta{}, errors.New("vrrp: bad IPv4 header length")
	}
	if total < hl || total > len(b) {
		total = len(b)
	}
	meta := wire.RecvMeta{TTL: int(b[8]), IfIndex: c.ifi.Index,
		Src: netip.AddrFrom4([4]byte(b[12:16])), Dst: netip.AddrFrom4([4]byte(b[16:20]))}
	return b[hl:total], meta, nil
}

// recvmsg is the raw read, run by the runtime poller on the socket.
func (c *Conn) recvmsg(fd uintptr) bool {
	c.riov.Base = &c.rbuf[0]
	c.riov.SetLen(len(c.rbuf))
	c.rmsg.Name = (*byte)(unsafe.Pointer(&c.rname))
	c.rmsg.Namelen = unix.SizeofSockaddrInet6
	c.rmsg.Iov = &c.riov
	c.rmsg.Iovlen = 1
	if len(c.roob) > 0 {
		c.rmsg.Control = &c.roob[0]
		c.rmsg.SetControllen(len(c.roob))
	} else {
		c.rmsg.Control = nil
		c.rmsg.SetControllen(0)
	}
	c.rmsg.Flags = 0
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.rmsg)), 0)
	if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
		return false
	}
	c.rn, c.rerr = int(n), nil
	if e != 0 {
		c.rn, c.rerr = 0, e
	}
	return true
}

// parseCmsg6 reads the hop limit and the destination from IPv6 control
// messages without allocating.
func parseCmsg6(oob []byte, meta *wire.RecvMeta) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return
		}
		data := oob[unix.CmsgLen(0):l]
		if h.Level == unix.IPPROTO_IPV6 {
			switch h.Type {
			case unix.IPV6_HOPLIMIT:
				if len(data) >= 4 {
					meta.TTL = int(*(*int32)(unsafe.Pointer(&data[0])))
				}
			case unix.IPV6_PKTINFO:
				if len(data) >= unix.SizeofInet6Pktinfo {
					pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
					meta.Dst = netip.AddrFrom16(pi.Addr).Unmap()
					meta.IfIndex = int(pi.Ifindex)
				}
			}
		}
		sp := unix.CmsgSpace(l - unix.CmsgLen(0))
		if sp > len(oob) {
			return
		}
		oob = oob[sp:]
	}
}

// PrimaryAddr returns the address an instance on ifname advertises from when
// none is configured: the first IPv4 address of the interface (keepalived's
// choice), or its IPv6 link-local address (RFC 5798 5.1.2.1).
func PrimaryAddr(ifname string, v6 bool) (netip.Addr, error) {
	prefixes, err := InterfacePrefixes(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, p := range prefixes {
		ip := p.Addr()
		if v6 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
		if !v6 && ip.Is4() {
			return ip, nil
		}
	}
	fam := "IPv4"
	if v6 {
		fam = "IPv6 link-local"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s address", ifname, fam)
}

// InterfacePrefixes returns the addresses of ifname with their prefix
// lengths (unmasked), in the kernel's order.
func InterfacePrefixes(ifname string) ([]netip.Prefix, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}
