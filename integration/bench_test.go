package integration

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// The failover benchmark (make bench): vipd and keepalived side by side in the same kind of lab,
// the gap read off the wire by a capture on the backup node, next to the protocol bound. It
// makes no wall-clock assertion (a shared CI machine is noisy); it fails only when a gap could
// not be measured at all.

const (
	benchVIP       = "10.99.0.100"
	benchMasterPri = 150
	benchBackupPri = 100
)

// benchProto is one VRRP flavour the benchmark runs.
type benchProto struct {
	name     string // in the table
	short    string // in the subtest name
	version  int
	interval time.Duration
}

var benchProtos = []benchProto{
	{"v2 1s", "v2-1s", 2, time.Second},
	{"v3 100ms", "v3-100ms", 3, 100 * time.Millisecond},
}

// benchPair names the daemon on the master node and the one on the backup node. The backup's
// timers decide the gap, so "keepalived>vipd" measures vipd taking over from keepalived.
type benchPair struct{ master, backup string }

func (p benchPair) String() string {
	if p.master == p.backup {
		return p.master
	}
	return p.master + ">" + p.backup
}

var benchPairs = []benchPair{
	{"vipd", "vipd"},
	{"keepalived", "keepalived"},
	{"keepalived", "vipd"},
	{"vipd", "keepalived"},
}

// skewTime is Skew_Time for a backup of priority prio (RFC 3768 6.1: (256-prio)/256 s; RFC 5798
// 6.1: (256-prio) * Master_Adver_Interval / 256), as both daemons compute it.
func skewTime(version int, interval time.Duration, prio int) time.Duration {
	if version == 3 {
		return time.Duration(256-prio) * interval / 256
	}
	return time.Duration(256-prio) * time.Second / 256
}

// failoverBound is what the protocol allows a backup of priority prio: Skew_Time after a
// priority-0 advert (graceful), Master_Down_Interval = 3 x interval + Skew_Time after a crash.
func failoverBound(version int, interval time.Duration, prio int, graceful bool) time.Duration {
	if graceful {
		return skewTime(version, interval, prio)
	}
	return 3*interval + skewTime(version, interval, prio)
}

// benchRow is one line of the result table.
type benchRow struct {
	scenario string
	daemon   string
	bound    time.Duration
	gaps     []time.Duration
	failures []string
}

func TestFailoverBench(t *testing.T) {
	if os.Getenv("VIPD_BENCH") != "1" {
		t.Skip("failover benchmark: runs only with VIPD_BENCH=1 (make bench sets it); it takes a few minutes")
	}
	lab.Keepalived(t)
	runs := 3
	if s := os.Getenv("VIPD_BENCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("VIPD_BENCH_RUNS=%q: want a positive integer", s)
		}
		runs = n
	}

	var rows []*benchRow
	for _, proto := range benchProtos {
		for _, graceful := range []bool{false, true} {
			kind, short := "crash (kill -9)", "crash"
			if graceful {
				kind, short = "graceful (SIGTERM)", "graceful"
			}
			scenario := proto.name + " " + kind
			for _, pair := range benchPairs {
				row := &benchRow{
					scenario: scenario,
					daemon:   pair.String(),
					bound:    failoverBound(proto.version, proto.interval, benchBackupPri, graceful),
				}
				rows = append(rows, row)
				t.Run(proto.short+"/"+short+"/"+pair.String(), func(t *testing.T) {
					l := lab.New(t)
					nm := l.AddNode("master", "10.99.0.1/24")
					nb := l.AddNode("backup", "10.99.0.2/24")
					for i := 0; i < runs; i++ {
						gap, err := benchFailover(t, nm, nb, pair, proto, graceful)
						if err != nil {
							row.failures = append(row.failures, err.Error())
							t.Errorf("run %d: %v", i+1, err)
							continue
						}
						t.Logf("run %d: gap %v (bound %v, %+.1f ms)", i+1, gap, row.bound, msf(gap-row.bound))
						row.gaps = append(row.gaps, gap)
					}
				})
			}
		}
	}
	printBenchTable(os.Stdout, rows, runs)
}

// benchFailover runs one failover in a two-node lab: the master node's daemon comes up as MASTER,
// the backup's as BACKUP, then the master is killed (kill -9) or stopped (SIGTERM), and the gap
// is read off a capture on the backup node. Both daemons are gone when it returns.
func benchFailover(t *testing.T, nm, nb *lab.Node, pair benchPair, proto benchProto, graceful bool) (time.Duration, error) {
	t.Helper()
	masterIP, backupIP := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	conf := func(prio int, state string, keepalived bool) string {
		c := instanceConf{Name: "VI_1", State: state, VRID: 51, Priority: prio, VIPs: []string{benchVIP + "/24"}}
		if proto.version == 3 {
			c.Version, c.AdvertInt = 3, "0.1"
		} else {
			c.AuthPass = "secret1"
		}
		return renderConf(t, "bench", keepalived, c)
	}
	start := func(n *lab.Node, kind string, prio int, state string) *daemon {
		if kind == "keepalived" {
			return startKeepalived(t, n, conf(prio, state, true))
		}
		// Info level: the benchmark times the daemon, not its debug logging.
		return startVipd(t, n, conf(prio, state, false), "--log-level", "info")
	}
	// Leftovers of the previous run (a killed daemon keeps its VIP).
	for _, n := range []*lab.Node{nm, nb} {
		_, _ = n.Exec("ip", "addr", "del", benchVIP+"/24", "dev", "eth0")
	}

	capture := nb.Capture("eth0", "ip proto 112")
	dm := start(nm, pair.master, benchMasterPri, "MASTER")
	defer func() { _ = dm.proc.Kill(); _, _ = dm.proc.Wait(5 * time.Second) }()
	waitVIP(t, 10*time.Second, benchVIP, nm, nb)
	db := start(nb, pair.backup, benchBackupPri, "BACKUP")
	defer func() { _ = db.proc.Kill(); _, _ = db.proc.Wait(5 * time.Second) }()
	if err := waitBackupReady(db, 10*time.Second); err != nil {
		return 0, err
	}
	// The backup has seen the master once it is BACKUP and an advert of the master has reached
	// its interface since: only then is the failover a failover and not a start-up election.
	ready := time.Now()
	if err := waitAdvert(capture.Path(), masterIP, ready, 5*time.Second+2*proto.interval); err != nil {
		return 0, fmt.Errorf("no advert of the master after the backup came up: %w", err)
	}
	if hasVIP(nb, benchVIP) {
		return 0, fmt.Errorf("backup %s holds %s before the failover", pair.backup, benchVIP)
	}

	if graceful {
		if err := dm.proc.Signal(syscall.SIGTERM); err != nil {
			return 0, err
		}
	} else {
		if err := dm.proc.Kill(); err != nil {
			return 0, err
		}
		// A dead box takes its VIP with it.
		_, _ = nm.Exec("ip", "addr", "del", benchVIP+"/24", "dev", "eth0")
	}
	killed := time.Now()
	if err := waitAdvert(capture.Path(), backupIP, killed, 10*proto.interval+5*time.Second); err != nil {
		return 0, fmt.Errorf("backup never took over: %w", err)
	}
	_, _ = dm.proc.Wait(5 * time.Second)
	adverts := lab.VRRPAdverts(capture.Stop())
	gap, ok := lab.MasterGap(adverts, 51, masterIP, backupIP)
	if !ok {
		return 0, fmt.Errorf("capture holds no master-to-backup change (%d adverts)", len(adverts))
	}
	if graceful && !lastAdvertHadPriorityZero(adverts, masterIP, backupIP) {
		return 0, fmt.Errorf("graceful stop of %s: no priority-0 advert before the takeover", pair.master)
	}
	return gap, nil
}

// waitBackupReady waits until the daemon reports BACKUP.
func waitBackupReady(d *daemon, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		switch d.kind {
		case "vipd":
			if d.state("VI_1") == "BACKUP" {
				return nil
			}
		default:
			if strings.Contains(d.proc.Output(), "Entering BACKUP STATE") {
				return nil
			}
		}
		if d.proc.Exited() {
			return fmt.Errorf("%s on %s exited: %s", d.kind, d.node.Name, lastLines(d.proc.Output(), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s on %s not BACKUP after %v: %s", d.kind, d.node.Name, timeout, lastLines(d.proc.Output(), 10))
}

// waitAdvert polls the pcap file being written until it holds a VRRP advert from src captured
// after since.
func waitAdvert(pcap string, src netip.Addr, since time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if pkts, err := lab.ReadPcap(pcap); err == nil {
			for _, a := range lab.VRRPAdverts(pkts) {
				if a.Src == src && a.Time.After(since) {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no advert from %s within %v", src, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastAdvertHadPriorityZero reports whether the old master's last advert before the new
// master's first was priority 0.
func lastAdvertHadPriorityZero(adverts []lab.VRRPAdvert, oldMaster, newMaster netip.Addr) bool {
	lastPrio := -1
	for _, a := range adverts {
		switch a.Src {
		case oldMaster:
			lastPrio = a.Priority
		case newMaster:
			if lastPrio >= 0 {
				return lastPrio == 0
			}
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printBenchTable(w io.Writer, rows []*benchRow, runs int) {
	fmt.Fprintf(w, "\nFailover gap on the wire (last advert of the old master, or its priority-0 advert, to the\n"+
		"first advert of the new master; captured on the backup node), %d runs each. Backup priority %d.\n"+
		"\"a>b\": a was master, b took over.\n\n", runs, benchBackupPri)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tdaemon\tbound ms\tmedian ms\tmin ms\tmax ms\tmedian-bound ms\truns\t")
	for _, r := range rows {
		if len(r.gaps) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t-\t-\t-\t-\t0/%d\t\n", r.scenario, r.daemon, msf(r.bound), runs)
			continue
		}
		med := median(r.gaps)
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%+.1f\t%d/%d\t\n", r.scenario, r.daemon, msf(r.bound),
			msf(med), msf(slices.Min(r.gaps)), msf(slices.Max(r.gaps)), msf(med-r.bound), len(r.gaps), runs)
	}
	_ = tw.Flush()
	for _, r := range rows {
		for _, f := range r.failures {
			fmt.Fprintf(w, "FAILED %s %s: %s\n", r.scenario, r.daemon, f)
		}
	}
}
