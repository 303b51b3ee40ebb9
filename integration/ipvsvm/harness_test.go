package ipvsvm

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpioEntry is one entry read back by readCpio.
type cpioEntry struct {
	name         string
	mode         uint32
	rmajor, rmin uint32
	data         string
}

// readCpio is a minimal newc reader, strict about magic, padding and the
// trailer.
func readCpio(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("entry at offset %d: not 4-byte aligned", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("offset %d: magic %q", off, h[:6])
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(v)
		}
		mode, size, rmajor, rminor, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(namesize)-1])
		if b[off+110+int(namesize)-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		off += 110 + int(namesize)
		off = (off + 3) &^ 3
		data := string(b[off : off+int(size)])
		off += int(size)
		off = (off + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name, mode, rmajor, rminor, data})
	}
}

func TestInitramfsIsNewcCpio(t *testing.T) {
	host := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(host, []byte("#!/bin/sh\necho hi\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	im := newImage()
	for _, err := range []error{
		im.bytes("/init", 0o755, []byte("#!/bin/sh\n")),
		im.bytes("/a/b/c.txt", 0o644, []byte("abc")), // parents made
		im.copyFile("/usr/bin/prog", host),
		im.symlink("/bin/sh", "busybox"),
		im.charDev("/dev/console", 0o600, 5, 1),
		im.dir("/tmp", 0o1777),
		im.bytes("/empty", 0o644, nil),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := im.bytes("/init", 0o755, nil); err == nil || !strings.Contains(err.Error(), "added twice") {
		t.Fatalf("a second /init: %v", err)
	}
	if err := im.bytes("relative", 0o644, nil); err == nil {
		t.Fatal("a relative path: no error")
	}
	if err := im.bytes("/init/x", 0o644, nil); err == nil {
		t.Fatal("a file under a file: no error")
	}
	var gz bytes.Buffer
	if err := im.writeGzip(&gz); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range readCpio(t, raw) {
		got = append(got, fmt.Sprintf("%s %06o %d,%d %q", e.name, e.mode, e.rmajor, e.rmin, e.data))
	}
	want := []string{
		`a 040755 0,0 ""`,
		`a/b 040755 0,0 ""`,
		`a/b/c.txt 100644 0,0 "abc"`,
		`bin 040755 0,0 ""`,
		`bin/sh 120777 0,0 "busybox"`,
		`dev 040755 0,0 ""`,
		`dev/console 020600 5,1 ""`,
		`empty 100644 0,0 ""`,
		`init 100755 0,0 "#!/bin/sh\n"`,
		`tmp 041777 0,0 ""`,
		`usr 040755 0,0 ""`,
		`usr/bin 040755 0,0 ""`,
		`usr/bin/prog 100750 0,0 "#!/bin/sh\necho hi\n"`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestModulesLoadAfterTheirDependencies(t *testing.T) {
	dep, err := readModulesDep(strings.NewReader(`
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz kernel/net/netfilter/nf_conntrack.ko.xz kernel/lib/libcrc32c.ko.xz
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
kernel/a.ko: kernel/b.ko
kernel/b.ko: kernel/a.ko
kernel/c.ko: kernel/missing.ko
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := dep.loadOrder([]string{"kernel/crypto/crc32c_generic.ko", "kernel/net/netfilter/ipvs/ip_vs_rr.ko", "kernel/net/netfilter/ipvs/ip_vs.ko"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/crypto/crc32c_generic.ko",
		"kernel/lib/libcrc32c.ko",
		"kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko",
		"kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko",
		"kernel/net/netfilter/nf_conntrack.ko",
		"kernel/net/netfilter/ipvs/ip_vs.ko",
		"kernel/net/netfilter/ipvs/ip_vs_rr.ko",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("load order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := dep.loadOrder([]string{"kernel/a.ko"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := dep.loadOrder([]string{"kernel/c.ko"}); err == nil || !strings.Contains(err.Error(), "kernel/missing.ko (needed by kernel/c.ko) is not listed") {
		t.Errorf("missing dependency: %v", err)
	}
}

func TestCompareKernelVersions(t *testing.T) {
	sorted := []string{"5.10.0-30-amd64", "6.1.0-9-amd64", "6.1.0-57-amd64", "6.1.0-101-amd64", "6.12.1-amd64", "6.12.1-amd64-rt"}
	for i := range sorted {
		for j := range sorted {
			c := compareVersions(sorted[i], sorted[j])
			if (i < j && c >= 0) || (i > j && c <= 0) || (i == j && c != 0) {
				t.Errorf("compareVersions(%s, %s) = %d", sorted[i], sorted[j], c)
			}
		}
	}
}

// fakeKernels makes /boot and /lib/modules with the given kernels, those in
// withIPVS having an ip_vs module.
func fakeKernels(t *testing.T, all []string, withIPVS ...string) {
	t.Helper()
	root := t.TempDir()
	bootDir, modulesDir = filepath.Join(root, "boot"), filepath.Join(root, "modules")
	t.Cleanup(func() { bootDir, modulesDir = "/boot", "/lib/modules" })
	for _, v := range all {
		mustWrite(t, filepath.Join(bootDir, "vmlinuz-"+v), "kernel")
		mustWrite(t, filepath.Join(modulesDir, v, "modules.dep"), "")
	}
	for _, v := range withIPVS {
		mustWrite(t, filepath.Join(modulesDir, v, ipvsModuleDir, "ip_vs.ko.xz"), "module")
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindKernelPicksTheNewestWithIPVS(t *testing.T) {
	t.Setenv(EnvKernel, "")
	fakeKernels(t, []string{"6.1.0-9-amd64", "6.1.0-57-amd64", "6.12.1-cloud-amd64"}, "6.1.0-9-amd64", "6.1.0-57-amd64")
	k, err := findKernel()
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-57-amd64" || k.Image != filepath.Join(bootDir, "vmlinuz-6.1.0-57-amd64") || k.Modules != filepath.Join(modulesDir, "6.1.0-57-amd64") {
		t.Fatalf("picked %+v", k)
	}

	t.Setenv(EnvKernel, "6.1.0-9-amd64")
	if k, err := findKernel(); err != nil || k.Version != "6.1.0-9-amd64" {
		t.Fatalf("%s=6.1.0-9-amd64: %+v %v", EnvKernel, k, err)
	}
	t.Setenv(EnvKernel, filepath.Join(bootDir, "vmlinuz-6.1.0-9-amd64"))
	if k, err := findKernel(); err != nil || k.Version != "6.1.0-9-amd64" {
		t.Fatalf("%s=<path>: %+v %v", EnvKernel, k, err)
	}
	t.Setenv(EnvKernel, "6.12.1-cloud-amd64")
	if _, err := findKernel(); err == nil || !strings.Contains(err.Error(), "no ip_vs module") {
		t.Fatalf("a kernel without IPVS chosen by %s: %v", EnvKernel, err)
	}
}

func TestFindKernelSaysWhyNot(t *testing.T) {
	t.Setenv(EnvKernel, "")
	fakeKernels(t, nil)
	if _, err := findKernel(); err == nil || !strings.Contains(err.Error(), "no kernel image") {
		t.Errorf("no kernel: %v", err)
	}
	fakeKernels(t, []string{"6.12.1-cloud-amd64"})
	if _, err := findKernel(); err == nil || !strings.Contains(err.Error(), "no kernel with IPVS modules") {
		t.Errorf("no kernel with IPVS: %v", err)
	}
}

func TestParseLdd(t *testing.T) {
	got, err := parseLdd(`	linux-vdso.so.1 (0x00007ffd0a3f2000)
	libpopt.so.0 => /lib/x86_64-linux-gnu/libpopt.so.0 (0x00007f354840d000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f35481cb000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f354840d000)
`)
	want := []string{"/lib/x86_64-linux-gnu/libpopt.so.0", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("parseLdd = %v, %v", got, err)
	}
	if _, err := parseLdd("\tlibnl-3.so.200 => not found\n"); err == nil {
		t.Fatal("a library not found: no error")
	}
}

func TestInitScript(t *testing.T) {
	s := initScript(initConfig{
		marker:   "IPVSVM-0001",
		kernel:   "6.1.0-57-amd64",
		modules:  []string{"kernel/lib/libcrc32c.ko", "kernel/net/netfilter/ipvs/ip_vs.ko"},
		env:      map[string]string{"B": "it's", "A": "$x"},
		args:     []string{"-test.v", "-test.run=^Test A$"},
		binaries: []payloadBinary{{"example.com/a", "a"}, {"example.com/b", "b"}},
	})
	for _, want := range []string{
		"export A='$x'\nexport B='it'\\''s'\n",
		"\t'kernel/lib/libcrc32c.ko' \\\n\t'kernel/net/netfilter/ipvs/ip_vs.ko' \\\n",
		"cd '/payload/a' && ./a.test '-test.v' '-test.run=^Test A$' >$R 2>&1\nsay END a exit=$? uptime=$(up)\n",
		"say BEGIN b",
		"say DONE",
		"poweroff -f",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q:\n%s", want, s)
		}
	}
}

func TestParseResults(t *testing.T) {
	v := &vm{marker: "IPVSVM-0001", modules: []string{"m1", "m2"}}
	rep := &Report{Results: []*Result{{Package: "example.com/a", Name: "a", ExitCode: -1}, {Package: "example.com/b", Name: "b", ExitCode: -1}}}
	st := v.parse(strings.ReplaceAll(`IPVSVM-0001 INIT uptime=1.50 kernel=6.1.0-57-amd64
IPVSVM-0001 MODULE-FAILED m2
IPVSVM-0001 MODULES loaded=1
IPVSVM-0001 BEGIN a uptime=2.00
=== RUN   TestX
--- PASS: TestX (0.00s)
=== RUN   TestY
    --- SKIP: TestY/sub (0.00s)
--- FAIL: TestY (0.10s)
FAIL
IPVSVM-0001 END a exit=1 uptime=3.25
IPVSVM-0001 BEGIN b uptime=3.30
=== RUN   TestZ
`, "\n", "\r\n")+"panic: halfIPVSVM-0001 END b exit=2 uptime=4.00\r\n", rep)
	a, b := rep.Results[0], rep.Results[1]
	if a.ExitCode != 1 || a.Duration != 1250*time.Millisecond || a.Status("TestX") != "PASS" || a.Status("TestY") != "FAIL" || a.Status("TestY/sub") != "SKIP" || !strings.HasPrefix(a.Output, "=== RUN   TestX\n") {
		t.Errorf("a: %+v", a)
	}
	if b.ExitCode != 2 || b.Output != "=== RUN   TestZ\npanic: half\n" {
		t.Errorf("b: %+v", b)
	}
	if !st.init || !st.modules || st.done || !slices.Equal(st.moduleFailures, []string{"m2"}) || !slices.Equal(rep.Modules, []string{"m1"}) {
		t.Errorf("state %+v, modules %v", st, rep.Modules)
	}
	if got := st.stage(); got != "/init was between test binaries" {
		t.Errorf("stage %q", got)
	}
}
