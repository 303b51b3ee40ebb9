package agent

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/keepalived"
	"github.com/vipd/vipd/config/loader"
	"github.com/vipd/vipd/internal/clock"
	"github.com/vipd/vipd/vrrp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// planStep is one model applied after the previous one.
type planStep struct {
	name string
	conf string // keepalived.conf text
}

const planBase = `
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
    }
    track_interface {
        eth0 weight 10
    }
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.101/24
    }
}
vrrp_instance VI_3 {
    interface eth0
    virtual_router_id 53
    priority 100
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
    }
    virtual_ipaddress {
        10.0.0.102/24
    }
}
`

// planSteps is a sequence of edits an operator makes, each applied to the
// result of the one before.
var planSteps = []planStep{
	{"unchanged, comment added", "# a comment\n" + planBase},
	{"VIP added and priority changed on VI_1", strings.Replace(planBase,
		"    priority 100\n    advert_int 1\n    virtual_ipaddress {\n        10.0.0.100/24\n",
		"    priority 120\n    advert_int 1\n    virtual_ipaddress {\n        10.0.0.100/24\n        10.0.0.110/24\n", 1)},
	{"VI_2 renamed to WEB (same VRID, interface, family, mode)", strings.NewReplacer("VI_2", "WEB").Replace(planBase)},
	{"VI_3 moves from unicast to multicast: identity change", strings.Replace(planBase,
		"    unicast_src_ip 10.0.0.1\n    unicast_peer {\n        10.0.0.2\n    }\n", "", 1)},
	{"VI_2 leaves G1 for a new group G2, G1's tracking weight changes", strings.NewReplacer(
		"        VI_2\n    }\n    track_interface {\n        eth0 weight 10", "    }\n    track_interface {\n        eth0 weight 20",
		"vrrp_instance VI_1 {", "vrrp_sync_group G2 {\n    group {\n        VI_2\n    }\n}\nvrrp_instance VI_1 {").Replace(planBase)},
	{"VI_1 removed, VI_4 added, VI_2 advert_int and auth changed", strings.NewReplacer(
		"vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 100\n    advert_int 1\n    virtual_ipaddress {\n        10.0.0.100/24\n    }\n}\n",
		"vrrp_instance VI_4 {\n    interface eth0\n    virtual_router_id 54\n    priority 90\n    virtual_ipaddress {\n        10.0.0.104/24\n    }\n}\n",
		"    virtual_router_id 52\n    priority 100\n    advert_int 1\n", "    virtual_router_id 52\n    priority 100\n    advert_int 2\n    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n",
		"        VI_1\n", "        VI_4\n").Replace(planBase)},
	{"VI_1 and VI_2 swap names", strings.NewReplacer("VI_1", "VI_2", "VI_2", "VI_1").Replace(planBase)},
	{"VI_1 takes VRID 60: same name, another identity", strings.Replace(planBase, "virtual_router_id 51", "virtual_router_id 60", 1)},
}

func loadText(t *testing.T, text string) *config.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadFile(t, path)
}

func loadFile(t *testing.T, path string) *config.Model {
	t.Helper()
	m, diags := loader.Load(path, loader.Options{
		InterfaceExists: func(string) bool { return true },
		Keepalived:      keepalived.Options{ConfigIDs: []string{"lb1"}},
	})
	if err := diags.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// TestPlanGoldenSequences applies each edit to the base model and checks
// the plan against a golden transcript (go test -update rewrites it).
func TestPlanGoldenSequences(t *testing.T) {
	base := loadText(t, planBase)
	var b strings.Builder
	for _, st := range planSteps {
		p := plan(RunningFromModel(base), loadText(t, st.conf))
		b.WriteString("== " + st.name + "\n" + p.String())
	}
	// A sequence: each step applied to the previous one's result.
	b.WriteString("== sequence: every step in turn, then back to the base\n")
	cur := base
	for _, st := range append(planSteps, planStep{"base", planBase}) {
		next := loadText(t, st.conf)
		b.WriteString("-- " + st.name + "\n" + plan(RunningFromModel(cur), next).String())
		cur = next
	}
	golden := filepath.Join("testdata", "plan.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./agent -run TestPlanGoldenSequences -update writes it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("plans differ from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}

// TestPlanOfTheSameFileParsedTwiceIsEmpty: equality is decided on values,
// never on pointers or formatting — every configuration in the repository
// parsed twice plans no change.
func TestPlanOfTheSameFileParsedTwiceIsEmpty(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../config/keepalived/testdata/*.conf", "../config/keepalived/testdata/captures/*.conf",
		"../cmd/vipd/testdata/good.conf", "../deploy/examples/*.conf", "../deploy/examples/*.yaml", "../config/testdata/*.yaml",
		"../integration/testdata/*.conf"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	n := 0
	for _, f := range files {
		m1, d1 := loader.Load(f, loader.Options{InterfaceExists: func(string) bool { return true }})
		if d1.Err() != nil {
			continue // broken on purpose
		}
		m2, _ := loader.Load(f, loader.Options{InterfaceExists: func(string) bool { return true }})
		n++
		if p := plan(RunningFromModel(m1), m2); len(p) != 0 {
			t.Errorf("%s parsed twice plans changes:\n%s", f, p)
		}
		if len(m1.Instances) > 0 {
			if p := plan(RunningFromModel(m1), m1); len(p) != 0 {
				t.Errorf("%s against itself plans changes:\n%s", f, p)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d valid configurations found; the glob patterns are stale", n)
	}
}

// TestPlanSeesEveryFieldOfAnInstance: a change of any field of an instance
// shows in the plan (a new model field is never silently ignored).
func TestPlanSeesEveryFieldOfAnInstance(t *testing.T) {
	a := loadText(t, planBase)
	b := loadText(t, planBase)
	b.Instances[0].NoPreempt = true
	b.Instances[1].Garp.MasterRepeat = 9
	b.Instances[2].Notify.Master = "/bin/true"
	p := plan(RunningFromModel(a), b)
	want := "update VI_1: nopreempt\nupdate VI_2: garp\nupdate VI_3: notify\n"
	if p.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", p, want)
	}
}

// TestPlanSequencesExecuteWithoutMovingWhatTheyAreNotAbout carries out the
// golden sequence on the in-memory VIP plane with the injected clock: after
// each step, every instance the plan kept (unchanged or updated live) is the
// same runtime, in the same state since the same instant, and the plane
// holds exactly the VIPs of the model (every instance is MASTER on a silent
// wire).
func TestPlanSequencesExecuteWithoutMovingWhatTheyAreNotAbout(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a, plane := testAgentWith(t, Options{Clock: fc})
	prep := func(m *config.Model) *config.Model {
		for _, ic := range m.Instances {
			if !ic.UnicastSrcIP.IsValid() {
				ic.McastSrcIP = netip.MustParseAddr("10.0.0.1")
			}
		}
		return m
	}
	settle := func(m *config.Model) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			all := true
			for _, s := range a.Status().Instances {
				all = all && s.State == "MASTER"
			}
			if all && len(a.Status().Instances) == len(m.Instances) {
				return
			}
			fc.Advance(100 * time.Millisecond)
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("instances did not all become MASTER: %+v", a.Status().Instances)
	}
	cur := prep(loadText(t, planBase))
	a.apply(cur)
	settle(cur)
	for _, st := range append(planSteps, planStep{"base", planBase}) {
		next := prep(loadText(t, st.conf))
		type seen struct {
			inst  *vrrp.Instance
			since time.Time
		}
		before := map[*vrrp.Instance]seen{}
		for _, ri := range a.running {
			before[ri.inst] = seen{ri.inst, a.hubSince(ri)}
		}
		p := a.apply(next)
		replaced := map[string]bool{}
		for _, c := range p {
			if c.Kind == ChangeReplace || c.Kind == ChangeRemove || c.Kind == ChangeAdd {
				replaced[c.Instance] = true
			}
		}
		for name, ri := range a.running {
			if replaced[name] {
				continue
			}
			b, ok := before[ri.inst]
			if !ok {
				t.Errorf("%s: %s was not replaced by the plan but runs a new runtime", st.name, name)
				continue
			}
			if s := a.hubSince(ri); !s.Equal(b.since) {
				t.Errorf("%s: %s moved (since %v -> %v) though the plan only updated it", st.name, name, b.since, s)
			}
		}
		settle(next)
		var want []string
		for _, ic := range next.Instances {
			for _, v := range ic.VIPs {
				want = append(want, v.Prefix.String())
			}
		}
		var got []string
		for _, p := range plane.Addrs("eth0") {
			got = append(got, p.String())
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: plane holds %v, model has %v", st.name, got, want)
		}
		cur = next
	}
}

// hubSince is when ri entered its state, as the stream saw it (tests).
func (a *Agent) hubSince(ri *runningInstance) time.Time {
	a.hub.mu.Lock()
	defer a.hub.mu.Unlock()
	if e := a.hub.entries[ri]; e != nil {
		return e.rt.Since
	}
	return time.Time{}
}
