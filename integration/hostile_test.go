package integration

import (
	"encoding/json"
	"math/rand"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/vrrp/wire"
)

// rawSender is a raw IPv4 protocol-112 socket opened inside a lab node, with
// full control of the IP header (TTL) so it can send what a broken or
// hostile router would.
type rawSender struct {
	t   *testing.T
	src netip.Addr
	rc  *ipv4.RawConn
}

func newRawSender(t *testing.T, n *lab.Node, src string) *rawSender {
	t.Helper()
	s := &rawSender{t: t, src: netip.MustParseAddr(src)}
	err := n.Do(func() error {
		pc, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		rc, err := ipv4.NewRawConn(pc)
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if err := rc.SetMulticastInterface(ifi); err != nil {
			return err
		}
		s.rc = rc
		return nil
	})
	if err != nil {
		t.Fatalf("raw sender in %s: %v", n.Name, err)
	}
	t.Cleanup(func() { s.rc.Close() })
	return s
}

func (s *rawSender) send(ttl int, payload []byte) {
	h := &ipv4.Header{
		Version: 4, Len: 20, TOS: 0xc0, TotalLen: 20 + len(payload), TTL: ttl, Protocol: 112,
		Src: s.src.AsSlice(), Dst: net.IPv4(224, 0, 0, 18).To4(),
	}
	if err := s.rc.WriteTo(h, payload, nil); err != nil {
		s.t.Errorf("raw send: %v", err)
	}
}

func v2Advert(t *testing.T, src netip.Addr, prio uint8, pass string, interval time.Duration) []byte {
	t.Helper()
	a := wire.Advert{Version: 2, VRID: 51, Priority: prio, AuthType: wire.AuthPass, Interval: interval,
		Addrs: []netip.Addr{netip.MustParseAddr("10.99.0.100")}}
	copy(a.AuthData[:], pass)
	b, err := a.AppendMarshal(nil, src, wire.MulticastGroup4, wire.ChecksumOpt{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHostileAdvertsDoNotMoveTheMaster(t *testing.T) {
	l, n1, n2 := twoNodes(t)
	n3 := l.AddNode("evil", "10.99.0.3/24")
	d1 := startVipd(t, n1, renderConf(t, "node1", false, vi(2, 150, "10.99.0.100/24")))
	d2 := startVipd(t, n2, renderConf(t, "node2", false, vi(2, 100, "10.99.0.100/24")))
	waitVIP(t, 8*time.Second, "10.99.0.100", n1, n2)

	evil := newRawSender(t, n3, "10.99.0.3")
	src := netip.MustParseAddr("10.99.0.3")
	good := func() []byte { return v2Advert(t, src, 254, "secret1", time.Second) }
	corrupt := func(f func(b []byte) []byte) []byte { return f(good()) }

	cases := []struct {
		name    string
		ttl     int
		payload []byte
	}{
		{"ttl 64", 64, good()},
		{"bad checksum", 255, corrupt(func(b []byte) []byte { b[6] ^= 0xff; return b })},
		{"wrong password", 255, v2Advert(t, src, 254, "guess", time.Second)},
		{"interval mismatch", 255, v2Advert(t, src, 254, "secret1", 2*time.Second)},
		{"version 1", 255, corrupt(func(b []byte) []byte { b[0] = 0x11; return b })},
		{"type 2", 255, corrupt(func(b []byte) []byte { b[0] = 0x22; return b })},
		{"count says 5", 255, corrupt(func(b []byte) []byte { b[3] = 5; return b })},
		{"truncated", 255, good()[:7]},
		{"empty", 255, nil},
	}
	for round := 0; round < 5; round++ {
		for _, c := range cases {
			evil.send(c.ttl, c.payload)
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ { // a flood of garbage
		b := make([]byte, rng.Intn(64))
		rng.Read(b)
		if len(b) > 1 {
			b[1] = 51 // aim at our VRID
		}
		evil.send(255, b)
	}
	holdSteady(t, 3*time.Second, "node1 stays MASTER under hostile adverts", func() bool {
		return d1.state("VI_1") == "MASTER" && hasVIP(n1, "10.99.0.100") && d2.state("VI_1") == "BACKUP"
	})

	// The operator sees why, from the binary as they would run it: every
	// refused advert counted by reason in vipd status -o json, and the
	// peers that look misconfigured (not garbage) named in the log.
	out, err := exec.Command(lab.BuildVipd(t), "status", "-o", "json", "--socket", d1.socket).Output()
	if err != nil {
		t.Fatalf("vipd status -o json: %v", err)
	}
	var st struct {
		Drops map[string]uint64 `json:"drops"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("vipd status -o json: %v\n%s", err, out)
	}
	for _, reason := range []string{"bad_ttl", "bad_checksum", "auth_pass", "interval_mismatch", "bad_version", "bad_type", "addr_count", "truncated"} {
		if st.Drops[reason] == 0 {
			t.Errorf("vipd status -o json: no %s in drops: %s", reason, out)
		}
	}
	for _, reason := range []string{"bad_checksum", "auth_pass", "interval_mismatch", "addr_count"} {
		if !strings.Contains(d1.proc.Output(), "reason="+reason) {
			t.Errorf("node1's log does not name the misconfigured peer's %s drops", reason)
		}
	}

	// The same sender with a valid, better advert does take over the VRID:
	// the packets above did arrive and were refused on their merits.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				evil.send(255, good())
			}
		}
	}()
	defer func() { close(stop); <-done }()
	lab.Eventually(t, 3*time.Second, "node1 yields to a valid priority 254 advert", func() bool {
		return d1.state("VI_1") == "BACKUP" && !hasVIP(n1, "10.99.0.100")
	})
}
