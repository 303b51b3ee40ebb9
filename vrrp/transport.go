package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/vipd/vipd/vrrp/wire"
)

// PacketConn is what the transport needs from a socket; *Conn implements it
// and tests use an in-memory one.
type PacketConn interface {
	Sender
	Recv(buf []byte) ([]byte, wire.RecvMeta, error)
	Close() error
}

// Transport owns the VRRP sockets: one per (interface, family), shared by
// every instance on it, each with one reader goroutine that parses adverts,
// runs the receive checks and hands them to the instance of their VRID.
type Transport struct {
	log  *slog.Logger
	open func(ifname string, v6 bool) (PacketConn, error)
	// gone holds the drop counts of sockets closed since, so counters
	// stay monotonic.
	gone map[dropKey]uint64

	mu    sync.Mutex
	conns map[connKey]*muxConn
}

type connKey struct {
	ifname string
	v6     bool
}

type muxConn struct {
	conn PacketConn
	done chan struct{}
	run  *runner // runs the work of every instance reading on this socket

	// drops counts dropped adverts by VRID (0: unknown) and reason index.
	drops [256][wire.NumDropReasons]atomic.Uint64

	// The reader's advert, reused for every packet (one reader per socket).
	adv   wire.Advert
	addrs [255]netip.Addr

	mu      sync.RWMutex
	byVRID  map[uint8]*Instance
	senders int // instances that only send through this socket (vmac_xmit_base)

	// groups counts the attached instances per multicast group they
	// listen on, joined holds each attached instance's group; both under
	// Transport.mu.
	groups map[netip.Addr]int
	joined map[*Instance]netip.Addr
}

// GroupJoiner is a PacketConn that joins multicast groups (*Conn). The
// transport joins every group an attached instance listens on, once, and
// leaves it when the last of them detaches.
type GroupJoiner interface {
	JoinGroup(g netip.Addr) error
	LeaveGroup(g netip.Addr) error
}

// NewTransport returns a transport opening real raw sockets.
func NewTransport(log *slog.Logger) *Transport {
	return NewTransportWith(log, func(ifname string, v6 bool) (PacketConn, error) {
		return ListenConn(ifname, v6)
	})
}

// NewTransportWith takes the function that opens a socket (tests).
func NewTransportWith(log *slog.Logger, open func(ifname string, v6 bool) (PacketConn, error)) *Transport {
	if log == nil {
		log = slog.Default()
	}
	return &Transport{log: log, open: open, conns: map[connKey]*muxConn{}, gone: map[dropKey]uint64{}}
}

// DropCount is the number of adverts dropped for one reason on one
// interface and VRID (0: not known).
type DropCount struct {
	Reason wire.DropReason
	Ifname string
	VRID   int
	Count  uint64
}

type dropKey struct {
	reason int
	ifname string
	vrid   int
}

// Drops returns every non-zero drop count, sorted by interface, VRID and
// reason.
func (t *Transport) Drops() []DropCount {
	t.mu.Lock()
	sum := make(map[dropKey]uint64, len(t.gone))
	for k, n := range t.gone {
		sum[k] = n
	}
	for key, mc := range t.conns {
		mc.addDrops(key.ifname, sum)
	}
	t.mu.Unlock()
	reasons := wire.DropReasons()
	out := make([]DropCount, 0, len(sum))
	for k, n := range sum {
		out = append(out, DropCount{Reason: reasons[k.reason], Ifname: k.ifname, VRID: k.vrid, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Ifname != b.Ifname {
			return a.Ifname < b.Ifname
		}
		if a.VRID != b.VRID {
			return a.VRID < b.VRID
		}
		return a.Reason < b.Reason
	})
	return out
}

// DropTotals sums Drops by reason.
func DropTotals(ds []DropCount) map[wire.DropReason]uint64 {
	out := map[wire.DropReason]uint64{}
	for _, d := range ds {
		out[d.Reason] += d.Count
	}
	return out
}

func (mc *muxConn) addDrops(ifname string, into map[dropKey]uint64) {
	for vrid := range mc.drops {
		for r := range mc.drops[vrid] {
			if n := mc.drops[vrid][r].Load(); n > 0 {
				into[dropKey{r, ifname, vrid}] += n
			}
		}
	}
}

// drop counts one dropped advert; no allocation, no lock.
func (mc *muxConn) drop(vrid uint8, r wire.DropReason) {
	if k := wire.DropIndex(r); k >= 0 {
		mc.drops[vrid][k].Add(1)
	}
}

// Attach registers inst for its interface, family and VRID, opening the
// socket if it is the first instance there.
func (t *Transport) Attach(inst *Instance) error {
	key := connKey{inst.ifname, inst.v6}
	vrid := uint8(inst.vrid)
	t.mu.Lock()
	defer t.mu.Unlock()
	mc, err := t.connLocked(key)
	if err != nil {
		return err
	}
	mc.mu.Lock()
	if other, ok := mc.byVRID[vrid]; ok && other != inst {
		mc.mu.Unlock()
		t.releaseLocked(key, mc)
		return fmt.Errorf("VRID %d on %s is already used by instance %s", vrid, key.ifname, other.Name())
	}
	mc.byVRID[vrid] = inst
	if mc.run == nil {
		mc.run = newRunner(inst.clock)
	}
	inst.run = mc.run
	mc.mu.Unlock()
	if err := t.joinLocked(mc, inst, inst.mcastGroup); err != nil {
		mc.mu.Lock()
		delete(mc.byVRID, vrid)
		mc.mu.Unlock()
		t.releaseLocked(key, mc)
		return err
	}
	inst.tr = t
	inst.sender = mc.conn
	if inst.sendIf != "" && inst.sendIf != key.ifname {
		// vmac_xmit_base: adverts leave from the base interface, they
		// are still read on the VMAC.
		skey := connKey{inst.sendIf, inst.v6}
		smc, err := t.connLocked(skey)
		if err != nil {
			mc.mu.Lock()
			delete(mc.byVRID, vrid)
			mc.mu.Unlock()
			t.leaveLocked(mc, inst)
			t.releaseLocked(key, mc)
			return err
		}
		smc.mu.Lock()
		smc.senders++
		smc.mu.Unlock()
		inst.sender = smc.conn
	}
	inst.ttlSender, _ = inst.sender.(TTLSender)
	return nil
}

// joinLocked records that inst listens on multicast group g (invalid: none,
// a unicast instance) and joins g on the socket if inst is its first
// listener. t.mu is held.
func (t *Transport) joinLocked(mc *muxConn, inst *Instance, g netip.Addr) error {
	if _, ok := mc.joined[inst]; ok || !g.IsValid() {
		return nil // attached again, or unicast
	}
	if mc.groups[g] == 0 {
		if j, ok := mc.conn.(GroupJoiner); ok {
			if err := j.JoinGroup(g); err != nil {
				return err
			}
		}
	}
	mc.groups[g]++
	mc.joined[inst] = g
	return nil
}

// leaveLocked forgets inst's group, leaving it on the socket when inst was
// its last listener. t.mu is held.
func (t *Transport) leaveLocked(mc *muxConn, inst *Instance) {
	g, ok := mc.joined[inst]
	if !ok {
		return
	}
	delete(mc.joined, inst)
	if mc.groups[g]--; mc.groups[g] > 0 {
		return
	}
	delete(mc.groups, g)
	if j, ok := mc.conn.(GroupJoiner); ok {
		if err := j.LeaveGroup(g); err != nil {
			t.log.Debug("vrrp socket: leave multicast group", "group", g, "err", err)
		}
	}
}

// regroup moves an attached instance to multicast group g (a live update
// of mcast_dst_ip): the new group is joined before the old one is left.
func (t *Transport) regroup(inst *Instance, g netip.Addr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	mc, ok := t.conns[connKey{inst.ifname, inst.v6}]
	if !ok {
		return nil
	}
	old, had := mc.joined[inst]
	if !had {
		mc.mu.RLock()
		attached := mc.byVRID[uint8(inst.vrid)] == inst
		mc.mu.RUnlock()
		if !attached {
			return nil
		}
	}
	if had && old == g {
		return nil
	}
	if g.IsValid() {
		// Counted before the old one is left, so a shared group stays.
		if mc.groups[g] == 0 {
			if j, ok := mc.conn.(GroupJoiner); ok {
				if err := j.JoinGroup(g); err != nil {
					return err
				}
			}
		}
		mc.groups[g]++
	}
	t.leaveLocked(mc, inst)
	if g.IsValid() {
		mc.joined[inst] = g
	}
	return nil
}

// Groups returns the multicast groups joined on ifname for the family, with
// how many attached instances listen on each (status and tests).
func (t *Transport) Groups(ifname string, v6 bool) map[netip.Addr]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[netip.Addr]int{}
	if mc, ok := t.conns[connKey{ifname, v6}]; ok {
		for g, n := range mc.groups {
			out[g] = n
		}
	}
	return out
}

// connLocked returns the socket for key, opening it (and its reader) if
// needed. t.mu is held.
func (t *Transport) connLocked(key connKey) (*muxConn, error) {
	if mc, ok := t.conns[key]; ok {
		return mc, nil
	}
	c, err := t.open(key.ifname, key.v6)
	if err != nil {
		return nil, err
	}
	mc := &muxConn{conn: c, done: make(chan struct{}), byVRID: map[uint8]*Instance{},
		groups: map[netip.Addr]int{}, joined: map[*Instance]netip.Addr{}}
	t.conns[key] = mc
	go t.read(key, mc)
	return mc, nil
}

// releaseLocked closes mc if nobody uses it any more and reports whether it
// did. t.mu is held; the caller waits for the reader (mc.done) after the
// unlock, so here the close only starts it.
func (t *Transport) releaseLocked(key connKey, mc *muxConn) bool {
	mc.mu.Lock()
	empty := len(mc.byVRID) == 0 && mc.senders == 0
	mc.mu.Unlock()
	if empty {
		delete(t.conns, key)
		mc.conn.Close()
		mc.addDrops(key.ifname, t.gone)
	}
	return empty
}

// Detach unregisters inst; the last user of a socket closes it.
func (t *Transport) Detach(inst *Instance) {
	key := connKey{inst.ifname, inst.v6}
	var closed []*muxConn
	t.mu.Lock()
	if mc, ok := t.conns[key]; ok {
		mc.mu.Lock()
		if mc.byVRID[uint8(inst.vrid)] == inst {
			delete(mc.byVRID, uint8(inst.vrid))
		}
		mc.mu.Unlock()
		t.leaveLocked(mc, inst)
		if t.releaseLocked(key, mc) {
			closed = append(closed, mc)
		}
	}
	if inst.sendIf != "" && inst.sendIf != key.ifname {
		skey := connKey{inst.sendIf, inst.v6}
		if smc, ok := t.conns[skey]; ok {
			smc.mu.Lock()
			if smc.senders > 0 {
				smc.senders--
			}
			smc.mu.Unlock()
			if t.releaseLocked(skey, smc) {
				closed = append(closed, smc)
			}
		}
	}
	t.mu.Unlock()
	for _, mc := range closed {
		<-mc.done
		mc.closeRunner()
	}
}

// closeRunner stops the socket's runner (its instances have stopped).
func (mc *muxConn) closeRunner() {
	mc.mu.Lock()
	r := mc.run
	mc.mu.Unlock()
	if r != nil {
		r.close()
	}
}

// Close closes every socket and waits for the readers to end.
func (t *Transport) Close() {
	t.mu.Lock()
	conns := t.conns
	t.conns = map[connKey]*muxConn{}
	t.mu.Unlock()
	for _, mc := range conns {
		mc.conn.Close()
		<-mc.done
		mc.closeRunner()
	}
}

func (t *Transport) read(key connKey, mc *muxConn) {
	defer close(mc.done)
	buf := make([]byte, 65536)
	for {
		payload, meta, err := mc.conn.Recv(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Debug("vrrp socket read", "interface", key.ifname, "err", err)
			continue
		}
		t.dispatch(mc, payload, meta)
	}
}

func (t *Transport) dispatch(mc *muxConn, payload []byte, meta wire.RecvMeta) {
	if len(payload) < 2 {
		mc.drop(0, wire.DropTruncated)
		return
	}
	vrid := payload[1]
	mc.mu.RLock()
	inst := mc.byVRID[payload[1]]
	mc.mu.RUnlock()
	if inst == nil {
		mc.drop(vrid, wire.DropUnknownVRID)
		return
	}
	rc := inst.rxc.Load()
	adv := &mc.adv
	if err := wire.ParseInto(adv, mc.addrs[:0], payload, meta.Src, meta.Dst, rc.ckopt); err != nil {
		var de *wire.DropError
		if errors.As(err, &de) {
			mc.drop(vrid, de.Reason)
			if peerMisconfigured(de.Reason) && inst.mayReportDrop(de.Reason) {
				inst.deliver(rxItem{src: meta.Src, drop: de})
			}
		}
		return
	}
	res := wire.CheckRecv(adv, meta, rc.expect)
	if res.Drop != nil {
		mc.drop(vrid, res.Drop.Reason)
		if peerMisconfigured(res.Drop.Reason) && inst.mayReportDrop(res.Drop.Reason) {
			inst.deliver(rxItem{src: meta.Src, drop: res.Drop})
		}
		return
	}
	it := rxItem{src: meta.Src, priority: adv.Priority, interval: adv.Interval, res: res}
	if res.AddrListDiffers && inst.mayReportDrop(wire.WarnAddrListDiffers) {
		it.addrs = slices.Clone(adv.Addrs) // to log it, at most once a second
	}
	if !inst.deliver(it) {
		mc.drop(vrid, wire.DropQueueFull)
	}
}

// peerMisconfigured reports whether a drop says a peer in our VRID is
// configured (or built) differently: the instance logs those, at most once
// a minute per peer and reason. Other drops are only counted.
func peerMisconfigured(r wire.DropReason) bool {
	switch r {
	case wire.DropIntervalMismatch, wire.DropAuthType, wire.DropAuthPass, wire.DropBadVersion, wire.DropBadChecksum, wire.DropAddrCount:
		return true
	}
	return false
}
