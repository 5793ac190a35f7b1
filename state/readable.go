package state

import "github.com/dcep/dcep/state/statepb"

// Records as people read them. The hashed records hold what the rules
// decided (a LedgerReason's code and ids, a purse id, a Beijing day
// number); the text people read is derived from that here, when a query
// reads a record, and never stored, so a release can reword it without
// changing the state hash (state/DESIGN.md, "Outcomes"). Only queries call
// these: the applier reads and writes records as stored.

// statusReason is why a wallet's status last changed as people read it:
// its bank's words, or the ledger rule's text.
func statusReason(w *statepb.WalletRecord) string {
	if r := w.GetStatusReason(); r != "" {
		return r
	}
	return w.GetStatusLedgerReason().Text()
}

func readableWallet(w *statepb.WalletRecord) *statepb.WalletRecord {
	w.StatusReason = statusReason(w)
	return w
}

func readableFrozen(f *statepb.FrozenWallet) *statepb.FrozenWallet {
	if f.GetReason() == "" {
		f.Reason = f.GetLedgerReason().Text()
	}
	return f
}

func readableRevocation(r *statepb.Revocation) *statepb.Revocation {
	r.Reason = r.GetLedgerReason().Text()
	return r
}

func readableHistory(e *statepb.HistoryEntry) *statepb.HistoryEntry {
	if e.GetCounterparty() == "" && len(e.GetPurseId()) > 0 {
		e.Counterparty = statepb.PurseCounterparty(e.GetPurseId())
	}
	return e
}

func readableBankDay(d *statepb.BankDay) *statepb.BankDay {
	d.Date = BeijingDate(d.GetDay())
	return d
}
