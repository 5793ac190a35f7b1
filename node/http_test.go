package node_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
)

// TestMetricsAndStatusOverHTTP: what an operator's Prometheus and curl see.
// /metrics parses as Prometheus text and its figures agree with what
// happened (one committed transaction, the leader's raft state); /status is
// JSON naming the node, its role and the leader.
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
