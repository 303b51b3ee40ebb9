package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// shutdownGrace bounds how long Serve waits for scrapes in flight once ctx
// ends (vipd must stop within 2 s).
const shutdownGrace = 500 * time.Millisecond

// MaxScrapeConns is how many connections the metrics listener serves at once.
const MaxScrapeConns = 64

// Serve serves c on addr (HOST:PORT, as --metrics-listen) until ctx ends:
// GET /metrics in the Prometheus exposition formats, from a registry of its
// own holding c and the Go runtime and process collectors, and GET /healthz
// ("ok"). It returns an error at once when addr cannot be bound, and nil
// after a clean shutdown. Serve does not run c: start c.Run as well.
func Serve(ctx context.Context, addr string, c *Collector, log *slog.Logger, extra ...prometheus.Collector) error {
	if log == nil {
		log = slog.Default()
	}
	if addr == "" {
		return errors.New("metrics: no listen address (--metrics-listen HOST:PORT)")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: cannot listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           newMux(newRegistry(c, true, extra...), log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving metrics", "addr", ln.Addr().String())
	done := make(chan error, 1)
	// A scraper needs one connection; more than MaxScrapeConns wait in the
	// backlog, so a flood of connections costs no goroutine each.
	go func() { done <- srv.Serve(netutil.LimitListener(ln, MaxScrapeConns)) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serving on %s: %w", addr, err)
	}
	return nil
}

// newRegistry returns a registry holding c and, with runtime, the Go
// runtime and process collectors.
func newRegistry(c *Collector, runtime bool, extra ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	for _, e := range extra {
		reg.MustRegister(e) // the fleet layer's (gossip)
	}
	if runtime {
		reg.MustRegister(collectors.NewGoCollector(
			// go_gc_heap_live_bytes: the heap the last GC marked live, the
			// leak indicator (go_memstats_heap_inuse_bytes includes what
			// waits for the next GC, so it swings with the GC's phase).
			collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)}),
		), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return reg
}

// newMux routes /metrics and /healthz.
func newMux(reg *prometheus.Registry, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrintln{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// slogPrintln is promhttp's error logger over slog.
type slogPrintln struct{ log *slog.Logger }

func (l slogPrintln) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
