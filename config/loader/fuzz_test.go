package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vipd/vipd/config/keepalived"
)

// FuzzLoadKeepalived runs parse, Normalize and Validate on any input: since
// validation also runs after syntax errors, it must cope with whatever a
// half-parsed file leaves in the model.
func FuzzLoadKeepalived(f *testing.F) {
	files, _ := filepath.Glob("../keepalived/testdata/*.conf")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("vrrp_instance A {\n virtual_router_id 300\n track_script { x }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		read := func(string) ([]byte, error) { return src, nil }
		glob := func(string) ([]string, error) { return nil, nil }
		Load("k.conf", Options{InterfaceExists: func(string) bool { return true },
			Keepalived: keepalived.Options{ReadFile: read, Glob: glob}})
	})
}
