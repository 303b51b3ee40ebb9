//go:build ipvsvm

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/lvs"
	"github.com/vipd/vipd/lvs/ipvs"
)

// The virtual server the test puts in etcd, named as the key names it, on
// an address of the director's lo (10.0.100.1/32). Its real servers are
// HTTP servers in three namespaces; the fourth refuses connections (nobody
// listens on 8081), so its TCP_CHECK fails. With alpha every checker starts
// down: a real server enters IPVS only after its check passed.
const (
	etcdVSName = "10.0.100.1 80"
	etcdVSKey  = "/vipd/config/virtual_servers/" + etcdVSName
	etcdVIP    = "10.0.100.1:80"
)

// (The checker blocks are on lines of their own: vipd's keepalived parser
// reads "weight 1 TCP_CHECK { connect_timeout 1 }" on one line as a weight
// with words it ignores, and no checker; vipd check warns, vipd run logs an
// etcd value's warnings at debug level only.)
const etcdVSTmpl = `virtual_server 10.0.100.1 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    alpha
    real_server 10.0.11.2 8080 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.12.2 8080 {
        weight %d
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.13.2 8080 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.13.2 8081 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// The file's own virtual server: it must see no operation while etcd's
// comes, changes and goes.
const etcdFileConf = `global_defs {
    router_id vm
}
virtual_server 10.0.10.1 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.11.2 8080 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

const (
	filePool = "-A -t 10.0.10.1:80 -s rr\n" +
		"-a -t 10.0.10.1:80 -r 10.0.11.2:8080 -m -w 1\n"
	// etcdPool is etcd's pool with the weight of 10.0.12.2:8080, in
	// lvs.Render order (services by key, destinations by address).
	etcdPool = "-A -t 10.0.100.1:80 -s wrr\n" +
		"-a -t 10.0.100.1:80 -r 10.0.11.2:8080 -m -w 1\n" +
		"-a -t 10.0.100.1:80 -r 10.0.12.2:8080 -m -w %d\n" +
		"-a -t 10.0.100.1:80 -r 10.0.13.2:8080 -m -w 1\n"
	refused = "10.0.13.2:8081"
)

// sortedLines is s's lines, sorted: ipvsadm -Sn lists services in the
// kernel's hash order, and each -a line names its service, so the sorted
// lines of two tables are equal when the tables are.
func sortedLines(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(ls)
	return strings.Join(ls, "\n")
}

// etcdRig is vipd following an etcd that runs in the VM on loopback.
type etcdRig struct {
	t       *testing.T
	v       *vipd
	cli     *clientv3.Client
	be      *ipvs.Backend
	etcdLog string
}

// table is what IPVS holds, read twice: ipvsadm -Sn (sorted lines) and the
// lvs/ipvs Backend (lvs.Render, then sorted the same way).
func (r *etcdRig) table() (fromIpvsadm, fromBackend string) {
	pools, err := r.be.Pools()
	if err != nil {
		r.t.Fatalf("Backend.Pools: %v", err)
	}
	return sortedLines(ipvsadm(r.t)), sortedLines(lvs.Render(pools))
}

// poll calls cond every 100 ms until it holds (true) or d has passed
// (false).
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitTable waits until both readers of IPVS show exactly want; each
// ipvsadm -Sn sample also goes to every when it is not nil. It returns how
// long it waited.
func (r *etcdRig) waitTable(what, want string, d time.Duration, every func(string)) time.Duration {
	r.t.Helper()
	start := time.Now()
	want = sortedLines(want)
	var a, b string
	if !poll(d, func() bool {
		a, b = r.table()
		if every != nil {
			every(a)
		}
		return a == want && b == want
	}) {
		r.t.Fatalf("timed out (%s) waiting for %s\nwant (sorted lines):\n%s\nipvsadm -Sn:\n%s\nBackend.Pools:\n%s\nvipd log:\n%s",
			d, what, want, a, b, r.v.logText())
	}
	return time.Since(start)
}

// lvsCLI is `vipd lvs -o json`.
func (r *etcdRig) lvsCLI() api.LVS {
	r.t.Helper()
	out, err := exec.Command(r.v.bin, "lvs", "-o", "json", "--socket", r.v.socket).Output()
	if err != nil {
		r.t.Fatalf("vipd lvs -o json: %v\n%s", err, out)
	}
	var l api.LVS
	if err := json.Unmarshal(out, &l); err != nil {
		r.t.Fatalf("vipd lvs -o json: %v\n%s", err, out)
	}
	return l
}

func (r *etcdRig) put(val string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.cli.Put(ctx, etcdVSKey, val); err != nil {
		r.t.Fatalf("put %q: %v", etcdVSKey, err)
	}
}

// ops are the reconciler's operations, as vipd's log names them
// (msg="lvs: ipvs -e -t 10.0.100.1:80 -r 10.0.12.2:8080 -m -w 4"), in order.
// vipd logs an operation after it is done: a test reads them once vipd's
// status shows the table (settled).
func (r *etcdRig) ops() []string {
	var done []string
	for _, l := range strings.Split(r.v.logText(), "\n") {
		if _, op, ok := strings.Cut(l, "lvs: ipvs "); ok {
			op, _, _ = strings.Cut(op, `"`)
			done = append(done, op)
		}
	}
	return done
}

// settled waits until vipd's status (vipd lvs) shows want as both desired
// and actual table and cond holds of it: by then the operations are logged
// and counted.
func (r *etcdRig) settled(what, want string, cond func(api.LVS) bool) api.LVS {
	r.t.Helper()
	want = sortedLines(want)
	var l api.LVS
	if !poll(15*time.Second, func() bool {
		l = r.v.lvs()
		return l.Available && sortedLines(l.Desired) == want && sortedLines(l.Actual) == want && (cond == nil || cond(l))
	}) {
		b, _ := json.MarshalIndent(l, "", "  ")
		r.t.Fatalf("timed out (15s) waiting for %s\nwant desired = actual (sorted lines):\n%s\nvipd lvs:\n%s\nvipd log:\n%s", what, want, b, r.v.logText())
	}
	return l
}

// stats are the connection counters of etcd's service ("service") and of
// its destinations (by address), from ipvsadm -Ln --stats --exact: the
// kernel's, which a service deleted and created again starts from 0.
func stats(t *testing.T) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("ipvsadm", "-Ln", "--stats", "--exact", "-t", etcdVIP).CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm -Ln --stats: %v\n%s", err, out)
	}
	m := map[string]uint64{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		var name, conns string
		switch {
		case len(f) >= 3 && f[0] == "TCP":
			name, conns = "service", f[2]
		case len(f) >= 3 && f[0] == "->":
			name, conns = f[1], f[2]
		default:
			continue
		}
		n, err := strconv.ParseUint(conns, 10, 64)
		if err != nil {
			continue // the header
		}
		m[name] = n
	}
	return m
}

// TestVipdFollowsEtcd runs a real etcd (etcdlite: embed, static) on the
// VM's loopback and vipd with --etcd-endpoints: putting a virtual server
// key gives the kernel's IPVS the service, its real servers joining as
// their checks pass; a new weight in the key changes that destination
// alone; deleting the key removes the service. The file's own virtual
// server sees no operation throughout.
func TestVipdFollowsEtcd(t *testing.T) {
	bin, etcdBin := os.Getenv("VIPD_BIN"), os.Getenv("ETCD_BIN")
	if bin == "" || etcdBin == "" {
		t.Fatalf("VIPD_BIN=%q ETCD_BIN=%q: the harness must pass the paths of vipd and etcdlite inside the VM", bin, etcdBin)
	}
	if os.Getenv("VIPD_IPVSVM") != "1" {
		t.Fatal("this test flushes the kernel's IPVS table: it runs only inside the VM of integration/ipvsvm")
	}
	if out, err := exec.Command("ipvsadm", "-C").CombinedOutput(); err != nil {
		t.Fatalf("ipvsadm -C: %v %s", err, out)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	ec := newNode(t, "ec", "10.0.10.1", "10.0.10.2")
	servers := []*server{
		{n: newNode(t, "e1", "10.0.11.1", "10.0.11.2"), name: "e1"},
		{n: newNode(t, "e2", "10.0.12.1", "10.0.12.2"), name: "e2"},
		{n: newNode(t, "e3", "10.0.13.1", "10.0.13.2"), name: "e3"},
	}
	for _, s := range servers {
		s.start(t)
		defer s.stop()
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	vip, _ := netlink.ParseAddr("10.0.100.1/32")
	if err := netlink.AddrAdd(lo, vip); err != nil {
		t.Fatalf("10.0.100.1/32 on lo: %v", err)
	}
	defer netlink.AddrDel(lo, vip)
	be, err := ipvs.New()
	if err != nil {
		t.Fatalf("ipvs.New: %v", err)
	}
	defer be.Close()

	// etcd on loopback, its data in memory (the VM's root is).
	dir := t.TempDir()
	r := &etcdRig{t: t, be: be, etcdLog: filepath.Join(dir, "etcd.log")}
	elog, err := os.Create(r.etcdLog)
	if err != nil {
		t.Fatal(err)
	}
	defer elog.Close()
	etcd := exec.Command(etcdBin, "-data-dir", filepath.Join(dir, "etcd"))
	etcd.Stdout, etcd.Stderr = elog, elog
	etcdStart := time.Now()
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	etcdExit := make(chan error, 1)
	go func() { etcdExit <- etcd.Wait() }()
	defer func() {
		_ = etcd.Process.Signal(syscall.SIGTERM)
		select {
		case <-etcdExit:
		case <-time.After(10 * time.Second):
			_ = etcd.Process.Kill()
			<-etcdExit
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(r.etcdLog)
			t.Logf("etcdlite's log:\n%s", b)
		}
	})
	r.cli, err = clientv3.New(clientv3.Config{
		Endpoints:   []string{"http://127.0.0.1:2379"},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	defer r.cli.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := r.cli.Get(ctx, "/vipd/config/", clientv3.WithPrefix())
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-etcdExit:
			etcdExit <- werr
			b, _ := os.ReadFile(r.etcdLog)
			t.Fatalf("etcdlite exited before it served: %v\n%s", werr, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.etcdLog)
			t.Fatalf("etcd on 127.0.0.1:2379 not serving after 60s: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("etcd serves %v after its start", time.Since(etcdStart).Round(10*time.Millisecond))

	// vipd with the file's virtual server, following etcd.
	r.v = &vipd{t: t, bin: bin, socket: filepath.Join(dir, "vipd.sock"), conf: filepath.Join(dir, "keepalived.conf"), log: filepath.Join(dir, "vipd.log")}
	v := r.v
	if err := os.WriteFile(v.conf, []byte(etcdFileConf), 0o644); err != nil {
		t.Fatal(err)
	}
	vlog, err := os.Create(v.log)
	if err != nil {
		t.Fatal(err)
	}
	defer vlog.Close()
	v.cmd = exec.Command(bin, "run", "--config", v.conf, "--socket", v.socket, "--node-name", "vm", "--state-dir", "none",
		"--etcd-endpoints", "http://127.0.0.1:2379")
	v.cmd.Stdout, v.cmd.Stderr = vlog, vlog
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if v.cmd.ProcessState == nil {
			_ = v.cmd.Process.Kill()
			_ = v.cmd.Wait()
		}
	}()
	r.waitTable("the file's pool in IPVS", filePool, 60*time.Second, nil)
	r.settled("vipd lvs: the file's pool, desired = actual", filePool, nil)
	// vipd is in etcd (its status under its lease) before the first put, so
	// that the times below are a watch's, not a start's.
	waitFor(t, v, "vipd's status in etcd", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := r.cli.Get(ctx, "/vipd/status/vm")
		return err == nil && len(resp.Kvs) == 1
	})
	fileOps := len(r.ops())

	// (1) The key puts etcd's virtual server in IPVS: the service, then each
	// real server whose check passed; the one whose check fails never.
	r.put(fmt.Sprintf(etcdVSTmpl, 1))
	var samples []string
	took := r.waitTable("etcd's pool in IPVS with the file's", filePool+fmt.Sprintf(etcdPool, 1), 30*time.Second, func(s string) {
		if len(samples) == 0 || samples[len(samples)-1] != s {
			samples = append(samples, s)
		}
	})
	t.Logf("(1) put: the pool of 3 real servers in IPVS %v after the put, through %d distinct tables", took.Round(10*time.Millisecond), len(samples))
	for _, s := range samples {
		if strings.Contains(s, refused) {
			t.Errorf("%s, whose check fails, was in IPVS:\n%s", refused, s)
		}
	}
	r.settled("vipd lvs: both virtual servers, desired = actual = IPVS", filePool+fmt.Sprintf(etcdPool, 1), func(l api.LVS) bool {
		return len(l.VirtualServers) == 2
	})
	l := r.lvsCLI()
	var evs *api.LVSVirtualServer
	for i := range l.VirtualServers {
		if slices.Contains(l.VirtualServers[i].Services, "-t "+etcdVIP) {
			evs = &l.VirtualServers[i]
		}
	}
	if evs == nil {
		t.Fatalf("vipd lvs -o json has no virtual server with -t %s: %+v", etcdVIP, l.VirtualServers)
	}
	if len(evs.RealServers) != 4 {
		t.Fatalf("vipd lvs: %d real servers of %s, want 4: %+v", len(evs.RealServers), etcdVIP, evs.RealServers)
	}
	for _, rs := range evs.RealServers {
		ok := len(rs.Checks) == 1 && rs.Checks[0].Type == "TCP_CHECK"
		if rs.Address == refused {
			ok = ok && !rs.Up && !rs.InIPVS && rs.Checks[0].Result == "failed"
		} else {
			ok = ok && rs.Up && rs.InIPVS && rs.Checks[0].Result == "ok"
		}
		if !ok {
			t.Errorf("vipd lvs: real server %s: %+v", rs.Address, rs)
		}
	}
	if opsDone := r.ops()[fileOps:]; len(opsDone) != 4 || opsDone[0] != "-A -t 10.0.100.1:80 -s wrr" ||
		sortedLines(strings.Join(opsDone[1:], "\n")) != sortedLines(strings.ReplaceAll(fmt.Sprintf(etcdPool, 1), "-A -t 10.0.100.1:80 -s wrr\n", "")) {
		t.Errorf("the put did %d operations, want the service, then its 3 real servers whose checks pass:\n%s", len(opsDone), strings.Join(opsDone, "\n"))
	}
	// Traffic through the service, for its counters, which (2) compares:
	// a service or destination deleted and added again starts from 0.
	seen := map[string]bool{}
	for range 6 {
		body, err := once(ec, etcdVIP)
		if err != nil {
			t.Fatalf("GET through %s: %v\nipvsadm -Sn:\n%s", etcdVIP, err, ipvsadm(t))
		}
		seen[body] = true
	}
	if !seen["e1"] || !seen["e2"] || !seen["e3"] {
		t.Errorf("wrr through %s reached %v, want e1, e2 and e3", etcdVIP, seen)
	}
	var before map[string]uint64
	// The kernel's estimator folds the counters in every 2 s.
	waitFor(t, v, "the 6 connections in IPVS's counters", 15*time.Second, func() bool {
		before = stats(t)
		return before["service"] >= 6 && before["10.0.11.2:8080"] > 0 && before["10.0.12.2:8080"] > 0 && before["10.0.13.2:8080"] > 0
	})

	// (2) A new weight of one real server in the key: that destination is
	// edited in place, nothing else moves.
	n := len(r.ops())
	total := v.lvs().Reconcile.Total
	r.put(fmt.Sprintf(etcdVSTmpl, 4))
	took = r.waitTable("the new weight in IPVS", filePool+fmt.Sprintf(etcdPool, 4), 30*time.Second, nil)
	t.Logf("(2) weight 1 -> 4 of 10.0.12.2:8080 in IPVS %v after the put", took.Round(10*time.Millisecond))
	l = r.settled("vipd lvs: the new weight, desired = actual", filePool+fmt.Sprintf(etcdPool, 4), nil)
	want := "-e -t 10.0.100.1:80 -r 10.0.12.2:8080 -m -w 4"
	if opsDone := r.ops()[n:]; len(opsDone) != 1 || opsDone[0] != want {
		t.Errorf("the weight's put did %d operations, want the one edit %q:\n%s", len(opsDone), want, strings.Join(opsDone, "\n"))
	}
	if l.Reconcile.Total != total+1 {
		t.Errorf("vipd lvs: reconcile total_ops %d -> %d, want one operation", total, l.Reconcile.Total)
	}
	after := stats(t)
	for _, k := range []string{"service", "10.0.11.2:8080", "10.0.12.2:8080", "10.0.13.2:8080"} {
		if after[k] < before[k] {
			t.Errorf("IPVS's connection counter of %s went from %d to %d: deleted and added again", k, before[k], after[k])
		}
	}

	// (3) Deleting the key removes the service; the file's stays as it was.
	n = len(r.ops())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = r.cli.Delete(ctx, etcdVSKey)
	cancel()
	if err != nil {
		t.Fatalf("delete %q: %v", etcdVSKey, err)
	}
	took = r.waitTable("etcd's service gone from IPVS", filePool, 30*time.Second, nil)
	t.Logf("(3) delete: the service gone from IPVS %v after the delete", took.Round(10*time.Millisecond))
	r.settled("vipd lvs: the file's pool alone, desired = actual", filePool, nil)
	if opsDone := r.ops()[n:]; len(opsDone) != 1 || opsDone[0] != "-D -t 10.0.100.1:80" {
		t.Errorf("the delete did %d operations, want -D -t 10.0.100.1:80:\n%s", len(opsDone), strings.Join(opsDone, "\n"))
	}
	l = r.lvsCLI()
	if len(l.VirtualServers) != 1 || l.Desired != filePool || l.Actual != filePool {
		t.Errorf("vipd lvs after the delete: %d virtual servers, desired\n%s\nactual\n%s", len(l.VirtualServers), l.Desired, l.Actual)
	}
	for _, op := range r.ops()[:fileOps] {
		if !strings.Contains(op, "10.0.10.1:80") {
			t.Errorf("before the first put vipd did %q", op)
		}
	}
	for _, op := range r.ops()[fileOps:] {
		if strings.Contains(op, "10.0.10.1:80") {
			t.Errorf("the file's virtual server saw %q", op)
		}
	}
	// Figures, for the VM's size: its root file system is in memory.
	var fig []string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") || strings.HasPrefix(line, "MemAvailable:") {
				fig = append(fig, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs("/", &fs); err == nil {
		fig = append(fig, fmt.Sprintf("/ free: %d MiB of %d MiB", fs.Bavail*uint64(fs.Bsize)>>20, fs.Blocks*uint64(fs.Bsize)>>20))
	}
	t.Logf("in the VM with etcd and vipd running: %s", strings.Join(fig, ", "))

	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	_ = v.cmd.Wait()
	if got := ipvsadm(t); strings.Contains(got, "10.0.10.1:80") {
		t.Errorf("after SIGTERM IPVS still holds:\n%s", got)
	}
}
