package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// etcdCluster is a real etcd cluster (Debian's etcd-server), one member per
// lab node, reached over the lab network.
type etcdCluster struct {
	t       testing.TB
	members []*etcdMember
}

type etcdMember struct {
	name string
	node *lab.Node
	addr string // the member's lab address
	dir  string
	args []string
	proc *lab.Proc
}

// startEtcd starts one etcd member on each of nodes (whose eth0 address is
// addrs[i]) as one new cluster, and waits until it is healthy.
func startEtcd(t testing.TB, l *lab.Lab, nodes []*lab.Node, addrs []string) *etcdCluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("etcd is not installed: run scripts/deps.sh (Debian's etcd-server)")
	}
	var initial []string
	for i, a := range addrs {
		initial = append(initial, fmt.Sprintf("e%d=http://%s:2380", i+1, a))
	}
	c := &etcdCluster{t: t}
	for i, n := range nodes {
		m := &etcdMember{name: fmt.Sprintf("e%d", i+1), node: n, addr: addrs[i], dir: filepath.Join(t.TempDir(), "etcd")}
		m.args = []string{"--name", m.name, "--data-dir", m.dir,
			"--listen-client-urls", "http://" + m.addr + ":2379", "--advertise-client-urls", "http://" + m.addr + ":2379",
			"--listen-peer-urls", "http://" + m.addr + ":2380", "--initial-advertise-peer-urls", "http://" + m.addr + ":2380",
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", l.Prefix(), "--log-level", "warn",
			"--heartbeat-interval", "100", "--election-timeout", "1000"}
		m.proc = n.Start(bin, m.args...)
		c.members = append(c.members, m)
	}
	lab.Eventually(t, 30*time.Second, "the etcd cluster healthy", func() bool {
		_, err := c.ctl("endpoint", "health", "--cluster")
		return err == nil
	})
	return c
}

// Endpoints is the --etcd-endpoints value.
func (c *etcdCluster) Endpoints() string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, "http://"+m.addr+":2379")
	}
	return strings.Join(eps, ",")
}

// ctl runs etcdctl (API v3) from the first member's node against every
// member.
func (c *etcdCluster) ctl(args ...string) (string, error) {
	full := append([]string{"env", "ETCDCTL_API=3", "etcdctl", "--endpoints", c.Endpoints(), "--dial-timeout", "2s", "--command-timeout", "3s"}, args...)
	return c.members[0].node.Exec(full...)
}

// put is etcdctl put, failing the test on error.
func (c *etcdCluster) put(key, value string) {
	c.t.Helper()
	if out, err := c.ctl("put", key, value); err != nil {
		c.t.Fatalf("etcdctl put %s: %v\n%s", key, err, out)
	}
}

// del is etcdctl del, failing the test on error.
func (c *etcdCluster) del(key string) {
	c.t.Helper()
	if out, err := c.ctl("del", key); err != nil {
		c.t.Fatalf("etcdctl del %s: %v\n%s", key, err, out)
	}
}

// killAll kills every member with SIGKILL.
func (c *etcdCluster) killAll() {
	for _, m := range c.members {
		_ = m.proc.Kill()
		_, _ = m.proc.Wait(5 * time.Second)
	}
}
