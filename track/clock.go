package track

import "github.com/vipd/vipd/internal/clock"

// Clock is the time source of the schedules (script intervals, file polls,
// link resubscription). Tests inject a fake one.
type Clock = clock.Clock

// Timer is the part of *time.Timer the manager uses.
type Timer = clock.Timer

// SystemClock is the real clock.
type SystemClock = clock.System
