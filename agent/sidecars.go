package agent

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"net/netip"
	"runtime/debug"
	"slices"
	"time"

	"github.com/vipd/vipd/api/metrics"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vrrp"
)

// startMetrics serves Prometheus metrics on --metrics-listen, fed by the
// state stream. A port that cannot be bound stops the start (before any
// address is touched).
func (a *Agent) startMetrics(ctx context.Context, extra ...prometheus.Collector) (<-chan error, error) {
	if a.opts.MetricsListen == "" {
		return nil, nil
	}
	c := metrics.New(a, metrics.Options{NodeName: a.opts.NodeName, Version: a.opts.Version, Commit: vcsRevision()})
	go c.Run(ctx)
	errc := make(chan error, 1)
	var more []prometheus.Collector
	for _, c := range extra {
		if c != nil {
			more = append(more, c)
		}
	}
	go func() { errc <- metrics.Serve(ctx, a.opts.MetricsListen, c, a.log, more...) }()
	select {
	case err := <-errc:
		if err != nil {
			return nil, fmt.Errorf("--metrics-listen: %w", err)
		}
	case <-time.After(50 * time.Millisecond):
	}
	a.log.Info("metrics listening", "addr", a.opts.MetricsListen, "path", "/metrics")
	return errc, nil
}

// watchAddresses feeds the host's address and link events to the
// instances they concern, so VIPs removed behind vipd's back heal.
func (a *Agent) watchAddresses(ctx context.Context, w vip.Watcher) {
	err := w.Watch(ctx, func(ev vip.AddrEvent) {
		ch := vrrp.AddrChange{Ifname: ev.Ifname, Prefix: ev.Prefix}
		switch ev.Kind {
		case vip.AddrRemoved:
			ch.Kind = vrrp.AddrRemoved
		case vip.AddrAdded:
			ch.Kind = vrrp.AddrAdded
		case vip.LinkUp:
			ch.Kind = vrrp.LinkUp
		case vip.LinkDown:
			return // tracking sees links; addresses come back on LinkUp
		case vip.Resync:
			ch.Kind = vrrp.AddrResync
		case vip.RouteRemoved:
			a.routeRemoved(ev)
			return
		default:
			return
		}
		if ch.Kind != vrrp.LinkUp {
			a.lvsAddressesChanged() // ha_suspend follows a VIP at once
		}
		for _, ri := range a.concerned(ch) {
			ri.inst.AddrChanged(ch)
		}
	})
	if err != nil && ctx.Err() == nil {
		a.log.Error("address watcher stopped: VIPs removed behind vipd's back will not heal", "err", err)
	}
}

// concerned returns the running instances an address event is about: the
// ones with that VIP (address events), on that interface (link up), or all
// (resync).
func (a *Agent) concerned(ch vrrp.AddrChange) []*runningInstance {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*runningInstance
	for _, ri := range a.running {
		if ri.inst == nil {
			continue
		}
		switch ch.Kind {
		case vrrp.AddrResync:
			out = append(out, ri)
		case vrrp.LinkUp:
			if onInterface(ri, ch.Ifname) {
				out = append(out, ri)
			}
		default:
			if hasVIP(ri, ch.Prefix.Addr()) {
				out = append(out, ri)
			}
		}
	}
	return out
}

func onInterface(ri *runningInstance, ifname string) bool {
	if ri.inst.Interface() == ifname || ri.cfg.Interface == ifname {
		return true
	}
	return anyVIP(ri.cfg, func(v config.VIP) bool { return v.Dev == ifname })
}

func hasVIP(ri *runningInstance, addr netip.Addr) bool {
	return anyVIP(ri.cfg, func(v config.VIP) bool { return v.Prefix.Addr() == addr })
}

// anyVIP reports whether one of the instance's VIPs, advertised or
// excluded, satisfies f.
func anyVIP(ic *config.Instance, f func(config.VIP) bool) bool {
	return slices.ContainsFunc(ic.VIPs, f) || slices.ContainsFunc(ic.ExcludedVIPs, f)
}

// heldElsewhere reports whether a running instance other than ri is MASTER
// with addr among its VIPs.
func (a *Agent) heldElsewhere(ri *runningInstance, addr netip.Addr) bool {
	a.mu.Lock()
	var others []*vrrp.Instance
	for _, o := range a.running {
		if o != ri && o.inst != nil && hasVIP(o, addr) {
			others = append(others, o.inst)
		}
	}
	a.mu.Unlock()
	for _, o := range others {
		if o.Status().State == vrrp.StateMaster {
			return true
		}
	}
	return false
}

// routeRemoved hands a removed route to the instances whose virtual_routes
// it is.
func (a *Agent) routeRemoved(ev vip.AddrEvent) {
	type hit struct {
		inst *vrrp.Instance
		r    config.Route
	}
	var hits []hit
	a.mu.Lock()
	for _, ri := range a.running {
		if ri.inst == nil {
			continue
		}
		for _, r := range ri.cfg.Routes {
			if ev.Route.Matches(r, ri.inst.Interface()) {
				hits = append(hits, hit{ri.inst, r})
			}
		}
	}
	a.mu.Unlock()
	for _, h := range hits {
		h.inst.AddrChanged(vrrp.AddrChange{Kind: vrrp.RouteRemoved, Ifname: ev.Ifname, Route: h.r})
	}
}

// vcsRevision is the VCS revision the binary was built from ("" when the
// build did not record one).
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}
