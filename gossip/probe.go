package gossip

import (
	"context"
	"net"
	"sync"
	"time"
)

// Probe pings every other member that has not left (dead ones included:
// a node cut off sees them all dead), directly with memberlist's ping
// rather than through its failure detector, which takes seconds to
// decide. It returns how many there are and how many answered within
// timeout, by name. The split-brain arbiter asks it while etcd is silent.
func (n *Node) Probe(ctx context.Context, timeout time.Duration) (known int, reached []string) {
	type target struct {
		name string
		addr *net.UDPAddr
	}
	var ts []target
	n.mu.Lock()
	ml := n.ml
	for name, m := range n.members {
		if name == n.cfg.NodeName || m.state == stateLeft || m.ip == nil {
			continue
		}
		ts = append(ts, target{name, &net.UDPAddr{IP: m.ip, Port: int(m.port)}})
	}
	n.mu.Unlock()
	if ml == nil || len(ts) == 0 {
		return len(ts), nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	answers := make(chan string, len(ts))
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// memberlist's Ping waits up to its probe interval; the
			// buffered channel lets it end after we stopped listening.
			if _, err := ml.Ping(t.name, t.addr); err == nil {
				answers <- t.name
			} else {
				answers <- ""
			}
		}()
	}
	for range ts {
		select {
		case name := <-answers:
			if name != "" {
				reached = append(reached, name)
			}
		case <-ctx.Done():
			return len(ts), reached
		}
	}
	wg.Wait()
	return len(ts), reached
}

// Master is a member reporting MASTER for an instance.
type Master struct {
	Node     string
	Priority int // effective
}

// Masters lists, by instance name, the live members reporting MASTER for
// it, with their effective priority.
func (n *Node) Masters() map[string][]Master {
	out := map[string][]Master{}
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, st := range n.states {
		if m := n.members[name]; m == nil || !m.alive() || name == n.cfg.NodeName {
			continue
		}
		for _, in := range st.State.Instances {
			if in.State == "MASTER" {
				out[in.Name] = append(out[in.Name], Master{Node: name, Priority: in.EffectivePriority})
			}
		}
	}
	return out
}
