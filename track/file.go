package track

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"
)

// FilePollInterval is how often tracked files are re-read.
const FilePollInterval = 250 * time.Millisecond

// fileReadLimit is how much of a tracked file is read (keepalived reads up
// to 127 bytes).
const fileReadLimit = 127

// readTrackFile reads a track_file the way keepalived does
// (trackers/track_file.c process_track_file): the number at the start of
// the file, C strtol with base 0 (leading blanks, a sign, 0x for hex, a
// leading 0 for octal); a missing, empty or unreadable file, or one that
// does not start with a number, reads as 0. A number outside the 32-bit
// range is invalid: ok is false and the caller keeps the previous value.
func readTrackFile(path string) (value int, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, true, nil
		}
		return 0, true, fmt.Errorf("track_file %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, fileReadLimit)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, true, fmt.Errorf("track_file %s: %w", path, err)
	}
	v, ok := strtol(buf[:n])
	return v, ok, nil
}

// strtol parses the leading integer of b like C strtol(b, NULL, 0). It
// returns ok false when the number does not fit in 32 bits (keepalived logs
// "Invalid number" and ignores such a read; it accepts up to INT32_MAX+1).
func strtol(b []byte) (int, bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	base := 10
	if i+2 < len(b) && b[i] == '0' && (b[i+1] == 'x' || b[i+1] == 'X') && digitValue(b[i+2]) < 16 {
		base = 16
		i += 2
	} else if i < len(b) && b[i] == '0' {
		base = 8
	}
	start := i
	for i < len(b) && digitValue(b[i]) < base {
		i++
	}
	if i == start {
		return 0, true
	}
	u, err := strconv.ParseUint(string(b[start:i]), base, 64)
	if err != nil || u > math.MaxInt32+1 {
		return 0, false
	}
	v := int64(u)
	if neg {
		v = -v
	}
	return int(v), true
}

func digitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// pollFiles re-reads tracked files every FilePollInterval until ctx is
// done.
func (m *Manager) pollFiles(done <-chan struct{}) {
	defer m.wg.Done()
	for {
		t := m.clock.NewTimer(FilePollInterval)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C():
			m.readFiles()
		}
	}
}

// readFiles reads every tracked file once and notifies changes.
func (m *Manager) readFiles() {
	m.mu.Lock()
	files := make([]*fileState, 0, len(m.files))
	for _, f := range m.files {
		files = append(files, f)
	}
	m.mu.Unlock()
	changed := false
	for _, f := range files {
		if m.readFile(f) {
			changed = true
		}
	}
	if changed {
		m.notify()
	}
}

// readFile reads one tracked file and reports whether its value changed.
func (m *Manager) readFile(f *fileState) bool {
	m.mu.Lock()
	path := f.cfg.File
	m.mu.Unlock()
	v, ok, err := readTrackFile(path)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if f.lastErr == "" || f.lastErr != err.Error() {
			m.log.Warn("track: cannot read track_file; reading it as 0", "track_file", f.cfg.Name, "err", err)
		}
		f.lastErr = err.Error()
	} else {
		f.lastErr = ""
	}
	if !ok {
		if !f.invalid {
			m.log.Warn("track: track_file holds a number outside the 32-bit range; ignored", "track_file", f.cfg.Name, "file", path)
		}
		f.invalid = true
		return false
	}
	f.invalid = false
	if f.known && f.value == v {
		return false
	}
	if f.known {
		m.log.Info("track: track_file value changed", "track_file", f.cfg.Name, "file", path, "from", f.value, "to", v)
	}
	f.value, f.known = v, true
	return true
}
