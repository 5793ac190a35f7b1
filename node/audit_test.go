package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

const yuan = state.Yuan

func auditClient(c *nodetest.Cluster, name string) nodepbconnect.AuditServiceClient {
	return c.AuditClient(name)
}

// TestAuditServiceOnRegulator drives a scenario with known figures through
// a real network (3 voters, 1 regulator) and checks every AuditService
// answer on the regulator, that the regulator refuses writes, that the
// audit calls and the console write nothing, and that a replay on the
// regulator reproduces every committed outcome.
func TestAuditServiceOnRegulator(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	reg := "regulator-1"
	ctx := context.Background()

	// icbc: ¥1,000,000 issued; alice (tier 1) gets ¥200,000 (large), pays
	// bob ¥60,000 (large) and ¥10 (not); bob is frozen. boc: ¥500,000
	// issued, ¥50,000 returned (large).
	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 1_000_000*yuan), n.CentralBank())
	issueBoc, issueBocID := n.SignID(t, statetest.IssueBody("boc", 500_000*yuan), n.CentralBank())
	c.MustOK(leader, issue)
	c.MustOK(leader, issueBoc)
	c.MustOK(leader, n.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	c.MustOK(leader, n.Register(t, "icbc", "bob", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	ex, exID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "alice", 200_000*yuan), n.Bank("icbc"))
	c.MustOK(leader, ex)
	pay, payID := n.SignID(t, statetest.TransferBody("alice", []*statepb.Outpoint{statetest.Out(exID, 0)}, statetest.Pay("bob", 60_000*yuan)), n.Wallet("alice"))
	c.MustOK(leader, pay)
	c.MustOK(leader, n.Transfer(t, "alice", []*statepb.Outpoint{statetest.Out(payID, 1)}, statetest.Pay("bob", 10*yuan)))
	c.MustOK(leader, n.Sign(t, statetest.FreezeBody("bob", "AML review 42"), n.Bank("icbc")))
	last := c.MustOK(leader, n.Sign(t, statetest.ReturnBody("boc", []*statepb.Outpoint{statetest.Out(issueBocID, 0)}, 50_000*yuan), n.Bank("boc"), n.CentralBank()))
	c.Converge(last.GetLogIndex(), 15*time.Second)
	ac := auditClient(c, reg)

	sup, err := ac.Supply(ctx, connect.NewRequest(&nodepb.AuditSupplyRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	s := sup.Msg
	if !s.GetInvariantHolds() || s.GetIssuedFen() != 1_500_000*yuan || s.GetReturnedFen() != 50_000*yuan || s.GetOutstandingFen() != 1_450_000*yuan ||
		s.GetUnspentFen() != 1_450_000*yuan || s.GetFrozenWallets() != 1 || s.GetFrozenFen() != 60_010*yuan || s.GetFreshness().GetNode() != reg {
		t.Fatalf("supply: %v", s)
	}
	banks := map[string]*nodepb.BankAudit{}
	for _, b := range s.GetBanks() {
		banks[b.GetBankId()] = b
	}
	if len(s.GetBanks()) != 6 {
		t.Fatalf("%d banks in the breakdown, want 6", len(s.GetBanks()))
	}
	icbc, boc := banks["icbc"], banks["boc"]
	if icbc.GetIssuedFen() != 1_000_000*yuan || icbc.GetOutstandingFen() != 1_000_000*yuan || icbc.GetWalletsFen() != 1_000_000*yuan ||
		icbc.GetReserveFen() != 800_000*yuan || icbc.GetWallets() != 4 || icbc.GetFrozenWallets() != 1 || icbc.GetFrozenFen() != 60_010*yuan {
		t.Fatalf("icbc: %v", icbc)
	}
	if boc.GetIssuedFen() != 500_000*yuan || boc.GetReturnedFen() != 50_000*yuan || boc.GetOutstandingFen() != 450_000*yuan || boc.GetWalletsFen() != 450_000*yuan {
		t.Fatalf("boc: %v", boc)
	}

	lp, err := ac.LargePayments(ctx, connect.NewRequest(&nodepb.LargePaymentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range lp.Msg.GetPayments() {
		kinds = append(kinds, p.GetKind()+":"+state.Fen(p.GetAmountFen()))
	}
	if got := strings.Join(kinds, " "); got != "issue:¥1,000,000.00 issue:¥500,000.00 exchange:¥200,000.00 transfer:¥60,000.00 return:¥50,000.00" ||
		lp.Msg.GetThresholdFen() != state.DefaultLargeValueThresholdFen {
		t.Fatalf("large payments: %s (threshold %d)", got, lp.Msg.GetThresholdFen())
	}
	if p := lp.Msg.GetPayments()[3]; p.GetPayer() != "alice" || p.GetPayerBank() != "icbc" || len(p.GetPayees()) != 1 || p.GetPayees()[0].GetWalletId() != "bob" {
		t.Fatalf("transfer: %v", p)
	}
	page, err := ac.LargePayments(ctx, connect.NewRequest(&nodepb.LargePaymentsRequest{Bank: "boc", NewestFirst: true, Limit: 1}))
	if err != nil || len(page.Msg.GetPayments()) != 1 || page.Msg.GetPayments()[0].GetKind() != "return" || len(page.Msg.GetNextPageToken()) == 0 {
		t.Fatalf("boc newest first: %v %v", page, err)
	}
	_, err = ac.LargePayments(ctx, connect.NewRequest(&nodepb.LargePaymentsRequest{FromMs: 10, ToMs: 5}))
	wantCode(t, err, connect.CodeInvalidArgument, node.CodeInvalidArgument)

	act, err := ac.BankActivity(ctx, connect.NewRequest(&nodepb.BankActivityRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	// Ledger time is genesis time (or the wall clock once past it): the
	// scenario may straddle midnight Beijing time; add the days up.
	type sum struct{ txs, payments, volume, large uint64 }
	got := map[string]sum{}
	for _, d := range act.Msg.GetDays() {
		g := got[d.GetBankId()]
		g.txs += d.GetTxCount()
		g.payments += d.GetPaymentCount()
		g.volume += d.GetVolumeFen()
		g.large += d.GetLargeCount()
		got[d.GetBankId()] = g
	}
	// icbc: issue, 2 registrations, exchange, 2 transfers (alice is at
	// icbc), freeze. boc: issue, return.
	if got["icbc"] != (sum{7, 4, 1_260_010 * yuan, 3}) || got["boc"] != (sum{2, 2, 550_000 * yuan, 2}) || len(got) != 2 {
		t.Fatalf("bank activity: %+v", got)
	}
	_, err = ac.BankActivity(ctx, connect.NewRequest(&nodepb.BankActivityRequest{FromDate: "yesterday"}))
	wantCode(t, err, connect.CodeInvalidArgument, node.CodeInvalidArgument)

	fr, err := ac.FrozenWallets(ctx, connect.NewRequest(&nodepb.FrozenWalletsRequest{}))
	if err != nil || len(fr.Msg.GetWallets()) != 1 {
		t.Fatalf("frozen: %v %v", fr, err)
	}
	if w := fr.Msg.GetWallets()[0]; w.GetFrozen().GetWalletId() != "bob" || w.GetFrozen().GetReason() != "AML review 42" ||
		w.GetFrozen().GetSource() != "freeze_wallet" || w.GetBalanceFen() != 60_010*yuan {
		t.Fatalf("frozen bob: %v", w)
	}

	ov, err := ac.Overview(ctx, connect.NewRequest(&nodepb.OverviewRequest{ThroughputSeconds: 60}))
	if err != nil {
		t.Fatal(err)
	}
	if len(ov.Msg.GetThroughput()) != 60 || len(ov.Msg.GetStatus().GetPeers()) != 3 || !ov.Msg.GetConsoleEnabled() || ov.Msg.GetLargeThresholdFen() != state.DefaultLargeValueThresholdFen {
		t.Fatalf("overview: %d points, %d peers, console %v", len(ov.Msg.GetThroughput()), len(ov.Msg.GetStatus().GetPeers()), ov.Msg.GetConsoleEnabled())
	}
	var txs uint64
	for _, p := range ov.Msg.GetThroughput() {
		txs += p.GetTxs()
	}
	if txs < 9 { // the 9 transactions above
		t.Fatalf("throughput history counts %d transactions, want ≥ 9", txs)
	}

	// The regulator agrees with every peer.
	c.Eventually(10*time.Second, "hashes compared with every peer", func() error {
		d, err := ac.Divergence(ctx, connect.NewRequest(&nodepb.DivergenceRequest{}))
		if err != nil {
			return err
		}
		if len(d.Msg.GetPeers()) != 3 {
			return fmt.Errorf("%d peers compared", len(d.Msg.GetPeers()))
		}
		for _, p := range d.Msg.GetPeers() {
			if p.GetError() != "" || p.GetDiverged() || p.GetIndex() == 0 {
				return fmt.Errorf("peer %s: %v", p.GetPeer(), p)
			}
		}
		if len(d.Msg.GetDivergences()) != 0 || d.Msg.GetSelfSuspect() {
			return fmt.Errorf("divergences on a healthy network: %v", d.Msg)
		}
		return nil
	})

	// Replay: every committed outcome and the final hash reproduced.
	rp, err := ac.Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	r := rp.Msg
	recorded := recordedTxs(t, c, reg, r.GetToIndex())
	if !r.GetReproduced() || r.GetFromSnapshot() || r.GetFromIndex() != 0 || r.GetToIndex() < last.GetLogIndex() ||
		r.GetTransactions() != recorded || r.GetOutcomeMismatches() != 0 || r.GetHashMismatches() != 0 {
		t.Fatalf("replay: %v (recorded transactions %d)", r, recorded)
	}

	// Writes to the regulator are refused; the audit calls and the console
	// wrote nothing (no new log entry on any node).
	_, err = c.Client(reg).Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: n.Issue(t, "icbc", 1)}))
	wantCode(t, err, connect.CodePermissionDenied, node.CodeReadOnly)
	before := c.Node(leader).Store().Meta().GetAppliedIndex()
	body := consoleGet(t, c.URL(reg)+"/console/", http.StatusOK)
	if !strings.Contains(body, "<div id=\"app\">") || !strings.Contains(body, "assets/") {
		t.Fatalf("console page: %s", body)
	}
	resp, err := http.Post(c.URL(reg)+"/console/", "text/plain", strings.NewReader("x"))
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /console/: %v %v", resp, err)
	}
	resp.Body.Close()
	consoleGet(t, c.URL(leader)+"/console/", http.StatusNotFound) // off on voters by default
	if after := c.Node(leader).Store().Meta().GetAppliedIndex(); after != before {
		t.Fatalf("audit and console reads moved the log from %d to %d", before, after)
	}
}

// recordedTxs counts the transactions in the blocks a node recorded up to
// index.
func recordedTxs(t *testing.T, c *nodetest.Cluster, name string, upTo uint64) uint64 {
	t.Helper()
	var n uint64
	from := uint64(0)
	for {
		bs, err := c.Node(name).Store().Blocks(from, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.GetLogIndex() <= upTo {
				n += uint64(len(b.GetResults()))
			}
			from = b.GetLogIndex() + 1
		}
		if len(bs) < state.MaxPageSize {
			return n
		}
	}
}

func consoleGet(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d: %s", url, resp.Status, want, body)
	}
	return string(body)
}
