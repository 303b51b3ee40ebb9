package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	fakeBinary = []byte("\x7fELF not really: a stand-in for vipd\n")
	fakeConfig = []byte("vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n}\n")
)

func fakeSpec() Spec {
	return Spec{Binary: fakeBinary, Config: fakeConfig, Version: "1.2.3+test", Arch: "arm64", Created: time.Unix(1700000000, 0)}
}

// buildLayout builds the fake image's layout into a new directory.
func buildLayout(t *testing.T, s Spec) (string, *Image) {
	t.Helper()
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "vipd-oci")
	if err := WriteLayout(img, dir); err != nil {
		t.Fatal(err)
	}
	return dir, img
}

// readBlob reads the blob d names and checks its digest and size.
func readBlob(t *testing.T, dir string, d Descriptor) []byte {
	t.Helper()
	hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok || len(hexd) != 64 {
		t.Fatalf("digest %q: want sha256:<64 hex>", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", hexd))
	if err != nil {
		t.Fatalf("blob of %s: %v", d.MediaType, err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != hexd {
		t.Errorf("blob %s hashes to %s", hexd, got)
	}
	if int64(len(b)) != d.Size {
		t.Errorf("blob %s (%s) has %d bytes, its descriptor says %d", hexd, d.MediaType, len(b), d.Size)
	}
	return b
}

// strictJSON decodes b into v refusing unknown fields.
func strictJSON(t *testing.T, what string, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b)
	}
}

type tarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Uid, Gid int
	ModTime  time.Time
	Data     string
}

func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime.UTC(), Data: string(data)})
	}
}

// TestLayoutIsConsistent walks index.json -> manifest -> config and layer
// and checks every digest, size and media type, the image's command, and
// the layer's exact contents.
func TestLayoutIsConsistent(t *testing.T) {
	s := fakeSpec()
	dir, img := buildLayout(t, s)

	top, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"blobs", "index.json", "oci-layout"}) {
		t.Errorf("layout holds %v, want blobs, index.json, oci-layout", names)
	}
	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		t.Fatal(err)
	}
	var layout struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	strictJSON(t, "oci-layout", b, &layout)
	if layout.ImageLayoutVersion != "1.0.0" {
		t.Errorf("imageLayoutVersion %q, want 1.0.0", layout.ImageLayoutVersion)
	}

	b, err = os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx Index
	strictJSON(t, "index.json", b, &idx)
	if idx.SchemaVersion != 2 || idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: schemaVersion %d, mediaType %q, %d manifests; want 2, the OCI index type, 1", idx.SchemaVersion, idx.MediaType, len(idx.Manifests))
	}
	md := idx.Manifests[0]
	if md.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest descriptor mediaType %q", md.MediaType)
	}
	if md.Platform == nil || *md.Platform != (Platform{Architecture: "arm64", OS: "linux"}) {
		t.Errorf("manifest platform %+v, want linux/arm64", md.Platform)
	}
	if got := md.Annotations["org.opencontainers.image.ref.name"]; got != "1.2.3-test" {
		t.Errorf("ref.name %q, want the version as a tag, 1.2.3-test", got)
	}

	var m Manifest
	strictJSON(t, "manifest", readBlob(t, dir, md), &m)
	if m.SchemaVersion != 2 || m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest: schemaVersion %d, mediaType %q", m.SchemaVersion, m.MediaType)
	}
	if m.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("config mediaType %q", m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Fatalf("layers %+v: want one tar+gzip layer", m.Layers)
	}

	var cfg ImageConfig
	strictJSON(t, "image config", readBlob(t, dir, m.Config), &cfg)
	if cfg.OS != "linux" || cfg.Architecture != "arm64" {
		t.Errorf("config platform %s/%s, want linux/arm64", cfg.OS, cfg.Architecture)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/local/sbin/vipd", "run"}) {
		t.Errorf("Entrypoint %q", cfg.Config.Entrypoint)
	}
	if !slices.Equal(cfg.Config.Cmd, []string{"--config", "/etc/vipd/keepalived.conf"}) {
		t.Errorf("Cmd %q", cfg.Config.Cmd)
	}
	if cfg.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("created %q, want the spec's time", cfg.Created)
	}
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != 1 {
		t.Fatalf("rootfs %+v", cfg.RootFS)
	}

	layer := readBlob(t, dir, m.Layers[0])
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q, time %v: want neither (reproducible)", zr.Name, zr.ModTime)
	}
	rootfs, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if Digest(rootfs) != cfg.RootFS.DiffIDs[0] {
		t.Errorf("diff_id %s, the uncompressed layer is %s", cfg.RootFS.DiffIDs[0], Digest(rootfs))
	}
	if !bytes.Equal(rootfs, img.RootFS) {
		t.Error("the root filesystem tarball differs from the layer")
	}

	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 3 {
		t.Errorf("%d blobs, want 3 (manifest, config, layer)", len(blobs))
	}

	mt := s.Created.UTC()
	dirEntry := func(name string) tarEntry {
		return tarEntry{Name: name, Type: tar.TypeDir, Mode: 0o755, ModTime: mt}
	}
	want := []tarEntry{
		dirEntry("etc/"),
		dirEntry("etc/vipd/"),
		{Name: "etc/vipd/keepalived.conf", Type: tar.TypeReg, Mode: 0o644, ModTime: mt, Data: string(fakeConfig)},
		dirEntry("run/"),
		dirEntry("run/vipd/"),
		dirEntry("usr/"),
		dirEntry("usr/local/"),
		dirEntry("usr/local/sbin/"),
		{Name: "usr/local/sbin/vipd", Type: tar.TypeReg, Mode: 0o755, ModTime: mt, Data: string(fakeBinary)},
		dirEntry("var/"),
		dirEntry("var/lib/"),
		dirEntry("var/lib/vipd/"),
	}
	got := readTar(t, rootfs)
	if !slices.Equal(got, want) {
		t.Errorf("layer entries:\n got %+v\nwant %+v", got, want)
	}
}

// TestBuildIsReproducible builds twice into two directories: every file is
// the same, byte for byte.
func TestBuildIsReproducible(t *testing.T) {
	a, imgA := buildLayout(t, fakeSpec())
	b, imgB := buildLayout(t, fakeSpec())
	if !bytes.Equal(imgA.RootFS, imgB.RootFS) {
		t.Error("two root filesystem tarballs differ")
	}
	files := func(dir string) map[string][]byte {
		out := map[string][]byte{}
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[rel], err = os.ReadFile(p)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fa, fb := files(a), files(b)
	if len(fa) != 5 || len(fa) != len(fb) {
		t.Fatalf("%d and %d files, want 5 each", len(fa), len(fb))
	}
	for name, content := range fa {
		if !bytes.Equal(content, fb[name]) {
			t.Errorf("%s differs between two builds", name)
		}
	}

	// And a different input is a different image.
	s := fakeSpec()
	s.Config = []byte("! another\n")
	other, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Index, imgA.Index) {
		t.Error("another configuration gives the same index.json")
	}
}

// TestWriteLayoutReplacesOnlyALayout: a rebuild replaces the previous
// layout whole (no stale blob left), and a directory that is not a layout
// is never removed.
func TestWriteLayoutReplacesOnlyALayout(t *testing.T) {
	dir, _ := buildLayout(t, fakeSpec())
	s := fakeSpec()
	s.Version = "2.0.0"
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(img, dir); err != nil {
		t.Fatal(err)
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(blobs) != 3 {
		t.Errorf("%d blobs after a rebuild, want 3", len(blobs))
	}

	precious := t.TempDir()
	if err := os.WriteFile(filepath.Join(precious, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(img, precious); err == nil {
		t.Error("WriteLayout replaced a directory that is not an OCI layout")
	}
	if _, err := os.Stat(filepath.Join(precious, "keep")); err != nil {
		t.Errorf("the other directory lost its file: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(precious), ".*tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

func TestTag(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "latest",
		"1.2.3":                  "1.2.3",
		"v0.4-3-gabc-dirty":      "v0.4-3-gabc-dirty",
		"1.2.3+build/7":          "1.2.3-build-7",
		"-x":                     "v-x",
		strings.Repeat("a", 200): strings.Repeat("a", 128),
	} {
		if got := Tag(in); got != want {
			t.Errorf("Tag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckStaticRefusesWhatIsNotAStaticExecutable(t *testing.T) {
	if _, err := CheckStatic(bytes.NewReader(fakeBinary)); err == nil {
		t.Error("CheckStatic accepts a file that is not ELF")
	}
	// A dynamically linked program of the system, if there is one.
	for _, p := range []string{"/bin/sh", "/bin/ls", "/usr/bin/env"} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		if _, err := CheckStatic(f); err == nil {
			t.Logf("%s is static here", p)
			continue
		} else if !strings.Contains(err.Error(), "PT_INTERP") && !strings.Contains(err.Error(), "DT_NEEDED") {
			t.Errorf("CheckStatic(%s): %v; want it refused as dynamically linked", p, err)
		}
		return
	}
	t.Log("no dynamically linked program found to try")
}

// staticFlags are `make static`'s build flags (the Makefile's static
// target; TestMakefileStaticFlags keeps the two together).
var staticFlags = []string{"-trimpath", "-ldflags", "-s -w -X main.version=9.9.9-test"}

// TestMakefileStaticFlags: make static builds as TestStaticVipdInImage does.
func TestMakefileStaticFlags(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(b)
	_, recipe, ok := strings.Cut(mk, "\nstatic:")
	if !ok {
		t.Fatal("Makefile: no static target")
	}
	recipe, _, _ = strings.Cut(recipe, "\n\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=$(VERSION)"`, "./deploy/image -check-static"} {
		if !strings.Contains(recipe, want) {
			t.Errorf("Makefile static recipe lacks %q:%s", want, recipe)
		}
	}
}

// TestStaticVipdInImage builds the real vipd as make static does, checks it
// is static, builds the image with the command line make image uses, and,
// as root, runs the binary chrooted in the extracted root filesystem: it
// needs nothing else there.
func TestStaticVipdInImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vipd; skipped in -short mode")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH: cannot build vipd")
	}
	work := t.TempDir()
	bin := filepath.Join(work, "vipd-static")
	build := exec.Command(goTool, append(append([]string{"build"}, staticFlags...), "-o", bin, "github.com/vipd/vipd/cmd/vipd")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	var out bytes.Buffer
	if err := run([]string{"-check-static", bin}, &out); err != nil {
		t.Fatalf("-check-static: %v", err)
	}
	if !strings.Contains(out.String(), "static") {
		t.Errorf("-check-static said %q", out.String())
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := os.Getwd(); bytes.Contains(b, []byte(filepath.Dir(filepath.Dir(wd)))) {
		t.Errorf("the binary holds the source path %s: -trimpath missing", filepath.Dir(filepath.Dir(wd)))
	}

	t.Setenv("SOURCE_DATE_EPOCH", "") // restored after the test
	os.Unsetenv("SOURCE_DATE_EPOCH")
	rootfsTar := filepath.Join(work, "vipd-rootfs.tar")
	oci := filepath.Join(work, "vipd-oci")
	out.Reset()
	err = run([]string{"-binary", bin, "-config", "../examples/keepalived.conf", "-version", "9.9.9-test", "-rootfs", rootfsTar, "-oci", oci}, &out)
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	t.Logf("%s", out.String())
	idx, err := os.ReadFile(filepath.Join(oci, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(idx), `"ref.name":"9.9.9-test"`) && !strings.Contains(string(idx), `"org.opencontainers.image.ref.name":"9.9.9-test"`) {
		t.Errorf("index.json %s: want ref.name 9.9.9-test", idx)
	}

	tb, err := os.ReadFile(rootfsTar)
	if err != nil {
		t.Fatal(err)
	}
	entries := readTar(t, tb)
	for _, e := range entries {
		if !e.ModTime.Equal(time.Unix(0, 0)) || e.Uid != 0 || e.Gid != 0 {
			t.Errorf("%s: mtime %v, owner %d:%d; want 1970-01-01, 0:0", e.Name, e.ModTime, e.Uid, e.Gid)
		}
	}

	if os.Geteuid() != 0 {
		t.Skip("not root: cannot chroot into the root filesystem to run vipd there")
	}
	root := filepath.Join(work, "rootfs")
	for _, e := range entries {
		p := filepath.Join(root, e.Name)
		if e.Type == tar.TypeDir {
			if err := os.MkdirAll(p, os.FileMode(e.Mode)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(e.Data), os.FileMode(e.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	chrooted := func(args ...string) (string, error) {
		cmd := exec.Command("/usr/local/sbin/vipd", args...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/local/sbin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if got, err := chrooted("version"); err != nil || !strings.HasPrefix(got, "vipd 9.9.9-test ") {
		t.Errorf("chroot vipd version: %q, %v; want vipd 9.9.9-test", got, err)
	}
	if got, err := chrooted("check", "--config", "/etc/vipd/keepalived.conf"); err != nil || !strings.Contains(got, "OK") {
		t.Errorf("chroot vipd check --config /etc/vipd/keepalived.conf: %v\n%s", err, got)
	}
}
