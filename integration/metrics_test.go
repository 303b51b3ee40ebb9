package integration

// vipd's /metrics seen from inside its node while it fails over from a real keepalived master
// and goes into maintenance: the state gauges, the transition counters with their cause, the
// keepalived-exporter twins, and promtool's lint of the exposition.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// mtSample is one series of a Prometheus text exposition.
type mtSample struct {
	name   string
	labels map[string]string
	value  float64
}

// mtScrape is one parsed scrape, with its text for promtool and failure messages.
type mtScrape struct {
	text    string
	samples []mtSample
}

// mtParse parses the Prometheus text format (comments skipped, optional timestamps ignored).
func mtParse(text string) (mtScrape, error) {
	s := mtScrape{text: text}
	for no, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		smp := mtSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i < 0 {
			return s, fmt.Errorf("line %d: no value: %q", no+1, line)
		} else {
			smp.name, rest = rest[:i], rest[i:]
		}
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for {
				rest = strings.TrimLeft(rest, " ,")
				if strings.HasPrefix(rest, "}") {
					rest = rest[1:]
					break
				}
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					return s, fmt.Errorf("line %d: bad label in %q", no+1, line)
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				closed := false
				for k := 0; k < len(rest); k++ {
					c := rest[k]
					if c == '\\' && k+1 < len(rest) {
						k++
						switch rest[k] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(rest[k])
						}
						continue
					}
					if c == '"' {
						rest = rest[k+1:]
						closed = true
						break
					}
					val.WriteByte(c)
				}
				if !closed {
					return s, fmt.Errorf("line %d: unterminated label value in %q", no+1, line)
				}
				smp.labels[key] = val.String()
			}
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return s, fmt.Errorf("line %d: no value: %q", no+1, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return s, fmt.Errorf("line %d: value %q: %v", no+1, f[0], err)
		}
		smp.value = v
		s.samples = append(s.samples, smp)
	}
	return s, nil
}

// find returns the series of name whose labels include every pair of want.
func (s mtScrape) find(name string, want map[string]string) []mtSample {
	var out []mtSample
	for _, smp := range s.samples {
		if smp.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if got, has := smp.labels[k]; !has || got != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, smp)
		}
	}
	return out
}

// value returns the value of the one series of name matching want; ok is false when there is
// none, and the test fails when there are several.
func (s mtScrape) value(t *testing.T, name string, want map[string]string) (float64, bool) {
	t.Helper()
	found := s.find(name, want)
	switch len(found) {
	case 0:
		return 0, false
	case 1:
		return found[0].value, true
	}
	t.Fatalf("%d series of %s match %v, want one: %v", len(found), name, want, found)
	return 0, false
}

// lines returns the exposition lines of the given metric names, for failure messages.
func (s mtScrape) lines(names ...string) string {
	var out []string
	for _, line := range strings.Split(s.text, "\n") {
		for _, n := range names {
			if strings.HasPrefix(line, n+"{") || strings.HasPrefix(line, n+" ") {
				out = append(out, line)
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// mtGet fetches http://addr/metrics from inside the node's network namespace: the connection is
// opened on a thread switched into the namespace (Node.Do), so the test needs neither curl nor a
// helper binary.
func mtGet(n *lab.Node, addr string) (string, error) {
	return mtGetWithin(n, addr, 2*time.Second, 3*time.Second)
}

// mtGetWithin is mtGet with its dial and whole-request timeouts.
func mtGetWithin(n *lab.Node, addr string, dial, whole time.Duration) (string, error) {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			var conn net.Conn
			err := n.Do(func() error {
				var err error
				conn, err = (&net.Dialer{Timeout: dial}).DialContext(ctx, network, address)
				return err
			})
			return conn, err
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: whole}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s: %s", resp.Status, body)
	}
	return string(body), nil
}

// mtWaitScrape scrapes until cond holds on a scrape, and returns that scrape; it fails the test
// at the deadline with the last scrape's lines of the named metrics.
func mtWaitScrape(t *testing.T, n *lab.Node, addr string, timeout time.Duration, what string, cond func(mtScrape) bool, show ...string) mtScrape {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last mtScrape
	var lastErr error
	for {
		text, err := mtGet(n, addr)
		if err == nil {
			var s mtScrape
			s, err = mtParse(text)
			if err == nil {
				last = s
				if cond(s) {
					return s
				}
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last scrape error %v; last scrape:\n%s", timeout, what, lastErr, last.lines(show...))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mtPromtool lints a scrape with `promtool check metrics`.
func mtPromtool(t *testing.T, phase string, s mtScrape) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: install it with scripts/deps.sh (Debian package prometheus): %v", err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(s.text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics on the scrape %s: %v\n%s", phase, err, out.String())
	}
}

// TestMetricsDuringFailover: vipd (priority 100) backs up a keepalived master (150) and serves
// /metrics inside its namespace. A scrape shows BACKUP; keepalived is killed and vipd takes over
// after Master_Down_Interval: the state gauge moves to MASTER, the BACKUP->MASTER transition
// counter with cause master_down goes up by one, and keepalived_vrrp_state says 2. Then `vipd
// maint on`: FAULT, keepalived number 3, a MASTER->FAULT maintenance transition. promtool accepts
// every scrape.
func TestMetricsDuringFailover(t *testing.T) {
	lab.Keepalived(t)
	_, nv, nk := twoNodes(t)
	const addr = "127.0.0.1:9650"
	conf := func(prio int) instanceConf {
		return instanceConf{Name: "VI_1", VRID: 51, Priority: prio, Version: 3, AdvertInt: "0.2", VIPs: []string{"10.99.0.100/24"}}
	}
	dk := startKeepalived(t, nk, renderConf(t, "node2", true, conf(150)))
	waitVIP(t, 10*time.Second, "10.99.0.100", nk, nv)
	dv := startVipd(t, nv, renderConf(t, "node1", false, conf(100)), "--metrics-listen", addr)
	lab.Eventually(t, 5*time.Second, "vipd BACKUP", func() bool { return dv.state("VI_1") == "BACKUP" })

	L := map[string]string{"vrrp_instance": "VI_1", "interface": "eth0", "vrid": "51"}
	with := func(extra ...string) map[string]string {
		m := map[string]string{}
		for k, v := range L {
			m[k] = v
		}
		for k := 0; k+1 < len(extra); k += 2 {
			m[extra[k]] = extra[k+1]
		}
		return m
	}
	ka := map[string]string{"iname": "VI_1", "intf": "eth0", "vrid": "51", "ip_address": "10.99.0.100/24"}
	state := func(s mtScrape, st string) float64 {
		v, _ := s.value(t, "vipd_vrrp_state", with("state", st))
		return v
	}
	show := []string{"vipd_vrrp_state", "vipd_vrrp_transitions_total", "keepalived_vrrp_state", "vipd_vrrp_become_master_total", "keepalived_become_master_total", "keepalived_up"}
	// counter reads a counter, 0 when the series does not exist yet.
	counter := func(s mtScrape, name string, labels map[string]string) float64 {
		v, _ := s.value(t, name, labels)
		return v
	}

	// 1. BACKUP behind the keepalived master.
	s1 := mtWaitScrape(t, nv, addr, 5*time.Second, "a scrape showing VI_1 BACKUP", func(s mtScrape) bool {
		return state(s, "BACKUP") == 1
	}, show...)
	for _, st := range []string{"INIT", "MASTER", "FAULT", "STOP"} {
		if v, ok := s1.value(t, "vipd_vrrp_state", with("state", st)); !ok || v != 0 {
			t.Errorf("BACKUP: vipd_vrrp_state{state=%q} = %v (present %v), want 0:\n%s", st, v, ok, s1.lines(show...))
		}
	}
	if v, ok := s1.value(t, "keepalived_vrrp_state", ka); !ok || v != 1 {
		t.Errorf("BACKUP: keepalived_vrrp_state%v = %v (present %v), want 1 (keepalived's BACKUP):\n%s", ka, v, ok, s1.lines(show...))
	}
	if v, ok := s1.value(t, "keepalived_up", nil); !ok || v != 1 {
		t.Errorf("keepalived_up = %v (present %v), want 1", v, ok)
	}
	// Behind a keepalived master sending every 200 ms, the received counter moves.
	mtWaitScrape(t, nv, addr, 2*time.Second, "vipd_vrrp_adverts_received_total to count keepalived's adverts", func(s mtScrape) bool {
		return counter(s, "vipd_vrrp_adverts_received_total", L) > 0 && state(s, "BACKUP") == 1
	}, "vipd_vrrp_adverts_received_total", "vipd_vrrp_state")
	mtPromtool(t, "as BACKUP", s1)
	toMaster := with("from", "BACKUP", "to", "MASTER", "cause_kind", "master_down")
	toMaster1 := counter(s1, "vipd_vrrp_transitions_total", toMaster)
	become1 := counter(s1, "vipd_vrrp_become_master_total", L)
	kaBecome1 := counter(s1, "keepalived_become_master_total", map[string]string{"iname": "VI_1", "intf": "eth0", "vrid": "51"})
	sent1 := counter(s1, "vipd_vrrp_adverts_sent_total", L)

	// 2. keepalived dies (kill -9, no priority 0): vipd takes over after Master_Down_Interval.
	_ = dk.proc.Kill()
	nk.Exec("ip", "addr", "del", "10.99.0.100/24", "dev", "eth0")
	waitVIP(t, 3*time.Second, "10.99.0.100", nv, nk)
	s2 := mtWaitScrape(t, nv, addr, 3*time.Second, "a scrape showing VI_1 MASTER", func(s mtScrape) bool {
		return state(s, "MASTER") == 1
	}, show...)
	if v := state(s2, "BACKUP"); v != 0 {
		t.Errorf("MASTER: vipd_vrrp_state{state=BACKUP} = %v, want 0", v)
	}
	if v := counter(s2, "vipd_vrrp_transitions_total", toMaster); v != toMaster1+1 {
		t.Errorf("vipd_vrrp_transitions_total%v = %v after the failover, want %v + 1:\n%s", toMaster, v, toMaster1, s2.lines(show...))
	}
	if v := counter(s2, "vipd_vrrp_become_master_total", L); v != become1+1 {
		t.Errorf("vipd_vrrp_become_master_total = %v, want %v + 1", v, become1)
	}
	if v := counter(s2, "keepalived_become_master_total", map[string]string{"iname": "VI_1", "intf": "eth0", "vrid": "51"}); v != kaBecome1+1 {
		t.Errorf("keepalived_become_master_total = %v, want %v + 1", v, kaBecome1)
	}
	if v, ok := s2.value(t, "keepalived_vrrp_state", ka); !ok || v != 2 {
		t.Errorf("MASTER: keepalived_vrrp_state%v = %v (present %v), want 2 (keepalived's MASTER):\n%s", ka, v, ok, s2.lines(show...))
	}
	if v, ok := s2.value(t, "vipd_vrrp_vip_held", with("address", "10.99.0.100/24")); !ok || v != 1 {
		t.Errorf("MASTER: vipd_vrrp_vip_held for 10.99.0.100/24 = %v (present %v), want 1:\n%s", v, ok, s2.lines("vipd_vrrp_vip_held"))
	}
	// Adverts go out as MASTER: wait for the counter to move rather than assuming a scrape
	// landed after the first one.
	mtWaitScrape(t, nv, addr, 2*time.Second, "vipd_vrrp_adverts_sent_total to grow as MASTER", func(s mtScrape) bool {
		return counter(s, "vipd_vrrp_adverts_sent_total", L) > sent1
	}, "vipd_vrrp_adverts_sent_total")
	mtPromtool(t, "as MASTER", s2)

	// 3. Maintenance: MASTER -> FAULT.
	toFault := with("from", "MASTER", "to", "FAULT", "cause_kind", "maintenance")
	toFault2 := counter(s2, "vipd_vrrp_transitions_total", toFault)
	chCLI(t, dv, "maint", "on", "--reason", "metrics test")
	s3 := mtWaitScrape(t, nv, addr, 3*time.Second, "a scrape showing VI_1 FAULT", func(s mtScrape) bool {
		return state(s, "FAULT") == 1
	}, show...)
	if v := state(s3, "MASTER"); v != 0 {
		t.Errorf("FAULT: vipd_vrrp_state{state=MASTER} = %v, want 0", v)
	}
	if v := counter(s3, "vipd_vrrp_transitions_total", toFault); v != toFault2+1 {
		t.Errorf("vipd_vrrp_transitions_total%v = %v after maint on, want %v + 1:\n%s", toFault, v, toFault2, s3.lines(show...))
	}
	if v := counter(s3, "vipd_vrrp_transitions_total", toMaster); v != toMaster1+1 {
		t.Errorf("the BACKUP->MASTER counter changed to %v on maint on, want %v", v, toMaster1+1)
	}
	if v, ok := s3.value(t, "keepalived_vrrp_state", ka); !ok || v != 3 {
		t.Errorf("FAULT: keepalived_vrrp_state%v = %v (present %v), want 3 (keepalived's FAULT):\n%s", ka, v, ok, s3.lines(show...))
	}
	if v, _ := s3.value(t, "vipd_vrrp_vip_held", with("address", "10.99.0.100/24")); v != 0 {
		t.Errorf("FAULT: vipd_vrrp_vip_held for 10.99.0.100/24 = %v, want 0", v)
	}
	if v := counter(s3, "vipd_vrrp_priority_zero_sent_total", L); v < 1 {
		t.Errorf("maint on as MASTER: vipd_vrrp_priority_zero_sent_total = %v, want >= 1 (graceful hand-over)", v)
	}
	mtPromtool(t, "in maintenance", s3)
}
