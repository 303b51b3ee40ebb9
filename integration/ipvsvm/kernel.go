package ipvsvm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Where the kernel and its modules are looked for; variables for tests.
var (
	bootDir    = "/boot"
	modulesDir = "/lib/modules"
)

// ipvsModuleDir is where a kernel's IPVS modules live, relative to its
// module directory.
const ipvsModuleDir = "kernel/net/netfilter/ipvs/"

// kernel is the kernel the VM boots: its image and its modules.
type kernel struct {
	Version string // uname -r
	Image   string // vmlinuz
	Modules string // /lib/modules/<version>
}

// findKernel picks the newest /boot/vmlinuz-<version> that has IPVS
// modules, or the one EnvKernel names (a version or an image path).
func findKernel() (kernel, error) {
	if v := os.Getenv(EnvKernel); v != "" {
		k := kernel{Version: v, Image: filepath.Join(bootDir, "vmlinuz-"+v)}
		if strings.Contains(v, "/") {
			k = kernel{Version: strings.TrimPrefix(filepath.Base(v), "vmlinuz-"), Image: v}
		}
		k.Modules = filepath.Join(modulesDir, k.Version)
		if err := k.check(); err != nil {
			return kernel{}, fmt.Errorf("%s=%s: %w", EnvKernel, v, err)
		}
		return k, nil
	}
	images, _ := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	var found []kernel
	var why []string
	for _, img := range images {
		v := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		k := kernel{Version: v, Image: img, Modules: filepath.Join(modulesDir, v)}
		if _, err := moduleFile(k.Modules, ipvsModuleDir+"ip_vs.ko"); err != nil {
			why = append(why, fmt.Sprintf("%s: no ip_vs module in %s", img, k.Modules))
			continue
		}
		found = append(found, k)
	}
	if len(found) == 0 {
		if len(images) == 0 {
			return kernel{}, fmt.Errorf("no kernel image %s/vmlinuz-* (Debian: apt-get install linux-image-amd64; or set %s)", bootDir, EnvKernel)
		}
		return kernel{}, fmt.Errorf("no kernel with IPVS modules: %s (set %s)", strings.Join(why, "; "), EnvKernel)
	}
	slices.SortFunc(found, func(a, b kernel) int { return compareVersions(a.Version, b.Version) })
	k := found[len(found)-1]
	return k, k.check()
}

func (k kernel) check() error {
	f, err := os.Open(k.Image)
	if err != nil {
		if os.IsPermission(err) {
			return fmt.Errorf("kernel image not readable: %w (some distributions install it mode 0600: run as root)", err)
		}
		return fmt.Errorf("kernel image: %w", err)
	}
	f.Close()
	if _, err := moduleFile(k.Modules, ipvsModuleDir+"ip_vs.ko"); err != nil {
		return fmt.Errorf("kernel %s: no ip_vs module: %w", k.Version, err)
	}
	return nil
}

// compareVersions orders kernel versions by their numbers: 6.1.0-57 <
// 6.1.0-101 < 6.12.1.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		na, ra := leadingNumber(a)
		nb, rb := leadingNumber(b)
		switch {
		case na >= 0 && nb >= 0:
			if na != nb {
				return na - nb
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return int(a[0]) - int(b[0])
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) - len(b)
}

func leadingNumber(s string) (int, string) {
	i := 0
	n := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1e8 {
		n = n*10 + int(s[i]-'0')
		i++
	}
	if i == 0 {
		return -1, s
	}
	return n, s[i:]
}

// Module files may be compressed; the VM gets them uncompressed (busybox
// insmod loads plain ELF).
var moduleSuffixes = []string{"", ".xz", ".zst", ".gz"}

// moduleFile finds rel ("kernel/.../x.ko") or its compressed form.
func moduleFile(dir, rel string) (string, error) {
	rel = trimCompression(rel)
	for _, s := range moduleSuffixes {
		p := filepath.Join(dir, rel+s)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: no such module", filepath.Join(dir, rel))
}

func trimCompression(rel string) string {
	for _, s := range moduleSuffixes[1:] {
		rel = strings.TrimSuffix(rel, s)
	}
	return rel
}

// moduleBytes reads a module, decompressing .gz itself and .xz/.zst with
// the host's xz or zstd.
func moduleBytes(p string) ([]byte, error) {
	switch {
	case strings.HasSuffix(p, ".gz"):
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(p, ".xz"), strings.HasSuffix(p, ".zst"):
		tool := "xz"
		if strings.HasSuffix(p, ".zst") {
			tool = "zstd"
		}
		var stderr bytes.Buffer
		cmd := exec.Command(tool, "-dc", p)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("decompress %s with %s (needed for compressed modules): %w %s", p, tool, err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	return os.ReadFile(p)
}

// modulesDep is a kernel's modules.dep: each module (path relative to the
// module directory, compression suffix removed) to the modules it needs.
type modulesDep map[string][]string

func readModulesDep(r io.Reader) (modulesDep, error) {
	dep := modulesDep{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("modules.dep:%d: no colon in %q", n, line)
		}
		var ds []string
		for _, d := range strings.Fields(deps) {
			ds = append(ds, trimCompression(d))
		}
		dep[trimCompression(strings.TrimSpace(mod))] = ds
	}
	return dep, sc.Err()
}

// loadOrder is every module roots need, each after the modules it
// depends on, each once, roots in their order otherwise. Like modprobe, it
// takes a module's dependencies from the end of its modules.dep line
// (depmod lists them last-loaded first).
func (dep modulesDep) loadOrder(roots []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(m string, from []string) error
	visit = func(m string, from []string) error {
		switch state[m] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("modules.dep: dependency cycle %s -> %s", strings.Join(from, " -> "), m)
		}
		deps, ok := dep[m]
		if !ok {
			if len(from) > 0 {
				return fmt.Errorf("modules.dep: %s (needed by %s) is not listed", m, from[len(from)-1])
			}
			return fmt.Errorf("modules.dep: %s is not listed", m)
		}
		state[m] = 1
		for _, d := range slices.Backward(deps) {
			if err := visit(d, append(from, m)); err != nil {
				return err
			}
		}
		state[m] = 2
		order = append(order, m)
		return nil
	}
	for _, r := range roots {
		if err := visit(r, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// vmModules is what the VM loads, in order: crc32c_generic first (libcrc32c
// asks the crypto API for crc32c when it loads; softdep "libcrc32c pre:
// crc32c"), every IPVS module (ip_vs, the schedulers, ftp, sip) with their
// dependencies, and veth for tests that build links. Modules built into the
// kernel (modules.builtin) are skipped.
func (k kernel) vmModules() ([]string, modulesDep, error) {
	f, err := os.Open(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	dep, err := readModulesDep(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var roots []string
	find := func(base string) (string, bool) {
		for m := range dep {
			if filepath.Base(m) == base {
				return m, true
			}
		}
		return "", false
	}
	builtin := k.builtin()
	for _, base := range []string{"crc32c_generic.ko", "veth.ko"} {
		if m, ok := find(base); ok {
			roots = append(roots, m)
		} else if !builtin[strings.TrimSuffix(base, ".ko")] {
			return nil, nil, fmt.Errorf("kernel %s: %s neither a module in modules.dep nor built in", k.Version, base)
		}
	}
	var ipvs []string
	for m := range dep {
		if strings.HasPrefix(m, ipvsModuleDir) {
			ipvs = append(ipvs, m)
		}
	}
	if !slices.Contains(ipvs, ipvsModuleDir+"ip_vs.ko") {
		return nil, nil, fmt.Errorf("kernel %s: modules.dep has no %sip_vs.ko", k.Version, ipvsModuleDir)
	}
	slices.Sort(ipvs) // ip_vs.ko first
	roots = append(roots, ipvs...)
	order, err := dep.loadOrder(roots)
	if err != nil {
		return nil, nil, fmt.Errorf("kernel %s: %w", k.Version, err)
	}
	return order, dep, nil
}

// builtin is the set of module names built into the kernel.
func (k kernel) builtin() map[string]bool {
	b, _ := os.ReadFile(filepath.Join(k.Modules, "modules.builtin"))
	set := map[string]bool{}
	for _, l := range strings.Fields(string(b)) {
		set[strings.TrimSuffix(filepath.Base(l), ".ko")] = true
	}
	return set
}
