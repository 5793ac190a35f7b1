package state_test

import (
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestAuditSubWalletsAndRefunds: the regulator indexes count the kinds of
// SPEC §5 for the payer's bank. On day 2, carol (boc) funds a sub-wallet
// with ¥120,000, pushes it to jd (a platform at icbc), jd charges ¥80,000,
// refunds ¥60,000 of it, and carol pulls the ¥100,000 left back: four large
// payments, three of boc (sub-wallet funded, charged, withdrawn) and one of
// icbc (the refund).
func TestAuditSubWalletsAndRefunds(t *testing.T) {
	f := newFixture(t)
	n, c, s := f.n, f.c, f.s
	carolIn := c.Fund(t, n, "boc", "carol", 200_000*yuan)
	mustAllOK(t, c.Apply(t, n.Register(t, "icbc", "jd", merchant, 1, "110000")))

	day2 := int64(statetest.GenesisTimeMs + dayMs + 9*3600*1000)
	carol := n.Wallet("carol")
	mustAllOK(t, c.ApplyAt(t, day2, n.Sign(t, statetest.CreateSubWalletBody("carol", "carol.jd"), carol)))
	fund := c.MustOK(t, n.Sign(t, statetest.FundSubWalletBody("carol.jd", ins(carolIn), 120_000*yuan), carol))
	c.MustOK(t, n.Sign(t, statetest.PushSubWalletBody("carol.jd", "jd", 100_000*yuan, 150_000*yuan, day2+48*3600*1000), carol))
	charge := c.MustOK(t, n.Sign(t, statetest.ChargeBody("jd", "carol.jd", ins(outOf(fund, 0)), 80_000*yuan), n.Wallet("jd")))
	refund := c.MustOK(t, n.Sign(t, statetest.RefundBody("jd", charge.GetTxId(), ins(outOf(charge, 0)), 60_000*yuan), n.Wallet("jd")))
	us, err := s.Unspents("carol.jd", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var subIns []*statepb.Outpoint
	for _, u := range us {
		subIns = append(subIns, u.Outpoint)
	}
	c.MustOK(t, n.Sign(t, statetest.WithdrawSubWalletBody("carol.jd", subIns, 100_000*yuan), carol))
	statetest.Audit(t, s)

	ps, _, err := s.LargePayments(state.LargeQuery{FromMs: state.BeijingDayStartMs(state.BeijingDay(day2))})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ kind, payer, bank, payee, payeeBank string }
	want := []row{
		{"fund_sub_wallet", "carol", "boc", "carol.jd", "boc"},
		{"charge_sub_wallet", "carol.jd", "boc", "jd", "icbc"},
		{"refund_payment", "jd", "icbc", "carol.jd", "boc"},
		{"withdraw_sub_wallet", "carol.jd", "boc", "carol", "boc"},
	}
	amounts := []uint64{120_000 * yuan, 80_000 * yuan, 60_000 * yuan, 100_000 * yuan}
	if len(ps) != len(want) {
		t.Fatalf("large payments on day 2: %v", ps)
	}
	for i, p := range ps {
		got := row{p.GetKind(), p.GetPayer(), p.GetPayerBank(), "", ""}
		if len(p.GetPayees()) == 1 {
			got.payee, got.payeeBank = p.GetPayees()[0].GetWalletId(), p.GetPayees()[0].GetBankId()
		}
		if got != want[i] || p.GetAmountFen() != amounts[i] {
			t.Fatalf("large payment %d: %+v %s, want %+v %s", i, got, state.Fen(p.GetAmountFen()), want[i], state.Fen(amounts[i]))
		}
	}
	if p := ps[2]; string(p.GetTxId()) != string(refund.GetTxId()) {
		t.Fatalf("refund record: %v", p)
	}

	days, err := s.BankDays(state.BeijingDay(day2), state.BeijingDay(day2), "")
	if err != nil || len(days) != 2 {
		t.Fatalf("day 2: %v %v", days, err)
	}
	// boc: create, fund, push, charge, withdraw; icbc: the refund.
	if d := days[0]; d.GetBankId() != "boc" || d.GetTxCount() != 5 || d.GetPaymentCount() != 3 || d.GetVolumeFen() != 300_000*yuan || d.GetLargeCount() != 3 {
		t.Fatalf("boc on day 2: %v", d)
	}
	if d := days[1]; d.GetBankId() != "icbc" || d.GetTxCount() != 1 || d.GetPaymentCount() != 1 || d.GetVolumeFen() != 60_000*yuan || d.GetLargeCount() != 1 {
		t.Fatalf("icbc on day 2: %v", d)
	}
}
