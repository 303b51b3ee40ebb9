// Package loader reads a vipd configuration file in either syntax — a
// vipd.yaml or a keepalived.conf — and returns the normalized, validated
// model. It is what `vipd run`, `vipd check` and `vipd convert` call.
//
// It owns the choice of syntax (by file extension) and the order of the
// steps: parse, config.Normalize, config.Validate. It does not watch files
// or apply models.
package loader

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
)

// Options tune Load.
type Options struct {
	// InterfaceExists, when set, makes Validate warn about interfaces this
	// host does not have. HostInterfaceExists is the real check.
	InterfaceExists func(string) bool
	// Keepalived are the keepalived.conf parser's options. Its ReadFile, when
	// set, is also used to read YAML files.
	Keepalived keepalived.Options
}

// IsYAML reports whether path names a vipd YAML file (.yaml or .yml, any
// case); every other name is keepalived.conf syntax.
func IsYAML(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return true
	}
	return false
}

// Load reads the file at path, parses it in the syntax its extension names,
// fills keepalived's defaults and validates the result. The model is never
// nil; it is usable only when the diagnostics hold no error
// (diags.Err() == nil). When parsing already found errors, validation is
// skipped: its findings would mostly repeat them.
func Load(path string, opts Options) (*config.Model, config.Diagnostics) {
	m, ds := parse(path, opts)
	if m == nil {
		m = &config.Model{}
	}
	config.Normalize(m)
	// Validate even after syntax errors, so one run reports every error of
	// the file; values the parser refused are left out of the model (or
	// marked, like config.VRIDInvalid) so they are not reported twice.
	ds = append(ds, config.Validate(m, config.ValidateOptions{InterfaceExists: memoize(opts.InterfaceExists)})...)
	return m, ds
}

// memoize asks exists once per name during one load: a configuration of
// thousands of instances names a handful of interfaces, and each host
// lookup reads the whole link table.
func memoize(exists func(string) bool) func(string) bool {
	if exists == nil {
		return nil
	}
	seen := map[string]bool{}
	return func(name string) bool {
		ok, done := seen[name]
		if !done {
			ok = exists(name)
			seen[name] = ok
		}
		return ok
	}
}

func parse(path string, opts Options) (*config.Model, config.Diagnostics) {
	if !IsYAML(path) {
		return keepalived.ParseFile(path, opts.Keepalived)
	}
	read := opts.Keepalived.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	data, err := read(path)
	if err != nil {
		var ds config.Diagnostics
		ds.Errorf(config.Pos{File: path}, "reading configuration: %v", err)
		return nil, ds
	}
	return config.DecodeYAML(path, data)
}

// Convert loads the file at path (either syntax) and renders it as a
// vipd.yaml, as `vipd convert` prints it. The YAML is nil when the file has
// errors.
func Convert(path string, opts Options) ([]byte, config.Diagnostics) {
	m, ds := Load(path, opts)
	if ds.Err() != nil {
		return nil, ds
	}
	out, err := config.EncodeYAML(m)
	if err != nil {
		ds.Errorf(config.Pos{File: path}, "%v", fmt.Errorf("converting to YAML: %w", err))
		return nil, ds
	}
	return out, ds
}

// HostInterfaceExists reports whether this host (its current network
// namespace) has an interface of that name.
func HostInterfaceExists(name string) bool {
	ifi, err := net.InterfaceByName(name)
	return err == nil && ifi != nil
}
