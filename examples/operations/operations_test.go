package operations_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/runtimetest"
)

// promtoolRelease is the Prometheus release hack/promtool.sh builds promtool
// of; keep the two together.
const promtoolRelease = "v3.16.0"

// promtool returns the promtool hack/promtool.sh install builds:
// $NODEKIT_PROMTOOL, else promtool-v3.16.0/bin/promtool in
// ${NODEKIT_CACHE:-$HOME/.cache/nodekit}. Without it the test skips, or
// fails as root, where hack/test.sh installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("NODEKIT_PROMTOOL")
	if p == "" {
		cache := os.Getenv("NODEKIT_CACHE")
		if cache == "" {
			home := os.Getenv("HOME")
			if home == "" {
				home = "/root"
			}
			cache = filepath.Join(home, ".cache", "nodekit")
		}
		p = filepath.Join(cache, "promtool-"+promtoolRelease, "bin", "promtool")
	}
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("promtool %s not found at %s (%v): run hack/promtool.sh install, or set NODEKIT_PROMTOOL", promtoolRelease, p, err)
		if os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// runPromtool runs promtool with args in dir and returns its output; it
// fails the test when promtool fails.
func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ruleTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `json:"exp_labels"`
				ExpAnnotations map[string]string `json:"exp_annotations"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func alertingRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	readYAML(t, "alerts.yaml", &f)
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("alerts.yaml has no rules")
	}
	return rules
}

// The rules load and pass every lint of promtool check rules.
func TestAlertingRulesCheck(t *testing.T) {
	rules := alertingRules(t)
	out := runPromtool(t, ".", "check", "rules", "--lint=all", "--lint-fatal", "alerts.yaml")
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Errorf("promtool check rules: want %q in\n%s", want, out)
	}
}

// The unit tests of alerts_test.yaml pass.
func TestAlertingRulesUnitTests(t *testing.T) {
	out := runPromtool(t, ".", "test", "rules", "alerts_test.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: no SUCCESS in\n%s", out)
	}
}

// Every alert has a severity, a summary and a description, and its unit
// tests see it both fire and stay silent.
func TestEveryAlertIsTested(t *testing.T) {
	var tests ruleTests
	readYAML(t, "alerts_test.yaml", &tests)
	if !slices.Equal(tests.RuleFiles, []string{"alerts.yaml"}) {
		t.Errorf("alerts_test.yaml tests rule files %q, want alerts.yaml", tests.RuleFiles)
	}
	firing, silent := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) == 0 {
				silent[a.Alertname]++
			} else {
				firing[a.Alertname]++
			}
		}
	}
	for _, r := range alertingRules(t) {
		if r.Alert == "" {
			continue
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if firing[r.Alert] == 0 || silent[r.Alert] == 0 {
			t.Errorf("%s: %d firing and %d silent expectations in alerts_test.yaml, want at least one of each",
				r.Alert, firing[r.Alert], silent[r.Alert])
		}
		delete(firing, r.Alert)
		delete(silent, r.Alert)
	}
	for name := range firing {
		t.Errorf("alerts_test.yaml expects alert %s, which alerts.yaml lacks", name)
	}
	for name := range silent {
		t.Errorf("alerts_test.yaml tests alert %s, which alerts.yaml lacks", name)
	}
}

// dashboard is what the tests read of dashboard.json.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string         `json:"name"`
			Expr       string         `json:"expr"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID        string         `json:"refId"`
		Expr         string         `json:"expr"`
		LegendFormat string         `json:"legendFormat"`
		Datasource   *datasourceRef `json:"datasource"`
	} `json:"targets"`
}

// query is one PromQL expression of the dashboard, with where it is.
type query struct {
	where, expr, legend string
}

func readDashboard(t *testing.T) (dashboard, []query) {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var qs []query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		m := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]\w*\)$`).FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
		}
		qs = append(qs, query{where: "variable " + v.Name, expr: m[1]})
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			qs = append(qs, query{where: "annotation " + a.Name, expr: a.Expr})
		}
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, query{where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), expr: tg.Expr, legend: tg.LegendFormat})
		}
	}
	return d, qs
}

// The dashboard imports as Grafana expects: an identity and a schema
// version, its data source a variable that every query uses, unique panel
// ids, a layout on the 24-column grid without overlaps, and queries that
// use only the variables it defines.
func TestDashboard(t *testing.T) {
	d, qs := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("uid %q, title %q, schemaVersion %d: all are needed", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	hasDS := false
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: datasource %v, want uid ${datasource}", v.Name, v.Datasource)
		}
	}
	if !hasDS {
		t.Fatal(`no variable "datasource" of type datasource for prometheus`)
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" && (a.Datasource == nil || a.Datasource.UID != "${datasource}") {
			t.Errorf("annotation %s: datasource %v, want uid ${datasource}", a.Name, a.Datasource)
		}
	}
	ids := map[int]bool{}
	var boxes []panel
	graphs := 0
	for _, p := range d.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %d %q: gridPos %+v off the 24-column grid", p.ID, p.Title, g)
		}
		for _, o := range boxes {
			h := o.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %d and %d overlap", o.ID, p.ID)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		graphs++
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %d %q: datasource %v, want prometheus ${datasource}", p.ID, p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q: no queries", p.ID, p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %d %q: refId %q missing or repeated", p.ID, p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %d %q target %s: datasource %v, want uid ${datasource}", p.ID, p.Title, tg.RefID, tg.Datasource)
			}
		}
	}
	if graphs == 0 {
		t.Fatal("no panels")
	}
	varRef := regexp.MustCompile(`\$\{?(\w+)`)
	for _, q := range qs {
		for _, m := range varRef.FindAllStringSubmatch(q.expr, -1) {
			if !vars[m[1]] {
				t.Errorf("%s: variable $%s is not defined", q.where, m[1])
			}
		}
	}
}

// Every dashboard query is valid PromQL, checked by promtool as recording
// rules with the variables set as Grafana would.
func TestDashboardQueriesParse(t *testing.T) {
	_, qs := readDashboard(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "${job}", ".+", "$job", ".+", "${instance}", ".+", "$instance", ".+")
	var f ruleFile
	f.Groups = append(f.Groups, struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}{Name: "dashboard"})
	for i, q := range qs {
		expr := vars.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a variable is left in %q", q.where, expr)
		}
		f.Groups[0].Rules = append(f.Groups[0].Rules, rule{Record: fmt.Sprintf("dashboard_query_%d", i), Expr: expr})
	}
	b, err := json.Marshal(f) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-queries.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := runPromtool(t, dir, "check", "rules", "dashboard-queries.yaml")
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(qs)); !strings.Contains(out, want) {
		t.Errorf("want %q in\n%s", want, out)
	}
}

// exported returns the metrics a node wired by examples/node registers
// with every subsystem on, with their variable labels.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	rt, err := runtimetest.New(runtimetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := eviction.NewPolicy(eviction.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: v1.NodeStatus{
		Capacity: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("4Gi"), v1.ResourcePods: resource.MustParse("110")}}}
	n.Status.Allocatable = n.Status.Capacity
	reg := &descRegisterer{metrics: map[string][]string{}}
	_, err = node.New(node.Config{
		Runtime: rt, Updates: make(chan core.PodUpdate), Node: func() (*v1.Node, error) { return n, nil },
		PodLogsRoot: t.TempDir(), RootDir: t.TempDir(),
		Eviction: policy, EvictionObserver: noObservations{}, StatusSink: discard{},
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(reg.errs...); err != nil {
		t.Fatal(err)
	}
	return reg.metrics
}

// descRegisterer records the names and variable labels of what registers.
type descRegisterer struct {
	metrics map[string][]string
	errs    []error
}

var descFormat = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)

func (r *descRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		m := descFormat.FindStringSubmatch(d.String())
		if m == nil {
			r.errs = append(r.errs, fmt.Errorf("cannot read the metric description %s", d))
			continue
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		r.metrics[m[1]] = labels
	}
	return nil
}

func (r *descRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *descRegisterer) Unregister(prometheus.Collector) bool { return true }

type noObservations struct{}

func (noObservations) Observe(context.Context) (eviction.Observations, error) {
	return eviction.Observations{}, nil
}

type discard struct{}

func (discard) WriteStatus(context.Context, core.PodStatusEntry) error { return nil }

var (
	// metricName finds the metrics an expression uses: the project's are
	// kubelet_*; up and ALERTS are Prometheus' own.
	metricName = regexp.MustCompile(`\b(kubelet_\w+|volume_manager_\w+|up|ALERTS)\b`)
	// byLabels finds the labels of by (...) and on (...) clauses.
	byLabels = regexp.MustCompile(`\b(?:by|on|without|ignoring)\s*\(([^)]*)\)`)
	// templateLabel finds $labels.X in alert templates and {{X}} in legends.
	templateLabel = regexp.MustCompile(`\$labels\.(\w+)|\{\{\s*(\w+)\s*\}\}`)
)

// Every metric the rules and the dashboard query is one the project exports
// (a histogram's _bucket, _sum and _count series included), and every label
// they group by or print is one of those metrics' or a target's.
func TestMetricsAndLabelsExist(t *testing.T) {
	metrics := exported(t)
	for _, want := range []string{"kubelet_pod_start_duration_seconds", "kubelet_running_pods", "kubelet_volume_stats_used_bytes"} {
		if _, ok := metrics[want]; !ok {
			t.Fatalf("examples/node registers no %s: is every subsystem on?", want)
		}
	}
	check := func(where, expr, templates string) {
		// Labels of the scrape target, of histograms' buckets, and of
		// Prometheus' ALERTS series.
		labels := map[string]bool{"job": true, "instance": true, "le": true, "alertname": true, "alertstate": true}
		used := 0
		for _, m := range metricName.FindAllStringSubmatch(expr, -1) {
			name := m[1]
			if name == "up" || name == "ALERTS" {
				continue
			}
			used++
			vl, ok := metrics[name]
			if !ok {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, cut := strings.CutSuffix(name, suffix); cut {
						vl, ok = metrics[base]
						break
					}
				}
			}
			if !ok {
				t.Errorf("%s: metric %s is not exported", where, name)
			}
			for _, l := range vl {
				labels[l] = true
			}
		}
		if used == 0 && !strings.Contains(expr, "ALERTS") {
			t.Errorf("%s: uses no metric of the project: %q", where, expr)
		}
		for _, m := range byLabels.FindAllStringSubmatch(expr, -1) {
			for l := range strings.SplitSeq(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !labels[l] {
					t.Errorf("%s: label %s is on none of its metrics", where, l)
				}
			}
		}
		for _, m := range templateLabel.FindAllStringSubmatch(templates, -1) {
			l := m[1] + m[2]
			if !labels[l] {
				t.Errorf("%s: template label %s is on none of its metrics", where, l)
			}
		}
	}
	for _, r := range alertingRules(t) {
		var tpl bytes.Buffer
		for _, k := range []string{"summary", "description"} {
			tpl.WriteString(r.Annotations[k])
		}
		check("alert "+r.Alert, r.Expr, tpl.String())
	}
	_, qs := readDashboard(t)
	for _, q := range qs {
		check(q.where, q.expr, q.legend)
	}
}
