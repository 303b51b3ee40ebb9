package metrics

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vipd/vipd/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeStream is an api.Stream: a fixed snapshot, events sent by the test,
// counters set by the test.
type fakeStream struct {
	snap   api.Status
	events chan api.Event

	mu       sync.Mutex
	counters api.Counters
}

func (f *fakeStream) Subscribe(ctx context.Context) (api.Status, <-chan api.Event) {
	return f.snap, f.events
}

func (f *fakeStream) Counters() api.Counters {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counters
}

func (f *fakeStream) setCounters(c api.Counters) {
	f.mu.Lock()
	f.counters = c
	f.mu.Unlock()
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func vi1(state string, eff int, since time.Time, scriptOK bool) api.InstanceStatus {
	return api.InstanceStatus{
		Name: "VI_1", VRID: 51, Interface: "eth0", State: state, Priority: 100, EffectivePriority: eff,
		VIPs: []string{"192.0.2.10/32", "192.0.2.11/24"}, Since: since, Cause: "test",
		Tracked: []api.TrackedStatus{{Kind: "script", Name: "chk_haproxy", OK: scriptOK, Weight: -20}},
	}
}

func vi6() api.InstanceStatus {
	return api.InstanceStatus{
		Name: "VI_6", VRID: 52, Interface: "eth1", State: "MASTER", Priority: 150, EffectivePriority: 150,
		VIPs: []string{}, Since: t0, Cause: "test",
		Tracked: []api.TrackedStatus{{Kind: "script", Name: "chk_six", OK: true}},
	}
}

func baseCounters() api.Counters {
	return api.Counters{
		Instances: []api.InstanceCounters{
			{Name: "VI_1", Interface: "eth0", VRID: 51, AdvertsSent: 0, AdvertsReceived: 120, MasterDownExpiries: 0},
			{Name: "VI_6", Interface: "eth1", VRID: 52, AdvertsSent: 300, PriorityZeroReceived: 1, BecomeMaster: 1, VIPHeals: 2},
		},
		Drops: []api.DropCount{
			{Reason: "auth_pass", Interface: "eth0", VRID: 51, Count: 3},
			{Reason: "bad_ttl", Interface: "eth0", VRID: 51, Count: 1},
			{Reason: "addr_count", Interface: "eth0", VRID: 51, Count: 2},
			{Reason: "truncated", Interface: "eth0", VRID: 0, Count: 4},
			{Reason: "unknown_vrid", Interface: "eth1", VRID: 99, Count: 7},
		},
	}
}

// start runs a Collector over a fake stream with the snapshot of VI_1
// (BACKUP) and VI_6 (MASTER, no VIPs).
func start(t *testing.T) (*fakeStream, *Collector) {
	t.Helper()
	f := &fakeStream{
		snap:   api.Status{Node: "node-a", Instances: []api.InstanceStatus{vi1("BACKUP", 100, t0, true), vi6()}},
		events: make(chan api.Event, 16),
	}
	f.setCounters(baseCounters())
	c := New(f, Options{NodeName: "node-a", Version: "v0.7.0", Commit: "abc1234", GoVersion: "go1.26.8"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	waitFor(t, "the snapshot", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.synced })
	return f, c
}

// send hands events to the collector and waits until it applied them.
func send(t *testing.T, f *fakeStream, c *Collector, evs ...api.Event) {
	t.Helper()
	for _, ev := range evs {
		f.events <- ev
	}
	last := evs[len(evs)-1].Seq
	waitFor(t, fmt.Sprintf("event %d", last), func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.seq >= last })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// scrape returns the text exposition of c alone (no runtime collectors).
func scrape(t *testing.T, c *Collector) string {
	t.Helper()
	srv := httptest.NewServer(newMux(newRegistry(c, false), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	return get(t, srv.URL+"/metrics")
}

func get(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4") // the classic text format, stable for golden files
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api/metrics -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("scrape differs from %s (go test ./api/metrics -update rewrites it after review):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// TestSnapshotTransitionRemove follows a snapshot, then a transition with
// scripts, notify runs and new counters, then an instance's removal, and
// compares each scrape with its golden file.
func TestSnapshotTransitionRemove(t *testing.T) {
	f, c := start(t)
	golden(t, "snapshot.prom", scrape(t, c))

	t1 := t0.Add(90 * time.Second)
	st := vi1("MASTER", 100, t1, false)
	send(t, f, c,
		api.Event{Seq: 1, Time: t1, Kind: api.EventScript, Name: "chk_haproxy", OK: false, Duration: 20 * time.Millisecond},
		api.Event{Seq: 2, Time: t1, Kind: api.EventInstance, Instance: "VI_1", Status: ptr(vi1("BACKUP", 80, t0, false))},
		api.Event{Seq: 3, Time: t1, Kind: api.EventTransition, Instance: "VI_1", Status: &st,
			From: "BACKUP", To: "MASTER", Cause: "master down timer expired", CauseKind: api.CauseMasterDown},
		api.Event{Seq: 4, Time: t1, Kind: api.EventNotify, Instance: "VI_1", Name: "/etc/keepalived/notify.sh", State: "MASTER", OK: true, Duration: 50 * time.Millisecond},
		api.Event{Seq: 5, Time: t1, Kind: api.EventNotify, Group: "G1", Name: "/etc/keepalived/group.sh", State: "MASTER", OK: false, Duration: 2 * time.Second},
		api.Event{Seq: 6, Time: t1, Kind: api.EventVIPHeal, Instance: "VI_1", Detail: "192.0.2.10/32"},
		api.Event{Seq: 7, Time: t1, Kind: api.EventPeerDrop, Instance: "VI_1", Reason: "auth_pass", Peer: "192.0.2.3"},
	)
	cnt := baseCounters()
	cnt.Instances[0].MasterDownExpiries = 1
	cnt.Instances[0].BecomeMaster = 1
	cnt.Instances[0].AdvertsSent = 3
	cnt.Instances[0].VIPHeals = 1
	cnt.Drops[0].Count = 5
	f.setCounters(cnt)
	got := scrape(t, c)
	golden(t, "transition.prom", got)
	for _, want := range []string{
		`vipd_vrrp_state{interface="eth0",state="MASTER",vrid="51",vrrp_instance="VI_1"} 1`,
		`vipd_vrrp_state{interface="eth0",state="BACKUP",vrid="51",vrrp_instance="VI_1"} 0`,
		`vipd_vrrp_transitions_total{cause_kind="master_down",from="BACKUP",interface="eth0",to="MASTER",vrid="51",vrrp_instance="VI_1"} 1`,
		`keepalived_vrrp_state{iname="VI_1",intf="eth0",ip_address="192.0.2.10",vrid="51"} 2`,
		`keepalived_vrrp_state{iname="VI_1",intf="eth0",ip_address="192.0.2.11/24",vrid="51"} 2`,
		`keepalived_vrrp_state{iname="VI_6",intf="eth1",ip_address="",vrid="52"} 2`,
		`keepalived_authentication_failure_total{iname="VI_1",intf="eth0",vrid="51"} 5`,
		`keepalived_script_status{name="chk_haproxy"} 0`,
		`vipd_notify_failures_total{state="MASTER",sync_group="G1",vrrp_instance=""} 1`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}

	// A second transition of the same kind counts on the same series.
	st2 := vi1("BACKUP", 100, t1.Add(time.Second), true)
	send(t, f, c, api.Event{Seq: 8, Kind: api.EventTransition, Instance: "VI_1", Status: &st2,
		From: "MASTER", To: "BACKUP", CauseKind: api.CauseHigherPriority})
	st3 := vi1("MASTER", 100, t1.Add(2*time.Second), true)
	send(t, f, c, api.Event{Seq: 9, Kind: api.EventTransition, Instance: "VI_1", Status: &st3,
		From: "BACKUP", To: "MASTER", CauseKind: api.CauseMasterDown})
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP vipd_vrrp_transitions_total State transitions of a VRRP instance, by old state, new state and kind of cause.
# TYPE vipd_vrrp_transitions_total counter
vipd_vrrp_transitions_total{cause_kind="higher_priority",from="MASTER",interface="eth0",to="BACKUP",vrid="51",vrrp_instance="VI_1"} 1
vipd_vrrp_transitions_total{cause_kind="master_down",from="BACKUP",interface="eth0",to="MASTER",vrid="51",vrrp_instance="VI_1"} 2
`), "vipd_vrrp_transitions_total"); err != nil {
		t.Error(err)
	}

	// VI_6 goes away: its gauges, counters and the script only it tracked
	// go with it.
	cnt.Instances = cnt.Instances[:1]
	f.setCounters(cnt)
	send(t, f, c, api.Event{Seq: 10, Kind: api.EventInstanceRemoved, Instance: "VI_6", Status: ptr(vi6())})
	got = scrape(t, c)
	golden(t, "removed.prom", got)
	for _, gone := range []string{`VI_6`, `chk_six`} {
		if strings.Contains(got, gone) {
			t.Errorf("scrape still has %s after its removal", gone)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestKeepalivedStateNumbers checks keepalived's numbers for every state.
func TestKeepalivedStateNumbers(t *testing.T) {
	for state, want := range map[string]string{"INIT": "0", "BACKUP": "1", "MASTER": "2", "FAULT": "3", "STOP": "98"} {
		f := &fakeStream{snap: api.Status{Instances: []api.InstanceStatus{{
			Name: "VI", VRID: 7, Interface: "eth0", State: state, VIPs: []string{"2001:db8::7/128", "2001:db8::8/64"},
		}}}, events: make(chan api.Event)}
		c := New(f, Options{})
		c.applySnapshot(f.snap)
		exp := fmt.Sprintf(`
# HELP keepalived_vrrp_state State of a VRRP instance in keepalived's numbers: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT, 98 STOP; one series per VIP (keepalived exporter name).
# TYPE keepalived_vrrp_state gauge
keepalived_vrrp_state{iname="VI",intf="eth0",ip_address="2001:db8::7",vrid="7"} %[1]s
keepalived_vrrp_state{iname="VI",intf="eth0",ip_address="2001:db8::8/64",vrid="7"} %[1]s
`, want)
		if err := testutil.CollectAndCompare(c, strings.NewReader(exp), "keepalived_vrrp_state"); err != nil {
			t.Errorf("%s: %v", state, err)
		}
	}
}

// TestDropReasonsExist keeps the keepalived mapping in step with vipd's
// drop reasons, read from the source of vrrp/wire, which declares them all
// in drop.go (not imported: api/metrics needs only the strings the agent's
// counters carry).
func TestDropReasonsExist(t *testing.T) {
	const src = "../../vrrp/wire/drop.go"
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("drop reasons' source: %v", err)
	}
	re := regexp.MustCompile(`(?m)^\s*\w+\s+DropReason\s*=\s*"([a-z0-9_]+)"`)
	known := map[string]bool{}
	for _, m := range re.FindAllSubmatch(b, -1) {
		known[string(m[1])] = true
	}
	if len(known) < 10 {
		t.Fatalf("found only %d drop reasons in %s: %v", len(known), src, known)
	}
	for r := range keepalivedDrops {
		if !known[r] {
			t.Errorf("keepalivedDrops maps %q, which is not a wire.DropReason", r)
		}
	}
}

// TestPromtoolCheckMetrics lints a full scrape (with the Go runtime and
// process collectors, as Serve serves it) with promtool check metrics.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: run scripts/deps.sh (as root; it installs Debian's prometheus package, which ships /usr/bin/promtool)")
	}
	f, c := start(t)
	st := vi1("MASTER", 100, t0, true)
	send(t, f, c,
		api.Event{Seq: 1, Kind: api.EventTransition, Instance: "VI_1", Status: &st, From: "BACKUP", To: "MASTER", CauseKind: api.CauseMasterDown},
		api.Event{Seq: 2, Kind: api.EventScript, Name: "chk_haproxy", OK: true, Duration: time.Millisecond},
		api.Event{Seq: 3, Kind: api.EventNotify, Instance: "VI_1", State: "MASTER", OK: true, Duration: time.Millisecond},
	)
	srv := httptest.NewServer(newMux(newRegistry(c, true), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
	if s := strings.TrimSpace(out.String()); s != "" {
		t.Errorf("promtool check metrics: %s", s)
	}
}

// TestServe serves on a free port: /healthz, /metrics, and a clean stop.
func TestServe(t *testing.T) {
	_, c := start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, c, slog.New(slog.DiscardHandler)) }()
	var health string
	waitFor(t, "/healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		health = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if health != "ok\n" {
		t.Errorf("/healthz = %q", health)
	}
	body := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{"vipd_build_info{", "keepalived_up 1", "go_goroutines", "go_gc_heap_live_bytes ", "process_start_time_seconds"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Silent connections: served MaxScrapeConns at a time, the rest wait
	// in the backlog without a goroutine each.
	before := runtime.NumGoroutine()
	var silent []net.Conn
	for range 4 * MaxScrapeConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	time.Sleep(200 * time.Millisecond) // let the server take what it takes
	if grown := runtime.NumGoroutine() - before; grown > MaxScrapeConns+16 {
		t.Errorf("%d silent connections grew goroutines by %d, want at most %d", len(silent), grown, MaxScrapeConns+16)
	}
	for _, c := range silent {
		c.Close()
	}
	resp, err := http.Post("http://"+addr+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after its context ended: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// TestServeBindError: an address in use is an error naming it, at once.
func TestServeBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := New(&fakeStream{events: make(chan api.Event)}, Options{})
	err = Serve(context.Background(), ln.Addr().String(), c, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot listen on "+ln.Addr().String()) {
		t.Fatalf("Serve on a bound address: %v", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("error does not wrap the net error: %v", err)
	}
	if err := Serve(context.Background(), "", c, nil); err == nil {
		t.Error("Serve with no address: no error")
	}
}

// TestInvalidLabelValue: a name that is not valid UTF-8 fails its own
// series, not the daemon nor the rest of the scrape.
func TestInvalidLabelValue(t *testing.T) {
	f := &fakeStream{snap: api.Status{Instances: []api.InstanceStatus{
		{Name: "bad\xff", VRID: 9, Interface: "eth0", State: "MASTER"}, vi6(),
	}}, events: make(chan api.Event, 4)}
	c := New(f, Options{})
	c.applySnapshot(f.snap)
	c.apply(api.Event{Seq: 1, Kind: api.EventScript, Name: "s\xff", OK: true})
	c.apply(api.Event{Seq: 2, Kind: api.EventNotify, Instance: "bad\xff", State: "MASTER", OK: true})
	st := api.InstanceStatus{Name: "bad\xff", VRID: 9, Interface: "eth0", State: "BACKUP"}
	c.apply(api.Event{Seq: 3, Kind: api.EventTransition, Status: &st, From: "MASTER", To: "BACKUP"})
	got := scrape(t, c)
	if !strings.Contains(got, `vipd_vrrp_state{interface="eth1",state="MASTER",vrid="52",vrrp_instance="VI_6"} 1`) {
		t.Errorf("the valid instance is missing from the scrape:\n%s", got)
	}
}
