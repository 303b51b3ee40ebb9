package integration

// Live changes to a running vipd master next to a real keepalived 2.2.7 backup (issue 13):
// reloads that change nothing, reloads that add a VIP and change the priority, a VIP deleted
// behind vipd's back, and maintenance. Each test watches the wire (tcpdump), both daemons' logs
// and vipd's status, and asserts that what must not move does not move.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

// chTransitions returns the state-change lines of a daemon's log: vipd's `msg="entering X
// state"`, keepalived's `(VI_1) Entering X STATE`.
func chTransitions(d *daemon) []string {
	var out []string
	for _, line := range strings.Split(d.proc.Output(), "\n") {
		switch d.kind {
		case "vipd":
			if strings.Contains(line, `msg="entering `) || strings.Contains(line, `msg="sync group entering `) {
				out = append(out, line)
			}
		default:
			if strings.Contains(line, " Entering ") && strings.Contains(line, " STATE") {
				out = append(out, line)
			}
		}
	}
	return out
}

// chNewTransitions returns the transition lines logged after the first `before` ones.
func chNewTransitions(d *daemon, before int) []string {
	all := chTransitions(d)
	if len(all) <= before {
		return nil
	}
	return all[before:]
}

// chLogged reports whether the daemon's log has a line containing every one of parts.
func chLogged(d *daemon, parts ...string) bool {
	for _, line := range strings.Split(d.proc.Output(), "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// chCLI runs `vipd args... --socket <d's socket>` from the host (the control socket is a unix
// socket, reachable from any namespace) and fails the test when it does not exit 0.
func chCLI(t *testing.T, d *daemon, args ...string) string {
	t.Helper()
	bin := lab.BuildVipd(t)
	out, err := exec.Command(bin, append(args, "--socket", d.socket)...).CombinedOutput()
	if err != nil {
		t.Fatalf("vipd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// chGARPs returns the capture times of gratuitous ARPs for ip (request or reply whose sender and
// target protocol addresses are both ip) among Ethernet frames.
func chGARPs(pkts []lab.Packet, ip netip.Addr) []time.Time {
	var out []time.Time
	for _, p := range pkts {
		d := p.Data
		if len(d) < 42 || binary.BigEndian.Uint16(d[12:14]) != 0x0806 {
			continue
		}
		arp := d[14:]
		if binary.BigEndian.Uint16(arp[0:2]) != 1 || binary.BigEndian.Uint16(arp[2:4]) != 0x0800 || arp[4] != 6 || arp[5] != 4 {
			continue
		}
		spa := netip.AddrFrom4([4]byte(arp[14:18]))
		tpa := netip.AddrFrom4([4]byte(arp[24:28]))
		if spa == ip && tpa == ip {
			out = append(out, p.Time)
		}
	}
	return out
}

// chWaitGARP polls the pcap being written until it holds a gratuitous ARP for ip captured after
// since; it returns its time, or false at the deadline.
func chWaitGARP(c *lab.Capture, ip netip.Addr, since time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if pkts, err := lab.ReadPcap(c.Path()); err == nil {
			for _, at := range chGARPs(pkts, ip) {
				if at.After(since) {
					return at, true
				}
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// chNoNewTransitions watches both daemons' logs for window and fails at the first state change
// either logs after the counts taken before.
func chNoNewTransitions(t *testing.T, window time.Duration, what string, ds []*daemon, before []int) {
	t.Helper()
	deadline := time.Now().Add(window)
	for {
		for k, d := range ds {
			if extra := chNewTransitions(d, before[k]); len(extra) > 0 {
				t.Fatalf("%s: %s on %s changed state:\n%s", what, d.kind, d.node.Name, strings.Join(extra, "\n"))
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chSampler runs check every interval in the background and records every sample where it
// failed, with the time.
type chSampler struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples int
	misses  []string
}

func chSample(interval time.Duration, check func() error) *chSampler {
	s := &chSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			err := check()
			s.mu.Lock()
			s.samples++
			if err != nil {
				s.misses = append(s.misses, time.Now().Format("15:04:05.000")+": "+err.Error())
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the number of samples and the failed ones.
func (s *chSampler) Stop() (int, []string) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, append([]string(nil), s.misses...)
}

// chSyncConf is the configuration of TestReloadUnchangedConfigMovesNothing: a sync group G1 of
// VI_A (VRID 51, use_vmac, multicast) and VI_B (VRID 52, unicast, virtual_routes), the group
// tracking eth0 with a weight (sync_group_tracking_weight, so weights apply as keepalived does),
// each instance tracking eth1 with a weight. VRRPv3, 200 ms.
func chSyncConf(routerID string, keepalived bool, prio int, src, peer string) string {
	security := ""
	if keepalived {
		security = "\n    script_user root\n    enable_script_security"
	}
	return fmt.Sprintf(`global_defs {
    router_id %[1]s%[2]s
}

vrrp_sync_group G1 {
    sync_group_tracking_weight
    group {
        VI_A
        VI_B
    }
    track_interface {
        eth0 weight 10
    }
}

vrrp_instance VI_A {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %[3]d
    advert_int 0.2
    version 3
    use_vmac
    track_interface {
        eth1 weight 5
    }
    virtual_ipaddress {
        10.99.0.100/24
    }
}

vrrp_instance VI_B {
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority %[3]d
    advert_int 0.2
    version 3
    unicast_src_ip %[4]s
    unicast_peer {
        %[5]s
    }
    track_interface {
        eth1 weight -20
    }
    virtual_ipaddress {
        10.99.0.101/24
    }
    virtual_routes {
        192.0.2.0/24 via 10.99.0.254 dev eth0
    }
}
`, routerID, security, prio, src, peer)
}

// chHolding returns a check, through a netlink handle in node n (no process per call, so a
// 20 ms sampler keeps its pace on a loaded host), that VI_A's VIP is on vrrp.51, VI_B's on eth0
// and VI_B's virtual route is in the table.
func chHolding(t *testing.T, n *lab.Node) func() error {
	t.Helper()
	ns, err := netns.GetFromPath("/run/netns/" + n.NS)
	if err != nil {
		t.Fatalf("namespace of %s: %v", n.Name, err)
	}
	h, err := netlink.NewHandleAt(ns)
	ns.Close()
	if err != nil {
		t.Fatalf("netlink in %s: %v", n.Name, err)
	}
	var mu sync.Mutex
	t.Cleanup(func() { mu.Lock(); h.Close(); mu.Unlock() })
	onDev := func(dev, addr string) bool {
		l, err := h.LinkByName(dev)
		if err != nil {
			return false
		}
		as, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return false
		}
		for _, a := range as {
			if a.IP.String() == addr {
				return true
			}
		}
		return false
	}
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		var missing []string
		if !onDev("vrrp.51", "10.99.0.100") {
			missing = append(missing, "10.99.0.100 on vrrp.51")
		}
		if !onDev("eth0", "10.99.0.101") {
			missing = append(missing, "10.99.0.101 on eth0")
		}
		_, dst, _ := net.ParseCIDR("192.0.2.0/24")
		routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
		found := false
		for _, r := range routes {
			if err == nil && r.Gw.String() == "10.99.0.254" {
				found = true
			}
		}
		if !found {
			missing = append(missing, "route 192.0.2.0/24 via 10.99.0.254")
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing %s", strings.Join(missing, ", "))
		}
		return nil
	}
}

// TestReloadUnchangedConfigMovesNothing: 20 SIGHUPs with the file unchanged, on a vipd master
// whose configuration has a sync group with group and instance tracking, a VMAC instance, a
// unicast instance and virtual routes, next to a keepalived backup. Nothing may move: no
// priority-0 advert (nor any other advertised priority) on the wire, no state change on either
// side, and the VIPs and route present at every 20 ms sample.
func TestReloadUnchangedConfigMovesNothing(t *testing.T) {
	lab.Keepalived(t)
	_, n1, n2 := twoNodes(t)
	// eth1 is a local veth pair, not a port of the lab's bridge: on the bridge, the node's eth1
	// would answer ARP for its eth0 address too, and unicast adverts to 10.99.0.2 could land on
	// eth1, where keepalived's unicast socket (bound to eth0) never sees them.
	for _, n := range []*lab.Node{n1, n2} {
		n.MustExec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
		n.MustExec("ip", "link", "set", "eth1p", "up")
		n.MustExec("ip", "link", "set", "eth1", "up")
	}
	held := chHolding(t, n1)
	dv := startVipd(t, n1, chSyncConf("node1", false, 150, "10.99.0.1", "10.99.0.2"))
	dk := startKeepalived(t, n2, chSyncConf("node2", true, 100, "10.99.0.2", "10.99.0.1"))

	lab.Eventually(t, 10*time.Second, "vipd MASTER for VI_A and VI_B, keepalived BACKUP for both", func() bool {
		return dv.state("VI_A") == "MASTER" && dv.state("VI_B") == "MASTER" &&
			chLogged(dk, "(VI_A) Entering BACKUP STATE") && chLogged(dk, "(VI_B) Entering BACKUP STATE") &&
			held() == nil
	})
	if hasVIP(n2, "10.99.0.101") || n2.HasAddr("vrrp.51", mustAddr("10.99.0.100")) {
		t.Fatalf("keepalived's node holds a VIP while vipd is MASTER")
	}
	before := map[string]time.Time{}
	effective := map[string]int{}
	st, err := dv.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Instances {
		before[in.Name] = in.Since
		effective[in.Name] = in.EffectivePriority
		if in.Group != "G1" {
			t.Errorf("vipd status: %s sync_group %q, want G1", in.Name, in.Group)
		}
	}
	// keepalived 2.2.7 computes VI_A 100 -> 105 and leaves VI_B at 100: eth1 +5 for VI_A, -20
	// only while down for VI_B, and the group's eth0 weight does not add to instances whose own
	// interface is eth0 (it says "track_interface eth0 is configured on VRRP instance and sync
	// group"). vipd must agree: 155 and 150.
	if effective["VI_A"] != 155 || effective["VI_B"] != 150 {
		t.Errorf("effective priorities before the reloads %v, want VI_A 155, VI_B 150 as keepalived computes", effective)
	}
	if !chLogged(dk, "(VI_A) Changing effective priority from 100 to 105") {
		t.Errorf("keepalived did not compute VI_A's effective priority 105 the test expects")
	}
	ds := []*daemon{dv, dk}
	counts := []int{len(chTransitions(dv)), len(chTransitions(dk))}
	reloadsBefore := strings.Count(dv.proc.Output(), "SIGHUP: reloading configuration")

	capt := n2.Capture("eth0", "ip proto 112")
	sampler := chSample(20*time.Millisecond, held)
	const sighups = 20
	for k := 0; k < sighups; k++ {
		if err := dv.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the spacing of the reloads, not an assertion
	}
	lab.Eventually(t, 5*time.Second, fmt.Sprintf("vipd to log %d reloads", sighups), func() bool {
		return strings.Count(dv.proc.Output(), "SIGHUP: reloading configuration")-reloadsBefore >= sighups
	})
	// Keep watching for one keepalived Master_Down_Interval (3 x 200 ms + skew) after the last
	// reload: a flap caused by the last one would show by then.
	chNoNewTransitions(t, time.Second, "after the reloads", ds, counts)
	samples, misses := sampler.Stop()
	pkts := capt.Stop()

	if len(misses) > 0 {
		t.Errorf("%d of %d samples of node1 during the reloads lacked a VIP or the route:\n%s", len(misses), samples, strings.Join(misses, "\n"))
	}
	t.Logf("%d samples of node1's VIPs and route during the reloads", samples)
	if samples < 50 {
		t.Errorf("only %d samples in ~3 s: the VIP check did not run every 20 ms", samples)
	}
	if rejected := strings.Count(dv.proc.Output(), "reload rejected"); rejected > 0 {
		t.Errorf("vipd rejected %d reloads of an unchanged file", rejected)
	}

	seen := map[int]int{}
	for _, a := range lab.VRRPAdverts(pkts) {
		if a.Src != mustAddr("10.99.0.1") {
			if a.Src == mustAddr("10.99.0.2") {
				t.Errorf("keepalived sent an advert (VRID %d, priority %d) at %s: it should have stayed BACKUP", a.VRID, a.Priority, a.Time.Format("15:04:05.000"))
			}
			continue
		}
		seen[a.VRID]++
		want := map[int]int{51: effective["VI_A"], 52: effective["VI_B"]}[a.VRID]
		if a.Priority == 0 {
			t.Errorf("vipd sent a priority-0 advert for VRID %d at %s during unchanged reloads", a.VRID, a.Time.Format("15:04:05.000"))
		} else if a.Priority != want {
			t.Errorf("vipd advertised priority %d for VRID %d at %s during unchanged reloads, want %d throughout", a.Priority, a.VRID, a.Time.Format("15:04:05.000"), want)
		}
	}
	// ~3 s at 200 ms: ~15 adverts per VRID; fewer means vipd stopped advertising for a while.
	if seen[51] < 10 || seen[52] < 10 {
		t.Errorf("adverts from vipd on the wire during the reloads: VRID 51 %d, VRID 52 %d; want >= 10 each (200 ms for ~3 s)", seen[51], seen[52])
	}

	st, err = dv.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Instances {
		if in.State != "MASTER" || !in.Since.Equal(before[in.Name]) || in.EffectivePriority != effective[in.Name] {
			t.Errorf("after the reloads vipd %s: state %s since %v effective %d; before: MASTER since %v effective %d",
				in.Name, in.State, in.Since, in.EffectivePriority, before[in.Name], effective[in.Name])
		}
	}
	for k, d := range ds {
		if extra := chNewTransitions(d, counts[k]); len(extra) > 0 {
			t.Errorf("%s changed state during unchanged reloads:\n%s", d.kind, strings.Join(extra, "\n"))
		}
	}
}

// chSingle is a VRRPv3 200 ms instance VI_1 (VRID 51) with the given VIPs.
func chSingle(prio int, advert string, vips ...string) instanceConf {
	return instanceConf{Name: "VI_1", VRID: 51, Priority: prio, Version: 3, AdvertInt: advert, VIPs: vips}
}

// TestReloadAddsVIPAndPriorityLive: a reload that adds a VIP and raises the priority of a vipd
// master applies both to the running instance: no state change on either side, the new VIP is on
// the interface and announced (gratuitous ARP) at once, and answers from a third node, and the
// adverts carry the new priority. keepalived drops adverts whose address list differs from its
// own, so its configuration gets the same VIP (keepalived reload) first.
func TestReloadAddsVIPAndPriorityLive(t *testing.T) {
	lab.Keepalived(t)
	l, n1, n2 := twoNodes(t)
	n3 := l.AddNode("node3", "10.99.0.3/24")
	dv := startVipd(t, n1, renderConf(t, "node1", false, chSingle(150, "0.2", "10.99.0.100/24")))
	dk := startKeepalived(t, n2, renderConf(t, "node2", true, chSingle(100, "0.2", "10.99.0.100/24")))
	waitVIP(t, 10*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 5*time.Second, "vipd MASTER, keepalived BACKUP", func() bool {
		return dv.state("VI_1") == "MASTER" && chLogged(dk, "(VI_1) Entering BACKUP STATE")
	})
	since := instanceStatus(t, dv, "VI_1").Since
	ds := []*daemon{dv, dk}
	counts := []int{len(chTransitions(dv)), len(chTransitions(dk))}

	capt := n3.Capture("eth0", "arp or ip proto 112")
	newVIP := mustAddr("10.99.0.102")
	writeFile(t, dk.conf, renderConf(t, "node2", true, chSingle(100, "0.2", "10.99.0.100/24", "10.99.0.102/24")))
	writeFile(t, dv.conf, renderConf(t, "node1", false, chSingle(160, "0.2", "10.99.0.100/24", "10.99.0.102/24")))
	if err := dk.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	chCLI(t, dv, "reload")
	took := time.Since(start)

	// At once: on the interface when the reload returns (or very soon after), announced, and
	// answering a third node.
	lab.Eventually(t, 500*time.Millisecond, "10.99.0.102 on node1's eth0", func() bool { return n1.HasAddr("eth0", newVIP) })
	if _, ok := chWaitGARP(capt, newVIP, start, time.Second); !ok {
		t.Errorf("no gratuitous ARP for 10.99.0.102 within 1 s of the reload")
	}
	if out, err := n3.Exec("ping", "-c", "1", "-W", "1", "10.99.0.102"); err != nil {
		t.Errorf("node3 cannot reach the new VIP right after the reload: %v\n%s", err, out)
	}
	t.Logf("vipd reload took %v", took)

	st := instanceStatus(t, dv, "VI_1")
	if st.State != "MASTER" || !st.Since.Equal(since) || st.Priority != 160 || st.EffectivePriority != 160 {
		t.Errorf("after the reload: state %s since %v priority %d effective %d; want MASTER since %v, 160/160", st.State, st.Since, st.Priority, st.EffectivePriority, since)
	}
	if len(st.VIPs) != 2 {
		t.Errorf("status VIPs %v, want 10.99.0.100 and 10.99.0.102", st.VIPs)
	}
	// Watch both logs for two keepalived Master_Down_Intervals: nothing moves.
	chNoNewTransitions(t, 1500*time.Millisecond, "after the reload", ds, counts)
	if !hasVIP(n1, "10.99.0.100") || hasVIP(n2, "10.99.0.100") || n2.HasAddr("eth0", newVIP) {
		t.Errorf("VIPs moved: node1 %v, node2 %v", n1.Addrs("eth0"), n2.Addrs("eth0"))
	}

	pkts := capt.Stop()
	var after []lab.VRRPAdvert
	for _, a := range lab.VRRPAdverts(pkts) {
		if a.Src == mustAddr("10.99.0.1") && a.Time.After(start.Add(took)) {
			after = append(after, a)
		}
		if a.Src == mustAddr("10.99.0.1") && a.Priority == 0 {
			t.Errorf("vipd sent a priority-0 advert at %s: a live change must not hand over", a.Time.Format("15:04:05.000"))
		}
		if a.Src == mustAddr("10.99.0.2") {
			t.Errorf("keepalived sent an advert (priority %d) at %s: it should have stayed BACKUP", a.Priority, a.Time.Format("15:04:05.000"))
		}
	}
	if len(after) == 0 {
		t.Fatal("no advert from vipd captured after the reload")
	}
	for _, a := range after {
		if a.Priority != 160 {
			t.Errorf("vipd advert at %s after the reload has priority %d, want 160", a.Time.Format("15:04:05.000"), a.Priority)
		}
	}
	for _, line := range strings.Split(dk.proc.Output(), "\n") {
		if keepalivedComplaints.MatchString(line) {
			t.Errorf("keepalived complained: %s", line)
		}
	}
}

// TestVIPDeletedByHandComesBack: `ip addr del` of the VIP on the vipd master: vipd puts it back
// within one advert interval (it watches address events, it does not wait for its next advert),
// says so in its log, announces it, and stays MASTER; the keepalived backup never takes over.
func TestVIPDeletedByHandComesBack(t *testing.T) {
	lab.Keepalived(t)
	_, n1, n2 := twoNodes(t)
	const advert = 500 * time.Millisecond
	dv := startVipd(t, n1, renderConf(t, "node1", false, chSingle(150, "0.5", "10.99.0.100/24")))
	dk := startKeepalived(t, n2, renderConf(t, "node2", true, chSingle(100, "0.5", "10.99.0.100/24")))
	waitVIP(t, 10*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 5*time.Second, "vipd MASTER, keepalived BACKUP", func() bool {
		return dv.state("VI_1") == "MASTER" && chLogged(dk, "(VI_1) Entering BACKUP STATE")
	})
	since := instanceStatus(t, dv, "VI_1").Since
	ds := []*daemon{dv, dk}
	counts := []int{len(chTransitions(dv)), len(chTransitions(dk))}
	capt := n2.Capture("eth0", "arp")

	vip := mustAddr("10.99.0.100")
	for round := 1; round <= 3; round++ {
		deleted := time.Now()
		n1.MustExec("ip", "addr", "del", "10.99.0.100/24", "dev", "eth0")
		deadline := advert + 250*time.Millisecond
		for !n1.HasAddr("eth0", vip) {
			if time.Since(deleted) > deadline {
				t.Fatalf("round %d: the VIP deleted by hand is not back after %v (advert_int %v + margin); vipd log:\n%s",
					round, deadline, advert, lastLines(dv.proc.Output(), 15))
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("round %d: VIP back after %v", round, time.Since(deleted).Round(time.Millisecond))
		if _, ok := chWaitGARP(capt, vip, deleted, time.Second); !ok {
			t.Errorf("round %d: VIP put back without a gratuitous ARP within 1 s", round)
		}
	}
	if !chLogged(dv, "self-healing", "10.99.0.100", "put back") {
		t.Errorf("vipd's log has no self-healing line for 10.99.0.100:\n%s", lastLines(dv.proc.Output(), 15))
	}
	// One keepalived Master_Down_Interval (3 x 500 ms + skew) and more: nobody moves.
	// This also catches keepalived entering MASTER; its log before the rounds is not looked at,
	// because a keepalived started under load may be MASTER for a moment before vipd's first advert.
	chNoNewTransitions(t, 2*time.Second, "after the VIP was deleted by hand", ds, counts)
	st := instanceStatus(t, dv, "VI_1")
	if st.State != "MASTER" || !st.Since.Equal(since) {
		t.Errorf("vipd VI_1 %s since %v, want MASTER since %v", st.State, st.Since, since)
	}
	capt.Stop()
}

// TestMaintHandsOverInSkewTime: `vipd maint on` on the master hands over with a priority-0 advert,
// so the keepalived backup takes over after Skew_Time, not Master_Down_Interval; vipd then sits
// in FAULT with a maintenance cause. `vipd maint off` lets it back: higher priority, preempt.
func TestMaintHandsOverInSkewTime(t *testing.T) {
	lab.Keepalived(t)
	_, n1, n2 := twoNodes(t)
	const advert = time.Second
	master := chSingle(150, "1", "10.99.0.100/24")
	master.State = "MASTER" // no Master_Down_Interval wait at start
	dv := startVipd(t, n1, renderConf(t, "node1", false, master))
	dk := startKeepalived(t, n2, renderConf(t, "node2", true, chSingle(100, "1", "10.99.0.100/24")))
	waitVIP(t, 10*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 5*time.Second, "vipd MASTER, keepalived BACKUP", func() bool {
		return dv.state("VI_1") == "MASTER" && chLogged(dk, "(VI_1) Entering BACKUP STATE")
	})

	capt := n2.Capture("eth0", "ip proto 112")
	// A keepalived backup that has just started may still be in its first
	// Master_Down_Interval; wait for one vipd advert on the wire so both are in the steady state.
	if err := waitAdvert(capt.Path(), mustAddr("10.99.0.1"), time.Now(), 3*advert); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := chCLI(t, dv, "maint", "on", "--reason", "test")
	t.Logf("vipd maint on: %s", strings.TrimSpace(out))
	waitVIP(t, 5*time.Second, "10.99.0.100", n2, n1)
	lab.Eventually(t, 3*time.Second, "keepalived logs Entering MASTER", func() bool { return chLogged(dk, "(VI_1) Entering MASTER STATE") })
	if err := waitAdvert(capt.Path(), mustAddr("10.99.0.2"), start, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	adverts := lab.VRRPAdverts(capt.Stop())

	gap, ok := lab.MasterGap(adverts, 51, mustAddr("10.99.0.1"), mustAddr("10.99.0.2"))
	if !ok {
		t.Fatalf("no takeover by keepalived on the wire (%d adverts captured)", len(adverts))
	}
	if !lastAdvertHadPriorityZero(adverts, mustAddr("10.99.0.1"), mustAddr("10.99.0.2")) {
		t.Errorf("vipd's last advert before keepalived's first was not priority 0: maint on did not hand over gracefully")
	}
	skew := skewTime(3, advert, 100)
	mdi := failoverBound(3, advert, 100, false)
	t.Logf("maint hand-over: %v from vipd's last advert to keepalived's first (Skew_Time %v, Master_Down_Interval %v)", gap, skew, mdi)
	// Skew_Time (609 ms) plus a generous margin, but well under Master_Down_Interval (3.6 s):
	// a hand-over without priority 0 cannot pass.
	if limit := 2 * time.Second; gap >= limit || gap >= mdi {
		t.Errorf("keepalived took over %v after vipd's last advert, want < %v (Skew_Time %v; Master_Down_Interval %v means no graceful hand-over)", gap, limit, skew, mdi)
	}

	// What the operator sees: `vipd status -o json`.
	var status api.Status
	raw := chCLI(t, dv, "status", "-o", "json")
	if err := json.Unmarshal([]byte(raw), &status); err != nil || len(status.Instances) != 1 {
		t.Fatalf("vipd status -o json: %v\n%s", err, raw)
	}
	st := status.Instances[0]
	if st.State != "FAULT" || !strings.Contains(st.Cause, "maintenance") || !strings.Contains(st.Cause, "test") {
		t.Errorf("vipd in maintenance: state %s cause %q, want FAULT with a cause naming maintenance and the reason", st.State, st.Cause)
	}
	maintFault := false
	for key, cause := range st.Faults {
		if strings.HasPrefix(key, "maintenance") && strings.Contains(cause, "maintenance") {
			maintFault = true
		}
	}
	if !maintFault {
		t.Errorf("vipd status faults %v: no maintenance fault\n%s", st.Faults, raw)
	}
	if hasVIP(n1, "10.99.0.100") {
		t.Errorf("vipd kept the VIP in maintenance")
	}

	chCLI(t, dv, "maint", "off")
	// Back as BACKUP with priority 150 > 100, preempting: MASTER after its Master_Down_Interval
	// (3 x 1 s + skew) at most.
	waitVIP(t, 6*time.Second, "10.99.0.100", n1, n2)
	lab.Eventually(t, 3*time.Second, "vipd MASTER, keepalived back to BACKUP", func() bool {
		return dv.state("VI_1") == "MASTER" && strings.Count(dk.proc.Output(), "(VI_1) Entering BACKUP STATE") >= 2
	})
	if st := instanceStatus(t, dv, "VI_1"); len(st.Faults) != 0 {
		t.Errorf("after maint off vipd still reports faults %v", st.Faults)
	}
}
