package track

import "github.com/vipd/vipd/config"

// ItemsFor builds an instance's view of its tracked objects from its
// configuration and the current results: its track_script entries (weight
// and reverse from the vrrp_script unless the entry overrides them), its
// own interface (unweighted: down is FAULT) unless dont_track_primary, its
// track_interface entries, and its track_file entries. Each item's Fault
// field says whether it holds the instance in FAULT. Pass the result to
// Compute with the instance's base priority.
//
// As keepalived does: a duplicate entry is ignored; a vrrp_script that is
// disabled (see ScriptDisabled) or a name with no such object is left out;
// on the address owner (priority 255) a track_file with weight 1 becomes
// unweighted, and Compute ignores the other weighted items.
func (m *Manager) ItemsFor(inst *config.Instance) []ItemState {
	if inst == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var b itemBuilder
	m.addInstanceItems(&b, inst, false)
	return markFaults(inst.Priority, b.items)
}

// ItemsForMember is ItemsFor for an instance that belongs to sync group g,
// with keepalived's rules (vrrp.c vrrp_complete_instance and
// vrrp_complete_init): unless the group sets sync_group_tracking_weight,
// the member's weighted track_script entries are dropped, its weighted
// track_interface entries become unweighted (down is FAULT), a track_file
// with weight 1 becomes unweighted and other weighted track_files are
// dropped. The group's own track_script / track_interface / track_file
// entries apply to every member; when the member tracks the same object,
// the group's weight wins unless the member's entry is unweighted.
func (m *Manager) ItemsForMember(inst *config.Instance, g *config.SyncGroup) []ItemState {
	if inst == nil {
		return nil
	}
	if g == nil {
		return m.ItemsFor(inst)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var b itemBuilder
	m.addInstanceItems(&b, inst, !(g.TrackingWeight || g.GlobalTracking)) // global_tracking: keepalived's deprecated spelling
	owner := inst.Priority == OwnerPriority
	for _, t := range g.TrackScripts {
		if it, ok := m.scriptItem(t); ok {
			b.addGroup(it)
		}
	}
	for _, t := range g.TrackInterfaces {
		b.addGroup(m.interfaceItem(t))
	}
	for _, t := range g.TrackFiles {
		if it, ok := m.fileItem(t, owner); ok {
			b.addGroup(it)
		}
	}
	return markFaults(inst.Priority, b.items)
}

type itemKey struct {
	kind Kind
	name string
}

type itemBuilder struct {
	items []ItemState
	index map[itemKey]int
}

// add appends it unless the object is already tracked (keepalived:
// "duplicate track_... - ignoring").
func (b *itemBuilder) add(it ItemState) {
	if b.index == nil {
		b.index = map[itemKey]int{}
	}
	k := itemKey{it.Kind, it.Name}
	if _, dup := b.index[k]; dup {
		return
	}
	b.index[k] = len(b.items)
	b.items = append(b.items, it)
}

// addGroup adds a sync group's item: it replaces the member's own entry
// for the same object unless that entry is unweighted.
func (b *itemBuilder) addGroup(it ItemState) {
	if i, ok := b.index[itemKey{it.Kind, it.Name}]; ok {
		if b.items[i].Weight != 0 {
			b.items[i].Weight, b.items[i].Reverse = it.Weight, it.Reverse
		}
		return
	}
	b.add(it)
}

// addInstanceItems adds an instance's own tracking; noWeights applies the
// sync group rule (no sync_group_tracking_weight). m.mu is held.
func (m *Manager) addInstanceItems(b *itemBuilder, inst *config.Instance, noWeights bool) {
	owner := inst.Priority == OwnerPriority
	for _, t := range inst.TrackScripts {
		it, ok := m.scriptItem(t)
		if !ok || (noWeights && it.Weight != 0) {
			continue
		}
		b.add(it)
	}
	if !inst.DontTrackPrimary && inst.Interface != "" {
		b.add(m.interfaceItem(config.Track{Name: inst.Interface}))
	}
	for _, t := range inst.TrackInterfaces {
		it := m.interfaceItem(t)
		if noWeights {
			it.Weight = 0
		}
		b.add(it)
	}
	for _, t := range inst.TrackFiles {
		it, ok := m.fileItem(t, owner || noWeights)
		if !ok || (noWeights && it.Weight != 0) {
			continue
		}
		b.add(it)
	}
}

// scriptItem is one track_script entry; m.mu is held.
func (m *Manager) scriptItem(t config.Track) (ItemState, bool) {
	st, ok := m.scripts[t.Name]
	if !ok || st.disabled != nil {
		return ItemState{}, false
	}
	it := ItemState{Kind: KindScript, Name: t.Name, Weight: st.cfg.Weight, Reverse: st.cfg.WeightReverse}
	if t.Weight != nil {
		// keepalived keeps the vrrp_script's reverse unless the entry says
		// reverse (the model cannot carry "noreverse").
		it.Weight, it.Reverse = *t.Weight, it.Reverse || t.Reverse
	}
	if st.rf.known {
		it.Known, it.OK = true, st.rf.ok()
	}
	return it, true
}

// interfaceItem is one tracked interface; m.mu is held. An interface the
// manager does not watch reads as unknown, that is down.
func (m *Manager) interfaceItem(t config.Track) ItemState {
	it := ItemState{Kind: KindInterface, Name: t.Name, Reverse: t.Reverse}
	if t.Weight != nil {
		it.Weight = *t.Weight
	}
	if st, ok := m.ifaces[t.Name]; ok && st.known {
		it.Known, it.OK = true, st.up
	}
	return it
}

// fileItem is one track_file entry; m.mu is held. unweightOne turns the
// default weight 1 into 0 (keepalived's rule for address owners and sync
// group members).
func (m *Manager) fileItem(t config.Track, unweightOne bool) (ItemState, bool) {
	f, ok := m.files[t.Name]
	if !ok {
		return ItemState{}, false
	}
	w := 1 // keepalived's default weight
	if f.cfg.Weight != nil {
		w = *f.cfg.Weight
	}
	it := ItemState{Kind: KindFile, Name: t.Name, Weight: w, Reverse: f.cfg.WeightReverse}
	if t.Weight != nil {
		it.Weight, it.Reverse = *t.Weight, it.Reverse || t.Reverse
	}
	if unweightOne && it.Weight == 1 {
		it.Weight = 0
	}
	if f.known {
		it.Known, it.Value, it.OK = true, f.value, f.value == 0
	}
	return it, true
}
