// Package readme reads the commands a Markdown file shows: the lines of its
// ```sh blocks and its inline code spans. Tests use it to hold the README to
// what the binary does (cmd/vipd parses every vipd line, integration runs
// them all in a lab).
package readme

import (
	"strings"
)

// Line is one command of a ```sh block: backslash continuations joined,
// comments kept (sh -c ignores them).
type Line struct {
	N    int    // line number in the file, 1-based, of its first line
	Text string // the command as written
}

// ShellLines returns every non-empty, non-comment line of the ```sh blocks.
func ShellLines(md string) []Line {
	var out []Line
	in, cont, start := false, "", 0
	for i, l := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
			continue
		case strings.HasPrefix(l, "```"):
			if in && cont != "" {
				// A block whose last line goes on: keep what there is.
				out = append(out, Line{N: start, Text: strings.TrimSpace(cont)})
				cont = ""
			}
			in = false
			continue
		case !in:
			continue
		}
		if cont == "" {
			start = i + 1
		} else {
			l = cont + strings.TrimLeft(l, " \t")
		}
		if t := strings.TrimSpace(l); strings.HasSuffix(t, "\\") {
			cont = strings.TrimSpace(strings.TrimSuffix(t, "\\")) + " "
			continue
		}
		cont = ""
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, Line{N: start, Text: t})
		}
	}
	return out
}

// Spans returns the inline code spans outside fenced blocks whose text starts
// with one of the given command words ("vipd", "make", ...), in order, with
// the line each is on. A span broken over two lines is joined with a space.
func Spans(md string, commands ...string) []Line {
	var out []Line
	lines := strings.Split(md, "\n")
	fenced := false
	var span strings.Builder
	open, at := false, 0
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
			open = false
			continue
		}
		if fenced {
			continue
		}
		for j := 0; j < len(l); j++ {
			if l[j] != '`' {
				if open {
					span.WriteByte(l[j])
				}
				continue
			}
			if !open {
				open, at = true, i+1
				span.Reset()
				continue
			}
			open = false
			text := strings.TrimSpace(span.String())
			w := strings.Fields(text)
			if len(w) > 0 && contains(commands, w[0]) {
				out = append(out, Line{N: at, Text: text})
			}
		}
		if open {
			span.WriteByte(' ')
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Words splits a shell line into words, honouring single and double quotes,
// and stops at an unquoted #, |, >, <, ; or &. A $(...) substitution becomes
// the one word SUBST.
func Words(line string) []string {
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
