package check

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
)

func TestTCPCheckSucceedsOnAListenerAndFailsOnAClosedPort(t *testing.T) {
	_, open := listenTCP(t)
	expect(t, probeOnce(t, checkerTo(config.CheckTCP, open, time.Second), Options{}), true, "connected")
	closed := closedPort(t, "tcp")
	expect(t, probeOnce(t, checkerTo(config.CheckTCP, closed, time.Second), Options{}), false, "connect: connection refused")
}

func TestTCPCheckConnectsFromBindto(t *testing.T) {
	l, dst := listenTCP(t)
	from := make(chan netip.Addr, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		from <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		c.Close()
	}()
	c := checkerTo(config.CheckTCP, dst, time.Second)
	c.BindTo = mustAddr("127.0.0.2")
	expect(t, probeOnce(t, c, Options{}), true, "connected")
	if got := <-from; got != c.BindTo {
		t.Errorf("connection came from %v, want bindto %v", got, c.BindTo)
	}
	c.BindTo = mustAddr("192.0.2.1") // not on this host
	expect(t, probeOnce(t, c, Options{}), false, "bind: cannot assign requested address")
}

func TestProbeEndsWhenItsContextIsCancelled(t *testing.T) {
	dst, accepted := silentServer(t)
	c := checkerTo(config.CheckHTTP, dst, time.Hour)
	c.URLs = []config.URL{{Path: "/"}}
	p, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Outcome)
	go func() { done <- p.Probe(ctx) }()
	<-accepted // the probe waits for an answer that never comes
	cancel()
	select {
	case o := <-done:
		expect(t, o, false, "GET /: cancelled")
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled probe did not return")
	}
}

func TestNewRefusesWhatItCannotProbe(t *testing.T) {
	dst := netip.MustParseAddrPort("127.0.0.1:80")
	tests := []struct {
		name string
		mod  func(c *config.Checker)
		want string
	}{
		{"unknown type", func(c *config.Checker) { c.Type = "UDP_CHECK" }, "UDP_CHECK: unknown checker type"},
		{"no address", func(c *config.Checker) { c.ConnectIP = netip.Addr{} }, "TCP_CHECK: no connect_ip (nor real server address)"},
		{"no port", func(c *config.Checker) { c.ConnectPort = 0 }, "TCP_CHECK: connect_port 0: must be 1..65535"},
		{"position is named", func(c *config.Checker) {
			c.Pos = config.Pos{File: "keepalived.conf", Line: 42}
			c.ConnectPort = 70000
		}, "keepalived.conf:42: TCP_CHECK: connect_port 70000: must be 1..65535"},
		{"no timeout", func(c *config.Checker) { c.ConnectTimeout = 0 }, "TCP_CHECK: connect_timeout 0s: must be positive"},
		{"HTTP without url", func(c *config.Checker) { c.Type = config.CheckHTTP }, "HTTP_GET: no url"},
		{"relative url path", func(c *config.Checker) {
			c.Type, c.URLs = config.CheckSSL, []config.URL{{Path: "health"}}
		}, `SSL_GET: url path "health": must be an absolute path`},
		{"bad digest", func(c *config.Checker) {
			c.Type, c.URLs = config.CheckHTTP, []config.URL{{Path: "/", Digest: "xyz"}}
		}, `HTTP_GET: url /: digest "xyz": must be 32 hex digits`},
		{"misc without path", func(c *config.Checker) { c.Type = config.CheckMisc }, "MISC_CHECK: no misc_path"},
		{"misc unterminated quote", func(c *config.Checker) {
			c.Type, c.MiscPath = config.CheckMisc, `/bin/check "x`
		}, `MISC_CHECK: misc_path: command "/bin/check \"x": missing terminating "`},
		{"DNS type", func(c *config.Checker) { c.Type, c.DNSType = config.CheckDNS, "SRV" }, `DNS_CHECK: type "SRV": must be one of`},
		{"DNS empty label", func(c *config.Checker) {
			c.Type, c.DNSType, c.DNSName = config.CheckDNS, "A", "a..b"
		}, `DNS_CHECK: name "a..b": empty label`},
		{"SMTP helo with blank", func(c *config.Checker) { c.Type, c.HeloName = config.CheckSMTP, "a b" }, `SMTP_CHECK: helo_name "a b": must be one word`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkerTo(config.CheckTCP, dst, time.Second)
			tt.mod(c)
			_, err := New(c, Options{})
			if err == nil || len(err.Error()) < len(tt.want) || err.Error()[:len(tt.want)] != tt.want {
				t.Errorf("New = %v, want an error starting %q", err, tt.want)
			}
		})
	}
}
