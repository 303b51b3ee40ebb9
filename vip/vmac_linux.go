//go:build linux

package vip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var _ VMACs = (*Netlink)(nil)

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE: the kernel adds no EUI-64
// link-local address when the link comes up (RFC 5798 7.4 wants the VMAC's
// link-local address to be the router's own, not one derived from the
// virtual MAC).
const addrGenModeNone = 1

// vmacBook is what a Netlink plane remembers about the VMACs it made, to
// undo its changes to shared settings when the last one goes, as keepalived
// does (vrrp_if_config.c).
type vmacBook struct {
	// v4 maps each IPv4 VMAC to its base interface: keepalived tunes the
	// base's ARP settings only for IPv4 VMACs.
	v4 map[string]string
	// bases holds, per base interface, the ARP settings found before the
	// first IPv4 VMAC on it, and how many IPv4 VMACs use it.
	bases map[string]*baseARP
	// rp holds the rp_filter values changed to let the VMACs run with
	// rp_filter 0 (nil: nothing changed).
	rp *rpFilterSaved
}

type baseARP struct {
	refs                 int
	arpIgnore, arpFilter int
	changed              bool // they were not both 1 and were set to 1
}

type rpFilterSaved struct {
	all int
	def int            // -1: default was not changed
	ifs map[string]int // interfaces whose rp_filter was raised to all's
}

// EnsureVMAC implements VMACs, the way keepalived 2.2.7 does it
// (vrrp_vmac.c netlink_link_add_vmac):
//
//   - a macvlan `name`, mode private, on `base`, with address
//     VirtualMAC(vrid, v6), enslaved to base's VRF if base is in one. An
//     existing macvlan of that name is adopted: its MAC is corrected if
//     wrong; it is re-created if it has another mode or another base. An
//     existing interface of that name that is not a macvlan is an error.
//   - IPv4: on the VMAC arp_ignore=1, accept_local=1, rp_filter=0,
//     promote_secondaries=1; on the base arp_ignore=1 and arp_filter=1 (the
//     old values come back when the last IPv4 VMAC on it is removed); and if
//     net.ipv4.conf.all.rp_filter is not 0, keepalived's clear_rp_filter:
//     default and every interface are raised to all's value and all is set
//     to 0, so that the VMAC's 0 takes effect (undone when the last IPv4
//     VMAC is removed, where nobody changed the values since).
//   - IPv6 is disabled on an IPv4 VMAC (disable_ipv6=1) and enabled on an
//     IPv6 one, with address generation mode "none" in both cases; then the
//     link is brought up.
//   - IPv6: the VMAC gets a link-local /64 (nodad): the base's first
//     link-local address, or one made from the base's MAC (EUI-64), so that
//     adverts leave from the router's own link-local address with the
//     virtual MAC.
//
// The sysctls are written in the plane's network namespace, whatever the
// namespace of the calling thread.
func (n *Netlink) EnsureVMAC(ctx context.Context, base, name string, vrid int, v6 bool) (int, net.HardwareAddr, error) {
	if err := checkVMACArgs(base, name, vrid); err != nil {
		return 0, nil, fmt.Errorf("vip: VMAC %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, fmt.Errorf("vip: VMAC %s: %w", name, err)
	}
	mac := VirtualMAC(vrid, v6)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0, nil, errClosed
	}
	l, err := n.ensureMacvlan(base, name, mac)
	if err != nil {
		return 0, nil, fmt.Errorf("vip: VMAC %s on %s: %w", name, base, err)
	}
	if err := n.vmacSettings(l, base, name, v6); err != nil {
		return 0, nil, fmt.Errorf("vip: VMAC %s on %s: %w", name, base, err)
	}
	if err := n.h.LinkSetUp(l); err != nil {
		return 0, nil, fmt.Errorf("vip: VMAC %s: set up: %w", name, err)
	}
	if v6 {
		if err := n.vmacLinkLocal(l, base); err != nil {
			return 0, nil, fmt.Errorf("vip: VMAC %s: %w", name, err)
		}
	}
	n.log.Debug("VMAC ready", "vmac", name, "base", base, "mac", mac.String(), "ifindex", l.Attrs().Index)
	return l.Attrs().Index, slices.Clone(mac), nil
}

// ensureMacvlan makes `name` a private-mode macvlan on base with mac and
// returns it.
func (n *Netlink) ensureMacvlan(base, name string, mac net.HardwareAddr) (netlink.Link, error) {
	n.forget(name) // made or changed here: the next address operation looks it up afresh
	bl, _, err := n.link(base)
	if err != nil {
		return nil, err
	}
	l, missing, err := n.link(name)
	if err != nil && !missing {
		return nil, err
	}
	if !missing {
		mv, ok := l.(*netlink.Macvlan)
		if !ok {
			return nil, fmt.Errorf("interface %s exists and is a %s, not a macvlan: refusing to touch it", name, l.Type())
		}
		switch {
		case mv.Attrs().ParentIndex != bl.Attrs().Index || mv.Mode != netlink.MACVLAN_MODE_PRIVATE:
			n.log.Info("re-creating VMAC interface: wrong base interface or mode", "vmac", name, "base", base)
			if err := n.h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				return nil, fmt.Errorf("delete mismatched macvlan: %w", err)
			}
		case !bytes.Equal(mv.Attrs().HardwareAddr, mac):
			n.log.Info("correcting VMAC interface's MAC", "vmac", name, "had", mv.Attrs().HardwareAddr.String(), "mac", mac.String())
			if err := n.h.LinkSetHardwareAddr(l, mac); err != nil {
				return nil, fmt.Errorf("set MAC %s: %w", mac, err)
			}
			return n.refetch(name)
		default:
			return l, nil
		}
	}
	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: bl.Attrs().Index, HardwareAddr: mac},
		Mode:      netlink.MACVLAN_MODE_PRIVATE,
	}
	if m := bl.Attrs().MasterIndex; m != 0 {
		if ml, err := n.h.LinkByIndex(m); err == nil && ml.Type() == "vrf" {
			mv.MasterIndex = m
		}
	}
	if err := n.h.LinkAdd(mv); err != nil {
		return nil, fmt.Errorf("create macvlan: %w", err)
	}
	n.log.Info("VMAC interface created", "vmac", name, "base", base, "mac", mac.String())
	return n.refetch(name)
}

func (n *Netlink) refetch(name string) (netlink.Link, error) {
	l, _, err := n.link(name)
	return l, err
}

// vmacSettings applies the per-family settings before the link comes up.
func (n *Netlink) vmacSettings(l netlink.Link, base, name string, v6 bool) error {
	if !v6 {
		if err := n.takeV4(base, name); err != nil {
			return err
		}
	} else if err := n.releaseV4(name); err != nil {
		return err // it was an IPv4 VMAC before
	}
	err := n.inPlaneNS(func() error {
		if !v6 {
			for _, s := range []struct {
				key string
				val int
			}{{"arp_ignore", 1}, {"accept_local", 1}, {"rp_filter", 0}, {"promote_secondaries", 1}} {
				if err := writeSysctl("ipv4", name, s.key, s.val); err != nil {
					return err
				}
			}
		}
		disable := 1
		if v6 {
			disable = 0
		}
		return writeSysctl("ipv6", name, "disable_ipv6", disable)
	})
	if err != nil {
		return err
	}
	if err := n.h.LinkSetIP6AddrGenMode(l, addrGenModeNone); err != nil {
		return fmt.Errorf("set IPv6 address generation mode none: %w", err)
	}
	return nil
}

// takeV4 records name as an IPv4 VMAC on base and, for the first one on
// base, sets base's arp_ignore and arp_filter to 1; for the first one of the
// plane, clears net.ipv4.conf.all.rp_filter the way keepalived does.
func (n *Netlink) takeV4(base, name string) error {
	b := &n.vmac
	if old, ok := b.v4[name]; ok {
		if old == base {
			return nil
		}
		if err := n.releaseV4(name); err != nil {
			return err
		}
	}
	if b.v4 == nil {
		b.v4, b.bases = map[string]string{}, map[string]*baseARP{}
	}
	if len(b.v4) == 0 {
		if err := n.inPlaneNS(func() error { return n.clearRPFilter() }); err != nil {
			return err
		}
	}
	if ba, ok := b.bases[base]; ok {
		ba.refs++
		b.v4[name] = base
		return nil
	}
	ba := &baseARP{refs: 1}
	err := n.inPlaneNS(func() error {
		var err error
		if ba.arpIgnore, err = readSysctl("ipv4", base, "arp_ignore"); err != nil {
			return err
		}
		if ba.arpFilter, err = readSysctl("ipv4", base, "arp_filter"); err != nil {
			return err
		}
		if ba.arpIgnore == 1 && ba.arpFilter == 1 {
			return nil
		}
		ba.changed = true
		if err := writeSysctl("ipv4", base, "arp_ignore", 1); err != nil {
			return err
		}
		return writeSysctl("ipv4", base, "arp_filter", 1)
	})
	if err != nil {
		return err
	}
	b.bases[base] = ba
	b.v4[name] = base
	return nil
}

// releaseV4 forgets name as an IPv4 VMAC and undoes the base's and the
// plane's settings when it was the last one.
func (n *Netlink) releaseV4(name string) error {
	b := &n.vmac
	base, ok := b.v4[name]
	if !ok {
		return nil
	}
	delete(b.v4, name)
	var errs []error
	if ba := b.bases[base]; ba != nil {
		ba.refs--
		if ba.refs <= 0 {
			delete(b.bases, base)
			if ba.changed {
				err := n.inPlaneNS(func() error {
					return errors.Join(
						writeSysctl("ipv4", base, "arp_ignore", ba.arpIgnore),
						writeSysctl("ipv4", base, "arp_filter", ba.arpFilter))
				})
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, fmt.Errorf("restore ARP settings of %s: %w", base, err))
				}
			}
		}
	}
	if len(b.v4) == 0 && b.rp != nil {
		if err := n.inPlaneNS(func() error { return n.restoreRPFilter() }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// clearRPFilter is keepalived's clear_rp_filter: the effective rp_filter of
// an interface is the larger of its own and all's, so for the VMAC's 0 to
// count, all must be 0; default and every interface are first raised to
// all's value so that nothing else changes.
func (n *Netlink) clearRPFilter() error {
	all, err := readSysctl("ipv4", "all", "rp_filter")
	if err != nil || all == 0 {
		return err
	}
	s := &rpFilterSaved{all: all, def: -1, ifs: map[string]int{}}
	if def, err := readSysctl("ipv4", "default", "rp_filter"); err == nil && def < all {
		if err := writeSysctl("ipv4", "default", "rp_filter", all); err != nil {
			return err
		}
		s.def = def
	}
	dirs, err := os.ReadDir("/proc/sys/net/ipv4/conf")
	if err != nil {
		return fmt.Errorf("list interfaces' IPv4 settings: %w", err)
	}
	for _, d := range dirs {
		ifn := d.Name()
		if ifn == "all" || ifn == "default" {
			continue
		}
		v, err := readSysctl("ipv4", ifn, "rp_filter")
		if err != nil || v >= all {
			continue // vanished meanwhile, or already strict enough
		}
		if err := writeSysctl("ipv4", ifn, "rp_filter", all); err != nil {
			return err
		}
		s.ifs[ifn] = v
	}
	n.vmac.rp = s
	n.log.Info("setting net.ipv4.conf.all.rp_filter to 0 for VMAC interfaces (default and interfaces raised to its old value)", "old", all)
	return writeSysctl("ipv4", "all", "rp_filter", 0)
}

// restoreRPFilter undoes clearRPFilter where nobody changed the values
// since (keepalived's restore_rp_filter).
func (n *Netlink) restoreRPFilter() error {
	s := n.vmac.rp
	n.vmac.rp = nil
	if s == nil {
		return nil
	}
	var errs []error
	if v, err := readSysctl("ipv4", "all", "rp_filter"); err == nil && v == 0 {
		errs = append(errs, writeSysctl("ipv4", "all", "rp_filter", s.all))
	}
	if s.def >= 0 {
		if v, err := readSysctl("ipv4", "default", "rp_filter"); err == nil && v == s.all {
			errs = append(errs, writeSysctl("ipv4", "default", "rp_filter", s.def))
		}
	}
	for ifn, old := range s.ifs {
		if v, err := readSysctl("ipv4", ifn, "rp_filter"); err == nil && v == s.all {
			if err := writeSysctl("ipv4", ifn, "rp_filter", old); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore rp_filter: %w", err)
	}
	return nil
}

// vmacLinkLocal gives an IPv6 VMAC its link-local address (keepalived's
// set_link_local_address without a configured source address).
func (n *Netlink) vmacLinkLocal(l netlink.Link, base string) error {
	bl, _, err := n.link(base)
	if err != nil {
		return err
	}
	ll, err := n.linkLocalOf(bl)
	if err != nil {
		return err
	}
	a := &netlink.Addr{
		IPNet: ipNet(netip.PrefixFrom(ll, 64)),
		Flags: unix.IFA_F_NODAD,
		Scope: unix.RT_SCOPE_LINK,
	}
	if err := n.h.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add link-local address %s: %w", ll, err)
	}
	return nil
}

// linkLocalOf returns the first IPv6 link-local address of l, or the EUI-64
// one made from its MAC when it has none.
func (n *Netlink) linkLocalOf(l netlink.Link) (netip.Addr, error) {
	list, err := n.h.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range list {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	ll, ok := eui64LinkLocal(l.Attrs().HardwareAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("interface %s has no IPv6 link-local address and no Ethernet address to make one from", l.Attrs().Name)
	}
	return ll, nil
}

// RemoveVMAC implements VMACs. It refuses to delete an interface that is
// not a macvlan. The base's ARP settings and rp_filter come back when the
// last IPv4 VMAC goes (see EnsureVMAC).
func (n *Netlink) RemoveVMAC(ctx context.Context, name string) error {
	defer func() { n.mu.Lock(); n.forget(name); n.mu.Unlock() }()
	if err := checkIfname("VMAC", name); err != nil {
		return fmt.Errorf("vip: remove VMAC: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: remove VMAC %s: %w", name, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errClosed
	}
	l, missing, err := n.link(name)
	if err != nil && !missing {
		return fmt.Errorf("vip: remove VMAC: %w", err)
	}
	if !missing {
		if _, ok := l.(*netlink.Macvlan); !ok {
			return fmt.Errorf("vip: remove VMAC: interface %s is a %s, not a macvlan: refusing to delete it", name, l.Type())
		}
		if err := n.h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("vip: remove VMAC %s: %w", name, err)
		}
		n.log.Info("VMAC interface removed", "vmac", name)
	}
	if err := n.releaseV4(name); err != nil {
		return fmt.Errorf("vip: remove VMAC %s: %w", name, err)
	}
	return nil
}

// inPlaneNS runs fn on an OS thread in the plane's network namespace (the
// one its sockets were opened in), so that /proc/sys/net shows that
// namespace. When the calling goroutine's thread is already there, fn runs
// on a thread that stays in it; otherwise fn runs on a thread that switches
// and is then thrown away (its goroutine ends locked), so no other goroutine
// ever runs in the wrong namespace.
func (n *Netlink) inPlaneNS(fn func() error) error {
	nsfd, err := unix.IoctlRetInt(n.fd, unix.SIOCGSKNS)
	if err != nil {
		return fmt.Errorf("find the plane's network namespace: %w", err)
	}
	defer unix.Close(nsfd)
	var want unix.Stat_t
	if err := unix.Fstat(nsfd, &want); err != nil {
		return fmt.Errorf("find the plane's network namespace: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var cur unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &cur); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read own network namespace: %w", err)
			return
		}
		if cur.Dev == want.Dev && cur.Ino == want.Ino {
			defer runtime.UnlockOSThread()
			errc <- fn()
			return
		}
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter the plane's network namespace: %w", err)
			return // the thread stays locked and ends with the goroutine
		}
		errc <- fn()
	}()
	return <-errc
}

// sysctlPath is /proc/sys/net/<fam>/conf/<ifname>/<key>; fam is "ipv4" or
// "ipv6", ifname a checked interface name or "all"/"default".
func sysctlPath(fam, ifname, key string) string {
	return filepath.Join("/proc/sys/net", fam, "conf", ifname, key)
}

func readSysctl(fam, ifname, key string) (int, error) {
	b, err := os.ReadFile(sysctlPath(fam, ifname, key))
	if err != nil {
		return 0, fmt.Errorf("read net.%s.conf.%s.%s: %w", fam, ifname, key, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read net.%s.conf.%s.%s: %w", fam, ifname, key, err)
	}
	return v, nil
}

func writeSysctl(fam, ifname, key string, v int) error {
	if err := os.WriteFile(sysctlPath(fam, ifname, key), []byte(strconv.Itoa(v)), 0o644); err != nil {
		return fmt.Errorf("set net.%s.conf.%s.%s=%d: %w", fam, ifname, key, v, err)
	}
	return nil
}
