package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// buildDirPrefix names the temporary directories BuildVipd builds into: the pid of the test
// binary follows, so Sweep can remove those of dead processes.
const buildDirPrefix = "vipd-lab-build-"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BuildVipd returns the path of a vipd binary for the tests. With VIPD_BIN set (make test sets it
// to the freshly built bin/vipd) it returns that; otherwise it builds ./cmd/vipd once per test
// binary into a temporary directory. A failed build fails the test with the compiler's output.
func BuildVipd(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("VIPD_BIN"); p != "" {
			abs, err := filepath.Abs(p)
			if err == nil {
				_, err = os.Stat(abs)
			}
			if err != nil {
				buildErr = fmt.Errorf("VIPD_BIN=%s: %w", p, err)
				return
			}
			buildPath = abs
			return
		}
		goTool, err := lookGo()
		if err != nil {
			buildErr = err
			return
		}
		dir := filepath.Join(os.TempDir(), buildDirPrefix+strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = fmt.Errorf("building vipd: %w", err)
			return
		}
		out := filepath.Join(dir, "vipd")
		cmd := exec.Command(goTool, "build", "-o", out, "github.com/vipd/vipd/cmd/vipd")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/vipd: %w\n%s", err, b)
			return
		}
		buildPath = out
	})
	if buildErr != nil {
		t.Fatalf("lab: %v", buildErr)
	}
	return buildPath
}

// lookGo finds the go command: on PATH, else the usual install location.
func lookGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/local/go/bin/go", "/usr/lib/go/bin/go"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("go command not found on PATH nor in /usr/local/go/bin")
}

// Keepalived returns the path of the keepalived binary, or skips the test when it is not
// installed (scripts/deps.sh installs it; CI always has it).
func Keepalived(t testing.TB) string {
	t.Helper()
	p, err := lookPath("keepalived")
	if err != nil {
		t.Skipf("lab: keepalived not installed (run scripts/deps.sh): %v", err)
	}
	return p
}

// sweepBuildDirs removes BuildVipd directories of test binaries that are gone.
func sweepBuildDirs() {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		pidStr, ok := strings.CutPrefix(e.Name(), buildDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
	}
}
