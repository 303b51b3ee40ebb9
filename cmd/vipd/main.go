// Command vipd is a virtual-IP manager for Linux: a keepalived replacement
// that speaks standard VRRP v2/v3 and reads keepalived.conf.
//
// This package only wires cobra commands to the packages that do the work
// (config/loader, agent, api); see DESIGN.md 3.1 for the command contract.
package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/agent"
	"github.com/vipd/vipd/config/loader"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	if os.Getenv("GOGC") == "" {
		// In steady state vipd allocates almost nothing (no allocation per
		// advert), so a tighter heap goal costs no CPU and keeps the
		// garbage a status query or a reload leaves small. GOGC overrides.
		debug.SetGCPercent(50)
	}
	os.Exit(execute(os.Args[1:], hostEnv()))
}

// hostEnv is the environment of the real binary.
func hostEnv() *cliEnv {
	return &cliEnv{
		stdout:          os.Stdout,
		stderr:          os.Stderr,
		interfaceExists: loader.HostInterfaceExists,
		runAgent:        runProfiled,
		now:             time.Now,
	}
}

// runProfiled runs the agent; with VIPD_CPUPROFILE=FILE in the environment
// it writes a CPU profile of the whole run there, with VIPD_MEMPROFILE=FILE
// a heap profile at exit, "%p" replaced by the pid (for `make bench-lab`
// investigations; not flags, so not a contract).
func runProfiled(ctx context.Context, o agent.Options) error {
	if path := os.Getenv("VIPD_CPUPROFILE"); path != "" {
		path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv("VIPD_MEMPROFILE"); path != "" {
		path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
		write := func(p string) {
			if f, err := os.Create(p); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
		defer write(path)
		// VIPD_MEMPROFILE_EVERY=D also writes one every D, to PATH.N (the
		// soak's growth between two moments: go tool pprof -base).
		if every, err := time.ParseDuration(os.Getenv("VIPD_MEMPROFILE_EVERY")); err == nil && every > 0 {
			pctx, stop := context.WithCancel(ctx)
			defer stop()
			go func() {
				t := time.NewTicker(every)
				defer t.Stop()
				for n := 1; ; n++ {
					select {
					case <-pctx.Done():
						return
					case <-t.C:
						runtime.GC()
						write(path + "." + strconv.Itoa(n))
					}
				}
			}()
		}
	}
	return agent.Run(ctx, o)
}
