package check

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// Seed corpora: testdata/fuzz/<FuzzName>/ (real answers, NXDOMAIN, pointer
// loops, truncations, over-long names; multi-line and malformed SMTP).

// FuzzParseDNSReply: no input panics or loops, and a question that parses is
// a well-formed name that reads back the same.
func FuzzParseDNSReply(f *testing.F) {
	f.Add(dnsQuery(1, []byte("\x07example\x03com\x00"), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseDNSReply(b)
		if err != nil || !r.hasQuestion {
			return
		}
		if len(r.qname) == 0 || len(r.qname) > dnsMaxName || r.qname[len(r.qname)-1] != 0 {
			t.Fatalf("question name %q is not a terminated name of at most %d octets", r.qname, dnsMaxName)
		}
		again, next, err := readDNSName(r.qname, 0)
		if err != nil || !bytes.Equal(again, r.qname) || next != len(r.qname) {
			t.Fatalf("question name %q reads back as %q, %d, %v", r.qname, again, next, err)
		}
	})
}

// FuzzDNSQueryRoundTrip: every query DNS_CHECK can send parses back to its
// own id, flags and question.
func FuzzDNSQueryRoundTrip(f *testing.F) {
	f.Add(".", uint16(6), uint16(0xbeef))
	f.Fuzz(func(t *testing.T, name string, qtype, id uint16) {
		qname, err := encodeDNSName(name)
		if err != nil {
			return
		}
		r, err := parseDNSReply(dnsQuery(id, qname, qtype))
		if err != nil || r.id != id || r.flags != dnsFlagRD || !r.hasQuestion || !r.asks(qname, qtype) {
			t.Fatalf("query for %q type %d id %d parses as %+v, %v", name, qtype, id, r, err)
		}
	})
}

// FuzzReadSMTPReply: no input panics, a reply stays within the limits, and
// a reply written back the canonical way reads the same.
func FuzzReadSMTPReply(f *testing.F) {
	f.Add([]byte("250-a\r\n250 b\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := readSMTPReply(bufio.NewReaderSize(bytes.NewReader(b), smtpMaxLine))
		if err != nil {
			return
		}
		if r.code < 100 || r.code > 999 || len(r.lines) == 0 || len(r.lines) > smtpMaxLines {
			t.Fatalf("reply %+v out of bounds", r)
		}
		var sb strings.Builder
		for i, l := range r.lines {
			sep := "-"
			if i == len(r.lines)-1 {
				sep = " "
			}
			fmt.Fprintf(&sb, "%d%s%s\r\n", r.code, sep, l)
		}
		again, err := readSMTPReply(bufio.NewReaderSize(strings.NewReader(sb.String()), smtpMaxLine))
		if err != nil || again.code != r.code || fmt.Sprint(again.lines) != fmt.Sprint(r.lines) {
			t.Fatalf("reply %+v written as %q reads back as %+v, %v", r, sb.String(), again, err)
		}
	})
}
