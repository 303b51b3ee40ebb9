//go:build ipvsvm

// Package e2e runs vipd with virtual servers inside the qemu VM of
// integration/ipvsvm, on a real kernel's IPVS: real servers are HTTP
// servers in network namespaces, a client in another namespace goes
// through the virtual service (LVS-NAT), and vipd is the real binary.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vipd/vipd/api"
)

// inNS runs f on a thread switched into ns; sockets f creates stay there.
func inNS(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread is not returned to Go's pool: it dies with the goroutine
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// node is a namespace joined to the root namespace (the director) by a veth
// pair: root side rootIP/24, namespace side ip/24 with its default route
// through the director.
type node struct {
	ns netns.NsHandle
	ip netip.Addr
}

func newNode(t *testing.T, name string, rootIP, ip string) *node {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("netns.Get %s: %v", name, err)
	}
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("netns.New %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("netns.Set back %s: %v", name, err)
	}
	runtime.UnlockOSThread()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s: %v", name, err)
	}
	root, _ := netlink.LinkByName(name)
	peer, _ := netlink.LinkByName(name + "p")
	if err := netlink.LinkSetNsFd(peer, int(ns)); err != nil {
		t.Fatalf("LinkSetNsFd %s: %v", name, err)
	}
	a, _ := netlink.ParseAddr(rootIP + "/24")
	if err := netlink.AddrAdd(root, a); err != nil {
		t.Fatalf("AddrAdd root %s: %v", name, err)
	}
	if err := netlink.LinkSetUp(root); err != nil {
		t.Fatalf("LinkSetUp root %s: %v", name, err)
	}
	h, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("NewHandleAt %s: %v", name, err)
	}
	defer h.Close()
	in, err := h.LinkByName(name + "p")
	if err != nil {
		t.Fatalf("LinkByName in ns %s: %v", name, err)
	}
	b, _ := netlink.ParseAddr(ip + "/24")
	if err := h.AddrAdd(in, b); err != nil {
		t.Fatalf("AddrAdd in ns %s: %v", name, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	if err := h.LinkSetUp(in); err != nil {
		t.Fatalf("LinkSetUp in ns %s: %v", name, err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: in.Attrs().Index, Gw: net.ParseIP(rootIP)}); err != nil {
		t.Fatalf("RouteAdd in ns %s: %v", name, err)
	}
	return &node{ns: ns, ip: netip.MustParseAddr(ip)}
}

// server is an HTTP real server in a namespace that answers its name.
type server struct {
	n    *node
	name string
	mu   sync.Mutex
	srv  *http.Server
}

func (s *server) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	if err := inNS(s.n.ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(s.n.ip, 8080).String())
		return err
	}); err != nil {
		t.Fatalf("%s listen: %v", s.name, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", s.name)
	})}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// client is a keep-alive HTTP connection from the client namespace.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(n *node, addr string) (*client, error) {
	var c net.Conn
	err := inNS(n.ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &client{c: c, r: bufio.NewReader(c)}, nil
}

func (c *client) get() (string, error) {
	_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// once gets / on a new connection.
func once(n *node, addr string) (string, error) {
	c, err := dial(n, addr)
	if err != nil {
		return "", err
	}
	defer c.c.Close()
	return c.get()
}

type vipd struct {
	t      *testing.T
	bin    string
	socket string
	conf   string
	log    string
	cmd    *exec.Cmd
}

func (v *vipd) lvs() api.LVS {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	l, err := api.NewClient(v.socket).LVS(ctx)
	if err != nil {
		v.t.Logf("vipd lvs: %v", err)
	}
	return l
}

// removalBound is how soon a stopped real server must leave the pool (or
// be weighted 0): delay_loop 1 s + connect_timeout 2 s. The VM's CPU is
// emulated (TCG) and CI's host loaded, so the check allows emulationMargin
// more and logs the figure against the bound (0.92 s and 0.27 s measured
// here).
const (
	removalBound    = 3 * time.Second
	emulationMargin = 2 * time.Second
)

// within checks that vipd logged a line containing s at most bound after
// since, by the line's own time (the VM's clock, as this test's), and logs
// the figure.
func (v *vipd) within(t *testing.T, what, s string, since time.Time, bound time.Duration) {
	t.Helper()
	at, ok := v.logTime(s, since)
	if !ok {
		t.Fatalf("%s: no vipd log line %q since %s:\n%s", what, s, since.Format(time.StampMilli), v.logText())
	}
	d := at.Sub(since)
	t.Logf("%s %v after the real server stopped, by vipd's log (bound delay_loop + connect_timeout = %v)", what, d.Round(time.Millisecond), bound)
	if d > bound+emulationMargin {
		t.Errorf("%s after %v: over the bound of %v (+ %v for the emulated CPU)", what, d.Round(time.Millisecond), bound, emulationMargin)
	}
}

// logTime is the time of the first line of vipd's log (text format) at or
// after since that contains s.
func (v *vipd) logTime(s string, since time.Time) (time.Time, bool) {
	for _, l := range strings.Split(v.logText(), "\n") {
		f := strings.Fields(l)
		if !strings.Contains(l, s) || len(f) == 0 || !strings.HasPrefix(f[0], "time=") {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", strings.TrimPrefix(f[0], "time="))
		if err == nil && !at.Before(since.Truncate(time.Millisecond)) {
			return at, true
		}
	}
	return time.Time{}, false
}

func (v *vipd) logText() string {
	b, _ := os.ReadFile(v.log)
	return string(b)
}

func ipvsadm(t *testing.T) string {
	out, err := exec.Command("ipvsadm", "-Sn").CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm -Sn: %v\n%s", err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, v *vipd, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out (%s) waiting for %s\nipvsadm -Sn:\n%s\nvipd log:\n%s", d, what, ipvsadm(t), v.logText())
}

const confTmpl = `global_defs {
    router_id vm
}
virtual_server 10.0.0.1 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    %s
    real_server 10.0.1.2 8080 {
        weight %d
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
            retry 0
        }
    }
    real_server 10.0.2.2 8080 {
        weight 1
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
            retry 0
        }
    }
}
`

func TestVipdRunDrivesIPVS(t *testing.T) {
	bin := os.Getenv("VIPD_BIN")
	if bin == "" {
		t.Fatal("VIPD_BIN is not set: the harness must pass the path of vipd inside the VM")
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	cl := newNode(t, "cl", "10.0.0.1", "10.0.0.2")
	rs1 := &server{n: newNode(t, "r1", "10.0.1.1", "10.0.1.2"), name: "rs1"}
	rs2 := &server{n: newNode(t, "r2", "10.0.2.1", "10.0.2.2"), name: "rs2"}
	rs1.start(t)
	rs2.start(t)
	defer rs1.stop()
	defer rs2.stop()

	dir := t.TempDir()
	v := &vipd{t: t, bin: bin, socket: filepath.Join(dir, "vipd.sock"), conf: filepath.Join(dir, "keepalived.conf"), log: filepath.Join(dir, "vipd.log")}
	write := func(extra string, w1 int) {
		if err := os.WriteFile(v.conf, []byte(fmt.Sprintf(confTmpl, extra, w1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("", 1)
	logf, err := os.Create(v.log)
	if err != nil {
		t.Fatal(err)
	}
	v.cmd = exec.Command(bin, "run", "--config", v.conf, "--socket", v.socket, "--node-name", "vm", "--state-dir", "none")
	v.cmd.Stdout, v.cmd.Stderr = logf, logf
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if v.cmd.ProcessState == nil {
			_ = v.cmd.Process.Kill()
			_ = v.cmd.Wait()
		}
	}()

	// (1) Checks pass and the pool is in the kernel's IPVS.
	pool := "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 1\n-a -t 10.0.0.1:80 -r 10.0.2.2:8080 -m -w 1\n"
	waitFor(t, v, "the pool in IPVS", 60*time.Second, func() bool { return ipvsadm(t) == pool })
	waitFor(t, v, "both checks to pass", 30*time.Second, func() bool {
		l := v.lvs()
		if len(l.VirtualServers) != 1 {
			return false
		}
		for _, rs := range l.VirtualServers[0].RealServers {
			if len(rs.Checks) == 0 || rs.Checks[0].Result != "ok" || !rs.InIPVS {
				return false
			}
		}
		return l.Available && l.Desired == pool && l.Actual == pool
	})

	// (2) A client through the virtual service reaches both real servers.
	seen := map[string]bool{}
	for range 6 {
		body, err := once(cl, "10.0.0.1:80")
		if err != nil {
			t.Fatalf("GET through the virtual service: %v\nipvsadm:\n%s", err, ipvsadm(t))
		}
		seen[body] = true
	}
	if !seen["rs1"] || !seen["rs2"] {
		t.Fatalf("round robin through IPVS reached %v, want rs1 and rs2", seen)
	}

	// (3) One real server stopped leaves the pool within delay_loop +
	// connect_timeout (1 s + 2 s; the deadline allows for the emulated CPU).
	rs2.stop()
	stopped := time.Now()
	// Bound: delay_loop 1 s + connect_timeout 2 s (retry 0), with 5 s of
	// margin for the emulated CPU (TCG, on a loaded CI host) and the
	// polling. A retry more (delay_before_retry 3 s for HTTP_GET) would not
	// fit on an idle host: 0.9 s measured there.
	waitFor(t, v, "rs2 out of IPVS within delay_loop + connect_timeout (+ margin)", 8*time.Second, func() bool {
		return !strings.Contains(ipvsadm(t), "10.0.2.2")
	})
	// The bound, on vipd's own clock: the time of its "ipvs -d" line, not
	// of this test's polling.
	v.within(t, "rs2 removed", "lvs: ipvs -d -t 10.0.0.1:80 -r 10.0.2.2:8080", stopped, removalBound)
	for range 4 {
		if body, err := once(cl, "10.0.0.1:80"); err != nil || body != "rs1" {
			t.Fatalf("with rs2 down: %q, %v", body, err)
		}
	}
	if !strings.Contains(v.logText(), "lvs: real server down") {
		t.Errorf("no log line for the transition:\n%s", v.logText())
	}

	// (4) Restarted, it comes back.
	rs2.start(t)
	waitFor(t, v, "rs2 back in IPVS", 30*time.Second, func() bool { return ipvsadm(t) == pool })

	// (5) A reload changing rs1's weight changes only that destination; a
	// connection open to rs2 through the virtual service survives it.
	var keep *client
	for range 10 {
		c, err := dial(cl, "10.0.0.1:80")
		if err != nil {
			t.Fatal(err)
		}
		if body, err := c.get(); err == nil && body == "rs2" {
			keep = c
			break
		}
		c.c.Close()
	}
	if keep == nil {
		t.Fatal("no connection landed on rs2")
	}
	defer keep.c.Close()
	before := strings.Count(v.logText(), "lvs: ipvs ")
	write("", 3)
	if err := v.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3\n-a -t 10.0.0.1:80 -r 10.0.2.2:8080 -m -w 1\n"
	waitFor(t, v, "the new weight", 30*time.Second, func() bool { return ipvsadm(t) == want })
	ops := strings.Split(v.logText(), "\n")
	var done []string
	for _, l := range ops {
		if strings.Contains(l, "lvs: ipvs ") {
			done = append(done, l)
		}
	}
	if len(done)-before != 1 || !strings.Contains(done[len(done)-1], "-e -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3") {
		t.Errorf("the reload did %d operations, want the one edit:\n%s", len(done)-before, strings.Join(done[before:], "\n"))
	}
	if body, err := keep.get(); err != nil || body != "rs2" {
		t.Errorf("the connection to rs2 did not survive the reload: %q, %v", body, err)
	}

	// (6) inhibit_on_failure: a failed real server stays with weight 0.
	write("inhibit_on_failure", 3)
	_ = v.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	rs1.stop()
	inhibitedAt := time.Now()
	inhibited := "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 0\n-a -t 10.0.0.1:80 -r 10.0.2.2:8080 -m -w 1\n"
	waitFor(t, v, "rs1 weighted 0", 30*time.Second, func() bool { return ipvsadm(t) == inhibited })
	v.within(t, "rs1 weighted 0 (inhibit_on_failure)", "lvs: ipvs -e -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 0", inhibitedAt, removalBound)
	out, _ := exec.Command(bin, "lvs", "-o", "json", "--socket", v.socket).Output()
	var l api.LVS
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("vipd lvs -o json: %v\n%s", err, out)
	}
	if rs := l.VirtualServers[0].RealServers[0]; rs.Up || rs.IPVSWeight == nil || *rs.IPVSWeight != 0 {
		t.Errorf("vipd lvs shows rs1 as %+v", rs)
	}
	table, _ := exec.Command(bin, "lvs", "--socket", v.socket).CombinedOutput()
	t.Logf("vipd lvs:\n%s", table)

	// (7) A graceful stop removes vipd's service.
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	_ = v.cmd.Wait()
	if got := ipvsadm(t); strings.Contains(got, "10.0.0.1:80") {
		t.Errorf("after SIGTERM IPVS still holds:\n%s", got)
	}
}
