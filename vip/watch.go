package vip

import (
	"context"
	"fmt"
	"net/netip"
)

// AddrEventKind says what happened.
type AddrEventKind int

// Kinds of AddrEvent.
const (
	// AddrRemoved: an address left an interface (ip addr del, a flush, the
	// kernel dropping IPv6 addresses on link down, vipd's own DelAddrs).
	AddrRemoved AddrEventKind = iota + 1
	// AddrAdded: an address appeared on an interface. The kernel announces
	// an address again when its flags or lifetimes change (IPv6 DAD
	// completing, for one), so it can repeat for an address already there.
	AddrAdded
	// LinkUp: an interface became usable, that is IFF_UP and IFF_RUNNING
	// both set (administratively up and operationally up, carrier
	// included), the test keepalived applies to its interfaces.
	LinkUp
	// LinkDown: an interface stopped being usable (IFF_UP or IFF_RUNNING
	// cleared), was renamed away (reported under its old name) or was
	// removed.
	LinkDown
	// Resync: events may have been lost, or the watch has just started;
	// consumers must re-check everything they care about.
	Resync
)

func (k AddrEventKind) String() string {
	switch k {
	case AddrRemoved:
		return "addr-removed"
	case AddrAdded:
		return "addr-added"
	case LinkUp:
		return "link-up"
	case LinkDown:
		return "link-down"
	case Resync:
		return "resync"
	}
	return fmt.Sprintf("AddrEventKind(%d)", int(k))
}

// AddrEvent is one change seen on the host.
type AddrEvent struct {
	Kind    AddrEventKind
	Ifname  string       // interface name ("" for Resync, or when the kernel no longer knows the ifindex)
	Ifindex int          // 0 for Resync
	Prefix  netip.Prefix // AddrAdded/AddrRemoved only: the address with its prefix length
}

func (e AddrEvent) String() string {
	switch e.Kind {
	case Resync:
		return e.Kind.String()
	case AddrAdded, AddrRemoved:
		return fmt.Sprintf("%s %s dev %s (%d)", e.Kind, e.Prefix, e.Ifname, e.Ifindex)
	}
	return fmt.Sprintf("%s dev %s (%d)", e.Kind, e.Ifname, e.Ifindex)
}

// Watcher delivers address and link events of this network namespace. It
// is implemented by *NetlinkWatcher (the kernel) and *Memory (events of the
// in-memory plane, for unit tests).
//
// The first event of every Watch is a Resync, delivered once the
// subscription is live: a change made before it is not reported, so a
// consumer checks its state when it sees that Resync (and every later one).
// Events include the ones vipd causes itself (its own AddAddrs and
// DelAddrs), as the kernel reports them.
type Watcher interface {
	// Watch calls fn for every event, in order, from one goroutine, until
	// ctx is done; it returns nil when ctx ends and an error when it could
	// not subscribe. fn must not block for long.
	Watch(ctx context.Context, fn func(AddrEvent)) error
}

var _ Watcher = (*Memory)(nil)
