// Package api is vipd's control plane surface: an HTTP+JSON server on a unix
// socket (mode 0600) that the CLI talks to, and the client the CLI uses. It
// holds no business logic: it reads snapshots from, and forwards requests
// to, the agent through the small Agent interface below.
package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/vipd/vipd/lvs"
)

// Status is the answer of GET /v1/status. Its JSON shape is a contract
// (DESIGN.md 3.1, issue 3): scripts parse it.
type Status struct {
	Node      string           `json:"node"`
	Instances []InstanceStatus `json:"instances"`
	// Drops counts received adverts dropped, by reason (bad_ttl,
	// auth_pass, interval_mismatch, ...). An addition to the contract's shape.
	Drops map[string]uint64 `json:"drops,omitempty"`
	// Daemon is the process answering (an addition to the contract).
	Daemon *Daemon `json:"daemon,omitempty"`
}

// InstanceStatus is one vrrp_instance as the node runs it.
type InstanceStatus struct {
	Name              string   `json:"name"`
	VRID              int      `json:"vrid"`
	Interface         string   `json:"interface"`
	State             string   `json:"state"` // INIT, BACKUP, MASTER, FAULT, STOP
	Priority          int      `json:"priority"`
	EffectivePriority int      `json:"effective_priority"`
	VIPs              []string `json:"vips"`
	Master            string   `json:"master"` // address of the master seen, "" when unknown; ours when MASTER
	// MasterPriority is the priority the master advertises (an addition to
	// the contract; 0 when no master is known).
	MasterPriority int       `json:"master_priority,omitempty"`
	Since          time.Time `json:"since"`
	Cause          string    `json:"cause"`
	Version        int       `json:"version,omitempty"`
	// Tracked lists tracked items and their current result (issue 4).
	Tracked []TrackedStatus `json:"tracked,omitempty"`
	// Faults are the faults in force by key ("tracking", "sync_group",
	// "maintenance/operator", ...) with their cause; the instance leaves
	// FAULT when all are clear.
	Faults map[string]string `json:"faults,omitempty"`
	// Overrides are the priority overrides set for the instance, the one
	// in force first (it replaces the configured priority; tracking
	// weights apply on top).
	Overrides []PriorityOverride `json:"overrides,omitempty"`
	// Group is the vrrp_sync_group the instance belongs to.
	Group string `json:"sync_group,omitempty"`
	// GateHeld: the gate before MASTER keeps this BACKUP out of MASTER.
	GateHeld bool `json:"gate_held,omitempty"`
}

// PriorityOverride is a priority set for an instance by a named source
// (operator, etcd); only that source clears it.
type PriorityOverride struct {
	Source   string `json:"source"`
	Priority int    `json:"priority"`
}

// MaintRequest is the body of POST /v1/maint.
type MaintRequest struct {
	On       bool   `json:"on"`
	Instance string `json:"instance,omitempty"` // "" = every instance of the node
	Reason   string `json:"reason,omitempty"`
	// Node is the node it is for ("" or this node's name: this node);
	// another node's request travels by gossip.
	Node string `json:"node,omitempty"`
}

// JoinRequest is the body of POST /v1/join.
type JoinRequest struct {
	Addrs []string `json:"addrs"` // HOST:PORT of members of the gossip cluster
}

// JoinResult says how many nodes were contacted.
type JoinResult struct {
	Joined int `json:"joined"`
}

// KeyOp is the body of POST /v1/keys: an operation on the gossip keyring,
// carried to every node of the fleet (vipd keys).
type KeyOp struct {
	// Op is list, install, use or remove (the KeyOp* constants).
	Op string `json:"op"`
	// Key is the base64 (standard encoding) of a 16, 24 or 32-byte key:
	// required by install, use and remove, refused by list.
	Key string `json:"key,omitempty"`
}

// The operations of KeyOp.
const (
	KeyOpList    = "list"    // every node's keys, as fingerprints
	KeyOpInstall = "install" // add the key (decryption only until use)
	KeyOpUse     = "use"     // make the key primary (what gossip is encrypted with)
	KeyOpRemove  = "remove"  // drop the key (never the primary one)
)

// KeysResult is the answer to POST /v1/keys: one answer per node, by node
// name. A node that did not answer is there with OK false and an error
// saying so.
type KeysResult struct {
	Nodes []KeyNode `json:"nodes"`
}

// KeyNode is one node's answer to a KeyOp.
type KeyNode struct {
	Node  string `json:"node"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Keys are the keys the node holds (list only), primary first.
	Keys []KeyInfo `json:"keys,omitempty"`
}

// KeyFingerprint is how a key is shown (KeyInfo.Fingerprint): "sha256:"
// and the first 16 hex digits of the SHA-256 of the raw key.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// KeyInfo is a key as a node reports it: never the key itself.
type KeyInfo struct {
	// Fingerprint is "sha256:" and the first 16 hex digits of the
	// SHA-256 of the raw key: base64 -d <<<KEY | sha256sum | cut -c1-16.
	Fingerprint string `json:"fingerprint"`
	// Primary: gossip is encrypted with this key.
	Primary bool `json:"primary"`
}

// PriorityRequest is the body of POST /v1/priority: set (Clear false) or
// clear the operator's priority override of an instance.
type PriorityRequest struct {
	Instance string `json:"instance"`
	Priority int    `json:"priority,omitempty"`
	Clear    bool   `json:"clear,omitempty"`
}

// TrackedStatus is one tracked script, interface or file of an instance.
type TrackedStatus struct {
	Kind   string `json:"kind"` // script, interface, file
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Weight int    `json:"weight"`
	Value  int    `json:"value,omitempty"`
}

// Agent is what the server needs from the running daemon.
type Agent interface {
	Status() Status
	// Reload re-reads the configuration and applies the difference. It
	// returns the error (with FILE:LINE diagnostics) when the new file is
	// rejected; the running configuration then stays in force.
	Reload(ctx context.Context) error
	// Maintenance puts the node (instance "") or one instance in or out
	// of maintenance for the operator: a graceful hand-over, then FAULT
	// with reason "maintenance".
	Maintenance(ctx context.Context, req MaintRequest) error
	// OverridePriority sets or clears the operator's priority override.
	OverridePriority(ctx context.Context, req PriorityRequest) error
	// Upgrade checks the binary at the daemon's path and re-executes it
	// in place (same PID), carrying the state; an error changes nothing.
	Upgrade(ctx context.Context) (UpgradeResult, error)
	// Fleet is the whole fleet as this node sees it through gossip; an
	// error when gossip is off.
	Fleet(ctx context.Context) (Fleet, error)
	// Join joins the gossip cluster through the given members.
	Join(ctx context.Context, req JoinRequest) (JoinResult, error)
	// Keys applies a gossip keyring operation on every alive node of
	// the fleet and returns each node's answer; an error (nothing sent)
	// when gossip is off or not encrypted, or the operation is refused
	// (a malformed key, ...).
	Keys(ctx context.Context, op KeyOp) (KeysResult, error)
	// LVS is the IPVS side: desired and actual tables, every virtual and
	// real server with its health.
	LVS(ctx context.Context) (LVS, error)
}

// LVS is the answer of GET /v1/lvs (vipd lvs -o json); see lvs.Status.
type LVS = lvs.Status

// LVSVirtualServer, LVSRealServer and LVSCheck are the parts of LVS.
type (
	LVSVirtualServer = lvs.VirtualServerStatus
	LVSRealServer    = lvs.RealServerStatus
	LVSCheck         = lvs.CheckStatus
)

// UpgradeResult is the answer to POST /v1/upgrade: the daemon re-executes
// Binary right after it.
type UpgradeResult struct {
	Binary string `json:"binary"`
	From   string `json:"from"` // the running version
	To     string `json:"to"`   // what the new binary's version command said
}

// Daemon is the process behind the control socket (an addition to the
// status contract: "daemon" in vipd status -o json).
type Daemon struct {
	PID      int       `json:"pid"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	StateDir string    `json:"state_dir,omitempty"`
	// Ready: the run has applied its first configuration.
	Ready bool `json:"ready"`
	// Resumed counts the instances this run resumed as MASTER after a
	// restart, crash or upgrade of vipd.
	Resumed int `json:"resumed"`
	// Upgrade says how the last vipd upgrade ended, when this run is the
	// result of one ("" otherwise).
	Upgrade string `json:"upgrade,omitempty"`
	// Arbiter is the split-brain arbiter's view (etcd configured and
	// arbitration on; docs/arbitration.md).
	Arbiter *ArbiterStatus `json:"arbiter,omitempty"`
}

// ArbiterStatus is the arbiter's mode, why, and the instances whose claim
// this node holds in etcd.
type ArbiterStatus struct {
	Mode   string   `json:"mode"` // starting, etcd, failsafe, isolated, alone
	Why    string   `json:"why"`
	Claims []string `json:"claims"`
}
