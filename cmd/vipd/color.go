package main

import (
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// --color values.
const (
	colorAuto   = "auto"   // on a terminal, unless NO_COLOR is set or TERM=dumb
	colorAlways = "always" // even into a pipe or a file (less -R)
	colorNever  = "never"
)

// SGR parameters of the colours used (ECMA-48 select graphic rendition).
const (
	sgrNone   = ""
	sgrRed    = "31"
	sgrGreen  = "32"
	sgrYellow = "33"
)

// palette paints text with ANSI colours, or leaves it alone when off.
type palette struct{ on bool }

// paint wraps s in the colour sgr and a reset; s unchanged when the
// palette is off, sgr is none or s is empty.
func (p palette) paint(sgr, s string) string {
	if !p.on || sgr == sgrNone || s == "" {
		return s
	}
	return "\x1b[" + sgr + "m" + s + "\x1b[0m"
}

// colorOn decides whether output is coloured: --color always or never
// say so; auto colours when stdout is a terminal, NO_COLOR is not set
// (https://no-color.org: any non-empty value) and TERM is not dumb.
// mode must be valid (see validColor).
func (env *cliEnv) colorOn(mode string) bool {
	switch mode {
	case colorAlways:
		return true
	case colorNever:
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return env.stdoutIsTerminal()
}

func validColor(mode string) bool {
	return mode == colorAuto || mode == colorAlways || mode == colorNever
}

// stdoutIsTerminal says whether env.stdout is a terminal: env.isTerminal
// when set (tests), otherwise the kernel's answer for stdout's descriptor.
func (env *cliEnv) stdoutIsTerminal() bool {
	if env.isTerminal != nil {
		return env.isTerminal()
	}
	return isTerminal(env.stdout)
}

// isTerminal reports whether w is a file descriptor of a terminal: one
// TCGETS ioctl, what isatty(3) does. Anything without a descriptor (a
// buffer) is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// stateColor is the colour of a VRRP state: MASTER green, FAULT red, INIT
// and STOP yellow, BACKUP (the normal state of most instances) plain.
func stateColor(state string) string {
	switch state {
	case "MASTER":
		return sgrGreen
	case "FAULT":
		return sgrRed
	case "INIT", "STOP":
		return sgrYellow
	default:
		return sgrNone
	}
}

// span is a run of text in one colour.
type span struct{ text, sgr string }

// cell is the text of one table cell, in one or more colours.
type cell []span

func plainCell(s string) cell          { return cell{{text: s}} }
func paintedCell(sgr, s string) cell   { return cell{{text: s, sgr: sgr}} }
func (c cell) then(sgr, s string) cell { return append(c, span{text: s, sgr: sgr}) }

// width is the cell's width on screen: its runes, escapes not counted.
func (c cell) width() int {
	n := 0
	for _, s := range c {
		n += utf8.RuneCountInString(s.text)
	}
	return n
}

// table lays out rows of cells in columns as text/tabwriter does with
// NewWriter(w, 0, 8, 2, ' ', 0) (every cell but a line's last padded to its
// column's widest cell plus 2 spaces, a column running over consecutive
// lines that have a cell after it), except that widths are measured on the
// text, so colour escapes never shift a column.
type table struct{ rows [][]cell }

func (t *table) row(cells ...cell) { t.rows = append(t.rows, cells) }

// render writes the table to w, coloured with p.
func (t *table) render(w io.Writer, p palette) error {
	// widths[i][j]: the width of column j on row i, for every cell that is
	// not its row's last; a column's width is set over each maximal run of
	// rows that have it.
	widths := make([][]int, len(t.rows))
	for i, r := range t.rows {
		if len(r) > 1 {
			widths[i] = make([]int, len(r)-1)
		}
	}
	for j := 0; ; j++ {
		found := false
		for i := 0; i < len(t.rows); {
			if len(t.rows[i])-1 <= j {
				i++
				continue
			}
			found = true
			end, widest := i, 0
			for ; end < len(t.rows) && len(t.rows[end])-1 > j; end++ {
				widest = max(widest, t.rows[end][j].width())
			}
			for ; i < end; i++ {
				widths[i][j] = widest + 2
			}
		}
		if !found {
			break
		}
	}
	var b strings.Builder
	for i, r := range t.rows {
		for j, c := range r {
			for _, s := range c {
				b.WriteString(p.paint(s.sgr, s.text))
			}
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i][j]-c.width()))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
