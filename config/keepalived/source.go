package keepalived

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vipd/vipd/config"
)

// Limits that keep hostile or broken input from hanging the parser.
const (
	maxIncludeDepth = 16      // nested include levels
	maxIncludeFiles = 1024    // files read in one run
	maxLineLen      = 1 << 16 // bytes of one line after $NAME expansion
	maxExpansions   = 64      // $NAME substitution rounds on one line
	maxTotalLines   = 1 << 17 // logical lines produced, all files together
	maxTotalBytes   = 1 << 24 // bytes of logical lines, all files together
)

// definition is a $NAME=value definition. A multi-line definition (value
// continued with a trailing '\') holds one entry per line.
type definition struct {
	lines []string
}

// reader turns files into statements: it strips comments, applies
// @conditional lines and $NAME definitions, follows include lines and
// splits lines at braces, the way keepalived's read_line does.
type reader struct {
	opts  Options
	diags *config.Diagnostics
	defs  map[string]*definition
	out   []stmt
	files int
	lines int
	bytes int
	// tooBig is set once the line or byte budget is spent.
	tooBig bool
	active []string // files being read, for include loop detection
	// pending multi-line definition being continued, if any
	cont *definition
}

func newReader(opts Options, diags *config.Diagnostics) *reader {
	r := &reader{opts: opts, diags: diags, defs: map[string]*definition{}}
	r.defs["_HASH"] = &definition{lines: []string{"#"}}
	r.defs["_BANG"] = &definition{lines: []string{"!"}}
	for k, v := range opts.Defines {
		r.defs[k] = &definition{lines: []string{v}}
	}
	return r
}

// readFile reads the lines of one file (src already loaded).
func (r *reader) readFile(name string, src []byte, depth int) {
	r.files++
	r.active = append(r.active, name)
	defer func() { r.active = r.active[:len(r.active)-1] }()

	text := string(src)
	lineNo := 0
	for len(text) > 0 {
		var line string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, ""
		}
		lineNo++
		if r.tooBig {
			return
		}
		pos := config.Pos{File: name, Line: lineNo}
		line = strings.TrimRight(line, "\r")
		dl, cont, unterminated := decomment(line)
		if unterminated {
			r.diags.Errorf(pos, "unterminated quote")
		}
		if r.cont != nil {
			r.continueDefinition(dl, cont)
			continue
		}
		if dl == "" {
			continue
		}
		r.logicalLine(pos, dl, cont, depth, 0)
	}
	// A definition continued past the end of the file ends there.
	r.cont = nil
}

// continueDefinition adds one more line to a multi-line $NAME definition.
func (r *reader) continueDefinition(line string, cont bool) {
	d := r.cont
	if cont {
		line = strings.TrimRight(strings.TrimSuffix(line, `\`), " \t")
	} else {
		r.cont = nil
	}
	if line != "" {
		d.lines = append(d.lines, line)
	}
}

// logicalLine handles one decommented, non-empty line.
func (r *reader) logicalLine(pos config.Pos, line string, cont bool, depth, round int) {
	r.lines++
	r.bytes += len(line)
	if r.lines > maxTotalLines || r.bytes > maxTotalBytes {
		if !r.tooBig {
			r.diags.Errorf(pos, "configuration too large after includes and $ expansion (more than %d lines or %d bytes)", maxTotalLines, maxTotalBytes)
			r.tooBig = true
		}
		return
	}
	for {
		// @id / @^id conditional lines.
		if line[0] == '@' {
			neg := strings.HasPrefix(line, "@^")
			rest := line[1:]
			if neg {
				rest = line[2:]
			}
			i := strings.IndexAny(rest, " \t")
			if i < 0 {
				return // nothing after the id
			}
			if r.idMatches(rest[:i]) == neg {
				return
			}
			line = strings.TrimLeft(rest[i:], " \t")
			if line == "" {
				return
			}
		}
		// $NAME=value definitions.
		if line[0] == '$' {
			if name, value, ok := splitDefinition(line); ok {
				d := &definition{}
				if cont {
					value = strings.TrimRight(strings.TrimSuffix(value, `\`), " \t")
					r.cont = d
				}
				if value != "" || !cont {
					d.lines = append(d.lines, value)
				}
				r.defs[name] = d
				return
			}
		}
		if strings.HasPrefix(line, "~SEQ") || strings.HasPrefix(line, "~LST") {
			r.diags.Warnf(pos, "%s: not implemented by vipd, line ignored", line[:4])
			return
		}
		if line[0] == '~' {
			return
		}
		if !strings.Contains(line, "$") {
			break
		}
		expanded, extra, changed, err := r.expand(pos.File, line)
		if err != nil {
			r.diags.Errorf(pos, "%v", err)
			return
		}
		if !changed {
			break
		}
		round++
		if round > maxExpansions {
			r.diags.Errorf(pos, "$ definitions nested too deeply (more than %d rounds)", maxExpansions)
			return
		}
		var unterminated bool
		line, _, unterminated = decomment(expanded)
		if unterminated {
			r.diags.Errorf(pos, "unterminated quote after $ expansion")
		}
		// Extra lines of a multi-line definition follow the first one.
		defer func(extra []string, round int) {
			for _, l := range extra {
				if l, _, _ = decomment(l); l != "" {
					r.logicalLine(pos, l, false, depth, round)
				}
			}
		}(extra, round)
		if line == "" {
			return
		}
	}
	if name, ok := includeArg(line); ok {
		r.include(pos, name, depth)
		return
	}
	stmts, unmatched := splitLine(pos, line)
	if unmatched {
		r.diags.Errorf(pos, "unmatched quote")
	}
	r.out = append(r.out, stmts...)
}

func (r *reader) idMatches(id string) bool {
	ids := r.opts.ConfigIDs
	for _, c := range ids {
		if c == id {
			return true
		}
	}
	return false
}

// splitDefinition splits "$NAME=value" (blanks allowed around '=').
func splitDefinition(line string) (name, value string, ok bool) {
	if len(line) < 2 || !(isAlpha(line[1]) || line[1] == '_') {
		return "", "", false
	}
	i := 2
	for i < len(line) && (isAlnum(line[i]) || line[i] == '_') {
		i++
	}
	name = line[1:i]
	rest := strings.TrimLeft(line[i:], " \t")
	if !strings.HasPrefix(rest, "=") {
		return "", "", false
	}
	return name, strings.TrimLeft(rest[1:], " \t"), true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// expand substitutes every defined $NAME / ${NAME} in line once. A
// multi-line definition may only end a line; its further lines are
// returned in extra.
//
// Besides the file's own definitions, keepalived 2.2.7 knows (lib/parser.c
// set_std_definitions): ${_PWD}, the directory of the file being read
// (keepalived chdir()s there and calls getcwd); ${_INSTANCE}, the config id
// (-i, default the short host name); ${_RANDOM} or ${_RANDOM MIN [MAX]},
// a random number in MIN..MAX (default 0..32767); ${_HASH} '#' and ${_BANG} '!'.
func (r *reader) expand(file, line string) (out string, extra []string, changed bool, err error) {
	var b strings.Builder
	i := 0
	for i < len(line) {
		c := line[i]
		if c != '$' || i+1 >= len(line) {
			b.WriteByte(c)
			i++
			continue
		}
		j := i + 1
		braces := line[j] == '{'
		if braces {
			j++
		}
		k := j
		if k < len(line) && (isAlpha(line[k]) || line[k] == '_') {
			k++
			for k < len(line) && (isAlnum(line[k]) || line[k] == '_') {
				k++
			}
		}
		name := line[j:k]
		end := k
		var params string
		if braces {
			// Only ${NAME params} may carry parameters: digits and spaces,
			// not ending with a space (lib/parser.c find_definition).
			q := k
			for q < len(line) && (line[q] == ' ' || line[q] >= '0' && line[q] <= '9') {
				q++
			}
			params = line[k:q]
			if q >= len(line) || line[q] != '}' || strings.HasSuffix(params, " ") {
				name = ""
			}
			end = q + 1
		}
		d := r.defs[name]
		if d == nil && name != "" {
			d = r.builtin(file, name, strings.TrimSpace(params))
		} else if strings.TrimSpace(params) != "" {
			d = nil // only _RANDOM takes parameters
		}
		if name == "" || d == nil {
			b.WriteByte(c)
			i++
			continue
		}
		changed = true
		first := ""
		if len(d.lines) > 0 {
			first = d.lines[0]
		}
		b.WriteString(first)
		if len(d.lines) > 1 {
			if strings.TrimSpace(line[end:]) != "" {
				return "", nil, false, fmt.Errorf("$%s: a multi-line definition must end its line", name)
			}
			extra = append(extra, d.lines[1:]...)
		}
		i = end
		if b.Len() > maxLineLen {
			return "", nil, false, fmt.Errorf("line longer than %d bytes after $ expansion", maxLineLen)
		}
	}
	return b.String(), extra, changed, nil
}

// includeArg recognises "include PATTERN" (and keepalived's includer/
// includem/... variants, read like include).
func includeArg(line string) (string, bool) {
	if !strings.HasPrefix(line, "include") || len(line) < 8 {
		return "", false
	}
	rest := line[7:]
	if rest[0] != ' ' && rest[0] != '\t' {
		if len(rest) < 2 || !strings.ContainsRune("rmwbat", rune(rest[0])) || (rest[1] != ' ' && rest[1] != '\t') {
			return "", false
		}
		rest = rest[1:]
	}
	arg := strings.TrimSpace(rest)
	if len(arg) >= 2 && arg[0] == '"' && arg[len(arg)-1] == '"' {
		arg = arg[1 : len(arg)-1]
	}
	return arg, true
}

// include reads every file the pattern matches, relative to the directory
// of the including file, in sorted order.
func (r *reader) include(pos config.Pos, pattern string, depth int) {
	if pattern == "" {
		r.diags.Errorf(pos, "include: missing file name")
		return
	}
	if depth+1 > maxIncludeDepth {
		r.diags.Errorf(pos, "include %s: includes nested more than %d deep", pattern, maxIncludeDepth)
		return
	}
	full := pattern
	if !filepath.IsAbs(full) {
		full = filepath.Join(filepath.Dir(pos.File), pattern)
	}
	// keepalived globs with GLOB_BRACE: "{a,b}" names several patterns.
	var matches []string
	for _, pat := range expandBraces(full) {
		m, err := r.opts.Glob(pat)
		if err != nil {
			r.diags.Errorf(pos, "include %s: %v", pattern, err)
			return
		}
		matches = append(matches, m...)
	}
	if len(matches) == 0 {
		if strings.ContainsAny(pattern, "*?[{") {
			r.diags.Warnf(pos, "include %s: no file matches", pattern)
		} else {
			r.diags.Errorf(pos, "include %s: no such file", pattern)
		}
		return
	}
	for _, m := range matches {
		if r.isActive(m) {
			r.diags.Errorf(pos, "include %s: %s includes itself", pattern, m)
			continue
		}
		if r.files >= maxIncludeFiles {
			r.diags.Errorf(pos, "include %s: more than %d files", pattern, maxIncludeFiles)
			return
		}
		src, err := r.opts.ReadFile(m)
		if err != nil {
			r.diags.Errorf(pos, "include %s: %v", pattern, err)
			continue
		}
		r.readFile(m, src, depth+1)
	}
}

func (r *reader) isActive(name string) bool {
	c := filepath.Clean(name)
	for _, a := range r.active {
		if filepath.Clean(a) == c {
			return true
		}
	}
	return false
}

// maxBraceExpansions bounds the patterns one include line may expand to.
const maxBraceExpansions = 256

// expandBraces expands csh-style braces as glob(3) with GLOB_BRACE does:
// "a{b,c{d,e}}f" is abf, acdf, acef; "a{b}c" is abc. A '{' without its
// partner makes the whole pattern literal, as in glibc.
func expandBraces(pattern string) []string {
	out := expandBracesN(pattern, maxBraceExpansions)
	if len(out) == 0 {
		return []string{pattern}
	}
	return out
}

func expandBracesN(pattern string, budget int) []string {
	open := strings.IndexByte(pattern, '{')
	if open < 0 {
		return []string{pattern}
	}
	// Find the matching '}' and the top-level commas inside.
	depth, end := 0, -1
	var commas []int
	for i := open; i < len(pattern) && end < 0; i++ {
		switch pattern[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				end = i
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if end < 0 {
		return []string{pattern}
	}
	prefix, suffix := pattern[:open], pattern[end+1:]
	var out []string
	start := open + 1
	for _, stop := range append(commas, end) {
		for _, e := range expandBracesN(prefix+pattern[start:stop]+suffix, budget-len(out)) {
			if len(out) >= budget {
				return out
			}
			out = append(out, e)
		}
		start = stop + 1
	}
	return out
}

// builtin returns keepalived's standard definition name (with params, only
// for _RANDOM), or nil.
func (r *reader) builtin(file, name, params string) *definition {
	if params != "" && name != "_RANDOM" {
		return nil
	}
	switch name {
	case "_PWD":
		dir, err := filepath.Abs(filepath.Dir(file))
		if err != nil {
			dir = filepath.Dir(file)
		}
		return &definition{lines: []string{dir}}
	case "_INSTANCE":
		id := ""
		if len(r.opts.ConfigIDs) > 0 {
			id = r.opts.ConfigIDs[0]
		}
		return &definition{lines: []string{id}}
	case "_RANDOM":
		lo, hi := uint64(0), uint64(32767)
		f := strings.Fields(params)
		if len(f) > 0 {
			lo, _ = strconv.ParseUint(f[0], 10, 63)
		}
		if len(f) > 1 {
			hi, _ = strconv.ParseUint(f[1], 10, 63)
		}
		if hi < lo {
			// keepalived computes random() % (max - min + 1) + min with
			// unsigned wrap-around; vipd keeps to MIN.
			hi = lo
		}
		v := lo + rand.Uint64N(hi-lo+1)
		return &definition{lines: []string{strconv.FormatUint(v, 10)}}
	}
	return nil
}
