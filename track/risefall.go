package track

// riseFall is keepalived's vrrp_script result counter (include/vrrp_track.h,
// vrrp_scheduler.c vrrp_script_child_thread): result 0..rise-1 is FAILED,
// rise..rise+fall-1 is OK. rise consecutive successes make a failed script
// OK, fall consecutive failures make an OK script FAILED. Before the first
// result (keepalived's INIT state) the first run decides at once.
type riseFall struct {
	rise, fall int
	result     int
	known      bool
}

// newRiseFall starts a counter. With initFail the script starts known and
// FAILED and needs rise successes (the documented meaning of init_fail).
func newRiseFall(rise, fall int, initFail bool) riseFall {
	rise, fall = max(rise, 1), max(fall, 1)
	if initFail {
		return riseFall{rise: rise, fall: fall, result: 0, known: true}
	}
	// "one success is enough" (vrrp_init_script).
	return riseFall{rise: rise, fall: fall, result: rise - 1}
}

// ok reports the current state (meaningful once known).
func (r *riseFall) ok() bool { return r.result >= r.rise }

// observe records one run and reports whether the state (OK/FAILED, or
// known) changed.
func (r *riseFall) observe(success bool) (changed bool) {
	top := r.rise + r.fall - 1
	if success {
		switch {
		case r.result < r.rise-1:
			r.result++
		case r.result != top:
			changed = r.result < r.rise || !r.known
			r.result = top
		}
	} else {
		if r.result > r.rise {
			r.result--
		} else {
			changed = r.result == r.rise || !r.known
			r.result = 0
		}
	}
	if !r.known {
		changed = true
	}
	r.known = true
	return changed
}
