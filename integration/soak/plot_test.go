package soak

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// lineRows returns the rows of column x inside r painted in the series' color, top first.
func lineRows(img image.Image, r image.Rectangle, x int) []int {
	var out []int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		if color.RGBAModel.Convert(img.At(x, y)) == LineColor {
			out = append(out, y)
		}
	}
	return out
}

func TestChartPNG(t *testing.T) {
	rising := sampled("rss", 61, func(t float64, _ int) float64 { return 20 + t/10 }) // 20 -> 80 over 600 s
	rising.Unit = "MiB"
	flat := sampled("fds", 61, func(float64, int) float64 { return 40 })
	falling := sampled("CPU", 61, func(t float64, _ int) float64 { return 90 - t/10 })
	falling.Unit = "%"
	v := Flat(flat, Rule{Warmup: 60, Abs: 10})
	c := &Chart{
		Title:  "vipd soak: 1000 instances",
		Panels: []Panel{{Series: rising}, {Series: flat, Verdict: &v}, {Series: falling}},
		Warmup: 60,
		Marks:  []Mark{{T: 300, Label: "failover", Color: color.RGBA{0xff, 0x7f, 0x0e, 0xff}}},
		Legend: []Mark{{Label: "failover", Color: color.RGBA{0xff, 0x7f, 0x0e, 0xff}}},
	}
	path := filepath.Join(t.TempDir(), "out", "soak.png")
	if p := os.Getenv("SOAK_PLOT_TEST_OUT"); p != "" {
		path = p
	}
	if err := c.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	if got, want := img.Bounds().Size(), image.Pt(1200, headerH+3*190+footerH); got != want {
		t.Fatalf("size %v, want %v", got, want)
	}
	if c.Size() != img.Bounds().Size() {
		t.Fatalf("Size() %v, image %v", c.Size(), img.Bounds().Size())
	}

	// Every sample is drawn where Point puts it, in the series' color.
	for i, p := range c.Panels {
		for k := range p.Series.T {
			pt := c.Point(i, p.Series.T[k], p.Series.V[k])
			if got := color.RGBAModel.Convert(img.At(pt.X, pt.Y)); got != LineColor {
				t.Fatalf("panel %d sample %d (%v, %v) at %v: color %v, want the line's", i, k, p.Series.T[k], p.Series.V[k], pt, got)
			}
		}
	}

	// The rising series is lit low on the left and high on the right; the falling one the other
	// way round; the flat one on one height.
	edge := func(i int) (left, right int) {
		r := c.PlotArea(i)
		l, rr := lineRows(img, r, r.Min.X+2), lineRows(img, r, r.Max.X-3)
		if len(l) == 0 || len(rr) == 0 {
			t.Fatalf("panel %d: no line pixels near the left (%v) or right (%v) edge", i, l, rr)
		}
		return l[0], rr[0]
	}
	if l, r := edge(0); !(r < l-60) {
		t.Errorf("rising series: top line pixel at y=%d on the left, %d on the right; want the right much higher", l, r)
	}
	if l, r := edge(2); !(l < r-60) {
		t.Errorf("falling series: y=%d on the left, %d on the right; want the left much higher", l, r)
	}
	if l, r := edge(1); l != r {
		t.Errorf("flat series: y=%d on the left, %d on the right", l, r)
	}
	// Half way, the rising series (50 MiB at 300 s) is at the height Point says, and that
	// height is half way between 20 and 80 MiB.
	mid := c.Point(0, 300, 50)
	lo, hi := c.Point(0, 300, 20), c.Point(0, 300, 80)
	if d := (lo.Y+hi.Y)/2 - mid.Y; d < -1 || d > 1 {
		t.Errorf("50 MiB drawn at y=%d, want half way between %d and %d", mid.Y, lo.Y, hi.Y)
	}
	if rows := lineRows(img, c.PlotArea(0), mid.X); len(rows) == 0 || rows[0] > mid.Y || rows[len(rows)-1] < mid.Y {
		t.Errorf("column %d: line rows %v, want them around y=%d", mid.X, rows, mid.Y)
	}
	// The flat series' verdict draws the ceiling (baseline 40 + 10) dashed in red.
	ceil := c.Point(1, 0, 50).Y
	red := 0
	for x := c.PlotArea(1).Min.X; x < c.PlotArea(1).Max.X; x++ {
		if color.RGBAModel.Convert(img.At(x, ceil)) == LimitColor {
			red++
		}
	}
	if red < c.PlotArea(1).Dx()/4 {
		t.Errorf("ceiling at y=%d: %d red pixels", ceil, red)
	}
	// The warm-up is shaded: a pixel of the plot area left of 60 s is not white.
	w := c.Point(1, 30, 0)
	if color.RGBAModel.Convert(img.At(w.X, w.Y-20)) == (color.RGBA{0xff, 0xff, 0xff, 0xff}) {
		t.Error("warm-up not shaded")
	}
	// Text is drawn: the title's row has dark pixels.
	dark := 0
	for x := 0; x < 400; x++ {
		for y := 10; y < 10+textHeight(scale); y++ {
			if color.RGBAModel.Convert(img.At(x, y)) == textColor {
				dark++
			}
		}
	}
	if dark < 100 {
		t.Errorf("title: %d dark pixels", dark)
	}
}

func TestChartEmptyAndNaN(t *testing.T) {
	s := sampled("x", 10, func(float64, int) float64 { return 0 })
	s.V[3] = 0.0 / zero()
	c := &Chart{Panels: []Panel{{Series: s}, {Series: Series{Name: "empty"}}}}
	img := c.Draw()
	if img.Bounds().Size() != c.Size() {
		t.Fatal("size")
	}
}

func zero() float64 { return 0 }

func TestNiceStepAndLabels(t *testing.T) {
	for _, c := range []struct{ span, want float64 }{{100, 20}, {7, 2}, {3000, 1000}, {0.9, 0.2}, {55, 20}} {
		if got := niceStep(c.span, 5); got != c.want {
			t.Errorf("niceStep(%v, 5) = %v, want %v", c.span, got, c.want)
		}
	}
	if got := tickLabel(0.5, 0.5); got != "0.5" {
		t.Errorf("tickLabel = %q", got)
	}
	if got := tickLabel(2000, 500); got != "2000" {
		t.Errorf("tickLabel = %q", got)
	}
	for r := range glyphs {
		for _, row := range glyphs[r] {
			if len(row) != glyphW {
				t.Errorf("glyph %q: row %q is not %d wide", r, row, glyphW)
			}
		}
	}
}

func TestWriteCSV(t *testing.T) {
	a := sampled("rss", 3, func(_ float64, i int) float64 { return float64(i) + 0.5 })
	a.Unit = "MiB"
	b := sampled("CPU", 3, func(float64, int) float64 { return 12 })
	b.Unit = "%"
	b.V[1] = 0.0 / zero()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, []Series{a, b}); err != nil {
		t.Fatal(err)
	}
	want := "t_s,rss_MiB,CPU_pct\n0.0,0.5,12\n10.0,1.5,\n20.0,2.5,12\n"
	if got := buf.String(); got != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", got, want)
	}
}
