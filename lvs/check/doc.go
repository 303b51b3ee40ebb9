// Package check runs keepalived's real-server health checkers: TCP_CHECK,
// HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK and SMTP_CHECK, with keepalived's
// retry, delay_before_retry, delay_loop, warmup and alpha semantics.
//
// It owns the probes (one attempt each, on real sockets or by running
// misc_path), the per-checker UP/DOWN state machine (machine.go: pure
// functions of state, result and time, after keepalived's check_*.c
// epilogs) and one Scheduler that runs every checker of a node on an
// injected clock, with a bounded pool of probes in flight and no goroutine
// per checker. It does not decide what a result means for a pool (weights,
// quorum, inhibit_on_failure, notify_up/down, ha_suspend): package lvs does,
// from the Reports.
//
// The API:
//
//   - New(c, Options) (Prober, error) builds the prober of a normalized
//     *config.Checker; Options carry what the checker inherits (the virtual
//     server's virtualhost, global script_user, enable_script_security).
//   - Prober.Probe(ctx) Outcome runs one attempt: OK, a short Cause, its
//     Duration, and for misc_dynamic the Weight the script asked for.
//   - NewScheduler(SchedulerOptions) *Scheduler: clock, logger, MaxConcurrent,
//     jitter source and the OnResult callback.
//   - Scheduler.Set([]Check) replaces the set of checks; Check is {ID,
//     Config, Prober, StartDown (alpha)}. An ID whose configuration is
//     unchanged keeps its state and schedule, so a reload flaps nothing.
//   - Scheduler.Run(ctx) runs them until ctx is done and returns once every
//     goroutine it started has ended.
//   - OnResult(Report) is called for every completed round, in order, from
//     one goroutine; Scheduler.States() returns a Status snapshot per ID.
//   - Target(c) names what a checker probes, for logs.
//
// Every UP/DOWN transition is logged in one line: checker type, target,
// from, to and cause.
//
//	p, err := check.New(c, check.Options{VirtualHost: vs.VirtualHost, ScriptUser: g.ScriptUser})
//	s := check.NewScheduler(check.SchedulerOptions{Log: log, OnResult: onResult})
//	err = s.Set([]check.Check{{ID: "10.0.0.1:80/10.0.1.5:80/0", Config: c, Prober: p, StartDown: vs.Alpha}})
//	go s.Run(ctx)
package check
