package keepalived

import (
	"strings"

	"github.com/vipd/vipd/config"
)

// word is one word of a keepalived line. Quotes are removed from text; raw
// keeps the word as written (for notify commands, which are kept verbatim).
type word struct {
	text   string
	raw    string
	quoted bool
}

// stmt is one logical statement: the words between two line ends or braces,
// or a single brace. keepalived splits every line at an unquoted '{' or '}',
// so "authentication { auth_type PASS }" is four statements:
// "authentication", "{", "auth_type PASS", "}".
type stmt struct {
	pos   config.Pos
	words []word
	brace byte // '{' or '}' for a brace statement, else 0
}

// decomment removes a '#' or '!' comment (outside double quotes), unescapes
// "\#" and "\!" outside quotes, and trims surrounding blanks. cont reports a
// trailing backslash (a continued $NAME= definition); the backslash is kept.
// unterminated reports an unbalanced double quote.
func decomment(s string) (out string, cont, unterminated bool) {
	var b strings.Builder
	quote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\':
			if i+1 == len(s) {
				cont = true
				out = strings.TrimRight(b.String(), " \t")
				return strings.TrimLeft(out, " \t") + `\`, cont, quote
			}
			if !quote && (s[i+1] == '#' || s[i+1] == '!') {
				b.WriteByte(s[i+1])
				i++
				continue
			}
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
			continue
		case !quote && (c == '#' || c == '!'):
			return strings.Trim(b.String(), " \t"), false, false
		}
		b.WriteByte(c)
	}
	return strings.Trim(b.String(), " \t"), false, quote
}

// splitLine splits one decommented line into statements: words separated by
// blanks, double-quoted strings as one word (quotes removed, no escapes, as
// keepalived does), and every unquoted '{' or '}' as a statement of its own.
// unmatched reports a double quote without its closing partner (the rest of
// the line is then taken as the quoted word).
func splitLine(pos config.Pos, line string) (out []stmt, unmatched bool) {
	var cur []word
	flush := func() {
		if len(cur) > 0 {
			out = append(out, stmt{pos: pos, words: cur})
			cur = nil
		}
	}
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f':
			i++
		case c == '{' || c == '}':
			flush()
			out = append(out, stmt{pos: pos, brace: c})
			i++
		case c == '"':
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				unmatched = true
				cur = append(cur, word{text: line[i+1:], raw: line[i:], quoted: true})
				i = len(line)
				break
			}
			cur = append(cur, word{text: line[i+1 : i+1+end], raw: line[i : i+2+end], quoted: true})
			i += end + 2
		default:
			j := i
			for j < len(line) && !strings.ContainsRune(" \t\r\n\v\f\"{}", rune(line[j])) {
				j++
			}
			cur = append(cur, word{text: line[i:j], raw: line[i:j]})
			i = j
		}
	}
	flush()
	return out, unmatched
}
