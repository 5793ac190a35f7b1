package client_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

const (
	yuan     = state.Yuan
	personal = statepb.WalletKind_WALLET_KIND_PERSONAL
	merchant = statepb.WalletKind_WALLET_KIND_MERCHANT
)

// ledger is a real state.Store fed SDK-built transactions, one per block.
type ledger struct {
	t *testing.T
	n *statetest.Net
	s *state.Store
	c *statetest.Chain
	b *client.Builder
}

func newLedger(t *testing.T, seed string) *ledger {
	t.Helper()
	n := statetest.NewNet(t, seed)
	s := n.Open(t)
	b, err := client.NewBuilder(n.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	if b.Signer() != n.Signer {
		t.Fatalf("builder signer %+v, network's %+v", b.Signer(), n.Signer)
	}
	return &ledger{t: t, n: n, s: s, c: statetest.NewChain(s), b: b.WithParties(storeParties{s})}
}

// storeParties looks memo parties up in the test's ledger.
type storeParties struct{ s *state.Store }

func (p storeParties) Wallet(id string) (*statepb.WalletRecord, error) { return p.s.Wallet(id) }

// WalletKey: the wallet's own key, else its parent's, else its bank's (what
// the node's GetWalletKey answers a party).
func (p storeParties) WalletKey(id string) (ed25519.PublicKey, error) {
	for range 2 {
		w, err := p.s.Wallet(id)
		if err != nil {
			return nil, err
		}
		if len(w.GetPublicKey()) == ed25519.PublicKeySize {
			return w.GetPublicKey(), nil
		}
		if w.GetParentWalletId() == "" {
			banks, err := p.s.Banks()
			if err != nil {
				return nil, err
			}
			for _, b := range banks {
				if b.GetBank().GetId() == w.GetBankId() {
					return b.GetBank().GetPublicKey(), nil
				}
			}
			return nil, fmt.Errorf("no bank %q", w.GetBankId())
		}
		id = w.GetParentWalletId()
	}
	return nil, fmt.Errorf("wallet %q has no key", id)
}

func (p storeParties) Payer(merchant string, txID []byte) (string, error) {
	r, err := p.s.Payment(merchant, txID)
	return r.GetPayerWalletId(), err
}

// apply applies an SDK-built transaction and returns its result.
func (l *ledger) apply(tx *client.SignedTx, err error) *statepb.TxResult {
	l.t.Helper()
	if err != nil {
		l.t.Fatalf("build: %v", err)
	}
	r := l.c.Apply(l.t, tx.Raw)[0]
	if string(r.GetTxId()) != string(tx.ID[:]) {
		l.t.Fatalf("result for tx %x, built %x", r.GetTxId(), tx.ID)
	}
	return r
}

// ok applies and requires CODE_OK.
func (l *ledger) ok(tx *client.SignedTx, err error) *statepb.TxResult {
	l.t.Helper()
	r := l.apply(tx, err)
	if r.GetCode() != statepb.Code_CODE_OK {
		l.t.Fatalf("want OK, got %s: %s", r.GetCode().Short(), r.GetMessage())
	}
	return r
}

// refused returns a function that applies and requires code:
// l.refused(code)(b.Transfer(...)).
func (l *ledger) refused(code statepb.Code) func(*client.SignedTx, error) {
	return func(tx *client.SignedTx, err error) {
		l.t.Helper()
		r := l.apply(tx, err)
		if r.GetCode() != code {
			l.t.Fatalf("want %s, got %s: %s", code.Short(), r.GetCode().Short(), r.GetMessage())
		}
	}
}

// unspent lists a wallet's outputs as the node API does.
func (l *ledger) unspent(wallet string) []*nodepb.Unspent {
	l.t.Helper()
	us, err := l.s.Unspents(wallet, nil, 0)
	if err != nil {
		l.t.Fatal(err)
	}
	out := make([]*nodepb.Unspent, len(us))
	for i, u := range us {
		out[i] = &nodepb.Unspent{Outpoint: u.Outpoint, AmountFen: u.AmountFen}
	}
	return out
}

// inputs selects a wallet's inputs covering needFen.
func (l *ledger) inputs(wallet string, needFen uint64) []*statepb.Outpoint {
	l.t.Helper()
	sel, err := client.SelectInputs(l.unspent(wallet), needFen)
	if err != nil {
		l.t.Fatalf("select %s from %s: %v", state.Fen(needFen), wallet, err)
	}
	return sel.Inputs
}

func (l *ledger) balance(wallet string) uint64 {
	l.t.Helper()
	w, err := l.s.Wallet(wallet)
	if err != nil {
		l.t.Fatalf("wallet %s: %v", wallet, err)
	}
	return w.GetBalanceFen()
}

func (l *ledger) wantBalance(wallet string, fen uint64) {
	l.t.Helper()
	if got := l.balance(wallet); got != fen {
		l.t.Fatalf("%s: balance %s, want %s", wallet, state.Fen(got), state.Fen(fen))
	}
}

func (l *ledger) register(bank, wallet string, key ed25519.PublicKey, kind statepb.WalletKind, tier uint32) {
	l.t.Helper()
	l.ok(l.b.RegisterWallet(l.n.Bank(bank), &statepb.RegisterWallet{
		WalletId: wallet, BankId: bank, PublicKey: key, Kind: kind, Tier: tier,
	}))
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestBuildersOnLedger builds every transaction kind with the SDK, applies
// them to a real ledger and checks outcomes, balances and the supply
// invariant.
func TestBuildersOnLedger(t *testing.T) {
	l := newLedger(t, "sdk")
	n, b := l.n, l.b
	cb, icbc, boc := n.CentralBank(), n.Bank("icbc"), n.Bank("boc")
	reserve := statetest.Reserve("icbc")
	alice, bob, shop := newKey(t), newKey(t), newKey(t)

	// Issue, twice, so the reserve has two outputs.
	l.ok(b.Issue(cb, "icbc", 1_000_000*yuan, client.Memo("Q4 issuance")))
	l.ok(b.Issue(cb, "icbc", 10_000*yuan))
	l.ok(b.Issue(cb, "boc", 50_000*yuan))
	l.wantBalance(reserve, 1_010_000*yuan)

	// Wallets.
	l.register("icbc", "alice", alice.Public().(ed25519.PublicKey), personal, 4)
	l.register("icbc", "bob", bob.Public().(ed25519.PublicKey), personal, 2)
	l.ok(b.RegisterWallet(boc, &statepb.RegisterWallet{
		WalletId: "jd.shop", BankId: "boc", PublicKey: shop.Public().(ed25519.PublicKey),
		Kind: merchant, Tier: 1, RegionCode: "320500", Category: "5411",
	}))

	// Exchange: the smallest reserve output that covers ¥5,000 is the
	// ¥10,000 one; change goes back to the reserve.
	in := l.inputs(reserve, 5_000*yuan)
	if len(in) != 1 {
		t.Fatalf("exchange inputs: %d", len(in))
	}
	l.ok(b.Exchange(icbc, "icbc", in, "alice", 5_000*yuan))
	l.ok(b.Exchange(icbc, "icbc", l.inputs(reserve, 20_000*yuan), "bob", 20_000*yuan))
	l.wantBalance("alice", 5_000*yuan)
	l.wantBalance(reserve, 985_000*yuan)
	if got := len(l.unspent(reserve)); got != 2 {
		t.Fatalf("reserve outputs: %d (change must be one output)", got)
	}
	// Exchange to another bank's wallet is refused by the ledger.
	l.refused(statepb.Code_CODE_PAYEE_WRONG_BANK)(b.Exchange(icbc, "icbc", l.inputs(reserve, yuan), "jd.shop", yuan))

	// Transfer to several payees, change back to the payer.
	l.ok(b.Transfer(alice, "alice", l.inputs("alice", 1_000*yuan+8850),
		[]*statepb.Payee{client.PayTo("jd.shop", 8850), client.PayTo("bob", 1_000*yuan)}, client.Memo("lunch")))
	l.wantBalance("alice", 4_000*yuan-8850)
	l.wantBalance("jd.shop", 8850)
	l.wantBalance("bob", 21_000*yuan)
	h, _, err := l.s.History("jd.shop", 0, 1)
	if err != nil || len(h) != 1 || h[0].GetMemo() != "" || h[0].GetInFen() != 8850 || h[0].GetCounterparty() != "alice" {
		t.Fatalf("shop history: %v, %v", h, err)
	}
	// The memo is sealed: the payer and each payee open it, a bank cannot.
	for name, k := range map[string]ed25519.PrivateKey{"payer": alice, "payee": shop, "other payee": bob} {
		if got, ok := client.OpenMemo(h[0].GetSealedMemo(), k); !ok || got != "lunch" {
			t.Fatalf("%s opens the memo: %q, %v", name, got, ok)
		}
	}
	if _, ok := client.OpenMemo(h[0].GetSealedMemo(), icbc); ok {
		t.Fatal("the bank opens a memo it is no party to")
	}
	// A tier-4 payment over ¥2,000 is refused by the ledger.
	l.refused(statepb.Code_CODE_LIMIT_PAYMENT)(b.Transfer(alice, "alice", l.inputs("alice", 2_000*yuan+1),
		[]*statepb.Payee{client.PayTo("bob", 2_000*yuan+1)}))
	// Signed by someone else's key: refused, not recorded.
	l.refused(statepb.Code_CODE_SIGNER_UNAUTHORIZED)(b.Transfer(bob, "alice", l.inputs("alice", yuan),
		[]*statepb.Payee{client.PayTo("bob", yuan)}))

	// Redeem: wallet → its bank's reserve.
	l.ok(b.Redeem(bob, "bob", l.inputs("bob", 500*yuan), 500*yuan))
	l.wantBalance("bob", 20_500*yuan)
	l.wantBalance(reserve, 985_500*yuan)

	// Return: bank then central bank sign; the amount leaves circulation.
	l.ok(b.Return(icbc, cb, "icbc", l.inputs(reserve, 100_000*yuan), 100_000*yuan))
	l.wantBalance(reserve, 885_500*yuan)
	a := statetest.Audit(t, l.s)
	if a.IssuedFen != 1_060_000*yuan || a.ReturnedFen != 100_000*yuan || a.UnspentFen != 960_000*yuan {
		t.Fatalf("audit: %+v", a)
	}
	// Signers in the wrong order are refused.
	l.refused(statepb.Code_CODE_SIGNER_UNAUTHORIZED)(b.Return(cb, icbc, "icbc", l.inputs(reserve, yuan), yuan))

	// Wallet management.
	l.ok(b.UpdateWallet(icbc, &statepb.UpdateWallet{WalletId: "alice", Tier: 3, RegionCode: "320500"}))
	w, _ := l.s.Wallet("alice")
	if w.GetTier() != 3 || w.GetRegionCode() != "320500" {
		t.Fatalf("after update: %v", w)
	}
	l.ok(b.Transfer(alice, "alice", l.inputs("alice", 2_500*yuan), []*statepb.Payee{client.PayTo("bob", 2_500*yuan)}))

	l.ok(b.FreezeWallet(icbc, "alice", "court order 42"))
	l.refused(statepb.Code_CODE_WALLET_FROZEN)(b.Transfer(alice, "alice", l.inputs("alice", yuan), []*statepb.Payee{client.PayTo("bob", yuan)}))
	l.refused(statepb.Code_CODE_PAYEE_FROZEN)(b.Transfer(bob, "bob", l.inputs("bob", yuan), []*statepb.Payee{client.PayTo("alice", yuan)}))
	l.ok(b.UnfreezeWallet(icbc, "alice", "lifted"))
	l.refused(statepb.Code_CODE_WALLET_NOT_FROZEN)(b.UnfreezeWallet(icbc, "alice", ""))

	alice2 := newKey(t)
	l.ok(b.RotateWalletKey(icbc, "alice", alice2.Public().(ed25519.PublicKey)))
	l.refused(statepb.Code_CODE_SIGNER_UNAUTHORIZED)(b.Transfer(alice, "alice", l.inputs("alice", yuan), []*statepb.Payee{client.PayTo("bob", yuan)}))
	l.ok(b.Transfer(alice2, "alice", l.inputs("alice", yuan), []*statepb.Payee{client.PayTo("bob", yuan)}))

	// Close: refused while the wallet holds money, then after redeeming all.
	l.refused(statepb.Code_CODE_WALLET_NOT_EMPTY)(b.CloseWallet(icbc, "alice"))
	rest := l.balance("alice")
	l.ok(b.Redeem(alice2, "alice", l.inputs("alice", rest), rest))
	l.ok(b.CloseWallet(icbc, "alice"))
	w, _ = l.s.Wallet("alice")
	if w.GetStatus() != statepb.WalletStatus_WALLET_STATUS_CLOSED {
		t.Fatalf("after close: %v", w)
	}

	// Membership.
	reg2 := &statepb.Node{Name: "regulator-2", Role: statepb.NodeRole_NODE_ROLE_REGULATOR, PublicKey: newKey(t).Public().(ed25519.PublicKey),
		Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, Operator: "csrc"}
	l.ok(b.ChangeMembership(cb, statepb.MembershipAction_MEMBERSHIP_ACTION_ADD, reg2))
	l.refused(statepb.Code_CODE_MEMBER_EXISTS)(b.ChangeMembership(cb, statepb.MembershipAction_MEMBERSHIP_ACTION_ADD, reg2))
	l.ok(b.ChangeMembership(cb, statepb.MembershipAction_MEMBERSHIP_ACTION_REMOVE, &statepb.Node{Name: "regulator-2"}))
	members, _ := l.s.Members()
	for _, m := range members {
		if m.GetName() == "regulator-2" {
			t.Fatal("regulator-2 still a member")
		}
	}

	statetest.Audit(t, l.s)
}

// TestSameBytesSameOutcome: re-applying the SDK's signed bytes returns the
// first outcome (this is what makes Submit's retries safe), while a second
// build of the same payment is a new transaction (a new random nonce).
func TestSameBytesSameOutcome(t *testing.T) {
	l := newLedger(t, "dup")
	first := l.ok(l.b.Issue(l.n.CentralBank(), "icbc", 100*yuan))
	tx, err := l.b.Issue(l.n.CentralBank(), "icbc", 100*yuan)
	if err != nil {
		t.Fatal(err)
	}
	r1 := l.ok(tx, nil)
	r2 := l.apply(tx, nil)
	if !r2.GetDuplicate() || r2.GetCode() != statepb.Code_CODE_OK || r2.GetLogIndex() != r1.GetLogIndex() {
		t.Fatalf("replay: %v (first %v)", r2, r1)
	}
	if string(first.GetTxId()) == string(r1.GetTxId()) {
		t.Fatal("two builds of one issue have the same id: the nonce is not random")
	}
	l.wantBalance(statetest.Reserve("icbc"), 200*yuan)
	// A fixed nonce reproduces the id exactly.
	t1, _ := l.b.Issue(l.n.CentralBank(), "icbc", yuan, client.Nonce(7))
	t2, _ := l.b.Issue(l.n.CentralBank(), "icbc", yuan, client.Nonce(7))
	if t1.ID != t2.ID {
		t.Fatal("fixed nonce: ids differ")
	}
	parsed, err := client.ParseSignedTx(t1.Raw)
	if err != nil || parsed.ID != t1.ID || parsed.Body.GetIssue().GetAmountFen() != yuan {
		t.Fatalf("ParseSignedTx: %v, %v", parsed, err)
	}
	id, err := client.ParseTxID(t1.IDHex())
	if err != nil || id != t1.ID {
		t.Fatalf("ParseTxID: %v", err)
	}
}

// TestLocalChecksMatchLedger: input the SDK refuses before signing is
// refused with the same code by the ledger when it gets there anyway
// (built and signed by statetest, bypassing the SDK).
func TestLocalChecksMatchLedger(t *testing.T) {
	l := newLedger(t, "checks")
	n, b := l.n, l.b
	l.ok(b.Issue(n.CentralBank(), "icbc", 1000*yuan))
	in := l.inputs(statetest.Reserve("icbc"), yuan)
	tooMany := make([]*statepb.Payee, statepb.MaxPayees+1)
	for i := range tooMany {
		tooMany[i] = client.PayTo("bob", 1)
	}
	dupIn := []*statepb.Outpoint{in[0], in[0]}
	for _, tc := range []struct {
		name string
		body *statepb.Tx
		key  ed25519.PrivateKey
		want statepb.Code
	}{
		{"zero issue", &statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: "icbc"}}}, n.CentralBank(), statepb.Code_CODE_AMOUNT_ZERO},
		{"bad bank id", &statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: "ICBC", AmountFen: 1}}}, n.CentralBank(), statepb.Code_CODE_INVALID_FIELD},
		{"long memo", &statepb.Tx{Memo: strings.Repeat("x", statepb.MaxMemoBytes+1), Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: "icbc", AmountFen: 1}}}, n.CentralBank(), statepb.Code_CODE_MEMO_TOO_LONG},
		{"no kind", &statepb.Tx{}, n.CentralBank(), statepb.Code_CODE_KIND_MISSING},
		{"no inputs", &statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{BankId: "icbc", ToWalletId: "bob", AmountFen: 1}}}, n.Bank("icbc"), statepb.Code_CODE_NO_INPUTS},
		{"duplicate input", &statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{BankId: "icbc", Inputs: dupIn, ToWalletId: "bob", AmountFen: 1}}}, n.Bank("icbc"), statepb.Code_CODE_DUPLICATE_INPUT},
		{"no payees", &statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{FromWalletId: "bob", Inputs: in}}}, n.Wallet("bob"), statepb.Code_CODE_NO_OUTPUTS},
		{"too many payees", &statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{FromWalletId: "bob", Inputs: in, Payees: tooMany}}}, n.Wallet("bob"), statepb.Code_CODE_TOO_MANY_OUTPUTS},
		{"payee overflow", &statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{FromWalletId: "bob", Inputs: in,
			Payees: []*statepb.Payee{client.PayTo("a", 1<<63), client.PayTo("b", 1<<63)}}}}, n.Wallet("bob"), statepb.Code_CODE_AMOUNT_OVERFLOW},
		{"tier 5", &statepb.Tx{Kind: &statepb.Tx_RegisterWallet{RegisterWallet: &statepb.RegisterWallet{WalletId: "x", BankId: "icbc",
			PublicKey: n.Pub("x"), Kind: personal, Tier: 5}}}, n.Bank("icbc"), statepb.Code_CODE_INVALID_FIELD},
		{"short key", &statepb.Tx{Kind: &statepb.Tx_RotateWalletKey{RotateWalletKey: &statepb.RotateWalletKey{WalletId: "x", NewPublicKey: []byte{1}}}}, n.Bank("icbc"), statepb.Code_CODE_INVALID_FIELD},
		{"membership action", &statepb.Tx{Kind: &statepb.Tx_ChangeMembership{ChangeMembership: &statepb.ChangeMembership{Node: &statepb.Node{Name: "x"}}}}, n.CentralBank(), statepb.Code_CODE_INVALID_FIELD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Sign(tc.body, tc.key)
			var se *statepb.Error
			if !errors.As(err, &se) || se.Code != tc.want {
				t.Fatalf("SDK: %v, want %s", err, tc.want.Short())
			}
			r := l.c.Apply(t, n.Sign(t, tc.body, tc.key))[0]
			if r.GetCode() != tc.want {
				t.Fatalf("ledger: %s (%s), SDK said %s", r.GetCode().Short(), r.GetMessage(), tc.want.Short())
			}
		})
	}

	// Checks only the SDK can make: keys.
	issue := &statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: "icbc", AmountFen: 1}}}
	if _, err := b.Sign(issue); statepb.CodeOf(err) != statepb.Code_CODE_SIGNATURE_COUNT {
		t.Errorf("no key: %v", err)
	}
	if _, err := b.Return(n.Bank("icbc"), nil, "icbc", in, 1); statepb.CodeOf(err) != statepb.Code_CODE_SIGNATURE_MALFORMED {
		t.Errorf("nil central bank key: %v", err)
	}
	if _, err := b.Sign(&statepb.Tx{ChainId: "other", Kind: issue.Kind}, n.CentralBank()); statepb.CodeOf(err) != statepb.Code_CODE_CHAIN_ID_MISMATCH {
		t.Errorf("chain id: %v", err)
	}
	if _, err := b.Bank("hsbc"); statepb.CodeOf(err) != statepb.Code_CODE_BANK_NOT_FOUND {
		t.Errorf("Bank(hsbc): %v", err)
	}
	// Sign does not modify the caller's body.
	if issue.GetVersion() != 0 || issue.GetNonce() != 0 || issue.GetChainId() != "" {
		t.Errorf("Sign modified its argument: %v", issue)
	}
}

// TestConsolidateOnLedger: a wallet with 40 small outputs cannot pay an
// amount that needs 35 of them; after one consolidation round (a transfer
// to itself, which the ledger accepts without counting it against limits)
// it can.
func TestConsolidateOnLedger(t *testing.T) {
	l := newLedger(t, "frag")
	n, b := l.n, l.b
	l.ok(b.Issue(n.CentralBank(), "icbc", 100_000*yuan))
	carol := newKey(t)
	l.register("icbc", "carol", carol.Public().(ed25519.PublicKey), personal, 4)
	reserve := statetest.Reserve("icbc")
	for range 40 {
		l.ok(b.Exchange(n.Bank("icbc"), "icbc", l.inputs(reserve, 10*yuan), "carol", 10*yuan))
	}
	_, err := client.SelectInputs(l.unspent("carol"), 350*yuan)
	if !errors.Is(err, client.ErrTooFragmented) {
		t.Fatalf("select: %v", err)
	}
	sel := client.SelectConsolidation(l.unspent("carol"))
	l.ok(b.Transfer(carol, "carol", sel.Inputs, []*statepb.Payee{client.PayTo("carol", sel.TotalFen)}, client.Memo("consolidate")))
	if got := len(l.unspent("carol")); got != 9 {
		t.Fatalf("outputs after consolidation: %d", got)
	}
	l.wantBalance("carol", 400*yuan)
	w, _ := l.s.Wallet("carol")
	if w.GetSpentDayFen() != 0 {
		t.Fatalf("a self-payment counted against limits: %d", w.GetSpentDayFen())
	}
	bob := newKey(t)
	l.register("icbc", "bob", bob.Public().(ed25519.PublicKey), personal, 4)
	l.ok(b.Transfer(carol, "carol", l.inputs("carol", 350*yuan), []*statepb.Payee{client.PayTo("bob", 350*yuan)}))
	l.wantBalance("bob", 350*yuan)
	statetest.Audit(t, l.s)
}
