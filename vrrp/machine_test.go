package vrrp

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The tests drive the machine with explicit times: t0 plus an offset. No
// test reads a clock or sleeps.
var smT0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// noDeadline as a step's deadline means "no timer runs".
const smNone time.Duration = -1

// Exact timer values (integer nanoseconds).
const (
	v2Skew100  = 609375 * time.Microsecond  // (256-100)/256 s
	v2MDI100   = 3609375 * time.Microsecond // 3*1s + v2Skew100
	v2MDI150   = 3414062500 * time.Nanosecond
	v2SkewMin  = 3906250 * time.Nanosecond // 1/256 s
	v3Skew100  = 60937500 * time.Nanosecond
	v3MDI100   = 360937500 * time.Nanosecond // 3*100ms + v3Skew100
	v3SkewMin  = 390625 * time.Nanosecond    // 100ms/256
	v3Skew100s = 609375 * time.Microsecond   // priority 100, Master_Adver_Interval 1s
)

var (
	smSelf   = netip.MustParseAddr("10.0.0.5")
	smLower  = netip.MustParseAddr("10.0.0.4")
	smHigher = netip.MustParseAddr("10.0.0.6")
	smPeer2  = netip.MustParseAddr("10.0.0.2")
)

func smV2(prio uint8) Params {
	return Params{Version: 2, Priority: prio, AdvertInt: time.Second, Primary: smSelf}
}

func smV3(prio uint8, iv time.Duration) Params {
	return Params{Version: 3, Priority: prio, AdvertInt: iv, Primary: smSelf}
}

func smAdv(from netip.Addr, prio uint8, iv time.Duration) Event {
	return Event{Kind: EvAdvert, From: from, Priority: prio, Interval: iv}
}

var (
	smStartup  = Event{Kind: EvStartup}
	smTimer    = Event{Kind: EvTimer}
	smClear    = Event{Kind: EvFaultClear}
	smShutdown = Event{Kind: EvShutdown}
	smAcquire  = Action{Kind: ActAcquire}
	smRelease  = Action{Kind: ActRelease}
)

func smFault(cause string) Event { return Event{Kind: EvFault, Cause: cause} }
func smPrio(p uint8) Event       { return Event{Kind: EvPriority, Priority: p} }
func smSend(p uint8) Action      { return Action{Kind: ActSendAdvert, Priority: p} }

// smAnswerLower is what a MASTER does on a lower-priority advert: answer at
// once and refresh the neighbours' caches (garp_lower_prio_*).
func smAnswerLower(p uint8) []Action {
	return []Action{smSend(p), {Kind: ActLowerPrioAnnounce}}
}
func smForceBackup(c string) Event { return Event{Kind: EvForceBackup, Cause: c} }
func smTrans(from, to State, cause string) Action {
	return Action{Kind: ActTransition, From: from, To: to, Cause: cause}
}

// startBackup is what a non-owner instance does at start-up.
func smStartBackup(cause string) []Action {
	return []Action{smRelease, smTrans(StateInit, StateBackup, cause)}
}

// takeOver is what a backup does when its Master_Down_Timer fires.
func smTakeOver(p uint8) []Action {
	return []Action{smSend(p), smAcquire, smTrans(StateBackup, StateMaster, "master down timer expired")}
}

// step is one event fed at t0+at and what must follow.
type smStep struct {
	at       time.Duration
	ev       Event
	want     []Action // a want Cause is a substring the real cause must contain
	state    State
	deadline time.Duration // NextDeadline as an offset from t0, or noDeadline
}

func (s smStep) String() string {
	return fmt.Sprintf("%s at +%v", smEvName(s.ev), s.at)
}

func smEvName(ev Event) string {
	switch ev.Kind {
	case EvStartup:
		return "startup"
	case EvTimer:
		return "timer"
	case EvAdvert:
		return fmt.Sprintf("advert(prio %d from %s)", ev.Priority, ev.From)
	case EvPriority:
		return fmt.Sprintf("priority(%d)", ev.Priority)
	case EvFault:
		return fmt.Sprintf("fault(%q)", ev.Cause)
	case EvFaultClear:
		return "fault-clear"
	case EvShutdown:
		return "shutdown"
	case EvForceBackup:
		return "force-backup"
	case EvResume:
		return "resume"
	}
	return fmt.Sprintf("Event(%d)", ev.Kind)
}

func smFmtAction(a Action) string {
	switch a.Kind {
	case ActSendAdvert:
		return fmt.Sprintf("send(%d)", a.Priority)
	case ActAcquire:
		return "acquire"
	case ActRelease:
		return "release"
	case ActTransition:
		return fmt.Sprintf("%s->%s", a.From, a.To)
	case ActLowerPrioAnnounce:
		return "lower-prio-announce"
	}
	return fmt.Sprintf("Action(%d)", a.Kind)
}

func smFmtActions(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = smFmtAction(a)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// checkActions compares kinds, priorities and states exactly, and causes as
// substrings; a transition must always carry a cause.
func smCheckActions(t *testing.T, where string, got, want []Action) {
	t.Helper()
	if smFmtActions(got) != smFmtActions(want) {
		t.Errorf("%s: actions %s, want %s", where, smFmtActions(got), smFmtActions(want))
		return
	}
	for i := range got {
		if got[i].Kind != ActTransition {
			continue
		}
		if got[i].Cause == "" {
			t.Errorf("%s: transition %s has no cause", where, smFmtAction(got[i]))
		}
		if !strings.Contains(got[i].Cause, want[i].Cause) {
			t.Errorf("%s: transition %s cause %q, want it to contain %q", where, smFmtAction(got[i]), got[i].Cause, want[i].Cause)
		}
	}
}

func smCheckDeadline(t *testing.T, where string, m *Machine, want time.Duration) {
	t.Helper()
	got := m.NextDeadline()
	if want == smNone {
		if !got.IsZero() {
			t.Errorf("%s: NextDeadline +%v, want none", where, got.Sub(smT0))
		}
		return
	}
	if got.IsZero() {
		t.Errorf("%s: NextDeadline none, want +%v", where, want)
		return
	}
	if !got.Equal(smT0.Add(want)) {
		t.Errorf("%s: NextDeadline +%v, want +%v", where, got.Sub(smT0), want)
	}
}

func smRun(t *testing.T, m *Machine, steps []smStep) {
	t.Helper()
	for i, s := range steps {
		where := fmt.Sprintf("step %d %s", i, s)
		got := m.Step(smT0.Add(s.at), s.ev)
		smCheckActions(t, where, got, s.want)
		if m.State() != s.state {
			t.Errorf("%s: state %s, want %s", where, m.State(), s.state)
		}
		smCheckDeadline(t, where, m, s.deadline)
	}
}

// masterAt brings a machine with p to MASTER: start-up at 0, down timer at
// mdi. It returns the steps so a table can continue from there.
func smMasterAt(p Params, mdi time.Duration) []smStep {
	return []smStep{
		{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: mdi},
		{at: mdi, ev: smTimer, want: smTakeOver(p.Priority), state: StateMaster, deadline: mdi + p.AdvertInt},
	}
}

func smCat(parts ...[]smStep) []smStep {
	var out []smStep
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestMasterDownIntervalV2(t *testing.T) {
	// RFC 3768: Skew_Time is (256-Priority)/256 seconds whatever the advert
	// interval; keepalived: pri * TIMER_HZ / 256.
	tests := []struct {
		name      string
		prio      uint8
		advertInt time.Duration
		skew, mdi time.Duration
	}{
		{"priority 100 at 1s", 100, time.Second, v2Skew100, v2MDI100},
		{"priority 150 at 1s", 150, time.Second, 414062500 * time.Nanosecond, v2MDI150},
		{"priority 200 at 1s", 200, time.Second, 218750 * time.Microsecond, 3218750 * time.Microsecond},
		{"priority 1 at 1s", 1, time.Second, 996093750 * time.Nanosecond, 3996093750 * time.Nanosecond},
		{"priority 254 at 1s", 254, time.Second, 7812500 * time.Nanosecond, 3007812500 * time.Nanosecond},
		{"skew does not scale with a 3s interval", 100, 3 * time.Second, v2Skew100, 9609375 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := smV2(tc.prio)
			p.AdvertInt = tc.advertInt
			m := NewMachine(p)
			if got := m.SkewTime(); got != tc.skew {
				t.Errorf("SkewTime = %v, want %v", got, tc.skew)
			}
			if got := m.MasterDownInterval(); got != tc.mdi {
				t.Errorf("MasterDownInterval = %v, want %v", got, tc.mdi)
			}
			smRun(t, m, []smStep{{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: tc.mdi}})
		})
	}
}

func TestMasterDownIntervalV3(t *testing.T) {
	// RFC 5798 6.1: Skew_Time = ((256-Priority) * Master_Adver_Interval) / 256.
	tests := []struct {
		name      string
		prio      uint8
		advertInt time.Duration
		skew, mdi time.Duration
	}{
		{"priority 100 at 100ms", 100, 100 * time.Millisecond, v3Skew100, v3MDI100},
		{"priority 100 at 1s", 100, time.Second, v3Skew100s, 3609375 * time.Microsecond},
		{"priority 200 at 100ms", 200, 100 * time.Millisecond, 21875 * time.Microsecond, 321875 * time.Microsecond},
		{"priority 254 at 10ms", 254, 10 * time.Millisecond, 78125 * time.Nanosecond, 30078125 * time.Nanosecond},
		{"skew scales with a 3s interval", 100, 3 * time.Second, 1828125 * time.Microsecond, 10828125 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(smV3(tc.prio, tc.advertInt))
			if got := m.SkewTime(); got != tc.skew {
				t.Errorf("SkewTime = %v, want %v", got, tc.skew)
			}
			if got := m.MasterDownInterval(); got != tc.mdi {
				t.Errorf("MasterDownInterval = %v, want %v", got, tc.mdi)
			}
			smRun(t, m, []smStep{{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: tc.mdi}})
		})
	}
}

func TestSkewTimeV3UsesLearnedMasterAdverInterval(t *testing.T) {
	tests := []struct {
		name       string
		p          Params
		advertIv   time.Duration // interval carried by the master's advert
		wantMAI    time.Duration
		wantMDI    time.Duration
		wantSkew   time.Duration
		startupMDI time.Duration
	}{
		{"v3 own 1s learns 100ms", smV3(100, time.Second), 100 * time.Millisecond, 100 * time.Millisecond, v3MDI100, v3Skew100, 3609375 * time.Microsecond},
		{"v3 own 100ms learns 1s", smV3(100, 100*time.Millisecond), time.Second, time.Second, 3609375 * time.Microsecond, v3Skew100s, v3MDI100},
		{"v3 advert without interval keeps ours", smV3(100, 100*time.Millisecond), 0, 100 * time.Millisecond, v3MDI100, v3Skew100, v3MDI100},
		{"v2 ignores the advert's interval", smV2(100), 3 * time.Second, time.Second, v2MDI100, v2Skew100, v2MDI100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.p)
			const heard = 200 * time.Millisecond
			const zero = 300 * time.Millisecond
			smRun(t, m, []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: tc.startupMDI},
				{at: heard, ev: smAdv(smHigher, 200, tc.advertIv), state: StateBackup, deadline: heard + tc.wantMDI},
			})
			if got := m.MasterAdverInterval(); got != tc.wantMAI {
				t.Errorf("MasterAdverInterval = %v, want %v", got, tc.wantMAI)
			}
			if got := m.SkewTime(); got != tc.wantSkew {
				t.Errorf("SkewTime = %v, want %v", got, tc.wantSkew)
			}
			if addr, p := m.Master(); addr != smHigher || p != 200 {
				t.Errorf("Master() = %s %d, want %s 200", addr, p, smHigher)
			}
			// The master leaves: we take over after the learned skew.
			smRun(t, m, []smStep{
				{at: zero, ev: smAdv(smHigher, 0, tc.advertIv), state: StateBackup, deadline: zero + tc.wantSkew},
				{at: zero + tc.wantSkew, ev: smTimer, want: smTakeOver(100), state: StateMaster, deadline: zero + tc.wantSkew + tc.p.AdvertInt},
			})
		})
	}
}

func TestBackupTakesOverAfterSkewTimeOnPriorityZero(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		skew time.Duration
		mdi  time.Duration
	}{
		{"v2 priority 100", smV2(100), v2Skew100, v2MDI100},
		{"v3 priority 100 at 100ms", smV3(100, 100*time.Millisecond), v3Skew100, v3MDI100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iv := tc.p.AdvertInt
			m := NewMachine(tc.p)
			bye := 2*iv + iv/2
			smRun(t, m, []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: tc.mdi},
				{at: iv, ev: smAdv(smHigher, 150, iv), state: StateBackup, deadline: iv + tc.mdi},
				{at: 2 * iv, ev: smAdv(smHigher, 150, iv), state: StateBackup, deadline: 2*iv + tc.mdi},
				// The master sends priority 0: Master_Down_Timer = Skew_Time.
				{at: bye, ev: smAdv(smHigher, 0, iv), state: StateBackup, deadline: bye + tc.skew},
				// A timer a nanosecond early does nothing.
				{at: bye + tc.skew - 1, ev: smTimer, state: StateBackup, deadline: bye + tc.skew},
				{at: bye + tc.skew, ev: smTimer, want: smTakeOver(100), state: StateMaster, deadline: bye + tc.skew + iv},
			})
		})
	}
}

func TestStartupWaitsMasterDownIntervalThenTakesOver(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		mdi  time.Duration
	}{
		{"v2 priority 100", smV2(100), v2MDI100},
		{"v3 priority 100 at 100ms", smV3(100, 100*time.Millisecond), v3MDI100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.p)
			if m.State() != StateInit {
				t.Fatalf("new machine in %s, want INIT", m.State())
			}
			smRun(t, m, []smStep{
				{at: 0, ev: smTimer, state: StateInit, deadline: smNone},
				{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: tc.mdi},
				// A second start-up is not a restart.
				{at: 1, ev: smStartup, state: StateBackup, deadline: tc.mdi},
				{at: tc.mdi - 1, ev: smTimer, state: StateBackup, deadline: tc.mdi},
				{at: tc.mdi, ev: smTimer, want: smTakeOver(100), state: StateMaster, deadline: tc.mdi + tc.p.AdvertInt},
			})
			if addr, p := m.Master(); addr != smSelf || p != 100 {
				t.Errorf("Master() = %s %d, want ourselves %s 100", addr, p, smSelf)
			}
		})
	}
}

func TestOwnerBecomesMasterAtStartup(t *testing.T) {
	tests := []struct {
		name string
		p    Params
	}{
		{"v2", smV2(PriorityOwner)},
		{"v3 at 100ms", smV3(PriorityOwner, 100*time.Millisecond)},
		{"v2 with state MASTER", func() Params { p := smV2(PriorityOwner); p.StartMaster = true; return p }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.p)
			smRun(t, m, []smStep{{
				at: 0, ev: smStartup,
				want:  []Action{smSend(255), smAcquire, smTrans(StateInit, StateMaster, "address owner (priority 255)")},
				state: StateMaster, deadline: tc.p.AdvertInt,
			}})
		})
	}
}

func TestStateMasterStartupWaitsOneAdvertInterval(t *testing.T) {
	// keepalived vrrp_init_state: a configured MASTER below 255 waits
	// master_adver_int + VRRP_TIMER_SKEW_MIN for a master.
	startMaster := func(p Params) Params { p.StartMaster = true; return p }
	tests := []struct {
		name string
		p    Params
		wait time.Duration
		mdi  time.Duration
	}{
		{"v2 at 1s", startMaster(smV2(100)), time.Second + v2SkewMin, v2MDI100},
		{"v3 at 100ms", startMaster(smV3(100, 100*time.Millisecond)), 100*time.Millisecond + v3SkewMin, v3MDI100},
	}
	for _, tc := range tests {
		t.Run(tc.name+" no master heard", func(t *testing.T) {
			smRun(t, NewMachine(tc.p), []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("state MASTER"), state: StateBackup, deadline: tc.wait},
				{at: tc.wait, ev: smTimer, want: smTakeOver(100), state: StateMaster, deadline: tc.wait + tc.p.AdvertInt},
			})
		})
		t.Run(tc.name+" higher master heard", func(t *testing.T) {
			heard := tc.wait / 2
			smRun(t, NewMachine(tc.p), []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("state MASTER"), state: StateBackup, deadline: tc.wait},
				{at: heard, ev: smAdv(smHigher, 150, tc.p.AdvertInt), state: StateBackup, deadline: heard + tc.mdi},
				{at: tc.wait, ev: smTimer, state: StateBackup, deadline: heard + tc.mdi},
			})
		})
	}
}

func TestMasterSendsAdvertEveryInterval(t *testing.T) {
	for _, iv := range []time.Duration{time.Second, 100 * time.Millisecond} {
		t.Run(iv.String(), func(t *testing.T) {
			m := NewMachine(smV3(PriorityOwner, iv))
			steps := []smStep{{at: 0, ev: smStartup, want: []Action{smSend(255), smAcquire, smTrans(StateInit, StateMaster, "owner")}, state: StateMaster, deadline: iv}}
			for k := 1; k <= 5; k++ {
				at := time.Duration(k) * iv
				steps = append(steps,
					smStep{at: at - 1, ev: smTimer, state: StateMaster, deadline: at}, // early: nothing
					smStep{at: at, ev: smTimer, want: []Action{smSend(255)}, state: StateMaster, deadline: at + iv},
				)
			}
			smRun(t, m, steps)
		})
	}
}

func TestBackupAcceptsEqualOrHigherPriorityMaster(t *testing.T) {
	// RFC 5798 6.4.2: Priority >= local Priority resets the down timer;
	// the address only breaks ties between two masters.
	tests := []struct {
		name string
		from netip.Addr
		prio uint8
	}{
		{"higher priority", smLower, 150},
		{"equal priority from lower address", smLower, 100},
		{"equal priority from higher address", smHigher, 100},
		{"owner", smLower, 255},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(smV2(100))
			steps := []smStep{{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI100}}
			for k := 1; k <= 10; k++ {
				at := time.Duration(k) * time.Second
				steps = append(steps, smStep{at: at, ev: smAdv(tc.from, tc.prio, time.Second), state: StateBackup, deadline: at + v2MDI100})
			}
			smRun(t, m, steps)
			if addr, p := m.Master(); addr != tc.from || p != tc.prio {
				t.Errorf("Master() = %s %d, want %s %d", addr, p, tc.from, tc.prio)
			}
		})
	}
}

func TestPreemptingBackupIgnoresLowerPriorityMasterAndTakesOver(t *testing.T) {
	m := NewMachine(smV2(150))
	smRun(t, m, []smStep{
		{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI150},
		// Adverts from a lower priority master do not reset our timer.
		{at: 1 * time.Second, ev: smAdv(smLower, 100, time.Second), state: StateBackup, deadline: v2MDI150},
		{at: 2 * time.Second, ev: smAdv(smLower, 100, time.Second), state: StateBackup, deadline: v2MDI150},
		{at: 3 * time.Second, ev: smAdv(smLower, 100, time.Second), state: StateBackup, deadline: v2MDI150},
		{at: v2MDI150, ev: smTimer, want: smTakeOver(150), state: StateMaster, deadline: v2MDI150 + time.Second},
		// The old master still advertises: we answer at once.
		{at: 4 * time.Second, ev: smAdv(smLower, 100, time.Second), want: smAnswerLower(150), state: StateMaster, deadline: 5 * time.Second},
	})
}

func TestNoPreemptKeepsLowerMaster(t *testing.T) {
	p := smV2(150)
	p.NoPreempt = true
	m := NewMachine(p)
	steps := []smStep{{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI150}}
	for k := 1; k <= 20; k++ {
		at := time.Duration(k) * time.Second
		steps = append(steps, smStep{at: at, ev: smAdv(smLower, 100, time.Second), state: StateBackup, deadline: at + v2MDI150})
	}
	// The lower master dies: we take over after one Master_Down_Interval.
	steps = append(steps, smStep{at: 20*time.Second + v2MDI150, ev: smTimer, want: smTakeOver(150), state: StateMaster, deadline: 21*time.Second + v2MDI150})
	smRun(t, m, steps)
}

func TestPreemptDelayHoldsThenPreempts(t *testing.T) {
	withDelay := func(d time.Duration) Params { p := smV2(150); p.PreemptDelay = d; return p }
	lo := func(at time.Duration, deadline time.Duration) smStep {
		return smStep{at: at, ev: smAdv(smLower, 100, time.Second), state: StateBackup, deadline: deadline}
	}
	s := time.Second
	restart := func(p uint8) []smStep {
		return []smStep{
			{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI150},
			lo(1*s, 1*s+v2MDI150),
			{at: 2 * s, ev: smAdv(smHigher, p, s), state: StateBackup, deadline: 2*s + v2MDI150},
			lo(3*s, 3*s+v2MDI150), lo(6*s, 6*s+v2MDI150), lo(7*s, 7*s+v2MDI150),
			lo(8*s, 7*s+v2MDI150),
			{at: 7*s + v2MDI150, ev: smTimer, want: smTakeOver(150), state: StateMaster, deadline: 8*s + v2MDI150},
		}
	}
	tests := []struct {
		name  string
		p     Params
		steps []smStep
	}{
		{
			// The delay starts at the first lower-priority advert (1s) and
			// runs to 6s; adverts before 6s are accepted, the one at 6s
			// is not, so the timer set at 5s fires at 5s+MDI.
			name: "delay from first lower advert",
			p:    withDelay(5 * s),
			steps: []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI150},
				lo(1*s, 1*s+v2MDI150), lo(2*s, 2*s+v2MDI150), lo(3*s, 3*s+v2MDI150),
				lo(4*s, 4*s+v2MDI150), lo(5*s, 5*s+v2MDI150),
				lo(6*s, 5*s+v2MDI150), lo(7*s, 5*s+v2MDI150), lo(8*s, 5*s+v2MDI150),
				{at: 5*s + v2MDI150, ev: smTimer, want: smTakeOver(150), state: StateMaster, deadline: 6*s + v2MDI150},
			},
		},
		{
			// A higher priority advert stops the delay; the next lower one
			// starts it afresh (3s -> 8s).
			name:  "higher advert restarts the delay",
			p:     withDelay(5 * s),
			steps: restart(200),
		},
		{
			name:  "equal advert restarts the delay",
			p:     withDelay(5 * s),
			steps: restart(150),
		},
		{
			name: "no delay preempts at once",
			p:    withDelay(0),
			steps: []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI150},
				lo(1*s, v2MDI150), lo(2*s, v2MDI150),
				{at: v2MDI150, ev: smTimer, want: smTakeOver(150), state: StateMaster, deadline: v2MDI150 + s},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { smRun(t, NewMachine(tc.p), tc.steps) })
	}
}

func TestEqualPriorityHigherAddressWins(t *testing.T) {
	// Two masters at the same priority (both timers ran out): the one with
	// the lower primary address yields, the higher one asserts itself.
	v6 := smV2(100)
	v6.Primary = netip.MustParseAddr("fe80::5")
	tests := []struct {
		name string
		p    Params
		from netip.Addr
		want []Action
		st   State
		dl   time.Duration
	}{
		{"peer with higher address wins", smV2(100), smHigher,
			[]Action{smRelease, smTrans(StateMaster, StateBackup, "same priority 100 from higher address 10.0.0.6")},
			StateBackup, 5*time.Second + v2MDI100},
		{"peer with lower address yields", smV2(100), smLower, smAnswerLower(100), StateMaster, 6 * time.Second},
		{"own address looped back is ignored", smV2(100), smSelf, nil, StateMaster, v2MDI100 + 2*time.Second},
		{"IPv6 peer with higher address wins", v6, netip.MustParseAddr("fe80::6"),
			[]Action{smRelease, smTrans(StateMaster, StateBackup, "same priority 100 from higher address fe80::6")},
			StateBackup, 5*time.Second + v2MDI100},
		{"IPv6 peer with lower address yields", v6, netip.MustParseAddr("fe80::4"), smAnswerLower(100), StateMaster, 6 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.p)
			smRun(t, m, smCat(smMasterAt(tc.p, v2MDI100), []smStep{
				{at: v2MDI100 + time.Second, ev: smTimer, want: []Action{smSend(100)}, state: StateMaster, deadline: v2MDI100 + 2*time.Second},
				{at: 5 * time.Second, ev: smAdv(tc.from, 100, time.Second), want: tc.want, state: tc.st, deadline: tc.dl},
			}))
		})
	}
}

func TestMasterYieldsToHigherPriority(t *testing.T) {
	tests := []struct {
		name    string
		p       Params
		mdi     time.Duration
		advIv   time.Duration
		wantMDI time.Duration
	}{
		{"v2", smV2(100), v2MDI100, time.Second, v2MDI100},
		// v3: the new master's interval (1s) becomes Master_Adver_Interval.
		{"v3 learns the new master's interval", smV3(100, 100*time.Millisecond), v3MDI100, time.Second, 3609375 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.p)
			at := tc.mdi + tc.p.AdvertInt/2
			// The higher priority peer has a lower address: priority wins.
			smRun(t, m, smCat(smMasterAt(tc.p, tc.mdi), []smStep{
				{at: at, ev: smAdv(smPeer2, 150, tc.advIv),
					want:  []Action{smRelease, smTrans(StateMaster, StateBackup, "higher priority 150 from 10.0.0.2")},
					state: StateBackup, deadline: at + tc.wantMDI},
			}))
			if addr, p := m.Master(); addr != smPeer2 || p != 150 {
				t.Errorf("Master() = %s %d, want %s 150", addr, p, smPeer2)
			}
		})
	}
}

func TestMasterAnswersLowerPriorityAdvertAtOnce(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want []Action
	}{
		{"lower priority", smAdv(smHigher, 50, time.Second), smAnswerLower(100)},
		{"priority 1", smAdv(smHigher, 1, time.Second), smAnswerLower(100)},
		// Another master leaving: RFC 5798 6.4.3 send an advert and reset
		// the Adver_Timer (no cache refresh: it is going away).
		{"priority 0 from a leaving master", smAdv(smLower, 0, time.Second), []Action{smSend(100)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := smV2(100)
			at := v2MDI100 + 500*time.Millisecond
			smRun(t, NewMachine(p), smCat(smMasterAt(p, v2MDI100), []smStep{
				{at: at, ev: tc.ev, want: tc.want, state: StateMaster, deadline: at + time.Second},
				{at: at + time.Second, ev: smTimer, want: []Action{smSend(100)}, state: StateMaster, deadline: at + 2*time.Second},
			}))
		})
	}
}

func TestLowerPrioNoAdvertMasterStaysQuietButRefreshesCaches(t *testing.T) {
	// keepalived lower_prio_no_advert (vrrp.c vrrp_state_master_rx): no
	// advert in answer to a lower priority, the garp_lower_prio_* refresh
	// still runs, and the advert timer keeps its rhythm (vrrp_scheduler.c
	// does not restart a MASTER's advert timer after an advert it received
	// when lower_prio_no_advert is set).
	lpna := func(p Params) Params { p.LowerPrioNoAdvert = true; return p }
	tests := []struct {
		name string
		p    Params
		mdi  time.Duration
		ev   Event
		want []Action
	}{
		{"v2 lower priority", lpna(smV2(100)), v2MDI100, smAdv(smHigher, 50, time.Second),
			[]Action{{Kind: ActLowerPrioAnnounce}}},
		{"v2 equal priority from a lower address", lpna(smV2(100)), v2MDI100, smAdv(smLower, 100, time.Second),
			[]Action{{Kind: ActLowerPrioAnnounce}}},
		{"v3 priority 1", lpna(smV3(100, 100*time.Millisecond)), v3MDI100, smAdv(smHigher, 1, 100*time.Millisecond),
			[]Action{{Kind: ActLowerPrioAnnounce}}},
		// A leaving master is still answered (hd->priority == 0 sends).
		{"v2 priority 0 is still answered", lpna(smV2(100)), v2MDI100, smAdv(smLower, 0, time.Second),
			[]Action{smSend(100)}},
		// Without the option: answered at once, timer restarted.
		{"v2 default answers", smV2(100), v2MDI100, smAdv(smHigher, 50, time.Second), smAnswerLower(100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iv := tc.p.AdvertInt
			at := tc.mdi + iv/2
			next := tc.mdi + iv // the timer armed by the takeover
			if !tc.p.LowerPrioNoAdvert {
				next = at + iv
			}
			smRun(t, NewMachine(tc.p), smCat(smMasterAt(tc.p, tc.mdi), []smStep{
				{at: at, ev: tc.ev, want: tc.want, state: StateMaster, deadline: next},
				{at: next, ev: smTimer, want: []Action{smSend(100)}, state: StateMaster, deadline: next + iv},
			}))
		})
	}
}

func TestHigherPrioSendAdvertMasterAdvertisesBeforeBackup(t *testing.T) {
	// keepalived higher_prio_send_advert: one advert at our priority, then
	// BACKUP as usual.
	hpsa := func(p Params) Params { p.HigherPrioSendAdvert = true; return p }
	v2At := v2MDI100 + 500*time.Millisecond // the peer's advert, half an interval after our takeover
	v3At := v3MDI100 + 50*time.Millisecond  // same at 100 ms
	tests := []struct {
		name string
		p    Params
		mdi  time.Duration
		at   time.Duration
		ev   Event
		want []Action
		st   State
		dl   time.Duration
	}{
		{"v2 higher priority", hpsa(smV2(100)), v2MDI100, v2At, smAdv(smPeer2, 150, time.Second),
			[]Action{smSend(100), smRelease, smTrans(StateMaster, StateBackup, "higher priority 150 from 10.0.0.2")},
			StateBackup, v2At + v2MDI100},
		{"v3 equal priority from a higher address", hpsa(smV3(100, 100*time.Millisecond)), v3MDI100, v3At, smAdv(smHigher, 100, 100*time.Millisecond),
			[]Action{smSend(100), smRelease, smTrans(StateMaster, StateBackup, "same priority 100 from higher address")},
			StateBackup, v3At + v3MDI100},
		{"without the option no advert", smV2(100), v2MDI100, v2At, smAdv(smPeer2, 150, time.Second),
			[]Action{smRelease, smTrans(StateMaster, StateBackup, "higher priority 150")},
			StateBackup, v2At + v2MDI100},
		// Lower priorities are unaffected by it: answered, timer restarted.
		{"lower priority still answered", hpsa(smV2(100)), v2MDI100, v2At, smAdv(smPeer2, 50, time.Second),
			smAnswerLower(100), StateMaster, v2At + time.Second},
		// Our own address at our priority: neither higher nor lower.
		{"own advert ignored", hpsa(smV2(100)), v2MDI100, v2At, smAdv(smSelf, 100, time.Second),
			nil, StateMaster, v2MDI100 + time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			smRun(t, NewMachine(tc.p), smCat(smMasterAt(tc.p, tc.mdi), []smStep{
				{at: tc.at, ev: tc.ev, want: tc.want, state: tc.st, deadline: tc.dl},
			}))
		})
	}
}

func TestDownTimerAdvertsSetsMasterDownInterval(t *testing.T) {
	// keepalived down_timer_adverts N: ms_down_timer = N * master_adver_int
	// + skew (VRRP_MS_DOWN_TIMER), at start-up, after an advert and with a
	// learned v3 interval.
	n5 := func(p Params) Params { p.DownTimerAdverts = 5; return p }
	tests := []struct {
		name    string
		p       Params
		skew    time.Duration
		mdi     time.Duration
		masterV time.Duration // the master's advert interval (v3: learned)
		learned time.Duration // MasterDownInterval after the master's advert
	}{
		{"v2 priority 100 at 1s", n5(smV2(100)), v2Skew100, 5*time.Second + v2Skew100, time.Second, 5*time.Second + v2Skew100},
		{"v3 priority 100 at 100ms", n5(smV3(100, 100*time.Millisecond)), v3Skew100, 500*time.Millisecond + v3Skew100,
			100 * time.Millisecond, 500*time.Millisecond + v3Skew100},
		// v3: the master's 1s interval scales both N*interval and the skew.
		{"v3 learns a 1s master interval", n5(smV3(100, 100*time.Millisecond)), v3Skew100, 500*time.Millisecond + v3Skew100,
			time.Second, 5*time.Second + v3Skew100s},
		{"default 3 for comparison", smV2(100), v2Skew100, v2MDI100, time.Second, v2MDI100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.p)
			if got := m.SkewTime(); got != tc.skew {
				t.Errorf("SkewTime = %v, want %v", got, tc.skew)
			}
			if got := m.MasterDownInterval(); got != tc.mdi {
				t.Errorf("MasterDownInterval = %v, want %v", got, tc.mdi)
			}
			heard := time.Second / 4
			smRun(t, m, []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: tc.mdi},
				{at: heard, ev: smAdv(smHigher, 150, tc.masterV), state: StateBackup, deadline: heard + tc.learned},
				// One nanosecond early nothing happens; then the takeover.
				{at: heard + tc.learned - 1, ev: smTimer, state: StateBackup, deadline: heard + tc.learned},
				{at: heard + tc.learned, ev: smTimer, want: smTakeOver(100), state: StateMaster, deadline: heard + tc.learned + tc.p.AdvertInt},
			})
		})
	}
}

func TestFaultFromMasterSendsPriorityZeroAndReleases(t *testing.T) {
	p := smV2(100)
	at := 4 * time.Second
	smRun(t, NewMachine(p), smCat(smMasterAt(p, v2MDI100), []smStep{
		{at: at, ev: smFault("interface eth0 down"),
			want:  []Action{smSend(0), smRelease, smTrans(StateMaster, StateFault, "interface eth0 down")},
			state: StateFault, deadline: smNone},
		// In FAULT nothing moves it but a fault clear or a shutdown.
		{at: at + 1, ev: smTimer, state: StateFault, deadline: smNone},
		{at: at + 2, ev: smAdv(smHigher, 150, time.Second), state: StateFault, deadline: smNone},
		{at: at + 3, ev: smAdv(smHigher, 0, time.Second), state: StateFault, deadline: smNone},
		{at: at + 4, ev: smStartup, state: StateFault, deadline: smNone},
		{at: at + 5, ev: smForceBackup("sync group"), state: StateFault, deadline: smNone},
	}))
}

func TestFaultFromBackupOnlyTransitions(t *testing.T) {
	smRun(t, NewMachine(smV2(100)), []smStep{
		{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI100},
		{at: time.Second, ev: smFault("track_script chk_http failed"),
			want: []Action{smTrans(StateBackup, StateFault, "track_script chk_http failed")}, state: StateFault, deadline: smNone},
	})
}

func TestFaultAtStartupStartsInFault(t *testing.T) {
	m := NewMachine(smV2(100))
	smRun(t, m, []smStep{
		{at: 0, ev: smFault("interface eth0 down"), state: StateInit, deadline: smNone},
		{at: 1, ev: smStartup, want: []Action{smRelease, smTrans(StateInit, StateFault, "fault at start-up: interface eth0 down")}, state: StateFault, deadline: smNone},
		{at: time.Second, ev: smClear, want: []Action{smTrans(StateFault, StateBackup, "fault cleared")}, state: StateBackup, deadline: time.Second + v2MDI100},
	})
}

func TestFaultClearReturnsToBackup(t *testing.T) {
	const faultAt, clearAt = 100 * time.Millisecond, 2 * time.Second
	tests := []struct {
		name      string
		p         Params
		faultWant []Action
		clearWant []Action
		state     State
		deadline  time.Duration // after clearAt
	}{
		{
			name:      "v2 backup waits a full Master_Down_Interval",
			p:         smV2(100),
			faultWant: []Action{smTrans(StateBackup, StateFault, "interface eth0 down")},
			clearWant: []Action{smTrans(StateFault, StateBackup, "fault cleared")},
			state:     StateBackup, deadline: v2MDI100,
		},
		{
			// v3 forgets the 1s interval learned from the old master.
			name:      "v3 resets Master_Adver_Interval to ours",
			p:         smV3(100, 100*time.Millisecond),
			faultWant: []Action{smTrans(StateBackup, StateFault, "interface eth0 down")},
			clearWant: []Action{smTrans(StateFault, StateBackup, "fault cleared")},
			state:     StateBackup, deadline: v3MDI100,
		},
		{
			name:      "owner returns to MASTER at once",
			p:         smV2(PriorityOwner),
			faultWant: []Action{smSend(0), smRelease, smTrans(StateMaster, StateFault, "interface eth0 down")},
			clearWant: []Action{smSend(255), smAcquire, smTrans(StateFault, StateMaster, "fault cleared (address owner)")},
			state:     StateMaster, deadline: time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.p)
			m.Step(smT0, smStartup)
			// A master with a 1s interval is heard (a v3 backup learns it).
			m.Step(smT0.Add(10*time.Millisecond), smAdv(smHigher, 254, time.Second))
			smRun(t, m, []smStep{
				{at: faultAt, ev: smFault("interface eth0 down"), want: tc.faultWant, state: StateFault, deadline: smNone},
				{at: clearAt, ev: smClear, want: tc.clearWant, state: tc.state, deadline: clearAt + tc.deadline},
			})
			if got := m.MasterAdverInterval(); got != tc.p.AdvertInt {
				t.Errorf("MasterAdverInterval after fault = %v, want own %v", got, tc.p.AdvertInt)
			}
		})
	}
}

func TestFaultClearDoesNotPreemptWithoutDelayExpiring(t *testing.T) {
	// After FAULT the preempt delay starts afresh at the first lower advert.
	p := smV2(150)
	p.PreemptDelay = 5 * time.Second
	m := NewMachine(p)
	m.Step(smT0, smStartup)
	m.Step(smT0.Add(time.Second), smAdv(smLower, 100, time.Second)) // delay runs to 6s
	m.Step(smT0.Add(2*time.Second), smFault("link down"))
	smRun(t, m, []smStep{
		{at: 10 * time.Second, ev: smClear, want: []Action{smTrans(StateFault, StateBackup, "fault cleared")}, state: StateBackup, deadline: 10*time.Second + v2MDI150},
		{at: 11 * time.Second, ev: smAdv(smLower, 100, time.Second), state: StateBackup, deadline: 11*time.Second + v2MDI150},
	})
}

func TestNestedFaultsNeedEveryClear(t *testing.T) {
	p := smV2(100)
	m := NewMachine(p)
	smRun(t, m, smCat(smMasterAt(p, v2MDI100), []smStep{
		{at: 4 * time.Second, ev: smFault("interface eth0 down"), want: []Action{smSend(0), smRelease, smTrans(StateMaster, StateFault, "eth0")}, state: StateFault, deadline: smNone},
		// A second fault while in FAULT says nothing.
		{at: 6 * time.Second, ev: smFault("track_script chk failed"), state: StateFault, deadline: smNone},
		{at: 7 * time.Second, ev: smClear, state: StateFault, deadline: smNone},
		{at: 8 * time.Second, ev: smClear, want: []Action{smTrans(StateFault, StateBackup, "fault cleared")}, state: StateBackup, deadline: 8*time.Second + v2MDI100},
		// A clear with no fault in force is ignored.
		{at: 9 * time.Second, ev: smClear, state: StateBackup, deadline: 8*time.Second + v2MDI100},
	}))
	if m.Faults() != 0 {
		t.Errorf("Faults() = %d, want 0", m.Faults())
	}
}

func TestShutdownFromEveryState(t *testing.T) {
	p := smV2(100)
	at := 4 * time.Second
	tests := []struct {
		name  string
		setup []smStep
		want  []Action
	}{
		{"INIT", nil, []Action{smTrans(StateInit, StateStop, "shutdown")}},
		{"BACKUP", []smStep{{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI100}},
			[]Action{smTrans(StateBackup, StateStop, "shutdown")}},
		{"MASTER sends priority 0 and releases", smMasterAt(p, v2MDI100),
			[]Action{smSend(0), smRelease, smTrans(StateMaster, StateStop, "shutdown")}},
		{"FAULT", []smStep{{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI100},
			{at: time.Second, ev: smFault("link down"), want: []Action{smTrans(StateBackup, StateFault, "link down")}, state: StateFault, deadline: smNone}},
			[]Action{smTrans(StateFault, StateStop, "shutdown")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(p)
			smRun(t, m, smCat(tc.setup, []smStep{{at: at, ev: smShutdown, want: tc.want, state: StateStop, deadline: smNone}}))
			// STOP is terminal: nothing moves it.
			for i, ev := range []Event{smStartup, smTimer, smAdv(smHigher, 0, time.Second), smAdv(smLower, 1, time.Second), smPrio(200), smFault("x"), smClear, smShutdown, smForceBackup("x")} {
				w := at + time.Duration(i+1)*time.Second
				smRun(t, m, []smStep{{at: w, ev: ev, state: StateStop, deadline: smNone}})
			}
		})
	}
}

func TestPriorityChangeAdvertisedAtOnceByMaster(t *testing.T) {
	p := smV2(100)
	m := NewMachine(p)
	at := 4200 * time.Millisecond
	smRun(t, m, smCat(smMasterAt(p, v2MDI100), []smStep{
		{at: at, ev: smPrio(80), want: []Action{smSend(80)}, state: StateMaster, deadline: at + time.Second},
		// No change, nothing to say.
		{at: at + 100*time.Millisecond, ev: smPrio(80), state: StateMaster, deadline: at + time.Second},
		{at: at + time.Second, ev: smTimer, want: []Action{smSend(80)}, state: StateMaster, deadline: at + 2*time.Second},
		// Priority 0 would mean "leaving" on the wire: it is clamped to 1.
		{at: at + 1500*time.Millisecond, ev: smPrio(0), want: []Action{smSend(1)}, state: StateMaster, deadline: at + 2500*time.Millisecond},
	}))
	if got := m.Params().Priority; got != 1 {
		t.Errorf("Params().Priority = %d, want 1", got)
	}
	if _, p := m.Master(); p != 1 {
		t.Errorf("Master() priority = %d, want 1", p)
	}
}

func TestPriorityDropLetsHigherPeerPreempt(t *testing.T) {
	// A tracker lowers our priority below a peer's: the peer's next advert
	// makes us BACKUP.
	p := smV2(200)
	mdi200 := 3218750 * time.Microsecond
	smRun(t, NewMachine(p), smCat(smMasterAt(p, mdi200), []smStep{
		{at: 4 * time.Second, ev: smAdv(smLower, 150, time.Second), want: smAnswerLower(200), state: StateMaster, deadline: 5 * time.Second},
		{at: 4500 * time.Millisecond, ev: smPrio(100), want: []Action{smSend(100)}, state: StateMaster, deadline: 5500 * time.Millisecond},
		{at: 4600 * time.Millisecond, ev: smAdv(smLower, 150, time.Second),
			want:  []Action{smRelease, smTrans(StateMaster, StateBackup, "higher priority 150 from 10.0.0.4")},
			state: StateBackup, deadline: 4600*time.Millisecond + v2MDI100},
	}))
}

func TestBackupPriorityChangeMovesDownTimerBySkew(t *testing.T) {
	// keepalived vrrp_set_effective_priority shifts the running down timer
	// by the change in Skew_Time.
	const heard = time.Second
	tests := []struct {
		name     string
		at       time.Duration
		newPrio  uint8
		deadline time.Duration
	}{
		// 100 -> 200: skew 609.375ms -> 218.75ms.
		{"raise shortens", 2 * time.Second, 200, heard + 3218750*time.Microsecond},
		// 100 -> 50: skew 609.375ms -> 804.6875ms.
		{"lower lengthens", 2 * time.Second, 50, heard + 3804687500*time.Nanosecond},
		// 100 -> 254 at 4.5s: the shifted deadline (4.0078125s) is past,
		// so it fires now.
		{"never in the past", 4500 * time.Millisecond, 254, 4500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			smRun(t, NewMachine(smV2(100)), []smStep{
				{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI100},
				{at: heard, ev: smAdv(smHigher, 255, time.Second), state: StateBackup, deadline: heard + v2MDI100},
				{at: tc.at, ev: smPrio(tc.newPrio), state: StateBackup, deadline: tc.deadline},
			})
		})
	}
}

func TestBackupWithRaisedPriorityPreemptsLowerMaster(t *testing.T) {
	// Our priority rises above the master's: its adverts stop resetting our
	// timer and we take over when it runs out.
	mdi200 := 3218750 * time.Microsecond
	smRun(t, NewMachine(smV2(100)), []smStep{
		{at: 0, ev: smStartup, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI100},
		{at: time.Second, ev: smAdv(smLower, 150, time.Second), state: StateBackup, deadline: time.Second + v2MDI100},
		{at: 1500 * time.Millisecond, ev: smPrio(200), state: StateBackup, deadline: time.Second + mdi200},
		{at: 2 * time.Second, ev: smAdv(smLower, 150, time.Second), state: StateBackup, deadline: time.Second + mdi200},
		{at: 3 * time.Second, ev: smAdv(smLower, 150, time.Second), state: StateBackup, deadline: time.Second + mdi200},
		{at: time.Second + mdi200, ev: smTimer, want: smTakeOver(200), state: StateMaster, deadline: 2*time.Second + mdi200},
	})
}

func TestForceBackupLeavesMasterQuietly(t *testing.T) {
	// keepalived vrrp_sync_backup -> vrrp_state_leave_master(advF=false):
	// no priority 0, the VIPs go.
	p := smV2(100)
	at := 4 * time.Second
	smRun(t, NewMachine(p), smCat(smMasterAt(p, v2MDI100), []smStep{
		{at: at, ev: smForceBackup("sync group VG_1 member VI_2 went BACKUP"),
			want:  []Action{smRelease, smTrans(StateMaster, StateBackup, "sync group VG_1")},
			state: StateBackup, deadline: at + v2MDI100},
		// Not MASTER: nothing to do.
		{at: at + 1, ev: smForceBackup("again"), state: StateBackup, deadline: at + v2MDI100},
		{at: at + v2MDI100, ev: smTimer, want: smTakeOver(100), state: StateMaster, deadline: at + v2MDI100 + time.Second},
	}))
}

func TestLeavingMasterWithoutAnAdvertHeardKnowsNoMaster(t *testing.T) {
	// Demote and a sync group's order leave MASTER with nobody heard yet:
	// Master() must not go on naming ourselves, and the takeover after the
	// down timer is a plain "master down timer expired".
	tests := []struct {
		name  string
		ev    Event
		want  []Action
		cause string
	}{
		{"demote", Event{Kind: EvDemote, Cause: "arbiter says so"},
			[]Action{smSend(PriorityStop), smRelease, smTrans(StateMaster, StateBackup, "arbiter says so")}, "arbiter"},
		{"sync group order", smForceBackup("sync group VG_1 member VI_2 went BACKUP"),
			[]Action{smRelease, smTrans(StateMaster, StateBackup, "sync group VG_1")}, "sync group"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := smV2(100)
			at := 4 * time.Second
			m := NewMachine(p)
			smRun(t, m, smCat(smMasterAt(p, v2MDI100), []smStep{
				{at: at, ev: tc.ev, want: tc.want, state: StateBackup, deadline: at + v2MDI100},
			}))
			if addr, prio := m.Master(); addr.IsValid() || prio != 0 {
				t.Errorf("Master() = %s %d after leaving MASTER, want none", addr, prio)
			}
			acts := m.Step(smT0.Add(at+v2MDI100), smTimer)
			smCheckActions(t, "takeover", acts, smTakeOver(100))
			if tr := acts[len(acts)-1]; tr.CauseKind != CauseMasterDown || strings.Contains(tr.Cause, smSelf.String()) {
				t.Errorf("takeover %s %q, want master_down without our own address", tr.CauseKind, tr.Cause)
			}
		})
	}
}

func TestUnknownEventIsIgnored(t *testing.T) {
	p := smV2(100)
	smRun(t, NewMachine(p), smCat(smMasterAt(p, v2MDI100), []smStep{
		{at: 4 * time.Second, ev: Event{Kind: EventKind(99)}, state: StateMaster, deadline: v2MDI100 + time.Second},
	}))
}

// TestMachineRandomEventSequencesKeepInvariants drives machines with random
// parameters through random event sequences, delivering timers the way the
// runtime does, and checks the invariants after every step.
func TestMachineRandomEventSequencesKeepInvariants(t *testing.T) {
	addrs := []netip.Addr{smLower, smSelf, smHigher, smPeer2, netip.MustParseAddr("fe80::1"), {}}
	prios := []uint8{0, 1, 50, 99, 100, 101, 150, 254, 255}
	ivs := []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond, time.Second, 3 * time.Second}
	const seeds, events = 300, 400
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		p := Params{
			Version:      2 + rng.IntN(2),
			Priority:     uint8(1 + rng.IntN(255)),
			AdvertInt:    []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second}[rng.IntN(3)],
			NoPreempt:    rng.IntN(3) == 0,
			StartMaster:  rng.IntN(3) == 0,
			PreemptDelay: []time.Duration{0, 0, 500 * time.Millisecond, 5 * time.Second}[rng.IntN(4)],
			Primary:      smSelf,

			DownTimerAdverts:     []int{0, 3, 1, 5, 100}[rng.IntN(5)],
			LowerPrioNoAdvert:    rng.IntN(3) == 0,
			HigherPrioSendAdvert: rng.IntN(3) == 0,
		}
		m := NewMachine(p)
		now := smT0
		held := false // VIPs acquired and not released
		stopped := false
		// The last steps, formatted only when an invariant fails.
		type traced struct {
			at            time.Time
			ev            Event
			before, after State
			acts          []Action
		}
		var trace []traced
		fail := func(format string, args ...any) {
			t.Helper()
			lines := make([]string, len(trace))
			for i, r := range trace {
				lines[i] = fmt.Sprintf("+%v %s %s -> %s %s", r.at.Sub(smT0), smEvName(r.ev), r.before, r.after, smFmtActions(r.acts))
			}
			t.Fatalf("seed %d params %+v:\n%s\n"+format, append([]any{seed, p, strings.Join(lines, "\n")}, args...)...)
		}
		feed := func(at time.Time, ev Event) {
			t.Helper()
			before := m.State()
			acts := m.Step(at, ev)
			after := m.State()
			trace = append(trace, traced{at, ev, before, after, acts})
			if len(trace) > 30 {
				trace = trace[1:]
			}
			if stopped {
				if len(acts) != 0 || after != StateStop {
					fail("STOP is not terminal: %s, state %s", smFmtActions(acts), after)
				}
				return
			}
			transitions := 0
			for _, a := range acts {
				switch a.Kind {
				case ActAcquire:
					if held {
						fail("ActAcquire twice without ActRelease")
					}
					held = true
				case ActRelease:
					held = false
				case ActTransition:
					transitions++
					if a.From != before || a.To != after || a.From == a.To || a.Cause == "" {
						fail("bad transition %+v (state %s -> %s)", a, before, after)
					}
				case ActSendAdvert:
					if a.Priority == PriorityStop && before != StateMaster {
						fail("priority 0 advert sent from %s", before)
					}
					// higher_prio_send_advert: a MASTER's last advert as it
					// yields to a higher priority.
					yielding := p.HigherPrioSendAdvert && before == StateMaster && ev.Kind == EvAdvert
					if a.Priority != PriorityStop && ((after != StateMaster && !yielding) || a.Priority != m.Params().Priority) {
						fail("advert priority %d in %s, effective priority %d", a.Priority, after, m.Params().Priority)
					}
				}
			}
			if (before != after) != (transitions == 1) || transitions > 1 {
				fail("%d transitions for %s -> %s", transitions, before, after)
			}
			if held != (after == StateMaster) {
				fail("VIPs held=%v in %s", held, after)
			}
			dl := m.NextDeadline()
			switch after {
			case StateMaster, StateBackup:
				if dl.IsZero() {
					fail("%s without a deadline", after)
				}
			default:
				if !dl.IsZero() {
					fail("%s with deadline +%v", after, dl.Sub(smT0))
				}
			}
			if !dl.IsZero() && dl.Before(at) {
				fail("deadline +%v in the past of +%v", dl.Sub(smT0), at.Sub(smT0))
			}
			if after == StateStop {
				stopped = true
			}
		}
		for range events {
			now = now.Add(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
			// The runtime delivers every due timer at its deadline first.
			for i := 0; ; i++ {
				dl := m.NextDeadline()
				if dl.IsZero() || dl.After(now) {
					break
				}
				if i > 1000 {
					fail("timer at +%v does not move the deadline", dl.Sub(smT0))
				}
				feed(dl, smTimer)
			}
			var ev Event
			switch r := rng.IntN(100); {
			case r < 55:
				ev = smAdv(addrs[rng.IntN(len(addrs))], prios[rng.IntN(len(prios))], ivs[rng.IntN(len(ivs))])
			case r < 65:
				ev = smPrio(prios[rng.IntN(len(prios))])
			case r < 73:
				ev = smFault("random fault")
			case r < 83:
				ev = smClear
			case r < 88:
				ev = smForceBackup("random sync")
			case r < 93:
				ev = smStartup
			case r < 98:
				ev = smTimer // spurious or early
			default:
				if rng.IntN(4) == 0 {
					ev = smShutdown
				} else {
					ev = smStartup
				}
			}
			feed(now, ev)
		}
	}
}

// TestResumeIsMasterAtOnce: a MASTER that vipd restarted with its VIPs in
// place advertises at once and keeps advertising at its interval; with a
// fault or a gate that says no it starts as usual; a resume after the
// start-up changes nothing.
func TestResumeIsMasterAtOnce(t *testing.T) {
	resume := Event{Kind: EvResume, Cause: "resumed MASTER after a restart"}
	t.Run("resumes", func(t *testing.T) {
		m := NewMachine(smV2(150))
		smRun(t, m, []smStep{
			{at: 0, ev: resume, want: []Action{smSend(150), smAcquire, smTrans(StateInit, StateMaster, "resumed MASTER after a restart")},
				state: StateMaster, deadline: time.Second},
			{at: time.Second, ev: smTimer, want: []Action{smSend(150)}, state: StateMaster, deadline: 2 * time.Second},
			{at: time.Second, ev: resume, state: StateMaster, deadline: 2 * time.Second},
			{at: time.Second, ev: smStartup, state: StateMaster, deadline: 2 * time.Second},
		})
	})
	t.Run("a fault first", func(t *testing.T) {
		m := NewMachine(smV2(150))
		smRun(t, m, []smStep{
			{at: 0, ev: smFault("eth1 down"), state: StateInit, deadline: smNone},
			{at: 0, ev: resume, want: []Action{smRelease, smTrans(StateInit, StateFault, "eth1 down")}, state: StateFault, deadline: smNone},
		})
	})
	t.Run("the gate says no", func(t *testing.T) {
		p := smV2(150)
		var asked []string
		p.Gate = func(cause string) bool { asked = append(asked, cause); return false }
		m := NewMachine(p)
		smRun(t, m, []smStep{
			{at: 0, ev: resume, want: smStartBackup("start-up"), state: StateBackup, deadline: v2MDI150},
		})
		if len(asked) != 1 || asked[0] != "resumed MASTER after a restart" {
			t.Errorf("gate asked %q, want the resume once", asked)
		}
	})
}
