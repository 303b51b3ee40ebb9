// Package gossip makes every vipd node a member of a gossip cluster
// (hashicorp/memberlist) so that any node can show the whole fleet (vipd
// status --fleet), detect split brain, and carry an operator's maintenance
// request to another node.
//
// # What it owns, what it does not
//
// It owns: membership (join, leave, failure detection, re-join after a
// partition), the exchange of every node's state, the fleet view computed
// from it (nodes, classic VRRP peers, warnings), the transport of
// maintenance requests between nodes, the split brain log and metric, the
// encryption of gossip with a key file, and the rotation of its keys
// across the fleet (vipd keys).
//
// It does not own: configuration (gossip is never a config authority: it
// changes no model and applies nothing but the maintenance requests the
// operator sends to a node, through the agent's door), arbitration of a
// split brain (coord/, with etcd: gossip only reports), VRRP itself, nor
// keeping a maintenance across a restart (the agent's state).
//
// # The state exchange
//
// A node's share of the fleet is a NodeState: its vipd version, its
// maintenance and its instances as vipd status shows them, plus segment,
// source address, family, advert interval and an authentication hash. Every
// state travels as a stateMsg: the sender's name, its run epoch (start
// time, ns) and a sequence number that grows with every change. A receiver
// keeps the newest (epoch, seq) per node and ignores older ones, whatever
// the path, so paths may overlap freely:
//
//   - Changes: the node follows the agent's stream (Local.Subscribe) and
//     re-reads Local.Snapshot 50 ms after the first event of a burst, so a
//     mass failover of thousands of instances is one state. When the state
//     changed, it goes to every live member by memberlist.SendReliable (TCP:
//     no UDP size limit), gzipped over 1 KiB. The outbox merges what is owed
//     to each member: a member whose send is still queued gets the latest
//     state once. Eight senders work in parallel, so one member that does
//     not answer (TCP timeout) does not hold the others up.
//   - Push/pull (memberlist's anti-entropy every 30 s, and every join): a
//     bundle of this node's state and the newest states it holds of the
//     others (up to 16 MiB of JSON), so states also spread through third
//     nodes.
//   - Node metadata (at most 512 bytes, in every alive message):
//     {"v":version,"n":instances,"e":epoch,"s":seq}. A member whose
//     metadata announces a newer state than the one held is asked for it
//     (a state request), at once and again at every re-join tick: a lost
//     send is repaired without waiting for a push/pull.
//
// Only states of nodes memberlist told us of are kept; this node's own
// state comes from the agent, never from the network. Everything received
// is decoded defensively (a version/kind/encoding header, bounded gzip,
// JSON, validation; see wire.go and FuzzDecodeMessage, FuzzDecodeMeta).
//
// # Membership states
//
// FleetNode.State is memberlist's view: alive, suspect, dead or left; a
// node is Alive when alive or suspect. Two states need help, because
// memberlist reports neither:
//
//   - left: memberlist's leave and a failure reach the event delegate the
//     same way (its Node.State is not maintained). A node that stops (Run's
//     context ends) first sends every live member its state marked Leaving
//     (bounded by 300 ms), then leaves (bounded by 1 s) and shuts down; a
//     node seen gone after such a goodbye is left, otherwise dead.
//   - suspect: memberlist has no event for it, and reading its Node values
//     outside its callbacks races with its updates (memberlist issues #250,
//     #306). A node is shown suspect when this node's own probe of it
//     failed (memberlist logs it), until it answers a probe, sends us
//     something, or is declared dead. Suspicions raised by other members are
//     not shown.
//
// A dead or left node stays listed with its last known instances, but
// counts for no peer, split brain or mismatch; it leaves the view 24 h
// after it went (or at once if it comes back, with its new state). Node
// fields are only read inside memberlist's callbacks and copied.
//
// # Failure detection with the LAN defaults
//
// memberlist's LAN configuration: probe interval 1 s, probe timeout 500 ms,
// 3 indirect probes, suspicion multiplier 4 (maximum multiplier 6), gossip
// every 200 ms to 3 members. After a crash:
//
//   - some member probes the dead node within about one probe interval
//     (each member probes one other per interval, round robin), and the
//     probe fails at the end of that interval (direct ping 500 ms, then
//     indirect pings and a TCP ping): suspect after about 1 to 2 s;
//   - the suspicion lasts SuspicionMult × max(1, log10(N)) × ProbeInterval
//     = 4 s for up to 10 members (5.2 s for 20, 8 s for 100) when enough
//     other members confirm it (2 confirmations, expected from 4 members
//     on; with 3 or fewer members none is expected and 4 s applies);
//     without confirmations it can stretch up to 6 × that, 24 s;
//   - the dead message reaches every member within a few gossip rounds
//     (a fraction of a second).
//
// So a crashed node is seen dead after about 5 to 6 s on a healthy LAN
// cluster, and at worst after about 26 s; a node that stops gracefully is
// seen left at once. A node under load may probe less often (memberlist's
// awareness stretches its interval up to 8×). TuningFile changes these
// timings.
//
// # Re-join
//
// memberlist never contacts a member again once it has been dead longer
// than GossipToTheDeadTime (memberlist issue #222): the halves of a healed
// partition would stay apart. So at start and every RejoinEvery (15 s) the
// node joins the configured and runtime-joined addresses and the last known
// addresses of dead members, skipping addresses of alive members; a healed
// partition merges by itself within a couple of rounds.
//
// # Classic VRRP peers and warnings
//
// The view is a pure function of every node's state (view in view.go). A
// master an alive node's BACKUP hears (with a priority) that is no gossip
// node's source address for the VRID on the segment is a classic VRRP peer
// (a keepalived, a router). Warnings: split_brain (two or more MASTERs for
// one VRID on one segment and family, among alive gossip nodes and classic
// peers), config_mismatch (alive nodes of one VRID disagree on VIPs, advert
// interval, VRRP version or authentication), maintenance (a node, or an
// instance of a node not in maintenance as a whole). Instances without a
// segment are compared with nothing. When a split brain this node is part
// of appears it logs a warning once, when it ends an info line, and
// vipd_split_brain{vrid,segment} is 1 while it lasts.
//
// # Maintenance across the fleet
//
// SendMaintenance sends the request to its node by SendReliable; the node
// applies it with Local.SetMaintenance("operator", ...) and answers with
// the error, if any, the same way. The sender waits at most 5 s; an unknown
// or gone node is an error at once.
//
// # Security
//
// With KeyFile, memberlist encrypts and authenticates every packet and
// stream (AES-GCM with the 16, 24 or 32-byte key) and refuses anything
// else: a node with another key, or none, cannot join. The file must not
// be readable or writable by group or others. Without a key anyone who
// reaches the gossip port can join, read the fleet and put nodes in
// maintenance; New logs a warning. Any member can change every member's
// keyring (vipd keys): the key is the trust boundary.
//
// # Key rotation
//
// The node encrypts with a keyring (memberlist.Keyring): a primary key,
// which encrypts, and other keys, which decrypt too. Node.Keys (vipd keys,
// POST /v1/keys) applies an operation on every alive member, like Serf's
// keyring queries:
//
//   - list: each node answers with its keys as fingerprints
//     (api.KeyFingerprint: "sha256:" and 16 hex digits; never a key),
//     the primary marked;
//   - install KEY: add KEY (installing a key held does nothing);
//   - use KEY: make KEY primary; fails on a node that does not hold it;
//   - remove KEY: drop KEY (removing a key not held does nothing); fails
//     on a node whose primary it is.
//
// The operation travels as a key request (kindKeyReq, the key in base64
// inside the encrypted gossip) by SendReliable to every alive member, in
// parallel; each answers (kindKeyResp) with its error or, for list, its
// keys. The sender waits at most 5 s per node: a node without an answer
// is reported as such, and dead or left members as not reached (they keep
// their keyring). It applies the operation to itself last, so that it
// still reads the answers of nodes that refuse to drop a key they still
// encrypt with. Refused before anything is sent: no encryption, gossip not
// running, an unknown operation, a malformed key, use of a key this node
// does not hold or removal of its primary key (either would cut this node
// off from the others).
//
// The rotation: install the new key, use it, remove the old one, each step
// answered ok by every node before the next: every node decrypts the new
// key before anyone encrypts with it, and nobody still encrypts with the
// old one when it goes.
//
// After every install, use and remove a node saves its keyring to
// KeyFile+".keyring": a JSON list of the base64 keys, primary first, mode
// 0600, written atomically (a temporary file in the same directory, synced
// and renamed). At start, when that file exists it is loaded instead of
// the key file (which is not read then): a key removed across the fleet
// stays removed after restarts. It is checked like the key file (mode,
// base64, 16, 24 or 32 bytes each); delete it to start from the key file
// again. A node that was down during a rotation comes back with its old
// keyring and cannot join once the old key is removed everywhere: give it
// the new key (its key file, its .keyring deleted) and restart it.
//
// memberlist's RemoveKey shifts the keys after the removed one in place in
// the slice it hands to packets being decrypted (a data race): the keys
// after the removed one are taken off from the end and added back instead
// (removing the last key moves nothing).
//
// # Tuning file
//
// JSON or YAML, every key optional, durations as Go durations ("200ms"):
//
//	probe_interval: 1s
//	probe_timeout: 500ms        # shorter than probe_interval
//	suspicion_mult: 4
//	gossip_interval: 200ms
//	gossip_nodes: 3
//	push_pull_interval: 30s
//	tcp_timeout: 10s
//	gossip_to_the_dead_time: 30s
//	retransmit_mult: 4
//
// An unknown key is an error naming it.
//
// # Logging and metrics
//
// memberlist's log lines go to slog at debug, its [WARN] and [ERR] lines
// at warn. Members joining, leaving and failing are logged at info (warn
// for a failure). Node.Collector serves vipd_gossip_members{state},
// vipd_split_brain{vrid,segment}, vipd_gossip_messages_total{direction,kind}
// and vipd_gossip_errors_total{kind} (see metrics.go).
package gossip
