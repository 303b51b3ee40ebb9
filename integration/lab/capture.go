package lab

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Packet is one captured frame.
type Packet struct {
	Time     time.Time
	Data     []byte // the frame as captured: an Ethernet frame on the lab's interfaces
	LinkType uint32 // pcap link type: 1 Ethernet (the lab's veths), 113 Linux cooked ("any")
	OrigLen  int    // length on the wire; larger than len(Data) when the snapshot cut it
}

// Pcap link types the lab meets.
const (
	LinkTypeEthernet  = 1
	LinkTypeLinuxSLL  = 113
	LinkTypeLinuxSLL2 = 276
)

// Capture is a tcpdump running in a node, writing a pcap file.
type Capture struct {
	node *Node
	proc *Proc
	path string
}

// Capture runs tcpdump inside the node on ifname with a BPF filter (e.g. "ip proto 112 or arp";
// empty for everything), writing a pcap with nanosecond timestamps. It returns once tcpdump is
// capturing. Stop ends it and returns the packets.
func (n *Node) Capture(ifname, filter string) *Capture {
	n.t.Helper()
	tcpdump, err := lookPath("tcpdump")
	if err != nil {
		n.t.Fatalf("lab: tcpdump not found (install it: scripts/deps.sh): %v", err)
	}
	n.mu.Lock()
	n.procSeq++
	seq := n.procSeq
	n.mu.Unlock()
	path := filepath.Join(n.lab.logDir, fmt.Sprintf("%s-%s-%d.pcap", n.Name, ifname, seq))
	// -Z root: tcpdump would otherwise drop to user tcpdump and fail to write into the test's
	// private temporary directory. -U: flush every packet, so the file is complete at Stop.
	args := []string{"-i", ifname, "-n", "-U", "-Z", "root", "-s", "262144",
		"--time-stamp-precision=nano", "--immediate-mode", "-w", path}
	if filter != "" {
		args = append(args, filter)
	}
	p := n.Start(tcpdump, args...)
	if err := p.waitForOutput("listening on", 10*time.Second); err != nil {
		n.t.Fatalf("lab: capture on %s %s: %v", n.Name, ifname, err)
	}
	return &Capture{node: n, proc: p, path: path}
}

// Path returns the pcap file (kept until the test's temporary directory is removed).
func (c *Capture) Path() string { return c.path }

// Stop ends tcpdump (SIGINT, so it flushes) and returns the captured packets. Calling it again
// returns the packets again.
func (c *Capture) Stop() []Packet {
	t := c.node.t
	t.Helper()
	if !c.proc.Exited() {
		c.drain()
		_ = c.proc.Signal(syscall.SIGINT)
		if _, err := c.proc.Wait(5 * time.Second); err != nil {
			_ = c.proc.Kill()
			_, _ = c.proc.Wait(5 * time.Second)
		}
	}
	pkts, err := ReadPcap(c.path)
	if err != nil {
		t.Fatalf("lab: capture on %s: %v (tcpdump said: %s)", c.node.Name, err, tail(c.proc.Output(), 5))
	}
	return pkts
}

var statsRE = regexp.MustCompile(`(\d+) packets? captured, (\d+) packets? received by filter`)

// drain waits, for up to two seconds, until tcpdump has written every packet the kernel has
// already passed to it: SIGINT makes tcpdump stop at once and drop what is still queued in its
// ring buffer. tcpdump prints its counters on SIGUSR1; on a veth, "captured" catches up with
// "received by filter" once the queue is empty. (On lo the kernel counts each packet twice, so
// there the counters are only waited to stand still.)
func (c *Capture) drain() {
	start := time.Now()
	lastCap, lastRecv := -1, -1
	for time.Since(start) < 2*time.Second {
		before := strings.Count(c.proc.Output(), "received by filter")
		if c.proc.Signal(syscall.SIGUSR1) != nil {
			return
		}
		var out string
		for i := 0; i < 20; i++ {
			out = c.proc.Output()
			if strings.Count(out, "received by filter") > before {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		all := statsRE.FindAllStringSubmatch(out, -1)
		if len(all) == 0 {
			return // an unknown tcpdump: nothing to wait on
		}
		last := all[len(all)-1]
		captured, _ := strconv.Atoi(last[1])
		received, _ := strconv.Atoi(last[2])
		if captured >= received {
			return
		}
		if captured == lastCap && received == lastRecv && time.Since(start) > time.Second {
			return
		}
		lastCap, lastRecv = captured, received
		time.Sleep(20 * time.Millisecond)
	}
}

// ReadPcap reads a classic pcap file (micro- or nanosecond timestamps, either byte order). A
// truncated last record, as left by a killed tcpdump, is ignored.
func ReadPcap(path string) ([]Packet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading pcap: %w", err)
	}
	pkts, err := ParsePcap(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pkts, nil
}

// ParsePcap parses the bytes of a classic pcap file; see ReadPcap.
func ParsePcap(b []byte) ([]Packet, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("pcap: header truncated (%d bytes)", len(b))
	}
	var order binary.ByteOrder
	var nano bool
	switch magic := binary.LittleEndian.Uint32(b); magic {
	case 0xa1b2c3d4:
		order = binary.LittleEndian
	case 0xa1b23c4d:
		order, nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		order = binary.BigEndian
	case 0x4d3cb2a1:
		order, nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("pcap: bad magic %#08x (pcapng is not supported)", magic)
	}
	linkType := order.Uint32(b[20:24]) & 0x0fffffff
	var pkts []Packet
	for off := 24; off+16 <= len(b); {
		sec := order.Uint32(b[off:])
		frac := order.Uint32(b[off+4:])
		capLen := int(order.Uint32(b[off+8:]))
		origLen := int(order.Uint32(b[off+12:]))
		off += 16
		if capLen < 0 || capLen > len(b)-off {
			break // truncated last record
		}
		nsec := int64(frac)
		if !nano {
			nsec *= 1000
		}
		if nsec >= 1e9 {
			return nil, fmt.Errorf("pcap: record at offset %d: fraction of a second %d out of range", off-16, frac)
		}
		data := make([]byte, capLen)
		copy(data, b[off:off+capLen])
		pkts = append(pkts, Packet{Time: time.Unix(int64(sec), nsec), Data: data, LinkType: linkType, OrigLen: origLen})
		off += capLen
	}
	return pkts, nil
}
