package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vipd/vipd/config"
)

// defaultHelo is keepalived's HELO name, used when the host name is unknown.
const defaultHelo = "smtpchecker.keepalived.org"

// Limits of an SMTP reply (RFC 5321 4.5.3.1.5 allows 512 octets a line).
const (
	smtpMaxLine  = 1024
	smtpMaxLines = 64
)

// smtpProber is SMTP_CHECK: a 220 greeting, then HELO answered by 250, then
// QUIT.
type smtpProber struct {
	conn conn
	helo string
}

func newSMTPProber(c *config.Checker) (Prober, error) {
	helo := c.HeloName
	if helo == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			helo = h
		} else {
			helo = defaultHelo
		}
	}
	if strings.ContainsAny(helo, " \t\r\n") {
		return nil, errorf(c, "helo_name %q: must be one word", helo)
	}
	return &smtpProber{conn: connOf(c), helo: helo}, nil
}

func (p *smtpProber) Probe(ctx context.Context) Outcome {
	start := time.Now()
	actx, cancel := p.conn.attempt(ctx)
	defer cancel()
	nc, err := p.conn.dial(actx, "tcp")
	if err != nil {
		return finish(start, Outcome{Cause: cause(ctx, err, p.conn.timeout)})
	}
	defer nc.Close()
	defer withDeadline(actx, nc)()
	fail := func(step string, err error) Outcome {
		why := cause(ctx, err, p.conn.timeout)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			why = "connection closed"
		}
		return finish(start, Outcome{Cause: step + ": " + why})
	}

	br := bufio.NewReaderSize(nc, smtpMaxLine)
	r, err := readSMTPReply(br)
	if err != nil {
		return fail("greeting", err)
	}
	if r.code != 220 {
		return finish(start, Outcome{Cause: "greeting " + r.String() + ", want 220"})
	}
	if _, err := io.WriteString(nc, "HELO "+p.helo+"\r\n"); err != nil {
		return fail("HELO", err)
	}
	if r, err = readSMTPReply(br); err != nil {
		return fail("HELO", err)
	}
	if r.code != 250 {
		return finish(start, Outcome{Cause: "HELO answered " + r.String() + ", want 250"})
	}
	// Say goodbye; the server's answer to QUIT does not matter (keepalived
	// reads one line and ignores it).
	if _, err := io.WriteString(nc, "QUIT\r\n"); err == nil {
		_, _ = readSMTPReply(br)
	}
	return finish(start, Outcome{OK: true, Cause: "HELO answered 250"})
}

// smtpReply is one SMTP reply, possibly of several lines ("250-a", "250 b").
type smtpReply struct {
	code  int
	lines []string // the text of each line, after the code
}

// String is the code and the first line's text, cut short for a log line.
func (r smtpReply) String() string {
	s := fmt.Sprint(r.code)
	if len(r.lines) > 0 && r.lines[0] != "" {
		s += " " + r.lines[0]
	}
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// readSMTPReply reads one reply: lines "ddd-text" continue it, and the line
// "ddd text" (or "ddd") ends it; every line must carry the same code. Lines
// may end in CRLF or LF. It reads at most smtpMaxLines lines of smtpMaxLine
// octets.
func readSMTPReply(br *bufio.Reader) (smtpReply, error) {
	var r smtpReply
	for n := 0; ; n++ {
		if n == smtpMaxLines {
			return smtpReply{}, fmt.Errorf("reply longer than %d lines", smtpMaxLines)
		}
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > smtpMaxLine {
			return smtpReply{}, fmt.Errorf("reply line longer than %d octets", smtpMaxLine)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && (len(line) > 0 || n > 0) {
				err = io.ErrUnexpectedEOF
			}
			return smtpReply{}, err
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		code, more, text, err := parseSMTPLine(s)
		if err != nil {
			return smtpReply{}, err
		}
		if n > 0 && code != r.code {
			return smtpReply{}, fmt.Errorf("reply code %d changes to %d within a reply", r.code, code)
		}
		r.code = code
		r.lines = append(r.lines, text)
		if !more {
			return r, nil
		}
	}
}

// parseSMTPLine splits "250-text" into 250, true (more lines follow), "text".
func parseSMTPLine(s string) (code int, more bool, text string, err error) {
	if len(s) < 3 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) || s[0] == '0' {
		return 0, false, "", fmt.Errorf("malformed reply line %q", clip(s))
	}
	code = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	if len(s) == 3 {
		return code, false, "", nil
	}
	switch s[3] {
	case ' ':
		return code, false, s[4:], nil
	case '-':
		return code, true, s[4:], nil
	}
	return 0, false, "", fmt.Errorf("malformed reply line %q", clip(s))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
