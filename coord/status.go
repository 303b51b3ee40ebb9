package coord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/internal/clock"
)

// PublisherConfig configures a Publisher. Zero values take the defaults.
type PublisherConfig struct {
	// Prefix is --etcd-prefix ("/vipd" when empty).
	Prefix string
	// Node is this node's name; the key is <prefix>/status/<node>.
	Node string
	// TTL is the lease's time to live (default 10 s, rounded up to whole
	// seconds; etcd may raise it to its own minimum): how long the key
	// outlives a node that died without a word.
	TTL time.Duration
	// RequestTimeout bounds a grant, put or revoke (default 2 s).
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between two failed attempts
	// (defaults 200 ms and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// MinInterval is the least time between two puts of the status
	// (default DefaultStatusMinInterval). Changes in between coalesce.
	MinInterval time.Duration
	// BytesPerSecond caps the write rate: after a put of n bytes the next
	// waits at least n/BytesPerSecond (default DefaultStatusBytesPerSecond).
	// A node with 1000 instances has a status of about 350 KB, and
	// it was put after every burst of changes before the pacing.
	BytesPerSecond int
	// Clock times the backoff and the pacing (clock.System when nil).
	Clock clock.Clock
	// Logger gets a line when the lease is lost and when a new one holds
	// the key again (slog.Default when nil).
	Logger *slog.Logger
}

// DefaultStatusTTL is the status lease's default time to live.
const DefaultStatusTTL = 10 * time.Second

// The status key's default pacing: at most one put a second, and no more
// than 32 KiB/s on average (a 350 KB status waits about 11 s).
const (
	DefaultStatusMinInterval    = time.Second
	DefaultStatusBytesPerSecond = 32 << 10
)

// paceAfter is how long the publisher waits after a put of n bytes before
// the next: minInterval, or longer for a large value so that the puts stay
// under bytesPerSecond on average.
func paceAfter(n int, minInterval time.Duration, bytesPerSecond int) time.Duration {
	d := minInterval
	if bytesPerSecond > 0 {
		if w := time.Duration(int64(n) * int64(time.Second) / int64(bytesPerSecond)); w > d {
			d = w
		}
	}
	return d
}

// Publisher keeps this node's status at <prefix>/status/<node> under a
// lease it keeps alive. The key disappears when the node dies (the lease
// expires, TTL after the last keepalive) and at once on Close (the lease
// is revoked). When the lease is lost (etcd away longer than the TTL), it
// grants a new one and puts the status again.
type Publisher struct {
	cli *clientv3.Client
	key string
	ttl int64 // seconds
	retrying
	minInterval    time.Duration
	bytesPerSecond int

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	closed sync.Once

	mu     sync.Mutex
	latest []byte
	lease  clientv3.LeaseID // the lease in use, 0 while none
	stale  clientv3.LeaseID // a lost lease that may still hold the key, 0 if none
}

// StartPublisher checks cfg and starts publishing; nothing is put until
// the first Set. Cancelling ctx stops it the way a crash would (the key
// stays until its lease expires); Close stops it and deletes the key.
func StartPublisher(ctx context.Context, cli *clientv3.Client, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Node == "" || strings.Contains(cfg.Node, "/") {
		return nil, fmt.Errorf("status publisher: node name %q: must be non-empty without /", cfg.Node)
	}
	ttl := cfg.TTL
	if ttl <= 0 {
		ttl = DefaultStatusTTL
	}
	p := &Publisher{
		cli:            cli,
		key:            StatusKey(cfg.Prefix, cfg.Node),
		ttl:            int64((ttl + time.Second - 1) / time.Second),
		retrying:       newRetrying(cfg.RequestTimeout, cfg.MinBackoff, cfg.MaxBackoff, cfg.Clock, cfg.Logger),
		minInterval:    cfg.MinInterval,
		bytesPerSecond: cfg.BytesPerSecond,
		kick:           make(chan struct{}, 1),
		done:           make(chan struct{}),
	}
	if p.minInterval <= 0 {
		p.minInterval = DefaultStatusMinInterval
	}
	if p.bytesPerSecond <= 0 {
		p.bytesPerSecond = DefaultStatusBytesPerSecond
	}
	ctx, p.cancel = context.WithCancel(ctx)
	go func() {
		defer close(p.done)
		p.run(ctx)
	}()
	return p, nil
}

// Key is the key the status is published at.
func (p *Publisher) Key() string { return p.key }

// Set publishes status (JSON). Calls coalesce: only the last one counts,
// and it is written only when it differs from what etcd holds. Set never
// blocks on etcd.
func (p *Publisher) Set(status []byte) {
	b := bytes.Clone(status)
	p.mu.Lock()
	p.latest = b
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close stops publishing and revokes the lease, which deletes the key (and
// a lost lease the key may still be under). It returns a revoke's error;
// the key then goes when its lease expires. It takes at most
// RequestTimeout.
func (p *Publisher) Close() error {
	var err error
	p.closed.Do(func() {
		p.cancel()
		<-p.done
		p.mu.Lock()
		leases := []clientv3.LeaseID{p.lease, p.stale}
		p.lease, p.stale = 0, 0
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		defer cancel()
		for _, id := range leases {
			if id == 0 {
				continue
			}
			if _, rerr := p.cli.Revoke(ctx, id); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) && err == nil {
				err = fmt.Errorf("status %s: revoke lease %x: %w", p.key, int64(id), rerr)
			}
		}
	})
	return err
}

// run keeps a lease and the status under it until ctx ends. It always
// listens to the keepalive, also while it waits to retry a failed request,
// so a lease lost during a retry is noticed.
func (p *Publisher) run(ctx context.Context) {
	var (
		lease     clientv3.LeaseID
		alive     <-chan *clientv3.LeaseKeepAliveResponse
		stopAlive = func() {}
		written   []byte           // what etcd holds
		writtenAt clientv3.LeaseID // under which lease
		stale     clientv3.LeaseID // a lost lease, revoked once the key has moved
		failures  int
		retry     clock.Timer
		retryC    <-chan time.Time // set while waiting to retry
		nextPut   time.Time        // a changed status waits for this (pacing)
		pace      clock.Timer
		paceC     <-chan time.Time // set while a changed status waits for nextPut
	)
	defer func() {
		stopAlive()
		if retry != nil {
			retry.Stop()
		}
		if pace != nil {
			pace.Stop()
		}
	}()
	// drop forgets the lease in use. If the key is under it, it is revoked
	// once the key has moved to the next one.
	drop := func(cause string) {
		p.log.Warn("status lease lost: granting a new one", "key", p.key, "lease", fmt.Sprintf("%x", int64(lease)), "cause", cause)
		stopAlive()
		if stale == 0 || writtenAt == lease {
			stale = lease
		}
		lease, alive = 0, nil
		p.mu.Lock()
		p.lease, p.stale = 0, stale
		p.mu.Unlock()
	}
	// step brings etcd to the latest status under a live lease; false
	// when a request failed.
	step := func() bool {
		if lease == 0 {
			id, ch, stop, err := p.grant(ctx)
			if err != nil {
				p.log.Debug("status lease: grant failed", "key", p.key, "err", explain(err))
				return false
			}
			lease, alive, stopAlive = id, ch, stop
			p.mu.Lock()
			p.lease = lease
			p.mu.Unlock()
		}
		p.mu.Lock()
		want := p.latest
		p.mu.Unlock()
		if want != nil && (writtenAt != lease || !bytes.Equal(want, written)) {
			// A changed status waits its turn; a key to put under a new
			// lease (the old one's is gone or going) does not.
			if writtenAt == lease {
				if wait := nextPut.Sub(p.clock.Now()); wait > 0 {
					if paceC == nil {
						if pace == nil {
							pace = p.clock.NewTimer(wait)
						} else {
							pace.Reset(wait)
						}
						paceC = pace.C()
					}
					return true
				}
			}
			rctx, cancel := context.WithTimeout(ctx, p.timeout)
			_, err := p.cli.Put(rctx, p.key, string(want), clientv3.WithLease(lease))
			cancel()
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				drop("etcd does not know it")
			}
			if err != nil {
				p.log.Debug("status: put failed", "key", p.key, "err", explain(err))
				return false
			}
			written, writtenAt = want, lease
			nextPut = p.clock.Now().Add(paceAfter(len(want), p.minInterval, p.bytesPerSecond))
			if stale != 0 {
				p.log.Info("status published again under a new lease", "key", p.key, "lease", fmt.Sprintf("%x", int64(lease)))
			}
		}
		if stale != 0 && (want == nil || writtenAt == lease) {
			p.revokeStale(ctx, stale)
			stale = 0
			p.mu.Lock()
			p.stale = 0
			p.mu.Unlock()
		}
		return true
	}
	for {
		if retryC == nil {
			if step() {
				failures = 0
			} else {
				if ctx.Err() != nil {
					return
				}
				failures++
				d := backoff(failures, p.min, p.max)
				if retry == nil {
					retry = p.clock.NewTimer(d)
				} else {
					retry.Reset(d)
				}
				retryC = retry.C()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick: // a new status: written now, or at the retry
		case <-retryC:
			retryC = nil
		case <-paceC:
			paceC = nil
		case _, ok := <-alive:
			if !ok {
				// The keepalive gave up: etcd said the lease expired, or
				// did not answer for a whole TTL. The key is gone or about
				// to go; a new lease takes it over.
				drop("keepalive ended")
			}
		}
	}
}

// grant grants a lease and starts keeping it alive.
func (p *Publisher) grant(ctx context.Context) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, func(), error) {
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	resp, err := p.cli.Grant(rctx, p.ttl)
	cancel()
	if err != nil {
		return 0, nil, nil, err
	}
	kctx, stop := context.WithCancel(ctx)
	ch, err := p.cli.KeepAlive(kctx, resp.ID)
	if err != nil {
		stop()
		return 0, nil, nil, err
	}
	return resp.ID, ch, stop, nil
}

// revokeStale revokes a lost lease that may still live on the server (the
// keepalive gives up after a TTL without answers, but a restarted member
// extends its leases). It runs once the key is under the new lease, so the
// revoke cannot delete it. Best effort: the lease expires anyway.
func (p *Publisher) revokeStale(ctx context.Context, id clientv3.LeaseID) {
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	_, _ = p.cli.Revoke(rctx, id)
}

// sleepCtx waits d on c; false when ctx ended first.
func sleepCtx(ctx context.Context, c clock.Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
