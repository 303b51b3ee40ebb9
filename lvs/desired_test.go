package lvs

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/config"
	"github.com/vipd/vipd/config/loader"
)

// load parses a keepalived.conf text as vipd run would.
func load(t *testing.T, conf string) *config.Model {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m, ds := loader.Load(p, loader.Options{})
	if err := ds.Err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	return m
}

// health builds a Health func from "rsID=up|down|w<N>" settings.
func health(states map[string]string) func(string) (Health, bool) {
	return func(id string) (Health, bool) {
		s, ok := states[id]
		if !ok {
			return Health{Up: true}, true
		}
		switch {
		case s == "up":
			return Health{Up: true}, true
		case s == "down":
			return Health{}, true
		case strings.HasPrefix(s, "w"):
			w := 0
			for _, c := range s[1:] {
				w = w*10 + int(c-'0')
			}
			return Health{Up: true, Weight: &w}, true
		}
		return Health{}, false
	}
}

const webConf = `
virtual_server 10.0.0.1 80 {
    delay_loop 2
    lb_algo rr
    lb_kind NAT
    protocol TCP
    %s
    real_server 10.0.0.2 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.0.3 80 {
        weight 0
        TCP_CHECK {
        }
    }
    real_server 10.0.0.4 8080 {
        TCP_CHECK {
        }
    }
}
`

func conf(extra string) string { return strings.Replace(webConf, "%s", extra, 1) }

func TestDesiredFollowsHealth(t *testing.T) {
	const (
		rs2 = "10.0.0.1 80/TCP/10.0.0.2:80"
		rs3 = "10.0.0.1 80/TCP/10.0.0.3:80"
		rs4 = "10.0.0.1 80/TCP/10.0.0.4:8080"
	)
	tests := []struct {
		name   string
		extra  string
		health map[string]string
		want   string
	}{
		{
			name: "all up: every real server with its weight, weight 0 included",
			want: `-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 0
-a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m -w 1
`,
		},
		{
			name:   "a failed real server leaves the pool",
			health: map[string]string{rs2: "down"},
			want: `-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 0
-a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m -w 1
`,
		},
		{
			name:   "inhibit_on_failure: a failed real server stays with weight 0",
			extra:  "inhibit_on_failure",
			health: map[string]string{rs2: "down"},
			want: `-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 0
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 0
-a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m -w 1
`,
		},
		{
			name:   "misc_dynamic weight replaces the configured one",
			health: map[string]string{rs4: "w7"},
			want: `-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 0
-a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m -w 7
`,
		},
		{
			name:   "quorum lost with a sorry server: the sorry server replaces the live ones",
			extra:  "quorum 3\n    sorry_server 10.0.0.9 80",
			health: map[string]string{rs2: "down", rs3: "up", rs4: "up"},
			want: `-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.9:80 -m -w 1
`,
		},
		{
			name:   "quorum lost without a sorry server: the live ones stay",
			extra:  "quorum 3",
			health: map[string]string{rs2: "down"},
			want: `-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 0
-a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m -w 1
`,
		},
		{
			name:   "persistence with granularity",
			extra:  "persistence_timeout 600\n    persistence_granularity 255.255.0.0",
			health: map[string]string{rs2: "down", rs3: "down", rs4: "down"},
			want:   "-A -t 10.0.0.1:80 -s rr -p 600 -M 255.255.0.0\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := load(t, conf(tt.extra))
			pools, _ := Desired(Input{Servers: m.VirtualServers, Health: health(tt.health)})
			if diff := cmp.Diff(tt.want, Render(pools)); diff != "" {
				t.Errorf("desired (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQuorumHysteresis walks a virtual server through live weights with
// quorum 3 and hysteresis 1: quorum is gained at 4, kept down to 2, lost
// below 2, and the sorry server is in exactly while it is lost.
func TestQuorumHysteresis(t *testing.T) {
	m := load(t, `
virtual_server 10.0.0.1 80 {
    quorum 3
    hysteresis 1
    sorry_server 10.0.0.9 80
    real_server 10.0.0.2 80 { MISC_CHECK { misc_path /bin/true } }
}`)
	id := "10.0.0.1 80/TCP/10.0.0.2:80"
	quorum := map[string]bool{}
	steps := []struct {
		weight     string // the live weight, through misc_dynamic
		wantQuorum bool
	}{
		{"w5", true}, {"w2", true}, {"w1", false}, {"w3", false}, {"w4", true}, {"w2", true}, {"down", false},
	}
	for i, s := range steps {
		pools, views := Desired(Input{Servers: m.VirtualServers, Health: health(map[string]string{id: s.weight}), QuorumUp: quorum})
		v := views[0]
		if v.QuorumUp != s.wantQuorum {
			t.Fatalf("step %d (%s): quorum up %v, want %v", i, s.weight, v.QuorumUp, s.wantQuorum)
		}
		sorryIn := strings.Contains(Render(pools), "10.0.0.9:80")
		if sorryIn == v.QuorumUp {
			t.Fatalf("step %d: sorry server in pool %v with quorum up %v", i, sorryIn, v.QuorumUp)
		}
		quorum[v.ID] = v.QuorumUp
	}
}

func TestDesiredGroupsFwmarkAndSuspension(t *testing.T) {
	m := load(t, `
virtual_server_group web {
    10.0.0.10-11 80
    fwmark 5
}
virtual_server group web {
    lb_algo wlc
    lb_kind DR
    real_server 10.0.1.2 80 {
        lb_kind TUN
    }
    real_server 10.0.1.3 80
}
virtual_server fwmark 9 {
    lb_algo sh
    real_server 2001:db8::2 0
}
virtual_server 10.0.0.20 443 {
    ha_suspend
    real_server 10.0.1.4 443
}
`)
	pools, views := Desired(Input{Servers: m.VirtualServers, Groups: m.VirtualServerGroups,
		Suspended: map[string]bool{"10.0.0.20 443/TCP": true}})
	want := `-A -t 10.0.0.10:80 -s wlc
-a -t 10.0.0.10:80 -r 10.0.1.2:80 -i -w 1
-a -t 10.0.0.10:80 -r 10.0.1.3:80 -g -w 1
-A -t 10.0.0.11:80 -s wlc
-a -t 10.0.0.11:80 -r 10.0.1.2:80 -i -w 1
-a -t 10.0.0.11:80 -r 10.0.1.3:80 -g -w 1
-A -t 10.0.0.20:443 -s wlc
-a -t 10.0.0.20:443 -r 10.0.1.4:443 -m -w 1
-A -f 5 -s wlc
-a -f 5 -r 10.0.1.2:80 -i -w 1
-a -f 5 -r 10.0.1.3:80 -g -w 1
-A -f 9 -6 -s sh
-a -f 9 -6 -r [2001:db8::2]:0 -m -w 1
`
	if diff := cmp.Diff(want, Render(pools)); diff != "" {
		t.Errorf("desired (-want +got):\n%s", diff)
	}
	if len(views) != 3 || !views[2].Suspended || len(views[2].Keys) != 1 {
		t.Errorf("the ha_suspend server's view: %+v", views[2])
	}
}

func TestDesiredLeavesADuplicateServiceToTheFirst(t *testing.T) {
	m := &config.Model{VirtualServers: []*config.VirtualServer{
		{Name: "a", Address: mustAddr("10.0.0.1"), Port: 80, Protocol: "TCP", LBAlgo: "rr"},
		{Name: "b", Address: mustAddr("10.0.0.1"), Port: 80, Protocol: "TCP", LBAlgo: "wlc"},
	}}
	pools, views := Desired(Input{Servers: m.VirtualServers})
	if len(pools) != 1 || pools[0].Scheduler != "rr" {
		t.Errorf("pools %+v: want only a's", pools)
	}
	if len(views[1].Problems) != 1 || !strings.Contains(views[1].Problems[0], "also virtual_server a") {
		t.Errorf("b's problems: %q", views[1].Problems)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestGranularityWithoutTimeoutIsPersistentForSixMinutes(t *testing.T) {
	m := load(t, conf("persistence_granularity 255.255.255.0"))
	pools, _ := Desired(Input{Servers: m.VirtualServers})
	if pools[0].Timeout != 360 || pools[0].Netmask != 24 {
		t.Errorf("service %+v, want -p 360 -M 255.255.255.0 (check_parser.c pgr_handler)", pools[0].Service)
	}
}
