package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// advertFrame builds an Ethernet/IPv4 frame carrying a VRRP advert (checksums not filled: the
// tool does not read them).
func advertFrame(src netip.Addr, version, vrid, prio int, interval time.Duration) []byte {
	vrrp := make([]byte, 12)
	vrrp[0] = byte(version<<4 | 1)
	vrrp[1], vrrp[2], vrrp[3] = byte(vrid), byte(prio), 1
	if version == 3 {
		cs := int(interval / (10 * time.Millisecond))
		vrrp[4], vrrp[5] = byte(cs>>8&0x0f), byte(cs)
	} else {
		vrrp[4], vrrp[5] = 1, byte(interval/time.Second)
	}
	ip := make([]byte, 20)
	ip[0] = 0x45
	total := 20 + len(vrrp)
	ip[2], ip[3] = byte(total>>8), byte(total)
	ip[8], ip[9] = 255, 112
	s := src.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], []byte{224, 0, 0, 18})
	eth := make([]byte, 14)
	eth[12], eth[13] = 0x08, 0x00
	return append(append(eth, ip...), vrrp...)
}

var (
	oldM  = netip.MustParseAddr("10.99.0.1")
	newM  = netip.MustParseAddr("10.99.0.2")
	other = netip.MustParseAddr("10.99.0.3")
	t0    = time.Unix(1700000000, 0)
)

type sent struct {
	at       time.Duration
	src      netip.Addr
	vrid     int
	prio     int
	interval time.Duration
}

func capture(version int, adverts ...sent) []lab.Packet {
	var pkts []lab.Packet
	for _, a := range adverts {
		pkts = append(pkts, lab.Packet{Time: t0.Add(a.at), LinkType: lab.LinkTypeEthernet,
			Data: advertFrame(a.src, version, a.vrid, a.prio, a.interval)})
	}
	return pkts
}

func TestMeasureReadsGapAndBoundOffTheWire(t *testing.T) {
	tests := []struct {
		name         string
		version      int
		adverts      []sent
		wantGap      time.Duration
		wantBound    time.Duration
		wantGraceful bool
	}{
		{
			name:    "v2 crash: bound is 3 x 1 s + (256-100)/256 s",
			version: 2,
			adverts: []sent{
				{0, oldM, 51, 150, time.Second},
				{time.Second, oldM, 51, 150, time.Second},
				{4600 * time.Millisecond, newM, 51, 100, time.Second},
			},
			wantGap:   3600 * time.Millisecond,
			wantBound: 3*time.Second + 156*time.Second/256,
		},
		{
			name:    "v3 graceful: bound is skew after the priority-0 advert",
			version: 3,
			adverts: []sent{
				{0, oldM, 51, 150, 100 * time.Millisecond},
				{100 * time.Millisecond, oldM, 51, 0, 100 * time.Millisecond},
				{162 * time.Millisecond, newM, 51, 100, 100 * time.Millisecond},
			},
			wantGap:      62 * time.Millisecond,
			wantBound:    156 * 100 * time.Millisecond / 256,
			wantGraceful: true,
		},
		{
			name:    "other VRIDs and other senders are ignored",
			version: 3,
			adverts: []sent{
				{0, oldM, 51, 150, 100 * time.Millisecond},
				{50 * time.Millisecond, newM, 52, 200, 100 * time.Millisecond},
				{60 * time.Millisecond, other, 51, 50, 100 * time.Millisecond},
				{400 * time.Millisecond, newM, 51, 100, 100 * time.Millisecond},
			},
			wantGap:   400 * time.Millisecond,
			wantBound: 300*time.Millisecond + 156*100*time.Millisecond/256,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := measure(capture(tt.version, tt.adverts...), 51, oldM, newM)
			if err != nil {
				t.Fatal(err)
			}
			if m.Gap != tt.wantGap || m.Bound != tt.wantBound || m.Graceful != tt.wantGraceful {
				t.Errorf("got gap %v bound %v graceful %v, want %v %v %v", m.Gap, m.Bound, m.Graceful, tt.wantGap, tt.wantBound, tt.wantGraceful)
			}
			if !strings.HasPrefix(m.String(), "failover gap: ") {
				t.Errorf("report %q does not start with \"failover gap: \"", m)
			}
		})
	}
}

func TestMeasureFailsWhenTheNewMasterNeverSpoke(t *testing.T) {
	pkts := capture(2, sent{0, oldM, 51, 150, time.Second}, sent{time.Second, newM, 52, 100, time.Second})
	if _, err := measure(pkts, 51, oldM, newM); err == nil {
		t.Fatal("measure succeeded without an advert of the new master for VRID 51")
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	tests := [][]string{
		nil,
		{"f.pcap", "0", "10.0.0.1", "10.0.0.2"},
		{"f.pcap", "51", "nope", "10.0.0.2"},
		{"/nonexistent.pcap", "51", "10.0.0.1", "10.0.0.2"},
	}
	for _, args := range tests {
		var out strings.Builder
		if err := run(args, &out); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
