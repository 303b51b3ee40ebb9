package lvs

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/vipd/vipd/config"
)

// bigTable is 100 services of 100 real servers each: 10,000 destinations.
func bigTable() []Pool {
	pools := make([]Pool, 100)
	for i := range pools {
		pools[i].Service = Service{Key: ServiceKey{Protocol: TCP, Addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), Port: 80}, Scheduler: "wlc"}
		for j := range 100 {
			pools[i].Dests = append(pools[i].Dests, Dest{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i), byte(j + 1)}), Port: 8080, Weight: 1, Forward: NAT})
		}
	}
	return pools
}

// BenchmarkReconcileOneServerChange times the plan of a one-weight change
// in a table of 10,000 real servers over 100 services and reports its
// operations (one); executing that one operation is in
// TestBigTableReconcileIsOneOperation, and the manager's whole path (result
// in, status out) in BenchmarkManagerOneResult10k.
func BenchmarkReconcileOneServerChange(b *testing.B) {
	actual := bigTable()
	desired := bigTable()
	desired[57].Dests[42].Weight = 5
	owned := map[ServiceKey]bool{}
	for _, p := range actual {
		owned[p.Key] = true
	}
	var ops []Op
	b.ResetTimer()
	for b.Loop() {
		ops = Plan(desired, actual, owned)
	}
	b.StopTimer()
	if len(ops) != 1 || ops[0].Kind != OpUpdateDest {
		b.Fatalf("plan %v, want one edit", ops)
	}
	b.ReportMetric(float64(len(ops)), "ops")
}

// BenchmarkDesired10k computes the desired table of 100 virtual servers
// of 100 real servers each, all healthy.
func BenchmarkDesired10k(b *testing.B) {
	var in Input
	for i := range 100 {
		vs := vsOf(i)
		in.Servers = append(in.Servers, vs)
	}
	b.ResetTimer()
	for b.Loop() {
		pools, _ := Desired(in)
		if len(pools) != 100 {
			b.Fatal(len(pools))
		}
	}
}

func TestBigTableReconcileIsOneOperation(t *testing.T) {
	actual, desired := bigTable(), bigTable()
	desired[3].Dests[7].Weight = 0
	m := NewMemory(actual...)
	owned := map[ServiceKey]bool{}
	ops := Plan(desired, actual, owned)
	if done, err := Execute(m, ops); err != nil || len(done) != 1 {
		t.Fatalf("Execute = %d, %v; want 1 operation", len(done), err)
	}
	if got := m.Transcript(); len(got) != 1 || got[0] != "-e -t 10.0.3.1:80 -r 10.1.3.8:8080 -m -w 0" {
		t.Errorf("transcript %q", got)
	}
}

// vsOf is a virtual server of 100 real servers without checkers.
func vsOf(i int) *config.VirtualServer {
	vs := &config.VirtualServer{Name: fmt.Sprintf("10.0.%d.1 80", i), Address: netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), Port: 80,
		Protocol: "TCP", LBAlgo: "wlc", LBKind: "NAT", Quorum: 1}
	for j := range 100 {
		w := 1
		vs.RealServers = append(vs.RealServers, &config.RealServer{Address: netip.AddrFrom4([4]byte{10, 1, byte(i), byte(j + 1)}), Port: 8080, Weight: &w})
	}
	return vs
}

// BenchmarkManagerOneResult10k is the manager's work for one checker
// result in a configuration of 10,000 real servers over 100 virtual
// servers: recompute the desired table, plan, apply one operation on the
// in-memory backend, publish the status.
func BenchmarkManagerOneResult10k(b *testing.B) {
	var servers []*config.VirtualServer
	for i := range 100 {
		vs := vsOf(i)
		for _, rs := range vs.RealServers {
			rs.Checkers = []*config.Checker{{Type: config.CheckTCP}}
		}
		servers = append(servers, vs)
	}
	m := New(Options{Backend: NewMemory(), Log: slog.New(slog.DiscardHandler)})
	m.servers = servers
	m.applied = true
	m.setChecks("configuration")
	m.reconcile("configuration")
	id := checkID(RealServerID(VirtualServerID(servers[42]), servers[42].RealServers[7]), 0, config.CheckTCP)
	up := false
	b.ResetTimer()
	for b.Loop() {
		m.Result(CheckResult{ID: id, Type: config.CheckTCP, Up: up, OK: up})
		m.takeResults()
		up = !up
	}
}
