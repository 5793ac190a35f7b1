package observability

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statetest"
)

// promtool returns promtool's path, skipping the test only when it is
// absent and DCEP_REQUIRE_TOOLS is unset (scripts/test.sh sets it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("DCEP_REQUIRE_TOOLS") != "" {
			t.Fatal("promtool not installed (Debian package prometheus) and DCEP_REQUIRE_TOOLS is set")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules runs promtool check rules and promtool test rules.
func TestAlertRules(t *testing.T) {
	p := promtool(t)
	t.Log(strings.TrimSpace(runTool(t, p, "check", "rules", "alerts.yml")))
	t.Log(strings.TrimSpace(runTool(t, p, "test", "rules", "alerts_test.yml")))
}

// dashboardExprs returns every query of the dashboard, with Grafana's
// variables replaced by values Prometheus accepts.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	r := strings.NewReplacer("$__rate_interval", "5m", "$job", "dcep", "$instance", ".*")
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, r.Replace(tg.Expr))
		}
	}
	return exprs
}

// TestDashboardQueries has promtool parse every dashboard query (as
// recording rules: promtool has no other offline PromQL check) and checks
// the panels the operator needs are there.
func TestDashboardQueries(t *testing.T) {
	exprs := dashboardExprs(t)
	all := strings.Join(exprs, "\n")
	for _, want := range []string{"dcep_transactions_total", "dcep_submit_seconds_bucket", "dcep_applied_index",
		"dcep_raft_term", "dcep_state_divergence", "dcep_offline_incidents", "dcep_p2p_refusals", "dcep_api_requests_total"} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel uses %s", want)
		}
	}
	p := promtool(t)
	var rules []map[string]string
	for i, e := range exprs {
		rules = append(rules, map[string]string{"record": "dashboard:query" + string(rune('a'+i)), "expr": e})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, p, "check", "rules", path)
}

var (
	metricRe   = regexp.MustCompile(`\bdcep_[a-z0-9_]+`)
	selectorRe = regexp.MustCompile(`\b(dcep_[a-z0-9_]+)\{([^}]*)\}`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)`)
	byRe       = regexp.MustCompile(`\bby \(([^)]*)\)`)
)

// scrapeLabels maps each sample name a node serves to the label names its
// series carry.
type scrapeLabels map[string]map[string]bool

func (s scrapeLabels) add(text string) {
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name = strings.Fields(name)[0]
		if s[name] == nil {
			s[name] = map[string]bool{}
		}
		if labels, _, ok := strings.Cut(rest, "}"); ok {
			for _, m := range matcherRe.FindAllStringSubmatch(labels, -1) {
				s[name][m[1]] = true
			}
		}
	}
}

// eventOnly are metrics whose series exist only once something happened
// that a healthy network never does (a member using a protocol its role may
// not, a node key running twice): a scrape cannot show them, so the test
// finds their registration, with the label, in the node's source instead.
var eventOnly = map[string]string{
	"dcep_p2p_role_refusals_total":      "protocol",
	"dcep_p2p_duplicate_identity_total": "peer",
}

// TestMetricsExistOnRealNode starts a real network (3 voters and a
// regulator, in this process), commits an issue, scrapes every node's
// /metrics and checks that every metric and label the alert rules, their
// tests' input series and the dashboard use is one a node serves.
func TestMetricsExistOnRealNode(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	c.MustOK(leader, n.Sign(t, statetest.IssueBody("icbc", 1_000_000), n.CentralBank()))
	reg := c.Names[len(c.Names)-1]
	got := scrapeLabels{}
	// The regulator's first state-hash comparison takes a second or two.
	c.Eventually(20*time.Second, "state-hash comparisons on the regulator", func() error {
		got = scrapeLabels{}
		for _, name := range c.Names {
			got.add(scrape(t, c.URL(name)))
		}
		if got["dcep_state_divergence"] == nil {
			return errNotYet
		}
		return nil
	})
	t.Logf("scraped %d sample names from %d nodes (regulator %s)", len(got), len(c.Names), reg)
	for src, exprs := range usedExprs(t) {
		for _, e := range exprs {
			checkExpr(t, src, e, got)
		}
	}
	checkInputSeries(t, got)
}

var errNotYet = os.ErrDeadlineExceeded

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %v %s", base, err, resp.Status)
	}
	return string(b)
}

// usedExprs returns the alert rules' expressions (with the labels their
// annotations refer to appended as "by (...)") and the dashboard's.
func usedExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Expr        string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var rules []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			rules = append(rules, r.Expr)
		}
	}
	return map[string][]string{"alerts.yml": rules, "grafana-dashboard.json": dashboardExprs(t)}
}

// standard labels are added by Prometheus (job, instance) or are part of a
// histogram's samples (le).
func standard(label string) bool { return label == "job" || label == "instance" || label == "le" }

func checkExpr(t *testing.T, src, expr string, got scrapeLabels) {
	t.Helper()
	names := metricRe.FindAllString(expr, -1)
	for _, name := range names {
		if got[name] != nil {
			continue
		}
		if label, ok := eventOnly[name]; ok {
			checkRegistered(t, name, label)
			continue
		}
		t.Errorf("%s uses %s, which no node serves", src, name)
	}
	has := func(name, label string) bool {
		if l, ok := eventOnly[name]; ok {
			return l == label
		}
		return got[name][label]
	}
	for _, m := range selectorRe.FindAllStringSubmatch(expr, -1) {
		for _, lm := range matcherRe.FindAllStringSubmatch(m[2], -1) {
			if !standard(lm[1]) && !has(m[1], lm[1]) {
				t.Errorf("%s: %s has no label %q on a real node", src, m[1], lm[1])
			}
		}
	}
	for _, by := range byRe.FindAllStringSubmatch(expr, -1) {
		for _, label := range strings.Split(by[1], ",") {
			label = strings.TrimSpace(label)
			if standard(label) {
				continue
			}
			if !slices.ContainsFunc(names, func(n string) bool { return has(n, label) }) {
				t.Errorf("%s: by (%s) in %q: no metric there has that label", src, label, expr)
			}
		}
	}
}

// checkRegistered finds an event-only metric's name and label in node/.
func checkRegistered(t *testing.T, name, label string) {
	t.Helper()
	b, err := os.ReadFile("../../node/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"` + name + `",[^\n]*\n?[^\n]*\[\]string\{"` + label + `"\}`)
	if !re.Match(b) {
		t.Errorf("%s{%s} is not registered in node/metrics.go", name, label)
	}
}

// checkInputSeries checks that every input series of alerts_test.yml has a
// real node's name and label names (less job and instance).
func checkInputSeries(t *testing.T, got scrapeLabels) {
	t.Helper()
	b, err := os.ReadFile("alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			InputSeries []struct{ Series string } `json:"input_series"`
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts_test.yml: %v", err)
	}
	seen := 0
	for _, tc := range f.Tests {
		for _, s := range tc.InputSeries {
			seen++
			name, labels, _ := strings.Cut(s.Series, "{")
			var want []string
			for _, m := range matcherRe.FindAllStringSubmatch(labels, -1) {
				if !standard(m[1]) {
					want = append(want, m[1])
				}
			}
			if l, ok := eventOnly[name]; ok {
				if !slices.Equal(want, []string{l}) {
					t.Errorf("alerts_test.yml: %s with labels %v, a node gives it {%s}", s.Series, want, l)
				}
				continue
			}
			real, ok := got[name]
			if !ok {
				t.Errorf("alerts_test.yml: %s is not a metric a node serves", s.Series)
				continue
			}
			var have []string
			for l := range real {
				have = append(have, l)
			}
			slices.Sort(want)
			slices.Sort(have)
			if !slices.Equal(want, have) {
				t.Errorf("alerts_test.yml: %s has labels %v, a real node's %v", s.Series, want, have)
			}
		}
	}
	if seen == 0 {
		t.Fatal("alerts_test.yml has no input series")
	}
}
