package check

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
)

// httpServer serves h on loopback; it counts the connections it accepts.
func httpServer(t *testing.T, h http.HandlerFunc) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).AddrPort(), &conns
}

func httpChecker(dst netip.AddrPort, urls ...config.URL) *config.Checker {
	c := checkerTo(config.CheckHTTP, dst, 2*time.Second)
	c.URLs = urls
	return c
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestHTTPGetChecksStatusAgainstStatusCodeOr2xx(t *testing.T) {
	ok, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) {})
	failing, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	redirect, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })

	expect(t, probeOnce(t, httpChecker(ok, config.URL{Path: "/"}), Options{}), true, "HTTP status 200")
	expect(t, probeOnce(t, httpChecker(failing, config.URL{Path: "/health"}), Options{}), false, "GET /health: HTTP status 500 not in 200-299")
	expect(t, probeOnce(t, httpChecker(failing, config.URL{Path: "/", StatusCode: []int{500}}), Options{}), true, "HTTP status 500")
	expect(t, probeOnce(t, httpChecker(ok, config.URL{Path: "/", StatusCode: []int{301, 302}}), Options{}), false, "HTTP status 200 not in [301 302]")
	// keepalived does not follow redirects: a 302 is judged as a 302.
	expect(t, probeOnce(t, httpChecker(redirect, config.URL{Path: "/"}), Options{}), false, "HTTP status 302 not in 200-299")
	expect(t, probeOnce(t, httpChecker(redirect, config.URL{Path: "/", StatusCode: []int{302}}), Options{}), true, "HTTP status 302")
}

func TestHTTPGetFailsUnlessEveryURLPasses(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	dst, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Path == "/bad" {
			w.WriteHeader(503)
		}
	})
	expect(t, probeOnce(t, httpChecker(dst, config.URL{Path: "/a?x=1"}, config.URL{Path: "/b"}), Options{}), true, "2 urls passed")
	expect(t, probeOnce(t, httpChecker(dst, config.URL{Path: "/a"}, config.URL{Path: "/bad"}, config.URL{Path: "/c"}), Options{}), false, "GET /bad: HTTP status 503")
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(paths, " "); got != "/a?x=1 /b /a /bad" {
		t.Errorf("requests %q, want the urls in order, stopping at the first failure", got)
	}
}

func TestHTTPGetComparesTheBodyDigest(t *testing.T) {
	var body atomic.Value
	body.Store("hello")
	dst, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body.Load().(string))) })
	p, err := New(httpChecker(dst, config.URL{Path: "/", Digest: strings.ToUpper(md5hex("hello"))}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, p.Probe(t.Context()), true, "digest matches")
	body.Store("hello, changed")
	expect(t, p.Probe(t.Context()), false, "GET /: digest "+md5hex("hello, changed")+" != expected "+md5hex("hello"))
}

func TestHTTPGetRefusesABodyLongerThanMaxBodyForADigest(t *testing.T) {
	big := strings.Repeat("x", MaxBody+1)
	dst, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) })
	expect(t, probeOnce(t, httpChecker(dst, config.URL{Path: "/", Digest: md5hex(big)}), Options{}), false, "body longer than 1048576 bytes")
	expect(t, probeOnce(t, httpChecker(dst, config.URL{Path: "/"}), Options{}), true, "HTTP status 200")
}

func TestHTTPGetSendsVirtualhostAndUsesAFreshConnectionEachTime(t *testing.T) {
	hosts := make(chan string, 10)
	dst, conns := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host + " " + r.UserAgent()
	})
	c := httpChecker(dst, config.URL{Path: "/"})
	p, err := New(c, Options{VirtualHost: "vs.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, p.Probe(t.Context()), true, "200")
	expect(t, p.Probe(t.Context()), true, "200")
	if got := <-hosts; got != "vs.example.com KeepAliveClient" {
		t.Errorf("Host and User-Agent %q, want the virtual server's virtualhost and keepalived's agent", got)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("two checks used %d connections, want 2 (no keep-alive)", n)
	}
	c.VirtualHost = "rs.example.com"
	probeOnce(t, c, Options{VirtualHost: "vs.example.com"})
	<-hosts
	if got := <-hosts; got != "rs.example.com KeepAliveClient" {
		t.Errorf("Host %q, want the checker's own virtualhost first", got)
	}
	c.VirtualHost = ""
	probeOnce(t, c, Options{})
	if got := <-hosts; got != dst.String()+" KeepAliveClient" {
		t.Errorf("Host %q, want connect_ip:port without any virtualhost", got)
	}
}

func TestHTTPGetTimesOutOnAServerThatNeverAnswers(t *testing.T) {
	dst, _ := silentServer(t)
	c := httpChecker(dst, config.URL{Path: "/"})
	c.ConnectTimeout = config.Duration(200 * time.Millisecond)
	expect(t, probeOnce(t, c, Options{}), false, "GET /: timeout after 200ms")
}

// selfSigned makes a certificate for "rs.example.com", as an operator's
// real server might have.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rs.example.com"},
		DNSNames:     []string{"rs.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestSSLGetAcceptsASelfSignedCertificateAndSendsSNI(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("secure"))
	}))
	sni := make(chan string, 10)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{selfSigned(t)},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			sni <- hello.ServerName
			return nil, nil
		},
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain HTTP attempt below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dst := srv.Listener.Addr().(*net.TCPAddr).AddrPort()

	c := httpChecker(dst, config.URL{Path: "/", Digest: md5hex("secure")})
	c.Type = config.CheckSSL
	c.VirtualHost = "rs.example.com"
	expect(t, probeOnce(t, c, Options{}), true, "digest matches")
	if got := <-sni; got != "rs.example.com" {
		t.Errorf("SNI %q, want the virtualhost", got)
	}
	// Plain HTTP to a TLS server is a failed check, not a success.
	c.Type = config.CheckHTTP
	expect(t, probeOnce(t, c, Options{}), false, "HTTP status 400")
	// And TLS to a plain HTTP server fails the handshake.
	plain, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c = httpChecker(plain, config.URL{Path: "/"})
	c.Type = config.CheckSSL
	expect(t, probeOnce(t, c, Options{}), false, "GET /: http: server gave HTTP response to HTTPS client")
}
