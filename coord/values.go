package coord

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
)

// Priority overrides are 1..254: 0 is reserved for a master that leaves and
// 255 for the address owner (RFC 3768 5.3.4).
const (
	MinPriority = 1
	MaxPriority = 254
)

// MaxValueSize bounds the value of a key vipd reads as configuration
// (config/*, priority/, maintenance/): a larger value is refused without
// being decoded, like a bad one (its last good value stays in force, a log
// line names the key and the size, vipd_etcd_rejected_values_total counts
// it). A vrrp_instance with a thousand VIPs is about 30 KiB; etcd itself
// takes values up to 1.5 MiB by default. The status/ and arbiter/ keys,
// written by vipd, are not configuration.
const MaxValueSize = 256 << 10

// DefaultMaintenanceReason is the reason of a maintenance key stored with an
// empty value.
const DefaultMaintenanceReason = "maintenance"

// DecodePriority reads the value of a priority/<instance>/<node> key: an
// integer 1..254, blanks around it ignored. The error quotes the value and
// says what is expected (`"banana": must be an integer 1..254`); the caller
// names the key (KeyError).
func DecodePriority(val []byte) (int, error) {
	s := strings.TrimSpace(string(val))
	n, err := strconv.Atoi(s)
	if err != nil || n < MinPriority || n > MaxPriority {
		return 0, fmt.Errorf("%s: must be an integer %d..%d", quoteValue(s), MinPriority, MaxPriority)
	}
	return n, nil
}

// DecodeMaintenance reads the value of a maintenance key: free text, the
// reason shown in logs and status. It is one line: blanks around it are
// trimmed and every run of white space or control characters inside
// becomes one space; invalid UTF-8 is replaced. An empty value means
// DefaultMaintenanceReason. Every value is valid.
func DecodeMaintenance(val []byte) string {
	s := strings.ToValidUTF8(string(val), "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if s == "" {
		return DefaultMaintenanceReason
	}
	return s
}

// maxQuoted bounds how much of a bad value an error message repeats.
const maxQuoted = 64

// quoteValue quotes s for a message, shortened when long.
func quoteValue(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}

// PosFile is the file name that positions of objects and diagnostics
// decoded from the value of key carry: "etcd:<key>", so that a message
// reads "etcd:/vipd/config/instances/VI_1:3: ...".
func PosFile(key string) string { return "etcd:" + key }

// DecodeInstance reads the value of the config/instances/<name> key `key`:
// one vrrp_instance, written either
//   - as YAML or JSON of one object in the vipd.yaml schema (an entry of
//     instances:; it is decoded by config.DecodeYAML itself, so the schema
//     is the file's), or
//   - as the keepalived.conf block "vrrp_instance NAME { ... }",
//
// told apart by the value's first word. The object's name must be name
// (a YAML or JSON value without one takes it). Positions, of the object and
// of the diagnostics, are "etcd:<key>:LINE", LINE counted in the value.
// Defaults are not filled in (config.Normalize does that).
//
// The diagnostics returned are the warnings, also when the value is
// rejected; err is non-nil when the value is rejected, a
// *config.ConfigError listing every error. The object is nil then.
func DecodeInstance(key, name string, val []byte) (*config.Instance, config.Diagnostics, error) {
	m, ds := decodeObject(KindInstance, key, name, val)
	if err := ds.Err(); err != nil {
		return nil, ds.Warnings(), err
	}
	return m.Instances[0], ds.Warnings(), nil
}

// DecodeVirtualServer reads the value of the config/virtual_servers/<name>
// key `key`: YAML or JSON of one entry of virtual_servers:, or the block
// "virtual_server IP PORT { ... }" (also "fwmark N", "group NAME"). The name
// is as written after virtual_server ("10.0.0.1 80"). Otherwise as
// DecodeInstance.
func DecodeVirtualServer(key, name string, val []byte) (*config.VirtualServer, config.Diagnostics, error) {
	m, ds := decodeObject(KindVirtualServer, key, name, val)
	if err := ds.Err(); err != nil {
		return nil, ds.Warnings(), err
	}
	return m.VirtualServers[0], ds.Warnings(), nil
}

// DecodeScript reads the value of the config/scripts/<name> key `key`: YAML
// or JSON of one entry of scripts:, or the block "vrrp_script NAME { ... }".
// Otherwise as DecodeInstance.
func DecodeScript(key, name string, val []byte) (*config.Script, config.Diagnostics, error) {
	m, ds := decodeObject(KindScript, key, name, val)
	if err := ds.Err(); err != nil {
		return nil, ds.Warnings(), err
	}
	return m.Scripts[0], ds.Warnings(), nil
}

// objectKind describes one kind of config object for the decoders.
type objectKind struct {
	section string // the vipd.yaml list: "instances"
	block   string // the keepalived keyword: "vrrp_instance"
	what    string // for messages: "instance"
}

func objectKindOf(k Kind) objectKind {
	switch k {
	case KindVirtualServer:
		return objectKind{section: sectionVirtualServers, block: "virtual_server", what: "virtual server"}
	case KindScript:
		return objectKind{section: sectionScripts, block: "vrrp_script", what: "script"}
	}
	return objectKind{section: sectionInstances, block: "vrrp_instance", what: "instance"}
}

// decodeObject decodes one value into a model holding exactly the one object
// of kind, named name, when the diagnostics hold no error.
func decodeObject(kind Kind, key, name string, val []byte) (*config.Model, config.Diagnostics) {
	ok := objectKindOf(kind)
	file := PosFile(key)
	val = bytes.TrimPrefix(val, []byte("\ufeff"))
	var (
		m  *config.Model
		ds config.Diagnostics
	)
	if isKeepalivedBlock(val) {
		m, ds = decodeKeepalived(ok, file, val)
	} else {
		m, ds = decodeYAML(ok, file, val)
	}
	if ds.Err() != nil {
		return nil, ds
	}
	// decodeKeepalived and decodeYAML checked that m holds the one object.
	got, pos := objectName(m, kind)
	switch {
	case got == "":
		setObjectName(m, kind, name)
	case got != name:
		ds.Errorf(pos, "%s %s: the name must be the key's, %s", ok.block, got, name)
	}
	if ds.Err() != nil {
		return nil, ds
	}
	return m, ds
}

func objectName(m *config.Model, kind Kind) (string, config.Pos) {
	switch {
	case kind == KindInstance && len(m.Instances) == 1:
		return m.Instances[0].Name, m.Instances[0].Pos
	case kind == KindVirtualServer && len(m.VirtualServers) == 1:
		return m.VirtualServers[0].Name, m.VirtualServers[0].Pos
	case kind == KindScript && len(m.Scripts) == 1:
		return m.Scripts[0].Name, m.Scripts[0].Pos
	}
	return "", config.Pos{}
}

func setObjectName(m *config.Model, kind Kind, name string) {
	switch kind {
	case KindInstance:
		m.Instances[0].Name = name
	case KindVirtualServer:
		m.VirtualServers[0].Name = name
	case KindScript:
		m.Scripts[0].Name = name
	}
}

// --- keepalived blocks ---

// keepalivedRoots are the first words that make a value keepalived.conf
// text: the top-level keywords (a wrong one is then reported as such
// rather than as bad YAML) and include.
var keepalivedRoots = map[string]bool{
	"global_defs": true, "vrrp_script": true, "vrrp_instance": true, "vrrp_sync_group": true,
	"track_file": true, "vrrp_track_file": true, "virtual_server_group": true, "virtual_server": true,
	"static_ipaddress": true, "static_routes": true, "static_rules": true, "track_group": true,
	"include": true,
}

// isKeepalivedBlock tells, by its first word, whether val is keepalived.conf
// text rather than YAML or JSON. Comment and blank lines are skipped (both
// syntaxes have '#' comments); a $NAME definition or an @id conditional line
// is keepalived's.
func isKeepalivedBlock(val []byte) bool {
	for _, line := range strings.Split(string(val), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		w := line
		if i := strings.IndexAny(w, " \t{"); i >= 0 {
			w = w[:i]
		}
		switch {
		case keepalivedRoots[w], strings.HasPrefix(w, "@"):
			return true
		case strings.HasPrefix(w, "$"):
			return !strings.HasSuffix(w, ":") // "$x: 1" is YAML
		}
		return false
	}
	return false
}

// errNoInclude is what an include in a stored value reads.
var errNoInclude = errors.New("a value stored in etcd cannot include files")

// keepalivedOptions are the parser's options for stored values: no file is
// read through include; @id lines and the iproute2 name tables are those of
// this host, as for its keepalived.conf.
func keepalivedOptions() keepalived.Options {
	return keepalived.Options{
		ReadFile: func(string) ([]byte, error) { return nil, errNoInclude },
		Glob:     func(string) ([]string, error) { return nil, errNoInclude },
	}
}

func decodeKeepalived(ok objectKind, file string, val []byte) (*config.Model, config.Diagnostics) {
	var ds config.Diagnostics
	top := topLevelStatements(val)
	n := 0
	for _, st := range top {
		pos := config.Pos{File: file, Line: st.line}
		switch {
		case st.kw == ok.block:
			n++
			if n > 1 {
				ds.Errorf(pos, "a second %s block: a key holds exactly one %s", ok.block, ok.what)
			}
		case st.kw == "include" || strings.HasPrefix(st.kw, "$"):
			// include: the parser reports it; $NAME: an expansion,
			// checked on the model below.
		default:
			ds.Errorf(pos, "%s: a config/%s key holds one %s block and nothing else", st.kw, ok.section, ok.block)
		}
	}
	m, pds := keepalived.Parse(file, val, keepalivedOptions())
	ds = append(ds, pds...)
	if ds.Err() != nil {
		return nil, ds
	}
	if m == nil || !onlyOne(m, ok.section, false) {
		ds.Errorf(config.Pos{File: file}, "the value must define exactly one %s block and nothing else", ok.block)
		return nil, ds
	}
	return m, ds
}

// onlyOne reports whether m holds exactly one object, in section, and no
// global settings. The YAML decoder gives the global settings a position
// even when there are none: ignorePos.
func onlyOne(m *config.Model, section string, ignorePos bool) bool {
	g := m.Global
	if ignorePos {
		g.Pos = config.Pos{}
	}
	counts := map[string]int{
		sectionInstances:      len(m.Instances),
		sectionVirtualServers: len(m.VirtualServers),
		sectionScripts:        len(m.Scripts),
		"other":               len(m.SyncGroups) + len(m.VirtualServerGroups) + len(m.TrackFiles),
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	return total == 1 && counts[section] == 1 && reflect.ValueOf(g).IsZero()
}

// topStatement is a statement outside every block of keepalived.conf text.
type topStatement struct {
	kw   string
	line int
}

// topLevelStatements lists the keywords of the statements outside every
// block, as keepalived reads them: '#' and '!' comments, double quotes,
// braces anywhere on a line. $NAME definitions (with their continuation
// lines) and "~" lines are skipped; an @id prefix is dropped. $NAME
// expansions are not made; the parsed model is checked for what they add.
func topLevelStatements(val []byte) []topStatement {
	var out []topStatement
	depth := 0
	inDefinition := false
	for i, raw := range strings.Split(string(val), "\n") {
		line, cont := stripComment(strings.TrimRight(raw, "\r"))
		if inDefinition {
			inDefinition = cont
			continue
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "@") {
			rest := "" // "@id" alone: nothing
			if i := strings.IndexAny(line, " \t"); i >= 0 {
				rest = strings.TrimSpace(line[i:])
			}
			line = rest
		}
		if definitionRE.MatchString(line) {
			inDefinition = cont
			continue
		}
		if line == "" || line[0] == '~' {
			continue
		}
		startOfStatement := true
		for _, tok := range tokens(line) {
			switch tok {
			case "{":
				depth++
				startOfStatement = true
			case "}":
				if depth > 0 {
					depth--
				}
				startOfStatement = true
			default:
				if startOfStatement && depth == 0 {
					out = append(out, topStatement{kw: tok, line: i + 1})
				}
				startOfStatement = false
			}
		}
	}
	return out
}

var definitionRE = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*[ \t]*=`)

// stripComment removes a '#' or '!' comment outside double quotes (a
// backslash escapes them) and reports a trailing backslash (a continued
// definition).
func stripComment(s string) (string, bool) {
	quote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quote = !quote
		case c == '\\':
			if i+1 == len(s) {
				return s[:i], true
			}
			i++
		case !quote && (c == '#' || c == '!'):
			return s[:i], false
		}
	}
	return s, false
}

// tokens splits a line into words, double-quoted strings as one word, and
// every '{' and '}' outside quotes as a word of its own.
func tokens(line string) []string {
	var out []string
	var cur strings.Builder
	quote := false
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			quote = !quote
			cur.WriteByte(c)
		case quote:
			cur.WriteByte(c)
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
			flush()
		case c == '{' || c == '}':
			flush()
			out = append(out, string(c))
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// --- YAML and JSON ---

// yamlHeaderLines is how many lines wrapYAML writes before the value: the
// value's line N is the wrapped document's line N+yamlHeaderLines.
const yamlHeaderLines = 2

var (
	docStartRE = regexp.MustCompile(`^---([ \t]|$)`)
	docEndRE   = regexp.MustCompile(`^\.\.\.([ \t]|$)`)
	yamlLineRE = regexp.MustCompile(`line (\d+)`)
	yamlMsgRE  = regexp.MustCompile(`^yaml: (line \d+: )?`)
)

// lineBreaks are what the YAML parser takes for a line break besides "\n".
// The value is wrapped line by line, so they all become "\n" first (the
// same lines, the same numbers).
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n")

func decodeYAML(ok objectKind, file string, val []byte) (*config.Model, config.Diagnostics) {
	var ds config.Diagnostics
	val = []byte(lineBreaks.Replace(string(val)))
	vl := valueLines{file: file, n: strings.Count(string(val), "\n") + 1}
	// The value alone first: exactly one document, and a mapping.
	dec := yaml.NewDecoder(bytes.NewReader(val))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ds.Errorf(config.Pos{File: file}, "empty value: want one %s as YAML or JSON, or a %s block", ok.what, ok.block)
			return nil, ds
		}
		ds.Errorf(vl.at(yamlErrLine(err)), "%s", yamlMsgRE.ReplaceAllString(err.Error(), ""))
		return nil, ds
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		line := 0
		if err == nil && len(more.Content) > 0 {
			line = more.Content[0].Line
		} else if err != nil {
			line = yamlErrLine(err)
		}
		ds.Errorf(vl.at(line), "a second YAML document: a key holds exactly one %s", ok.what)
		return nil, ds
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		line := 0
		if len(doc.Content) > 0 {
			line = doc.Content[0].Line
		}
		ds.Errorf(vl.at(line), "want one %s as a YAML or JSON mapping, or a %s block", ok.what, ok.block)
		return nil, ds
	}
	// Then through the file's own decoder, as the one entry of its list.
	wrapped := wrapYAML(ok.section, val)
	m, yds := config.DecodeYAML(file, wrapped)
	for _, d := range yds {
		d.Pos = vl.shift(d.Pos)
		d.Msg = strings.TrimPrefix(d.Msg, ok.section+"[0]: ")
		ds = append(ds, d)
	}
	if m != nil {
		vl.shiftAll(reflect.ValueOf(m))
	}
	if ds.Err() != nil {
		return nil, ds
	}
	if m == nil || !onlyOne(m, ok.section, true) {
		// Not expected: the value was one mapping.
		ds.Errorf(config.Pos{File: file}, "the value must be one %s", ok.what)
		return nil, ds
	}
	return m, ds
}

// wrapYAML returns "<section>:\n-\n" and the value indented by two
// spaces: a vipd.yaml whose one list entry is the value. Document markers
// and directives are blanked out (the value was checked to be one
// document), so that they are not read as text inside the entry; every
// line keeps its number, plus yamlHeaderLines.
func wrapYAML(section string, val []byte) []byte {
	var b bytes.Buffer
	b.WriteString(section + ":\n-\n")
	started := false
	for _, line := range strings.Split(string(val), "\n") {
		switch {
		case !started && strings.HasPrefix(line, "%"):
			line = ""
		case docStartRE.MatchString(line):
			line = "   " + line[3:]
			started = true
		case docEndRE.MatchString(line):
			line = "   " + line[3:]
		}
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			started = true
		}
		b.WriteString("  ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func yamlErrLine(err error) int {
	if sm := yamlLineRE.FindStringSubmatch(err.Error()); sm != nil {
		n, _ := strconv.Atoi(sm[1])
		return n
	}
	return 0
}

// valueLines maps lines of the wrapped document, and lines the YAML parser
// reports, to lines of the value (file, n lines).
type valueLines struct {
	file string
	n    int
}

// at is the position of line of the value; the parser may report the line
// after the last one (an empty document), which is the last one.
func (vl valueLines) at(line int) config.Pos {
	return config.Pos{File: vl.file, Line: min(max(line, 0), vl.n)}
}

// shift turns a position in the wrapped document into one in the value.
func (vl valueLines) shift(p config.Pos) config.Pos {
	if p.File != vl.file {
		return p
	}
	if p.Line <= yamlHeaderLines {
		return vl.at(0) // the wrapper's own lines: no line of the value
	}
	return vl.at(p.Line - yamlHeaderLines)
}

var posType = reflect.TypeFor[config.Pos]()

// shiftAll applies shift to every config.Pos reachable from v. The model
// is a tree of structs, pointers and slices.
func (vl valueLines) shiftAll(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			vl.shiftAll(v.Elem())
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			vl.shiftAll(v.Index(i))
		}
	case reflect.Struct:
		if v.Type() == posType {
			if v.CanSet() {
				v.Set(reflect.ValueOf(vl.shift(v.Interface().(config.Pos))))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				vl.shiftAll(v.Field(i))
			}
		}
	}
}
