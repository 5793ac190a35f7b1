package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node/nodepb"
	pc "github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestAccessLogRecordsScenario runs reads of alice's data on a bank node
// as her, as another holder, and anonymously, then asks the node's
// AccessLog (as the regulator) and gets exactly those reads, in order,
// with who, role, procedure, subject, allowed or refused and the code;
// the answer survives a restart of the node (the log is fsynced).
func TestAccessLogRecordsScenario(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 1000*uint64(state.Yuan)), n.CentralBank())
	c.MustOK(leader, issue)
	for _, w := range []string{"alice", "carol"} {
		c.MustOK(leader, n.Register(t, "icbc", w, statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	}
	c.MustOK(leader, n.Sign(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "alice", 10*uint64(state.Yuan)), n.Bank("icbc")))

	as := func(id *client.Identity) *client.Client {
		opts := []client.Option{}
		if id != nil {
			opts = append(opts, client.As(*id))
		}
		cl, err := client.New(c.URL(leader), opts...)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	ctx := context.Background()
	since := time.Now().Add(-time.Millisecond)
	alice, carol, anon, reg := as(c.Holder("alice")), as(c.Holder("carol")), as(nil), as(c.Regulator())
	if _, err := alice.Wallet(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.API().History(ctx, connect.NewRequest(&nodepb.HistoryRequest{WalletId: "alice"})); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Wallet(ctx, "alice"); err == nil {
		t.Fatal("carol read alice's wallet")
	}
	if _, err := anon.API().History(ctx, connect.NewRequest(&nodepb.HistoryRequest{WalletId: "alice"})); err == nil {
		t.Fatal("an anonymous caller read alice's history")
	}
	type row struct{ who, role, proc, wallet, code string }
	want := []row{
		{"alice", token.KindWallet, pc.LedgerServiceGetWalletProcedure, "alice", ""},
		{"alice", token.KindWallet, pc.LedgerServiceHistoryProcedure, "alice", ""},
		{"carol", token.KindWallet, pc.LedgerServiceGetWalletProcedure, "alice", "PERMISSION_DENIED"},
		{"", "anonymous", pc.LedgerServiceHistoryProcedure, "alice", "UNAUTHENTICATED"},
	}
	check := func(when string, recs []*nodepb.AccessRecord, want []row) {
		t.Helper()
		var got []row
		for _, r := range recs {
			got = append(got, row{r.GetIdentity(), r.GetRole(), r.GetProcedure(), r.GetWallet(), r.GetCode()})
			if r.GetAllowed() != (r.GetCode() == "") || !strings.Contains(r.GetAddr(), "127.0.0.1") || r.GetTimeMs() < since.UnixMilli() {
				t.Errorf("%s: record %+v", when, r)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: access log for alice\n got %v\nwant %v", when, got, want)
		}
	}
	query := func() []*nodepb.AccessRecord {
		r, err := reg.Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{Wallet: "alice", SinceMs: since.UnixMilli()}))
		if err != nil {
			t.Fatal(err)
		}
		if r.Msg.GetNode() != leader {
			t.Fatalf("answered by %q, asked %q", r.Msg.GetNode(), leader)
		}
		return r.Msg.GetRecords()
	}
	check("live", query(), want)

	// By identity: carol's one refused read; the regulator's own query of
	// the log is itself on record.
	r, err := reg.Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{By: "carol", SinceMs: since.UnixMilli()}))
	if err != nil || len(r.Msg.GetRecords()) != 1 || r.Msg.GetRecords()[0].GetCode() != "PERMISSION_DENIED" {
		t.Fatalf("by carol: %v, %v", r.Msg.GetRecords(), err)
	}
	r, err = reg.Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{By: c.Regulator().Subject.ID, SinceMs: since.UnixMilli()}))
	if err != nil || len(r.Msg.GetRecords()) < 2 || r.Msg.GetRecords()[0].GetProcedure() != pc.AuditServiceAccessLogProcedure {
		t.Fatalf("by the regulator: %v, %v", r.Msg.GetRecords(), err)
	}
	// Bad input names the field.
	if _, err := reg.Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{Limit: 10_001})); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("limit 10001: %v", err)
	}
	// alice may not read the log.
	if _, err := alice.Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{Wallet: "alice"})); err == nil {
		t.Fatal("a holder read the access log")
	}

	// After a restart (the records were fsynced when acknowledged) the log
	// holds the same; alice's refused attempt at the log is on record too.
	c.Stop(leader)
	c.Start(leader)
	c.WaitLeader()
	// The regulator's first query named alice's wallet, and so did alice's
	// refused one: both are records about her wallet now.
	regID := c.Regulator().Subject.ID
	check("after restart", query(), append(want,
		row{regID, token.KindRegulator, pc.AuditServiceAccessLogProcedure, "alice", ""},
		row{"alice", token.KindWallet, pc.AuditServiceAccessLogProcedure, "alice", "PERMISSION_DENIED"}))
	r, err = reg.Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{By: "alice", SinceMs: since.UnixMilli()}))
	if recs := r.Msg.GetRecords(); err != nil || len(recs) != 3 || recs[2].GetProcedure() != pc.AuditServiceAccessLogProcedure || recs[2].GetCode() != "PERMISSION_DENIED" {
		t.Fatalf("by alice after restart: %v, %v", recs, err)
	}
}
