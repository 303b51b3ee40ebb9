package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Node is one host of the lab: a network namespace with eth0 (and any links added with AddLink)
// joined to the switch.
type Node struct {
	Name string // as given to AddNode
	NS   string // namespace name: the lab prefix + Name

	lab *Lab
	t   testing.TB

	mu       sync.Mutex
	ports    map[string]string // node interface -> its peer port in the switch namespace
	procSeq  int
	addrErrs sync.Map // ifname -> struct{}: Addrs errors already logged
}

// Exec runs `ip netns exec NS args...` and returns the combined output. The error carries the
// command and its output.
func (n *Node) Exec(args ...string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("node %s: exec: no command", n.Name)
	}
	out, err := run("ip", append([]string{"netns", "exec", n.NS}, args...)...)
	if err != nil {
		return out, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return out, nil
}

// MustExec is Exec that fails the test (with the output) on error.
func (n *Node) MustExec(args ...string) string {
	n.t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		n.t.Fatalf("lab: %v", err)
	}
	return out
}

// AddLink adds a veth link named ifname inside the node, its peer a port of br0 in the switch, and
// brings it up with addrs (IPv6 with nodad, DAD off on the link). It returns when the link is up
// and its IPv6 link-local address is usable.
func (n *Node) AddLink(ifname string, addrs ...string) {
	n.t.Helper()
	prefixes := parsePrefixes(n.t, addrs)
	if ifname == "" || len(ifname) > 15 || strings.ContainsAny(ifname, "/ \t") {
		n.t.Fatalf("lab: bad interface name %q (1..15 characters, no '/' or blanks)", ifname)
	}
	n.mu.Lock()
	_, dup := n.ports[ifname]
	n.mu.Unlock()
	if dup {
		n.t.Fatalf("lab: node %s already has link %s", n.Name, ifname)
	}
	l := n.lab
	port := l.newPortName()
	// Both ends are created inside the lab's namespaces: nothing ever appears on the host.
	l.mustRun("ip", "-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", n.NS)
	n.mu.Lock()
	n.ports[ifname] = port
	n.mu.Unlock()
	l.mustRun("ip", "-n", l.sw, "link", "set", port, "master", "br0")
	l.mustRun("ip", "-n", l.sw, "link", "set", port, "up")
	n.MustExec("sysctl", "-q", "-w",
		"net.ipv6.conf."+ifname+".accept_dad=0",
		"net.ipv6.conf."+ifname+".dad_transmits=0")
	for _, p := range prefixes {
		args := []string{"-n", n.NS, "addr", "add", p.String(), "dev", ifname}
		if p.Addr().Is6() {
			args = append(args, "nodad")
		}
		l.mustRun("ip", args...)
	}
	l.mustRun("ip", "-n", n.NS, "link", "set", ifname, "up")
	Eventually(n.t, 10*time.Second, fmt.Sprintf("%s %s up with a usable IPv6 link-local address", n.Name, ifname), func() bool {
		return n.linkReady(ifname)
	})
}

// linkReady reports whether ifname is operationally up and has a link-local IPv6 address that is
// not tentative.
func (n *Node) linkReady(ifname string) bool {
	links, err := n.ipJSON("link", "show", "dev", ifname)
	if err != nil || len(links) == 0 || links[0].OperState != "UP" {
		return false
	}
	addrs, err := n.ipJSON("-6", "addr", "show", "dev", ifname)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs[0].AddrInfo {
		if a.Scope == "link" && strings.HasPrefix(a.Local, "fe80:") && !a.Tentative {
			return true
		}
	}
	return false
}

// ipLink is the part of `ip -j link`/`ip -j addr` output the lab reads.
type ipLink struct {
	IfName    string   `json:"ifname"`
	OperState string   `json:"operstate"`
	Flags     []string `json:"flags"`
	AddrInfo  []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
		Scope     string `json:"scope"`
		Tentative bool   `json:"tentative"`
	} `json:"addr_info"`
}

func (n *Node) ipJSON(args ...string) ([]ipLink, error) {
	var out string
	var err error
	// A dump that crosses a change of thousands of addresses is cut short:
	// ip prints "Dump was interrupted and may be inconsistent." before the
	// JSON. Such a dump is asked again, a few times.
	for try := 0; try < 5; try++ {
		out, err = run("ip", append([]string{"-j", "-n", n.NS}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if !strings.HasPrefix(out, "Dump was interrupted") {
			break
		}
	}
	var links []ipLink
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("node %s: ip -j %s: %w", n.Name, strings.Join(args, " "), err)
	}
	return links, nil
}

// Addrs returns the addresses on ifname (all families and scopes, from `ip -j addr`). On error
// (the interface does not exist, say) it logs once and returns nil, so it can sit inside
// Eventually.
func (n *Node) Addrs(ifname string) []netip.Prefix {
	links, err := n.ipJSON("addr", "show", "dev", ifname)
	if err != nil {
		if _, logged := n.addrErrs.LoadOrStore(ifname, struct{}{}); !logged {
			n.t.Logf("lab: reading addresses: %v", err)
		}
		return nil
	}
	return prefixesByLink(links)[ifname]
}

// prefixesByLink collects the addresses of `ip -j addr` output by interface.
func prefixesByLink(links []ipLink) map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			if p := netip.PrefixFrom(addr, a.PrefixLen); p.IsValid() {
				out[l.IfName] = append(out[l.IfName], p)
			}
		}
	}
	return out
}

// AllAddrs returns the addresses of every interface of the node, by interface, from one
// `ip -j addr` (cheap enough to poll while a thousand VIPs move). On error it logs once and
// returns nil.
func (n *Node) AllAddrs() map[string][]netip.Prefix {
	links, err := n.ipJSON("addr", "show")
	if err != nil {
		if _, logged := n.addrErrs.LoadOrStore("", struct{}{}); !logged {
			n.t.Logf("lab: reading addresses: %v", err)
		}
		return nil
	}
	return prefixesByLink(links)
}

// HasAddr reports whether addr is assigned to ifname.
func (n *Node) HasAddr(ifname string, addr netip.Addr) bool {
	for _, p := range n.Addrs(ifname) {
		if p.Addr() == addr.Unmap() || p.Addr() == addr {
			return true
		}
	}
	return false
}

// LinkDown sets ifname down inside the node.
func (n *Node) LinkDown(ifname string) {
	n.t.Helper()
	n.lab.mustRun("ip", "-n", n.NS, "link", "set", "dev", ifname, "down")
}

// LinkUp sets ifname up inside the node.
func (n *Node) LinkUp(ifname string) {
	n.t.Helper()
	n.lab.mustRun("ip", "-n", n.NS, "link", "set", "dev", ifname, "up")
}

// CutLink sets the switch-side port of the node's eth0 down: the node sees carrier loss
// (NO-CARRIER) while eth0 stays administratively up.
func (n *Node) CutLink() { n.t.Helper(); n.CutPort("eth0") }

// RestoreLink undoes CutLink.
func (n *Node) RestoreLink() { n.t.Helper(); n.RestorePort("eth0") }

// CutPort is CutLink for any link of the node (eth0 or one made with AddLink).
func (n *Node) CutPort(ifname string) {
	n.t.Helper()
	n.lab.mustRun("ip", "-n", n.lab.sw, "link", "set", "dev", n.port(ifname), "down")
}

// RestorePort undoes CutPort.
func (n *Node) RestorePort(ifname string) {
	n.t.Helper()
	n.lab.mustRun("ip", "-n", n.lab.sw, "link", "set", "dev", n.port(ifname), "up")
}

func (n *Node) port(ifname string) string {
	n.t.Helper()
	n.mu.Lock()
	p, ok := n.ports[ifname]
	n.mu.Unlock()
	if !ok {
		n.t.Fatalf("lab: node %s has no link %s joined to the switch", n.Name, ifname)
	}
	return p
}

// vrrpTable is the nftables table DropVRRP installs in the node.
const vrrpTable = "vipdlab_vrrp"

// DropVRRP installs an nftables table in the node that drops IP protocol 112 (VRRP) over IPv4 and
// IPv6, incoming and outgoing; other traffic passes. The rules count what they drop
// (`nft list table inet vipdlab_vrrp`). Calling it twice is harmless.
func (n *Node) DropVRRP() {
	n.t.Helper()
	ruleset := fmt.Sprintf(`table inet %[1]s {
	chain in {
		type filter hook input priority -300; policy accept;
		meta l4proto 112 counter drop
	}
	chain out {
		type filter hook output priority -300; policy accept;
		meta l4proto 112 counter drop
	}
}
`, vrrpTable)
	n.AllowVRRP()
	n.nft(ruleset)
}

// AllowVRRP removes the table DropVRRP installed, if any.
func (n *Node) AllowVRRP() {
	n.t.Helper()
	// "add" then "delete" works whether or not the table exists.
	n.nft(fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\n", vrrpTable))
}

func (n *Node) nft(ruleset string) {
	n.t.Helper()
	nft, err := lookPath("nft")
	if err != nil {
		n.t.Fatalf("lab: nft not found (install nftables: scripts/deps.sh): %v", err)
	}
	f := filepath.Join(n.lab.logDir, fmt.Sprintf("%s-nft-%d.rules", n.Name, time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(ruleset), 0o600); err != nil {
		n.t.Fatalf("lab: %v", err)
	}
	n.MustExec(nft, "-f", f)
}

// Do runs fn on an OS thread switched into the node's network namespace, then switches back.
// Sockets opened inside fn stay in the node's namespace after Do returns, so a test can, say,
// open a raw VRRP socket in a node and use it from any goroutine. Goroutines started by fn do
// not run in the namespace.
func (n *Node) Do(fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", n.NS))
	if err != nil {
		return fmt.Errorf("node %s: opening namespace: %w", n.Name, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("node %s: opening own namespace: %w", n.Name, err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("node %s: setns: %w", n.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime ends it when this goroutine exits, so no other
		// goroutine ever runs in the wrong namespace.
		return fmt.Errorf("node %s: switching back from namespace: %w", n.Name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}
