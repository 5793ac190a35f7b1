package state_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// auditScenario runs the fixture and then, over three Beijing days, the
// payments below; every figure the regulator indexes must show is known.
//
//	day 1 (2026-12-01, the fixture): issue ¥1,000,000 to icbc and to boc;
//	  6 wallets registered; exchanges ¥3,000 + ¥2,000 (alice, icbc) and
//	  ¥10,000 (carol, boc); "frozen" frozen ("court order 17"); "closed"
//	  closed.
//	day 2: boc exchanges ¥100,000 to carol (large); carol pays shop ¥50,000
//	  and bob ¥100 in one transfer (¥50,100: large, at the threshold or
//	  above); carol pays shop ¥49,999.99 (not large).
//	day 3: icbc freezes bob ("suspicious"), unfreezes "frozen", registers,
//	  freezes and closes dora; returns ¥60,000 (large).
type auditScenario struct {
	f                                   *fixture
	exchange, bigPay, smallPay, retTx   [32]byte
	day1, day2, day3                    int64
	tExchange, tBigPay, tSmall, tReturn int64
}

const dayMs = 24 * 3600 * 1000

func newAuditScenario(t *testing.T) *auditScenario {
	t.Helper()
	f := newFixture(t)
	n := f.n
	sc := &auditScenario{f: f, day1: state.BeijingDay(statetest.GenesisTimeMs)}
	sc.day2, sc.day3 = sc.day1+1, sc.day1+2
	sc.tExchange = statetest.GenesisTimeMs + dayMs + 10*3600*1000
	sc.tBigPay, sc.tSmall = sc.tExchange+3600*1000, sc.tExchange+2*3600*1000
	sc.tReturn = statetest.GenesisTimeMs + 2*dayMs + 9*3600*1000

	ex, exID := n.SignID(t, statetest.ExchangeBody("boc", ins(f.bocReserve), "carol", 100_000*yuan), n.Bank("boc"))
	mustAllOK(t, f.c.ApplyAt(t, sc.tExchange, ex))
	big, bigID := n.SignID(t, statetest.TransferBody("carol", ins(f.carol, statetest.Out(exID, 0)),
		statetest.Pay("shop", 50_000*yuan), statetest.Pay("bob", 100*yuan)), n.Wallet("carol"))
	mustAllOK(t, f.c.ApplyAt(t, sc.tBigPay, big))
	small, smallID := n.SignID(t, statetest.TransferBody("carol", ins(statetest.Out(bigID, 2)), statetest.Pay("shop", 49_999*yuan+99)), n.Wallet("carol"))
	mustAllOK(t, f.c.ApplyAt(t, sc.tSmall, small))
	ret, retID := n.SignID(t, statetest.ReturnBody("icbc", ins(f.icbcReserve), 60_000*yuan), n.Bank("icbc"), n.CentralBank())
	mustAllOK(t, f.c.ApplyAt(t, sc.tReturn,
		n.Sign(t, statetest.FreezeBody("bob", "suspicious"), n.Bank("icbc")),
		n.Sign(t, statetest.UnfreezeBody("frozen", "cleared"), n.Bank("icbc")),
		n.Register(t, "icbc", "dora", personal, tier4, ""),
		n.Sign(t, statetest.FreezeBody("dora", "lost phone"), n.Bank("icbc")),
		n.Sign(t, statetest.CloseBody("dora"), n.Bank("icbc")),
		ret,
	))
	sc.exchange, sc.bigPay, sc.smallPay, sc.retTx = exID, bigID, smallID, retID
	return sc
}

func TestAuditLargePayments(t *testing.T) {
	sc := newAuditScenario(t)
	s := sc.f.s
	all, next, err := s.LargePayments(state.LargeQuery{})
	if err != nil || next != nil {
		t.Fatalf("LargePayments: %v, next %x", err, next)
	}
	type row struct {
		kind, payer, bank string
		fen               uint64
		payees            string
	}
	got := func(ps []*statepb.LargePayment) []row {
		var out []row
		for _, p := range ps {
			legs := ""
			for _, l := range p.GetPayees() {
				legs += l.GetWalletId() + "@" + l.GetBankId() + "=" + state.Fen(l.GetAmountFen()) + " "
			}
			out = append(out, row{p.GetKind(), p.GetPayer(), p.GetPayerBank(), p.GetAmountFen(), legs})
		}
		return out
	}
	want := []row{
		{"issue", "pboc", "icbc", 1_000_000 * yuan, "icbc.reserve@icbc=¥1,000,000.00 "},
		{"issue", "pboc", "boc", 1_000_000 * yuan, "boc.reserve@boc=¥1,000,000.00 "},
		{"exchange", "boc.reserve", "boc", 100_000 * yuan, "carol@boc=¥100,000.00 "},
		{"transfer", "carol", "boc", 50_100 * yuan, "shop@boc=¥50,000.00 bob@icbc=¥100.00 "},
		{"return", "icbc.reserve", "icbc", 60_000 * yuan, ""},
	}
	g := got(all)
	// The two issues share a block: their order is by transaction id.
	if len(g) == 5 && g[0].bank == "boc" {
		g[0], g[1] = g[1], g[0]
	}
	if len(g) != len(want) {
		t.Fatalf("large payments: %+v", g)
	}
	for i := range want {
		if g[i] != want[i] {
			t.Fatalf("large payment %d: %+v, want %+v", i, g[i], want[i])
		}
	}
	if p := all[3]; !bytes.Equal(p.GetTxId(), sc.bigPay[:]) || p.GetTimeMs() != sc.tBigPay || p.GetLogIndex() == 0 {
		t.Fatalf("transfer record: %v", p)
	}

	// A time range: day 2 only.
	day2, _, err := s.LargePayments(state.LargeQuery{FromMs: state.BeijingDayStartMs(sc.day2), ToMs: state.BeijingDayStartMs(sc.day3)})
	if err != nil || len(day2) != 2 || day2[0].GetKind() != "exchange" || day2[1].GetKind() != "transfer" {
		t.Fatalf("day 2: %v %v", got(day2), err)
	}
	// One bank, as payer or payee: icbc's issue, the transfer paying bob,
	// the return.
	icbc, _, err := s.LargePayments(state.LargeQuery{Bank: "icbc"})
	if err != nil || len(icbc) != 3 || icbc[0].GetKind() != "issue" || icbc[1].GetKind() != "transfer" || icbc[2].GetKind() != "return" {
		t.Fatalf("icbc: %v %v", got(icbc), err)
	}
	// Pages, both directions, and a range that is empty.
	for _, newest := range []bool{false, true} {
		var pages [][]*statepb.LargePayment
		var tok []byte
		for {
			p, next, err := s.LargePayments(state.LargeQuery{Limit: 2, PageToken: tok, NewestFirst: newest})
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, p)
			if next == nil {
				break
			}
			tok = next
		}
		if len(pages) != 3 || len(pages[0]) != 2 || len(pages[1]) != 2 || len(pages[2]) != 1 {
			t.Fatalf("newest first %v: pages of %d, %d, …", newest, len(pages[0]), len(pages[1]))
		}
		var flat []*statepb.LargePayment
		for _, p := range pages {
			flat = append(flat, p...)
		}
		for i := range flat {
			j := i
			if newest {
				j = len(all) - 1 - i
			}
			if !proto.Equal(flat[i], all[j]) {
				t.Fatalf("newest first %v: page entry %d is %v, want %v", newest, i, flat[i], all[j])
			}
		}
	}
	if none, next, err := s.LargePayments(state.LargeQuery{FromMs: sc.tReturn + 1}); err != nil || len(none) != 0 || next != nil {
		t.Fatalf("after the last: %v %x %v", none, next, err)
	}
}

func TestAuditBankDays(t *testing.T) {
	sc := newAuditScenario(t)
	days, err := sc.f.s.BankDays(sc.day1, sc.day3, "")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		date, bank                       string
		txs, payments, volume, large, lv uint64
	}
	var got []row
	for _, d := range days {
		got = append(got, row{d.GetDate(), d.GetBankId(), d.GetTxCount(), d.GetPaymentCount(), d.GetVolumeFen(), d.GetLargeCount(), d.GetLargeVolumeFen()})
	}
	want := []row{
		// icbc: issue, 4 registrations, 2 exchanges, freeze, close.
		{"2026-12-01", "boc", 4, 2, 1_010_000 * yuan, 1, 1_000_000 * yuan},
		{"2026-12-01", "icbc", 9, 3, 1_005_000 * yuan, 1, 1_000_000 * yuan},
		// carol (boc) pays; boc's exchange.
		{"2026-12-02", "boc", 3, 3, 100_000*yuan + 50_100*yuan + 49_999*yuan + 99, 2, 150_100 * yuan},
		// icbc: freeze, unfreeze, register, freeze, close, return.
		{"2026-12-03", "icbc", 6, 1, 60_000 * yuan, 1, 60_000 * yuan},
	}
	if len(got) != len(want) {
		t.Fatalf("bank days: %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("bank day %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if one, err := sc.f.s.BankDays(sc.day2, sc.day3, "icbc"); err != nil || len(one) != 1 || one[0].GetDate() != "2026-12-03" {
		t.Fatalf("icbc on days 2–3: %v %v", one, err)
	}
}

func TestAuditFrozenIndex(t *testing.T) {
	f := newFixture(t)
	fs, err := f.s.FrozenWallets("", "", 0)
	if err != nil || len(fs) != 1 {
		t.Fatalf("frozen after the fixture: %v %v", fs, err)
	}
	if r := fs[0].Record; r.GetWalletId() != "frozen" || r.GetBankId() != "icbc" || r.GetReason() != "court order 17" ||
		r.GetSource() != state.FreezeSourceBank || r.GetSinceMs() != statetest.GenesisTimeMs+2000 || r.GetLogIndex() != 2 || len(r.GetTxId()) != 32 {
		t.Fatalf("frozen record: %v", r)
	}

	sc := newAuditScenario(t)
	fs, err = sc.f.s.FrozenWallets("", "", 0)
	if err != nil || len(fs) != 1 || fs[0].Record.GetWalletId() != "bob" || fs[0].Record.GetReason() != "suspicious" ||
		fs[0].Record.GetSinceMs() != sc.tReturn || fs[0].BalanceFen != 100*yuan {
		t.Fatalf("frozen after the scenario (frozen unfrozen, dora closed): %v %v", fs, err)
	}
	if none, _ := sc.f.s.FrozenWallets("", "boc", 0); len(none) != 0 {
		t.Fatalf("boc has no frozen wallet: %v", none)
	}
	a := statetest.Audit(t, sc.f.s)
	if a.FrozenWallets != 1 || a.FrozenFen != 100*yuan {
		t.Fatalf("audit: %d frozen holding %d", a.FrozenWallets, a.FrozenFen)
	}
	for _, b := range a.Banks {
		wantFrozen := uint64(0)
		if b.BankID == "icbc" {
			wantFrozen = 1
		}
		if b.FrozenWallets != wantFrozen {
			t.Fatalf("bank %s: %d frozen", b.BankID, b.FrozenWallets)
		}
	}

	// The audit catches an index that disagrees with the wallets.
	if err := state.SetRaw(sc.f.s, "f:carol", []byte{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.f.s.AuditSupply(); err == nil {
		t.Fatal("audit passed with a frozen-index entry for an active wallet")
	}
}

// TestAuditSupplyPerBank checks the per-bank breakdown after the scenario.
func TestAuditSupplyPerBank(t *testing.T) {
	sc := newAuditScenario(t)
	a := statetest.Audit(t, sc.f.s)
	if a.IssuedFen != 2_000_000*yuan || a.ReturnedFen != 60_000*yuan || a.OutstandingFen != 1_940_000*yuan || a.UnspentFen != a.OutstandingFen {
		t.Fatalf("totals: %+v", a)
	}
	byBank := map[string]state.BankAudit{}
	for _, b := range a.Banks {
		byBank[b.BankID] = b
	}
	// icbc: reserve 1,000,000 − 5,000 − 60,000; alice 5,000; bob 100.
	// boc: reserve 1,000,000 − 10,000 − 100,000; carol 10,000 + 100,000 −
	// 50,100 − 49,999.99; shop 99,999.99.
	icbc, boc := byBank["icbc"], byBank["boc"]
	if icbc.IssuedFen != 1_000_000*yuan || icbc.ReturnedFen != 60_000*yuan || icbc.ReserveFen != 935_000*yuan || icbc.WalletsFen != 940_100*yuan {
		t.Fatalf("icbc: %+v", icbc)
	}
	if boc.ReserveFen != 890_000*yuan || boc.WalletsFen != 999_900*yuan {
		t.Fatalf("boc: %+v", boc)
	}
	if icbc.WalletsFen+boc.WalletsFen != a.UnspentFen {
		t.Fatalf("wallets of icbc and boc %d + %d, unspent %d", icbc.WalletsFen, boc.WalletsFen, a.UnspentFen)
	}
}

// TestAuditIndexesDoNotDependOnGrouping applies the same blocks one per
// Apply call and all in one call: the regulator indexes, like every record,
// must come out byte for byte the same (they are in the state hash).
func TestAuditIndexesDoNotDependOnGrouping(t *testing.T) {
	n := statetest.NewNet(t, "grouping")
	one, all := n.Open(t), n.Open(t)
	var blocks []state.Block
	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 1_000_000*yuan), n.CentralBank())
	issue2, issue2ID := n.SignID(t, statetest.IssueBody("boc", 1_000_000*yuan), n.CentralBank())
	txs := [][][]byte{
		{issue, issue2, n.Register(t, "icbc", "a", personal, 1, ""), n.Register(t, "boc", "b", personal, 1, "")},
		// Second block: boc first, then icbc (the day records are written
		// in the order the block first changes them).
		{n.Exchange(t, "boc", ins(statetest.Out(issue2ID, 0)), "b", 70_000*yuan), n.Exchange(t, "icbc", ins(statetest.Out(issueID, 0)), "a", 80_000*yuan)},
		{n.Sign(t, statetest.FreezeBody("a", "x"), n.Bank("icbc"))},
	}
	for i, b := range txs {
		blocks = append(blocks, state.Block{Index: uint64(i + 1), Term: 1, TimeMs: statetest.GenesisTimeMs + int64(i+1)*1000, Txs: b})
	}
	for _, b := range blocks {
		if _, err := one.Apply([]state.Block{b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := all.Apply(blocks); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Meta().GetStateHash(), all.Meta().GetStateHash()) {
		t.Fatal("state hash depends on how blocks are grouped into Apply calls")
	}
	wantSameState(t, one, all)
	if ps, _, _ := all.LargePayments(state.LargeQuery{}); len(ps) != 4 {
		t.Fatalf("large payments: %d, want 4", len(ps))
	}
}
