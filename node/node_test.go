package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestWritesThroughAnyVoterAndRegulatorRefuses submits through the leader
// and a follower over libp2p forwarding, reads back everywhere, and checks
// that the regulator refuses writes with READ_ONLY_NODE.
func TestWritesThroughAnyVoterAndRegulatorRefuses(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	follower := ""
	for _, n := range c.Names[:3] {
		if n != leader {
			follower = n
		}
	}
	r1 := c.MustOK(leader, c.Net.Issue(t, "icbc", 1_000_000*state.Yuan))
	r2 := c.MustOK(follower, c.Net.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 4, ""))
	if r2.GetLogIndex() <= r1.GetLogIndex() {
		t.Fatalf("indexes %d then %d", r1.GetLogIndex(), r2.GetLogIndex())
	}
	// The follower answered after applying: a plain read there sees it.
	w, err := c.Client(follower).GetWallet(context.Background(), connect.NewRequest(&nodepb.GetWalletRequest{WalletId: "alice"}))
	if err != nil || w.Msg.GetWallet().GetTier() != 4 {
		t.Fatalf("read-your-write on follower: %v %v", w, err)
	}
	// Same bytes again: the first outcome, marked duplicate.
	tx := c.Net.Issue(t, "abc", 5*state.Yuan)
	first := c.MustOK(follower, tx)
	again := c.Submit(leader, tx)
	if !again.GetDuplicate() || again.GetLogIndex() != first.GetLogIndex() {
		t.Fatalf("duplicate: %v vs %v", again, first)
	}

	reg := "regulator-1"
	_, err = c.Client(reg).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: c.Net.Issue(t, "icbc", 1)}))
	wantCode(t, err, connect.CodePermissionDenied, node.CodeReadOnly)

	// The regulator re-validates the whole log and agrees.
	c.Converge(first.GetLogIndex(), 10*time.Second)
	lin, err := c.Client(reg).GetWallet(context.Background(), connect.NewRequest(&nodepb.GetWalletRequest{
		WalletId: statetest.Reserve("icbc"), Read: &nodepb.ReadOptions{Linearizable: true}}))
	if err != nil || lin.Msg.GetWallet().GetBalanceFen() != 1_000_000*state.Yuan || !lin.Msg.GetFreshness().GetLinearizable() {
		t.Fatalf("linearizable read on regulator: %v %v", lin, err)
	}
	sup, err := c.Client(reg).Supply(context.Background(), connect.NewRequest(&nodepb.SupplyRequest{Audit: true}))
	if err != nil || !sup.Msg.GetInvariantHolds() || sup.Msg.GetOutstandingFen() != 1_000_005*state.Yuan {
		t.Fatalf("supply audit on regulator: %v %v", sup, err)
	}
}

func wantCode(t *testing.T, err error, cc connect.Code, code string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != cc {
		t.Fatalf("want %v %s, got %v", cc, code, err)
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if info, ok := v.(*nodepb.ErrorInfo); derr == nil && ok && info.GetCode() == code {
			return
		}
	}
	t.Fatalf("error %v lacks ErrorInfo code %s", err, code)
}
