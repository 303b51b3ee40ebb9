package check

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
)

// TestCheckerCPU is a benchmark figure, not an assertion: 1000 TCP_CHECKs
// at delay_loop 1s against local listeners for 10s on the real clock, and
// the CPU time the checking process used. The listeners run in a child
// process so their accept loops are not counted. Run with VIPD_BENCH=1.
func TestCheckerCPU(t *testing.T) {
	if os.Getenv("VIPD_BENCH") != "1" {
		t.Skip("benchmark figure; set VIPD_BENCH=1 to run")
	}
	const checks, listeners, runFor = 1000, 20, 10 * time.Second

	cmd := exec.Command(os.Args[0], "-test.run=^TestCPUListenerHelper$")
	cmd.Env = append(os.Environ(), "VIPD_BENCH_LISTENERS="+strconv.Itoa(listeners))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the helper exits when its stdin closes
		cmd.Wait()
	}()
	var dsts []netip.AddrPort
	sc := bufio.NewScanner(stdout)
	for len(dsts) < listeners && sc.Scan() {
		if ap, err := netip.ParseAddrPort(sc.Text()); err == nil {
			dsts = append(dsts, ap)
		}
	}
	if len(dsts) != listeners {
		t.Fatalf("helper gave %d listeners: %v", len(dsts), sc.Err())
	}
	go io.Copy(io.Discard, stdout)

	var rounds, failed atomic.Int64
	s := NewScheduler(SchedulerOptions{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnResult: func(r Report) {
			rounds.Add(1)
			if !r.Outcome.OK {
				failed.Add(1)
			}
		},
	})
	var set []Check
	for i := range checks {
		c := checkerTo(config.CheckTCP, dsts[i%listeners], time.Second)
		c.DelayLoop = config.Duration(time.Second)
		p, err := New(c, Options{})
		if err != nil {
			t.Fatal(err)
		}
		set = append(set, Check{ID: strconv.Itoa(i), Config: c, Prober: p})
	}
	if err := s.Set(set); err != nil {
		t.Fatal(err)
	}

	userBefore, sysBefore := cpuTime(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	go func() {
		time.Sleep(runFor / 2)
		t.Logf("goroutines at %v: %d", runFor/2, runtime.NumGoroutine())
	}()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	userAfter, sysAfter := cpuTime(t)
	user, sys := userAfter-userBefore, sysAfter-sysBefore
	cpu := user + sys
	n := rounds.Load()
	t.Logf("%d TCP checks at delay_loop 1s for %v: %d rounds (%d failed), %.0f checks/s, "+
		"CPU %.3fs (user %.3fs, system %.3fs; %.1f%% of one core, %.0fµs per check)",
		checks, elapsed.Round(time.Millisecond), n, failed.Load(), float64(n)/elapsed.Seconds(),
		cpu.Seconds(), user.Seconds(), sys.Seconds(), 100*cpu.Seconds()/elapsed.Seconds(),
		float64(cpu.Microseconds())/float64(max(n, 1)))
}

// TestCPUListenerHelper is TestCheckerCPU's child process: it prints the
// addresses of N loopback listeners, accepts and closes connections on them,
// and exits when its stdin closes.
func TestCPUListenerHelper(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("VIPD_BENCH_LISTENERS"))
	if err != nil {
		t.Skip("helper process of TestCheckerCPU")
	}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(l.Addr())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin)
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(t *testing.T) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
