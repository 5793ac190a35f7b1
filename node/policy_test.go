package node_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/dcep/dcep/client"
	memoseal "github.com/dcep/dcep/client/memo"
	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/accesslog"
	"github.com/dcep/dcep/node/nodepb"
	pc "github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// serviceProcedures lists every RPC of every client-API service, from the
// protobuf file descriptors (so a new RPC shows up here by itself).
func serviceProcedures(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, file := range []string{"node/nodepb/api.proto", "node/nodepb/audit.proto", "node/nodepb/programmable.proto"} {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, "/"+string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name()))
			}
		}
	}
	return out
}

// TestPolicyCoversEveryRPC: every RPC of every service has exactly one row
// in node.Policy, every row names an RPC or a plain route, and docs/api.md
// carries the same table.
func TestPolicyCoversEveryRPC(t *testing.T) {
	rows := map[string]int{}
	for _, p := range node.PolicyProcedures() {
		rows[p]++
	}
	rpcs := serviceProcedures(t)
	if len(rpcs) < 30 {
		t.Fatalf("only %d RPCs found in the descriptors", len(rpcs))
	}
	known := map[string]bool{}
	// gRPC tooling served beside the services (grpcreflect.go).
	rpcs = append(rpcs, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
	for _, p := range rpcs {
		known[p] = true
		if rows[p] != 1 {
			t.Errorf("%s: %d rows in node.Policy (want 1)", p, rows[p])
		}
	}
	for p := range rows {
		if !known[p] && !strings.HasPrefix(p, "GET /") {
			t.Errorf("policy row %s is no RPC of the services", p)
		}
	}
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), node.PolicyMarkdown()) {
		t.Errorf("docs/api.md does not carry the policy table; paste this:\n%s", node.PolicyMarkdown())
	}
}

// The roles the generated test calls as.
const (
	roleHolder      = "holder"
	roleOtherHolder = "other holder"
	roleOwnBank     = "own bank"
	roleOtherBank   = "other bank"
	roleCentralBank = "central bank"
	roleRegulator   = "regulator"
	rolePlatform    = "platform"
	roleAnonymous   = "anonymous"
)

var allRoles = []string{roleHolder, roleOtherHolder, roleOwnBank, roleOtherBank, roleCentralBank, roleRegulator, rolePlatform, roleAnonymous}

// policyCall is how the test calls one procedure and which roles are the
// parties of what it asks about (nil: it names no wallet or record).
type policyCall struct {
	parties []string
	call    func(ctx context.Context, cl *client.Client) error
	// aboutAlice: the call reads alice's wallet (or a record whose first
	// party she is), so the access log records it under her.
	aboutAlice bool
}

func set(roles ...string) map[string]bool {
	m := map[string]bool{}
	for _, r := range roles {
		m[r] = true
	}
	return m
}

// allowedRoles is what the policy table's row says for a call: derived
// from the row's rule, not listed by hand.
func allowedRoles(rule string, parties []string) map[string]bool {
	switch rule {
	case "anyone", "anyone (rate-limited per IP and per identity)":
		return set(allRoles...)
	case "regulator":
		return set(roleRegulator)
	case "regulator, this node's operator":
		return set(roleRegulator, roleCentralBank) // the calls go to pboc's node
	case "regulator; on its own node, the operator bank (its customers only)":
		return set(roleRegulator) // pboc's node: its operator is no bank
	case "any signed-in identity (rate-limited per identity)":
		return set(roleHolder, roleOtherHolder, roleOwnBank, roleOtherBank, roleCentralBank, roleRegulator, rolePlatform)
	case "bank, central bank, regulator", "anyone; `audit=true`: bank, central bank, regulator":
		return set(roleOwnBank, roleOtherBank, roleCentralBank, roleRegulator)
	}
	if parties == nil && strings.HasPrefix(rule, "anyone;") {
		return set(allRoles...)
	}
	return set(append([]string{roleRegulator}, parties...)...)
}

// TestPolicyEveryRPCEveryRole calls every RPC of every service on a real
// network as every role and checks the answer against the policy table:
// allowed calls get their answer, refused ones UNAUTHENTICATED (anonymous)
// or PERMISSION_DENIED naming the roles that may. Generated from the
// table: a row without a call here fails, as does an RPC without a row
// (TestPolicyCoversEveryRPC).
func TestPolicyEveryRPCEveryRole(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	yuan := uint64(state.Yuan)
	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 100_000*yuan), n.CentralBank())
	c.MustOK(leader, issue)
	for _, w := range []struct{ bank, id string }{{"icbc", "alice"}, {"icbc", "carol"}, {"abc", "jd"}, {"icbc", "m1"}} {
		kind := statepb.WalletKind_WALLET_KIND_PERSONAL
		if w.id == "jd" || w.id == "m1" {
			kind = statepb.WalletKind_WALLET_KIND_MERCHANT
		}
		c.MustOK(leader, n.Register(t, w.bank, w.id, kind, 1, ""))
	}
	ex, exID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "alice", 1000*yuan), n.Bank("icbc"))
	c.MustOK(leader, ex)
	pay, payID := n.SignID(t, memo(t, statetest.TransferBody("alice", []*statepb.Outpoint{statetest.Out(exID, 0)}, statetest.Pay("m1", 10*yuan)), "private-memo-1", n.Wallet("alice"), n.Wallet("m1")), n.Wallet("alice"))
	c.MustOK(leader, pay)
	c.MustOK(leader, n.Sign(t, statetest.CreateSubWalletBody("alice", "alice.jd"), n.Wallet("alice")))
	idx := c.MustOK(leader, n.Sign(t, statetest.PushSubWalletBody("alice.jd", "jd", 100*yuan, 200*yuan, time.Now().Add(48*time.Hour).UnixMilli()), n.Wallet("alice"))).GetLogIndex()
	c.Converge(idx, 10*time.Second)

	ids := map[string]*client.Identity{
		roleHolder: c.Holder("alice"), roleOtherHolder: c.Holder("carol"),
		roleOwnBank: c.BankIdentity("icbc"), roleOtherBank: c.BankIdentity("abc"),
		roleCentralBank: c.CentralBankIdentity(), roleRegulator: c.Regulator(), rolePlatform: c.Holder("jd"),
		roleAnonymous: nil,
	}
	alice := []string{roleHolder, roleOwnBank}
	sub := []string{roleHolder, rolePlatform, roleOwnBank}
	merchant := []string{roleOwnBank} // m1 is icbc's; none of the roles holds it
	ro := &nodepb.ReadOptions{}
	noID := make([]byte, 32)
	calls := map[string]policyCall{
		pc.LedgerServiceSubmitProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: pay}))
			return err
		}, false},
		pc.LedgerServiceGetTxProcedure: {[]string{roleHolder, roleOwnBank}, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.API().GetTx(ctx, connect.NewRequest(&nodepb.GetTxRequest{TxId: payID[:], Read: ro}))
			if err == nil && r.Msg.GetBody().GetTransfer().GetFromWalletId() != "alice" {
				return errors.New("GetTx: not alice's payment")
			}
			return err
		}, true},
		pc.LedgerServiceGetWalletProcedure: {alice, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.API().GetWallet(ctx, connect.NewRequest(&nodepb.GetWalletRequest{WalletId: "alice", Read: ro}))
			if err == nil && r.Msg.GetWallet().GetBalanceFen() != 990*yuan {
				return errors.New("GetWallet: wrong balance")
			}
			return err
		}, true},
		// Any signed-in identity gets alice's key and nothing else.
		pc.LedgerServiceGetWalletKeyProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.API().GetWalletKey(ctx, connect.NewRequest(&nodepb.GetWalletKeyRequest{WalletId: "alice", Read: ro}))
			want := &nodepb.GetWalletKeyResponse{PublicKey: n.Wallet("alice").Public().(ed25519.PublicKey)}
			if err == nil && !proto.Equal(r.Msg, want) {
				return fmt.Errorf("GetWalletKey: %v, want exactly alice's key", r.Msg)
			}
			return err
		}, true},
		pc.LedgerServiceListWalletsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.API().ListWallets(ctx, connect.NewRequest(&nodepb.ListWalletsRequest{Read: ro}))
			if err == nil && len(r.Msg.GetWallets()) < 5 {
				return errors.New("ListWallets: too few")
			}
			return err
		}, false},
		pc.LedgerServiceListUnspentProcedure: {alice, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.API().ListUnspent(ctx, connect.NewRequest(&nodepb.ListUnspentRequest{WalletId: "alice", Read: ro}))
			if err == nil && len(r.Msg.GetUnspent()) != 1 {
				return errors.New("ListUnspent: want alice's change")
			}
			return err
		}, true},
		pc.LedgerServiceHistoryProcedure: {alice, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.API().History(ctx, connect.NewRequest(&nodepb.HistoryRequest{WalletId: "alice", Read: ro}))
			if err == nil && len(r.Msg.GetEntries()) == 0 {
				return errors.New("History: empty")
			}
			return err
		}, true},
		pc.LedgerServiceSupplyProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().Supply(ctx, connect.NewRequest(&nodepb.SupplyRequest{Audit: true, Read: ro}))
			return err
		}, false},
		pc.LedgerServiceStatusProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().Status(ctx, connect.NewRequest(&nodepb.StatusRequest{}))
			return err
		}, false},
		pc.LedgerServiceGetGenesisProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().GetGenesis(ctx, connect.NewRequest(&nodepb.GetGenesisRequest{}))
			return err
		}, false},
		pc.LedgerServiceStreamOutcomesProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			s, err := cl.API().StreamOutcomes(ctx, connect.NewRequest(&nodepb.StreamOutcomesRequest{FromIndex: 1}))
			if err != nil {
				return err
			}
			defer s.Close()
			if !s.Receive() {
				return s.Err()
			}
			return nil
		}, false},
		// No purse, settlement or offline transaction exists: a regulator
		// is told NOT_FOUND, everyone else what it would be told of one it
		// may not read.
		pc.LedgerServiceGetPurseProcedure: {[]string{}, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().GetPurse(ctx, connect.NewRequest(&nodepb.GetPurseRequest{PurseId: noID, Read: ro}))
			return notFoundOK(err)
		}, false},
		pc.LedgerServiceGetSettlementProcedure: {[]string{}, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().GetSettlement(ctx, connect.NewRequest(&nodepb.GetSettlementRequest{PaymentHash: noID, Read: ro}))
			return notFoundOK(err)
		}, false},
		pc.LedgerServiceGetOfflineTxProcedure: {[]string{}, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().GetOfflineTx(ctx, connect.NewRequest(&nodepb.GetOfflineTxRequest{TxId: noID, Read: ro}))
			return notFoundOK(err)
		}, false},
		pc.LedgerServiceListIncidentsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().ListIncidents(ctx, connect.NewRequest(&nodepb.ListIncidentsRequest{Read: ro}))
			return err
		}, false},
		pc.LedgerServiceListRevocationsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().ListRevocations(ctx, connect.NewRequest(&nodepb.ListRevocationsRequest{Read: ro}))
			return err
		}, false},
		pc.LedgerServiceGetOfflineDebtProcedure: {alice, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.API().GetOfflineDebt(ctx, connect.NewRequest(&nodepb.GetOfflineDebtRequest{WalletId: "alice", Read: ro}))
			return notFoundOK(err)
		}, true},
		pc.AuditServiceSupplyProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().Supply(ctx, connect.NewRequest(&nodepb.AuditSupplyRequest{Read: ro}))
			return err
		}, false},
		pc.AuditServiceLargePaymentsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().LargePayments(ctx, connect.NewRequest(&nodepb.LargePaymentsRequest{Read: ro}))
			return err
		}, false},
		pc.AuditServiceBankActivityProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().BankActivity(ctx, connect.NewRequest(&nodepb.BankActivityRequest{Read: ro}))
			return err
		}, false},
		pc.AuditServiceFrozenWalletsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().FrozenWallets(ctx, connect.NewRequest(&nodepb.FrozenWalletsRequest{Read: ro}))
			return err
		}, false},
		pc.AuditServiceIncidentsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().Incidents(ctx, connect.NewRequest(&nodepb.IncidentsRequest{Read: ro}))
			return err
		}, false},
		pc.AuditServiceOfflineProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().Offline(ctx, connect.NewRequest(&nodepb.OfflineRequest{Read: ro}))
			return err
		}, false},
		pc.AuditServiceCampaignsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().Campaigns(ctx, connect.NewRequest(&nodepb.CampaignsRequest{Read: ro}))
			return err
		}, false},
		pc.AuditServiceDivergenceProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().Divergence(ctx, connect.NewRequest(&nodepb.DivergenceRequest{}))
			return err
		}, false},
		pc.AuditServiceReplayProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{}))
			return err
		}, false},
		pc.AuditServiceAccessLogProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.Audit().AccessLog(ctx, connect.NewRequest(&nodepb.AccessLogRequest{Wallet: "alice"}))
			if err == nil && r.Msg.GetNode() == "" {
				return errors.New("AccessLog: no node named")
			}
			return err
		}, true},
		pc.AuditServiceOverviewProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Audit().Overview(ctx, connect.NewRequest(&nodepb.OverviewRequest{}))
			return err
		}, false},
		pc.ProgrammableServiceGetCampaignProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Programmable().GetCampaign(ctx, connect.NewRequest(&nodepb.GetCampaignRequest{CampaignId: "none", Read: ro}))
			return notFoundOK(err)
		}, false},
		pc.ProgrammableServiceListCampaignsProcedure: {nil, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Programmable().ListCampaigns(ctx, connect.NewRequest(&nodepb.ListCampaignsRequest{Read: ro}))
			return err
		}, false},
		// No campaign: NOT_FOUND to everyone (campaigns are public).
		pc.ProgrammableServiceListEnrolmentsProcedure: {allRoles, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Programmable().ListEnrolments(ctx, connect.NewRequest(&nodepb.ListEnrolmentsRequest{CampaignId: "none", Read: ro}))
			return notFoundOK(err)
		}, false},
		pc.ProgrammableServiceListWinnersProcedure: {allRoles, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Programmable().ListWinners(ctx, connect.NewRequest(&nodepb.ListWinnersRequest{CampaignId: "none", Read: ro}))
			return notFoundOK(err)
		}, false},
		pc.ProgrammableServiceCheckEligibilityProcedure: {alice, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Programmable().CheckEligibility(ctx, connect.NewRequest(&nodepb.CheckEligibilityRequest{CampaignId: "none", WalletId: "alice", Read: ro}))
			return notFoundOK(err)
		}, true},
		pc.ProgrammableServiceGetSubWalletProcedure: {sub, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.Programmable().GetSubWallet(ctx, connect.NewRequest(&nodepb.GetSubWalletRequest{SubWalletId: "alice.jd", Read: ro}))
			if err == nil && r.Msg.GetSubWallet().GetPlatformWalletId() != "jd" {
				return errors.New("GetSubWallet: not pushed to jd")
			}
			return err
		}, false},
		pc.ProgrammableServiceGetPaymentProcedure: {merchant, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.Programmable().GetPayment(ctx, connect.NewRequest(&nodepb.GetPaymentRequest{MerchantWalletId: "m1", TxId: payID[:], Read: ro}))
			if err == nil && r.Msg.GetPayment().GetAmountFen() != 10*yuan {
				return errors.New("GetPayment: wrong amount")
			}
			return err
		}, false},
		pc.ProgrammableServiceListPaymentsProcedure: {merchant, func(ctx context.Context, cl *client.Client) error {
			r, err := cl.Programmable().ListPayments(ctx, connect.NewRequest(&nodepb.ListPaymentsRequest{MerchantWalletId: "m1", Read: ro}))
			if err == nil && len(r.Msg.GetPayments()) != 1 {
				return errors.New("ListPayments: want alice's payment")
			}
			return err
		}, false},
	}
	checkSameAnswer(t, c, ids)
	checkBadTokens(t, c)
	checkRefusedTokensOnRecord(t, c.Node("pboc"))
	rules := policyRules(t)
	// What the access log must hold about alice afterwards: one record per
	// call about her wallet (procedure, caller, allowed).
	wantLog := map[string]int{}
	for _, role := range []string{roleOtherHolder, roleOtherBank, roleCentralBank, rolePlatform, roleAnonymous} {
		wantLog[logKey(pc.LedgerServiceHistoryProcedure, ids[role], false)]++ // checkSameAnswer
	}
	// checkBadTokens: no token and the two unreadable ones anonymous, the
	// others under the sub they claim, unverified.
	wantLog[logKey(pc.LedgerServiceHistoryProcedure, nil, false)] += 3
	wantLog[fmt.Sprintf("%s %s %v", pc.LedgerServiceHistoryProcedure, "wallet:alice", false)] += 7
	wantLog[fmt.Sprintf("%s %s %v", pc.LedgerServiceHistoryProcedure, "wallet:ghost", false)]++
	for _, proc := range serviceProcedures(t) {
		pcall, ok := calls[proc]
		if !ok {
			t.Errorf("%s: no call in this test (add one)", proc)
			continue
		}
		allowed := allowedRoles(rules[proc], pcall.parties)
		for _, role := range allRoles {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := pcall.call(ctx, c.As(t, "pboc", ids[role]))
			cancel()
			if pcall.aboutAlice {
				wantLog[logKey(proc, ids[role], allowed[role])]++
			}
			name := strings.TrimPrefix(proc, "/dcep.node.v1.") + " as " + role
			switch {
			case allowed[role] && err != nil:
				t.Errorf("%s: allowed by the table, got %v", name, err)
			case !allowed[role] && role == roleAnonymous:
				wantAPICode(t, name, err, connect.CodeUnauthenticated, node.CodeUnauthenticated)
			case !allowed[role]:
				wantAPICode(t, name, err, connect.CodePermissionDenied, node.CodePermissionDenied)
				if err != nil && !strings.Contains(err.Error(), "regulator") {
					t.Errorf("%s: refusal does not name the roles that may: %v", name, err)
				}
			}
		}
	}
	checkAccessLog(t, c.Node("pboc"), wantLog)
	checkMetricsCarryNoPersonalData(t, c, "alice", "carol", "alice.jd", "wallet:", "bank:icbc", "private-memo")
}

// checkSameAnswer: a wallet that does not exist and one the caller may
// not read get the same answer (up to the id asked for).
func checkSameAnswer(t *testing.T, c *nodetest.Cluster, ids map[string]*client.Identity) {
	t.Helper()
	ctx := context.Background()
	for _, role := range []string{roleOtherHolder, roleOtherBank, roleCentralBank, rolePlatform, roleAnonymous} {
		cl := c.As(t, "pboc", ids[role])
		_, e1 := cl.API().History(ctx, connect.NewRequest(&nodepb.HistoryRequest{WalletId: "alice"}))
		_, e2 := cl.API().History(ctx, connect.NewRequest(&nodepb.HistoryRequest{WalletId: "ghost"}))
		if e1 == nil || e2 == nil || strings.ReplaceAll(e2.Error(), "ghost", "alice") != e1.Error() || connect.CodeOf(e1) != connect.CodeOf(e2) {
			t.Errorf("as %s: alice's history %v; a missing wallet's %v (want the same)", role, e1, e2)
		}
	}
	_, err := c.As(t, "pboc", ids[roleRegulator]).API().History(ctx, connect.NewRequest(&nodepb.HistoryRequest{WalletId: "ghost"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("regulator, missing wallet: %v (want NOT_FOUND)", err)
	}
}

// checkBadTokens: every bad token is UNAUTHENTICATED with its reason, on a
// public procedure too.
func checkBadTokens(t *testing.T, c *nodetest.Cluster) {
	t.Helper()
	now := time.Now()
	alice := token.Subject{Kind: token.KindWallet, ID: "alice"}
	chain := c.Net.Genesis.GetChainId()
	mint := func(key ed25519.PrivateKey, sub token.Subject, chain, node string, at time.Time, life time.Duration) string {
		raw, err := token.Mint(key, sub, chain, node, at, life)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	long := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{Subject: "wallet:alice", Audience: jwt.ClaimStrings{chain + "/pboc"},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(30 * 24 * time.Hour))})
	longRaw, _ := long.SignedString(c.Net.Wallet("alice"))
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "wallet:alice", Audience: jwt.ClaimStrings{chain + "/pboc"},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))})
	hsRaw, err := hs.SignedString([]byte(c.Net.Wallet("alice").Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, header, reason string }{
		{"no token", "", "no bearer token"},
		{"not bearer", "Basic YWxpY2U6eA==", "Bearer TOKEN"},
		{"garbage", "Bearer not.a.token", "malformed token"},
		{"expired", "Bearer " + mint(c.Net.Wallet("alice"), alice, chain, "pboc", now.Add(-time.Hour), 5*time.Minute), "token expired"},
		{"from the future", "Bearer " + mint(c.Net.Wallet("alice"), alice, chain, "pboc", now.Add(time.Hour), 5*time.Minute), "not valid yet"},
		{"forged", "Bearer " + mint(c.Net.Wallet("carol"), alice, chain, "pboc", now, 0), "signature invalid"},
		{"other node", "Bearer " + mint(c.Net.Wallet("alice"), alice, chain, "regulator-1", now, 0), "another node"},
		{"wrong chain", "Bearer " + mint(c.Net.Wallet("alice"), alice, "dcep-other", "pboc", now, 0), "another chain"},
		{"unknown wallet", "Bearer " + mint(c.Net.Wallet("ghost"), token.Subject{Kind: token.KindWallet, ID: "ghost"}, chain, "pboc", now, 0), "subject unknown"},
		{"too long-lived", "Bearer " + longRaw, "lifetime too long"},
		{"HMAC with the public key", "Bearer " + hsRaw, "signing method HS256 is invalid"},
	} {
		for _, proc := range []string{"LedgerService/History", "LedgerService/Status"} {
			if tc.header == "" && proc == "LedgerService/Status" {
				continue // anonymous may read the status
			}
			req, _ := http.NewRequest("POST", c.URL("pboc")+"/dcep.node.v1."+proc, strings.NewReader(`{"walletId":"alice"}`))
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "UNAUTHENTICATED") || !strings.Contains(string(body), tc.reason) {
				t.Errorf("%s on %s: %d %s (want 401 UNAUTHENTICATED, %q)", tc.name, proc, resp.StatusCode, body, tc.reason)
			}
		}
	}
}

// checkRefusedTokensOnRecord: the History calls checkBadTokens made with
// bad tokens are on the access log as refused, under the identity they
// claimed (unverified) with the reason, e.g. the forged one.
func checkRefusedTokensOnRecord(t *testing.T, n *node.Node) {
	t.Helper()
	recs, err := node.AccessRecords(n, accesslog.Filter{By: "wallet:alice"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, r := range recs {
		if r.Procedure != pc.LedgerServiceHistoryProcedure || r.Allowed || r.Role != "unverified" || r.Wallet != "alice" || r.Addr != "127.0.0.1" || r.Time.IsZero() {
			t.Errorf("refused-token record: %+v", r)
		}
		reasons[r.Code] = true
	}
	for _, why := range []string{"signature", "expired", "not-yet-valid", "other-node", "wrong-chain", "lifetime"} {
		if !reasons[node.CodeUnauthenticated+":"+why] {
			t.Errorf("no access record of a History call refused for %s: %v", why, reasons)
		}
	}
	recs, err = node.AccessRecords(n, accesslog.Filter{Wallet: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	anon := 0
	for _, r := range recs {
		if r.Role == "anonymous" && r.Code == node.CodeUnauthenticated+":not-bearer" || r.Code == node.CodeUnauthenticated+":malformed" && r.Identity == "" {
			anon++
		}
	}
	if anon != 2 {
		t.Errorf("%d anonymous records of unreadable tokens (want 2: not bearer, garbage)", anon)
	}
}

func logKey(proc string, id *client.Identity, allowed bool) string {
	who := ""
	if id != nil {
		who = id.Subject.ID
	}
	return fmt.Sprintf("%s %s %v", proc, who, allowed)
}

// checkAccessLog: the node's access log holds exactly the calls about
// alice's wallet, each with who asked and whether it was answered.
func checkAccessLog(t *testing.T, n *node.Node, want map[string]int) {
	t.Helper()
	recs, err := node.AccessRecords(n, accesslog.Filter{Wallet: "alice", Limit: accesslog.MaxQueryLimit})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	total := 0
	for _, r := range recs {
		got[fmt.Sprintf("%s %s %v", r.Procedure, r.Identity, r.Allowed)]++
		if r.Addr != "127.0.0.1" || r.Time.IsZero() {
			t.Errorf("access record without address or time: %+v", r)
		}
	}
	for k, w := range want {
		total += w
		if got[k] != w {
			t.Errorf("access log: %d × %q (want %d)", got[k], k, w)
		}
	}
	if len(recs) != total {
		t.Errorf("access log: %d records about alice (want %d): %v", len(recs), total, got)
	}
}

// checkMetricsCarryNoPersonalData: after the scenario (wallets, a memo'd
// payment, a sub-wallet, every RPC called as every role) the public
// /metrics of every node names no wallet, identity or memo.
func checkMetricsCarryNoPersonalData(t *testing.T, c *nodetest.Cluster, secrets ...string) {
	t.Helper()
	for _, name := range c.Names {
		resp, err := http.Get(c.URL(name) + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) < 1000 {
			t.Fatalf("%s /metrics: %d, %d bytes", name, resp.StatusCode, len(body))
		}
		for _, s := range secrets {
			if strings.Contains(string(body), s) {
				t.Errorf("%s /metrics carries %q", name, s)
			}
		}
	}
}

// policyRules reads each procedure's "who may call" cell from the table
// as docs/api.md prints it.
func policyRules(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(node.PolicyMarkdown(), "\n")[2:] {
		cells := strings.Split(line, " | ")
		if len(cells) < 3 {
			continue
		}
		out["/dcep.node.v1."+strings.Trim(cells[0], "|` ")] = cells[1]
	}
	return out
}

// memo seals m to the given wallet keys (memos travel sealed only).
func memo(t *testing.T, b *statepb.Tx, m string, to ...ed25519.PrivateKey) *statepb.Tx {
	t.Helper()
	var pubs []ed25519.PublicKey
	for _, k := range to {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	sealed, err := memoseal.Seal(m, pubs)
	if err != nil {
		t.Fatal(err)
	}
	b.SealedMemo = sealed
	return b
}

// notFoundOK: NOT_FOUND is an allowed caller's answer about something that
// does not exist.
func notFoundOK(err error) error {
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	return err
}

func wantAPICode(t *testing.T, name string, err error, cc connect.Code, code string) {
	t.Helper()
	if connect.CodeOf(err) != cc || !strings.Contains(err.Error(), code) {
		t.Errorf("%s: want %s (%s), got %v", name, code, cc, err)
	}
}
