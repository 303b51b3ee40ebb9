//go:build ipvsvm

// Package vmcheck checks, inside the VM, what integration/ipvsvm promises a
// payload: root, the environment, files, binaries, testdata, arguments,
// loaded IPVS modules and a working ipvsadm.
package vmcheck

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var arg = flag.String("vmcheck.arg", "", "set by the harness's Payload.Args")

func TestRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("uid %d, want root", os.Geteuid())
	}
	if os.Getenv("VIPD_IPVSVM") != "1" {
		t.Fatalf("VIPD_IPVSVM=%q", os.Getenv("VIPD_IPVSVM"))
	}
}

func TestEnv(t *testing.T) {
	if got, want := os.Getenv("VMCHECK_QUOTED"), `it's "quoted" $HOME`; got != want {
		t.Fatalf("VMCHECK_QUOTED=%q, want %q", got, want)
	}
}

func TestArgs(t *testing.T) {
	if *arg != "two words" {
		t.Fatalf("-vmcheck.arg=%q", *arg)
	}
}

func TestFiles(t *testing.T) {
	b, err := os.ReadFile("/etc/vmcheck/config.txt")
	if err != nil || string(b) != "config\n" {
		t.Fatalf("config.txt: %q %v", b, err)
	}
	st, err := os.Stat("/etc/vmcheck/config.txt")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.txt mode: %v %v", st.Mode(), err)
	}
	b, err = os.ReadFile("/etc/hosts")
	if err != nil || string(b) != "127.0.0.1 localhost vmcheck\n" {
		t.Fatalf("/etc/hosts (replaced by the payload): %q %v", b, err)
	}
	b, err = os.ReadFile("/srv/tree/sub/leaf.txt")
	if err != nil || string(b) != "leaf\n" {
		t.Fatalf("tree/sub/leaf.txt: %q %v", b, err)
	}
}

func TestBinary(t *testing.T) {
	out, err := exec.Command("/usr/local/bin/hello").CombinedOutput()
	if err != nil || string(out) != "hello from the VM\n" {
		t.Fatalf("hello: %q %v", out, err)
	}
}

func TestTestdata(t *testing.T) {
	wd, _ := os.Getwd()
	if filepath.Base(wd) != "integration_ipvsvm_testdata_vmcheck" {
		t.Fatalf("working directory %s", wd)
	}
	b, err := os.ReadFile("testdata/data.txt")
	if err != nil || string(b) != "data\n" {
		t.Fatalf("testdata/data.txt: %q %v", b, err)
	}
}

func TestIPVS(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Fatalf("ip_vs not loaded: %v", err)
	}
	out, err := exec.Command("ipvsadm", "-Ln").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "IP Virtual Server version") {
		t.Fatalf("ipvsadm -Ln: %v %s", err, out)
	}
}
