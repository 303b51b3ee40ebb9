package main

import (
	"os"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/readme"
)

// readmeCommands returns every vipd command line of README.md's sh blocks, as words (up to
// a comment, a pipe or a redirection), without the leading "vipd".
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	for _, l := range readme.ShellLines(string(b)) {
		words := readme.Words(l.Text)
		if len(words) > 0 && words[0] == "sudo" {
			words = words[1:]
		}
		if len(words) > 1 && words[0] == "vipd" {
			cmds = append(cmds, words[1:])
		}
	}
	return cmds
}

// TestREADMECommandsParse: every vipd command the README shows names a real command and only
// flags that command takes: each is run with --help appended, which parses the flags and prints
// the help instead of doing anything.
func TestREADMECommandsParse(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 15 {
		t.Fatalf("only %d vipd commands found in README.md's sh blocks: the extraction is broken", len(cmds))
	}
	for _, args := range cmds {
		r, got := vipd(t, append(append([]string{}, args...), "--help")...)
		if r.code != 0 || got != nil || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("README: vipd %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
