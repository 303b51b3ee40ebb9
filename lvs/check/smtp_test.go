package check

import (
	"bufio"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/config"
)

// smtpServer greets each connection with greeting, answers the first line
// it reads with heloReply (or closes the connection after reading it when
// heloReply is empty), then answers QUIT. The lines it reads go to the returned channel.
func smtpServer(t *testing.T, greeting, heloReply string) (netip.AddrPort, <-chan string) {
	t.Helper()
	l, dst := listenTCP(t)
	lines := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			c.Write([]byte(greeting))
			for _, reply := range []string{heloReply, "221 bye\r\n"} {
				line, err := br.ReadString('\n')
				if err != nil {
					break
				}
				lines <- line
				if reply == "" {
					break // close having read the line: the client sees EOF, not a reset
				}
				c.Write([]byte(reply))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return dst, lines
}

func smtpChecker(dst netip.AddrPort, helo string) *config.Checker {
	c := checkerTo(config.CheckSMTP, dst, 2*time.Second)
	c.HeloName = helo
	return c
}

func TestSMTPCheckGreetsSaysHeloAndQuits(t *testing.T) {
	dst, lines := smtpServer(t, "220-mail.example.com ESMTP\r\n220 ready\r\n", "250-mail.example.com\r\n250 pleased\r\n")
	expect(t, probeOnce(t, smtpChecker(dst, "lb1.example.com"), Options{}), true, "HELO answered 250")
	if got := []string{<-lines, <-lines}; !cmp.Equal(got, []string{"HELO lb1.example.com\r\n", "QUIT\r\n"}) {
		t.Errorf("server read %q, want HELO with helo_name then QUIT", got)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	expect(t, probeOnce(t, smtpChecker(dst, ""), Options{}), true, "HELO answered 250")
	if got := <-lines; got != "HELO "+host+"\r\n" {
		t.Errorf("server read %q, want HELO with the host name", got)
	}
}

func TestSMTPCheckFailures(t *testing.T) {
	tests := []struct {
		name, greeting, helo, cause string
	}{
		{"bad greeting", "554 no service for you\r\n", "250 ok\r\n", `greeting "554 no service for you", want 220`},
		{"HELO refused", "220 ready\r\n", "550 go away\r\n", `HELO answered "550 go away", want 250`},
		{"closed after greeting", "220 ready\r\n", "", "HELO: connection closed"},
		{"not SMTP", "SSH-2.0-OpenSSH_9.6\r\n", "", "greeting: malformed reply line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, _ := smtpServer(t, tt.greeting, tt.helo)
			expect(t, probeOnce(t, smtpChecker(dst, "lb1"), Options{}), false, tt.cause)
		})
	}
}

func TestSMTPCheckTimesOutOnASilentServer(t *testing.T) {
	dst, _ := silentServer(t)
	c := smtpChecker(dst, "lb1")
	c.ConnectTimeout = config.Duration(200 * time.Millisecond)
	expect(t, probeOnce(t, c, Options{}), false, "greeting: timeout after 200ms")
}

func TestReadSMTPReply(t *testing.T) {
	tests := []struct {
		in    string
		code  int
		lines []string
		err   string
	}{
		{in: "220 ready\r\n", code: 220, lines: []string{"ready"}},
		{in: "220\n", code: 220, lines: []string{""}},
		{in: "250-a\r\n250-b\r\n250 c\r\nextra", code: 250, lines: []string{"a", "b", "c"}},
		{in: "250-a\r\n251 c\r\n", err: "reply code 250 changes to 251"},
		{in: "25 short\r\n", err: "malformed reply line"},
		{in: "2x0 x\r\n", err: "malformed reply line"},
		{in: "220_x\r\n", err: "malformed reply line"},
		{in: "220-a\r\n", err: "unexpected EOF"},
		{in: "220 no newline", err: "unexpected EOF"},
		{in: "", err: "EOF"},
		{in: "220 " + strings.Repeat("x", smtpMaxLine) + "\r\n", err: "longer than 1024 octets"},
		{in: strings.Repeat("250-x\r\n", smtpMaxLines) + "250 x\r\n", err: "longer than 64 lines"},
	}
	for _, tt := range tests {
		r, err := readSMTPReply(bufio.NewReaderSize(strings.NewReader(tt.in), smtpMaxLine))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("readSMTPReply(%.30q) = %+v, %v; want error %q", tt.in, r, err, tt.err)
			}
			continue
		}
		if err != nil || r.code != tt.code || !cmp.Equal(r.lines, tt.lines) {
			t.Errorf("readSMTPReply(%q) = %+v, %v; want %d %q", tt.in, r, err, tt.code, tt.lines)
		}
	}
}
