package state_test

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// fixture is a small funded network most tests start from:
//
//	icbc: alice (personal, tier 4, ¥3,000 + ¥2,000), bob (personal, tier 4,
//	      empty), frozen (tier 1, frozen), closed (tier 1, closed)
//	boc:  carol (personal, tier 1, ¥10,000), shop (merchant, tier 1, empty)
//
// and unspent reserve outputs of both banks.
type fixture struct {
	n *statetest.Net
	s *state.Store
	c *statetest.Chain

	aliceA, aliceB *statepb.Outpoint // ¥3,000 and ¥2,000 of alice
	carol          *statepb.Outpoint // ¥10,000 of carol
	icbcReserve    *statepb.Outpoint // ¥995,000 of icbc.reserve
	bocReserve     *statepb.Outpoint // ¥990,000 of boc.reserve
}

const tier4 = 4

func newFixture(t testing.TB) *fixture {
	t.Helper()
	n := statetest.NewNet(t, "fixture")
	return fixtureOn(t, n, n.Open(t))
}

// fixtureOn builds the fixture on s, a store with n's genesis and nothing
// applied. n must be fresh: its nonces make the fixture's transaction ids.
func fixtureOn(t testing.TB, n *statetest.Net, s *state.Store) *fixture {
	t.Helper()
	f := &fixture{n: n, s: s, c: statetest.NewChain(s)}
	icbcIssue, i1 := n.SignID(t, statetest.IssueBody("icbc", 1_000_000*yuan), n.CentralBank())
	bocIssue, i2 := n.SignID(t, statetest.IssueBody("boc", 1_000_000*yuan), n.CentralBank())
	mustAllOK(t, f.c.Apply(t, icbcIssue, bocIssue,
		n.Register(t, "icbc", "alice", personal, tier4, ""),
		n.Register(t, "icbc", "bob", personal, tier4, ""),
		n.Register(t, "icbc", "frozen", personal, 1, ""),
		n.Register(t, "icbc", "closed", personal, 1, ""),
		n.Register(t, "boc", "carol", personal, 1, "320500"),
		n.Register(t, "boc", "shop", merchant, 1, "320500"),
	))
	e1, e1ID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(i1, 0)}, "alice", 3000*yuan), n.Bank("icbc"))
	e2, e2ID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(e1ID, 1)}, "alice", 2000*yuan), n.Bank("icbc"))
	e3, e3ID := n.SignID(t, statetest.ExchangeBody("boc", []*statepb.Outpoint{statetest.Out(i2, 0)}, "carol", 10_000*yuan), n.Bank("boc"))
	mustAllOK(t, f.c.Apply(t, e1, e2, e3,
		n.Sign(t, statetest.FreezeBody("frozen", "court order 17"), n.Bank("icbc")),
		n.Sign(t, statetest.CloseBody("closed"), n.Bank("icbc")),
	))
	f.aliceA, f.aliceB, f.icbcReserve = statetest.Out(e1ID, 0), statetest.Out(e2ID, 0), statetest.Out(e2ID, 1)
	f.carol, f.bocReserve = statetest.Out(e3ID, 0), statetest.Out(e3ID, 1)
	return f
}

// ins is a list of outpoints.
func ins(ops ...*statepb.Outpoint) []*statepb.Outpoint { return ops }

// outOf is output index of the transaction with id in a result.
func outOf(r *statepb.TxResult, index uint32) *statepb.Outpoint {
	return &statepb.Outpoint{TxId: r.GetTxId(), Index: index}
}

// ledger is everything a test compares to prove a transaction changed
// nothing: every stored record, the audit and the wallets.
type ledger struct {
	kvs     []state.KV
	audit   state.Audit
	wallets []*statepb.WalletRecord
}

func snapshotLedger(t testing.TB, s *state.Store) ledger {
	t.Helper()
	kvs, err := state.DumpState(s)
	if err != nil {
		t.Fatal(err)
	}
	a := statetest.Audit(t, s)
	a.AppliedIndex = 0
	ws, err := s.Wallets("", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ledger{kvs, *a, ws}
}

// changedKeys lists the keys added, changed or deleted between two states,
// leaving out what every block writes (meta, hash index, block record).
func changedKeys(before, after []state.KV) []string {
	var out []string
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || i < len(before) && before[i].Key < after[j].Key:
			out = append(out, "-"+before[i].Key)
			i++
		case i == len(before) || after[j].Key < before[i].Key:
			out = append(out, "+"+after[j].Key)
			j++
		default:
			if before[i].Value != after[j].Value {
				out = append(out, "~"+after[j].Key)
			}
			i++
			j++
		}
	}
	kept := out[:0]
	for _, k := range out {
		if !state.Bookkeeping(k[1:]) {
			kept = append(kept, k)
		}
	}
	return kept
}

// wantUnchanged fails unless the only difference between before and after is
// the recorded outcome of the rejected transaction id (if recorded): its
// record and its message.
func wantUnchanged(t testing.TB, before, after ledger, id []byte, recorded bool) {
	t.Helper()
	got := changedKeys(before.kvs, after.kvs)
	var want []string
	if recorded {
		want = []string{"+" + state.KeyTx(id), "+" + state.KeyMessage(id)}
	}
	if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("rejected transaction changed ledger state: %q (want only %q)", got, want)
	}
	if !reflect.DeepEqual(before.audit, after.audit) {
		t.Fatalf("audit changed:\nbefore %+v\nafter  %+v", before.audit, after.audit)
	}
	if len(before.wallets) != len(after.wallets) {
		t.Fatalf("wallets: %d before, %d after", len(before.wallets), len(after.wallets))
	}
	for i := range before.wallets {
		if !proto.Equal(before.wallets[i], after.wallets[i]) {
			t.Fatalf("wallet changed:\nbefore %v\nafter  %v", before.wallets[i], after.wallets[i])
		}
	}
}

func wantCode(t testing.TB, r *statepb.TxResult, code statepb.Code) {
	t.Helper()
	if r.GetCode() != code {
		t.Fatalf("got %s (%q), want %s", r.GetCode().Short(), r.GetMessage(), code.Short())
	}
}

// txIDOf is the id of a serialized SignedTx, or nil if it does not decode.
func txIDOf(raw []byte) []byte {
	var stx statepb.SignedTx
	if proto.Unmarshal(raw, &stx) != nil || len(stx.GetBody()) == 0 {
		return nil
	}
	id := state.TxID(stx.GetBody())
	return id[:]
}
