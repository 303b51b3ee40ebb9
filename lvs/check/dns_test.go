package check

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/config"
)

// datagram is one answer of the fake DNS server, sent after a delay.
type datagram struct {
	after time.Duration
	msg   []byte
}

// dnsServer answers every query with the datagrams respond makes of it, and
// hands each query to the test.
func dnsServer(t *testing.T, respond func(q []byte) []datagram) (netip.AddrPort, <-chan []byte) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	queries := make(chan []byte, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := append([]byte(nil), buf[:n]...)
			queries <- q
			for _, d := range respond(q) {
				time.Sleep(d.after)
				pc.WriteTo(d.msg, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), queries
}

// answer turns query q into a response with rcode, optionally with another id.
func answer(q []byte, rcode uint16, idDelta uint16) []byte {
	r := append([]byte(nil), q...)
	binary.BigEndian.PutUint16(r[0:], binary.BigEndian.Uint16(q)+idDelta)
	binary.BigEndian.PutUint16(r[2:], binary.BigEndian.Uint16(q[2:])|dnsFlagQR|rcode)
	return r
}

func dnsChecker(dst netip.AddrPort, typ, name string, timeout time.Duration) *config.Checker {
	c := checkerTo(config.CheckDNS, dst, timeout)
	c.DNSType, c.DNSName = typ, name
	return c
}

func TestDNSCheckSendsTheConfiguredQuestion(t *testing.T) {
	dst, queries := dnsServer(t, func(q []byte) []datagram { return []datagram{{msg: answer(q, 0, 0)}} })
	expect(t, probeOnce(t, dnsChecker(dst, "AAAA", "Example.com.", time.Second), Options{}), true, "DNS NOERROR")
	expect(t, probeOnce(t, dnsChecker(dst, "SOA", ".", time.Second), Options{}), true, "DNS NOERROR")
	for _, want := range []struct {
		qname []byte
		qtype uint16
	}{{[]byte("\x07Example\x03com\x00"), 28}, {[]byte{0}, 6}} {
		q := <-queries
		r, err := parseDNSReply(q)
		if err != nil {
			t.Fatalf("query %x does not parse: %v", q, err)
		}
		if r.flags != dnsFlagRD || !r.hasQuestion || string(r.qname) != string(want.qname) || r.qtype != want.qtype || r.qclass != dnsClassIN {
			t.Errorf("query %+v, want RD only and question %q type %d class IN", r, want.qname, want.qtype)
		}
	}
}

func TestDNSCheckJudgesTheAnswer(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name    string
		respond func(q []byte) []datagram
		ok      bool
		cause   string
	}{
		{"an answer in time passes", func(q []byte) []datagram {
			return []datagram{{after: 20 * time.Millisecond, msg: answer(q, 0, 0)}}
		}, true, "DNS NOERROR"},
		{"an answer after connect_timeout fails", func(q []byte) []datagram {
			return []datagram{{after: 3 * timeout, msg: answer(q, 0, 0)}}
		}, false, "timeout after 200ms"},
		{"an answer with another id is ignored", func(q []byte) []datagram {
			return []datagram{{msg: answer(q, 0, 1)}, {msg: answer(q, 0, 0)}}
		}, true, "DNS NOERROR"},
		{"only answers with another id: timeout", func(q []byte) []datagram {
			return []datagram{{msg: answer(q, 0, 1)}}
		}, false, "timeout after 200ms (1 datagrams ignored)"},
		{"a query echoed back (QR clear) is ignored", func(q []byte) []datagram {
			return []datagram{{msg: q}}
		}, false, "timeout after 200ms (1 datagrams ignored)"},
		{"an answer to another question is ignored", func(q []byte) []datagram {
			other := answer(q, 0, 0)
			other[len(other)-3] ^= 0xff // QTYPE
			return []datagram{{msg: other}, {msg: answer(q, 0, 0)}}
		}, true, "DNS NOERROR"},
		{"a header-only answer (no question) counts", func(q []byte) []datagram {
			r := answer(q[:dnsHeaderLen], 0, 0)
			r[4], r[5] = 0, 0 // QDCOUNT
			return []datagram{{msg: r}}
		}, true, "DNS NOERROR"},
		{"RCODE NXDOMAIN fails", func(q []byte) []datagram {
			return []datagram{{msg: answer(q, 3, 0)}}
		}, false, "DNS rcode 3 (NXDOMAIN)"},
		{"RCODE SERVFAIL fails", func(q []byte) []datagram {
			return []datagram{{msg: answer(q, 2, 0)}}
		}, false, "DNS rcode 2 (SERVFAIL)"},
		{"garbage is ignored", func(q []byte) []datagram {
			return []datagram{{msg: []byte{1, 2, 3}}, {msg: answer(q, 0, 0)}}
		}, true, "DNS NOERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, _ := dnsServer(t, tt.respond)
			expect(t, probeOnce(t, dnsChecker(dst, "A", "example.com", timeout), Options{}), tt.ok, tt.cause)
		})
	}
}

func TestDNSCheckFailsOnAClosedPort(t *testing.T) {
	dst := closedPort(t, "udp")
	expect(t, probeOnce(t, dnsChecker(dst, "SOA", ".", time.Second), Options{}), false, "read: connection refused")
}

func TestReadDNSNameFollowsBackwardPointersOnly(t *testing.T) {
	msg := []byte("\x03www\x07example\x03com\x00" + "\x03ftp\xc0\x04" + "\xc0\x11" + "\xc0\x19")
	tests := []struct {
		off     int
		want    string
		next    int
		wantErr bool
	}{
		{off: 0, want: "\x03www\x07example\x03com\x00", next: 17},
		{off: 17, want: "\x03ftp\x07example\x03com\x00", next: 23},
		{off: 23, want: "\x03ftp\x07example\x03com\x00", next: 25}, // pointer to a name ending in a pointer
		{off: 25, wantErr: true},                                   // points at itself
		{off: len(msg), wantErr: true},
	}
	for _, tt := range tests {
		name, next, err := readDNSName(msg, tt.off)
		if tt.wantErr {
			if err == nil {
				t.Errorf("readDNSName(%d) = %q, want an error", tt.off, name)
			}
			continue
		}
		if err != nil || string(name) != tt.want || next != tt.next {
			t.Errorf("readDNSName(%d) = %q, %d, %v; want %q, %d", tt.off, name, next, err, tt.want, tt.next)
		}
	}
	// A pointer loop: the name at 2 jumps back to 0, whose label runs into it.
	loop := []byte("\x01a\xc0\x00")
	if _, _, err := readDNSName(loop, 2); err == nil {
		t.Error("a compression loop was accepted")
	}
}

func TestEncodeDNSName(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{".", "\x00"},
		{"", "\x00"},
		{"example.com", "\x07example\x03com\x00"},
		{"example.com.", "\x07example\x03com\x00"},
	} {
		got, err := encodeDNSName(tt.name)
		if err != nil || string(got) != tt.want {
			t.Errorf("encodeDNSName(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"a..b", ".a", string(long), "a." + string(long[:63]) + "." + string(long[:63]) + "." + string(long[:63]) + "." + string(long[:63])} {
		if got, err := encodeDNSName(bad); err == nil {
			t.Errorf("encodeDNSName(%q) = %q, want an error", bad, got)
		}
	}
	q := dnsQuery(0xbeef, []byte("\x00"), 6)
	want := []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("SOA query for . (-want +got):\n%s", diff)
	}
}
