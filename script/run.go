package script

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// OutputLimit is how much of a command's combined stdout/stderr Run keeps.
const OutputLimit = 4096

// waitDelay bounds how long Run waits for output pipes held open by a process
// that left the command's process group (setsid) after the command exited.
const waitDelay = 2 * time.Second

// Options say how to run a command.
type Options struct {
	User, Group string        // run as (names or numeric ids); empty: the current user
	Timeout     time.Duration // kill the whole process group (SIGKILL) at the timeout; 0: none
	Env         []string      // extra environment (KEY=VALUE), after vipd's own
	Stdin       io.Reader     // optional; nil reads /dev/null
}

// Result is how a command ended.
type Result struct {
	// ExitCode is the exit status; 128+N when killed by signal N (as a shell
	// reports it); -1 when the command did not start.
	ExitCode int
	// TimedOut is true when Options.Timeout killed the command.
	TimedOut bool
	// Err is a failure to run the command (not found, bad user, ...) or the
	// cancellation of ctx that killed it; nil for a command that ran and exited,
	// whatever its exit status.
	Err      error
	Duration time.Duration
	Output   []byte // the first OutputLimit bytes of combined stdout/stderr
}

// OK reports whether the command ran and exited 0.
func (r Result) OK() bool { return r.Err == nil && !r.TimedOut && r.ExitCode == 0 }

// Run runs c with extra appended arguments (notify appends "INSTANCE" name
// state priority), waits for it, and returns how it ended.
//
// For a plain command the extra arguments follow the written ones in argv.
// For a shell command they are the positional parameters $1, $2, ... of the
// shell ($0 is "sh"), so they are never re-parsed by the shell.
//
// The command runs in its own process group. At the timeout, when ctx is
// done, and once the command itself has exited, the whole group is sent
// SIGKILL, and the command is always waited for: nothing is left behind.
func Run(ctx context.Context, c Command, extra []string, o Options) Result {
	start := time.Now()
	res := Result{ExitCode: -1}
	done := func() Result {
		res.Duration = time.Since(start)
		return res
	}
	if len(c.Argv) == 0 {
		res.Err = errors.New("empty command")
		return done()
	}
	if err := ctx.Err(); err != nil {
		res.Err = fmt.Errorf("not started: %w", err)
		return done()
	}
	argv := append([]string(nil), c.Argv...)
	if c.Shell && len(extra) > 0 {
		argv = append(argv, "sh")
	}
	argv = append(argv, extra...)

	cred, err := credential(o.User, o.Group)
	if err != nil {
		res.Err = err
		return done()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdin = o.Stdin
	out := &capWriter{limit: OutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		res.Err = fmt.Errorf("start %s: %w", argv[0], err)
		return done()
	}
	pid := cmd.Process.Pid

	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExitNoReap(pid)
	}()

	var timeout <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-exited:
	case <-timeout:
		if !isClosed(exited) { // an exit at the same moment wins
			res.TimedOut = true
			killGroup(pid)
			<-exited
		}
	case <-ctx.Done():
		if !isClosed(exited) {
			res.Err = fmt.Errorf("killed: %w", ctx.Err())
			killGroup(pid)
			<-exited
		}
	}
	// The leader is a zombie now (not reaped), so its pid cannot be reused
	// and the group can be killed safely: no stray children.
	killGroup(pid)
	werr := cmd.Wait()
	res.Output = out.bytes()
	if cmd.ProcessState != nil {
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			if st.Signaled() {
				res.ExitCode = 128 + int(st.Signal())
			} else {
				res.ExitCode = st.ExitStatus()
			}
		}
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) && res.Err == nil && !errors.Is(werr, exec.ErrWaitDelay) {
		res.Err = fmt.Errorf("wait %s: %w", argv[0], werr)
	}
	return done()
}

// waitExitNoReap blocks until process pid has exited, leaving it a zombie
// for cmd.Wait to reap.
func waitExitNoReap(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH: the group is already gone
}

// credential resolves user and group to the credential to run as; nil means
// "as vipd". A group alone keeps vipd's user; a user alone takes the user's
// primary group. Supplementary groups are dropped to the one group, as
// keepalived does.
func credential(userName, groupName string) (*syscall.Credential, error) {
	if userName == "" && groupName == "" {
		return nil, nil
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if userName != "" {
		u, err := lookupUser(userName)
		if err != nil {
			return nil, err
		}
		id, err1 := strconv.ParseUint(u.Uid, 10, 32)
		g, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("user %s: unusable uid %q / gid %q", userName, u.Uid, u.Gid)
		}
		uid, gid = uint32(id), uint32(g)
	}
	if groupName != "" {
		g, err := lookupGroup(groupName)
		if err != nil {
			return nil, err
		}
		id, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group %s: unusable gid %q", groupName, g.Gid)
		}
		gid = uint32(id)
	}
	if os.Getuid() != 0 {
		if uid == uint32(os.Getuid()) && gid == uint32(os.Getgid()) {
			return nil, nil // already who we should be
		}
		return nil, fmt.Errorf("running as %d:%d needs root (vipd runs as %d:%d)", uid, gid, os.Getuid(), os.Getgid())
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{gid}}, nil
}

func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			if u, err2 := user.LookupId(name); err2 == nil {
				return u, nil
			}
		}
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	return u, nil
}

func lookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			if g, err2 := user.LookupGroupId(name); err2 == nil {
				return g, nil
			}
		}
		return nil, fmt.Errorf("group %s: %w", name, err)
	}
	return g, nil
}

// capWriter keeps the first limit bytes written to it and discards the rest
// (never blocking or failing the writer).
type capWriter struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.limit - len(w.buf); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		w.buf = append(w.buf, p[:room]...)
	}
	return len(p), nil
}

func (w *capWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte(nil), w.buf...)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
