package integration

// Hostile input, one more ring (issue 20, item 4), with real vipd processes in network
// namespaces: garbage on the gossip port of a running fleet, oversized values in etcd, a flood on
// the control socket, and a keepalived.conf of 100,000 lines. Each time: a clear error or count,
// bounded memory, and nothing else disturbed (no VIP moves, the fleet stays converged).
//
// Memory bounds are generous fixed numbers (a vipd in these labs runs in 20-40 MiB of RSS): they
// would still catch memory that grows with the hostile input (a buffer per packet, connection or
// line kept), not a few MiB more or less. Time bounds are loose too: the CI machine is small and
// shared.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

// ringMem returns the resident set size and its high-water mark of process pid, in MiB.
func ringMem(t *testing.T, pid int) (rss, hwm float64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("memory of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kib / 1024
		case "VmHWM:":
			hwm = kib / 1024
		}
	}
	return rss, hwm
}

// ringGoroutines reads go_goroutines from a vipd's /metrics in node n.
func ringGoroutines(n *lab.Node, addr string) (int, error) {
	text, err := mtGet(n, addr)
	if err != nil {
		return 0, err
	}
	s, err := mtParse(text)
	if err != nil {
		return 0, err
	}
	for _, smp := range s.find("go_goroutines", nil) {
		return int(smp.value), nil
	}
	return 0, errors.New("no go_goroutines in the scrape")
}

// ringMetric reads the one series of name matching labels from a vipd's /metrics in node n.
func ringMetric(t *testing.T, n *lab.Node, addr, name string, labels map[string]string) float64 {
	t.Helper()
	text, err := mtGet(n, addr)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	s, err := mtParse(text)
	if err != nil {
		t.Fatalf("scrape of %s: %v", addr, err)
	}
	v, ok := s.value(t, name, labels)
	if !ok {
		t.Fatalf("no %s%v in the scrape of %s", name, labels, addr)
	}
	return v
}

// ringNoMoves fails the test unless w saw holder the only holder of its address since its last
// report, without a gap or a double.
func ringNoMoves(t *testing.T, w *lab.HolderWatch, holder, what string) {
	t.Helper()
	r := w.Report()
	bad := len(r.Doubles) > 0 || len(r.None) > 0 || r.Samples == 0
	for _, c := range r.Changes {
		if c.Holder != holder {
			bad = true
		}
	}
	if bad {
		t.Errorf("%s: the VIP moved (want %s throughout): %s", what, holder, r)
	}
}

// --- (a) malformed gossip ---------------------------------------------------------------------

// mlMsgpackHeader is a msgpack map of memberlist's stream headers: string keys, int values.
func mlMsgpackHeader(kv ...any) []byte {
	b := []byte{0x80 | byte(len(kv)/2)}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		b = append(b, 0xa0|byte(len(k)))
		b = append(b, k...)
		switch v := kv[i+1].(type) {
		case int:
			b = append(b, 0xd2)
			b = binary.BigEndian.AppendUint32(b, uint32(int32(v)))
		case bool:
			if v {
				b = append(b, 0xc3)
			} else {
				b = append(b, 0xc2)
			}
		}
	}
	return b
}

// gzipBomb is a vipd gossip message (wire version 1, a state, gzip) whose body inflates from
// tens of KiB to far more than vipd's 32 MiB bound on a decoded body.
func gzipBomb(t *testing.T, limit int) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write([]byte{1, 1, 1})
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for buf.Len() < limit-1024 {
		if _, err := zw.Write(zero); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	return buf.Bytes()
}

// wrongKeyPacket is a memberlist packet encrypted as memberlist does (version 1: nonce, AES-GCM,
// no label) with a key the fleet does not have.
func wrongKeyPacket(t *testing.T, plain []byte) []byte {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := []byte{1}
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return gcm.Seal(out, nonce, plain, nil)
}

// gossipGarbage sends the hostile gossip traffic from node evil to target (HOST:PORT), over UDP
// and TCP, and returns how many packets and connections it sent.
func gossipGarbage(t *testing.T, evil *lab.Node, target string, encrypted bool) (packets, conns int) {
	t.Helper()
	rng := mrand.New(mrand.NewSource(20))
	randBytes := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }

	var udp [][]byte
	for range 3000 { // random datagrams
		udp = append(udp, randBytes(rng.Intn(1400)))
	}
	for typ := byte(0); typ <= 13; typ++ { // every memberlist message type, truncated or garbage
		for _, n := range []int{0, 1, 5, 40, 300} {
			udp = append(udp, append([]byte{typ}, randBytes(n)...))
		}
	}
	udp = append(udp,
		[]byte{7, 255, 0xff, 0xff},                               // compound of 255 parts, lengths cut
		append([]byte{7, 2, 0xff, 0xff, 0, 1}, randBytes(20)...), // compound part longer than the packet
		append([]byte{12, 0, 0, 0, 0}, randBytes(100)...),        // CRC that does not match
		append([]byte{9}, randBytes(60000)...),                   // "compressed", 60 KB of noise
		append([]byte{7}, randBytes(65000)...),                   // oversized compound
		append([]byte{8, 1, 1, 0}, randBytes(200)...),            // a vipd state message of garbage
		append([]byte{8, 1, 99, 0}, randBytes(50)...),            // a vipd message of an unknown kind
		append([]byte{8, 7, 1, 0}, randBytes(50)...),             // another wire version
	)
	bomb := gzipBomb(t, 60000)
	for range 10 { // user messages that inflate beyond vipd's bound
		udp = append(udp, append([]byte{8}, bomb...))
	}
	if encrypted {
		// The same, encrypted with a key the fleet does not have, and as plain text (refused:
		// the fleet verifies that everything it receives is encrypted).
		n := len(udp)
		for i := 0; i < n; i += 7 {
			udp = append(udp, wrongKeyPacket(t, udp[i]))
		}
	}

	tcp := [][]byte{
		mlMsgpackHeader("Nodes", 1<<30, "UserStateLen", 0, "Join", false), // claims a billion nodes
		mlMsgpackHeader("Nodes", -1, "UserStateLen", 0, "Join", false),
		mlMsgpackHeader("UserMsgLen", 1<<30),                     // a user message of 1 GiB
		{10, 0x7f, 0xff, 0xff, 0xff},                             // an encrypted stream of 2 GiB
		{10, 0, 0, 0x40, 0},                                      // an encrypted stream of 16 KiB, cut
		append([]byte{9}, randBytes(4000)...),                    // "compressed" noise
		append([]byte{8}, mlMsgpackHeader("UserMsgLen", 100)...), // a user message cut short
	}
	// Types in front of the headers: push/pull (6), user (8).
	tcp[0] = append([]byte{6}, tcp[0]...)
	tcp[1] = append([]byte{6}, tcp[1]...)
	tcp[2] = append([]byte{8}, tcp[2]...)
	for range 20 { // push/pull states of 20 MiB announced, never sent
		tcp = append(tcp, append([]byte{6}, mlMsgpackHeader("Nodes", 0, "UserStateLen", 20<<20-1, "Join", false)...))
	}
	for range 150 {
		tcp = append(tcp, randBytes(1+rng.Intn(4096)))
	}

	err := evil.Do(func() error {
		uc, err := net.Dial("udp", target)
		if err != nil {
			return err
		}
		defer uc.Close()
		for i, p := range udp {
			_, _ = uc.Write(p) // refused ICMP answers are fine
			packets++
			if i%100 == 99 {
				time.Sleep(5 * time.Millisecond) // a flood, not a loss test of the lab's switch
			}
		}
		var silent []net.Conn
		defer func() {
			for _, c := range silent {
				c.Close()
			}
		}()
		for range 50 { // connections that say nothing
			c, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				return err
			}
			silent = append(silent, c)
			conns++
		}
		for _, p := range tcp {
			c, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				return err
			}
			conns++
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Write(p)
			_ = c.(*net.TCPConn).CloseWrite()                    // what was announced never comes
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<16)) // until memberlist hangs up (or 2 s)
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending gossip garbage from %s to %s: %v", evil.Name, target, err)
	}
	return packets, conns
}

func TestHostileRingGossipGarbage(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		name := "plain"
		if encrypted {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) { ringGossip(t, encrypted) })
	}
}

func ringGossip(t *testing.T, encrypted bool) {
	nodes := flLab(t, 3)
	evil := nodes[2]
	var extra []string
	if encrypted {
		extra = []string{"--gossip-key-file", flKeyFile(t)}
	}
	var fs []*flNode
	for i, n := range nodes[:2] {
		args := []string{"--gossip-bind", flIP(i+1) + ":" + flPort, "--metrics-listen", flIP(i+1) + ":9100"}
		if i > 0 {
			args = append(args, "--join", flIP(1)+":"+flPort)
		}
		f := newFlNode(t, n, flIP(i+1), renderConf(t, n.Name, false, flInst(1, 150-50*i)), append(args, extra...)...)
		f.start()
		if i == 0 {
			flWaitLog(t, f.d(), 10*time.Second, time.Time{}, `msg="gossip started"`)
		}
		fs = append(fs, f)
	}
	converged := func(fl api.Fleet) error {
		if err := flWantNodes(fl, map[string]string{"node1": "alive", "node2": "alive"}); err != nil {
			return err
		}
		if err := flWantInstance(fl, "node1", "VI_1", "MASTER", ""); err != nil {
			return err
		}
		return flWantInstance(fl, "node2", "VI_1", "BACKUP", "")
	}
	flWaitSame(t, 20*time.Second, "the fleet formed", fs, converged)
	waitVIP(t, 5*time.Second, flVIP(1), nodes[0], nodes[:2]...)
	w := lab.WatchHolders(t, mustAddr(flVIP(1)), 20*time.Millisecond, nodes[:2]...)
	w.Report()
	baseG := make([]int, len(fs))
	for i, f := range fs {
		g, err := ringGoroutines(f.n, f.ip+":9100")
		if err != nil {
			t.Fatal(err)
		}
		baseG[i] = g
	}
	logLen := make([]int, len(fs))
	for i, f := range fs {
		logLen[i] = len(f.d().proc.Output())
	}

	// The fleet must stay converged while the garbage arrives: poll both views meanwhile.
	stop := make(chan struct{})
	var watchErr atomic.Value
	var polls atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, f := range fs {
				fl, err := flFleetAPI(f)
				if err == nil {
					err = converged(fl)
				}
				if err != nil {
					watchErr.Store(fmt.Sprintf("%s during the garbage: %v (%s)", f.name(), err, flSummary(fl)))
				}
				polls.Add(1)
			}
		}
	}()
	start := time.Now()
	var sent [2][2]int
	for i, f := range fs {
		p, c := gossipGarbage(t, evil, f.gossip(), encrypted)
		sent[i] = [2]int{p, c}
	}
	// Memberlist keeps a silent connection for its TCP timeout (10 s): the fleet is watched
	// until they are gone.
	time.Sleep(3 * time.Second)
	close(stop)
	t.Logf("sent %v (packets, connections) to node1 and node2 in %v; %d fleet views polled meanwhile", sent, time.Since(start).Round(time.Millisecond), polls.Load())
	if msg := watchErr.Load(); msg != nil {
		t.Errorf("the fleet did not stay converged: %s", msg)
	}
	flWaitSame(t, 10*time.Second, "the fleet still converged after the garbage", fs, converged)
	ringNoMoves(t, w, "node1", "gossip garbage")

	for i, f := range fs {
		if f.d().proc.Exited() {
			t.Fatalf("%s's vipd exited under gossip garbage:\n%s", f.name(), f.d().proc.Output())
		}
		// Bound: 300 MiB. vipd runs in about 30 MiB; the 10 gzip bombs inflate to 32 MiB each
		// (vipd's bound on a decoded body) and memberlist allocates what a push/pull header
		// announces (20 MiB, its own bound) before reading it, both freed at once. Kept
		// buffers per packet or connection would pass it.
		rss, hwm := ringMem(t, f.d().proc.Pid())
		t.Logf("%s: RSS %.0f MiB, peak %.0f MiB", f.name(), rss, hwm)
		if hwm > 300 {
			t.Errorf("%s: peak RSS %.0f MiB under gossip garbage, bound 300 MiB", f.name(), hwm)
		}
		// Goroutines back to their level before (memberlist's TCP timeout is 10 s).
		var g int
		lab.Eventually(t, 20*time.Second, f.name()+"'s goroutines back to their level before the garbage", func() bool {
			var err error
			g, err = ringGoroutines(f.n, f.ip+":9100")
			return err == nil && g <= baseG[i]+10
		})
		t.Logf("%s: goroutines %d before, %d after", f.name(), baseG[i], g)

		// The rejects are named: memberlist's log lines with the sender's address (at warn
		// level), vipd's own count of undecodable messages.
		out := f.d().proc.Output()[logLen[i]:]
		lines := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "component=memberlist") && strings.Contains(l, flIP(3)) {
				lines++
			}
		}
		t.Logf("%s: %d memberlist log lines naming %s, %d bytes of log in all", f.name(), lines, flIP(3), len(out))
		if lines == 0 {
			t.Errorf("%s: no log line names the sender of the garbage (%s)", f.name(), flIP(3))
		}
		if encrypted {
			if !strings.Contains(out, "ecrypt") {
				t.Errorf("%s: no log line says a packet did not decrypt", f.name())
			}
		} else if v := ringMetric(t, f.n, f.ip+":9100", "vipd_gossip_errors_total", map[string]string{"kind": "decode"}); v == 0 {
			t.Errorf("%s: vipd_gossip_errors_total{kind=\"decode\"} is 0 after undecodable vipd messages", f.name())
		}
	}

	// Still a working fleet: node1 leaves MASTER by maintenance and the VIP moves once, to node2.
	flMustCLI(t, "maint", "on", "--socket", fs[0].socket)
	waitVIP(t, 5*time.Second, flVIP(1), nodes[1], nodes[:2]...)
}

// --- (b) oversized etcd values ----------------------------------------------------------------

// ringPutFile is etcdctl put KEY with the value read from file (a value of 1 MiB does not fit in
// an argument).
func ringPutFile(t *testing.T, c *etcdCluster, key, file string) (string, error) {
	t.Helper()
	sh := fmt.Sprintf("ETCDCTL_API=3 etcdctl --endpoints %s --dial-timeout 2s --command-timeout 10s put %q < %q", c.Endpoints(), key, file)
	return c.members[0].node.Exec("sh", "-c", sh)
}

// padded is text followed by comment lines up to size bytes: a value that would take effect if
// vipd read it.
func padded(text string, size int, comment string) []byte {
	b := []byte(text)
	for len(b) < size {
		b = append(b, comment...)
	}
	return b[:size]
}

func TestHostileRingEtcdOversizedValues(t *testing.T) {
	l := lab.New(t)
	n1 := l.AddNode("n1", "10.99.0.1/24")
	n2 := l.AddNode("n2", "10.99.0.2/24")
	en := l.AddNode("etcd1", "10.99.0.21/24")
	etcd := startEtcd(t, l, []*lab.Node{en}, []string{"10.99.0.21"})
	vi := func(prio int) instanceConf {
		return instanceConf{Name: "VI_1", VRID: 51, Priority: prio, AdvertInt: "0.1", Version: 3, VIPs: []string{"10.99.0.100/24"}}
	}
	d1 := startVipd(t, n1, renderConf(t, "n1", false, vi(150)), "--etcd-endpoints", etcd.Endpoints(), "--metrics-listen", "10.99.0.1:9100")
	d2 := startVipd(t, n2, renderConf(t, "n2", false, vi(100)), "--etcd-endpoints", etcd.Endpoints(), "--metrics-listen", "10.99.0.2:9100")
	waitVIP(t, 10*time.Second, "10.99.0.100", n1, n1, n2)
	lab.Eventually(t, 10*time.Second, "both vipd's status in etcd", func() bool {
		out, err := etcd.ctl("get", "--prefix", "--keys-only", "/vipd/status/")
		return err == nil && strings.Count(out, "/vipd/status/") == 2
	})
	w := lab.WatchHolders(t, mustAddr("10.99.0.100"), 20*time.Millisecond, n1, n2)
	w.Report()

	// Each value would move the VIP or add an instance if vipd read it. etcd's own limit on a
	// request is 1.5 MiB (--max-request-bytes): the last value is as large as it takes.
	const mib = 1 << 20
	vi2 := "vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 52\n priority 200\n advert_int 0.1\n version 3\n virtual_ipaddress {\n  10.99.0.101/24\n }\n}\n"
	puts := []struct {
		key   string
		value []byte
	}{
		{"/vipd/priority/VI_1/n2", padded("200", mib, " ")},
		{"/vipd/config/instances/VI_2", padded(vi2, mib, "# padding, as if someone pasted a whole file\n")},
		{"/vipd/maintenance/n1", padded("moved by a 1.5 MiB reason", 3*mib/2-512, " x")},
	}
	dir := t.TempDir()
	for i, p := range puts {
		file := filepath.Join(dir, fmt.Sprintf("value%d", i))
		if err := os.WriteFile(file, p.value, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := ringPutFile(t, etcd, p.key, file); err != nil {
			t.Fatalf("etcdctl put %s (%d bytes): %v\n%s", p.key, len(p.value), err, out)
		}
	}
	for _, d := range []*daemon{d1, d2} {
		lab.Eventually(t, 10*time.Second, d.node.Name+" names every oversized key in its log", func() bool {
			out := d.proc.Output()
			for _, p := range puts {
				if !strings.Contains(out, fmt.Sprintf("value of %d bytes: over the limit of", len(p.value))) || !strings.Contains(out, p.key) {
					return false
				}
			}
			return true
		})
	}
	holdSteady(t, 2*time.Second, "nothing moves: n1 MASTER, n2 BACKUP, no VI_2", func() bool {
		return d1.state("VI_1") == "MASTER" && d2.state("VI_1") == "BACKUP" && d1.state("VI_2") == "" && !hasVIP(n1, "10.99.0.101") && !hasVIP(n2, "10.99.0.101")
	})
	ringNoMoves(t, w, "n1", "oversized etcd values")
	for _, d := range []*daemon{d1, d2} {
		addr := map[*daemon]string{d1: "10.99.0.1:9100", d2: "10.99.0.2:9100"}[d]
		if v := ringMetric(t, d.node, addr, "vipd_etcd_rejected_values_total", nil); v < float64(len(puts)) {
			t.Errorf("%s: vipd_etcd_rejected_values_total %v, want at least %d", d.node.Name, v, len(puts))
		}
		// Bound: 200 MiB. vipd runs in about 30 MiB; the watch holds each value (3.5 MiB in
		// all) a few times over (the read, the snapshot, the state file); decoding 1 MiB of
		// keepalived text would cost far more than that.
		rss, hwm := ringMem(t, d.proc.Pid())
		t.Logf("%s: RSS %.0f MiB, peak %.0f MiB", d.node.Name, rss, hwm)
		if hwm > 200 {
			t.Errorf("%s: peak RSS %.0f MiB with oversized etcd values, bound 200 MiB", d.node.Name, hwm)
		}
	}

	// etcd still drives the fleet: a priority of a sane size moves the VIP, once.
	etcd.put("/vipd/priority/VI_1/n2", "200")
	waitVIP(t, 5*time.Second, "10.99.0.100", n2, n1, n2)
	// The sampler sees it a sample or so later than waitVIP.
	lab.Eventually(t, 5*time.Second, "the holder sampler seeing n2", func() bool { return w.Holder() == "n2" })
	r := w.Report()
	moved := len(r.Doubles) == 0 && len(r.Changes) >= 2 && r.Changes[len(r.Changes)-1].Holder == "n2"
	for i := 1; moved && i < len(r.Changes)-1; i++ {
		moved = r.Changes[i].Holder == "" // the hand-over's gap, nothing else
	}
	if !moved {
		t.Errorf("after a good priority the VIP should move once to n2: %s", r)
	}
}

// --- (c) control socket flood -----------------------------------------------------------------

// ringRaw sends one raw request on a new connection to socket and reads the answer's status line
// (io errors are the flood's business: counted, not fatal).
func ringRaw(socket, req string) (int, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// ringStatusCLI runs `vipd status -o json` on socket and returns how long it took.
func ringStatusCLI(t *testing.T, socket string) time.Duration {
	t.Helper()
	start := time.Now()
	out, errOut, code := flCLI(t, "status", "-o", "json", "--socket", socket)
	took := time.Since(start)
	if code != 0 || !strings.Contains(out, `"VI_1"`) {
		t.Errorf("vipd status during the flood: exit %d after %v\n%s%s", code, took, out, errOut)
	}
	return took
}

func TestHostileRingControlSocketFlood(t *testing.T) {
	l := lab.New(t)
	n1 := l.AddNode("n1", "10.99.0.1/24")
	n2 := l.AddNode("n2", "10.99.0.2/24")
	vi := func(prio int) instanceConf {
		return instanceConf{Name: "VI_1", VRID: 51, Priority: prio, AdvertInt: "0.1", Version: 3, VIPs: []string{"10.99.0.100/24"}}
	}
	// The flood goes to the MASTER: adverts that missed their interval for 0.3 s would show as
	// the VIP moving to n2.
	d1 := startVipd(t, n1, renderConf(t, "n1", false, vi(150)), "--metrics-listen", "10.99.0.1:9100")
	d2 := startVipd(t, n2, renderConf(t, "n2", false, vi(100)))
	waitVIP(t, 10*time.Second, "10.99.0.100", n1, n1, n2)
	w := lab.WatchHolders(t, mustAddr("10.99.0.100"), 20*time.Millisecond, n1, n2)
	w.Report()
	const metrics = "10.99.0.1:9100"
	var baseG int
	lab.Eventually(t, 10*time.Second, "a first scrape", func() bool {
		var err error
		baseG, err = ringGoroutines(n1, metrics)
		return err == nil
	})
	sock := d1.socket

	// Phase 1, within the connection limit: 300 silent connections, 100 with half a body, 20
	// with a 1 MiB request line, and 16 clients sending 4000 requests between them, all at
	// once; a real `vipd status` answers meanwhile.
	var hold []net.Conn
	defer func() {
		for _, c := range hold {
			c.Close()
		}
	}()
	dialHold := func(n int, send string) {
		for range n {
			c, err := net.DialTimeout("unix", sock, 5*time.Second)
			if err != nil {
				t.Fatalf("connection %d to the control socket: %v", len(hold), err)
			}
			if send != "" {
				_, _ = io.WriteString(c, send)
			}
			hold = append(hold, c)
		}
	}
	dialHold(300, "")
	dialHold(100, "POST /v1/maint HTTP/1.1\r\nHost: vipd\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"on\": tr")
	huge := "GET /v1/status?" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: vipd\r\n\r\n"
	var hugeWG sync.WaitGroup
	for range 20 {
		hugeWG.Add(1)
		go func() {
			defer hugeWG.Done()
			code, err := ringRaw(sock, huge)
			if err == nil && code != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("a 1 MiB request line answered %d, want 431", code)
			}
		}()
	}
	requests := []string{
		"GET /v1/status HTTP/1.1\r\nHost: vipd\r\nConnection: close\r\n\r\n",
		"GET /v1/lvs HTTP/1.1\r\nHost: vipd\r\nConnection: close\r\n\r\n",
		"GET /v1/nope HTTP/1.1\r\nHost: vipd\r\nConnection: close\r\n\r\n",
		"POST /v1/maint HTTP/1.1\r\nHost: vipd\r\nConnection: close\r\nContent-Length: 8\r\n\r\n{\"on\":1}",
		"POST /v1/priority HTTP/1.1\r\nHost: vipd\r\nConnection: close\r\nContent-Length: 5\r\n\r\n[1,2]",
	}
	var ok, failed atomic.Int64
	var floodWG sync.WaitGroup
	floodStart := time.Now()
	for i := range 16 {
		floodWG.Add(1)
		go func() {
			defer floodWG.Done()
			for j := range 250 {
				code, err := ringRaw(sock, requests[(i+j)%len(requests)])
				if err != nil || code >= 500 {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	var worst time.Duration
	for range 5 {
		worst = max(worst, ringStatusCLI(t, sock))
		time.Sleep(300 * time.Millisecond)
	}
	floodWG.Wait()
	hugeWG.Wait()
	t.Logf("phase 1: %d requests answered, %d failed, in %v; vipd status took at most %v", ok.Load(), failed.Load(), time.Since(floodStart).Round(time.Millisecond), worst)
	if failed.Load() > 0 {
		t.Errorf("%d flood requests failed or got a 5xx (within the connection limit, every one is answered)", failed.Load())
	}
	// Bound: 5 s, the header timeout that frees a slot, though within the limit nothing waits.
	if worst > 5*time.Second {
		t.Errorf("vipd status took %v during the flood, bound 5 s", worst)
	}
	ringNoMoves(t, w, "n1", "control socket flood, phase 1")

	// The server closes what it holds on its own: silent connections after the header timeout
	// (5 s), half bodies after the body timeout (10 s, answered 400).
	var closed atomic.Int64
	var closeWG sync.WaitGroup
	for _, c := range hold {
		closeWG.Add(1)
		go func() {
			defer closeWG.Done()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err := io.Copy(io.Discard, c)
			if ne, isNet := errors.AsType[net.Error](err); !isNet || !ne.Timeout() {
				closed.Add(1)
			}
		}()
	}
	closeWG.Wait()
	if int(closed.Load()) != len(hold) {
		t.Errorf("%d of %d held connections were closed by vipd within 30 s", closed.Load(), len(hold))
	}
	for _, c := range hold {
		c.Close()
	}
	hold = nil

	// Phase 2, beyond the limit: 1200 silent connections. The ones over api.MaxConns wait in
	// the listen backlog, not in a goroutine each; a real status waits its turn (silent
	// connections go in batches of MaxConns every 5 s), then is answered.
	dialHold(1200, "")
	time.Sleep(time.Second)
	g, err := ringGoroutines(n1, metrics)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phase 2: %d goroutines with 1200 silent connections (%d before the flood, limit %d connections)", g, baseG, api.MaxConns)
	if g > baseG+api.MaxConns+50 {
		t.Errorf("%d goroutines with 1200 silent connections: more than the %d before plus one per served connection (%d)", g, baseG, api.MaxConns)
	}
	took := ringStatusCLI(t, sock)
	t.Logf("phase 2: vipd status answered after %v behind 1200 silent connections", took.Round(time.Millisecond))
	// Bound: 1200 / 512 batches of 5 s, plus slack.
	if took > 25*time.Second {
		t.Errorf("vipd status took %v behind 1200 silent connections, bound 25 s", took)
	}
	for _, c := range hold {
		c.Close()
	}
	hold = nil
	ringNoMoves(t, w, "n1", "control socket flood, phase 2")

	// Afterwards: goroutines back to their level, memory bounded, VRRP as before.
	lab.Eventually(t, 20*time.Second, "goroutines back to their level before the flood", func() bool {
		g, err = ringGoroutines(n1, metrics)
		return err == nil && g <= baseG+10
	})
	// Bound: 200 MiB. vipd runs in about 30 MiB; 512 served connections with their buffers
	// (16 KiB header limit) are a few tens of MiB at worst.
	rss, hwm := ringMem(t, d1.proc.Pid())
	t.Logf("after the flood: %d goroutines (%d before), RSS %.0f MiB, peak %.0f MiB", g, baseG, rss, hwm)
	if hwm > 200 {
		t.Errorf("peak RSS %.0f MiB under a control socket flood, bound 200 MiB", hwm)
	}
	holdSteady(t, 2*time.Second, "after the flood: n1 MASTER, n2 BACKUP", func() bool {
		return d1.state("VI_1") == "MASTER" && d2.state("VI_1") == "BACKUP"
	})
	ringNoMoves(t, w, "n1", "control socket flood, after")
}

// --- (d) a keepalived.conf of 100,000 lines ---------------------------------------------------

// bigConf writes a valid keepalived.conf of about 100,000 lines: 250 instances (VRIDs 1..250
// on eth0, advert_int 10 so that none goes MASTER while the test looks), each with 20 VIPs and
// 370 excluded addresses. With badLine it replaces a line near the end with an invalid
// virtual_router_id and returns that line's number.
func bigConf(t *testing.T, dir string, bad bool) (path string, lines, badLine int) {
	t.Helper()
	var b strings.Builder
	line := 0
	w := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\n", args...)
		line++
	}
	w("# generated: 250 instances, about 100,000 lines")
	w("global_defs {")
	w("    router_id big")
	w("}")
	for i := 1; i <= 250; i++ {
		w("vrrp_instance VI_%d {", i)
		w("    state BACKUP")
		w("    interface eth0")
		if bad && i == 250 {
			badLine = line + 1
			w("    virtual_router_id 300")
		} else {
			w("    virtual_router_id %d", i)
		}
		w("    priority 100")
		w("    advert_int 10")
		w("    virtual_ipaddress {")
		for j := range 20 {
			w("        10.%d.0.%d/32", i, j+1)
		}
		w("    }")
		w("    virtual_ipaddress_excluded {")
		for j := range 370 {
			w("        10.%d.%d.%d/32", i, 1+j/250, 1+j%250)
		}
		w("    }")
		w("}")
	}
	path = filepath.Join(dir, map[bool]string{false: "big.conf", true: "big-bad.conf"}[bad])
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, line, badLine
}

// runMeasured runs the vipd binary with args and returns its output, exit code, wall time and
// peak RSS (MiB, from the child's rusage).
func runMeasured(t *testing.T, args ...string) (string, int, time.Duration, float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lab.BuildVipd(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vipd %s: %v", strings.Join(args, " "), err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return out.String(), code, took, float64(ru.Maxrss) / 1024
}

// TestHostileRingConfig100kLines: `vipd check` (no root needed) on 100,000 lines, valid and
// with an error near the end; then, as root in a lab node, `vipd run` on the valid one.
func TestHostileRingConfig100kLines(t *testing.T) {
	dir := t.TempDir()
	good, lines, _ := bigConf(t, dir, false)
	bad, _, badLine := bigConf(t, dir, true)
	if lines < 100000 {
		t.Fatalf("generated %d lines, want 100,000 or more", lines)
	}

	out, code, took, peak := runMeasured(t, "check", "--config", good)
	t.Logf("vipd check, %d valid lines: exit %d in %v, peak RSS %.0f MiB", lines, code, took.Round(time.Millisecond), peak)
	if code != 0 {
		t.Errorf("vipd check on the valid file: exit %d\n%.2000s", code, out)
	}
	// Bounds: 300 MiB and 60 s (measured: 70 MiB in 0.5-1 s). A model of 250 instances
	// and 97,500 addresses is a few tens of MiB; a parser that kept a copy of the text per
	// token or went quadratic in the lines would not pass.
	if peak > 300 || took > time.Minute {
		t.Errorf("vipd check on %d lines: peak RSS %.0f MiB in %v, bounds 300 MiB and 60 s", lines, peak, took)
	}

	out, code, took, peak = runMeasured(t, "check", "--config", bad)
	t.Logf("vipd check, an error at line %d: exit %d in %v, peak RSS %.0f MiB: %.300s", badLine, code, took.Round(time.Millisecond), peak, out)
	if want := fmt.Sprintf("%s:%d:", bad, badLine); code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "virtual_router_id") {
		t.Errorf("vipd check on the file with an error at line %d: exit %d, want 1 and %q naming virtual_router_id:\n%.2000s", badLine, code, want, out)
	}
	if peak > 300 || took > time.Minute {
		t.Errorf("vipd check on %d lines with an error: peak RSS %.0f MiB in %v, bounds 300 MiB and 60 s", lines, peak, took)
	}

	// vipd run on the valid one, in a lab node: it starts, every instance BACKUP (advert_int
	// 10: none goes MASTER within 30 s), and stops on SIGTERM.
	l := lab.New(t)
	n := l.AddNode("n1", "10.99.0.1/24")
	d := &daemon{t: t, node: n, kind: "vipd", conf: good, socket: filepath.Join(dir, "vipd.sock")}
	start := time.Now()
	d.proc = n.Start(lab.BuildVipd(t), "run", "--config", good, "--socket", d.socket, "--node-name", "n1",
		"--state-dir", filepath.Join(dir, "state"))
	var st api.Status
	lab.Eventually(t, 60*time.Second, "vipd run on 100,000 lines: 250 instances BACKUP", func() bool {
		var err error
		st, err = d.status()
		if err != nil || len(st.Instances) != 250 {
			return false
		}
		for _, in := range st.Instances {
			if in.State != "BACKUP" {
				return false
			}
		}
		return true
	})
	rss, hwm := ringMem(t, d.proc.Pid())
	t.Logf("vipd run on %d lines: 250 instances BACKUP after %v, RSS %.0f MiB, peak %.0f MiB", lines, time.Since(start).Round(time.Millisecond), rss, hwm)
	// Bound: 300 MiB (measured: about 100 MiB).
	if hwm > 300 {
		t.Errorf("vipd run on %d lines: peak RSS %.0f MiB, bound 300 MiB", lines, hwm)
	}
	d.stop()
}
