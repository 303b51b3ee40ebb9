package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/agent"
	"github.com/vipd/vipd/agent/state"
	"github.com/vipd/vipd/api"
	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/loader"
	"github.com/vipd/vipd/coord"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var testNow = time.Date(2025, 3, 1, 12, 33, 12, 0, time.UTC)

type result struct {
	code           int
	stdout, stderr string
}

// vipd runs the real command tree with args. Interfaces eth0 and eth1
// exist; `run` records its options instead of starting an agent.
func vipd(t *testing.T, args ...string) (result, *agent.Options) {
	t.Helper()
	var out, errb bytes.Buffer
	var got *agent.Options
	env := &cliEnv{
		stdout:          &out,
		stderr:          &errb,
		interfaceExists: func(name string) bool { return name == "eth0" || name == "eth1" },
		runAgent: func(_ context.Context, o agent.Options) error {
			got = &o
			if o.Logger != nil {
				o.Logger.Info("agent says hello")
			}
			return nil
		},
		now: func() time.Time { return testNow },
	}
	code := execute(args, env)
	return result{code: code, stdout: out.String(), stderr: errb.String()}, got
}

func TestCheckValidConfigExitsZeroWithSummary(t *testing.T) {
	r, _ := vipd(t, "check", "--config", "testdata/good.conf")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "testdata/good.conf: OK (2 instances, 1 virtual server, ") {
		t.Errorf("stdout = %q, want the OK summary with 2 instances and 1 virtual server", r.stdout)
	}
	for _, line := range nonEmptyLines(r.stderr) {
		if !strings.Contains(line, "warning: ") {
			t.Errorf("stderr line %q on a valid file is not a warning", line)
		}
	}
}

func TestCheckInvalidConfigExitsOneWithFileLine(t *testing.T) {
	r, _ := vipd(t, "check", "--config", "testdata/broken.conf")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing on an invalid file", r.stdout)
	}
	lines := nonEmptyLines(r.stderr)
	if len(lines) < 2 {
		t.Fatalf("stderr = %q, want the error and a summary", r.stderr)
	}
	// virtual_router_id 300 is on line 7.
	if !strings.Contains(r.stderr, "testdata/broken.conf:7: ") || !strings.Contains(r.stderr, "300") {
		t.Errorf("stderr = %q, want an error at testdata/broken.conf:7: about 300", r.stderr)
	}
	if last := lines[len(lines)-1]; last != "testdata/broken.conf: 1 error" {
		t.Errorf("last line = %q, want %q", last, "testdata/broken.conf: 1 error")
	}
}

func TestCheckWarnsAboutAMissingInterface(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	writeFile(t, conf, "vrrp_instance VI_1 {\n  interface nosuch0\n  virtual_router_id 1\n  virtual_ipaddress {\n    10.1.1.1/24\n  }\n}\n")
	r, _ := vipd(t, "check", "--config", conf)
	// Like keepalived, a missing interface is a warning (the instance
	// stays in FAULT until it appears), not a reason to refuse the file.
	// The position is the interface line or its vrrp_instance's.
	atLine := strings.Contains(r.stderr, conf+":2: warning: ") || strings.Contains(r.stderr, conf+":1: warning: ")
	if r.code != 0 || !atLine || !strings.Contains(r.stderr, "nosuch0") {
		t.Errorf("exit %d stderr %q, want 0 and a warning about nosuch0 at %s:1 or :2", r.code, r.stderr, conf)
	}
}

func TestCheckReadsConfigFromEnvironment(t *testing.T) {
	t.Setenv("VIPD_CONFIG", "testdata/good.conf")
	r, _ := vipd(t, "check")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "testdata/good.conf: OK") {
		t.Errorf("exit %d stdout %q stderr %q, want OK for VIPD_CONFIG", r.code, r.stdout, r.stderr)
	}
}

func TestReportCheck(t *testing.T) {
	pos := config.Pos{File: "k.conf", Line: 3}
	warn := config.Diagnostic{Pos: pos, Severity: config.Warning, Msg: "lvs_sync_daemon: not implemented, ignored"}
	bad := config.Diagnostic{Pos: config.Pos{File: "k.conf", Line: 9}, Severity: config.Error, Msg: "priority 300: must be 1..255"}
	model := &config.Model{Instances: []*config.Instance{{Name: "VI_1"}}}
	tests := []struct {
		name       string
		model      *config.Model
		diags      config.Diagnostics
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name: "valid without warnings", model: model,
			wantStdout: "k.conf: OK (1 instance, 0 virtual servers, 0 warnings)\n",
		},
		{
			name: "warnings are printed and do not fail", model: model, diags: config.Diagnostics{warn},
			wantStdout: "k.conf: OK (1 instance, 0 virtual servers, 1 warning)\n",
			wantStderr: "k.conf:3: warning: lvs_sync_daemon: not implemented, ignored\n",
		},
		{
			name: "errors come after warnings and fail", model: model, diags: config.Diagnostics{bad, warn, bad},
			wantCode: 1,
			wantStderr: "k.conf:3: warning: lvs_sync_daemon: not implemented, ignored\n" +
				"k.conf:9: priority 300: must be 1..255\n" +
				"k.conf:9: priority 300: must be 1..255\n" +
				"k.conf: 2 errors\n",
		},
		{
			name: "no model and no error is never OK", wantCode: 1,
			wantStderr: "k.conf: could not be loaded\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := reportCheck(&out, &errb, "k.conf", tt.model, tt.diags)
			if code != tt.wantCode || out.String() != tt.wantStdout || errb.String() != tt.wantStderr {
				t.Errorf("reportCheck = %d\nstdout %q\nstderr %q\nwant %d\nstdout %q\nstderr %q",
					code, out.String(), errb.String(), tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestConvertOutputDecodesBackToTheSameModel(t *testing.T) {
	r, _ := vipd(t, "convert", "testdata/good.conf")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	header := "# converted from testdata/good.conf by vipd convert\n"
	if !strings.HasPrefix(r.stdout, header) {
		t.Errorf("output does not start with %q:\n%s", header, r.stdout)
	}
	want, diags := loader.Load("testdata/good.conf", loader.Options{})
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	yamlPath := filepath.Join(t.TempDir(), "vipd.yaml")
	writeFile(t, yamlPath, r.stdout)
	got, diags := loader.Load(yamlPath, loader.Options{})
	if err := diags.Err(); err != nil {
		t.Fatalf("converted YAML does not load: %v\n%s", err, r.stdout)
	}
	if diff := cmp.Diff(want, got, modelOpts...); diff != "" {
		t.Errorf("keepalived.conf and its YAML differ (-conf +yaml):\n%s", diff)
	}
	// And with config.DecodeYAML directly, the decoder `convert` targets.
	direct, diags := config.DecodeYAML("vipd.yaml", []byte(r.stdout))
	if err := diags.Err(); err != nil || direct == nil {
		t.Fatalf("DecodeYAML: %v", err)
	}
	config.Normalize(direct)
	if diff := cmp.Diff(want, direct, modelOpts...); diff != "" {
		t.Errorf("keepalived.conf and DecodeYAML(convert) differ (-conf +yaml):\n%s", diff)
	}
}

func TestConvertRefusesABrokenFile(t *testing.T) {
	r, _ := vipd(t, "convert", "testdata/broken.conf")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "testdata/broken.conf:7: ") {
		t.Errorf("exit %d stdout %q stderr %q, want 1, no YAML, the error at line 7", r.code, r.stdout, r.stderr)
	}
}

func sampleStatus() api.Status {
	return api.Status{
		Node: "lb1",
		Instances: []api.InstanceStatus{
			{
				Name: "VI_1", VRID: 51, Interface: "eth0", State: "MASTER",
				Priority: 150, EffectivePriority: 130,
				VIPs:   []string{"192.168.200.16/24", "192.168.200.17/24"},
				Master: "192.168.200.2", Since: testNow.Add(-3*time.Minute - 12*time.Second),
				Cause: "master down timer expired",
				Tracked: []api.TrackedStatus{
					{Kind: "script", Name: "chk_main", OK: false, Weight: -20},
					{Kind: "interface", Name: "eth0", OK: true},
					{Kind: "file", Name: "prio_file", OK: true, Weight: 1, Value: 0},
				},
			},
			{
				Name: "VI_2", VRID: 52, Interface: "eth1", State: "BACKUP",
				Priority: 100, EffectivePriority: 100, VIPs: []string{"10.0.0.100/24"},
				Master: "10.0.0.2", Since: testNow.Add(-26 * time.Hour), Cause: "higher priority advert",
			},
			{Name: "VI_3", VRID: 7, Interface: "eth1", State: "INIT", Priority: 100, EffectivePriority: 100},
		},
	}
}

func TestStatusTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := renderStatusTable(&b, sampleStatus(), testNow); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.golden", b.String())
}

func TestAge(t *testing.T) {
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"},
		{42*time.Second + 900*time.Millisecond, "42s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour + 5*time.Minute + 59*time.Second, "1h05m"},
		{50 * time.Hour, "2d02h"},
		{-5 * time.Second, "0s"}, // a daemon clock ahead of ours
	}
	for _, tt := range tests {
		if got := age(testNow.Add(-tt.ago), testNow); got != tt.want {
			t.Errorf("age(%v ago) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := age(time.Time{}, testNow); got != "-" {
		t.Errorf("age(zero) = %q, want -", got)
	}
}

type fakeAgent struct {
	fleet     api.Fleet
	fleetErr  error
	joins     []api.JoinRequest
	status    api.Status
	reloadErr error
	maints    []api.MaintRequest
	prios     []api.PriorityRequest
	upgrade   api.UpgradeResult
	upErr     error
	upgrades  int
	lvs       api.LVS
}

func (f *fakeAgent) LVS(context.Context) (api.LVS, error) { return f.lvs, nil }

func (f *fakeAgent) Upgrade(context.Context) (api.UpgradeResult, error) {
	f.upgrades++
	return f.upgrade, f.upErr
}

func (f *fakeAgent) Status() api.Status               { return f.status }
func (f *fakeAgent) Reload(ctx context.Context) error { return f.reloadErr }
func (f *fakeAgent) Maintenance(_ context.Context, r api.MaintRequest) error {
	f.maints = append(f.maints, r)
	return nil
}
func (f *fakeAgent) OverridePriority(_ context.Context, r api.PriorityRequest) error {
	f.prios = append(f.prios, r)
	return nil
}

func TestMaintAndPriorityTalkToTheLocalNode(t *testing.T) {
	fa := &fakeAgent{}
	socket := serve(t, fa)
	r, _ := vipd(t, "maint", "on", "--instance", "VI_1", "--reason", "NIC swap", "--socket", socket)
	if r.code != 0 || !strings.Contains(r.stdout, "instance VI_1 maintenance on") {
		t.Fatalf("maint on: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if len(fa.maints) != 1 || fa.maints[0] != (api.MaintRequest{On: true, Instance: "VI_1", Reason: "NIC swap"}) {
		t.Errorf("agent got %+v", fa.maints)
	}
	r, _ = vipd(t, "maint", "off", "--socket", socket)
	if r.code != 0 || len(fa.maints) != 2 || fa.maints[1] != (api.MaintRequest{}) {
		t.Errorf("maint off: exit %d, agent got %+v", r.code, fa.maints)
	}
	r, _ = vipd(t, "maint", "sideways", "--socket", socket)
	if r.code != 2 {
		t.Errorf("maint sideways: exit %d, want 2", r.code)
	}
	r, _ = vipd(t, "priority", "VI_1", "250", "--socket", socket)
	if r.code != 0 || len(fa.prios) != 1 || fa.prios[0] != (api.PriorityRequest{Instance: "VI_1", Priority: 250}) {
		t.Errorf("priority: exit %d stderr %q, agent got %+v", r.code, r.stderr, fa.prios)
	}
	r, _ = vipd(t, "priority", "VI_1", "clear", "--socket", socket)
	if r.code != 0 || len(fa.prios) != 2 || !fa.prios[1].Clear {
		t.Errorf("priority clear: exit %d, agent got %+v", r.code, fa.prios)
	}
	r, _ = vipd(t, "priority", "VI_1", "255", "--socket", socket)
	if r.code != 2 {
		t.Errorf("priority 255: exit %d, want 2", r.code)
	}
}

// serve answers on a socket in a temp dir with the api handler for a.
func serve(t *testing.T, a api.Agent) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "vipd.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.NewServer(a, nil).Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return socket
}

func TestStatusCommandTalksToTheSocket(t *testing.T) {
	socket := serve(t, &fakeAgent{status: sampleStatus()})

	t.Run("table by --socket", func(t *testing.T) {
		r, _ := vipd(t, "status", "--socket", socket)
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		golden(t, "status.golden", r.stdout)
	})
	t.Run("json by VIPD_SOCKET", func(t *testing.T) {
		t.Setenv("VIPD_SOCKET", socket)
		r, _ := vipd(t, "status", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		var got api.Status
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("-o json is not JSON: %v\n%s", err, r.stdout)
		}
		if diff := cmp.Diff(sampleStatus().Instances[0], got.Instances[0]); diff != "" || got.Node != "lb1" {
			t.Errorf("node %q, instance 0 (-want +got):\n%s", got.Node, diff)
		}
		if !strings.Contains(r.stdout, "\n  \"instances\": [\n    {\n      \"name\": \"VI_1\",") {
			t.Errorf("-o json is not 2-space indented:\n%s", r.stdout)
		}
		if !strings.Contains(r.stdout, `"vips": []`) {
			t.Errorf("an instance without VIPs must have \"vips\": [], got:\n%s", r.stdout)
		}
	})
}

func TestStatusWhenVipdIsNotRunning(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "vipd.sock")
	r, _ := vipd(t, "status", "--socket", socket)
	want := "vipd: cannot reach vipd at " + socket + ": is `vipd run` running? (connect: no such file or directory)\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d stderr %q\nwant 1 and %q", r.code, r.stderr, want)
	}
}

func TestReloadCommand(t *testing.T) {
	tests := []struct {
		name       string
		agentErr   error
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "applied", wantCode: 0, wantStdout: "configuration reloaded"},
		{
			name: "rejected", agentErr: errors.New("k.conf:7: virtual_router_id 300: must be 1..255"), wantCode: 1,
			wantStderr: "reload rejected, running configuration kept:\nk.conf:7: virtual_router_id 300: must be 1..255",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := serve(t, &fakeAgent{reloadErr: tt.agentErr})
			r, _ := vipd(t, "reload", "--socket", socket)
			if r.code != tt.wantCode || !strings.Contains(r.stdout, tt.wantStdout) || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("exit %d stdout %q stderr %q\nwant %d, stdout with %q, stderr with %q",
					r.code, r.stdout, r.stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestLVSShowsHealthAndTheTablesInIpvsadmForm(t *testing.T) {
	w0, w2 := 0, 2
	fa := &fakeAgent{lvs: api.LVS{
		Available: true,
		Desired:   "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2\n-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 0\n",
		Actual:    "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2\n",
		VirtualServers: []api.LVSVirtualServer{{
			Name: "10.0.0.1 80", Services: []string{"-t 10.0.0.1:80"}, Quorum: 1, AliveWeight: 2, QuorumUp: true,
			RealServers: []api.LVSRealServer{
				{Address: "10.0.0.2:80", Forward: "NAT", Weight: 2, Effective: 2, Up: true, InPool: true, InIPVS: true, IPVSWeight: &w2,
					Checks: []api.LVSCheck{{Type: "HTTP_GET", Up: true, Result: "ok", Cause: "GET /: 200"}}},
				{Address: "10.0.0.3:80", Forward: "NAT", Weight: 1, Effective: 0, Up: false, InPool: true, IPVSWeight: &w0,
					Checks: []api.LVSCheck{{Type: "TCP_CHECK", Result: "failed", Cause: "connect: connection refused"}}},
			},
		}},
	}}
	socket := serve(t, fa)
	r, _ := vipd(t, "lvs", "--socket", socket)
	if r.code != 0 {
		t.Fatalf("vipd lvs: exit %d stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"virtual_server 10.0.0.1 80", "quorum up", "10.0.0.2:80", "w 2", "HTTP_GET ok: GET /: 200",
		"10.0.0.3:80", "0 (1)", "DOWN", "missing", "TCP_CHECK failed: connect: connection refused",
		"desired (ipvsadm -Sn):\n  -A -t 10.0.0.1:80 -s rr\n", "actual, vipd's services (ipvsadm -Sn):\n  -A -t 10.0.0.1:80 -s rr\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("vipd lvs output lacks %q:\n%s", want, r.stdout)
		}
	}
	r, _ = vipd(t, "lvs", "-o", "json", "--socket", socket)
	var got api.LVS
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("vipd lvs -o json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if got.Desired != fa.lvs.Desired || len(got.VirtualServers) != 1 || got.VirtualServers[0].RealServers[1].Checks[0].Cause != "connect: connection refused" {
		t.Errorf("json round trip: %+v", got)
	}
	fa.lvs = api.LVS{Available: false, Reason: "IPVS not available in this kernel: genetlink family IPVS not found", Desired: "-A -t 10.0.0.1:80 -s rr\n",
		VirtualServers: []api.LVSVirtualServer{{Name: "10.0.0.1 80", QuorumUp: true}}}
	r, _ = vipd(t, "lvs", "--socket", socket)
	if r.code != 0 || !strings.Contains(r.stdout, "IPVS: not available (IPVS not available in this kernel") || strings.Contains(r.stdout, "actual") {
		t.Errorf("without IPVS: exit %d\n%s", r.code, r.stdout)
	}
	if r, _ := vipd(t, "lvs", "-o", "yaml", "--socket", socket); r.code != 2 {
		t.Errorf("-o yaml: exit %d, want 2", r.code)
	}
}

func TestRunStateDirFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-name", "lb1"}, "/var/lib/vipd/lb1"},
		{[]string{"--node-name", "lb1", "--state-dir", "/srv/vipd"}, "/srv/vipd"},
		{[]string{"--state-dir", "none"}, ""},
	} {
		r, got := vipd(t, append([]string{"run", "--config", "/etc/keepalived/keepalived.conf"}, tc.args...)...)
		if r.code != 0 || got == nil {
			t.Fatalf("%v: exit %d stderr %q", tc.args, r.code, r.stderr)
		}
		if got.StateDir != tc.want {
			t.Errorf("%v: state dir %q, want %q", tc.args, got.StateDir, tc.want)
		}
	}
}

func TestRunPassesFlagsAndEnvironmentToTheAgent(t *testing.T) {
	t.Setenv("VIPD_NODE_NAME", "from-env")
	t.Setenv("VIPD_ETCD_ENDPOINTS", "http://10.0.0.5:2379,http://10.0.0.6:2379")
	t.Setenv("VIPD_SOCKET", "/run/vipd/env.sock")
	r, got := vipd(t, "run",
		"--config", "/etc/keepalived/keepalived.conf",
		"--socket", "/run/vipd/lb2.sock", // the flag beats VIPD_SOCKET
		"--gossip-bind", "10.0.0.11:7946",
		"--join", "10.0.0.12:7946,10.0.0.13:7946",
		"--gossip-key-file", "/etc/vipd/gossip.key",
		"--metrics-listen", "127.0.0.1:9650",
		"--log-format", "json")
	if r.code != 0 || got == nil {
		t.Fatalf("exit %d stderr %q, agent started: %v", r.code, r.stderr, got != nil)
	}
	if got.Logger == nil {
		t.Error("agent got no logger")
	}
	got.Logger = nil
	want := agent.Options{
		ConfigPath:    "/etc/keepalived/keepalived.conf",
		NodeName:      "from-env",
		SocketPath:    "/run/vipd/lb2.sock",
		GossipBind:    "10.0.0.11:7946",
		Join:          []string{"10.0.0.12:7946", "10.0.0.13:7946"},
		GossipKeyFile: "/etc/vipd/gossip.key",
		EtcdEndpoints: []string{"http://10.0.0.5:2379", "http://10.0.0.6:2379"},
		EtcdPrefix:    "/vipd",
		MetricsListen: "127.0.0.1:9650", Version: "dev",
		StateDir:         "/var/lib/vipd/from-env", // the default: one per node name
		ArbiterTTL:       3 * time.Second,
		ArbiterIsolation: coord.IsolationRelease,
	}
	if got.Executable == "" {
		t.Error("agent got no executable path (vipd upgrade needs it)")
	}
	if got.Restart == nil {
		t.Error("agent got no restart signal channel (SIGQUIT must be vipd's from the start)")
	}
	if len(got.RunArgs) == 0 || got.RunArgs[0] != "run" || got.RunArgs[len(got.RunArgs)-1] != "json" {
		t.Errorf("run args %q: want this command line (vipd upgrade's preflight runs it)", got.RunArgs)
	}
	got.Executable, got.Restart, got.RunArgs = "", nil, nil
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("agent options (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.stderr, `"msg":"agent says hello"`) {
		t.Errorf("--log-format json did not log JSON on stderr: %q", r.stderr)
	}
}

func TestRunArbiterFlags(t *testing.T) {
	r, got := vipd(t, "run", "--config", "k.conf", "--arbiter=false", "--arbiter-ttl", "5s", "--arbiter-isolation", "keep")
	if r.code != 0 || got == nil {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if !got.ArbiterOff || got.ArbiterTTL != 5*time.Second || got.ArbiterIsolation != coord.IsolationKeep {
		t.Errorf("arbiter options: off %v ttl %v isolation %q", got.ArbiterOff, got.ArbiterTTL, got.ArbiterIsolation)
	}
	for _, bad := range [][]string{{"--arbiter-ttl", "1s"}, {"--arbiter-ttl", "2500ms"}, {"--arbiter-isolation", "maybe"}} {
		r, got := vipd(t, append([]string{"run", "--config", "k.conf"}, bad...)...)
		if r.code == 0 || got != nil || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("%v: exit %d, agent started %v, stderr %q: want a refusal naming the flag", bad, r.code, got != nil, r.stderr)
		}
	}
}

func TestRunDefaults(t *testing.T) {
	r, got := vipd(t, "run", "--config", "k.conf")
	if r.code != 0 || got == nil {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if got.SocketPath != "/run/vipd/vipd.sock" || got.EtcdPrefix != "/vipd" || got.Join != nil || got.NodeName != "" {
		t.Errorf("defaults: socket %q etcd prefix %q join %v node %q", got.SocketPath, got.EtcdPrefix, got.Join, got.NodeName)
	}
}

func TestRunRefusesBadSettingsBeforeStarting(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"run"}, "--config FILE is required"},
		{[]string{"run", "--config", "k.conf", "--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"run", "--config", "k.conf", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"run", "--config", "k.conf", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"check"}, "--config FILE is required"},
		{[]string{"status", "-o", "yaml"}, `-o "yaml": want table or json`},
	}
	for _, tt := range tests {
		r, started := vipd(t, tt.args...)
		if r.code != 2 || started != nil || !strings.Contains(r.stderr, tt.wantErr) {
			t.Errorf("vipd %s: exit %d started %v stderr %q, want exit 2 with %q",
				strings.Join(tt.args, " "), r.code, started != nil, r.stderr, tt.wantErr)
		}
	}
}

func TestRunReportsAgentFailure(t *testing.T) {
	var errb bytes.Buffer
	env := &cliEnv{
		stdout: &bytes.Buffer{}, stderr: &errb, now: time.Now,
		runAgent: func(context.Context, agent.Options) error { return errors.New("k.conf:3: unknown interface eth9") },
	}
	if code := execute([]string{"run", "--config", "k.conf"}, env); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "vipd: run: k.conf:3: unknown interface eth9\n") {
		t.Errorf("stderr %q does not carry the agent's error", errb.String())
	}
}

func TestHelpTeachesWithKeepalivedExamples(t *testing.T) {
	tests := []struct {
		cmd  string
		want []string
	}{
		{"", []string{"vipd run --config /etc/keepalived/keepalived.conf", "keepalived -t"}},
		{"run", []string{"vipd run --config /etc/keepalived/keepalived.conf", "SIGHUP", "--node-name", "--gossip-bind", "--join", "--gossip-key-file", "--etcd-endpoints", "--etcd-prefix", "--metrics-listen", "--log-format", "--socket"}},
		{"check", []string{"vipd check --config /etc/keepalived/keepalived.conf", "keepalived -t", "FILE:LINE"}},
		{"convert", []string{"vipd convert /etc/keepalived/keepalived.conf"}},
		{"status", []string{"vipd status", "-o json", "effective priority", "--fleet", "--socket"}},
		{"reload", []string{"vipd reload", "SIGHUP"}},
		{"join", []string{"vipd join 10.0.0.12:7946", "Gossip carries"}},
		{"maint", []string{"vipd maint on", "--node", "--instance", "--reason", "Skew_Time"}},
		{"priority", []string{"vipd priority VI_1 250", "clear", "source"}},
		{"lvs", []string{"ipvsadm -Sn", "vipd lvs -o json", "IPVS", "quorum", "DNS_CHECK"}},
		{"version", []string{"vipd version"}},
	}
	for _, tt := range tests {
		args := []string{"--help"}
		if tt.cmd != "" {
			args = []string{tt.cmd, "--help"}
		}
		r, _ := vipd(t, args...)
		if r.code != 0 {
			t.Errorf("vipd %s --help: exit %d", tt.cmd, r.code)
		}
		for _, w := range append([]string{"Examples:"}, tt.want...) {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("vipd %s --help lacks %q", tt.cmd, w)
			}
		}
	}
}

func TestVersionPrintsVersionAndGo(t *testing.T) {
	r, _ := vipd(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "vipd dev (go1.") || !strings.Contains(r.stdout, "linux/") {
		t.Errorf("vipd version = %d %q, want \"vipd dev (go1.x linux/...)\"", r.code, r.stdout)
	}
}

// TestBuiltBinaryChecksAConfig builds the real binary, with a version set by
// -ldflags as a release would, and runs it like an operator.
func TestBuiltBinaryChecksAConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped in -short mode")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH: cannot build the binary")
	}
	bin := filepath.Join(t.TempDir(), "vipd")
	build := exec.Command(goTool, "build", "-ldflags", "-X main.version=1.2.3-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "vipd 1.2.3-test ") {
		t.Errorf("vipd version = %q, %v; want the -ldflags version", out, err)
	}

	cmd := exec.Command(bin, "check", "--config", "testdata/broken.conf")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "testdata/broken.conf:7: ") {
		t.Errorf("vipd check broken.conf: %v, stderr %q; want exit 1 and broken.conf:7", err, stderr.String())
	}
}

// modelOpts compares models by value, ignoring where things were written.
var modelOpts = []cmp.Option{
	cmpopts.IgnoreTypes(config.Pos{}),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		writeFile(t, path, got)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestConfigIDSelectsConditionalLines: --config-id is keepalived's -i; the
// @id lines of that host apply, the others do not.
func TestConfigIDSelectsConditionalLines(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "k.conf")
	writeFile(t, conf, "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n"+
		"@lb1 priority 150\n@^lb1 priority 100\n    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n")
	for _, tc := range []struct {
		id, want string
	}{
		{"lb1", "priority: 150"},
		{"lb2", "priority: 100"},
	} {
		r, _ := vipd(t, "convert", "--config-id", tc.id, conf)
		if r.code != 0 || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("convert --config-id %s: exit %d, want %q in:\n%s%s", tc.id, r.code, tc.want, r.stdout, r.stderr)
		}
	}
	r, opts := vipd(t, "run", "--config", conf, "--config-id", "lb2")
	if r.code != 0 || opts == nil || len(opts.ConfigIDs) != 1 || opts.ConfigIDs[0] != "lb2" {
		t.Errorf("run --config-id lb2: exit %d, options %+v", r.code, opts)
	}
}

// upgradeFake is a daemon whose upgrade starts a new run (a later start
// time, the same PID), or a run that rolled back.
type upgradeFake struct {
	fakeAgent
	mu     sync.Mutex
	daemon api.Daemon
	next   api.Daemon
}

func (f *upgradeFake) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.daemon
	return api.Status{Node: "n1", Daemon: &d}
}

func (f *upgradeFake) Upgrade(context.Context) (api.UpgradeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	from := f.daemon.Version
	f.daemon = f.next
	return api.UpgradeResult{Binary: "/usr/sbin/vipd", From: from, To: "vipd " + f.next.Version}, nil
}

func TestUpgradeWaitsForTheNewRunAndReportsIt(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	fa := &upgradeFake{daemon: api.Daemon{PID: 77, Version: "1.0", Started: t0},
		next: api.Daemon{PID: 77, Version: "1.1", Started: t0.Add(time.Hour), Ready: true, Resumed: 3, Upgrade: "upgraded in place from 1.0"}}
	r, _ := vipd(t, "upgrade", "--socket", serve(t, fa))
	if r.code != 0 || !strings.Contains(r.stdout, "upgraded in place from 1.0 to 1.1, pid 77, 3 instances resumed as MASTER") {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	fa = &upgradeFake{daemon: api.Daemon{PID: 77, Version: "1.0", Started: t0},
		next: api.Daemon{PID: 77, Version: "1.0", Started: t0.Add(time.Hour), Ready: true, Resumed: 3,
			Upgrade: "upgrade from 1.0 to 1.1 rolled back: start failed: boom"}}
	r, _ = vipd(t, "upgrade", "--socket", serve(t, fa))
	if r.code != 1 || !strings.Contains(r.stderr, "rolled back: start failed: boom") {
		t.Errorf("rollback: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestUpgradeRefusedChangesNothing(t *testing.T) {
	fa := &fakeAgent{status: api.Status{Daemon: &api.Daemon{PID: 1}}, upErr: errors.New("upgrade refused, nothing changed: /usr/sbin/vipd version: exit status 1")}
	r, _ := vipd(t, "upgrade", "--socket", serve(t, fa))
	if r.code != 1 || !strings.Contains(r.stderr, "upgrade refused, nothing changed") {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
}

func TestReleaseWithNothingToRelease(t *testing.T) {
	dir := t.TempDir()
	r, _ := vipd(t, "release", "--state-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "no state: nothing to release") {
		t.Errorf("no state: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if err := state.Write(dir, state.File{Mode: state.ModeStopped}); err != nil {
		t.Fatal(err)
	}
	r, _ = vipd(t, "release", "--state-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "ended stopped: nothing to release") {
		t.Errorf("stopped: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if r, _ := vipd(t, "release"); r.code != 2 {
		t.Errorf("without --state-dir: exit %d, want 2", r.code)
	}
}

func (f *fakeAgent) Fleet(context.Context) (api.Fleet, error) {
	return f.fleet, f.fleetErr
}

func (f *fakeAgent) Join(_ context.Context, r api.JoinRequest) (api.JoinResult, error) {
	f.joins = append(f.joins, r)
	return api.JoinResult{Joined: len(r.Addrs)}, f.fleetErr
}

func (f *fakeAgent) Keys(context.Context, api.KeyOp) (api.KeysResult, error) {
	return api.KeysResult{}, f.fleetErr
}
