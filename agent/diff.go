package agent

import (
	"fmt"
	"reflect"

	"github.com/vipd/vipd/config"
)

// This file decides what a reload changes: which instances are the same,
// which can take a change live, which must restart.

// sameInstance compares two instance configurations ignoring positions.
func sameInstance(a, b *config.Instance) bool {
	return reflect.DeepEqual(stripPos(*a), stripPos(*b))
}

// onlyLiveFieldsDiffer reports whether b differs from a only in what a
// running instance can take without a restart: its base priority, its
// tracked scripts, interfaces and files, and its notify scripts.
func onlyLiveFieldsDiffer(a, b *config.Instance) bool {
	x, y := stripPos(*a), stripPos(*b)
	y.Priority = x.Priority
	y.TrackScripts, y.TrackInterfaces, y.TrackFiles = x.TrackScripts, x.TrackInterfaces, x.TrackFiles
	y.DontTrackPrimary = x.DontTrackPrimary
	y.Notify = x.Notify
	return reflect.DeepEqual(x, y)
}

func stripPos(ic config.Instance) config.Instance {
	ic.Pos = config.Pos{}
	ic.VIPs = stripVIPs(ic.VIPs)
	ic.ExcludedVIPs = stripVIPs(ic.ExcludedVIPs)
	if ic.Routes != nil {
		rs := make([]config.Route, len(ic.Routes))
		for i, r := range ic.Routes {
			r.Pos = config.Pos{}
			rs[i] = r
		}
		ic.Routes = rs
	}
	ic.TrackScripts = stripTracks(ic.TrackScripts)
	ic.TrackInterfaces = stripTracks(ic.TrackInterfaces)
	ic.TrackFiles = stripTracks(ic.TrackFiles)
	return ic
}

func stripVIPs(vs []config.VIP) []config.VIP {
	if vs == nil {
		return nil
	}
	out := make([]config.VIP, len(vs))
	for i, v := range vs {
		v.Pos = config.Pos{}
		out[i] = v
	}
	return out
}

func stripTracks(ts []config.Track) []config.Track {
	if ts == nil {
		return nil
	}
	out := make([]config.Track, len(ts))
	for i, t := range ts {
		t.Pos = config.Pos{}
		out[i] = t
	}
	return out
}

// syncGroups maps each instance to its vrrp_sync_group and each group to a
// key describing its definition (members and settings), so a reload can
// tell whether a group changed.
func syncGroups(m *config.Model) (groupOf map[string]string, key map[string]string) {
	groupOf, key = map[string]string{}, map[string]string{}
	for _, g := range m.SyncGroups {
		for _, member := range g.Members {
			groupOf[member] = g.Name
		}
		gc := *g
		gc.Pos = config.Pos{}
		gc.TrackScripts = stripTracks(gc.TrackScripts)
		gc.TrackInterfaces = stripTracks(gc.TrackInterfaces)
		gc.TrackFiles = stripTracks(gc.TrackFiles)
		key[g.Name] = fmt.Sprintf("%+v", gc)
	}
	return groupOf, key
}
