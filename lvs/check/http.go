package check

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/config"
)

// MaxBody is how much of a response body HTTP_GET/SSL_GET read to compute a
// digest; a longer body fails the check. Without a digest the body is not
// read at all.
const MaxBody = 1 << 20

// userAgent is keepalived's, so servers that filter health checks by it
// keep working.
const userAgent = "KeepAliveClient"

// httpProber is HTTP_GET and SSL_GET: a GET of every url in order, each on a
// fresh connection, all of which must pass.
type httpProber struct {
	conn   conn
	host   string // Host header; "" is connect_ip:connect_port
	urls   []httpURL
	client *http.Client
}

type httpURL struct {
	path   string
	url    string // scheme://connect_ip:port/path
	digest string // lower-case hex MD5 of the body; "" for none
	codes  []int  // accepted status codes; nil is 200-299
}

func newHTTPProber(c *config.Checker, opts Options) (Prober, error) {
	if len(c.URLs) == 0 {
		return nil, errorf(c, "no url")
	}
	p := &httpProber{conn: connOf(c), host: c.VirtualHost}
	if p.host == "" {
		p.host = opts.VirtualHost
	}
	scheme := "http"
	tlsConf := &tls.Config{
		// keepalived does not verify real servers' certificates either.
		InsecureSkipVerify: true,
		ServerName:         p.host,
	}
	if c.Type == config.CheckSSL {
		scheme = "https"
	}
	for _, u := range c.URLs {
		if _, err := url.ParseRequestURI(u.Path); err != nil || !strings.HasPrefix(u.Path, "/") {
			return nil, errorf(c, "url path %q: must be an absolute path", u.Path)
		}
		d := strings.ToLower(u.Digest)
		if b, err := hex.DecodeString(d); d != "" && (err != nil || len(b) != md5.Size) {
			return nil, errorf(c, "url %s: digest %q: must be 32 hex digits", u.Path, u.Digest)
		}
		p.urls = append(p.urls, httpURL{
			path:   u.Path,
			url:    scheme + "://" + p.conn.dst.String() + u.Path,
			digest: d,
			codes:  slices.Clone(u.StatusCode),
		})
	}
	p.client = &http.Client{
		Transport: &http.Transport{
			Proxy: nil, // a health check goes straight to the real server
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return p.conn.dial(ctx, "tcp")
			},
			TLSClientConfig:        tlsConf,
			DisableKeepAlives:      true, // a fresh connection per check notices a dead server
			DisableCompression:     true, // the digest is of the body as served
			MaxResponseHeaderBytes: 64 << 10,
		},
		// keepalived does not follow redirects: a 301 is checked as a 301.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

func (p *httpProber) Probe(ctx context.Context) Outcome {
	start := time.Now()
	var last string
	for _, u := range p.urls {
		ok, why := p.get(ctx, u)
		if !ok {
			return finish(start, Outcome{Cause: "GET " + u.path + ": " + why})
		}
		last = why
	}
	if len(p.urls) > 1 {
		last = fmt.Sprintf("%d urls passed", len(p.urls))
	}
	return finish(start, Outcome{OK: true, Cause: last})
}

// get checks one url within its own connect_timeout.
func (p *httpProber) get(ctx context.Context, u httpURL) (bool, string) {
	actx, cancel := p.conn.attempt(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u.url, nil)
	if err != nil {
		return false, err.Error() // New checked the path: cannot happen
	}
	req.Host = p.host
	req.Header.Set("User-Agent", userAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		return false, cause(ctx, err, p.conn.timeout)
	}
	defer resp.Body.Close()
	if !statusOK(resp.StatusCode, u.codes) {
		return false, fmt.Sprintf("HTTP status %d not in %s", resp.StatusCode, codesString(u.codes))
	}
	if u.digest == "" {
		return true, fmt.Sprintf("HTTP status %d", resp.StatusCode)
	}
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return false, "read body: " + cause(ctx, err, p.conn.timeout)
	}
	if n > MaxBody {
		return false, fmt.Sprintf("body longer than %d bytes", MaxBody)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != u.digest {
		return false, fmt.Sprintf("digest %s != expected %s", got, u.digest)
	}
	return true, fmt.Sprintf("HTTP status %d, digest matches", resp.StatusCode)
}

func statusOK(code int, codes []int) bool {
	if len(codes) == 0 {
		return code >= 200 && code <= 299
	}
	return slices.Contains(codes, code)
}

func codesString(codes []int) string {
	if len(codes) == 0 {
		return "200-299"
	}
	return fmt.Sprint(codes)
}
