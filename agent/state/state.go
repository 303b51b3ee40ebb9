// Package state is what a vipd run leaves for the next one in its state
// directory (vipd run --state-dir): what each instance is and holds, the
// operator's maintenance and priority overrides, and how the run ended.
// A restart, a crash followed by a quick start, and vipd upgrade read it
// to resume MASTERs without a re-election (the agent decides; see
// agent/resume.go).
//
// It owns the file's format, its atomic write and its heartbeat (the
// file's modification time, touched while the run is alive, so a start
// after a crash knows how long the old run has been dead). It does not
// decide anything and does no VRRP.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the state file's name in the state directory.
const FileName = "state.json"

// Version is the format written. A file of another version is not read.
const Version = 1

// CrashWindow: a run that crashes within it of its start counts in the
// crash streak.
const CrashWindow = time.Minute

// MaxCrashStreak is how many quick crashes in a row a start still resumes
// after; past it the start is a plain one (VIPs released, VRRP decides).
const MaxCrashStreak = 3

// maxSize bounds what Read accepts (4000 instances take about 1 MB).
const maxSize = 16 << 20

// Mode says how the run that wrote the file was, or ended.
type Mode string

// Modes.
const (
	// ModeRunning: the run was alive at the last write; found by a start,
	// it crashed (kill -9, a panic, the OOM killer), VIPs left in place.
	ModeRunning Mode = "running"
	// ModeRestarting: it exited for a restart (the restart signal),
	// keeping its VIPs for the next start to resume.
	ModeRestarting Mode = "restarting"
	// ModeUpgrading: it re-executed a new binary (vipd upgrade).
	ModeUpgrading Mode = "upgrading"
	// ModeStopped: it stopped gracefully and released its VIPs.
	ModeStopped Mode = "stopped"
	// ModeReleased: vipd release removed what a dead run left.
	ModeReleased Mode = "released"
)

// Valid reports whether m is one of the modes.
func (m Mode) Valid() bool {
	switch m {
	case ModeRunning, ModeRestarting, ModeUpgrading, ModeStopped, ModeReleased:
		return true
	}
	return false
}

// File is the content of the state file.
type File struct {
	Version int       `json:"version"`
	Node    string    `json:"node"`
	PID     int       `json:"pid"`
	Mode    Mode      `json:"mode"`
	Written time.Time `json:"written"`
	// Started is when the run began; CrashStreak how many runs in a row
	// crashed within CrashWindow of their start, this one included when
	// it crashes too (a start stops resuming in a crash loop).
	Started     time.Time `json:"started"`
	CrashStreak int       `json:"crash_streak,omitempty"`
	// Instances as they were at the last write (every transition).
	Instances []Instance `json:"instances"`
	// Operator intents (vipd maint, vipd priority): kept across every
	// restart, graceful or not, until the operator clears them.
	Maintenance *Maintenance   `json:"maintenance,omitempty"`
	Priorities  map[string]int `json:"priorities,omitempty"` // instance -> priority
}

// Maintenance is the operator's maintenance of the node or its instances.
type Maintenance struct {
	Node      bool              `json:"node,omitempty"`
	Reason    string            `json:"reason,omitempty"`    // of the node's
	Instances map[string]string `json:"instances,omitempty"` // instance -> reason
}

// Instance is one instance of the run.
type Instance struct {
	Name string `json:"name"`
	// Identity is the agent's rendering of what makes the instance itself
	// (VRID, family, interface, unicast mode, use_vmac): a start resumes
	// only an instance whose identity did not change.
	Identity string    `json:"identity"`
	State    string    `json:"state"` // MASTER, BACKUP, FAULT, INIT, STOP
	Since    time.Time `json:"since"`
	// VIPs the instance holds (a MASTER's): what must still be in place
	// for a resume, and what vipd release removes.
	VIPs []VIP `json:"vips,omitempty"`
}

// VIP is an address on a device.
type VIP struct {
	Prefix netip.Prefix `json:"prefix"`
	Dev    string       `json:"dev"`
}

// Path is the state file of dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Decode parses a state file's bytes and checks them: a file it returns
// without error has the current version, a known mode and named
// instances with valid VIPs.
func Decode(b []byte) (File, error) {
	var f File
	if len(b) > maxSize {
		return File{}, fmt.Errorf("state file is %d bytes, more than %d", len(b), maxSize)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return File{}, fmt.Errorf("state file: %w", err)
	}
	if f.Version != Version {
		return File{}, fmt.Errorf("state file version %d, this vipd reads %d", f.Version, Version)
	}
	if !f.Mode.Valid() {
		return File{}, fmt.Errorf("state file: unknown mode %q", f.Mode)
	}
	seen := map[string]bool{}
	for i, in := range f.Instances {
		if in.Name == "" {
			return File{}, fmt.Errorf("state file: instance %d has no name", i)
		}
		if seen[in.Name] {
			return File{}, fmt.Errorf("state file: instance %s twice", in.Name)
		}
		seen[in.Name] = true
		for _, v := range in.VIPs {
			if !v.Prefix.IsValid() || v.Dev == "" {
				return File{}, fmt.Errorf("state file: instance %s: VIP %v on %q", in.Name, v.Prefix, v.Dev)
			}
		}
	}
	for name, p := range f.Priorities {
		if p < 1 || p > 254 {
			return File{}, fmt.Errorf("state file: priority override %d of %s: want 1..254", p, name)
		}
	}
	return f, nil
}

// Read reads dir's state file. It returns the file and its heartbeat (the
// last time the run that wrote it was known alive). A missing file is
// fs.ErrNotExist.
func Read(dir string) (File, time.Time, error) {
	p := Path(dir)
	fh, err := os.Open(p)
	if err != nil {
		return File{}, time.Time{}, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return File{}, time.Time{}, fmt.Errorf("%s: %w", p, err)
	}
	if st.Size() > maxSize {
		return File{}, time.Time{}, fmt.Errorf("%s: %d bytes, more than %d", p, st.Size(), maxSize)
	}
	b := make([]byte, st.Size())
	if _, err := fh.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return File{}, time.Time{}, fmt.Errorf("%s: %w", p, err)
	}
	f, err := Decode(b)
	if err != nil {
		return File{}, time.Time{}, fmt.Errorf("%s: %w", p, err)
	}
	return f, st.ModTime(), nil
}

// Write replaces dir's state file atomically (WriteFile).
func Write(dir string, f File) error {
	f.Version = Version
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return WriteFile(dir, FileName, append(b, '\n'))
}

// WriteFile replaces the file name in dir atomically (a temporary file,
// fsync, rename, fsync of the directory): a crash at any moment leaves the
// old file or the new one, never a mix. It creates dir (0700) if needed;
// the file is 0600.
func WriteFile(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing there
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Touch moves the heartbeat of dir's state file to now: the run is alive.
func Touch(dir string, now time.Time) error {
	err := os.Chtimes(Path(dir), time.Time{}, now)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state heartbeat: %w", err)
	}
	return err
}

// LockName is the lock file of a state directory: one vipd at a time.
const LockName = "lock"

// Lock takes dir's lock (flock on dir/lock), waiting up to wait for a run
// that is exiting (a restart) to let go. The lock goes with the process
// (and with an exec: the descriptor is close-on-exec), so a crash never
// leaves it held. unlock releases it.
func Lock(dir string, wait time.Duration) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(dir, LockName)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("state directory %s is in use by another vipd (give each its own --state-dir or --node-name)", dir)
			}
			return nil, fmt.Errorf("state directory lock %s: %w", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
