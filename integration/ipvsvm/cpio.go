package ipvsvm

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Mode bits of a cpio entry (the stat st_mode the kernel creates it with).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

// entry is one file, directory, symlink or device node of the image.
type entry struct {
	mode         uint32 // type and permission bits
	data         []byte // contents, or a symlink's target
	hostPath     string // contents read from here when set
	major, minor uint32 // a device node's number
}

// image is an initramfs being assembled: absolute paths inside the VM to
// entries. Parent directories are added as needed.
type image struct {
	entries map[string]*entry
}

func newImage() *image { return &image{entries: map[string]*entry{}} }

func clean(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q: not an absolute path inside the VM", p)
	}
	p = path.Clean(p)
	if p == "/" {
		return "", fmt.Errorf("%q: the root is not a file", p)
	}
	return p, nil
}

func (im *image) add(p string, e *entry) error {
	p, err := clean(p)
	if err != nil {
		return err
	}
	if old, ok := im.entries[p]; ok {
		if old.mode&0o170000 == modeDir && e.mode&0o170000 == modeDir {
			return nil
		}
		return fmt.Errorf("%s: added twice", p)
	}
	if dir := path.Dir(p); dir != "/" {
		if err := im.dir(dir, 0o755); err != nil {
			return err
		}
	}
	im.entries[p] = e
	return nil
}

// removeFile removes the file, symlink or device node at p, if any.
func (im *image) removeFile(p string) {
	p = path.Clean(p)
	if e, ok := im.entries[p]; ok && e.mode&0o170000 != modeDir {
		delete(im.entries, p)
	}
}

func (im *image) dir(p string, perm uint32) error {
	if old, ok := im.entries[path.Clean(p)]; ok && old.mode&0o170000 != modeDir {
		return fmt.Errorf("%s: a file, needed as a directory", p)
	}
	return im.add(p, &entry{mode: modeDir | perm})
}

func (im *image) bytes(p string, perm uint32, data []byte) error {
	return im.add(p, &entry{mode: modeFile | perm, data: data})
}

func (im *image) symlink(p, target string) error {
	return im.add(p, &entry{mode: modeSymlink | 0o777, data: []byte(target)})
}

func (im *image) charDev(p string, perm, major, minor uint32) error {
	return im.add(p, &entry{mode: modeChar | perm, major: major, minor: minor})
}

// copyFile adds the host file src (symlinks followed) at p with its
// permission bits; a directory is copied recursively.
func (im *image) copyFile(p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fs.WalkDir(os.DirFS(src), ".", func(rel string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return im.dir(path.Join(p, rel), 0o755)
			}
			return im.copyFile(path.Join(p, rel), src+"/"+rel)
		})
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	f, err := os.Open(src) // readable now, not at write time only
	if err != nil {
		return err
	}
	f.Close()
	return im.add(p, &entry{mode: modeFile | uint32(st.Mode().Perm()), hostPath: src})
}

// writeGzip writes the image as a gzip-compressed cpio archive in the
// "newc" format, which is what the kernel unpacks into its rootfs. Parents
// come before children (sorted paths), inodes are numbered from 1, times
// are 0.
func (im *image) writeGzip(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := im.writeCpio(zw); err != nil {
		return err
	}
	return zw.Close()
}

func (im *image) writeCpio(w io.Writer) error {
	names := make([]string, 0, len(im.entries))
	for p := range im.entries {
		names = append(names, p)
	}
	slices.Sort(names)
	cw := &cpioWriter{w: w}
	for i, p := range names {
		if err := cw.write(uint32(i+1), strings.TrimPrefix(p, "/"), im.entries[p]); err != nil {
			return fmt.Errorf("initramfs %s: %w", p, err)
		}
	}
	return cw.trailer()
}

type cpioWriter struct {
	w   io.Writer
	off int64
}

func (c *cpioWriter) put(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if n := (4 - c.off%4) % 4; n > 0 {
		return c.put(make([]byte, n))
	}
	return nil
}

// header writes a newc header and the name: "070701", then 13 fields of
// 8 hex digits (ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
// devminor, rdevmajor, rdevminor, namesize with its NUL, check), the name,
// padding to 4 bytes.
func (c *cpioWriter) header(ino, mode, nlink uint32, size int64, rmajor, rminor uint32, name string) error {
	if size > 0xffffffff {
		return fmt.Errorf("%d bytes: too large for cpio newc", size)
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rmajor, rminor, len(name)+1, 0)
	if err := c.put([]byte(h + name + "\x00")); err != nil {
		return err
	}
	return c.pad()
}

func (c *cpioWriter) write(ino uint32, name string, e *entry) error {
	nlink := uint32(1)
	if e.mode&0o170000 == modeDir {
		nlink = 2
	}
	if e.hostPath == "" {
		if err := c.header(ino, e.mode, nlink, int64(len(e.data)), e.major, e.minor, name); err != nil {
			return err
		}
		if err := c.put(e.data); err != nil {
			return err
		}
		return c.pad()
	}
	f, err := os.Open(e.hostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := c.header(ino, e.mode, nlink, st.Size(), 0, 0, name); err != nil {
		return err
	}
	n, err := io.Copy(writerFunc(c.put), f)
	if err != nil {
		return err
	}
	if n != st.Size() {
		return fmt.Errorf("%s changed while being copied", e.hostPath)
	}
	return c.pad()
}

func (c *cpioWriter) trailer() error {
	return c.header(0, 0, 1, 0, 0, 0, "TRAILER!!!")
}

type writerFunc func([]byte) error

func (f writerFunc) Write(b []byte) (int, error) {
	if err := f(b); err != nil {
		return 0, err
	}
	return len(b), nil
}
