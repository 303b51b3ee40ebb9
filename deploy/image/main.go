// Command image builds vipd's container image without a container engine:
// a root filesystem tarball and an OCI image layout (image-spec v1.1) that
// holds the same files as its one layer. `make image` runs it on the static
// binary of `make static`:
//
//	go run ./deploy/image -binary bin/vipd-static -config deploy/examples/keepalived.conf \
//	    -version 1.2.3 -rootfs bin/vipd-rootfs.tar -oci bin/vipd-oci
//
// The file system is the binary at /usr/local/sbin/vipd, the configuration at
// /etc/vipd/keepalived.conf, the empty directories /run/vipd (control socket)
// and /var/lib/vipd (state), their parents, and nothing else: no shell, no
// libc (the binary must be static). The image runs
// `vipd run --config /etc/vipd/keepalived.conf`.
//
// The output is reproducible: entries sorted, owned by 0:0, dated
// SOURCE_DATE_EPOCH (default 0, 1970-01-01), gzip with no name or time, so
// the same inputs give the same bytes and digests.
//
// `image -check-static FILE` only checks that FILE is a static ELF
// executable (no PT_INTERP, no DT_NEEDED), as `make static` does.
//
// Only the standard library: archive/tar, compress/gzip, crypto/sha256,
// debug/elf, encoding/json.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Where things are in the image.
const (
	BinaryPath = "/usr/local/sbin/vipd"
	ConfigPath = "/etc/vipd/keepalived.conf"
	SocketDir  = "/run/vipd"
	StateDir   = "/var/lib/vipd"
)

// The image's command: vipd run with the configuration of the image (a
// Kubernetes ConfigMap mounted at /etc/vipd replaces it).
var (
	Entrypoint = []string{BinaryPath, "run"}
	Cmd        = []string{"--config", ConfigPath}
)

// OCI media types (image-spec v1.1).
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	layoutVersion     = "1.0.0"
	annotationRefName = "org.opencontainers.image.ref.name"
	annotationVersion = "org.opencontainers.image.version"
	annotationTitle   = "org.opencontainers.image.title"
	annotationCreated = "org.opencontainers.image.created"
)

// Spec is what goes into the image.
type Spec struct {
	Binary  []byte    // the vipd executable
	Config  []byte    // /etc/vipd/keepalived.conf
	Version string    // vipd's version: image label and, made a valid tag, index.json's ref.name
	Arch    string    // GOARCH naming: amd64, arm64, ...
	Created time.Time // every mtime, and the config's created
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is a descriptor's platform.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Index is index.json.
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Manifest is an image manifest.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// ImageConfig is the image configuration blob.
type ImageConfig struct {
	Created      string          `json:"created"`
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Config       ContainerConfig `json:"config"`
	RootFS       RootFS          `json:"rootfs"`
	History      []History       `json:"history"`
}

// ContainerConfig is the execution part of the image configuration.
type ContainerConfig struct {
	Env        []string          `json:"Env"`
	Entrypoint []string          `json:"Entrypoint"`
	Cmd        []string          `json:"Cmd"`
	WorkingDir string            `json:"WorkingDir"`
	StopSignal string            `json:"StopSignal"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// RootFS lists the layers' uncompressed digests.
type RootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// History is one entry of the image's history.
type History struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

// Entry is one file or directory of the root filesystem.
type Entry struct {
	Name string // relative, no leading slash; directories end in /
	Mode int64
	Data []byte // nil for a directory
}

// Entries lists the root filesystem: the binary, the configuration, the
// runtime directories and every parent directory, sorted by name (a parent
// sorts before what it holds).
func Entries(binary, config []byte) []Entry {
	files := map[string]Entry{
		BinaryPath: {Mode: 0o755, Data: binary},
		ConfigPath: {Mode: 0o644, Data: config},
	}
	dirs := map[string]bool{SocketDir: true, StateDir: true}
	for p := range files {
		dirs[path.Dir(p)] = true
	}
	for d := range dirs {
		for p := d; p != "/"; p = path.Dir(p) {
			dirs[p] = true
		}
	}
	var out []Entry
	for d := range dirs {
		out = append(out, Entry{Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755})
	}
	for p, e := range files {
		e.Name = strings.TrimPrefix(p, "/")
		if e.Data == nil {
			e.Data = []byte{}
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RootFSTar is the root filesystem as a tar stream (USTAR, 0:0 root:root,
// every mtime t): the layer before compression.
func RootFSTar(entries []Entry, t time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.Name,
			Mode:    e.Mode,
			Uid:     0,
			Gid:     0,
			Uname:   "root",
			Gname:   "root",
			ModTime: t,
			Format:  tar.FormatUSTAR,
		}
		if e.Data == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.Name, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipBytes compresses b with no name and no time in the header.
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Digest is the OCI digest of b: sha256:HEX.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

var tagInvalid = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Tag makes a version a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}):
// other characters become "-"; an empty version is "latest".
func Tag(version string) string {
	t := tagInvalid.ReplaceAllString(version, "-")
	if t == "" {
		return "latest"
	}
	if t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}

// Image is the built image: the uncompressed root filesystem and every blob
// of the layout by digest.
type Image struct {
	RootFS []byte
	Blobs  map[string][]byte // digest -> content
	Index  []byte            // index.json
}

// Build makes the image of s.
func Build(s Spec) (*Image, error) {
	if len(s.Binary) == 0 {
		return nil, errors.New("empty binary")
	}
	if s.Arch == "" {
		return nil, errors.New("no architecture")
	}
	created := s.Created.UTC()
	rootfs, err := RootFSTar(Entries(s.Binary, s.Config), created)
	if err != nil {
		return nil, err
	}
	layer, err := gzipBytes(rootfs)
	if err != nil {
		return nil, err
	}
	stamp := created.Format(time.RFC3339)
	labels := map[string]string{annotationTitle: "vipd", annotationVersion: s.Version}
	config, err := json.Marshal(ImageConfig{
		Created:      stamp,
		Architecture: s.Arch,
		OS:           "linux",
		Config: ContainerConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Entrypoint: Entrypoint,
			Cmd:        Cmd,
			WorkingDir: "/",
			StopSignal: "SIGTERM", // a graceful hand-over; SIGQUIT would keep the VIPs
			Labels:     labels,
		},
		RootFS:  RootFS{Type: "layers", DiffIDs: []string{Digest(rootfs)}},
		History: []History{{Created: stamp, CreatedBy: "vipd deploy/image (no container engine)"}},
	})
	if err != nil {
		return nil, err
	}
	manifest, err := json.Marshal(Manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        Descriptor{MediaType: MediaTypeConfig, Digest: Digest(config), Size: int64(len(config))},
		Layers:        []Descriptor{{MediaType: MediaTypeLayer, Digest: Digest(layer), Size: int64(len(layer))}},
		Annotations:   map[string]string{annotationCreated: stamp, annotationTitle: "vipd", annotationVersion: s.Version},
	})
	if err != nil {
		return nil, err
	}
	index, err := json.Marshal(Index{
		SchemaVersion: 2,
		MediaType:     MediaTypeIndex,
		Manifests: []Descriptor{{
			MediaType:   MediaTypeManifest,
			Digest:      Digest(manifest),
			Size:        int64(len(manifest)),
			Platform:    &Platform{Architecture: s.Arch, OS: "linux"},
			Annotations: map[string]string{annotationRefName: Tag(s.Version)},
		}},
	})
	if err != nil {
		return nil, err
	}
	img := &Image{RootFS: rootfs, Index: index, Blobs: map[string][]byte{}}
	for _, b := range [][]byte{layer, config, manifest} {
		img.Blobs[Digest(b)] = b
	}
	return img, nil
}

// WriteLayout writes img as an OCI image layout at dir: oci-layout,
// index.json and blobs/sha256/HEX. It builds the layout beside dir and
// renames it into place, replacing a previous layout; it refuses to replace
// anything else.
func WriteLayout(img *Image, dir string) error {
	dir = filepath.Clean(dir)
	if err := replaceable(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	blobs := filepath.Join(tmp, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	for d, b := range img.Blobs {
		if err := os.WriteFile(filepath.Join(blobs, strings.TrimPrefix(d, "sha256:")), b, 0o644); err != nil {
			return err
		}
	}
	layout := []byte(`{"imageLayoutVersion":"` + layoutVersion + `"}`)
	if err := os.WriteFile(filepath.Join(tmp, "oci-layout"), layout, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "index.json"), img.Index, 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// replaceable accepts a dir that does not exist, is empty, or is an OCI
// layout (has an oci-layout file).
func replaceable(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(ents) == 0:
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("%s exists and is not an OCI image layout (no oci-layout file): not replacing it", dir)
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file beside it.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// goArch maps an ELF machine to GOARCH.
var goArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le", // big-endian ppc64 is told apart in CheckStatic
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// CheckStatic reports whether the ELF executable in r needs nothing from
// the image but itself: no program interpreter (PT_INTERP, the dynamic
// loader) and no shared library (DT_NEEDED). It returns the GOARCH of the
// file's machine.
func CheckStatic(r io.ReaderAt) (string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return "", fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("ELF type %v: not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("dynamically linked: it has a program interpreter (PT_INTERP); build with CGO_ENABLED=0")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return "", fmt.Errorf("reading its dynamic section: %w", err)
	}
	if len(libs) > 0 {
		return "", fmt.Errorf("needs shared libraries %v (DT_NEEDED); build with CGO_ENABLED=0", libs)
	}
	arch, ok := goArch[f.Machine]
	if f.Machine == elf.EM_PPC64 && f.ByteOrder == binary.BigEndian {
		arch = "ppc64"
	}
	if !ok {
		return "", fmt.Errorf("ELF machine %v: unknown architecture", f.Machine)
	}
	return arch, nil
}

// checkStaticFile is CheckStatic on a file.
func checkStaticFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	arch, err := CheckStatic(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return arch, nil
}

// sourceDate is SOURCE_DATE_EPOCH, or 1970-01-01 when unset.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	checkOnly := fs.String("check-static", "", "only check that this file is a static ELF executable")
	binPath := fs.String("binary", "bin/vipd-static", "the static vipd binary")
	config := fs.String("config", "deploy/examples/keepalived.conf", "the configuration installed as "+ConfigPath)
	version := fs.String("version", "dev", "vipd's version: image label and tag (index.json ref.name)")
	arch := fs.String("arch", "", "image architecture (default: the binary's ELF machine)")
	rootfsOut := fs.String("rootfs", "bin/vipd-rootfs.tar", "where to write the root filesystem tarball (empty: not written)")
	ociOut := fs.String("oci", "bin/vipd-oci", "where to write the OCI image layout directory (empty: not written)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *checkOnly != "" {
		a, err := checkStaticFile(*checkOnly)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: static %s executable (no PT_INTERP, no DT_NEEDED)\n", *checkOnly, a)
		return nil
	}
	elfArch, err := checkStaticFile(*binPath)
	if err != nil {
		return err
	}
	if *arch == "" {
		*arch = elfArch
	}
	bin, err := os.ReadFile(*binPath)
	if err != nil {
		return err
	}
	conf, err := os.ReadFile(*config)
	if err != nil {
		return err
	}
	created, err := sourceDate()
	if err != nil {
		return err
	}
	img, err := Build(Spec{Binary: bin, Config: conf, Version: *version, Arch: *arch, Created: created})
	if err != nil {
		return err
	}
	if *rootfsOut != "" {
		if err := writeFileAtomic(*rootfsOut, img.RootFS); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: root filesystem, %d bytes, %s\n", *rootfsOut, len(img.RootFS), Digest(img.RootFS))
	}
	if *ociOut != "" {
		if err := WriteLayout(img, *ociOut); err != nil {
			return err
		}
		var idx Index
		if err := json.Unmarshal(img.Index, &idx); err != nil {
			return err
		}
		m := idx.Manifests[0]
		fmt.Fprintf(stdout, "%s: OCI image layout, %s/%s, tag %s, manifest %s\n", *ociOut, m.Platform.OS, m.Platform.Architecture,
			m.Annotations[annotationRefName], m.Digest)
	}
	return nil
}
