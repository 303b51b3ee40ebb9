package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vipd/vipd/api"
)

// Local is what gossip needs from the agent (its door). Implemented by the
// agent.
type Local interface {
	// Subscribe is the agent's state stream (api.Stream's method): a
	// snapshot, then every change. gossip re-reads Snapshot (coalesced)
	// whenever an event arrives.
	Subscribe(ctx context.Context) (api.Status, <-chan api.Event)
	// Snapshot is this node's part of the fleet view now.
	Snapshot() NodeState
	// SetMaintenance applies a maintenance request that came from another
	// node (the agent's door; source is "operator").
	SetMaintenance(source, instance, reason string, on bool) error
}

// NodeState is one node's share of the fleet view.
type NodeState struct {
	Version     string              `json:"version"`     // vipd version
	Maintenance string              `json:"maintenance"` // "" none; else the reason ("maintenance" when none given)
	Instances   []api.FleetInstance `json:"instances"`   // every instance, as vipd status shows it plus segment/source/family/advert_int/auth_hash
}

// Config configures a gossip node.
type Config struct {
	NodeName string
	// Bind is the HOST:PORT to listen on (TCP and UDP); HOST an IP
	// address. "" = 0.0.0.0:7946.
	Bind string
	// Advertise is the HOST:PORT others reach this node at; "" =
	// memberlist's choice (the bound address, or a private address of
	// the host when bound to 0.0.0.0).
	Advertise string
	// Join lists HOST:PORT of members to join at start, and to re-join
	// every RejoinEvery.
	Join []string
	// KeyFile holds the base64 of a 16, 24 or 32-byte key (mode 0600 or
	// stricter); "" = no encryption (New logs a warning). When
	// KeyFile+".keyring" exists (written by vipd keys), that keyring is
	// loaded instead (see doc.go, "Key rotation").
	KeyFile string
	// TuningFile is an optional JSON or YAML file overriding memberlist's
	// timings (see doc.go); "" = memberlist's LAN defaults.
	TuningFile string
	Log        *slog.Logger
	// RejoinEvery is the period of the re-join loop; 0 = 15s.
	RejoinEvery time.Duration
}

// SourceOperator is the source gossip passes to Local.SetMaintenance: a
// maintenance request from another node is the operator's.
const SourceOperator = "operator"

const (
	defaultBind        = "0.0.0.0:7946"
	defaultRejoinEvery = 15 * time.Second
	// coalesce: changes of this node's state within this window travel
	// as one message.
	coalesce = 50 * time.Millisecond
	// evalDelay coalesces re-evaluations of the view (split brain log and
	// metric).
	evalDelay = 100 * time.Millisecond
	// leaveTimeout bounds memberlist's graceful leave at the end of Run,
	// goodbyeTimeout the message before it telling the members.
	leaveTimeout   = time.Second
	goodbyeTimeout = 300 * time.Millisecond
	// maintTimeout bounds SendMaintenance's wait for the answer.
	maintTimeout = 5 * time.Second
	// forgetAfter: a node dead or left this long leaves the fleet view.
	forgetAfter = 24 * time.Hour
	// senders is the number of goroutines sending states to members.
	senders = 8
	// bundleBudget bounds the JSON of other nodes' states in a push/pull
	// (this node's own state always goes).
	bundleBudget = 16 << 20
)

// Node is this node's membership in the gossip cluster.
type Node struct {
	cfg         Config
	log         *slog.Logger
	keys        *keyring // the gossip keyring (keys.go); nil without encryption
	tune        tuning
	bindHost    string
	bindPort    int
	advHost     string
	advPort     int
	rejoinEvery time.Duration
	local       Local
	epoch       int64 // this run's start, ns: orders states across restarts
	metrics     *metrics
	out         *outbox
	evalCh      chan struct{}
	metaCh      chan struct{}
	started     atomic.Bool
	maintSlots  chan struct{} // bounds the maintenance requests applied at once

	// wrapTransport, when set (tests), wraps the network transport.
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport

	mu        sync.Mutex
	ml        *memberlist.Memberlist   // nil before Run and after it ends
	stop      context.CancelFunc       // ends Run
	killed    bool                     // tests: stop without leaving
	members   map[string]*member       // every node memberlist told us of, this one included
	states    map[string]*stateMsg     // the newest state of every other node
	own       *stateMsg                // this node's latest published state
	ownJSON   []byte                   // its NodeState as JSON, to see changes
	ownWire   []byte                   // it as a message
	joinAddrs []string                 // configured and runtime joins, for re-join
	maintWait waiters[maintResp]       // maintenance requests sent, waiting for their answers
	splits    map[vrrpGroup]splitBrain // split brains this node is part of
	lastWarn  time.Time                // rate limit of decode warnings
}

// member is what memberlist told us of a node. Fields are copied inside
// memberlist's event callbacks: memberlist rewrites its Node values in
// place, so they are never read elsewhere (memberlist issue #306).
type member struct {
	ip      net.IP
	port    uint16
	state   string
	since   time.Time
	meta    nodeMeta
	hasMeta bool
	// heard is when the node itself last sent us something (its state,
	// or a request): a split brain counts its MASTERs only once heard
	// after the newest MASTER of the group began (see compute).
	heard    time.Time
	probedAt time.Time // when we last asked it for its state to confirm one
}

func (m *member) addr() string {
	if m.ip == nil {
		return ""
	}
	return net.JoinHostPort(m.ip.String(), strconv.Itoa(int(m.port)))
}

func (m *member) alive() bool { return m.state == stateAlive || m.state == stateSuspect }

// mlNode is the memberlist address of a member, for SendReliable.
func (m *member) mlNode(name string) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: slices.Clone(m.ip), Port: m.port}
}

// New checks cfg (addresses, key file and its mode, tuning file) and
// returns a node that Run starts.
func New(cfg Config, local Local) (*Node, error) {
	if local == nil {
		return nil, errors.New("gossip: no local agent")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("gossip: node name is required")
	}
	if len(cfg.NodeName) > maxNameLen {
		return nil, fmt.Errorf("gossip: node name of %d bytes: at most %d", len(cfg.NodeName), maxNameLen)
	}
	n := &Node{
		cfg:        cfg,
		log:        cfg.Log,
		local:      local,
		epoch:      time.Now().UnixNano(),
		metrics:    newMetrics(),
		out:        newOutbox(),
		evalCh:     make(chan struct{}, 1),
		metaCh:     make(chan struct{}, 1),
		maintSlots: make(chan struct{}, maxMaintHandlers),
		members:    map[string]*member{},
		states:     map[string]*stateMsg{},
		splits:     map[vrrpGroup]splitBrain{},
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	if cfg.Bind == "" {
		n.cfg.Bind = defaultBind
	}
	var err error
	if n.bindHost, n.bindPort, err = parseHostPort(n.cfg.Bind, true); err != nil {
		return nil, fmt.Errorf("gossip bind %q: %w", n.cfg.Bind, err)
	}
	if cfg.Advertise != "" {
		if n.advHost, n.advPort, err = parseHostPort(cfg.Advertise, true); err != nil {
			return nil, fmt.Errorf("gossip advertise %q: %w", cfg.Advertise, err)
		}
		if n.advPort == 0 {
			return nil, fmt.Errorf("gossip advertise %q: port 0", cfg.Advertise)
		}
	}
	for _, a := range cfg.Join {
		if _, _, err := parseHostPort(a, false); err != nil {
			return nil, fmt.Errorf("gossip join %q: %w", a, err)
		}
	}
	n.joinAddrs = slices.Clone(cfg.Join)
	if cfg.KeyFile != "" {
		if n.keys, err = loadKeyring(cfg.KeyFile, n.log); err != nil {
			return nil, err
		}
	} else {
		n.log.Warn("gossip is not encrypted: anyone who reaches " + n.cfg.Bind +
			" can join the cluster, read the fleet state and put nodes in maintenance; set a key with --gossip-key-file")
	}
	if cfg.TuningFile != "" {
		if n.tune, err = loadTuning(cfg.TuningFile); err != nil {
			return nil, err
		}
		if err := n.tune.apply(memberlist.DefaultLANConfig()); err != nil {
			return nil, fmt.Errorf("gossip tuning file %s: %w", cfg.TuningFile, err)
		}
	}
	switch {
	case cfg.RejoinEvery < 0:
		return nil, fmt.Errorf("gossip: rejoin interval %s: must not be negative", cfg.RejoinEvery)
	case cfg.RejoinEvery == 0:
		n.rejoinEvery = defaultRejoinEvery
	default:
		n.rejoinEvery = cfg.RejoinEvery
	}
	return n, nil
}

// parseHostPort splits HOST:PORT; ipOnly requires HOST to be an IP
// address (memberlist binds and advertises IP addresses only).
func parseHostPort(s string, ipOnly bool) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("want HOST:PORT: %v", err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: want 0..65535", port)
	}
	if host == "" {
		return "", 0, errors.New("no host")
	}
	if ipOnly {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", 0, fmt.Errorf("host %q: want an IP address", host)
		}
	}
	return host, int(p), nil
}

// memberlistConfig is memberlist's LAN configuration with this node's
// name, addresses, key, tuning, logging and delegates.
func (n *Node) memberlistConfig() (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = n.cfg.NodeName
	c.BindAddr, c.BindPort = n.bindHost, n.bindPort
	c.AdvertiseAddr, c.AdvertisePort = n.advHost, n.advPort
	if n.advHost == "" {
		c.AdvertisePort = n.bindPort
	}
	if err := n.tune.apply(c); err != nil {
		return nil, err
	}
	if n.keys != nil {
		c.Keyring = n.keys.ml
		c.GossipVerifyIncoming = true
		c.GossipVerifyOutgoing = true
	}
	c.Logger = log.New(&logBridge{log: n.log, onSuspect: n.suspect}, "", 0)
	d := &delegate{n}
	// keysDelegate routes the keyring messages to keys.go.
	c.Delegate, c.Events, c.Ping, c.Conflict = keysDelegate{d}, d, d, d
	if n.wrapTransport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{c.BindAddr}, BindPort: c.BindPort, Logger: c.Logger,
		})
		if err != nil {
			return nil, err
		}
		c.Transport = n.wrapTransport(nt)
	}
	return c, nil
}

// Run starts memberlist, joins the configured members and runs until ctx
// ends; then it leaves the cluster gracefully (bounded by ~1 s) and shuts
// memberlist down. It returns an error when memberlist cannot start (the
// address is in use, ...); failing to join is not one: the re-join loop
// keeps trying.
func (n *Node) Run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("gossip: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, events := n.local.Subscribe(ctx)
	// This node's state exists before memberlist does: its metadata and
	// its first push/pull carry it.
	n.publish()

	mc, err := n.memberlistConfig()
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("gossip: start on %s: %w", n.cfg.Bind, err)
	}
	n.mu.Lock()
	n.ml = ml
	n.stop = cancel
	n.mu.Unlock()
	n.log.Info("gossip started", "node", n.cfg.NodeName, "addr", n.Addr(), "encrypted", n.keys != nil)

	var wg sync.WaitGroup
	goes := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	goes(func(ctx context.Context) { n.follow(ctx, events) })
	goes(n.updateMeta)
	goes(n.evaluateLoop)
	goes(n.rejoinLoop)
	for range senders {
		goes(n.sendLoop)
	}

	<-ctx.Done()
	// Let the goroutines end, but do not wait on a send or join stuck in
	// a TCP timeout: they fail on their own against a shut-down node.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(goodbyeTimeout):
	}
	n.mu.Lock()
	n.ml = nil
	killed := n.killed
	n.mu.Unlock()
	if !killed {
		n.sayGoodbye(ml)
		if err := ml.Leave(leaveTimeout); err != nil {
			n.log.Debug("gossip leave", "err", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		n.log.Debug("gossip shutdown", "err", err)
	}
	n.log.Info("gossip stopped", "node", n.cfg.NodeName, "left", !killed)
	return nil
}

// kill stops Run without leaving the cluster, as a crash would (tests).
func (n *Node) kill() {
	n.mu.Lock()
	n.killed = true
	stop, ml := n.stop, n.ml
	n.mu.Unlock()
	if ml != nil {
		_ = ml.Shutdown()
	}
	if stop != nil {
		stop()
	}
}

// memberlist returns the running memberlist, nil when not running.
func (n *Node) memberlist() *memberlist.Memberlist {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ml
}

// Addr is this node's gossip address HOST:PORT as others reach it ("" when
// not running).
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.members[n.cfg.NodeName]; m != nil {
		return m.addr()
	}
	return ""
}

// Join joins the cluster through addrs (vipd join) and remembers them for
// the re-join loop. It returns how many were contacted.
func (n *Node) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, errors.New("gossip join: no address given")
	}
	for _, a := range addrs {
		if _, _, err := parseHostPort(a, false); err != nil {
			return 0, fmt.Errorf("gossip join %q: %w", a, err)
		}
	}
	n.mu.Lock()
	ml := n.ml
	if ml != nil {
		for _, a := range addrs {
			if !slices.Contains(n.joinAddrs, a) {
				n.joinAddrs = append(n.joinAddrs, a)
			}
		}
	}
	n.mu.Unlock()
	if ml == nil {
		return 0, errors.New("gossip join: gossip is not running")
	}
	c, err := ml.Join(addrs)
	if err != nil {
		n.metrics.error("join")
		return c, fmt.Errorf("gossip join: %w", err)
	}
	n.log.Info("gossip joined", "addrs", addrs, "contacted", c)
	return c, nil
}

// Fleet is the whole fleet as this node sees it, this node included:
// nodes by name (instances by name), peers by segment, VRID and address,
// warnings by kind and VRID.
func (n *Node) Fleet() api.Fleet {
	f, _ := compute(n.nodeViews(), n.cfg.NodeName)
	return f
}

// nodeViews is every known node with its state; this node's is read from
// the agent now.
func (n *Node) nodeViews() []nodeView {
	snap := n.local.Snapshot()
	n.mu.Lock()
	defer n.mu.Unlock()
	self := nodeView{Name: n.cfg.NodeName, State: stateAlive, NodeState: snap, Heard: time.Now()}
	if m := n.members[n.cfg.NodeName]; m != nil {
		self.Addr, self.State = m.addr(), m.state
	}
	out := []nodeView{self}
	for name, m := range n.members {
		if name == n.cfg.NodeName {
			continue
		}
		v := nodeView{Name: name, Addr: m.addr(), State: m.state, Heard: m.heard}
		if st := n.states[name]; st != nil {
			v.NodeState = st.State
		} else if m.hasMeta {
			v.Version = m.meta.Version
		}
		out = append(out, v)
	}
	return out
}
