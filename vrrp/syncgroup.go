package vrrp

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// SyncGroup makes the members of a vrrp_sync_group move together, the way
// keepalived's vrrp_sync.c does:
//   - a member whose master down timer runs out becomes MASTER only when
//     every other member wants to as well (or the group is MASTER already);
//     then all members go MASTER;
//   - a member leaving MASTER for BACKUP (it heard a better master) takes the
//     others to BACKUP;
//   - a member in FAULT takes the others to FAULT until it recovers.
//
// The group never calls into a member synchronously from another member's
// goroutine: orders to members are posted asynchronously, so members cannot
// deadlock on each other.
type SyncGroup struct {
	name string
	log  *slog.Logger
	// OnState is called (from a member's runner) when the group's state
	// changes, for the group's notify scripts. May be nil.
	OnState func(group string, state State)

	mu      sync.Mutex
	members []*Instance
	state   State
	faulty  map[*Instance]bool // members with a fault of their own
	held    map[*Instance]bool // members the group holds in FAULT
}

// NewSyncGroup returns an empty group.
func NewSyncGroup(name string, log *slog.Logger) *SyncGroup {
	if log == nil {
		log = slog.Default()
	}
	return &SyncGroup{name: name, log: log.With("sync_group", name), state: StateInit,
		faulty: map[*Instance]bool{}, held: map[*Instance]bool{}}
}

// Add makes inst a member. Call before inst runs.
func (g *SyncGroup) Add(inst *Instance) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members = append(g.members, inst)
	inst.group = g
	inst.m.p.SyncMember = true
	// A member in FAULT holds the newcomer from its start.
	g.syncHoldsLocked()
}

// isMember reports whether inst is (still) a member. g.mu is held. A
// member's report that crosses its removal is ignored.
func (g *SyncGroup) isMember(inst *Instance) bool {
	for _, m := range g.members {
		if m == inst {
			return true
		}
	}
	return false
}

// State is the group's state (the last state it synced its members to).
func (g *SyncGroup) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

const syncCausePrefix = "sync group "

// wantMaster is called by a member (on its runner) whose down timer ran
// out. It returns true when the member may go MASTER now; the other
// members are then ordered to MASTER too.
//
// why is the takeover cause of from; the members' gates are asked with it
// (a preemption stays one, vrrp.IsPreemptCause).
func (g *SyncGroup) wantMaster(from *Instance, why string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.faulty) > 0 || !g.isMember(from) {
		return false
	}
	if g.state != StateMaster {
		for _, m := range g.members {
			if m != from && !m.wantsMaster() && m.currentState() != StateMaster {
				g.log.Debug("member wants MASTER but the group waits", "instance", from.Name(), "waiting_for", m.Name())
				return false
			}
		}
	}
	cause := fmt.Sprintf("%s%s: %s went MASTER", syncCausePrefix, g.name, from.Name())
	asked := cause
	if why != "" {
		asked = cause + " (" + why + ")"
	}
	// Every member's gate must agree before any goes MASTER, so a gate
	// that refuses one member never splits the group.
	for _, m := range g.members {
		if m.gate != nil && !m.gate.MayBecomeMaster(m.Name(), m.vrid, asked) {
			g.log.Info("sync group held out of MASTER by a member's gate", "instance", m.Name())
			return false
		}
	}
	for _, m := range g.members {
		if m != from {
			g.post(m, func(now time.Time) []Action { return m.m.Step(now, Event{Kind: EvForceMaster, Cause: cause}) })
		}
	}
	g.setState(StateMaster)
	return true
}

// memberFault is called by a member (on its runner) when a fault of
// its own (tracking, maintenance) appears or clears. The group holds every
// other member in FAULT while any member has a fault of its own; since each
// member's own fault is counted separately from the group's hold, members
// that fail together also recover together.
func (g *SyncGroup) memberFault(from *Instance, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isMember(from) {
		return
	}
	if on {
		g.faulty[from] = true
	} else {
		delete(g.faulty, from)
	}
	g.syncHoldsLocked()
}

// syncHoldsLocked puts every member that must be held in FAULT (another
// member has a fault of its own) on hold and releases the others. g.mu is
// held.
func (g *SyncGroup) syncHoldsLocked() {
	for _, m := range g.members {
		var names []string
		for f := range g.faulty {
			if f != m {
				names = append(names, f.Name())
			}
		}
		hold := len(names) > 0
		if hold == g.held[m] {
			continue
		}
		if hold {
			g.held[m] = true
			sort.Strings(names)
			cause := fmt.Sprintf("%s%s: %s in FAULT", syncCausePrefix, g.name, strings.Join(names, ", "))
			g.post(m, func(now time.Time) []Action { return m.setFault(now, FaultSyncGroup, cause) })
		} else {
			delete(g.held, m)
			g.post(m, func(now time.Time) []Action { return m.setFault(now, FaultSyncGroup, "") })
		}
	}
	switch {
	case len(g.faulty) > 0:
		g.setState(StateFault)
	case g.state == StateFault:
		g.setState(StateBackup)
	}
}

// memberTransition is called by a member after a transition it made on its
// own (not one ordered by the group).
func (g *SyncGroup) memberTransition(from *Instance, a Action) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isMember(from) {
		return
	}
	switch {
	case a.To == StateFault || a.From == StateFault:
		// Faults are synced by memberFault.
	case a.From == StateMaster && a.To == StateBackup:
		cause := fmt.Sprintf("%s%s: %s went BACKUP (%s)", syncCausePrefix, g.name, from.Name(), a.Cause)
		for _, m := range g.members {
			if m != from {
				g.post(m, func(now time.Time) []Action { return m.m.Step(now, Event{Kind: EvForceBackup, Cause: cause}) })
			}
		}
		g.setState(StateBackup)
	case a.To == StateMaster && a.CauseKind == CauseResume:
		// Resumed after a restart of vipd: the group was MASTER before and
		// nothing changed on the network, so no group notify runs.
		if g.state != StateMaster {
			g.log.Info("sync group resumed in MASTER state", "from", g.state.String())
			g.state = StateMaster
		}
	case a.To == StateMaster:
		// An owner (priority 255) goes MASTER without asking.
		g.setState(StateMaster)
	case a.To == StateBackup && g.state == StateInit:
		g.setState(StateBackup)
	}
}

func (g *SyncGroup) setState(s State) {
	if g.state == s {
		return
	}
	g.log.Info(fmt.Sprintf("sync group entering %s state", s), "from", g.state.String(), "to", s.String())
	g.state = s
	if g.OnState != nil {
		g.OnState(g.name, s)
	}
}

// post orders fn on member m without waiting (the caller may be another
// member's runner, and holds the group lock). Orders to one member run
// in the order posted.
func (g *SyncGroup) post(m *Instance, fn func(now time.Time) []Action) {
	m.doForced(fn)
}

// Remove takes inst out of the group (it is being stopped, replaced, or
// moved to another group). The others are no longer held for a fault of
// its own, and inst is no longer held for theirs.
func (g *SyncGroup) Remove(inst *Instance) {
	g.mu.Lock()
	defer g.mu.Unlock()
	found := false
	for k, m := range g.members {
		if m == inst {
			g.members = append(g.members[:k], g.members[k+1:]...)
			found = true
			break
		}
	}
	if !found {
		return
	}
	delete(g.faulty, inst)
	wasHeld := g.held[inst]
	delete(g.held, inst)
	g.post(inst, func(now time.Time) []Action {
		if inst.group == g {
			inst.group = nil
			inst.m.SetSyncMember(false)
		}
		if wasHeld {
			return inst.setFault(now, FaultSyncGroup, "")
		}
		return nil
	})
	g.syncHoldsLocked()
}

// Join makes a running instance a member (a reload moved it into this
// group). It is held at once if another member is in FAULT, and holds the
// others if it has a fault of its own.
func (g *SyncGroup) Join(inst *Instance) {
	g.mu.Lock()
	g.members = append(g.members, inst)
	g.mu.Unlock()
	g.post(inst, func(now time.Time) []Action {
		inst.group = g
		inst.m.SetSyncMember(true)
		g.mu.Lock()
		if inst.ownFaults > 0 {
			g.faulty[inst] = true
		}
		g.syncHoldsLocked()
		g.mu.Unlock()
		return nil
	})
}

// Len is the number of members.
func (g *SyncGroup) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.members)
}

// Name is the group's name.
func (g *SyncGroup) Name() string { return g.name }
