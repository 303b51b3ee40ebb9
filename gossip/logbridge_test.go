package gossip

import (
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestMemberlistLogsGoToSlogAtTheirLevel(t *testing.T) {
	var rec logRecorder
	var suspects []string
	lg := slog.New(slog.NewTextHandler(recorderWriter{&rec}, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	ml := log.New(&logBridge{log: lg, onSuspect: func(n string) { suspects = append(suspects, n) }}, "", 0)
	ml.Printf("[DEBUG] memberlist: Initiating push/pull sync with: node-b 127.0.0.1:7946")
	ml.Printf("[INFO] memberlist: Suspect node-c has failed, no acks received")
	ml.Printf("[WARN] memberlist: Refuting a suspect message (from: node-b)")
	ml.Printf("[ERR] memberlist: Push/Pull with node-b failed: i/o timeout")
	ml.Printf("[ERROR] memberlist: Failed to compress payload")
	ml.Printf("a line without a level")

	want := []string{
		`level=DEBUG msg="memberlist: Initiating push/pull sync with: node-b 127.0.0.1:7946" component=memberlist`,
		`level=DEBUG msg="memberlist: Suspect node-c has failed, no acks received" component=memberlist`,
		`level=WARN msg="memberlist: Refuting a suspect message (from: node-b)" component=memberlist`,
		`level=WARN msg="memberlist: Push/Pull with node-b failed: i/o timeout" component=memberlist`,
		`level=WARN msg="memberlist: Failed to compress payload" component=memberlist`,
		`level=DEBUG msg="a line without a level" component=memberlist`,
	}
	if got := rec.String(); got != strings.Join(want, "\n") {
		t.Errorf("logged:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(suspects) != 1 || suspects[0] != "node-c" {
		t.Errorf("suspects %v, want [node-c]", suspects)
	}
}

func TestLogBridgeJoinsPartialWrites(t *testing.T) {
	var rec logRecorder
	b := &logBridge{log: rec.logger()}
	b.Write([]byte("[WARN] memberlist: one "))
	b.Write([]byte("line\n[WARN] memberlist: two\n"))
	if rec.count("WARN", "one line") != 1 || rec.count("WARN", "two") != 1 {
		t.Errorf("logged:\n%s", rec.String())
	}
}

func TestLogBridgeLimitsWarningsAndCountsTheRest(t *testing.T) {
	var rec logRecorder
	now := time.Unix(1000, 0)
	var suspects int
	b := &logBridge{log: rec.logger(), now: func() time.Time { return now }, onSuspect: func(string) { suspects++ }}
	ml := log.New(b, "", 0)
	for i := range 100 {
		ml.Printf("[WARN] memberlist: Got invalid checksum for UDP packet: %d", i)
	}
	ml.Printf("[INFO] memberlist: Suspect node-c has failed, no acks received")
	if n := rec.count("WARN", "invalid checksum"); n != warnBurst {
		t.Errorf("%d warnings logged in one window, want %d", n, warnBurst)
	}
	if suspects != 1 {
		t.Errorf("a suspect line after the limit was not seen (%d)", suspects)
	}
	now = now.Add(warnWindow - time.Millisecond)
	ml.Printf("[WARN] memberlist: Got invalid checksum for UDP packet: late")
	if rec.count("WARN", "suppressed") != 0 || rec.count("WARN", "late") != 0 {
		t.Errorf("the window ended early:\n%s", rec.String())
	}
	now = now.Add(time.Millisecond)
	ml.Printf("[WARN] memberlist: Got invalid checksum for UDP packet: next")
	if rec.count("WARN", "suppressed=81") != 1 || rec.count("WARN", "next") != 1 {
		t.Errorf("next window: want the count of the 81 suppressed, then the line:\n%s", rec.String())
	}
}
