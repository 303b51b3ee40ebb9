package deploy

// Checks of the Grafana dashboard (grafana/vipd.json) and the Prometheus alerting rules
// (prometheus/vipd-alerts.yml): promtool accepts the rules and their unit tests pass, the
// dashboard is well formed, and every metric and label either uses is one vipd serves.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	obsRulesFile     = "prometheus/vipd-alerts.yml"
	obsRulesTestFile = "prometheus/vipd-alerts.test.yml"
	obsDashboardFile = "grafana/vipd.json"
	obsMetricsDoc    = "../api/metrics/METRICS.md"
	obsGossipMetrics = "../gossip/metrics.go"
	obsDatasourceUID = "${datasource}"
)

// obsGossipServed lists the metrics the gossip layer registers beside api/metrics' collector
// that api/metrics/METRICS.md does not list (the README's fleet section names them), with their
// labels. Each is checked against the list at the top of gossip/metrics.go, so this cannot name a
// metric vipd does not serve. A name METRICS.md lists is taken from METRICS.md.
var obsGossipServed = map[string][]string{
	"vipd_split_brain":    {"vrid", "segment"},
	"vipd_gossip_members": {"state"},
}

// obsTargetLabels are the labels Prometheus adds to every scraped series.
var obsTargetLabels = []string{"instance", "job"}

// obsPromtool runs promtool with args in this directory and fails the test on a non-zero exit.
func obsPromtool(t *testing.T, args ...string) string {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: run scripts/deps.sh (as root; it installs Debian's prometheus package, which ships /usr/bin/promtool)")
	}
	var out bytes.Buffer
	cmd := exec.Command(promtool, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestAlertRulesPromtoolCheck(t *testing.T) {
	obsPromtool(t, "check", "rules", obsRulesFile)
}

func TestAlertRulesPromtoolUnitTests(t *testing.T) {
	obsPromtool(t, "test", "rules", obsRulesTestFile)
}

type obsRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func obsReadRules(t *testing.T) []obsRule {
	t.Helper()
	b, err := os.ReadFile(obsRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string    `yaml:"name"`
			Rules []obsRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", obsRulesFile, err)
	}
	var rules []obsRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", obsRulesFile)
	}
	return rules
}

// TestAlertRulesShape wants of every alert a severity, a summary and a description that names
// the runbook action ("Action: ..."), and, in the unit tests, an evaluation where it fires and
// one where it does not.
func TestAlertRulesShape(t *testing.T) {
	rules := obsReadRules(t)
	for _, want := range []string{"VipdSplitBrain", "VipdInstanceFault", "VipdEtcdUnreachable"} {
		found := false
		for _, r := range rules {
			found = found || r.Alert == want
		}
		if !found {
			t.Errorf("%s: no alert %s", obsRulesFile, want)
		}
	}

	b, err := os.ReadFile(obsRulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				EvalTime  string           `yaml:"eval_time"`
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatalf("%s: %v", obsRulesTestFile, err)
	}
	if len(tf.RuleFiles) != 1 || tf.RuleFiles[0] != filepath.Base(obsRulesFile) {
		t.Errorf("%s: rule_files %v, want [%s]", obsRulesTestFile, tf.RuleFiles, filepath.Base(obsRulesFile))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		if strings.TrimSpace(r.Annotations["summary"]) == "" {
			t.Errorf("%s: no summary annotation", r.Alert)
		}
		if d := r.Annotations["description"]; !strings.Contains(d, "Action: ") {
			t.Errorf("%s: the description names no runbook action (\"Action: ...\"): %q", r.Alert, d)
		}
		if !fires[r.Alert] {
			t.Errorf("%s: %s has no evaluation where it fires", r.Alert, obsRulesTestFile)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: %s has no evaluation where it stays quiet", r.Alert, obsRulesTestFile)
		}
	}
}

type obsDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type obsPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *obsDatasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *obsDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []obsPanel `json:"panels"` // a collapsed row's
}

type obsDashboard struct {
	Title         string     `json:"title"`
	UID           string     `json:"uid"`
	SchemaVersion int        `json:"schemaVersion"`
	Panels        []obsPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *obsDatasource  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func obsReadDashboard(t *testing.T) obsDashboard {
	t.Helper()
	b, err := os.ReadFile(obsDashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d obsDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s does not parse: %v", obsDashboardFile, err)
	}
	return d
}

// obsDataPanels returns the dashboard's panels, those of collapsed rows included, rows left out.
func obsDataPanels(d obsDashboard) (panels []obsPanel, all []obsPanel) {
	var walk func([]obsPanel)
	walk = func(ps []obsPanel) {
		for _, p := range ps {
			all = append(all, p)
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			panels = append(panels, p)
		}
	}
	walk(d.Panels)
	return panels, all
}

// obsVariableQuery returns a query variable's query, written as a string or as the
// {"query": ...} object of Grafana's Prometheus variable editor.
func obsVariableQuery(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Query
	}
	return ""
}

var obsLabelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// TestDashboardShape: the dashboard parses; it has a datasource variable of type prometheus and
// node and instance variables from label_values; every panel but a row has the datasource
// variable as its datasource and at least one target with an expression.
func TestDashboardShape(t *testing.T) {
	d := obsReadDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 {
		t.Errorf("title %q, uid %q, schemaVersion %d: want all set", d.Title, d.UID, d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		q := obsVariableQuery(v.Query)
		switch v.Name {
		case "datasource":
			if v.Type != "datasource" || q != "prometheus" {
				t.Errorf("variable datasource: type %q, query %q: want a datasource variable over prometheus", v.Type, q)
			}
		case "node", "instance":
			if v.Type != "query" || !obsLabelValues.MatchString(q) {
				t.Errorf("variable %s: type %q, query %q: want a query variable from label_values", v.Name, v.Type, q)
			}
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != obsDatasourceUID) {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, obsDatasourceUID)
		}
	}
	for _, name := range []string{"datasource", "node", "instance"} {
		if !vars[name] {
			t.Errorf("no %q template variable", name)
		}
	}

	panels, all := obsDataPanels(d)
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]string{}
	for _, p := range all {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q): want unique non-zero ids", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q: no gridPos", p.Title)
		}
	}
	for _, p := range panels {
		if p.Title == "" {
			t.Errorf("panel %d: no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != obsDatasourceUID {
			t.Errorf("panel %q: datasource %+v, want {prometheus %s}", p.Title, p.Datasource, obsDatasourceUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no target", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %q: want an expression and a refId of its own", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != obsDatasourceUID {
				t.Errorf("panel %q: target %s: datasource %+v", p.Title, tg.RefID, tg.Datasource)
			}
		}
	}
}

// obsDashboardExprs returns the dashboard's PromQL, Grafana's variables replaced by values
// Prometheus accepts, keyed by where each comes from; the selector of a label_values variable
// counts as an expression.
func obsDashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	d := obsReadDashboard(t)
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"$instance", ".*", "$node", ".*", "$vrrp_instance", ".*")
	exprs := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := obsLabelValues.FindStringSubmatch(obsVariableQuery(v.Query))
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, obsVariableQuery(v.Query))
			continue
		}
		exprs["variable "+v.Name] = grafana.Replace(m[1])
	}
	panels, _ := obsDataPanels(d)
	for _, p := range panels {
		for _, tg := range p.Targets {
			exprs[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = grafana.Replace(tg.Expr)
		}
	}
	return exprs
}

// TestDashboardPromQLParses hands every dashboard expression to promtool as a recording rule.
func TestDashboardPromQLParses(t *testing.T) {
	exprs := obsDashboardExprs(t)
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, k := range keys {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:expr_%d", i), Expr: exprs[k]})
	}
	type group struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}
	b, err := yaml.Marshal(map[string][]group{"groups": {{Name: "dashboard", Rules: rules}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	obsPromtool(t, "check", "rules", p)
}

var (
	obsMetricName = regexp.MustCompile(`\b(?:vipd|keepalived)_[a-z0-9_]+`)
	obsSelector   = regexp.MustCompile(`\b((?:vipd|keepalived)_[a-z0-9_]+)\s*\{([^}]*)\}`)
	obsQuoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	obsMatcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	obsBackticked = regexp.MustCompile("`([a-z_][a-z0-9_]*)`")
)

type obsMetric struct {
	typ    string
	labels map[string]bool
}

// obsDocumented reads the metric tables of api/metrics/METRICS.md (| `name` | type | labels | ...,
// "L" standing for vrrp_instance, interface, vrid) and adds obsGossipServed.
func obsDocumented(t *testing.T) map[string]obsMetric {
	t.Helper()
	b, err := os.ReadFile(obsMetricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]obsMetric{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		name := obsBackticked.FindStringSubmatch(cells[1])
		if name == nil {
			continue
		}
		m := obsMetric{typ: strings.TrimSpace(cells[2]), labels: map[string]bool{}}
		for _, l := range strings.Split(cells[3], ",") {
			l = strings.TrimSpace(l)
			if l == "L" {
				m.labels["vrrp_instance"], m.labels["interface"], m.labels["vrid"] = true, true, true
			} else if lm := obsBackticked.FindStringSubmatch(l); lm != nil {
				m.labels[lm[1]] = true
			}
		}
		doc[name[1]] = m
	}
	if len(doc) < 40 || doc["vipd_vrrp_state"].typ != "gauge" || !doc["vipd_vrrp_state"].labels["state"] || !doc["vipd_vrrp_state"].labels["vrrp_instance"] {
		t.Fatalf("%s: read %d metrics, vipd_vrrp_state %+v: the table format changed?", obsMetricsDoc, len(doc), doc["vipd_vrrp_state"])
	}

	src, err := os.ReadFile(obsGossipMetrics)
	if err != nil {
		t.Fatal(err)
	}
	for name, labels := range obsGossipServed {
		if _, ok := doc[name]; ok {
			continue
		}
		listed := name + "{" + strings.Join(labels, ",") + "}"
		if !bytes.Contains(src, []byte(listed)) || !bytes.Contains(src, []byte(`"`+name+`"`)) {
			t.Errorf("%s: %s is not listed (as %s) and registered there", obsGossipMetrics, name, listed)
		}
		m := obsMetric{typ: "gauge", labels: map[string]bool{}}
		for _, l := range labels {
			m.labels[l] = true
		}
		doc[name] = m
	}
	return doc
}

// obsLookup finds a metric name in doc, a histogram's _bucket, _sum and _count series included.
func obsLookup(doc map[string]obsMetric, name string) (obsMetric, bool) {
	if m, ok := doc[name]; ok {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := doc[base]; ok && m.typ == "histogram" {
				if suffix == "_bucket" {
					m.labels = map[string]bool{"le": true}
					for l := range doc[base].labels {
						m.labels[l] = true
					}
				}
				return m, true
			}
		}
	}
	return obsMetric{}, false
}

// TestObservabilityMetricsDocumented: every vipd_* and keepalived_* name in the dashboard's and
// the rules' expressions is listed in api/metrics/METRICS.md (or is one of obsGossipServed), and
// every label a selector matches on is one of that metric's labels or a target label.
func TestObservabilityMetricsDocumented(t *testing.T) {
	doc := obsDocumented(t)
	exprs := obsDashboardExprs(t)
	for _, r := range obsReadRules(t) {
		exprs["rule "+r.Alert+r.Record] = r.Expr
	}
	used := map[string]bool{}
	for where, e := range exprs {
		names := obsMetricName.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("%s: no vipd or keepalived metric in %q", where, e)
		}
		for _, n := range names {
			used[n] = true
			if _, ok := obsLookup(doc, n); !ok {
				t.Errorf("%s: %s is not listed in %s", where, n, obsMetricsDoc)
			}
		}
		for _, sel := range obsSelector.FindAllStringSubmatch(e, -1) {
			m, ok := obsLookup(doc, sel[1])
			if !ok {
				continue
			}
			for _, lm := range obsMatcher.FindAllStringSubmatch(obsQuoted.ReplaceAllString(sel[2], `""`), -1) {
				if l := lm[1]; !m.labels[l] && l != "__name__" && !slices.Contains(obsTargetLabels, l) {
					t.Errorf("%s: %s has no label %q (%s lists %v)", where, sel[1], l, obsMetricsDoc, slices.Sorted(maps.Keys(m.labels)))
				}
			}
		}
	}
	t.Logf("%d expressions use %d metrics", len(exprs), len(used))
}
