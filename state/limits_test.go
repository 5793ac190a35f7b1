package state_test

import (
	"testing"
	"time"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// beijingMs is a Beijing-time wall clock reading as ledger time.
func beijingMs(year int, month time.Month, day, hour, min, sec, ms int) int64 {
	return time.Date(year, month, day, hour, min, sec, ms*int(time.Millisecond), time.FixedZone("CST", 8*3600)).UnixMilli()
}

// spender pays from one wallet, keeping track of its outputs, and tops it
// up from its bank's reserve.
type spender struct {
	f       *fixture
	id      string
	outs    []*statepb.Outpoint
	balance uint64
	reserve *statepb.Outpoint
}

func newSpender(f *fixture) *spender {
	return &spender{f: f, id: "alice", outs: ins(f.aliceA, f.aliceB), balance: 5000 * yuan, reserve: f.icbcReserve}
}

// pay pays fen to shop in a block stamped ms and returns the result.
func (p *spender) pay(t *testing.T, ms int64, fen uint64) *statepb.TxResult {
	t.Helper()
	r := p.f.c.ApplyAt(t, ms, p.f.n.Transfer(t, p.id, p.outs, statetest.Pay("shop", fen)))[0]
	if r.GetCode() == statepb.Code_CODE_OK {
		p.balance -= fen
		p.outs = nil
		if p.balance > 0 {
			p.outs = ins(outOf(r, 1))
		}
	}
	return r
}

// topUp exchanges fen from icbc's reserve to the wallet.
func (p *spender) topUp(t *testing.T, ms int64, fen uint64) {
	t.Helper()
	r := p.f.c.ApplyAt(t, ms, p.f.n.Exchange(t, "icbc", ins(p.reserve), p.id, fen))[0]
	wantCode(t, r, statepb.Code_CODE_OK)
	p.reserve = outOf(r, 1)
	p.outs = append(p.outs, outOf(r, 0))
	p.balance += fen
}

// TestDailyLimitBeijingDay: tier 4 may pay ¥5,000 a Beijing-time day. UTC
// midnight is not a boundary; Beijing midnight (16:00 UTC) is, to the
// millisecond, by ledger time; a leader stamping an earlier time cannot
// roll the day back.
func TestDailyLimitBeijingDay(t *testing.T) {
	f := newFixture(t)
	p := newSpender(f)
	morning := beijingMs(2026, 12, 2, 7, 0, 0, 0) // 2026-12-01 23:00 UTC
	wantCode(t, p.pay(t, morning, 2000*yuan), statepb.Code_CODE_OK)
	wantCode(t, p.pay(t, morning+1000, 2000*yuan), statepb.Code_CODE_OK)
	p.topUp(t, morning+2000, 5000*yuan)
	afterUTCMidnight := beijingMs(2026, 12, 2, 9, 0, 0, 0) // 2026-12-02 01:00 UTC
	wantCode(t, p.pay(t, afterUTCMidnight, 1000*yuan), statepb.Code_CODE_OK)
	wantCode(t, p.pay(t, afterUTCMidnight+1000, 1), statepb.Code_CODE_LIMIT_DAILY)
	lastMs := beijingMs(2026, 12, 2, 23, 59, 59, 999)
	wantCode(t, p.pay(t, lastMs, 1), statepb.Code_CODE_LIMIT_DAILY)

	// A block stamped earlier is clamped to the ledger's time.
	r := p.pay(t, morning, 1)
	wantCode(t, r, statepb.Code_CODE_LIMIT_DAILY)
	if r.GetTimeMs() != lastMs || f.s.Meta().GetLedgerTimeMs() != lastMs {
		t.Fatalf("ledger time went back: result %d, meta %d, want %d", r.GetTimeMs(), f.s.Meta().GetLedgerTimeMs(), lastMs)
	}

	midnight := beijingMs(2026, 12, 3, 0, 0, 0, 0)
	wantCode(t, p.pay(t, midnight, 2000*yuan), statepb.Code_CODE_OK)
	w, err := f.s.Wallet("alice")
	if err != nil {
		t.Fatal(err)
	}
	if w.GetSpentDayFen() != 2000*yuan || w.GetSpentYearFen() != 7000*yuan {
		t.Fatalf("counters after midnight: day %d year %d, want day ¥2,000 year ¥7,000", w.GetSpentDayFen(), w.GetSpentYearFen())
	}
	// Per payment is separate from per day: ¥2,000.01 is refused even on a
	// fresh day.
	wantCode(t, p.pay(t, beijingMs(2026, 12, 4, 0, 0, 0, 0), 2000*yuan+1), statepb.Code_CODE_LIMIT_PAYMENT)
	statetest.Audit(t, f.s)
}

// TestYearlyLimitBeijingYear: tier 4 may pay ¥50,000 a Beijing-time year;
// the counter resets at 2027-01-01 00:00 Beijing time (16:00 UTC on 31
// December), not before.
func TestYearlyLimitBeijingYear(t *testing.T) {
	f := newFixture(t)
	p := newSpender(f)
	for d := range 10 {
		ms := beijingMs(2026, 12, 2+d, 10, 0, 0, 0)
		if d > 0 {
			p.topUp(t, ms, 5000*yuan)
		}
		for i, fen := range []uint64{2000 * yuan, 2000 * yuan, 1000 * yuan} {
			wantCode(t, p.pay(t, ms+int64(i+1)*1000, fen), statepb.Code_CODE_OK)
		}
	}
	p.topUp(t, beijingMs(2026, 12, 12, 9, 0, 0, 0), 5000*yuan)
	r := p.pay(t, beijingMs(2026, 12, 12, 10, 0, 0, 0), 1)
	wantCode(t, r, statepb.Code_CODE_LIMIT_YEARLY)
	wantCode(t, p.pay(t, beijingMs(2026, 12, 31, 23, 59, 59, 999), 1), statepb.Code_CODE_LIMIT_YEARLY)
	newYear := beijingMs(2027, 1, 1, 0, 0, 0, 0)
	if newYear != time.Date(2026, 12, 31, 16, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatal("test clock: 2027-01-01 00:00 Beijing is not 2026-12-31 16:00 UTC")
	}
	wantCode(t, p.pay(t, newYear, 2000*yuan), statepb.Code_CODE_OK)
	w, err := f.s.Wallet("alice")
	if err != nil {
		t.Fatal(err)
	}
	if w.GetSpendYear() != 2027 || w.GetSpentYearFen() != 2000*yuan {
		t.Fatalf("year counter: year %d spent %d, want 2027 and ¥2,000", w.GetSpendYear(), w.GetSpentYearFen())
	}
	statetest.Audit(t, f.s)
}

// TestLimitsIgnoreChangeAndSelf: what a payer sends back to itself (change,
// or a payee naming itself) does not count against its limits.
func TestLimitsIgnoreChangeAndSelf(t *testing.T) {
	f := newFixture(t)
	// ¥5,000 to herself in one transaction: over the per-payment limit if
	// it counted.
	r := f.c.Apply(t, f.n.Transfer(t, "alice", ins(f.aliceA, f.aliceB), statetest.Pay("alice", 5000*yuan)))[0]
	wantCode(t, r, statepb.Code_CODE_OK)
	w, _ := f.s.Wallet("alice")
	if w.GetSpentDayFen() != 0 || w.GetBalanceFen() != 5000*yuan || w.GetUnspentCount() != 1 {
		t.Fatalf("self payment: %v", w)
	}
}

func TestFenGroupsThousands(t *testing.T) {
	for fen, want := range map[uint64]string{
		0: "¥0.00", 5: "¥0.05", 8850: "¥88.50", 100_000: "¥1,000.00", 250_000: "¥2,500.00",
		123_456_789: "¥1,234,567.89", 18446744073709551615: "¥184,467,440,737,095,516.15",
	} {
		if got := state.Fen(fen); got != want {
			t.Errorf("statepb.Fen(%d) = %s, want %s", fen, got, want)
		}
	}
}
