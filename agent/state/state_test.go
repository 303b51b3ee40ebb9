package state

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func sample() File {
	t0 := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	return File{Version: Version, Node: "lb1", PID: 4242, Mode: ModeRestarting, Written: t0.Add(time.Minute), Started: t0,
		Instances: []Instance{
			{Name: "VI_1", Identity: "vrid=51 family=ipv4 interface=eth0 mode=multicast", State: "MASTER", Since: t0,
				VIPs: []VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24"), Dev: "eth0"}, {Prefix: netip.MustParsePrefix("fd00::1/64"), Dev: "eth1"}}},
			{Name: "VI_2", Identity: "vrid=52 family=ipv4 interface=eth0 mode=unicast", State: "BACKUP", Since: t0},
		},
		Maintenance: &Maintenance{Instances: map[string]string{"VI_2": "NIC swap"}},
		Priorities:  map[string]int{"VI_1": 200},
	}
}

func TestWriteThenReadGivesTheSameState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lb1") // created by Write
	want := sample()
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	got, hb, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("read back (-wrote +read):\n%s", diff)
	}
	if time.Since(hb) > time.Minute {
		t.Errorf("heartbeat %v: want the write's time", hb)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	// Nothing but the state file is left behind (no temporary files).
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != FileName {
		t.Errorf("directory holds %v, want only %s", ents, FileName)
	}
}

func TestTouchMovesTheHeartbeatOnly(t *testing.T) {
	dir := t.TempDir()
	if err := Touch(dir, time.Now()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Touch without a file = %v, want ErrNotExist (the caller writes it)", err)
	}
	if err := Write(dir, sample()); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := Touch(dir, at); err != nil {
		t.Fatal(err)
	}
	f, hb, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !hb.Equal(at) {
		t.Errorf("heartbeat %v, want %v", hb, at)
	}
	if diff := cmp.Diff(sample(), f, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("Touch changed the content:\n%s", diff)
	}
}

func TestDecodeRefusesWhatItCannotTrust(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", "{", "state file"},
		{"other version", `{"version":2,"mode":"running"}`, "version 2"},
		{"unknown mode", `{"version":1,"mode":"sleeping"}`, `unknown mode "sleeping"`},
		{"nameless instance", `{"version":1,"mode":"running","instances":[{"state":"MASTER"}]}`, "has no name"},
		{"instance twice", `{"version":1,"mode":"running","instances":[{"name":"A"},{"name":"A"}]}`, "A twice"},
		{"VIP without device", `{"version":1,"mode":"running","instances":[{"name":"A","vips":[{"prefix":"10.0.0.1/32"}]}]}`, "VIP"},
		{"bad prefix", `{"version":1,"mode":"running","instances":[{"name":"A","vips":[{"prefix":"10.0.0.300/32","dev":"eth0"}]}]}`, "state file"},
		{"priority out of range", `{"version":1,"mode":"running","priorities":{"A":255}}`, "want 1..254"},
	} {
		_, err := Decode([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Decode = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestReadNamesTheFileInItsErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(Path(dir), []byte(`{"version":1,"mode":"nope"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Read(dir)
	if err == nil || !strings.Contains(err.Error(), Path(dir)) {
		t.Errorf("Read = %v, want the path in the error", err)
	}
	if _, _, err := Read(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of an empty directory = %v, want ErrNotExist", err)
	}
}

// FuzzDecode: whatever is in the file (a crash mid-write of another tool,
// a hand edit, a disk error), Decode returns an error or a state that
// passes its own checks and survives a round trip; it never panics.
func FuzzDecode(f *testing.F) {
	dir := f.TempDir()
	if err := Write(dir, sample()); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(Path(dir))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"version":1,"mode":"stopped"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := Decode(in)
		if err != nil {
			return
		}
		d := t.TempDir()
		if err := Write(d, st); err != nil {
			t.Fatalf("a decoded state does not write: %v", err)
		}
		again, _, err := Read(d)
		if err != nil {
			t.Fatalf("a decoded state does not read back: %v", err)
		}
		if len(again.Instances) != len(st.Instances) || again.Mode != st.Mode {
			t.Fatalf("round trip changed the state: %+v -> %+v", st, again)
		}
	})
}

func TestLockKeepsASecondVipdOut(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "in use by another vipd") {
		t.Errorf("second Lock = %v, want in use", err)
	}
	unlock()
	unlock2, err := Lock(dir, 0)
	if err != nil {
		t.Errorf("Lock after unlock: %v", err)
	} else {
		unlock2()
	}
}
