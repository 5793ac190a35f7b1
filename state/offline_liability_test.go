package state_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// Who pays (docs/offline.md): escrow, the payer, the bank's guarantee, the
// bank's reserve; a claim on the bank for the rest, paid as soon as the
// bank holds money; the payer's debt, repaid first from money it receives.

// bankAttack is the article's two-phone attack on a payer of bank at ¥0
// online: a ¥100 purse on phone, the device copied, ¥100 to bob from one
// copy and ¥100 to carol from the other; bob deposits first. The bank's
// guarantee holds guaranteeFen and its reserve reserveFen before it.
type bankAttack struct {
	payer, bank string
	cert        *statepb.PurseCert
	toCarol     *statepb.DepositItem
	hCarol      [32]byte
	incident    *statepb.Incident
}

func newBankAttack(t *testing.T, f *offFix, bank, payer string, guaranteeFen, reserveFen uint64) *bankAttack {
	t.Helper()
	mustAllOK(t, f.c.Apply(t, f.n.Register(t, bank, payer, personal, 1, "")))
	if guaranteeFen > 0 {
		f.c.Fund(t, f.n, bank, statetest.Guarantee(bank), guaranteeFen)
	}
	if reserveFen > 0 {
		f.c.MustOK(t, f.n.Issue(t, bank, reserveFen))
	}
	a := &bankAttack{payer: payer, bank: bank}
	a.cert = f.purse(t, payer+"-p", payer, payer+"-phone", 100*yuan, 100*yuan)
	toBob, _ := f.pay(t, payer+"-phone", a.cert, 1, nil, "bob-phone", 100*yuan, payer+"-bob")
	a.toCarol, a.hCarol = f.pay(t, payer+"-phone", a.cert, 1, nil, "carol-phone", 100*yuan, payer+"-carol")
	wantCode(t, f.deposit(t, "bob-phone", "bob", toBob), statepb.Code_CODE_OK)
	r := f.deposit(t, "carol-phone", "carol", a.toCarol)
	wantCode(t, r, statepb.Code_CODE_OK)
	inc, err := f.s.Incident(f.items(t, r)[0].GetIncidentId())
	if err != nil {
		t.Fatal(err)
	}
	a.incident = inc
	return a
}

// TestOfflineBankPays: with the payer at ¥0 online, the second payee is paid
// by the payer's bank: its guarantee, then its reserve; only what both lack
// is unpaid, a claim on the bank. Every figure is on the settlement, the
// incident and the payer's debt, and the books audit.
func TestOfflineBankPays(t *testing.T) {
	for _, tc := range []struct {
		name                               string
		guarantee, reserve                 uint64 // before the attack
		fromGuarantee, fromReserve, unpaid uint64
	}{
		{"the guarantee covers it", 500 * yuan, 0, 100 * yuan, 0, 0},
		{"the reserve backs a short guarantee", 30 * yuan, 500 * yuan, 30 * yuan, 70 * yuan, 0},
		{"both short: a claim on the bank", 10 * yuan, 50 * yuan, 10 * yuan, 50 * yuan, 40 * yuan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOffFix(t)
			a := newBankAttack(t, f, "abc", "eve", tc.guarantee, tc.reserve)
			wantBalance(t, f.s, "carol", 100*yuan-tc.unpaid)
			wantBalance(t, f.s, statetest.Guarantee("abc"), tc.guarantee-tc.fromGuarantee)
			wantBalance(t, f.s, statetest.Reserve("abc"), tc.reserve-tc.fromReserve)
			inc := a.incident
			status := statepb.IncidentStatus_INCIDENT_STATUS_SETTLED
			if tc.unpaid > 0 {
				status = statepb.IncidentStatus_INCIDENT_STATUS_UNDERFUNDED
			}
			if inc.GetFromPayerFen() != 0 || inc.GetFromGuaranteeFen() != tc.fromGuarantee || inc.GetFromReserveFen() != tc.fromReserve ||
				inc.GetUnpaidFen() != tc.unpaid || inc.GetDebtFen() != 100*yuan || inc.GetStatus() != status || inc.GetBankId() != "abc" {
				t.Fatalf("incident: %v", inc)
			}
			st, err := f.s.Settlement(a.hCarol[:])
			if err != nil || st.GetFromGuaranteeFen() != tc.fromGuarantee || st.GetFromReserveFen() != tc.fromReserve || st.GetUnpaidFen() != tc.unpaid ||
				st.GetBankId() != "abc" || (tc.unpaid > 0) != (st.GetClaimSeq() == 1) {
				t.Fatalf("settlement: %v %v", st, err)
			}
			d, err := f.s.OfflineDebt("eve")
			if err != nil || d.GetDebtFen() != 100*yuan || d.GetGuaranteeFen() != tc.fromGuarantee || d.GetReserveFen() != tc.fromReserve ||
				d.GetClaimedFen() != tc.unpaid || d.GetUnpaidFen() != tc.unpaid {
				t.Fatalf("debt: %v %v", d, err)
			}
			if w, _ := f.s.Wallet("eve"); w.GetOfflineDebtFen() != 100*yuan {
				t.Fatalf("eve's wallet: %v", w)
			}
			bo, err := f.s.BankOffline("abc")
			if err != nil || bo.GetClaimsOpenFen() != tc.unpaid || bo.GetExposureFen() != 100*yuan {
				t.Fatalf("bank record: %v %v", bo, err)
			}
			au := statetest.Audit(t, f.s)
			if au.OfflineDebtFen != 100*yuan || au.OfflineClaimsFen != tc.unpaid {
				t.Fatalf("audit: debts %d, claims %d", au.OfflineDebtFen, au.OfflineClaimsFen)
			}
			replay(t, f.s, f.n.Open(t))
		})
	}
}

// TestOfflineClaimPaidLater: a bank whose guarantee and reserve cannot pay
// an honest payee owes it a claim; it certifies no purse while it does
// (GUARANTEE_SHORT); the moment money reaches its reserve, the ledger pays
// the claim by itself in the next block (a recorded pay_offline_claims
// whose outputs are spendable), and the settlement, incident, claim and
// debt say so.
func TestOfflineClaimPaidLater(t *testing.T) {
	f := newOffFix(t)
	a := newBankAttack(t, f, "abc", "eve", 10*yuan, 0)
	wantBalance(t, f.s, "carol", 10*yuan)
	claims, err := f.s.OfflineClaims("abc", 0, 0)
	if err != nil || len(claims) != 1 || claims[0].GetOwedFen() != 90*yuan || claims[0].GetPaidFen() != 0 || claims[0].GetPayeeWalletId() != "carol" ||
		claims[0].GetPayerWalletId() != "eve" || claims[0].GetIncidentId() != a.incident.GetId() {
		t.Fatalf("claims: %v %v", claims, err)
	}
	if _, ok := f.s.NextDueMs(); ok && dueClaims(t, f) {
		t.Fatal("claims job scheduled for a bank that holds nothing")
	}
	// abc certifies nothing while it owes payees.
	mustAllOK(t, f.c.Apply(t, f.n.Register(t, "abc", "finn", personal, 1, "")))
	in := f.c.Fund(t, f.n, "abc", "finn", 100*yuan)
	spec := f.spec("f1", "abc", "finn", "finn-phone", 10*yuan)
	r := f.c.Apply(t, f.n.OpenPurse(t, "finn", ins(in), f.n.Cert(t, spec)))[0]
	wantCode(t, r, statepb.Code_CODE_GUARANTEE_SHORT)
	if !strings.Contains(r.GetMessage(), "owes payees 9000 fen on 1 unpaid offline claims") {
		t.Fatalf("message: %s", r.GetMessage())
	}

	// The central bank issues to abc: the claims job is due at once.
	f.c.MustOK(t, f.n.Issue(t, "abc", 1_000*yuan))
	if !dueClaims(t, f) {
		t.Fatal("a credit to the reserve did not wake the claims job")
	}
	statetest.Audit(t, f.s) // owing while holding money is fine while the job is due
	f.c.Apply(t)            // the next block (empty: nobody acts)
	wantBalance(t, f.s, "carol", 100*yuan)
	wantBalance(t, f.s, statetest.Reserve("abc"), 910*yuan)
	st, _ := f.s.Settlement(a.hCarol[:])
	if st.GetUnpaidFen() != 0 || st.GetPaidLaterFen() != 90*yuan || st.GetFromGuaranteeFen() != 10*yuan {
		t.Fatalf("settlement: %v", st)
	}
	inc, _ := f.s.Incident(a.incident.GetId())
	if inc.GetStatus() != statepb.IncidentStatus_INCIDENT_STATUS_PAID_LATE || inc.GetUnpaidFen() != 0 || inc.GetPaidLaterFen() != 90*yuan {
		t.Fatalf("incident: %v", inc)
	}
	claims, _ = f.s.OfflineClaims("abc", 0, 0)
	if claims[0].GetPaidFen() != 90*yuan || claims[0].GetPaidMs() == 0 || claims[0].GetPaidToWalletId() != "carol" {
		t.Fatalf("claim: %v", claims[0])
	}
	if d, _ := f.s.OfflineDebt("eve"); d.GetUnpaidFen() != 0 || d.GetDebtFen() != 100*yuan {
		t.Fatalf("eve still owes the bank all of it: %v", d)
	}
	if bo, _ := f.s.BankOffline("abc"); bo.GetClaimsOpen() != 0 || bo.GetClaimsOpenFen() != 0 || bo.GetClaimsPaidFen() != 90*yuan || bo.GetClaimsJobScheduled() {
		t.Fatalf("bank record: %v", bo)
	}
	// The payment is a recorded transaction: the reserve's change, then
	// carol's ¥90, which she can spend.
	id := state.PayClaimsTxID(f.n.Genesis.GetChainId(), "abc", 1)
	rec, err := f.s.OfflineTx(id[:])
	if err != nil || len(rec.GetOutputOwners()) != 2 || rec.GetOutputOwners()[0] != statetest.Reserve("abc") || rec.GetOutputOwners()[1] != "carol" {
		t.Fatalf("pay_offline_claims record: %v %v", rec, err)
	}
	f.c.MustOK(t, f.n.Transfer(t, "carol", ins(statetest.Out(id, 1)), statetest.Pay("bob", 90*yuan)))
	if dueClaims(t, f) {
		t.Fatal("claims job still scheduled")
	}
	// Solvent again, abc still needs guarantee cover to certify purses.
	r = f.c.Apply(t, f.n.OpenPurse(t, "finn", ins(in), f.n.Cert(t, spec)))[0]
	wantCode(t, r, statepb.Code_CODE_GUARANTEE_SHORT)
	if !strings.Contains(r.GetMessage(), "cover ratio of 1000 basis points") {
		t.Fatalf("message: %s", r.GetMessage())
	}
	f.c.Fund(t, f.n, "abc", statetest.Guarantee("abc"), 100*yuan)
	f.c.MustOK(t, f.n.OpenPurse(t, "finn", ins(in), f.n.Cert(t, spec)))
	statetest.Audit(t, f.s)
	replay(t, f.s, f.n.Open(t))
}

// dueClaims: a claims job is scheduled at or before ledger time.
func dueClaims(t *testing.T, f *offFix) bool {
	t.Helper()
	bo, err := f.s.BankOffline("abc")
	if err != nil {
		t.Fatal(err)
	}
	due, ok := f.s.NextDueMs()
	return bo.GetClaimsJobScheduled() && ok && due <= f.s.Meta().GetLedgerTimeMs()
}

// TestOfflineDebtRepaidFromIncoming: a payer's offline debt is repaid first
// from any money it later receives: right after the transfer (then the
// exchange) that brings it, the ledger records a collect_offline_debt
// moving the debt from the wallet to the bank's guarantee wallet.
func TestOfflineDebtRepaidFromIncoming(t *testing.T) {
	f := newOffFix(t)
	d := newDoubleSpend(t, f, 0)
	wantCode(t, f.deposit(t, "bob-phone", "bob", d.toBob), statepb.Code_CODE_OK)
	wantCode(t, f.deposit(t, "carol-phone", "carol", d.toCar), statepb.Code_CODE_OK)
	wantBalance(t, f.s, statetest.Guarantee("icbc"), 9_900*yuan)
	f.c.MustOK(t, f.n.Sign(t, statetest.UnfreezeBody("alice", "repaying"), f.n.Bank("icbc")))

	// bob pays alice ¥30: all of it repays.
	in := f.c.Fund(t, f.n, "icbc", "bob", 30*yuan)
	pay := f.c.MustOK(t, f.n.Transfer(t, "bob", ins(in), statetest.Pay("alice", 30*yuan)))
	wantBalance(t, f.s, "alice", 0)
	wantBalance(t, f.s, statetest.Guarantee("icbc"), 9_930*yuan)
	debt, _ := f.s.OfflineDebt("alice")
	if debt.GetDebtFen() != 70*yuan || debt.GetRepaidFen() != 30*yuan || debt.GetCollections() != 1 {
		t.Fatalf("debt after ¥30: %v", debt)
	}
	hist, _, err := f.s.History("alice", 0, 2)
	if err != nil || len(hist) != 2 || hist[0].GetKind() != "collect_offline_debt" || hist[0].GetOutFen() != 30*yuan ||
		hist[0].GetCounterparty() != statetest.Guarantee("icbc") || hist[1].GetKind() != "transfer" || hist[1].GetInFen() != 30*yuan {
		t.Fatalf("alice's history: %v %v", hist, err)
	}
	rec, err := f.s.Tx(hist[0].GetTxId())
	if err != nil || rec.GetResult().GetLogIndex() != pay.GetLogIndex() || rec.GetOutputCount() != 1 {
		t.Fatalf("collection record: %v %v", rec, err)
	}
	// An exchange of ¥500: ¥70 repays the rest, alice keeps ¥430.
	f.c.Fund(t, f.n, "icbc", "alice", 500*yuan)
	wantBalance(t, f.s, "alice", 430*yuan)
	wantBalance(t, f.s, statetest.Guarantee("icbc"), 10_000*yuan)
	debt, _ = f.s.OfflineDebt("alice")
	if debt.GetDebtFen() != 0 || debt.GetRepaidFen() != 100*yuan || debt.GetCollections() != 2 {
		t.Fatalf("debt after ¥500: %v", debt)
	}
	if w, _ := f.s.Wallet("alice"); w.GetOfflineDebtFen() != 0 {
		t.Fatalf("wallet: %v", w)
	}
	// The change of the collection is alice's, spendable.
	hist, _, _ = f.s.History("alice", 0, 1)
	change := statetest.Out([32]byte(hist[0].GetTxId()), 0)
	f.c.MustOK(t, f.n.Transfer(t, "alice", ins(change), statetest.Pay("bob", 430*yuan)))
	// No debt, no more collections.
	f.c.Fund(t, f.n, "icbc", "alice", 5*yuan)
	wantBalance(t, f.s, "alice", 5*yuan)
	statetest.Audit(t, f.s)
	replay(t, f.s, f.n.Open(t))
}

// TestOfflineGuaranteeCover: a purse opens only while the bank's guarantee
// covers its exposure (the amounts of its purses until their deadline,
// this one included) at the genesis cover ratio; closing a purse does not
// release its exposure (a copy of the device may still pay), its deadline
// does.
func TestOfflineGuaranteeCover(t *testing.T) {
	f := newOffFix(t)
	mustAllOK(t, f.c.Apply(t, f.n.Register(t, "ccb", "gus", personal, 1, "")))
	// No guarantee: nothing opens.
	in := f.c.Fund(t, f.n, "ccb", "gus", 2_000*yuan)
	r := f.c.Apply(t, f.n.OpenPurse(t, "gus", ins(in), f.n.Cert(t, f.spec("g0", "ccb", "gus", "gus-phone", 100*yuan))))[0]
	wantCode(t, r, statepb.Code_CODE_GUARANTEE_SHORT)
	if !strings.Contains(r.GetMessage(), `guarantee wallet "ccb.guarantee" holds 0 fen; its offline exposure with this purse, 10000 fen, needs 1000 fen`) {
		t.Fatalf("message: %s", r.GetMessage())
	}
	// ¥100 of guarantee covers ¥1,000 of purses at 10%.
	f.c.Fund(t, f.n, "ccb", statetest.Guarantee("ccb"), 100*yuan)
	first := f.purse(t, "g1", "gus", "gus-phone", 600*yuan, 600*yuan)
	second := f.purse(t, "g2", "gus", "gus-phone2", 400*yuan, 400*yuan)
	in = f.c.Fund(t, f.n, "ccb", "gus", 100*yuan)
	wantCode(t, f.c.Apply(t, f.n.OpenPurse(t, "gus", ins(in), f.n.Cert(t, f.spec("g3", "ccb", "gus", "gus-phone3", 1))))[0], statepb.Code_CODE_GUARANTEE_SHORT)
	if bo, _ := f.s.BankOffline("ccb"); bo.GetExposureFen() != 1_000*yuan || state.CoverNeededFen(bo.GetExposureFen(), 1_000) != 100*yuan {
		t.Fatalf("exposure: %v", bo)
	}
	// Closing the first purse returns its money, not its exposure.
	f.c.MustOK(t, f.n.ClosePurse(t, "gus-phone", purseIDOf(t, first), 0))
	wantCode(t, f.c.Apply(t, f.n.OpenPurse(t, "gus", ins(in), f.n.Cert(t, f.spec("g3", "ccb", "gus", "gus-phone3", 1))))[0], statepb.Code_CODE_GUARANTEE_SHORT)
	// Its deadline does; the closed purse is then expired.
	f.c.ApplyAt(t, f.purseRec(t, first).GetDeadlineMs())
	if p := f.purseRec(t, first); p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_EXPIRED {
		t.Fatalf("closed purse after its deadline: %v", p)
	}
	if bo, _ := f.s.BankOffline("ccb"); bo.GetExposureFen() != 400*yuan {
		t.Fatalf("exposure after the first deadline: %v", bo)
	}
	f.purse(t, "g4", "gus", "gus-phone4", 600*yuan, 600*yuan)
	f.c.ApplyAt(t, f.purseRec(t, second).GetDeadlineMs())
	if bo, _ := f.s.BankOffline("ccb"); bo.GetExposureFen() != 600*yuan {
		t.Fatalf("exposure after the second deadline: %v", bo)
	}
	statetest.Audit(t, f.s)
}

// TestOfflineBooksAudit: the supply audit catches offline books that do not
// add up, and a bank owing payees while it holds money with no payment of
// its claims scheduled (the promise broken).
func TestOfflineBooksAudit(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		tamper     func(t *testing.T, f *offFix, a *bankAttack) (string, proto.Message)
	}{
		{"a settlement that does not add up", "sources add up to", func(t *testing.T, f *offFix, a *bankAttack) (string, proto.Message) {
			s, _ := f.s.Settlement(a.hCarol[:])
			s.FromReserveFen++
			return "o:h" + string(a.hCarol[:]), s
		}},
		{"a bank record disagreeing with its claims", "offline record says", func(t *testing.T, f *offFix, a *bankAttack) (string, proto.Message) {
			bo, _ := f.s.BankOffline("abc")
			bo.ClaimsOpenFen--
			return "o:kabc", bo
		}},
		{"a bank owing payees while it holds money", "no payment of its claims is scheduled", func(t *testing.T, f *offFix, a *bankAttack) (string, proto.Message) {
			f.c.MustOK(t, f.n.Issue(t, "abc", 1_000*yuan)) // wakes the claims job
			bo, _ := f.s.BankOffline("abc")
			bo.ClaimsJobScheduled = false
			return "o:kabc", bo
		}},
		{"a wallet's debt disagreeing with its record", "its debt record says", func(t *testing.T, f *offFix, a *bankAttack) (string, proto.Message) {
			w, _ := f.s.Wallet("eve")
			w.OfflineDebtFen = 0
			return "w:eve", w
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOffFix(t)
			a := newBankAttack(t, f, "abc", "eve", 10*yuan, 0)
			statetest.Audit(t, f.s)
			key, rec := tc.tamper(t, f, a)
			raw, err := proto.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := state.SetRawForged(f.s, key, raw); err != nil {
				t.Fatal(err)
			}
			_, err = f.s.AuditSupply()
			if !errors.Is(err, state.ErrInvariant) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("audit: %v, want an invariant error saying %q", err, tc.want)
			}
		})
	}
}
