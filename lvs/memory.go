package lvs

import (
	"fmt"
	"slices"
	"sync"
)

// Memory is an in-memory Backend that records every operation in ipvsadm's
// words (Transcript). Fail, when set, makes an operation fail before it is
// applied. It is safe for concurrent use.
type Memory struct {
	mu         sync.Mutex
	pools      map[ServiceKey]*Pool
	transcript []string
	// Fail is consulted before every operation; a non-nil error fails it.
	Fail func(Op) error
	// Unavailable makes every call return ErrUnavailable (a kernel without IPVS).
	Unavailable bool
}

// NewMemory returns an empty Memory holding pools (copied).
func NewMemory(pools ...Pool) *Memory {
	m := &Memory{pools: map[ServiceKey]*Pool{}}
	for _, p := range pools {
		c := Pool{Service: p.Service, Dests: slices.Clone(p.Dests)}
		m.pools[p.Key] = &c
	}
	return m
}

// Transcript returns the operations applied so far and forgets them.
func (m *Memory) Transcript() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.transcript
	m.transcript = nil
	return t
}

// Pools implements Backend: every service, sorted, with sorted destinations.
func (m *Memory) Pools() ([]Pool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Unavailable {
		return nil, ErrUnavailable
	}
	out := make([]Pool, 0, len(m.pools))
	for _, p := range m.pools {
		out = append(out, Pool{Service: p.Service, Dests: sortedDests(p.Dests)})
	}
	slices.SortFunc(out, func(a, b Pool) int { return compareKey(a.Key, b.Key) })
	return out, nil
}

func (m *Memory) do(op Op, f func() error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Unavailable {
		return ErrUnavailable
	}
	if m.Fail != nil {
		if err := m.Fail(op); err != nil {
			return err
		}
	}
	if err := f(); err != nil {
		return err
	}
	m.transcript = append(m.transcript, op.String())
	return nil
}

// AddService implements Backend.
func (m *Memory) AddService(s Service) error {
	return m.do(Op{Kind: OpAddService, Service: s}, func() error {
		if m.pools[s.Key] != nil {
			return fmt.Errorf("%s: file exists", s.Key)
		}
		m.pools[s.Key] = &Pool{Service: s}
		return nil
	})
}

// UpdateService implements Backend.
func (m *Memory) UpdateService(s Service) error {
	return m.do(Op{Kind: OpUpdateService, Service: s}, func() error {
		p := m.pools[s.Key]
		if p == nil {
			return fmt.Errorf("%s: no such service", s.Key)
		}
		p.Service = s
		return nil
	})
}

// DelService implements Backend.
func (m *Memory) DelService(k ServiceKey) error {
	return m.do(Op{Kind: OpDelService, Service: Service{Key: k}}, func() error {
		if m.pools[k] == nil {
			return fmt.Errorf("%s: no such service", k)
		}
		delete(m.pools, k)
		return nil
	})
}

// AddDest implements Backend.
func (m *Memory) AddDest(k ServiceKey, d Dest) error {
	return m.do(Op{Kind: OpAddDest, Service: Service{Key: k}, Dest: d}, func() error {
		p := m.pools[k]
		if p == nil {
			return fmt.Errorf("%s: no such service", k)
		}
		if slices.ContainsFunc(p.Dests, func(x Dest) bool { return x.Key() == d.Key() }) {
			return fmt.Errorf("%s %s: destination exists", k, d.Key())
		}
		p.Dests = append(p.Dests, d)
		return nil
	})
}

// UpdateDest implements Backend.
func (m *Memory) UpdateDest(k ServiceKey, d Dest) error {
	return m.do(Op{Kind: OpUpdateDest, Service: Service{Key: k}, Dest: d}, func() error {
		p := m.pools[k]
		if p == nil {
			return fmt.Errorf("%s: no such service", k)
		}
		i := slices.IndexFunc(p.Dests, func(x Dest) bool { return x.Key() == d.Key() })
		if i < 0 {
			return fmt.Errorf("%s %s: no such destination", k, d.Key())
		}
		p.Dests[i] = d
		return nil
	})
}

// DelDest implements Backend.
func (m *Memory) DelDest(k ServiceKey, dk DestKey) error {
	return m.do(Op{Kind: OpDelDest, Service: Service{Key: k}, Dest: Dest{Addr: dk.Addr, Port: dk.Port}}, func() error {
		p := m.pools[k]
		if p == nil {
			return fmt.Errorf("%s: no such service", k)
		}
		i := slices.IndexFunc(p.Dests, func(x Dest) bool { return x.Key() == dk })
		if i < 0 {
			return fmt.Errorf("%s %s: no such destination", k, dk)
		}
		p.Dests = slices.Delete(p.Dests, i, i+1)
		return nil
	})
}
