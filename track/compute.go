package track

import "fmt"

// Kind is the kind of a tracked object.
type Kind string

// The kinds of tracked objects.
const (
	KindScript    Kind = "script"
	KindInterface Kind = "interface"
	KindFile      Kind = "file"
)

// Priority bounds (RFC 5798 5.2.4, keepalived VRRP_PRIO_OWNER).
const (
	// OwnerPriority is the priority of the address owner; tracking never
	// changes it.
	OwnerPriority = 255
	// MaxBackupPriority is the highest priority tracking can reach.
	MaxBackupPriority = 254
	// MinPriority is the lowest priority tracking can reach (0 is reserved
	// for "master is leaving").
	MinPriority = 1

	// faultStatus is keepalived's track_file status at or below which the
	// instance goes to FAULT (process_update_vrrp_track_file_status).
	faultStatus = -254
	// maxFileStatus is the largest contribution one track_file can make.
	maxFileStatus = 253
)

// ItemState is one tracked object's current result as an instance sees it.
type ItemState struct {
	Kind Kind
	// Name is the vrrp_script name, the interface name or the track_file
	// name.
	Name string
	// OK is the result: the script succeeded, the interface is up, the
	// file holds 0.
	OK bool
	// Value is the number read from a track_file (0 for other kinds).
	Value int
	// Weight is the effective weight for this instance, after the
	// per-instance override. 0 means "a bad result is FAULT".
	Weight int
	// Reverse is keepalived's "weight N reverse".
	Reverse bool
	// Fault reports that this item puts the instance in FAULT (set by
	// ItemsFor; Compute reads the other fields only).
	Fault bool
	// Known reports that a result exists yet. A script without a result is
	// keepalived's INIT state; an interface or file without a result reads
	// as down / 0.
	Known bool
}

// Compute is keepalived's effective priority rule, as a pure function: base
// plus the contributions of the tracked items, clamped to 1..254, and the
// reasons the instance is in FAULT (empty when it is not).
//
// The rules (keepalived 2.2.7 vrrp/vrrp_track.c, trackers/track_file.c):
//   - script, weight 0: failure is FAULT (reverse: success is FAULT); a
//     script without a result yet holds the instance back like keepalived's
//     INIT state and is reported as a fault.
//   - script, weight > 0: success adds weight; weight < 0: failure adds
//     weight; reverse negates the contribution.
//   - interface, weight 0: down (or missing) is FAULT (reverse: up is
//     FAULT); weight > 0: up adds weight; weight < 0: down adds weight;
//     reverse negates.
//   - track_file, weight 0: a non-zero value is FAULT (reverse: zero is
//     FAULT); otherwise value x weight (reverse negates); a result of -254
//     or lower is FAULT, a result above 253 counts as 253.
//   - base 255 (the address owner): keepalived refuses weighted tracking on
//     an owner, so weighted items are ignored and the priority stays 255;
//     unweighted items still put it in FAULT.
func Compute(base int, items []ItemState) (effective int, faults []string) {
	owner := base == OwnerPriority
	total := int64(base)
	for _, it := range items {
		contrib, fault := evaluate(it)
		if fault != "" {
			if owner && it.Weight != 0 {
				continue
			}
			faults = append(faults, fault)
			continue
		}
		if !owner {
			total += contrib
		}
	}
	if owner {
		return OwnerPriority, faults
	}
	return int(clamp(total, MinPriority, MaxBackupPriority)), faults
}

// markFaults returns items with each Fault field set as Compute judges it, so
// a status display can show which item holds the instance in FAULT. The
// input slice is not modified.
func markFaults(base int, items []ItemState) []ItemState {
	out := make([]ItemState, len(items))
	for i, it := range items {
		_, fault := evaluate(it)
		it.Fault = fault != "" && (base != OwnerPriority || it.Weight == 0)
		out[i] = it
	}
	return out
}

// evaluate returns one item's priority contribution, or why it is a fault.
func evaluate(it ItemState) (contrib int64, fault string) {
	mult := int64(1)
	if it.Reverse {
		mult = -1
	}
	w := int64(it.Weight)
	switch it.Kind {
	case KindScript:
		if !it.Known {
			if it.Weight == 0 {
				return 0, fmt.Sprintf("track_script %s has no result yet", it.Name)
			}
			return 0, ""
		}
		if it.Weight == 0 {
			if it.OK == it.Reverse {
				if it.OK {
					return 0, fmt.Sprintf("track_script %s succeeded (reverse)", it.Name)
				}
				return 0, fmt.Sprintf("track_script %s failed", it.Name)
			}
			return 0, ""
		}
		return binaryContribution(it.OK, w, mult), ""
	case KindInterface:
		up := it.Known && it.OK
		if it.Weight == 0 {
			if up == it.Reverse {
				if up {
					return 0, fmt.Sprintf("interface %s up (reverse)", it.Name)
				}
				return 0, fmt.Sprintf("interface %s down", it.Name)
			}
			return 0, ""
		}
		return binaryContribution(up, w, mult), ""
	case KindFile:
		v := int64(0)
		if it.Known {
			v = int64(it.Value)
		}
		if it.Weight == 0 {
			if (v != 0) != it.Reverse {
				if it.Reverse {
					return 0, fmt.Sprintf("track_file %s value %d with weight 0 reverse", it.Name, v)
				}
				return 0, fmt.Sprintf("track_file %s value %d with weight 0", it.Name, v)
			}
			return 0, ""
		}
		status := v * w * mult
		if status <= faultStatus {
			return 0, fmt.Sprintf("track_file %s value %d x weight %d%s = %d", it.Name, v, it.Weight, reverseWord(it.Reverse), status)
		}
		return min(status, maxFileStatus), ""
	default:
		return 0, fmt.Sprintf("unknown tracked item kind %q (%s)", it.Kind, it.Name)
	}
}

// binaryContribution is keepalived's rule for a two-state object: a
// positive weight counts when the object is good, a negative one when it
// is bad.
func binaryContribution(good bool, w, mult int64) int64 {
	switch {
	case good && w > 0:
		return w * mult
	case !good && w < 0:
		return w * mult
	}
	return 0
}

func reverseWord(r bool) string {
	if r {
		return " reverse"
	}
	return ""
}

func clamp(v, lo, hi int64) int64 {
	return max(lo, min(v, hi))
}

// FaultsByItem is Compute's faults keyed by the item that causes each
// ("interface/eth0", "script/chk_nginx", "file/maint"), so a fault of one
// item is raised and cleared on its own.
func FaultsByItem(base int, items []ItemState) map[string]string {
	var out map[string]string
	for _, it := range items {
		_, fault := evaluate(it)
		if fault == "" || (base == OwnerPriority && it.Weight != 0) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[string(it.Kind)+"/"+it.Name] = fault
	}
	return out
}
