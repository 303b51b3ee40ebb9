package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// etcdCluster is a real etcd cluster (Debian's etcd-server), one member per
// lab node, reached over the lab network.
type etcdCluster struct {
	t       testing.TB
	members []*etcdMember
	// scheme of the client URLs ("http" when empty) and the flags etcdctl
	// needs to reach them (TLS: CA and client certificate).
	scheme   string
	ctlFlags []string
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
	return startEtcdIn(t, l, nodes, addrs, "")
}

// startEtcdIn is startEtcd with member eN's data in root/eN ("": a
// temporary directory of the test's per member).
func startEtcdIn(t testing.TB, l *lab.Lab, nodes []*lab.Node, addrs []string, root string) *etcdCluster {
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
		if root != "" {
			m.dir = filepath.Join(root, m.name)
		}
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
	scheme := c.scheme
	if scheme == "" {
		scheme = "http"
	}
	var eps []string
	for _, m := range c.members {
		eps = append(eps, scheme+"://"+m.addr+":2379")
	}
	return strings.Join(eps, ",")
}

// ctl runs etcdctl (API v3) from the first member's node against every
// member.
func (c *etcdCluster) ctl(args ...string) (string, error) {
	full := append([]string{"env", "ETCDCTL_API=3", "etcdctl", "--endpoints", c.Endpoints()}, c.ctlFlags...)
	full = append(full, "--dial-timeout", "2s", "--command-timeout", "3s")
	return c.members[0].node.Exec(append(full, args...)...)
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

// member returns the member named name (e1, e2, ...).
func (c *etcdCluster) member(name string) *etcdMember {
	c.t.Helper()
	for _, m := range c.members {
		if m.name == name {
			return m
		}
	}
	c.t.Fatalf("no etcd member %s", name)
	return nil
}

// endpointStatus is one member's line of etcdctl endpoint status -w json.
type endpointStatus struct {
	Endpoint string
	Status   struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
		} `json:"header"`
		Leader uint64 `json:"leader"`
		DBSize int64  `json:"dbSize"`
	}
}

// endpointStatus runs etcdctl endpoint status against every member.
func (c *etcdCluster) endpointStatus() ([]endpointStatus, error) {
	out, err := c.ctl("endpoint", "status", "-w", "json")
	if err != nil {
		return nil, fmt.Errorf("etcdctl endpoint status: %v: %s", err, out)
	}
	var sts []endpointStatus
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) == 0 {
		return nil, fmt.Errorf("etcdctl endpoint status: %v: %s", err, out)
	}
	return sts, nil
}

// leader returns the member that leads the cluster now, as etcdctl endpoint
// status reports it.
func (c *etcdCluster) leader() (*etcdMember, error) {
	sts, err := c.endpointStatus()
	if err != nil {
		return nil, err
	}
	for _, st := range sts {
		if st.Status.Leader == 0 || st.Status.Header.MemberID != st.Status.Leader {
			continue
		}
		for _, m := range c.members {
			if st.Endpoint == "http://"+m.addr+":2379" {
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("no member reports itself as the leader: %+v", sts)
}

// ctlAt runs etcdctl against member m only.
func (c *etcdCluster) ctlAt(m *etcdMember, args ...string) (string, error) {
	full := append([]string{"env", "ETCDCTL_API=3", "etcdctl", "--endpoints", "http://" + m.addr + ":2379", "--dial-timeout", "2s", "--command-timeout", "3s"}, args...)
	return c.members[0].node.Exec(full...)
}

// healthy reports whether every member of the cluster answers as healthy.
func (c *etcdCluster) healthy() error {
	out, err := c.ctl("endpoint", "health", "--cluster")
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// kill kills member m with SIGKILL and waits until it is gone.
func (c *etcdCluster) kill(m *etcdMember) {
	c.t.Helper()
	if err := m.proc.Kill(); err != nil {
		c.t.Fatal(err)
	}
	if _, err := m.proc.Wait(5 * time.Second); err != nil {
		c.t.Fatalf("etcd member %s survived SIGKILL: %v", m.name, err)
	}
}

// restart starts member m again (after kill) on its data directory, with
// its first run's flags: an existing data directory makes etcd rejoin with
// what its WAL says, ignoring --initial-cluster*.
func (c *etcdCluster) restart(m *etcdMember) {
	c.t.Helper()
	if !m.proc.Exited() {
		c.t.Fatalf("etcd member %s is still running", m.name)
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		c.t.Fatal(err)
	}
	m.proc = m.node.Start(bin, m.args...)
}

// pause stops members with SIGSTOP: their sockets stay open, they answer
// nothing (a hung or swapping etcd). resume undoes it.
func (c *etcdCluster) pause(ms ...*etcdMember) {
	c.t.Helper()
	for _, m := range ms {
		if err := m.proc.Signal(syscall.SIGSTOP); err != nil {
			c.t.Fatal(err)
		}
	}
}

// resume sends SIGCONT to members paused with pause.
func (c *etcdCluster) resume(ms ...*etcdMember) {
	c.t.Helper()
	for _, m := range ms {
		if err := m.proc.Signal(syscall.SIGCONT); err != nil {
			c.t.Fatal(err)
		}
	}
}

// etcdPKI is a throwaway CA and the certificates of a TLS etcd cluster in
// the lab, as PEM files: one server certificate for every member (its IP
// SANs are the members' lab addresses; it serves clients and peers, so it
// is good for server and client auth) and one client certificate (CN vipd).
type etcdPKI struct {
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// newEtcdPKI writes a fresh CA and certificates for the member addresses
// addrs into a temporary directory. Two calls give two unrelated CAs.
func newEtcdPKI(t testing.TB, addrs []string) *etcdPKI {
	t.Helper()
	dir := t.TempDir()
	p := &etcdPKI{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	serial := func() *big.Int {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	writePEM := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "vipd lab etcd CA " + filepath.Base(dir)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(p.CA, "CERTIFICATE", caDER)
	issue := func(tmpl *x509.Certificate, certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SerialNumber = serial()
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(certFile, "CERTIFICATE", der)
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(keyFile, "EC PRIVATE KEY", kder)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil {
			t.Fatalf("newEtcdPKI: %q is not an IP address", a)
		}
		ips = append(ips, ip)
	}
	issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "etcd"},
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, p.ServerCert, p.ServerKey)
	issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "vipd"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.ClientCert, p.ClientKey)
	return p
}

// etcdTLSCluster is an etcd cluster whose clients and peers speak TLS only,
// with client certificates required (--client-cert-auth): its Endpoints
// are https://, and its ctl and put present pki's client certificate
// (etcdCluster's scheme and ctlFlags).
type etcdTLSCluster struct {
	*etcdCluster
	pki *etcdPKI
}

// startEtcdTLS is startEtcd with TLS on the client and the peer URLs, every
// certificate from pki.
func startEtcdTLS(t testing.TB, l *lab.Lab, nodes []*lab.Node, addrs []string, pki *etcdPKI) *etcdTLSCluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("etcd is not installed: run scripts/deps.sh (Debian's etcd-server)")
	}
	var initial []string
	for i, a := range addrs {
		initial = append(initial, fmt.Sprintf("e%d=https://%s:2380", i+1, a))
	}
	c := &etcdTLSCluster{etcdCluster: &etcdCluster{t: t, scheme: "https",
		ctlFlags: []string{"--cacert", pki.CA, "--cert", pki.ClientCert, "--key", pki.ClientKey}}, pki: pki}
	for i, n := range nodes {
		m := &etcdMember{name: fmt.Sprintf("e%d", i+1), node: n, addr: addrs[i], dir: filepath.Join(t.TempDir(), "etcd")}
		m.args = []string{"--name", m.name, "--data-dir", m.dir,
			"--listen-client-urls", "https://" + m.addr + ":2379", "--advertise-client-urls", "https://" + m.addr + ":2379",
			"--listen-peer-urls", "https://" + m.addr + ":2380", "--initial-advertise-peer-urls", "https://" + m.addr + ":2380",
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", l.Prefix(), "--log-level", "warn",
			"--heartbeat-interval", "100", "--election-timeout", "1000",
			"--cert-file", pki.ServerCert, "--key-file", pki.ServerKey, "--trusted-ca-file", pki.CA, "--client-cert-auth",
			"--peer-cert-file", pki.ServerCert, "--peer-key-file", pki.ServerKey, "--peer-trusted-ca-file", pki.CA, "--peer-client-cert-auth"}
		m.proc = n.Start(bin, m.args...)
		c.members = append(c.members, m)
	}
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.ctl("endpoint", "health", "--cluster")
		if err == nil {
			break
		}
		last = fmt.Errorf("%v: %s", err, out)
		if time.Now().After(deadline) {
			for _, m := range c.members {
				t.Logf("%s:\n%s", m.name, m.proc.Output())
			}
			t.Fatalf("the TLS etcd cluster is not healthy after 30 s: %v", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}
