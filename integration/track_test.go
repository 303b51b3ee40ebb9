//go:build linux

package integration

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/track"
)

// linkReportBound is how fast a link change must reach the tracker.
const linkReportBound = 2 * time.Second

// TestTrackInterfaceFollowsLinkChangesInsideANamespace runs a track.Manager
// whose netlink source was opened inside a lab node, from goroutines that
// are not in that namespace, and checks that administrative down/up, carrier
// loss (the switch port cut) and interfaces appearing, disappearing and being
// renamed inside the node are reported within linkReportBound, and that the
// host's own interfaces play no part.
func TestTrackInterfaceFollowsLinkChangesInsideANamespace(t *testing.T) {
	l := lab.New(t) // skips when not root
	n := l.AddNode("n1", "10.99.0.1/24")
	n.AddLink("eth1", "10.99.1.1/24")

	var src *track.NetlinkSource
	if err := n.Do(func() error {
		var err error
		src, err = track.NewNetlinkSource()
		return err
	}); err != nil {
		t.Fatalf("netlink source in %s: %v", n.NS, err)
	}
	t.Cleanup(func() { src.Close() })

	m := track.NewManager(track.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Links: src})
	// "trk9" exists in no namespace yet; "lo" exists in both the host and
	// the node (up in both), so it only checks the right table is read.
	if err := m.Configure(nil, []string{"eth0", "eth1", "trk9", "lo"}, nil); err != nil {
		t.Fatal(err)
	}
	changes := m.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { m.Run(ctx); close(runDone) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-runDone:
		case <-time.After(5 * time.Second):
			t.Error("Manager.Run did not return within 5s of cancel")
		}
	})

	for name, want := range map[string]bool{"eth0": true, "eth1": true, "trk9": false, "lo": true} {
		if up, known := m.Interface(name); up != want || !known {
			t.Errorf("initial Interface(%s) = up %v known %v, want up %v", name, up, known, want)
		}
	}

	inst := &config.Instance{Name: "VI_1", Interface: "eth0", Priority: 100,
		TrackInterfaces: []config.Track{{Name: "eth1", Weight: ptrInt(-10)}}}

	expect := func(step, name string, want bool, wantPrio int, wantFaults int) {
		t.Helper()
		start := time.Now()
		deadline := time.NewTimer(linkReportBound)
		defer deadline.Stop()
		for {
			if up, known := m.Interface(name); known && up == want {
				break
			}
			select {
			case <-changes:
			case <-deadline.C:
				up, known := m.Interface(name)
				t.Fatalf("%s: %s still up=%v known=%v after %v, want up=%v", step, name, up, known, linkReportBound, want)
			}
		}
		t.Logf("%s: %s %s reported after %v", step, name, map[bool]string{true: "up", false: "down"}[want], time.Since(start).Round(time.Millisecond))
		prio, faults := track.Compute(inst.Priority, m.ItemsFor(inst))
		if prio != wantPrio || len(faults) != wantFaults {
			t.Errorf("%s: Compute = %d %v, want priority %d and %d fault(s)", step, prio, faults, wantPrio, wantFaults)
		}
	}

	expect("start", "eth0", true, 100, 0)

	n.LinkDown("eth1")
	expect("admin down of a weighted track_interface", "eth1", false, 90, 0)
	n.LinkUp("eth1")
	expect("admin up again", "eth1", true, 100, 0)

	n.CutLink()
	expect("carrier loss on the own interface", "eth0", false, 100, 1)
	n.RestoreLink()
	expect("carrier back", "eth0", true, 100, 0)

	n.CutPort("eth1")
	expect("carrier loss on eth1", "eth1", false, 90, 0)
	n.RestorePort("eth1")
	expect("carrier back on eth1", "eth1", true, 100, 0)

	// A veth pair inside the node (no dummy module needed): up once both
	// ends are up.
	n.MustExec("ip", "link", "add", "trk9", "type", "veth", "peer", "name", "trk9p")
	n.MustExec("ip", "link", "set", "trk9p", "up")
	n.MustExec("ip", "link", "set", "trk9", "up")
	expect("an interface created inside the node", "trk9", true, 100, 0)
	n.MustExec("ip", "link", "set", "trk9", "name", "trk8")
	expect("renamed away", "trk9", false, 100, 0)
	n.MustExec("ip", "link", "set", "trk8", "name", "trk9")
	expect("renamed back", "trk9", true, 100, 0)
	n.MustExec("ip", "link", "del", "trk9")
	expect("deleted", "trk9", false, 100, 0)

	if up, _ := m.Interface("lo"); !up {
		t.Error("lo reads down")
	}
}

func ptrInt(v int) *int { return &v }
