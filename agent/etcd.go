package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/agent/state"
	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/coord"
)

// SourceEtcd is the source of the priority overrides and maintenance the
// store sets (priority/<instance>/<node>, maintenance/<node>[/<instance>]).
const SourceEtcd = "etcd"

// overlayState is what the agent keeps of the store: the last good overlay,
// what of it this node has put through the door, and the rejections already
// logged. One goroutine (the watcher's callback) changes it; Reload reads
// the overlay under mu.
type overlayState struct {
	prefix string

	mu  sync.Mutex
	ov  coord.Overlay     // the last good overlay; zero until the first snapshot
	on  bool              // a snapshot arrived: compose the file with ov
	kvs map[string][]byte // the last snapshot, for a reload to compose again

	// omu serializes etcdOverrides (the watcher's callback and Reload).
	omu sync.Mutex

	// Owned by the snapshot handler.
	logged  map[string]string // rejected key -> error, already logged
	prio    map[string]int    // instance -> priority set through the door
	maint   map[string]string // instance ("" node-wide) -> reason set
	badComp string            // the last composition error logged
	unknown map[string]bool   // keys naming an instance this node does not run, logged
	warned  map[string]bool   // warnings about the store's values, logged
}

func newOverlayState(prefix string) *overlayState {
	return &overlayState{prefix: prefix, logged: map[string]string{}, prio: map[string]int{}, maint: map[string]string{}, unknown: map[string]bool{}}
}

// overlay returns the overlay to compose the file with, and whether there
// is one yet.
func (s *overlayState) overlay() (coord.Overlay, bool) {
	if s == nil {
		return coord.Overlay{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ov, s.on
}

// compose is the model to run after a reload: the new file's, with the
// store's objects on top when etcd is configured and has answered once,
// composed again from the last snapshot's keys (a store object refused for
// the old file may fit the new one). A composition that does not validate
// is refused (the error names the etcd keys or the file's lines); the caller
// keeps the running model. applyMu is held.
func (a *Agent) compose(file *config.Model) (*config.Model, error) {
	s := a.etcd
	if s == nil {
		return file, nil
	}
	s.mu.Lock()
	prev, kvs, on := s.ov, s.kvs, s.on
	s.mu.Unlock()
	if !on {
		return file, nil
	}
	m, ds, ov := coord.ComposeFrom(file, coord.BuildFrom(s.prefix, kvs, prev), prev)
	if err := ds.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ov = ov
	s.mu.Unlock()
	return m, nil
}

// etcdSnapshot takes a full snapshot of the keys under the prefix: the
// overlay is rebuilt from it (a bad value keeps its last good value and is
// logged once, with a metric), the composed model goes through the same
// plan and apply as a reload, and this node's priority overrides and
// maintenance follow the store.
func (a *Agent) etcdSnapshot(ctx context.Context, rev int64, kvs map[string][]byte) {
	s := a.etcd
	s.mu.Lock()
	prev, last, on := s.ov, s.kvs, s.on
	s.mu.Unlock()
	if on && s.badComp == "" && maps.EqualFunc(last, kvs, bytes.Equal) {
		// A watch restart re-reads the prefix: nothing changed, nothing
		// to compose or apply (a maintenance that waited for its instance
		// is tried again).
		a.etcdOverrides(prev.For(a.opts.NodeName))
		return
	}
	ov := coord.BuildFrom(s.prefix, kvs, prev)

	a.applyMu.Lock()
	file := a.fileModel
	if a.closed || file == nil {
		a.applyMu.Unlock()
		return
	}
	// A store object the composed model's errors are about is refused like
	// a value that does not decode (its last good version stays); what is
	// left applies.
	m, ds, ov := coord.ComposeFrom(file, ov, prev)
	a.logRejections(ov, rev)
	if err := ds.Err(); err != nil {
		a.applyMu.Unlock()
		if s.badComp != err.Error() {
			s.badComp = err.Error()
			a.log.Error("etcd: the configuration with the store's objects does not validate: running configuration unchanged", "err", err, "revision", rev)
			a.etcdRejected()
		}
		// The overlay's priorities and maintenance still apply: they do
		// not depend on the objects.
	} else {
		s.badComp = ""
		s.mu.Lock()
		s.ov, s.on, s.kvs = ov, true, kvs
		s.mu.Unlock()
		a.saveEtcdSnapshot(rev, kvs)
		p := a.applyLocked(m)
		a.applyMu.Unlock()
		if len(p) > 0 {
			a.log.Info("etcd: configuration applied", "revision", rev, "changes", len(p))
		}
	}
	a.etcdOverrides(ov.For(a.opts.NodeName))
}

// logRejections logs each refused key once (until its value changes) and
// counts it.
func (a *Agent) logRejections(ov coord.Overlay, rev int64) {
	s := a.etcd
	seen := map[string]bool{}
	for _, r := range ov.Rejected {
		seen[r.Key] = true
		if s.logged[r.Key] == r.Err.Error() {
			continue
		}
		s.logged[r.Key] = r.Err.Error()
		a.log.Error("etcd: value rejected", "key", r.Key, "err", r.Err, "last_good_kept", r.Kept, "revision", rev)
		a.etcdRejected()
	}
	for k := range s.logged {
		if !seen[k] {
			delete(s.logged, k)
		}
	}
	// A warning (a keyword ignored, or one vipd reads but does not act on) is logged once
	// while its value stays.
	warned := map[string]bool{}
	for _, w := range ov.Warnings {
		text := w.String()
		warned[text] = true
		if !s.warned[text] {
			a.log.Warn("etcd: " + text)
		}
	}
	s.warned = warned
}

// etcdOverrides makes this node's priority overrides and maintenance from
// the store what the door holds for SourceEtcd: set what is new or changed,
// clear what is gone.
func (a *Agent) etcdOverrides(n coord.NodeOverrides) {
	s := a.etcd
	s.omu.Lock()
	defer s.omu.Unlock()
	for inst, p := range n.Priorities {
		if s.prio[inst] == p {
			continue
		}
		if err := a.SetPriorityOverride(inst, SourceEtcd, p); err != nil {
			a.log.Error("etcd: priority override refused", "instance", inst, "err", err)
			continue
		}
		s.prio[inst] = p
	}
	for inst := range maps.Clone(s.prio) {
		if _, ok := n.Priorities[inst]; !ok {
			a.ClearPriorityOverride(inst, SourceEtcd)
			delete(s.prio, inst)
		}
	}
	want := maps.Clone(n.InstanceMaintenance)
	if n.Maintenance != "" {
		want[""] = n.Maintenance
	}
	for inst, reason := range want {
		if r, ok := s.maint[inst]; ok && r == reason {
			continue
		}
		if err := a.SetMaintenance(SourceEtcd, inst, reason, true); err != nil {
			// An instance this node does not run (yet): tried again at
			// the next snapshot or reload.
			a.log.Debug("etcd: maintenance not applied", "instance", inst, "err", err)
			continue
		}
		s.maint[inst] = reason
	}
	for inst := range maps.Clone(s.maint) {
		if _, ok := want[inst]; !ok {
			if err := a.SetMaintenance(SourceEtcd, inst, "", false); err == nil {
				delete(s.maint, inst)
			}
		}
	}
	a.reportUnknown(n)
}

// reportUnknown logs once, with the rejected-values metric, each priority
// or maintenance key for this node that names an instance it does not run.
// The value is kept: it takes effect if the instance appears (a
// config/instances key put later, a reload).
func (a *Agent) reportUnknown(n coord.NodeOverrides) {
	if !a.applied.Load() {
		return // before the first apply no instance runs yet
	}
	s := a.etcd
	keys := map[string]string{} // key -> instance
	for inst := range n.Priorities {
		keys[coord.PriorityKey(s.prefix, inst, a.opts.NodeName)] = inst
	}
	for inst := range n.InstanceMaintenance {
		keys[coord.MaintenanceKey(s.prefix, a.opts.NodeName, inst)] = inst
	}
	a.mu.Lock()
	for k, inst := range keys {
		if a.running[inst] != nil {
			delete(keys, k)
		}
	}
	a.mu.Unlock()
	for k, inst := range keys {
		if !s.unknown[k] {
			s.unknown[k] = true
			a.log.Warn("etcd: value rejected: the key names an instance this node does not run (kept; it applies if the instance appears)",
				"key", k, "instance", inst)
			a.etcdRejected()
		}
	}
	for k := range s.unknown {
		if _, ok := keys[k]; !ok {
			delete(s.unknown, k)
		}
	}
}

// etcdSide is the running etcd connection: the client, the watcher of the
// prefix and the status publisher.
type etcdSide struct {
	cli     *clientv3.Client
	pub     *coord.Publisher
	cancel  context.CancelFunc
	done    sync.WaitGroup
	metrics *coord.Metrics
	stop    sync.Once
}

// connectEtcd makes the etcd client (lazily: an unreachable etcd delays
// nothing). Its error is a setting that cannot work (a missing certificate,
// a user file readable by others): the start fails, before any address is
// touched, as for a bad --config.
func (a *Agent) connectEtcd() error {
	a.etcdCfg = coord.Config{Endpoints: a.opts.EtcdEndpoints, Prefix: a.opts.EtcdPrefix,
		CACert: a.opts.EtcdCACert, Cert: a.opts.EtcdCert, Key: a.opts.EtcdKey, UserFile: a.opts.EtcdUserFile, Logger: a.log}
	cli, err := coord.Connect(a.etcdCfg)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	a.etcdSide.cli = cli
	return nil
}

// startEtcd follows the prefix and publishes this node's status under a
// lease. It runs after the first apply, so the file's model is in force
// first.
func (a *Agent) startEtcd() error {
	if a.etcdSide == nil || a.etcdSide.cli == nil {
		return nil
	}
	prefix, cli, cfg := a.opts.EtcdPrefix, a.etcdSide.cli, a.etcdCfg
	ctx, cancel := context.WithCancel(context.Background())
	side := a.etcdSide
	side.cancel = cancel
	w := coord.NewWatcher(cli, coord.WatcherConfig{Prefix: prefix, Logger: a.log, Metrics: side.metrics},
		func(rev int64, kvs map[string][]byte) { a.etcdSnapshot(ctx, rev, kvs) })
	side.done.Add(1)
	go func() { defer side.done.Done(); _ = w.Run(ctx) }()
	pub, err := coord.StartPublisher(ctx, cli, coord.PublisherConfig{Prefix: prefix, Node: a.opts.NodeName, Logger: a.log})
	if err != nil {
		a.log.Error("etcd: status not published", "err", err)
	} else {
		side.pub = pub
		side.done.Add(1)
		go func() { defer side.done.Done(); a.publishStatus(ctx, pub) }()
	}
	a.log.Info("etcd: following the store", "endpoints", a.opts.EtcdEndpoints, "prefix", prefix)
	// One read to name the cause of a failure etcd's client reports only as
	// a timeout (a wrong CA, a refused certificate, a bad password).
	side.done.Add(1)
	go func() {
		defer side.done.Done()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		if err := coord.Check(cctx, cli, cfg); err != nil && ctx.Err() == nil {
			a.log.Warn("etcd: first read failed; retrying in the background", "err", err)
		}
	}()
	return nil
}

// publishStatus hands the publisher this node's status at start and after
// every change of the state stream (the publisher coalesces and writes only
// what changed).
func (a *Agent) publishStatus(ctx context.Context, pub *coord.Publisher) {
	_, events := a.Subscribe(ctx)
	put := func() {
		if b, err := json.Marshal(a.Status()); err == nil {
			pub.Set(b)
		}
	}
	put()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			// Drain a burst before publishing once.
			for more := true; more; {
				select {
				case _, ok := <-events:
					if !ok {
						return
					}
				default:
					more = false
				}
			}
			put()
		}
	}
}

// stopEtcd ends the etcd side. graceful deletes the status key at once
// (a stop); otherwise (a restart, an upgrade) it expires with its lease,
// and the next start publishes again.
func (a *Agent) stopEtcd(graceful bool) {
	side := a.etcdSide
	if side == nil || side.cli == nil {
		return
	}
	side.stop.Do(func() { a.stopEtcdOnce(side, graceful) })
}

func (a *Agent) stopEtcdOnce(side *etcdSide, graceful bool) {
	if side.cancel == nil { // connected, never started
		_ = side.cli.Close()
		return
	}
	if graceful && side.pub != nil {
		if err := side.pub.Close(); err != nil {
			a.log.Warn("etcd: status key left to expire with its lease", "err", err)
		}
	}
	side.cancel()
	side.done.Wait()
	_ = side.cli.Close()
}

// etcdRejected counts a value of the store that was refused.
func (a *Agent) etcdRejected() {
	if a.etcdSide != nil {
		a.etcdSide.metrics.RejectedValue()
	}
}

// etcdMaintenance writes the operator's maintenance into the store (vipd
// maint with etcd configured): maintenance/<node>[/<instance>], put or
// deleted. Every node's watcher then applies it, and it survives restarts.
func (a *Agent) etcdMaintenance(ctx context.Context, req api.MaintRequest) error {
	node := req.Node
	if node == "" {
		node = a.opts.NodeName
	}
	key := coord.MaintenanceKey(a.opts.EtcdPrefix, node, req.Instance)
	ctx, cancel := context.WithTimeout(ctx, etcdRequestTimeout)
	defer cancel()
	if !req.On {
		if _, err := a.etcdSide.cli.Delete(ctx, key); err != nil {
			return fmt.Errorf("etcd: delete %s: %w", key, err)
		}
		return nil
	}
	reason := req.Reason
	if reason == "" {
		reason = "maintenance"
	}
	if _, err := a.etcdSide.cli.Put(ctx, key, reason); err != nil {
		return fmt.Errorf("etcd: put %s: %w", key, err)
	}
	return nil
}

// etcdRequestTimeout bounds the CLI's writes to etcd.
const etcdRequestTimeout = 3 * time.Second

// etcdSnapshotFile is the last good snapshot of the store in --state-dir:
// a start while etcd is unreachable runs on it (the store's instances,
// priorities and maintenance) instead of on the file alone, so that a
// restart moves nothing even then.
const etcdSnapshotFile = "etcd-snapshot.json"

type savedSnapshot struct {
	Revision int64             `json:"revision"`
	Saved    time.Time         `json:"saved"`
	KVs      map[string]string `json:"kvs"`
}

// saveEtcdSnapshot writes kvs to the state directory (atomically; a
// failure is logged and the run goes on).
func (a *Agent) saveEtcdSnapshot(rev int64, kvs map[string][]byte) {
	if a.opts.StateDir == "" {
		return
	}
	sv := savedSnapshot{Revision: rev, Saved: time.Now().UTC(), KVs: make(map[string]string, len(kvs))}
	for k, v := range kvs {
		sv.KVs[k] = string(v)
	}
	b, err := json.Marshal(sv)
	if err == nil {
		err = state.WriteFile(a.opts.StateDir, etcdSnapshotFile, b)
	}
	if err != nil {
		a.log.Warn("etcd: cannot save the store's last good state; a start without etcd will run on the file alone", "dir", a.opts.StateDir, "err", err)
	}
}

// resumeEtcd composes the file's model with the store's last good state
// saved by a previous run, when there is one: the start runs on it until
// etcd answers. It returns the model to apply first and what this node's
// overrides are in it.
func (a *Agent) resumeEtcd(file *config.Model) (*config.Model, coord.NodeOverrides, bool) {
	s := a.etcd
	if s == nil || a.opts.StateDir == "" {
		return file, coord.NodeOverrides{}, false
	}
	path := filepath.Join(a.opts.StateDir, etcdSnapshotFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("etcd: the saved store state is unreadable; starting on the file alone", "file", path, "err", err)
		}
		return file, coord.NodeOverrides{}, false
	}
	var sv savedSnapshot
	if err := json.Unmarshal(b, &sv); err != nil {
		a.log.Warn("etcd: the saved store state is unreadable; starting on the file alone", "file", path, "err", err)
		return file, coord.NodeOverrides{}, false
	}
	kvs := make(map[string][]byte, len(sv.KVs))
	for k, v := range sv.KVs {
		kvs[k] = []byte(v)
	}
	m, ds, ov := coord.ComposeFrom(file, coord.BuildFrom(s.prefix, kvs, coord.Overlay{}), coord.Overlay{})
	if err := ds.Err(); err != nil {
		a.log.Warn("etcd: the saved store state does not fit this configuration; starting on the file alone", "file", path, "err", err)
		return file, coord.NodeOverrides{}, false
	}
	s.mu.Lock()
	s.ov, s.on, s.kvs = ov, true, kvs
	s.mu.Unlock()
	a.log.Info("etcd: starting on the store's last good state until etcd answers", "revision", sv.Revision, "saved", sv.Saved.Format(time.RFC3339), "keys", len(kvs))
	return m, ov.For(a.opts.NodeName), true
}
