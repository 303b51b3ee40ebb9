// Package soak judges and draws the resource samples of a long run (integration/soak_test.go,
// make soak): Flat says whether a series stayed flat, Chart draws the series as a PNG.
//
// It is pure: no processes, no files but the ones a caller asks WritePNG or WriteCSV to write.
package soak

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Series is one sampled quantity of one process: values V[i] taken at T[i] seconds after the
// start of the run, T increasing.
type Series struct {
	Name string // "rss", "goroutines", ...
	Unit string // "MiB", "", "%", ...
	T    []float64
	V    []float64
}

// Rule is how much a series may grow and still be flat: after Warmup seconds, by at most
// max(Abs, Rel x baseline), where the baseline is the Q-quantile (the median unless Q says
// otherwise) of the first third of the samples after the warm-up.
type Rule struct {
	Warmup float64 // seconds from the start that are not judged
	Rel    float64 // allowed growth as a fraction of the baseline (0.2: +20 %)
	Abs    float64 // allowed growth in the series' unit, the floor of the allowance
	// Q is the quantile that sums up a stretch of samples; 0 means 0.5, the median. A series
	// whose bursts are normal (goroutines while 500 instances change state at once) is judged
	// by its floor, a low quantile such as 0.2: a leak raises the floor, a burst does not.
	Q float64
	// Mean sums up a stretch by its mean instead (Q is then unused): for a series that
	// alternates between two levels in its normal course, as CPU does between a burst of churn
	// and the quiet after it, the median of a stretch jumps between the two levels with the
	// share of each, while the mean follows the work done.
	Mean bool
}

// sum sums up a stretch of samples by the rule's statistic.
func (r Rule) sum(x []float64) float64 {
	if r.Mean {
		return mean(x)
	}
	return quantile(x, r.q())
}

// stat names the rule's statistic for the report.
func (r Rule) stat() string {
	switch q := r.q(); {
	case r.Mean:
		return "mean"
	case q == 0.5:
		return "median"
	default:
		return fmt.Sprintf("%g-quantile", q)
	}
}

func (r Rule) q() float64 {
	if r.Q <= 0 || r.Q >= 1 {
		return 0.5
	}
	return r.Q
}

// MinSamples is the fewest samples after the warm-up Flat judges: two per third, at least.
const MinSamples = 6

// Verdict is Flat's finding on one series.
type Verdict struct {
	Name    string
	Unit    string
	N       int     // samples judged (after the warm-up)
	First   float64 // Q-quantile (median) of the first third of the judged samples: the baseline
	Last    float64 // Q-quantile (median) of the last third
	Slope   float64 // Theil-Sen slope of the buckets' Q-quantiles, unit per second
	Window  float64 // seconds from the first to the last judged sample
	Allowed float64 // max(Abs, Rel x First)
	Growth  float64 // Last - First
	Trend   float64 // Slope x Window: the growth the trend line predicts over the window
	OK      bool
	Reason  string // why not OK; "" when OK
}

// Flat applies the soak's flatness rule to s:
//
//  1. Samples taken before r.Warmup seconds are dropped (start-up, caches filling, the first
//     round of every kind of churn). At least MinSamples must remain.
//  2. The rest is cut in thirds by count. First is the median (r.Q-quantile, or the mean with
//     r.Mean) of the first third, Last that of the last third: medians, so that a spike during
//     a failover does not count.
//  3. Allowed = max(r.Abs, r.Rel x First).
//  4. The series is flat when Last - First <= Allowed (no step up), and when the trend over the
//     whole window is <= Allowed too (no steady climb hiding in noise): the judged samples are
//     cut in up to 10 buckets of equal count (at least 2 samples each), each summed up by its
//     median (r.Q-quantile) at its mean time, and the trend is the Theil-Sen slope through
//     them (the median of the slopes between every pair, robust to outliers) times the
//     window's length.
//
// Shrinking is always flat.
func Flat(s Series, r Rule) Verdict {
	v := Verdict{Name: s.Name, Unit: s.Unit}
	if len(s.T) != len(s.V) {
		v.Reason = fmt.Sprintf("%d times for %d values", len(s.T), len(s.V))
		return v
	}
	var t, x []float64
	for i := range s.T {
		if s.T[i] >= r.Warmup && !math.IsNaN(s.V[i]) {
			t = append(t, s.T[i])
			x = append(x, s.V[i])
		}
	}
	v.N = len(x)
	if v.N < MinSamples {
		v.Reason = fmt.Sprintf("%d samples after the %gs warm-up, want at least %d: run longer", v.N, r.Warmup, MinSamples)
		return v
	}
	third := v.N / 3
	v.First = r.sum(x[:third])
	v.Last = r.sum(x[v.N-third:])
	nb := min(10, v.N/2)
	var bt, bx []float64
	for b := 0; b < nb; b++ {
		lo, hi := b*v.N/nb, (b+1)*v.N/nb
		bt = append(bt, mean(t[lo:hi]))
		bx = append(bx, r.sum(x[lo:hi]))
	}
	v.Slope = theilSen(bt, bx)
	v.Window = t[v.N-1] - t[0]
	v.Allowed = math.Max(r.Abs, r.Rel*v.First)
	v.Growth = v.Last - v.First
	v.Trend = v.Slope * v.Window
	switch {
	case v.Growth > v.Allowed:
		v.Reason = fmt.Sprintf("grew by %s (%s of the last third %s against %s in the first), more than the %s allowed",
			num(v.Growth, s.Unit), r.stat(), num(v.Last, s.Unit), num(v.First, s.Unit), num(v.Allowed, s.Unit))
	case v.Trend > v.Allowed:
		v.Reason = fmt.Sprintf("climbs %s per minute, %s over the %.0fs window, more than the %s allowed",
			num(v.Slope*60, s.Unit), num(v.Trend, s.Unit), v.Window, num(v.Allowed, s.Unit))
	default:
		v.OK = true
	}
	return v
}

// Report is the verdicts as a table, one line per series, then PASS or FAIL with the reasons.
func Report(vs []Verdict) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %5s %12s %12s %12s %12s %14s  %s\n", "series", "n", "first third", "last third", "growth", "allowed", "trend/window", "verdict")
	ok := true
	for _, v := range vs {
		verdict := "flat"
		if !v.OK {
			verdict, ok = "NOT FLAT", false
		}
		fmt.Fprintf(&b, "%-12s %5d %12s %12s %12s %12s %14s  %s\n", v.Name, v.N, num(v.First, v.Unit), num(v.Last, v.Unit),
			num(v.Growth, v.Unit), num(v.Allowed, v.Unit), num(v.Trend, v.Unit), verdict)
	}
	if ok {
		b.WriteString("PASS: every series is flat\n")
		return b.String()
	}
	b.WriteString("FAIL:\n")
	for _, v := range vs {
		if !v.OK {
			fmt.Fprintf(&b, "  %s: %s\n", v.Name, v.Reason)
		}
	}
	return b.String()
}

// AllOK reports whether every verdict is flat.
func AllOK(vs []Verdict) bool {
	for _, v := range vs {
		if !v.OK {
			return false
		}
	}
	return len(vs) > 0
}

func num(x float64, unit string) string {
	s := fmt.Sprintf("%.1f", x)
	if math.Abs(x) >= 1000 || x == math.Trunc(x) {
		s = fmt.Sprintf("%.0f", x)
	}
	if unit == "" {
		return s
	}
	if unit == "%" {
		return s + "%"
	}
	return s + " " + unit
}

func median(x []float64) float64 { return quantile(x, 0.5) }

// quantile is the q-quantile of x, interpolated linearly between order statistics (the
// median of an even count is the mean of the middle two).
func quantile(x []float64, q float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := slices.Clone(x)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

func mean(x []float64) float64 {
	sum := 0.0
	for _, v := range x {
		sum += v
	}
	return sum / float64(len(x))
}

// theilSen is the median of the slopes (x[j]-x[i])/(t[j]-t[i]) over every pair i<j with
// t[j] > t[i].
func theilSen(t, x []float64) float64 {
	var slopes []float64
	for i := range t {
		for j := i + 1; j < len(t); j++ {
			if dt := t[j] - t[i]; dt > 0 {
				slopes = append(slopes, (x[j]-x[i])/dt)
			}
		}
	}
	if len(slopes) == 0 {
		return 0
	}
	return median(slopes)
}
