package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// startLimited serves a with lowered limits on a fresh socket until the test
// ends.
func startLimited(t *testing.T, a Agent, l limits) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vipd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(a, nil)
	s.limits = l
	ready := make(chan struct{})
	s.listening = func() { close(ready) }
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, path) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("Serve = %v before listening", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return path
}

func testLimits() limits {
	return limits{conns: MaxConns, headerBytes: MaxHeaderBytes, readHeader: 300 * time.Millisecond,
		readBody: 300 * time.Millisecond, idle: 300 * time.Millisecond}
}

func dial(t *testing.T, socket string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c (after whatever answer)
// within d.
func closedWithin(c net.Conn, d time.Duration) (string, bool) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return string(b), false
	}
	return string(b), true // EOF, or reset: the server closed with our data unread
}

func TestSilentConnectionIsClosedAfterTheHeaderTimeout(t *testing.T) {
	socket := startLimited(t, &fakeAgent{}, testLimits())
	c := dial(t, socket)
	if _, ok := closedWithin(c, 5*time.Second); !ok {
		t.Fatal("a connection that sends nothing is still open after 5 s (header timeout 300 ms)")
	}
}

func TestHalfABodyIsAnsweredAndClosedAfterTheBodyTimeout(t *testing.T) {
	fa := &fakeAgent{}
	socket := startLimited(t, fa, testLimits())
	c := dial(t, socket)
	fmt.Fprint(c, "POST /v1/maint HTTP/1.1\r\nHost: vipd\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"on\":")
	got, ok := closedWithin(c, 5*time.Second)
	if !ok {
		t.Fatalf("a connection that sends half a body is still open after 5 s (body timeout 300 ms); read %q", got)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 400") || !strings.Contains(got, "body not received within 300ms") {
		t.Errorf("answer to half a body:\n%s", got)
	}
	if len(fa.maints) != 0 {
		t.Errorf("half a request reached the agent: %+v", fa.maints)
	}
}

func TestHugeHeaderIsRefused(t *testing.T) {
	socket := startLimited(t, &fakeAgent{}, testLimits())
	c := dial(t, socket)
	go func() {
		// The server may close before reading it all: errors are expected.
		fmt.Fprintf(c, "GET /v1/status?%s HTTP/1.1\r\nHost: vipd\r\n\r\n", strings.Repeat("a", 1<<20))
	}()
	got, ok := closedWithin(c, 5*time.Second)
	if !ok {
		t.Fatal("a connection sending a 1 MiB request line is still open after 5 s")
	}
	if got != "" && !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("answer to a 1 MiB request line: %.200q, want 431 (or a reset)", got)
	}
}

func TestHugeBodyIsRefusedWithItsLimit(t *testing.T) {
	fa := &fakeAgent{}
	socket := startLimited(t, fa, testLimits())
	body := `{"reason":"` + strings.Repeat("x", MaxRequestBody) + `"}`
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Post("http://vipd/v1/maint", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), fmt.Sprintf("body over %d bytes", MaxRequestBody)) {
		t.Errorf("POST of a %d byte body = %d %s", len(body), resp.StatusCode, b)
	}
	if len(fa.maints) != 0 {
		t.Errorf("an oversized request reached the agent: %+v", fa.maints)
	}
}

func TestIdleKeptAliveConnectionIsClosed(t *testing.T) {
	socket := startLimited(t, &fakeAgent{}, testLimits())
	c := dial(t, socket)
	fmt.Fprint(c, "GET /v1/status HTTP/1.1\r\nHost: vipd\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle kept-alive connection: %v, want closed by the server (idle timeout 300 ms)", err)
	}
}

// slowAgent's Reload takes a while and reports whether its context ended.
type slowAgent struct {
	fakeAgent
	took time.Duration
	err  chan error
}

func (a *slowAgent) Reload(ctx context.Context) error {
	select {
	case <-time.After(a.took):
		a.err <- nil
	case <-ctx.Done():
		a.err <- ctx.Err()
	}
	return nil
}

func TestALongHandlerOutlivesTheBodyTimeout(t *testing.T) {
	a := &slowAgent{took: time.Second, err: make(chan error, 1)}
	socket := startLimited(t, a, testLimits())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := NewClient(socket).Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-a.err; err != nil {
		t.Errorf("a 1 s reload's context ended early (body timeout 300 ms): %v", err)
	}
}

// A flood of connections beyond MaxConns waits rather than costing a
// goroutine each, and a real request is answered once the silent ones are
// closed by their header timeout.
func TestConnectionsBeyondTheLimitWait(t *testing.T) {
	l := testLimits()
	l.conns = 4
	l.readHeader = 200 * time.Millisecond
	socket := startLimited(t, &fakeAgent{status: sampleStatus()}, l)
	base := runtime.NumGoroutine()
	var silent []net.Conn
	for range 40 {
		silent = append(silent, dial(t, socket))
	}
	time.Sleep(100 * time.Millisecond)
	// Goroutines of this test: none per connection. The server's: one per
	// served connection (4), plus net/http's few.
	if n := runtime.NumGoroutine() - base; n > 4*2+8 {
		t.Errorf("%d goroutines more with 40 silent connections and a limit of 4", n)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := NewClient(socket).Status(ctx)
	if err != nil || st.Node != "lb1" {
		t.Fatalf("status behind 40 silent connections: %+v, %v", st, err)
	}
	// 40 silent connections, 4 at a time, 200 ms each: about 2 s; the
	// real request waited its turn rather than being dropped.
	t.Logf("status answered after %v behind 40 silent connections (limit 4, header timeout 200 ms)", time.Since(start).Round(time.Millisecond))
	var wg sync.WaitGroup
	for _, c := range silent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := closedWithin(c, 60*time.Second); !ok {
				t.Error("a silent connection was never closed")
			}
		}()
	}
	wg.Wait()
}

// OPTIONS * is vipd's to answer (a JSON 404), not net/http's empty 200.
func TestOptionsAsteriskIsAJSONNotFound(t *testing.T) {
	socket := startLimited(t, &fakeAgent{}, testLimits())
	c := dial(t, socket)
	fmt.Fprintf(c, "OPTIONS * HTTP/1.1\r\nHost: vipd\r\nConnection: close\r\n\r\n")
	got, ok := closedWithin(c, 5*time.Second)
	if !ok {
		t.Fatal("no answer to OPTIONS * within 5 s")
	}
	if !strings.HasPrefix(got, "HTTP/1.1 404") || !strings.Contains(got, "application/json") {
		t.Errorf("answer to OPTIONS *: %.300q, want a JSON 404", got)
	}
}
