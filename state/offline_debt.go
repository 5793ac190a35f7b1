package state

import (
	"github.com/dcep/dcep/state/statepb"
)

// A payer owes its bank whatever the bank paid, or owes, its payees beyond
// the payer's own money (OfflineDebt). The debt is repaid first from money
// that reaches the wallet later, whatever brings it: returned escrow
// (returnEscrow) and any other credit — a transfer, an exchange, a deposit,
// a red-packet grant's plain change… — after which the ledger itself takes
// the debt from the wallet's outputs to the bank's guarantee wallet, as a
// recorded collect_offline_debt transaction right after the one that
// brought the money. The wallet record mirrors the debt
// (offline_debt_fen), so crediting a wallet knows it owes without a read.
//
// offCredits collects the wallets credited by the current transaction (or
// the block's scheduled work) that may owe offline money: debtors, and the
// banks' reserve and guarantee wallets (a credit to those pays the bank's
// open claims, offline_claims.go). settleOfflineCredits acts on them.

// offCredit is a wallet credited by transaction cause.
type offCredit struct {
	wallet string
	cause  []byte
}

type offCredits []offCredit

// noteOfflineCredit is called for every output created (createOutput).
// It reads nothing: only a debtor or a bank wallet is noted.
func (a *applier) noteOfflineCredit(cause []byte, w *statepb.WalletRecord) {
	if w.GetOfflineDebtFen() == 0 && !isBankWallet(w) {
		return
	}
	for _, c := range a.offCredits {
		if c.wallet == w.GetId() {
			return
		}
	}
	a.offCredits = append(a.offCredits, offCredit{w.GetId(), append([]byte(nil), cause...)})
}

// settleOfflineCredits runs after each successful transaction and after
// the block's scheduled work: a credited debtor repays its debt
// (collectDebt), a credited bank wallet wakes its bank's claims job. Acting
// may credit more wallets (a repayment credits the guarantee), which are
// handled in the same pass.
func (a *applier) settleOfflineCredits() {
	for i := 0; i < len(a.offCredits) && a.err == nil; i++ {
		c := a.offCredits[i]
		w := a.wallet(c.wallet)
		switch {
		case w == nil:
			a.fail("credited wallet %q missing", c.wallet)
		case isBankWallet(w):
			bo := a.bankOffline(w.GetBankId())
			if bo.GetClaimsOpen() > 0 && !bo.GetClaimsJobScheduled() {
				a.wakeClaims(bo)
				a.setBankOffline(bo)
			}
		case w.GetOfflineDebtFen() > 0:
			a.collectDebt(w, c.cause)
		}
	}
	a.offCredits = a.offCredits[:0]
}

// chargeDebt records what bank paid (from its guarantee and reserve) or
// owes (claimed) for a payment of walletID's purse, and mirrors it on the
// wallet (if the wallet exists: an unbacked certificate may name one that
// does not). The caller notes the wallet (its remaining money repays now).
func (a *applier) chargeDebt(walletID, bank string, guaranteeFen, reserveFen, claimedFen uint64) {
	fen := satAdd(satAdd(guaranteeFen, reserveFen), claimedFen)
	if fen == 0 {
		return
	}
	d := a.debt(walletID, true)
	d.BankId = bank
	d.DebtFen = satAdd(d.GetDebtFen(), fen)
	d.TotalFen = satAdd(d.GetTotalFen(), fen)
	d.GuaranteeFen = satAdd(d.GetGuaranteeFen(), guaranteeFen)
	d.ReserveFen = satAdd(d.GetReserveFen(), reserveFen)
	d.ClaimedFen = satAdd(d.GetClaimedFen(), claimedFen)
	d.UnpaidFen = satAdd(d.GetUnpaidFen(), claimedFen)
	if w := a.wallet(walletID); w != nil {
		w.OfflineDebtFen = d.GetDebtFen()
		a.setWallet(w)
		a.noteOfflineCredit(a.off.t.id[:], w)
	}
}

// repayDebt records fen of d repaid and mirrors it on w. The caller has
// moved the money to repayTo.
func (a *applier) repayDebt(d *statepb.OfflineDebt, w *statepb.WalletRecord, fen uint64) {
	if fen > d.GetDebtFen() {
		a.fail("wallet %q: repaying %d of an offline debt of %d", d.GetWalletId(), fen, d.GetDebtFen())
		return
	}
	d.DebtFen -= fen
	d.RepaidFen += fen // ≤ total
	w.OfflineDebtFen = d.GetDebtFen()
}

// repayTo is the wallet offline debts to bank are repaid to: its guarantee
// wallet, or its reserve if it has none.
func (a *applier) repayTo(bank string) *statepb.WalletRecord {
	b := a.bank(bank).GetBank()
	if b == nil {
		a.fail("offline debt to unknown bank %q", bank)
		return nil
	}
	if id := b.GetGuaranteeWalletId(); id != "" {
		return a.mustWallet(id)
	}
	return a.mustWallet(b.GetReserveWalletId())
}

// collectDebt takes a debtor's debt from its outputs (in key order, at
// most maxRecoveryInputs, red packets skipped, whatever the wallet's
// status) to its bank's guarantee wallet, as a recorded
// collect_offline_debt: outputs are the wallet's change (if any), then the
// repayment. Nothing is recorded if the wallet holds no plain money.
func (a *applier) collectDebt(w *statepb.WalletRecord, cause []byte) {
	var rec statepb.OfflineDebt
	if w.GetBalanceFen() == 0 || !a.get(keyDebt(w.GetId()), &rec) {
		if a.err == nil && w.GetBalanceFen() > 0 {
			a.fail("wallet %q: offline debt %d mirrored without a debt record", w.GetId(), w.GetOfflineDebtFen())
		}
		return
	}
	body := &statepb.Tx{Version: statepb.TxVersion, ChainId: a.s.genesis.GetChainId(), Kind: &statepb.Tx_CollectOfflineDebt{
		CollectOfflineDebt: &statepb.CollectOfflineDebt{WalletId: w.GetId(), Collection: rec.GetCollections() + 1, CauseTxId: cause}}}
	t := a.ledgerTx(body)
	to := a.repayTo(rec.GetBankId())
	if t == nil || to == nil {
		return
	}
	a.beginOffline(t)
	d := a.debt(w.GetId(), false)
	took := a.takeFrom(w.GetId(), d.GetDebtFen(), to.GetId())
	if took.fen == 0 {
		a.off = offState{} // nothing written: red packets only
		return
	}
	a.out(to, took.fen)
	a.addHistory(to, t, &statepb.HistoryEntry{InFen: took.fen, Counterparty: w.GetId()})
	a.setWallet(to)
	a.repayDebt(d, w, took.fen)
	d.Collections++
	a.setWallet(w)
	n := a.endOffline(nil)
	a.recordTx(t.id, &statepb.TxRecord{SignedTx: t.raw, OutputCount: n,
		Result: &statepb.TxResult{TxId: t.id[:], Code: statepb.Code_CODE_OK, LogIndex: a.index, TimeMs: a.timeMs}})
}

// ledgerTx makes the transaction the ledger records for work nobody
// submitted (expire_purse, pay_offline_claims, collect_offline_debt): its
// id is SHA-256 of the body, like any transaction's. nil on a broken
// invariant.
func (a *applier) ledgerTx(body *statepb.Tx) *decodedTx {
	raw, err := deterministic.Marshal(body)
	if err != nil {
		a.fail("marshal %s: %v", kindName(body), err)
		return nil
	}
	stx, err := deterministic.Marshal(&statepb.SignedTx{Body: raw})
	if err != nil {
		a.fail("marshal %s: %v", kindName(body), err)
		return nil
	}
	t := &decodedTx{raw: stx, id: TxID(raw), hasID: true, body: body}
	if _, ok := a.recorded[t.id]; ok || a.get(keyTx(t.id[:]), &statepb.TxRecord{}) {
		a.fail("%s %x recorded already", kindName(body), short(t.id[:]))
		return nil
	}
	return t
}
