package agent

import (
	"context"
	"sync"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/coord"
	"github.com/vipd/vipd/gossip"
	"github.com/vipd/vipd/vrrp"
)

// arbiterSide is the split-brain arbiter as the agent runs it: the gate
// in front of MASTER while etcd is configured and arbitration is on.
type arbiterSide struct {
	arb     *coord.Arbiter
	cancel  context.CancelFunc
	done    chan struct{}
	applied chan struct{} // closed after the first apply (arbiterApplied)
	once    sync.Once
}

// arbiterApplied tells the arbiter the first apply is done: it observes the
// instances now, even if none changed.
func (a *Agent) arbiterApplied() {
	a.mu.Lock()
	side := a.arbiter
	a.mu.Unlock()
	if side != nil {
		side.once.Do(func() { close(side.applied) })
	}
}

// arbiterGate adapts the arbiter to vrrp.Gate.
type arbiterGate struct{ arb *coord.Arbiter }

func (g arbiterGate) MayBecomeMaster(instance string, vrid int, cause string) bool {
	ok, _ := g.arb.MayBecomeMaster(instance, vrid, cause, vrrp.IsPreemptCause(cause))
	return ok
}

// arbiterPeers is gossip as the arbiter asks it (nothing while gossip is
// off or not started yet).
type arbiterPeers struct{ a *Agent }

func (p arbiterPeers) node() *gossip.Node {
	n, _ := p.a.fleetNode().(*gossip.Node)
	return n
}

func (p arbiterPeers) Probe(ctx context.Context, timeout time.Duration) (int, []string) {
	if n := p.node(); n != nil {
		return n.Probe(ctx, timeout)
	}
	return 0, nil
}

func (p arbiterPeers) Masters() map[string][]coord.PeerMaster {
	n := p.node()
	if n == nil {
		return nil
	}
	out := map[string][]coord.PeerMaster{}
	for inst, ms := range n.Masters() {
		for _, m := range ms {
			out[inst] = append(out[inst], coord.PeerMaster{Node: m.Node, Priority: m.Priority})
		}
	}
	return out
}

// startArbiter plugs the arbiter in as the gate before the first apply, so
// that no instance enters MASTER without it (a resumed MASTER after a
// restart keeps its state; the arbiter then finds its claim, kept on the
// previous run's lease). It runs until stopArbiter.
func (a *Agent) startArbiter() {
	if a.etcdSide == nil || a.etcdSide.cli == nil || a.opts.ArbiterOff {
		return
	}
	arb := coord.NewArbiter(a.etcdSide.cli, coord.ArbiterConfig{
		Prefix:  a.opts.EtcdPrefix,
		Node:    a.opts.NodeName,
		TTL:     a.opts.ArbiterTTL,
		Policy:  a.opts.ArbiterIsolation,
		Door:    a,
		Peers:   arbiterPeers{a},
		Logger:  a.log.With("component", "arbiter"),
		Metrics: a.etcdSide.metrics,
	})
	ctx, cancel := context.WithCancel(context.Background())
	side := &arbiterSide{arb: arb, cancel: cancel, done: make(chan struct{}), applied: make(chan struct{})}
	a.mu.Lock()
	a.arbiter = side
	a.mu.Unlock()
	a.SetGate(arbiterGate{arb})
	_, events := a.Subscribe(ctx)
	go func() {
		defer close(side.done)
		go a.feedArbiter(ctx, arb, events, side.applied)
		_ = arb.Run(ctx)
	}()
	a.log.Info("arbiter: a node enters MASTER only with the instance's claim in etcd",
		"ttl", arb.TTL(), "isolation", a.opts.ArbiterIsolation)
}

// feedArbiter hands the arbiter the instances at start and after every
// change of the state stream.
func (a *Agent) feedArbiter(ctx context.Context, arb *coord.Arbiter, events <-chan api.Event, applied <-chan struct{}) {
	observe := func() {
		if !a.applied.Load() {
			return // not before the first apply (see coord.Arbiter.Observe)
		}
		st := a.hub.snapshot()
		adverts := map[string]time.Duration{}
		a.mu.Lock()
		for name, ri := range a.running {
			adverts[name] = ri.cfg.AdvertInt.D()
		}
		a.mu.Unlock()
		insts := make([]coord.ArbInstance, 0, len(st))
		for _, s := range st {
			insts = append(insts, coord.ArbInstance{Name: s.Name, VRID: s.VRID, State: s.State,
				Priority: s.EffectivePriority, Held: s.GateHeld, AdvertInt: adverts[s.Name]})
		}
		arb.Observe(insts)
	}
	observe()
	for {
		select {
		case <-ctx.Done():
			return
		case <-applied:
			applied = nil
			observe()
		case _, ok := <-events:
			if !ok {
				return
			}
			for more := true; more; { // a burst is one observation
				select {
				case _, ok := <-events:
					if !ok {
						return
					}
				default:
					more = false
				}
			}
			observe()
		}
	}
}

// stopArbiter ends arbitration. graceful (a stop, after the hand-over)
// revokes the lease, so the peers take the claims at once; a restart or an
// upgrade leaves them on the lease for the next run to keep.
func (a *Agent) stopArbiter(graceful bool) {
	a.mu.Lock()
	side := a.arbiter
	a.arbiter = nil
	a.mu.Unlock()
	if side == nil {
		return
	}
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := side.arb.Release(ctx); err != nil {
			a.log.Warn("arbiter: claims left to expire with the lease", "err", err)
		}
		cancel()
	}
	side.cancel()
	<-side.done
}
