package soak

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Chart is a stack of panels sharing one time axis, one series each, drawn with Draw.
type Chart struct {
	Title  string
	Panels []Panel
	Warmup float64 // seconds shaded grey on every panel (not judged); 0: none
	Marks  []Mark  // events drawn as vertical lines through every panel
	Legend []Mark  // shown in the header: one colored label per kind of mark (T unused)

	Width       int // pixels; 0: 1200
	PanelHeight int // pixels per panel; 0: 190
}

// Panel is one series, with Flat's verdict on it when there is one: then its baseline (first
// third's median) and its ceiling (baseline + allowance) are drawn as dashed lines and the
// verdict is written next to the title.
type Panel struct {
	Series  Series
	Verdict *Verdict
}

// Mark is an event at T seconds (a reload, a failover, ...), drawn in Color.
type Mark struct {
	T     float64
	Label string
	Color color.RGBA
}

// Colors of the chart, exported so that tests can find what was drawn.
var (
	LineColor     = color.RGBA{0x1f, 0x4e, 0xb4, 0xff} // the series
	BaselineColor = color.RGBA{0x2c, 0xa0, 0x2c, 0xff} // median of the first third
	LimitColor    = color.RGBA{0xd6, 0x27, 0x28, 0xff} // baseline + allowance
	warmupColor   = color.RGBA{0xee, 0xee, 0xee, 0xff}
	gridColor     = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	axisColor     = color.RGBA{0x33, 0x33, 0x33, 0xff}
	textColor     = color.RGBA{0x11, 0x11, 0x11, 0xff}
)

const (
	scale      = 2   // font scale
	headerH    = 64  // title and legend
	footerH    = 30  // the time axis' name
	leftM      = 100 // y tick labels
	rightM     = 24
	panelTop   = 34 // panel title above the plot area
	panelBelow = 30 // x tick labels below it
)

func (c *Chart) width() int {
	if c.Width > 0 {
		return c.Width
	}
	return 1200
}

func (c *Chart) panelHeight() int {
	if c.PanelHeight > 0 {
		return c.PanelHeight
	}
	return 190
}

// Size is the size of the image Draw makes.
func (c *Chart) Size() image.Point {
	return image.Pt(c.width(), headerH+len(c.Panels)*c.panelHeight()+footerH)
}

// PlotArea is the rectangle of panel i in which the data is drawn.
func (c *Chart) PlotArea(i int) image.Rectangle {
	top := headerH + i*c.panelHeight()
	return image.Rect(leftM, top+panelTop, c.width()-rightM, top+c.panelHeight()-panelBelow)
}

// tMax is the end of the shared time axis, in seconds.
func (c *Chart) tMax() float64 {
	m := 0.0
	for _, p := range c.Panels {
		for _, t := range p.Series.T {
			m = math.Max(m, t)
		}
	}
	for _, mk := range c.Marks {
		m = math.Max(m, mk.T)
	}
	if m <= 0 {
		return 60
	}
	return m
}

// yMax is the top of panel i's value axis: the axis starts at 0 (a flat line then looks flat
// and a leak looks like one) and ends at a round number above the data and the ceiling.
func (c *Chart) yMax(i int) float64 {
	p := c.Panels[i]
	m := 0.0
	for _, v := range p.Series.V {
		if !math.IsNaN(v) {
			m = math.Max(m, v)
		}
	}
	if p.Verdict != nil && p.Verdict.N > 0 {
		m = math.Max(m, p.Verdict.First+p.Verdict.Allowed)
	}
	if m <= 0 {
		return 1
	}
	step := niceStep(m*1.08, 5)
	return math.Ceil(m*1.08/step) * step
}

// Point is where the value v at t seconds is drawn in panel i.
func (c *Chart) Point(i int, t, v float64) image.Point {
	r := c.PlotArea(i)
	x := float64(r.Min.X) + t/c.tMax()*float64(r.Dx()-1)
	y := float64(r.Max.Y-1) - v/c.yMax(i)*float64(r.Dy()-1)
	return image.Pt(int(math.Round(x)), int(math.Round(y)))
}

// niceStep is a step of 1, 2 or 5 times a power of ten giving about n steps over span.
func niceStep(span float64, n int) float64 {
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// Draw renders the chart.
func (c *Chart) Draw() *image.RGBA {
	size := c.Size()
	img := image.NewRGBA(image.Rect(0, 0, size.X, size.Y))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)

	drawText(img, 12, 10, c.Title, textColor, scale)
	x := 12
	for _, l := range c.Legend {
		fill(img, image.Rect(x, 40, x+14, 40+textHeight(scale)), l.Color)
		x += 20
		drawText(img, x, 40, l.Label, textColor, scale)
		x += textWidth(l.Label, scale) + 24
	}

	tMax := c.tMax()
	// Time ticks in minutes (or seconds for short runs): 1, 2 or 5 x 10^k, ~10 of them.
	tStep := niceStep(tMax/60, 10) * 60
	for i, p := range c.Panels {
		r := c.PlotArea(i)
		ymax := c.yMax(i)
		if c.Warmup > 0 {
			wx := c.Point(i, math.Min(c.Warmup, tMax), 0).X
			fill(img, image.Rect(r.Min.X, r.Min.Y, wx+1, r.Max.Y), warmupColor)
		}
		yStep := niceStep(ymax, 5)
		for v := 0.0; v <= ymax+yStep/1e6; v += yStep {
			y := c.Point(i, 0, v).Y
			hline(img, r.Min.X, r.Max.X-1, y, gridColor, 0)
			label := tickLabel(v, yStep)
			drawText(img, r.Min.X-8-textWidth(label, scale), y-textHeight(scale)/2, label, textColor, scale)
		}
		for t := 0.0; t <= tMax+tStep/1e6; t += tStep {
			px := c.Point(i, t, 0).X
			vline(img, px, r.Min.Y, r.Max.Y-1, gridColor)
			vline(img, px, r.Max.Y, r.Max.Y+4, axisColor)
			label := tickLabel(t/60, tStep/60) + "m"
			if tStep < 60 {
				label = tickLabel(t, tStep) + "s"
			}
			drawText(img, px-textWidth(label, scale)/2, r.Max.Y+8, label, textColor, scale)
		}
		for _, mk := range c.Marks {
			vline(img, c.Point(i, mk.T, 0).X, r.Min.Y, r.Min.Y+10, mk.Color)
			vline(img, c.Point(i, mk.T, 0).X, r.Min.Y+10, r.Max.Y-1, lighten(mk.Color))
		}
		// Axes.
		vline(img, r.Min.X-1, r.Min.Y, r.Max.Y, axisColor)
		hline(img, r.Min.X-1, r.Max.X-1, r.Max.Y, axisColor, 0)

		title := p.Series.Name
		if p.Series.Unit != "" {
			title += " (" + p.Series.Unit + ")"
		}
		if v := p.Verdict; v != nil && v.N < MinSamples {
			title += "   NOT JUDGED: too few samples after the warm-up"
		} else if v != nil {
			from := c.Point(i, math.Max(c.Warmup, 0), 0).X
			hline(img, from, r.Max.X-1, c.Point(i, 0, v.First).Y, BaselineColor, 6)
			hline(img, from, r.Max.X-1, c.Point(i, 0, v.First+v.Allowed).Y, LimitColor, 6)
			verdict := "flat"
			if !v.OK {
				verdict = "NOT FLAT"
			}
			title += fmt.Sprintf("   %s: first third %s, last third %s, allowed +%s", verdict,
				num(v.First, v.Unit), num(v.Last, v.Unit), num(v.Allowed, v.Unit))
		}
		drawText(img, r.Min.X, r.Min.Y-panelTop+4, title, textColor, scale)

		// The data, two pixels thick; a NaN (a missed sample) breaks the line.
		s := p.Series
		var prev image.Point
		have := false
		for k := range s.T {
			if k >= len(s.V) || math.IsNaN(s.V[k]) {
				have = false
				continue
			}
			pt := c.Point(i, s.T[k], s.V[k])
			if have {
				line(img, prev, pt, LineColor)
			} else {
				fill(img, image.Rect(pt.X-1, pt.Y-1, pt.X+2, pt.Y+2), LineColor)
			}
			prev, have = pt, true
		}
	}
	foot := "x: time since the churn began   grey: warm-up   green: baseline   red: ceiling"
	drawText(img, 12, size.Y-footerH+8, foot, textColor, scale)
	return img
}

// tickLabel formats a tick value with no more decimals than the step needs.
func tickLabel(v, step float64) string {
	dec := 0
	for s := step; s < 1 && dec < 3; s *= 10 {
		dec++
	}
	if math.Abs(v) >= 1e6 {
		return strconv.FormatFloat(v/1e6, 'f', dec, 64) + "M"
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

func lighten(c color.RGBA) color.RGBA {
	mix := func(a uint8) uint8 { return uint8((int(a) + 255) / 2) }
	return color.RGBA{mix(c.R), mix(c.G), mix(c.B), 0xff}
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(img, r.Intersect(img.Bounds()), image.NewUniform(c), image.Point{}, draw.Src)
}

// hline draws y from x0 to x1, dashed every dash pixels when dash > 0.
func hline(img *image.RGBA, x0, x1, y int, c color.RGBA, dash int) {
	for x := x0; x <= x1; x++ {
		if dash > 0 && ((x-x0)/dash)%2 == 1 {
			continue
		}
		if image.Pt(x, y).In(img.Bounds()) {
			img.SetRGBA(x, y, c)
		}
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		if image.Pt(x, y).In(img.Bounds()) {
			img.SetRGBA(x, y, c)
		}
	}
}

// dot is a 2x2 pixel square at p (3x3 for a lone sample, so that it shows).
func dot(img *image.RGBA, p image.Point, c color.RGBA) {
	fill(img, image.Rect(p.X, p.Y, p.X+2, p.Y+2), c)
}

// line draws from a to b (Bresenham), two pixels thick.
func line(img *image.RGBA, a, b image.Point, c color.RGBA) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := 1, 1
	if a.X > b.X {
		sx = -1
	}
	if a.Y > b.Y {
		sy = -1
	}
	e := dx + dy
	for {
		dot(img, a, c)
		if a == b {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			a.X += sx
		}
		if e2 <= dx {
			e += dx
			a.Y += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// WritePNG draws the chart into path (its directory made as needed).
func (c *Chart) WritePNG(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.Draw()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteCSV writes the series as CSV: a header "t_s,<name>_<unit>,...", then one row per
// sample time of the first series (every series is sampled at the same times; a missing value
// is written empty).
func WriteCSV(w io.Writer, series []Series) error {
	if len(series) == 0 {
		return nil
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("t_s")
	for _, s := range series {
		name := s.Name
		if s.Unit != "" {
			name += "_" + s.Unit
		}
		fmt.Fprintf(bw, ",%s", csvName(name))
	}
	bw.WriteString("\n")
	for k, t := range series[0].T {
		bw.WriteString(strconv.FormatFloat(t, 'f', 1, 64))
		for _, s := range series {
			bw.WriteString(",")
			if k < len(s.V) && !math.IsNaN(s.V[k]) {
				bw.WriteString(strconv.FormatFloat(s.V[k], 'f', -1, 64))
			}
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// csvName makes a header cell of name: letters, digits and '_' only ("CPU %" -> "CPU_pct").
func csvName(name string) string {
	var b []byte
	for _, r := range name {
		switch {
		case r == '%':
			b = append(b, "pct"...)
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b = append(b, byte(r))
		default:
			b = append(b, '_')
		}
	}
	return string(b)
}
