package state_test

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestAuthority: for each authority rule, outsiders signing a transaction
// are refused with SIGNER_UNAUTHORIZED and nothing is recorded, so the same
// body signed by the right keys still applies afterwards.
func TestAuthority(t *testing.T) {
	type keys = []ed25519.PrivateKey
	cases := []struct {
		name      string
		body      func(f *fixture) *statepb.Tx
		outsiders func(f *fixture) []keys
		legit     func(f *fixture) keys
	}{
		{
			"only the central bank issues",
			func(f *fixture) *statepb.Tx { return statetest.IssueBody("icbc", 100*yuan) },
			func(f *fixture) []keys { return []keys{{f.n.Bank("icbc")}, {f.n.Wallet("alice")}} },
			func(f *fixture) keys { return keys{f.n.CentralBank()} },
		},
		{
			"a return needs the bank and then the central bank",
			func(f *fixture) *statepb.Tx { return statetest.ReturnBody("icbc", ins(f.icbcReserve), 100*yuan) },
			func(f *fixture) []keys {
				return []keys{
					{f.n.Bank("boc"), f.n.CentralBank()},   // another bank
					{f.n.Bank("icbc"), f.n.Bank("boc")},    // no central bank
					{f.n.CentralBank(), f.n.Bank("icbc")},  // wrong order
					{f.n.Bank("icbc"), f.n.Bank("icbc")},   // the bank twice
					{f.n.CentralBank(), f.n.CentralBank()}, // the central bank alone
				}
			},
			func(f *fixture) keys { return keys{f.n.Bank("icbc"), f.n.CentralBank()} },
		},
		{
			"only the bank exchanges from its reserve",
			func(f *fixture) *statepb.Tx {
				return statetest.ExchangeBody("icbc", ins(f.icbcReserve), "bob", 100*yuan)
			},
			func(f *fixture) []keys { return []keys{{f.n.Bank("boc")}, {f.n.CentralBank()}, {f.n.Wallet("bob")}} },
			func(f *fixture) keys { return keys{f.n.Bank("icbc")} },
		},
		{
			"only the wallet's bank registers it",
			func(f *fixture) *statepb.Tx { return f.n.RegisterBody("icbc", "dora", personal, tier4) },
			func(f *fixture) []keys { return []keys{{f.n.Bank("boc")}, {f.n.CentralBank()}, {f.n.Wallet("dora")}} },
			func(f *fixture) keys { return keys{f.n.Bank("icbc")} },
		},
		{
			"only the wallet's bank updates it",
			func(f *fixture) *statepb.Tx { return statetest.UpdateBody("alice", 2, "110000", "", nil) },
			func(f *fixture) []keys { return []keys{{f.n.Bank("boc")}, {f.n.CentralBank()}, {f.n.Wallet("alice")}} },
			func(f *fixture) keys { return keys{f.n.Bank("icbc")} },
		},
		{
			"only the wallet's bank freezes it",
			func(f *fixture) *statepb.Tx { return statetest.FreezeBody("alice", "fraud report") },
			func(f *fixture) []keys { return []keys{{f.n.Bank("boc")}, {f.n.CentralBank()}, {f.n.Wallet("alice")}} },
			func(f *fixture) keys { return keys{f.n.Bank("icbc")} },
		},
		{
			"only the wallet's bank unfreezes it",
			func(f *fixture) *statepb.Tx { return statetest.UnfreezeBody("frozen", "cleared") },
			func(f *fixture) []keys { return []keys{{f.n.Bank("boc")}, {f.n.CentralBank()}, {f.n.Wallet("frozen")}} },
			func(f *fixture) keys { return keys{f.n.Bank("icbc")} },
		},
		{
			"only the wallet's bank rotates its key",
			func(f *fixture) *statepb.Tx { return statetest.RotateBody("alice", f.n.Pub("alice/new-phone")) },
			func(f *fixture) []keys { return []keys{{f.n.Bank("boc")}, {f.n.CentralBank()}, {f.n.Wallet("alice")}} },
			func(f *fixture) keys { return keys{f.n.Bank("icbc")} },
		},
		{
			"only the wallet's bank closes it",
			func(f *fixture) *statepb.Tx { return statetest.CloseBody("bob") },
			func(f *fixture) []keys { return []keys{{f.n.Bank("boc")}, {f.n.CentralBank()}, {f.n.Wallet("bob")}} },
			func(f *fixture) keys { return keys{f.n.Bank("icbc")} },
		},
		{
			"only the owner spends",
			func(f *fixture) *statepb.Tx {
				return statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", 100*yuan))
			},
			func(f *fixture) []keys {
				return []keys{{f.n.Wallet("bob")}, {f.n.Bank("icbc")}, {f.n.CentralBank()}}
			},
			func(f *fixture) keys { return keys{f.n.Wallet("alice")} },
		},
		{
			"only the owner redeems",
			func(f *fixture) *statepb.Tx { return statetest.RedeemBody("alice", ins(f.aliceA), 100*yuan) },
			func(f *fixture) []keys { return []keys{{f.n.Bank("icbc")}, {f.n.Wallet("bob")}} },
			func(f *fixture) keys { return keys{f.n.Wallet("alice")} },
		},
		{
			"only the central bank changes membership",
			func(f *fixture) *statepb.Tx { return f.n.AddMemberBody("hsbc", statepb.NodeRole_NODE_ROLE_VOTER) },
			func(f *fixture) []keys { return []keys{{f.n.Bank("icbc")}, {f.n.Key("node/pboc")}} },
			func(f *fixture) keys { return keys{f.n.CentralBank()} },
		},
		{
			"only the central bank removes a member",
			func(f *fixture) *statepb.Tx { return statetest.RemoveMemberBody("regulator") },
			func(f *fixture) []keys { return []keys{{f.n.Bank("icbc")}, {f.n.Key("node/regulator")}} },
			func(f *fixture) keys { return keys{f.n.CentralBank()} },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			body := tc.body(f)
			var id [32]byte
			for i, ks := range tc.outsiders(f) {
				raw, txID := f.n.SignID(t, body, ks...)
				if i > 0 && txID != id {
					t.Fatal("re-signing changed the body")
				}
				id = txID
				before := snapshotLedger(t, f.s)
				r := f.c.Apply(t, raw)[0]
				wantCode(t, r, statepb.Code_CODE_SIGNER_UNAUTHORIZED)
				wantUnchanged(t, before, snapshotLedger(t, f.s), id[:], false)
				if _, err := f.s.Tx(id[:]); !errors.Is(err, state.ErrNotFound) {
					t.Fatalf("outsider %d: outcome recorded (%v)", i, err)
				}
			}
			raw, txID := f.n.SignID(t, body, tc.legit(f)...)
			if txID != id {
				t.Fatal("legit signature changed the id")
			}
			wantCode(t, f.c.Apply(t, raw)[0], statepb.Code_CODE_OK)
			statetest.Audit(t, f.s)
		})
	}
}

// TestRotatedKey: after a key rotation the old key can no longer spend and
// the new one can, with no coin moved by the rotation; in one block, the
// rotation takes effect for the transactions after it.
func TestRotatedKey(t *testing.T) {
	f := newFixture(t)
	newKey := f.n.Key("alice/new-phone")
	pay := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", 100*yuan))
	oldSigned, id := f.n.SignID(t, pay, f.n.Wallet("alice"))
	newSigned, _ := f.n.SignID(t, pay, newKey)
	before := snapshotLedger(t, f.s)
	// New key before the rotation: refused. Rotation. Old key: refused.
	// New key: applies.
	res := f.c.Apply(t, newSigned,
		f.n.Sign(t, statetest.RotateBody("alice", newKey.Public().(ed25519.PublicKey)), f.n.Bank("icbc")),
		oldSigned, newSigned)
	wantCode(t, res[0], statepb.Code_CODE_SIGNER_UNAUTHORIZED)
	wantCode(t, res[1], statepb.Code_CODE_OK)
	wantCode(t, res[2], statepb.Code_CODE_SIGNER_UNAUTHORIZED)
	wantCode(t, res[3], statepb.Code_CODE_OK)
	if string(res[3].GetTxId()) != string(id[:]) {
		t.Fatal("id depends on the signer")
	}
	wantBalance(t, f.s, "alice", 4900*yuan)
	wantBalance(t, f.s, "bob", 100*yuan)
	if before.audit.UnspentFen != statetest.Audit(t, f.s).UnspentFen {
		t.Fatal("rotation moved money")
	}
	// The old key stays refused in later blocks.
	later := f.n.Transfer(t, "alice", ins(f.aliceB), statetest.Pay("bob", yuan))
	wantCode(t, f.c.Apply(t, later)[0], statepb.Code_CODE_SIGNER_UNAUTHORIZED)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.TransferBody("alice", ins(f.aliceB), statetest.Pay("bob", yuan)), newKey))[0], statepb.Code_CODE_OK)
}

// TestFrozenAndClosedWallets walks a wallet through freeze, unfreeze and
// close, checking it can neither pay nor be paid while frozen or closed and
// that its coins stay put.
func TestFrozenAndClosedWallets(t *testing.T) {
	f := newFixture(t)
	icbc := f.n.Bank("icbc")
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.FreezeBody("alice", "lost phone"), icbc))[0], statepb.Code_CODE_OK)
	w, _ := f.s.Wallet("alice")
	if w.GetStatus() != statepb.WalletStatus_WALLET_STATUS_FROZEN || w.GetStatusReason() != "lost phone" || w.GetBalanceFen() != 5000*yuan {
		t.Fatalf("frozen wallet: %v", w)
	}
	wantCode(t, f.c.Apply(t, f.n.Transfer(t, "alice", ins(f.aliceA), statetest.Pay("bob", yuan)))[0], statepb.Code_CODE_WALLET_FROZEN)
	wantCode(t, f.c.Apply(t, f.n.Transfer(t, "carol", ins(f.carol), statetest.Pay("alice", yuan)))[0], statepb.Code_CODE_PAYEE_FROZEN)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.RedeemBody("alice", ins(f.aliceA), yuan), f.n.Wallet("alice")))[0], statepb.Code_CODE_WALLET_FROZEN)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.UnfreezeBody("alice", "found it"), icbc))[0], statepb.Code_CODE_OK)
	// Redeem everything, then close.
	r := f.c.Apply(t, f.n.Sign(t, statetest.RedeemBody("alice", ins(f.aliceA, f.aliceB), 5000*yuan), f.n.Wallet("alice")))[0]
	wantCode(t, r, statepb.Code_CODE_OK)
	wantBalance(t, f.s, "alice", 0)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.CloseBody("alice"), icbc))[0], statepb.Code_CODE_OK)
	wantCode(t, f.c.Apply(t, f.n.Transfer(t, "carol", ins(f.carol), statetest.Pay("alice", yuan)))[0], statepb.Code_CODE_PAYEE_CLOSED)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.UnfreezeBody("alice", ""), icbc))[0], statepb.Code_CODE_WALLET_CLOSED)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.CloseBody("alice"), icbc))[0], statepb.Code_CODE_WALLET_CLOSED)
	wantCode(t, f.c.Apply(t, f.n.Register(t, "icbc", "alice", personal, tier4, ""))[0], statepb.Code_CODE_WALLET_EXISTS)
	statetest.Audit(t, f.s)
}

// TestMembership adds a regulator and removes voters down to the last one.
func TestMembership(t *testing.T) {
	f := newFixture(t)
	pboc := f.n.CentralBank()
	v0 := f.s.MembershipVersion()
	out, err := f.s.Apply([]state.Block{{Index: f.c.Index + 1, TimeMs: f.c.TimeMs + 1000, Txs: [][]byte{
		f.n.Sign(t, f.n.AddMemberBody("regulator-2", statepb.NodeRole_NODE_ROLE_REGULATOR), pboc),
	}}})
	f.c.Index++
	if err != nil || !out.MembershipChanged || out.Results[0][0].GetCode() != statepb.Code_CODE_OK || f.s.MembershipVersion() == v0 {
		t.Fatalf("add: %v %v", out, err)
	}
	members, err := f.s.Members()
	if err != nil || len(members) != 9 {
		t.Fatalf("members: %d, %v", len(members), err)
	}
	for _, name := range []string{"regulator", "pboc", "icbc", "abc", "boc", "ccb"} {
		wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.RemoveMemberBody(name), pboc))[0], statepb.Code_CODE_OK)
	}
	// bocom and psbc are left, with regulator-2.
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.RemoveMemberBody("bocom"), pboc))[0], statepb.Code_CODE_OK)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.RemoveMemberBody("psbc"), pboc))[0], statepb.Code_CODE_MEMBER_LAST_VOTER)
	wantCode(t, f.c.Apply(t, f.n.Sign(t, statetest.RemoveMemberBody("regulator-2"), pboc))[0], statepb.Code_CODE_OK)
	members, _ = f.s.Members()
	if len(members) != 1 || members[0].GetName() != "psbc" {
		t.Fatalf("members: %v", members)
	}
	// A rejected change does not report a membership change.
	v := f.s.MembershipVersion()
	out, err = f.s.Apply([]state.Block{{Index: f.c.Index + 1, TimeMs: f.c.TimeMs + 1000, Txs: [][]byte{
		f.n.Sign(t, statetest.RemoveMemberBody("psbc"), pboc),
	}}})
	if err != nil || out.MembershipChanged || f.s.MembershipVersion() != v {
		t.Fatalf("rejected change reported as a change: %v %v", out, err)
	}
}
