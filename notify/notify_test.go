package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lab is a temp dir with a recorder script that appends one line per run to
// out: its arguments, each in brackets.
type lab struct {
	dir, rec, out string
	logs          *lockedBuf
	log           *slog.Logger
}

func newLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	l := &lab{dir: dir, rec: filepath.Join(dir, "rec.sh"), out: filepath.Join(dir, "out"), logs: &lockedBuf{}}
	body := "#!/bin/sh\nfor a; do printf '[%s]' \"$a\"; done >> " + l.out + "\necho >> " + l.out + "\n"
	if err := os.WriteFile(l.rec, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	l.log = slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

func (l *lab) lines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(l.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func closeOK(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestTransitionsRunInOrderOneAtATime(t *testing.T) {
	l := newLab(t)
	n, err := New(KindInstance, "VI_1", Scripts{
		Master: l.rec + " master",
		Backup: l.rec + " backup",
		Fault:  l.rec + " fault",
	}, Options{Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	states := []string{StateMaster, StateBackup, StateFault}
	var want []string
	for i := 0; i < 20; i++ {
		s := states[i%3]
		n.Transition(s, 100)
		want = append(want, "["+strings.ToLower(s)+"]")
	}
	closeOK(t, n)
	if diff := cmp.Diff(want, l.lines(t)); diff != "" {
		t.Errorf("notify order (-want +got):\n%s", diff)
	}
}

func TestGenericNotifyGetsKindNameStateAndPriority(t *testing.T) {
	tests := []struct {
		name     string
		kind     string
		scripts  func(l *lab) Scripts
		state    string
		priority int
		want     []string
	}{
		{
			name:     "instance master",
			kind:     KindInstance,
			scripts:  func(l *lab) Scripts { return Scripts{Generic: l.rec} },
			state:    StateMaster,
			priority: 100,
			want:     []string{"[INSTANCE][VI_1][MASTER][100]"},
		},
		{
			name:     "group backup with priority 0",
			kind:     KindGroup,
			scripts:  func(l *lab) Scripts { return Scripts{Generic: l.rec} },
			state:    StateBackup,
			priority: 0,
			want:     []string{"[GROUP][VI_1][BACKUP][0]"},
		},
		{
			name:     "generic keeps its own arguments first",
			kind:     KindInstance,
			scripts:  func(l *lab) Scripts { return Scripts{Generic: l.rec + ` "mail admin"`} },
			state:    StateFault,
			priority: 98,
			want:     []string{"[mail admin][INSTANCE][VI_1][FAULT][98]"},
		},
		{
			name:     "state script runs first with its arguments as written, then generic",
			kind:     KindInstance,
			scripts:  func(l *lab) Scripts { return Scripts{Master: l.rec + ` "node one" 'is master'`, Generic: l.rec} },
			state:    StateMaster,
			priority: 254,
			want:     []string{"[node one][is master]", "[INSTANCE][VI_1][MASTER][254]"},
		},
		{
			name:     "stop script",
			kind:     KindInstance,
			scripts:  func(l *lab) Scripts { return Scripts{Stop: l.rec + " stopping", Generic: l.rec} },
			state:    StateStop,
			priority: 100,
			want:     []string{"[stopping]", "[INSTANCE][VI_1][STOP][100]"},
		},
		{
			name:     "state without its own script runs only generic",
			kind:     KindInstance,
			scripts:  func(l *lab) Scripts { return Scripts{Master: l.rec + " m", Generic: l.rec} },
			state:    StateBackup,
			priority: 99,
			want:     []string{"[INSTANCE][VI_1][BACKUP][99]"},
		},
		{
			name:     "shell syntax generic sees the arguments as $1..$4",
			kind:     KindInstance,
			scripts:  func(l *lab) Scripts { return Scripts{Generic: `echo "$1 $2 $3 $4" >> ` + l.out} },
			state:    StateMaster,
			priority: 100,
			want:     []string{"INSTANCE VI_1 MASTER 100"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t)
			n, err := New(tt.kind, "VI_1", tt.scripts(l), Options{Log: l.log})
			if err != nil {
				t.Fatal(err)
			}
			n.Transition(tt.state, tt.priority)
			closeOK(t, n)
			if diff := cmp.Diff(tt.want, l.lines(t)); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
		})
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTransitionDoesNotWaitForASlowScript(t *testing.T) {
	l := newLab(t)
	gate := filepath.Join(l.dir, "gate")
	mkfifo(t, gate)
	n, err := New(KindInstance, "VI_1", Scripts{
		Fault:  "cat " + gate + " > /dev/null", // blocks until the test writes the gate
		Master: l.rec + " master",
		Backup: l.rec + " backup",
	}, Options{Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	go func() {
		n.Transition(StateFault, 0)
		for i := 0; i < 10; i++ {
			n.Transition(StateMaster, 100)
			n.Transition(StateBackup, 99)
		}
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Transition blocked behind a script that waits")
	}
	if got := l.lines(t); got != nil {
		t.Fatalf("scripts ran past the waiting one: %q", got)
	}
	f, err := os.OpenFile(gate, os.O_WRONLY, 0) // meets the waiting cat
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	closeOK(t, n)
	var want []string
	for i := 0; i < 10; i++ {
		want = append(want, "[master]", "[backup]")
	}
	if diff := cmp.Diff(want, l.lines(t)); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestCloseRunsTheQueuedStop(t *testing.T) {
	l := newLab(t)
	n, err := New(KindInstance, "VI_1", Scripts{
		Master:  l.rec + " master",
		Stop:    l.rec + " stop",
		Generic: l.rec,
	}, Options{Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	n.Transition(StateMaster, 100)
	n.Transition(StateStop, 100)
	closeOK(t, n)
	want := []string{"[master]", "[INSTANCE][VI_1][MASTER][100]", "[stop]", "[INSTANCE][VI_1][STOP][100]"}
	if diff := cmp.Diff(want, l.lines(t)); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	// After Close, transitions are dropped with a log line, not run.
	n.Transition(StateMaster, 100)
	if got := l.lines(t); len(got) != len(want) {
		t.Errorf("a transition after Close ran: %q", got)
	}
	if !strings.Contains(l.logs.String(), "notify after shutdown") {
		t.Errorf("no log for a transition after Close:\n%s", l.logs)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func pidAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func TestCloseDeadlineKillsAHungScriptAndDropsTheRest(t *testing.T) {
	l := newLab(t)
	pidfifo := filepath.Join(l.dir, "pid")
	mkfifo(t, pidfifo)
	n, err := New(KindInstance, "VI_1", Scripts{
		Stop:    "echo $$ > " + pidfifo + "; exec sleep 100",
		Generic: l.rec,
	}, Options{Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	n.Transition(StateStop, 100)
	b, err := os.ReadFile(pidfifo) // returns once the stop script runs
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err = n.Close(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Close = %v, want a context.Canceled error", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %v with a done context", el)
	}
	if pid <= 0 || pidAlive(pid) {
		t.Errorf("hung stop script (pid %d) still alive after Close", pid)
	}
	if got := l.lines(t); got != nil {
		t.Errorf("generic notify ran after the cut: %q", got)
	}
	if !strings.Contains(l.logs.String(), "dropped at shutdown") {
		t.Errorf("no log of the dropped notify:\n%s", l.logs)
	}
}

func TestTimeoutKillsAHungScriptAndTheNextOneRuns(t *testing.T) {
	l := newLab(t)
	n, err := New(KindInstance, "VI_1", Scripts{
		Master: "sleep 100",
		Backup: l.rec + " backup",
	}, Options{Log: l.log, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.Transition(StateMaster, 100)
	n.Transition(StateBackup, 99)
	closeOK(t, n)
	if diff := cmp.Diff([]string{"[backup]"}, l.lines(t)); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if logs := l.logs.String(); !strings.Contains(logs, "killed at its timeout") || !strings.Contains(logs, "keyword=notify_master") {
		t.Errorf("no log of the timeout naming notify_master:\n%s", logs)
	}
}

func TestFailingScriptIsLoggedWithItsOutput(t *testing.T) {
	l := newLab(t)
	n, err := New(KindInstance, "VI_1", Scripts{Fault: "echo cannot mail >&2; exit 3"}, Options{Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	n.Transition(StateFault, 0)
	closeOK(t, n)
	logs := l.logs.String()
	for _, want := range []string{"notify script failed", "exit=3", "cannot mail", "keyword=notify_fault", "name=VI_1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestNewLeavesOutBadAndInsecureScripts(t *testing.T) {
	l := newLab(t)
	insecure := filepath.Join(l.dir, "open")
	if err := os.Mkdir(insecure, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(insecure, 0o777); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(insecure, "notify.sh")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho ran >> "+l.out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := New(KindInstance, "VI_1", Scripts{
		Master:  bad + " master",
		Fault:   `/bin/echo "unterminated`,
		Backup:  "echo backup >> " + l.out, // shell, no path: trusted
		Generic: bad,
	}, Options{Log: l.log, Security: true})
	if err == nil {
		t.Fatal("New accepted an insecure script with enable_script_security")
	}
	for _, want := range []string{
		"vrrp_instance VI_1",
		"notify_master", "refused by enable_script_security", "unsafe permissions",
		"notify_fault", "missing terminating",
		"notify ", "(not run)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if os.Getuid() == 0 && !strings.Contains(err.Error(), "/open is world-writable") {
		t.Errorf("error does not name the world-writable directory: %v", err)
	}
	if strings.Contains(err.Error(), "notify_backup") {
		t.Errorf("error names the secure notify_backup: %v", err)
	}
	if n == nil {
		t.Fatal("New returned no Notifier: the other scripts must still run")
	}
	n.Transition(StateMaster, 100)
	n.Transition(StateFault, 0)
	n.Transition(StateBackup, 99)
	closeOK(t, n)
	if diff := cmp.Diff([]string{"backup"}, l.lines(t)); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestWithoutSecurityAnInsecureScriptRuns(t *testing.T) {
	l := newLab(t)
	if err := os.Chmod(l.rec, 0o777); err != nil {
		t.Fatal(err)
	}
	n, err := New(KindInstance, "VI_1", Scripts{Master: l.rec + " m"}, Options{Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	n.Transition(StateMaster, 100)
	closeOK(t, n)
	if diff := cmp.Diff([]string{"[m]"}, l.lines(t)); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestUnknownKindIsAnErrorAndNilNotifierIsInert(t *testing.T) {
	n, err := New("ROUTER", "VI_1", Scripts{Generic: "/bin/true"}, Options{})
	if err == nil || n != nil {
		t.Fatalf("New(ROUTER) = %v, %v; want nil and an error", n, err)
	}
	n.Transition(StateMaster, 100) // must not panic
	if err := n.Close(context.Background()); err != nil {
		t.Errorf("nil Close = %v", err)
	}
	var zero Notifier
	zero.Transition(StateMaster, 100)
	if err := zero.Close(context.Background()); err != nil {
		t.Errorf("zero Close = %v", err)
	}
}

func TestNotifierWithoutScriptsClosesAtOnce(t *testing.T) {
	n, err := New(KindGroup, "G1", Scripts{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n.Transition(StateMaster, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Close(ctx); err != nil {
		t.Errorf("Close of an idle notifier with a done context = %v, want nil", err)
	}
}

func TestScriptUserRunsScriptsAsThatUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("script_user needs root (run the tests as root to cover it)")
	}
	l := newLab(t)
	// let nobody reach and write out
	if err := os.Chmod(filepath.Dir(l.dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(l.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	n, err := New(KindInstance, "VI_1", Scripts{Master: "id -un >> " + l.out}, Options{Log: l.log, User: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	n.Transition(StateMaster, 100)
	closeOK(t, n)
	if diff := cmp.Diff([]string{"nobody"}, l.lines(t)); diff != "" {
		t.Errorf("runs (-want +got):\n%s\nlogs:\n%s", diff, l.logs)
	}
}
