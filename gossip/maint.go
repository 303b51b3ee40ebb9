package gossip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vipd/vipd/api"
)

// maxMaintHandlers bounds the maintenance requests applied at once.
const maxMaintHandlers = 16

// SendMaintenance sends an operator's maintenance request to another node
// and waits for its answer: nil once the node applied it, the node's error
// otherwise. It fails at once when node is unknown or not alive, and after
// 5 s (or when ctx ends) without an answer. For this node itself it calls
// Local.SetMaintenance directly.
func (n *Node) SendMaintenance(ctx context.Context, node string, req api.MaintRequest) error {
	if node == "" {
		return errors.New("maintenance: no node given")
	}
	if req.Node != "" && req.Node != node {
		return fmt.Errorf("maintenance: request for node %s sent to node %s", req.Node, node)
	}
	req.Node = node
	if node == n.cfg.NodeName {
		return n.local.SetMaintenance(SourceOperator, req.Instance, req.Reason, req.On)
	}
	n.mu.Lock()
	ml := n.ml
	m := n.members[node]
	if ml == nil {
		n.mu.Unlock()
		return fmt.Errorf("maintenance of node %s: gossip is not running", node)
	}
	if m == nil {
		n.mu.Unlock()
		return fmt.Errorf("maintenance of node %s: no such node in the gossip cluster", node)
	}
	if !m.alive() {
		state := m.state
		n.mu.Unlock()
		return fmt.Errorf("maintenance of node %s: the node is %s", node, state)
	}
	to := m.mlNode(node)
	n.mu.Unlock()
	id, answer, done := n.maintWait.add(node)
	defer done()

	wire, err := encodeMessage(kindMaintReq, maintReq{ID: id, From: n.cfg.NodeName, Req: req})
	if err != nil {
		return fmt.Errorf("maintenance of node %s: %w", node, err)
	}
	timer := time.NewTimer(maintTimeout)
	defer timer.Stop()
	sent := make(chan error, 1)
	go func() { sent <- ml.SendReliable(to, wire) }()
	for {
		select {
		case err := <-sent:
			if err != nil {
				n.metrics.error("send")
				return fmt.Errorf("maintenance of node %s: %w", node, err)
			}
			n.metrics.message("sent", "maint")
			sent = nil
		case r := <-answer:
			if r.Error != "" {
				return fmt.Errorf("maintenance of node %s: %s", node, r.Error)
			}
			return nil
		case <-timer.C:
			n.metrics.error("maint")
			return fmt.Errorf("maintenance of node %s: no answer within %s", node, maintTimeout)
		case <-ctx.Done():
			return fmt.Errorf("maintenance of node %s: %w", node, ctx.Err())
		}
	}
}

// answer hands an answer to the SendMaintenance waiting for it.
func (n *Node) answer(r maintResp) {
	if !n.maintWait.deliver(r.ID, r.From, r) {
		n.log.Debug("gossip: maintenance answer for no pending request", "from", r.From, "id", r.ID)
	}
}

// handleMaint applies a maintenance request from another node and answers
// it. The agent's door may take its time: this runs off memberlist's
// receive path.
// maxReason bounds a maintenance reason from the network.
const maxReason = 1024

// isAliveMember reports whether name is a member this node sees alive
// (or suspect).
func (n *Node) isAliveMember(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.members[name]
	return m != nil && name != n.cfg.NodeName && (m.state == stateAlive || m.state == stateSuspect)
}

func (n *Node) handleMaint(r maintReq) {
	select {
	case n.maintSlots <- struct{}{}:
	default:
		n.metrics.error("maint")
		go n.reply(r, errors.New("too many maintenance requests at once"))
		return
	}
	go func() {
		defer func() { <-n.maintSlots }()
		var err error
		switch {
		case r.Req.Node != "" && r.Req.Node != n.cfg.NodeName:
			err = fmt.Errorf("request for node %s reached node %s", r.Req.Node, n.cfg.NodeName)
		case !n.isAliveMember(r.From):
			// Only a member of the cluster may ask (with a key, only a
			// holder of it can even send).
			n.metrics.error("maint")
			n.log.Warn("maintenance request refused: the sender is not an alive member", "from", r.From)
			return
		case len(r.Req.Reason) > maxReason:
			err = fmt.Errorf("maintenance reason longer than %d bytes", maxReason)
		default:
			n.log.Info("maintenance request from another node", "from", r.From,
				"on", r.Req.On, "instance", r.Req.Instance, "reason", r.Req.Reason)
			err = n.local.SetMaintenance(SourceOperator, r.Req.Instance, r.Req.Reason, r.Req.On)
		}
		n.reply(r, err)
	}()
}

func (n *Node) reply(r maintReq, applyErr error) {
	resp := maintResp{ID: r.ID, From: n.cfg.NodeName}
	if applyErr != nil {
		resp.Error = applyErr.Error()
		n.metrics.error("maint")
	}
	n.sendAnswer(r.From, kindMaintResp, resp, "maint", "a maintenance request")
}

// sendAnswer sends the answer body (of kind) to the member named to; what
// labels the metric ("maint", "keys"), request names it in logs.
func (n *Node) sendAnswer(to string, kind msgKind, body any, what, request string) {
	n.mu.Lock()
	ml := n.ml
	m := n.members[to]
	n.mu.Unlock()
	if ml == nil || m == nil {
		n.metrics.error("unknown_node")
		n.log.Warn("gossip: cannot answer "+request+": its sender is not a known member", "from", to)
		return
	}
	wire, err := encodeMessage(kind, body)
	if err == nil {
		err = ml.SendReliable(m.mlNode(to), wire)
	}
	if err != nil {
		n.metrics.error("send")
		n.log.Warn("gossip: answering "+request, "to", to, "err", err)
		return
	}
	n.metrics.message("sent", what)
}
