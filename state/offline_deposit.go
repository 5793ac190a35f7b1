package state

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
)

// depositOffline settles a batch of offline payments a device received and
// credits the wallet it names (docs/offline.md, "Reconciliation").
//
// Every payment was verified by the stateless stage with the rules the
// payee device ran (offline.Network.Verify). Then, with state, in this order
// (docs/errors.md): the credited wallet (PAYEE_NOT_FOUND,
// WALLET_KIND_NOT_ALLOWED, PAYEE_FROZEN, PAYEE_CLOSED); each payment that
// was not settled before: its certificate is the one its purse was opened
// with (CERT_INVALID), its purse's deadline, not_after + grace, has not
// passed (CERT_EXPIRED), its device was not revoked at or below the index
// the payee held when it accepted it (DEVICE_REVOKED); at least one payment
// is new (else PAYMENT_REPLAYED); the wallet's balance cap (LIMIT_BALANCE).
// Nothing is written before every check passed.
//
// Then each payment, in order, settles exactly once, keyed by its hash and
// its (purse, counter) slot (settle).
func (a *applier) depositOffline(t *decodedTx, k *statepb.DepositOffline) (uint32, *statepb.Error) {
	w := a.wallet(k.GetWalletId())
	switch {
	case w == nil:
		return 0, statepb.Errorf(statepb.Code_CODE_PAYEE_NOT_FOUND, "deposit_offline.wallet_id: no wallet %q", k.GetWalletId())
	case w.GetStatus() == statepb.WalletStatus_WALLET_STATUS_FROZEN:
		return 0, statepb.Errorf(statepb.Code_CODE_PAYEE_FROZEN, "deposit_offline.wallet_id: wallet %q is frozen", w.GetId())
	case w.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED:
		return 0, statepb.Errorf(statepb.Code_CODE_PAYEE_CLOSED, "deposit_offline.wallet_id: wallet %q is closed", w.GetId())
	}
	if rej := notForKinds("deposit_offline.wallet_id", w, reserveKinds...); rej != nil {
		return 0, rej
	}
	grace := a.s.genesis.GetOffline().GetGraceMs()
	items := k.GetItems()
	replayed := make([]*statepb.Settlement, len(items))
	var credit uint64
	fresh := 0
	for i, d := range t.off.items {
		field := "deposit_offline.items[" + itoa(i) + "]"
		var s statepb.Settlement
		if a.get(keySettlement(d.Hash[:]), &s) {
			replayed[i] = &s
			continue
		}
		if a.err != nil {
			return 0, nil
		}
		p := a.purse(d.Body.GetPurseId())
		if p != nil && !bytes.Equal(p.GetCert().GetBody(), d.Body.GetCert().GetBody()) {
			return 0, statepb.Errorf(statepb.Code_CODE_CERT_INVALID, "%s: certificate differs from the one purse %x was opened with", field, short(p.GetPurseId()))
		}
		if p.GetStatus() == statepb.PurseStatus_PURSE_STATUS_EXPIRED {
			return 0, statepb.Errorf(statepb.Code_CODE_CERT_EXPIRED, "%s: purse %x expired; its rest went back to wallet %q", field, short(p.GetPurseId()), p.GetWalletId())
		}
		if err := offline.CheckExpiry(d, a.timeMs, grace); err != nil {
			return 0, within(field, err)
		}
		at := items[i].GetRevocationIndex()
		if err := offline.CheckRevoked(d, func(dev []byte) bool {
			r := a.revocation(dev)
			return r != nil && r.GetIndex() <= at
		}); err != nil {
			return 0, asRejection(err).Within(field).Append(", at revocation %d, and the receiving device had synced the list to %d when it accepted the payment",
				a.revocation(d.Cert.GetDevicePublicKey()).GetIndex(), at)
		}
		credit = satAdd(credit, d.Body.GetAmountFen())
		fresh++
	}
	if fresh == 0 {
		s := replayed[0]
		return 0, statepb.Errorf(statepb.Code_CODE_PAYMENT_REPLAYED, "deposit_offline.items[0]: payment %x was settled already, by deposit %x at log index %d", short(s.GetPaymentHash()), short(s.GetDepositTxId()), s.GetLogIndex())
	}
	if rej := a.checkBalanceCap(w, credit); rej != nil {
		return 0, rej
	}

	a.beginOffline(t)
	rec := &statepb.OfflineTxRecord{}
	var credited uint64
	counterparty := ""
	for i, d := range t.off.items {
		if s := replayed[i]; s != nil {
			rec.Items = append(rec.Items, &statepb.DepositItemResult{
				Outcome: statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_REPLAYED, PaymentHash: s.GetPaymentHash(), FirstDepositTxId: s.GetDepositTxId(),
			})
			continue
		}
		r, payer := a.settle(w, uint32(i), d)
		rec.Items = append(rec.Items, r)
		credited += r.GetCreditedFen() // ≤ credit, which did not overflow
		if counterparty == "" {
			counterparty = payer
		}
	}
	if credited > 0 {
		a.out(w, credited)
		a.addHistory(w, t, &statepb.HistoryEntry{InFen: credited, Counterparty: counterparty})
		a.setWallet(w)
	}
	rec.CreditedFen = credited
	return a.endOffline(rec), nil
}

// settle settles one new payment and returns its outcome and payer wallet.
//
// Classification, first match wins:
//
//   - no purse on the ledger: UNBACKED incident (a bank-signed certificate
//     whose purse was never opened; the bank's guarantee stands behind it);
//   - its (purse, counter) slot holds another payment: SAME_COUNTER incident;
//   - the purse is closed and the counter is above the device-signed final
//     counter: ABOVE_FINAL_COUNTER incident;
//   - the purse's settled total would pass its amount: OVER_AMOUNT incident;
//   - the purse is closed: a receipted payment it reserved escrow for
//     settles from it; a different payment at a reserved counter is a
//     SAME_COUNTER incident; any other (counter ≤ final) is a torn payment,
//     honoured without escrow (its amount went back at close);
//   - else it settles from escrow.
//
// The payee is paid, in this order, from the purse's escrow (not for torn
// payments), the payer wallet's online funds (outputs spent by the ledger
// in key order, at most maxRecoveryInputs), the certifying bank's
// guarantee wallet, then its reserve wallet (same); what the bank pays
// becomes the payer's debt to it; what the bank cannot pay now is unpaid: a
// claim on the bank (offline_claims.go), paid as soon as it holds money,
// and also the payer's debt. An incident freezes the payer's wallet and
// revokes the device (once).
func (a *applier) settle(payee *statepb.WalletRecord, item uint32, d *offline.Decoded) (*statepb.DepositItemResult, string) {
	body, cert := d.Body, d.Cert
	amount, counter, hash := body.GetAmountFen(), body.GetCounter(), d.Hash[:]
	p := a.purse(body.GetPurseId())
	var kind statepb.IncidentKind
	var first *statepb.Settlement
	var closeProof []byte
	useEscrow, torn, reservedAt := true, false, -1
	slot := a.slot(body.GetPurseId(), counter)
	switch {
	case p == nil:
		kind = statepb.IncidentKind_INCIDENT_KIND_UNBACKED
		p = &statepb.PurseRecord{
			PurseId: body.GetPurseId(), Cert: body.GetCert(), WalletId: cert.GetWalletId(), BankId: cert.GetBankId(), DevicePublicKey: cert.GetDevicePublicKey(),
			AmountFen: cert.GetAmountFen(), MaxPaymentFen: cert.GetMaxPaymentFen(), MaxPayments: cert.GetMaxPayments(), NotAfterMs: cert.GetNotAfterMs(),
			DeadlineMs: offline.Deadline(cert, a.s.genesis.GetOffline().GetGraceMs()), Status: statepb.PurseStatus_PURSE_STATUS_UNBACKED,
		}
		a.newPurse(p)
	case p.GetStatus() == statepb.PurseStatus_PURSE_STATUS_UNBACKED:
		kind = statepb.IncidentKind_INCIDENT_KIND_UNBACKED
	case slot != nil:
		kind, first = statepb.IncidentKind_INCIDENT_KIND_SAME_COUNTER, a.settlement(slot)
	case p.GetStatus() == statepb.PurseStatus_PURSE_STATUS_CLOSED && counter > p.GetFinalCounter():
		kind, closeProof = statepb.IncidentKind_INCIDENT_KIND_ABOVE_FINAL_COUNTER, p.GetCloseTxId()
	case exceeds(p.GetAmountFen(), p.GetSettledFen(), amount):
		kind, first = statepb.IncidentKind_INCIDENT_KIND_OVER_AMOUNT, a.settlement(a.slot(p.GetPurseId(), p.GetLastSettledCounter()))
	case p.GetStatus() == statepb.PurseStatus_PURSE_STATUS_CLOSED:
		for j, r := range p.GetReserved() {
			if r.GetCounter() == counter {
				reservedAt = j
			}
		}
		switch {
		case reservedAt >= 0 && bytes.Equal(p.GetReserved()[reservedAt].GetPaymentHash(), hash):
		case reservedAt >= 0:
			// The close listed another payment, with a receipt, at this
			// counter: the device signed two.
			kind, closeProof, reservedAt = statepb.IncidentKind_INCIDENT_KIND_SAME_COUNTER, p.GetCloseTxId(), -1
		default:
			torn, useEscrow = true, false
		}
	}

	var fromEscrow uint64
	if useEscrow {
		fromEscrow = min(p.GetEscrowFen(), amount)
	}
	paid := a.payFrom(p, amount-fromEscrow, payee.GetId())
	if !a.takeEscrow(p, fromEscrow) {
		return &statepb.DepositItemResult{}, ""
	}
	if reservedAt >= 0 {
		p.Reserved = append(p.Reserved[:reservedAt:reservedAt], p.Reserved[reservedAt+1:]...)
	}
	p.SettledFen = satAdd(p.GetSettledFen(), amount)
	p.SettledCount++
	if slot == nil {
		a.setRaw(keySlot(p.GetPurseId(), counter), hash)
		p.LastSettledCounter = max(p.GetLastSettledCounter(), counter)
	}
	a.chargeDebt(p.GetWalletId(), p.GetBankId(), paid.guarantee, paid.reserve, paid.unpaid)
	paymentRaw, err := deterministic.Marshal(d.Payment)
	if err != nil {
		a.fail("marshal payment: %v", err)
		return &statepb.DepositItemResult{}, ""
	}
	s := &statepb.Settlement{
		PaymentHash: hash, PurseId: p.GetPurseId(), Counter: counter, AmountFen: amount, Payment: paymentRaw,
		PayeeDeviceKey: body.GetPayeeDeviceKey(), PayeeWalletId: payee.GetId(), PayerWalletId: p.GetWalletId(), BankId: p.GetBankId(),
		DepositTxId: a.off.t.id[:], Item: item, LogIndex: a.index, TimeMs: a.timeMs,
		FromEscrowFen: fromEscrow, FromPayerFen: paid.payer, FromGuaranteeFen: paid.guarantee, FromReserveFen: paid.reserve, UnpaidFen: paid.unpaid, Torn: torn,
	}
	if paid.unpaid > 0 {
		s.ClaimSeq = a.reserveClaim(p.GetBankId())
	}
	out := &statepb.DepositItemResult{
		Outcome: statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_SETTLED, PaymentHash: hash,
		CreditedFen: amount - paid.unpaid, UnpaidFen: paid.unpaid,
	}
	if torn {
		out.Outcome = statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_TORN
	}
	if kind != statepb.IncidentKind_INCIDENT_KIND_UNSPECIFIED {
		inc := &statepb.Incident{
			Kind: kind, PurseId: p.GetPurseId(), PayerWalletId: p.GetWalletId(), BankId: p.GetBankId(), DevicePublicKey: p.GetDevicePublicKey(),
			FirstPayment: first.GetPayment(), SecondPayment: paymentRaw, CloseTxId: closeProof,
			FirstPayeeWalletId: first.GetPayeeWalletId(), SecondPayeeWalletId: payee.GetId(),
			ClaimFen: amount, FromEscrowFen: fromEscrow, FromPayerFen: paid.payer, FromGuaranteeFen: paid.guarantee, FromReserveFen: paid.reserve,
			DebtFen: paid.guarantee + paid.reserve + paid.unpaid, UnpaidFen: paid.unpaid, ClaimSeq: s.GetClaimSeq(),
			DepositTxId: a.off.t.id[:], LogIndex: a.index, TimeMs: a.timeMs, Status: statepb.IncidentStatus_INCIDENT_STATUS_SETTLED,
		}
		if paid.unpaid > 0 {
			inc.Status = statepb.IncidentStatus_INCIDENT_STATUS_UNDERFUNDED
		}
		a.recordIncident(p, inc)
		p.Incidents++
		s.IncidentId = inc.GetId()
		out.Outcome, out.IncidentId = statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_INCIDENT, inc.GetId()
	}
	if paid.unpaid > 0 {
		a.openClaim(s, s.GetClaimSeq())
	}
	a.set(keySettlement(hash), s)
	return out, p.GetWalletId()
}

// paidFrom is where a payment's amount beyond escrow came from, in order
// (the bank's sources are p's certifying bank's), and what is left unpaid.
type paidFrom struct {
	payer, guarantee, reserve, unpaid uint64
}

// payFrom takes need for payee from the payer wallet's online funds, then
// the certifying bank's guarantee wallet, then its reserve wallet; the
// rest is unpaid (a claim on the bank).
func (a *applier) payFrom(p *statepb.PurseRecord, need uint64, payee string) paidFrom {
	var f paidFrom
	bank := a.bank(p.GetBankId()).GetBank()
	f.payer = a.takeFrom(p.GetWalletId(), need, payee).fen
	need -= f.payer
	f.guarantee = a.takeFrom(bank.GetGuaranteeWalletId(), need, payee).fen
	need -= f.guarantee
	f.reserve = a.takeFrom(bank.GetReserveWalletId(), need, payee).fen
	f.unpaid = need - f.reserve
	return f
}

// takeEscrow takes fen of a purse's escrow to pay a payee (out of the
// supply's offline escrow). false on a broken invariant.
func (a *applier) takeEscrow(p *statepb.PurseRecord, fen uint64) bool {
	if fen == 0 {
		return true
	}
	sup := a.getSupply()
	if sup.GetOfflineEscrowFen() < fen || p.GetEscrowFen() < fen {
		a.fail("supply offline escrow %d, purse escrow %d < %d settled", sup.GetOfflineEscrowFen(), p.GetEscrowFen(), fen)
		return false
	}
	p.EscrowFen -= fen
	sup.OfflineEscrowFen -= fen
	a.setSupply(sup)
	return true
}

// recordIncident numbers and writes an incident, freezes the payer's wallet
// (if active) and revokes the device (if not revoked yet).
func (a *applier) recordIncident(p *statepb.PurseRecord, inc *statepb.Incident) {
	incidents, revocations := a.offlineCounters()
	incidents++
	inc.Id = incidents
	if w := a.wallet(p.GetWalletId()); w != nil && w.GetStatus() == statepb.WalletStatus_WALLET_STATUS_ACTIVE {
		a.setFrozen(a.off.t, w, &statepb.LedgerReason{Code: statepb.LedgerReasonCode_LEDGER_REASON_OFFLINE_DOUBLE_SPEND, IncidentId: incidents, PurseId: p.GetPurseId()}, freezeSourceOffline)
		a.addHistory(w, a.off.t, &statepb.HistoryEntry{})
		a.setWallet(w)
		inc.FrozeWallet = true
	}
	r := a.revocation(p.GetDevicePublicKey())
	if r == nil {
		revocations++
		r = &statepb.Revocation{
			Index: revocations, DevicePublicKey: p.GetDevicePublicKey(), IncidentId: incidents, TimeMs: a.timeMs, LogIndex: a.index,
			LedgerReason: &statepb.LedgerReason{Code: statepb.LedgerReasonCode_LEDGER_REASON_OFFLINE_DOUBLE_SPEND, IncidentId: incidents},
		}
		a.set(keyRevocation(revocations), r)
		a.set(keyDeviceRevoked(p.GetDevicePublicKey()), r)
	}
	inc.RevocationIndex = r.GetIndex()
	a.setOfflineCounters(incidents, revocations)
	a.set(keyIncident(incidents), inc)
}

// settlement reads a settlement by payment hash; nil if hash is nil or
// unknown.
func (a *applier) settlement(hash []byte) *statepb.Settlement {
	if hash == nil {
		return nil
	}
	s := &statepb.Settlement{}
	if !a.get(keySettlement(hash), s) {
		return nil
	}
	return s
}

// takeFrom takes up to need from a wallet's unspent outputs for a payee:
// outputs in key order (output id order), at most maxRecoveryInputs,
// skipping red packets (they keep their conditions); the change comes back
// to the wallet as the transaction's next output. It returns what it took
// and how many outputs it spent. The ledger does this itself, whatever the
// wallet's status.
func (a *applier) takeFrom(walletID string, need uint64, payee string) taken {
	if walletID == "" || need == 0 || a.err != nil {
		return taken{}
	}
	w := a.wallet(walletID)
	if w == nil || w.GetBalanceFen() == 0 {
		return taken{}
	}
	prefix := keyUnspentPrefix(walletID)
	it, err := a.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		a.err = fmt.Errorf("scan outputs of %q: %w", walletID, err)
		return taken{}
	}
	type coin struct {
		key []byte
		fen uint64
	}
	var coins []coin
	var total uint64
	for it.First(); it.Valid() && total < need && len(coins) < maxRecoveryInputs; it.Next() {
		var o statepb.OutputRecord
		if err := proto.Unmarshal(it.Value(), &o); err != nil {
			a.fail("output %q: %v", it.Key(), err)
			break
		}
		if o.GetCampaignId() != "" {
			continue
		}
		coins = append(coins, coin{append([]byte(nil), it.Key()...), o.GetAmountFen()})
		total = satAdd(total, o.GetAmountFen())
	}
	if err := it.Close(); err != nil && a.err == nil {
		a.err = fmt.Errorf("scan outputs of %q: %w", walletID, err)
	}
	if a.err != nil || total == 0 {
		return taken{}
	}
	for _, c := range coins {
		a.del(c.key)
		a.outs[string(c.key)] = nil
	}
	a.debit(w, total, uint64(len(coins)))
	take := min(total, need)
	if change := total - take; change > 0 {
		a.out(w, change)
	}
	a.addHistory(w, a.off.t, &statepb.HistoryEntry{OutFen: take, Counterparty: payee})
	a.setWallet(w)
	return taken{take, len(coins)}
}
