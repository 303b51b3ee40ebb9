package agent

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/coord"
	"github.com/vipd/vipd/coord/etcdtest"
)

// claimHolder reads the node named by the claim of instance ("" when none).
func claimHolder(t *testing.T, cli *clientv3.Client, instance string) string {
	t.Helper()
	r, err := cli.Get(context.Background(), coord.ClaimKey("/vipd", instance))
	if err != nil || len(r.Kvs) == 0 {
		return ""
	}
	var c coord.Claim
	if json.Unmarshal(r.Kvs[0].Value, &c) != nil {
		return "?"
	}
	return c.Node
}

// putClaim writes a claim for node under a new lease kept alive until the
// returned lease is revoked.
func putClaim(t *testing.T, cli *clientv3.Client, instance, node string) clientv3.LeaseID {
	t.Helper()
	ctx := context.Background()
	l, err := cli.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := cli.KeepAlive(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range ka {
		}
	}()
	v, _ := json.Marshal(coord.Claim{Node: node, VRID: 51, Priority: 200})
	if _, err := cli.Put(ctx, coord.ClaimKey("/vipd", instance), string(v), clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	return l.ID
}

// arbiterAgent is a test agent on srv with the arbiter as its gate (TTL 2 s),
// before its first apply.
func arbiterAgent(t *testing.T, srv *etcdtest.Server) *Agent {
	t.Helper()
	a, _ := testAgentWith(t, Options{EtcdEndpoints: srv.Endpoints(), EtcdPrefix: "/vipd", ArbiterTTL: 2 * time.Second})
	a.etcd = newOverlayState("/vipd")
	a.etcdSide = &etcdSide{metrics: coord.NewMetrics()}
	if err := a.connectEtcd(); err != nil {
		t.Fatal(err)
	}
	a.startArbiter()
	t.Cleanup(func() { a.stopArbiter(true); a.stopEtcd(true) })
	return a
}

func arbiterDemotions(t *testing.T, a *Agent) float64 {
	t.Helper()
	return etcdCounter(t, a, "vipd_arbiter_demotions_total")
}

// TestArbiterGatesTheAgent: with another node holding the claim, the
// agent's instance stays BACKUP (held by the gate) through many down
// timers; when that claim goes, it claims and enters MASTER; when another
// node holds the claim again (a lost claim), the arbiter demotes it; a
// graceful stop revokes the lease, so no claim of this node is left.
func TestArbiterGatesTheAgent(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client()
	ctx := context.Background()
	other := putClaim(t, cli, "VI_1", "n2")

	a := arbiterAgent(t, srv)
	m := model(inst("VI_1", 51, 100, "10.0.0.100/24"))
	a.fileModel = m
	a.apply(m)
	a.applied.Store(true)
	a.arbiterApplied()

	waitFor(t, "VI_1 held out of MASTER by the gate", func() bool {
		in, ok := instStatus(a, "VI_1")
		return ok && in.State == "BACKUP" && in.GateHeld
	})
	// Master_Down_Interval is about 0.2 s at 50 ms adverts: many expire.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if in, _ := instStatus(a, "VI_1"); in.State != "BACKUP" {
			t.Fatalf("VI_1 left BACKUP while n2 holds the claim: %+v", in)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if _, err := cli.Revoke(ctx, other); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_1", "MASTER")
	if h := claimHolder(t, cli, "VI_1"); h != "n1" {
		t.Fatalf("VI_1 MASTER but the claim names %q", h)
	}

	// A lost claim: the key is taken over by n2 behind n1's back.
	if _, err := cli.Delete(ctx, coord.ClaimKey("/vipd", "VI_1")); err != nil {
		t.Fatal(err)
	}
	putClaim(t, cli, "VI_1", "n2")
	waitState(t, a, "VI_1", "BACKUP")
	if d := arbiterDemotions(t, a); d < 1 {
		t.Errorf("vipd_arbiter_demotions_total = %v after a demotion", d)
	}
	if h := claimHolder(t, cli, "VI_1"); h != "n2" {
		t.Errorf("the demoted node touched n2's claim: holder %q", h)
	}

	// Our own claim of a second instance goes with the graceful stop.
	m2 := model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.102/24"))
	a.fileModel = m2
	a.apply(m2)
	waitState(t, a, "VI_2", "MASTER")
	if h := claimHolder(t, cli, "VI_2"); h != "n1" {
		t.Fatalf("VI_2 MASTER but the claim names %q", h)
	}
	a.stopArbiter(true)
	if h := claimHolder(t, cli, "VI_2"); h != "" {
		t.Errorf("a graceful stop left the claim of VI_2 (held by %q)", h)
	}
}

// TestArbiterSyncGroupEntersMasterWithEveryClaim: a sync group goes MASTER
// only once the arbiter holds the claim of every member; while another node
// holds one member's claim, no member is MASTER.
func TestArbiterSyncGroupEntersMasterWithEveryClaim(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client()
	other := putClaim(t, cli, "VI_2", "n2")

	a := arbiterAgent(t, srv)
	m := model(inst("VI_1", 51, 100, "10.0.0.100/24"), inst("VI_2", 52, 100, "10.0.0.102/24"))
	m.SyncGroups = []*config.SyncGroup{{Name: "G", Members: []string{"VI_1", "VI_2"}}}
	config.Normalize(m)
	a.fileModel = m
	a.apply(m)
	a.applied.Store(true)
	a.arbiterApplied()

	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []string{"VI_1", "VI_2"} {
			if in, _ := instStatus(a, n); in.State == "MASTER" {
				t.Fatalf("%s MASTER while n2 holds VI_2's claim", n)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := cli.Revoke(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "VI_1", "MASTER")
	waitState(t, a, "VI_2", "MASTER")
	for _, n := range []string{"VI_1", "VI_2"} {
		if h := claimHolder(t, cli, n); h != "n1" {
			t.Errorf("%s MASTER, its claim names %q", n, h)
		}
	}
}
