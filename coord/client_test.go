package coord

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipd/vipd/coord/etcdtest"
)

// wait is how long a test waits for a condition before it fails. Nothing
// is asserted on wall-clock time: a condition only has to hold by then.
const wait = 20 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !etcdtest.WaitFor(wait, cond) {
		// Where this package's goroutines stand says why, usually.
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "vipd/coord.(*") {
				t.Log(g)
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
}

// logs records log lines for tests to wait on.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// count returns how many lines contain s.
func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// connect is Connect to a test member, with timeouts generous enough for
// a loaded test machine.
func connect(t *testing.T, cfg Config) *clientv3.Client {
	t.Helper()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	cli, err := Connect(cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// noCoordGoroutines fails when a goroutine of this package's watcher or
// publisher is still running a while after everything was stopped.
func noCoordGoroutines(t *testing.T) {
	t.Helper()
	var left string
	ok := etcdtest.WaitFor(5*time.Second, func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "vipd/coord.(*Watcher)") || strings.Contains(g, "vipd/coord.(*Publisher)") ||
				strings.Contains(g, "vipd/coord.StartPublisher") {
				left += g + "\n\n"
			}
		}
		return left == ""
	})
	if !ok {
		t.Fatalf("goroutines left running:\n%s", left)
	}
}

func TestConnectDoesNotWaitForEtcd(t *testing.T) {
	srv := etcdtest.New(t) // ports chosen, nothing listening
	done := make(chan error, 1)
	go func() {
		cli, err := Connect(Config{Endpoints: srv.Endpoints(), DialTimeout: time.Second})
		if err == nil {
			cli.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Connect with etcd down: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Connect blocked with etcd down")
	}
}

func TestConnectWithUserFileDoesNotWaitForEtcd(t *testing.T) {
	srv := etcdtest.New(t)
	uf := userFile(t, "vipd:secret\n", 0o600)
	cli, err := Connect(Config{Endpoints: srv.Endpoints(), UserFile: uf, DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("Connect with a user file and etcd down: %v", err)
	}
	cli.Close()
}

func TestConnectRejectsBadSettingsNamingTheFlag(t *testing.T) {
	certs := etcdtest.NewCerts(t)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	eps := []string{"https://127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no endpoint", Config{}, "--etcd-endpoints"},
		{"missing CA file", Config{Endpoints: eps, CACert: "/nonexistent/ca.pem"}, "--etcd-cacert"},
		{"CA file without a certificate", Config{Endpoints: eps, CACert: notPEM}, "--etcd-cacert " + notPEM + ": no PEM certificate"},
		{"cert without key", Config{Endpoints: eps, Cert: certs.ClientCert}, "without --etcd-key"},
		{"key without cert", Config{Endpoints: eps, Key: certs.ClientKey}, "without --etcd-cert"},
		{"missing key file", Config{Endpoints: eps, Cert: certs.ClientCert, Key: "/nonexistent/key.pem"}, "--etcd-key"},
		{"key of another cert", Config{Endpoints: eps, Cert: certs.ClientCert, Key: certs.ServerKey}, "--etcd-cert"},
		{"TLS over http://", Config{Endpoints: []string{"http://127.0.0.1:2379"}, CACert: certs.CA}, "use https://"},
		{"user file readable by others", Config{Endpoints: eps, UserFile: userFile(t, "u:p", 0o644)}, "mode 0644, want 0600"},
		{"missing user file", Config{Endpoints: eps, UserFile: "/nonexistent/user"}, "--etcd-user-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := Connect(tc.cfg)
			if err == nil {
				cli.Close()
				t.Fatalf("Connect succeeded, want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func userFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "user")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserFileFormats(t *testing.T) {
	for _, tc := range []struct {
		content        string
		mode           os.FileMode
		user, password string
		err            string
	}{
		{content: "vipd:s3cret\n", mode: 0o600, user: "vipd", password: "s3cret"},
		{content: "vipd:pa:ss:word", mode: 0o400, user: "vipd", password: "pa:ss:word"},
		{content: "vipd\npa:ss word\n", mode: 0o600, user: "vipd", password: "pa:ss word"},
		{content: "vipd\r\ns3cret\r\n", mode: 0o600, user: "vipd", password: "s3cret"},
		{content: "vipd:s3cret", mode: 0o640, err: "mode 0640, want 0600"},
		{content: "vipd", mode: 0o600, err: "want user:password"},
		{content: "", mode: 0o600, err: "want user:password"},
		{content: "a\nb\nc\n", mode: 0o600, err: "want user:password"},
		{content: ":s3cret", mode: 0o600, err: "empty user or password"},
		{content: "vipd:", mode: 0o600, err: "empty user or password"},
	} {
		user, password, err := readUserFile(userFile(t, tc.content, tc.mode))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--etcd-user-file") {
				t.Errorf("%q mode %o: error %v, want one naming --etcd-user-file with %q", tc.content, tc.mode, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.content, err)
		case user != tc.user || password != tc.password:
			t.Errorf("%q: read %q/%q, want %q/%q", tc.content, user, password, tc.user, tc.password)
		}
	}
}

func TestConnectOverTLSWithClientCertificate(t *testing.T) {
	certs := etcdtest.NewCerts(t)
	srv := etcdtest.Start(t, etcdtest.WithTLS(certs))
	cfg := Config{Endpoints: srv.Endpoints(), CACert: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey, RequestTimeout: wait}
	cli := connect(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := Check(ctx, cli, cfg); err != nil {
		t.Fatalf("Check over TLS: %v", err)
	}
	if _, err := cli.Put(ctx, "/vipd/priority/VI_1/n1", "200"); err != nil {
		t.Fatalf("Put over TLS: %v", err)
	}
}

func TestConnectOverTLSFailsClearlyOnTheWrongCA(t *testing.T) {
	certs := etcdtest.NewCerts(t)
	other := etcdtest.NewCerts(t)
	srv := etcdtest.Start(t, etcdtest.WithTLS(certs))
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"a CA that did not sign the server", Config{CACert: other.CA, Cert: certs.ClientCert, Key: certs.ClientKey}, "--etcd-cacert"},
		{"a client certificate the server does not trust", Config{CACert: certs.CA, Cert: other.ClientCert, Key: other.ClientKey}, "--etcd-cert"},
		{"no client certificate", Config{CACert: certs.CA}, "--etcd-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Endpoints = srv.Endpoints()
			tc.cfg.RequestTimeout = 300 * time.Millisecond // it will fail: no need to wait
			tc.cfg.DialTimeout = wait                      // but the diagnosis handshake must not time out
			cli := connect(t, tc.cfg)                      // lazily: Connect itself succeeds
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := Check(ctx, cli, tc.cfg)
			if err == nil {
				t.Fatal("Check succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not point at %s", err, tc.want)
			}
			t.Logf("error: %v", err)
		})
	}
}

// enableAuth creates root and a vipd user allowed on /vipd/, then turns
// authentication on.
func enableAuth(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "vipd"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "vipd", "/vipd/", clientv3.GetPrefixRangeEnd("/vipd/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "vipd", "vipdpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "vipd", "vipd"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
}

func TestConnectWithUserFile(t *testing.T) {
	srv := etcdtest.Start(t)
	enableAuth(t, srv.Client())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	t.Run("right password", func(t *testing.T) {
		cli := connect(t, Config{Endpoints: srv.Endpoints(), UserFile: userFile(t, "vipd\nvipdpw\n", 0o600)})
		if err := Check(ctx, cli, Config{Endpoints: srv.Endpoints(), RequestTimeout: wait}); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if _, err := cli.Put(ctx, "/vipd/maintenance/n1", "disk swap"); err != nil {
			t.Fatalf("Put: %v", err)
		}
		// A member restart forgets its (simple) tokens: the client must
		// authenticate again by itself.
		srv.Restart()
		if _, err := cli.Put(ctx, "/vipd/maintenance/n1", "done"); err != nil {
			t.Fatalf("Put after the member restarted: %v", err)
		}
		// Outside the prefix the user has no right.
		if _, err := cli.Put(ctx, "/other", "x"); err == nil || !strings.Contains(explain(err).Error(), "--etcd-prefix") {
			t.Fatalf("Put outside the prefix: %v, want permission denied", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := Config{Endpoints: srv.Endpoints(), UserFile: userFile(t, "vipd:nope", 0o600)}
		err := Check(ctx, connect(t, cfg), cfg)
		if err == nil || !strings.Contains(err.Error(), "--etcd-user-file") {
			t.Fatalf("Check with a wrong password: %v, want an error naming --etcd-user-file", err)
		}
	})
	t.Run("no user file", func(t *testing.T) {
		cfg := Config{Endpoints: srv.Endpoints()}
		err := Check(ctx, connect(t, cfg), cfg)
		if err == nil || !strings.Contains(err.Error(), "--etcd-user-file") {
			t.Fatalf("Check without credentials: %v, want an error naming --etcd-user-file", err)
		}
	})
}

func TestConnectWithUserFileWhileEtcdIsDownAuthenticatesLater(t *testing.T) {
	srv := etcdtest.Start(t)
	enableAuth(t, srv.Client())
	srv.Stop()
	cli := connect(t, Config{Endpoints: srv.Endpoints(), UserFile: userFile(t, "vipd:vipdpw", 0o600)})
	srv.Start()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := cli.Put(ctx, "/vipd/config/scripts/chk", "{}"); err != nil {
		t.Fatalf("Put once etcd is up: %v", err)
	}
}

func TestEtcdClientLogsGoToSlogQuietly(t *testing.T) {
	var l logs
	lg := zapToSlog(slog.New(&l))
	lg.Info("connected")
	lg.Warn("retrying of unary invoker failed", zap.String("target", "x"))
	lg.Error("getToken failed", zap.Error(errors.New("boom")))
	lg.With(zap.String("lease", "7")).Error("keepalive failed")
	want := []string{
		`DEBUG etcd client: retrying of unary invoker failed target=x`,
		`WARN etcd client: getToken failed error=boom`,
		`WARN etcd client: keepalive failed lease=7`,
	}
	if got := l.String(); got != strings.Join(want, "\n") {
		t.Fatalf("logged:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	zapToSlog(nil).Error("dropped") // must not panic
}

// An etcd in its NOSPACE alarm refuses writes: the error vipd logs says
// what that means for failover and what the operator does about it.
func TestExplainNoSpace(t *testing.T) {
	srv := etcdtest.Start(t)
	admin := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := admin.Status(ctx, srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	// What etcd raises itself when its backend passes the quota.
	if _, err := pb.NewMaintenanceClient(admin.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: st.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatalf("raising NOSPACE: %v", err)
	}
	cli := connect(t, Config{Endpoints: srv.Endpoints()})
	_, err = cli.Put(ctx, "/vipd/arbiter/claim/VI_1", "x")
	if err == nil {
		t.Fatal("a put went through the NOSPACE alarm")
	}
	msg := explain(err).Error()
	for _, want := range []string{"database space exceeded", "NOSPACE", "no failover can go through etcd", "etcdctl alarm disarm"} {
		if !strings.Contains(msg, want) {
			t.Errorf("explained as %q: lacks %q", msg, want)
		}
	}
}
