package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// controlRequests are seeds of FuzzControlRequest: every route as the CLI
// sends it, and a few a hostile or broken client would. More in
// testdata/fuzz/FuzzControlRequest.
var controlRequests = []string{
	"GET /v1/status HTTP/1.1\r\nHost: vipd\r\n\r\n",
	"GET /v1/fleet HTTP/1.1\r\nHost: vipd\r\n\r\n",
	"GET /v1/lvs HTTP/1.1\r\nHost: vipd\r\n\r\n",
	"POST /v1/reload HTTP/1.1\r\nHost: vipd\r\nContent-Length: 0\r\n\r\n",
	"POST /v1/upgrade HTTP/1.1\r\nHost: vipd\r\nContent-Length: 0\r\n\r\n",
	"POST /v1/maint HTTP/1.1\r\nHost: vipd\r\nContent-Type: application/json\r\nContent-Length: 43\r\n\r\n{\"on\":true,\"instance\":\"VI_1\",\"reason\":\"x\"}\n",
	"POST /v1/priority HTTP/1.1\r\nHost: vipd\r\nContent-Length: 36\r\n\r\n{\"instance\":\"VI_1\",\"priority\":42}\n",
	"POST /v1/join HTTP/1.1\r\nHost: vipd\r\nContent-Length: 36\r\n\r\n{\"members\":[\"10.0.0.1:7946\"]}\n",
	"POST /v1/keys HTTP/1.1\r\nHost: vipd\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"op\":\"list\"}   \r\n0\r\n\r\n",
	"POST /v1/maint HTTP/1.1\r\nHost: vipd\r\nContent-Length: 10\r\n\r\n{\"on\":tru",
	"POST /v1/maint HTTP/1.1\r\nHost: vipd\r\nContent-Length: 13\r\n\r\n{\"bogus\":1}\n",
	"DELETE /v1/status HTTP/1.1\r\nHost: vipd\r\n\r\n",
	"GET /v1/../v1/status?x=%zz HTTP/1.0\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: vipd\r\n\r\n",
	"CONNECT vipd:80 HTTP/1.1\r\nHost: vipd\r\n\r\n",
}

// FuzzControlRequest feeds arbitrary bytes to the control socket's request
// decoding: net/http's request parser (as the server reads a connection),
// then the server's handler (routes, body limit, JSON decoding) over an
// agent that accepts everything. Whatever the bytes, no panic, and every
// answer is one of the documented codes with a JSON body; an error answer
// says what is wrong.
func FuzzControlRequest(f *testing.F) {
	for _, s := range controlRequests {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return // net/http answers 400 itself and closes
		}
		st := sampleStatus()
		h := NewServer(&fakeAgent{status: st}, nil).Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, data, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
	})
}

// checkAnswer is what every answer of the control socket's handler must
// be: a documented code, JSON, and an error message unless 200.
func checkAnswer(t *testing.T, req []byte, code int, contentType string, body []byte) {
	t.Helper()
	switch code {
	case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
	default:
		t.Fatalf("%q: answered %d %q", req, code, body)
	}
	if contentType != "application/json" {
		t.Fatalf("%q: answered %d with Content-Type %q: %q", req, code, contentType, body)
	}
	if !json.Valid(body) {
		t.Fatalf("%q: answer is not JSON: %q", req, body)
	}
	if code != http.StatusOK {
		var e errorBody
		if err := json.Unmarshal(body, &e); err != nil || strings.TrimSpace(e.Error) == "" {
			t.Fatalf("%q: error answer %d without an error: %q", req, code, body)
		}
	}
}

// The seeds go through a real socket too, with the same answers as the
// handler alone, and the server keeps serving.
func TestControlRequestSeedsOverTheSocket(t *testing.T) {
	socket := startServer(t, &fakeAgent{status: sampleStatus()})
	for _, s := range controlRequests {
		if _, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s))); err != nil {
			continue // net/http's own 400
		}
		c := dial(t, socket)
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
		c.(*net.UnixConn).CloseWrite() // half a body ends here
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Close()
		checkAnswer(t, []byte(s), resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if code, _ := rawGet(t, socket, http.MethodGet, "/v1/status"); code != http.StatusOK {
		t.Errorf("status after the seeds: %d", code)
	}
}
