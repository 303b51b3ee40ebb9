package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// labNSRE matches the namespaces a lab makes: "vl" + 6 hex digits + "-" + a name.
var labNSRE = regexp.MustCompile(`^(vl[0-9a-f]{6}-)[A-Za-z0-9_.-]+$`)

// marker identifies the process that created a lab: its pid and its start time in clock ticks
// since boot (field 22 of /proc/PID/stat), so that a recycled pid does not pass for the creator.
type marker struct {
	pid   int
	start uint64
}

func writeMarker(prefix string) error {
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", markerDir, err)
	}
	start, err := procStartTime(os.Getpid())
	if err != nil {
		return err
	}
	content := fmt.Sprintf("%d %d\n", os.Getpid(), start)
	if err := os.WriteFile(filepath.Join(markerDir, prefix), []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing lab marker: %w", err)
	}
	return nil
}

func readMarker(prefix string) (marker, error) {
	b, err := os.ReadFile(filepath.Join(markerDir, prefix))
	if err != nil {
		return marker{}, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return marker{}, fmt.Errorf("lab marker %s: want \"PID STARTTIME\", got %q", prefix, b)
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return marker{}, fmt.Errorf("lab marker %s: %w", prefix, err)
	}
	return marker{pid: pid, start: start}, nil
}

// alive reports whether the process that wrote the marker still runs.
func (m marker) alive() bool {
	start, err := procStartTime(m.pid)
	return err == nil && start == m.start
}

// procStartTime returns field 22 (starttime) of /proc/PID/stat.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading process start time: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold anything: split after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); starttime, field 22, is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want at least 20", pid, len(f))
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return v, nil
}

// Sweep deletes what labs of crashed test binaries left behind: every namespace named like a
// lab's ("vl" + 6 hex + "-" + name) whose creator is no longer running (or that has no marker),
// after killing the processes inside it, and the stale markers under /run/vipd-lab. Labs of
// running processes are left alone. It returns the namespaces it deleted; errors are collected,
// not fatal. It needs root.
func Sweep() (removed []string, err error) {
	var errs []error
	entries, rerr := os.ReadDir("/run/netns")
	if rerr != nil && !os.IsNotExist(rerr) {
		errs = append(errs, fmt.Errorf("listing namespaces: %w", rerr))
	}
	alive := map[string]bool{}
	for _, e := range entries {
		m := labNSRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		prefix := m[1]
		live, seen := alive[prefix]
		if !seen {
			mk, err := readMarker(prefix)
			live = err == nil && mk.alive()
			alive[prefix] = live
		}
		if live {
			continue
		}
		if err := deleteNamespace(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}

	markers, merr := os.ReadDir(markerDir)
	if merr != nil && !os.IsNotExist(merr) {
		errs = append(errs, fmt.Errorf("listing lab markers: %w", merr))
	}
	for _, e := range markers {
		if live, seen := alive[e.Name()]; seen && live {
			continue
		}
		mk, err := readMarker(e.Name())
		if err == nil && mk.alive() {
			continue
		}
		if err := os.Remove(filepath.Join(markerDir, e.Name())); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}

	sweepBuildDirs()
	return removed, errors.Join(errs...)
}
