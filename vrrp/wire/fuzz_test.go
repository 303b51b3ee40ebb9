package wire

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzParse from the captures and the nasty cases")

// fuzzAddrs picks the IP source and destination a fuzz input is received with.
func fuzzAddrs(v6, unicast bool) (src, dst netip.Addr) {
	switch {
	case v6 && unicast:
		return codecSrc6, codecDst6
	case v6:
		return codecSrc6, MulticastGroup6
	case unicast:
		return codecSrc4, codecDst4
	}
	return codecSrc4, MulticastGroup4
}

// fuzzFixChecksum overwrites the checksum of b (for the version its first
// byte claims) so the fuzzer gets past the checksum to the checks after it.
func fuzzFixChecksum(b []byte, src, dst netip.Addr) []byte {
	if len(b) < pktHeaderLen {
		return b
	}
	return codecResum(b, src, dst)
}

// FuzzParse: Parse never panics, and whatever it accepts marshals back to
// an advert that parses to the same thing (byte for byte, but for the v3
// reserved bits, which Parse ignores, and the checksum form old_unicast_checksum
// may change).
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, v6, unicast, old, fixSum bool) {
		src, dst := fuzzAddrs(v6, unicast)
		if fixSum {
			data = fuzzFixChecksum(data, src, dst)
		}
		opt := ChecksumOpt{OldUnicastChecksum: old}
		a, err := Parse(data, src, dst, opt)
		if err != nil {
			var de *DropError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("Parse error %v is not a *DropError with a reason", err)
			}
			if a != nil {
				t.Fatalf("Parse returned an advert and an error")
			}
			return
		}
		// The receive checks must not panic on anything Parse accepts.
		_ = CheckRecv(a, RecvMeta{Src: src, Dst: dst, TTL: 255}, RecvExpect{Version: 2, AuthType: AuthPass, AuthPass: "secret1", Interval: time.Second, Unicast: unicast, UnicastPeers: []netip.Addr{src}, CheckUnicastSrc: true, VIPs: mustAddrs("10.99.0.100")})

		again := *a
		out, err := again.AppendMarshal(nil, src, dst, opt)
		if err != nil {
			t.Fatalf("AppendMarshal of a parsed advert %+v: %v", a, err)
		}
		b, err := Parse(out, src, dst, opt)
		if err != nil {
			t.Fatalf("Parse(AppendMarshal(Parse(x))): %v\n x = % x\nout = % x", err, data, out)
		}
		if diff := cmp.Diff(a, b, addrCmp, cmpopts.IgnoreFields(Advert{}, "Checksum")); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if b.Checksum != again.Checksum {
			t.Fatalf("second Parse read checksum %#04x, AppendMarshal wrote %#04x", b.Checksum, again.Checksum)
		}
		canon := bytes.Clone(data)
		if a.Version == 3 {
			canon[4] &= 0x0f
		}
		if bytes.Equal(canon, data) && !(old && unicast && !v6 && a.Version == 3) {
			if !bytes.Equal(out, data) {
				t.Fatalf("re-marshal differs\n  in % x\n out % x", data, out)
			}
		} else {
			canon[6], canon[7] = out[6], out[7]
			if !bytes.Equal(out, canon) {
				t.Fatalf("re-marshal differs beyond checksum and reserved bits\n  in % x\n out % x", data, out)
			}
		}
	})
}

// TestFuzzParseSeeds (re)writes the seed corpus with -update-fuzz-seeds and
// otherwise checks that it holds the captures' adverts and the nasty cases.
func TestFuzzParseSeeds(t *testing.T) {
	type seed struct {
		name                     string
		data                     []byte
		v6, unicast, old, fixSum bool
	}
	var seeds []seed
	for _, tc := range captureCases() {
		adverts, err := readCaptureAdverts(filepath.Join(capturesDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range adverts {
			if i > 0 && c.payload[2] != 0 { // the first advert and the priority-0 one
				continue
			}
			seeds = append(seeds, seed{
				name: fmt.Sprintf("capture-%s-frame%d", tc.file[:len(tc.file)-len(".pcap")], c.frame),
				data: c.payload, v6: c.src.Is6(), unicast: !c.dst.IsMulticast(),
			})
		}
	}
	v3uc := Advert{Version: 3, VRID: 60, Priority: 150, Interval: time.Second, Addrs: mustAddrs("10.99.0.110")}
	oldForm, err := v3uc.AppendMarshal(nil, codecSrc4, codecDst4, ChecksumOpt{OldUnicastChecksum: true})
	if err != nil {
		t.Fatal(err)
	}
	carp := append([]byte{0x21, 0x05, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 20)...)
	v6odd := append(codecHex(t, "31 34 66 01 00 64 00 00 fd 00 00 99 00 00 00 00 00 00 00 00 00 00 01 00"), 0)
	seeds = append(seeds,
		seed{name: "nasty-empty"},
		seed{name: "nasty-one-byte", data: []byte{0x21}},
		seed{name: "nasty-header-only-v3", data: codecHex(t, "31 01 64 00 00 64 00 00"), fixSum: true},
		seed{name: "nasty-count255-short-body", data: codecHex(t, "31 01 64 ff 00 64 00 00 0a 00 00 01"), fixSum: true},
		seed{name: "nasty-count255-short-body-v2", data: codecHex(t, "21 01 64 ff 01 01 00 00 0a 00 00 01 70 77 00 00 00 00 00 00"), fixSum: true},
		seed{name: "nasty-v3-ipv6-odd-length", data: v6odd, v6: true, fixSum: true},
		seed{name: "nasty-v3-ipv6-addrs-read-as-ipv4", data: v6odd[:24], fixSum: true},
		seed{name: "nasty-carp", data: carp, fixSum: true},
		seed{name: "nasty-v3-reserved-bits", data: codecHex(t, "31 01 64 01 f0 64 00 00 0a 00 00 01"), fixSum: true},
		seed{name: "nasty-v3-old-unicast-checksum", data: oldForm, unicast: true, old: true},
		seed{name: "nasty-v3-old-unicast-checksum-no-opt", data: oldForm, unicast: true},
		seed{name: "nasty-version15-type15", data: codecHex(t, "ff ff ff ff ff ff ff ff"), fixSum: true},
		seed{name: "nasty-v2-ipv6-no-trailer", data: codecHex(t, "21 09 c8 01 00 02 00 00 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 09"), v6: true, fixSum: true},
	)

	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if *updateFuzzSeeds {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\nbool(%v)\nbool(%v)\nbool(%v)\n", s.data, s.v6, s.unicast, s.old, s.fixSum)
			if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range seeds {
		if _, err := os.Stat(filepath.Join(dir, s.name)); err != nil {
			t.Errorf("seed %s missing (%v): run go test -run TestFuzzParseSeeds -update-fuzz-seeds", s.name, err)
		}
	}
	if len(seeds) < 20 {
		t.Errorf("%d seeds, want the capture adverts and the nasty cases", len(seeds))
	}
}
