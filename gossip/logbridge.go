package gossip

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
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

	mu  sync.Mutex
	buf []byte
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
	if b.log.Enabled(context.Background(), level) {
		b.log.Log(context.Background(), level, msg, "component", "memberlist")
	}
}
