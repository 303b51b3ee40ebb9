//go:build linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/config"
)

var _ Plane = (*Netlink)(nil)

// Netlink is the Plane of the kernel: addresses and routes through an
// rtnetlink handle, GARP/NA through one AF_PACKET socket. Both are opened by
// NewNetlink in the network namespace of the calling thread and stay bound to
// it. Safe for concurrent use (operations are serialised).
//
// Announce reads /proc/sys/net/ipv6/conf/IF/forwarding to set the NA router
// flag as keepalived does; /proc/sys/net shows the namespace of the calling
// thread, so call Announce from the namespace the plane was opened in (one
// vipd process per namespace does that naturally).
type Netlink struct {
	log *slog.Logger

	mu     sync.Mutex
	h      *netlink.Handle
	fd     int // AF_PACKET, SOCK_RAW, protocol 0: sends only, never receives
	closed bool
	vmac   vmacBook // VMAC bookkeeping (vmac_linux.go), guarded by mu
	// links caches interface lookups for the address and announce paths
	// (a mass failover adds and announces thousands of VIPs on a few
	// interfaces), guarded by mu.
	links map[string]cachedLink
}

type cachedLink struct {
	l  netlink.Link
	at time.Time
}

// linkCacheTTL bounds how long a looked-up interface is reused. An error
// on the interface drops it at once.
const linkCacheTTL = time.Second

// netlinkTimeout bounds one rtnetlink request, so that a wedged kernel
// reply cannot hang the VRRP runtime forever.
const netlinkTimeout = 5 * time.Second

// NewNetlink opens an rtnetlink handle and a packet socket in the current
// network namespace. Close releases them.
func NewNetlink(log *slog.Logger) (*Netlink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: open rtnetlink: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: rtnetlink timeout: %w", err)
	}
	// Protocol 0: the kernel delivers no frames to this socket, so it needs
	// no reader and no receive filter (keepalived installs a drop-all filter
	// for the same purpose).
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: open packet socket for gratuitous ARP/NA: %w", err)
	}
	return &Netlink{log: log, h: h, fd: fd, links: map[string]cachedLink{}}, nil
}

// Close releases the handle and the socket. Later calls fail.
func (n *Netlink) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.h.Close()
	if err := unix.Close(n.fd); err != nil {
		return fmt.Errorf("vip: close packet socket: %w", err)
	}
	return nil
}

var errClosed = errors.New("vip: plane closed")

// link looks an interface up; missing reports a vanished interface.
func (n *Netlink) link(name string) (l netlink.Link, missing bool, err error) {
	l, err = n.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, true, fmt.Errorf("interface %s not found", name)
		}
		return nil, false, fmt.Errorf("interface %s: %w", name, err)
	}
	return l, false, nil
}

// cachedLink is link for the address and announce paths: an interface
// looked up within linkCacheTTL is reused. n.mu is held.
func (n *Netlink) cachedLink(name string) (netlink.Link, bool, error) {
	if c, ok := n.links[name]; ok && time.Since(c.at) < linkCacheTTL {
		return c.l, false, nil
	}
	l, missing, err := n.link(name)
	if err != nil {
		delete(n.links, name)
		return nil, missing, err
	}
	n.links[name] = cachedLink{l, time.Now()}
	return l, false, nil
}

// forget drops a cached interface (it failed, or was made or removed).
// n.mu is held.
func (n *Netlink) forget(name string) { delete(n.links, name) }

// AddAddrs implements Plane.
func (n *Netlink) AddAddrs(ctx context.Context, ifname string, vips []config.VIP) error {
	return n.eachVIP(ctx, ifname, vips, func(s addrSpec) error {
		l, _, err := n.cachedLink(s.Dev)
		if err != nil {
			return err
		}
		err = n.h.AddrAdd(l, toNetlinkAddr(s))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			// The cached interface may be stale (re-created): once more
			// with a fresh look-up.
			n.forget(s.Dev)
			if l, _, err2 := n.cachedLink(s.Dev); err2 == nil {
				err = n.h.AddrAdd(l, toNetlinkAddr(s))
			}
		}
		if errors.Is(err, unix.EEXIST) {
			n.log.Debug("VIP already present", "addr", s.Prefix, "dev", s.Dev)
			return nil
		}
		if err != nil {
			return err
		}
		n.log.Debug("VIP added", "addr", s.Prefix, "dev", s.Dev)
		return nil
	}, "add")
}

// DelAddrs implements Plane.
func (n *Netlink) DelAddrs(ctx context.Context, ifname string, vips []config.VIP) error {
	return n.eachVIP(ctx, ifname, vips, func(s addrSpec) error {
		l, missing, err := n.cachedLink(s.Dev)
		if missing {
			return nil // the interface is gone, and its addresses with it
		}
		if err != nil {
			return err
		}
		err = n.h.AddrDel(l, toNetlinkAddrDel(s))
		if errors.Is(err, unix.ENODEV) {
			n.forget(s.Dev)
		}
		if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		if err != nil {
			return err
		}
		n.log.Debug("VIP removed", "addr", s.Prefix, "dev", s.Dev)
		return nil
	}, "remove")
}

// AddrsOf returns every address on ifname with one netlink request (none
// when the interface does not exist): a caller checking many addresses of
// one device asks once instead of once per address.
func (n *Netlink) AddrsOf(ifname string) ([]netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errClosed
	}
	l, missing, err := n.cachedLink(ifname)
	if missing {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vip: %w", err)
	}
	list, err := n.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		n.forget(ifname)
		return nil, fmt.Errorf("vip: list addresses of %s: %w", ifname, err)
	}
	out := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		if a.IPNet == nil {
			continue
		}
		if got, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, got.Unmap())
		}
	}
	return out, nil
}

// HasAddr implements Plane.
func (n *Netlink) HasAddr(ifname string, addr netip.Addr) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false, errClosed
	}
	l, missing, err := n.cachedLink(ifname)
	if missing {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("vip: %w", err)
	}
	list, err := n.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		n.forget(ifname)
		return false, fmt.Errorf("vip: list addresses of %s: %w", ifname, err)
	}
	want := addr.Unmap().WithZone("")
	for _, a := range list {
		if a.IPNet == nil {
			continue
		}
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == want {
			return true, nil
		}
	}
	return false, nil
}

// AddRoutes implements Plane.
func (n *Netlink) AddRoutes(ctx context.Context, defaultDev string, routes []config.Route) error {
	return n.eachRoute(ctx, defaultDev, routes, func(s routeSpec) error {
		idx := 0
		if s.Dev != "" {
			l, _, err := n.link(s.Dev)
			if err != nil {
				return err
			}
			idx = l.Attrs().Index
		}
		err := n.h.RouteAdd(toNetlinkRoute(s, idx, false))
		if errors.Is(err, unix.EEXIST) {
			n.log.Debug("route already present", "route", s.String())
			return nil
		}
		if err != nil {
			return err
		}
		n.log.Debug("route added", "route", s.String())
		return nil
	}, "add")
}

// DelRoutes implements Plane.
func (n *Netlink) DelRoutes(ctx context.Context, defaultDev string, routes []config.Route) error {
	return n.eachRoute(ctx, defaultDev, routes, func(s routeSpec) error {
		idx := 0
		if s.Dev != "" {
			l, missing, err := n.link(s.Dev)
			if missing {
				return nil // routes through a vanished interface are gone
			}
			if err != nil {
				return err
			}
			idx = l.Attrs().Index
		}
		err := n.h.RouteDel(toNetlinkRoute(s, idx, true))
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
		n.log.Debug("route removed", "route", s.String())
		return nil
	}, "remove")
}

// Announce implements Plane. Interfaces without ARP (IFF_NOARP) and loopback
// interfaces are skipped silently, as keepalived skips them; an interface
// that is not Ethernet is an error.
func (n *Netlink) Announce(ctx context.Context, ifname string, srcMAC net.HardwareAddr, vips []config.VIP) error {
	if srcMAC != nil && len(srcMAC) != 6 {
		return fmt.Errorf("vip: announce on %s: source MAC %q is not a 6-byte Ethernet address", ifname, srcMAC)
	}
	router := map[string]bool{}
	return n.eachVIP(ctx, ifname, vips, func(s addrSpec) error {
		l, _, err := n.cachedLink(s.Dev)
		if err != nil {
			return err
		}
		a := l.Attrs()
		if a.RawFlags&unix.IFF_NOARP != 0 || a.Flags&net.FlagLoopback != 0 {
			return nil
		}
		if a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
			return fmt.Errorf("interface %s: link type %q: only Ethernet is supported", s.Dev, a.EncapType)
		}
		mac := srcMAC
		if mac == nil {
			mac = a.HardwareAddr
		}
		var frame []byte
		var proto uint16
		var dst net.HardwareAddr
		if s.Prefix.Addr().Is4() {
			frame, err = GratuitousARP(mac, s.Prefix.Addr())
			proto, dst = unix.ETH_P_ARP, broadcastMAC
		} else {
			r, ok := router[s.Dev]
			if !ok {
				r = ipv6Forwarding(s.Dev)
				router[s.Dev] = r
			}
			frame, err = UnsolicitedNA(mac, s.Prefix.Addr(), r)
			proto, dst = unix.ETH_P_IPV6, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
		}
		if err != nil {
			return err
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: a.Index, Halen: 6}
		copy(sa.Addr[:], dst)
		if err := unix.Sendto(n.fd, frame, 0, sa); err != nil {
			n.forget(s.Dev)
			return fmt.Errorf("send on %s: %w", s.Dev, err)
		}
		return nil
	}, "announce")
}

// ipv6Forwarding reports whether IPv6 forwarding is on for dev: keepalived
// then sets the router flag in its neighbour advertisements.
func ipv6Forwarding(dev string) bool {
	if strings.ContainsAny(dev, "/") || dev == "." || dev == ".." {
		return false
	}
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + dev + "/forwarding")
	if err != nil {
		return false
	}
	v := strings.TrimSpace(string(b))
	return v != "" && v != "0"
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (n *Netlink) eachVIP(ctx context.Context, ifname string, vips []config.VIP, do func(addrSpec) error, verb string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errClosed
	}
	var errs []error
	for _, v := range vips {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("vip: %s: %w", verb, err))
			break
		}
		s, err := vipSpec(ifname, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: %s: %w", verb, err))
			continue
		}
		if err := do(s); err != nil {
			errs = append(errs, fmt.Errorf("vip: %s %s: %w", verb, s, err))
		}
	}
	return errors.Join(errs...)
}

func (n *Netlink) eachRoute(ctx context.Context, defaultDev string, routes []config.Route, do func(routeSpec) error, verb string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errClosed
	}
	var errs []error
	for _, r := range routes {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("vip: %s route: %w", verb, err))
			break
		}
		s, err := routeSpecOf(defaultDev, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: %s route: %w", verb, err))
			continue
		}
		if err := do(s); err != nil {
			errs = append(errs, fmt.Errorf("vip: %s route %s: %w", verb, s, err))
		}
	}
	return errors.Join(errs...)
}

// infinityLifeTime is the kernel's "forever" for address lifetimes. A var,
// not a const, so that int(infinityLifeTime) compiles on 32-bit platforms.
var infinityLifeTime uint32 = 0xFFFFFFFF

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// toNetlinkAddr is the RTM_NEWADDR request for a VIP, as keepalived builds it
// (vrrp_ipaddress.c netlink_ipaddress).
func toNetlinkAddr(s addrSpec) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipNet(s.Prefix)}
	if s.Prefix.Addr().Is4() {
		a.Scope = int(s.Scope)
		a.Label = s.Label
		// netlink computes a broadcast address when none is given;
		// keepalived (and "ip addr add") sets none unless asked. The zero
		// address tells netlink to send no IFA_BROADCAST.
		a.Broadcast = net.IPv4zero.To4()
		if s.Brd.IsValid() {
			a.Broadcast = s.Brd.AsSlice()
		}
		return a
	}
	if s.NoDAD {
		a.Flags = unix.IFA_F_NODAD
	}
	if s.Deprecated {
		a.PreferedLft = 0
		a.ValidLft = int(infinityLifeTime)
	}
	return a
}

// toNetlinkAddrDel is the RTM_DELADDR request: address and prefix length
// only, so that an address is removed whatever label it carries now.
func toNetlinkAddrDel(s addrSpec) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipNet(s.Prefix)}
	if s.Prefix.Addr().Is4() {
		a.Broadcast = net.IPv4zero.To4()
	}
	return a
}

// toNetlinkRoute is the RTM_NEWROUTE / RTM_DELROUTE request for a virtual
// route, as keepalived builds it (vrrp_iproute.c netlink_route): protocol
// keepalived, and on delete scope "nowhere" (any) unless one was configured.
func toNetlinkRoute(s routeSpec, linkIndex int, del bool) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: linkIndex,
		Dst:       ipNet(s.Dst),
		Protocol:  netlink.RouteProtocol(protoKeepalived),
		Table:     s.Table,
		Priority:  s.Metric,
		Type:      s.Type,
		Scope:     netlink.Scope(s.Scope),
	}
	if del && !s.ScopeSet {
		r.Scope = netlink.SCOPE_NOWHERE
	}
	if s.Via.IsValid() {
		r.Gw = s.Via.AsSlice()
	}
	if s.Src.IsValid() {
		r.Src = s.Src.AsSlice()
	}
	if s.Onlink {
		r.Flags = unix.RTNH_F_ONLINK
	}
	return r
}
