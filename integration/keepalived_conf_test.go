package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/config/keepalived"
)

// The keepalived.conf fixtures of config/keepalived are checked against the
// reference: real keepalived must accept every good fixture (keepalived -t
// exits 0) and reject the broken one, and vipd's parser must agree.

const kcFixtures = "../config/keepalived/testdata"

// kcConfigID is the @id the fixtures' conditional lines are written for.
const kcConfigID = "node1"

func kcSkipUnlessRootWithKeepalived(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs these tests as root)")
	}
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived is not installed (CI installs the Debian package)")
	}
	return bin
}

// kcNamespace creates a namespace with veth interfaces eth0 and eth1 (the
// names the fixtures use) and removes it when the test ends.
func kcNamespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random namespace name: %v", err)
	}
	ns := "vipdkc-" + hex.EncodeToString(b)
	kcRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	for _, ifname := range []string{"eth0", "eth1"} {
		kcRun(t, "ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", ifname+"p")
		kcRun(t, "ip", "-n", ns, "link", "set", ifname, "up")
	}
	return ns
}

func kcRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// kcConfigTest runs keepalived -t on file inside ns, from "/" so that
// relative includes must resolve against the file's own directory.
func kcConfigTest(t *testing.T, bin, ns, file string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bin, "-t", "-i", kcConfigID, "-f", file)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("keepalived -t %s timed out", file)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("running keepalived -t %s: %v", file, err)
	}
	return 0, string(out)
}

func TestKeepalivedAcceptsTheGoodParserFixtures(t *testing.T) {
	bin := kcSkipUnlessRootWithKeepalived(t)
	ns := kcNamespace(t)
	good, err := filepath.Glob(filepath.Join(kcFixtures, "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	captures, err := filepath.Glob(filepath.Join(kcFixtures, "captures", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range append(good, captures...) {
		if filepath.Base(f) != "broken.conf" {
			files = append(files, f)
		}
	}
	if len(files) < 15 {
		t.Fatalf("found only %d fixtures in %s", len(files), kcFixtures)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			abs, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			if code, out := kcConfigTest(t, bin, ns, abs); code != 0 {
				t.Errorf("keepalived -t exit %d, want 0:\n%s", code, out)
			}
			_, diags := keepalived.ParseFile(abs, keepalived.Options{ConfigIDs: []string{kcConfigID}})
			if err := diags.Err(); err != nil {
				t.Errorf("vipd rejects a file keepalived accepts:\n%v", err)
			}
		})
	}
}

func TestKeepalivedRejectsTheBrokenParserFixture(t *testing.T) {
	bin := kcSkipUnlessRootWithKeepalived(t)
	ns := kcNamespace(t)
	abs, err := filepath.Abs(filepath.Join(kcFixtures, "broken.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if code, out := kcConfigTest(t, bin, ns, abs); code == 0 {
		t.Errorf("keepalived -t accepted broken.conf:\n%s", out)
	}
	_, diags := keepalived.ParseFile(abs, keepalived.Options{ConfigIDs: []string{kcConfigID}})
	if len(diags.Errors()) == 0 {
		t.Error("vipd accepted broken.conf")
	}
}
