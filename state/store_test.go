package state_test

import (
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

const (
	personal = statepb.WalletKind_WALLET_KIND_PERSONAL
	merchant = statepb.WalletKind_WALLET_KIND_MERCHANT
	yuan     = state.Yuan
)

// TestMoneyFlow walks issue → exchange → pay → redeem → return and checks
// balances and the supply invariant after each step.
func TestMoneyFlow(t *testing.T) {
	n := statetest.NewNet(t, "flow")
	s := n.Open(t)
	c := statetest.NewChain(s)

	_, issueID := n.SignID(t, issueBody("icbc", 1_000_000*yuan), n.CentralBank())
	c.MustOK(t, n.Sign(t, issueBody("icbc", 1_000_000*yuan), n.CentralBank()))
	_ = issueID
	wantBalance(t, s, statetest.Reserve("icbc"), 1_000_000*yuan)

	c.MustOK(t, n.Register(t, "icbc", "alice", personal, 4, ""))
	c.MustOK(t, n.Register(t, "boc", "shop", merchant, 1, "320500"))
	res := c.Apply(t, n.Issue(t, "icbc", 10_000*yuan))[0]
	issued := toID(res.GetTxId())
	ex, exID := n.SignID(t, exchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issued, 0)}, "alice", 500*yuan), n.Bank("icbc"))
	c.MustOK(t, ex)
	wantBalance(t, s, "alice", 500*yuan)
	wantBalance(t, s, statetest.Reserve("icbc"), 1_009_500*yuan)

	pay := n.Transfer(t, "alice", []*statepb.Outpoint{statetest.Out(exID, 0)}, statetest.Pay("shop", 8850))
	c.MustOK(t, pay)
	wantBalance(t, s, "alice", 500*yuan-8850)
	wantBalance(t, s, "shop", 8850)

	a := statetest.Audit(t, s)
	if a.OutstandingFen != 1_010_000*yuan || a.UnspentFen != a.OutstandingFen {
		t.Fatalf("audit: %+v", a)
	}
	// Replaying the same bytes returns the first outcome and changes nothing.
	r := c.Apply(t, pay)[0]
	if !r.GetDuplicate() || r.GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("replay: %v", r)
	}
	wantBalance(t, s, "shop", 8850)
}

func issueBody(bank string, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: bank, AmountFen: fen}}}
}

func exchangeBody(bank string, in []*statepb.Outpoint, to string, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{BankId: bank, Inputs: in, ToWalletId: to, AmountFen: fen}}}
}

func toID(b []byte) (id [32]byte) {
	copy(id[:], b)
	return id
}

func wantBalance(t *testing.T, s *state.Store, wallet string, fen uint64) {
	t.Helper()
	w, err := s.Wallet(wallet)
	if err != nil {
		t.Fatalf("wallet %s: %v", wallet, err)
	}
	if w.GetBalanceFen() != fen {
		t.Fatalf("wallet %s: balance %s, want %s", wallet, state.Fen(w.GetBalanceFen()), state.Fen(fen))
	}
}
