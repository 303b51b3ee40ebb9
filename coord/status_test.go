package coord

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/coord/etcdtest"
	"github.com/vipd/vipd/internal/clock"
)

// startPublisher runs a publisher with test timings; at the end of the test
// its context is cancelled and no goroutine of it may be left.
func startPublisher(t *testing.T, cli *clientv3.Client, cfg PublisherConfig) (*Publisher, *logs) {
	t.Helper()
	l := &logs{}
	cfg.Logger = slog.New(l)
	if cfg.Node == "" {
		cfg.Node = "n1"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 2 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := StartPublisher(ctx, cli, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-p.done
		noCoordGoroutines(t)
		if t.Failed() {
			t.Logf("publisher log:\n%s", l)
		}
	})
	return p, l
}

// leaseTTL is the remaining TTL of a lease, -1 once it is gone.
func leaseTTL(t *testing.T, cli *clientv3.Client, id int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := cli.TimeToLive(ctx, clientv3.LeaseID(id))
	if err != nil {
		t.Fatalf("TimeToLive: %v", err)
	}
	return resp.TTL
}

func waitStatus(t *testing.T, cli *clientv3.Client, key, value string) *mvccpb.KeyValue {
	t.Helper()
	var kv *mvccpb.KeyValue
	waitFor(t, "status "+value, func() bool {
		kv = getKV(t, cli, key)
		return kv != nil && string(kv.Value) == value
	})
	return kv
}

func TestPublisherKeepsTheStatusUnderALeaseAndCloseDeletesIt(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	p, _ := startPublisher(t, connect(t, Config{Endpoints: srv.Endpoints()}), PublisherConfig{Prefix: "/vipd/", Node: "node-1", TTL: 30 * time.Second})
	if p.Key() != "/vipd/status/node-1" {
		t.Fatalf("key %q", p.Key())
	}
	p.Set([]byte(`{"state":"BACKUP"}`))
	kv := waitStatus(t, admin, p.Key(), `{"state":"BACKUP"}`)
	if kv.Lease == 0 || leaseTTL(t, admin, kv.Lease) <= 0 {
		t.Fatalf("status key without a live lease (lease %x)", kv.Lease)
	}

	// The same status again is not written again; a new one is.
	for range 3 {
		p.Set([]byte(`{"state":"BACKUP"}`))
	}
	p.Set([]byte(`{"state":"MASTER"}`))
	kv = waitStatus(t, admin, p.Key(), `{"state":"MASTER"}`)
	if kv.Version != 2 {
		t.Errorf("the key was written %d times, want 2 (unchanged statuses are not written)", kv.Version)
	}

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if kv := getKV(t, admin, p.Key()); kv != nil {
		t.Fatalf("status key still there after Close: %q", kv.Value)
	}
	if ttl := leaseTTL(t, admin, kv.Lease); ttl != -1 {
		t.Errorf("lease still alive after Close (TTL %d)", ttl)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPublisherStatusExpiresWhenTheNodeCrashes(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	pcli := connect(t, Config{Endpoints: srv.Endpoints()})
	p, _ := startPublisher(t, pcli, PublisherConfig{TTL: 2 * time.Second})
	p.Set([]byte(`{}`))
	kv := waitStatus(t, admin, p.Key(), `{}`)

	pcli.Close() // the process dies: no revoke, no more keepalives
	waitFor(t, "the status key to expire", func() bool { return getKV(t, admin, p.Key()) == nil })
	if ttl := leaseTTL(t, admin, kv.Lease); ttl != -1 {
		t.Errorf("lease still alive (TTL %d)", ttl)
	}
}

func TestPublisherPutsTheStatusAgainAfterTheLeaseIsLost(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lose, back func(*etcdtest.Server)
	}{
		// The member is away longer than the TTL: the client gives the
		// lease up; the restarted member still holds it (a restart
		// extends leases) and would expire it, key and all, later.
		{"member restarted after the TTL", (*etcdtest.Server).Stop, (*etcdtest.Server).Start},
		// The member stays up and expires the lease: the key goes.
		{"node cut off for longer than the TTL", (*etcdtest.Server).Cut, (*etcdtest.Server).Heal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			admin := srv.DirectClient()
			p, l := startPublisher(t, connect(t, Config{Endpoints: srv.Endpoints()}), PublisherConfig{TTL: 2 * time.Second})
			p.Set([]byte(`{"n":1}`))
			old := waitStatus(t, admin, p.Key(), `{"n":1}`).Lease

			lost := l.count("status lease lost") // a loaded machine may lose one early
			tc.lose(srv)
			waitFor(t, "the lease given up", func() bool { return l.count("status lease lost") > lost })
			p.Set([]byte(`{"n":2}`)) // changed meanwhile
			tc.back(srv)

			kv := waitStatus(t, admin, p.Key(), `{"n":2}`)
			if kv.Lease == old || leaseTTL(t, admin, kv.Lease) <= 0 {
				t.Fatalf("status under lease %x (old %x), want a new live lease", kv.Lease, old)
			}
			waitFor(t, "the old lease gone", func() bool { return leaseTTL(t, admin, old) == -1 })
			if kv := getKV(t, admin, p.Key()); kv == nil || string(kv.Value) != `{"n":2}` {
				t.Fatalf("status key lost with the old lease: %v", kv)
			}
			waitFor(t, "the log line", func() bool { return l.count("status published again under a new lease") >= 1 })
		})
	}
}

func TestPublisherNoticesALostLeaseWhileItsPutsFail(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	p, l := startPublisher(t, connect(t, Config{Endpoints: srv.Endpoints()}), PublisherConfig{TTL: 3 * time.Second})
	// Larger than etcd accepts (1.5 MiB): every put fails, and is retried.
	p.Set([]byte(`"` + strings.Repeat("x", 1600<<10) + `"`))
	waitFor(t, "a failed put", func() bool { return l.count("status: put failed") >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	leases, err := admin.Leases(ctx)
	if err != nil || len(leases.Leases) != 1 {
		t.Fatalf("leases %v, %v; want the publisher's one", leases, err)
	}
	if _, err := admin.Revoke(ctx, leases.Leases[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lost lease noticed", func() bool { return l.count("status lease lost") >= 1 })
	p.Set([]byte(`{}`))
	kv := waitStatus(t, admin, p.Key(), `{}`)
	if kv.Lease == int64(leases.Leases[0].ID) {
		t.Fatal("status under the revoked lease")
	}
}

func TestPaceAfter(t *testing.T) {
	for _, tc := range []struct {
		n    int
		min  time.Duration
		rate int
		want time.Duration
	}{
		{100, time.Second, 32 << 10, time.Second},             // a small status: the interval
		{32 << 10, time.Second, 32 << 10, time.Second},        // exactly one second's worth
		{300_000, time.Second, 32 << 10, 9155273437},          // 1000 instances: about 9 s
		{3000, 500 * time.Millisecond, 1000, 3 * time.Second}, // the rate wins
		{3000, 5 * time.Second, 1000, 5 * time.Second},        // the interval wins
		{3000, time.Second, 0, time.Second},                   // no rate: the interval
	} {
		if got := paceAfter(tc.n, tc.min, tc.rate); got != tc.want {
			t.Errorf("paceAfter(%d, %v, %d) = %v, want %v", tc.n, tc.min, tc.rate, got, tc.want)
		}
	}
}

// A changed status waits for the pace (MinInterval, longer for a big
// value), changes in between coalesce into one put; the clock is the
// injected one, so nothing here waits on real time but etcd.
func TestPublisherPacesItsPuts(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	fc := clock.NewFake(time.Unix(1_000_000_000, 0))
	p, _ := startPublisher(t, connect(t, Config{Endpoints: srv.Endpoints()}),
		PublisherConfig{Clock: fc, MinInterval: time.Second, BytesPerSecond: 1000, TTL: 30 * time.Second})
	armedAt := func(want time.Time) {
		t.Helper()
		waitFor(t, "the pace timer armed for "+want.String(), func() bool {
			at, ok := fc.NextDeadline()
			return ok && at.Equal(want)
		})
	}
	still := func(value string) {
		t.Helper()
		if kv := getKV(t, admin, p.Key()); kv == nil || string(kv.Value) != value {
			t.Fatalf("status %v, want %s still (the pace was not kept)", kv, value)
		}
	}

	start := fc.Now()
	p.Set([]byte(`{"n":1}`)) // the first put goes at once
	waitStatus(t, admin, p.Key(), `{"n":1}`)

	p.Set([]byte(`{"n":2}`))
	p.Set([]byte(`{"n":3}`))
	armedAt(start.Add(time.Second))
	still(`{"n":1}`)
	fc.Advance(time.Second)
	kv := waitStatus(t, admin, p.Key(), `{"n":3}`)
	if kv.Version != 2 {
		t.Errorf("the key was written %d times, want 2 (n:2 and n:3 coalesce)", kv.Version)
	}

	// 3000 bytes at 1000 B/s: the next put waits 3 s, not 1.
	fc.Advance(time.Second)
	big := `"` + strings.Repeat("x", 2998) + `"`
	p.Set([]byte(big))
	waitStatus(t, admin, p.Key(), big)
	bigAt := fc.Now()
	p.Set([]byte(`{"n":4}`))
	armedAt(bigAt.Add(3 * time.Second))
	fc.Advance(2 * time.Second)
	still(big)
	fc.Advance(time.Second)
	waitStatus(t, admin, p.Key(), `{"n":4}`)
}

func TestPublisherWaitsForEtcd(t *testing.T) {
	srv := etcdtest.New(t)
	p, _ := startPublisher(t, connect(t, Config{Endpoints: srv.Endpoints()}), PublisherConfig{})
	p.Set([]byte(`{"up":true}`))
	srv.Start()
	waitStatus(t, srv.Client(), p.Key(), `{"up":true}`)
}

func TestStartPublisherWantsANodeName(t *testing.T) {
	for _, node := range []string{"", "a/b"} {
		_, err := StartPublisher(context.Background(), nil, PublisherConfig{Node: node})
		if err == nil || !strings.Contains(err.Error(), "node name") {
			t.Errorf("node %q: %v, want an error about the node name", node, err)
		}
	}
}
