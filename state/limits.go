package state

import (
	"fmt"
	"strconv"
	"time"

	"github.com/dcep/dcep/state/statepb"
)

// beijing is UTC+8 as a fixed offset: China has no daylight saving, and a
// fixed zone needs no tz database, so every node computes the same days.
var beijing = time.FixedZone("CST", 8*3600)

const msPerDay = 24 * 3600 * 1000

// beijingDay is the number of Beijing-time days since 1970-01-01 at ledger
// time ms.
func beijingDay(ms int64) int64 {
	local := ms + 8*3600*1000
	d := local / msPerDay
	if local%msPerDay < 0 {
		d--
	}
	return d
}

// beijingYear is the Beijing-time calendar year at ledger time ms.
func beijingYear(ms int64) int32 { return int32(time.UnixMilli(ms).In(beijing).Year()) }

// caps are a wallet's effective limits (zero: none).
type caps struct{ balance, payment, daily, yearly uint64 }

// capsOf combines the tier's caps with the wallet's own (which may only be
// lower). The banks' own wallets have none.
func (a *applier) capsOf(w *statepb.WalletRecord) caps {
	switch w.GetKind() {
	case statepb.WalletKind_WALLET_KIND_BANK_RESERVE, statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE:
		return caps{}
	}
	t, own := a.s.tiers.get(w.GetTier()), w.GetLimits()
	return caps{
		balance: lower(t.GetMaxBalanceFen(), own.GetMaxBalanceFen()),
		payment: lower(t.GetMaxPaymentFen(), own.GetMaxPaymentFen()),
		daily:   lower(t.GetMaxDailyFen(), own.GetMaxDailyFen()),
		yearly:  lower(t.GetMaxYearlyFen(), own.GetMaxYearlyFen()),
	}
}

// lower is the tighter of two caps where zero means none.
func lower(a, b uint64) uint64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// exceeds reports whether used+add > cap for a cap that is set, without
// overflowing.
func exceeds(cap, used, add uint64) bool {
	return cap != 0 && (used > cap || add > cap-used)
}

func (a *applier) checkSpendLimits(field string, w *statepb.WalletRecord, paymentFen uint64) *statepb.Error {
	c := a.capsOf(w)
	if exceeds(c.payment, 0, paymentFen) {
		return statepb.Errorf(statepb.Code_CODE_LIMIT_PAYMENT, "%s: payment %s exceeds wallet %q's per-payment limit %s", field, statepb.Fen(paymentFen), w.GetId(), statepb.Fen(c.payment))
	}
	_, dayUsed, _, yearUsed := a.spent(w)
	if exceeds(c.daily, dayUsed, paymentFen) {
		return statepb.Errorf(statepb.Code_CODE_LIMIT_DAILY, "%s: payment %s would take wallet %q past its daily limit %s (%s already paid today, Beijing time)", field, statepb.Fen(paymentFen), w.GetId(), statepb.Fen(c.daily), statepb.Fen(dayUsed))
	}
	if exceeds(c.yearly, yearUsed, paymentFen) {
		return statepb.Errorf(statepb.Code_CODE_LIMIT_YEARLY, "%s: payment %s would take wallet %q past its yearly limit %s (%s already paid this year)", field, statepb.Fen(paymentFen), w.GetId(), statepb.Fen(c.yearly), statepb.Fen(yearUsed))
	}
	return nil
}

// spent returns the wallet's spending counters for the current ledger day
// and year; counters from an earlier day or year count as zero.
func (a *applier) spent(w *statepb.WalletRecord) (day int64, dayUsed uint64, year int32, yearUsed uint64) {
	day, year = beijingDay(a.timeMs), beijingYear(a.timeMs)
	if w.GetSpendDay() == day {
		dayUsed = w.GetSpentDayFen()
	}
	if w.GetSpendYear() == year {
		yearUsed = w.GetSpentYearFen()
	}
	return day, dayUsed, year, yearUsed
}

// countSpend adds a checked payment to the wallet's counters. Counters
// saturate rather than wrap: limits were checked, so only an uncapped wallet
// can get near the top, where the figure no longer matters.
func (a *applier) countSpend(w *statepb.WalletRecord, paymentFen uint64) {
	day, dayUsed, year, yearUsed := a.spent(w)
	w.SpendDay, w.SpentDayFen = day, satAdd(dayUsed, paymentFen)
	w.SpendYear, w.SpentYearFen = year, satAdd(yearUsed, paymentFen)
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

func (a *applier) checkBalanceCap(w *statepb.WalletRecord, creditFen uint64) *statepb.Error {
	c := a.capsOf(w)
	if exceeds(c.balance, w.GetBalanceFen(), creditFen) {
		return statepb.Errorf(statepb.Code_CODE_LIMIT_BALANCE, "payee %q: balance %s + %s would exceed its balance limit %s", w.GetId(), statepb.Fen(w.GetBalanceFen()), statepb.Fen(creditFen), statepb.Fen(c.balance))
	}
	if w.GetBalanceFen()+creditFen < creditFen {
		return statepb.Errorf(statepb.Code_CODE_AMOUNT_OVERFLOW, "payee %q: balance would overflow", w.GetId())
	}
	return nil
}

// Fen formats an amount in fen as yuan with thousands grouped, as people
// read money: 8850 → "¥88.50", 250000 → "¥2,500.00".
func Fen(fen uint64) string {
	digits := strconv.FormatUint(fen/100, 10)
	out := make([]byte, 0, len(digits)+len(digits)/3+4)
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, digits[i])
	}
	return fmt.Sprintf("¥%s.%02d", out, fen%100)
}

func itoa(i int) string { return strconv.Itoa(i) }

// fail records a broken invariant: Apply returns it and commits nothing.
func (a *applier) fail(format string, args ...any) {
	if a.err == nil {
		a.err = fmt.Errorf("%w: "+format, append([]any{ErrInvariant}, args...)...)
	}
}
