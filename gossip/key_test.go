package gossip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		keyLen  int    // > 0: accepted with a key this long
		want    string // else the error says this
	}{
		{"16 bytes", "MDEyMzQ1Njc4OWFiY2RlZg==", 0o600, 16, ""},
		{"24 bytes with whitespace", "  MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\n\n", 0o400, 24, ""},
		{"32 bytes", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", 0o600, 32, ""},
		{"readable by group", "MDEyMzQ1Njc4OWFiY2RlZg==", 0o640, 0, "mode 0640"},
		{"writable by others", "MDEyMzQ1Njc4OWFiY2RlZg==", 0o602, 0, "mode 0602"},
		{"not base64", "not a key!", 0o600, 0, "not base64"},
		{"10 bytes", "MDEyMzQ1Njc4OQ==", 0o600, 0, "key of 10 bytes"},
		{"empty", "\n", 0o600, 0, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			key, err := readKeyFile(p)
			if tc.keyLen > 0 {
				if err != nil || len(key) != tc.keyLen {
					t.Errorf("key of %d bytes, %v: want %d bytes", len(key), err, tc.keyLen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %v: want one naming %s and saying %q", err, p, tc.want)
			}
		})
	}
}
