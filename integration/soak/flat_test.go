package soak

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// sampled makes a series of n samples every 10 s with value f(t, i).
func sampled(name string, n int, f func(t float64, i int) float64) Series {
	s := Series{Name: name}
	for i := 0; i < n; i++ {
		t := float64(i) * 10
		s.T = append(s.T, t)
		s.V = append(s.V, f(t, i))
	}
	return s
}

func TestFlat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(amp float64) float64 { return (rng.Float64()*2 - 1) * amp }
	// 30 minutes at 10 s, 5 minutes of warm-up: 150 samples judged.
	const n, warm = 181, 300.0
	rss := Rule{Warmup: warm, Rel: 0.20, Abs: 16}
	gor := Rule{Warmup: warm, Rel: 0.02, Abs: 25}
	fds := Rule{Warmup: warm, Rel: 0.10, Abs: 10}
	cases := []struct {
		name   string
		s      Series
		r      Rule
		ok     bool
		reason string // a substring of the reason when not ok
	}{
		{"noisy flat RSS", sampled("rss", n, func(float64, int) float64 { return 80 + noise(6) }), rss, true, ""},
		{"flat RSS with failover spikes", sampled("rss", n, func(_ float64, i int) float64 {
			if i%12 == 0 {
				return 140 // a spike every 2 minutes: medians ignore it
			}
			return 80 + noise(3)
		}), rss, true, ""},
		{"warm-up growth is not judged", sampled("rss", n, func(t float64, _ int) float64 {
			return math.Min(20+t/5, 80) + noise(2) // climbs 20 -> 80 MiB in the first 5 minutes
		}), rss, true, ""},
		{"leak: +1 MiB a minute", sampled("rss", n, func(t float64, _ int) float64 { return 80 + t/60 + noise(4) }), rss, false, "grew by"},
		{"step: goroutines +200 half way", sampled("goroutines", n, func(_ float64, i int) float64 {
			if i > n/2 {
				return 2300 + math.Round(noise(10))
			}
			return 2100 + math.Round(noise(10))
		}), gor, false, "grew by"},
		{"goroutine leak of one per 10 s", sampled("goroutines", n, func(_ float64, i int) float64 { return 2100 + float64(i) }), gor, false, "grew by"},
		{"goroutines flat with churn", sampled("goroutines", n, func(float64, int) float64 { return 2100 + math.Round(noise(40)) }), gor, true, ""},
		{"fd leak", sampled("fds", n, func(_ float64, i int) float64 { return 40 + float64(i/6) }), fds, false, "grew by"},
		{"fds flat", sampled("fds", n, func(_ float64, i int) float64 { return 40 + float64(i%3) }), fds, true, ""},
		{"shrinking is flat", sampled("rss", n, func(t float64, _ int) float64 { return 200 - t/30 }), rss, true, ""},
		{"too short", sampled("rss", 35, func(float64, int) float64 { return 80 }), rss, false, "run longer"},
		{"bursty goroutines judged by their floor", sampled("goroutines", n, func(_ float64, i int) float64 {
			if rng.IntN(10) < 4 {
				return 500 + float64(rng.IntN(7000)) // 40 % of the samples catch a mass transition
			}
			return 90 + math.Round(noise(3))
		}), Rule{Warmup: warm, Rel: 0.05, Abs: 25, Q: 0.2}, true, ""},
		{"bursty goroutines whose floor leaks", sampled("goroutines", n, func(_ float64, i int) float64 {
			if rng.IntN(10) < 4 {
				return 500 + float64(rng.IntN(7000))
			}
			return 90 + float64(i)/2 // one goroutine leaked every 20 s
		}), Rule{Warmup: warm, Rel: 0.05, Abs: 25, Q: 0.2}, false, "grew by"},
		{"NaN samples are skipped", sampled("rss", n, func(_ float64, i int) float64 {
			if i%5 == 0 {
				return math.NaN()
			}
			return 80 + noise(2)
		}), rss, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Flat(c.s, c.r)
			if v.OK != c.ok {
				t.Fatalf("OK = %v, want %v: %+v", v.OK, c.ok, v)
			}
			if !c.ok && !strings.Contains(v.Reason, c.reason) {
				t.Errorf("reason %q, want it to mention %q", v.Reason, c.reason)
			}
			if c.ok && v.Reason != "" {
				t.Errorf("flat with a reason: %q", v.Reason)
			}
		})
	}
}

// A slow climb whose thirds stay within the allowance but whose trend over the window does
// not: the slope rule catches what the thirds alone would let through.
func TestFlatTrend(t *testing.T) {
	r := Rule{Rel: 0, Abs: 10}
	// Over 60 samples (590 s) it climbs 0.024/s: 14.2 over the window, but the thirds' medians
	// (at 95 s and 495 s) are 400 s apart: 9.6, just inside.
	s := sampled("x", 60, func(t float64, _ int) float64 { return 100 + 0.024*t })
	v := Flat(s, r)
	if v.OK || !strings.Contains(v.Reason, "per minute") {
		t.Fatalf("a steady climb past the allowance over the window passed: %+v", v)
	}
	if v.Growth > v.Allowed {
		t.Fatalf("the thirds already caught it (growth %v > %v): the case does not test the slope", v.Growth, v.Allowed)
	}
	if math.Abs(v.Slope-0.024) > 1e-9*60 {
		t.Errorf("Theil-Sen slope %v, want 0.024", v.Slope)
	}
}

func TestFlatNumbers(t *testing.T) {
	// 0..8 s warm-up dropped; judged: t=10..100, values 1..10 (n=10, thirds of 3).
	s := sampled("x", 11, func(_ float64, i int) float64 { return float64(i) })
	v := Flat(s, Rule{Warmup: 10, Rel: 0.5, Abs: 100})
	if v.N != 10 || v.First != 2 || v.Last != 9 || v.Growth != 7 || v.Allowed != 100 || v.Window != 90 || math.Abs(v.Slope-0.1) > 1e-12 || !v.OK {
		t.Errorf("verdict %+v", v)
	}
	if math.Abs(v.Trend-9) > 1e-9 {
		t.Errorf("trend %v, want 9", v.Trend)
	}
	v = Flat(s, Rule{Warmup: 10, Rel: 0.5, Abs: 0})
	if v.Allowed != 1 || v.OK {
		t.Errorf("Rel x First = 1 allowed: %+v", v)
	}
	if got := Flat(Series{T: []float64{1}, V: nil}, Rule{}); got.OK || got.Reason == "" {
		t.Errorf("mismatched lengths judged flat: %+v", got)
	}
}

func TestQuantile(t *testing.T) {
	x := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.25, 2}, {0.5, 3}, {1, 5}, {0.2, 1.8}} {
		if got := quantile(x, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile(%v, %v) = %v, want %v", x, c.q, got, c.want)
		}
	}
	if got := median([]float64{1, 2, 3, 10}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

func TestReport(t *testing.T) {
	ok := Flat(sampled("fds", 30, func(float64, int) float64 { return 40 }), Rule{Abs: 10})
	bad := Flat(sampled("rss", 30, func(t float64, _ int) float64 { return 80 + t }), Rule{Abs: 10})
	bad.Unit = "MiB"
	out := Report([]Verdict{ok, bad})
	for _, want := range []string{"fds", "flat", "rss", "NOT FLAT", "FAIL:", "rss: grew by"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if AllOK([]Verdict{ok, bad}) || !AllOK([]Verdict{ok}) || AllOK(nil) {
		t.Error("AllOK")
	}
	if out := Report([]Verdict{ok}); !strings.Contains(out, "PASS") {
		t.Errorf("report of a flat run:\n%s", out)
	}
}

// A series that alternates between two levels (CPU: bursts of churn, then quiet) with a share
// of bursts that differs between the thirds: the median jumps from one level to the other,
// the mean does not; a real rise of the work done still fails by the mean.
func TestFlatMeanForTwoLevelSeries(t *testing.T) {
	const n, warm = 181, 300.0
	// 20 % CPU quiet, 90 % during a burst; bursts in 45 % of the first third's samples, 55 %
	// of the last third's (their phase against the sampling drifts), same work on average over
	// each churn cycle.
	twoLevel := sampled("cpu", n, func(_ float64, i int) float64 {
		share := 45
		if i > n/2 {
			share = 55
		}
		if (i*37)%100 < share {
			return 90
		}
		return 20
	})
	median := Flat(twoLevel, Rule{Warmup: warm, Rel: 0.5, Abs: 10})
	if median.OK {
		t.Fatalf("the median judged a two-level series with a drifting share flat (%+v); the case does not show the difference", median)
	}
	mean := Flat(twoLevel, Rule{Warmup: warm, Rel: 0.5, Abs: 10, Mean: true})
	if !mean.OK {
		t.Errorf("the mean judged it not flat: %s", mean.Reason)
	}
	rising := sampled("cpu", n, func(_ float64, i int) float64 {
		base := 20 + float64(i)*0.5 // the quiet level climbs: more work every minute
		if i%2 == 0 {
			return base + 70
		}
		return base
	})
	if v := Flat(rising, Rule{Warmup: warm, Rel: 0.5, Abs: 10, Mean: true}); v.OK || !strings.Contains(v.Reason, "mean of the last third") {
		t.Errorf("a climbing two-level series judged %+v", v)
	}
}
