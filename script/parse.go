// Package script runs operators' commands (vrrp_script checks, notify_*
// scripts) the way keepalived does, and better for shell syntax.
//
// A command is written as one string in the configuration. Parse splits it
// with keepalived's rules (whitespace separates words; single and double
// quotes group them; backslash escapes work inside and outside quotes) and
// decides how to run it: a plain command is exec'ed directly, like
// keepalived; a command that uses shell syntax ("[[ -f x ]] && exit 1 || exit
// 0", pipes, redirections, $VARS, globs, ...) runs under a shell -c exactly as
// written (bash when installed), where keepalived 2.x would refuse it ("Cannot find script [[ in
// path"). Describe says which of the two it chose, for the debug log.
//
// Run starts a command in its own process group, waits for it, and kills the
// whole group (SIGKILL) at its timeout, when its context is cancelled, and
// when the command itself exits: a command never leaves a zombie or a stray
// child behind (a script that wants to start a daemon must detach it with
// setsid). CheckSecure implements enable_script_security.
//
// The package does not schedule anything: vrrp_script intervals, rise/fall
// and weights belong to package track; notify ordering to package notify.
package script

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// ShellPath is the shell that runs commands using shell syntax: /bin/bash
// when it is installed, because operators write bash ("[[ -f x ]]" is the
// keepalived tutorial's check, and under dash it fails as "[[: not found",
// so "[[ -f x ]] && exit 1 || exit 0" would always succeed); else /bin/sh.
var ShellPath = sync.OnceValue(func() string {
	if fi, err := os.Stat("/bin/bash"); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return "/bin/bash"
	}
	return "/bin/sh"
})

// Command is a parsed command line.
type Command struct {
	Raw  string   // as written in the config
	Argv []string // argv to exec (for Shell: [ShellPath(), "-c", Raw])
	// Shell is true when Raw uses shell syntax ([[ ]], &&, ||, |, ;, <, >,
	// $(...), backticks, globs, env assignments...): it runs under
	// ShellPath() -c (bash when installed, else /bin/sh).
	Shell bool
}

// shellWords are first words that only a shell understands: keywords and
// builtins that have no executable of their own.
var shellWords = map[string]bool{
	"[[": true, "!": true, "{": true, "}": true, "(": true, "if": true,
	"for": true, "while": true, "until": true, "case": true, "exit": true,
	"cd": true, "export": true, "source": true, ".": true, "eval": true,
	"exec": true, "set": true, "unset": true, "local": true, "return": true,
	":": true, "readonly": true, "shift": true, "trap": true, "ulimit": true,
	"umask": true, "wait": true, "alias": true, "function": true,
}

// Parse splits raw keepalived-style and decides whether it needs a shell.
// Empty raw (or raw of blanks only) is an error, and so is an unterminated
// quote or a trailing backslash.
func Parse(raw string) (Command, error) {
	words, err := split(raw)
	if err != nil {
		return Command{}, fmt.Errorf("command %q: %w", raw, err)
	}
	if len(words) == 0 {
		return Command{}, errors.New("empty command")
	}
	c := Command{Raw: raw}
	if usesShell(raw, words[0]) {
		c.Shell = true
		c.Argv = []string{ShellPath(), "-c", raw}
		return c, nil
	}
	c.Argv = words
	return c, nil
}

// isBlank is keepalived's WHITE_SPACE.
func isBlank(c byte) bool {
	switch c {
	case ' ', '\t', '\f', '\n', '\r', '\v':
		return true
	}
	return false
}

// split is keepalived's alloc_strvec_quoted_escaped (lib/parser.c): words
// separated by blanks; ' and " quote (either may appear mid-word and the
// quoted text joins the word); a backslash escapes the next character,
// inside quotes too, with C escapes \a \b \E \f \n \r \t \v, \xHH, \cX and
// octal \NNN.
func split(s string) ([]string, error) {
	var words []string
	i := 0
	for {
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i == len(s) {
			return words, nil
		}
		var w []byte
		var quote byte
	word:
		for i < len(s) {
			c := s[i]
			switch {
			case c == '\\':
				i++
				if i == len(s) {
					return nil, errors.New("backslash at end of command")
				}
				var b byte
				b, i = unescape(s, i)
				w = append(w, b)
			case quote != 0 && c == quote:
				quote = 0
				i++
			case quote != 0:
				w = append(w, c)
				i++
			case c == '"' || c == '\'':
				quote = c
				i++
			case isBlank(c):
				break word
			default:
				w = append(w, c)
				i++
			}
		}
		if quote != 0 {
			return nil, fmt.Errorf("missing terminating %c", quote)
		}
		words = append(words, string(w))
	}
}

// unescape decodes the escape whose first character (after the backslash)
// is s[i]; it returns the byte and the index after the escape.
func unescape(s string, i int) (byte, int) {
	c := s[i]
	isHex := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
	}
	hexVal := func(c byte) byte {
		switch {
		case c >= '0' && c <= '9':
			return c - '0'
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10
		default:
			return c - 'A' + 10
		}
	}
	switch {
	case c == 'x' && i+1 < len(s) && isHex(s[i+1]):
		var b byte
		i++
		for i < len(s) && isHex(s[i]) {
			b = b<<4 | hexVal(s[i])
			i++
		}
		return b, i
	case c == 'c' && i+1 < len(s):
		return s[i+1] & 0x1f, i + 2
	case c >= '0' && c <= '7':
		b := c - '0'
		i++
		for n := 0; n < 2 && i < len(s) && s[i] >= '0' && s[i] <= '7'; n++ {
			b = b<<3 + s[i] - '0'
			i++
		}
		return b, i
	}
	m := map[byte]byte{'a': '\a', 'b': '\b', 'E': 0x1b, 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}
	if b, ok := m[c]; ok {
		return b, i + 1
	}
	return c, i + 1
}

// usesShell reports whether raw uses shell syntax: a shell keyword or builtin
// as its first word, an environment assignment before the command, or,
// outside quotes, one of | & ; < > ( ) ` * ? [ a $ expansion, a newline, a
// ~ or # starting a word. Inside double quotes, $ expansions and backticks
// count too (the shell expands them there); nothing inside single quotes
// does. Escaped characters never count.
func usesShell(raw, first string) bool {
	if shellWords[first] || isAssignment(first) {
		return true
	}
	var quote byte
	wordStart := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' {
			i++
			wordStart = false
			continue
		}
		switch quote {
		case '\'':
			if c == '\'' {
				quote = 0
			}
			continue
		case '"':
			switch c {
			case '"':
				quote = 0
			case '`':
				return true
			case '$':
				if isExpansion(raw[i+1:]) {
					return true
				}
			}
			continue
		}
		switch c {
		case '\'', '"':
			quote = c
			wordStart = false
			continue
		case '|', '&', ';', '<', '>', '(', ')', '`', '*', '?', '[', '\n':
			return true
		case '$':
			if isExpansion(raw[i+1:]) {
				return true
			}
		case '~', '#':
			if wordStart {
				return true
			}
		}
		wordStart = isBlank(c)
	}
	return false
}

// isExpansion reports whether the text after a '$' makes it an expansion.
func isExpansion(rest string) bool {
	if rest == "" {
		return false
	}
	c := rest[0]
	return c == '(' || c == '{' || c == '_' || c == '?' || c == '@' || c == '*' || c == '#' ||
		c == '!' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isAssignment reports whether w is NAME=VALUE (an environment assignment
// for the command that follows).
func isAssignment(w string) bool {
	eq := strings.IndexByte(w, '=')
	if eq <= 0 {
		return false
	}
	for i := 0; i < eq; i++ {
		c := w[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Describe says in one line how the command will run, for the debug log:
// "exec /usr/bin/test ! -f /etc/down" or
// "/bin/sh -c '[[ -f x ]] && exit 1 || exit 0'".
func (c Command) Describe() string {
	if len(c.Argv) == 0 {
		return "(empty command)"
	}
	if c.Shell {
		return c.Argv[0] + " -c " + shellQuote(c.Raw)
	}
	argv := append([]string(nil), c.Argv...)
	if !strings.Contains(argv[0], "/") {
		if p, err := exec.LookPath(argv[0]); err == nil {
			argv[0] = p
		} else {
			argv[0] += " (not found in PATH)"
		}
	}
	for i := 1; i < len(argv); i++ {
		argv[i] = shellQuote(argv[i])
	}
	return "exec " + strings.Join(argv, " ")
}

// shellQuote quotes s for a shell when it needs quoting.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("_-./=:,+@%!", c) >= 0) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
