package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vipd/vipd/api"
)

// delegate is the memberlist side of a Node: node metadata, user
// messages, push/pull state, membership events, pings and name conflicts.
// Every method may be called concurrently by memberlist; the event
// callbacks run under memberlist's node lock, so nothing here calls back
// into memberlist, and a Node never calls memberlist while holding n.mu.
type delegate struct{ n *Node }

var errNotBundle = errors.New("push/pull state is not a bundle")

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.PingDelegate     = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

// NodeMeta: {"v":version,"n":instances,"e":epoch,"s":seq}.
func (d *delegate) NodeMeta(limit int) []byte {
	n := d.n
	n.mu.Lock()
	m := nodeMeta{Epoch: n.epoch}
	if n.own != nil {
		m.Version, m.Instances, m.Seq = n.own.State.Version, len(n.own.State.Instances), n.own.Seq
	}
	n.mu.Unlock()
	b := encodeMeta(m)
	if len(b) > limit {
		m.Version = ""
		b = encodeMeta(m)
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) { d.n.receive(bytes.Clone(b)) }

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState is this node's state and what it knows of the others (within
// bundleBudget), for a push/pull.
func (d *delegate) LocalState(join bool) []byte {
	b, err := d.n.bundle()
	if err != nil {
		d.n.log.Warn("gossip: encoding the push/pull state", "err", err)
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	n := d.n
	if len(buf) == 0 {
		return
	}
	m, err := decodeMessage(buf)
	if err == nil && m.Kind != kindBundle {
		err = errNotBundle
	}
	if err != nil {
		n.decodeError("push/pull state", err)
		return
	}
	n.metrics.message("received", "state")
	for _, s := range m.Bundle.States {
		n.acceptState(s, s.Node == m.Bundle.From)
	}
}

func (d *delegate) NotifyJoin(node *memberlist.Node)   { d.n.memberUp(node, true) }
func (d *delegate) NotifyUpdate(node *memberlist.Node) { d.n.memberUp(node, false) }
func (d *delegate) NotifyLeave(node *memberlist.Node)  { d.n.memberDown(node) }

func (d *delegate) AckPayload() []byte { return nil }

// NotifyPingComplete: our probe of other was answered; only its Name is
// read (memberlist rewrites the other fields in place).
func (d *delegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	d.n.unsuspect(other.Name)
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.n.log.Warn("gossip: two nodes claim one node name: give each vipd a unique --node-name",
		"name", existing.Name, "addr", existing.Address(), "other_addr", other.Address())
}

// memberUp records a node memberlist reports alive (joined or updated).
func (n *Node) memberUp(node *memberlist.Node, joined bool) {
	name := node.Name
	meta, metaErr := decodeMeta(node.Meta)
	ip, port := slices.Clone(node.Addr), node.Port
	now := time.Now()
	self := name == n.cfg.NodeName

	n.mu.Lock()
	m := n.members[name]
	if m == nil {
		m = &member{}
		n.members[name] = m
	}
	was := m.state
	m.ip, m.port = ip, port
	if was != stateAlive {
		m.state, m.since = stateAlive, now
	}
	if metaErr == nil {
		m.meta, m.hasMeta = meta, true
	}
	want := !self && n.wants(name, m)
	n.mu.Unlock()

	if metaErr != nil && len(node.Meta) > 0 {
		n.decodeError("metadata of "+name, metaErr)
	}
	if want {
		n.out.add(name, taskRequest)
	}
	if joined && !self {
		if was == stateDead || was == stateLeft {
			n.log.Info("gossip member back", "node", name, "addr", net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), "was", was)
		} else {
			n.log.Info("gossip member joined", "node", name, "addr", net.JoinHostPort(ip.String(), strconv.Itoa(int(port))))
		}
	}
	n.kickEval()
}

// memberDown records a node that left (it said so) or died (it stopped
// answering).
func (n *Node) memberDown(node *memberlist.Node) {
	// memberlist's Node.State is not maintained (it keeps its own state
	// elsewhere): a node that leaves says so first (stateMsg.Leaving).
	n.mu.Lock()
	state := stateDead
	if st := n.states[node.Name]; st != nil && st.Leaving && n.current(node.Name, st) {
		state = stateLeft
	}
	if node.Name == n.cfg.NodeName && n.own != nil && n.own.Leaving {
		state = stateLeft
	}
	m := n.members[node.Name]
	if m == nil {
		m = &member{ip: slices.Clone(node.Addr), port: node.Port}
		n.members[node.Name] = m
	}
	m.state, m.since = state, time.Now()
	n.mu.Unlock()
	if node.Name != n.cfg.NodeName {
		if state == stateDead {
			n.log.Warn("gossip member failed: no answer to probes", "node", node.Name)
		} else {
			n.log.Info("gossip member left", "node", node.Name)
		}
	}
	n.kickEval()
}

// suspect: this node's probe of node failed (memberlist's log says so;
// memberlist has no event for it).
func (n *Node) suspect(node string) {
	n.mu.Lock()
	m := n.members[node]
	changed := m != nil && m.state == stateAlive
	if changed {
		m.state, m.since = stateSuspect, time.Now()
	}
	n.mu.Unlock()
	if changed {
		n.kickEval()
	}
}

// unsuspect: node answered (a probe, or a message of its own).
func (n *Node) unsuspect(node string) {
	n.mu.Lock()
	m := n.members[node]
	changed := m != nil && m.state == stateSuspect
	if changed {
		m.state, m.since = stateAlive, time.Now()
	}
	n.mu.Unlock()
	if changed {
		n.kickEval()
	}
}

// wants reports whether node's metadata announces a state newer than the
// one held. n.mu is held.
func (n *Node) wants(name string, m *member) bool {
	if !m.hasMeta || !m.alive() || m.meta.Epoch <= 0 {
		return false
	}
	st := n.states[name]
	return st == nil || m.meta.Epoch != st.Epoch || m.meta.Seq > st.Seq
}

// current reports whether st is of the node's run memberlist last
// announced (true when its metadata is not known). n.mu is held.
func (n *Node) current(name string, st *stateMsg) bool {
	m := n.members[name]
	return m == nil || !m.hasMeta || m.meta.Epoch == st.Epoch
}

// publish reads this node's state from the agent and, when it changed,
// makes it the new own state and queues it for every live member.
func (n *Node) publish() {
	snap := n.local.Snapshot()
	snap.Instances = slices.Clone(snap.Instances)
	sort.SliceStable(snap.Instances, func(i, j int) bool { return snap.Instances[i].Name < snap.Instances[j].Name })
	js, err := json.Marshal(snap)
	if err != nil {
		n.log.Warn("gossip: encoding this node's state", "err", err)
		return
	}
	n.mu.Lock()
	if n.own != nil && bytes.Equal(js, n.ownJSON) {
		n.mu.Unlock()
		return
	}
	seq := uint64(1)
	if n.own != nil {
		seq = n.own.Seq + 1
	}
	msg := &stateMsg{Node: n.cfg.NodeName, Epoch: n.epoch, Seq: seq, State: snap}
	wire, err := encodeMessage(kindState, msg)
	if err != nil {
		n.mu.Unlock()
		n.log.Warn("gossip: encoding this node's state", "err", err)
		return
	}
	n.own, n.ownJSON, n.ownWire = msg, js, wire
	var targets []string
	for name, m := range n.members {
		if name != n.cfg.NodeName && m.alive() {
			targets = append(targets, name)
		}
	}
	n.mu.Unlock()
	for _, t := range targets {
		n.out.add(t, taskPush)
	}
	select {
	case n.metaCh <- struct{}{}:
	default:
	}
	n.kickEval()
}

// follow publishes this node's state after every change the agent
// reports, coalescing changes within the coalesce window: a mass failover
// of thousands of instances is one message per member.
func (n *Node) follow(ctx context.Context, events <-chan api.Event) {
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if fire == nil {
				fire = time.After(coalesce)
			}
		case <-fire:
			fire = nil
			n.publish()
		}
	}
}

// sayGoodbye tells every live member that this node is leaving (so they
// show it as left, not dead), waiting at most goodbyeTimeout.
func (n *Node) sayGoodbye(ml *memberlist.Memberlist) {
	n.mu.Lock()
	if n.own == nil {
		n.mu.Unlock()
		return
	}
	msg := *n.own
	msg.Seq++
	msg.Leaving = true
	wire, err := encodeMessage(kindState, &msg)
	if err != nil {
		n.mu.Unlock()
		return
	}
	n.own, n.ownWire = &msg, wire
	var to []*memberlist.Node
	for name, m := range n.members {
		if name != n.cfg.NodeName && m.alive() {
			to = append(to, m.mlNode(name))
		}
	}
	n.mu.Unlock()
	done := make(chan struct{}, len(to))
	for _, node := range to {
		go func() {
			if err := ml.SendReliable(node, wire); err != nil {
				n.metrics.error("send")
			} else {
				n.metrics.message("sent", "state")
			}
			done <- struct{}{}
		}()
	}
	timeout := time.After(goodbyeTimeout)
	for range to {
		select {
		case <-done:
		case <-timeout:
			return
		}
	}
}

// updateMeta re-advertises this node's metadata (its state's sequence)
// after a publish, so a member that missed the state asks for it.
func (n *Node) updateMeta(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.metaCh:
		}
		if ml := n.memberlist(); ml != nil {
			if err := ml.UpdateNode(time.Second); err != nil {
				n.log.Debug("gossip: metadata update", "err", err)
			}
		}
	}
}

// bundle encodes the push/pull state: this node's state first, then the
// others' newest states within bundleBudget.
func (n *Node) bundle() ([]byte, error) {
	type wireBundle struct {
		From   string            `json:"from"`
		States []json.RawMessage `json:"states"`
	}
	n.mu.Lock()
	all := make([]*stateMsg, 0, len(n.states)+1)
	if n.own != nil {
		all = append(all, n.own)
	}
	names := sortedKeys(n.states)
	for _, name := range names {
		all = append(all, n.states[name])
	}
	n.mu.Unlock()
	b := wireBundle{From: n.cfg.NodeName, States: make([]json.RawMessage, 0, len(all))}
	size := 0
	for i, s := range all {
		js, err := json.Marshal(s)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			continue // a state we cannot relay must not stop ours
		}
		if i > 0 && size+len(js) > bundleBudget {
			break
		}
		size += len(js)
		b.States = append(b.States, js)
	}
	return encodeMessage(kindBundle, b)
}

// receive handles a message from another node.
func (n *Node) receive(b []byte) {
	m, err := decodeMessage(b)
	if err != nil {
		n.decodeError("message", err)
		return
	}
	switch m.Kind {
	case kindState:
		n.metrics.message("received", "state")
		if !n.acceptState(*m.State, true) {
			n.metrics.error("unknown_node")
		}
	case kindStateReq:
		n.metrics.message("received", "state")
		n.heardFrom(m.StateReq.From)
		n.unsuspect(m.StateReq.From)
		n.out.add(m.StateReq.From, taskPush)
	case kindBundle:
		n.metrics.message("received", "state")
		for _, s := range m.Bundle.States {
			n.acceptState(s, s.Node == m.Bundle.From)
		}
	case kindMaintReq:
		n.metrics.message("received", "maint")
		n.handleMaint(*m.MaintReq)
	case kindMaintResp:
		n.metrics.message("received", "maint")
		n.answer(*m.MaintResp)
	}
}

// acceptState keeps s when it is newer than the state held for its node.
// Only states of nodes memberlist knows are kept (false otherwise); this
// node's own state comes from the agent, never from the network. direct:
// s came from its node itself, which is then certainly not suspect.
func (n *Node) acceptState(s stateMsg, direct bool) bool {
	if s.Node == n.cfg.NodeName {
		return true
	}
	n.mu.Lock()
	m := n.members[s.Node]
	if m == nil {
		n.mu.Unlock()
		return false
	}
	cur := n.states[s.Node]
	// Newer, or the run the node's metadata announces replacing another
	// (a restart on a clock that went back).
	fresh := cur == nil || s.newer(cur.Epoch, cur.Seq) ||
		(m.hasMeta && s.Epoch == m.meta.Epoch && cur.Epoch != m.meta.Epoch)
	if fresh {
		n.states[s.Node] = &s
		if s.Leaving && m.state == stateDead {
			m.state = stateLeft // it said goodbye after all
		}
	}
	n.mu.Unlock()
	if direct {
		n.heardFrom(s.Node)
		n.unsuspect(s.Node)
		n.kickEval() // a MASTER waiting for news may be confirmed now
	} else if fresh {
		n.kickEval()
	}
	return true
}

// heardFrom records that node itself just sent us something.
func (n *Node) heardFrom(node string) {
	n.mu.Lock()
	if m := n.members[node]; m != nil {
		m.heard = time.Now()
	}
	n.mu.Unlock()
}

// probeEvery bounds how often a MASTER waiting for news is asked for its
// state.
const probeEvery = 500 * time.Millisecond

// probe asks nodes whose MASTER state awaits confirmation for their state
// (see computeAll); the answer confirms a live one, a dead one stays quiet.
func (n *Node) probe(nodes []string) {
	now := time.Now()
	var ask []string
	n.mu.Lock()
	for _, name := range nodes {
		if m := n.members[name]; m != nil && now.Sub(m.probedAt) >= probeEvery {
			m.probedAt = now
			ask = append(ask, name)
		}
	}
	n.mu.Unlock()
	for _, name := range ask {
		n.out.add(name, taskProbe)
	}
	if len(ask) > 0 {
		// Re-evaluate after the answers had time to come.
		time.AfterFunc(probeEvery, n.kickEval)
	}
}

func (n *Node) decodeError(what string, err error) {
	n.metrics.error("decode")
	n.mu.Lock()
	warn := time.Since(n.lastWarn) > time.Minute
	if warn {
		n.lastWarn = time.Now()
	}
	n.mu.Unlock()
	if warn {
		n.log.Warn("gossip: dropped an undecodable "+what+" (more are logged at debug for a minute)", "err", err)
	} else {
		n.log.Debug("gossip: dropped an undecodable "+what, "err", err)
	}
}

// task is what the senders owe a member.
type task uint8

const (
	taskPush    task = 1 << iota // send it this node's state
	taskRequest                  // ask it for its state, if its metadata announces a newer one
	taskProbe                    // ask it for its state in any case (confirming a MASTER)
)

// outbox holds the tasks owed to each member, merged per member: however
// many changes happen while a member's send is queued, it gets the latest
// state once.
type outbox struct {
	mu    sync.Mutex
	tasks map[string]task
	queue []string
	sig   chan struct{}
}

func newOutbox() *outbox {
	return &outbox{tasks: map[string]task{}, sig: make(chan struct{}, 1)}
}

func (o *outbox) add(node string, t task) {
	o.mu.Lock()
	if _, queued := o.tasks[node]; !queued {
		o.queue = append(o.queue, node)
	}
	o.tasks[node] |= t
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) signal() {
	select {
	case o.sig <- struct{}{}:
	default:
	}
}

func (o *outbox) take() (string, task, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) == 0 {
		return "", 0, false
	}
	node := o.queue[0]
	o.queue = o.queue[1:]
	t := o.tasks[node]
	delete(o.tasks, node)
	if len(o.queue) > 0 {
		o.signal()
	}
	return node, t, true
}

// sendLoop delivers the outbox (several run: a member that does not answer
// holds one sender, not all).
func (n *Node) sendLoop(ctx context.Context) {
	for {
		node, t, ok := n.out.take()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-n.out.sig:
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		n.deliver(node, t)
	}
}

func (n *Node) deliver(node string, t task) {
	n.mu.Lock()
	ml := n.ml
	m := n.members[node]
	if ml == nil || m == nil || !m.alive() || node == n.cfg.NodeName {
		n.mu.Unlock()
		return
	}
	to := m.mlNode(node)
	wire := n.ownWire
	want := n.wants(node, m)
	n.mu.Unlock()
	if t&taskPush != 0 && wire != nil {
		if err := ml.SendReliable(to, wire); err != nil {
			n.metrics.error("send")
			n.log.Debug("gossip: sending state", "to", node, "err", err)
		} else {
			n.metrics.message("sent", "state")
		}
	}
	if t&taskRequest != 0 && want || t&taskProbe != 0 {
		req, err := encodeMessage(kindStateReq, stateReq{From: n.cfg.NodeName})
		if err == nil {
			err = ml.SendReliable(to, req)
		}
		if err != nil {
			n.metrics.error("send")
			n.log.Debug("gossip: asking for state", "to", node, "err", err)
		} else {
			n.metrics.message("sent", "state")
		}
	}
}

func (n *Node) kickEval() {
	select {
	case n.evalCh <- struct{}{}:
	default:
	}
}

// evaluateLoop re-computes the view after changes (coalesced) to log split
// brains this node is part of and keep the split brain metric.
func (n *Node) evaluateLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.evalCh:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(evalDelay):
		}
		n.evaluate()
	}
}

func (n *Node) evaluate() {
	_, splits, unconfirmed := computeAll(n.nodeViews(), n.cfg.NodeName)
	n.probe(unconfirmed)
	now := map[vrrpGroup]splitBrain{}
	for _, s := range splits {
		if slices.Contains(s.Nodes, n.cfg.NodeName) {
			now[s.Group] = s
		}
	}
	n.mu.Lock()
	before := n.splits
	n.splits = now
	n.mu.Unlock()
	for g, s := range now {
		if _, ok := before[g]; !ok {
			n.log.Warn("split brain: "+s.Detail, "vrid", g.VRID, "segment", g.Segment, "family", g.Family, "nodes", s.Nodes)
		}
	}
	for g, s := range before {
		if _, ok := now[g]; !ok {
			n.log.Info("split brain over: one MASTER again for VRID "+strconv.Itoa(g.VRID)+" on "+g.Segment,
				"vrid", g.VRID, "segment", g.Segment, "family", g.Family, "was", s.Nodes)
		}
	}
}

// rejoinLoop joins the configured members at start, then every
// rejoinEvery re-joins what is not alive: memberlist never contacts a
// member again once it is dead past GossipToTheDeadTime (memberlist issue
// #222), so without this a healed partition would stay split. It also
// forgets long-dead members and asks for states members announce and we
// miss.
func (n *Node) rejoinLoop(ctx context.Context) {
	// Until a first join works (a fleet booting at once: the members may
	// not listen yet), retry quickly, backing off to rejoinEvery.
	wait := 200 * time.Millisecond
	for first := true; !n.rejoin(ctx, first); first = false {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if wait = 2 * wait; wait >= n.rejoinEvery {
			break
		}
	}
	t := time.NewTicker(n.rejoinEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.prune(time.Now())
		n.requestMissing()
		n.rejoin(ctx, false)
	}
}

// rejoin joins the configured and runtime-joined addresses and the last
// addresses of dead members, skipping addresses of alive members.
//
// It reports whether there is nothing more to do now: a join worked, or
// there was nothing to join.
func (n *Node) rejoin(ctx context.Context, first bool) bool {
	addrs := n.rejoinTargets(ctx)
	ml := n.memberlist()
	if len(addrs) == 0 || ml == nil {
		return true
	}
	type result struct {
		c   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ml.Join(addrs)
		done <- result{c, err}
	}()
	var r result
	select {
	case <-ctx.Done():
		return true
	case r = <-done:
	}
	switch {
	case r.err != nil && first:
		n.metrics.error("join")
		n.log.Warn("gossip: could not join any member yet; retrying (soon, then every "+n.rejoinEvery.String()+")", "addrs", addrs, "err", r.err)
	case r.err != nil:
		n.metrics.error("join")
		n.log.Debug("gossip: re-join", "addrs", addrs, "err", r.err)
	default:
		n.log.Debug("gossip: joined", "addrs", addrs, "contacted", r.c)
	}
	return r.err == nil
}

func (n *Node) rejoinTargets(ctx context.Context) []string {
	n.mu.Lock()
	alive := map[string]bool{}
	var dead []string
	for _, m := range n.members {
		if m.alive() {
			alive[m.addr()] = true
		}
	}
	for _, m := range n.members {
		if m.state == stateDead && m.ip != nil && !alive[m.addr()] {
			dead = append(dead, m.addr())
		}
	}
	cands := slices.Clone(n.joinAddrs)
	n.mu.Unlock()

	var out []string
	for _, a := range cands {
		if !allAlive(ctx, a, alive) {
			out = append(out, a)
		}
	}
	sort.Strings(dead)
	for _, a := range dead {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// allAlive reports whether every address HOST:PORT stands for belongs to
// an alive member (a name is resolved, briefly).
func allAlive(ctx context.Context, hostport string, alive map[string]bool) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	var ips []net.IP
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil || len(addrs) == 0 {
			return false
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		if !alive[net.JoinHostPort(ip.String(), port)] {
			return false
		}
	}
	return true
}

// prune forgets nodes dead or left for forgetAfter, and states of nodes
// memberlist never told us of.
func (n *Node) prune(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, m := range n.members {
		if name != n.cfg.NodeName && !m.alive() && now.Sub(m.since) > forgetAfter {
			delete(n.members, name)
		}
	}
	for name := range n.states {
		if n.members[name] == nil {
			delete(n.states, name)
		}
	}
}

// requestMissing asks members whose metadata announces a newer state than
// the one held for it (a lost send).
func (n *Node) requestMissing() {
	n.mu.Lock()
	var want []string
	for name, m := range n.members {
		if name != n.cfg.NodeName && n.wants(name, m) {
			want = append(want, name)
		}
	}
	n.mu.Unlock()
	for _, name := range want {
		n.out.add(name, taskRequest)
	}
}
