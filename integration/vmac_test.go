//go:build linux

package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
	"github.com/vipd/vipd/vrrp/wire"
)

// These tests run the VMAC side of the VIP plane (vip.Netlink's EnsureVMAC /
// RemoveVMAC) against the kernel in a lab of their own, and record how VRRP
// adverts travel when an instance uses a VMAC (TestVMACAdvertPaths).

// vmacLink is the part of `ip -d -j link show` the tests read.
type vmacLink struct {
	Ifindex  int      `json:"ifindex"`
	Link     string   `json:"link"`
	Flags    []string `json:"flags"`
	Address  string   `json:"address"`
	GenMode  string   `json:"inet6_addr_gen_mode"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			Mode string `json:"mode"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

// vmacShow reads dev in n; ok is false when it does not exist.
func vmacShow(t *testing.T, n *lab.Node, dev string) (l vmacLink, ok bool) {
	t.Helper()
	out, err := n.Exec("ip", "-d", "-j", "link", "show", "dev", dev)
	if err != nil {
		if strings.Contains(out, "does not exist") {
			return l, false
		}
		t.Fatalf("ip link show %s: %v", dev, err)
	}
	var ls []vmacLink
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 1 {
		t.Fatalf("parse ip -d -j link show %s: %v\n%s", dev, err, out)
	}
	return ls[0], true
}

func vmacShowMust(t *testing.T, n *lab.Node, dev string) vmacLink {
	t.Helper()
	l, ok := vmacShow(t, n, dev)
	if !ok {
		t.Fatalf("%s: no interface %s", n.Name, dev)
	}
	return l
}

// vmacSysctl reads net.<key> in n.
func vmacSysctl(t *testing.T, n *lab.Node, key string) int {
	t.Helper()
	out := n.MustExec("sysctl", "-n", "net."+key)
	v, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("sysctl net.%s: %q: %v", key, out, err)
	}
	return v
}

// vmacPlane opens a vip.Netlink inside n, closed at cleanup. The tests call
// it from their own goroutine, outside the namespace, as the vrrp runtime
// may.
func vmacPlane(t *testing.T, n *lab.Node) *vip.Netlink {
	t.Helper()
	var p *vip.Netlink
	if err := n.Do(func() error {
		var err error
		p, err = vip.NewNetlink(nil)
		return err
	}); err != nil {
		t.Fatalf("NewNetlink in %s: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func vmacCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestVMACIsAPrivateMacvlanWithKeepalivedSettingsAndGoesAway(t *testing.T) {
	l := lab.New(t)
	n1 := l.AddNode("n1", "10.99.0.1/24")
	n2 := l.AddNode("n2", "10.99.0.2/24")
	ctx := vmacCtx(t)
	// A host with a strict reverse-path filter: keepalived moves it out of
	// "all" so that the VMAC's rp_filter=0 counts.
	n1.MustExec("sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.eth0.arp_ignore=0", "net.ipv4.conf.eth0.arp_filter=0")
	p := vmacPlane(t, n1)
	const name, vrid = "vrrp.42", 42
	wantMAC := "00:00:5e:00:01:2a"

	idx, mac, err := p.EnsureVMAC(ctx, "eth0", name, vrid, false)
	if err != nil {
		t.Fatalf("EnsureVMAC: %v", err)
	}
	if mac.String() != wantMAC {
		t.Errorf("EnsureVMAC returned MAC %s, want %s", mac, wantMAC)
	}
	got, ok := vmacShow(t, n1, name)
	if !ok {
		t.Fatalf("%s was not created", name)
	}
	if got.Ifindex != idx || got.Address != wantMAC || got.Link != "eth0" || got.LinkInfo.Kind != "macvlan" ||
		got.LinkInfo.Data.Mode != "private" || !slices.Contains(got.Flags, "UP") || got.GenMode != "none" {
		t.Errorf("%s: %+v; want ifindex %d, %s, link eth0, macvlan private, UP, addrgenmode none", name, got, idx, wantMAC)
	}
	for key, want := range map[string]int{
		"ipv4.conf.vrrp/42.arp_ignore":          1,
		"ipv4.conf.vrrp/42.accept_local":        1,
		"ipv4.conf.vrrp/42.rp_filter":           0,
		"ipv4.conf.vrrp/42.promote_secondaries": 1,
		"ipv6.conf.vrrp/42.disable_ipv6":        1,
		"ipv4.conf.eth0.arp_ignore":             1,
		"ipv4.conf.eth0.arp_filter":             1,
		"ipv4.conf.all.rp_filter":               0,
		"ipv4.conf.default.rp_filter":           1,
		"ipv4.conf.eth0.rp_filter":              1,
	} {
		if v := vmacSysctl(t, n1, key); v != want {
			t.Errorf("net.%s = %d after EnsureVMAC, want %d", key, v, want)
		}
	}

	// Idempotent, and an existing VMAC with a wrong MAC is corrected in place.
	if idx2, _, err := p.EnsureVMAC(ctx, "eth0", name, vrid, false); err != nil || idx2 != idx {
		t.Errorf("second EnsureVMAC: ifindex %d, %v; want %d, nil", idx2, err, idx)
	}
	n1.MustExec("ip", "link", "set", "dev", name, "address", "02:00:00:00:00:01")
	if idx2, _, err := p.EnsureVMAC(ctx, "eth0", name, vrid, false); err != nil || idx2 != idx {
		t.Errorf("EnsureVMAC over a wrong MAC: ifindex %d, %v; want %d, nil", idx2, err, idx)
	}
	if got, _ := vmacShow(t, n1, name); got.Address != wantMAC {
		t.Errorf("wrong MAC not corrected: %s", got.Address)
	}

	// The VIP on the VMAC answers ARP with the virtual MAC (eth0 keeps
	// quiet: arp_ignore), and a GARP from it reaches the peer.
	vips := []config.VIP{{Prefix: netip.MustParsePrefix("10.99.0.100/32")}}
	if err := p.AddAddrs(ctx, name, vips); err != nil {
		t.Fatalf("AddAddrs on %s: %v", name, err)
	}
	// A static entry for n2 keeps n1 from asking for n2's MAC while it
	// answers the ping: that request would go out of eth0 with the VIP as
	// sender and eth0's MAC (keepalived has the same effect) and muddle
	// what n2 learns.
	n2MAC := vmacShowMust(t, n2, "eth0").Address
	n1.MustExec("ip", "neigh", "replace", "10.99.0.2", "lladdr", n2MAC, "dev", "eth0", "nud", "permanent")
	capt := n2.Capture("eth0", "arp")
	if err := p.Announce(ctx, name, mac, vips); err != nil {
		t.Fatalf("Announce from %s: %v", name, err)
	}
	n2.MustExec("ping", "-c", "1", "-W", "2", "10.99.0.100")
	if out := n2.MustExec("ip", "neigh", "show", "10.99.0.100"); !strings.Contains(out, wantMAC) {
		t.Errorf("peer's neighbour entry for the VIP: %q, want lladdr %s", out, wantMAC)
	}
	var garp, reply bool
	for _, pk := range capt.Stop() {
		d := pk.Data
		if len(d) < 42 || binary.BigEndian.Uint16(d[12:14]) != 0x0806 || netip.AddrFrom4([4]byte(d[28:32])).String() != "10.99.0.100" {
			continue
		}
		src, sha, op := net.HardwareAddr(d[6:12]).String(), net.HardwareAddr(d[22:28]).String(), binary.BigEndian.Uint16(d[20:22])
		switch {
		case op == 1 && src == wantMAC && sha == wantMAC && bytes.Equal(d[38:42], d[28:32]):
			garp = true
		case op == 2 && src == wantMAC && sha == wantMAC:
			reply = true
		case op == 2:
			t.Errorf("ARP reply for the VIP from %s (sender %s): only the VMAC may answer", src, sha)
		}
	}
	if !garp {
		t.Errorf("peer saw no gratuitous ARP for 10.99.0.100 from %s", wantMAC)
	}
	if !reply {
		t.Errorf("peer saw no ARP reply for 10.99.0.100 from %s", wantMAC)
	}

	// A macvlan in another mode is re-created in private mode.
	if err := p.RemoveVMAC(ctx, name); err != nil {
		t.Fatalf("RemoveVMAC: %v", err)
	}
	n1.MustExec("ip", "link", "add", name, "link", "eth0", "address", wantMAC, "type", "macvlan", "mode", "bridge")
	if _, _, err := p.EnsureVMAC(ctx, "eth0", name, vrid, false); err != nil {
		t.Fatalf("EnsureVMAC over a bridge-mode macvlan: %v", err)
	}
	if got, _ := vmacShow(t, n1, name); got.LinkInfo.Data.Mode != "private" {
		t.Errorf("bridge-mode macvlan not re-created private: %+v", got)
	}

	// An interface of that name that is not a macvlan is left alone.
	n1.MustExec("ip", "link", "add", "vrrp.43", "type", "bridge")
	if _, _, err := p.EnsureVMAC(ctx, "eth0", "vrrp.43", 43, false); err == nil || !strings.Contains(err.Error(), "not a macvlan") {
		t.Errorf("EnsureVMAC over a bridge: %v, want a 'not a macvlan' error", err)
	}
	if err := p.RemoveVMAC(ctx, "vrrp.43"); err == nil {
		t.Error("RemoveVMAC deleted a bridge")
	}
	if got, ok := vmacShow(t, n1, "vrrp.43"); !ok || got.LinkInfo.Kind != "bridge" {
		t.Errorf("the bridge vrrp.43 was touched: %+v, %v", got, ok)
	}

	// Removal: the link goes and the shared settings come back.
	if err := p.RemoveVMAC(ctx, name); err != nil {
		t.Fatalf("RemoveVMAC: %v", err)
	}
	if _, ok := vmacShow(t, n1, name); ok {
		t.Errorf("%s still exists after RemoveVMAC", name)
	}
	for key, want := range map[string]int{
		"ipv4.conf.eth0.arp_ignore":   0,
		"ipv4.conf.eth0.arp_filter":   0,
		"ipv4.conf.all.rp_filter":     1,
		"ipv4.conf.default.rp_filter": 0,
		"ipv4.conf.eth0.rp_filter":    0,
	} {
		if v := vmacSysctl(t, n1, key); v != want {
			t.Errorf("net.%s = %d after RemoveVMAC, want %d (restored)", key, v, want)
		}
	}
	if err := p.RemoveVMAC(ctx, name); err != nil {
		t.Errorf("RemoveVMAC of an absent VMAC: %v", err)
	}
}

func TestVMACForIPv6HasTheBaseLinkLocalAndSendsNAFromTheVirtualMAC(t *testing.T) {
	l := lab.New(t)
	n1 := l.AddNode("n1", "10.99.0.1/24", "fd00:99::1/64")
	n2 := l.AddNode("n2", "10.99.0.2/24", "fd00:99::2/64")
	ctx := vmacCtx(t)
	p := vmacPlane(t, n1)
	const name = "vrrp.7"
	wantMAC := "00:00:5e:00:02:07"

	_, mac, err := p.EnsureVMAC(ctx, "eth0", name, 7, true)
	if err != nil {
		t.Fatalf("EnsureVMAC: %v", err)
	}
	got, _ := vmacShow(t, n1, name)
	if mac.String() != wantMAC || got.Address != wantMAC || got.LinkInfo.Data.Mode != "private" || got.GenMode != "none" {
		t.Errorf("%s: %+v (returned %s); want %s, private, addrgenmode none", name, got, mac, wantMAC)
	}
	if v := vmacSysctl(t, n1, "ipv6.conf.vrrp/7.disable_ipv6"); v != 0 {
		t.Errorf("disable_ipv6 on an IPv6 VMAC = %d, want 0", v)
	}
	baseLL := vmacLinkLocals(t, n1, "eth0")
	vmacLL := vmacLinkLocals(t, n1, name)
	if len(baseLL) != 1 || !slices.Equal(vmacLL, baseLL) {
		t.Errorf("VMAC link-local addresses %v, want exactly the base's %v", vmacLL, baseLL)
	}
	if _, _, err := p.EnsureVMAC(ctx, "eth0", name, 7, true); err != nil {
		t.Errorf("second EnsureVMAC: %v", err)
	}
	if again := vmacLinkLocals(t, n1, name); !slices.Equal(again, vmacLL) {
		t.Errorf("second EnsureVMAC changed the link-local addresses: %v -> %v", vmacLL, again)
	}

	vips := []config.VIP{{Prefix: netip.MustParsePrefix("fd00:99::100/64")}}
	if err := p.AddAddrs(ctx, name, vips); err != nil {
		t.Fatalf("AddAddrs: %v", err)
	}
	capt := n2.Capture("eth0", "icmp6 and ip6[40] == 136")
	if err := p.Announce(ctx, name, mac, vips); err != nil {
		t.Fatalf("Announce: %v", err)
	}
	var na bool
	for _, pk := range capt.Stop() {
		if len(pk.Data) > 14 && net.HardwareAddr(pk.Data[6:12]).String() == wantMAC {
			na = true
		}
	}
	if !na {
		t.Errorf("peer saw no neighbour advertisement from %s", wantMAC)
	}
	if err := p.RemoveVMAC(ctx, name); err != nil {
		t.Fatalf("RemoveVMAC: %v", err)
	}
	if _, ok := vmacShow(t, n1, name); ok {
		t.Errorf("%s still exists", name)
	}
}

// vmacLinkLocals lists dev's IPv6 link-local addresses as "addr/len".
func vmacLinkLocals(t *testing.T, n *lab.Node, dev string) []string {
	t.Helper()
	var ls []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	out := n.MustExec("ip", "-6", "-j", "addr", "show", "dev", dev, "scope", "link")
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("parse ip -j addr: %v\n%s", err, out)
	}
	var s []string
	for _, l := range ls {
		for _, a := range l.AddrInfo {
			if a.Local == "" {
				continue // ip -j lists lifetimes as entries of their own
			}
			s = append(s, a.Local+"/"+strconv.Itoa(a.PrefixLen))
		}
	}
	return s
}

// vmacListener collects the sources of the VRRP packets one socket receives.
type vmacListener struct {
	conn *vrrp.Conn
	got  chan netip.Addr
}

func vmacListen(t *testing.T, n *lab.Node, ifname string, v6 bool) *vmacListener {
	t.Helper()
	var c *vrrp.Conn
	if err := n.Do(func() error {
		var err error
		c, err = vrrp.ListenConn(ifname, v6)
		return err
	}); err != nil {
		t.Fatalf("ListenConn(%s) in %s: %v", ifname, n.Name, err)
	}
	ln := &vmacListener{conn: c, got: make(chan netip.Addr, 64)}
	go func() {
		buf := make([]byte, 1500)
		for {
			_, meta, err := c.Recv(buf)
			if err != nil {
				close(ln.got)
				return
			}
			ln.got <- meta.Src
		}
	}()
	t.Cleanup(func() { c.Close() })
	return ln
}

// count drains what arrived from src; it waits up to wait for want packets.
func (ln *vmacListener) count(src netip.Addr, want int, wait time.Duration) int {
	n := 0
	deadline := time.After(wait)
	for n < want {
		select {
		case a, ok := <-ln.got:
			if !ok {
				return n
			}
			if a == src {
				n++
			}
		case <-deadline:
			return n
		}
	}
	return n
}

// TestVMACAdvertPaths records how adverts travel with use_vmac, for the vrrp
// runtime: a vrrp.Conn bound to the VMAC sends with the virtual MAC and the
// base's address; a peer that has the same VMAC (both keepalived and vipd
// create it on every node, master or not) receives those adverts only on
// its VMAC, never on its base interface: the macvlan driver hands a
// multicast frame whose source MAC is one of its own private-mode
// macvlans to that macvlan alone. Adverts from a peer's own MAC
// (vmac_xmit_base, or no VMAC) reach both the base and the VMAC, and a peer
// without a VMAC hears VMAC adverts on its base.
func TestVMACAdvertPaths(t *testing.T) {
	for _, fam := range []struct {
		name string
		v6   bool
		src1 string
	}{
		{"IPv4", false, "10.99.0.1"},
		{"IPv6", true, ""},
	} {
		t.Run(fam.name, func(t *testing.T) {
			l := lab.New(t)
			n1 := l.AddNode("n1", "10.99.0.1/24", "fd00:99::1/64")
			n2 := l.AddNode("n2", "10.99.0.2/24", "fd00:99::2/64")
			ctx := vmacCtx(t)
			const name, vrid = "vrrp.42", 42
			var p2 *vip.Netlink
			for _, n := range []*lab.Node{n1, n2} {
				p := vmacPlane(t, n)
				if _, _, err := p.EnsureVMAC(ctx, "eth0", name, vrid, fam.v6); err != nil {
					t.Fatalf("EnsureVMAC in %s: %v", n.Name, err)
				}
				p2 = p
			}
			src1 := vmacPrimary(t, n1, fam.v6, fam.src1)
			vmacMAC := vip.VirtualMAC(vrid, fam.v6).String()
			dst := wire.MulticastGroup4
			if fam.v6 {
				dst = wire.MulticastGroup6
			}
			advert := func(src netip.Addr) []byte {
				a := wire.Advert{Version: 3, VRID: vrid, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{dst}}
				b, err := a.AppendMarshal(nil, src, dst, wire.ChecksumOpt{})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}

			tx1 := vmacListen(t, n1, name, fam.v6)       // n1 sends from its VMAC
			tx1base := vmacListen(t, n1, "eth0", fam.v6) // and from its base (vmac_xmit_base)
			rxBase := vmacListen(t, n2, "eth0", fam.v6)
			rxVMAC := vmacListen(t, n2, name, fam.v6)
			capt := n2.Capture("eth0", "ip proto 112 or ip6 proto 112")

			const k = 5
			// Sent from inside n1: Conn.Send names the IPv6 zone by
			// interface name, which Go resolves in the calling thread's
			// namespace.
			send := func(c *vrrp.Conn) error {
				return n1.Do(func() error {
					for range k {
						if err := c.Send(advert(src1), src1, dst); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err := send(tx1.conn); err != nil {
				t.Fatalf("send from %s: %v", name, err)
			}
			if got := rxVMAC.count(src1, k, 3*time.Second); got != k {
				t.Errorf("peer's socket on its VMAC received %d of %d adverts sent from the VMAC", got, k)
			}
			if got := rxBase.count(src1, 1, 300*time.Millisecond); got != 0 {
				t.Errorf("peer's socket on its base interface received %d adverts sent from a VMAC it shares; want 0 (macvlan private mode steals them)", got)
			}

			if err := send(tx1base.conn); err != nil {
				t.Fatalf("send from eth0: %v", err)
			}
			if got := rxBase.count(src1, k, 3*time.Second); got != k {
				t.Errorf("peer's base socket received %d of %d adverts sent from the base", got, k)
			}
			if got := rxVMAC.count(src1, k, 3*time.Second); got != k {
				t.Errorf("peer's VMAC socket received %d of %d adverts sent from the base", got, k)
			}

			// On the wire (n2's eth0): k frames from the virtual MAC, k from
			// the base MAC. (Counted before n2's VMAC goes: after the
			// macvlan is deleted, a tcpdump already running on eth0 was
			// seen to miss the frames that follow now and then, while the
			// sockets still received them.)
			var fromVMAC, fromBase int
			for _, pk := range capt.Stop() {
				if len(pk.Data) < 14 {
					continue
				}
				switch net.HardwareAddr(pk.Data[6:12]).String() {
				case vmacMAC:
					fromVMAC++
				default:
					fromBase++
				}
			}
			if fromVMAC != k || fromBase != k {
				t.Errorf("on the wire: %d adverts from %s and %d from eth0's MAC, want %d and %d", fromVMAC, vmacMAC, fromBase, k, k)
			}

			// Without a VMAC of its own, the peer's base socket hears the
			// VMAC's adverts: the steal above is the shared MAC's doing.
			if err := p2.RemoveVMAC(ctx, name); err != nil {
				t.Fatalf("RemoveVMAC in n2: %v", err)
			}
			if err := send(tx1.conn); err != nil {
				t.Fatalf("send from %s: %v", name, err)
			}
			if got := rxBase.count(src1, k, 3*time.Second); got != k {
				t.Errorf("peer without a VMAC: its base socket received %d of %d adverts sent from n1's VMAC", got, k)
			}

		})
	}
}

// vmacPrimary is n's advert source: the given IPv4 address, or eth0's IPv6
// link-local address.
func vmacPrimary(t *testing.T, n *lab.Node, v6 bool, v4 string) netip.Addr {
	t.Helper()
	if !v6 {
		return netip.MustParseAddr(v4)
	}
	ll := vmacLinkLocals(t, n, "eth0")
	if len(ll) == 0 {
		t.Fatalf("%s: eth0 has no link-local address", n.Name)
	}
	return netip.MustParsePrefix(ll[0]).Addr()
}
