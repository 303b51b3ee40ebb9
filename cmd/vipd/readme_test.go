package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// readmeCommands returns every vipd command line of README.md's sh blocks: the words of the
// line up to a comment, a pipe or a redirection, with backslash continuations joined.
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds [][]string
	in, cont := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
			continue
		case strings.HasPrefix(line, "```"):
			in = false
			continue
		case !in:
			continue
		}
		line = cont + line
		if strings.HasSuffix(strings.TrimSpace(line), "\\") {
			cont = strings.TrimSuffix(strings.TrimSpace(line), "\\") + " "
			continue
		}
		cont = ""
		words := shellWords(line)
		if len(words) > 0 && words[0] == "sudo" {
			words = words[1:]
		}
		if len(words) > 1 && words[0] == "vipd" {
			cmds = append(cmds, words[1:])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// shellWords splits a shell line into words, honouring single and double quotes, and stops at
// an unquoted #, |, > or <. A $(...) substitution becomes one placeholder word.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	inWord, quote := false, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			depth := 0
			for ; i < len(line); i++ {
				if line[i] == '(' {
					depth++
				} else if line[i] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			w.WriteString("SUBST")
			inWord = true
		case c == '#' || c == '|' || c == '>' || c == '<' || c == ';' || c == '&':
			if inWord {
				words = append(words, w.String())
			}
			return words
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
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

func TestShellWords(t *testing.T) {
	for _, c := range []struct {
		line string
		want []string
	}{
		{`vipd maint on --reason "kernel upgrade"        # every instance`, []string{"vipd", "maint", "on", "--reason", "kernel upgrade"}},
		{`vipd keys remove $(cat /etc/vipd/gossip.key)`, []string{"vipd", "keys", "remove", "SUBST"}},
		{`vipd status -o json | jq .`, []string{"vipd", "status", "-o", "json"}},
		{`vipd convert a.conf > b.yaml`, []string{"vipd", "convert", "a.conf"}},
	} {
		got := shellWords(c.line)
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("shellWords(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}
