package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	codecSrc4 = netip.MustParseAddr("10.99.0.2")
	codecDst4 = netip.MustParseAddr("10.99.0.1") // a unicast peer
	codecSrc6 = netip.MustParseAddr("fe80::fc18:38ff:fe76:ee04")
	codecDst6 = netip.MustParseAddr("fd00:99::1") // a unicast peer

	addrCmp = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
)

func codecPass(s string) (b [8]byte) {
	copy(b[:], s)
	return b
}

// codecHex decodes space-separated hex bytes.
func codecHex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for _, f := range strings.Fields(s) {
		var v byte
		for _, c := range []byte(f) {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			default:
				t.Fatalf("bad hex %q", f)
			}
		}
		out = append(out, v)
	}
	return out
}

// codecRefChecksum is an independent, byte-at-a-time RFC 1071 checksum of
// the concatenation of the given parts, for cross-checking AppendMarshal.
func codecRefChecksum(parts ...[]byte) uint16 {
	all := bytes.Join(parts, nil)
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var sum uint64
	for i := 0; i < len(all); i += 2 {
		sum += uint64(binary.BigEndian.Uint16(all[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func codecPseudo4(src, dst netip.Addr, n int) []byte {
	s, d := src.As4(), dst.As4()
	b := append(s[:], d[:]...)
	return append(b, 0, 112, byte(n>>8), byte(n))
}

func codecPseudo6(src, dst netip.Addr, n int) []byte {
	s, d := src.As16(), dst.As16()
	b := append(s[:], d[:]...)
	return append(b, 0, 0, byte(n>>8), byte(n), 0, 0, 0, 112)
}

func TestAppendMarshalWritesRFCLayout(t *testing.T) {
	tests := []struct {
		name     string
		a        Advert
		src, dst netip.Addr
		opt      ChecksumOpt
		// want is the packet with a zero checksum; pseudo the pseudo-header
		// the checksum must cover (nil: none).
		want   string
		pseudo []byte
	}{
		{
			name: "v2 PASS over IPv4 carries the password trailer and a plain checksum",
			a:    Advert{Version: 2, VRID: 51, Priority: 102, AuthType: AuthPass, AuthData: codecPass("secret1"), Interval: time.Second, Addrs: mustAddrs("10.99.0.100", "10.99.0.101")},
			src:  codecSrc4, dst: MulticastGroup4,
			want: "21 33 66 02 01 01 00 00 0a 63 00 64 0a 63 00 65 73 65 63 72 65 74 31 00",
		},
		{
			name: "v2 without auth still has the 8-byte trailer and needs no IP addresses",
			a:    Advert{Version: 2, VRID: 1, Priority: 100, Interval: 3 * time.Second, Addrs: mustAddrs("192.0.2.1")},
			want: "21 01 64 01 00 03 00 00 c0 00 02 01 00 00 00 00 00 00 00 00",
		},
		{
			name: "v3 over IPv4 multicast sums the pseudo-header with the group",
			a:    Advert{Version: 3, VRID: 52, Priority: 102, Interval: 100 * time.Millisecond, Addrs: mustAddrs("10.99.0.102")},
			src:  codecSrc4, dst: MulticastGroup4,
			want:   "31 34 66 01 00 0a 00 00 0a 63 00 66",
			pseudo: codecPseudo4(codecSrc4, MulticastGroup4, 12),
		},
		{
			name: "v3 over IPv4 unicast sums the pseudo-header with the real destination",
			a:    Advert{Version: 3, VRID: 52, Priority: 102, Interval: 40950 * time.Millisecond, Addrs: mustAddrs("10.99.0.102")},
			src:  codecSrc4, dst: codecDst4,
			want:   "31 34 66 01 0f ff 00 00 0a 63 00 66",
			pseudo: codecPseudo4(codecSrc4, codecDst4, 12),
		},
		{
			name: "v3 over IPv4 unicast with old_unicast_checksum sums 224.0.0.18 instead",
			a:    Advert{Version: 3, VRID: 52, Priority: 102, Interval: time.Second, Addrs: mustAddrs("10.99.0.102")},
			src:  codecSrc4, dst: codecDst4, opt: ChecksumOpt{OldUnicastChecksum: true},
			want:   "31 34 66 01 00 64 00 00 0a 63 00 66",
			pseudo: codecPseudo4(codecSrc4, MulticastGroup4, 12),
		},
		{
			name: "v3 over IPv6 sums the IPv6 pseudo-header",
			a:    Advert{Version: 3, VRID: 52, Priority: 0, Interval: time.Second, Addrs: mustAddrs("fd00:99::100")},
			src:  codecSrc6, dst: MulticastGroup6,
			want:   "31 34 00 01 00 64 00 00 fd 00 00 99 00 00 00 00 00 00 00 00 00 00 01 00",
			pseudo: codecPseudo6(codecSrc6, MulticastGroup6, 24),
		},
		{
			name: "v2 over IPv6 (keepalived without vrrp_strict) has no trailer and a pseudo-header",
			a:    Advert{Version: 2, VRID: 9, Priority: 200, Interval: 2 * time.Second, Addrs: mustAddrs("fd00::9")},
			src:  codecSrc6, dst: MulticastGroup6,
			want:   "21 09 c8 01 00 02 00 00 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 09",
			pseudo: codecPseudo6(codecSrc6, MulticastGroup6, 24),
		},
		{
			name: "an advert without addresses is just the header",
			a:    Advert{Version: 3, VRID: 7, Priority: 100, Interval: time.Second},
			src:  codecSrc4, dst: MulticastGroup4,
			want:   "31 07 64 00 00 64 00 00",
			pseudo: codecPseudo4(codecSrc4, MulticastGroup4, 8),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := codecHex(t, tc.want)
			sum := codecRefChecksum(tc.pseudo, want)
			binary.BigEndian.PutUint16(want[6:8], sum)

			a := tc.a
			got, err := a.AppendMarshal(nil, tc.src, tc.dst, tc.opt)
			if err != nil {
				t.Fatalf("AppendMarshal: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendMarshal\n got % x\nwant % x", got, want)
			}
			if a.Checksum != sum {
				t.Errorf("Checksum = %#04x, want %#04x", a.Checksum, sum)
			}

			back, err := Parse(got, tc.src, tc.dst, tc.opt)
			if err != nil {
				t.Fatalf("Parse of our own output: %v", err)
			}
			if diff := cmp.Diff(a, *back, addrCmp); diff != "" {
				t.Errorf("Parse(AppendMarshal(a)) (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendMarshalAppendsAfterExistingBytes(t *testing.T) {
	a := Advert{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addrs: mustAddrs("10.0.0.1")}
	alone, err := a.AppendMarshal(nil, codecSrc4, MulticastGroup4, ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte{0xde, 0xad}
	got, err := a.AppendMarshal(prefix, codecSrc4, MulticastGroup4, ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], alone) {
		t.Errorf("AppendMarshal(prefix) = % x, want % x followed by % x", got, prefix, alone)
	}
}

func TestAppendMarshalRejectsWhatCannotGoOnTheWire(t *testing.T) {
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	tests := []struct {
		name     string
		a        Advert
		src, dst netip.Addr
		want     string
	}{
		{"version 1", Advert{Version: 1, Interval: time.Second}, codecSrc4, MulticastGroup4, "version 1"},
		{"more than 255 addresses", Advert{Version: 3, Interval: time.Second, Addrs: many}, codecSrc4, MulticastGroup4, "256 addresses"},
		{"v2 fractional interval", Advert{Version: 2, Interval: 1500 * time.Millisecond}, codecSrc4, MulticastGroup4, "whole seconds"},
		{"v2 interval over 255s", Advert{Version: 2, Interval: 256 * time.Second}, codecSrc4, MulticastGroup4, "whole seconds"},
		{"v3 interval under a centisecond step", Advert{Version: 3, Interval: 105 * time.Millisecond}, codecSrc4, MulticastGroup4, "centiseconds"},
		{"v3 interval over 12 bits", Advert{Version: 3, Interval: 41 * time.Second}, codecSrc4, MulticastGroup4, "centiseconds"},
		{"negative interval", Advert{Version: 3, Interval: -time.Second}, codecSrc4, MulticastGroup4, "centiseconds"},
		{"v3 with authentication", Advert{Version: 3, AuthType: AuthPass, Interval: time.Second}, codecSrc4, MulticastGroup4, "no authentication"},
		{"v2 unknown auth type", Advert{Version: 2, AuthType: 3, Interval: time.Second}, codecSrc4, MulticastGroup4, "auth type 3"},
		{"v2 password over IPv6", Advert{Version: 2, AuthType: AuthPass, AuthData: codecPass("x"), Interval: time.Second}, codecSrc6, MulticastGroup6, "no authentication data"},
		{"v3 without IP addresses", Advert{Version: 3, Interval: time.Second}, netip.Addr{}, netip.Addr{}, "pseudo-header"},
		{"v3 without destination", Advert{Version: 3, Interval: time.Second}, codecSrc4, netip.Addr{}, "pseudo-header"},
		{"mixed source and destination families", Advert{Version: 3, Interval: time.Second}, codecSrc4, MulticastGroup6, "different families"},
		{"IPv6 VIP in an IPv4 advert", Advert{Version: 3, Interval: time.Second, Addrs: mustAddrs("fd00::1")}, codecSrc4, MulticastGroup4, "plain IPv4"},
		{"IPv4-mapped VIP", Advert{Version: 3, Interval: time.Second, Addrs: mustAddrs("::ffff:10.0.0.1")}, codecSrc6, MulticastGroup6, "plain IPv6"},
		{"invalid VIP", Advert{Version: 3, Interval: time.Second, Addrs: []netip.Addr{{}}}, codecSrc4, MulticastGroup4, "invalid IP"},
		{"IPv4-mapped source", Advert{Version: 3, Interval: time.Second}, netip.MustParseAddr("::ffff:10.0.0.1"), MulticastGroup4, "IPv4-mapped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3}
			got, err := tc.a.AppendMarshal(prefix, tc.src, tc.dst, ChecksumOpt{})
			if err == nil {
				t.Fatalf("AppendMarshal = % x, want an error containing %q", got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "vrrp: marshal advert: ") {
				t.Errorf("error %q, want it to start with %q and contain %q", err, "vrrp: marshal advert: ", tc.want)
			}
			if !bytes.Equal(got, prefix) {
				t.Errorf("on error AppendMarshal returned % x, want the buffer unchanged", got)
			}
		})
	}
}

// codecValid marshals a, which must be valid.
func codecValid(t *testing.T, a *Advert, src, dst netip.Addr) []byte {
	t.Helper()
	b, err := a.AppendMarshal(nil, src, dst, ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// codecResum recomputes the checksum of a (possibly mutated) packet the way
// a sender would, so a test reaches the check after the checksum.
func codecResum(b []byte, src, dst netip.Addr) []byte {
	b = bytes.Clone(b)
	b[6], b[7] = 0, 0
	var pseudo []byte
	switch {
	case src.Is6():
		pseudo = codecPseudo6(src, dst, len(b))
	case b[0]>>4 != 2:
		pseudo = codecPseudo4(src, dst, len(b))
	}
	binary.BigEndian.PutUint16(b[6:8], codecRefChecksum(pseudo, b))
	return b
}

func TestParseDropsMalformedAdverts(t *testing.T) {
	v2 := codecValid(t, &Advert{Version: 2, VRID: 51, Priority: 100, AuthType: AuthPass, AuthData: codecPass("secret1"), Interval: time.Second, Addrs: mustAddrs("10.99.0.100")}, codecSrc4, MulticastGroup4)
	v3 := codecValid(t, &Advert{Version: 3, VRID: 52, Priority: 100, Interval: time.Second, Addrs: mustAddrs("10.99.0.102")}, codecSrc4, MulticastGroup4)
	v3uc := codecValid(t, &Advert{Version: 3, VRID: 52, Priority: 100, Interval: time.Second, Addrs: mustAddrs("10.99.0.102")}, codecSrc4, codecDst4)
	v3old, err := (&Advert{Version: 3, VRID: 52, Priority: 100, Interval: time.Second, Addrs: mustAddrs("10.99.0.102")}).AppendMarshal(nil, codecSrc4, codecDst4, ChecksumOpt{OldUnicastChecksum: true})
	if err != nil {
		t.Fatal(err)
	}
	v6 := codecValid(t, &Advert{Version: 3, VRID: 52, Priority: 100, Interval: time.Second, Addrs: mustAddrs("fd00:99::100")}, codecSrc6, MulticastGroup6)
	// A CARP advertisement: version 2, type 1, vhid 5, advskew 0,
	// authlen 7, demote 0, advbase 1, cksum, 8-byte counter, 20-byte HMAC.
	carp := append(codecHex(t, "21 05 00 07 00 01 00 00 00 00 00 00 00 00 00 01"), make([]byte, 20)...)
	carp = codecResum(carp, codecSrc4, MulticastGroup4)

	plainSum := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[6], b[7] = 0, 0
		binary.BigEndian.PutUint16(b[6:8], codecRefChecksum(b))
		return b
	}
	set := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     DropReason
	}{
		{"empty", nil, codecSrc4, MulticastGroup4, DropTruncated},
		{"one byte", []byte{0x31}, codecSrc4, MulticastGroup4, DropTruncated},
		{"seven bytes", v3[:7], codecSrc4, MulticastGroup4, DropTruncated},
		{"version 1", codecResum(set(v2, 0, 0x11), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropBadVersion},
		{"version 4", codecResum(set(v3, 0, 0x41), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropBadVersion},
		{"version 0", make([]byte, 8), codecSrc4, MulticastGroup4, DropBadVersion},
		{"type 2", codecResum(set(v3, 0, 0x32), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropBadType},
		{"type 0", codecResum(set(v2, 0, 0x20), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropBadType},
		{"CARP advertisement", carp, codecSrc4, MulticastGroup4, DropCARP},
		{"CARP over IPv6", codecResum(carp, codecSrc6, MulticastGroup6), codecSrc6, MulticastGroup6, DropCARP},
		{"v2 missing its auth trailer", codecResum(v2[:12], codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropAddrCount},
		{"v2 one byte too long", codecResum(append(bytes.Clone(v2), 0, 0), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropAddrCount},
		{"count 255 with one address", codecResum(set(v3, 3, 255), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropAddrCount},
		{"count 0 with one address", codecResum(set(v3, 3, 0), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropAddrCount},
		{"v3 IPv6 with an odd length", codecResum(append(bytes.Clone(v6), 0), codecSrc6, MulticastGroup6), codecSrc6, MulticastGroup6, DropAddrCount},
		{"v3 IPv6 advert read as IPv4", v6, codecSrc4, MulticastGroup4, DropAddrCount},
		{"v2 auth type 3", codecResum(set(v2, 4, 3), codecSrc4, MulticastGroup4), codecSrc4, MulticastGroup4, DropAuthType},
		{"v2 checksum off by one", set(v2, 7, v2[7]^1), codecSrc4, MulticastGroup4, DropBadChecksum},
		{"v2 password changed after summing", set(v2, 13, 'S'), codecSrc4, MulticastGroup4, DropBadChecksum},
		{"v3 priority changed after summing", set(v3, 2, 101), codecSrc4, MulticastGroup4, DropBadChecksum},
		{"v3 IPv4 summed without the pseudo-header", plainSum(v3), codecSrc4, MulticastGroup4, DropBadChecksum},
		{"v3 IPv4 from another source", v3, netip.MustParseAddr("10.99.0.3"), MulticastGroup4, DropBadChecksum},
		{"v3 IPv6 to another destination", v6, codecSrc6, codecDst6, DropBadChecksum},
		{"v3 IPv4 to another multicast group is not retried with 224.0.0.18", v3old, codecSrc4, MulticastGroup4.Next(), DropBadChecksum},
		{"v3 IPv4 unicast in the old form without the option", v3old, codecSrc4, codecDst4, DropOldUnicastChecksum},
		{"v3 IPv4 unicast to a third address", v3uc, codecSrc4, netip.MustParseAddr("10.99.0.9"), DropBadChecksum},
		{"v3 without IP addresses", v3, netip.Addr{}, netip.Addr{}, DropFamily},
		{"v3 IPv6 without destination", v6, codecSrc6, netip.Addr{}, DropFamily},
		{"source and destination of different families", v3, codecSrc4, MulticastGroup6, DropFamily},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.b, tc.src, tc.dst, ChecksumOpt{})
			var de *DropError
			if !errors.As(err, &de) {
				t.Fatalf("Parse = %+v, %v; want a *DropError %q", a, err, tc.want)
			}
			if de.Reason != tc.want {
				t.Errorf("Parse dropped for %q (%v), want %q", de.Reason, err, tc.want)
			}
			if a != nil {
				t.Errorf("Parse returned an advert with the error: %+v", a)
			}
		})
	}
}

func TestParseAcceptsV3ReservedBitsAndIgnoresThem(t *testing.T) {
	// RFC 5798 5.2.5: rsvd MUST be ignored on reception; keepalived masks it.
	b := codecValid(t, &Advert{Version: 3, VRID: 52, Priority: 100, Interval: time.Second, Addrs: mustAddrs("10.99.0.102")}, codecSrc4, MulticastGroup4)
	b[4] |= 0xf0
	b = codecResum(b, codecSrc4, MulticastGroup4)
	a, err := Parse(b, codecSrc4, MulticastGroup4, ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Interval != time.Second {
		t.Errorf("Interval = %s, want 1s with the reserved bits masked off", a.Interval)
	}
}

func TestParseAcceptsAFiveAddressV2AdvertOfCARPLength(t *testing.T) {
	// 8 + 5*4 + 8 = 36 bytes, the length of a CARP packet: the count decides.
	a := Advert{Version: 2, VRID: 5, Priority: 100, Interval: time.Second, Addrs: mustAddrs("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5")}
	b := codecValid(t, &a, codecSrc4, MulticastGroup4)
	if len(b) != 36 {
		t.Fatalf("len = %d, want 36", len(b))
	}
	got, err := Parse(b, codecSrc4, MulticastGroup4, ChecksumOpt{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(a, *got, addrCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestV3IPv4UnicastChecksumForms(t *testing.T) {
	base := Advert{Version: 3, VRID: 60, Priority: 150, Interval: 50 * time.Millisecond, Addrs: mustAddrs("10.99.0.110", "10.99.0.111")}
	rfc, old := base, base
	rfcB, err := rfc.AppendMarshal(nil, codecSrc4, codecDst4, ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	oldB, err := old.AppendMarshal(nil, codecSrc4, codecDst4, ChecksumOpt{OldUnicastChecksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if rfc.Checksum == old.Checksum {
		t.Fatalf("both forms have checksum %#04x; the pseudo-header destination must differ", rfc.Checksum)
	}
	// The old form is exactly what a multicast advert would carry.
	mc := base
	if _, err := mc.AppendMarshal(nil, codecSrc4, MulticastGroup4, ChecksumOpt{}); err != nil {
		t.Fatal(err)
	}
	if old.Checksum != mc.Checksum {
		t.Errorf("old_unicast_checksum form %#04x, want the multicast checksum %#04x", old.Checksum, mc.Checksum)
	}
	// Multicast adverts are unaffected by the option.
	mcOld := base
	if _, err := mcOld.AppendMarshal(nil, codecSrc4, MulticastGroup4, ChecksumOpt{OldUnicastChecksum: true}); err != nil {
		t.Fatal(err)
	}
	if mcOld.Checksum != mc.Checksum {
		t.Errorf("multicast checksum with the option %#04x, want %#04x", mcOld.Checksum, mc.Checksum)
	}

	tests := []struct {
		name string
		b    []byte
		opt  ChecksumOpt
		want DropReason // "" accepts
	}{
		{"RFC form without the option", rfcB, ChecksumOpt{}, ""},
		{"RFC form with the option", rfcB, ChecksumOpt{OldUnicastChecksum: true}, ""},
		{"old form with the option", oldB, ChecksumOpt{OldUnicastChecksum: true}, ""},
		{"old form without the option", oldB, ChecksumOpt{}, DropOldUnicastChecksum},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.b, codecSrc4, codecDst4, tc.opt)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if a.VRID != 60 || a.Priority != 150 || len(a.Addrs) != 2 {
					t.Errorf("Parse = %+v", a)
				}
				return
			}
			var de *DropError
			if !errors.As(err, &de) || de.Reason != tc.want {
				t.Errorf("Parse error %v, want drop %q", err, tc.want)
			}
		})
	}
}

func TestParseCopiesOutOfTheReceiveBuffer(t *testing.T) {
	b := codecValid(t, &Advert{Version: 2, VRID: 51, Priority: 100, AuthType: AuthPass, AuthData: codecPass("secret1"), Interval: time.Second, Addrs: mustAddrs("10.99.0.100")}, codecSrc4, MulticastGroup4)
	a, err := Parse(b, codecSrc4, MulticastGroup4, ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xff
	}
	if a.Addrs[0] != netip.MustParseAddr("10.99.0.100") || a.AuthData != codecPass("secret1") {
		t.Errorf("advert changed with the buffer: %+v", a)
	}
}

func TestParseDecodesManyAddresses(t *testing.T) {
	var vips []netip.Addr
	for i := range 255 {
		vips = append(vips, netip.AddrFrom16([16]byte{0xfd, 15: byte(i)}))
	}
	a := Advert{Version: 3, VRID: 200, Priority: 255, Interval: 10 * time.Millisecond, Addrs: vips}
	b := codecValid(t, &a, codecSrc6, MulticastGroup6)
	if len(b) != 8+255*16 {
		t.Fatalf("len = %d", len(b))
	}
	got, err := Parse(b, codecSrc6.WithZone("eth0"), MulticastGroup6, ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, *got, addrCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDropErrorMessageNamesReasonAndDetail(t *testing.T) {
	tests := []struct {
		e    DropError
		want string
	}{
		{DropError{Reason: DropBadTTL, Detail: "TTL 64"}, "vrrp: dropped advert: bad_ttl: TTL 64"},
		{DropError{Reason: DropCARP}, "vrrp: dropped advert: carp"},
	}
	for _, tc := range tests {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestDropReasonsAreSortedUniqueSnakeCaseAndExcludeTheWarning(t *testing.T) {
	rs := DropReasons()
	seen := map[DropReason]bool{}
	for i, r := range rs {
		if i > 0 && rs[i-1] >= r {
			t.Errorf("DropReasons not sorted/unique at %q", r)
		}
		if seen[r] {
			t.Errorf("duplicate %q", r)
		}
		seen[r] = true
		for _, c := range r {
			if !(c >= 'a' && c <= 'z' || c == '_') {
				t.Errorf("reason %q is not snake_case", r)
				break
			}
		}
	}
	if seen[WarnAddrListDiffers] {
		t.Errorf("DropReasons lists %q, which is not a drop", WarnAddrListDiffers)
	}
	if len(rs) != 17 {
		t.Errorf("DropReasons has %d reasons, want 17", len(rs))
	}
}

// TestDropReasonsAreExactlyTheDeclaredReasons: every DropReason constant
// of the package (but the warning) is counted and listed, and nothing else
// is listed, so the metric and status show exactly what is counted.
func TestDropReasonsAreExactlyTheDeclaredReasons(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var declared []DropReason
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		{
			ast.Inspect(f, func(n ast.Node) bool {
				vs, ok := n.(*ast.ValueSpec)
				if !ok || vs.Type == nil {
					return true
				}
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "DropReason" {
					return true
				}
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok {
						declared = append(declared, DropReason(strings.Trim(lit.Value, `"`)))
					}
				}
				return true
			})
		}
	}
	var want []DropReason
	for _, r := range declared {
		if r != WarnAddrListDiffers {
			want = append(want, r)
		}
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if diff := cmp.Diff(want, DropReasons()); diff != "" {
		t.Errorf("DropReasons vs the declared reasons (-declared +listed):\n%s", diff)
	}
}

func BenchmarkParseV3(b *testing.B) {
	a := Advert{Version: 3, VRID: 52, Priority: 102, Interval: time.Second, Addrs: mustAddrs("10.99.0.102", "10.99.0.103")}
	pkt, err := a.AppendMarshal(nil, codecSrc4, MulticastGroup4, ChecksumOpt{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(pkt, codecSrc4, MulticastGroup4, ChecksumOpt{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalV3(b *testing.B) {
	a := Advert{Version: 3, VRID: 52, Priority: 102, Interval: time.Second, Addrs: mustAddrs("10.99.0.102", "10.99.0.103")}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = a.AppendMarshal(buf[:0], codecSrc4, MulticastGroup4, ChecksumOpt{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHotPathAllocations(t *testing.T) {
	a := Advert{Version: 3, VRID: 52, Priority: 102, Interval: time.Second, Addrs: mustAddrs("10.99.0.102", "10.99.0.103")}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		buf, _ = a.AppendMarshal(buf[:0], codecSrc4, MulticastGroup4, ChecksumOpt{})
	}); n != 0 {
		t.Errorf("AppendMarshal into a reused buffer: %v allocations, want 0", n)
	}
	pkt := bytes.Clone(buf)
	if n := testing.AllocsPerRun(100, func() {
		_, _ = Parse(pkt, codecSrc4, MulticastGroup4, ChecksumOpt{})
	}); n > 1 {
		t.Errorf("Parse of a 2-address advert: %v allocations, want at most 1", n)
	}
}
