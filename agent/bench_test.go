package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
)

func thousand(prioOf1 int) *config.Model {
	insts := make([]*config.Instance, 1000)
	for k := range insts {
		vrid := k%250 + 1
		ic := inst(fmt.Sprintf("VI_%04d", k), vrid, 100, fmt.Sprintf("10.%d.%d.1/32", k/250, vrid))
		ic.Interface = fmt.Sprintf("eth%d", k/250)
		insts[k] = ic
	}
	insts[1].Priority = prioOf1
	return model(insts...)
}

// BenchmarkApplyOneChangeAmong1000 is DESIGN 5's figure: a one-instance
// change (a priority) among 1000 running instances, planned and applied.
// It fails if the plan touches any other instance.
func BenchmarkApplyOneChangeAmong1000(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := vrrp.NewTransportWith(log, func(string, bool) (vrrp.PacketConn, error) {
		return &silentConn{closed: make(chan struct{})}, nil
	})
	a := newAgent(Options{NodeName: "n1", Logger: log}, vip.NewMemory(), tr)
	ctx, cancel := context.WithCancel(context.Background())
	a.runCtx = ctx
	defer a.shutdown(cancel)
	models := [2]*config.Model{thousand(100), thousand(120)}
	a.apply(models[0])
	for deadline := time.Now().Add(30 * time.Second); ; {
		all := true
		for _, st := range a.hub.snapshot() {
			all = all && st.State == "MASTER"
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the 1000 instances did not all become MASTER")
		}
		time.Sleep(10 * time.Millisecond)
	}
	type seen struct {
		ri    *runningInstance
		since time.Time
		prio  int
	}
	snapshot := func() map[string]seen {
		out := map[string]seen{}
		for name, ri := range a.running {
			st := statusByName(a, name)
			out[name] = seen{ri, a.hubSince(ri), st.EffectivePriority}
		}
		return out
	}
	b.ResetTimer()
	var planTime time.Duration
	touched := 0
	for i := 0; i < b.N; i++ {
		m := models[(i+1)%2]
		b.StopTimer()
		before := snapshot()
		b.StartTimer()
		t0 := time.Now()
		p := a.apply(m)
		planTime += time.Since(t0)
		b.StopTimer()
		if len(p) != 1 || p[0].Instance != "VI_0001" || p[0].Kind != ChangeUpdate {
			b.Fatalf("a one-instance change planned %d changes:\n%s", len(p), p)
		}
		// Touched: another runtime, a transition, or a priority change.
		for name, s := range snapshot() {
			if o := before[name]; o.ri != s.ri || !o.since.Equal(s.since) || o.prio != s.prio {
				touched++
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(planTime.Microseconds())/float64(b.N), "µs/apply")
	b.ReportMetric(float64(touched)/float64(b.N), "instances-touched/op")
}

func statusByName(a *Agent, name string) (s apiStatus) {
	for _, st := range a.hub.snapshot() {
		if st.Name == name {
			return st
		}
	}
	return s
}

type apiStatus = api.InstanceStatus
