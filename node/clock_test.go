package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/p2p"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestLedgerTimeIgnoresASkewedLeader: in a real network (three voters and
// a regulator, libp2p between them) the leader's clock is a year ahead, or
// an hour behind — set with the node's debug.clock_offset_ms, the skewed
// node running as its own OS process (what a fault campaign does with
// `dcepd run`). Ledger time keeps within the bound of the honest majority's
// clocks: a purse valid for ten more minutes does not expire, and ledger
// time moves on with real time rather than freezing. The skewed node, and
// only it, says its clock is off: metric, /readyz, status.
//
// Before ledger time came from the voters' median, the year-ahead leader
// stamped a year ahead and the idle leader's tick expired the purse; the
// hour-behind one froze ledger time for the hour.
func TestLedgerTimeIgnoresASkewedLeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{{"a year ahead", 365 * 24 * time.Hour}, {"an hour behind", -time.Hour}} {
		t.Run(tc.name, func(t *testing.T) { skewedLeader(t, tc.skew) })
	}
}

func skewedLeader(t *testing.T, skew time.Duration) {
	const skewed = "abc"
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	c.Net.EnableOffline(t, nil)
	c.Configs[skewed].Debug.ClockOffsetMs = skew.Milliseconds()
	// The honest nodes first, so the first leader is one of them (two of
	// three voters are a quorum); then the skewed node, as a process.
	for _, name := range c.Names {
		if name != skewed {
			c.Start(name)
		}
	}
	n, bound := c.Net, consensus.ClockBound
	honest := c.WaitLeader()
	c.StartProcess(skewed)
	// Ledger time is now real time, stamped by an honest leader.
	c.MustOK(honest, n.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	moveLeadership(t, c, skewed)

	// A purse valid for ten more minutes (then the policy's grace): on
	// ledger time, it must stay open however the leader's clock reads.
	via := c.Names[0]
	if via == skewed {
		via = c.Names[1]
	}
	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 1_000*state.Yuan), n.CentralBank())
	stampedNow(t, c, via, issue, bound)
	ex, exID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "alice", 500*state.Yuan), n.Bank("icbc"))
	stampedNow(t, c, via, ex, bound)
	cert := n.Cert(t, statetest.Purse{Name: "p1", Bank: "icbc", Wallet: "alice", Device: "alice-phone", AmountFen: 100 * state.Yuan,
		MaxPaymentFen: 100 * state.Yuan, MaxPayments: 10, NotAfterMs: time.Now().Add(10 * time.Minute).UnixMilli()})
	first := stampedNow(t, c, via, n.OpenPurse(t, "alice", []*statepb.Outpoint{statetest.Out(exID, 0)}, cert), bound)

	// Time passes; the leader's idle ticks see what is due by the voters'
	// clocks, not its own. Ledger time follows real time.
	time.Sleep(3 * time.Second)
	last := stampedNow(t, c, via, n.Register(t, "icbc", "bob", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""), bound)
	if moved := time.Duration(last.GetTimeMs()-first.GetTimeMs()) * time.Millisecond; moved < 3*time.Second-bound {
		t.Fatalf("ledger time moved %v in 3 s of real time under the skewed leader: frozen", moved)
	}
	if lead := leaderName(t, c); lead != skewed {
		t.Fatalf("leadership moved to %s during the test", lead)
	}
	c.Converge(last.GetLogIndex(), 10*time.Second)
	for _, name := range c.Running() {
		st := c.Node(name).Store()
		if got := time.Until(time.UnixMilli(st.Meta().GetLedgerTimeMs())); got > bound {
			t.Fatalf("%s: ledger time %v ahead of real time", name, got)
		}
		p, err := st.Purse(statetest.PurseID("p1"))
		if err != nil || p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_OPEN {
			t.Fatalf("%s: purse valid for ten more minutes: %v %v", name, p.GetStatus(), err)
		}
	}

	// The skewed node says so, and only it.
	c.Eventually(10*time.Second, "the skewed node's clock warning", func() error {
		if v := c.MustMetric(skewed, "dcep_clock_skewed"); v != 1 {
			return fmt.Errorf("%s: dcep_clock_skewed %v", skewed, v)
		}
		return nil
	})
	off := c.MustMetric(skewed, "dcep_clock_offset_seconds")
	if d := time.Duration(off * float64(time.Second)); d < skew-bound || d > skew+bound {
		t.Fatalf("%s: dcep_clock_offset_seconds %v, want about %v", skewed, d, skew)
	}
	ready := readyz(t, c, skewed)
	if ready["clock_reason"] == nil || ready["ready"] != true {
		t.Fatalf("%s: /readyz %v: want ready with a clock_reason", skewed, ready)
	}
	c.Eventually(10*time.Second, "the regulator's status to show the skewed node's warning, and only it", func() error {
		st := status(t, c, c.Names[3]) // the regulator's view of everyone
		for _, p := range append(st.GetPeers(), &nodepb.PeerStatus{Name: st.GetNode().GetName(), Status: st.GetNode()}) {
			warn := p.GetStatus().GetClockWarning()
			if (p.GetName() == skewed) != (warn != "") || !p.GetStatus().GetClockKnown() {
				return fmt.Errorf("status of %s: clock known %v, warning %q", p.GetName(), p.GetStatus().GetClockKnown(), warn)
			}
		}
		return nil
	})
	for _, name := range c.Running() {
		if v := c.MustMetric(name, "dcep_clock_skewed"); v != 0 {
			t.Fatalf("%s (honest clock): dcep_clock_skewed %v", name, v)
		}
	}
	t.Logf("leader %v off: ledger time moved %v over the test, within %v of real time on every node; %s reports offset %.0f s",
		skew, time.Duration(last.GetTimeMs()-first.GetTimeMs())*time.Millisecond, bound, skewed, off)
	c.AuditAll()
}

// stampedNow submits tx via a node and checks its ledger time lies within
// bound of the real time around the call.
func stampedNow(t *testing.T, c *nodetest.Cluster, via string, tx []byte, bound time.Duration) *statepb.TxResult {
	t.Helper()
	before := time.Now()
	r := c.MustOK(via, tx)
	after := time.Now()
	at := time.UnixMilli(r.GetTimeMs())
	if at.Before(before.Add(-bound)) || at.After(after.Add(bound)) {
		t.Fatalf("stamped %s, real time %s–%s (bound %v)", at.Format(time.StampMilli), before.Format(time.StampMilli), after.Format(time.StampMilli), bound)
	}
	return r
}

// moveLeadership makes name the ready leader (it may be a process).
func moveLeadership(t *testing.T, c *nodetest.Cluster, name string) {
	t.Helper()
	id, err := p2p.PeerIDFromPublicKey(c.Net.Pub("node/" + name))
	if err != nil {
		t.Fatal(err)
	}
	c.Eventually(30*time.Second, name+" to lead", func() error {
		lead := leaderName(t, c)
		if lead == name {
			if st := status(t, c, name).GetNode(); st.GetReady() && st.GetRaftState() == "Leader" {
				return nil
			}
			return fmt.Errorf("%s leads but is not ready", name)
		}
		if nd := c.Node(lead); nd != nil {
			_ = nd.Consensus().Raft().LeadershipTransferToServer(raft.ServerID(name), raft.ServerAddress(id.String())).Error()
		}
		return fmt.Errorf("%s leads", lead)
	})
}

// leaderName asks an in-process node who leads.
func leaderName(t *testing.T, c *nodetest.Cluster) string {
	t.Helper()
	for _, name := range c.Running() {
		if id, _ := c.Node(name).Consensus().Leader(); id != "" {
			return id
		}
	}
	return ""
}

func readyz(t *testing.T, c *nodetest.Cluster, name string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(name)+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body
}
