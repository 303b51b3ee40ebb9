//go:build linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var _ Watcher = (*NetlinkWatcher)(nil)

// NetlinkWatcher is the Watcher of the kernel: it subscribes to rtnetlink's
// address, link and route (IPv4 and IPv6) multicast groups of one network
// namespace, the one of the thread that called NewNetlinkWatcher, and stays
// bound to it, resubscriptions included. Safe for concurrent use; every
// Watch has its own subscriptions.
//
// Addresses, links and routes come on three netlink sockets: events of one
// kind are in the kernel's order, but events of two kinds that happen close
// together may be delivered in either order (the connected route of an
// address removed may come before or after the address).
type NetlinkWatcher struct {
	log *slog.Logger
	ns  netns.NsHandle

	// Receive buffer of each subscription socket and whether to force it
	// past net.core.rmem_max (needs CAP_NET_ADMIN; probed by the
	// constructor). Tests shrink it to provoke an overflow.
	rcvbuf   int
	rcvforce bool

	mu     sync.Mutex
	closed bool
}

// watchRcvBuf is the receive buffer asked for each subscription: room for a
// few thousand notifications, so that vipd's own start-up burst (thousands
// of VIPs and VMACs) does not overflow it and force a Resync.
const watchRcvBuf = 4 << 20

// Resubscription backoff after a failure.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// NewNetlinkWatcher returns a watcher of the calling thread's network
// namespace. Close releases it.
func NewNetlinkWatcher(log *slog.Logger) (*NetlinkWatcher, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("vip: watch: current network namespace: %w", err)
	}
	return newNetlinkWatcherAt(ns, log), nil
}

// newNetlinkWatcherAt returns a watcher of ns, which it owns (Close closes
// it).
func newNetlinkWatcherAt(ns netns.NsHandle, log *slog.Logger) *NetlinkWatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &NetlinkWatcher{log: log, ns: ns, rcvbuf: watchRcvBuf, rcvforce: canForceRcvBuf()}
}

// canForceRcvBuf reports whether SO_RCVBUFFORCE works here (CAP_NET_ADMIN):
// the subscription helpers leak their socket when a socket option fails, so
// this is probed once on a throwaway socket instead.
func canForceRcvBuf() bool {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, watchRcvBuf) == nil
}

// Close releases the namespace handle. A Watch already running goes on
// (it holds a handle of its own); a later one fails.
func (w *NetlinkWatcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.ns.Close()
}

// Watch implements Watcher. It fails when it cannot subscribe or list the
// links at start; later failures (a receive buffer overflow, ENOBUFS, or
// any error that ends a subscription) are healed by resubscribing, with a
// backoff while that fails, and reported as one Resync once the
// subscriptions are live again. Every goroutine it starts has ended when it
// returns.
func (w *NetlinkWatcher) Watch(ctx context.Context, fn func(AddrEvent)) error {
	// A namespace handle of our own: Close may close the watcher's while
	// this Watch runs, and resubscriptions need it.
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("vip: watch: %w", errClosed)
	}
	fd, err := unix.FcntlInt(uintptr(w.ns), unix.F_DUPFD_CLOEXEC, 0)
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("vip: watch: network namespace handle: %w", err)
	}
	ns := netns.NsHandle(fd)
	defer ns.Close()
	// A handle of our own, in the watched namespace, to name interfaces.
	var h *netlink.Handle
	err = inNamespace(ns, func(at *netns.NsHandle) (err error) {
		if at == nil {
			h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		} else {
			h, err = netlink.NewHandleAt(*at, unix.NETLINK_ROUTE)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("vip: watch: open rtnetlink: %w", err)
	}
	defer h.Close()
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		return fmt.Errorf("vip: watch: rtnetlink timeout: %w", err)
	}

	lost := make(chan struct{}, 1)
	var addrs *subscription[netlink.AddrUpdate]
	var links *subscription[netlink.LinkUpdate]
	var routes *subscription[netlink.RouteUpdate]
	defer func() {
		addrs.stop()
		links.stop()
		routes.stop()
	}()
	// subscribe opens the subscriptions that are down (all at start).
	subscribe := func() error {
		return errors.Join(
			subscribeOnce(w, ns, &addrs, "address", lost, netlink.AddrSubscribeWithOptions),
			subscribeOnce(w, ns, &links, "link", lost, netlink.LinkSubscribeWithOptions),
			subscribeOnce(w, ns, &routes, "route", lost, netlink.RouteSubscribeWithOptions))
	}
	if err := subscribe(); err != nil {
		return fmt.Errorf("vip: watch: %w", err)
	}
	// Links are listed after subscribing, so no change falls in between.
	cache := linkCache{}
	if err := cache.refresh(h); err != nil {
		return fmt.Errorf("vip: watch: %w", err)
	}
	fn(AddrEvent{Kind: Resync})

	var retry <-chan time.Time // set while a subscription is down
	backoff := watchRetryMin
	needRefresh := false
	heal := func() {
		err := subscribe()
		if err == nil && needRefresh {
			if err = cache.refresh(h); err == nil {
				needRefresh = false
			}
		}
		if err != nil {
			w.log.Warn("netlink address/link/route events: resubscribe failed; retrying", "err", err, "retry_in", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, watchRetryMax)
			return
		}
		retry, backoff = nil, watchRetryMin
		w.log.Info("netlink address/link/route events: resubscribed; re-checking everything")
		fn(AddrEvent{Kind: Resync})
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-addrs.updates():
			if !ok {
				addrs.stop()
				addrs = nil
				heal()
				continue
			}
			if ev, ok := addrEvent(u, cache.name(h, u.LinkIndex)); ok {
				fn(ev)
			}
		case u, ok := <-links.updates():
			if !ok {
				links.stop()
				links = nil
				needRefresh = true // link changes were lost: up/down states are stale
				heal()
				continue
			}
			for _, ev := range cache.update(u) {
				fn(ev)
			}
		case u, ok := <-routes.updates():
			if !ok {
				routes.stop()
				routes = nil
				heal()
				continue
			}
			if ev, ok := routeEvent(u); ok {
				if ev.Ifindex > 0 {
					ev.Ifname = cache.name(h, ev.Ifindex)
					ev.Route.Ifname = ev.Ifname
				}
				fn(ev)
			}
		case <-lost:
			w.log.Warn("netlink address/link/route events: a notification could not be read; re-checking everything")
			fn(AddrEvent{Kind: Resync})
		case <-retry:
			heal()
		}
	}
}

// inNamespace runs open, which opens a netlink socket, on a locked thread,
// passing the namespace option for vishvananda/netlink: nil when the thread
// already is in ns (the usual case, one vipd per namespace), so that no
// setns is made, which needs CAP_SYS_ADMIN even into one's own namespace;
// &ns otherwise.
func inNamespace(ns netns.NsHandle, open func(at *netns.NsHandle) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := netns.Get()
	if err == nil {
		defer cur.Close()
		if cur.Equal(ns) {
			return open(nil)
		}
	}
	return open(&ns)
}

// watchChanLen is the channel between a subscription's reader goroutine and
// Watch; the socket's receive buffer does the real buffering.
const watchChanLen = 64

// subscribeOptions are the library's options of a subscription, one type
// per kind with the same fields.
type subscribeOptions interface {
	netlink.AddrSubscribeOptions | netlink.LinkSubscribeOptions | netlink.RouteSubscribeOptions
}

// watchOptions has the fields of every subscribeOptions type, so that it
// converts to each.
type watchOptions struct {
	Namespace              *netns.NsHandle
	ErrorCallback          func(error)
	ListExisting           bool
	ReceiveBufferSize      int
	ReceiveBufferForceSize bool
	ReceiveTimeout         *unix.Timeval
}

// subscribeOnce opens the subscription *s to one kind of event (what names
// it in logs and errors) in ns with the library's function for that kind,
// unless *s is already open. Events already in the kernel are not listed,
// receive errors go to the subscription's onError, and the socket gets the
// watcher's receive buffer.
func subscribeOnce[T any, O subscribeOptions](w *NetlinkWatcher, ns netns.NsHandle, s **subscription[T], what string, lost chan<- struct{},
	subscribe func(ch chan<- T, done <-chan struct{}, opts O) error) error {
	if *s != nil {
		return nil
	}
	sub := newSubscription[T](w.log, what, lost)
	err := inNamespace(ns, func(at *netns.NsHandle) error {
		return subscribe(sub.ch, sub.done, O(watchOptions{
			Namespace:              at,
			ErrorCallback:          sub.onError,
			ListExisting:           false,
			ReceiveBufferSize:      w.rcvbuf,
			ReceiveBufferForceSize: w.rcvforce,
		}))
	})
	if err != nil {
		close(sub.done)
		return fmt.Errorf("subscribe to %s events: %w", what, err)
	}
	*s = sub
	return nil
}

// subscription is one netlink subscription: the library's reader goroutine
// sends on ch until its socket fails or done is closed, then closes ch.
type subscription[T any] struct {
	log      *slog.Logger
	what     string
	ch       chan T
	done     chan struct{}
	lost     chan<- struct{}
	stopping atomic.Bool
}

func newSubscription[T any](log *slog.Logger, what string, lost chan<- struct{}) *subscription[T] {
	return &subscription[T]{log: log, what: what, ch: make(chan T, watchChanLen), done: make(chan struct{}), lost: lost}
}

// updates is the channel to receive from; nil (never ready) when s is nil.
func (s *subscription[T]) updates() <-chan T {
	if s == nil {
		return nil
	}
	return s.ch
}

// stop closes the socket and waits for the reader goroutine to end (it may be
// blocked sending on ch, so ch is drained). Idempotent; nil is a no-op.
func (s *subscription[T]) stop() {
	if s == nil || s.stopping.Swap(true) {
		return
	}
	close(s.done)
	for range s.ch {
	}
}

// onError is the library's ErrorCallback, called from its reader goroutine.
// A failed receive (ENOBUFS included) ends the subscription, which Watch
// sees as a closed channel and heals; a message that could not be parsed is
// a lost event, reported as a Resync; a message from another sender than
// the kernel, or of a type not asked for, is dropped by the library and
// changes nothing.
func (s *subscription[T]) onError(err error) {
	if s.stopping.Load() {
		return // the socket was closed on purpose
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "Receive failed"):
		if strings.Contains(msg, unix.ENOBUFS.Error()) {
			msg = "receive buffer overflowed (ENOBUFS), events lost"
		}
		s.log.Warn("netlink "+s.what+" events: subscription ended; resubscribing", "err", msg)
	case strings.HasPrefix(msg, "Wrong sender"), strings.HasPrefix(msg, "bad message type"):
		s.log.Debug("netlink "+s.what+" events: message ignored", "err", msg)
	default:
		s.log.Warn("netlink "+s.what+" events: bad notification", "err", msg)
		select {
		case s.lost <- struct{}{}:
		default:
		}
	}
}

// addrEvent converts an address notification.
func addrEvent(u netlink.AddrUpdate, ifname string) (AddrEvent, bool) {
	ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
	if !ok {
		return AddrEvent{}, false
	}
	ip = ip.Unmap()
	ones, _ := u.LinkAddress.Mask.Size()
	p := netip.PrefixFrom(ip, ones)
	if !p.IsValid() {
		return AddrEvent{}, false
	}
	kind := AddrRemoved
	if u.NewAddr {
		kind = AddrAdded
	}
	return AddrEvent{Kind: kind, Ifname: ifname, Ifindex: u.LinkIndex, Prefix: p}, true
}

// routeEvent converts a route notification, dropping what a virtual route
// never is: routes of table local (the kernel's own, one per address),
// types other than unicast, blackhole, unreachable, prohibit and throw,
// routes cloned into the cache, families other than IPv4 and IPv6. The
// interface name is left for the caller to fill in.
func routeEvent(u netlink.RouteUpdate) (AddrEvent, bool) {
	var kind AddrEventKind
	switch u.Type {
	case unix.RTM_NEWROUTE:
		kind = RouteAdded
	case unix.RTM_DELROUTE:
		kind = RouteRemoved
	default:
		return AddrEvent{}, false
	}
	typ, ok := routeTypeName(u.Route.Type)
	if !ok || u.Table == unix.RT_TABLE_LOCAL || u.Flags&unix.RTM_F_CLONED != 0 {
		return AddrEvent{}, false
	}
	var dst netip.Prefix
	switch {
	case u.Dst != nil:
		ip, ok := netip.AddrFromSlice(u.Dst.IP)
		if !ok {
			return AddrEvent{}, false
		}
		ones, _ := u.Dst.Mask.Size()
		dst = netip.PrefixFrom(ip.Unmap(), ones)
	case u.Family == unix.AF_INET:
		dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case u.Family == unix.AF_INET6:
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	if !dst.IsValid() || (u.Family == unix.AF_INET) != dst.Addr().Is4() || (u.Family != unix.AF_INET && u.Family != unix.AF_INET6) {
		return AddrEvent{}, false
	}
	ip := func(b []byte) netip.Addr {
		a, _ := netip.AddrFromSlice(b)
		return a.Unmap()
	}
	r := RouteInfo{Dst: dst.Masked(), Gateway: ip(u.Gw), Src: ip(u.Src), Table: u.Table, Metric: u.Priority, Type: typ, Protocol: int(u.Protocol)}
	return AddrEvent{Kind: kind, Ifindex: u.LinkIndex, Route: r}, true
}

// linkCache maps ifindex to name and last reported state. Entries of removed
// interfaces stay (until the index is reused) so that address notifications
// of a removed interface, which come on the other socket and may lag its
// removal, still carry its name.
type linkCache map[int]linkState

type linkState struct {
	name string
	up   bool
	// known: the state came from the link socket or a listing, not from a
	// by-index look-up made for an address event (which must not hide the
	// link's own transition still queued on the link socket).
	known bool
	gone  bool
}

// usable is keepalived's test of an interface: IFF_UP and IFF_RUNNING.
func usable(flags uint32) bool {
	return flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0
}

// refresh replaces the cache with the kernel's list of links.
func (c linkCache) refresh(h *netlink.Handle) error {
	list, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	clear(c)
	for _, l := range list {
		a := l.Attrs()
		c[a.Index] = linkState{name: a.Name, up: usable(a.RawFlags), known: true}
	}
	return nil
}

// name resolves an ifindex, asking the kernel on a miss.
func (c linkCache) name(h *netlink.Handle, index int) string {
	if s, ok := c[index]; ok {
		return s.name
	}
	l, err := h.LinkByIndex(index)
	if err != nil {
		return "" // gone before we could ask
	}
	c[index] = linkState{name: l.Attrs().Name}
	return l.Attrs().Name
}

// update applies a link notification and returns the events it means: a
// change of usability, a rename (LinkDown under the old name, LinkUp under
// the new one if usable), a removal.
func (c linkCache) update(u netlink.LinkUpdate) []AddrEvent {
	a := u.Link.Attrs()
	idx := int(u.Index)
	if idx == 0 {
		idx = a.Index
	}
	prev, ok := c[idx]
	wasUp := ok && prev.known && !prev.gone && prev.up
	if u.Header.Type == unix.RTM_DELLINK {
		name := a.Name
		if name == "" {
			name = prev.name
		}
		c[idx] = linkState{name: name, known: true, gone: true}
		if ok && prev.gone {
			return nil
		}
		return []AddrEvent{{Kind: LinkDown, Ifname: name, Ifindex: idx}}
	}
	if u.Header.Type != unix.RTM_NEWLINK {
		return nil
	}
	up := usable(u.Flags)
	c[idx] = linkState{name: a.Name, up: up, known: true}
	var evs []AddrEvent
	if ok && !prev.gone && prev.name != "" && prev.name != a.Name {
		if wasUp {
			evs = append(evs, AddrEvent{Kind: LinkDown, Ifname: prev.name, Ifindex: idx})
		}
		wasUp = false
	}
	switch {
	case up && !wasUp:
		evs = append(evs, AddrEvent{Kind: LinkUp, Ifname: a.Name, Ifindex: idx})
	case !up && wasUp:
		evs = append(evs, AddrEvent{Kind: LinkDown, Ifname: a.Name, Ifindex: idx})
	}
	return evs
}
