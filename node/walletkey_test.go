package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"filippo.io/edwards25519"

	"github.com/dcep/dcep/client"
	memoseal "github.com/dcep/dcep/client/memo"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/accesslog"
	"github.com/dcep/dcep/node/nodepb"
	pc "github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestWalletKeyDecoy: GetWalletKey answers a wallet the node does not know
// with a decoy that looks like any key (32 bytes, a valid Ed25519 point a
// memo seals to) and is the same every time, across a restart of the node
// too; a sub-wallet's key (its parent's) only to its parties, a decoy to a
// stranger. Every call is on the node's access log under the caller and
// the wallet asked about. Past its per-identity burst an identity is
// refused RATE_LIMITED (on record too) while another identity is still
// answered.
func TestWalletKeyDecoy(t *testing.T) {
	const burst = 8
	c := nodetest.New(t, nodetest.Options{Voters: 1, Regulators: 1, Tweak: func(cfg *node.Config) {
		cfg.Limits.WalletKeyRatePerSec, cfg.Limits.WalletKeyBurst = 1, burst
	}})
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	for _, id := range []string{"alice", "carol"} {
		c.MustOK(leader, n.Register(t, "icbc", id, statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	}
	idx := c.MustOK(leader, n.Sign(t, statetest.CreateSubWalletBody("alice", "alice.jd"), n.Wallet("alice"))).GetLogIndex()
	c.Converge(idx, 10*time.Second)
	aliceKey := n.Wallet("alice").Public().(ed25519.PublicKey)

	ro := &nodepb.ReadOptions{Linearizable: true}
	ask := func(nodeName string, as *client.Identity, wallet string) ([]byte, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := c.As(t, nodeName, as).API().GetWalletKey(ctx, connect.NewRequest(&nodepb.GetWalletKeyRequest{WalletId: wallet, Read: ro}))
		if err != nil {
			return nil, err
		}
		return r.Msg.GetPublicKey(), nil
	}
	must := func(nodeName string, as *client.Identity, wallet string) []byte {
		t.Helper()
		k, err := ask(nodeName, as, wallet)
		if err != nil {
			t.Fatalf("GetWalletKey %s on %s: %v", wallet, nodeName, err)
		}
		return k
	}
	carol := c.Holder("carol")
	looksLikeAKey := func(what string, k []byte) {
		t.Helper()
		if len(k) != ed25519.PublicKeySize {
			t.Fatalf("%s: %d bytes", what, len(k))
		}
		if _, err := new(edwards25519.Point).SetBytes(k); err != nil {
			t.Fatalf("%s: not an Ed25519 point: %v", what, err)
		}
		if _, err := memoseal.Seal("hello", []ed25519.PublicKey{k}); err != nil {
			t.Fatalf("%s: a memo does not seal to it: %v", what, err)
		}
	}

	if got := must("pboc", carol, "alice"); !bytes.Equal(got, aliceKey) {
		t.Fatalf("alice's key as carol: %x, want %x", got, aliceKey)
	}
	ghost := must("pboc", carol, "ghost")
	looksLikeAKey("ghost's decoy", ghost)
	looksLikeAKey("alice's key", aliceKey)
	if again := must("pboc", carol, "ghost"); !bytes.Equal(again, ghost) {
		t.Fatalf("ghost's decoy changed: %x then %x", ghost, again)
	}
	if other := must("pboc", carol, "ghost2"); bytes.Equal(other, ghost) {
		t.Fatal("two unknown wallets got the same decoy")
	}
	// The sub-wallet: its parent's key to its holder, a decoy to carol.
	if got := must("pboc", c.Holder("alice"), "alice.jd"); !bytes.Equal(got, aliceKey) {
		t.Fatalf("alice.jd as alice: %x, want alice's key", got)
	}
	subDecoy := must("pboc", carol, "alice.jd")
	looksLikeAKey("alice.jd's decoy", subDecoy)
	if bytes.Equal(subDecoy, aliceKey) {
		t.Fatal("a stranger was told alice.jd's parent key")
	}

	// Another node: the same real key, its own decoy (docs/security.md
	// states this); and that node's decoy is the same after a restart.
	if got := must("regulator-1", carol, "alice"); !bytes.Equal(got, aliceKey) {
		t.Fatalf("alice's key on regulator-1: %x", got)
	}
	regGhost := must("regulator-1", carol, "ghost")
	looksLikeAKey("regulator-1's decoy", regGhost)
	if bytes.Equal(regGhost, ghost) {
		t.Fatal("two nodes derived the same decoy (their secrets must differ)")
	}
	c.Stop("regulator-1")
	c.Start("regulator-1")
	c.WaitReady("regulator-1", 30*time.Second)
	if again := must("regulator-1", carol, "ghost"); !bytes.Equal(again, regGhost) {
		t.Fatalf("regulator-1's decoy for ghost changed across a restart: %x then %x", regGhost, again)
	}

	// On record: carol's two calls about ghost on pboc, answered.
	recs, err := node.AccessRecords(c.Node("pboc"), accesslog.Filter{Wallet: "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d access records about ghost on pboc (want 2): %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Procedure != pc.LedgerServiceGetWalletKeyProcedure || r.Identity != "carol" || r.Role != "wallet" || !r.Allowed || r.Addr != "127.0.0.1" || r.Time.IsZero() {
			t.Errorf("access record: %+v", r)
		}
	}

	// Rate limit: carol has made 5 calls on pboc; past the burst she is
	// refused, alice is not.
	answered, refused := 5, 0
	var refusal error
	for range 3 * burst {
		if _, err := ask("pboc", carol, "ghost3"); err != nil {
			refusal = err
			refused++
			break
		}
		answered++
	}
	if refused == 0 || answered > burst+2 {
		t.Fatalf("%d calls answered, none refused (burst %d)", answered, burst)
	}
	if connect.CodeOf(refusal) != connect.CodeResourceExhausted || !strings.Contains(refusal.Error(), node.CodeRateLimited) || !strings.Contains(refusal.Error(), "wallet:carol") || !strings.Contains(refusal.Error(), "wallet_key_rate_per_sec") {
		t.Fatalf("refusal: %v (want RATE_LIMITED naming wallet:carol and the setting)", refusal)
	}
	if _, err := ask("pboc", c.Holder("alice"), "ghost3"); err != nil {
		t.Fatalf("alice refused after carol's flood: %v", err)
	}
	recs, err = node.AccessRecords(c.Node("pboc"), accesslog.Filter{Wallet: "ghost3", By: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if len(recs) != answered-5+1 || last.Allowed || last.Code != node.CodeRateLimited {
		t.Fatalf("carol's ghost3 records: %d (want %d), last %+v (want refused RATE_LIMITED)", len(recs), answered-5+1, last)
	}
}
