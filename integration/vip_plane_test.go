//go:build linux

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vip"
)

// These tests run the real VIP plane (vip.Netlink) inside a pair of network
// namespaces of their own, vipdvp-<random>-a and -b, joined by a veth pair
// (vp0 in a, vp1 in b). Addresses come from the documentation ranges
// 192.0.2.0/24 and 2001:db8::/64 and exist only inside the pair.

// vpPair is one pair of namespaces joined by a veth.
type vpPair struct {
	a, b   string           // namespace names
	macA   net.HardwareAddr // vp0's MAC
	plane  *vip.Netlink     // opened inside a
	ctx    context.Context
	ifA    string
	ifB    string
	prefix string
}

func vpRequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and changes addresses and routes inside them (CI runs this as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command: " + err.Error())
	}
}

// vpIP runs ip(8) and fails the test with its output on error.
func vpIP(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// vpInNS runs fn on this goroutine's thread switched into namespace ns.
func vpInNS(t *testing.T, ns string, fn func() error) error {
	t.Helper()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", ns, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with this goroutine, so nothing
		// else ever runs in the wrong namespace.
		return fmt.Errorf("leave namespace %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

func vpNewPair(t *testing.T) *vpPair {
	t.Helper()
	vpRequireRoot(t)
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	p := &vpPair{prefix: "vipdvp-" + hex.EncodeToString(rnd[:]), ifA: "vp0", ifB: "vp1"}
	p.a, p.b = p.prefix+"-a", p.prefix+"-b"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	p.ctx = ctx

	for _, ns := range []string{p.a, p.b} {
		vpIP(t, "netns", "add", ns)
		t.Cleanup(func() {
			// Deleting the namespace deletes the veth with it.
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("teardown: ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	// Created directly inside the namespaces: the host's own links are never touched.
	vpIP(t, "-n", p.a, "link", "add", p.ifA, "type", "veth", "peer", "name", p.ifB, "netns", p.b)
	for _, s := range []struct{ ns, dev, v4, v6 string }{
		{p.a, p.ifA, "192.0.2.1/24", "2001:db8::1/64"},
		{p.b, p.ifB, "192.0.2.2/24", "2001:db8::2/64"},
	} {
		vpIP(t, "-n", s.ns, "addr", "add", s.v4, "dev", s.dev)
		vpIP(t, "-n", s.ns, "addr", "add", s.v6, "dev", s.dev, "nodad")
		vpIP(t, "-n", s.ns, "link", "set", "lo", "up")
		vpIP(t, "-n", s.ns, "link", "set", s.dev, "up")
	}
	for _, s := range []struct{ ns, dev string }{{p.a, p.ifA}, {p.b, p.ifB}} {
		vpWaitIPv6Ready(t, s.ns, s.dev)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(vpIP(t, "-n", p.a, "-j", "link", "show", "dev", p.ifA)), &links); err != nil || len(links) != 1 {
		t.Fatalf("read %s's MAC: %v (%d links)", p.ifA, err, len(links))
	}
	mac, err := net.ParseMAC(links[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	p.macA = mac

	if err := vpInNS(t, p.a, func() error {
		pl, err := vip.NewNetlink(nil)
		p.plane = pl
		return err
	}); err != nil {
		t.Fatalf("NewNetlink in %s: %v", p.a, err)
	}
	t.Cleanup(func() {
		if err := p.plane.Close(); err != nil {
			t.Errorf("close plane: %v", err)
		}
	})
	return p
}

// vpWaitIPv6Ready waits until IPv6 is configured on dev: the kernel adds the
// multicast route ff00::/8 only once the carrier change has gone through
// linkwatch (up to a second after "link set up"); before that, frames to
// ff02::1 are dropped as Ip6InNoRoutes.
func vpWaitIPv6Ready(t *testing.T, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := vpIP(t, "-n", ns, "-6", "route", "show", "table", "local", "ff00::/8", "dev", dev)
		if strings.Contains(out, "ff00::/8") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("IPv6 not ready on %s in %s after 5s (no ff00::/8 route)", dev, ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vpAddr is one entry of `ip -j addr`'s addr_info.
type vpAddr struct {
	Family      string `json:"family"`
	Local       string `json:"local"`
	PrefixLen   int    `json:"prefixlen"`
	Broadcast   string `json:"broadcast"`
	Scope       string `json:"scope"`
	Label       string `json:"label"`
	NoDAD       bool   `json:"nodad"`
	Deprecated  bool   `json:"deprecated"`
	Tentative   bool   `json:"tentative"`
	PreferredLf uint64 `json:"preferred_life_time"`
}

func vpAddrs(t *testing.T, ns, dev string) map[string]vpAddr {
	t.Helper()
	var links []struct {
		AddrInfo []vpAddr `json:"addr_info"`
	}
	out := vpIP(t, "-n", ns, "-j", "addr", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("parse ip -j addr: %v\n%s", err, out)
	}
	m := map[string]vpAddr{}
	for _, a := range links[0].AddrInfo {
		if strings.HasPrefix(a.Local, "fe80:") {
			continue
		}
		m[fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)] = a
	}
	return m
}

func TestVIPPlaneAddsAndRemovesAddresses(t *testing.T) {
	p := vpNewPair(t)
	pfx := netip.MustParsePrefix
	vips := []config.VIP{
		{Prefix: pfx("192.0.2.100/24"), Brd: netip.MustParseAddr("192.0.2.255"), Label: "vp0:vip"},
		{Prefix: netip.PrefixFrom(netip.MustParseAddr("192.0.2.101"), -1), Scope: "link"},
		{Prefix: pfx("192.0.2.102/24"), Label: "web"}, // keepalived passes any label to the kernel
		{Prefix: pfx("2001:db8::100/64")},
		{Prefix: netip.PrefixFrom(netip.MustParseAddr("2001:db8::101"), -1)},
	}
	before := vpAddrs(t, p.a, p.ifA)

	if err := p.plane.AddAddrs(p.ctx, p.ifA, vips); err != nil {
		t.Fatalf("AddAddrs: %v", err)
	}
	got := vpAddrs(t, p.a, p.ifA)
	want := map[string]vpAddr{
		"192.0.2.100/24":    {Family: "inet", Broadcast: "192.0.2.255", Scope: "global", Label: "vp0:vip", PreferredLf: 0xFFFFFFFF},
		"192.0.2.101/32":    {Family: "inet", Scope: "link", Label: "vp0", PreferredLf: 0xFFFFFFFF},
		"192.0.2.102/24":    {Family: "inet", Scope: "global", Label: "web", PreferredLf: 0xFFFFFFFF},
		"2001:db8::100/64":  {Family: "inet6", Scope: "global", NoDAD: true, PreferredLf: 0xFFFFFFFF},
		"2001:db8::101/128": {Family: "inet6", Scope: "global", NoDAD: true, Deprecated: true, PreferredLf: 0},
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("after AddAddrs, %s is not on %s (have %v)", k, p.ifA, slices.Sorted(mapKeys(got)))
			continue
		}
		g.Local, g.PrefixLen = "", 0
		if g != w {
			t.Errorf("%s: got %+v, want %+v", k, g, w)
		}
	}
	if n := len(got) - len(before); n != len(want) {
		t.Errorf("AddAddrs added %d addresses, want %d", n, len(want))
	}

	// Idempotent: a second add is no error and changes nothing.
	if err := p.plane.AddAddrs(p.ctx, p.ifA, vips); err != nil {
		t.Fatalf("second AddAddrs: %v", err)
	}
	if again := vpAddrs(t, p.a, p.ifA); len(again) != len(got) {
		t.Errorf("second AddAddrs changed the addresses: %v -> %v", slices.Sorted(mapKeys(got)), slices.Sorted(mapKeys(again)))
	}

	for _, c := range []struct {
		dev  string
		addr string
		want bool
	}{
		{p.ifA, "192.0.2.100", true},
		{p.ifA, "192.0.2.101", true},
		{p.ifA, "2001:db8::101", true},
		{p.ifA, "192.0.2.200", false},
		{"vpnope0", "192.0.2.100", false}, // a missing interface has no addresses
	} {
		has, err := p.plane.HasAddr(c.dev, netip.MustParseAddr(c.addr))
		if err != nil || has != c.want {
			t.Errorf("HasAddr(%s, %s) = %v, %v; want %v", c.dev, c.addr, has, err, c.want)
		}
	}

	// AddrsOf lists the same in one request (a resume checks thousands of
	// VIPs with it).
	list, err := p.plane.AddrsOf(p.ifA)
	if err != nil {
		t.Fatalf("AddrsOf: %v", err)
	}
	for _, a := range []string{"192.0.2.100", "192.0.2.101", "2001:db8::101"} {
		if !slices.Contains(list, netip.MustParseAddr(a)) {
			t.Errorf("AddrsOf(%s) = %v, lacks %s", p.ifA, list, a)
		}
	}
	if slices.Contains(list, netip.MustParseAddr("192.0.2.200")) {
		t.Errorf("AddrsOf(%s) = %v has 192.0.2.200", p.ifA, list)
	}
	if none, err := p.plane.AddrsOf("vpnope0"); err != nil || len(none) != 0 {
		t.Errorf("AddrsOf(missing interface) = %v, %v; want nothing", none, err)
	}

	// A VIP on a missing interface is an error for add, and the others of
	// the list are still handled.
	err = p.plane.AddAddrs(p.ctx, p.ifA, []config.VIP{{Prefix: pfx("192.0.2.150/24"), Dev: "vpnope0"}, {Prefix: pfx("192.0.2.151/24")}})
	if err == nil || !strings.Contains(err.Error(), "vpnope0") {
		t.Errorf("AddAddrs on a missing interface: error %v, want one naming vpnope0", err)
	}
	if has, _ := p.plane.HasAddr(p.ifA, netip.MustParseAddr("192.0.2.151")); !has {
		t.Error("the VIP after the failing one was not added")
	}
	extra := []config.VIP{{Prefix: pfx("192.0.2.151/24")}}

	if err := p.plane.DelAddrs(p.ctx, p.ifA, append(vips, extra...)); err != nil {
		t.Fatalf("DelAddrs: %v", err)
	}
	if after := vpAddrs(t, p.a, p.ifA); len(after) != len(before) {
		t.Errorf("after DelAddrs: %v, want only %v", slices.Sorted(mapKeys(after)), slices.Sorted(mapKeys(before)))
	}
	// Absent addresses and missing interfaces are no error (the cleanup of a
	// crashed run's leftovers relies on this).
	if err := p.plane.DelAddrs(p.ctx, p.ifA, vips); err != nil {
		t.Errorf("DelAddrs of absent addresses: %v", err)
	}
	if err := p.plane.DelAddrs(p.ctx, "vpnope0", vips); err != nil {
		t.Errorf("DelAddrs on a missing interface: %v", err)
	}
}

func mapKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// vpRoute is one entry of `ip -j route`.
type vpRoute struct {
	Type     string   `json:"type"`
	Dst      string   `json:"dst"`
	Gateway  string   `json:"gateway"`
	Dev      string   `json:"dev"`
	Protocol string   `json:"protocol"`
	Metric   int      `json:"metric"`
	Table    string   `json:"table"`
	PrefSrc  string   `json:"prefsrc"`
	Scope    string   `json:"scope"`
	Flags    []string `json:"flags"`
}

func vpRoutes(t *testing.T, ns string) map[string]vpRoute {
	t.Helper()
	m := map[string]vpRoute{}
	for _, fam := range []string{"-4", "-6"} {
		var rs []vpRoute
		out := vpIP(t, "-n", ns, "-j", fam, "route", "show", "table", "all")
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("parse ip -j route: %v\n%s", err, out)
		}
		for _, r := range rs {
			if r.Table == "local" || strings.HasPrefix(r.Dst, "fe80:") || strings.HasPrefix(r.Dst, "ff00:") || r.Protocol == "kernel" {
				continue
			}
			m[r.Dst+" table "+r.Table] = r
		}
	}
	return m
}

func TestVIPPlaneAddsAndRemovesRoutes(t *testing.T) {
	p := vpNewPair(t)
	pfx := netip.MustParsePrefix
	a := netip.MustParseAddr
	routes := []config.Route{
		{Dst: pfx("198.51.100.0/24"), Via: a("192.0.2.2")},
		{Dst: pfx("203.0.113.0/25"), Metric: 50, Src: a("192.0.2.1")}, // no dev, no via: the default device
		{Dst: pfx("203.0.113.128/25"), Type: "blackhole", Table: 100},
		{Dst: pfx("2001:db8:1::/64"), Via: a("2001:db8::2"), Dev: p.ifA},
	}
	if err := p.plane.AddRoutes(p.ctx, p.ifA, routes); err != nil {
		t.Fatalf("AddRoutes: %v", err)
	}
	got := vpRoutes(t, p.a)
	want := map[string]vpRoute{
		"198.51.100.0/24 table ":     {Dst: "198.51.100.0/24", Gateway: "192.0.2.2", Dev: p.ifA, Protocol: "keepalived"},
		"203.0.113.0/25 table ":      {Dst: "203.0.113.0/25", Dev: p.ifA, Protocol: "keepalived", Metric: 50, PrefSrc: "192.0.2.1"},
		"203.0.113.128/25 table 100": {Type: "blackhole", Dst: "203.0.113.128/25", Protocol: "keepalived", Table: "100"},
		"2001:db8:1::/64 table ":     {Dst: "2001:db8:1::/64", Gateway: "2001:db8::2", Dev: p.ifA, Protocol: "keepalived", Metric: 1024},
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("after AddRoutes, no route %q (have %v)", k, slices.Sorted(mapKeys(got)))
			continue
		}
		g.Flags, g.Scope = nil, ""
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("route %q:\n got %+v\nwant %+v", k, g, w)
		}
	}
	if err := p.plane.AddRoutes(p.ctx, p.ifA, routes); err != nil {
		t.Errorf("second AddRoutes: %v", err)
	}
	if again := vpRoutes(t, p.a); len(again) != len(got) {
		t.Errorf("second AddRoutes changed the routes: %v -> %v", slices.Sorted(mapKeys(got)), slices.Sorted(mapKeys(again)))
	}
	if err := p.plane.DelRoutes(p.ctx, p.ifA, routes); err != nil {
		t.Fatalf("DelRoutes: %v", err)
	}
	after := vpRoutes(t, p.a)
	for k := range want {
		if _, ok := after[k]; ok {
			t.Errorf("after DelRoutes, route %q is still there", k)
		}
	}
	if err := p.plane.DelRoutes(p.ctx, p.ifA, routes); err != nil {
		t.Errorf("DelRoutes of absent routes: %v", err)
	}
}

// vpListen opens an AF_PACKET socket on dev inside ns that sees every frame.
func vpListen(t *testing.T, ns, dev string) int {
	t.Helper()
	fd := -1
	err := vpInNS(t, ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		proto := uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		if err := unix.Bind(s, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(s)
			return err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(s)
			return err
		}
		fd = s
		return nil
	})
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", dev, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// vpCollect reads frames from fd until every wanted frame has been seen or
// the deadline passes; it returns the announcement frames (ARP, ICMPv6
// neighbour advertisements) it saw.
func vpCollect(t *testing.T, fd int, want [][]byte, within time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	seen := func() bool {
		for _, w := range want {
			if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, w) }) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(within)
	buf := make([]byte, 2048)
	for !seen() && time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("read frames: %v", err)
		}
		f := buf[:n]
		et := binary.BigEndian.Uint16(f[12:14])
		isARP := et == 0x0806
		isNA := et == 0x86dd && n >= 55 && f[20] == 58 && f[54] == 136
		if isARP || isNA {
			got = append(got, bytes.Clone(f))
		}
	}
	return got
}

type vpNeigh struct {
	Dst    string   `json:"dst"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

func vpNeighbours(t *testing.T, ns, dev string) map[string]vpNeigh {
	t.Helper()
	var ns6 []vpNeigh
	out := vpIP(t, "-n", ns, "-j", "neigh", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &ns6); err != nil {
		t.Fatalf("parse ip -j neigh: %v\n%s", err, out)
	}
	m := map[string]vpNeigh{}
	for _, n := range ns6 {
		m[n.Dst] = n
	}
	return m
}

func TestVIPPlaneAnnounceSendsKeepalivedFramesAndPeersLearn(t *testing.T) {
	p := vpNewPair(t)
	pfx := netip.MustParsePrefix
	vips := []config.VIP{
		{Prefix: pfx("192.0.2.100/24")},
		{Prefix: pfx("192.0.2.101/24")},
		{Prefix: pfx("2001:db8::100/64")},
		{Prefix: pfx("2001:db8::101/64")},
	}
	if err := p.plane.AddAddrs(p.ctx, p.ifA, vips); err != nil {
		t.Fatalf("AddAddrs: %v", err)
	}
	// The peer already knows .100 and ::100 under a stale MAC (a previous
	// master); it has never heard of .101 and ::101.
	const oldMAC = "02:00:00:00:00:99"
	for _, a := range []string{"192.0.2.100", "2001:db8::100"} {
		vpIP(t, "-n", p.b, "neigh", "replace", a, "lladdr", oldMAC, "dev", p.ifB, "nud", "stale")
	}
	fd := vpListen(t, p.b, p.ifB)

	build := func(mac net.HardwareAddr, router bool) [][]byte {
		var fs [][]byte
		for _, v := range vips {
			var f []byte
			var err error
			if v.Prefix.Addr().Is4() {
				f, err = vip.GratuitousARP(mac, v.Prefix.Addr())
			} else {
				f, err = vip.UnsolicitedNA(mac, v.Prefix.Addr(), router)
			}
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		return fs
	}
	announce := func(mac net.HardwareAddr) {
		t.Helper()
		if err := vpInNS(t, p.a, func() error { return p.plane.Announce(p.ctx, p.ifA, mac, vips) }); err != nil {
			t.Fatalf("Announce: %v", err)
		}
	}
	check := func(what string, want [][]byte) {
		t.Helper()
		got := vpCollect(t, fd, want, 3*time.Second)
		for _, w := range want {
			if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, w) }) {
				t.Errorf("%s: the peer did not receive\n% x\nit received %d announcement frames:", what, w, len(got))
				for _, g := range got {
					t.Errorf("  % x", g)
				}
			}
		}
		// One round is exactly one frame per VIP.
		if len(got) != len(want) {
			t.Errorf("%s: the peer received %d announcement frames, want %d", what, len(got), len(want))
		}
	}

	// One round from the interface's own MAC, IPv6 forwarding off: no
	// router flag.
	announce(nil)
	check("own MAC", build(p.macA, false))

	neigh := vpNeighbours(t, p.b, p.ifB)
	for _, a := range []string{"192.0.2.100", "2001:db8::100"} {
		if n, ok := neigh[a]; !ok || n.LLAddr != p.macA.String() {
			t.Errorf("peer's entry for %s: %+v (present %v), want lladdr %s (the GARP/NA overrides an existing entry)", a, n, ok, p.macA)
		}
	}
	// The kernel does not create entries from gratuitous ARP / unsolicited
	// NA by default (arp_accept=0, accept_untracked_na=0): keepalived's
	// announcements refresh caches, they do not populate them.
	for _, a := range []string{"192.0.2.101", "2001:db8::101"} {
		if n, ok := neigh[a]; ok {
			t.Errorf("peer created an entry for %s from an announcement: %+v", a, n)
		}
	}

	// A round from a VMAC, with IPv6 forwarding on: the router flag is set
	// and both the Ethernet source and the ARP/NA link-layer addresses are
	// the VMAC.
	vpIP(t, "netns", "exec", p.a, "sysctl", "-q", "-w", "net.ipv6.conf."+p.ifA+".forwarding=1")
	vmac := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x33}
	announce(vmac)
	check("VMAC, forwarding on", build(vmac, true))
}
