package gossip

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// At most warnBurst of memberlist's warnings are logged per warnWindow; the
// rest are counted, and the count is logged with the first warning of a
// later window (not before: a flood that ends is reported by the next one).
// memberlist logs one warning per packet it rejects, so garbage sent to the
// gossip port would otherwise flood the log (one line per packet).
const (
	warnBurst  = 20
	warnWindow = 10 * time.Second
)

// logBridge receives memberlist's log lines (its *log.Logger writes one
// line per call) and writes them to slog: "[WARN]" and "[ERR]"/"[ERROR]"
// lines at warn level, every other line at debug.
//
// It also watches for memberlist's "Suspect NODE has failed, no acks
// received" line: memberlist has no event for a node turning suspect, so
// this is how the fleet view learns that this node's probes of NODE fail
// (see doc.go).
type logBridge struct {
	log       *slog.Logger
	onSuspect func(node string)

	now func() time.Time // time.Now when nil

	mu  sync.Mutex
	buf []byte

	limit      sync.Mutex
	windowFrom time.Time // start of the current warning window
	inWindow   int       // warnings seen in it
	suppressed int       // of those, not logged
}

// allowWarn says whether a warning may be logged now, and how many were
// suppressed in the window that just ended (to be reported first).
func (b *logBridge) allowWarn() (ok bool, suppressed int) {
	now := time.Now
	if b.now != nil {
		now = b.now
	}
	t := now()
	b.limit.Lock()
	defer b.limit.Unlock()
	if b.windowFrom.IsZero() || t.Sub(b.windowFrom) >= warnWindow {
		suppressed = b.suppressed
		b.windowFrom, b.inWindow, b.suppressed = t, 0, 0
	}
	b.inWindow++
	if b.inWindow > warnBurst {
		b.suppressed++
		return false, suppressed
	}
	return true, suppressed
}

func (b *logBridge) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	var lines []string
	for {
		i := bytes.IndexByte(b.buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(b.buf[:i]))
		b.buf = b.buf[i+1:]
	}
	if len(b.buf) == 0 {
		b.buf = nil
	}
	b.mu.Unlock()
	for _, l := range lines {
		b.line(l)
	}
	return len(p), nil
}

const suspectPrefix, suspectSuffix = "memberlist: Suspect ", " has failed, no acks received"

func (b *logBridge) line(l string) {
	l = strings.TrimSpace(l)
	if l == "" {
		return
	}
	level := slog.LevelDebug
	msg := l
	if strings.HasPrefix(l, "[") {
		if i := strings.IndexByte(l, ']'); i > 0 {
			switch l[1:i] {
			case "WARN", "ERR", "ERROR":
				level = slog.LevelWarn
			}
			msg = strings.TrimSpace(l[i+1:])
		}
	}
	if rest, ok := strings.CutPrefix(msg, suspectPrefix); ok && b.onSuspect != nil {
		if node, ok := strings.CutSuffix(rest, suspectSuffix); ok {
			b.onSuspect(node)
		}
	}
	if level == slog.LevelWarn {
		ok, suppressed := b.allowWarn()
		if suppressed > 0 {
			b.log.Warn("memberlist: warnings suppressed (more than the limit in the window)",
				"component", "memberlist", "suppressed", suppressed, "limit", warnBurst, "window", warnWindow)
		}
		if !ok {
			return
		}
	}
	if b.log.Enabled(context.Background(), level) {
		b.log.Log(context.Background(), level, msg, "component", "memberlist")
	}
}
