package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/internal/clock"
)

// WatcherConfig configures a Watcher. Zero values take the defaults.
type WatcherConfig struct {
	// Prefix is --etcd-prefix ("/vipd" when empty).
	Prefix string
	// All includes status/ and arbiter/ in the snapshots. Without it they
	// are left out: they change often and are not configuration.
	All bool
	// Dir, when set, is the one directory under the prefix to follow
	// ("arbiter/"): only its keys are read, watched and delivered.
	Dir string

	// RequestTimeout bounds a read (default 2 s).
	RequestTimeout time.Duration
	// ProbeInterval is how often a cheap read checks that etcd still
	// answers while the watch is quiet (default 2 s). A watch alone cannot
	// tell: clientv3 reconnects a broken watch silently.
	ProbeInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between two failed reads
	// (defaults 200 ms and 5 s); the wait doubles from one to the other,
	// with jitter, and never gives up.
	MinBackoff, MaxBackoff time.Duration

	// Clock times the backoff and the probes (clock.System when nil).
	Clock clock.Clock
	// Logger gets one line per outage and one per recovery (slog.Default
	// when nil).
	Logger *slog.Logger
	// Metrics are updated when set.
	Metrics *Metrics
	// OnHealth, when set, is called on every change of Health, from the
	// watcher's goroutine.
	OnHealth func(Health)
}

// The defaults of WatcherConfig.
const (
	DefaultProbeInterval = 2 * time.Second
	DefaultMinBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
)

// Health is whether the watcher reaches etcd.
type Health struct {
	// Up is true while the last read or watch of etcd succeeded.
	Up bool
	// Since is when the current state began: when etcd answered again, or
	// when it last answered before an outage (the watcher's start if it
	// never did).
	Since time.Time
	// Err is why etcd is not up; nil while Up and before the first read.
	Err error
	// Revision is the revision of the last snapshot delivered, 0 before
	// the first.
	Revision int64
}

// Watcher follows every key under the prefix and hands a consistent
// snapshot of them to a callback: once after the first read, then after
// every batch of changes (a burst comes as one snapshot).
//
// It reads the prefix with one Get and watches from that revision + 1,
// requiring a leader so a member cut off from its quorum is noticed. When
// the watch ends for any reason (a compaction, the channel closing, a
// leader lost, a server error) or the probe read fails, it reads the whole
// prefix again and watches anew, retrying with capped exponential backoff
// for as long as it runs: a change missed while etcd was away arrives with
// the next successful read, never later.
type Watcher struct {
	cli   *clientv3.Client
	dir   string
	all   bool
	probe time.Duration
	retrying
	metrics  *Metrics
	onHealth func(Health)
	deliver  func(rev int64, kvs map[string]*mvccpb.KeyValue)

	beforeWatch func() // a test's hook, called before each Watch

	mu        sync.Mutex
	state     int       // stateStarting, stateUp, stateDown
	lastOK    time.Time // when etcd last answered
	health    Health
	delivered bool // a snapshot was delivered at least once
	rev       int64
}

const (
	stateStarting = iota // not reached etcd yet, no failure yet
	stateUp
	stateDown
)

// NewWatcher returns a watcher of cfg.Prefix on cli that calls snapshot
// with the revision and every key (full key, prefix included) and value.
// The map is snapshot's to keep: the watcher never touches it again.
// snapshot runs on the watcher's goroutine; while it runs, changes queue.
func NewWatcher(cli *clientv3.Client, cfg WatcherConfig, snapshot func(rev int64, kvs map[string][]byte)) *Watcher {
	return NewKVWatcher(cli, cfg, func(rev int64, kvs map[string]*mvccpb.KeyValue) {
		vals := make(map[string][]byte, len(kvs))
		for k, kv := range kvs {
			vals[k] = kv.Value
		}
		snapshot(rev, vals)
	})
}

// NewKVWatcher is NewWatcher for a caller that needs each key's revisions
// and lease (the arbiter): the snapshot maps every key to its KeyValue.
func NewKVWatcher(cli *clientv3.Client, cfg WatcherConfig, snapshot func(rev int64, kvs map[string]*mvccpb.KeyValue)) *Watcher {
	dir := WatchPrefix(cfg.Prefix)
	if cfg.Dir != "" {
		dir += strings.TrimLeft(cfg.Dir, "/")
		cfg.All = true
	}
	w := &Watcher{
		cli:      cli,
		dir:      dir,
		all:      cfg.All,
		probe:    cfg.ProbeInterval,
		retrying: newRetrying(cfg.RequestTimeout, cfg.MinBackoff, cfg.MaxBackoff, cfg.Clock, cfg.Logger),
		metrics:  cfg.Metrics,
		onHealth: cfg.OnHealth,
		deliver:  snapshot,
	}
	if w.probe <= 0 {
		w.probe = DefaultProbeInterval
	}
	if w.metrics == nil {
		w.metrics = NewMetrics()
	}
	w.metrics.setUp(false)
	w.health.Since = w.clock.Now()
	return w
}

// Health returns whether the watcher reaches etcd now.
func (w *Watcher) Health() Health {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.health
}

// Run follows the prefix until ctx ends, then returns ctx's error. Every
// goroutine it starts has ended when it returns.
func (w *Watcher) Run(ctx context.Context) error {
	failures := 0 // reads failed in a row, or watches that died young
	for {
		if failures > 0 {
			if !sleepCtx(ctx, w.clock, backoff(failures, w.min, w.max)) {
				return ctx.Err()
			}
		}
		rev, kvs, err := w.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.setDown(err)
			w.log.Debug("etcd read failed", "prefix", w.dir, "err", err)
			failures++
			continue
		}
		w.setUp(rev)
		w.send(rev, maps.Clone(kvs)) // follow goes on changing kvs

		started := w.clock.Now()
		reason, err := w.follow(ctx, rev, kvs)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.metrics.restart(reason)
		switch reason {
		case RestartUnreachable, RestartNoLeader:
			w.setDown(err)
		default:
			w.log.Info("etcd watch restarted: reading the prefix again", "prefix", w.dir, "reason", reason, "err", err)
		}
		// A watch that lived long re-reads at once; one that keeps dying
		// young (a server refusing watches) backs off like a failed read.
		if w.clock.Now().Sub(started) >= w.max {
			failures = 0
		} else {
			failures++
		}
	}
}

// read gets the whole prefix.
func (w *Watcher) read(ctx context.Context) (int64, map[string]*mvccpb.KeyValue, error) {
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), w.timeout)
	defer cancel()
	resp, err := w.cli.Get(rctx, w.dir, clientv3.WithPrefix())
	if err != nil {
		return 0, nil, w.why(err)
	}
	kvs := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); w.wanted(k) {
			kvs[k] = kv
		}
	}
	return resp.Header.Revision, kvs, nil
}

// wanted reports whether key belongs in the snapshots.
func (w *Watcher) wanted(key string) bool {
	if w.all {
		return true
	}
	rest := strings.TrimPrefix(key, w.dir)
	return !strings.HasPrefix(rest, "status/") && !strings.HasPrefix(rest, "arbiter/")
}

// follow watches from rev+1, applying changes to kvs and delivering
// snapshots, until the watch must be restarted; it returns why.
func (w *Watcher) follow(ctx context.Context, rev int64, kvs map[string]*mvccpb.KeyValue) (string, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	probes := make(chan error)
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.prober(wctx, probes)
	}()
	// clientv3's Watch blocks until its stream takes the request, which is
	// for as long as etcd is away if it left just now: call it aside, so
	// that the probe can still report the outage.
	opened := make(chan clientv3.WatchChan, 1)
	wg.Add(1)
	if w.beforeWatch != nil {
		w.beforeWatch()
	}
	go func() {
		defer wg.Done()
		opened <- w.cli.Watch(wctx, w.dir, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	}()

	var wch clientv3.WatchChan // nil until opened: its case waits
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case wch = <-opened:
			opened = nil
		case err := <-probes:
			if err != nil {
				return RestartUnreachable, err
			}
			w.setUp(w.revision())
		case resp, ok := <-wch:
			changed := false
			for {
				if !ok {
					w.flush(changed, kvs)
					return RestartClosed, errors.New("watch channel closed")
				}
				c, reason, err := w.apply(resp, kvs)
				changed = changed || c
				if reason != "" {
					w.flush(changed, kvs)
					return reason, err
				}
				w.setUp(w.revision()) // etcd answered
				// Take what else is already there: a burst is one snapshot.
				select {
				case resp, ok = <-wch:
					continue
				default:
				}
				break
			}
			w.flush(changed, kvs)
		}
	}
}

// apply applies one watch response to kvs. It reports whether kvs changed,
// and why the watch must restart ("" while it goes on).
func (w *Watcher) apply(resp clientv3.WatchResponse, kvs map[string]*mvccpb.KeyValue) (bool, string, error) {
	if err := resp.Err(); err != nil || resp.Canceled {
		switch {
		case resp.CompactRevision != 0 || errors.Is(err, rpctypes.ErrCompacted):
			return false, RestartCompacted, fmt.Errorf("revision %d compacted", resp.CompactRevision)
		case errors.Is(err, rpctypes.ErrNoLeader):
			return false, RestartNoLeader, explain(err)
		}
		if err == nil {
			err = errors.New(resp.CancelReason)
		}
		return false, RestartCanceled, explain(err)
	}
	changed := false
	for _, ev := range resp.Events {
		if ev.Kv.ModRevision > w.revision() {
			w.setRevision(ev.Kv.ModRevision)
		}
		k := string(ev.Kv.Key)
		if !w.wanted(k) {
			continue
		}
		switch ev.Type {
		case mvccpb.PUT:
			kvs[k] = ev.Kv
		case mvccpb.DELETE:
			delete(kvs, k)
		}
		changed = true
	}
	if resp.IsProgressNotify() && resp.Header.Revision > w.revision() {
		w.setRevision(resp.Header.Revision)
	}
	return changed, "", nil
}

// flush delivers a copy of kvs when it changed.
func (w *Watcher) flush(changed bool, kvs map[string]*mvccpb.KeyValue) {
	if changed {
		w.send(w.revision(), maps.Clone(kvs))
	}
}

// send delivers a snapshot the watcher no longer touches.
func (w *Watcher) send(rev int64, kvs map[string]*mvccpb.KeyValue) {
	w.mu.Lock()
	w.delivered = true
	w.rev = rev
	w.health.Revision = rev
	w.mu.Unlock()
	w.metrics.setRevision(rev)
	w.deliver(rev, kvs)
}

func (w *Watcher) revision() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rev
}

func (w *Watcher) setRevision(rev int64) {
	w.mu.Lock()
	w.rev = rev
	w.mu.Unlock()
}

// why turns a read's error into the cause an operator can act on.
//
// A timeout says so, and keeps what gRPC knows of the connection when it is
// more than the deadline (a TLS handshake refused, a connection refused).
func (w *Watcher) why(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		msg := err.Error()
		if msg == context.DeadlineExceeded.Error() || !strings.Contains(msg, "connection") {
			return fmt.Errorf("no answer within %v", w.timeout)
		}
		return explain(fmt.Errorf("no answer within %v: %w", w.timeout, err))
	}
	return explain(err)
}

// prober reads one key every ProbeInterval and reports the result, until
// ctx ends.
func (w *Watcher) prober(ctx context.Context, out chan<- error) {
	t := w.clock.NewTimer(w.probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		rctx, cancel := context.WithTimeout(ctx, w.timeout)
		_, err := w.cli.Get(rctx, w.dir)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			err = w.why(err)
		}
		select {
		case out <- err:
		case <-ctx.Done():
			return
		}
		t.Reset(w.probe)
	}
}

// setUp records that etcd answered, logging the recovery after an outage.
func (w *Watcher) setUp(rev int64) {
	now := w.clock.Now()
	w.mu.Lock()
	w.lastOK = now
	if w.state == stateUp {
		w.mu.Unlock()
		return
	}
	prev, was := w.state, w.health
	w.state = stateUp
	w.health = Health{Up: true, Since: now, Revision: was.Revision}
	h := w.health
	w.mu.Unlock()
	w.metrics.setUp(true)
	if prev == stateStarting {
		w.log.Info("etcd reached", "prefix", w.dir, "revision", rev)
	} else {
		w.log.Info("etcd back", "prefix", w.dir, "revision", rev, "down_for", now.Sub(was.Since).Round(time.Millisecond))
	}
	if w.onHealth != nil {
		w.onHealth(h)
	}
}

// setDown records that etcd did not answer, logging the start of an outage
// once.
func (w *Watcher) setDown(err error) {
	w.mu.Lock()
	if w.state == stateDown {
		w.health.Err = err
		w.mu.Unlock()
		return
	}
	// The outage started when etcd last answered, or with the watcher.
	since := w.lastOK
	if w.state == stateStarting {
		since = w.health.Since
	}
	w.state = stateDown
	w.health = Health{Up: false, Since: since, Err: err, Revision: w.health.Revision}
	h := w.health
	delivered := w.delivered
	w.mu.Unlock()
	w.metrics.setUp(false)
	if delivered {
		w.log.Warn("etcd unreachable: running on the last good configuration", "since", since.Format(time.RFC3339), "revision", h.Revision, "err", err)
	} else {
		w.log.Warn("etcd unreachable: running on the file configuration until it answers", "since", since.Format(time.RFC3339), "err", err)
	}
	if w.onHealth != nil {
		w.onHealth(h)
	}
}

// backoff is the wait before retry n (n >= 1): min doubled n-1 times,
// capped at max, then drawn uniformly from its upper half so that a fleet
// of nodes that lost etcd together does not come back in step.
func backoff(n int, min, max time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
