package script

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSecureFollowsKeepalivedRules(t *testing.T) {
	root := os.Getuid() == 0
	const nobody = 65534
	type node struct {
		rel      string
		mode     os.FileMode // applied with chmod (keeps sticky bits)
		uid, gid int
		dir      bool
		link     string // symlink target (relative to the base)
	}
	tests := []struct {
		name    string
		tree    []node
		raw     string // {} is replaced by the base directory
		wantErr string // "" means secure
	}{
		{
			name: "root-owned 0755 directories and script",
			tree: []node{{rel: "d", dir: true, mode: 0o755}, {rel: "d/s.sh", mode: 0o755}},
			raw:  "{}/d/s.sh arg",
		},
		{
			name:    "world-writable directory",
			tree:    []node{{rel: "d", dir: true, mode: 0o777}, {rel: "d/s.sh", mode: 0o755}},
			raw:     "{}/d/s.sh",
			wantErr: "/d is world-writable (mode 0777)",
		},
		{
			name: "sticky world-writable directory is fine (like /tmp)",
			tree: []node{{rel: "d", dir: true, mode: 0o777 | os.ModeSticky}, {rel: "d/s.sh", mode: 0o755}},
			raw:  "{}/d/s.sh",
		},
		{
			name:    "directory group-writable by a non-root group",
			tree:    []node{{rel: "d", dir: true, mode: 0o775, gid: nobody}, {rel: "d/s.sh", mode: 0o755}},
			raw:     "{}/d/s.sh",
			wantErr: "/d is group-writable by gid 65534",
		},
		{
			name: "directory group-writable by root's group is fine",
			tree: []node{{rel: "d", dir: true, mode: 0o775}, {rel: "d/s.sh", mode: 0o755}},
			raw:  "{}/d/s.sh",
		},
		{
			name:    "directory owned by a non-root user",
			tree:    []node{{rel: "d", dir: true, mode: 0o755, uid: nobody}, {rel: "d/s.sh", mode: 0o755}},
			raw:     "{}/d/s.sh",
			wantErr: "/d is owned by uid 65534, not root",
		},
		{
			name:    "world-writable script",
			tree:    []node{{rel: "d", dir: true, mode: 0o755}, {rel: "d/s.sh", mode: 0o757}},
			raw:     "{}/d/s.sh",
			wantErr: "/d/s.sh is world-writable",
		},
		{
			name:    "script group-writable by a non-root group",
			tree:    []node{{rel: "d", dir: true, mode: 0o755}, {rel: "d/s.sh", mode: 0o775, gid: nobody}},
			raw:     "{}/d/s.sh",
			wantErr: "/d/s.sh is group-writable by gid 65534",
		},
		{
			name:    "script owned by a non-root user",
			tree:    []node{{rel: "d", dir: true, mode: 0o755}, {rel: "d/s.sh", mode: 0o755, uid: nobody}},
			raw:     "{}/d/s.sh",
			wantErr: "owned by uid 65534",
		},
		{
			name:    "script not executable",
			tree:    []node{{rel: "d", dir: true, mode: 0o755}, {rel: "d/s.sh", mode: 0o644}},
			raw:     "{}/d/s.sh",
			wantErr: "not executable (mode 0644)",
		},
		{
			name:    "missing script",
			tree:    []node{{rel: "d", dir: true, mode: 0o755}},
			raw:     "{}/d/s.sh",
			wantErr: "cannot find",
		},
		{
			name:    "file where a directory should be",
			tree:    []node{{rel: "f", mode: 0o755}},
			raw:     "{}/f/s.sh",
			wantErr: "is not a directory",
		},
		{
			name: "symlink to a script in an insecure directory",
			tree: []node{
				{rel: "bad", dir: true, mode: 0o777}, {rel: "bad/s.sh", mode: 0o755},
				{rel: "good", dir: true, mode: 0o755}, {rel: "good/s.sh", link: "bad/s.sh"},
			},
			raw:     "{}/good/s.sh",
			wantErr: "/bad is world-writable",
		},
		{
			name: "symlink to a secure script",
			tree: []node{
				{rel: "ok", dir: true, mode: 0o755}, {rel: "ok/s.sh", mode: 0o755},
				{rel: "good", dir: true, mode: 0o755}, {rel: "good/s.sh", link: "ok/s.sh"},
			},
			raw: "{}/good/s.sh",
		},
		{
			name: "directory reached through a symlink (like /bin -> usr/bin)",
			tree: []node{{rel: "usr", dir: true, mode: 0o755}, {rel: "usr/s.sh", mode: 0o755}, {rel: "bin", link: "usr"}},
			raw:  "{}/bin/s.sh",
		},
		{
			name:    "symlinked directory owned by a non-root user",
			tree:    []node{{rel: "usr", dir: true, mode: 0o755}, {rel: "usr/s.sh", mode: 0o755}, {rel: "bin", link: "usr", uid: nobody}},
			raw:     "{}/bin/s.sh",
			wantErr: "/bin is owned by uid 65534",
		},
		{
			name: "system binary through /bin",
			raw:  "/bin/true",
		},
		{
			name:    "shell command checks its absolute first word",
			tree:    []node{{rel: "d", dir: true, mode: 0o777}, {rel: "d/s.sh", mode: 0o755}},
			raw:     "{}/d/s.sh && exit 0",
			wantErr: "/d is world-writable",
		},
		{
			name:    "shell command first word cut at a metacharacter",
			tree:    []node{{rel: "d", dir: true, mode: 0o777}, {rel: "d/s.sh", mode: 0o755}},
			raw:     "{}/d/s.sh;exit 0",
			wantErr: "/d is world-writable",
		},
		{
			name: "shell command without a path is trusted",
			tree: []node{{rel: "d", dir: true, mode: 0o777}},
			raw:  "[[ -f {}/d/x ]] && exit 1 || exit 0",
		},
		{
			name: "bare name found in PATH",
			raw:  "true",
		},
		{
			name:    "bare name not in PATH",
			raw:     "no-such-command-vipd-test",
			wantErr: "cannot find script no-such-command-vipd-test in PATH",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !root && len(tt.tree) > 0 {
				t.Skip("needs root: the test tree must be root-owned (else every case fails on the owner), and chown needs root")
			}
			base := t.TempDir()
			for _, n := range tt.tree {
				p := filepath.Join(base, n.rel)
				switch {
				case n.link != "":
					if err := os.Symlink(filepath.Join(base, n.link), p); err != nil {
						t.Fatal(err)
					}
					if err := os.Lchown(p, n.uid, n.gid); err != nil {
						t.Fatal(err)
					}
					continue
				case n.dir:
					if err := os.Mkdir(p, 0o700); err != nil {
						t.Fatal(err)
					}
				default:
					if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(p, n.mode); err != nil {
					t.Fatal(err)
				}
				if n.uid != 0 || n.gid != 0 {
					if err := os.Lchown(p, n.uid, n.gid); err != nil {
						t.Fatal(err)
					}
				}
			}
			// t.TempDir makes a directory that removal needs to write.
			t.Cleanup(func() { _ = os.Chmod(base, 0o700) })
			c := mustParse(t, strings.ReplaceAll(tt.raw, "{}", base))
			err := CheckSecure(c)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckSecure(%s) = %v, want secure", c.Raw, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckSecure(%s) = %v, want an error containing %q", c.Raw, err, tt.wantErr)
			}
		})
	}
}

func TestCheckSecureRejectsAnEmptyCommand(t *testing.T) {
	if err := CheckSecure(Command{}); err == nil {
		t.Error("CheckSecure(empty) = nil")
	}
}
