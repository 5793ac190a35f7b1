package state_test

import (
	"errors"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

func rotateBody(h statepb.KeyHolder, id string, key []byte) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_RotateKey{RotateKey: &statepb.RotateKey{Holder: h, Id: id, NewPublicKey: key}}}
}

// TestRotateKeysOldKeyRefused: after the central bank's, a bank's and a
// node's key are rotated, what the old key signs is refused
// (SIGNER_UNAUTHORIZED), the new key is accepted, and the node's member
// record carries its new key.
func TestRotateKeysOldKeyRefused(t *testing.T) {
	n := statetest.NewNet(t, "rotate")
	s := n.Open(t)
	c := statetest.NewChain(s)
	cb2, icbc2 := n.Key("cb-2"), n.Key("bank/icbc-2")
	mustAllOK(t, c.Apply(t,
		n.Sign(t, rotateBody(statepb.KeyHolder_KEY_HOLDER_BANK, "icbc", n.Pub("bank/icbc-2")), n.CentralBank(), icbc2),
		n.Sign(t, rotateBody(statepb.KeyHolder_KEY_HOLDER_NODE, "icbc", n.Pub("node/icbc-2")), n.CentralBank(), n.Key("node/icbc-2")),
		n.Sign(t, rotateBody(statepb.KeyHolder_KEY_HOLDER_CENTRAL_BANK, "", n.Pub("cb-2")), n.CentralBank(), cb2),
	))
	r := c.Apply(t,
		n.Sign(t, statetest.IssueBody("icbc", 100), n.CentralBank()),
		n.Register(t, "icbc", "alice", personal, 1, ""),
		n.Sign(t, statetest.IssueBody("icbc", 100), cb2),
		n.Sign(t, n.RegisterBody("icbc", "bob", personal, 1), icbc2),
	)
	wantCode(t, r[0], statepb.Code_CODE_SIGNER_UNAUTHORIZED)
	wantCode(t, r[1], statepb.Code_CODE_SIGNER_UNAUTHORIZED)
	wantCode(t, r[2], statepb.Code_CODE_OK)
	wantCode(t, r[3], statepb.Code_CODE_OK)
	members, err := s.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.GetName() == "icbc" && string(m.GetPublicKey()) != string(n.Pub("node/icbc-2")) {
			t.Fatalf("icbc's member record still has its old key")
		}
	}
	statetest.Audit(t, s)
}

// TestLedgerVersionStopsOldBuild: a store that runs only version 1 refuses
// the block at the index where version 2 activates, writing nothing of it;
// a store that runs version 2 applies it and version 2 is active.
func TestLedgerVersionStopsOldBuild(t *testing.T) {
	n := statetest.NewNet(t, "version")
	oldBuild := n.Open(t)
	newBuild := n.OpenWith(t, state.Options{MaxLedgerVersion: 2})
	co, cn := statetest.NewChain(oldBuild), statetest.NewChain(newBuild)
	act := n.Sign(t, &statepb.Tx{Kind: &statepb.Tx_ActivateVersion{ActivateVersion: &statepb.ActivateVersion{Version: 2, ActivateAtIndex: 3}}}, n.CentralBank())
	mustAllOK(t, co.Apply(t, act))
	mustAllOK(t, cn.Apply(t, act))
	issue := n.Sign(t, statetest.IssueBody("icbc", 100), n.CentralBank())
	mustAllOK(t, co.Apply(t, issue))
	mustAllOK(t, cn.Apply(t, n.Sign(t, statetest.IssueBody("icbc", 100), n.CentralBank())))
	before := oldBuild.Meta()
	_, err := oldBuild.Apply([]state.Block{{Index: 3, Term: 1, TimeMs: co.TimeMs + 1000}})
	if !errors.Is(err, state.ErrLedgerVersion) {
		t.Fatalf("old build applied the activation block: %v", err)
	}
	if after := oldBuild.Meta(); after.GetAppliedIndex() != before.GetAppliedIndex() || string(after.GetStateHash()) != string(before.GetStateHash()) {
		t.Fatalf("refused block changed the ledger: %d → %d", before.GetAppliedIndex(), after.GetAppliedIndex())
	}
	cn.Apply(t)
	v, err := newBuild.LedgerVersionSchedule()
	if err != nil || v.GetActive() != 2 || v.GetNext() != 0 {
		t.Fatalf("new build's version: %v, %v", v, err)
	}
}
