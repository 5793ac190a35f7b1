package client_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// fastRetry keeps failing tests quick.
var fastRetry = client.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, AttemptTimeout: 5 * time.Second, Deadline: 10 * time.Second}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustOK returns a function that requires an OK result:
// mustOK(t)(c.Pay(...)).
func mustOK(t *testing.T) func(*statepb.TxResult, error) *statepb.TxResult {
	return func(r *statepb.TxResult, err error) *statepb.TxResult {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetCode() != statepb.Code_CODE_OK {
			t.Fatalf("result %v", r)
		}
		return r
	}
}

func wantBalance(t *testing.T, c *client.Client, wallet string, fen uint64) {
	t.Helper()
	got, err := c.Balance(ctxT(t), wallet, client.Linearizable())
	if err != nil {
		t.Fatal(err)
	}
	if got != fen {
		t.Fatalf("%s: balance %d, want %d", wallet, got, fen)
	}
}

// setup issues money to icbc and opens alice (tier 4) and bob (tier 2) at
// icbc and jd.shop (merchant, tier 1) at boc, through the client.
func setup(t *testing.T, c *client.Client, n *statetest.Net) (alice, bob, shop ed25519.PrivateKey) {
	t.Helper()
	ctx := ctxT(t)
	mustOK(t)(c.Issue(ctx, n.CentralBank(), "icbc", 1_000_000*yuan))
	mustOK(t)(c.Issue(ctx, n.CentralBank(), "boc", 1_000*yuan))
	alice, bob, shop = newKey(t), newKey(t), newKey(t)
	for _, w := range []struct {
		bank, id string
		key      ed25519.PrivateKey
		kind     statepb.WalletKind
		tier     uint32
	}{{"icbc", "alice", alice, personal, 4}, {"icbc", "bob", bob, personal, 2}, {"boc", "jd.shop", shop, merchant, 1}} {
		mustOK(t)(c.RegisterWallet(ctx, n.Bank(w.bank), &statepb.RegisterWallet{
			WalletId: w.id, BankId: w.bank, PublicKey: w.key.Public().(ed25519.PublicKey), Kind: w.kind, Tier: w.tier,
		}))
	}
	return alice, bob, shop
}

func TestClientFlow(t *testing.T) {
	tn := startNet(t, 1, 0)
	px := newProxy(t, tn.URL("pboc")) // counts submissions
	c := tn.clientAt(t, px.URL)
	n, ctx := tn.n, ctxT(t)
	alice, bob, _ := setup(t, c, n)

	mustOK(t)(c.Exchange(ctx, n.Bank("icbc"), "icbc", "alice", 5_000*yuan, client.Memo("ATM")))
	mustOK(t)(c.Exchange(ctx, n.Bank("icbc"), "icbc", "bob", 50_000*yuan))
	r := mustOK(t)(c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("jd.shop", 8850), client.PayTo("bob", 100*yuan)}, client.Memo("dinner")))
	wantBalance(t, c, "alice", 4_900*yuan-8850)
	wantBalance(t, c, "jd.shop", 8850)
	wantBalance(t, c, "bob", 50_100*yuan)

	// The transaction can be read back by id.
	var id [32]byte
	copy(id[:], r.GetTxId())
	got, err := c.Tx(ctx, id)
	if err != nil || got.GetBody().GetMemo() != "dinner" || got.GetResult().GetCode() != statepb.Code_CODE_OK || got.GetOutputCount() != 3 {
		t.Fatalf("Tx: %v, %v", got, err)
	}

	mustOK(t)(c.Redeem(ctx, bob, "bob", 1_000*yuan))
	wantBalance(t, c, "bob", 49_100*yuan)
	mustOK(t)(c.Return(ctx, n.Bank("icbc"), n.CentralBank(), "icbc", 10_000*yuan))

	// Ledger refusals are *TxError carrying the stable code.
	_, err = c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("bob", 2_000*yuan+1)})
	var te *client.TxError
	var se *statepb.Error
	if !errors.As(err, &te) || te.Code() != statepb.Code_CODE_LIMIT_PAYMENT || !errors.As(err, &se) ||
		statepb.CodeOf(err) != statepb.Code_CODE_LIMIT_PAYMENT || !strings.HasPrefix(err.Error(), "LIMIT_PAYMENT: ") {
		t.Fatalf("over tier-4 payment cap: %v", err)
	}
	mustOK(t)(c.FreezeWallet(ctx, n.Bank("icbc"), "alice", "lost phone"))
	if _, err := c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("bob", yuan)}); statepb.CodeOf(err) != statepb.Code_CODE_WALLET_FROZEN {
		t.Fatalf("pay from frozen: %v", err)
	}
	mustOK(t)(c.UnfreezeWallet(ctx, n.Bank("icbc"), "alice", "found it"))

	// Refusals before sending: nothing reaches the node.
	before := px.submits.Load()
	_, err = c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("bob", 10_000*yuan)})
	var fe *client.FundsError
	if !errors.As(err, &fe) || !errors.Is(err, client.ErrInsufficientFunds) || statepb.CodeOf(err) != statepb.Code_CODE_INSUFFICIENT_INPUTS ||
		err.Error() != "insufficient funds in wallet alice: balance ¥4,811.50, need ¥10,000.00" {
		t.Fatalf("over balance: %v", err)
	}
	if _, err := c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("bob", 0)}); statepb.CodeOf(err) != statepb.Code_CODE_AMOUNT_ZERO {
		t.Fatalf("zero: %v", err)
	}
	if _, err := c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("Bob", 1)}); statepb.CodeOf(err) != statepb.Code_CODE_INVALID_FIELD {
		t.Fatalf("bad payee id: %v", err)
	}
	if _, err := c.Exchange(ctx, n.Bank("icbc"), "hsbc", "alice", 1); statepb.CodeOf(err) != statepb.Code_CODE_BANK_NOT_FOUND {
		t.Fatalf("unknown bank: %v", err)
	}
	if px.submits.Load() != before {
		t.Fatal("a locally refused transaction was sent")
	}

	// Reads.
	if _, err := c.Wallet(ctx, "nobody"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("missing wallet: %v", err)
	} else if ae := (*client.APIError)(nil); !errors.As(err, &ae) || ae.Code != client.CodeNotFound || ae.RPCCode != connect.CodeNotFound ||
		err.Error() != `NOT_FOUND: wallet "nobody" not found` {
		t.Fatalf("missing wallet: %v", err)
	}
	if _, err := c.Tx(ctx, [32]byte{1}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("missing tx: %v", err)
	}
	if _, err := c.Wallet(ctx, "Alice"); statepb.CodeOf(err) != statepb.Code_CODE_INVALID_FIELD {
		t.Fatalf("bad wallet id: %v", err)
	}
	var hist []*statepb.HistoryEntry
	for e, err := range c.History(ctx, "alice", client.PageSize(2)) {
		if err != nil {
			t.Fatal(err)
		}
		hist = append(hist, e)
	}
	want, _, _ := tn.Node("pboc").Store().History("alice", 0, 0)
	if len(hist) != len(want) || len(hist) < 5 {
		t.Fatalf("history: %d entries, store has %d", len(hist), len(want))
	}
	for i := range hist {
		if hist[i].GetLogIndex() != want[i].GetLogIndex() {
			t.Fatalf("history[%d]: index %d, want %d", i, hist[i].GetLogIndex(), want[i].GetLogIndex())
		}
	}
	// Stopping early is fine.
	for range c.History(ctx, "alice", client.PageSize(1)) {
		break
	}
	nw := 0
	for _, err := range c.Wallets(ctx, client.PageSize(3)) {
		if err != nil {
			t.Fatal(err)
		}
		nw++
	}
	if nw != 3+2*len(statetest.BankIDs) {
		t.Fatalf("%d wallets", nw)
	}
	sp, err := c.Supply(ctx, true)
	if err != nil || !sp.GetAudited() || !sp.GetInvariantHolds() || sp.GetOutstandingFen() != 991_000*yuan {
		t.Fatalf("supply: %v, %v", sp, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.GetNode().GetChainId() != n.Genesis.GetChainId() {
		t.Fatalf("status: %v, %v", st, err)
	}
}

// TestUnspentPagingAndConsolidate fragments a wallet over many pages of
// ListUnspent, shows the too-fragmented error, consolidates, and pays.
func TestUnspentPagingAndConsolidate(t *testing.T) {
	tn := startNet(t, 1, 0)
	c := tn.clientAt(t, tn.URL("pboc"))
	n, ctx := tn.n, ctxT(t)
	_, bob, _ := setup(t, c, n)
	for range 40 {
		mustOK(t)(c.Exchange(ctx, n.Bank("icbc"), "icbc", "bob", 10*yuan))
	}
	us, err := c.Unspent(ctx, "bob", client.PageSize(7))
	if err != nil || len(us) != 40 || client.UnspentTotal(us) != 400*yuan {
		t.Fatalf("unspent: %d, %v", len(us), err)
	}
	_, err = c.Pay(ctx, bob, "bob", []*statepb.Payee{client.PayTo("jd.shop", 350*yuan)})
	if !errors.Is(err, client.ErrTooFragmented) || !strings.Contains(err.Error(), "35 outputs needed") {
		t.Fatalf("fragmented: %v", err)
	}
	rs, err := c.Consolidate(ctx, bob, "bob", 0)
	if err != nil || len(rs) != 2 {
		t.Fatalf("consolidate: %d rounds, %v", len(rs), err)
	}
	us, _ = c.Unspent(ctx, "bob")
	if len(us) != 1 {
		t.Fatalf("%d outputs after consolidating", len(us))
	}
	mustOK(t)(c.Pay(ctx, bob, "bob", []*statepb.Payee{client.PayTo("jd.shop", 350*yuan)}))
	wantBalance(t, c, "bob", 50*yuan)
}

// TestSubmitRetrySafe: a reply lost after the ledger applied the payment is
// retried with the same bytes; the ledger answers with the first outcome
// (duplicate) and the money moves once.
func TestSubmitRetrySafe(t *testing.T) {
	tn := startNet(t, 1, 0)
	px := newProxy(t, tn.URL("pboc"))
	c := tn.clientAt(t, px.URL)
	n, ctx := tn.n, ctxT(t)
	alice, _, _ := setup(t, c, n)
	mustOK(t)(c.Exchange(ctx, n.Bank("icbc"), "icbc", "alice", 1_000*yuan))

	px.loseReplies.Store(1)
	before := px.submits.Load()
	r := mustOK(t)(c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("bob", 100*yuan)}))
	if !r.GetDuplicate() || px.submits.Load()-before != 2 {
		t.Fatalf("result %v after %d submits", r, px.submits.Load()-before)
	}
	wantBalance(t, c, "alice", 900*yuan)
	wantBalance(t, c, "bob", 100*yuan)

	// Requests lost before they reach the node: retried, applied once.
	px.dropRequests.Store(2)
	before = px.submits.Load()
	r = mustOK(t)(c.Pay(ctx, alice, "alice", []*statepb.Payee{client.PayTo("bob", 100*yuan)}))
	if r.GetDuplicate() || px.submits.Load()-before != 3 {
		t.Fatalf("result %v after %d submits", r, px.submits.Load()-before)
	}
	wantBalance(t, c, "alice", 800*yuan)
	wantBalance(t, c, "bob", 200*yuan)
}

// TestSubmitOutcomeUnknown: when every attempt loses its reply, Submit says
// the outcome is unknown and names the transaction; re-submitting the same
// signed bytes later tells the outcome without paying twice.
func TestSubmitOutcomeUnknown(t *testing.T) {
	tn := startNet(t, 1, 0)
	px := newProxy(t, tn.URL("pboc"))
	c := tn.clientAt(t, px.URL)
	n, ctx := tn.n, ctxT(t)
	alice, _, _ := setup(t, c, n)
	mustOK(t)(c.Exchange(ctx, n.Bank("icbc"), "icbc", "alice", 1_000*yuan))

	tx := signedPay(t, c, alice, "alice", "bob", 100*yuan)
	px.loseReplies.Store(1000)
	_, err := c.Submit(ctx, tx)
	var ou *client.OutcomeUnknownError
	if !errors.As(err, &ou) || !errors.Is(err, client.ErrOutcomeUnknown) || ou.TxID != tx.ID || ou.Attempts != fastRetry.MaxAttempts ||
		!strings.Contains(err.Error(), tx.IDHex()) {
		t.Fatalf("lost replies: %v", err)
	}
	px.loseReplies.Store(0)
	r, err := c.Submit(ctx, tx)
	if err != nil || !r.GetDuplicate() || r.GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("resubmit: %v, %v", r, err)
	}
	wantBalance(t, c, "alice", 900*yuan)
	wantBalance(t, c, "bob", 100*yuan)
}

// signedPay builds and signs (without submitting) a payment.
func signedPay(t *testing.T, c *client.Client, key ed25519.PrivateKey, from, to string, fen uint64) *client.SignedTx {
	t.Helper()
	ctx := ctxT(t)
	b, err := c.Builder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	us, err := c.Unspent(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := client.SelectInputs(us, fen)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := b.Transfer(key, from, sel.Inputs, []*statepb.Payee{client.PayTo(to, fen)})
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestNoQuorum: a network that lost its quorum answers NO_QUORUM; the
// client retries, then reports the outcome unknown with the node's code.
// Once the quorum is back, the same bytes commit, once.
func TestNoQuorum(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 2, Tweak: func(cfg *node.Config) { cfg.Limits.SubmitTimeoutMs = 300 }})
	c.StartAll()
	c.WaitLeader()
	tn := &testNet{Cluster: c, n: c.Net}
	cl := tn.clientAt(t, tn.URL("pboc"))
	n, ctx := tn.n, ctxT(t)
	alice, _, _ := setup(t, cl, n)
	mustOK(t)(cl.Exchange(ctx, n.Bank("icbc"), "icbc", "alice", 1_000*yuan))
	tx := signedPay(t, cl, alice, "alice", "bob", 100*yuan)

	tn.Stop("icbc") // one of two voters: no quorum
	waitNoLeader(t, cl)
	_, err := cl.Submit(ctx, tx)
	var ae *client.APIError
	if !errors.Is(err, client.ErrOutcomeUnknown) || !errors.As(err, &ae) || ae.Code != client.CodeNoQuorum {
		t.Fatalf("no quorum: %v", err)
	}

	tn.Start("icbc")
	tn.WaitLeader()
	r, err := cl.Submit(ctx, tx)
	if err != nil || r.GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("after the quorum is back: %v, %v", r, err)
	}
	if r2, err := cl.Submit(ctx, tx); err != nil || !r2.GetDuplicate() || r2.GetLogIndex() != r.GetLogIndex() {
		t.Fatalf("again: %v, %v", r2, err)
	}
	wantBalance(t, cl, "alice", 900*yuan)
	wantBalance(t, cl, "bob", 100*yuan)
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := client.New(addr, client.WithRetry(fastRetry))
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "http://"+addr {
		t.Fatalf("base URL %q", c.BaseURL())
	}
	_, err = c.Status(ctxT(t))
	var ae *client.APIError
	if !errors.Is(err, client.ErrUnreachable) || !errors.As(err, &ae) || ae.Code != client.CodeUnreachable {
		t.Fatalf("status: %v", err)
	}
	if want := "NODE_UNREACHABLE: node unreachable at http://" + addr + ": connection refused"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	// Submitting to an unreachable node fails fast: nothing was sent, so
	// the outcome is known (nothing happened).
	n := statetest.NewNet(t, "x")
	b, _ := client.NewBuilder(n.Genesis)
	tx, _ := b.Issue(n.CentralBank(), "icbc", 1)
	if _, err := c.Submit(ctxT(t), tx); !errors.Is(err, client.ErrUnreachable) || errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("submit: %v", err)
	}
	if err := c.Outcomes(ctxT(t), 1, func(*statepb.BlockRecord) error { return nil }); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("outcomes: %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "http://"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// TestOutcomesResume: a stream cut every 3 blocks, through a middlebox that
// also makes the node re-send the block before each resume point, still
// delivers every block exactly once, in order, while more are committed.
func TestOutcomesResume(t *testing.T) {
	tn := startNet(t, 1, 0)
	c := tn.clientAt(t, tn.URL("pboc"))
	n, ctx := tn.n, ctxT(t)
	setup(t, c, n)
	for range 5 {
		mustOK(t)(c.Issue(ctx, n.CentralBank(), "abc", yuan))
	}
	px := newProxy(t, tn.URL("pboc"))
	px.cutStreamAfter.Store(3)
	px.replayOnResume.Store(true)
	sc := tn.clientAt(t, px.URL)

	const from = 2
	var mu sync.Mutex
	var got []uint64
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- sc.Outcomes(sctx, from, func(b *statepb.BlockRecord) error {
			mu.Lock()
			got = append(got, b.GetLogIndex())
			mu.Unlock()
			return nil
		})
	}()
	// More blocks while the stream follows.
	var last uint64
	for range 5 {
		last = mustOK(t)(c.Issue(ctx, n.CentralBank(), "abc", yuan)).GetLogIndex()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		caught := len(got) > 0 && got[len(got)-1] >= last
		mu.Unlock()
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream did not reach index %d: got %v", last, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}

	blocks, err := tn.Node("pboc").Store().Blocks(from, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, b := range blocks {
		if b.GetLogIndex() <= last {
			want = append(want, b.GetLogIndex())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("delivered %v: not strictly increasing", got)
		}
	}
	if s := px.streams.Load(); s < 4 {
		t.Fatalf("only %d streams: the cut was not exercised", s)
	}
}

// TestProtocols: the client works over HTTP/1.1 (default), h2c and gRPC.
func TestProtocols(t *testing.T) {
	tn := startNet(t, 1, 1) // the regulator reads a missing wallet as NOT_FOUND
	for name, opt := range map[string]client.Option{"http1": client.WithTimeout(5 * time.Second), "h2c": client.WithH2C(), "grpc": client.WithGRPC()} {
		c := tn.clientAt(t, tn.URL("pboc"), opt)
		ctx := ctxT(t)
		if _, err := c.Builder(ctx); err != nil {
			t.Fatalf("%s: genesis: %v", name, err)
		}
		if _, err := c.Issue(ctx, tn.n.CentralBank(), "icbc", yuan); err != nil {
			t.Fatalf("%s: issue: %v", name, err)
		}
		seen := 0
		stop := errors.New("stop")
		if err := c.Outcomes(ctx, 1, func(*statepb.BlockRecord) error { seen++; return stop }); !errors.Is(err, stop) || seen != 1 {
			t.Fatalf("%s: outcomes: %v", name, err)
		}
		if _, err := c.Wallet(ctx, "nobody"); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("%s: not found: %v", name, err)
		}
	}
}

// TestGenesisChecked: a genesis whose hash is not the one claimed (here
// altered on the way) is refused before anything is signed for it.
func TestGenesisChecked(t *testing.T) {
	tn := startNet(t, 1, 0)
	px := newProxy(t, tn.URL("pboc"))
	px.lieGenesis.Store(true)
	c := tn.clientAt(t, px.URL)
	if _, err := c.Issue(ctxT(t), tn.n.CentralBank(), "icbc", 1); !errors.Is(err, client.ErrBadResponse) || px.submits.Load() != 0 {
		t.Fatalf("lying genesis: %v (%d submits)", err, px.submits.Load())
	}
}

func TestWalletManagement(t *testing.T) {
	tn := startNet(t, 1, 1)
	c := tn.clientAt(t, tn.URL("pboc"))
	n, ctx := tn.n, ctxT(t)
	alice, _, _ := setup(t, c, n)
	icbc := n.Bank("icbc")
	mustOK(t)(c.UpdateWallet(ctx, icbc, &statepb.UpdateWallet{WalletId: "alice", Tier: 2, Limits: &statepb.Limits{MaxPaymentFen: 3_000 * yuan}}))
	w, err := c.Wallet(ctx, "alice", client.Linearizable())
	if err != nil || w.GetWallet().GetTier() != 2 || w.GetWallet().GetLimits().GetMaxPaymentFen() != 3_000*yuan || w.GetFreshness().GetAppliedIndex() == 0 {
		t.Fatalf("after update: %v, %v", w, err)
	}
	// Own limits above the tier's are refused by the ledger.
	if _, err := c.UpdateWallet(ctx, icbc, &statepb.UpdateWallet{WalletId: "alice", Tier: 4, Limits: &statepb.Limits{MaxPaymentFen: 3_000 * yuan}}); statepb.CodeOf(err) != statepb.Code_CODE_LIMIT_ABOVE_TIER {
		t.Fatalf("above tier: %v", err)
	}
	mustOK(t)(c.Exchange(ctx, icbc, "icbc", "alice", 100*yuan))
	alice2 := newKey(t)
	mustOK(t)(c.RotateWalletKey(ctx, icbc, "alice", alice2.Public().(ed25519.PublicKey)))
	if _, err := c.Redeem(ctx, alice, "alice", 100*yuan); statepb.CodeOf(err) != statepb.Code_CODE_SIGNER_UNAUTHORIZED {
		t.Fatalf("old key: %v", err)
	}
	mustOK(t)(c.Redeem(ctx, alice2, "alice", 100*yuan))
	mustOK(t)(c.CloseWallet(ctx, icbc, "alice"))
	if _, err := c.FreezeWallet(ctx, icbc, "alice", ""); statepb.CodeOf(err) != statepb.Code_CODE_WALLET_CLOSED {
		t.Fatalf("freeze closed: %v", err)
	}
	node := &statepb.Node{Name: "regulator-2", Role: statepb.NodeRole_NODE_ROLE_REGULATOR, PublicKey: newKey(t).Public().(ed25519.PublicKey),
		Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", nodetest.FreePort(t))}, Operator: "csrc"}
	mustOK(t)(c.ChangeMembership(ctx, n.CentralBank(), statepb.MembershipAction_MEMBERSHIP_ACTION_ADD, node))
	mustOK(t)(c.ChangeMembership(ctx, n.CentralBank(), statepb.MembershipAction_MEMBERSHIP_ACTION_REMOVE, &statepb.Node{Name: "regulator-2"}))

	// The regulator refuses writes: answered once, not retried, and the
	// outcome is known (nothing was committed).
	px := newProxy(t, tn.URL("regulator-1"))
	rc := tn.clientAt(t, px.URL)
	_, err = rc.Issue(ctx, n.CentralBank(), "icbc", yuan)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != client.CodeReadOnly || errors.Is(err, client.ErrOutcomeUnknown) || px.submits.Load() != 1 ||
		!strings.HasPrefix(err.Error(), "READ_ONLY_NODE: node regulator-1 is a regulator (read-only) node and refuses every write") {
		t.Fatalf("read-only node: %v after %d submits", err, px.submits.Load())
	}
	// It answers reads, with the regulator's audit.
	sp, err := rc.Supply(ctx, true, client.Linearizable())
	if err != nil || !sp.GetInvariantHolds() || sp.GetFreshness().GetNode() != "regulator-1" || sp.GetOutstandingFen() != 1_001_000*yuan {
		t.Fatalf("regulator audit: %v, %v", sp, err)
	}
}

// TestAPICodes: the client's API codes are the node's.
func TestAPICodes(t *testing.T) {
	for _, c := range []struct{ client, node string }{
		{client.CodeReadOnly, node.CodeReadOnly}, {client.CodeNoQuorum, node.CodeNoQuorum}, {client.CodeTimeout, node.CodeTimeout},
		{client.CodeOverloaded, node.CodeOverloaded}, {client.CodeRateLimited, node.CodeRateLimited}, {client.CodeNotFound, node.CodeNotFound},
		{client.CodeInvalidArgument, node.CodeInvalidArgument}, {client.CodeUnavailable, node.CodeUnavailable}, {client.CodeInternal, node.CodeInternal},
		{client.CodeUnauthenticated, node.CodeUnauthenticated}, {client.CodePermissionDenied, node.CodePermissionDenied},
	} {
		if c.client != c.node {
			t.Errorf("client code %q, node code %q", c.client, c.node)
		}
	}
}
