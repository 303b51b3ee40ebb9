// Package ipvsvm runs Go tests on a kernel with IPVS when the host's has
// none: it boots Debian's kernel (from /boot, with its ip_vs modules from
// /lib/modules) in qemu under TCG emulation, from an initramfs it builds
// itself (busybox, the IPVS modules and their dependencies, ipvsadm and its
// libraries, the payload), and reports each test binary's output and exit
// status.
//
// It owns the VM: finding the kernel, the initramfs (its own cpio writer),
// the /init script, qemu, the serial lines and their markers. It does not
// know what the tests test; the payloads are ordinary Go test packages
// built with the build tag "ipvsvm" (see Payload). The host's network and
// devices are never touched: the VM has no network device.
//
// The VM: one CPU, 512 MiB, no network device (lo only, up), a serial
// console. /init mounts proc, sysfs and devtmpfs, loads crc32c_generic,
// veth and every module of kernel/net/netfilter/ipvs with their
// dependencies (modules.dep order, as modprobe would), then runs each test
// binary as root and powers off. It has busybox (its ip, modprobe, ...),
// ipvsadm and what the payload brings; not iproute2, nftables or
// keepalived.
//
// A harness that cannot boot fails the test with the reason (no qemu, no
// readable kernel image, no ip_vs modules, a boot timeout, a kernel panic,
// a missing result); it never skips. qemu needs no root (some
// distributions make kernel images readable by root only).
package ipvsvm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables.
const (
	// EnvKernel picks the kernel: a version ("6.1.0-57-amd64", image
	// /boot/vmlinuz-<version>, modules /lib/modules/<version>) or an image
	// path ending in vmlinuz-<version>. Default: the newest kernel in /boot
	// that has IPVS modules.
	EnvKernel = "VIPD_IPVSVM_KERNEL"
	// EnvTimeout bounds one VM run, boot to power-off, as a Go duration
	// ("6m"), when Payload.Timeout is 0.
	EnvTimeout = "VIPD_IPVSVM_TIMEOUT"
	// EnvQemu is the qemu binary; default qemu-system-x86_64 on PATH.
	EnvQemu = "VIPD_IPVSVM_QEMU"
	// EnvInVM is set to "1" for the tests inside the VM: a test that
	// changes the kernel's IPVS table checks it before it does.
	EnvInVM = "VIPD_IPVSVM"
)

// BuildTag is the build tag of the test files that run in the VM.
const BuildTag = "ipvsvm"

// DefaultTimeout is the boot-to-power-off bound: TCG on a loaded 2-core CI
// machine is slow (a boot takes about 4 s when idle).
const DefaultTimeout = 4 * time.Minute

// Payload is what runs in one VM.
type Payload struct {
	// Packages are the Go packages whose tests run in the VM, one test
	// binary each, in this order: import paths, or paths relative to the
	// module root ("./lvs/ipvs"). Each is built with CGO_ENABLED=0 go test
	// -c -tags ipvsvm (and Tags) -ldflags='-s -w' (no symbol table nor
	// DWARF: a smaller initramfs boots faster; panics and -test.timeout
	// still print function names and lines), runs as root with -test.v in
	// /payload/<name> (the package's testdata directory is copied there),
	// and must exit 0.
	Packages []string
	// Tags are build tags added to "ipvsvm" for the packages and binaries.
	Tags []string
	// Args are added to every test binary's command line ("-test.run=^TestX$").
	Args []string
	// Env is the environment of the tests in the VM, added to PATH, HOME,
	// TMPDIR and VIPD_IPVSVM=1.
	Env map[string]string
	// Binaries are Go commands built statically (CGO_ENABLED=0 go build
	// -ldflags='-s -w') and installed in the VM: path in the VM to package
	// ({"/usr/sbin/vipd": "./cmd/vipd"}).
	Binaries map[string]string
	// Files are host files or directories copied into the VM: path in the
	// VM to host path. Permission bits are kept.
	Files map[string]string
	// Timeout bounds the VM run, from qemu's start to its exit; 0:
	// $VIPD_IPVSVM_TIMEOUT or DefaultTimeout. Each test binary gets
	// -test.timeout of three quarters of it, so that a hung test still
	// prints its goroutines.
	Timeout time.Duration
	// MemoryMB is the VM's memory; 0: 512.
	MemoryMB int
}

// Result is one test binary's run in the VM.
type Result struct {
	Package  string        // import path
	Name     string        // binary name: /payload/<Name>/<Name>.test
	ExitCode int           // -1: no result marker
	Output   string        // everything the binary wrote
	Duration time.Duration // in the VM's clock
	Tests    []TestResult  // the "--- PASS/FAIL/SKIP" lines, subtests included
}

// TestResult is one "--- PASS: TestName (0.01s)" line.
type TestResult struct {
	Name   string // "TestX" or "TestX/sub"
	Status string // PASS, FAIL or SKIP
}

// Status is a test's status, "" if it did not report one.
func (r *Result) Status(test string) string {
	for _, tr := range r.Tests {
		if tr.Name == test {
			return tr.Status
		}
	}
	return ""
}

// Report is one VM run.
type Report struct {
	Kernel     string    // version booted
	Modules    []string  // modules loaded, in order
	Results    []*Result // one per package, in Payload order
	Console    string    // the serial console: kernel messages and /init's
	ResultsLog string    // the second serial port: markers and the binaries' output
	Initramfs  int64     // bytes, compressed
	Build      time.Duration
	Init       time.Duration // qemu started to /init running
	Done       time.Duration // qemu started to the last result
	Exit       time.Duration // qemu started to qemu gone
}

// Result is the result of the package (import path or as given in
// Payload.Packages), nil if it has none.
func (r *Report) Result(pkg string) *Result {
	for _, res := range r.Results {
		if res.Package == pkg || res.Name == binaryName(pkg) {
			return res
		}
	}
	return nil
}

// Run builds p, boots it and returns the report when every test binary
// exited 0 having run at least one test. Otherwise it fails t (never skips)
// with the reason, logging the console and each binary's output, which
// are also written to t.ArtifactDir(). It logs the boot and run times.
func Run(t testing.TB, p Payload) *Report {
	t.Helper()
	ctx := t.Context()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-15*time.Second))
			defer cancel()
		}
	}
	rep, err := Boot(ctx, p, t.TempDir())
	if rep != nil {
		dir := t.ArtifactDir()
		_ = os.WriteFile(filepath.Join(dir, "console.log"), []byte(rep.Console), 0o644)
		_ = os.WriteFile(filepath.Join(dir, "results.log"), []byte(rep.ResultsLog), 0o644)
	}
	if err != nil {
		logReport(t, rep)
		t.Fatalf("ipvsvm: %v", err)
	}
	t.Logf("ipvsvm: %s", rep.Timing())
	failed := false
	for _, r := range rep.Results {
		var bad []string
		for _, tr := range r.Tests {
			if tr.Status == "FAIL" {
				bad = append(bad, tr.Name)
			}
		}
		switch {
		case r.ExitCode != 0:
			t.Errorf("ipvsvm: %s: exit status %d; failed: %s", r.Package, r.ExitCode, strings.Join(bad, " "))
			failed = true
		case len(bad) > 0:
			t.Errorf("ipvsvm: %s: exit status 0 but failed: %s", r.Package, strings.Join(bad, " "))
			failed = true
		case len(r.Tests) == 0:
			t.Errorf("ipvsvm: %s: no test ran (no --- PASS line)", r.Package)
			failed = true
		}
	}
	if failed {
		logReport(t, rep)
		t.FailNow()
	}
	return rep
}

func logReport(t testing.TB, rep *Report) {
	t.Helper()
	if rep == nil {
		return
	}
	t.Logf("ipvsvm: serial console:\n%s", rep.Console)
	begun := false
	for _, r := range rep.Results {
		if r.Output != "" {
			begun = true
			t.Logf("ipvsvm: %s (exit %d):\n%s", r.Package, r.ExitCode, r.Output)
		}
	}
	if !begun && rep.ResultsLog != "" {
		t.Logf("ipvsvm: second serial port:\n%s", rep.ResultsLog)
	}
}

// Timing is one line: build time, boot to /init, to the results, to exit.
func (r *Report) Timing() string {
	var per []string
	for _, res := range r.Results {
		per = append(per, fmt.Sprintf("%s %.1fs", res.Name, res.Duration.Seconds()))
	}
	return fmt.Sprintf("kernel %s, initramfs %.1f MiB, payload and initramfs built in %.1fs; qemu start to /init %.1fs, to the last result %.1fs (%s), to exit %.1fs",
		r.Kernel, float64(r.Initramfs)/(1<<20), r.Build.Seconds(), r.Init.Seconds(), r.Done.Seconds(), strings.Join(per, ", "), r.Exit.Seconds())
}

// Boot builds p in dir, runs the VM and collects the results. The error
// says why the VM did not produce a result for every package; the report
// (nil only when nothing was built) carries what there is.
func Boot(ctx context.Context, p Payload, dir string) (*Report, error) {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
		if v := os.Getenv(EnvTimeout); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s=%q: want a positive Go duration such as 6m", EnvTimeout, v)
			}
			timeout = d
		}
	}
	if len(p.Packages) == 0 {
		return nil, errors.New("payload without packages")
	}
	qemu := os.Getenv(EnvQemu)
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	qemuPath, err := exec.LookPath(qemu)
	if err != nil {
		return nil, fmt.Errorf("%s not found (Debian: apt-get install qemu-system-x86; scripts/deps.sh installs it): %w", qemu, err)
	}
	k, err := findKernel()
	if err != nil {
		return nil, err
	}

	start := time.Now()
	vm, err := build(p, k, dir, timeout)
	if err != nil {
		return nil, err
	}
	rep := &Report{Kernel: k.Version, Initramfs: vm.size, Build: time.Since(start)}
	for _, b := range vm.binaries {
		rep.Results = append(rep.Results, &Result{Package: b.pkg, Name: b.name, ExitCode: -1})
	}
	err = vm.run(ctx, qemuPath, k, timeout, p.MemoryMB, rep)
	return rep, err
}

// payloadBinary is one test binary in the VM.
type payloadBinary struct {
	pkg  string // import path
	name string
}

// vm is a built VM, ready to boot.
type vm struct {
	dir      string
	initrd   string
	size     int64
	marker   string
	modules  []string // in load order
	binaries []payloadBinary
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func binaryName(importPath string) string {
	s := strings.TrimPrefix(importPath, "./")
	s = strings.TrimPrefix(s, modulePathPrefix)
	return strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(s)
}

// modulePathPrefix is trimmed from import paths to name binaries.
const modulePathPrefix = "github.com/vipd/vipd/"

func build(p Payload, k kernel, dir string, timeout time.Duration) (*vm, error) {
	g, err := newGoTool()
	if err != nil {
		return nil, err
	}
	tags := strings.Join(append([]string{BuildTag}, p.Tags...), ",")
	pkgs, err := g.list([]string{"-tags", tags}, p.Packages...)
	if err != nil {
		return nil, err
	}
	if len(pkgs) != len(p.Packages) {
		return nil, fmt.Errorf("packages %v are %d packages, want one each", p.Packages, len(pkgs))
	}
	// The binaries' sources too: an edit to vipd (or to a helper command)
	// must rerun the VM test as well.
	sourcePkgs := slices.Clone(p.Packages)
	for _, vmPath := range sortedKeys(p.Binaries) {
		sourcePkgs = append(sourcePkgs, p.Binaries[vmPath])
	}
	if err := g.readSources(tags, sourcePkgs); err != nil {
		return nil, err
	}
	nonce := make([]byte, 4)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	v := &vm{dir: dir, marker: "IPVSVM-" + hex.EncodeToString(nonce)}
	im := newImage()
	if err := baseImage(im); err != nil {
		return nil, err
	}
	modules, err := addModules(im, k)
	if err != nil {
		return nil, err
	}
	v.modules = modules
	names := map[string]bool{}
	for _, pkg := range pkgs {
		name := binaryName(pkg.ImportPath)
		if names[name] {
			return nil, fmt.Errorf("package %s given twice", pkg.ImportPath)
		}
		names[name] = true
		out := filepath.Join(dir, name+".test")
		if err := g.testBinary(tags, pkg.ImportPath, out); err != nil {
			return nil, err
		}
		if err := im.copyFile("/payload/"+name+"/"+name+".test", out); err != nil {
			return nil, err
		}
		if st, err := os.Stat(filepath.Join(pkg.Dir, "testdata")); err == nil && st.IsDir() {
			if err := im.copyFile("/payload/"+name+"/testdata", filepath.Join(pkg.Dir, "testdata")); err != nil {
				return nil, err
			}
		}
		v.binaries = append(v.binaries, payloadBinary{pkg: pkg.ImportPath, name: name})
	}
	// The payload's binaries and files may replace the base system's files
	// (/etc/hosts, say), not /init.
	for i, vmPath := range sortedKeys(p.Binaries) {
		out := filepath.Join(dir, "bin", strconv.Itoa(i), path.Base(vmPath))
		if err := g.binary(p.Binaries[vmPath], out); err != nil {
			return nil, err
		}
		im.removeFile(vmPath)
		if err := im.copyFile(vmPath, out); err != nil {
			return nil, fmt.Errorf("binary %s: %w", vmPath, err)
		}
	}
	for _, vmPath := range sortedKeys(p.Files) {
		if _, inBinaries := p.Binaries[vmPath]; !inBinaries {
			im.removeFile(vmPath)
		}
		if err := im.copyFile(vmPath, p.Files[vmPath]); err != nil {
			return nil, fmt.Errorf("file %s: %w", vmPath, err)
		}
	}
	for _, name := range sortedKeys(p.Env) {
		if !envName.MatchString(name) {
			return nil, fmt.Errorf("environment variable name %q", name)
		}
	}
	script := initScript(initConfig{
		marker:   v.marker,
		kernel:   k.Version,
		modules:  modules,
		env:      p.Env,
		args:     append([]string{"-test.v", "-test.timeout=" + (timeout * 3 / 4).Round(time.Second).String()}, p.Args...),
		binaries: v.binaries,
	})
	if err := im.bytes("/init", 0o755, []byte(script)); err != nil {
		return nil, err
	}
	v.initrd = filepath.Join(dir, "initramfs.cpio.gz")
	f, err := os.Create(v.initrd)
	if err != nil {
		return nil, err
	}
	if err := im.writeGzip(f); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	st, err := os.Stat(v.initrd)
	if err != nil {
		return nil, err
	}
	v.size = st.Size()
	return v, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// baseImage is the VM's system: directories, the console device,
// busybox, ipvsadm with its libraries, /etc basics.
func baseImage(im *image) error {
	for _, d := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/proc", "/sys", "/dev", "/run", "/root", "/etc", "/payload"} {
		if err := im.dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := im.dir("/tmp", 0o1777); err != nil {
		return err
	}
	// The kernel opens /dev/console for /init before devtmpfs is mounted.
	if err := im.charDev("/dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox not found (Debian: apt-get install busybox-static): %w", err)
	}
	static, err := isStatic(busybox)
	if err != nil {
		return fmt.Errorf("busybox %s: %w", busybox, err)
	}
	if !static {
		return fmt.Errorf("%s is dynamically linked: the VM needs a static busybox (Debian: apt-get install busybox-static)", busybox)
	}
	if err := im.copyFile("/bin/busybox", busybox); err != nil {
		return err
	}
	if err := im.symlink("/bin/sh", "busybox"); err != nil {
		return err
	}
	ipvsadm, err := exec.LookPath("ipvsadm")
	if err != nil {
		ipvsadm = "/usr/sbin/ipvsadm"
		if _, err := os.Stat(ipvsadm); err != nil {
			return fmt.Errorf("ipvsadm not found (Debian: apt-get install ipvsadm): %w", err)
		}
	}
	if err := im.copyFile("/usr/sbin/ipvsadm", ipvsadm); err != nil {
		return err
	}
	libs, err := sharedLibs(ipvsadm)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := im.copyFile(l, l); err != nil && !strings.Contains(err.Error(), "added twice") {
			return fmt.Errorf("library of ipvsadm: %w", err)
		}
	}
	etc := map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"/etc/group":  "root:x:0:\n",
		"/etc/hosts":  "127.0.0.1 localhost\n::1 localhost\n",
	}
	for _, p := range sortedKeys(etc) {
		if err := im.bytes(p, 0o644, []byte(etc[p])); err != nil {
			return err
		}
	}
	return nil
}

// addModules puts the modules the VM loads under /lib/modules/<version>,
// uncompressed, with a modules.dep of just them (for modprobe), and
// returns them in load order.
func addModules(im *image, k kernel) ([]string, error) {
	order, dep, err := k.vmModules()
	if err != nil {
		return nil, err
	}
	root := "/lib/modules/" + k.Version + "/"
	var depFile strings.Builder
	for _, m := range order {
		src, err := moduleFile(k.Modules, m)
		if err != nil {
			return nil, err
		}
		b, err := moduleBytes(src)
		if err != nil {
			return nil, err
		}
		if err := im.bytes(root+m, 0o644, b); err != nil {
			return nil, err
		}
		fmt.Fprintf(&depFile, "%s:", m)
		for _, d := range dep[m] {
			fmt.Fprintf(&depFile, " %s", d)
		}
		depFile.WriteString("\n")
	}
	if err := im.bytes(root+"modules.dep", 0o644, []byte(depFile.String())); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(k.Modules, "modules.builtin")); err == nil {
		if err := im.bytes(root+"modules.builtin", 0o644, b); err != nil {
			return nil, err
		}
	}
	return order, nil
}

type initConfig struct {
	marker   string
	kernel   string
	modules  []string
	env      map[string]string
	args     []string
	binaries []payloadBinary
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// initScript is the VM's /init. Markers ("<marker> KIND ...") go to the
// console and to the results line (the second serial port, ttyS1), where
// the test binaries write too; closing a tty waits until its output is
// sent, so nothing written there is lost at power-off.
func initScript(c initConfig) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("#!/bin/sh")
	w("# /init of the ipvsvm VM (package integration/ipvsvm), generated.")
	w("/bin/busybox --install -s")
	w("export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp %s=1", EnvInVM)
	for _, k := range sortedKeys(c.env) {
		w("export %s=%s", k, shellQuote(c.env[k]))
	}
	w("mount -t proc proc /proc")
	w("mount -t sysfs sysfs /sys")
	w("mount -t devtmpfs devtmpfs /dev")
	w("M=%s", shellQuote(c.marker))
	w("R=/dev/ttyS1")
	w(`[ -c $R ] || R=/dev/console`)
	w(`say() { echo "$M $*"; [ $R = /dev/console ] || echo "$M $*" >$R; }`)
	w(`up() { cut -d' ' -f1 /proc/uptime; }`)
	w(`say INIT uptime=$(up) kernel=$(uname -r)`)
	w(`[ "$(uname -r)" = %s ] || say ERROR "booted kernel $(uname -r), modules of %s"`, shellQuote(c.kernel), c.kernel)
	w(`ip link set lo up || say ERROR "ip link set lo up failed"`)
	w(`n=0`)
	w(`for m in \`)
	for _, m := range c.modules {
		w("\t%s \\", shellQuote(m))
	}
	w(`; do`)
	w("\tif insmod %s/\"$m\"; then n=$((n+1)); else say MODULE-FAILED \"$m\"; fi", shellQuote("/lib/modules/"+c.kernel))
	w(`done`)
	w(`say MODULES loaded=$n`)
	var args []string
	for _, a := range c.args {
		args = append(args, shellQuote(a))
	}
	for _, bin := range c.binaries {
		dir := "/payload/" + bin.name
		w(`say BEGIN %s uptime=$(up)`, bin.name)
		w(`cd %s && ./%s.test %s >$R 2>&1`, shellQuote(dir), bin.name, strings.Join(args, " "))
		w(`say END %s exit=$? uptime=$(up)`, bin.name)
	}
	w(`cd /`)
	w(`say DONE uptime=$(up)`)
	w(`sync`)
	w(`poweroff -f`)
	w(`sleep 5`)
	w(`say ERROR "poweroff -f failed"`)
	return b.String()
}

// kernelArgs is the kernel command line: the console on the first serial
// port, and a panic reboots at once, which -no-reboot turns into qemu's
// exit.
var kernelArgs = "console=ttyS0 panic=-1 quiet"

// consoleWriter keeps the console and notes when markers appear.
type consoleWriter struct {
	mu        sync.Mutex
	start     time.Time
	marker    string
	buf       bytes.Buffer
	line      []byte
	initAt    time.Duration
	doneAt    time.Duration
	panicLine string
}

const maxConsole = 8 << 20

func (c *consoleWriter) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf.Len() < maxConsole {
		c.buf.Write(b)
	}
	for _, ch := range b {
		if ch != '\n' {
			c.line = append(c.line, ch)
			continue
		}
		l := strings.TrimRight(string(c.line), "\r")
		c.line = c.line[:0]
		switch {
		case strings.HasPrefix(l, c.marker+" INIT") && c.initAt == 0:
			c.initAt = time.Since(c.start)
		case strings.HasPrefix(l, c.marker+" DONE"):
			c.doneAt = time.Since(c.start)
		case strings.Contains(l, "Kernel panic") && c.panicLine == "":
			c.panicLine = strings.TrimSpace(l)
		}
	}
	return len(b), nil
}

func (v *vm) run(ctx context.Context, qemu string, k kernel, timeout time.Duration, memMB int, rep *Report) error {
	if memMB == 0 {
		memMB = 512
	}
	results := filepath.Join(v.dir, "results.log")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{
		"-accel", "tcg", "-m", strconv.Itoa(memMB), "-smp", "1",
		"-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-nic", "none",
		"-serial", "stdio", "-serial", "file:" + strings.ReplaceAll(results, ",", ",,"), // qemu option syntax: "," doubled
		"-kernel", k.Image, "-initrd", v.initrd,
		"-append", kernelArgs,
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	console := &consoleWriter{marker: v.marker}
	var stderr bytes.Buffer
	cmd.Stdout = console
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	console.start = time.Now()
	err := cmd.Run()
	rep.Exit = time.Since(console.start)
	rep.Console = console.buf.String()
	rep.Init, rep.Done = console.initAt, console.doneAt
	if rep.Done == 0 {
		rep.Done = rep.Exit
	}
	if b, rerr := os.ReadFile(results); rerr == nil {
		rep.ResultsLog = string(b)
	}
	if !strings.Contains(rep.ResultsLog, v.marker+" INIT") {
		rep.ResultsLog = rep.Console // /init found no second serial port
	}
	st := v.parse(rep.ResultsLog, rep)

	switch {
	case ctx.Err() != nil:
		switch {
		case !errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("qemu stopped after %.0fs: %w (%s)", rep.Exit.Seconds(), ctx.Err(), st.stage())
		case rep.Exit < timeout-time.Second:
			return fmt.Errorf("qemu stopped after %.0fs: the go test -timeout is near (%s)", rep.Exit.Seconds(), st.stage())
		}
		return fmt.Errorf("no result within %v (%s); set %s for more", timeout, st.stage(), EnvTimeout)
	case console.panicLine != "":
		return fmt.Errorf("kernel panic: %s (%s)", console.panicLine, st.stage())
	case err != nil:
		return fmt.Errorf("qemu: %w: %s", err, strings.TrimSpace(stderr.String()))
	case !st.init:
		return fmt.Errorf("the VM powered off without running /init (no %s INIT marker)", v.marker)
	case len(st.moduleFailures) > 0:
		return fmt.Errorf("modules failed to load in the VM: %s", strings.Join(st.moduleFailures, " "))
	case len(st.errors) > 0:
		return fmt.Errorf("/init: %s", strings.Join(st.errors, "; "))
	}
	for _, r := range rep.Results {
		if r.ExitCode < 0 {
			return fmt.Errorf("no result marker for %s (%s)", r.Package, st.stage())
		}
	}
	if !st.done {
		return fmt.Errorf("no %s DONE marker", v.marker)
	}
	return nil
}

// runState is how far /init got.
type runState struct {
	init, done     bool
	modules        bool
	running        string // binary begun, not ended
	moduleFailures []string
	errors         []string
}

func (s runState) stage() string {
	switch {
	case !s.init:
		return "the kernel never ran /init"
	case !s.modules:
		return "/init was loading modules"
	case s.running != "":
		return s.running + " was running"
	case !s.done:
		return "/init was between test binaries"
	}
	return "the tests were done, power-off was not"
}

var testLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)

// parse reads the results line into rep's results.
func (v *vm) parse(channel string, rep *Report) runState {
	var st runState
	byName := map[string]*Result{}
	for _, r := range rep.Results {
		byName[r.Name] = r
	}
	var cur *Result
	var out strings.Builder
	var begun float64
	uptime := func(fields []string) float64 {
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "uptime="); ok {
				u, _ := strconv.ParseFloat(v, 64)
				return u
			}
		}
		return 0
	}
	for _, line := range strings.Split(channel, "\n") {
		line = strings.TrimRight(line, "\r")
		// A binary that died mid-line leaves the marker after its output.
		output, rest, isMarker := strings.Cut(line, v.marker+" ")
		if !isMarker || output != "" {
			if cur != nil {
				out.WriteString(output)
				out.WriteString("\n")
				if m := testLine.FindStringSubmatch(output); m != nil {
					cur.Tests = append(cur.Tests, TestResult{Name: m[2], Status: m[1]})
				}
			}
		}
		if !isMarker {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "INIT":
			st.init = true
		case "MODULE-FAILED":
			st.moduleFailures = append(st.moduleFailures, strings.Join(f[1:], " "))
		case "MODULES":
			st.modules = true
		case "ERROR":
			st.errors = append(st.errors, strings.Join(f[1:], " "))
		case "BEGIN":
			if len(f) > 1 && byName[f[1]] != nil {
				cur = byName[f[1]]
				st.running = cur.Package
				out.Reset()
				begun = uptime(f)
			}
		case "END":
			if cur != nil && len(f) > 2 {
				if code, ok := strings.CutPrefix(f[2], "exit="); ok {
					cur.ExitCode, _ = strconv.Atoi(code)
				}
				cur.Output = out.String()
				cur.Duration = time.Duration((uptime(f) - begun) * float64(time.Second))
			}
			cur = nil
			st.running = ""
		case "DONE":
			st.done = true
		}
	}
	if cur != nil {
		cur.Output = out.String()
	}
	rep.Modules = nil
	if st.modules {
		rep.Modules = append(rep.Modules, v.modulesLoaded(st)...)
	}
	return st
}

func (v *vm) modulesLoaded(st runState) []string {
	return slices.DeleteFunc(slices.Clone(v.modules), func(m string) bool { return slices.Contains(st.moduleFailures, m) })
}
