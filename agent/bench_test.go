package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

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
	b.ResetTimer()
	var planTime time.Duration
	for i := 0; i < b.N; i++ {
		m := models[(i+1)%2]
		t0 := time.Now()
		p := a.apply(m)
		planTime += time.Since(t0)
		if len(p) != 1 || p[0].Instance != "VI_0001" || p[0].Kind != ChangeUpdate {
			b.Fatalf("a one-instance change planned %d changes:\n%s", len(p), p)
		}
	}
	b.ReportMetric(float64(planTime.Microseconds())/float64(b.N), "µs/apply")
	b.ReportMetric(1, "instances-touched")
}
