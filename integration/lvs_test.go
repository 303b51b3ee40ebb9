package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

// webServer serves HTTP in a lab node from the test process; stop closes it.
func webServer(t *testing.T, n *lab.Node, addr, body string) (stop func()) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", n.Name, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return func() { srv.Close() }
}

func (d *daemon) lvs() (api.LVS, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return api.NewClient(d.socket).LVS(ctx)
}

// TestLVSWithoutIPVSKeepsVRRPAndShowsTheDesiredPool runs the real vipd on
// this machine's kernel, which has no IPVS: the log says so, VRRP runs as
// usual, the health checks of real HTTP servers in other lab nodes run, and
// vipd lvs shows the desired pool following them. (The real IPVS is proven
// in a VM: integration/ipvsvm.)
func TestLVSWithoutIPVSKeepsVRRPAndShowsTheDesiredPool(t *testing.T) {
	l := lab.New(t)
	lb := l.AddNode("lb", "10.99.0.1/24")
	web1 := l.AddNode("web1", "10.99.0.11/24")
	web2 := l.AddNode("web2", "10.99.0.12/24")
	stop1 := webServer(t, web1, "10.99.0.11:8080", "web1")
	webServer(t, web2, "10.99.0.12:8080", "web2")

	conf := renderConf(t, "lb", false, instanceConf{Name: "VI_1", State: "MASTER", VRID: 51, Priority: 150, VIPs: []string{"10.99.0.100/24"}}) + `
virtual_server 10.99.0.100 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 10.99.0.11 8080 {
        weight 2
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            retry 0
        }
    }
    real_server 10.99.0.12 8080 {
        weight 3
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`
	d := startVipd(t, lb, conf)
	waitVIP(t, 10*time.Second, "10.99.0.100", lb)
	want := "-A -t 10.99.0.100:80 -s wrr\n-a -t 10.99.0.100:80 -r 10.99.0.11:8080 -m -w 2\n-a -t 10.99.0.100:80 -r 10.99.0.12:8080 -m -w 3\n"
	lab.Eventually(t, 10*time.Second, "both checks ok and the desired pool shown", func() bool {
		st, err := d.lvs()
		if err != nil || st.Available || st.Desired != want || len(st.VirtualServers) != 1 {
			return false
		}
		for _, rs := range st.VirtualServers[0].RealServers {
			if len(rs.Checks) != 1 || rs.Checks[0].Result != "ok" {
				return false
			}
		}
		return true
	})
	st, _ := d.lvs()
	if !strings.Contains(st.Reason, "IPVS not available in this kernel") || st.Actual != "" {
		t.Errorf("reason %q, actual %q", st.Reason, st.Actual)
	}
	if out := d.proc.Output(); !strings.Contains(out, "IPVS not available in this kernel") {
		t.Errorf("no log line about IPVS:\n%s", out)
	}

	stop1()
	lab.Eventually(t, 10*time.Second, "web1 out of the desired pool", func() bool {
		st, err := d.lvs()
		return err == nil && !strings.Contains(st.Desired, "10.99.0.11") && !st.VirtualServers[0].RealServers[0].Up
	})
	if out := d.proc.Output(); !strings.Contains(out, "lvs: real server down") || !strings.Contains(out, "real_server=10.99.0.11:8080") {
		t.Errorf("no transition log line with its cause:\n%s", out)
	}
	table, err := exec.Command(lab.BuildVipd(t), "lvs", "--socket", d.socket).CombinedOutput()
	if err != nil || !strings.Contains(string(table), "IPVS: not available") || !strings.Contains(string(table), "DOWN") {
		t.Errorf("vipd lvs: %v\n%s", err, table)
	}
	if d.state("VI_1") != "MASTER" {
		t.Errorf("VRRP disturbed: VI_1 is %q", d.state("VI_1"))
	}
	d.stop()
}

// TestHASuspendFollowsTheVIP: a virtual server with ha_suspend on the VIP
// of a VRRP instance checks only while this node holds the VIP, and follows
// the address as soon as it comes and goes (the address watcher tells the
// LVS side), not at the next 10 s resync: its log line names the address
// change as the cause.
func TestHASuspendFollowsTheVIP(t *testing.T) {
	l := lab.New(t)
	lb := l.AddNode("lb", "10.99.0.1/24")
	web := l.AddNode("web1", "10.99.0.11/24")
	webServer(t, web, "10.99.0.11:8080", "web1")
	conf := renderConf(t, "lb", false, instanceConf{Name: "VI_1", State: "MASTER", VRID: 51, Priority: 150, VIPs: []string{"10.99.0.100/24"}}) + `
virtual_server 10.99.0.100 80 {
    delay_loop 1
    lb_algo rr
    ha_suspend
    real_server 10.99.0.11 8080 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`
	d := startVipd(t, lb, conf)
	waitVIP(t, 10*time.Second, "10.99.0.100", lb)
	suspended := func(want bool) func() bool {
		return func() bool {
			st, err := d.lvs()
			return err == nil && len(st.VirtualServers) == 1 && st.VirtualServers[0].Suspended == want
		}
	}
	lab.Eventually(t, 10*time.Second, "the virtual server active with the VIP here", suspended(false))

	// The VIP leaves (maintenance): the virtual server is suspended within
	// a deadline under the 10 s resync, by the address change.
	if out, err := exec.Command(lab.BuildVipd(t), "maint", "on", "--instance", "VI_1", "--reason", "test", "--socket", d.socket).CombinedOutput(); err != nil {
		t.Fatalf("vipd maint on: %v\n%s", err, out)
	}
	lab.Eventually(t, 5*time.Second, "the virtual server suspended once the VIP left", suspended(true))
	if out := d.proc.Output(); !strings.Contains(out, "lvs: virtual server suspended") || !strings.Contains(out, `cause="address change"`) {
		t.Errorf("no suspension line with the address change as its cause:\n%s", out)
	}
	if out, err := exec.Command(lab.BuildVipd(t), "maint", "off", "--instance", "VI_1", "--socket", d.socket).CombinedOutput(); err != nil {
		t.Fatalf("vipd maint off: %v\n%s", err, out)
	}
	waitVIP(t, 10*time.Second, "10.99.0.100", lb)
	lab.Eventually(t, 5*time.Second, "the virtual server active again with the VIP back", suspended(false))
	d.stop()
}
