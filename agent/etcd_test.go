package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/coord"
	"github.com/vipd/vipd/coord/etcdtest"
)

// etcdAgent is a test agent following an embedded etcd, with the file
// model m in force.
func etcdAgent(t *testing.T, srv *etcdtest.Server) *Agent {
	t.Helper()
	a, _ := testAgentWith(t, Options{EtcdEndpoints: srv.Endpoints(), EtcdPrefix: "/vipd"})
	a.etcd = newOverlayState("/vipd")
	a.etcdSide = &etcdSide{metrics: coord.NewMetrics()}
	m := model(inst("VI_1", 51, 100, "10.0.0.100/24"))
	a.fileModel = m
	a.apply(m)
	a.applied.Store(true)
	if err := a.connectEtcd(); err != nil {
		t.Fatal(err)
	}
	if err := a.startEtcd(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.stopEtcd(true) })
	return a
}

func instStatus(a *Agent, name string) (api.InstanceStatus, bool) {
	for _, in := range a.Status().Instances {
		if in.Name == name {
			return in, true
		}
	}
	return api.InstanceStatus{}, false
}

// TestEtcdOverlayDrivesTheAgent: a priority key overrides, a maintenance
// key takes the instance out and its deletion brings it back, an instance
// put as a keepalived block starts, a bad value changes nothing and is
// counted, and the node's status is published.
func TestEtcdOverlayDrivesTheAgent(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client()
	a := etcdAgent(t, srv)
	ctx := context.Background()
	put := func(k, v string) {
		t.Helper()
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, a, "VI_1", "MASTER")

	put("/vipd/priority/VI_1/n1", "200")
	put("/vipd/priority/VI_1/other-node", "50") // not ours
	waitFor(t, "the etcd priority override", func() bool {
		in, _ := instStatus(a, "VI_1")
		return in.EffectivePriority == 200
	})

	put("/vipd/priority/VI_1/n1", "banana")
	waitFor(t, "the bad value counted", func() bool {
		return rejected(t, a) == 1
	})
	if in, _ := instStatus(a, "VI_1"); in.EffectivePriority != 200 {
		t.Errorf("a bad value changed the priority: %d", in.EffectivePriority)
	}

	put("/vipd/config/instances/VI_2", `vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    priority 100
    advert_int 0.05
    version 3
    mcast_src_ip 10.0.0.1
    virtual_ipaddress {
        10.0.0.102/24
    }
}`)
	waitState(t, a, "VI_2", "MASTER")

	put("/vipd/maintenance/n1/VI_1", "disk swap")
	waitState(t, a, "VI_1", "FAULT")
	if in, _ := instStatus(a, "VI_2"); in.State != "MASTER" {
		t.Errorf("maintenance of VI_1 moved VI_2: %+v", in)
	}
	if _, err := cli.Delete(ctx, "/vipd/maintenance/n1/VI_1"); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_1", "MASTER")

	if _, err := cli.Delete(ctx, "/vipd/config/instances/VI_2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VI_2 removed with its key", func() bool { _, ok := instStatus(a, "VI_2"); return !ok })

	waitFor(t, "the status published", func() bool {
		r, err := cli.Get(ctx, "/vipd/status/n1")
		if err != nil || len(r.Kvs) != 1 {
			return false
		}
		var st api.Status
		return json.Unmarshal(r.Kvs[0].Value, &st) == nil && slices.ContainsFunc(st.Instances, func(i api.InstanceStatus) bool { return i.Name == "VI_1" })
	})
	a.stopEtcd(true)
	if r, err := cli.Get(ctx, "/vipd/status/n1"); err != nil || len(r.Kvs) != 0 {
		t.Errorf("a graceful stop left the status key: %v %v", r, err)
	}
}

// TestEtcdDownLeavesTheFileConfigurationRunning: etcd unreachable at start
// delays nothing; when it comes, its overlay applies.
func TestEtcdDownAtStartThenUp(t *testing.T) {
	srv := etcdtest.New(t) // not started
	a := etcdAgent(t, srv)
	waitState(t, a, "VI_1", "MASTER")
	srv.Start()
	if _, err := srv.Client().Put(context.Background(), "/vipd/priority/VI_1/n1", "222"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the override once etcd is up", func() bool {
		in, _ := instStatus(a, "VI_1")
		return in.EffectivePriority == 222
	})
}

// TestEtcdInvalidObjectKeepsTheRunningModel: a store instance that does not
// validate is refused with its key, and the running model stays.
func TestEtcdInvalidObjectKeepsTheRunningModel(t *testing.T) {
	srv := etcdtest.Start(t)
	a := etcdAgent(t, srv)
	waitState(t, a, "VI_1", "MASTER")
	if _, err := srv.Client().Put(context.Background(), "/vipd/config/instances/VI_1", "interface: eth0\nvirtual_router_id: 300\npriority: 100\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal counted", func() bool { return rejected(t, a) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if in, _ := instStatus(a, "VI_1"); in.State != "MASTER" || in.VRID != 51 {
		t.Errorf("an invalid store object changed VI_1: %+v", in)
	}
}

// rejected reads vipd_etcd_rejected_values_total.
func rejected(t *testing.T, a *Agent) float64 {
	t.Helper()
	return etcdCounter(t, a, "vipd_etcd_rejected_values_total")
}

// etcdCounter reads the counter name of the etcd side's metrics.
func etcdCounter(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.etcdSide.metrics)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// TestEtcdMaintenanceFromTheCLIEndsWithItsKey: vipd maint on this node
// with etcd writes the key (etcd's source applies it), so deleting the key
// anywhere ends it; a reload adding an instance under a maintenance key
// takes it out at once.
func TestEtcdMaintenanceFromTheCLIEndsWithItsKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client()
	a := etcdAgent(t, srv)
	ctx := context.Background()
	waitState(t, a, "VI_1", "MASTER")
	if err := a.Maintenance(ctx, api.MaintRequest{On: true, Instance: "VI_1", Reason: "nic"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_1", "FAULT")
	if r, err := cli.Get(ctx, "/vipd/maintenance/n1/VI_1"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "nic" {
		t.Fatalf("the key: %v %v", r, err)
	}
	if _, err := cli.Delete(ctx, "/vipd/maintenance/n1/VI_1"); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_1", "MASTER")

	// A reload that adds VI_3, which a key already keeps in maintenance.
	if _, err := cli.Put(ctx, "/vipd/maintenance/n1/VI_3", "not yet"); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "k.conf")
	text := ""
	for _, in := range []struct {
		name string
		vrid int
		vip  string
	}{{"VI_1", 51, "10.0.0.100/24"}, {"VI_3", 53, "10.0.0.103/24"}} {
		text += fmt.Sprintf("vrrp_instance %s {\n interface eth0\n virtual_router_id %d\n priority 100\n advert_int 0.05\n version 3\n mcast_src_ip 10.0.0.1\n virtual_ipaddress {\n  %s\n }\n}\n", in.name, in.vrid, in.vip)
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	a.opts.ConfigPath = conf
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_3", "FAULT")
	if in, _ := instStatus(a, "VI_1"); in.State != "MASTER" {
		t.Errorf("the reload moved VI_1: %+v", in)
	}
}

// TestEtcdKeyForAnUnknownInstanceIsReported: a priority key for this node
// naming an instance it does not run is logged and counted as rejected;
// the value is kept and applies when the instance appears.
func TestEtcdKeyForAnUnknownInstanceIsReported(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client()
	a := etcdAgent(t, srv)
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/vipd/priority/VI_9/n1", "210"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the key for an unknown instance counted", func() bool { return rejected(t, a) == 1 })
	if _, err := cli.Put(ctx, "/vipd/config/instances/VI_9", `vrrp_instance VI_9 {
    interface eth0
    virtual_router_id 59
    priority 100
    advert_int 0.05
    version 3
    mcast_src_ip 10.0.0.1
    virtual_ipaddress {
        10.0.0.109/24
    }
}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VI_9 running with the kept priority 210", func() bool {
		in, ok := instStatus(a, "VI_9")
		return ok && in.EffectivePriority == 210
	})
	if r := rejected(t, a); r != 1 {
		t.Errorf("rejected values = %v, want 1 (counted once)", r)
	}
}

// TestEtcdStateSurvivesARestartWithoutEtcd: the store's last good state is
// saved in --state-dir; a start while etcd is down runs on it (the store's
// maintenance and priority stay in force) instead of on the file alone.
func TestEtcdStateSurvivesARestartWithoutEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client()
	dir := t.TempDir()
	start := func() *Agent {
		a, _ := testAgentWith(t, Options{EtcdEndpoints: srv.Endpoints(), EtcdPrefix: "/vipd", StateDir: dir})
		a.etcd = newOverlayState("/vipd")
		a.etcdSide = &etcdSide{metrics: coord.NewMetrics()}
		m := model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.102/24"))
		a.fileModel = m
		first, ov, resumed := a.resumeEtcd(m)
		a.apply(first)
		if resumed {
			a.etcdOverrides(ov)
		}
		if err := a.connectEtcd(); err != nil {
			t.Fatal(err)
		}
		if err := a.startEtcd(); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := start()
	ctx := context.Background()
	for k, v := range map[string]string{"/vipd/maintenance/n1/VI_1": "disk swap", "/vipd/priority/VI_2/n1": "222"} {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, a, "VI_1", "FAULT")
	waitFor(t, "VI_2 at the store's priority", func() bool { in, _ := instStatus(a, "VI_2"); return in.EffectivePriority == 222 })
	waitFor(t, "the snapshot saved", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, etcdSnapshotFile))
		return err == nil && strings.Contains(string(b), "disk swap")
	})
	a.stopEtcd(true)
	srv.Stop()

	b := start()
	defer b.stopEtcd(true)
	in, ok := instStatus(b, "VI_1")
	if !ok || in.State != "FAULT" {
		t.Errorf("after a restart without etcd VI_1 is %+v, want FAULT (the store's maintenance)", in)
	}
	if in, _ := instStatus(b, "VI_2"); in.EffectivePriority != 222 {
		t.Errorf("after a restart without etcd VI_2's priority is %d, want the store's 222", in.EffectivePriority)
	}
}
