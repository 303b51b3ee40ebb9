package etcdtest

import (
	"context"
	"testing"
	"time"
)

func TestMemberKeepsItsDataAndPortsAcrossARestart(t *testing.T) {
	s := Start(t)
	cli := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if s.Running() {
		t.Fatal("running after Stop")
	}
	s.Start()
	// The same client, so the same endpoint.
	resp, err := cli.Get(ctx, "/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after the restart /k = %v, want v", resp.Kvs)
	}
}

func TestClusterServesWithOneMemberDown(t *testing.T) {
	c := StartCluster(t, 3)
	cli := c.Client()
	c.Members[0].Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("Put with 2 of 3 members: %v", err)
	}
	c.Members[0].Start()
	resp, err := c.Members[0].DirectClient().Get(ctx, "/k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the restarted member: %v %v", resp, err)
	}
}
