package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// clearScreen moves the cursor home and clears the screen (ANSI CUP, ED).
const clearScreen = "\x1b[H\x1b[2J"

// minWatchInterval is the shortest --interval, watch(1)'s.
const minWatchInterval = 100 * time.Millisecond

// watch calls refresh at once, then on every tick of interval, until ctx
// ends or the user stops it (SIGINT, SIGTERM): then it returns nil, without
// starting another refresh. n counts the refreshes from 0. An error of
// refresh ends the watch with that error.
func (env *cliEnv) watch(ctx context.Context, interval time.Duration, refresh func(ctx context.Context, n int) error) error {
	ctx, stop := env.interruptContext(ctx)
	defer stop()
	tick, stopTick := env.newTicker(interval)
	defer stopTick()
	for n := 0; ctx.Err() == nil; n++ {
		if err := refresh(ctx, n); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-tick:
		}
	}
	return nil
}

// interruptContext is ctx until the user stops the command: env's
// interruptible, or SIGINT (Ctrl-C) and SIGTERM.
func (env *cliEnv) interruptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if env.interruptible != nil {
		return env.interruptible(ctx)
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// newTicker is env's ticker, or time's.
func (env *cliEnv) newTicker(d time.Duration) (<-chan time.Time, func()) {
	if env.ticker != nil {
		return env.ticker(d)
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}
