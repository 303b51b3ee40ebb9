package api

import (
	"context"
	"time"
)

// The agent's state stream: a snapshot followed by every change. Status,
// metrics, and later gossip and etcd status publishing read it; nothing
// polls the running instances.

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	// EventInstance: an instance's status changed (effective priority,
	// master seen, tracking results, VIPs, overrides, faults). Status
	// holds the new status.
	EventInstance EventKind = "instance"
	// EventTransition: an instance changed state. From, To, Cause and
	// CauseKind say how and why; Status holds the new status.
	EventTransition EventKind = "transition"
	// EventInstanceRemoved: the instance is gone (removed by a reload or
	// replaced by one with another identity); Status holds its last status.
	EventInstanceRemoved EventKind = "instance_removed"
	// EventVIPHeal: a VIP or virtual route removed behind vipd's back was
	// put back (Detail names it), or one of ours found on a BACKUP was
	// removed.
	EventVIPHeal EventKind = "vip_heal"
	// EventScript: a vrrp_script ran. Name, OK, Duration.
	EventScript EventKind = "script"
	// EventNotify: a notify script ran for Instance (or sync group Group).
	// Name is the script, State the notified state, OK whether it exited 0
	// in time, Duration its run time.
	EventNotify EventKind = "notify"
	// EventPeerDrop: an advert from a peer that disagrees with our
	// configuration was dropped (rate-limited: at most one per peer and
	// reason a minute). Reason, Peer, Detail.
	EventPeerDrop EventKind = "peer_drop"
)

// Event is one change in the agent's state.
type Event struct {
	Seq  uint64    `json:"seq"` // strictly increasing per agent
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`

	Instance string          `json:"instance,omitempty"`
	Group    string          `json:"group,omitempty"` // sync group, notify events of a group
	Status   *InstanceStatus `json:"status,omitempty"`

	// Transitions.
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Cause     string `json:"cause,omitempty"`
	CauseKind string `json:"cause_kind,omitempty"` // one of the CauseKind constants

	// Scripts and notify scripts.
	Name     string        `json:"name,omitempty"`
	State    string        `json:"state,omitempty"`
	OK       bool          `json:"ok,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`

	// Peer drops and VIP heals.
	Reason string `json:"reason,omitempty"`
	Peer   string `json:"peer,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Cause kinds: a transition's cause as a small fixed set, for metric labels
// (the free-text Cause is for people).
const (
	CauseStartup        = "startup"         // start-up wait ended, or INIT -> BACKUP
	CauseMasterDown     = "master_down"     // the master down timer expired
	CausePriorityZero   = "priority_zero"   // the master left with priority 0
	CausePreempt        = "preempt"         // we preempted a lower priority master
	CauseHigherPriority = "higher_priority" // a better master appeared
	CauseOwner          = "owner"           // address owner (priority 255)
	CauseFault          = "fault"           // tracking, interface, or a sync group member's fault
	CauseFaultCleared   = "fault_cleared"   // every fault cleared
	CauseMaintenance    = "maintenance"     // maintenance on / off
	CauseSyncGroup      = "sync_group"      // ordered by the sync group
	CauseDemote         = "demote"          // demoted by the gate's owner (arbitration)
	CauseShutdown       = "shutdown"        // vipd stops, or the instance is removed
	CauseResume         = "resume"          // MASTER again right after a restart or upgrade of vipd, VIPs in place
)

// InstanceCounters are the counters of one running instance.
type InstanceCounters struct {
	Name      string `json:"name"`
	Interface string `json:"interface"`
	VRID      int    `json:"vrid"`

	AdvertsSent          uint64 `json:"adverts_sent"`
	AdvertsReceived      uint64 `json:"adverts_received"`       // valid adverts handed to the state machine
	PriorityZeroSent     uint64 `json:"priority_zero_sent"`     // priority-0 adverts sent
	PriorityZeroReceived uint64 `json:"priority_zero_received"` // priority-0 adverts received
	MasterDownExpiries   uint64 `json:"master_down_expiries"`   // master down timer ran out
	BecomeMaster         uint64 `json:"become_master"`          // entries into MASTER
	ReleaseMaster        uint64 `json:"release_master"`         // exits from MASTER
	VIPHeals             uint64 `json:"vip_heals"`              // VIPs/routes put back or removed by self-healing
}

// DropCount counts received adverts dropped for one reason on one interface
// and VRID (VRID 0: not known, e.g. a truncated packet).
type DropCount struct {
	Reason    string `json:"reason"`
	Interface string `json:"interface"`
	VRID      int    `json:"vrid"`
	Count     uint64 `json:"count"`
}

// Counters are monotonic counters, read at scrape time.
type Counters struct {
	Instances []InstanceCounters `json:"instances"`
	Drops     []DropCount        `json:"drops"`
}

// Stream is what readers of the agent's state use.
type Stream interface {
	// Subscribe returns the current status and a channel of every change
	// after it, in order, none lost. The channel closes when ctx ends. The
	// agent never waits for a subscriber: a slow one has its events queued
	// for it.
	Subscribe(ctx context.Context) (Status, <-chan Event)
	// Counters returns the counters now.
	Counters() Counters
}
