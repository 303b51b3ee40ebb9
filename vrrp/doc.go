// Package vrrp speaks VRRP (v2 RFC 3768 with keepalived's PASS
// authentication, v3 RFC 5798, IPv4 and IPv6, multicast and unicast) for
// vipd's instances. It owns the protocol; it does not own addresses (it asks
// an AddressPlane, implemented by package vip) nor decide what runs (the
// agent builds instances from the configuration and drives them).
//
// The wire format is package vrrp/wire's: Advert, Parse/ParseInto and
// AppendMarshal, checksums, the receive checks (CheckRecv, what
// keepalived's vrrp_check_packet refuses, as a pure function of an advert
// and the instance's expectations) and the drop reasons. Pure, fuzzed,
// golden-tested against keepalived's captures.
//
// This package holds the other concerns, each in its own file:
//
//   - the state machine (machine.go): Machine.Step, a pure function of
//     events and time returning actions (send, acquire, release,
//     transition); no I/O, no clock;
//   - the sockets (conn.go): one raw IP protocol 112 socket per interface
//     and family, shared by every instance on it;
//   - the runtime (transport.go, runner.go, instance.go, syncgroup.go): the
//     transport reads each socket and hands adverts to the instance of
//     their VRID; a runner runs the work of every instance of one socket;
//     an Instance carries out its machine's actions; a SyncGroup moves its
//     members together.
//
// # The runtime's costs
//
// A node runs thousands of instances, so the per-advert path is built to
// cost little more than its syscalls:
//
//   - Receiving: one reader goroutine per socket reads with recvmsg(2) into
//     reused buffers (the IPv4 header and the IPv6 control messages are
//     parsed in place), parses into the reader's own Advert (wire.ParseInto),
//     runs the receive checks against the instance's current expectations
//     (an atomic pointer swapped by live updates) and hands the instance a
//     small value (sender, priority, interval, flags) through its queue.
//     Nothing on that path allocates, formats, logs or takes a lock shared
//     with other sockets: drops are counted in per-socket atomic counters
//     by VRID and reason; a misconfigured peer's drop is handed over to be
//     logged at most once a second per reason; warnings are rate-limited
//     by a struct key checked before any argument is built.
//   - Stepping: instances have no goroutine. One runner per socket (per
//     interface and family) owns the state of all its instances and runs
//     their work one item at a time: received adverts, requests (the
//     agent's door), sync group orders, timers. The runner keeps one timer,
//     for the earliest deadline of a heap of its instances; instances whose
//     deadlines fall on one instant (a batch of work is served at one
//     instant, so masters started together stay together) are served in
//     one wake-up. The heap is updated lazily: an entry due no later than
//     the instance's next deadline stays (it fires early and finds nothing
//     due), so a backup's down timer, which moves on every advert, costs a
//     heap update about once per Master_Down_Interval. The machine's hot
//     results (a master's advert timer) reuse the machine's own action
//     slice. Side effects (netlink, GARP/NA, notify) run on the runner, in
//     order; one socket's instances wait for them, the other sockets' do
//     not.
//   - Sending: adverts are built into a per-instance buffer
//     (wire.Advert.AppendMarshal) and sent with a per-socket prebuilt
//     header and control messages.
//
// Benchmarks with -benchmem (make bench) hold this: BenchmarkReceiveAdvert
// (parse, checks and step), BenchmarkBuildAdvert, BenchmarkMasterAdvertTimer
// and BenchmarkTransportDispatch (from the socket read to the step, per
// delivered advert) are all 0 allocs/op.
package vrrp
