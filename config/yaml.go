package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// The YAML schema is the model's yaml/mapstructure tags: a vipd.yaml is a
// mapping with the keys global, scripts, instances, sync_groups,
// virtual_server_groups and virtual_servers; every named object is a list
// entry with a "name:" field (viper lowercases map keys, names keep their
// case as values). deploy/examples/vipd.yaml is the annotated reference.
//
// Conveniences accepted on input (EncodeYAML writes the long forms, except
// for tracks):
//   - durations as Go durations ("1s", "100ms") or as plain numbers of
//     seconds (advert_int: 1, advert_int: 0.1), as in keepalived.conf;
//   - a virtual_ipaddress / virtual_ipaddress_excluded entry as one
//     keepalived-style string: "10.0.0.1/24 dev eth0 label eth0:1";
//   - an address without /len where a prefix is expected: a host prefix;
//   - a track_script / track_interface / track_file entry as just its name;
//   - a single value where a list is expected (unicast_peer: 10.0.0.2).

// EncodeYAML renders m as a vipd.yaml. Values equal to what Normalize would
// fill in anyway are left out where that makes the file easier to read
// (inherited garp settings, derived VRRP versions, checker defaults), so
// Normalize(DecodeYAML(EncodeYAML(m))) equals Normalize(m) apart from
// positions. Names keep their case.
func EncodeYAML(m *Model) ([]byte, error) {
	if m == nil {
		return nil, errors.New("encode yaml: nil model")
	}
	c, err := cloneModel(m)
	if err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	stripDefaults(c)
	n, err := toNode(reflect.ValueOf(c))
	if err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// cloneModel deep-copies m without positions, through YAML itself.
func cloneModel(m *Model) (*Model, error) {
	n, err := toNode(reflect.ValueOf(m))
	if err != nil {
		return nil, err
	}
	var c Model
	if err := n.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

var (
	yamlMarshalerType = reflect.TypeFor[yaml.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// toNode renders a value of the model as a YAML node following the yaml
// tags. It exists because yaml.v3's omitempty treats every netip.Addr as
// empty (the type has only unexported fields), which would drop addresses.
func toNode(v reflect.Value) (*yaml.Node, error) {
	if !v.IsValid() {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return toNode(v.Elem())
	}
	if t == durationType {
		return strNode(formatDuration(Duration(v.Int()))), nil
	}
	if t.Implements(yamlMarshalerType) {
		out, err := v.Interface().(yaml.Marshaler).MarshalYAML()
		if err != nil {
			return nil, err
		}
		return toNode(reflect.ValueOf(out))
	}
	if t.Implements(textMarshalerType) {
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, err
		}
		return strNode(string(b)), nil
	}
	switch t.Kind() {
	case reflect.String:
		return strNode(v.String()), nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		scalars := true
		for i := 0; i < v.Len(); i++ {
			c, err := toNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			scalars = scalars && c.Kind == yaml.ScalarNode && c.Tag != "!!str"
			n.Content = append(n.Content, c)
		}
		if scalars {
			n.Style = yaml.FlowStyle // status_code: [200, 301]
		}
		return n, nil
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if !f.IsExported() || tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omitempty") && isEmpty(fv) {
				continue
			}
			c, err := toNode(fv)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(name), c)
		}
		return n, nil
	}
	return nil, fmt.Errorf("cannot encode %s", t)
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return v.IsZero()
}

// formatDuration writes whole seconds as "60s" rather than "1m0s".
func formatDuration(d Duration) string {
	switch {
	case d != 0 && d%Duration(time.Second) == 0:
		return strconv.FormatInt(int64(d/Duration(time.Second)), 10) + "s"
	case d != 0 && d%Duration(time.Millisecond) == 0:
		return strconv.FormatInt(int64(d/Duration(time.Millisecond)), 10) + "ms"
	}
	return d.String()
}

// stripDefaults zeroes, in a copy about to be written, the values Normalize
// derives by itself. Each rule compares with what Normalize would fill, so
// that decoding and normalizing the result gives the same model back.
func stripDefaults(m *Model) {
	ng := m.Global // a copy: the effective global values after Normalize
	if ng.VRRPVersion == 0 {
		ng.VRRPVersion = DefaultVRRPVersion
	}
	normalizeGlobalGarp(&ng.Garp)
	{
		gg := &m.Global.Garp
		d := DefaultGarp()
		zeroIfSame(&gg.MasterDelay, d.MasterDelay)
		zeroIfSame(&gg.MasterRepeat, d.MasterRepeat)
		zeroIfSame(&gg.MasterRefreshRepeat, d.MasterRefreshRepeat)
		if gg.LowerPrioDelay == ng.Garp.MasterDelay {
			gg.LowerPrioDelay = 0
		}
		if gg.LowerPrioRepeat == ng.Garp.MasterRepeat {
			gg.LowerPrioRepeat = 0
		}
	}
	for _, s := range m.Scripts {
		if s == nil {
			continue
		}
		iv := s.Interval
		if iv == 0 {
			iv = DefaultScriptInterval
		}
		if s.Timeout == iv {
			s.Timeout = 0
		}
		if s.Rise == 1 {
			s.Rise = 0
		}
		if s.Fall == 1 {
			s.Fall = 0
		}
	}
	for _, in := range m.Instances {
		if in == nil {
			continue
		}
		derived := ng.VRRPVersion
		if in.IsIPv6() {
			derived = 3
		}
		if in.Version == derived {
			in.Version = 0
		}
		ig, eg := &in.Garp, ng.Garp
		zeroIfSame(&ig.MasterDelay, eg.MasterDelay)
		zeroIfSame(&ig.MasterRepeat, eg.MasterRepeat)
		zeroIfSame(&ig.MasterRefresh, eg.MasterRefresh)
		zeroIfSame(&ig.MasterRefreshRepeat, eg.MasterRefreshRepeat)
		zeroIfSame(&ig.LowerPrioDelay, eg.LowerPrioDelay)
		zeroIfSame(&ig.LowerPrioRepeat, eg.LowerPrioRepeat)
		zeroIfSame(&ig.Interval, eg.Interval)
		zeroIfSame(&ig.GNAInterval, eg.GNAInterval)
		if ng.CheckUnicastSrc {
			in.CheckUnicastSrc = false
		}
		group := ng.McastGroup4
		if in.IsIPv6() {
			group = ng.McastGroup6
		}
		if in.McastGroup == group {
			in.McastGroup = netip.Addr{}
		}
		dta := ng.DownTimerAdverts
		if dta == 0 {
			dta = DefaultDownTimerAdverts
		}
		zeroIfSame(&in.DownTimerAdverts, dta)
		strict := in.StrictMode || ng.Strict
		if strict || ng.LowerPrioNoAdvert {
			in.LowerPrioNoAdvert = false
		}
		if !strict && ng.HigherPrioSendAdvert {
			in.HigherPrioSendAdvert = false
		}
		if in.UseVMAC && in.VRID > 0 && in.VMACName == fmt.Sprintf("vrrp.%d", in.VRID) {
			in.VMACName = ""
		}
	}
	for _, vs := range m.VirtualServers {
		if vs == nil {
			continue
		}
		zeroIfSame(&vs.Quorum, DefaultQuorum)
		dl := vs.DelayLoop
		if dl == 0 {
			dl = DefaultDelayLoop
		}
		rss := vs.RealServers
		if vs.SorryServer != nil {
			rss = append(rss[:len(rss):len(rss)], vs.SorryServer)
		}
		for _, rs := range rss {
			if rs == nil {
				continue
			}
			if rs.Weight != nil && *rs.Weight == DefaultRealServerWeight {
				rs.Weight = nil
			}
			port := rs.Port
			if port == 0 && vs.FWMark == 0 && vs.Group == "" {
				port = vs.Port
			}
			for _, c := range rs.Checkers {
				if c == nil {
					continue
				}
				stripChecker(c, rs.Address, port, dl)
			}
		}
	}
}

func stripChecker(c *Checker, addr netip.Addr, port int, delayLoop Duration) {
	zeroIfSame(&c.ConnectTimeout, DefaultConnectTimeout)
	if c.Retry != nil && *c.Retry == DefaultRetry(c.Type) {
		c.Retry = nil
	}
	dbr := DefaultDelayBeforeRetry
	if c.Type == CheckHTTP || c.Type == CheckSSL {
		dbr = DefaultHTTPDelayBeforeRetry
	}
	if c.DelayBeforeRetry == dbr {
		c.DelayBeforeRetry = 0
	}
	if c.DelayLoop == delayLoop {
		c.DelayLoop = 0
	}
	if c.Type == CheckMisc {
		return
	}
	if c.Type == CheckDNS {
		if c.DNSType == DefaultDNSType {
			c.DNSType = ""
		}
		if c.DNSName == DefaultDNSName {
			c.DNSName = ""
		}
	}
	if c.ConnectIP == addr {
		c.ConnectIP = netip.Addr{}
	}
	if c.ConnectPort == port {
		c.ConnectPort = 0
	}
}

// MarshalYAML writes a track as just its name when it has no weight and no
// "reverse", else as a mapping.
func (t Track) MarshalYAML() (any, error) {
	if t.Weight == nil && !t.Reverse {
		return t.Name, nil
	}
	type plain Track
	return plain(t), nil
}

// UnmarshalYAML reads a track written as a name or as a mapping.
func (t *Track) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = Track{Name: n.Value}
		return nil
	}
	type plain Track
	return n.Decode((*plain)(t))
}

// UnmarshalYAML reads a VIP written as a mapping or as a keepalived-style
// string ("10.0.0.1/24 dev eth0 label eth0:1").
func (v *VIP) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		vip, err := ParseVIP(n.Value)
		if err != nil {
			return err
		}
		*v = vip
		return nil
	}
	type plain VIP
	return n.Decode((*plain)(v))
}

// ParseVIP parses a keepalived virtual_ipaddress line:
// <ip>[/<len>] [brd <ip>] [dev <if>] [scope <scope>] [label <label>].
// An address without /len is a host prefix (/32 or /128).
func ParseVIP(s string) (VIP, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return VIP{}, errors.New("empty address")
	}
	p, err := ParseHostPrefix(f[0])
	if err != nil {
		return VIP{}, err
	}
	v := VIP{Prefix: p}
	for i := 1; i < len(f); i += 2 {
		if i+1 >= len(f) {
			return VIP{}, fmt.Errorf("%s: missing value", f[i])
		}
		val := f[i+1]
		switch f[i] {
		case "dev":
			v.Dev = val
		case "scope":
			v.Scope = val
		case "label":
			v.Label = val
		case "brd", "broadcast":
			a, err := netip.ParseAddr(val)
			if err != nil {
				return VIP{}, fmt.Errorf("brd %s: not an address", val)
			}
			v.Brd = a
		default:
			return VIP{}, fmt.Errorf("%s: unknown option (want dev, brd, scope or label)", f[i])
		}
	}
	return v, nil
}

// ParseHostPrefix parses "addr/len", or "addr" as a host prefix.
func ParseHostPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s: not an address/prefix length", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s: not an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseSeconds parses a duration written as a Go duration ("1s", "100ms")
// or as a number of seconds ("1", "0.1").
func ParseSeconds(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return Duration(d), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: not a duration (write 1s, 100ms or a number of seconds)", s)
	}
	return secondsToDuration(f)
}

func secondsToDuration(f float64) (Duration, error) {
	const maxSeconds = float64(1<<63-1) / float64(time.Second)
	if f != f || f > maxSeconds || f < -maxSeconds { // NaN or overflow
		return 0, fmt.Errorf("%v: duration out of range", f)
	}
	return Duration(f*float64(time.Second) + 0.5*sign(f)), nil
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

var (
	durationType = reflect.TypeFor[Duration]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	vipType      = reflect.TypeFor[VIP]()
	trackType    = reflect.TypeFor[Track]()
)

// decodeHook converts YAML scalars into the model's types.
func decodeHook() mapstructure.DecodeHookFunc {
	return mapstructure.ComposeDecodeHookFunc(
		func(f, t reflect.Type, data any) (any, error) {
			switch t {
			case durationType:
				switch v := data.(type) {
				case string:
					return ParseSeconds(v)
				case int:
					return secondsToDuration(float64(v))
				case int64:
					return secondsToDuration(float64(v))
				case uint64:
					return secondsToDuration(float64(v))
				case float64:
					return secondsToDuration(v)
				}
			case prefixType:
				if s, ok := data.(string); ok {
					if s == "" {
						return netip.Prefix{}, nil
					}
					return ParseHostPrefix(s)
				}
			case vipType:
				if s, ok := data.(string); ok {
					return ParseVIP(s)
				}
			case trackType:
				if s, ok := data.(string); ok {
					return Track{Name: s}, nil
				}
			}
			return data, nil
		},
		mapstructure.TextUnmarshallerHookFunc(),
	)
}

var (
	yamlLineRE      = regexp.MustCompile(`line (\d+)`)
	yamlMsgPrefixRE = regexp.MustCompile(`^yaml: (line \d+: )?`)
	// viper wraps its parse errors in this.
	viperMsgPrefixRE = regexp.MustCompile(`^While parsing config: (yaml: )?(line \d+: )?`)
)

// DecodeYAML reads a vipd.yaml named name (used in positions). Every object
// gets Pos{File: name, Line: N}. Unknown keys are warnings, values of the
// wrong type errors, each with its line. The model is returned even when
// there are errors, holding what could be decoded; it is nil only when the
// text is not YAML at all. DecodeYAML does not Normalize or Validate.
func DecodeYAML(name string, data []byte) (m *Model, ds Diagnostics) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := yamlMsgPrefixRE.ReplaceAllString(err.Error(), "")
		ds.Errorf(Pos{File: name, Line: yamlErrLine(err)}, "%s", msg)
		return nil, ds
	}
	m = &Model{}
	if len(doc.Content) == 0 {
		return m, ds // empty file
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		ds.Errorf(Pos{File: name, Line: root.Line}, "the top level must be a mapping (global:, instances:, ...)")
		return m, ds
	}
	w := &walker{file: name, root: root, ds: &ds}

	w.seen = map[*yaml.Node]bool{}
	w.unknownKeys(root, reflect.TypeFor[Model](), 0)
	if err := decodeViper(data, m); err != nil {
		w.decodeErrors(err)
	}
	w.positions(m)
	w.dropNil(m)
	return m, ds
}

// decodeViper decodes data with viper and the model's mapstructure tags.
// A panic inside the libraries is turned into an error.
func decodeViper(data []byte, m *Model) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error decoding YAML: %v", r)
		}
	}()
	v := viper.NewWithOptions(viper.KeyDelimiter("\x00"))
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return err
	}
	return v.Unmarshal(m, viper.DecodeHook(decodeHook()), func(c *mapstructure.DecoderConfig) {
		c.WeaklyTypedInput = true
	})
}

// unknownKeys warns about every mapping key the model has no field for.
// (mapstructure's own list of unused keys misses keys of objects that had
// a decoding error.)
func (w *walker) unknownKeys(n *yaml.Node, t reflect.Type, depth int) {
	n = deref(n)
	if n == nil || depth > 50 || w.seen[n] {
		return // each node once: aliases must not multiply the work
	}
	w.seen[n] = true
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType || t == prefixType || t.Kind() != reflect.Struct && t.Kind() != reflect.Slice:
		return
	case t.Kind() == reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				w.unknownKeys(c, t.Elem(), depth+1)
			}
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		f, ok := fieldByKey(t, k.Value)
		if !ok {
			w.ds.Warnf(Pos{File: w.file, Line: k.Line}, "%s: unknown key (ignored)", k.Value)
			continue
		}
		w.unknownKeys(n.Content[i+1], f.Type, depth+1)
	}
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if f.IsExported() && name != "" && name != "-" && strings.EqualFold(name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlErrLine(err error) int {
	if sm := yamlLineRE.FindStringSubmatch(err.Error()); sm != nil {
		n, _ := strconv.Atoi(sm[1])
		return n
	}
	return 0
}

// walker finds the YAML lines of model paths.
type walker struct {
	file string
	root *yaml.Node
	ds   *Diagnostics
	seen map[*yaml.Node]bool // unknownKeys' visited nodes
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return deref(n.Content[0])
	}
	return n
}

// child returns the value node of key in mapping n (keys compare
// case-insensitively, as viper lowercases them) and the key node.
func child(n *yaml.Node, key string) (val, k *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.EqualFold(n.Content[i].Value, key) {
			return deref(n.Content[i+1]), n.Content[i]
		}
	}
	return nil, nil
}

func item(n *yaml.Node, i int) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
		return nil
	}
	return deref(n.Content[i])
}

// lookup follows a path of keys (string) and list indexes (int).
func (w *walker) lookup(path ...any) *yaml.Node {
	n := w.root
	for _, p := range path {
		switch p := p.(type) {
		case string:
			n, _ = child(n, p)
		case int:
			n = item(n, p)
		}
		if n == nil {
			return nil
		}
	}
	return n
}

func (w *walker) pos(path ...any) Pos {
	if n := w.lookup(path...); n != nil {
		return Pos{File: w.file, Line: n.Line}
	}
	return Pos{File: w.file}
}

// splitPath turns mapstructure's "instances[0].virtual_ipaddress[1].dev"
// into keys and indexes.
func splitPath(s string) []any {
	var out []any
	for _, part := range strings.Split(s, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			j := strings.IndexByte(part[i:], ']')
			if j < 0 {
				out = append(out, part[i:])
				break
			}
			n, err := strconv.Atoi(part[i+1 : i+j])
			if err != nil {
				out = append(out, part[i:i+j+1])
			} else {
				out = append(out, n)
			}
			part = part[i+j+1:]
		}
	}
	return out
}

// keyLine returns the line of the key (or list item) a mapstructure path
// names, falling back to the nearest known parent, and the path's last
// element for messages.
func (w *walker) keyLine(path string) (int, string) {
	segs := splitPath(path)
	last := path
	if k := len(segs); k > 0 {
		last = fmt.Sprint(segs[k-1])
		if idx, isIdx := segs[k-1].(int); isIdx && k > 1 {
			last = fmt.Sprintf("%v[%d]", segs[k-2], idx)
		}
	}
	n, line := w.root, w.root.Line
	for _, s := range segs {
		switch s := s.(type) {
		case string:
			v, k := child(n, s)
			if k == nil {
				return line, last
			}
			n, line = v, k.Line
		case int:
			v := item(n, s)
			if v == nil {
				return line, last
			}
			n, line = v, v.Line
		}
	}
	return line, last
}

// decodeErrors turns mapstructure's joined errors into diagnostics.
func (w *walker) decodeErrors(err error) {
	var leaves []*mapstructure.DecodeError
	var other []error
	var visit func(error)
	visit = func(e error) {
		if de, ok := e.(*mapstructure.DecodeError); ok {
			inner := de.Unwrap()
			if hasDecodeError(inner) {
				visit(inner)
				return
			}
			leaves = append(leaves, de)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				visit(x)
			}
		case interface{ Unwrap() error }:
			if x := u.Unwrap(); x != nil && hasDecodeError(x) {
				visit(x)
			} else {
				other = append(other, e)
			}
		default:
			other = append(other, e)
		}
	}
	visit(err)
	for _, de := range leaves {
		line, last := w.keyLine(de.Name())
		w.ds.Errorf(Pos{File: w.file, Line: line}, "%s: %s", last, describe(de.Unwrap()))
	}
	for _, e := range other {
		msg := viperMsgPrefixRE.ReplaceAllString(e.Error(), "")
		w.ds.Errorf(Pos{File: w.file, Line: yamlErrLine(e)}, "%s", msg)
	}
}

func hasDecodeError(e error) bool {
	var de *mapstructure.DecodeError
	return errors.As(e, &de)
}

// describe shortens mapstructure's messages.
func describe(err error) string {
	if err == nil {
		return "invalid value"
	}
	var ut *mapstructure.UnconvertibleTypeError
	if errors.As(err, &ut) {
		return fmt.Sprintf("expected %s, got %s", kindName(ut.Expected.Type()), describeValue(ut.Value))
	}
	var pe *mapstructure.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("expected %s, got %s", kindName(pe.Expected.Type()), describeValue(pe.Value))
	}
	return err.Error()
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return t.String()
}

func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "nothing"
	}
	return fmt.Sprint(v)
}

// positions gives every object of m the line it starts on.
func (w *walker) positions(m *Model) {
	m.Global.Pos = w.pos("global")
	for i, s := range m.Scripts {
		if s != nil {
			s.Pos = w.pos("scripts", i)
		}
	}
	for i, in := range m.Instances {
		if in == nil {
			continue
		}
		in.Pos = w.pos("instances", i)
		for j := range in.VIPs {
			in.VIPs[j].Pos = w.pos("instances", i, "virtual_ipaddress", j)
		}
		for j := range in.ExcludedVIPs {
			in.ExcludedVIPs[j].Pos = w.pos("instances", i, "virtual_ipaddress_excluded", j)
		}
		for j := range in.Routes {
			in.Routes[j].Pos = w.pos("instances", i, "virtual_routes", j)
		}
		w.trackPositions(in.TrackScripts, "instances", i, "track_script")
		w.trackPositions(in.TrackInterfaces, "instances", i, "track_interface")
		w.trackPositions(in.TrackFiles, "instances", i, "track_file")
	}
	for i, g := range m.SyncGroups {
		if g == nil {
			continue
		}
		g.Pos = w.pos("sync_groups", i)
		w.trackPositions(g.TrackScripts, "sync_groups", i, "track_script")
		w.trackPositions(g.TrackInterfaces, "sync_groups", i, "track_interface")
		w.trackPositions(g.TrackFiles, "sync_groups", i, "track_file")
	}
	for i, g := range m.VirtualServerGroups {
		if g == nil {
			continue
		}
		g.Pos = w.pos("virtual_server_groups", i)
		for j := range g.Members {
			g.Members[j].Pos = w.pos("virtual_server_groups", i, "members", j)
		}
	}
	for i, vs := range m.VirtualServers {
		if vs == nil {
			continue
		}
		vs.Pos = w.pos("virtual_servers", i)
		if vs.SorryServer != nil {
			vs.SorryServer.Pos = w.pos("virtual_servers", i, "sorry_server")
			w.checkerPositions(vs.SorryServer, "virtual_servers", i, "sorry_server")
		}
		for j, rs := range vs.RealServers {
			if rs == nil {
				continue
			}
			rs.Pos = w.pos("virtual_servers", i, "real_servers", j)
			w.checkerPositions(rs, "virtual_servers", i, "real_servers", j)
		}
	}
}

func (w *walker) trackPositions(ts []Track, path ...any) {
	for j := range ts {
		ts[j].Pos = w.pos(append(path[:len(path):len(path)], j)...)
	}
}

func (w *walker) checkerPositions(rs *RealServer, path ...any) {
	for k, c := range rs.Checkers {
		if c != nil {
			c.Pos = w.pos(append(path[:len(path):len(path)], "checkers", k)...)
		}
	}
}

// dropNil removes empty list entries ("- " with nothing after it), which
// would otherwise reach the runtime as nil pointers, with an error each.
func (w *walker) dropNil(m *Model) {
	m.Scripts = dropNilAt(w, m.Scripts, "scripts")
	m.Instances = dropNilAt(w, m.Instances, "instances")
	m.SyncGroups = dropNilAt(w, m.SyncGroups, "sync_groups")
	m.VirtualServerGroups = dropNilAt(w, m.VirtualServerGroups, "virtual_server_groups")
	m.VirtualServers = dropNilAt(w, m.VirtualServers, "virtual_servers")
	for i, vs := range m.VirtualServers {
		vs.RealServers = dropNilAt(w, vs.RealServers, "virtual_servers", i, "real_servers")
		for j, rs := range vs.RealServers {
			rs.Checkers = dropNilAt(w, rs.Checkers, "virtual_servers", i, "real_servers", j, "checkers")
		}
		if vs.SorryServer != nil {
			vs.SorryServer.Checkers = dropNilAt(w, vs.SorryServer.Checkers, "virtual_servers", i, "sorry_server", "checkers")
		}
	}
}

func dropNilAt[T any](w *walker, list []*T, path ...any) []*T {
	out := list[:0]
	for j, x := range list {
		if x == nil {
			// nil is an empty entry, or one that failed to decode (and
			// has its error already).
			ip := append(path[:len(path):len(path)], j)
			if n := w.lookup(ip...); n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				w.ds.Errorf(w.pos(ip...), "%s[%d]: empty entry", path[len(path)-1], j)
			}
			continue
		}
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// zeroIfSame clears *v when it equals def: the encoder leaves out what
// Normalize would derive anyway.
func zeroIfSame[T comparable](v *T, def T) {
	if *v == def {
		var zero T
		*v = zero
	}
}
