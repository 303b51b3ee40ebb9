// Package keepalived reads keepalived.conf (keepalived 2.x syntax) into a
// config.Model.
//
// It owns the text: comments ('#' and '!'), quoting, blocks opened and closed
// on one line or across lines, include globs, @id conditional lines and
// $NAME definitions, value syntax (numbers, seconds, addresses) and the
// mapping of every keyword onto the model with the FILE:LINE it came from.
// A keyword keepalived knows but vipd does not implement is a warning; an
// unknown keyword is a warning; a value that cannot be read is an error.
// All problems of a run are reported together.
//
// It does not apply defaults (config.Normalize) or check relations between
// objects such as duplicate VRIDs or track_script references
// (config.Validate); it does range-check virtual_router_id, priority and
// state, since those are single values.
package keepalived

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/vipd/vipd/config"
)

// Options tune a parse.
type Options struct {
	// ReadFile and Glob default to os.ReadFile / filepath.Glob; tests may inject.
	ReadFile func(string) ([]byte, error)
	Glob     func(string) ([]string, error)
	// Defines are extra $NAME values (keepalived -D style), may be nil.
	Defines map[string]string
	// ConfigIDs are the active @ids for conditional lines (keepalived --config-id); default: short hostname.
	ConfigIDs []string
	// IPRoute2Dir is where the iproute2 name tables (rt_tables, rt_protos,
	// ...) are read, as keepalived does for table, protocol, scope, realms,
	// tos and group names; default DefaultIPRoute2Dir.
	IPRoute2Dir string
}

func (o Options) withDefaults() Options {
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Glob == nil {
		o.Glob = filepath.Glob
	}
	if o.ConfigIDs == nil {
		if h, err := os.Hostname(); err == nil && h != "" {
			o.ConfigIDs = []string{strings.SplitN(h, ".", 2)[0]}
		}
	}
	return o
}

// ParseFile reads and parses the keepalived.conf at path. The model is
// always returned (as complete as the file allows); the diagnostics hold
// every warning and error found, each with its FILE:LINE.
func ParseFile(path string, opts Options) (*config.Model, config.Diagnostics) {
	opts = opts.withDefaults()
	src, err := opts.ReadFile(path)
	if err != nil {
		var diags config.Diagnostics
		diags.Errorf(config.Pos{File: path}, "reading configuration: %v", err)
		return &config.Model{}, diags
	}
	return parse(path, src, opts)
}

// Parse parses src as the keepalived.conf called name; include patterns
// resolve relative to filepath.Dir(name).
func Parse(name string, src []byte, opts Options) (*config.Model, config.Diagnostics) {
	return parse(name, src, opts.withDefaults())
}

func parse(name string, src []byte, opts Options) (*config.Model, config.Diagnostics) {
	var diags config.Diagnostics
	r := newReader(opts, &diags)
	r.readFile(name, src, 0)
	nodes := buildTree(r.out, &diags)
	p := &parser{m: &config.Model{}, diags: &diags, opts: opts}
	p.root(nodes)
	p.dropTracksOfEmptyScripts()
	p.checkExplicitFalse()
	// Report in file order; tree errors (braces) come out before the
	// mapping errors otherwise.
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Pos, diags[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return p.m, diags
}

// dropTracksOfEmptyScripts removes track_script entries that name a
// vrrp_script declared without a script, with a warning, as keepalived
// does. (A track_script naming no vrrp_script at all is left for
// config.Validate, which reports it as an error.)
func (p *parser) dropTracksOfEmptyScripts() {
	if len(p.emptyScripts) == 0 {
		return
	}
	drop := func(ts []config.Track) []config.Track {
		return slices.DeleteFunc(ts, func(t config.Track) bool {
			if !p.emptyScripts[t.Name] {
				return false
			}
			p.diags.Warnf(t.Pos, "track_script %s: vrrp_script %s has no script; ignored (as keepalived does)", t.Name, t.Name)
			return true
		})
	}
	for _, in := range p.m.Instances {
		in.TrackScripts = drop(in.TrackScripts)
	}
	for _, g := range p.m.SyncGroups {
		g.TrackScripts = drop(g.TrackScripts)
	}
}

// checkExplicitFalse refuses lower_prio_no_advert / higher_prio_send_advert
// set to false on an instance where the model cannot carry it: the global
// default (applied by config.Normalize to every instance) is true, or, for
// lower_prio_no_advert, strict mode requires it (vrrp.c
// vrrp_complete_instance: "Strict mode requires no lower priority advert",
// a configuration error for keepalived -t).
func (p *parser) checkExplicitFalse() {
	g := &p.m.Global
	for _, in := range p.m.Instances {
		for _, c := range p.explicitFalse[in] {
			switch {
			case c.kw() == "lower_prio_no_advert" && (in.StrictMode || g.Strict):
				p.errorf(c, "lower_prio_no_advert false: strict mode requires lower_prio_no_advert")
			case c.kw() == "lower_prio_no_advert" && g.LowerPrioNoAdvert,
				c.kw() == "higher_prio_send_advert" && g.HigherPrioSendAdvert:
				p.errorf(c, "%s false: vipd cannot turn it off for one instance while vrrp_%s is set in global_defs; remove one of them", c.kw(), c.kw())
			}
		}
	}
}
