package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/loader"
	"github.com/vipd/vipd/lvs"
)

func lvsModel(t *testing.T, conf string) *config.Model {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m, ds := loader.Load(p, loader.Options{})
	if err := ds.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLVSFollowsChecksReloadsAndReleases runs the LVS side of the agent on
// an in-memory IPVS with real TCP checks: the live real server is in, the
// dead one goes out, a reload changing one weight edits only that
// destination, and a graceful stop removes vipd's service.
func TestLVSFollowsChecksReloadsAndReleases(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	livePort := ln.Addr().(*net.TCPAddr).Port
	conf := func(w int) string {
		return fmt.Sprintf(`
virtual_server 192.0.2.10 80 {
    delay_loop 1
    lb_algo rr
    real_server 127.0.0.1 %d {
        weight %d
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
    real_server 127.0.0.2 %d {
        TCP_CHECK {
            connect_port %d
            connect_ip 127.0.0.1
            connect_timeout 1
            retry 0
        }
    }
}`, livePort, w, livePort, deadPort)
	}
	mem := lvs.NewMemory()
	a, _ := testAgentWith(t, Options{LVSBackend: mem})
	a.apply(lvsModel(t, conf(1)))
	live := fmt.Sprintf("-a -t 192.0.2.10:80 -r 127.0.0.1:%d -m -w 1", livePort)
	waitFor(t, "the dead real server to leave the pool", func() bool {
		l, _ := a.LVS(context.Background())
		return strings.Contains(l.Actual, live) && !strings.Contains(l.Actual, "127.0.0.2")
	})
	got := mem.Transcript()
	if !slices.Contains(got, live) || !slices.Contains(got, fmt.Sprintf("-d -t 192.0.2.10:80 -r 127.0.0.2:%d", livePort)) {
		t.Errorf("transcript %q", got)
	}
	l, _ := a.LVS(context.Background())
	if rs := l.VirtualServers[0].RealServers[1]; rs.Up || !strings.Contains(rs.Checks[0].Cause, "refused") {
		t.Errorf("dead real server status %+v", rs)
	}

	a.apply(lvsModel(t, conf(5)))
	waitFor(t, "the new weight", func() bool {
		l, _ := a.LVS(context.Background())
		return strings.Contains(l.Actual, fmt.Sprintf("-r 127.0.0.1:%d -m -w 5", livePort))
	})
	if got := mem.Transcript(); !slices.Equal(got, []string{fmt.Sprintf("-e -t 192.0.2.10:80 -r 127.0.0.1:%d -m -w 5", livePort)}) {
		t.Errorf("a reload of one weight did %q", got)
	}

	a.stopLVS(true)
	if pools, _ := mem.Pools(); len(pools) != 0 {
		t.Errorf("after a graceful stop IPVS holds %v", pools)
	}
}

// TestLVSNotifyScriptsRunAsWritten runs real notify_down and quorum_down
// scripts: each is run with the arguments written in the configuration and
// nothing appended, as keepalived's notify_exec does (the order, notify
// then quorum, is the manager's transcript test's).
func TestLVSNotifyScriptsRunAsWritten(t *testing.T) {
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "record.sh")
	if err := os.WriteFile(scriptPath, []byte("#!/bin/sh\nout=\"$1\"; shift\nprintf '%s|' \"$#\" \"$@\" > \""+dir+"/$out\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	conf := fmt.Sprintf(`
virtual_server 192.0.2.10 80 {
    delay_loop 1
    lb_algo rr
    quorum 1
    quorum_down "%[1]s quorum-down 'VS lost' 192.0.2.10"
    real_server 127.0.0.1 %[2]d {
        notify_down "%[1]s rs-down 127.0.0.1 %[2]d"
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}`, scriptPath, deadPort)
	a, _ := testAgentWith(t, Options{LVSBackend: lvs.NewMemory()})
	a.apply(lvsModel(t, conf))
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return string(b)
	}
	waitFor(t, "both scripts run", func() bool { return read("rs-down") != "" && read("quorum-down") != "" })
	if got, want := read("rs-down"), fmt.Sprintf("2|127.0.0.1|%d|", deadPort); got != want {
		t.Errorf("notify_down ran with %q, want %q (argc|args|)", got, want)
	}
	if got, want := read("quorum-down"), "2|VS lost|192.0.2.10|"; got != want {
		t.Errorf("quorum_down ran with %q, want %q (argc|args|)", got, want)
	}
	a.stopLVS(true)
}
