package state_test

import (
	"sync"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestPrecheckVerifies: Precheck refuses what Apply would refuse without
// state — a bad signature, a malformed offline payment — so it never
// enters the log; it accepts a valid transaction.
func TestPrecheckVerifies(t *testing.T) {
	f := newOffFix(t)
	good := f.n.Issue(t, "icbc", yuan)
	if _, rej := f.s.Precheck(good); rej != nil {
		t.Fatalf("valid issue: %v", rej)
	}
	bad := f.n.Sign(t, statetest.IssueBody("icbc", yuan), f.n.Key("mallory")) // right shape, wrong key: authority, not Precheck
	if _, rej := f.s.Precheck(bad); rej != nil {
		t.Fatalf("a well-signed transaction by the wrong key is Apply's to refuse, got %v", rej)
	}
	forged := []byte(string(good))
	forged[len(forged)-1] ^= 1 // last byte of the signature
	if _, rej := f.s.Precheck(forged); rej == nil || rej.Code != statepb.Code_CODE_SIGNATURE_INVALID || rej.Field != "signatures[0]" {
		t.Fatalf("bad signature: %+v", rej)
	}
	req := f.n.Request("bob-phone", 10*yuan, "r")
	garbage := f.n.Deposit(t, "bob-phone", "bob", statetest.Item(&statepb.Payment{Body: []byte{0xff, 0x01}, Signature: make([]byte, 64)}, req))
	if _, rej := f.s.Precheck(garbage); rej == nil || rej.Code != statepb.Code_CODE_PAYMENT_MALFORMED || rej.Field != "deposit_offline.items[0].payment" {
		t.Fatalf("garbage payment: %+v", rej)
	}
}

// TestPrecheckVerifiesOnce: what Precheck verified, this node's Apply does
// not verify again; concurrent Precheck calls share batches.
func TestPrecheckVerifiesOnce(t *testing.T) {
	n := statetest.NewNet(t, "precheck")
	s := n.Open(t)
	c := statetest.NewChain(s)
	const calls = 256
	txs := make([][]byte, calls)
	for i := range txs {
		txs[i] = n.Issue(t, "icbc", uint64(i+1))
	}
	var wg sync.WaitGroup
	for _, tx := range txs {
		wg.Go(func() {
			if _, rej := s.Precheck(tx); rej != nil {
				t.Errorf("Precheck: %v", rej)
			}
		})
	}
	wg.Wait()
	sigs, batches := state.SigStats(s)
	t.Logf("Precheck: %d signatures in %d batches", sigs, batches)
	if sigs != calls || batches > calls {
		t.Fatalf("Precheck verified %d signatures in %d batches, want %d", sigs, batches, calls)
	}
	for _, r := range c.Apply(t, txs...) {
		wantCode(t, r, statepb.Code_CODE_OK)
	}
	if after, _ := state.SigStats(s); after != sigs {
		t.Fatalf("Apply verified %d signatures Precheck had verified", after-sigs)
	}
	// A transaction Precheck never saw is verified at Apply.
	wantCode(t, c.Apply(t, n.Issue(t, "icbc", yuan))[0], statepb.Code_CODE_OK)
	if after, _ := state.SigStats(s); after != sigs+1 {
		t.Fatalf("Apply of an unchecked transaction verified %d signatures, want 1", after-sigs)
	}
	statetest.Audit(t, s)
}

// TestPrecheckAll: transactions that arrive together are verified in
// batches of up to 64, a bad signature among them is found and refused
// alone, and Apply verifies none of the good ones again.
func TestPrecheckAll(t *testing.T) {
	n := statetest.NewNet(t, "precheck-all")
	s := n.Open(t)
	c := statetest.NewChain(s)
	const count, bad = 100, 37
	txs := make([][]byte, count)
	for i := range txs {
		txs[i] = n.Issue(t, "icbc", uint64(i+1))
	}
	txs[bad] = corruptSignature(t, txs[bad], 5)
	ids, rejs := s.PrecheckAll(txs)
	for i := range txs {
		switch {
		case i == bad && statepb.CodeOf(rejs[i]) != statepb.Code_CODE_SIGNATURE_INVALID:
			t.Fatalf("transaction %d (bad signature): %v, want SIGNATURE_INVALID", i, rejs[i])
		case i != bad && rejs[i] != nil:
			t.Fatalf("transaction %d: %v", i, rejs[i])
		case ids[i] == [32]byte{}:
			t.Fatalf("transaction %d: no id", i)
		}
	}
	sigs, batches := state.SigStats(s)
	if sigs != count || batches != 2 {
		t.Fatalf("PrecheckAll verified %d signatures in %d batches, want %d in 2", sigs, batches, count)
	}
	good := append(append([][]byte{}, txs[:bad]...), txs[bad+1:]...)
	for _, r := range c.Apply(t, good...) {
		wantCode(t, r, statepb.Code_CODE_OK)
	}
	if after, _ := state.SigStats(s); after != sigs {
		t.Fatalf("Apply verified %d signatures PrecheckAll had verified", after-sigs)
	}
	statetest.Audit(t, s)
}
