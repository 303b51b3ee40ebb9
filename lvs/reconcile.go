package lvs

import (
	"errors"
	"slices"
)

// Plan returns the minimum operations that turn actual into desired, for
// the services vipd owns: every desired service, and the services in owned
// that are no longer desired (they are deleted). A service of actual that
// is neither desired nor owned belongs to someone else and is never touched.
//
// Per service the order is make-before-break: the service is added or
// updated, destinations are added and updated, then the ones no longer
// wanted are deleted. Services no longer desired are deleted last. Nothing
// is ever flushed and rebuilt: an unchanged destination is not touched, so
// its connections live on.
//
// Both pool lists may be in any order; Plan does not modify them.
func Plan(desired, actual []Pool, owned map[ServiceKey]bool) []Op {
	have := make(map[ServiceKey]*Pool, len(actual))
	for i := range actual {
		have[actual[i].Key] = &actual[i]
	}
	want := make(map[ServiceKey]bool, len(desired))
	var ops []Op
	order := make([]int, len(desired))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return compareKey(desired[a].Key, desired[b].Key) })
	for _, i := range order {
		d := &desired[i]
		if want[d.Key] {
			continue // a duplicate key: the first wins
		}
		want[d.Key] = true
		a := have[d.Key]
		if a == nil {
			ops = append(ops, Op{Kind: OpAddService, Service: d.Service})
			for _, dst := range sortedDests(d.Dests) {
				ops = append(ops, Op{Kind: OpAddDest, Service: d.Service, Dest: dst})
			}
			continue
		}
		if !a.Service.Same(d.Service) {
			ops = append(ops, Op{Kind: OpUpdateService, Service: d.Service})
		}
		ops = appendDestOps(ops, d.Service, d.Dests, a.Dests)
	}
	var gone []Pool
	for i := range actual {
		if k := actual[i].Key; owned[k] && !want[k] {
			gone = append(gone, actual[i])
		}
	}
	slices.SortFunc(gone, func(a, b Pool) int { return compareKey(a.Key, b.Key) })
	for _, p := range gone {
		ops = append(ops, Op{Kind: OpDelService, Service: p.Service})
	}
	return ops
}

// appendDestOps appends the destination operations of one service.
func appendDestOps(ops []Op, svc Service, want, have []Dest) []Op {
	cur := make(map[DestKey]Dest, len(have))
	for _, d := range have {
		cur[d.Key()] = d
	}
	wanted := make(map[DestKey]bool, len(want))
	var adds, updates []Op
	for _, d := range sortedDests(want) {
		k := d.Key()
		if wanted[k] {
			continue
		}
		wanted[k] = true
		c, ok := cur[k]
		switch {
		case !ok:
			adds = append(adds, Op{Kind: OpAddDest, Service: svc, Dest: d})
		case c.Weight != d.Weight || (c.Forward != d.Forward && c.Forward != Local):
			updates = append(updates, Op{Kind: OpUpdateDest, Service: svc, Dest: d})
		}
	}
	ops = append(ops, adds...)
	ops = append(ops, updates...)
	for _, d := range sortedDests(have) {
		if !wanted[d.Key()] {
			ops = append(ops, Op{Kind: OpDelDest, Service: svc, Dest: d})
		}
	}
	return ops
}

func sortedDests(ds []Dest) []Dest {
	out := slices.Clone(ds)
	slices.SortStableFunc(out, func(a, b Dest) int { return compareDest(a.Key(), b.Key()) })
	return out
}

// Execute runs ops against b in order and returns the operations done,
// in order, and the errors (each an *OpError naming the operation in
// ipvsadm's words, joined). A refused operation holds up nothing else,
// as keepalived's ipvs_cmd: only a refused service creation skips the
// destinations of that service (they cannot exist without it).
func Execute(b Backend, ops []Op) ([]Op, error) {
	done := make([]Op, 0, len(ops))
	var errs []error
	var failed map[ServiceKey]bool
	for _, op := range ops {
		if failed[op.Service.Key] {
			continue
		}
		var err error
		switch op.Kind {
		case OpAddService:
			err = b.AddService(op.Service)
		case OpUpdateService:
			err = b.UpdateService(op.Service)
		case OpDelService:
			err = b.DelService(op.Service.Key)
		case OpAddDest:
			err = b.AddDest(op.Service.Key, op.Dest)
		case OpUpdateDest:
			err = b.UpdateDest(op.Service.Key, op.Dest)
		case OpDelDest:
			err = b.DelDest(op.Service.Key, op.Dest.Key())
		}
		if err != nil {
			if op.Kind == OpAddService {
				if failed == nil {
					failed = map[ServiceKey]bool{}
				}
				failed[op.Service.Key] = true
			}
			errs = append(errs, &OpError{Op: op, Err: err})
			if errors.Is(err, ErrUnavailable) {
				break // no IPVS at all: nothing else can work either
			}
			continue
		}
		done = append(done, op)
	}
	return done, errors.Join(errs...)
}

// OpError is a failed operation.
type OpError struct {
	Op  Op
	Err error
}

func (e *OpError) Error() string { return "ipvs " + e.Op.String() + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }
