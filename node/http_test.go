package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
)

// TestMetricsAndStatusOverHTTP: what an operator's Prometheus and curl see.
// /metrics parses as Prometheus text and its figures agree with what
// happened (one committed transaction, the leader's raft state); /status is
// JSON naming the node, its role and the leader, in the very encoding
// Connect's JSON codec gives the Status RPC (same field names, same values
// for what does not move between two calls).
func TestMetricsAndStatusOverHTTP(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3})
	c.StartAll()
	leader := c.WaitLeader()
	r := c.MustOK(leader, c.Net.Issue(t, "icbc", 100))
	c.Converge(r.GetLogIndex(), 10*time.Second)

	for _, name := range c.Names {
		fams := scrape(t, c.URL(name)+"/metrics")
		if got := counterByLabel(fams["dcep_transactions_total"], "code", statepb.Code_CODE_OK.Short()); got < 1 {
			t.Errorf("%s: dcep_transactions_total{code=OK} = %v, want ≥ 1", name, got)
		}
		if got := gaugeValue(fams["dcep_applied_index"]); got < float64(r.GetLogIndex()) {
			t.Errorf("%s: dcep_applied_index = %v, want ≥ %d", name, got, r.GetLogIndex())
		}
		want := "follower"
		if name == leader {
			want = "leader"
		}
		if got := counterByLabel(fams["dcep_raft_state"], "state", want); got != 1 {
			t.Errorf("%s: dcep_raft_state{state=%q} = %v, want 1", name, want, got)
		}
	}

	resp, err := http.Get(c.URL(leader) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct == "" {
		t.Fatalf("/status: %d %q", resp.StatusCode, ct)
	}
	var st struct {
		Node struct {
			Name, Role, Leader string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/status is not JSON: %v", err)
	}
	if st.Node.Name != leader || st.Node.Leader != leader || st.Node.Role != "NODE_ROLE_VOTER" {
		t.Fatalf("/status node: %+v (leader %s)", st.Node, leader)
	}
	for _, name := range c.Names {
		statusMatchesConnectJSON(t, c.URL(name))
	}
}

// statusMatchesConnectJSON: GET /status and a Connect JSON call of Status
// on the same node have the same field names at every depth and the same
// name, leader, term and chain id. Clocks and poll ages move between two
// calls (and a zero value is left out), so it asks up to ten times for a
// pair whose names agree; snake_case names never agree with camelCase.
func statusMatchesConnectJSON(t *testing.T, base string) {
	t.Helper()
	var last string
	for range 10 {
		plain := getBody(t, http.MethodGet, base+"/status", nil)
		conn := getBody(t, http.MethodPost, base+nodepbconnect.LedgerServiceStatusProcedure, []byte("{}"))
		pk, ck := jsonKeys(t, plain), jsonKeys(t, conn)
		if slices.Equal(pk, ck) {
			var a, b struct {
				Node map[string]any `json:"node"`
			}
			_ = json.Unmarshal(plain, &a)
			_ = json.Unmarshal(conn, &b)
			for _, k := range []string{"name", "leader", "term", "chainId", "genesisHash", "role", "peerId"} {
				if fmt.Sprint(a.Node[k]) != fmt.Sprint(b.Node[k]) || a.Node[k] == nil {
					t.Fatalf("%s: node.%s is %v in /status, %v in Connect JSON", base, k, a.Node[k], b.Node[k])
				}
			}
			return
		}
		last = fmt.Sprintf("/status keys %v\nConnect keys %v", pk, ck)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: /status and Connect JSON differ in field names:\n%s", base, last)
}

func getBody(t *testing.T, method, url string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %v %s", method, url, resp.StatusCode, err, raw)
	}
	return raw
}

// jsonKeys lists every object key path in a JSON document ("node.peerId",
// "peers[].status.term"), sorted.
func jsonKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	set := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				set[prefix+k] = true
				walk(prefix+k+".", e)
			}
		case []any:
			for _, e := range x {
				walk(prefix[:len(prefix)-1]+"[].", e)
			}
		}
	}
	walk("", v)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s is not valid Prometheus text: %v", url, err)
	}
	return fams
}

// counterByLabel is the value of the family's series whose label is v
// (counter or gauge), or -1.
func counterByLabel(f *dto.MetricFamily, label, v string) float64 {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == v {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func gaugeValue(f *dto.MetricFamily) float64 {
	if ms := f.GetMetric(); len(ms) == 1 {
		return ms[0].GetGauge().GetValue()
	}
	return -1
}
