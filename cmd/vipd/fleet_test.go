package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/api"
)

// sampleFleet is three nodes and two classic keepalived routers: VI_1 as it
// should be, VI_2 mastered by a classic peer, a split brain on VI_3, names
// that differ on VRID 61, an IPv6 group, lb2 in maintenance and lb3 dead.
func sampleFleet() api.Fleet {
	since := testNow.Add(-time.Hour)
	inst := func(name string, vrid int, state string, prio, eff int, segment string) api.FleetInstance {
		family := "ipv4"
		if strings.Contains(segment, ":") {
			family = "ipv6"
		}
		return api.FleetInstance{
			InstanceStatus: api.InstanceStatus{
				Name: name, VRID: vrid, Interface: "eth0", State: state,
				Priority: prio, EffectivePriority: eff, VIPs: []string{"10.0.0.100/24"},
				Since: since, Cause: "test",
			},
			Family: family, Segment: segment, Source: "10.0.0.11", AdvertInt: "1s",
		}
	}
	return api.Fleet{
		Nodes: []api.FleetNode{
			{
				Name: "lb1", Addr: "10.0.0.11:7946", Alive: true, State: "alive", Version: "1.4.0",
				Instances: []api.FleetInstance{
					inst("VI_1", 51, "MASTER", 150, 150, "10.0.0.0/24"),
					inst("VI_2", 52, "BACKUP", 100, 100, "10.0.0.0/24"),
					inst("VI_3", 60, "MASTER", 150, 150, "10.0.2.0/24"),
					inst("VI_4", 61, "MASTER", 150, 150, "10.0.10.0/24"),
					inst("VI_6", 51, "MASTER", 150, 150, "fd00:10::/64"),
				},
			},
			{
				Name: "lb2", Addr: "10.0.0.12:7946", Alive: true, State: "alive", Version: "1.4.0",
				Maintenance: "kernel upgrade, ticket OPS-123",
				Instances: []api.FleetInstance{
					inst("VI_1", 51, "FAULT", 100, 100, "10.0.0.0/24"),
					inst("VI_2", 52, "BACKUP", 100, 90, "10.0.0.0/24"),
					inst("VI_4b", 61, "BACKUP", 100, 100, "10.0.10.0/24"),
					inst("VI_6", 51, "BACKUP", 100, 100, "fd00:10::/64"),
				},
			},
			{
				Name: "lb3", Addr: "10.0.0.13:7946", Alive: false, State: "dead",
				Instances: []api.FleetInstance{
					inst("VI_1", 51, "MASTER", 120, 120, "10.0.0.0/24"),
				},
			},
		},
		Peers: []api.Peer{
			{Addr: "10.0.0.9", VRID: 52, Priority: 200, State: "MASTER", Segment: "10.0.0.0/24", HeardBy: []string{"lb1", "lb2"}},
			{Addr: "10.0.2.9", VRID: 60, Priority: 200, State: "MASTER", Segment: "10.0.2.0/24", HeardBy: []string{"lb1"}},
		},
		Warnings: []api.Warning{
			{Kind: api.WarnSplitBrain, Instance: "VI_3", VRID: 60, Nodes: []string{"lb1"},
				Detail: "2 MASTERs on 10.0.2.0/24: lb1, 10.0.2.9 (classic)"},
			{Kind: api.WarnConfigMismatch, VRID: 61, Nodes: []string{"lb1", "lb2"},
				Detail: "VRID 61 on 10.0.10.0/24: names differ (VI_4, VI_4b)"},
			{Kind: api.WarnMaintenance, Nodes: []string{"lb2"},
				Detail: "lb2 in maintenance: kernel upgrade, ticket OPS-123"},
		},
	}
}

func TestFleetTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := renderFleetTable(&b, sampleFleet()); err != nil {
		t.Fatal(err)
	}
	golden(t, "fleet.golden", b.String())
	for _, line := range strings.Split(b.String(), "\n") {
		if len(line) > 100 {
			t.Errorf("line of %d columns, want <= 100: %q", len(line), line)
		}
	}
}

func TestFleetTableMarksMastersAndProblems(t *testing.T) {
	var b bytes.Buffer
	if err := renderFleetTable(&b, sampleFleet()); err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{} // by segment and VRID
	for _, l := range strings.Split(b.String(), "\n") {
		f := strings.Fields(strings.TrimPrefix(l, "!"))
		if len(f) >= 2 && strings.Contains(f[0], "/") {
			lines[f[0]+" "+f[1]] = l
		}
	}
	for _, tc := range []struct {
		group   string
		problem bool
		has     []string
	}{
		// lb3 is dead: its MASTER is not counted, lb2 is in FAULT.
		{"10.0.0.0/24 51", false, []string{"*lb1(150)", "lb2(100, FAULT)", "lb3(dead)"}},
		{"10.0.0.0/24 52", false, []string{"lb1(100)", "lb2(90)", "*10.0.0.9(classic, 200)"}},
		{"10.0.2.0/24 60", true, []string{"*lb1(150)", "*10.0.2.9(classic, 200)"}},
		{"10.0.10.0/24 61", true, []string{"VI_4/VI_4b", "*lb1(150)", "lb2(100)"}},
		{"fd00:10::/64 51", false, []string{"*lb1(150)", "lb2(100)"}},
	} {
		l, ok := lines[tc.group]
		if !ok {
			t.Errorf("no line for %s in:\n%s", tc.group, b.String())
			continue
		}
		if got := strings.HasPrefix(l, "!"); got != tc.problem {
			t.Errorf("%s marked as a problem: %v, want %v: %q", tc.group, got, tc.problem, l)
		}
		for _, h := range tc.has {
			if !strings.Contains(l, h) {
				t.Errorf("%s line lacks %q: %q", tc.group, h, l)
			}
		}
	}
	if !strings.Contains(b.String(), "\n! lb3 ") {
		t.Errorf("the dead node is not marked:\n%s", b.String())
	}
}

func TestFleetTableWithoutProblems(t *testing.T) {
	f := api.Fleet{Nodes: []api.FleetNode{{Name: "lb1", Addr: "10.0.0.11:7946", Alive: true}}}
	var b bytes.Buffer
	if err := renderFleetTable(&b, f); err != nil {
		t.Fatal(err)
	}
	want := "NODES\n" +
		"  NAME  ADDR            STATE  INSTANCES  MASTER  MAINTENANCE\n" +
		"  lb1   10.0.0.11:7946  alive  0          0       -\n" +
		"\n" +
		"INSTANCES (*MASTER, ! not exactly one MASTER or a warning)\n" +
		"  (no instances)\n" +
		"\n" +
		"no warnings\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A group with no MASTER at all is a problem, even without a warning.
	f.Nodes[0].Instances = []api.FleetInstance{{InstanceStatus: api.InstanceStatus{Name: "VI_1", VRID: 1, State: "BACKUP", Priority: 100}, Segment: "10.0.0.0/24"}}
	b.Reset()
	if err := renderFleetTable(&b, f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\n! 10.0.0.0/24  1     VI_1  lb1(100)\n") {
		t.Errorf("a group without MASTER is not marked:\n%s", b.String())
	}
}

func TestFleetJSONKeepsTheContractShape(t *testing.T) {
	var b bytes.Buffer
	f := api.Fleet{Nodes: []api.FleetNode{{Name: "lb1"}}, Warnings: []api.Warning{{Kind: api.WarnMaintenance}}}
	if err := renderFleetJSON(&b, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"peers": []`, `"instances": []`, `"nodes": []`, "\n  \"nodes\": [\n    {\n      \"name\": \"lb1\","} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("-o json lacks %q:\n%s", want, b.String())
		}
	}
	if f.Nodes[0].Instances != nil || f.Warnings[0].Nodes != nil {
		t.Error("renderFleetJSON modified its argument")
	}
	b.Reset()
	if err := renderFleetJSON(&b, api.Fleet{}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"nodes\": [],\n  \"peers\": [],\n  \"warnings\": []\n}\n"; b.String() != want {
		t.Errorf("empty fleet = %q, want %q", b.String(), want)
	}
}

func TestStatusFleetCommand(t *testing.T) {
	socket := serve(t, &fakeAgent{fleet: sampleFleet()})

	t.Run("table", func(t *testing.T) {
		r, _ := vipd(t, "status", "--fleet", "--socket", socket)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		golden(t, "fleet.golden", r.stdout)
	})
	t.Run("json by VIPD_SOCKET", func(t *testing.T) {
		t.Setenv("VIPD_SOCKET", socket)
		r, _ := vipd(t, "status", "--fleet", "-o", "json")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		golden(t, "fleet.json.golden", r.stdout)
		var got api.Fleet
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("-o json is not JSON: %v\n%s", err, r.stdout)
		}
		if diff := cmp.Diff(sampleFleet(), got, cmpopts.EquateApproxTime(0)); diff != "" {
			t.Errorf("-o json does not decode to the fleet (-want +got):\n%s", diff)
		}
		var raw struct {
			Nodes []map[string]any `json:"nodes"`
			Peers []map[string]any `json:"peers"`
			Warns []map[string]any `json:"warnings"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"name", "addr", "alive", "maintenance", "instances"} {
			if _, ok := raw.Nodes[0][k]; !ok {
				t.Errorf("node lacks %q", k)
			}
		}
		for _, k := range []string{"addr", "vrid", "priority", "state", "segment"} {
			if _, ok := raw.Peers[0][k]; !ok {
				t.Errorf("peer lacks %q", k)
			}
		}
		for _, k := range []string{"kind", "instance", "vrid", "nodes", "detail"} {
			if _, ok := raw.Warns[0][k]; !ok {
				t.Errorf("warning lacks %q", k)
			}
		}
	})
	t.Run("bad output", func(t *testing.T) {
		r, _ := vipd(t, "status", "--fleet", "-o", "yaml", "--socket", socket)
		if r.code != 2 || !strings.Contains(r.stderr, `-o "yaml": want table or json`) || r.stdout != "" {
			t.Errorf("exit %d stdout %q stderr %q, want 2", r.code, r.stdout, r.stderr)
		}
	})
}

func TestStatusFleetWithGossipOff(t *testing.T) {
	off := errors.New("gossip is off on this node: start vipd run with --gossip-bind or --join")
	socket := serve(t, &fakeAgent{fleetErr: off})
	for _, output := range []string{"table", "json"} {
		r, _ := vipd(t, "status", "--fleet", "-o", output, "--socket", socket)
		want := "vipd: gossip is off on this node: start vipd run with --gossip-bind or --join\n"
		if r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Errorf("-o %s: exit %d stdout %q stderr %q, want 1 and %q", output, r.code, r.stdout, r.stderr, want)
		}
	}
	r, _ := vipd(t, "status", "--fleet", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if r.code != 1 || !strings.Contains(r.stderr, "is `vipd run` running?") {
		t.Errorf("no daemon: exit %d stderr %q", r.code, r.stderr)
	}
}

// fleetFake answers maint and join with chosen errors and results.
type fleetFake struct {
	fakeAgent
	maintErr error
	joined   int
}

func (f *fleetFake) Maintenance(_ context.Context, r api.MaintRequest) error {
	f.maints = append(f.maints, r)
	return f.maintErr
}

func (f *fleetFake) Join(_ context.Context, r api.JoinRequest) (api.JoinResult, error) {
	f.joins = append(f.joins, r)
	return api.JoinResult{Joined: f.joined}, f.fleetErr
}

func TestJoinCommand(t *testing.T) {
	fa := &fakeAgent{}
	socket := serve(t, fa)

	r, _ := vipd(t, "join", "10.0.0.12:7946", "10.0.0.13:7946", "--socket", socket)
	if r.code != 0 || r.stdout != "vipd at "+socket+": joined through 2 nodes\n" || r.stderr != "" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	// Comma-separated like --join, and VIPD_SOCKET like every command.
	t.Setenv("VIPD_SOCKET", socket)
	r, _ = vipd(t, "join", "10.0.0.14:7946,10.0.0.15:7946", "[fd00::16]:7946")
	if r.code != 0 || r.stdout != "vipd at "+socket+": joined through 3 nodes\n" {
		t.Errorf("VIPD_SOCKET: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	want := []api.JoinRequest{
		{Addrs: []string{"10.0.0.12:7946", "10.0.0.13:7946"}},
		{Addrs: []string{"10.0.0.14:7946", "10.0.0.15:7946", "[fd00::16]:7946"}},
	}
	if diff := cmp.Diff(want, fa.joins); diff != "" {
		t.Errorf("join requests (-want +got):\n%s", diff)
	}

	oneSocket := serve(t, &fleetFake{joined: 1})
	r, _ = vipd(t, "join", "10.0.0.12:7946", "10.0.0.13:7946", "--socket", oneSocket)
	if r.code != 0 || r.stdout != "vipd at "+oneSocket+": joined through 1 node\n" {
		t.Errorf("one answered: exit %d stdout %q", r.code, r.stdout)
	}

	none := &fleetFake{}
	r, _ = vipd(t, "join", "10.0.0.99:7946", "--socket", serve(t, none))
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "no member answered (10.0.0.99:7946)") {
		t.Errorf("none answered: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestJoinCommandErrors(t *testing.T) {
	off := &fakeAgent{fleetErr: errors.New("gossip is off on this node: start vipd run with --gossip-bind or --join")}
	socket := serve(t, off)
	r, _ := vipd(t, "join", "10.0.0.12:7946", "--socket", socket)
	if r.code != 1 || r.stdout != "" || r.stderr != "vipd: gossip is off on this node: start vipd run with --gossip-bind or --join\n" {
		t.Errorf("gossip off: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	failed := &fakeAgent{fleetErr: errors.New("join: 1 error occurred: dial tcp 10.0.0.99:7946: connection refused")}
	r, _ = vipd(t, "join", "10.0.0.99:7946", "--socket", serve(t, failed))
	if r.code != 1 || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("join failed: exit %d stderr %q", r.code, r.stderr)
	}
	r, _ = vipd(t, "join", "10.0.0.12:7946", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if r.code != 1 || !strings.Contains(r.stderr, "is `vipd run` running?") {
		t.Errorf("no daemon: exit %d stderr %q", r.code, r.stderr)
	}
	for _, args := range [][]string{{"join"}, {"join", ","}} {
		r, _ = vipd(t, append(args, "--socket", socket)...)
		if r.code != 2 || r.stdout != "" {
			t.Errorf("vipd %s: exit %d stdout %q stderr %q, want 2", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if len(off.joins) != 1 {
		t.Errorf("requests sent: %+v, want only the first", off.joins)
	}
}

func TestMaintOfAnotherNode(t *testing.T) {
	fa := &fleetFake{}
	socket := serve(t, fa)
	tests := []struct {
		args []string
		want api.MaintRequest
		out  string
	}{
		{
			args: []string{"maint", "on", "--node", "lb2", "--reason", "PSU swap"},
			want: api.MaintRequest{On: true, Node: "lb2", Reason: "PSU swap"},
			out:  "vipd at " + socket + ": node lb2: maintenance on (every instance)\n",
		},
		{
			args: []string{"maint", "on", "--node", "lb2", "--instance", "VI_1"},
			want: api.MaintRequest{On: true, Node: "lb2", Instance: "VI_1"},
			out:  "vipd at " + socket + ": node lb2: maintenance on (VI_1)\n",
		},
		{
			args: []string{"maint", "off", "--node", "lb2"},
			want: api.MaintRequest{Node: "lb2"},
			out:  "vipd at " + socket + ": node lb2: maintenance off (every instance)\n",
		},
		{
			// Without --node: the local node, as before.
			args: []string{"maint", "on", "--instance", "VI_1"},
			want: api.MaintRequest{On: true, Instance: "VI_1"},
			out:  "vipd at " + socket + ": instance VI_1 maintenance on\n",
		},
	}
	for i, tt := range tests {
		r, _ := vipd(t, append(tt.args, "--socket", socket)...)
		if r.code != 0 || r.stdout != tt.out || r.stderr != "" {
			t.Errorf("vipd %s: exit %d stdout %q stderr %q, want 0 and %q", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, tt.out)
		}
		if len(fa.maints) != i+1 || fa.maints[i] != tt.want {
			t.Errorf("vipd %s: agent got %+v, want %+v last", strings.Join(tt.args, " "), fa.maints, tt.want)
		}
	}

	t.Setenv("VIPD_NODE", "lb3") // flags come from the environment too
	r, _ := vipd(t, "maint", "on", "--socket", socket)
	if r.code != 0 || fa.maints[len(fa.maints)-1].Node != "lb3" {
		t.Errorf("VIPD_NODE: exit %d, agent got %+v", r.code, fa.maints[len(fa.maints)-1])
	}
}

func TestMaintOfAnotherNodeRefused(t *testing.T) {
	for _, msg := range []string{
		"maintenance for lb9: no such node in gossip",
		"maintenance for lb3: node is dead",
		"gossip is off on this node: start vipd run with --gossip-bind or --join",
	} {
		fa := &fleetFake{maintErr: errors.New(msg)}
		r, _ := vipd(t, "maint", "on", "--node", "lb9", "--socket", serve(t, fa))
		if r.code != 1 || r.stdout != "" || r.stderr != "vipd: "+msg+"\n" {
			t.Errorf("%s: exit %d stdout %q stderr %q", msg, r.code, r.stdout, r.stderr)
		}
	}
}

func TestFleetHelpTeaches(t *testing.T) {
	tests := []struct {
		cmd  string
		want []string
	}{
		{"status", []string{"--fleet", "classic", "split_brain", "config_mismatch", "maintenance", "NODES", "INSTANCES", "WARNINGS", "vipd status --fleet"}},
		{"join", []string{"vipd join 10.0.0.12:7946", "Gossip carries", "--join", "heals", "by themselves"}},
		{"maint", []string{"--node", "gossip", "alive", "state directory", "vipd maint on --node lb2"}},
	}
	for _, tt := range tests {
		r, _ := vipd(t, tt.cmd, "--help")
		if r.code != 0 {
			t.Errorf("vipd %s --help: exit %d", tt.cmd, r.code)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("vipd %s --help lacks %q", tt.cmd, w)
			}
		}
		for _, no := range []string{"not implemented", "not built yet", "Not implemented"} {
			if strings.Contains(r.stdout, no) {
				t.Errorf("vipd %s --help still says %q", tt.cmd, no)
			}
		}
		text, _, _ := strings.Cut(r.stdout, "\nFlags:") // the flags are cobra's
		for _, l := range strings.Split(text, "\n") {
			if len(l) > 100 {
				t.Errorf("vipd %s --help: line of %d columns: %q", tt.cmd, len(l), l)
			}
		}
	}
}
