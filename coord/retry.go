package coord

import (
	"log/slog"
	"time"

	"github.com/vipd/vipd/internal/clock"
)

// retrying is what the watcher and the publisher share: a request timeout,
// the bounds of the backoff between failed attempts, a clock and a logger.
type retrying struct {
	timeout  time.Duration
	min, max time.Duration
	clock    clock.Clock
	log      *slog.Logger
}

// newRetrying fills the defaults of the zero values: DefaultRequestTimeout,
// DefaultMinBackoff and DefaultMaxBackoff (max never below min), the system
// clock and slog.Default.
func newRetrying(timeout, min, max time.Duration, c clock.Clock, log *slog.Logger) retrying {
	r := retrying{timeout: timeout, min: min, max: max, clock: c, log: log}
	if r.timeout <= 0 {
		r.timeout = DefaultRequestTimeout
	}
	if r.min <= 0 {
		r.min = DefaultMinBackoff
	}
	if r.max <= 0 {
		r.max = DefaultMaxBackoff
	}
	if r.max < r.min {
		r.max = r.min
	}
	if r.clock == nil {
		r.clock = clock.System{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}
