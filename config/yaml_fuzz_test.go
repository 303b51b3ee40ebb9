package config

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeYAML: no input makes the YAML path panic, and whatever decodes
// without errors survives Normalize, Validate, EncodeYAML and a second
// DecodeYAML unchanged. The seed corpus is in testdata/fuzz/FuzzDecodeYAML.
func FuzzDecodeYAML(f *testing.F) {
	if b, err := os.ReadFile("../deploy/examples/vipd.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("instances:\n  - name: A\n    virtual_ipaddress: [10.0.0.1/24 dev eth0]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ds := DecodeYAML("fuzz.yaml", data)
		if m == nil {
			if ds.Err() == nil {
				t.Fatal("nil model without an error")
			}
			return
		}
		Normalize(m)
		Validate(m, ValidateOptions{InterfaceExists: func(string) bool { return false }})
		out, err := EncodeYAML(m)
		if err != nil {
			t.Fatalf("EncodeYAML: %v", err)
		}
		if ds.Err() != nil {
			return
		}
		m2, ds2 := DecodeYAML("again.yaml", out)
		if ds2.Err() != nil {
			t.Fatalf("decoding our own output: %v\n%s", ds2, out)
		}
		Normalize(m2)
		if diff := cmp.Diff(m, m2, ignorePos); diff != "" {
			t.Fatalf("encode/decode changed the model (-first +second):\n%s\nYAML:\n%s", diff, out)
		}
	})
}
