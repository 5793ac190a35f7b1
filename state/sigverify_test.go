package state_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestBatchVerdictsEqualAlone: signatures are verified in batches, so a
// transaction's verdict must not depend on its neighbours. The same
// transactions, some with a bad signature, applied as one block (large
// batches, mostly failing) and one per block (alone) get the same codes and
// messages, and both stores end with the same supply.
func TestBatchVerdictsEqualAlone(t *testing.T) {
	n := statetest.NewNet(t, "batch")
	var txs [][]byte
	bad := map[int]bool{}
	for i := range 300 {
		raw := n.Issue(t, "icbc", uint64(i+1))
		if i%37 == 5 {
			raw = corruptSignature(t, raw, i)
			bad[i] = true
		}
		txs = append(txs, raw)
	}
	block := statetest.NewChain(n.Open(t))
	together := block.Apply(t, txs...)
	alone := statetest.NewChain(n.Open(t))
	for i, raw := range txs {
		a, b := together[i], alone.Apply(t, raw)[0]
		if a.GetCode() != b.GetCode() || a.GetMessage() != b.GetMessage() {
			t.Fatalf("tx %d: in a block %s %q, alone %s %q", i, a.GetCode().Short(), a.GetMessage(), b.GetCode().Short(), b.GetMessage())
		}
		want := statepb.Code_CODE_OK
		if bad[i] {
			want = statepb.Code_CODE_SIGNATURE_INVALID
		}
		if a.GetCode() != want {
			t.Fatalf("tx %d: %s %q, want %s", i, a.GetCode().Short(), a.GetMessage(), want.Short())
		}
		if bad[i] && !strings.Contains(a.GetMessage(), "signatures[0]") {
			t.Fatalf("tx %d: message %q does not name the signature", i, a.GetMessage())
		}
	}
	if len(bad) == 0 {
		t.Fatal("no bad signatures in the mix")
	}
	sa, sb := statetest.Audit(t, block.S), statetest.Audit(t, alone.S)
	if sa.IssuedFen != sb.IssuedFen || sa.IssuedFen == 0 {
		t.Fatalf("issued %d in a block, %d alone", sa.IssuedFen, sb.IssuedFen)
	}
}

// corruptSignature flips one bit of the first signature of raw.
func corruptSignature(t *testing.T, raw []byte, bit int) []byte {
	t.Helper()
	var stx statepb.SignedTx
	if err := proto.Unmarshal(raw, &stx); err != nil {
		t.Fatal(err)
	}
	stx.Signatures[0].Signature[bit%64] ^= 1 << (bit % 8)
	out, err := proto.Marshal(&stx)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDuplicateAcrossBlocksOfOneCall: Raft hands Apply several blocks at
// once; a transaction repeated in a later block of the same call is a
// duplicate with the first block's outcome (the committed-outcome lookup
// cannot see it yet: the call's own records must).
func TestDuplicateAcrossBlocksOfOneCall(t *testing.T) {
	n := statetest.NewNet(t, "dup-call")
	s := n.Open(t)
	issue := n.Issue(t, "icbc", 700)
	m := s.Meta()
	out, err := s.Apply([]state.Block{
		{Index: m.GetAppliedIndex() + 1, Term: 1, TimeMs: m.GetLedgerTimeMs() + 1000, Txs: [][]byte{issue}},
		{Index: m.GetAppliedIndex() + 2, Term: 1, TimeMs: m.GetLedgerTimeMs() + 2000, Txs: [][]byte{issue}},
	})
	if err != nil {
		t.Fatal(err)
	}
	first, again := out.Results[0][0], out.Results[1][0]
	if first.GetCode() != statepb.Code_CODE_OK || first.GetDuplicate() {
		t.Fatalf("first: %v", first)
	}
	if !again.GetDuplicate() || again.GetCode() != statepb.Code_CODE_OK || again.GetLogIndex() != first.GetLogIndex() {
		t.Fatalf("repeat in the next block of the call: %v", again)
	}
	if a := statetest.Audit(t, s); a.IssuedFen != 700 {
		t.Fatalf("issued %d, want 700 (once)", a.IssuedFen)
	}
}
