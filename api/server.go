package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/vipd/vipd/lvs"
)

// DefaultSocketPath is where `vipd run` listens and the CLI connects when
// neither --socket nor VIPD_SOCKET says otherwise.
const DefaultSocketPath = "/run/vipd/vipd.sock"

// Routes of the control socket.
const (
	pathStatus   = "/v1/status"
	pathReload   = "/v1/reload"
	pathMaint    = "/v1/maint"
	pathPriority = "/v1/priority"
	pathUpgrade  = "/v1/upgrade"
	pathFleet    = "/v1/fleet"
	pathJoin     = "/v1/join"
	pathKeys     = "/v1/keys"
	pathLVS      = "/v1/lvs"
)

// shutdownGrace bounds how long Serve waits for in-flight requests once its
// context is done (DESIGN.md 3.1: shutdown completes within 2 s).
const shutdownGrace = 500 * time.Millisecond

// Limits of the control socket, so that a flood of connections or requests
// (a monitoring loop gone wrong, a client that connects and says nothing,
// half a request, a huge request line) costs bounded memory and never
// starves the daemon: the CLI sends its whole request at once and reads one
// answer, far inside every one of them.
const (
	// MaxConns is how many connections are served at once; more wait in
	// the socket's listen backlog until one ends. A connection costs a
	// goroutine and its buffers, tens of KiB: a few MiB for all of them.
	MaxConns = 512
	// MaxHeaderBytes bounds a request's line and header (net/http's default
	// is 1 MiB); a longer one is answered 431 and the connection closed.
	MaxHeaderBytes = 16 << 10
	// MaxRequestBody bounds a request's body; a longer one is answered 400.
	MaxRequestBody = 64 << 10
	// ReadHeaderTimeout is how long a connection has to send its request
	// line and header, ReadBodyTimeout how long it then has for the body,
	// and IdleTimeout how long a kept-alive connection may wait for its
	// next request; then it is closed. The handler itself has no deadline
	// (a reload or a fleet-wide keys operation may take longer), and its
	// context still ends when the client goes away.
	ReadHeaderTimeout = 5 * time.Second
	ReadBodyTimeout   = 10 * time.Second
	IdleTimeout       = 10 * time.Second
)

// limits are the Server's limits (the constants above; tests lower them).
type limits struct {
	conns                      int
	headerBytes                int
	readHeader, readBody, idle time.Duration
}

// Server serves the control socket for one Agent.
type Server struct {
	agent  Agent
	log    *slog.Logger
	limits limits
	// listening, when set, is called once the socket is in place (tests).
	listening func()
}

// NewServer returns a Server answering from a. A nil log discards.
func NewServer(a Agent, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{agent: a, log: log, limits: limits{
		conns: MaxConns, headerBytes: MaxHeaderBytes,
		readHeader: ReadHeaderTimeout, readBody: ReadBodyTimeout, idle: IdleTimeout,
	}}
}

// Handler returns the HTTP routes of the control socket:
//
//	GET  /v1/status  -> 200 Status
//	POST /v1/reload  -> 200 {"ok":true} | 400 {"error":"FILE:LINE: ..."}
//	POST /v1/maint    MaintRequest    -> 200 {"ok":true} | 400 {"error"}
//	POST /v1/priority PriorityRequest -> 200 {"ok":true} | 400 {"error"}
//	POST /v1/upgrade  -> 200 UpgradeResult, then the daemon re-executes | 400 {"error"}
//	GET  /v1/fleet    -> 200 Fleet | 400 {"error"} (gossip off)
//	POST /v1/join     JoinRequest -> 200 JoinResult | 400 {"error"}
//	POST /v1/keys     KeyOp       -> 200 KeysResult (every node's answer) | 400 {"error"} (refused, nothing sent)
//	GET  /v1/lvs      -> 200 LVS
//
// Every request's body is read first, at most MaxRequestBody bytes within
// the body timeout, or answered 400.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(pathStatus, only(http.MethodGet, s.handleStatus))
	mux.HandleFunc(pathReload, only(http.MethodPost, s.handleReload))
	mux.HandleFunc(pathMaint, only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var req MaintRequest
		if !readJSON(w, r, &req) {
			return
		}
		answer(w, s.agent.Maintenance(r.Context(), req))
	}))
	mux.HandleFunc(pathPriority, only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var req PriorityRequest
		if !readJSON(w, r, &req) {
			return
		}
		answer(w, s.agent.OverridePriority(r.Context(), req))
	}))
	mux.HandleFunc(pathUpgrade, only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		res, err := s.agent.Upgrade(r.Context())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc(pathFleet, only(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		f, err := s.agent.Fleet(r.Context())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, normalizeFleet(f))
	}))
	mux.HandleFunc(pathJoin, only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var req JoinRequest
		if !readJSON(w, r, &req) {
			return
		}
		res, err := s.agent.Join(r.Context(), req)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc(pathKeys, only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var op KeyOp
		if !readJSON(w, r, &op) {
			return
		}
		res, err := s.agent.Keys(r.Context(), op)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		if res.Nodes == nil {
			res.Nodes = []KeyNode{}
		}
		writeJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc(pathLVS, only(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		l, err := s.agent.LVS(r.Context())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		if l.VirtualServers == nil {
			l.VirtualServers = []lvs.VirtualServerStatus{}
		}
		writeJSON(w, http.StatusOK, l)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)})
	})
	return s.readBody(onlyRoutes(mux))
}

// onlyRoutes answers 404 in JSON, before mux sees them, the requests
// http.ServeMux would answer itself in plain text or with a redirect: a
// path that is not clean ("/v1/../v1/status", "/v1//status"), not absolute
// ("*"), and CONNECT.
func onlyRoutes(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if r.Method == http.MethodConnect || !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no such endpoint: %s %s", r.Method, p)})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// readBody reads the whole request body, at most MaxRequestBody bytes
// within the body timeout, before h runs: a slow or endless body cannot
// hold a connection. The read deadline is cleared afterwards, so that h
// runs as long as it needs (http.Server's ReadTimeout would also end the
// handler's context when it expires).
func (s *Server) readBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		deadline := s.limits.readBody > 0 && rc.SetReadDeadline(time.Now().Add(s.limits.readBody)) == nil
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
		if err != nil {
			// The deadline stays: net/http reads what is left of the
			// body before closing the connection, and that too must end.
			msg := "malformed request: " + err.Error()
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				msg = fmt.Sprintf("malformed request: body over %d bytes", MaxRequestBody)
			} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				msg = fmt.Sprintf("malformed request: body not received within %s", s.limits.readBody)
			}
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusBadRequest, errorBody{Error: msg})
			return
		}
		if deadline {
			_ = rc.SetReadDeadline(time.Time{})
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	})
}

// Serve listens on socketPath (mode 0600) and serves until ctx is done, then
// removes the socket file. It creates the parent directory if needed and
// replaces a stale socket left by a crashed process, but refuses to start
// when another process answers on socketPath.
func (s *Server) Serve(ctx context.Context, socketPath string) error {
	ln, err := listenUnix(socketPath)
	if err != nil {
		return err
	}
	defer func() {
		ln.Close()
		if err := os.Remove(socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("control socket not removed", "socket", socketPath, "err", err)
		}
	}()

	srv := s.httpServer(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(netutil.LimitListener(ln, s.limits.conns)) }()
	s.log.Info("control socket listening", "socket", socketPath)
	if s.listening != nil {
		s.listening()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("control socket %s: %w", socketPath, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// httpServer is the http.Server of the control socket, with its limits.
func (s *Server) httpServer(ctx context.Context) *http.Server {
	return &http.Server{
		Handler: s.Handler(),
		// OPTIONS * goes to the handler too (a JSON 404), not net/http's own 200.
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            s.limits.readHeader,
		IdleTimeout:                  s.limits.idle,
		MaxHeaderBytes:               s.limits.headerBytes,
		ErrorLog:                     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:                  func(net.Listener) context.Context { return ctx },
	}
}

// listenUnix prepares socketPath and listens on it. The socket is bound
// under a temporary name, restricted to 0600 and then renamed into place,
// so it is never reachable with looser permissions.
func listenUnix(socketPath string) (*net.UnixListener, error) {
	if socketPath == "" {
		return nil, errors.New("control socket: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: create directory: %w", socketPath, err)
	}
	if err := removeStaleSocket(socketPath); err != nil {
		return nil, err
	}
	tmp := socketPath + ".tmp" + strconv.Itoa(os.Getpid())
	_ = os.Remove(tmp) // left by an earlier crash of this very pid: unlikely, harmless
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", socketPath, err)
	}
	// We remove the file ourselves, by its final name.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", socketPath, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, socketPath); err != nil {
		return fail(err)
	}
	return ln, nil
}

// removeStaleSocket removes socketPath if it is a socket nobody answers on.
// It refuses to touch anything else: a live vipd, or a file that is not a
// socket.
func removeStaleSocket(socketPath string) error {
	fi, err := os.Lstat(socketPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", socketPath, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: exists and is not a socket; refusing to replace it", socketPath)
	}
	conn, err := net.DialTimeout("unix", socketPath, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: another vipd is running there (use --socket to give this one its own path)", socketPath)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: cannot tell whether it is in use: %w", socketPath, err)
	}
	if err := os.Remove(socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket %s: remove stale socket: %w", socketPath, err)
	}
	return nil
}

// only answers 405 (in JSON, like every answer) to other methods than m.
func only(m string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m {
			w.Header().Set("Allow", m)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m)})
			return
		}
		h(w, r)
	}
}

type errorBody struct {
	Error string `json:"error"`
}

type okBody struct {
	OK bool `json:"ok"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, normalizeStatus(s.agent.Status()))
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	// The agent logs the reload and its outcome (a rejection, or a client
	// that stopped waiting while the reload went on): not again here.
	if err := s.agent.Reload(r.Context()); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

// readJSON decodes a request body (at most MaxRequestBody bytes) into v,
// answering 400 itself when it cannot.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "malformed request: " + err.Error()})
		return false
	}
	return true
}

// answer writes {"ok":true}, or the error as 400.
func answer(w http.ResponseWriter, err error) {
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

// normalizeStatus makes list fields encode as [] rather than null, as the
// contract promises arrays.
func normalizeStatus(st Status) Status {
	out := st // every field passes: only the instance list is normalized
	out.Instances = make([]InstanceStatus, len(st.Instances))
	for i, in := range st.Instances {
		if in.VIPs == nil {
			in.VIPs = []string{}
		}
		out.Instances[i] = in
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// normalizeFleet gives empty lists as [] (the contract's shape), never null.
func normalizeFleet(f Fleet) Fleet {
	if f.Nodes == nil {
		f.Nodes = []FleetNode{}
	}
	if f.Peers == nil {
		f.Peers = []Peer{}
	}
	if f.Warnings == nil {
		f.Warnings = []Warning{}
	}
	for i := range f.Nodes {
		if f.Nodes[i].Instances == nil {
			f.Nodes[i].Instances = []FleetInstance{}
		}
		for j := range f.Nodes[i].Instances {
			if f.Nodes[i].Instances[j].VIPs == nil {
				f.Nodes[i].Instances[j].VIPs = []string{}
			}
		}
	}
	for i := range f.Warnings {
		if f.Warnings[i].Nodes == nil {
			f.Warnings[i].Nodes = []string{}
		}
	}
	return f
}
