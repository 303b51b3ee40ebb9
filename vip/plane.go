package vip

import (
	"context"
	"net"
	"net/netip"

	"github.com/vipd/vipd/config"
)

// Plane adds and removes VIPs and virtual routes and announces VIPs on the
// segment. It is implemented by *Netlink and *Memory.
//
// Every method that takes a list works through the whole list: an error for
// one entry does not stop the others, and the returned error joins all of
// them.
type Plane interface {
	// AddAddrs adds the VIPs to ifname (VIP.Dev overrides ifname per
	// address). Idempotent: an address already present is not an error.
	AddAddrs(ctx context.Context, ifname string, vips []config.VIP) error
	// DelAddrs removes the VIPs; an absent address (or a vanished
	// interface) is not an error.
	DelAddrs(ctx context.Context, ifname string, vips []config.VIP) error
	// AddRoutes adds virtual_routes; defaultDev is the device of a unicast
	// route that names neither a device nor a gateway. Idempotent.
	AddRoutes(ctx context.Context, defaultDev string, routes []config.Route) error
	// DelRoutes removes virtual_routes; an absent route is not an error.
	DelRoutes(ctx context.Context, defaultDev string, routes []config.Route) error
	// Announce sends one round: one gratuitous ARP per IPv4 VIP and one
	// unsolicited neighbour advertisement per IPv6 VIP, out of ifname (or
	// VIP.Dev), from srcMAC (nil: the interface's own address).
	Announce(ctx context.Context, ifname string, srcMAC net.HardwareAddr, vips []config.VIP) error
	// HasAddr reports whether addr is on ifname now (with any prefix
	// length). A missing interface has no addresses.
	HasAddr(ifname string, addr netip.Addr) (bool, error)
}

var _ Plane = (*Memory)(nil)
