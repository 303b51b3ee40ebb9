package integration

// Restart, crash and upgrade of a vipd master without moving a VIP (issue 15), with keepalived
// 2.2.7 as the backup so the wire tells the truth: node1 runs vipd (priority 150), node2
// keepalived (priority 100), VRRPv2, advert_int 1, one VIP. Around each action the tests sample
// the VIP on node1 every 20 ms, capture the adverts on node2, read keepalived's log, and check
// what vipd says (log and status). Then the cases that must NOT resume (stale state, changed
// identity, a VIP gone while vipd was down, a crash loop), vipd release, the rollback of an
// upgrade whose new binary cannot start, and a restart of 1000 masters.
//
// Every vipd gets its own --state-dir (a t.TempDir): without the flag vipd would use
// /var/lib/vipd/NODE-NAME on the host, shared by every lab's "node1".

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/agent"
	"github.com/vipd/vipd/agent/state"
	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

const (
	rsVIP    = "10.99.0.100"
	rsVRID   = 51
	rsAdvert = time.Second
	// rsMaxGap is the longest silence of node1 on the wire the tests accept around an action:
	// advert_int + 0.5 s (keepalived's Master_Down_Interval is 3 x 1 s + skew).
	rsMaxGap = rsAdvert + 500*time.Millisecond
	// rsKeepalivedMDI is the Master_Down_Interval of the keepalived backup (priority 100):
	// 3 x 1 s + (256-100)/256 s.
	rsKeepalivedMDI = 3*time.Second + 156*time.Second/256
	// rsSample is the interval of the VIP samples.
	rsSample = 20 * time.Millisecond
)

var (
	rsNode1IP = netip.MustParseAddr("10.99.0.1")
	rsNode2IP = netip.MustParseAddr("10.99.0.2")
)

// rsVipd is a vipd node that can be started again and again with the same binary path,
// configuration file, control socket and state directory (what systemd does on a restart).
type rsVipd struct {
	t        *testing.T
	n        *lab.Node
	bin      string
	conf     string
	socket   string
	stateDir string
	logLevel string
	runs     []*daemon
}

func newRsVipd(t *testing.T, n *lab.Node, bin, confText, logLevel string) *rsVipd {
	t.Helper()
	conf := writeConf(t, n.Name, confText)
	return &rsVipd{
		t: t, n: n, bin: bin, conf: conf,
		socket:   filepath.Join(filepath.Dir(conf), "vipd.sock"),
		stateDir: filepath.Join(t.TempDir(), "state"),
		logLevel: logLevel,
	}
}

// start runs a new `vipd run` (a new process) with the node's fixed arguments.
func (r *rsVipd) start(extra ...string) *daemon {
	r.t.Helper()
	args := append([]string{"run", "--config", r.conf, "--socket", r.socket, "--node-name", r.n.Name,
		"--log-level", r.logLevel, "--state-dir", r.stateDir}, extra...)
	d := &daemon{t: r.t, node: r.n, kind: "vipd", conf: r.conf, socket: r.socket, proc: r.n.Start(r.bin, args...)}
	r.runs = append(r.runs, d)
	return d
}

// cur is the latest run.
func (r *rsVipd) cur() *daemon { return r.runs[len(r.runs)-1] }

// rsPair is the two-node lab of the issue: vipd MASTER on node1, keepalived BACKUP on node2, and a
// capture of VRRP on node2's eth0 running from before keepalived's start.
type rsPair struct {
	n1, n2 *lab.Node
	v      *rsVipd
	dk     *daemon
	capt   *lab.Capture
}

func rsConf(t testing.TB, routerID string, keepalived bool, prio, vrid int) string {
	c := vi(2, prio, rsVIP+"/24")
	c.VRID = vrid
	return renderConf(t, routerID, keepalived, c)
}

func newRsPair(t *testing.T, bin string) *rsPair {
	t.Helper()
	lab.Keepalived(t)
	_, n1, n2 := twoNodes(t)
	p := &rsPair{n1: n1, n2: n2}
	// state BACKUP (the template's default) on vipd too: a start that does not resume waits
	// Master_Down_Interval, so a resume is visible as such.
	p.v = newRsVipd(t, n1, bin, rsConf(t, "node1", false, 150, rsVRID), "debug")
	d := p.v.start()
	waitVIP(t, 10*time.Second, rsVIP, n1, n2)
	lab.Eventually(t, 5*time.Second, "vipd MASTER on node1", func() bool { return d.state("VI_1") == "MASTER" })
	p.capt = n2.Capture("eth0", "ip proto 112")
	p.dk = startKeepalived(t, n2, rsConf(t, "node2", true, 100, rsVRID))
	lab.Eventually(t, 10*time.Second, "keepalived BACKUP on node2", func() bool {
		return chLogged(p.dk, "(VI_1) Entering BACKUP STATE")
	})
	// Steady state: an advert of node1 reached node2 since keepalived is BACKUP.
	rsNextAdvert(t, p.capt, rsNode1IP, time.Now(), 3*rsAdvert)
	return p
}

// rsNextAdvert waits for the first advert of src for rsVRID captured after since and returns its
// capture time.
func rsNextAdvert(t *testing.T, c *lab.Capture, src netip.Addr, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if pkts, err := lab.ReadPcap(c.Path()); err == nil {
			for _, a := range lab.VRRPAdverts(pkts) {
				if a.Src == src && a.VRID == rsVRID && a.Time.After(since) {
					return a.Time
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no advert from %s captured within %v", src, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rsWatchVIP samples node1's VIP every 20 ms.
func rsWatchVIP(n *lab.Node) *chSampler {
	return chSample(rsSample, func() error {
		if !hasVIP(n, rsVIP) {
			return fmt.Errorf("%s absent from %s eth0", rsVIP, n.Name)
		}
		return nil
	})
}

// rsWaitUp waits until the run d answers on its socket with its own pid and every instance
// MASTER, and returns that status.
func rsWaitUp(t *testing.T, d *daemon, instances int, timeout time.Duration) api.Status {
	t.Helper()
	var st api.Status
	lab.Eventually(t, timeout, fmt.Sprintf("the new vipd run (pid %d) up with %d instances MASTER", d.proc.Pid(), instances), func() bool {
		s, err := d.status()
		if err != nil || s.Daemon == nil || s.Daemon.PID != d.proc.Pid() || len(s.Instances) != instances {
			if d.proc.Exited() {
				t.Fatalf("the new vipd run exited: %s", lastLines(d.proc.Output(), 15))
			}
			return false
		}
		for _, in := range s.Instances {
			if in.State != "MASTER" {
				return false
			}
		}
		st = s
		return true
	})
	return st
}

// rsLogLines returns the lines of log that contain every one of parts.
func rsLogLines(log string, parts ...string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// rsLogTime is the time= of a vipd log line (zero when it has none).
func rsLogTime(line string) time.Time {
	f := strings.Fields(line)
	if len(f) == 0 {
		return time.Time{}
	}
	ts, _ := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
	return ts
}

// rsTransitions returns vipd's state-change lines in log.
func rsTransitions(log string) []string {
	return rsLogLines(log, `msg="entering `)
}

// rsLongestGap is the longest silence of src (adverts for vrid) within [from, to], counting
// the stretch from the last advert to `to`. It returns the gap, the advert it followed and how
// many adverts of src the window held.
func rsLongestGap(adverts []lab.VRRPAdvert, src netip.Addr, vrid int, from, to time.Time) (gap time.Duration, after time.Time, n int) {
	var prev time.Time
	for _, a := range adverts {
		if a.Src != src || a.VRID != vrid || a.Time.Before(from) || a.Time.After(to) {
			continue
		}
		n++
		if !prev.IsZero() && a.Time.Sub(prev) > gap {
			gap, after = a.Time.Sub(prev), prev
		}
		prev = a.Time
	}
	if !prev.IsZero() && to.Sub(prev) > gap {
		gap, after = to.Sub(prev), prev
	}
	return gap, after, n
}

// finish ends the watch of an action on the pair: it keeps sampling until 2 s after the new run
// was up (and at least keepalived's Master_Down_Interval after the action), then asserts that
// the VIP was on node1 at every sample, that node1 was never silent on the wire for
// rsMaxGap or more (and sent no priority 0), that keepalived never became MASTER nor advertised,
// and that the new run of vipd (its log from logFrom on) resumed MASTER with wantCause.
func (p *rsPair) finish(t *testing.T, action, up time.Time, s *chSampler, d *daemon, logFrom int, wantCause string) {
	t.Helper()
	end := up.Add(2 * time.Second)
	if e := action.Add(rsKeepalivedMDI + 400*time.Millisecond); e.After(end) {
		end = e
	}
	time.Sleep(time.Until(end))
	samples, misses := s.Stop()
	t.Logf("new run up %v after the action; VIP sampled %d times every %v until %v after it",
		up.Sub(action).Round(time.Millisecond), samples, rsSample, end.Sub(action).Round(time.Millisecond))
	if len(misses) > 0 {
		t.Errorf("%s absent from node1 at %d of %d samples: %s", rsVIP, len(misses), samples, strings.Join(rsFirst(misses, 10), "; "))
	}

	adverts := lab.VRRPAdverts(p.capt.Stop())
	from := action.Add(-2 * time.Second)
	gap, after, n := rsLongestGap(adverts, rsNode1IP, rsVRID, from, end)
	t.Logf("longest gap between node1's adverts on the wire from 2 s before the action to %v after it: %v (after the advert at %s, %v after the action; %d adverts)",
		end.Sub(action).Round(time.Millisecond), gap.Round(time.Millisecond), after.Format("15:04:05.000"),
		after.Sub(action).Round(time.Millisecond), n)
	if n == 0 {
		t.Errorf("no advert of node1 captured around the action")
	}
	if before, first, ok := rsSpan(adverts, rsNode1IP, action); ok {
		t.Logf("node1's adverts across the action: last before it %v before, first after it %v after: %v on the wire",
			action.Sub(before).Round(time.Millisecond), first.Sub(action).Round(time.Millisecond), first.Sub(before).Round(time.Millisecond))
	}
	if gap >= rsMaxGap {
		t.Errorf("node1 was silent on the wire for %v (after its advert at %s), want < advert_int + 0.5 s = %v",
			gap.Round(time.Millisecond), after.Format("15:04:05.000"), rsMaxGap)
	}
	for _, a := range adverts {
		if a.Time.Before(from) {
			continue
		}
		switch {
		case a.Src == rsNode1IP && a.Priority == 0:
			t.Errorf("node1 sent a priority-0 advert at %s: a restart must not hand over", a.Time.Format("15:04:05.000"))
		case a.Src == rsNode2IP:
			t.Errorf("keepalived advertised (priority %d) at %s: it should have stayed BACKUP", a.Priority, a.Time.Format("15:04:05.000"))
		}
	}
	if chLogged(p.dk, "Entering MASTER STATE") {
		t.Errorf("keepalived entered MASTER state:\n%s", strings.Join(chTransitions(p.dk), "\n"))
	}

	log := d.proc.Output()[logFrom:]
	if len(rsLogLines(log, `msg="entering MASTER state"`, `cause="`+wantCause)) == 0 {
		t.Errorf("the new run's log has no line entering MASTER state with cause %q:\n%s", wantCause, lastLines(log, 25))
	}
	if tr := rsTransitions(log); len(tr) == 0 || !strings.Contains(tr[0], `msg="entering MASTER state"`) {
		t.Errorf("the new run's first transition is not MASTER (a resume goes MASTER at once):\n%s", strings.Join(tr, "\n"))
	}
	st, err := d.status()
	if err != nil {
		t.Fatalf("status of the new run: %v", err)
	}
	if len(st.Instances) != 1 || st.Instances[0].State != "MASTER" || !strings.HasPrefix(st.Instances[0].Cause, "resumed MASTER") {
		t.Errorf("status of the new run: %+v, want VI_1 MASTER with a cause starting \"resumed MASTER\"", st.Instances)
	} else {
		t.Logf("status cause: %s", st.Instances[0].Cause)
	}
	if st.Daemon == nil || st.Daemon.Resumed != 1 {
		t.Errorf("status daemon %+v, want resumed 1", st.Daemon)
	}
}

// rsSpan returns src's last advert before at and its first after it.
func rsSpan(adverts []lab.VRRPAdvert, src netip.Addr, at time.Time) (before, after time.Time, ok bool) {
	for _, a := range adverts {
		if a.Src != src || a.VRID != rsVRID {
			continue
		}
		if !a.Time.After(at) {
			before = a.Time
		} else if after.IsZero() {
			after = a.Time
		}
	}
	return before, after, !before.IsZero() && !after.IsZero()
}

func rsFirst(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... %d more", len(s)-n))
	}
	return s
}

// TestRestartKeepsTheVIPAndKeepalivedNeverNotices: SIGQUIT to the vipd master, then a new start
// right away (systemctl restart). The restart is timed for the worst moment: 800 ms after an
// advert, just before the next one is due, so the gap on the wire is 0.8 s plus the time the new
// run takes to advertise.
func TestRestartKeepsTheVIPAndKeepalivedNeverNotices(t *testing.T) {
	p := newRsPair(t, lab.BuildVipd(t))
	old := p.v.cur()
	last := rsNextAdvert(t, p.capt, rsNode1IP, time.Now(), 3*rsAdvert)
	time.Sleep(time.Until(last.Add(700 * time.Millisecond)))
	s := rsWatchVIP(p.n1)
	time.Sleep(time.Until(last.Add(800 * time.Millisecond)))

	action := time.Now()
	if err := old.proc.Signal(agent.RestartSignal); err != nil {
		t.Fatal(err)
	}
	code, err := old.proc.Wait(5 * time.Second)
	if err != nil {
		t.Fatalf("vipd did not exit after SIGQUIT: %v", err)
	}
	exited := time.Now()
	if code != agent.ExitRestart {
		t.Errorf("vipd exit code %d after SIGQUIT, want %d (systemd's RestartForceExitStatus): %s", code, agent.ExitRestart, lastLines(old.proc.Output(), 10))
	}
	if !chLogged(old, "restart signal (SIGQUIT)") {
		t.Errorf("the old run does not log the restart signal:\n%s", lastLines(old.proc.Output(), 10))
	}
	nd := p.v.start()
	rsWaitUp(t, nd, 1, 10*time.Second)
	up := time.Now()
	t.Logf("SIGQUIT 800 ms after an advert; old run exited %v after it", exited.Sub(action).Round(time.Millisecond))
	p.finish(t, action, up, s, nd, 0, "resumed MASTER after a restart of vipd")
}

// TestCrashThenQuickStartKeepsTheVIP: kill -9 of the vipd master, a new start 0.5 s later. The
// kill comes 100 ms after an advert: a crash at a later moment would make the gap on the wire
// advert_int + 0.5 s + the start itself, over the bound by construction.
func TestCrashThenQuickStartKeepsTheVIP(t *testing.T) {
	p := newRsPair(t, lab.BuildVipd(t))
	old := p.v.cur()
	last := rsNextAdvert(t, p.capt, rsNode1IP, time.Now(), 3*rsAdvert)
	s := rsWatchVIP(p.n1)
	time.Sleep(time.Until(last.Add(100 * time.Millisecond)))

	action := time.Now()
	if err := old.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := old.proc.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(action.Add(500 * time.Millisecond)))
	nd := p.v.start()
	rsWaitUp(t, nd, 1, 10*time.Second)
	up := time.Now()
	if !chLogged(nd, "state of the previous run found", "mode=running") {
		t.Errorf("the new run does not report the crashed run's state (mode running):\n%s", lastLines(nd.proc.Output(), 20))
	}
	p.finish(t, action, up, s, nd, 0, "resumed MASTER after a crash of vipd")
}

// rsBuildVersion builds ./cmd/vipd with main.version set into dir and returns the binary.
func rsBuildVersion(t *testing.T, dir, version string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
		if _, err := os.Stat(goTool); err != nil {
			t.Fatalf("go command not found on PATH nor in /usr/local/go/bin")
		}
	}
	out := filepath.Join(dir, "vipd-"+version)
	cmd := exec.Command(goTool, "build", "-ldflags", "-X main.version="+version, "-o", out, "github.com/vipd/vipd/cmd/vipd")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags '-X main.version=%s' ./cmd/vipd: %v\n%s", version, err, b)
	}
	return out
}

// rsCopy copies the file src to dst (mode 0755).
func rsCopy(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// rsInstall puts the file src at dst by rename (a running binary cannot be written: ETXTBSY;
// a package manager replaces it this way too).
func rsInstall(t *testing.T, src, dst string) {
	t.Helper()
	tmp := dst + ".new"
	rsCopy(t, src, tmp)
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// rsCLI runs the vipd CLI on the host and returns its output and exit code.
func rsCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(lab.BuildVipd(t), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("vipd %s: %v", strings.Join(args, " "), err)
		return "", -1
	}
}

// rsUpgradeSetup starts the pair with node1's vipd running from a private copy of the binary
// (vipd upgrade re-executes the file at the daemon's own path) and returns that path and the
// status before the upgrade.
func rsUpgradeSetup(t *testing.T) (p *rsPair, exe string, before api.Status) {
	t.Helper()
	exe = filepath.Join(t.TempDir(), "vipd")
	rsCopy(t, lab.BuildVipd(t), exe)
	p = newRsPair(t, exe)
	before, err := p.v.cur().status()
	if err != nil || before.Daemon == nil {
		t.Fatalf("status before the upgrade: %v (daemon %+v)", err, before.Daemon)
	}
	if before.Daemon.PID != p.v.cur().proc.Pid() {
		t.Fatalf("status daemon pid %d, want the process's %d", before.Daemon.PID, p.v.cur().proc.Pid())
	}
	return p, exe, before
}

// TestUpgradeInPlaceKeepsTheVIPAndThePID: a new vipd (version "upgraded-test") installed over
// the running binary's file, then `vipd upgrade`: exit 0, the same PID, the new version in
// status, the instance resumed, and nothing moves on the wire.
func TestUpgradeInPlaceKeepsTheVIPAndThePID(t *testing.T) {
	newBin := rsBuildVersion(t, t.TempDir(), "upgraded-test")
	p, exe, before := rsUpgradeSetup(t)
	d := p.v.cur()
	rsInstall(t, newBin, exe)

	logFrom := len(d.proc.Output())
	rsNextAdvert(t, p.capt, rsNode1IP, time.Now(), 3*rsAdvert)
	s := rsWatchVIP(p.n1)
	time.Sleep(50 * time.Millisecond)
	action := time.Now()
	out, code := rsCLI(t, "upgrade", "--socket", d.socket)
	up := time.Now()
	t.Logf("vipd upgrade (exit %d, %v): %s", code, up.Sub(action).Round(time.Millisecond), strings.TrimSpace(out))
	if code != 0 {
		t.Errorf("vipd upgrade exit code %d, want 0:\n%s\nvipd log:\n%s", code, out, lastLines(d.proc.Output(), 25))
	}
	want := fmt.Sprintf("upgraded in place from %s to upgraded-test, pid %d, 1 instances resumed as MASTER", before.Daemon.Version, before.Daemon.PID)
	if !strings.Contains(out, want) {
		t.Errorf("vipd upgrade said %q, want it to contain %q", strings.TrimSpace(out), want)
	}
	if d.proc.Exited() {
		t.Fatalf("the vipd process exited during the upgrade:\n%s", lastLines(d.proc.Output(), 25))
	}
	after, err := d.status()
	if err != nil || after.Daemon == nil {
		t.Fatalf("status after the upgrade: %v", err)
	}
	ad := after.Daemon
	t.Logf("daemon before: %+v; after: %+v", *before.Daemon, *ad)
	if ad.PID != before.Daemon.PID || ad.PID != d.proc.Pid() {
		t.Errorf("pid after the upgrade %d, want the same as before, %d", ad.PID, before.Daemon.PID)
	}
	if ad.Version != "upgraded-test" {
		t.Errorf("version after the upgrade %q, want \"upgraded-test\"", ad.Version)
	}
	if ad.Resumed != 1 {
		t.Errorf("daemon.resumed %d after the upgrade, want 1", ad.Resumed)
	}
	if !ad.Started.After(before.Daemon.Started) {
		t.Errorf("daemon.started %v not after the old run's %v", ad.Started, before.Daemon.Started)
	}
	if !strings.Contains(ad.Upgrade, "upgraded in place from "+before.Daemon.Version) || strings.Contains(ad.Upgrade, "rolled back") {
		t.Errorf("daemon.upgrade %q, want \"upgraded in place from %s\"", ad.Upgrade, before.Daemon.Version)
	}
	p.finish(t, action, up, s, d, logFrom, "resumed MASTER after an upgrade of vipd")
}

// TestUpgradeRollsBackWhenTheNewBinaryCannotStart: the file installed at the binary's path is a
// script that passes the preflight (version and check go to a real new vipd) but whose `run`
// fails at start: its --metrics-listen port is taken in node1. vipd upgrade must report the
// rollback (exit 1), and the old binary must be back in the same process, with the VIP in place
// all along and keepalived none the wiser.
func TestUpgradeRollsBackWhenTheNewBinaryCannotStart(t *testing.T) {
	dir := t.TempDir()
	newBin := rsBuildVersion(t, dir, "upgraded-test")
	p, exe, before := rsUpgradeSetup(t)
	d := p.v.cur()

	const metricsAddr = "127.0.0.1:19650"
	var ln net.Listener
	if err := p.n1.Do(func() (err error) {
		ln, err = net.Listen("tcp", metricsAddr)
		return err
	}); err != nil {
		t.Fatalf("taking %s in node1: %v", metricsAddr, err)
	}
	t.Cleanup(func() { ln.Close() })

	script := filepath.Join(dir, "vipd-broken")
	writeFile(t, script, fmt.Sprintf(`#!/bin/sh
# A new vipd that installs fine (version, check) but cannot start: its metrics port is taken.
if [ "$1" = run ]; then
	exec %[1]s "$@" --metrics-listen %[2]s
fi
exec %[1]s "$@"
`, newBin, metricsAddr))
	rsInstall(t, script, exe)

	logFrom := len(d.proc.Output())
	rsNextAdvert(t, p.capt, rsNode1IP, time.Now(), 3*rsAdvert)
	s := rsWatchVIP(p.n1)
	time.Sleep(50 * time.Millisecond)
	action := time.Now()
	out, code := rsCLI(t, "upgrade", "--socket", d.socket)
	up := time.Now()
	t.Logf("vipd upgrade (exit %d, %v): %s", code, up.Sub(action).Round(time.Millisecond), strings.TrimSpace(out))
	log := d.proc.Output()[logFrom:]
	if code != 1 || !strings.Contains(out, "rolled back") {
		t.Errorf("vipd upgrade exit %d, output %q; want exit 1 and \"rolled back\"\nvipd log:\n%s", code, strings.TrimSpace(out), lastLines(log, 25))
	}
	if d.proc.Exited() {
		t.Fatalf("the vipd process exited during the failed upgrade:\n%s", lastLines(d.proc.Output(), 25))
	}
	if len(rsLogLines(log, "the new binary failed to start: rolling back", "address already in use")) == 0 {
		t.Errorf("vipd's log does not show the new binary failing on the taken metrics port and rolling back:\n%s", lastLines(log, 25))
	}
	after, err := d.status()
	if err != nil || after.Daemon == nil {
		t.Fatalf("status after the rollback: %v", err)
	}
	ad := after.Daemon
	t.Logf("daemon before: %+v; after: %+v", *before.Daemon, *ad)
	if ad.PID != before.Daemon.PID || ad.PID != d.proc.Pid() {
		t.Errorf("pid after the rollback %d, want the same as before, %d", ad.PID, before.Daemon.PID)
	}
	if ad.Version != before.Daemon.Version {
		t.Errorf("version after the rollback %q, want the old %q", ad.Version, before.Daemon.Version)
	}
	if !strings.Contains(ad.Upgrade, "rolled back") {
		t.Errorf("daemon.upgrade %q, want it to say \"rolled back\"", ad.Upgrade)
	}
	p.finish(t, action, up, s, d, logFrom, "resumed MASTER after an upgrade of vipd")
}

// TestRestartThousandMastersMovesNothing: 1000 instances (4 links x 250), vipd master on node1 and
// vipd backup on node2 (keepalived takes too long to converge at 1000). SIGQUIT and a new start of
// the master: every one of the 1000 VIPs stays on node1 at every sample, the backup changes state
// for none, and the new run reports 1000 resumed.
func TestRestartThousandMastersMovesNothing(t *testing.T) {
	n1, n2 := scaleLab(t)
	v := newRsVipd(t, n1, lab.BuildVipd(t), scaleConf(t, "node1", false, 150), "info")
	d1 := v.start()
	lab.Eventually(t, 30*time.Second, fmt.Sprintf("all %d instances MASTER on node1", scaleInstances), func() bool {
		return countStates(d1)["MASTER"] == scaleInstances
	})
	d2 := startVipd(t, n2, scaleConf(t, "node2", false, 100), "--log-level", "info", "--state-dir", filepath.Join(t.TempDir(), "state"))
	lab.Eventually(t, 30*time.Second, fmt.Sprintf("all %d instances BACKUP on node2", scaleInstances), func() bool {
		return countStates(d2)["BACKUP"] == scaleInstances
	})
	lab.Eventually(t, 10*time.Second, "node2 sees node1 as master of every instance", func() bool {
		st, err := d2.status()
		if err != nil || len(st.Instances) != scaleInstances {
			return false
		}
		for _, in := range st.Instances {
			if !strings.HasPrefix(in.Master, "10.99.") || !strings.HasSuffix(in.Master, ".1") {
				return false
			}
		}
		return true
	})
	if got := countVIPs(n1); got != scaleInstances {
		t.Fatalf("node1 holds %d VIPs before the restart, want %d", got, scaleInstances)
	}
	backupBefore := chTransitions(d2)
	// The wire, for the record (the backup's transitions are the assertion here): every 16th
	// VRID of each link. The kernel filter keeps tcpdump's share small: capturing all 1000
	// adverts a second drops packets and takes CPU from the daemons. ip[21] is the VRID (IPv4
	// header of 20 bytes, as vipd sends).
	capts := make([]*lab.Capture, len(scaleIfs))
	for k, ifname := range scaleIfs {
		capts[k] = n2.Capture(ifname, "ip proto 112 and ip[21] & 15 = 0")
	}

	s := chSample(rsSample, func() error {
		if got := countVIPs(n1); got != scaleInstances {
			return fmt.Errorf("node1 holds %d of %d VIPs", got, scaleInstances)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	action := time.Now()
	if err := d1.proc.Signal(agent.RestartSignal); err != nil {
		t.Fatal(err)
	}
	code, err := d1.proc.Wait(10 * time.Second)
	if err != nil {
		t.Fatalf("vipd did not exit after SIGQUIT: %v", err)
	}
	exited := time.Now()
	if code != agent.ExitRestart {
		t.Errorf("vipd exit code %d after SIGQUIT, want %d: %s", code, agent.ExitRestart, lastLines(d1.proc.Output(), 10))
	}
	nd := v.start()
	st := rsWaitUp(t, nd, scaleInstances, 20*time.Second)
	up := time.Now()
	t.Logf("old run exited %v after SIGQUIT; new run up with %d MASTER %v after SIGQUIT",
		exited.Sub(action).Round(time.Millisecond), scaleInstances, up.Sub(action).Round(time.Millisecond))
	end := up.Add(2 * time.Second)
	// The backups' Master_Down_Interval (3.6 s) must pass after the restart too.
	if e := action.Add(4 * time.Second); e.After(end) {
		end = e
	}
	time.Sleep(time.Until(end))
	samples, misses := s.Stop()
	var worst time.Duration
	worstAt, measured, silent := "", 0, 0
	for k, c := range capts {
		adverts := lab.VRRPAdverts(c.Stop())
		src := netip.MustParseAddr(fmt.Sprintf("10.99.%d.1", k)) // node1's address on eth<k>
		for vrid := 16; vrid <= scalePerIf; vrid += 16 {
			gap, _, n := rsLongestGap(adverts, src, vrid, action.Add(-2*time.Second), end)
			measured++
			if n == 0 {
				silent++
			}
			if gap > worst {
				worst, worstAt = gap, fmt.Sprintf("%s VRID %d", scaleIfs[k], vrid)
			}
		}
	}
	t.Logf("longest gap between node1's adverts of one instance around the restart, over %d instances sampled on the wire: %v (%s); %d of them without any advert captured",
		measured, worst.Round(time.Millisecond), worstAt, silent)
	t.Logf("node1's VIPs counted %d times until %v after SIGQUIT", samples, end.Sub(action).Round(time.Millisecond))
	if len(misses) > 0 {
		t.Errorf("node1 did not hold all %d VIPs at %d of %d samples: %s", scaleInstances, len(misses), samples, strings.Join(rsFirst(misses, 10), "; "))
	}
	if extra := chTransitions(d2)[len(backupBefore):]; len(extra) > 0 {
		t.Errorf("the backup changed state %d times around the restart, want 0:\n%s", len(extra), strings.Join(rsFirst(extra, 10), "\n"))
	}
	if got := countStates(d2); got["BACKUP"] != scaleInstances {
		t.Errorf("backup states after the restart %v, want all %d BACKUP", got, scaleInstances)
	}
	if got := countVIPs(n2); got != 0 {
		t.Errorf("the backup holds %d VIPs, want 0", got)
	}
	if st.Daemon == nil || st.Daemon.Resumed != scaleInstances {
		t.Errorf("status daemon %+v of the new run, want resumed %d", st.Daemon, scaleInstances)
	}
	resumed := rsLogLines(nd.proc.Output(), `msg="entering MASTER state"`, `cause="resumed MASTER after a restart of vipd`)
	if len(resumed) != scaleInstances {
		t.Errorf("the new run logged %d resumes, want %d", len(resumed), scaleInstances)
	}
	if found := rsLogLines(nd.proc.Output(), `msg="state of the previous run found"`); len(found) > 0 && len(resumed) > 0 {
		read, first, last := rsLogTime(found[0]), rsLogTime(resumed[0]), rsLogTime(resumed[len(resumed)-1])
		t.Logf("new run: state read %v after SIGQUIT; first instance resumed %v after that, last %v after that",
			read.Sub(action).Round(time.Millisecond), first.Sub(read).Round(time.Millisecond), last.Sub(read).Round(time.Millisecond))
	}
	notResumed := 0
	for _, in := range st.Instances {
		if !strings.HasPrefix(in.Cause, "resumed MASTER") {
			notResumed++
		}
	}
	if notResumed > 0 {
		t.Errorf("%d instances of the new run have a cause not starting \"resumed MASTER\"", notResumed)
	}
}

// TestRestartWithoutResume: starts that must not resume, each after SIGQUIT of the vipd master.
// The node starts as a plain BACKUP, says why in its log, and VRRP decides: with priority 150 and
// preempt it ends MASTER again, but not as a resume.
func TestRestartWithoutResume(t *testing.T) {
	cases := []struct {
		name string
		// between runs after the old run exited and before the new start (quit: when SIGQUIT
		// was sent).
		between func(t *testing.T, p *rsPair, quit time.Time)
		why     string // in the "not resuming MASTER" line
		// alone: vipd ends as the only holder of the VIP (keepalived back to BACKUP).
		alone bool
	}{
		{
			name: "stale-state",
			between: func(t *testing.T, p *rsPair, quit time.Time) {
				// keepalived takes over after its Master_Down_Interval; then a start well after
				// vipd's own (3.41 s) finds the state stale.
				lab.Eventually(t, 10*time.Second, "keepalived MASTER while vipd is down", func() bool {
					return chLogged(p.dk, "(VI_1) Entering MASTER STATE")
				})
				time.Sleep(time.Until(quit.Add(5 * time.Second)))
			},
			why:   "past the Master_Down_Interval",
			alone: true,
		},
		{
			name: "identity-changed",
			between: func(t *testing.T, p *rsPair, quit time.Time) {
				writeFile(t, p.v.conf, rsConf(t, "node1", false, 150, rsVRID+1))
			},
			why: fmt.Sprintf("identity changed (vrid=%d family=ipv4 interface=eth0 mode=multicast, was vrid=%d ", rsVRID+1, rsVRID),
		},
		{
			name: "vip-gone",
			between: func(t *testing.T, p *rsPair, quit time.Time) {
				p.n1.MustExec("ip", "addr", "del", rsVIP+"/24", "dev", "eth0")
			},
			why:   "VIP " + rsVIP + "/24 is gone from eth0",
			alone: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newRsPair(t, lab.BuildVipd(t))
			old := p.v.cur()
			quit := time.Now()
			if err := old.proc.Signal(agent.RestartSignal); err != nil {
				t.Fatal(err)
			}
			if code, err := old.proc.Wait(5 * time.Second); err != nil || code != agent.ExitRestart {
				t.Fatalf("vipd after SIGQUIT: exit %d, %v", code, err)
			}
			tc.between(t, p, quit)
			nd := p.v.start()
			lab.Eventually(t, 5*time.Second, "the new run says it does not resume", func() bool {
				return len(rsLogLines(nd.proc.Output(), `msg="not resuming MASTER: starting as usual"`, "instance=VI_1")) > 0
			})
			lines := rsLogLines(nd.proc.Output(), `msg="not resuming MASTER: starting as usual"`, "instance=VI_1")
			t.Logf("vipd: %s", lines[0])
			if !strings.Contains(lines[0], tc.why) {
				t.Errorf("the reason not to resume does not say %q:\n%s", tc.why, lines[0])
			}
			lab.Eventually(t, 5*time.Second, "the new run's first transition", func() bool {
				return len(rsTransitions(nd.proc.Output())) > 0
			})
			if first := rsTransitions(nd.proc.Output())[0]; !strings.Contains(first, `msg="entering BACKUP state"`) {
				t.Errorf("the new run's first transition is not BACKUP (a start that does not resume is a plain one):\n%s", first)
			}
			// VRRP decides: priority 150 with preempt wins back whatever keepalived took.
			lab.Eventually(t, 15*time.Second, "vipd MASTER again by election", func() bool { return nd.state("VI_1") == "MASTER" })
			if tc.alone {
				waitVIP(t, 5*time.Second, rsVIP, p.n1, p.n2)
			}
			st, err := nd.status()
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Instances) != 1 || strings.HasPrefix(st.Instances[0].Cause, "resumed") {
				t.Errorf("status of the new run %+v: the cause must not be a resume", st.Instances)
			} else {
				t.Logf("status cause: %s", st.Instances[0].Cause)
			}
			if st.Daemon == nil || st.Daemon.Resumed != 0 {
				t.Errorf("status daemon %+v, want resumed 0", st.Daemon)
			}
			if got := rsLogLines(nd.proc.Output(), `cause="resumed MASTER`); len(got) > 0 {
				t.Errorf("the new run logged a resume:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// rsWaitStateOf waits until the state file in dir was written by pid with VI_1 MASTER holding the
// VIP (what a crash right after would leave), and returns it.
func rsWaitStateOf(t *testing.T, dir string, pid int, timeout time.Duration) state.File {
	t.Helper()
	var f state.File
	lab.Eventually(t, timeout, fmt.Sprintf("state file written by pid %d with VI_1 MASTER holding %s", pid, rsVIP), func() bool {
		var err error
		f, _, err = state.Read(dir)
		if err != nil || f.PID != pid || f.Mode != state.ModeRunning || len(f.Instances) != 1 {
			return false
		}
		in := f.Instances[0]
		return in.State == "MASTER" && len(in.VIPs) == 1 && in.VIPs[0].Prefix.Addr() == mustAddr(rsVIP)
	})
	return f
}

// TestCrashLoopStopsResumingAndReleaseRemovesTheVIP: kill -9 and a quick start, four times in a
// row. The first three starts resume; the fourth finds the runs crashing soon after their start
// and starts as usual. After a last kill -9, vipd release removes the VIP the dead run left.
func TestCrashLoopStopsResumingAndReleaseRemovesTheVIP(t *testing.T) {
	bin := lab.BuildVipd(t)
	p := newRsPair(t, bin)
	d := p.v.cur()
	rsWaitStateOf(t, p.v.stateDir, d.proc.Pid(), 2*time.Second)
	for i := 1; i <= 4; i++ {
		if err := d.proc.Kill(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.proc.Wait(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		started := time.Now()
		d = p.v.start()
		if i < 4 {
			st := rsWaitUp(t, d, 1, 5*time.Second)
			if st.Daemon == nil || st.Daemon.Resumed != 1 || !strings.HasPrefix(st.Instances[0].Cause, "resumed MASTER after a crash") {
				t.Fatalf("restart %d after kill -9: daemon %+v, instances %+v; want resumed 1 after a crash", i, st.Daemon, st.Instances)
			}
			f := rsWaitStateOf(t, p.v.stateDir, d.proc.Pid(), 2*time.Second)
			t.Logf("restart %d: resumed MASTER %v after its start; state crash_streak %d", i, time.Since(started).Round(time.Millisecond), f.CrashStreak)
			continue
		}
		const want = "not resuming: the last runs crashed soon after their start"
		lab.Eventually(t, 5*time.Second, "restart 4 says it does not resume in a crash loop", func() bool {
			return chLogged(d, want)
		})
		t.Logf("restart 4: %s", rsLogLines(d.proc.Output(), want)[0])
		lab.Eventually(t, 5*time.Second, "restart 4's first transition", func() bool {
			return len(rsTransitions(d.proc.Output())) > 0
		})
		if first := rsTransitions(d.proc.Output())[0]; !strings.Contains(first, `msg="entering BACKUP state"`) {
			t.Errorf("restart 4's first transition is not BACKUP:\n%s", first)
		}
		if got := rsLogLines(d.proc.Output(), `cause="resumed MASTER`); len(got) > 0 {
			t.Errorf("restart 4 resumed:\n%s", strings.Join(got, "\n"))
		}
	}
	// VRRP decides: vipd (150) ends MASTER again.
	lab.Eventually(t, 15*time.Second, "vipd MASTER again by election after restart 4", func() bool { return d.state("VI_1") == "MASTER" })
	waitVIP(t, 5*time.Second, rsVIP, p.n1, p.n2)
	if st, err := d.status(); err != nil || st.Daemon == nil || st.Daemon.Resumed != 0 || strings.HasPrefix(st.Instances[0].Cause, "resumed") {
		t.Errorf("restart 4 status: %v %+v %+v; want resumed 0 and a cause that is no resume", err, st.Daemon, st.Instances)
	}
	rsWaitStateOf(t, p.v.stateDir, d.proc.Pid(), 2*time.Second)

	// A last crash, and no start: vipd release removes what the dead run left.
	if err := d.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.proc.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !hasVIP(p.n1, rsVIP) {
		t.Fatalf("the killed vipd left no VIP on node1: nothing for release to do")
	}
	out, err := p.n1.Exec(bin, "release", "--state-dir", p.v.stateDir)
	t.Logf("vipd release: %s", strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("vipd release: %v", err)
	}
	if !strings.Contains(out, "released 1 VIPs") {
		t.Errorf("vipd release said %q, want \"released 1 VIPs\"", strings.TrimSpace(out))
	}
	if hasVIP(p.n1, rsVIP) {
		t.Errorf("%s still on node1 after vipd release: %v", rsVIP, p.n1.Addrs("eth0"))
	}
	if f, _, err := state.Read(p.v.stateDir); err != nil || f.Mode != state.ModeReleased {
		t.Errorf("state after release: mode %q, %v; want %q", f.Mode, err, state.ModeReleased)
	}
}
