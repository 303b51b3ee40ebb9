package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/vipd/vipd/config"
)

// Prober makes one probe attempt against a real server.
type Prober interface {
	// Probe runs one attempt and returns how it went. connect_timeout bounds
	// the connection and the exchange (for HTTP_GET/SSL_GET, of each url);
	// misc_timeout bounds a MISC_CHECK. It returns early, failed with cause
	// "cancelled", when ctx is done. Probe is safe for concurrent use.
	Probe(ctx context.Context) Outcome
}

// Outcome is the result of one probe attempt.
type Outcome struct {
	OK bool
	// Cause says briefly why, in the operator's words: "connect: connection
	// refused", "GET /health: HTTP status 500 not in 200-299", "timeout
	// after 2s", "exit status 1"; also for a success ("connected").
	Cause    string
	Duration time.Duration // of the attempt
	// Weight is set by a MISC_CHECK with misc_dynamic that exited 2..255: the
	// real server's weight is then exit status - 2. It is nil otherwise,
	// which for a successful misc_dynamic check means "the configured weight"
	// (keepalived resets the weight when the script exits 0).
	Weight *int
}

// Options are what New needs besides the checker's own configuration.
type Options struct {
	// VirtualHost is the virtual server's virtualhost: the Host header of
	// HTTP_GET/SSL_GET when the checker sets none.
	VirtualHost string
	// ScriptUser and ScriptGroup are global_defs script_user: who runs a
	// MISC_CHECK that names no user. Empty: vipd's own user.
	ScriptUser, ScriptGroup string
	// ScriptSecurity is enable_script_security: New refuses a misc_path that
	// a non-root user could modify (script.CheckSecure), as keepalived
	// removes such a checker.
	ScriptSecurity bool
}

// New builds the prober of a normalized checker (config.Normalize has filled
// connect_ip, connect_port, connect_timeout, delay_loop and the DNS
// defaults). It fails on a configuration it cannot probe.
func New(c *config.Checker, opts Options) (Prober, error) {
	if c == nil {
		return nil, errors.New("check: nil checker")
	}
	if c.Type != config.CheckMisc {
		if !c.ConnectIP.IsValid() {
			return nil, errorf(c, "no connect_ip (nor real server address)")
		}
		if c.ConnectPort < 1 || c.ConnectPort > 65535 {
			return nil, errorf(c, "connect_port %d: must be 1..65535", c.ConnectPort)
		}
		if c.ConnectTimeout <= 0 {
			return nil, errorf(c, "connect_timeout %s: must be positive", c.ConnectTimeout)
		}
	}
	switch c.Type {
	case config.CheckTCP:
		return &tcpProber{conn: connOf(c)}, nil
	case config.CheckHTTP, config.CheckSSL:
		return newHTTPProber(c, opts)
	case config.CheckMisc:
		return newMiscProber(c, opts)
	case config.CheckDNS:
		return newDNSProber(c)
	case config.CheckSMTP:
		return newSMTPProber(c)
	}
	return nil, errorf(c, "unknown checker type")
}

// errorf prefixes a configuration error with the checker's position and type:
// "keepalived.conf:42: DNS_CHECK: type SRV: ...".
func errorf(c *config.Checker, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if c.Pos.IsZero() {
		return fmt.Errorf("%s: %s", c.Type, msg)
	}
	return fmt.Errorf("%s:%d: %s: %s", c.Pos.File, c.Pos.Line, c.Type, msg)
}

// Target names what a checker probes, for logs: "10.0.0.1:80", or the
// misc_path of a MISC_CHECK.
func Target(c *config.Checker) string {
	if c.Type == config.CheckMisc {
		return c.MiscPath
	}
	return netip.AddrPortFrom(c.ConnectIP, uint16(c.ConnectPort)).String()
}

// conn is the connection part of a network checker: where to connect, from
// which address, and how long one attempt may take.
type conn struct {
	dst     netip.AddrPort
	bindTo  netip.Addr // unset: the kernel chooses
	timeout time.Duration
}

func connOf(c *config.Checker) conn {
	return conn{
		dst:     netip.AddrPortFrom(c.ConnectIP, uint16(c.ConnectPort)),
		bindTo:  c.BindTo,
		timeout: c.ConnectTimeout.D(),
	}
}

// dial connects to the target over network ("tcp" or "udp"), from bindto
// when set.
func (c conn) dial(ctx context.Context, network string) (net.Conn, error) {
	var d net.Dialer
	if c.bindTo.IsValid() {
		src := netip.AddrPortFrom(c.bindTo, 0)
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(src)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(src)
		}
	}
	return d.DialContext(ctx, network, c.dst.String())
}

// attempt returns the context of one attempt: ctx bounded by the timeout.
func (c conn) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// withDeadline makes blocking I/O on nc end at ctx's deadline or when ctx is
// done; the returned stop undoes the latter.
func withDeadline(ctx context.Context, nc net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
}

// cause turns an attempt's error into a short cause: "timeout after 2s" when
// the attempt's own timeout ended it, "cancelled" when the caller did, else
// the innermost operation and error ("connect: connection refused").
func cause(parent context.Context, err error, timeout time.Duration) string {
	if parent.Err() != nil {
		return "cancelled"
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timeout after " + timeout.String()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error() // "connect: connection refused" (an os.SyscallError)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error() // without the "Get URL:" prefix the outcome already has
	}
	return err.Error()
}

// finish fills an outcome's duration.
func finish(start time.Time, o Outcome) Outcome {
	o.Duration = time.Since(start)
	return o
}

// tcpProber is TCP_CHECK: a connection that succeeds is a success.
type tcpProber struct{ conn conn }

func (p *tcpProber) Probe(ctx context.Context) Outcome {
	start := time.Now()
	actx, cancel := p.conn.attempt(ctx)
	defer cancel()
	nc, err := p.conn.dial(actx, "tcp")
	if err != nil {
		return finish(start, Outcome{Cause: cause(ctx, err, p.conn.timeout)})
	}
	_ = nc.Close()
	return finish(start, Outcome{OK: true, Cause: "connected"})
}
