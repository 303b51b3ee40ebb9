// Package etcdtest runs etcd inside a test process for coord's tests: a
// single member or a small cluster on free localhost ports, with its data in
// t.TempDir(), quiet, stopped and removed by t.Cleanup.
//
// Clients reach each member through a TCP relay on a fixed port. Stop cuts
// every relayed connection at once, as the kernel does when a process dies,
// then stops the member; Restart brings the member back on the same ports
// and data. Without the relay, embed's graceful close waits out its request
// timeout (5 s and more) on every open watch stream.
package etcdtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long a member (or a cluster) may take to be ready.
const startTimeout = 30 * time.Second

// Option changes how a member is set up.
type Option func(*options)

type options struct {
	tls *Certs
}

// WithTLS serves clients over TLS with c's server certificate and requires a
// client certificate signed by c's CA (etcd's --client-cert-auth).
func WithTLS(c *Certs) Option { return func(o *options) { o.tls = c } }

// Server is one embedded etcd member.
type Server struct {
	t    testing.TB
	name string
	dir  string
	opts options

	clientURL url.URL // where etcd listens for clients (behind the relay)
	peerURL   url.URL
	relay     *relay

	// cluster bootstrap, the same for every member of a cluster
	initialCluster string
	clusterState   string

	mu   sync.Mutex
	etcd *embed.Etcd
}

// New prepares a single member on free ports without starting it, so a test
// can start its clients first (etcd down at start).
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := newMember(t, "m0", opts)
	s.initialCluster = s.name + "=" + s.peerURL.String()
	s.clusterState = embed.ClusterStateFlagNew
	return s
}

// Start prepares and starts a single member.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := New(t, opts...)
	s.Start()
	return s
}

func newMember(t testing.TB, name string, opts []Option) *Server {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	s := &Server{t: t, name: name, dir: filepath.Join(t.TempDir(), name), opts: o}
	scheme := "http"
	if o.tls != nil {
		scheme = "https"
	}
	s.clientURL = url.URL{Scheme: scheme, Host: freeAddr(t)}
	s.peerURL = url.URL{Scheme: "http", Host: freeAddr(t)}
	r := newRelay(freeAddr(t), s.clientURL.Host)
	s.relay = r
	t.Cleanup(func() {
		s.Stop()
		r.close()
	})
	return s
}

// freeAddr returns a localhost address with a port free right now, below
// the kernel's ephemeral range. A port in that range can be taken while its
// member is stopped: a client (or a peer) that keeps dialing a closed
// localhost port now and then gets that very port as its own source port
// and connects to itself, and the member cannot listen there again.
func freeAddr(t testing.TB) string {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatalf("etcdtest: no free port between 10000 and %d", low)
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 10100 {
				low = n
			}
		}
	}
	return low
}

func (s *Server) config() *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = s.name
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = s.initialCluster
	cfg.ClusterState = s.clusterState
	cfg.InitialClusterToken = "etcdtest"
	// etcd's own heartbeat and election timeouts (100 ms, 1 s): shorter
	// ones make a loaded test machine call spurious elections.
	cfg.TickMs = 100
	cfg.ElectionMs = 1000
	cfg.UnsafeNoFsync = true
	cfg.BcryptCost = 4 // bcrypt.MinCost: user passwords hash fast in tests
	cfg.EnableGRPCGateway = false
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger())
	if c := s.opts.tls; c != nil {
		cfg.ClientTLSInfo.CertFile = c.ServerCert
		cfg.ClientTLSInfo.KeyFile = c.ServerKey
		cfg.ClientTLSInfo.TrustedCAFile = c.CA
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	return cfg
}

// logger is silent unless ETCDTEST_LOG is set (then warnings and errors go
// to stderr, for debugging a failing test).
func logger() *zap.Logger {
	if os.Getenv("ETCDTEST_LOG") == "" {
		return zap.NewNop()
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	lg, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}

// Start starts the member (again, after Stop, on the same ports and data)
// and waits until it serves. A single member is ready at once; a cluster's
// members are ready when a quorum runs, so StartCluster waits for that.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("etcdtest: start %s: %v", s.name, err)
	}
	if err := s.waitReady(startTimeout); err != nil {
		s.t.Fatalf("etcdtest: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd != nil {
		return fmt.Errorf("already running")
	}
	var (
		e   *embed.Etcd
		err error
	)
	// The ports were free when chosen; a restart can race a socket still
	// closing, so try a few times.
	for range 20 {
		e, err = embed.StartEtcd(s.config())
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.etcd = e
	// Once started, later restarts must not try to bootstrap again.
	s.clusterState = embed.ClusterStateFlagExisting
	return s.relay.open()
}

func (s *Server) waitReady(d time.Duration) error {
	s.mu.Lock()
	e := s.etcd
	s.mu.Unlock()
	if e == nil {
		return fmt.Errorf("%s: not running", s.name)
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("%s: %v", s.name, err)
	case <-time.After(d):
		return fmt.Errorf("%s: not ready after %v", s.name, d)
	}
}

// Stop stops the member the way a crash looks to its clients: every client
// connection is cut at once and new ones are refused until Start. Stopping a
// stopped member does nothing.
func (s *Server) Stop() {
	s.relay.shut()
	s.mu.Lock()
	e := s.etcd
	s.etcd = nil
	s.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Cut cuts every client connection to a running member and refuses new
// ones, as a network partition between the clients and the member would;
// the member keeps running and DirectClient still reaches it. Heal ends it.
func (s *Server) Cut() { s.relay.shut() }

// Heal lets clients reach the member again after Cut.
func (s *Server) Heal() {
	s.t.Helper()
	if err := s.relay.open(); err != nil {
		s.t.Fatalf("etcdtest: heal %s: %v", s.name, err)
	}
}

// Restart stops and starts the member on the same ports and data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Running reports whether the member is started.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd != nil
}

// Endpoint is the URL clients use to reach this member.
func (s *Server) Endpoint() string {
	return s.clientURL.Scheme + "://" + s.relay.addr
}

// Endpoints is Endpoint as a list, for a client config.
func (s *Server) Endpoints() []string { return []string{s.Endpoint()} }

// ClientConfig is a quiet client config for this member (with the client
// certificate when it serves TLS).
func (s *Server) ClientConfig() clientv3.Config { return clientConfig(s.t, s.Endpoints(), s.opts.tls) }

// Client returns a new client of this member, closed at cleanup.
func (s *Server) Client() *clientv3.Client { return newClient(s.t, s.ClientConfig()) }

// DirectClient returns a new client that reaches the member without the
// relay, so Cut does not affect it; closed at cleanup.
func (s *Server) DirectClient() *clientv3.Client {
	return newClient(s.t, clientConfig(s.t, []string{s.clientURL.String()}, s.opts.tls))
}

func clientConfig(t testing.TB, endpoints []string, c *Certs) clientv3.Config {
	t.Helper()
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c != nil {
		tc, err := c.ClientTLS()
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		cfg.TLS = tc
	}
	return cfg
}

func newClient(t testing.TB, cfg clientv3.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Cluster is a few embedded members forming one etcd cluster.
type Cluster struct {
	t       testing.TB
	Members []*Server
	tls     *Certs
}

// StartCluster starts an n-member cluster and waits until every member
// serves.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var peers []string
	for i := range n {
		m := newMember(t, fmt.Sprintf("m%d", i), opts)
		c.Members = append(c.Members, m)
		peers = append(peers, m.name+"="+m.peerURL.String())
		c.tls = m.opts.tls
	}
	for _, m := range c.Members {
		m.initialCluster = strings.Join(peers, ",")
		m.clusterState = embed.ClusterStateFlagNew
	}
	for _, m := range c.Members {
		if err := m.start(); err != nil {
			t.Fatalf("etcdtest: start %s: %v", m.name, err)
		}
	}
	for _, m := range c.Members {
		if err := m.waitReady(startTimeout); err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
	}
	return c
}

// Endpoints lists every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Endpoint())
	}
	return eps
}

// ClientConfig is a quiet client config for the whole cluster.
func (c *Cluster) ClientConfig() clientv3.Config { return clientConfig(c.t, c.Endpoints(), c.tls) }

// Client returns a new client of the whole cluster, closed at cleanup.
func (c *Cluster) Client() *clientv3.Client { return newClient(c.t, c.ClientConfig()) }

// WaitLeader waits until some running member sees a leader.
func (c *Cluster) WaitLeader(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, m := range c.Members {
			m.mu.Lock()
			e := m.etcd
			m.mu.Unlock()
			if e != nil && e.Server.Leader() != 0 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no leader after %v", d)
}

// relay forwards TCP connections from a fixed local address to a member's
// client address. shut closes the listener and every connection; open
// listens again on the same address.
type relay struct {
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newRelay(addr, target string) *relay {
	return &relay{addr: addr, target: target, conns: map[net.Conn]struct{}{}}
}

func (r *relay) open() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		return nil
	}
	var (
		ln  net.Listener
		err error
	)
	for range 20 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("relay %s: %w", r.addr, err)
	}
	r.ln = ln
	r.wg.Add(1)
	go r.accept(ln)
	return nil
}

func (r *relay) accept(ln net.Listener) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", r.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.ln != ln { // shut meanwhile
			r.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		r.conns[c] = struct{}{}
		r.conns[up] = struct{}{}
		r.wg.Add(2)
		r.mu.Unlock()
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

func (r *relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

// shut refuses new connections and cuts the open ones.
func (r *relay) shut() {
	r.mu.Lock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *relay) close() { r.shut() }

// WaitFor polls cond every 10 ms until it holds or d passes; it reports
// whether cond held. Tests use it to wait for a condition with a deadline
// instead of sleeping.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
