package keepalived

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipd/vipd/config"
)

// fixtureSeeds adds every fixture as a seed.
func fixtureSeeds(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.conf")
	more, _ := filepath.Glob("testdata/captures/*.conf")
	for _, p := range append(paths, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzLexer feeds arbitrary lines through decomment and splitLine: no panic,
// and every statement is either a brace or has words.
func FuzzLexer(f *testing.F) {
	fixtureSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, line := range strings.Split(string(src), "\n") {
			dl, _, _ := decomment(line)
			stmts, _ := splitLine(config.Pos{Line: 1}, dl)
			for _, s := range stmts {
				if (s.brace == 0) == (len(s.words) == 0) {
					t.Fatalf("statement %+v of %q is neither a brace nor words", s, line)
				}
			}
		}
	})
}

// FuzzParse parses arbitrary files, including themselves and each other
// through include: no panic, no hang, every diagnostic has a line.
func FuzzParse(f *testing.F) {
	fixtureSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		files := memFS{"/k/main.conf": string(src), "/k/other.conf": string(src) + "\ninclude main.conf\n"}
		opts := files.options()
		opts.Defines = map[string]string{"D": "x"}
		m, diags := ParseFile("/k/main.conf", opts)
		if m == nil {
			t.Fatal("nil model")
		}
		for _, d := range diags {
			if d.Pos.Line <= 0 && d.Pos.File != "/k/main.conf" {
				t.Fatalf("diagnostic without position: %s", d)
			}
		}
	})
}
