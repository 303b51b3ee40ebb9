// Package ipvs is lvs's Backend on the kernel's IPVS table, through
// github.com/moby/ipvs over generic netlink in the current network
// namespace.
//
// It owns the mapping between lvs's services and destinations and IPVS's
// (protocol numbers, address families, scheduler, persistence flag, timeout
// and netmask, forwarding method, weight) and one netlink handle. It does
// not plan, retry or cache: the reconciler in package lvs decides what to
// change, and every call here is one IPVS command, like one ipvsadm line.
//
// On a kernel without IPVS (no generic netlink family "IPVS", after the
// kernel has tried to load ip_vs), New returns an error that wraps
// lvs.ErrUnavailable and the cause.
package ipvs

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/lvs"
)

// family is the generic netlink family of IPVS (IPVS_GENL_NAME).
const family = "IPVS"

// Backend is the kernel's IPVS table in the network namespace it was
// created in. It is safe for concurrent use; calls are serialised because
// moby/ipvs shares one netlink socket between requests.
type Backend struct {
	mu     sync.Mutex
	h      *ipvs.Handle
	warned map[string]bool // guarded by mu: entries Pools left out, logged once
}

var _ lvs.Backend = (*Backend)(nil)

// New opens IPVS in the current network namespace. Without IPVS in the
// kernel (and no ip_vs module the kernel could load when asked for the
// family), the error wraps lvs.ErrUnavailable.
func New() (*Backend, error) {
	if err := probe(family); err != nil {
		return nil, err
	}
	h, err := ipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("ipvs: open generic netlink socket: %w", err)
	}
	return &Backend{h: h}, nil
}

// probe looks the generic netlink family up. The kernel tries to load the
// module that provides it (alias net-pf-16-proto-16-family-IPVS) first, so
// this also loads ip_vs where it is a module. moby/ipvs does its own lookup
// but only logs a failure and then talks to family 0, where every request
// "succeeds" with nothing: hence this check before it.
func probe(name string) error {
	_, err := netlink.GenlFamilyGet(name)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w: generic netlink family %s: %w", lvs.ErrUnavailable, name, err)
	default:
		return fmt.Errorf("ipvs: look up generic netlink family %s: %w", name, err)
	}
}

// Close releases the netlink socket. The Backend is unusable afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h != nil {
		b.h.Close()
		b.h = nil
	}
	return nil
}

// Pools returns every service in IPVS with its destinations, vipd's and
// others' alike, services in lvs.ServiceKey order and destinations by
// address and port. Values are in their canonical form: addresses
// unmapped, ServiceKey.IPv6 set only for fwmark services, the netmask of the
// whole address as 0, the timeout 0 on a service that is not persistent.
func (b *Backend) Pools() ([]lvs.Pool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return nil, errClosed
	}
	svcs, err := b.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("ipvs: list services (ipvsadm -Ln): %w", err)
	}
	pools := make([]lvs.Pool, 0, len(svcs))
	for _, s := range svcs {
		svc, err := fromService(s)
		if err != nil {
			// A service vipd cannot represent is not one it made: leave
			// it out rather than stop reconciling its own.
			b.skipped(fmt.Sprintf("ipvs: a service in IPVS is left out of vipd's view: %v", err))
			continue
		}
		ds, err := b.h.GetDestinations(s)
		if err != nil {
			return nil, fmt.Errorf("ipvs: list destinations (ipvsadm -Ln %s): %w", svc.Key, err)
		}
		p := lvs.Pool{Service: svc, Dests: make([]lvs.Dest, 0, len(ds))}
		for _, d := range ds {
			dest, err := fromDest(d)
			if err != nil {
				b.skipped(fmt.Sprintf("ipvs: a destination of %s is left out of vipd's view: %v", svc.Key, err))
				continue
			}
			p.Dests = append(p.Dests, dest)
		}
		pools = append(pools, p)
	}
	lvs.SortPools(pools)
	return pools, nil
}

// AddService creates a service (ipvsadm -A).
func (b *Backend) AddService(s lvs.Service) error {
	return b.service(lvs.OpAddService, s)
}

// UpdateService changes a service's scheduler and persistence (ipvsadm -E).
func (b *Backend) UpdateService(s lvs.Service) error {
	return b.service(lvs.OpUpdateService, s)
}

func (b *Backend) service(kind lvs.OpKind, s lvs.Service) error {
	op := lvs.Op{Kind: kind, Service: s}
	svc, err := toService(s)
	if err != nil {
		return opError(op, err)
	}
	return b.do(op, func(h *ipvs.Handle) error {
		if kind == lvs.OpAddService {
			return h.NewService(svc)
		}
		return h.UpdateService(svc)
	})
}

// DelService deletes a service and its destinations (ipvsadm -D).
func (b *Backend) DelService(k lvs.ServiceKey) error {
	op := lvs.Op{Kind: lvs.OpDelService, Service: lvs.Service{Key: k}}
	svc, err := keyService(k)
	if err != nil {
		return opError(op, err)
	}
	return b.do(op, func(h *ipvs.Handle) error { return h.DelService(svc) })
}

// AddDest adds a destination to a service (ipvsadm -a).
func (b *Backend) AddDest(k lvs.ServiceKey, d lvs.Dest) error {
	return b.dest(lvs.OpAddDest, k, d)
}

// UpdateDest changes a destination's weight and forwarding method
// (ipvsadm -e).
func (b *Backend) UpdateDest(k lvs.ServiceKey, d lvs.Dest) error {
	return b.dest(lvs.OpUpdateDest, k, d)
}

func (b *Backend) dest(kind lvs.OpKind, k lvs.ServiceKey, d lvs.Dest) error {
	op := lvs.Op{Kind: kind, Service: lvs.Service{Key: k}, Dest: d}
	svc, err := keyService(k)
	if err != nil {
		return opError(op, err)
	}
	dst, err := toDest(k, d)
	if err != nil {
		return opError(op, err)
	}
	return b.do(op, func(h *ipvs.Handle) error {
		if kind == lvs.OpAddDest {
			return h.NewDestination(svc, dst)
		}
		return h.UpdateDestination(svc, dst)
	})
}

// DelDest removes one destination from a service (ipvsadm -d).
func (b *Backend) DelDest(k lvs.ServiceKey, dk lvs.DestKey) error {
	op := lvs.Op{Kind: lvs.OpDelDest, Service: lvs.Service{Key: k}, Dest: lvs.Dest{Addr: dk.Addr, Port: dk.Port}}
	svc, err := keyService(k)
	if err != nil {
		return opError(op, err)
	}
	dst, err := destKey(k, dk)
	if err != nil {
		return opError(op, err)
	}
	return b.do(op, func(h *ipvs.Handle) error { return h.DelDestination(svc, dst) })
}

var errClosed = errors.New("ipvs: backend closed")

func (b *Backend) do(op lvs.Op, f func(*ipvs.Handle) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return opError(op, errClosed)
	}
	if err := f(b.h); err != nil {
		return opError(op, explain(op.Kind, err))
	}
	return nil
}

// opError names the operation in ipvsadm's words:
// "ipvs: -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1: service not defined: no such process".
func opError(op lvs.Op, err error) error {
	return fmt.Errorf("ipvs: %s: %w", op, err)
}

// explain adds ipvsadm's reading of the kernel's errno for the command
// (libipvs's ipvs_strerror), keeping the errno in the chain.
func explain(kind lvs.OpKind, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err
	}
	msg := ""
	switch {
	case errno == unix.EEXIST && kind == lvs.OpAddService:
		msg = "service already exists"
	case errno == unix.ENOENT && (kind == lvs.OpAddService || kind == lvs.OpUpdateService):
		msg = "scheduler or persistence engine not found"
	case errno == unix.ESRCH && (kind == lvs.OpUpdateService || kind == lvs.OpDelService):
		msg = "no such service"
	case errno == unix.ESRCH:
		msg = "service not defined"
	case errno == unix.EEXIST && kind == lvs.OpAddDest:
		msg = "destination already exists"
	case errno == unix.ENOENT && (kind == lvs.OpUpdateDest || kind == lvs.OpDelDest):
		msg = "no such destination"
	case errno == unix.EPERM:
		msg = "permission denied (CAP_NET_ADMIN needed)"
	}
	if msg == "" {
		return err
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// skipped logs, once per distinct message, an entry of IPVS that Pools
// leaves out.
func (b *Backend) skipped(msg string) {
	if b.warned == nil {
		b.warned = map[string]bool{}
	}
	if !b.warned[msg] {
		b.warned[msg] = true
		slog.Warn(msg)
	}
}
