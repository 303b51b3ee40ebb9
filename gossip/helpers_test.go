package gossip

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vipd/vipd/api"
)

// fakeLocal is the agent as gossip sees it: a NodeState to change, a
// stream that reports changes, and a maintenance door that records calls.
type fakeLocal struct {
	mu       sync.Mutex
	state    NodeState
	subs     map[chan api.Event]bool
	maints   []maintCall
	maintErr error
	seq      uint64
}

type maintCall struct {
	Source, Instance, Reason string
	On                       bool
}

func newFakeLocal(st NodeState) *fakeLocal {
	return &fakeLocal{state: st, subs: map[chan api.Event]bool{}}
}

func (f *fakeLocal) Subscribe(ctx context.Context) (api.Status, <-chan api.Event) {
	ch := make(chan api.Event, 64)
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, ch)
		close(ch)
		f.mu.Unlock()
	}()
	return api.Status{}, ch
}

func (f *fakeLocal) Snapshot() NodeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state
	st.Instances = make([]api.FleetInstance, len(f.state.Instances))
	for i, in := range f.state.Instances {
		st.Instances[i] = cloneInstance(in)
	}
	return st
}

func (f *fakeLocal) SetMaintenance(source, instance, reason string, on bool) error {
	f.mu.Lock()
	f.maints = append(f.maints, maintCall{source, instance, reason, on})
	err := f.maintErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if instance == "" {
		f.update(func(st *NodeState) {
			st.Maintenance = ""
			if on {
				st.Maintenance = reason
				if reason == "" {
					st.Maintenance = "maintenance"
				}
			}
		})
	}
	return nil
}

func (f *fakeLocal) calls() []maintCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.maints)
}

// update changes the state and reports it on the stream.
func (f *fakeLocal) update(change func(*NodeState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.state)
	f.seq++
	for ch := range f.subs {
		select {
		case ch <- api.Event{Seq: f.seq, Time: time.Now(), Kind: api.EventInstance}:
		default: // a full channel already holds a kick
		}
	}
}

// fastTuning makes failure detection quick on loopback.
const fastTuning = `# loopback timings for tests
probe_interval: 200ms
probe_timeout: 100ms
suspicion_mult: 3
gossip_interval: 50ms
push_pull_interval: 2s
tcp_timeout: 2s
gossip_to_the_dead_time: 1s
retransmit_mult: 3
`

type nodeOpts struct {
	bind        string // "" = 127.0.0.1:0
	join        []string
	keyFile     string
	tuning      string // tuning file content; "" = fastTuning
	rejoinEvery time.Duration
	log         *slog.Logger
	wrap        func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

type testNode struct {
	*Node
	local  *fakeLocal
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's error, once done
}

// stop ends Run (a graceful leave) and waits for it.
func (tn *testNode) stop(t *testing.T) {
	t.Helper()
	tn.cancel()
	select {
	case <-tn.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Run did not return", tn.cfg.NodeName)
	}
	if tn.err != nil {
		t.Errorf("%s: Run: %v", tn.cfg.NodeName, tn.err)
	}
}

// testLog is where the nodes' logs go: stderr with GOSSIP_TEST_LOG=1.
func testLog() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startNode starts a node on 127.0.0.1 with a kernel-chosen port and waits
// until it runs.
func startNode(t *testing.T, name string, local *fakeLocal, o nodeOpts) *testNode {
	t.Helper()
	dir := t.TempDir()
	tf := filepath.Join(dir, "tuning.yaml")
	content := o.tuning
	if content == "" {
		content = fastTuning
	}
	if err := os.WriteFile(tf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	lg := o.log
	if lg == nil {
		lg = testLog()
	}
	lg = lg.With("test_node", name)
	every := o.rejoinEvery
	if every == 0 {
		every = 300 * time.Millisecond
	}
	bind := o.bind
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	n, err := New(Config{
		NodeName:    name,
		Bind:        bind,
		Join:        o.join,
		KeyFile:     o.keyFile,
		TuningFile:  tf,
		Log:         lg,
		RejoinEvery: every,
	}, local)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	n.wrapTransport = o.wrap
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, local: local, cancel: cancel, done: make(chan struct{})}
	go func() {
		tn.err = n.Run(ctx)
		close(tn.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-tn.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return", name)
		}
	})
	eventually(t, 5*time.Second, func() (bool, string) {
		select {
		case <-tn.done:
			t.Fatalf("%s: Run: %v", name, tn.err)
		default:
		}
		return n.Addr() != "", name + " has no address yet"
	})
	return tn
}

// eventually polls cond until it holds or the deadline passes; on failure
// it reports cond's last description.
func eventually(t *testing.T, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fleetNode returns the node called name of f.
func fleetNode(f api.Fleet, name string) (api.FleetNode, bool) {
	for _, n := range f.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return api.FleetNode{}, false
}

// states is "name=state" of every node in f, sorted by name.
func states(f api.Fleet) string {
	var s []string
	for _, n := range f.Nodes {
		s = append(s, n.Name+"="+n.State)
	}
	return strings.Join(s, " ")
}

// writeKey writes a key file of mode 0600 with the base64 of key.
func writeKey(t *testing.T, key []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fi is a fleet instance for tests: on 10.0.0.0/24, IPv4, VRRPv2, 1s
// adverts, VIP 10.0.0.100, unless changed.
func fi(name string, vrid int, state, source string, changes ...func(*api.FleetInstance)) api.FleetInstance {
	in := api.FleetInstance{
		InstanceStatus: api.InstanceStatus{
			Name: name, VRID: vrid, Interface: "eth0", State: state,
			Priority: 100, EffectivePriority: 100, VIPs: []string{"10.0.0.100"},
			Version: 2, Cause: "test",
		},
		Family: "ipv4", Segment: "10.0.0.0/24", Source: source, AdvertInt: "1s",
	}
	if state == "MASTER" {
		in.Master = source
		in.MasterPriority = 100
	}
	for _, c := range changes {
		c(&in)
	}
	return in
}

func hears(master string, prio int) func(*api.FleetInstance) {
	return func(in *api.FleetInstance) { in.Master, in.MasterPriority = master, prio }
}

// partition is a transport wrapper that drops everything this node sends
// to the blocked addresses: blocking both ways cuts two nodes apart.
type partition struct {
	memberlist.NodeAwareTransport
	mu      sync.Mutex
	blocked map[string]bool
}

var errCut = errors.New("partitioned (test)")

func (p *partition) block(addrs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked == nil {
		p.blocked = map[string]bool{}
	}
	for _, a := range addrs {
		p.blocked[a] = true
	}
}

func (p *partition) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = nil
}

func (p *partition) cut(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked[addr]
}

func (p *partition) WriteTo(b []byte, addr string) (time.Time, error) {
	if p.cut(addr) {
		return time.Now(), nil // lost on the way
	}
	return p.NodeAwareTransport.WriteTo(b, addr)
}

func (p *partition) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if p.cut(a.Addr) {
		return time.Now(), nil
	}
	return p.NodeAwareTransport.WriteToAddress(b, a)
}

func (p *partition) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if p.cut(addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, errCut)
	}
	return p.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (p *partition) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if p.cut(a.Addr) {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errCut)
	}
	return p.NodeAwareTransport.DialAddressTimeout(a, timeout)
}

// wrapWith returns a transport wrapper installing p.
func wrapWith(p *partition) func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	return func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		p.NodeAwareTransport = t
		return p
	}
}

// logRecorder records log lines "LEVEL msg attrs" (debug excluded).
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(recorderWriter{r}, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

type recorderWriter struct{ r *logRecorder }

func (w recorderWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	w.r.lines = append(w.r.lines, strings.TrimSpace(string(p)))
	w.r.mu.Unlock()
	return len(p), nil
}

// count is the number of lines at level whose message contains text.
func (r *logRecorder) count(level, text string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := 0
	for _, l := range r.lines {
		if strings.HasPrefix(l, "level="+level+" ") && strings.Contains(l, text) {
			c++
		}
	}
	return c
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}
