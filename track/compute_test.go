package track

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sc(name string, known, ok bool, weight int, reverse bool) ItemState {
	return ItemState{Kind: KindScript, Name: name, Known: known, OK: ok, Weight: weight, Reverse: reverse}
}

func ifc(name string, known, up bool, weight int, reverse bool) ItemState {
	return ItemState{Kind: KindInterface, Name: name, Known: known, OK: up, Weight: weight, Reverse: reverse}
}

func fil(name string, known bool, value, weight int, reverse bool) ItemState {
	return ItemState{Kind: KindFile, Name: name, Known: known, Value: value, OK: value == 0, Weight: weight, Reverse: reverse}
}

func TestComputeFollowsKeepalivedWeightRules(t *testing.T) {
	tests := []struct {
		name       string
		base       int
		items      []ItemState
		wantPrio   int
		wantFaults []string
	}{
		{"no items keeps the base", 100, nil, 100, nil},

		// vrrp_script
		{"unweighted script failing is FAULT", 100, []ItemState{sc("chk_main", true, false, 0, false)}, 100,
			[]string{"track_script chk_main failed"}},
		{"unweighted script succeeding is fine", 100, []ItemState{sc("chk_main", true, true, 0, false)}, 100, nil},
		{"unweighted reverse script succeeding is FAULT", 100, []ItemState{sc("chk", true, true, 0, true)}, 100,
			[]string{"track_script chk succeeded (reverse)"}},
		{"unweighted reverse script failing is fine", 100, []ItemState{sc("chk", true, false, 0, true)}, 100, nil},
		{"unweighted script without result holds the instance (INIT)", 100, []ItemState{sc("chk", false, false, 0, false)}, 100,
			[]string{"track_script chk has no result yet"}},
		{"weighted script without result counts nothing", 100, []ItemState{sc("chk", false, false, -20, false)}, 100, nil},
		{"positive weight adds on success", 100, []ItemState{sc("chk", true, true, 10, false)}, 110, nil},
		{"positive weight adds nothing on failure", 100, []ItemState{sc("chk", true, false, 10, false)}, 100, nil},
		{"negative weight subtracts on failure", 100, []ItemState{sc("chk_main", true, false, -2, false)}, 98, nil},
		{"negative weight subtracts nothing on success", 100, []ItemState{sc("chk_main", true, true, -2, false)}, 100, nil},
		{"reverse positive weight subtracts on success", 100, []ItemState{sc("chk", true, true, 10, true)}, 90, nil},
		{"reverse negative weight adds on failure", 100, []ItemState{sc("chk", true, false, -10, true)}, 110, nil},

		// interfaces
		{"unweighted interface down is FAULT", 100, []ItemState{ifc("eth1", true, false, 0, false)}, 100,
			[]string{"interface eth1 down"}},
		{"unknown interface reads as down", 100, []ItemState{ifc("eth9", false, false, 0, false)}, 100,
			[]string{"interface eth9 down"}},
		{"unweighted interface up is fine", 100, []ItemState{ifc("eth1", true, true, 0, false)}, 100, nil},
		{"unweighted reverse interface up is FAULT", 100, []ItemState{ifc("eth1", true, true, 0, true)}, 100,
			[]string{"interface eth1 up (reverse)"}},
		{"interface positive weight adds when up", 100, []ItemState{ifc("eth1", true, true, 5, false)}, 105, nil},
		{"interface positive weight adds nothing when down", 100, []ItemState{ifc("eth1", true, false, 5, false)}, 100, nil},
		{"interface negative weight subtracts when down", 100, []ItemState{ifc("eth1", true, false, -30, false)}, 70, nil},
		{"interface negative weight subtracts nothing when up", 100, []ItemState{ifc("eth1", true, true, -30, false)}, 100, nil},
		{"interface reverse negative weight adds when down", 100, []ItemState{ifc("eth1", true, false, -30, true)}, 130, nil},

		// track_file
		{"file value times weight", 100, []ItemState{fil("f", true, 3, 5, false)}, 115, nil},
		{"file negative value times weight", 100, []ItemState{fil("f", true, -3, 5, false)}, 85, nil},
		{"file reverse negates", 100, []ItemState{fil("f", true, 3, 5, true)}, 85, nil},
		{"file unread counts as 0", 100, []ItemState{fil("f", false, 0, 5, false)}, 100, nil},
		{"file weight 0 with non-zero value is FAULT", 100, []ItemState{fil("f", true, 3, 0, false)}, 100,
			[]string{"track_file f value 3 with weight 0"}},
		{"file weight 0 with zero value is fine", 100, []ItemState{fil("f", true, 0, 0, false)}, 100, nil},
		{"file weight 0 reverse with zero value is FAULT", 100, []ItemState{fil("f", true, 0, 0, true)}, 100,
			[]string{"track_file f value 0 with weight 0 reverse"}},
		{"file weight 0 reverse with non-zero value is fine", 100, []ItemState{fil("f", true, 7, 0, true)}, 100, nil},
		{"file result -254 is FAULT", 200, []ItemState{fil("f", true, -127, 2, false)}, 200,
			[]string{"track_file f value -127 x weight 2 = -254"}},
		{"file result -253 is a weight", 254, []ItemState{fil("f", true, -253, 1, false)}, 1, nil},
		{"file result above 253 counts as 253", 1, []ItemState{fil("f", true, 1000, 1, false)}, 254, nil},
		{"file huge value does not overflow", 100, []ItemState{fil("f", true, 2147483647, -254, false)}, 100,
			[]string{"track_file f value 2147483647 x weight -254 = -545460846338"}},

		// sums and clamps
		{"contributions add up", 100, []ItemState{
			sc("a", true, false, -2, false), sc("b", true, true, 10, false), ifc("eth1", true, false, -5, false), fil("f", true, 2, 3, false),
		}, 109, nil},
		{"clamped to 254 at the top", 250, []ItemState{sc("a", true, true, 50, false)}, 254, nil},
		{"clamped to 1 at the bottom", 10, []ItemState{sc("a", true, false, -50, false)}, 1, nil},
		{"faults and weights together", 100, []ItemState{
			sc("a", true, false, -2, false), ifc("eth0", true, false, 0, false), sc("b", true, false, 0, false),
		}, 98, []string{"interface eth0 down", "track_script b failed"}},

		// address owner
		{"owner keeps 255 whatever the weights", 255, []ItemState{
			sc("a", true, false, -50, false), ifc("eth1", true, false, -10, false), fil("f", true, 3, 1, false),
		}, 255, nil},
		{"owner ignores a weighted file that would be FAULT", 255, []ItemState{fil("f", true, -254, 1, false)}, 255, nil},
		{"owner still faults on unweighted items", 255, []ItemState{
			ifc("eth0", true, false, 0, false), sc("chk", true, false, 0, false), fil("f", true, 1, 0, false),
		}, 255, []string{"interface eth0 down", "track_script chk failed", "track_file f value 1 with weight 0"}},
		{"a base of 254 can still go down", 254, []ItemState{sc("a", true, false, -4, false)}, 250, nil},
		{"unknown kind is reported, never ignored", 100, []ItemState{{Kind: "bfd", Name: "x", Known: true, OK: true}}, 100,
			[]string{`unknown tracked item kind "bfd" (x)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prio, faults := Compute(tt.base, tt.items)
			if prio != tt.wantPrio {
				t.Errorf("priority = %d, want %d", prio, tt.wantPrio)
			}
			if diff := cmp.Diff(tt.wantFaults, faults); diff != "" {
				t.Errorf("faults (-want +got):\n%s", diff)
			}
			// markFaults flags exactly the items Compute reports.
			n := 0
			for _, it := range markFaults(tt.base, tt.items) {
				if it.Fault {
					n++
				}
			}
			if n != len(tt.wantFaults) {
				t.Errorf("markFaults flagged %d items, Compute reported %d faults", n, len(tt.wantFaults))
			}
		})
	}
}

func TestComputeDoesNotModifyItsInput(t *testing.T) {
	items := []ItemState{sc("a", true, false, 0, false)}
	before := append([]ItemState(nil), items...)
	Compute(100, items)
	markFaults(100, items)
	if diff := cmp.Diff(before, items); diff != "" {
		t.Errorf("input changed (-before +after):\n%s", diff)
	}
}
