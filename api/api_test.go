package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type fakeAgent struct {
	fleet     Fleet
	fleetErr  error
	joins     []JoinRequest
	mu        sync.Mutex
	status    Status
	reloadErr error
	reloads   int
	maints    []MaintRequest
	upgrades  int
	upgrade   UpgradeResult
	prios     []PriorityRequest
	doorErr   error
	lvs       LVS
}

func (f *fakeAgent) LVS(context.Context) (LVS, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lvs, nil
}

func (f *fakeAgent) Maintenance(_ context.Context, r MaintRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maints = append(f.maints, r)
	return f.doorErr
}

func (f *fakeAgent) OverridePriority(_ context.Context, r PriorityRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prios = append(f.prios, r)
	return f.doorErr
}

func (f *fakeAgent) Upgrade(context.Context) (UpgradeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.upgrades++
	return f.upgrade, f.doorErr
}

func (f *fakeAgent) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeAgent) Reload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

var since = time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)

func sampleStatus() Status {
	return Status{
		Node: "lb1",
		Instances: []InstanceStatus{
			{
				Name: "VI_1", VRID: 51, Interface: "eth0", State: "MASTER",
				Priority: 150, EffectivePriority: 148,
				VIPs:   []string{"192.168.200.16/32", "192.168.200.17/32"},
				Master: "192.168.200.2", Since: since, Cause: "priority higher than master",
			},
			{
				Name: "VI_2", VRID: 52, Interface: "eth1", State: "BACKUP",
				Priority: 100, EffectivePriority: 100,
				Since: since, Cause: "startup",
			},
		},
	}
}

// startServer serves a on a fresh socket in a temp dir until the test ends.
func startServer(t *testing.T, a Agent) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "vipd.sock")
	stop := serveAt(t, a, path)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return path
}

// serveAt runs Serve in the background, waits until it listens, and returns
// a function that stops it and returns Serve's error.
func serveAt(t *testing.T, a Agent, path string) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(a, nil)
	ready := make(chan struct{})
	s.listening = func() { close(ready) }
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, path) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("Serve(%s) = %v before listening", path, err)
	}
	return func() error {
		cancel()
		return <-errc
	}
}

func rawGet(t *testing.T, socket, method, path string) (int, []byte) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, err := http.NewRequest(method, "http://vipd"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestStatusJSONMatchesTheContractKeyByKey(t *testing.T) {
	socket := startServer(t, &fakeAgent{status: sampleStatus()})
	code, body := rawGet(t, socket, http.MethodGet, "/v1/status")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %s", code, body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, body)
	}
	if doc["node"] != "lb1" {
		t.Errorf(`"node" = %v, want "lb1"`, doc["node"])
	}
	insts, ok := doc["instances"].([]any)
	if !ok || len(insts) != 2 {
		t.Fatalf(`"instances" = %#v, want a list of 2`, doc["instances"])
	}
	want := []map[string]any{
		{
			"name": "VI_1", "vrid": 51.0, "interface": "eth0", "state": "MASTER",
			"priority": 150.0, "effective_priority": 148.0,
			"vips":   []any{"192.168.200.16/32", "192.168.200.17/32"},
			"master": "192.168.200.2", "since": "2025-03-01T12:30:00Z", "cause": "priority higher than master",
		},
		{
			"name": "VI_2", "vrid": 52.0, "interface": "eth1", "state": "BACKUP",
			"priority": 100.0, "effective_priority": 100.0,
			"vips":   []any{}, // an array even when empty, never null
			"master": "", "since": "2025-03-01T12:30:00Z", "cause": "startup",
		},
	}
	for i, w := range want {
		got, ok := insts[i].(map[string]any)
		if !ok {
			t.Fatalf("instances[%d] = %#v, want an object", i, insts[i])
		}
		for key, wv := range w {
			gv, present := got[key]
			if !present {
				t.Errorf("instances[%d] lacks contract key %q", i, key)
				continue
			}
			if diff := cmp.Diff(wv, gv); diff != "" {
				t.Errorf("instances[%d].%s (-want +got):\n%s", i, key, diff)
			}
		}
	}
}

func TestStatusWithNoInstancesIsAnEmptyArray(t *testing.T) {
	socket := startServer(t, &fakeAgent{status: Status{Node: "lb1"}})
	_, body := rawGet(t, socket, http.MethodGet, "/v1/status")
	if !strings.Contains(string(body), `"instances": []`) {
		t.Errorf("status of a node without instances = %s, want \"instances\": []", body)
	}
}

func TestClientStatusReturnsTheAgentStatus(t *testing.T) {
	want := sampleStatus()
	socket := startServer(t, &fakeAgent{status: want})
	got, err := NewClient(socket).Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	want.Instances[1].VIPs = []string{} // normalized by the server
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}

func TestReload(t *testing.T) {
	diag := "/etc/keepalived/keepalived.conf:12: virtual_router_id 300: must be 1..255"
	tests := []struct {
		name      string
		agentErr  error
		wantCode  int
		wantBody  string
		wantErrIn string // "" means Client.Reload succeeds
	}{
		{name: "accepted", wantCode: 200, wantBody: `"ok": true`},
		{
			name: "rejected config reports diagnostics", agentErr: errors.New(diag),
			wantCode: 400, wantBody: `"error": "` + diag + `"`,
			wantErrIn: "reload rejected, running configuration kept:\n" + diag,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := &fakeAgent{reloadErr: tt.agentErr}
			socket := startServer(t, agent)

			code, body := rawGet(t, socket, http.MethodPost, "/v1/reload")
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("POST /v1/reload = %d %s, want %d containing %s", code, body, tt.wantCode, tt.wantBody)
			}

			err := NewClient(socket).Reload(context.Background())
			switch {
			case tt.wantErrIn == "" && err != nil:
				t.Errorf("Reload = %v, want success", err)
			case tt.wantErrIn != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrIn)):
				t.Errorf("Reload = %v, want error containing %q", err, tt.wantErrIn)
			}
			if agent.reloads != 2 {
				t.Errorf("agent saw %d reloads, want 2", agent.reloads)
			}
		})
	}
}

func TestRoutesRejectWrongMethodsAndUnknownPaths(t *testing.T) {
	agent := &fakeAgent{}
	socket := startServer(t, agent)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v1/reload", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/status", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		if code, body := rawGet(t, socket, tt.method, tt.path); code != tt.want {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.want)
		}
	}
	if agent.reloads != 0 {
		t.Errorf("a GET reached Reload %d times", agent.reloads)
	}
}

func TestSocketIsOwnerOnly(t *testing.T) {
	socket := startServer(t, &fakeAgent{})
	fi, err := os.Lstat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s is %v, want a socket", socket, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %o, want 600", perm)
	}
}

func TestServeRemovesTheSocketOnExit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vipd.sock")
	stop := serveAt(t, &fakeAgent{}, path)
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after shutdown (Lstat: %v)", err)
	}
}

func TestServeReplacesAStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vipd.sock")
	// A crashed vipd leaves its socket file behind with nobody listening.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	stop := serveAt(t, &fakeAgent{status: Status{Node: "fresh"}}, path)
	defer stop()
	st, err := NewClient(path).Status(context.Background())
	if err != nil || st.Node != "fresh" {
		t.Errorf("Status over the replaced socket = %+v, %v; want node fresh", st, err)
	}
}

func TestServeRefusesWhatItMustNotReplace(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr string
	}{
		{
			name: "a live vipd holds the socket",
			prepare: func(t *testing.T, path string) {
				stop := serveAt(t, &fakeAgent{}, path)
				t.Cleanup(func() { stop() })
			},
			wantErr: "another vipd is running there",
		},
		{
			name: "a regular file sits at the path",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "is not a socket",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vipd.sock")
			tt.prepare(t, path)
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			err = NewServer(&fakeAgent{}, nil).Serve(context.Background(), path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Serve = %v, want error containing %q", err, tt.wantErr)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) {
				t.Errorf("Serve replaced or removed %s (Lstat: %v)", path, err)
			}
		})
	}
}

func TestClientErrorWhenVipdIsNotRunningSaysWhatToDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vipd.sock")
	_, err := NewClient(path).Status(context.Background())
	want := "cannot reach vipd at " + path + ": is `vipd run` running? (connect: no such file or directory)"
	if err == nil || err.Error() != want {
		t.Errorf("Status error = %v\nwant %s", err, want)
	}
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Errorf("error %T is not an *UnreachableError", err)
	}
}

func TestMaintenanceAndPriorityReachTheAgentAndErrorsComeBack(t *testing.T) {
	fa := &fakeAgent{}
	socket := startServer(t, fa)
	c := NewClient(socket)
	ctx := context.Background()
	if err := c.Maintenance(ctx, MaintRequest{On: true, Instance: "VI_1", Reason: "NIC swap"}); err != nil {
		t.Fatal(err)
	}
	if err := c.OverridePriority(ctx, PriorityRequest{Instance: "VI_1", Priority: 42}); err != nil {
		t.Fatal(err)
	}
	if len(fa.maints) != 1 || fa.maints[0] != (MaintRequest{On: true, Instance: "VI_1", Reason: "NIC swap"}) {
		t.Errorf("maintenance requests %+v", fa.maints)
	}
	if len(fa.prios) != 1 || fa.prios[0] != (PriorityRequest{Instance: "VI_1", Priority: 42}) {
		t.Errorf("priority requests %+v", fa.prios)
	}
	fa.doorErr = errors.New(`maintenance: no instance "VI_9" on this node`)
	err := c.Maintenance(ctx, MaintRequest{On: true, Instance: "VI_9"})
	if err == nil || err.Error() != fa.doorErr.Error() {
		t.Errorf("error %v, want the agent's %v", err, fa.doorErr)
	}
}

func TestStatusCarriesDrops(t *testing.T) {
	st := sampleStatus()
	st.Drops = map[string]uint64{"auth_pass": 3}
	socket := startServer(t, &fakeAgent{status: st})
	got, err := NewClient(socket).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Drops["auth_pass"] != 3 {
		t.Errorf("drops lost on the way: %v", got.Drops)
	}
}

// TestStatusCarriesEveryField: the socket passes the agent's whole status,
// not a hand-copied subset (the daemon block was once lost that way).
func TestStatusCarriesEveryField(t *testing.T) {
	st := sampleStatus()
	st.Drops = map[string]uint64{"auth_pass": 3}
	st.Daemon = &Daemon{PID: 42, Version: "1.2.3", Started: time.Unix(1e9, 0).UTC(), StateDir: "/var/lib/vipd/lb1", Resumed: 7,
		Upgrade: "upgraded in place from 1.2.2"}
	socket := startServer(t, &fakeAgent{status: st})
	got, err := NewClient(socket).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(normalizeStatus(st), got); diff != "" {
		t.Errorf("status through the socket (-agent +client):\n%s", diff)
	}
}

func TestUpgradeAnswersTheResultOrTheRefusal(t *testing.T) {
	fa := &fakeAgent{upgrade: UpgradeResult{Binary: "/usr/sbin/vipd", From: "1", To: "vipd 2"}}
	socket := startServer(t, fa)
	res, err := NewClient(socket).Upgrade(context.Background())
	if err != nil || res != fa.upgrade {
		t.Fatalf("Upgrade = %+v, %v; want %+v", res, err, fa.upgrade)
	}
	fa.mu.Lock()
	fa.doorErr = errors.New("upgrade refused, nothing changed: bad binary")
	fa.mu.Unlock()
	if _, err := NewClient(socket).Upgrade(context.Background()); err == nil || err.Error() != "upgrade refused, nothing changed: bad binary" {
		t.Errorf("refusal = %v", err)
	}
}

func (f *fakeAgent) Fleet(context.Context) (Fleet, error) {
	return f.fleet, f.fleetErr
}

func (f *fakeAgent) Join(_ context.Context, r JoinRequest) (JoinResult, error) {
	f.joins = append(f.joins, r)
	return JoinResult{Joined: len(r.Addrs)}, f.fleetErr
}

func (f *fakeAgent) Keys(_ context.Context, op KeyOp) (KeysResult, error) {
	return KeysResult{Nodes: []KeyNode{{Node: "lb1", OK: true}}}, f.fleetErr
}

func TestLVSRouteGivesTheStatusWithEmptyListsAsArrays(t *testing.T) {
	f := &fakeAgent{lvs: LVS{Available: false, Reason: "IPVS not available in this kernel", Desired: "-A -t 10.0.0.1:80 -s rr\n"}}
	got, err := NewClient(startServer(t, f)).LVS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Available || got.Reason != f.lvs.Reason || got.Desired != f.lvs.Desired || got.VirtualServers == nil {
		t.Errorf("LVS = %+v", got)
	}
}
