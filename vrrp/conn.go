package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// IPProtoVRRP is VRRP's IP protocol number.
const IPProtoVRRP = 112

// tosInternetControl is the TOS keepalived puts on adverts (IPTOS_PREC_INTERNETCONTROL).
const tosInternetControl = 0xc0

// Conn is one raw VRRP socket bound to one interface for one address
// family. All instances on that interface and family share it.
type Conn struct {
	ifi *net.Interface
	v6  bool
	pc  net.PacketConn
	r4  *ipv4.RawConn
	p6  *ipv6.PacketConn
}

// ListenConn opens the raw IP protocol 112 socket for ifname, binds it to
// the device, joins the VRRP multicast group (224.0.0.18 / ff02::12) on it,
// and sets TTL / hop limit 255 for sending with multicast loopback off.
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
	c := &Conn{ifi: ifi, v6: v6, pc: pc}
	if err := c.setup(); err != nil {
		pc.Close()
		return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
	}
	return c, nil
}

func (c *Conn) setup() error {
	if c.v6 {
		p := ipv6.NewPacketConn(c.pc)
		c.p6 = p
		if err := p.JoinGroup(c.ifi, &net.IPAddr{IP: MulticastGroup6.AsSlice()}); err != nil {
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
	if err := r.JoinGroup(c.ifi, &net.IPAddr{IP: MulticastGroup4.AsSlice()}); err != nil {
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
	if c.v6 {
		cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: c.ifi.Index}
		if src.IsValid() {
			cm.Src = src.AsSlice()
		}
		zone := ""
		if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast() {
			// By index: a name would be looked up in the calling
			// thread's network namespace.
			zone = strconv.Itoa(c.ifi.Index)
		}
		_, err := c.p6.WriteTo(payload, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: zone})
		return err
	}
	h := &ipv4.Header{
		Version:  ipv4.Version,
		Len:      ipv4.HeaderLen,
		TOS:      tosInternetControl,
		TotalLen: ipv4.HeaderLen + len(payload),
		TTL:      255,
		Protocol: IPProtoVRRP,
		Dst:      dst.AsSlice(),
	}
	if src.IsValid() {
		h.Src = src.AsSlice()
	}
	return c.r4.WriteTo(h, payload, nil)
}

// Recv reads one packet into buf and returns the VRRP payload (a slice of
// buf) with what the IP layer told about it.
func (c *Conn) Recv(buf []byte) ([]byte, RecvMeta, error) {
	if c.v6 {
		n, cm, src, err := c.p6.ReadFrom(buf)
		if err != nil {
			return nil, RecvMeta{}, err
		}
		meta := RecvMeta{TTL: -1}
		if ia, ok := src.(*net.IPAddr); ok {
			a, _ := netip.AddrFromSlice(ia.IP)
			meta.Src = a.Unmap()
		}
		if cm != nil {
			meta.TTL = cm.HopLimit
			meta.IfIndex = cm.IfIndex
			if d, ok := netip.AddrFromSlice(cm.Dst); ok {
				meta.Dst = d.Unmap()
			}
		}
		return buf[:n], meta, nil
	}
	h, p, cm, err := c.r4.ReadFrom(buf)
	if err != nil {
		return nil, RecvMeta{}, err
	}
	if h == nil {
		return nil, RecvMeta{}, errors.New("vrrp: packet without IPv4 header")
	}
	meta := RecvMeta{TTL: h.TTL}
	if a, ok := netip.AddrFromSlice(h.Src); ok {
		meta.Src = a.Unmap()
	}
	if a, ok := netip.AddrFromSlice(h.Dst); ok {
		meta.Dst = a.Unmap()
	}
	if cm != nil {
		meta.IfIndex = cm.IfIndex
	}
	return p, meta, nil
}

// PrimaryAddr returns the address an instance on ifname advertises from when
// none is configured: the first IPv4 address of the interface (keepalived's
// choice), or its IPv6 link-local address (RFC 5798 5.1.2.1).
func PrimaryAddr(ifname string, v6 bool) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
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
