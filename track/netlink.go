package track

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetlinkSource is the LinkSource of one network namespace: the namespace
// of the goroutine that called NewNetlinkSource (its OS thread), also when
// Watch and Link are later called from other threads.
type NetlinkSource struct {
	ns     netns.NsHandle
	handle *netlink.Handle
}

// NewNetlinkSource opens netlink in the current network namespace. Call it
// from inside the namespace to watch (for tests: a goroutine locked to a
// thread in it). Close releases it.
func NewNetlinkSource() (*NetlinkSource, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("track: current network namespace: %w", err)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("track: netlink: %w", err)
	}
	return &NetlinkSource{ns: ns, handle: h}, nil
}

// Close releases the netlink socket and the namespace handle.
func (s *NetlinkSource) Close() error {
	s.handle.Close()
	return s.ns.Close()
}

// Link implements LinkSource.
func (s *NetlinkSource) Link(name string) (bool, error) {
	l, err := s.handle.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, nil
		}
		return false, fmt.Errorf("link %s: %w", name, err)
	}
	return flagsUp(l.Attrs().RawFlags), nil
}

// Watch implements LinkSource with an RTNLGRP_LINK subscription.
func (s *NetlinkSource) Watch(ctx context.Context, out chan<- LinkEvent) error {
	opts := netlink.LinkSubscribeOptions{
		ErrorCallback: func(error) {}, // the closed channel tells the manager
	}
	// The subscription socket belongs to the namespace of the thread that
	// creates it; enter ours only when this thread is elsewhere (setns needs
	// privileges, even into the namespace one is already in).
	if cur, err := netns.Get(); err == nil {
		if !cur.Equal(s.ns) {
			opts.Namespace = &s.ns
		}
		cur.Close()
	}
	in := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(in, done, opts); err != nil {
		close(done)
		return fmt.Errorf("track: subscribe to link updates: %w", err)
	}
	go func() {
		defer close(out)
		defer func() {
			close(done)
			for range in { // let netlink's reader end
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-in:
				if !ok {
					return
				}
				ev := LinkEvent{
					Index: int(u.Index),
					Up:    flagsUp(u.Flags),
					Gone:  u.Header.Type == unix.RTM_DELLINK,
				}
				if u.Link != nil && u.Link.Attrs() != nil {
					ev.Name = u.Link.Attrs().Name
				}
				if ev.Name == "" {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return nil
}

// flagsUp is keepalived's FLAGS_UP: IFF_UP and IFF_RUNNING.
func flagsUp(flags uint32) bool {
	const want = unix.IFF_UP | unix.IFF_RUNNING
	return flags&want == want
}
