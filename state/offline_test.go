package state_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// offFix is a funded network with offline purses enabled, under a 10%
// guarantee cover ratio (offPolicy):
//
//	icbc: alice (personal, tier 1), bob and carol (personal, tier 4, empty),
//	      shop (merchant, tier 2, empty), the guarantee wallet (¥10,000)
//	boc:  dave (personal, tier 1), the guarantee wallet (¥10,000)
//
// Every reserve is empty (Fund exchanges all it issues), so a bank pays
// offline shortfalls from its guarantee only unless a test funds its
// reserve.
//
// Devices are named like their owners ("alice-phone", ...).
type offFix struct {
	n *statetest.Net
	s *state.Store
	c *statetest.Chain
}

func newOffFix(t testing.TB) *offFix {
	t.Helper()
	n := statetest.NewNet(t, "offline")
	n.EnableOffline(t, offPolicy())
	f := &offFix{n: n, s: n.Open(t)}
	f.c = statetest.NewChain(f.s)
	mustAllOK(t, f.c.Apply(t,
		n.Register(t, "icbc", "alice", personal, 1, ""),
		n.Register(t, "icbc", "bob", personal, tier4, ""),
		n.Register(t, "icbc", "carol", personal, tier4, ""),
		n.Register(t, "icbc", "shop", merchant, 2, "320500"),
		n.Register(t, "boc", "dave", personal, 1, ""),
	))
	f.c.Fund(t, n, "icbc", statetest.Guarantee("icbc"), 10_000*yuan)
	f.c.Fund(t, n, "boc", statetest.Guarantee("boc"), 10_000*yuan)
	return f
}

// offPolicy is the default test policy with a 10% guarantee cover ratio.
func offPolicy() *statepb.OfflinePolicy {
	p := statetest.OfflinePolicy()
	p.GuaranteeCoverBps = 1_000
	return p
}

// purse opens a purse of amount for wallet on device, funded by a fresh
// exchange of fund, and returns its certificate.
func (f *offFix) purse(t testing.TB, name, wallet, device string, fund, amount uint64) *statepb.PurseCert {
	t.Helper()
	w, err := f.s.Wallet(wallet)
	if err != nil {
		t.Fatal(err)
	}
	in := f.c.Fund(t, f.n, w.GetBankId(), wallet, fund)
	cert := f.n.Cert(t, f.spec(name, w.GetBankId(), wallet, device, amount))
	f.c.MustOK(t, f.n.OpenPurse(t, wallet, ins(in), cert))
	return cert
}

func (f *offFix) spec(name, bank, wallet, device string, amount uint64) statetest.Purse {
	return statetest.Purse{
		Name: name, Bank: bank, Wallet: wallet, Device: device, AmountFen: amount,
		MaxPaymentFen: min(amount, 2_000*yuan), MaxPayments: 10, NotAfterMs: f.c.TimeMs + 24*3600*1000,
	}
}

// pay is a payment from device under cert to payee's device, answering a
// fresh request.
func (f *offFix) pay(t testing.TB, device string, cert *statepb.PurseCert, counter uint32, prev []byte, payee string, fen uint64, tag string) (*statepb.DepositItem, [32]byte) {
	t.Helper()
	req := f.n.Request(payee, fen, tag)
	p, h := f.n.Payment(t, statetest.OfflinePay{Device: device, Cert: cert, Counter: counter, Prev: prev, Req: req})
	return statetest.Item(p, req), h
}

func (f *offFix) deposit(t testing.TB, device, wallet string, items ...*statepb.DepositItem) *statepb.TxResult {
	t.Helper()
	return f.c.Apply(t, f.n.Deposit(t, device, wallet, items...))[0]
}

func (f *offFix) purseRec(t testing.TB, cert *statepb.PurseCert) *statepb.PurseRecord {
	t.Helper()
	p, err := f.s.Purse(purseIDOf(t, cert))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func purseIDOf(t testing.TB, c *statepb.PurseCert) []byte {
	var b statepb.PurseCertBody
	if err := proto.Unmarshal(c.GetBody(), &b); err != nil {
		t.Fatal(err)
	}
	return b.GetPurseId()
}

func (f *offFix) items(t testing.TB, r *statepb.TxResult) []*statepb.DepositItemResult {
	t.Helper()
	rec, err := f.s.OfflineTx(r.GetTxId())
	if err != nil {
		t.Fatalf("offline record of %x: %v", r.GetTxId(), err)
	}
	return rec.GetItems()
}

func wantEscrow(t testing.TB, s *state.Store, fen uint64) {
	t.Helper()
	a := statetest.Audit(t, s)
	if a.OfflineEscrowFen != fen {
		t.Fatalf("offline escrow %d, want %d", a.OfflineEscrowFen, fen)
	}
}

// TestOfflineOpenPurse: opening a purse moves the amount from the wallet
// into escrow (supply invariant: outputs + escrow), counts it against the
// day's spending, records the purse and schedules its expiry.
func TestOfflineOpenPurse(t *testing.T) {
	f := newOffFix(t)
	cert := f.purse(t, "p1", "alice", "alice-phone", 300*yuan, 100*yuan)
	wantBalance(t, f.s, "alice", 200*yuan)
	wantEscrow(t, f.s, 100*yuan)
	p := f.purseRec(t, cert)
	if p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_OPEN || p.GetEscrowFen() != 100*yuan || p.GetWalletId() != "alice" ||
		!bytes.Equal(p.GetDevicePublicKey(), f.n.DevicePub("alice-phone")) || p.GetDeadlineMs() != p.GetNotAfterMs()+statetest.OfflinePolicy().GetGraceMs() {
		t.Fatalf("purse: %v", p)
	}
	if due, ok := f.s.NextDueMs(); !ok || due != p.GetDeadlineMs() {
		t.Fatalf("expiry not scheduled: %d %v", due, ok)
	}
	w, _ := f.s.Wallet("alice")
	if w.GetSpentDayFen() != 100*yuan {
		t.Fatalf("purse not counted against the day: %d", w.GetSpentDayFen())
	}
	sup, _ := f.s.Supply()
	if sup.GetOfflineEscrowFen() != 100*yuan {
		t.Fatalf("supply: %v", sup)
	}
	for _, b := range statetest.Audit(t, f.s).Banks {
		if want := map[bool]uint64{true: 100 * yuan}[b.BankID == "icbc"]; b.OfflineEscrowFen != want {
			t.Fatalf("bank %s: offline escrow %d, want %d", b.BankID, b.OfflineEscrowFen, want)
		}
	}
}

// doubleSpend is the reported case at ledger level: alice loads ¥100 to a
// phone, the device file is copied to a second phone, and each phone pays
// ¥100 with counter 1 (bob from one, carol from the other).
type doubleSpend struct {
	cert         *statepb.PurseCert
	toBob, toCar *statepb.DepositItem
	hBob, hCar   [32]byte
}

func newDoubleSpend(t *testing.T, f *offFix, aliceOnline uint64) *doubleSpend {
	d := &doubleSpend{}
	d.cert = f.purse(t, "p1", "alice", "alice-phone", 100*yuan+aliceOnline, 100*yuan)
	d.toBob, d.hBob = f.pay(t, "alice-phone", d.cert, 1, nil, "bob-phone", 100*yuan, "bob")
	d.toCar, d.hCar = f.pay(t, "alice-phone", d.cert, 1, nil, "carol-phone", 100*yuan, "carol") // the clone
	return d
}

// TestOfflineDoubleSpend: whichever payee deposits first, both get ¥100;
// one incident with both signed payments; alice frozen, the device revoked;
// the ¥100 shortfall comes from alice's online funds, or from icbc's
// guarantee when she has none (then her debt is recorded); the supply
// invariant holds; two stores fed the same blocks agree.
func TestOfflineDoubleSpend(t *testing.T) {
	for _, tc := range []struct {
		name      string
		online    uint64
		bobFirst  bool
		guarantee uint64 // what the guarantee pays
	}{
		{"bob first, from alice's funds", 500 * yuan, true, 0},
		{"carol first, from alice's funds", 500 * yuan, false, 0},
		{"bob first, from the guarantee", 0, true, 100 * yuan},
		{"carol first, from the guarantee", 0, false, 100 * yuan},
		{"partly alice, partly the guarantee", 30 * yuan, true, 70 * yuan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOffFix(t)
			d := newDoubleSpend(t, f, tc.online)
			first, second := "bob", "carol"
			firstItem, secondItem, firstHash := d.toBob, d.toCar, d.hBob
			if !tc.bobFirst {
				first, second = second, first
				firstItem, secondItem, firstHash = d.toCar, d.toBob, d.hCar
			}
			r1 := f.deposit(t, first+"-phone", first, firstItem)
			wantCode(t, r1, statepb.Code_CODE_OK)
			if it := f.items(t, r1); it[0].GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_SETTLED || it[0].GetCreditedFen() != 100*yuan {
				t.Fatalf("first deposit: %v", it)
			}
			wantEscrow(t, f.s, 0)
			r2 := f.deposit(t, second+"-phone", second, secondItem)
			wantCode(t, r2, statepb.Code_CODE_OK)
			it := f.items(t, r2)[0]
			if it.GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_INCIDENT || it.GetCreditedFen() != 100*yuan || it.GetIncidentId() != 1 {
				t.Fatalf("second deposit: %v", it)
			}
			wantBalance(t, f.s, "bob", 100*yuan)
			wantBalance(t, f.s, "carol", 100*yuan)
			fromAlice := 100*yuan - tc.guarantee
			wantBalance(t, f.s, "alice", tc.online-fromAlice)
			wantBalance(t, f.s, statetest.Guarantee("icbc"), 10_000*yuan-tc.guarantee)

			incs, err := f.s.Incidents(0, 0)
			if err != nil || len(incs) != 1 {
				t.Fatalf("incidents: %v %v", incs, err)
			}
			inc := incs[0]
			if inc.GetKind() != statepb.IncidentKind_INCIDENT_KIND_SAME_COUNTER || inc.GetPayerWalletId() != "alice" ||
				inc.GetFirstPayeeWalletId() != first || inc.GetSecondPayeeWalletId() != second ||
				inc.GetFromEscrowFen() != 0 || inc.GetFromPayerFen() != fromAlice || inc.GetFromGuaranteeFen() != tc.guarantee ||
				inc.GetDebtFen() != tc.guarantee || inc.GetUnpaidFen() != 0 || inc.GetStatus() != statepb.IncidentStatus_INCIDENT_STATUS_SETTLED ||
				!inc.GetFrozeWallet() || inc.GetRevocationIndex() != 1 {
				t.Fatalf("incident: %v", inc)
			}
			// Both payments are the proof: both verify as signed by the
			// device, same purse and counter, different bodies.
			checkProof(t, f, inc, firstHash)

			w, _ := f.s.Wallet("alice")
			if w.GetStatus() != statepb.WalletStatus_WALLET_STATUS_FROZEN {
				t.Fatalf("alice: %v", w)
			}
			revs, _ := f.s.Revocations(0, 0)
			if len(revs) != 1 || !bytes.Equal(revs[0].GetDevicePublicKey(), f.n.DevicePub("alice-phone")) || revs[0].GetIncidentId() != 1 {
				t.Fatalf("revocations: %v", revs)
			}
			debt, err := f.s.OfflineDebt("alice")
			switch {
			case tc.guarantee == 0 && !errors.Is(err, state.ErrNotFound):
				t.Fatalf("debt without guarantee: %v %v", debt, err)
			case tc.guarantee > 0 && (err != nil || debt.GetDebtFen() != tc.guarantee || debt.GetBankId() != "icbc"):
				t.Fatalf("debt: %v %v", debt, err)
			}
			p := f.purseRec(t, d.cert)
			if p.GetSettledFen() != 200*yuan || p.GetSettledCount() != 2 || p.GetIncidents() != 1 || p.GetEscrowFen() != 0 {
				t.Fatalf("purse: %v", p)
			}
			wantEscrow(t, f.s, 0)

			// The same ledger on another store: same state hash.
			other := f.n.Open(t)
			replay(t, f.s, other)
		})
	}
}

// checkProof checks an incident's two payments: both signed by the purse's
// device, for the same purse (and counter, for SAME_COUNTER), different.
func checkProof(t testing.TB, f *offFix, inc *statepb.Incident, firstHash [32]byte) {
	t.Helper()
	net := f.n.Offline()
	var bodies []*statepb.PaymentBody
	for _, raw := range [][]byte{inc.GetFirstPayment(), inc.GetSecondPayment()} {
		var p statepb.Payment
		if err := proto.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		d, err := decodeVerified(net, &p)
		if err != nil {
			t.Fatalf("proof payment does not verify: %v", err)
		}
		if !bytes.Equal(d.Cert.GetDevicePublicKey(), inc.GetDevicePublicKey()) {
			t.Fatal("proof payment of another device")
		}
		bodies = append(bodies, d.Body)
	}
	if !bytes.Equal(bodies[0].GetPurseId(), bodies[1].GetPurseId()) || proto.Equal(bodies[0], bodies[1]) {
		t.Fatal("proof payments: not two different payments of one purse")
	}
	if inc.GetKind() == statepb.IncidentKind_INCIDENT_KIND_SAME_COUNTER && bodies[0].GetCounter() != bodies[1].GetCounter() {
		t.Fatal("same-counter proof with different counters")
	}
	var p statepb.Payment
	_ = proto.Unmarshal(inc.GetFirstPayment(), &p)
	if h := hashOf(p.GetBody()); h != firstHash {
		t.Fatalf("first payment %x, want %x", h[:6], firstHash[:6])
	}
}

// replay applies every block of src to dst and checks they end equal.
func replay(t testing.TB, src, dst *state.Store) {
	t.Helper()
	var blocks []state.Block
	for i := uint64(1); i <= src.Meta().GetAppliedIndex(); i++ {
		br, err := src.BlockAt(i)
		if err != nil {
			continue
		}
		var txs [][]byte
		for _, r := range br.GetResults() {
			rec, err := src.Tx(r.GetTxId())
			if err != nil || r.GetDuplicate() {
				// Unrecorded rejections carry no bytes to replay; skip.
				continue
			}
			txs = append(txs, rec.GetSignedTx())
		}
		blocks = append(blocks, state.Block{Index: i, Term: 1, TimeMs: br.GetTimeMs(), Txs: txs})
	}
	if _, err := dst.Apply(blocks); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src.Meta().GetStateHash(), dst.Meta().GetStateHash()) {
		t.Fatalf("state hashes differ: %x vs %x", src.Meta().GetStateHash()[:6], dst.Meta().GetStateHash()[:6])
	}
	statetest.Audit(t, dst)
}

// TestOfflineOverAmount: payments with distinct counters whose total passes
// the purse's amount are a double spend too; the first payments settle from
// escrow, the one that passes it is an incident paid from alice's funds.
func TestOfflineOverAmount(t *testing.T) {
	f := newOffFix(t)
	cert := f.purse(t, "p1", "alice", "alice-phone", 400*yuan, 100*yuan)
	i1, h1 := f.pay(t, "alice-phone", cert, 1, nil, "bob-phone", 60*yuan, "a")
	i2, _ := f.pay(t, "alice-phone", cert, 2, h1[:], "carol-phone", 30*yuan, "b")
	i3, _ := f.pay(t, "alice-phone", cert, 3, nil, "shop-till", 50*yuan, "c") // a clone's, past the amount
	wantCode(t, f.deposit(t, "bob-phone", "bob", i1), statepb.Code_CODE_OK)
	wantCode(t, f.deposit(t, "carol-phone", "carol", i2), statepb.Code_CODE_OK)
	r := f.deposit(t, "shop-till", "shop", i3)
	wantCode(t, r, statepb.Code_CODE_OK)
	it := f.items(t, r)[0]
	if it.GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_INCIDENT {
		t.Fatalf("item: %v", it)
	}
	inc, err := f.s.Incident(it.GetIncidentId())
	if err != nil || inc.GetKind() != statepb.IncidentKind_INCIDENT_KIND_OVER_AMOUNT || inc.GetFromEscrowFen() != 10*yuan || inc.GetFromPayerFen() != 40*yuan {
		t.Fatalf("incident: %v %v", inc, err)
	}
	wantBalance(t, f.s, "shop", 50*yuan)
	wantBalance(t, f.s, "alice", 260*yuan)
	wantEscrow(t, f.s, 0)
}

// TestOfflineReplay: the same deposit transaction again is a duplicate; the
// same payment in a new deposit is refused PAYMENT_REPLAYED (recorded)
// pointing at the first; a deposit mixing a replayed and a new payment
// settles the new one and reports the old one REPLAYED; nothing is paid
// twice.
func TestOfflineReplay(t *testing.T) {
	f := newOffFix(t)
	cert := f.purse(t, "p1", "alice", "alice-phone", 100*yuan, 100*yuan)
	i1, h1 := f.pay(t, "alice-phone", cert, 1, nil, "bob-phone", 10*yuan, "a")
	i2, _ := f.pay(t, "alice-phone", cert, 2, h1[:], "bob-phone", 20*yuan, "b")
	dep := f.n.Deposit(t, "bob-phone", "bob", i1)
	first := f.c.Apply(t, dep)[0]
	wantCode(t, first, statepb.Code_CODE_OK)
	again := f.c.Apply(t, dep)[0]
	if !again.GetDuplicate() || again.GetLogIndex() != first.GetLogIndex() {
		t.Fatalf("same deposit again: %v", again)
	}
	r := f.deposit(t, "bob-phone", "bob", i1)
	wantCode(t, r, statepb.Code_CODE_PAYMENT_REPLAYED)
	if rec, err := f.s.Tx(r.GetTxId()); err != nil || rec.GetResult().GetCode() != statepb.Code_CODE_PAYMENT_REPLAYED {
		t.Fatalf("replay not recorded: %v", err)
	}
	mixed := f.deposit(t, "bob-phone", "bob", i1, i2)
	wantCode(t, mixed, statepb.Code_CODE_OK)
	its := f.items(t, mixed)
	if its[0].GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_REPLAYED || !bytes.Equal(its[0].GetFirstDepositTxId(), first.GetTxId()) ||
		its[1].GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_SETTLED {
		t.Fatalf("mixed: %v", its)
	}
	wantBalance(t, f.s, "bob", 30*yuan)
	wantEscrow(t, f.s, 70*yuan)
	if incs, _ := f.s.Incidents(0, 0); len(incs) != 0 {
		t.Fatalf("a replay is not an incident: %v", incs)
	}
}

// TestOfflineTornPaymentAtClose: the device paid three times; it holds
// receipts for 1 and 2 (2 deposited already), 3 is torn (no receipt). At
// close the rest, including 3's amount, returns to alice at once, and 1's
// amount stays reserved. 1 then settles from the reserve; 3 deposited
// later is honoured from alice's funds, not an incident; a payment above
// the final counter is one.
func TestOfflineTornPaymentAtClose(t *testing.T) {
	f := newOffFix(t)
	cert := f.purse(t, "p1", "alice", "alice-phone", 300*yuan, 100*yuan)
	purse := purseIDOf(t, cert)
	i1, h1 := f.pay(t, "alice-phone", cert, 1, nil, "bob-phone", 10*yuan, "a")
	i2, h2 := f.pay(t, "alice-phone", cert, 2, h1[:], "carol-phone", 20*yuan, "b")
	i3, h3 := f.pay(t, "alice-phone", cert, 3, h2[:], "shop-till", 30*yuan, "c")
	wantCode(t, f.deposit(t, "carol-phone", "carol", i2), statepb.Code_CODE_OK)
	r := f.c.Apply(t, f.n.ClosePurse(t, "alice-phone", purse, 3,
		&statepb.ReservedPayment{Counter: 1, AmountFen: 10 * yuan, PaymentHash: h1[:]},
		&statepb.ReservedPayment{Counter: 2, AmountFen: 20 * yuan, PaymentHash: h2[:]},
	))[0]
	wantCode(t, r, statepb.Code_CODE_OK)
	// escrow 100 − 20 (deposited) = 80; 10 reserved for bob; 70 back.
	wantBalance(t, f.s, "alice", 200*yuan+70*yuan)
	wantEscrow(t, f.s, 10*yuan)
	p := f.purseRec(t, cert)
	if p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_CLOSED || p.GetFinalCounter() != 3 || len(p.GetReserved()) != 1 || p.GetReturnedFen() != 70*yuan {
		t.Fatalf("closed purse: %v", p)
	}
	wantCode(t, f.deposit(t, "bob-phone", "bob", i1), statepb.Code_CODE_OK)
	wantBalance(t, f.s, "bob", 10*yuan)
	wantEscrow(t, f.s, 0)
	rt := f.deposit(t, "shop-till", "shop", i3)
	wantCode(t, rt, statepb.Code_CODE_OK)
	if it := f.items(t, rt)[0]; it.GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_TORN || it.GetCreditedFen() != 30*yuan {
		t.Fatalf("torn payment: %v", it)
	}
	st, err := f.s.Settlement(h3[:])
	if err != nil || !st.GetTorn() || st.GetFromPayerFen() != 30*yuan || st.GetIncidentId() != 0 {
		t.Fatalf("torn settlement: %v %v", st, err)
	}
	wantBalance(t, f.s, "shop", 30*yuan)
	wantBalance(t, f.s, "alice", 240*yuan)
	if incs, _ := f.s.Incidents(0, 0); len(incs) != 0 {
		t.Fatalf("torn payment made an incident: %v", incs)
	}
	w, _ := f.s.Wallet("alice")
	if w.GetStatus() != statepb.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatal("alice frozen for a torn payment")
	}
	// Counter 4 after a signed close at 3: a double spend.
	i4, _ := f.pay(t, "alice-phone", cert, 4, h3[:], "dave-phone", 5*yuan, "d")
	r4 := f.deposit(t, "dave-phone", "dave", i4)
	wantCode(t, r4, statepb.Code_CODE_OK)
	inc, err := f.s.Incident(f.items(t, r4)[0].GetIncidentId())
	if err != nil || inc.GetKind() != statepb.IncidentKind_INCIDENT_KIND_ABOVE_FINAL_COUNTER || !bytes.Equal(inc.GetCloseTxId(), r.GetTxId()) {
		t.Fatalf("above final: %v %v", inc, err)
	}
	wantBalance(t, f.s, "dave", 5*yuan)
	statetest.Audit(t, f.s)
}

// TestOfflineExpiry: at not_after + grace the rest returns to the wallet
// with no transaction submitted (a recorded expire_purse whose output is
// spendable), first repaying the wallet's offline debt to the guarantee;
// deposits after that are refused CERT_EXPIRED.
func TestOfflineExpiry(t *testing.T) {
	f := newOffFix(t)
	// A purse on a second phone first, paying once.
	cert := f.purse(t, "p2", "alice", "alice-phone2", 300*yuan, 300*yuan)
	i1, _ := f.pay(t, "alice-phone2", cert, 1, nil, "bob-phone", 20*yuan, "x")
	wantCode(t, f.deposit(t, "bob-phone", "bob", i1), statepb.Code_CODE_OK)
	late, _ := f.pay(t, "alice-phone2", cert, 2, nil, "carol-phone", 5*yuan, "y")
	// Then a debt: a double spend of another purse, alice at ¥0 online, covered
	// by the guarantee.
	d := newDoubleSpend(t, f, 0)
	wantCode(t, f.deposit(t, "bob-phone", "bob", d.toBob), statepb.Code_CODE_OK)
	wantCode(t, f.deposit(t, "carol-phone", "carol", d.toCar), statepb.Code_CODE_OK)
	if debt, _ := f.s.OfflineDebt("alice"); debt.GetDebtFen() != 100*yuan {
		t.Fatalf("debt: %v", debt)
	}
	wantBalance(t, f.s, statetest.Guarantee("icbc"), 9_900*yuan)
	p := f.purseRec(t, cert)
	before := f.s.Meta().GetAppliedIndex()

	// Blocks right before the deadline: nothing happens.
	f.c.ApplyAt(t, p.GetDeadlineMs()-1)
	if got := f.purseRec(t, cert); got.GetStatus() != statepb.PurseStatus_PURSE_STATUS_OPEN {
		t.Fatalf("expired early: %v", got)
	}
	// The first block at the deadline (an empty one: nobody acts).
	f.c.ApplyAt(t, p.GetDeadlineMs())
	got := f.purseRec(t, cert)
	if got.GetStatus() != statepb.PurseStatus_PURSE_STATUS_EXPIRED || got.GetEscrowFen() != 0 || got.GetReturnedFen() != 280*yuan {
		t.Fatalf("after the deadline: %v", got)
	}
	// 280 back: 100 repays the debt to the guarantee, 180 to alice.
	wantBalance(t, f.s, "alice", 180*yuan)
	wantBalance(t, f.s, statetest.Guarantee("icbc"), 10_000*yuan)
	if debt, _ := f.s.OfflineDebt("alice"); debt.GetDebtFen() != 0 || debt.GetRepaidFen() != 100*yuan {
		t.Fatalf("debt after repayment: %v", debt)
	}
	if w, _ := f.s.Wallet("alice"); w.GetOfflineDebtFen() != 0 {
		t.Fatalf("alice's wallet still shows a debt: %v", w)
	}
	wantEscrow(t, f.s, 0)
	if due, ok := f.s.NextDueMs(); !ok || due != f.purseRec(t, d.cert).GetDeadlineMs() {
		t.Fatalf("next job due at %d (%v), want only the other purse's expiry", due, ok)
	}
	// The expiry is a recorded transaction whose outputs are alice's, then
	// the guarantee's.
	id := state.ExpiryTxID(f.n.Genesis.GetChainId(), purseIDOf(t, cert))
	rec, err := f.s.Tx(id[:])
	if err != nil || rec.GetResult().GetCode() != statepb.Code_CODE_OK || rec.GetResult().GetLogIndex() <= before || rec.GetOutputCount() != 2 {
		t.Fatalf("expiry record: %v %v", rec, err)
	}
	// Alice is frozen (the double spend); her bank unfreezes her.
	f.c.MustOK(t, f.n.Sign(t, statetest.UnfreezeBody("alice", "settled with the bank"), f.n.Bank("icbc")))
	f.c.MustOK(t, f.n.Transfer(t, "alice", ins(statetest.Out(id, 0)), statetest.Pay("bob", 180*yuan)))
	// Spending it again names the expiry's output as spent.
	wantCode(t, f.c.Apply(t, f.n.Transfer(t, "alice", ins(statetest.Out(id, 0)), statetest.Pay("bob", yuan)))[0], statepb.Code_CODE_INPUT_SPENT)
	// A payment deposited after the deadline is refused.
	r := f.deposit(t, "carol-phone", "carol", late)
	wantCode(t, r, statepb.Code_CODE_CERT_EXPIRED)
	statetest.Audit(t, f.s)
}

// TestOfflineRevokedDevice: once a device is revoked, a payee that had
// synced the revocation list (its deposit says so) is refused
// DEVICE_REVOKED; a payee that accepted before it knew is paid.
func TestOfflineRevokedDevice(t *testing.T) {
	f := newOffFix(t)
	d := newDoubleSpend(t, f, 500*yuan)
	wantCode(t, f.deposit(t, "bob-phone", "bob", d.toBob), statepb.Code_CODE_OK)
	wantCode(t, f.deposit(t, "carol-phone", "carol", d.toCar), statepb.Code_CODE_OK) // revocation 1
	knew, _ := f.pay(t, "alice-phone", d.cert, 2, d.hBob[:], "shop-till", 10*yuan, "s")
	knew.RevocationIndex = 1
	r := f.deposit(t, "shop-till", "shop", knew)
	wantCode(t, r, statepb.Code_CODE_DEVICE_REVOKED)
	unaware, _ := f.pay(t, "alice-phone", d.cert, 2, d.hBob[:], "dave-phone", 10*yuan, "u")
	r2 := f.deposit(t, "dave-phone", "dave", unaware)
	wantCode(t, r2, statepb.Code_CODE_OK)
	wantBalance(t, f.s, "dave", 10*yuan)
	// The device can neither close its purse nor open a new one.
	wantCode(t, f.c.Apply(t, f.n.ClosePurse(t, "alice-phone", purseIDOf(t, d.cert), 2))[0], statepb.Code_CODE_DEVICE_REVOKED)
	statetest.Audit(t, f.s)
}

// TestOfflineUnbacked: a payment under a bank-signed certificate whose
// purse was never opened is honoured (from the named wallet's funds, then
// the bank's guarantee) and is an incident; the purse id can no longer be
// opened.
func TestOfflineUnbacked(t *testing.T) {
	f := newOffFix(t)
	spec := f.spec("ghost", "icbc", "bob", "bob-phone", 50*yuan)
	cert := f.n.Cert(t, spec) // signed, never opened
	in := f.c.Fund(t, f.n, "icbc", "bob", 100*yuan)
	item, _ := f.pay(t, "bob-phone", cert, 1, nil, "carol-phone", 20*yuan, "g")
	r := f.deposit(t, "carol-phone", "carol", item)
	wantCode(t, r, statepb.Code_CODE_OK)
	inc, err := f.s.Incident(f.items(t, r)[0].GetIncidentId())
	// bob, named in the certificate, pays first; nothing was escrowed.
	if err != nil || inc.GetKind() != statepb.IncidentKind_INCIDENT_KIND_UNBACKED || inc.GetFromPayerFen() != 20*yuan || inc.GetFromEscrowFen() != 0 {
		t.Fatalf("incident: %v %v", inc, err)
	}
	wantBalance(t, f.s, "carol", 20*yuan)
	// bob is frozen now: the open is refused for that first.
	wantCode(t, f.c.Apply(t, f.n.OpenPurse(t, "bob", ins(in), cert))[0], statepb.Code_CODE_WALLET_FROZEN)
	f.c.MustOK(t, f.n.Sign(t, statetest.UnfreezeBody("bob", "ok"), f.n.Bank("icbc")))
	wantCode(t, f.c.Apply(t, f.n.OpenPurse(t, "bob", ins(in), cert))[0], statepb.Code_CODE_PURSE_EXISTS)
	statetest.Audit(t, f.s)
}

// TestOfflineBatch: one deposit of many payments from several purses,
// including two clones' payments at the same counter in the same batch.
func TestOfflineBatch(t *testing.T) {
	f := newOffFix(t)
	c1 := f.purse(t, "p1", "alice", "alice-phone", 1000*yuan, 500*yuan)
	c2 := f.purse(t, "p2", "dave", "dave-phone", 1000*yuan, 500*yuan)
	var items []*statepb.DepositItem
	var prev []byte
	for i := uint32(1); i <= 5; i++ {
		it, h := f.pay(t, "alice-phone", c1, i, prev, "shop-till", 10*yuan, fmt.Sprint("a", i))
		items = append(items, it)
		prev = h[:]
	}
	dup, _ := f.pay(t, "alice-phone", c1, 3, nil, "shop-till", 10*yuan, "clone")
	items = append(items, dup)
	it, _ := f.pay(t, "dave-phone", c2, 1, nil, "shop-till", 7*yuan, "d")
	items = append(items, it)
	r := f.deposit(t, "shop-till", "shop", items...)
	wantCode(t, r, statepb.Code_CODE_OK)
	res := f.items(t, r)
	if len(res) != 7 || res[5].GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_INCIDENT || res[6].GetOutcome() != statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_SETTLED {
		t.Fatalf("items: %v", res)
	}
	wantBalance(t, f.s, "shop", 67*yuan)
	wantEscrow(t, f.s, 440*yuan+493*yuan)
	// A payment twice in one deposit is refused before any state is read.
	wantCode(t, f.deposit(t, "shop-till", "shop", it, it), statepb.Code_CODE_PAYMENT_REPLAYED)
}

// TestOfflineOutputsSpendable: a deposit's outputs (owners recorded, since
// they depend on state) are spendable by their owners, and spending one
// twice or someone else's gets the precise code.
func TestOfflineOutputsSpendable(t *testing.T) {
	f := newOffFix(t)
	d := newDoubleSpend(t, f, 500*yuan)
	r1 := f.deposit(t, "bob-phone", "bob", d.toBob)
	r2 := f.deposit(t, "carol-phone", "carol", d.toCar)
	// r2's outputs: alice's change (alice paid 100 of her 500), then carol's credit.
	rec, err := f.s.OfflineTx(r2.GetTxId())
	if err != nil || len(rec.GetOutputOwners()) != 2 || rec.GetOutputOwners()[0] != "alice" || rec.GetOutputOwners()[1] != "carol" {
		t.Fatalf("owners: %v %v", rec, err)
	}
	bobOut, carolOut := outOf(r1, 0), outOf(r2, 1)
	f.c.MustOK(t, f.n.Transfer(t, "bob", ins(bobOut), statetest.Pay("carol", 100*yuan)))
	wantCode(t, f.c.Apply(t, f.n.Transfer(t, "bob", ins(bobOut), statetest.Pay("carol", yuan)))[0], statepb.Code_CODE_INPUT_SPENT)
	wantCode(t, f.c.Apply(t, f.n.Transfer(t, "bob", ins(carolOut), statetest.Pay("carol", yuan)))[0], statepb.Code_CODE_INPUT_NOT_OWNED)
	wantCode(t, f.c.Apply(t, f.n.Transfer(t, "bob", ins(outOf(r2, 2)), statetest.Pay("carol", yuan)))[0], statepb.Code_CODE_INPUT_NOT_FOUND)
	statetest.Audit(t, f.s)
}
