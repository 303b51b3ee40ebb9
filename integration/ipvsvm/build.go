package ipvsvm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goTool runs the go command in the module root with the environment of
// a static linux/amd64 build.
type goTool struct {
	bin  string // go
	root string // module root
}

func newGoTool() (*goTool, error) {
	bin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go command is needed to build the payload: %w", err)
	}
	out, err := exec.Command(bin, "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return nil, errors.New("not inside a Go module: payload packages are relative to the module root")
	}
	return &goTool{bin: bin, root: filepath.Dir(gomod)}, nil
}

func (g *goTool) run(args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(g.bin, args...)
	cmd.Dir = g.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// listedPackage is the part of go list -json the harness reads.
type listedPackage struct {
	ImportPath      string
	Dir             string
	Name            string
	Module          *struct{ Main bool }
	GoFiles         []string
	TestGoFiles     []string
	XTestGoFiles    []string
	EmbedFiles      []string
	TestEmbedFiles  []string
	XTestEmbedFiles []string
}

func (g *goTool) list(flags []string, pkgs ...string) ([]listedPackage, error) {
	args := append([]string{"list", "-json=ImportPath,Dir,Name,Module,GoFiles,TestGoFiles,XTestGoFiles,EmbedFiles,TestEmbedFiles,XTestEmbedFiles"}, flags...)
	out, err := g.run(append(args, pkgs...)...)
	if err != nil {
		return nil, err
	}
	var list []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: %w", err)
		}
		list = append(list, p)
	}
	return list, nil
}

// readSources reads every source file of the module's own packages among
// pkgs and their dependencies, test files included. The VM test's result
// depends on them, and go test caches a result with the files the test
// opened: without this, an edit to a payload package would not rerun the
// VM test.
func (g *goTool) readSources(tags string, pkgs []string) error {
	list, err := g.list([]string{"-deps", "-test", "-tags", tags}, pkgs...)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, p := range list {
		if p.Module == nil || !p.Module.Main || seen[p.Dir] {
			continue
		}
		seen[p.Dir] = true
		for _, group := range [][]string{p.GoFiles, p.TestGoFiles, p.XTestGoFiles, p.EmbedFiles, p.TestEmbedFiles, p.XTestEmbedFiles} {
			for _, f := range group {
				if _, err := os.ReadFile(filepath.Join(p.Dir, f)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stripped leaves the symbol table and DWARF out of the VM's binaries:
// they are most of the initramfs, which the emulated CPU decompresses at
// every boot. Go's own tables stay, so panics and goroutine dumps still
// name functions and lines.
const stripped = "-ldflags=-s -w"

// testBinary builds pkg's tests, statically and stripped, into out.
func (g *goTool) testBinary(tags, pkg, out string) error {
	_, err := g.run("test", "-c", "-tags", tags, stripped, "-o", out, pkg)
	if err != nil {
		return err
	}
	if _, err := os.Stat(out); err != nil {
		return fmt.Errorf("go test -c %s wrote no test binary (no test files with tags %s?)", pkg, tags)
	}
	return nil
}

// binary builds the command pkg, statically and stripped, into out.
func (g *goTool) binary(pkg, out string) error {
	_, err := g.run("build", stripped, "-o", out, pkg)
	return err
}
