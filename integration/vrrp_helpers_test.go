package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/integration/lab"
)

// instanceConf describes one vrrp_instance of a generated keepalived.conf.
type instanceConf struct {
	Name        string
	State       string // BACKUP (default) or MASTER
	Interface   string
	VRID        int
	Priority    int
	AdvertInt   string // "1", "0.1"
	Version     int    // 0: global default (2)
	AuthPass    string // v2 PASS when set
	VIPs        []string
	NoPreempt   bool
	UnicastSrc  string
	UnicastPeer []string
	Extra       string // raw lines added inside the block
}

var confTmpl = template.Must(template.New("conf").Parse(`
global_defs {
    router_id {{.RouterID}}
{{- if .Keepalived}}
    script_user root
    enable_script_security
{{- end}}
}
{{range .Instances}}
vrrp_instance {{.Name}} {
    state {{if .State}}{{.State}}{{else}}BACKUP{{end}}
    interface {{if .Interface}}{{.Interface}}{{else}}eth0{{end}}
    virtual_router_id {{.VRID}}
    priority {{.Priority}}
    advert_int {{if .AdvertInt}}{{.AdvertInt}}{{else}}1{{end}}
{{- if .Version}}
    version {{.Version}}
{{- end}}
{{- if .NoPreempt}}
    nopreempt
{{- end}}
{{- if .AuthPass}}
    authentication {
        auth_type PASS
        auth_pass {{.AuthPass}}
    }
{{- end}}
{{- if .UnicastSrc}}
    unicast_src_ip {{.UnicastSrc}}
    unicast_peer {
{{- range .UnicastPeer}}
        {{.}}
{{- end}}
    }
{{- end}}
    virtual_ipaddress {
{{- range .VIPs}}
        {{.}}
{{- end}}
    }
{{.Extra}}
}
{{end}}`))

func renderConf(t testing.TB, routerID string, keepalived bool, insts ...instanceConf) string {
	t.Helper()
	var b strings.Builder
	err := confTmpl.Execute(&b, struct {
		RouterID   string
		Keepalived bool
		Instances  []instanceConf
	}{routerID, keepalived, insts})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// daemon is one vipd or keepalived process in a lab node.
type daemon struct {
	t      testing.TB
	node   *lab.Node
	kind   string // "vipd" or "keepalived"
	conf   string // path of the config file
	socket string // vipd control socket
	proc   *lab.Proc
}

func writeConf(t testing.TB, name, text string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startVipd runs `vipd run` in node with the given keepalived.conf text.
func startVipd(t testing.TB, n *lab.Node, conf string, extra ...string) *daemon {
	t.Helper()
	bin := lab.BuildVipd(t)
	d := &daemon{t: t, node: n, kind: "vipd", conf: writeConf(t, n.Name, conf)}
	d.socket = filepath.Join(filepath.Dir(d.conf), "vipd.sock")
	args := append([]string{"run", "--config", d.conf, "--socket", d.socket, "--node-name", n.Name, "--log-level", "debug"}, extra...)
	if !slices.Contains(extra, "--state-dir") {
		// Never the host's /var/lib/vipd: a state of its own per start, so a
		// test's restart resumes only when it asks to (restart_test.go).
		args = append(args, "--state-dir", filepath.Join(filepath.Dir(d.conf), "state"))
	}
	d.proc = n.Start(bin, args...)
	return d
}

// startKeepalived runs real keepalived in node with the conf text.
func startKeepalived(t testing.TB, n *lab.Node, conf string) *daemon {
	t.Helper()
	bin := lab.Keepalived(t)
	d := &daemon{t: t, node: n, kind: "keepalived", conf: writeConf(t, n.Name, conf)}
	dir := filepath.Dir(d.conf)
	d.proc = n.Start(bin, "--dont-fork", "--log-console", "--log-detail", "--vrrp",
		"--use-file", d.conf,
		"--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"),
		"--checkers_pid", filepath.Join(dir, "checkers.pid"))
	return d
}

// status asks a vipd daemon for its status.
func (d *daemon) status() (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return api.NewClient(d.socket).Status(ctx)
}

// state returns the state of instance name, "" when unknown.
func (d *daemon) state(name string) string {
	st, err := d.status()
	if err != nil {
		return ""
	}
	for _, in := range st.Instances {
		if in.Name == name {
			return in.State
		}
	}
	return ""
}

func (d *daemon) stop() {
	d.t.Helper()
	if d.proc.Exited() {
		return
	}
	_ = d.proc.Signal(syscall.SIGTERM)
	if _, err := d.proc.Wait(5 * time.Second); err != nil {
		d.t.Errorf("%s in %s did not exit after SIGTERM: %v", d.kind, d.node.Name, err)
	}
}

func hasVIP(n *lab.Node, vip string) bool {
	return n.HasAddr("eth0", netip.MustParseAddr(vip))
}

// waitVIP waits until exactly the node `holder` holds vip among nodes.
func waitVIP(t testing.TB, timeout time.Duration, vip string, holder *lab.Node, nodes ...*lab.Node) {
	t.Helper()
	lab.Eventually(t, timeout, fmt.Sprintf("%s held by %s only", vip, holder.Name), func() bool {
		if !hasVIP(holder, vip) {
			return false
		}
		for _, n := range nodes {
			if n != holder && hasVIP(n, vip) {
				return false
			}
		}
		return true
	})
}

// holdSteady asserts that for d the condition stays true (no flap).
func holdSteady(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s stopped being true", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
