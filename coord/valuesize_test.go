package coord

import (
	"bytes"
	"fmt"
	"testing"
)

func TestBuildRefusesAnOversizedValueAndKeepsTheLastGood(t *testing.T) {
	big := func(fill string) []byte {
		b := []byte(fill)
		for len(b) <= MaxValueSize {
			b = append(b, " # padding\n"...)
		}
		return b
	}
	inst := InstanceKey("/vipd", "VI_2")
	const prio, maint, imaint = "/vipd/priority/VI_1/node3", "/vipd/maintenance/node3", "/vipd/maintenance/node3/VI_1"
	prev := Build("/vipd", map[string][]byte{
		inst:   []byte("interface: eth0\nvirtual_router_id: 52\npriority: 90\n"),
		prio:   []byte("200"),
		maint:  []byte("disk swap"),
		imaint: []byte("app"),
	})
	huge := map[string][]byte{
		inst:   big("interface: eth0\nvirtual_router_id: 52\npriority: 80\n"),
		prio:   append([]byte("150"), bytes.Repeat([]byte(" "), MaxValueSize)...),
		maint:  big("reason"),
		imaint: big("reason"),
		// Not configuration: written by vipd, skipped whatever the size.
		"/vipd/status/node1": big("{}"),
	}
	for _, tc := range []struct {
		name string
		prev Overlay
		kept bool
	}{{"after good values", prev, true}, {"with no previous value", Overlay{}, false}} {
		ov := BuildFrom("/vipd", huge, tc.prev)
		if len(ov.Rejected) != 4 {
			t.Fatalf("%s: rejected %v, want the 4 oversized configuration keys", tc.name, ov.Rejected)
		}
		for _, r := range ov.Rejected {
			want := fmt.Sprintf("etcd %s: value of %d bytes: over the limit of %d bytes, not read", r.Key, len(huge[r.Key]), MaxValueSize)
			if r.Err.Error() != want || r.Kept != tc.kept {
				t.Errorf("%s: rejection %q kept=%v, want %q kept=%v", tc.name, r.Err, r.Kept, want, tc.kept)
			}
		}
		in := ov.Instances["VI_2"]
		if tc.kept {
			if in == nil || in.Priority != 90 || ov.Priorities[[2]string{"VI_1", "node3"}] != 200 ||
				ov.Maintenance["node3"] != "disk swap" || ov.InstanceMaintenance[[2]string{"node3", "VI_1"}] != "app" {
				t.Errorf("%s: the last good values did not stay: %+v %v %v %v", tc.name, in, ov.Priorities, ov.Maintenance, ov.InstanceMaintenance)
			}
		} else if in != nil || len(ov.Priorities) != 0 || len(ov.Maintenance) != 0 || len(ov.InstanceMaintenance) != 0 {
			t.Errorf("%s: an oversized value is in force: %+v %v %v %v", tc.name, in, ov.Priorities, ov.Maintenance, ov.InstanceMaintenance)
		}
	}
	// At the limit, a value is read.
	atLimit := append([]byte("150"), bytes.Repeat([]byte(" "), MaxValueSize-3)...)
	if ov := Build("/vipd", map[string][]byte{prio: atLimit}); len(ov.Rejected) != 0 || ov.Priorities[[2]string{"VI_1", "node3"}] != 150 {
		t.Errorf("a value of exactly MaxValueSize bytes: rejected %v, priorities %v", ov.Rejected, ov.Priorities)
	}
}
