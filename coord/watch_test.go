package coord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/coord/etcdtest"
	"github.com/vipd/vipd/internal/clock"
)

type snap struct {
	rev int64
	kvs map[string][]byte
}

// recorder keeps what a watcher delivered and reported.
type recorder struct {
	mu     sync.Mutex
	snaps  []snap
	health []Health
}

func (r *recorder) snapshot(rev int64, kvs map[string][]byte) {
	r.mu.Lock()
	r.snaps = append(r.snaps, snap{rev, kvs})
	r.mu.Unlock()
}

func (r *recorder) onHealth(h Health) {
	r.mu.Lock()
	r.health = append(r.health, h)
	r.mu.Unlock()
}

func (r *recorder) all() []snap {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]snap(nil), r.snaps...)
}

func (r *recorder) last() (snap, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return snap{}, false
	}
	return r.snaps[len(r.snaps)-1], true
}

// ups is the sequence of Up values reported to OnHealth.
func (r *recorder) ups() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []bool
	for _, h := range r.health {
		out = append(out, h.Up)
	}
	return out
}

type watched struct {
	w *Watcher
	r *recorder
	m *Metrics
	l *logs
}

// startWatcher runs a watcher with test timings until the test ends, then
// checks that Run returns and leaves no goroutine behind.
func startWatcher(t *testing.T, cli *clientv3.Client, cfg WatcherConfig) watched {
	t.Helper()
	return startWatcherHooked(t, cli, cfg, nil)
}

// startWatcherHooked is startWatcher with a hook run before each Watch.
func startWatcherHooked(t *testing.T, cli *clientv3.Client, cfg WatcherConfig, beforeWatch func()) watched {
	t.Helper()
	wd := watched{r: &recorder{}, m: NewMetrics(), l: &logs{}}
	cfg.Logger = slog.New(wd.l)
	cfg.Metrics = wd.m
	cfg.OnHealth = wd.r.onHealth
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 100 * time.Millisecond
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second // no false outage on a loaded machine
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	wd.w = NewWatcher(cli, cfg, wd.r.snapshot)
	wd.w.beforeWatch = beforeWatch
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wd.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return after its context was cancelled")
		}
		noCoordGoroutines(t)
		if t.Failed() {
			t.Logf("watcher log:\n%s", wd.l)
		}
	})
	return wd
}

// store reads the prefix as the watcher should see it (status/ and
// arbiter/ left out).
func store(t *testing.T, cli *clientv3.Client) (int64, map[string][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := cli.Get(ctx, "/vipd/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	kvs := map[string][]byte{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if !strings.HasPrefix(k, "/vipd/status/") && !strings.HasPrefix(k, "/vipd/arbiter/") {
			kvs[k] = kv.Value
		}
	}
	return resp.Header.Revision, kvs
}

func put(t *testing.T, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := cli.Put(ctx, k, v)
	if err != nil {
		t.Fatalf("Put %s: %v", k, err)
	}
	return resp.Header.Revision
}

func del(t *testing.T, cli *clientv3.Client, k string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := cli.Delete(ctx, k)
	if err != nil {
		t.Fatalf("Delete %s: %v", k, err)
	}
	return resp.Header.Revision
}

func sameKVs(a, b map[string][]byte) bool { return maps.EqualFunc(a, b, bytes.Equal) }

func keysOf(m map[string][]byte) string {
	var ks []string
	for k, v := range m {
		ks = append(ks, k+"="+string(v))
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// waitSnapshot waits until the last snapshot delivered is the store's
// content now, and returns it.
func waitSnapshot(t *testing.T, wd watched, cli *clientv3.Client, what string) snap {
	t.Helper()
	var s snap
	waitFor(t, what, func() bool {
		_, want := store(t, cli)
		var ok bool
		s, ok = wd.r.last()
		return ok && sameKVs(s.kvs, want)
	})
	return s
}

func TestWatcherDeliversTheFirstSnapshotThenEveryChange(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	put(t, admin, "/vipd/config/instances/VI_1", "name: VI_1")
	put(t, admin, "/vipd/priority/VI_1/n1", "200")
	put(t, admin, "/vipd/status/n1", `{"state":"MASTER"}`)
	put(t, admin, "/vipd/arbiter/VI_1", "n1")
	put(t, admin, "/vipd2/config/instances/VI_9", "not ours")
	rev0, want := store(t, admin)

	// No probe: an outage would add a snapshot (the re-read) to count.
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{ProbeInterval: time.Hour})
	waitFor(t, "the first snapshot", func() bool { return len(wd.r.all()) == 1 })
	first := wd.r.all()[0]
	if first.rev != rev0 || !sameKVs(first.kvs, want) {
		t.Fatalf("first snapshot at %d: %s\nwant at %d: %s", first.rev, keysOf(first.kvs), rev0, keysOf(want))
	}
	if h := wd.w.Health(); !h.Up || h.Revision != rev0 {
		t.Errorf("health %+v, want up at revision %d", h, rev0)
	}

	steps := []struct {
		name string
		do   func() int64
	}{
		{"a put", func() int64 { return put(t, admin, "/vipd/maintenance/n1", "disk swap") }},
		{"a delete", func() int64 { return del(t, admin, "/vipd/priority/VI_1/n1") }},
		{"a change of a value", func() int64 { return put(t, admin, "/vipd/config/instances/VI_1", "name: VI_1\npriority: 50") }},
		{"a put after a status change", func() int64 {
			put(t, admin, "/vipd/status/n2", `{"state":"BACKUP"}`)
			return put(t, admin, "/vipd/config/scripts/chk", "script: /bin/true")
		}},
	}
	for _, st := range steps {
		rev := st.do()
		s := waitSnapshot(t, wd, admin, st.name)
		if s.rev != rev {
			t.Errorf("%s: snapshot at revision %d, want %d", st.name, s.rev, rev)
		}
	}
	prev := int64(0)
	for _, s := range wd.r.all() {
		if s.rev <= prev {
			t.Errorf("revisions not increasing: %d after %d", s.rev, prev)
		}
		prev = s.rev
		for k := range s.kvs {
			if strings.Contains(k, "/status/") || strings.Contains(k, "/arbiter/") || strings.HasPrefix(k, "/vipd2") {
				t.Errorf("snapshot at %d holds %s", s.rev, k)
			}
		}
	}
	if n := len(wd.r.all()); n != 1+len(steps) {
		t.Errorf("%d snapshots, want %d (one per change; the status write makes none)", n, 1+len(steps))
	}
	if got := testutil.ToFloat64(wd.m.up); got != 1 {
		t.Errorf("vipd_etcd_up = %v, want 1", got)
	}
	if got, want := testutil.ToFloat64(wd.m.revision), float64(prev); got != want {
		t.Errorf("vipd_etcd_revision = %v, want %v", got, want)
	}
	if ups := wd.r.ups(); len(ups) != 1 || !ups[0] {
		t.Errorf("health changes %v, want one: up", ups)
	}
}

func TestWatcherWithAllKeepsStatusAndArbiter(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	put(t, admin, "/vipd/status/n1", "{}")
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{All: true})
	rev := put(t, admin, "/vipd/arbiter/VI_1", "n1")
	waitFor(t, "the arbiter key", func() bool { s, ok := wd.r.last(); return ok && s.rev == rev })
	s, _ := wd.r.last()
	if len(s.kvs) != 2 {
		t.Fatalf("snapshot %s, want the status and the arbiter key", keysOf(s.kvs))
	}
}

func TestWatcherDeliversATransactionWhole(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{})
	waitFor(t, "the first snapshot", func() bool { return len(wd.r.all()) == 1 })
	const n = 50
	var ops []clientv3.Op
	for i := range n {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("/vipd/priority/VI_%d/n1", i), "100"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := admin.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, wd, admin, "the transaction")
	for _, s := range wd.r.all() {
		if len(s.kvs) != 0 && len(s.kvs) != n {
			t.Errorf("snapshot at %d holds %d of the transaction's %d keys", s.rev, len(s.kvs), n)
		}
	}
}

func TestWatcherRereadsAfterACompactionAndLosesNothing(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.DirectClient() // not through the relay: Cut spares it
	put(t, admin, "/vipd/config/instances/A", "a")
	// No probe: only the watch can notice what happened.
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{ProbeInterval: time.Hour})
	waitSnapshot(t, wd, admin, "the first snapshot")

	// While the watcher's connection is cut, keys change and the history
	// is compacted past its revision: clientv3 resumes the watch from
	// there once the connection is back, and the server refuses.
	srv.Cut()
	put(t, admin, "/vipd/config/instances/B", "b")
	del(t, admin, "/vipd/config/instances/A")
	rev := put(t, admin, "/vipd/maintenance/n1", "disk swap")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := admin.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	srv.Heal()

	waitFor(t, "a restart for the compaction", func() bool {
		return testutil.ToFloat64(wd.m.restarts.WithLabelValues(RestartCompacted)) == 1
	})
	s := waitSnapshot(t, wd, admin, "the snapshot after the re-read")
	if s.rev < rev {
		t.Errorf("snapshot at %d, before the last write %d", s.rev, rev)
	}
	// And it goes on watching.
	put(t, admin, "/vipd/config/instances/C", "c")
	waitSnapshot(t, wd, admin, "a change after the re-read")
}

func TestWatcherReportsACutConnectionAndCatchesUp(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.DirectClient()
	put(t, admin, "/vipd/priority/VI_1/n1", "200")
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{})
	waitSnapshot(t, wd, admin, "the first snapshot")

	srv.Cut()
	waitFor(t, "etcd reported down", func() bool { return !wd.w.Health().Up })
	if got := testutil.ToFloat64(wd.m.up); got != 0 {
		t.Errorf("vipd_etcd_up = %v while cut, want 0", got)
	}
	del(t, admin, "/vipd/priority/VI_1/n1")
	put(t, admin, "/vipd/maintenance/n1", "disk swap")
	srv.Heal()

	waitSnapshot(t, wd, admin, "the changes made during the cut")
	waitFor(t, "etcd reported back", func() bool { return wd.w.Health().Up })
	if got := testutil.ToFloat64(wd.m.up); got != 1 {
		t.Errorf("vipd_etcd_up = %v after the cut, want 1", got)
	}
	if got := testutil.ToFloat64(wd.m.restarts.WithLabelValues(RestartUnreachable)); got < 1 {
		t.Errorf("restarts{unreachable} = %v, want at least 1", got)
	}
	checkHealthChanges(t, wd)
}

// checkHealthChanges checks that the watcher went up, down (at least once:
// a loaded machine may add a false outage), and is up again, with one log
// line per change.
func checkHealthChanges(t *testing.T, wd watched) {
	t.Helper()
	ups := wd.r.ups()
	if len(ups) < 3 || !ups[0] || ups[1] || !ups[len(ups)-1] {
		t.Errorf("health changes %v, want up, down, ..., up", ups)
	}
	downs := 0
	for _, up := range ups {
		if !up {
			downs++
		}
	}
	if n := wd.l.count("etcd unreachable: running on the last good configuration"); n != downs {
		t.Errorf("%d outage lines for %d outages; log:\n%s", n, downs, wd.l)
	}
	if n := wd.l.count("etcd back"); n != downs {
		t.Errorf("%d recovery lines for %d outages; log:\n%s", n, downs, wd.l)
	}
}

func TestWatcherFollowsAServerRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	put(t, admin, "/vipd/config/instances/VI_1", "a")
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{})
	waitSnapshot(t, wd, admin, "the first snapshot")

	srv.Stop()
	waitFor(t, "etcd reported down", func() bool { return !wd.w.Health().Up })
	srv.Start()
	// Changed at once, maybe before the watcher is back.
	put(t, admin, "/vipd/config/instances/VI_1", "b")
	put(t, admin, "/vipd/maintenance/n2", "")
	waitSnapshot(t, wd, admin, "the changes made after the restart")
	waitFor(t, "etcd reported back", func() bool { return wd.w.Health().Up })
	checkHealthChanges(t, wd)
}

func TestWatcherReportsAnOutageWhileItsWatchIsOpening(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.DirectClient()
	put(t, admin, "/vipd/config/instances/VI_1", "a")
	var once sync.Once
	// Cut between the first read and the watch: clientv3's Watch then
	// waits for its stream as long as etcd is away.
	wd := startWatcherHooked(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{}, func() { once.Do(srv.Cut) })
	waitFor(t, "etcd reported down", func() bool { return len(wd.r.ups()) >= 2 })
	put(t, admin, "/vipd/config/instances/VI_1", "b")
	srv.Heal()
	waitSnapshot(t, wd, admin, "the change made during the cut")
	waitFor(t, "etcd reported back", func() bool { return wd.w.Health().Up })
	checkHealthChanges(t, wd)
}

func TestWatcherWithAuthFollowsAServerRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	enableAuth(t, srv.Client())
	cli := connect(t, Config{Endpoints: srv.Endpoints(), UserFile: userFile(t, "vipd:vipdpw", 0o600)})
	put(t, cli, "/vipd/config/instances/VI_1", "a")
	wd := startWatcher(t, cli, WatcherConfig{})
	waitSnapshot(t, wd, cli, "the first snapshot")
	// The restarted member has forgotten the token the watch and the
	// probe use: they must authenticate again.
	srv.Restart()
	put(t, cli, "/vipd/config/instances/VI_1", "b")
	waitSnapshot(t, wd, cli, "a change after the restart")
	put(t, cli, "/vipd/config/instances/VI_1", "c")
	waitSnapshot(t, wd, cli, "another change")
}

func TestWatcherStartsWithEtcdDownAndDeliversOnceItIsUp(t *testing.T) {
	srv := etcdtest.New(t) // not started
	// Reads fail fast while nothing listens.
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{RequestTimeout: 300 * time.Millisecond})
	waitFor(t, "etcd reported down", func() bool { return len(wd.r.ups()) > 0 })
	if ups := wd.r.ups(); ups[0] {
		t.Fatalf("health changes %v, want down first", ups)
	}
	if wd.l.count("etcd unreachable: running on the file configuration") != 1 {
		t.Errorf("want one line for the outage; log:\n%s", wd.l)
	}
	// It keeps trying (a few failed reads at least) and delivers nothing.
	waitFor(t, "a few retries", func() bool { return wd.l.count("etcd read failed") >= 3 })
	if n := wd.l.count("etcd unreachable"); n != 1 {
		t.Errorf("%d lines for one outage, want 1; log:\n%s", n, wd.l)
	}
	if n := len(wd.r.all()); n != 0 {
		t.Fatalf("%d snapshots delivered with etcd down", n)
	}

	srv.Start()
	admin := srv.Client()
	put(t, admin, "/vipd/config/instances/VI_1", "a")
	waitSnapshot(t, wd, admin, "the first snapshot once etcd is up")
	waitFor(t, "etcd reported up", func() bool { return wd.w.Health().Up })
}

func TestWatcherBacksOffExponentiallyWithJitterAndNeverGivesUp(t *testing.T) {
	srv := etcdtest.New(t) // never started
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	const minB, maxB = 100 * time.Millisecond, time.Second
	wd := startWatcher(t, connect(t, Config{Endpoints: srv.Endpoints()}), WatcherConfig{
		Clock: fake, MinBackoff: minB, MaxBackoff: maxB, RequestTimeout: 20 * time.Millisecond,
	})
	base := minB
	for i := 1; i <= 10; i++ {
		var at time.Time
		waitFor(t, fmt.Sprintf("backoff %d", i), func() bool {
			var ok bool
			at, ok = fake.NextDeadline()
			return ok
		})
		d := at.Sub(fake.Now())
		if d < base/2 || d > base {
			t.Errorf("backoff %d: %v, want in [%v, %v]", i, d, base/2, base)
		}
		fake.Advance(d)
		base = min(2*base, maxB)
	}
	if wd.w.Health().Up {
		t.Error("up with etcd down")
	}
}

func TestBackoff(t *testing.T) {
	const minB, maxB = 200 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		n        int
		low, top time.Duration
	}{
		{0, 0, 0},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{2, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 1600 * time.Millisecond, 3200 * time.Millisecond},
		{6, 2500 * time.Millisecond, 5 * time.Second},
		{1000, 2500 * time.Millisecond, 5 * time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff(tc.n, minB, maxB)
			if d < tc.low || d > tc.top {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tc.n, d, tc.low, tc.top)
			}
			seen[d] = true
		}
		if tc.n > 0 && len(seen) < 10 {
			t.Errorf("backoff(%d): %d distinct values in 200, want jitter", tc.n, len(seen))
		}
	}
}

func TestWatcherReportsALeaderLost(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	m0 := c.Members[0]
	admin := m0.DirectClient()
	put(t, admin, "/vipd/config/instances/VI_1", "a")
	// Only member 0, and no probe: the watch itself must notice.
	wd := startWatcher(t, connect(t, Config{Endpoints: m0.Endpoints()}), WatcherConfig{ProbeInterval: time.Hour})
	waitSnapshot(t, wd, admin, "the first snapshot")

	c.Members[1].Stop()
	c.Members[2].Stop()
	waitFor(t, "the leader loss reported", func() bool { return !wd.w.Health().Up })
	if got := testutil.ToFloat64(wd.m.restarts.WithLabelValues(RestartNoLeader)); got != 1 {
		t.Errorf("restarts{no_leader} = %v, want 1", got)
	}

	c.Members[1].Start()
	if err := c.WaitLeader(wait); err != nil {
		t.Fatal(err)
	}
	put(t, admin, "/vipd/maintenance/n1", "x")
	waitSnapshot(t, wd, admin, "a change once the quorum is back")
	waitFor(t, "etcd reported back", func() bool { return wd.w.Health().Up })
}
