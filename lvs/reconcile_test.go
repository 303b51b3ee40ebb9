package lvs

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func svc(addr string, port uint16, sched string) Service {
	return Service{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddr(addr), Port: port}, Scheduler: sched}
}

func dst(addr string, port uint16, w int, fwd string) Dest {
	return Dest{Addr: netip.MustParseAddr(addr), Port: port, Weight: w, Forward: fwd}
}

func TestPlanTable(t *testing.T) {
	web := svc("10.0.0.1", 80, "rr")
	other := svc("10.0.0.9", 80, "wlc") // someone else's service
	tests := []struct {
		name            string
		desired, actual []Pool
		owned           []ServiceKey
		want            []string
	}{
		{
			name:    "empty kernel: add the service, then its destinations in order",
			desired: []Pool{{web, []Dest{dst("10.0.0.3", 80, 1, NAT), dst("10.0.0.2", 80, 2, NAT)}}},
			want: []string{
				"-A -t 10.0.0.1:80 -s rr",
				"-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2",
				"-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1",
			},
		},
		{
			name:    "in step: nothing to do",
			desired: []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			actual:  []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			owned:   []ServiceKey{web.Key},
		},
		{
			name:    "one weight changes: one edit, the other destination untouched",
			desired: []Pool{{web, []Dest{dst("10.0.0.2", 80, 5, NAT), dst("10.0.0.3", 80, 1, NAT)}}},
			actual:  []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT), dst("10.0.0.3", 80, 1, NAT)}}},
			want:    []string{"-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 5"},
		},
		{
			name:    "weight 0 is a real weight",
			desired: []Pool{{web, []Dest{dst("10.0.0.2", 80, 0, NAT)}}},
			actual:  []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			want:    []string{"-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 0"},
		},
		{
			name:    "forwarding method changes: an edit",
			desired: []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, DR)}}},
			actual:  []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			want:    []string{"-e -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1"},
		},
		{
			name:    "make before break: the new destination is added before the old one goes",
			desired: []Pool{{web, []Dest{dst("10.0.0.4", 80, 1, NAT)}}},
			actual:  []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			want: []string{
				"-a -t 10.0.0.1:80 -r 10.0.0.4:80 -m -w 1",
				"-d -t 10.0.0.1:80 -r 10.0.0.2:80",
			},
		},
		{
			name:    "scheduler and persistence change: an edit of the service, destinations kept",
			desired: []Pool{{Service{Key: web.Key, Scheduler: "wlc", Timeout: 300, Netmask: 24}, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			actual:  []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			want:    []string{"-E -t 10.0.0.1:80 -s wlc -p 300 -M 255.255.255.0"},
		},
		{
			name:    "someone else's service is never touched, ours no longer wanted is deleted",
			desired: nil,
			actual:  []Pool{{other, []Dest{dst("10.0.0.5", 80, 1, NAT)}}, {web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			owned:   []ServiceKey{web.Key},
			want:    []string{"-D -t 10.0.0.1:80"},
		},
		{
			name:    "a desired service that already exists is adopted, not re-created",
			desired: []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT)}}},
			actual:  []Pool{{web, []Dest{dst("10.0.0.2", 80, 1, NAT), dst("10.0.0.7", 80, 1, NAT)}}},
			want:    []string{"-d -t 10.0.0.1:80 -r 10.0.0.7:80"},
		},
		{
			name: "fwmark and IPv6 services",
			desired: []Pool{
				{Service{Key: ServiceKey{FWMark: 7, IPv6: true}, Scheduler: "sh"}, []Dest{dst("2001:db8::2", 0, 1, DR)}},
				{Service{Key: ServiceKey{Protocol: UDP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53}, Scheduler: "rr", Timeout: 60}, []Dest{dst("2001:db8::3", 53, 1, TUN)}},
			},
			want: []string{
				"-A -u [2001:db8::1]:53 -s rr -p 60",
				"-a -u [2001:db8::1]:53 -r [2001:db8::3]:53 -i -w 1",
				"-A -f 7 -6 -s sh",
				"-a -f 7 -6 -r [2001:db8::2]:0 -g -w 1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owned := map[ServiceKey]bool{}
			for _, k := range tt.owned {
				owned[k] = true
			}
			var got []string
			for _, op := range Plan(tt.desired, tt.actual, owned) {
				got = append(got, op.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
			// Executed on a backend holding actual, the plan reaches desired.
			m := NewMemory(tt.actual...)
			if _, err := Execute(m, Plan(tt.desired, tt.actual, owned)); err != nil {
				t.Fatal(err)
			}
			after, _ := m.Pools()
			if left := Plan(tt.desired, after, owned); len(left) != 0 {
				t.Errorf("after executing the plan, still to do: %v", left)
			}
		})
	}
}

func TestExecuteGoesOnPastARefusedOperationAndNamesIt(t *testing.T) {
	web, api, dns := svc("10.0.0.1", 80, "rr"), svc("10.0.0.9", 443, "twos"), svc("10.0.0.20", 53, "wlc")
	m := NewMemory()
	boom, nosched := errors.New("boom"), errors.New("no such scheduler")
	m.Fail = func(op Op) error {
		switch {
		case op.Kind == OpAddDest && op.Dest.Addr == netip.MustParseAddr("10.0.0.3"):
			return boom
		case op.Kind == OpAddService && op.Service.Scheduler == "twos":
			return nosched
		}
		return nil
	}
	ops := Plan([]Pool{
		{web, []Dest{dst("10.0.0.2", 80, 1, NAT), dst("10.0.0.3", 80, 1, NAT), dst("10.0.0.4", 80, 1, NAT)}},
		{api, []Dest{dst("10.0.0.10", 443, 1, NAT)}},
		{dns, []Dest{dst("10.0.0.21", 53, 1, NAT)}},
	}, nil, nil)
	done, err := Execute(m, ops)
	if !errors.Is(err, boom) || !errors.Is(err, nosched) {
		t.Fatalf("Execute error %v; want boom and no such scheduler", err)
	}
	for _, want := range []string{"ipvs -a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1: boom", "ipvs -A -t 10.0.0.9:443 -s twos: no such scheduler"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// web's refused destination holds up nothing (10.0.0.4 goes in); api's
	// refused creation skips its destination, which cannot exist without
	// it; dns, planned after both, goes through whole.
	want := []string{
		"-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1", "-a -t 10.0.0.1:80 -r 10.0.0.4:80 -m -w 1",
		"-A -t 10.0.0.20:53 -s wlc", "-a -t 10.0.0.20:53 -r 10.0.0.21:53 -m -w 1",
	}
	if got := m.Transcript(); !slices.Equal(got, want) {
		t.Errorf("transcript\n%q\nwant\n%q", got, want)
	}
	if len(done) != len(want) {
		t.Errorf("%d operations reported done, want %d", len(done), len(want))
	}
}

// TestPlanConvergesWithOnlyTheNeededOperations applies random desired
// states in sequence to a backend that also holds a foreign service, and
// checks after each that (1) the table equals the desired state plus the
// foreign service, (2) the number of operations is exactly the number of
// differences counted independently, and (3) a second plan is empty.
func TestPlanConvergesWithOnlyTheNeededOperations(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	foreign := Pool{svc("192.0.2.1", 443, "wlc"), []Dest{dst("192.0.2.2", 443, 1, NAT)}}
	m := NewMemory(foreign)
	owned := map[ServiceKey]bool{}
	var prev []Pool
	for step := range 1000 {
		desired := randomPools(r)
		actual, err := m.Pools()
		if err != nil {
			t.Fatal(err)
		}
		ops := Plan(desired, actual, owned)
		if want := differences(prev, desired); len(ops) != want {
			t.Fatalf("step %d: %d operations, want %d:\n%v", step, len(ops), want, ops)
		}
		if _, err := Execute(m, ops); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		clear(owned)
		for _, p := range desired {
			owned[p.Key] = true
		}
		got, _ := m.Pools()
		want := append(slices.Clone(desired), foreign)
		slices.SortFunc(want, func(a, b Pool) int { return compareKey(a.Key, b.Key) })
		for i := range want {
			want[i].Dests = sortedDests(want[i].Dests)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("step %d: table (-want +got):\n%s", step, diff)
		}
		if again := Plan(desired, got, owned); len(again) != 0 {
			t.Fatalf("step %d: not converged: %v", step, again)
		}
		prev = desired
	}
}

// randomPools draws a desired table over every kind of service key (TCP,
// UDP and SCTP on IPv4, TCP on IPv6, fwmark on both families), schedulers,
// persistence with and without a granularity, and every forwarding method.
func randomPools(r *rand.Rand) []Pool {
	keys := []ServiceKey{
		{Protocol: TCP, Addr: netip.MustParseAddr("10.1.0.1"), Port: 80},
		{Protocol: UDP, Addr: netip.MustParseAddr("10.1.0.1"), Port: 53},
		{Protocol: SCTP, Addr: netip.MustParseAddr("10.1.0.2"), Port: 9},
		{Protocol: TCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443},
		{FWMark: 7},
		{FWMark: 7, IPv6: true},
	}
	var out []Pool
	for _, k := range keys {
		if r.IntN(3) == 0 {
			continue
		}
		s := Service{Key: k, Scheduler: []string{"rr", "wlc", "sh", "mh"}[r.IntN(4)]}
		if r.IntN(4) == 0 {
			s.Timeout = 300
			if r.IntN(2) == 0 {
				s.Netmask = 24
				if k.Is6() {
					s.Netmask = 64
				}
			}
		}
		p := Pool{Service: s}
		for j := range 8 {
			if r.IntN(2) == 0 {
				continue
			}
			a := "10.2.0." + string(rune('1'+j))
			if k.Is6() {
				a = "2001:db8:2::" + string(rune('1'+j))
			}
			p.Dests = append(p.Dests, dst(a, 80, r.IntN(3), []string{NAT, DR, TUN}[r.IntN(3)]))
		}
		out = append(out, p)
	}
	return out
}

// differences counts, independently of Plan, the operations a minimal
// plan needs from prev to next: services added, changed or removed, and
// destinations added, changed or removed within kept services.
func differences(prev, next []Pool) int {
	find := func(ps []Pool, k ServiceKey) *Pool {
		for i := range ps {
			if ps[i].Key == k {
				return &ps[i]
			}
		}
		return nil
	}
	n := 0
	for _, p := range next {
		old := find(prev, p.Key)
		if old == nil {
			n += 1 + len(p.Dests)
			continue
		}
		if !old.Service.Same(p.Service) {
			n++
		}
		for _, d := range p.Dests {
			i := slices.IndexFunc(old.Dests, func(o Dest) bool { return o.Key() == d.Key() })
			if i < 0 || old.Dests[i] != d {
				n++
			}
		}
		for _, o := range old.Dests {
			if !slices.ContainsFunc(p.Dests, func(d Dest) bool { return d.Key() == o.Key() }) {
				n++
			}
		}
	}
	for _, p := range prev {
		if find(next, p.Key) == nil {
			n++
		}
	}
	return n
}

func TestRenderIsIpvsadmSaveFormat(t *testing.T) {
	got := Render([]Pool{
		{Service{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: "wlc", Timeout: 300}, []Dest{dst("10.0.0.3", 80, 0, NAT), dst("10.0.0.2", 8080, 3, DR)}},
		{Service{Key: ServiceKey{Protocol: SCTP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 9}, Scheduler: "rr"}, nil},
	})
	want := strings.Join([]string{
		"-A -t 10.0.0.1:80 -s wlc -p 300",
		"-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g -w 3",
		"-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 0",
		"-A --sctp-service 10.0.0.1:9 -s rr",
	}, "\n") + "\n"
	if got != want {
		t.Errorf("Render:\n%s\nwant:\n%s", got, want)
	}
}
