package script

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// CheckSecure implements enable_script_security, after keepalived's
// check_script_secure (lib/notify.c): the executable and every directory
// above it must not be writable by a non-root user. A path component is
// insecure when it is owned by a non-root user, or when it is a file or a
// directory without the sticky bit that is group-writable by a non-root group
// or world-writable. Directories are checked with symbolic links resolved;
// when the file itself is a link, its target's path is checked too. The
// executable must exist and be executable.
//
// For a shell command, the shell is trusted and only the first word is checked,
// when it is an absolute path (a command found through PATH by the shell is
// not). keepalived checks only scripts that run as root; vipd checks every
// command it is given, whoever it runs as.
func CheckSecure(c Command) error {
	if len(c.Argv) == 0 {
		return errors.New("empty command")
	}
	var path string
	if c.Shell {
		words, err := split(c.Raw)
		if err != nil || len(words) == 0 {
			return nil // Parse accepted it, so this cannot happen
		}
		first := words[0]
		if i := strings.IndexAny(first, ";|&<>()`"); i >= 0 {
			first = first[:i]
		}
		if !strings.HasPrefix(first, "/") {
			return nil
		}
		path = first
	} else {
		path = c.Argv[0]
		if !strings.Contains(path, "/") {
			p, err := exec.LookPath(path)
			if err != nil {
				return fmt.Errorf("cannot find script %s in PATH", path)
			}
			path = p
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("script %s: %w", path, err)
	}
	// The path as written (whoever can change a link on it can redirect the
	// command), then, like keepalived (which checks the realpath), the path
	// with the directories' symbolic links resolved, then the file's target
	// when the file itself is a link.
	if err := checkPath(abs); err != nil {
		return fmt.Errorf("script %s: %w", path, err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return fmt.Errorf("script %s: cannot find %s: %w", path, filepath.Dir(abs), err)
	}
	named := filepath.Join(dir, filepath.Base(abs))
	if named != abs {
		if err := checkPath(named); err != nil {
			return fmt.Errorf("script %s (resolves to %s): %w", path, named, err)
		}
	}
	resolved, err := filepath.EvalSymlinks(named)
	if err != nil {
		return fmt.Errorf("script %s: %w", path, err)
	}
	if resolved != named {
		if err := checkPath(resolved); err != nil {
			return fmt.Errorf("script %s (resolves to %s): %w", path, resolved, err)
		}
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return fmt.Errorf("script %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("script %s: not executable (mode %04o)", path, fi.Mode().Perm())
	}
	return nil
}

// checkPath checks "/", then every directory on the way to the file, then
// the file itself, without following symbolic links (a link is checked for
// its owner only: its own mode means nothing).
func checkPath(abs string) error {
	parts := strings.Split(strings.TrimPrefix(filepath.Clean(abs), "/"), "/")
	cur := "/"
	for i := -1; i < len(parts); i++ {
		if i >= 0 {
			cur = filepath.Join(cur, parts[i])
		}
		last := i == len(parts)-1
		var st syscall.Stat_t
		if err := syscall.Lstat(cur, &st); err != nil {
			return fmt.Errorf("cannot find %s: %w", cur, err)
		}
		mode := st.Mode & syscall.S_IFMT
		isDir, isReg, isLnk := mode == syscall.S_IFDIR, mode == syscall.S_IFREG, mode == syscall.S_IFLNK
		if !last && !isDir && !isLnk {
			return fmt.Errorf("wrong file type in script path: %s is not a directory", cur)
		}
		if last && !isReg && !isLnk {
			return fmt.Errorf("wrong file type in script path: %s is not a regular file", cur)
		}
		perm := st.Mode & 0o7777
		if st.Uid != 0 {
			return fmt.Errorf("unsafe permissions: %s is owned by uid %d, not root", cur, st.Uid)
		}
		if (isDir && perm&syscall.S_ISVTX == 0) || isReg {
			if st.Gid != 0 && perm&0o020 != 0 {
				return fmt.Errorf("unsafe permissions: %s is group-writable by gid %d (mode %04o)", cur, st.Gid, perm)
			}
			if perm&0o002 != 0 {
				return fmt.Errorf("unsafe permissions: %s is world-writable (mode %04o)", cur, perm)
			}
		}
	}
	return nil
}
