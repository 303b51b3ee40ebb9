package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

// DESIGN 5: one node must carry at least 1000 instances at a 1 s advert interval, all sharing one
// raw socket per interface and family.
//
// A VRID is unique per interface and family, so 1000 IPv4 instances need four interfaces of 250
// (eth0..eth3). They must be four separate L2 segments, as on a real router: on one shared
// bridge node1's eth1 would hear node1's eth0 adverts for the same VRID at the same priority,
// and the address tie-break would demote one of them. (802.1Q VLANs on eth0 would be the usual
// way, but the lab's kernel may lack the vlan driver; this one does.) So the switch namespace
// gets one bridge per interface: ethK of both nodes joins brK.
const (
	scaleInstances = 1000
	scalePerIf     = 250
)

var scaleIfs = scaleLinks(scaleInstances / scalePerIf)

// scaleLinks names the links of a scale lab: eth0..eth<n-1>.
func scaleLinks(n int) []string {
	out := make([]string, n)
	for k := range out {
		out[k] = fmt.Sprintf("eth%d", k)
	}
	return out
}

// scaleVIPs is the range the instances' VIPs come from: 172.16+k.v.1/32 for VRID v on link k
// (up to 16 links).
var scaleVIPs = netip.MustParsePrefix("172.16.0.0/12")

// scaleLab makes two nodes with eth0..eth3, ethK of both on its own bridge, addressed
// 10.99.k.<host>/24.
func scaleLab(t *testing.T) (n1, n2 *lab.Node) {
	t.Helper()
	return scaleLabN(t, len(scaleIfs))
}

// scaleLabN is scaleLab with links eth0..eth<links-1>.
func scaleLabN(t *testing.T, links int) (n1, n2 *lab.Node) {
	t.Helper()
	l := lab.New(t)
	n1 = l.AddNode("node1", "10.99.0.1/24")
	n2 = l.AddNode("node2", "10.99.0.2/24")
	sw := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", l.SwitchNS()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("switch namespace: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for k, ifname := range scaleLinks(links)[1:] {
		br := fmt.Sprintf("br%d", k+1)
		sw("link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
		sw("link", "set", br, "up")
		for host, n := range []*lab.Node{n1, n2} {
			n.AddLink(ifname, fmt.Sprintf("10.99.%d.%d/24", k+1, host+1))
			sw("link", "set", switchPort(t, n, ifname, sw), "master", br)
		}
	}
	return n1, n2
}

// switchPort returns the name, in the switch namespace, of the veth peer of the node's ifname.
func switchPort(t *testing.T, n *lab.Node, ifname string, sw func(...string) string) string {
	t.Helper()
	var nodeSide []struct {
		LinkIndex int `json:"link_index"`
	}
	if err := json.Unmarshal([]byte(n.MustExec("ip", "-j", "link", "show", "dev", ifname)), &nodeSide); err != nil || len(nodeSide) != 1 {
		t.Fatalf("%s %s: reading its veth peer index: %v", n.Name, ifname, err)
	}
	var ports []struct {
		IfIndex int    `json:"ifindex"`
		IfName  string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(sw("-j", "link", "show")), &ports); err != nil {
		t.Fatalf("switch namespace links: %v", err)
	}
	for _, p := range ports {
		if p.IfIndex == nodeSide[0].LinkIndex {
			return p.IfName
		}
	}
	t.Fatalf("%s %s: no switch port with ifindex %d", n.Name, ifname, nodeSide[0].LinkIndex)
	return ""
}

// scaleConf renders the 1000 instances (VRRPv2, advert_int 1, no auth) at priority prio.
func scaleConf(t *testing.T, routerID string, keepalived bool, prio int) string {
	t.Helper()
	return scaleConfN(t, routerID, keepalived, prio, scaleInstances)
}

// scaleConfN is scaleConf for n instances (250 per link).
func scaleConfN(t *testing.T, routerID string, keepalived bool, prio, n int) string {
	t.Helper()
	insts := make([]instanceConf, 0, n)
	for i := 0; i < n; i++ {
		k, vrid := i/scalePerIf, i%scalePerIf+1
		insts = append(insts, instanceConf{
			Name:      fmt.Sprintf("VI_%d", i+1),
			Interface: fmt.Sprintf("eth%d", k),
			VRID:      vrid,
			Priority:  prio,
			AdvertInt: "1",
			VIPs:      []string{fmt.Sprintf("172.%d.%d.1/32", 16+k, vrid)},
		})
	}
	return renderConf(t, routerID, keepalived, insts...)
}

// countVIPs counts the instance VIPs a node holds on all its interfaces.
func countVIPs(n *lab.Node) int { return countVIPsOn(n, scaleIfs) }

func countVIPsOn(n *lab.Node, ifs []string) int {
	c := 0
	all := n.AllAddrs()
	for _, ifname := range ifs {
		for _, p := range all[ifname] {
			if scaleVIPs.Contains(p.Addr()) {
				c++
			}
		}
	}
	return c
}

// countStates returns how many instances of d are in each state; nil when the status could not
// be read.
func countStates(d *daemon) map[string]int {
	st, err := d.status()
	if err != nil {
		return nil
	}
	return statesOf(st)
}

func statesOf(st api.Status) map[string]int {
	out := map[string]int{}
	for _, in := range st.Instances {
		out[in.State]++
	}
	return out
}

// rawVRRPSockets counts the raw IP protocol 112 sockets open in the node's namespace (from
// /proc/PID/net/raw, whose local "port" is the protocol).
func rawVRRPSockets(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/raw", pid))
	if err != nil {
		t.Fatalf("reading raw sockets of pid %d: %v", pid, err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasSuffix(f[1], ":0070") {
			n++
		}
	}
	return n
}

func TestThousandInstancesOnOneNode(t *testing.T) {
	n1, n2 := scaleLab(t)
	// Info level: at debug, 1000 instances would log about every advert.
	d1 := startVipd(t, n1, scaleConf(t, "node1", false, 150), "--log-level", "info")
	start := time.Now()
	lab.Eventually(t, 30*time.Second, fmt.Sprintf("all %d instances MASTER on node1", scaleInstances), func() bool {
		return countStates(d1)["MASTER"] == scaleInstances
	})
	t.Logf("node1: %d instances MASTER %v after start", scaleInstances, time.Since(start).Round(time.Millisecond))

	d2 := startVipd(t, n2, scaleConf(t, "node2", false, 100), "--log-level", "info")
	lab.Eventually(t, 30*time.Second, fmt.Sprintf("all %d instances BACKUP on node2", scaleInstances), func() bool {
		return countStates(d2)["BACKUP"] == scaleInstances
	})
	// Node2 must learn the master of every instance from its adverts, on every VLAN.
	lab.Eventually(t, 10*time.Second, "node2 sees node1 as master of every instance", func() bool {
		st, err := d2.status()
		if err != nil {
			return false
		}
		for _, in := range st.Instances {
			k := slices.Index(scaleIfs, in.Interface)
			if k < 0 || in.Master != fmt.Sprintf("10.99.%d.1", k) {
				return false
			}
		}
		return len(st.Instances) == scaleInstances
	})
	// Three advert intervals with both nodes up: no instance may flap under the load of 2000
	// adverts a second on four shared sockets.
	holdSteady(t, 3500*time.Millisecond, "node1 all MASTER and node2 all BACKUP", func() bool {
		return countStates(d1)["MASTER"] == scaleInstances && countStates(d2)["BACKUP"] == scaleInstances
	})
	if got := countVIPs(n1); got != scaleInstances {
		t.Errorf("node1 holds %d VIPs, want %d", got, scaleInstances)
	}
	if got := countVIPs(n2); got != 0 {
		t.Errorf("node2 (all BACKUP) holds %d VIPs, want 0", got)
	}
	for _, d := range []*daemon{d1, d2} {
		// One raw socket per interface and family (IPv4 only here), shared by all instances.
		got := rawVRRPSockets(t, d.proc.Pid())
		t.Logf("%s: %d raw VRRP sockets for %d instances", d.node.Name, got, scaleInstances)
		if got < 1 || got > len(scaleIfs) {
			t.Errorf("%s: %d raw VRRP sockets for %d instances on %d interfaces, want 1..%d",
				d.node.Name, got, scaleInstances, len(scaleIfs), len(scaleIfs))
		}
		if st, err := d.status(); err == nil && len(st.Drops) > 0 {
			t.Logf("%s: advert drops by reason: %v", d.node.Name, st.Drops)
		}
	}

	// Graceful stop of node1: 1000 priority-0 adverts, node2 takes over everything.
	stopAt := time.Now()
	if err := d1.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 20*time.Second, fmt.Sprintf("all %d instances MASTER on node2", scaleInstances), func() bool {
		return countStates(d2)["MASTER"] == scaleInstances
	})
	t.Logf("node2: %d instances MASTER %v after SIGTERM to node1", scaleInstances, time.Since(stopAt).Round(time.Millisecond))
	code, err := d1.proc.Wait(10 * time.Second)
	if err != nil {
		t.Fatalf("node1 did not exit after SIGTERM: %v", err)
	}
	t.Logf("node1 exited with status %d %v after SIGTERM", code, time.Since(stopAt).Round(time.Millisecond))
	if code != 0 {
		t.Errorf("node1 exit status %d after SIGTERM, want 0: %s", code, lastLines(d1.proc.Output(), 10))
	}
	if got := countVIPs(n1); got != 0 {
		t.Errorf("node1 holds %d VIPs after its graceful stop, want 0", got)
	}
	lab.Eventually(t, 10*time.Second, fmt.Sprintf("node2 holds all %d VIPs", scaleInstances), func() bool {
		return countVIPs(n2) == scaleInstances
	})
}

// procUsage is what a daemon cost: CPU seconds (user+system) and resident memory.
type procUsage struct {
	cpu time.Duration
	rss int64 // bytes
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux architecture.
const clockTicks = 100

// readUsage sums utime+stime (fields 14 and 15 of /proc/PID/stat) and VmRSS over pids.
func readUsage(pids ...int) (procUsage, error) {
	var u procUsage
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return u, fmt.Errorf("reading CPU time: %w", err)
		}
		// The command name (field 2) may hold blanks: count fields after its closing paren.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return u, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want at least 13", pid, len(f))
		}
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return u, fmt.Errorf("/proc/%d/stat: utime %q stime %q: not numbers", pid, f[11], f[12])
		}
		u.cpu += time.Duration(utime+stime) * time.Second / clockTicks

		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return u, fmt.Errorf("reading memory use: %w", err)
		}
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return u, fmt.Errorf("/proc/%d/status: VmRSS %q: %w", pid, v, err)
				}
				u.rss += kb * 1024
			}
		}
	}
	return u, nil
}

// daemonPids returns the processes that make up the daemon: vipd itself; keepalived's parent and
// its VRRP child (from the --vrrp_pid file).
func daemonPids(t *testing.T, d *daemon) []int {
	t.Helper()
	if d.kind != "keepalived" {
		return []int{d.proc.Pid()}
	}
	pidFile := filepath.Join(filepath.Dir(d.conf), "vrrp.pid")
	var child int
	lab.Eventually(t, 10*time.Second, "keepalived's VRRP child pid file", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && child > 0
	})
	return []int{d.proc.Pid(), child}
}

// TestScaleCPUAndMemory runs vipd and keepalived in turn with the same configuration of N
// instances (VRRPv2, advert_int 1, 250 per link, each link its own segment; node1 master, node2
// backup) for each N of VIPD_BENCH_SIZES (default 250,1000,4000) and prints, side by side: how
// long the master took to hold every VIP, whether the backup holds none, the MASTER entries on
// the backup over the window, CPU (user+system of the daemon's processes) and RSS of both nodes,
// the CPU per instance, and how long after kill -9 of the master the backup held every VIP,
// against Master_Down_Interval. A benchmark: it runs only with VIPD_BENCH=1 (make bench-lab) and
// asserts only that the lab came up.
func TestScaleCPUAndMemory(t *testing.T) {
	if os.Getenv("VIPD_BENCH") != "1" {
		t.Skip("scale comparison with keepalived: runs only with VIPD_BENCH=1 (make bench-lab sets it)")
	}
	lab.Keepalived(t)
	window := 30 * time.Second
	if s := os.Getenv("VIPD_BENCH_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("VIPD_BENCH_SECONDS=%q: want a positive integer", s)
		}
		window = time.Duration(n) * time.Second
	}
	sizes := []int{250, 1000, 4000}
	if s := os.Getenv("VIPD_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < scalePerIf || n%scalePerIf != 0 || n > 16*scalePerIf {
				t.Fatalf("VIPD_BENCH_SIZES: %q: want multiples of %d up to %d", f, scalePerIf, 16*scalePerIf)
			}
			sizes = append(sizes, n)
		}
	}
	kinds := []string{"vipd", "keepalived"}
	if k := os.Getenv("VIPD_BENCH_DAEMONS"); k != "" {
		kinds = strings.Split(k, ",") // e.g. vipd, while investigating
	}
	// keepalived does not converge at 4000 instances: past this, it is measured as it is.
	const converge = 60 * time.Second
	// Master_Down_Interval of the backup (priority 100, advert_int 1, v2).
	mdi := 3*time.Second + time.Duration(256-100)*time.Second/256

	type result struct {
		size                 int
		daemon               string
		upAfter              time.Duration // 0: never within converge
		backupVIPs           int
		backupMasterEntries  int
		cpuMaster, cpuBackup time.Duration
		rssMaster, rssBackup int64
		failover             time.Duration // 0: not within 3 x MDI
	}
	var results []result
	for _, size := range sizes {
		links := size / scalePerIf
		ifs := scaleLinks(links)
		for _, kind := range kinds {
			t.Run(fmt.Sprintf("%s-%d", kind, size), func(t *testing.T) {
				r := result{size: size, daemon: kind}
				n1, n2 := scaleLabN(t, links)
				start := func(n *lab.Node, prio int) *daemon {
					if kind == "keepalived" {
						return startKeepalived(t, n, scaleConfN(t, n.Name, true, prio, size))
					}
					return startVipd(t, n, scaleConfN(t, n.Name, false, prio, size), "--log-level", "info")
				}
				t0 := time.Now()
				d1 := start(n1, 150)
				for time.Since(t0) < converge {
					if countVIPsOn(n1, ifs) == size {
						r.upAfter = time.Since(t0)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				d2 := start(n2, 100)
				time.Sleep(5 * time.Second) // the backup settles: more than its Master_Down_Interval
				entriesBefore := masterEntries(d2)
				pids := [][]int{daemonPids(t, d1), daemonPids(t, d2)}
				var before [2]procUsage
				for i := range pids {
					u, err := readUsage(pids[i]...)
					if err != nil {
						t.Fatalf("%s: %v", kind, err)
					}
					before[i] = u
				}
				time.Sleep(window)
				var after [2]procUsage
				for i := range pids {
					u, err := readUsage(pids[i]...)
					if err != nil {
						t.Fatalf("%s: %v", kind, err)
					}
					after[i] = u
				}
				r.backupVIPs = countVIPsOn(n2, ifs)
				r.backupMasterEntries = masterEntries(d2) - entriesBefore
				r.cpuMaster, r.cpuBackup = after[0].cpu-before[0].cpu, after[1].cpu-before[1].cpu
				r.rssMaster, r.rssBackup = after[0].rss, after[1].rss
				// Failover of everything: kill -9 the master, time the backup to every VIP.
				_ = d1.proc.Kill()
				t1 := time.Now()
				for time.Since(t1) < 3*mdi {
					if countVIPsOn(n2, ifs) == size {
						r.failover = time.Since(t1)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				results = append(results, r)
			})
		}
	}

	fmt.Printf("\nN VRRPv2 instances at advert_int 1 (250 per link, each link its own segment), node1 master\n"+
		"(priority 150), node2 backup (100). CPU = user+system of the daemon's processes over %v after\n"+
		"settling (keepalived: parent + VRRP child); RSS summed. Failover: kill -9 of the master until\n"+
		"the backup holds every VIP; Master_Down_Interval %.3fs (bound + 0.5 s = %.3fs).\n\n",
		window, mdi.Seconds(), (mdi + 500*time.Millisecond).Seconds())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "N\tdaemon\tall VIPs up\tVIPs on backup\tbackup MASTER entries\tCPU-s master\tCPU-s backup\tCPU-ms/instance\tRSS MiB master\tRSS MiB backup\tfailover\t\n")
	for _, r := range results {
		up, fo := "never", "not in 3xMDI"
		if r.upAfter > 0 {
			up = r.upAfter.Round(100 * time.Millisecond).String()
		}
		if r.failover > 0 {
			fo = r.failover.Round(10 * time.Millisecond).String()
		}
		per := float64((r.cpuMaster + r.cpuBackup).Microseconds()) / 1000 / float64(r.size)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.3f\t%.1f\t%.1f\t%s\t\n", r.size, r.daemon, up, r.backupVIPs,
			r.backupMasterEntries, r.cpuMaster.Seconds(), r.cpuBackup.Seconds(), per,
			float64(r.rssMaster)/(1<<20), float64(r.rssBackup)/(1<<20), fo)
	}
	_ = tw.Flush()
}

// masterEntries counts the MASTER entries in a daemon's log so far.
func masterEntries(d *daemon) int {
	out := d.proc.Output()
	if d.kind == "keepalived" {
		return strings.Count(out, "Entering MASTER STATE")
	}
	return strings.Count(out, "entering MASTER state")
}
