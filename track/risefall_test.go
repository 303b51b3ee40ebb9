package track

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runs is a sequence of script results: '+' success, '-' failure.
// states is the expected state after each run: 'O' OK, 'F' FAILED.
func TestRiseFallChangesStateOnlyAfterConsecutiveResults(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		initFail   bool
		runs       string
		states     string
		changes    string // '*' where observe reports a change
	}{
		{"first success decides at once", 1, 1, false, "+", "O", "*"},
		{"first failure decides at once", 1, 1, false, "-", "F", "*"},
		{"first success decides even with rise 3", 3, 3, false, "+--+", "OOOO", "*..."},
		{"first failure decides even with fall 3", 3, 3, false, "-++-+++", "FFFFFFO", "*.....*"},
		{"rise 1 fall 1 follows every result", 1, 1, false, "+-+-", "OFOF", "****"},
		{"flapping with rise 2 fall 2 never changes", 2, 2, false, "+-+-+-+", "OOOOOOO", "*......"},
		{"two failures make it FAILED, two successes OK", 2, 2, false, "+--++", "OOFFO", "*.*.*"},
		{"a success resets the fall count", 2, 3, false, "+--+--+---", "OOOOOOOOOF", "*........*"},
		{"a failure resets the rise count", 3, 1, false, "-++-+++", "FFFFFFO", "*.....*"},
		{"init_fail starts FAILED and needs rise successes", 2, 1, true, "+-++", "FFFO", "...*"},
		{"init_fail with rise 1 needs one success", 1, 1, true, "+", "O", "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rf := newRiseFall(tt.rise, tt.fall, tt.initFail)
			if tt.initFail && (!rf.known || rf.ok()) {
				t.Fatalf("init_fail: known=%v ok=%v, want known and FAILED", rf.known, rf.ok())
			}
			if !tt.initFail && rf.known {
				t.Fatal("a fresh script is known before its first run")
			}
			var states, changes strings.Builder
			for _, r := range tt.runs {
				ch := rf.observe(r == '+')
				if rf.ok() {
					states.WriteByte('O')
				} else {
					states.WriteByte('F')
				}
				if ch {
					changes.WriteByte('*')
				} else {
					changes.WriteByte('.')
				}
			}
			if states.String() != tt.states {
				t.Errorf("states = %s, want %s (runs %s)", states.String(), tt.states, tt.runs)
			}
			if changes.String() != tt.changes {
				t.Errorf("changes = %s, want %s (runs %s)", changes.String(), tt.changes, tt.runs)
			}
		})
	}
}

func TestStrtolReadsTheLeadingNumberLikeC(t *testing.T) {
	tests := []struct {
		in     string
		want   int
		wantOK bool
	}{
		{"", 0, true},
		{"0", 0, true},
		{"42", 42, true},
		{"42\n", 42, true},
		{"  \t-7 trailing words", -7, true},
		{"+5", 5, true},
		{"0x1f", 31, true},
		{"0X1F", 31, true},
		{"010", 8, true},
		{"09", 0, true}, // octal stops at 9
		{"0x", 0, true},
		{"0xg", 0, true},
		{"abc", 0, true},
		{"-", 0, true},
		{"12abc", 12, true},
		{"2147483647", 2147483647, true},
		{"2147483648", 2147483648, true}, // keepalived accepts INT32_MAX+1
		{"-2147483648", -2147483648, true},
		{"2147483649", 0, false},
		{"99999999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := strtol([]byte(tt.in))
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("strtol(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestReadTrackFileTreatsMissingAndEmptyAsZero(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	long := write("long", "17"+strings.Repeat(" ", 300)+"99")
	tests := []struct {
		name   string
		path   string
		want   int
		wantOK bool
		errs   bool
	}{
		{"missing file", filepath.Join(dir, "nope"), 0, true, false},
		{"empty file", write("empty", ""), 0, true, false},
		{"number", write("n", "-3\n"), -3, true, false},
		{"garbage", write("g", "down\n"), 0, true, false},
		{"only the first 127 bytes count", long, 17, true, false},
		{"out of range is ignored", write("big", "99999999999\n"), 0, false, false},
		{"a directory cannot be read", dir, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok, err := readTrackFile(tt.path)
			if (err != nil) != tt.errs {
				t.Fatalf("err = %v, want error %v", err, tt.errs)
			}
			if v != tt.want || ok != tt.wantOK {
				t.Errorf("readTrackFile = %d, %v; want %d, %v", v, ok, tt.want, tt.wantOK)
			}
		})
	}
}
