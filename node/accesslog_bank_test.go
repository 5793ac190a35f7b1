package node_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/accesslog"
	"github.com/dcep/dcep/node/nodepb"
	pc "github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
)

// TestAccessLogBankSeesItsCustomers: a bank reads its own node's access log
// for its customers only — alice (icbc's) yes, jd (abc's) never, not even
// through --by — and another bank's node refuses it; the query itself is on
// record.
func TestAccessLogBankSeesItsCustomers(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3})
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	var idx uint64
	for _, w := range []struct{ bank, id string }{{"icbc", "alice"}, {"abc", "jd"}} {
		idx = c.MustOK(leader, n.Register(t, w.bank, w.id, statepb.WalletKind_WALLET_KIND_PERSONAL, 1, "")).GetLogIndex()
	}
	c.Converge(idx, 10*time.Second)
	ctx := context.Background()
	// Reads on icbc's node: alice her own wallet, jd his own and (refused)
	// alice's.
	for _, r := range []struct{ as, wallet string }{{"alice", "alice"}, {"jd", "jd"}, {"jd", "alice"}} {
		_, err := c.As(t, "icbc", c.Holder(r.as)).API().GetWallet(ctx, connect.NewRequest(&nodepb.GetWalletRequest{WalletId: r.wallet}))
		if (r.as == r.wallet) != (err == nil) {
			t.Fatalf("%s reads %s: %v", r.as, r.wallet, err)
		}
	}
	all, err := node.AccessRecords(c.Node("icbc"), accesslog.Filter{Wallet: "jd"})
	if err != nil || len(all) != 1 {
		t.Fatalf("icbc's log about jd: %v, %v (want jd's own read)", all, err)
	}

	icbc := c.As(t, "icbc", c.BankIdentity("icbc")).Audit()
	query := func(req *nodepb.AccessLogRequest) []*nodepb.AccessRecord {
		t.Helper()
		r, err := icbc.AccessLog(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("icbc AccessLog %v: %v", req, err)
		}
		return r.Msg.GetRecords()
	}
	recs := query(&nodepb.AccessLogRequest{Wallet: "alice"})
	if len(recs) != 2 || recs[0].GetIdentity() != "alice" || !recs[0].GetAllowed() || recs[1].GetIdentity() != "jd" || recs[1].GetAllowed() {
		t.Fatalf("icbc about alice: %v (want alice's read allowed, jd's refused)", recs)
	}
	if recs := query(&nodepb.AccessLogRequest{Wallet: "jd"}); len(recs) != 0 {
		t.Fatalf("icbc sees abc's customer jd: %v", recs)
	}
	recs = query(&nodepb.AccessLogRequest{By: "jd"})
	if len(recs) != 1 || recs[0].GetWallet() != "alice" {
		t.Fatalf("icbc --by jd: %v (want only jd's look at alice)", recs)
	}

	// abc's node refuses icbc; icbc's node refuses abc.
	for _, on := range []struct{ node, bank string }{{"abc", "icbc"}, {"icbc", "abc"}} {
		_, err := c.As(t, on.node, c.BankIdentity(on.bank)).Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{Wallet: "alice"}))
		wantAPICode(t, on.bank+" on "+on.node, err, connect.CodePermissionDenied, node.CodePermissionDenied)
	}
	// The queries are on record: icbc's three allowed, abc's refused.
	mine, err := node.AccessRecords(c.Node("icbc"), accesslog.Filter{By: "icbc"})
	if err != nil || len(mine) != 3 {
		t.Fatalf("icbc's own queries on record: %v, %v", mine, err)
	}
	for i, w := range []string{"alice", "jd", ""} {
		if mine[i].Procedure != pc.AuditServiceAccessLogProcedure || mine[i].Wallet != w || !mine[i].Allowed || mine[i].Role != "bank" {
			t.Errorf("icbc's query %d on record as %+v", i, mine[i])
		}
	}
	theirs, err := node.AccessRecords(c.Node("icbc"), accesslog.Filter{By: "abc"})
	if err != nil || len(theirs) != 1 || theirs[0].Allowed || theirs[0].Code != node.CodePermissionDenied {
		t.Fatalf("abc's refused query on icbc's node: %v, %v", theirs, err)
	}
}
