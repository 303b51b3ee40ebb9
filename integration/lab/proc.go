package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a long-lived process started in a node with Node.Start.
type Proc struct {
	node    *Node
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time

	done    chan struct{} // closed when the process has been reaped
	mu      sync.Mutex
	waitErr error
}

// Start runs name with args inside the node, in its own process group, with stdout and stderr
// going to a file in the test's temporary directory (Output reads it). The process and its group
// are killed with SIGKILL at the lab's teardown, and also when the test binary dies (parent-death
// signal). A failure to start fails the test.
func (n *Node) Start(name string, args ...string) *Proc {
	n.t.Helper()
	l := n.lab
	n.mu.Lock()
	n.procSeq++
	seq := n.procSeq
	n.mu.Unlock()

	logPath := filepath.Join(l.logDir, fmt.Sprintf("%s-%s-%d.log", n.Name, filepath.Base(name), seq))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatalf("lab: %v", err)
	}
	defer logFile.Close()

	ip, err := lookPath("ip")
	if err != nil {
		n.t.Fatalf("lab: %v", err)
	}
	cmd := exec.Command(ip, append([]string{"netns", "exec", n.NS, name}, args...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Proc{node: n, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}

	l.mu.Lock()
	if l.tornDown {
		l.mu.Unlock()
		n.t.Fatalf("lab: Start %s on node %s after teardown", name, n.Name)
	}
	if err := cmd.Start(); err != nil {
		l.mu.Unlock()
		n.t.Fatalf("lab: starting %s on node %s: %v", name, n.Name, err)
	}
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	p.started = time.Now()

	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p
}

// String names the process for logs: "node a: vipd[1234]".
func (p *Proc) String() string {
	return fmt.Sprintf("node %s: %s[%d]", p.node.Name, filepath.Base(p.name), p.Pid())
}

// Pid returns the process id. `ip netns exec` execs the command, so this is the command itself.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig os.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s: signal %v: process already exited", p, sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p, sig, err)
	}
	return nil
}

// Kill sends SIGKILL to the process and its whole process group. Killing a process that already
// exited is not an error.
func (p *Proc) Kill() error {
	if p.Exited() {
		return nil
	}
	// Negative pid: the process group (Setpgid made it pgid == pid).
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: kill: %w", p, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit code (-1 when it was
// ended by a signal). It returns an error when the process is still running at the timeout.
func (p *Proc) Wait(timeout time.Duration) (exitCode int, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-timer.C:
		return 0, fmt.Errorf("%s: still running after %v", p, timeout)
	}
}

// Exited reports whether the process has exited (and been reaped).
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns everything the process wrote to stdout and stderr so far.
func (p *Proc) Output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(output of %s unreadable: %v)", p, err)
	}
	return string(b)
}

// LogPath returns the file receiving the process's output.
func (p *Proc) LogPath() string { return p.logPath }

func (p *Proc) exitString() string {
	if !p.Exited() {
		return "still running"
	}
	st := p.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("%d", st.ExitCode())
}

// waitForOutput polls the output until it contains want, the process exits, or timeout passes.
func (p *Proc) waitForOutput(want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Output(), want) {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited (%s) before printing %q: %s", p, p.exitString(), want, tail(p.Output(), 10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not print %q within %v: %s", p, want, timeout, tail(p.Output(), 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
