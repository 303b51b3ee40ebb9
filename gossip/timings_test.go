package gossip

import (
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
)

// lanTuning is memberlist's LAN configuration (vipd's default), written
// out: the timings an operator gets without a tuning file.
const lanTuning = `probe_interval: 1s
probe_timeout: 500ms
suspicion_mult: 4
gossip_interval: 200ms
push_pull_interval: 30s
tcp_timeout: 10s
gossip_to_the_dead_time: 30s
retransmit_mult: 4
`

// TestFleetTimings measures, with the LAN timings on loopback, how long a
// state change takes to show in every node's fleet view (3 and 10 nodes)
// and how long until the others see a killed node dead. A benchmark: it
// runs only with VIPD_BENCH=1 (make bench), prints its figures and
// asserts only that everything was seen.
func TestFleetTimings(t *testing.T) {
	if os.Getenv("VIPD_BENCH") != "1" {
		t.Skip("fleet timings: runs only with VIPD_BENCH=1 (make bench sets it)")
	}
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprintf("%d-nodes", n), func(t *testing.T) {
			nodes := make([]*testNode, 0, n)
			for i := range n {
				name := fmt.Sprintf("node-%02d", i)
				local := newFakeLocal(NodeState{Version: "1", Instances: []api.FleetInstance{
					fi("VI_1", 51, "BACKUP", fmt.Sprintf("10.0.0.%d", i+1)),
				}})
				var join []string
				if i > 0 {
					join = []string{nodes[0].Addr()}
				}
				nodes = append(nodes, startNode(t, name, local, nodeOpts{join: join, tuning: lanTuning, rejoinEvery: 15 * time.Second}))
			}
			allAlive := func() bool {
				for _, tn := range nodes {
					f := tn.Fleet()
					alive := 0
					for _, fnode := range f.Nodes {
						if fnode.Alive {
							alive++
						}
					}
					if alive != n {
						return false
					}
				}
				return true
			}
			eventually(t, 30*time.Second, func() (bool, string) { return allAlive(), "not every node sees every other alive" })

			// State changes: each round one node flips its instance and
			// the time until every node's view shows it is taken.
			var took []time.Duration
			master := make([]bool, n)
			for round := range 20 {
				src := nodes[round%n]
				master[round%n] = !master[round%n] // a real change every round
				want := "BACKUP"
				if master[round%n] {
					want = "MASTER"
				}
				start := time.Now()
				src.local.update(func(st *NodeState) { st.Instances[0].State = want })
				for {
					seen := 0
					for _, tn := range nodes {
						if fn, ok := fleetNode(tn.Fleet(), src.cfg.NodeName); ok && len(fn.Instances) == 1 && fn.Instances[0].State == want {
							seen++
						}
					}
					if seen == n {
						break
					}
					if time.Since(start) > 10*time.Second {
						t.Fatalf("round %d: a change of %s not seen everywhere after 10 s", round, src.cfg.NodeName)
					}
					time.Sleep(time.Millisecond)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)

			// A killed node (no goodbye) seen dead by every other node.
			victim := nodes[n-1]
			start := time.Now()
			victim.kill()
			for {
				seen := 0
				for _, tn := range nodes[:n-1] {
					if fn, ok := fleetNode(tn.Fleet(), victim.cfg.NodeName); ok && fn.State == stateDead {
						seen++
					}
				}
				if seen == n-1 {
					break
				}
				if time.Since(start) > 60*time.Second {
					t.Fatalf("killed %s not seen dead by all after 60 s", victim.cfg.NodeName)
				}
				time.Sleep(10 * time.Millisecond)
			}
			dead := time.Since(start)
			fmt.Printf("fleet timings, %2d nodes, LAN timings on loopback: state change in every view: median %v, max %v (20 changes); killed node seen dead by all: %v\n",
				n, took[len(took)/2].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond), dead.Round(time.Millisecond))
		})
	}
}

// TestNodesBootingTogetherFormAFleetQuickly: a node whose first join finds
// nobody listening yet (a fleet booting at once) retries within about a
// second, not at the next re-join tick (15 s here).
func TestNodesBootingTogetherFormAFleetQuickly(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // free again: node-a takes it a moment after node-b tried it
	b := startNode(t, "node-b", newFakeLocal(NodeState{Version: "1"}), nodeOpts{join: []string{addr}, rejoinEvery: 15 * time.Second})
	time.Sleep(300 * time.Millisecond)
	a := startNode(t, "node-a", newFakeLocal(NodeState{Version: "1"}), nodeOpts{bind: addr, rejoinEvery: 15 * time.Second})
	eventually(t, 8*time.Second, func() (bool, string) {
		fa, fb := a.Fleet(), b.Fleet()
		return states(fa) == "node-a=alive node-b=alive" && states(fb) == states(fa), "a: " + states(fa) + "; b: " + states(fb)
	})
}

// TestSplitBrainOfALiveMasterIsConfirmedAndOfAKilledOneIsNot: the new
// MASTER asks the old one for news; a live one answers (split brain on
// both nodes), a killed one cannot (none, while it is not yet dead).
func TestSplitBrainOfALiveMasterIsConfirmedAndOfAKilledOneIsNot(t *testing.T) {
	t.Parallel()
	t0 := time.Now().Add(-time.Hour)
	for _, killed := range []bool{false, true} {
		a := startNode(t, "node-a", newFakeLocal(NodeState{Instances: []api.FleetInstance{
			fi("VI_1", 51, "MASTER", "10.0.0.1", func(in *api.FleetInstance) { in.Since = t0 })}}),
			nodeOpts{tuning: lanTuning, rejoinEvery: 15 * time.Second})
		b := startNode(t, "node-b", newFakeLocal(NodeState{Instances: []api.FleetInstance{
			fi("VI_1", 51, "BACKUP", "10.0.0.2", hears("10.0.0.1", 100))}}),
			nodeOpts{join: []string{a.Addr()}, tuning: lanTuning, rejoinEvery: 15 * time.Second})
		eventually(t, 10*time.Second, func() (bool, string) {
			f := b.Fleet()
			return states(f) == "node-a=alive node-b=alive" && len(f.Nodes[0].Instances) == 1, states(f)
		})
		if killed {
			a.kill()
			// node-b takes over a Master_Down_Interval later: node-a was
			// last heard well before that.
			time.Sleep(time.Second)
		}
		b.local.update(func(st *NodeState) {
			st.Instances[0].State, st.Instances[0].Since, st.Instances[0].Master = "MASTER", time.Now(), "10.0.0.2"
		})
		split := func() bool {
			for _, w := range b.Fleet().Warnings {
				if w.Kind == api.WarnSplitBrain {
					return true
				}
			}
			return false
		}
		if !killed {
			eventually(t, 3*time.Second, func() (bool, string) { return split(), "no split brain on node-b with node-a alive and MASTER" })
			a.stop(t)
			b.stop(t)
			continue
		}
		// LAN timings: node-a is not declared dead for seconds; no split
		// brain meanwhile.
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if split() {
				t.Fatalf("split brain on node-b with node-a killed: %+v", b.Fleet().Warnings)
			}
		}
	}
}
