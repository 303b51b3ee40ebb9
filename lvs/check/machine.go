package check

import (
	"time"

	"github.com/vipd/vipd/config"
)

// This file is the checker state machine of keepalived's check_*.c epilogs
// (tcp_epilog and its siblings), as pure functions: no I/O, no clock.

// timing is the part of a checker's configuration the state machine reads.
type timing struct {
	retry            int
	delayBeforeRetry time.Duration
	delayLoop        time.Duration
	warmup           time.Duration
}

func timingOf(c *config.Checker) timing {
	return timing{
		retry:            retryOf(c),
		delayBeforeRetry: c.DelayBeforeRetry.D(),
		delayLoop:        c.DelayLoop.D(),
		warmup:           c.Warmup.D(),
	}
}

// state is a checker's health between two attempts.
type state struct {
	up bool
	// retryIt counts the retries made in the current round (keepalived's
	// retry_it). A new checker starts with retryIt = retry, as keepalived's
	// check_data.c does: "one failure is enough initially", so a server that
	// is down at start is not used for retry × delay_before_retry.
	retryIt int
}

// stepResult is what an attempt's result does to a checker.
type stepResult struct {
	state state
	next  time.Time // when the next attempt is due
	// roundDone: the attempt ended its round, which is now reported; the
	// next round is delay_loop later. A failure followed by a retry does not.
	roundDone bool
	changed   bool // state.up differs from the previous state
}

// start is a new checker: UP, or DOWN when its virtual server has alpha. Its
// first attempt is after a random delay in [0, warmup], as keepalived's
// register_checkers_thread; keepalived's warmup defaults to delay_loop, and
// so does this one when warmup is 0. jitter(max) returns a value in [0, max].
func (t timing) start(startDown bool, now time.Time, jitter func(max time.Duration) time.Duration) (state, time.Time) {
	spread := t.warmup
	if spread <= 0 {
		spread = t.delayLoop
	}
	d := time.Duration(0)
	if spread > 0 {
		d = min(max(jitter(spread), 0), spread)
	}
	return state{up: !startDown, retryIt: t.retry}, now.Add(d)
}

// step applies an attempt's result at now:
//   - a success resets the retries; a DOWN checker goes UP; next round in
//     delay_loop;
//   - a failure of an UP checker with retries left schedules a retry in
//     delay_before_retry; without retries left it goes DOWN, next round in
//     delay_loop;
//   - a failure of a DOWN checker is a failed round: next in delay_loop.
func (t timing) step(s state, ok bool, now time.Time) stepResult {
	switch {
	case ok:
		return stepResult{state: state{up: true}, next: now.Add(t.delayLoop), roundDone: true, changed: !s.up}
	case s.up && s.retryIt < t.retry:
		return stepResult{state: state{up: true, retryIt: s.retryIt + 1}, next: now.Add(t.delayBeforeRetry)}
	default:
		return stepResult{state: state{}, next: now.Add(t.delayLoop), roundDone: true, changed: s.up}
	}
}

// retryOf is the checker's retry; a checker config.Normalize has not seen
// has none, which is keepalived's default for its type.
func retryOf(c *config.Checker) int {
	if c.Retry != nil {
		return *c.Retry
	}
	return config.DefaultRetry(c.Type)
}
