package coord

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/metadata"
)

// Config is how vipd reaches etcd (the --etcd-* flags).
type Config struct {
	// Endpoints are the members' client URLs (--etcd-endpoints). With TLS
	// files set they are https:// or bare host:port.
	Endpoints []string
	// Prefix is --etcd-prefix, "/vipd" when empty.
	Prefix string

	// CACert, Cert and Key are PEM files (--etcd-cacert, --etcd-cert,
	// --etcd-key): the CA that signed the members' certificates, and this
	// node's client certificate and key. Cert and Key go together.
	CACert, Cert, Key string
	// UserFile holds "user:password" on one line, or the user and the
	// password on two lines (--etcd-user-file). It must not be readable by
	// group or others (mode 0600 or 0400).
	UserFile string

	// DialTimeout bounds one connection attempt to a member, TCP and TLS
	// handshake included (default 2 s: on a LAN a handshake takes
	// milliseconds, so 2 s only fails a member that is down or hung and
	// moves on to the next endpoint quickly).
	DialTimeout time.Duration
	// KeepAliveTime is the idle time after which the client pings a member
	// to find a dead connection that TCP has not noticed (a member powered
	// off, a cable pulled), and KeepAliveTimeout how long it waits for the
	// answer (defaults 10 s and 1 s). gRPC raises any interval under 10 s
	// to 10 s (and etcd refuses pings closer than its
	// --grpc-keepalive-min-time, 5 s by default), so 10 s is the real
	// floor; the answer comes from the member's HTTP/2 layer, not from
	// raft, so 1 s is ample on a LAN. A dead connection is dropped within
	// about 11 s; lease keepalives and the watcher's probe notice trouble
	// sooner.
	KeepAliveTime, KeepAliveTimeout time.Duration
	// RequestTimeout bounds one request (a Get, a Put, a lease grant;
	// default 2 s): longer than any healthy request, short enough that a
	// member without quorum or an overloaded cluster is reported quickly.
	RequestTimeout time.Duration

	// Logger receives the etcd client's own errors (at warn) and
	// warnings (at debug); nil drops them.
	Logger *slog.Logger
}

// The defaults of Config's durations.
const (
	DefaultDialTimeout      = 2 * time.Second
	DefaultKeepAliveTime    = 10 * time.Second
	DefaultKeepAliveTimeout = 1 * time.Second
	DefaultRequestTimeout   = 2 * time.Second
)

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.KeepAliveTime <= 0 {
		c.KeepAliveTime = DefaultKeepAliveTime
	}
	if c.KeepAliveTimeout <= 0 {
		c.KeepAliveTimeout = DefaultKeepAliveTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	return c
}

// Connect checks cfg and returns an etcd client without waiting for etcd.
//
// The client connects lazily: clientv3.New (since etcd 3.7) only creates a
// gRPC channel, which connects in the background and reconnects by itself,
// so an unreachable etcd neither blocks nor fails vipd's start, and VRRP
// runs on the file model meanwhile. Two things would break that and are
// avoided here: clientv3 fetches the auth token inside New when it is given
// a user and password (New would wait DialTimeout, then fail), so vipd
// fetches the token itself on the first request instead (see lazyAuth); and
// gRPC's reconnect backoff grows to 2 minutes by default, so it is capped
// here to a few seconds, for vipd to notice promptly that etcd is back.
//
// Errors name the flag at fault. A TLS or password problem that only the
// server can reveal (a wrong CA, a wrong password) shows on the first
// request; Check reports it with the flag to look at.
func Connect(cfg Config) (*clientv3.Client, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("--etcd-endpoints: no endpoint")
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	for _, ep := range cfg.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return nil, errors.New("--etcd-endpoints: empty endpoint")
		}
		if tlsCfg != nil && strings.HasPrefix(ep, "http://") {
			// clientv3 would silently drop TLS for an http:// endpoint.
			return nil, fmt.Errorf("--etcd-endpoints %s: plain http with --etcd-cacert/--etcd-cert: use https://", ep)
		}
	}
	user, password, err := readUserFile(cfg.UserFile)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  250 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   3 * time.Second,
			},
			MinConnectTimeout: cfg.DialTimeout,
		}),
	}
	var auth *lazyAuth
	if user != "" {
		auth = &lazyAuth{user: user, password: password, timeout: cfg.RequestTimeout, lock: make(chan struct{}, 1)}
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(auth.unary),
			grpc.WithChainStreamInterceptor(auth.stream))
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    cfg.KeepAliveTime,
		DialKeepAliveTimeout: cfg.KeepAliveTimeout,
		TLS:                  tlsCfg,
		DialOptions:          opts,
		Logger:               zapToSlog(cfg.Logger),
	})
	if err != nil {
		return nil, fmt.Errorf("--etcd-endpoints %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	if auth != nil {
		auth.setClient(cli.Auth)
	}
	return cli, nil
}

// tlsConfig builds the client TLS config from the files, nil without any.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CACert == "" && c.Cert == "" && c.Key == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-cacert %s: no PEM certificate in it", c.CACert)
		}
		tc.RootCAs = pool
	}
	switch {
	case c.Cert != "" && c.Key == "":
		return nil, fmt.Errorf("--etcd-cert %s without --etcd-key", c.Cert)
	case c.Key != "" && c.Cert == "":
		return nil, fmt.Errorf("--etcd-key %s without --etcd-cert", c.Key)
	case c.Cert != "":
		if _, err := os.Stat(c.Cert); err != nil {
			return nil, fmt.Errorf("--etcd-cert: %w", err)
		}
		if _, err := os.Stat(c.Key); err != nil {
			return nil, fmt.Errorf("--etcd-key: %w", err)
		}
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert %s, --etcd-key %s: %w", c.Cert, c.Key, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// readUserFile reads --etcd-user-file: "user:password" on one line, or the
// user and the password on two lines. "" reads nothing.
func readUserFile(path string) (user, password string, err error) {
	if path == "" {
		return "", "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("--etcd-user-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", "", fmt.Errorf("--etcd-user-file %s: mode %04o, want 0600: it holds a password", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("--etcd-user-file: %w", err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 1:
		var ok bool
		user, password, ok = strings.Cut(lines[0], ":")
		if !ok {
			return "", "", fmt.Errorf("--etcd-user-file %s: want user:password, or the user and the password on two lines", path)
		}
	case 2:
		user, password = lines[0], lines[1]
	default:
		return "", "", fmt.Errorf("--etcd-user-file %s: want user:password, or the user and the password on two lines", path)
	}
	user = strings.TrimSpace(user)
	if user == "" || password == "" {
		return "", "", fmt.Errorf("--etcd-user-file %s: empty user or password", path)
	}
	return user, password, nil
}

// lazyAuth fetches etcd's auth token on the first request that needs one,
// not inside clientv3.New, and fetches it again when the server says it is
// invalid (an expired token, or a member restarted: simple tokens live in
// the member's memory). It is a pair of gRPC interceptors that run inside
// clientv3's retry interceptor, so a request failing on a stale token is
// retried by clientv3 with a fresh one.
type lazyAuth struct {
	user, password string
	timeout        time.Duration
	lock           chan struct{} // one Authenticate at a time

	mu       sync.Mutex
	authAPI  clientv3.Auth
	token    string
	disabled bool // the server said auth is not enabled
}

const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

func (a *lazyAuth) setClient(auth clientv3.Auth) {
	a.mu.Lock()
	a.authAPI = auth
	a.mu.Unlock()
}

func (a *lazyAuth) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == authenticateMethod {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	ctx, err := a.withToken(ctx)
	if err != nil {
		return err
	}
	err = invoker(ctx, method, req, reply, cc, opts...)
	a.observe(err)
	return err
}

func (a *lazyAuth) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := a.withToken(ctx)
	if err != nil {
		return nil, err
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		a.observe(err)
		return nil, err
	}
	return observedStream{s, a}, nil
}

type observedStream struct {
	grpc.ClientStream
	a *lazyAuth
}

func (s observedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	s.a.observe(err)
	return err
}

// observe forgets the token when the server refuses it, so the next request
// authenticates again.
func (a *lazyAuth) observe(err error) {
	if err == nil {
		return
	}
	switch rpctypes.Error(err) {
	case rpctypes.ErrInvalidAuthToken, rpctypes.ErrUserEmpty, rpctypes.ErrAuthOldRevision:
		a.mu.Lock()
		a.token, a.disabled = "", false
		a.mu.Unlock()
	}
}

// withToken adds the token to ctx's outgoing metadata, authenticating first
// when there is none yet.
func (a *lazyAuth) withToken(ctx context.Context) (context.Context, error) {
	a.mu.Lock()
	tok, disabled := a.token, a.disabled
	a.mu.Unlock()
	if tok == "" && !disabled {
		select {
		case a.lock <- struct{}{}:
		case <-ctx.Done():
			return ctx, ctx.Err()
		}
		var err error
		tok, err = a.authenticate(ctx)
		<-a.lock
		if err != nil {
			return ctx, err
		}
	}
	if tok == "" {
		return ctx, nil
	}
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok), nil
}

// authenticate returns a token, fetching one unless another request did
// meanwhile. a.lock is held.
func (a *lazyAuth) authenticate(ctx context.Context) (string, error) {
	a.mu.Lock()
	tok, disabled, api := a.token, a.disabled, a.authAPI
	a.mu.Unlock()
	if tok != "" || disabled {
		return tok, nil
	}
	if api == nil {
		return "", errors.New("etcd client not ready")
	}
	actx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := api.Authenticate(actx, a.user, a.password)
	switch {
	case errors.Is(err, rpctypes.ErrAuthNotEnabled):
		a.mu.Lock()
		a.disabled = true
		a.mu.Unlock()
		return "", nil
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return "", fmt.Errorf("etcd user %q: %w (check --etcd-user-file)", a.user, err)
	case err != nil:
		return "", err
	}
	a.mu.Lock()
	a.token = resp.Token
	a.mu.Unlock()
	return resp.Token, nil
}

// Check makes one linearizable read under cfg.Prefix with cli (made by
// Connect from cfg) and returns nil when etcd answers. Otherwise its error
// says which flag to look at when the cause is a refusal: a TLS handshake
// that fails (gRPC only reports a timeout then, so Check makes one
// handshake of its own with each endpoint to find out), a wrong password,
// missing permissions. Connect does not wait for etcd; Check is how vipd
// tells at start whether etcd is usable.
func Check(ctx context.Context, cli *clientv3.Client, cfg Config) error {
	cfg = cfg.withDefaults()
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), cfg.RequestTimeout)
	_, err := cli.Get(rctx, WatchPrefix(cfg.Prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err == nil {
		return nil
	}
	if terr := diagnoseTLS(ctx, cfg); terr != nil {
		return terr
	}
	return fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), explain(err))
}

// diagnoseTLS makes a TLS handshake with every endpoint and returns the
// first refusal, naming the flags at fault; nil when no endpoint refuses
// (or none answers at all: that is not a TLS problem).
func diagnoseTLS(ctx context.Context, cfg Config) error {
	tc, err := cfg.tlsConfig()
	if err != nil || tc == nil {
		return err
	}
	for _, ep := range cfg.Endpoints {
		addr := ep
		if _, rest, ok := strings.Cut(ep, "://"); ok {
			addr = rest
		}
		addr, _, _ = strings.Cut(addr, "/")
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		c := tc.Clone()
		c.ServerName = host
		c.NextProtos = []string{"h2"} // as gRPC offers, or the member hangs up
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: cfg.DialTimeout}, Config: c}
		dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		conn, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			// With TLS 1.3 the member judges the client certificate after
			// the handshake: its verdict is the first thing read.
			_ = conn.SetReadDeadline(time.Now().Add(cfg.DialTimeout))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
			if !strings.Contains(fmt.Sprint(err), "tls:") {
				err = nil
			}
		}
		var verr *tls.CertificateVerificationError
		switch {
		case err == nil:
		case errors.As(err, &verr):
			return fmt.Errorf("etcd %s: TLS: this node does not trust the member's certificate: %w (check --etcd-cacert)", ep, verr.Err)
		case strings.Contains(err.Error(), "remote error: tls:"):
			return fmt.Errorf("etcd %s: TLS: the member refused this node's client certificate: %w (check --etcd-cert and --etcd-key)", ep, err)
		case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
			return fmt.Errorf("etcd %s: TLS: %w (check --etcd-cacert, --etcd-cert, --etcd-key)", ep, err)
		}
	}
	return nil
}

// explain adds to an etcd error the flag an operator should look at.
func explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch e := rpctypes.Error(err); {
	case strings.Contains(msg, "--etcd-"):
		return err
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:") || strings.Contains(msg, "certificate"):
		return fmt.Errorf("%w (TLS: check --etcd-cacert, --etcd-cert, --etcd-key)", err)
	case e == rpctypes.ErrUserEmpty:
		return fmt.Errorf("%w (etcd requires authentication: set --etcd-user-file or a client certificate)", err)
	case e == rpctypes.ErrAuthFailed || e == rpctypes.ErrInvalidAuthToken:
		return fmt.Errorf("%w (check --etcd-user-file)", err)
	case e == rpctypes.ErrPermissionDenied:
		return fmt.Errorf("%w (the etcd user needs read and write on --etcd-prefix)", err)
	case e == rpctypes.ErrNoSpace:
		return fmt.Errorf("%w (etcd's NOSPACE alarm: it refuses writes, so no arbiter claim can be taken and no failover can go through etcd; compact and defragment etcd, then etcdctl alarm disarm)", err)
	}
	return err
}

// zapToSlog returns a zap logger for the etcd client that writes to l:
// errors at warn, warnings at debug (the client warns on every retry while
// etcd is down; vipd logs the outage once itself), the rest dropped. A nil
// l drops everything.
func zapToSlog(l *slog.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return zap.New(slogCore{log: l})
}

type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c slogCore) With(fs []zapcore.Field) zapcore.Core {
	return slogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	level := slog.LevelDebug
	if e.Level >= zapcore.ErrorLevel {
		level = slog.LevelWarn
	}
	c.log.LogAttrs(context.Background(), level, "etcd client: "+e.Message, attrs...)
	return nil
}

func (c slogCore) Sync() error { return nil }
