package check

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

var one = 1

// checkerTo is a normalized checker of type typ aimed at dst.
func checkerTo(typ string, dst netip.AddrPort, timeout time.Duration) *config.Checker {
	return &config.Checker{
		Type: typ, ConnectIP: dst.Addr(), ConnectPort: int(dst.Port()),
		ConnectTimeout: config.Duration(timeout), Retry: &one,
		DelayBeforeRetry: config.Duration(time.Second), DelayLoop: config.Duration(time.Second),
	}
}

// listenTCP listens on an ephemeral loopback port for the test's duration.
func listenTCP(t *testing.T) (net.Listener, netip.AddrPort) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, l.Addr().(*net.TCPAddr).AddrPort()
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// probeOnce builds c's prober and runs one attempt.
func probeOnce(t *testing.T, c *config.Checker, opts Options) Outcome {
	t.Helper()
	p, err := New(c, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p.Probe(context.Background())
}

// expect checks an outcome's verdict and that its cause contains want.
func expect(t *testing.T, o Outcome, ok bool, want string) {
	t.Helper()
	if o.OK != ok || !strings.Contains(o.Cause, want) {
		t.Errorf("outcome = {OK:%v Cause:%q}, want {OK:%v Cause containing %q}", o.OK, o.Cause, ok, want)
	}
	if o.Duration <= 0 {
		t.Errorf("outcome has no duration: %+v", o)
	}
}

// silentServer accepts connections and never answers; each accepted
// connection is announced on the returned channel.
func silentServer(t *testing.T) (netip.AddrPort, <-chan struct{}) {
	t.Helper()
	l, dst := listenTCP(t)
	accepted := make(chan struct{}, 100)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
			accepted <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return dst, accepted
}
