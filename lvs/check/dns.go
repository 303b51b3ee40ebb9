package check

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/vipd/vipd/config"
)

// dnsTypes are the query types DNS_CHECK knows, as keepalived's check_dns.c.
var dnsTypes = map[string]uint16{
	"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28,
	"RRSIG": 46, "DNSKEY": 48,
}

const (
	dnsClassIN   = 1
	dnsHeaderLen = 12
	dnsFlagQR    = 0x8000
	dnsFlagRD    = 0x0100
	dnsMaxName   = 255 // octets of a name in wire form, RFC 1035 2.3.4
)

var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}

// dnsProber is DNS_CHECK: a UDP query whose answer must come back with the
// query's id, QR set and RCODE 0 within connect_timeout.
type dnsProber struct {
	conn  conn
	qname []byte // wire form
	qtype uint16
}

func newDNSProber(c *config.Checker) (Prober, error) {
	qtype, ok := dnsTypes[strings.ToUpper(c.DNSType)]
	if !ok {
		return nil, errorf(c, "type %q: must be one of A NS CNAME SOA MX TXT AAAA RRSIG DNSKEY", c.DNSType)
	}
	name := c.DNSName
	if name == "" {
		name = config.DefaultDNSName
	}
	qname, err := encodeDNSName(name)
	if err != nil {
		return nil, errorf(c, "name %q: %v", name, err)
	}
	return &dnsProber{conn: connOf(c), qname: qname, qtype: qtype}, nil
}

func (p *dnsProber) Probe(ctx context.Context) Outcome {
	start := time.Now()
	actx, cancel := p.conn.attempt(ctx)
	defer cancel()
	nc, err := p.conn.dial(actx, "udp")
	if err != nil {
		return finish(start, Outcome{Cause: cause(ctx, err, p.conn.timeout)})
	}
	defer nc.Close()
	defer withDeadline(actx, nc)()

	id := uint16(rand.Uint32())
	if _, err := nc.Write(dnsQuery(id, p.qname, p.qtype)); err != nil {
		return finish(start, Outcome{Cause: cause(ctx, err, p.conn.timeout)})
	}
	buf := make([]byte, 4096)
	ignored := 0
	for {
		n, err := nc.Read(buf)
		if err != nil {
			why := cause(ctx, err, p.conn.timeout)
			if ignored > 0 {
				why += fmt.Sprintf(" (%d datagrams ignored)", ignored)
			}
			return finish(start, Outcome{Cause: why})
		}
		r, err := parseDNSReply(buf[:n])
		if err != nil || r.id != id || r.flags&dnsFlagQR == 0 || r.hasQuestion && !r.asks(p.qname, p.qtype) {
			ignored++ // not the answer to this query: keep waiting
			continue
		}
		if rc := r.rcode(); rc != 0 {
			return finish(start, Outcome{Cause: "DNS rcode " + rcodeString(rc)})
		}
		return finish(start, Outcome{OK: true, Cause: "DNS NOERROR"})
	}
}

func rcodeString(rc int) string {
	if rc < len(rcodeNames) {
		return fmt.Sprintf("%d (%s)", rc, rcodeNames[rc])
	}
	return fmt.Sprint(rc)
}

// encodeDNSName turns "example.com", "example.com." or "." into wire form.
func encodeDNSName(name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".")
	var b []byte
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			if l == "" {
				return nil, errors.New("empty label")
			}
			if len(l) > 63 {
				return nil, fmt.Errorf("label %q longer than 63 octets", l)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	b = append(b, 0)
	if len(b) > dnsMaxName {
		return nil, fmt.Errorf("longer than %d octets", dnsMaxName)
	}
	return b, nil
}

// dnsQuery builds a query (RD set, one question of class IN).
func dnsQuery(id uint16, qname []byte, qtype uint16) []byte {
	b := make([]byte, dnsHeaderLen, dnsHeaderLen+len(qname)+4)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], dnsFlagRD)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	b = append(b, qname...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, dnsClassIN)
}

// dnsReply is what DNS_CHECK reads of a response: the header and the first
// question (the server's echo of the query), if any.
type dnsReply struct {
	id, flags   uint16
	hasQuestion bool
	qname       []byte // wire form, uncompressed
	qtype       uint16
	qclass      uint16
}

func (r dnsReply) rcode() int { return int(r.flags & 0x000f) }

// asks reports whether the reply's question is the query's (names compare
// ASCII case-insensitively, as servers may echo 0x20-randomised case).
func (r dnsReply) asks(qname []byte, qtype uint16) bool {
	return r.qtype == qtype && r.qclass == dnsClassIN && asciiEqualFold(r.qname, qname)
}

var errDNSShort = errors.New("truncated DNS message")

// parseDNSReply decodes the header and the first question of a DNS message.
// It never panics and never loops, whatever b holds.
func parseDNSReply(b []byte) (dnsReply, error) {
	if len(b) < dnsHeaderLen {
		return dnsReply{}, errDNSShort
	}
	r := dnsReply{
		id:    binary.BigEndian.Uint16(b[0:]),
		flags: binary.BigEndian.Uint16(b[2:]),
	}
	if binary.BigEndian.Uint16(b[4:]) == 0 {
		return r, nil
	}
	name, off, err := readDNSName(b, dnsHeaderLen)
	if err != nil {
		return dnsReply{}, fmt.Errorf("question: %w", err)
	}
	if off+4 > len(b) {
		return dnsReply{}, errDNSShort
	}
	r.hasQuestion, r.qname = true, name
	r.qtype = binary.BigEndian.Uint16(b[off:])
	r.qclass = binary.BigEndian.Uint16(b[off+2:])
	return r, nil
}

// readDNSName reads the name at off, following compression pointers, and
// returns it uncompressed in wire form with the offset after it. Each pointer
// must point before the start of the part of the name read last (as every
// real compressor writes them), so a message cannot make it loop.
func readDNSName(b []byte, off int) (name []byte, next int, err error) {
	next = -1
	limit := off
	for {
		if off >= len(b) {
			return nil, 0, errDNSShort
		}
		l := int(b[off])
		switch l & 0xc0 {
		case 0x00:
			if off+1+l > len(b) {
				return nil, 0, errDNSShort
			}
			name = append(name, b[off:off+1+l]...)
			if len(name) > dnsMaxName {
				return nil, 0, errors.New("name too long")
			}
			off += 1 + l
			if l == 0 {
				if next < 0 {
					next = off
				}
				return name, next, nil
			}
		case 0xc0:
			if off+1 >= len(b) {
				return nil, 0, errDNSShort
			}
			ptr := (l&0x3f)<<8 | int(b[off+1])
			if ptr >= limit {
				return nil, 0, errors.New("compression pointer does not point backwards")
			}
			if next < 0 {
				next = off + 2
			}
			off, limit = ptr, ptr
		default:
			return nil, 0, fmt.Errorf("reserved label type 0x%02x", l&0xc0)
		}
	}
}

func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
