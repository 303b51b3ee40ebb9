package config

import (
	"fmt"
	"strings"
)

// Severity of a Diagnostic.
type Severity int

// Severities.
const (
	Warning Severity = iota
	Error
)

func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// Diagnostic is one problem found in a configuration, with where it is.
type Diagnostic struct {
	Pos      Pos
	Severity Severity
	Msg      string
}

// String renders "FILE:LINE: msg" (the form keepalived users grep for), with
// "warning: " in front of the message for warnings.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.Pos.File != "" && d.Pos.Line > 0 {
		fmt.Fprintf(&b, "%s:%d: ", d.Pos.File, d.Pos.Line)
	} else if d.Pos.File != "" {
		fmt.Fprintf(&b, "%s: ", d.Pos.File)
	} else if d.Pos.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", d.Pos.Line)
	}
	if d.Severity == Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Diagnostics is every problem found in one run over a configuration.
type Diagnostics []Diagnostic

// Errorf records an error at pos.
func (ds *Diagnostics) Errorf(pos Pos, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: pos, Severity: Error, Msg: fmt.Sprintf(format, args...)})
}

// Warnf records a warning at pos.
func (ds *Diagnostics) Warnf(pos Pos, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: pos, Severity: Warning, Msg: fmt.Sprintf(format, args...)})
}

// Errors returns only the errors.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(Error) }

// Warnings returns only the warnings.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(Warning) }

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// Err returns nil when there are no errors, else an error listing all of them
// one per line.
func (ds Diagnostics) Err() error {
	errs := ds.Errors()
	if len(errs) == 0 {
		return nil
	}
	return &ConfigError{Diags: errs}
}

// ConfigError is returned by loaders when a file has errors.
type ConfigError struct{ Diags Diagnostics }

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Diags))
	for i, d := range e.Diags {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}
