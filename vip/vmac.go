package vip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// VMACs creates and removes VRRP virtual MAC interfaces (keepalived's
// use_vmac): a macvlan in private mode on the instance's interface, carrying
// the RFC 5798 virtual router MAC, that holds the VIPs and from which the
// master advertises and announces. It is implemented by *Netlink and
// *Memory, next to Plane; the vrrp runtime asks for it only when an instance
// has use_vmac.
type VMACs interface {
	// EnsureVMAC creates (or adopts an existing correct one) macvlan
	// `name` on `base` with the VRRP virtual MAC for vrid and family, sets
	// the sysctls keepalived sets, brings it up, and returns its ifindex
	// and MAC. Idempotent.
	EnsureVMAC(ctx context.Context, base, name string, vrid int, v6 bool) (ifindex int, mac net.HardwareAddr, err error)
	// RemoveVMAC deletes it; absent is not an error.
	RemoveVMAC(ctx context.Context, name string) error
}

var _ VMACs = (*Memory)(nil)

// VirtualMAC is the RFC 5798 (7.3) virtual router MAC address of vrid:
// 00:00:5e:00:01:VRID for IPv4, 00:00:5e:00:02:VRID for IPv6. It returns nil
// for a vrid outside 1..255.
func VirtualMAC(vrid int, v6 bool) net.HardwareAddr {
	if vrid < 1 || vrid > 255 {
		return nil
	}
	fam := byte(0x01)
	if v6 {
		fam = 0x02
	}
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, fam, byte(vrid)}
}

// DefaultVMACName is the name keepalived 2.2.7 gives a VMAC interface when
// use_vmac names none: "vrrp.<vrid>" (vrrp.c create_vmac_name with the
// default vmac_prefix "vrrp"), for both families.
func DefaultVMACName(vrid int) string {
	return "vrrp." + strconv.Itoa(vrid)
}

// checkIfname applies the kernel's rules for an interface name
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or white
// space. The names also end up in /proc/sys paths, so this is a safety check
// as well as a courtesy.
func checkIfname(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s interface name is empty", what)
	case len(name) > 15:
		return fmt.Errorf("%s interface name %q is longer than 15 bytes", what, name)
	case name == "." || name == "..":
		return fmt.Errorf("%s interface name %q is not allowed", what, name)
	case strings.ContainsFunc(name, func(r rune) bool {
		return r == '/' || r == ':' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' || r == 0
	}):
		return fmt.Errorf("%s interface name %q contains '/', ':' or white space", what, name)
	}
	return nil
}

// checkVMACArgs validates EnsureVMAC's arguments.
func checkVMACArgs(base, name string, vrid int) error {
	if vrid < 1 || vrid > 255 {
		return fmt.Errorf("virtual_router_id %d: must be 1..255", vrid)
	}
	if err := checkIfname("base", base); err != nil {
		return err
	}
	if err := checkIfname("VMAC", name); err != nil {
		return err
	}
	if base == name {
		return fmt.Errorf("VMAC interface %s cannot be its own base interface", name)
	}
	return nil
}

// eui64LinkLocal is fe80::/64 with the modified EUI-64 interface identifier
// of mac (keepalived's make_link_local_address).
func eui64LinkLocal(mac net.HardwareAddr) (netip.Addr, bool) {
	if len(mac) != 6 {
		return netip.Addr{}, false
	}
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b), true
}

// memVMAC is one VMAC interface of a Memory plane.
type memVMAC struct {
	base  string
	mac   net.HardwareAddr
	index int
}

// memVMACs is Memory's VMAC state (a field of Memory, guarded by its mutex).
type memVMACs struct {
	byName    map[string]memVMAC
	nextIndex int
}

// memVMACFirstIndex is the first ifindex Memory hands out to a VMAC: high
// enough not to look like a real interface of a test's fixtures.
const memVMACFirstIndex = 1000

// EnsureVMAC implements VMACs. It records one OpAddVMAC (Noop when the VMAC
// was already there with that base and MAC). A VMAC moved to another base is
// re-created with a new ifindex, as keepalived deletes and re-creates it; a
// MAC change (another VRID or family) keeps the ifindex. Every base
// interface exists, as for the rest of Memory.
func (m *Memory) EnsureVMAC(ctx context.Context, base, name string, vrid int, v6 bool) (int, net.HardwareAddr, error) {
	if err := checkVMACArgs(base, name, vrid); err != nil {
		return 0, nil, fmt.Errorf("vip: VMAC %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, fmt.Errorf("vip: VMAC %s: %w", name, err)
	}
	mac := VirtualMAC(vrid, v6)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail[OpAddVMAC]; err != nil {
		return 0, nil, err
	}
	if m.vmacs.byName == nil {
		m.vmacs.byName = map[string]memVMAC{}
		m.vmacs.nextIndex = memVMACFirstIndex
	}
	old, ok := m.vmacs.byName[name]
	noop := ok && old.base == base && bytes.Equal(old.mac, mac)
	v := old
	if !ok || old.base != base {
		if ok {
			delete(m.addrs, name) // the old interface went, and its addresses with it
		}
		v = memVMAC{base: base, index: m.vmacs.nextIndex}
		m.vmacs.nextIndex++
	}
	v.mac = mac
	m.vmacs.byName[name] = v
	m.ops = append(m.ops, Op{Kind: OpAddVMAC, Ifname: name, Base: base, MAC: slices.Clone(mac), Noop: noop})
	return v.index, slices.Clone(mac), nil
}

// RemoveVMAC implements VMACs. It records one OpDelVMAC (Noop when there was
// none) and drops the addresses that were on the VMAC, as the kernel does.
func (m *Memory) RemoveVMAC(ctx context.Context, name string) error {
	if err := checkIfname("VMAC", name); err != nil {
		return fmt.Errorf("vip: remove VMAC: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: remove VMAC %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail[OpDelVMAC]; err != nil {
		return err
	}
	_, ok := m.vmacs.byName[name]
	if ok {
		delete(m.vmacs.byName, name)
		delete(m.addrs, name)
	}
	m.ops = append(m.ops, Op{Kind: OpDelVMAC, Ifname: name, Noop: !ok})
	return nil
}

// VMAC reports the VMAC interface name of a Memory plane: its base
// interface, MAC and ifindex.
func (m *Memory) VMAC(name string) (base string, mac net.HardwareAddr, ifindex int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vmacs.byName[name]
	if !ok {
		return "", nil, 0, false
	}
	return v.base, slices.Clone(v.mac), v.index, true
}
