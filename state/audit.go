package state

import (
	"encoding/binary"
	"time"

	"github.com/dcep/dcep/state/statepb"
)

// Regulator indexes (SPEC §6; state/DESIGN.md, "Regulator indexes"). The
// ledger writes them while it applies, like any other record: they are
// deterministic, in the state hash, in snapshots, and the same on every node.
//
//   - l: large payments, by ledger time: every committed money movement at or
//     above the genesis large_value_threshold_fen.
//   - d: per bank and Beijing-time day: committed transactions, payments,
//     volume, large payments.
//   - f: frozen wallets with reason, time and what froze them.
//
// Cost per transaction: one switch on the kind and a lookup of the payer's
// wallet (already in the applier's cache); the day records are kept in the
// applier and written once per block per bank, and only large payments write
// a record of their own.

func keyLarge(timeMs int64, index uint64, txID []byte) []byte {
	k := binary.BigEndian.AppendUint64(cat(prefixLarge, nil), uint64(max(timeMs, 0)))
	return append(binary.BigEndian.AppendUint64(k, index), txID...)
}

func keyDay(day int64, bank string) []byte {
	return append(binary.BigEndian.AppendUint64(cat(prefixDay, nil), uint64(max(day, 0))), bank...)
}

func keyFrozen(walletID string) []byte { return cat(prefixFrozen, []byte(walletID)) }

// auditState is what one Apply call keeps for the indexes.
type auditState struct {
	// days are the day records this call has read or written; dirty lists
	// those the current block changed, in order of first change, which is
	// the order they are written in at the end of the block (whatever other
	// blocks the call holds, so the state hash does not depend on grouping).
	days  []*dayEntry
	dirty []*dayEntry
}

type dayEntry struct {
	rec   *statepb.BankDay
	dirty bool
}

// movement is what a committed transaction did, as the indexes see it.
type movement struct {
	bank      string // the bank it counts for ("" for none)
	payer     string
	payees    []*statepb.PaymentLeg
	amountFen uint64
	payment   bool // it moved money
	notLarge  bool // never a large payment (audit_kinds.go)
}

// indexTx updates the indexes for a committed (OK) transaction.
func (a *applier) indexTx(t *decodedTx) {
	m := a.movementOf(t)
	if m.bank == "" || a.err != nil {
		return
	}
	large := m.payment && !m.notLarge && a.isLarge(m.amountFen)
	d := a.day(m.bank)
	if d == nil {
		return
	}
	if !d.dirty {
		d.dirty = true
		a.audit.dirty = append(a.audit.dirty, d)
	}
	d.rec.TxCount++
	if m.payment {
		d.rec.PaymentCount++
		d.rec.VolumeFen = satAdd(d.rec.GetVolumeFen(), m.amountFen)
		if large {
			d.rec.LargeCount++
			d.rec.LargeVolumeFen = satAdd(d.rec.GetLargeVolumeFen(), m.amountFen)
		}
	}
	if large {
		a.set(keyLarge(a.timeMs, a.index, t.id[:]), &statepb.LargePayment{
			TxId: t.id[:], Kind: kindName(t.body), Payer: m.payer, PayerBank: m.bank, Payees: m.payees,
			AmountFen: m.amountFen, LogIndex: a.index, TimeMs: a.timeMs, SealedMemo: t.body.GetSealedMemo(),
		})
	}
}

// isLarge reports whether an amount is at or above the reporting threshold
// (0 in genesis: nothing is reported).
func (a *applier) isLarge(fen uint64) bool {
	th := a.s.genesis.GetLargeValueThresholdFen()
	return th > 0 && fen >= th
}

// movementOf says which bank a committed transaction counts for and what
// money it moved. Payees are filled only for a large payment (they cost a
// wallet lookup each).
func (a *applier) movementOf(t *decodedTx) movement {
	body := t.body
	switch k := body.GetKind().(type) {
	case *statepb.Tx_Transfer:
		w := a.wallet(k.Transfer.GetFromWalletId())
		m := movement{bank: w.GetBankId(), payer: w.GetId(), payment: true}
		for _, p := range k.Transfer.GetPayees() {
			if p.GetWalletId() != w.GetId() {
				m.amountFen += p.GetAmountFen() // bounded by the inputs' total
			}
		}
		if a.isLarge(m.amountFen) {
			for _, p := range k.Transfer.GetPayees() {
				if p.GetWalletId() != w.GetId() {
					m.payees = a.addLeg(m.payees, p.GetWalletId(), p.GetAmountFen())
				}
			}
		}
		return m
	case *statepb.Tx_Exchange:
		b := a.bank(k.Exchange.GetBankId())
		m := movement{bank: k.Exchange.GetBankId(), payer: b.GetBank().GetReserveWalletId(), amountFen: k.Exchange.GetAmountFen(), payment: true}
		if a.isLarge(m.amountFen) {
			m.payees = a.addLeg(nil, k.Exchange.GetToWalletId(), m.amountFen)
		}
		return m
	case *statepb.Tx_Redeem:
		w := a.wallet(k.Redeem.GetWalletId())
		m := movement{bank: w.GetBankId(), payer: w.GetId(), amountFen: k.Redeem.GetAmountFen(), payment: true}
		if a.isLarge(m.amountFen) {
			m.payees = a.addLeg(nil, a.bank(w.GetBankId()).GetBank().GetReserveWalletId(), m.amountFen)
		}
		return m
	case *statepb.Tx_Issue:
		b := a.bank(k.Issue.GetBankId())
		m := movement{bank: k.Issue.GetBankId(), payer: a.s.genesis.GetCentralBank().GetId(), amountFen: k.Issue.GetAmountFen(), payment: true}
		if a.isLarge(m.amountFen) {
			m.payees = []*statepb.PaymentLeg{{WalletId: b.GetBank().GetReserveWalletId(), BankId: k.Issue.GetBankId(), AmountFen: m.amountFen}}
		}
		return m
	case *statepb.Tx_Return:
		b := a.bank(k.Return.GetBankId())
		return movement{bank: k.Return.GetBankId(), payer: b.GetBank().GetReserveWalletId(), amountFen: k.Return.GetAmountFen(), payment: true}
	case *statepb.Tx_RegisterWallet:
		return movement{bank: k.RegisterWallet.GetBankId()}
	case *statepb.Tx_UpdateWallet, *statepb.Tx_RotateWalletKey, *statepb.Tx_FreezeWallet, *statepb.Tx_UnfreezeWallet, *statepb.Tx_CloseWallet:
		_, id := managedWallet(body)
		return movement{bank: a.wallet(id).GetBankId()}
	}
	if m, ok := a.movementOfMore(t); ok {
		return m
	}
	// Membership changes count for no bank.
	return movement{}
}

// addLeg appends a payee, summing repeated wallets (in order of first
// appearance).
func (a *applier) addLeg(legs []*statepb.PaymentLeg, walletID string, fen uint64) []*statepb.PaymentLeg {
	for _, l := range legs {
		if l.GetWalletId() == walletID {
			l.AmountFen += fen
			return legs
		}
	}
	return append(legs, &statepb.PaymentLeg{WalletId: walletID, BankId: a.wallet(walletID).GetBankId(), AmountFen: fen})
}

// day returns the current Beijing day's record of a bank, read once per
// Apply call.
func (a *applier) day(bank string) *dayEntry {
	d := beijingDay(a.timeMs)
	for _, e := range a.audit.days {
		if e.rec.GetDay() == d && e.rec.GetBankId() == bank {
			return e
		}
	}
	e := &dayEntry{rec: &statepb.BankDay{}}
	if !a.get(keyDay(d, bank), e.rec) {
		if a.err != nil {
			return nil
		}
		e.rec = &statepb.BankDay{BankId: bank, Day: d}
	}
	a.audit.days = append(a.audit.days, e)
	return e
}

// flushAudit writes the block's changed day records, in order of first
// change (deterministic: it follows the transactions).
func (a *applier) flushAudit() {
	for _, e := range a.audit.dirty {
		a.set(keyDay(e.rec.GetDay(), e.rec.GetBankId()), e.rec)
		e.dirty = false
	}
	a.audit.dirty = a.audit.dirty[:0]
}

// Wallet status. Every change of a wallet's status goes through
// setWalletStatus, which keeps the frozen-wallets index in step; AuditSupply
// checks that the index and the wallets agree.

// FreezeSourceBank: the wallet's bank froze it (a freeze_wallet
// transaction).
const FreezeSourceBank = "freeze_wallet"

// setWalletStatus sets a wallet's status and reason and keeps the frozen
// index in step: an entry is written when the wallet becomes (or stays, with
// a new reason) frozen and removed when it stops being frozen. t is the
// transaction doing it (nil for scheduled ledger work); reason is the
// signer's words (a bank's freeze_wallet), rule the ledger rule that did it
// instead (nil for a bank; never text: readable.go renders it when read);
// source names what froze it (FreezeSourceBank, or the ledger rule). The
// caller writes the wallet (setWallet), as for any other change.
func (a *applier) setWalletStatus(t *decodedTx, w *statepb.WalletRecord, status statepb.WalletStatus, reason string, rule *statepb.LedgerReason, source string) {
	was := w.GetStatus()
	w.Status, w.StatusReason, w.StatusLedgerReason = status, reason, rule
	switch {
	case status == statepb.WalletStatus_WALLET_STATUS_FROZEN:
		f := &statepb.FrozenWallet{WalletId: w.GetId(), BankId: w.GetBankId(), Reason: reason, LedgerReason: rule, SinceMs: a.timeMs, LogIndex: a.index, Source: source}
		if t != nil {
			f.TxId = t.id[:]
		}
		a.set(keyFrozen(w.GetId()), f)
	case was == statepb.WalletStatus_WALLET_STATUS_FROZEN:
		a.del(keyFrozen(w.GetId()))
	}
}

// setFrozen freezes a wallet for a ledger rule (e.g. an offline double
// spend): status, the rule and the frozen index. The caller writes the
// wallet.
func (a *applier) setFrozen(t *decodedTx, w *statepb.WalletRecord, rule *statepb.LedgerReason, source string) {
	a.setWalletStatus(t, w, statepb.WalletStatus_WALLET_STATUS_FROZEN, "", rule, source)
}

// BeijingDate is a Beijing day (BeijingDay) as a date, "2026-12-11".
func BeijingDate(day int64) string {
	return time.UnixMilli(BeijingDayStartMs(day)).In(beijing).Format(time.DateOnly)
}
