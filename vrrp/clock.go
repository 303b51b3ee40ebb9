package vrrp

import "github.com/vipd/vipd/internal/clock"

// Clock is the time source of the runtime. Tests inject a fake one; the
// state machine itself never reads a clock (it is handed "now").
type Clock = clock.Clock

// Timer is the part of *time.Timer the runtime uses.
type Timer = clock.Timer

// SystemClock is the real clock.
type SystemClock = clock.System
