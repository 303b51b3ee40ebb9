package lvs

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestMetricsFollowChecksAndReconciles(t *testing.T) {
	h := newHarness(t, NewMemory())
	h.apply(load(t, poolConf("1")))
	h.m.Result(CheckResult{ID: rs2check, Type: "TCP_CHECK", Up: false, OK: false, Cause: "refused", Duration: 3 * time.Millisecond})
	h.settle()

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.m.Collector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`vipd_lvs_real_servers{protocol="TCP",virtual_server="10.0.0.1 80"} 2`,
		`vipd_lvs_real_servers_up{protocol="TCP",virtual_server="10.0.0.1 80"} 1`,
		`vipd_lvs_quorum_up{protocol="TCP",virtual_server="10.0.0.1 80"} 0`,
		`vipd_lvs_checks_total{result="failed",type="TCP_CHECK"} 1`,
		`vipd_lvs_check_duration_seconds_count{type="TCP_CHECK"} 1`,
		`vipd_lvs_reconcile_operations_total{op="add-service"} 1`,
		`vipd_lvs_reconcile_operations_total{op="add-dest"} 2`,
		`vipd_lvs_reconcile_operations_total{op="del-dest"} 1`,
		`vipd_lvs_reconcile_errors_total 0`,
		`vipd_lvs_ipvs_available 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: run scripts/deps.sh (as root; it installs Debian's prometheus package, which ships /usr/bin/promtool)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "" {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out.String(), body)
	}
}
