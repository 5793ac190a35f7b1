package state

import (
	"github.com/dcep/dcep/state/statepb"
)

// Refunds (SPEC §5): a merchant returns all or part of a payment it
// received (a transfer or a sub-wallet charge, recorded in its payment
// record, campaign_spend.go), from its own money, to the payer. The
// self-funded part is returned first, then the red-packet part, which keeps
// its campaign condition while the spending window is open; once it has
// closed, the red-packet part goes to the campaign's sponsor instead (it
// would only be reclaimed). What is still refundable is bounded by the
// payment record.

func (a *applier) refundPayment(t *decodedTx, k *statepb.RefundPayment) (uint32, *statepb.Error) {
	const f = "refund_payment"
	m := a.wallet(k.GetMerchantWalletId())
	if m.GetKind() != statepb.WalletKind_WALLET_KIND_MERCHANT {
		return 0, statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s.merchant_wallet_id: %q is a %s wallet; merchants refund payments", f, m.GetId(), walletKind(m.GetKind()))
	}
	var p statepb.PaymentRecord
	if !a.get(keyPayment(m.GetId(), k.GetPaymentTxId()), &p) {
		return 0, statepb.Errorf(statepb.Code_CODE_PAYMENT_NOT_FOUND, "%s.payment_tx_id: %x is not a payment %q received", f, k.GetPaymentTxId(), m.GetId())
	}
	left := p.GetAmountFen() - p.GetRefundedFen()
	if k.GetAmountFen() > left {
		return 0, statepb.Errorf(statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT, "%s.amount_fen: %s, but only %s of the payment of %s is still refundable", f, statepb.Fen(k.GetAmountFen()), statepb.Fen(left), statepb.Fen(p.GetAmountFen()))
	}
	if len(p.GetRefunds()) >= statepb.MaxRefundsPerPayment {
		return 0, statepb.Errorf(statepb.Code_CODE_REFUND_TOO_MANY, "%s.payment_tx_id: the payment already has %d refunds (max %d)", f, len(p.GetRefunds()), statepb.MaxRefundsPerPayment)
	}
	selfLeft := (p.GetAmountFen() - p.GetRedPacketFen()) - (p.GetRefundedFen() - p.GetRefundedRedPacketFen())
	plain := min(k.GetAmountFen(), selfLeft)
	rpPart := k.GetAmountFen() - plain // ≤ red packet − refunded red packet
	var payees []*statepb.Payee
	var conds []string
	if plain > 0 {
		payees, conds = append(payees, &statepb.Payee{WalletId: p.GetPayerWalletId(), AmountFen: plain}), append(conds, "")
	}
	var c *statepb.CampaignRecord
	rpTo := ""
	if rpPart > 0 {
		if c = a.campaign(p.GetCampaignId()); c == nil {
			a.fail("payment %x: campaign %q missing", k.GetPaymentTxId(), p.GetCampaignId())
			return 0, nil
		}
		if a.timeMs < c.GetSpendEndMs() {
			rpTo = p.GetPayerWalletId()
			payees, conds = append(payees, &statepb.Payee{WalletId: rpTo, AmountFen: rpPart}), append(conds, c.GetId())
		} else {
			rpTo = a.sponsorOrReserve(c)
			payees, conds = append(payees, &statepb.Payee{WalletId: rpTo, AmountFen: rpPart}), append(conds, "")
		}
	}
	n, rej := a.moveMoney(&move{
		t: t, field: f, payerField: f + ".merchant_wallet_id", payeeField: f + ".payment_tx_id", // its payer (or sponsor)
		payer: m, inputs: k.GetInputs(), payees: payees, conds: conds,
	})
	if rej != nil {
		return 0, rej
	}
	p.RefundedFen += k.GetAmountFen()
	p.RefundedRedPacketFen += rpPart
	p.Refunds = append(p.Refunds, &statepb.RefundEntry{TxId: t.id[:], SelfFundedFen: plain, RedPacketFen: rpPart, RedPacketTo: rpTo, TimeMs: a.timeMs})
	a.set(keyPayment(m.GetId(), k.GetPaymentTxId()), &p)
	if c != nil {
		if rpTo == p.GetPayerWalletId() {
			c.RefundedToHolderFen += rpPart
		} else {
			c.RefundedToSponsorFen += rpPart
		}
		a.setCampaign(c)
	}
	return n, nil
}

// sponsorOrReserve is where money returning to a campaign's sponsor goes:
// the sponsor's wallet, or its bank's reserve if that wallet was closed.
func (a *applier) sponsorOrReserve(c *statepb.CampaignRecord) string {
	s := a.wallet(c.GetSponsorWalletId())
	if s.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED {
		return a.bank(s.GetBankId()).GetBank().GetReserveWalletId()
	}
	return s.GetId()
}

// refundOutputOwner is the owner of output index of a recorded refund:
// read back from the payment's refund entry (the outputs that exist are
// the self-funded part, the red-packet part, the change, in that order).
func (a *applier) refundOutputOwner(rec *statepb.TxRecord, k *statepb.RefundPayment, index uint32) string {
	var p statepb.PaymentRecord
	if !a.get(keyPayment(k.GetMerchantWalletId(), k.GetPaymentTxId()), &p) {
		return ""
	}
	for _, e := range p.GetRefunds() {
		if string(e.GetTxId()) != string(rec.GetResult().GetTxId()) {
			continue
		}
		var owners []string
		if e.GetSelfFundedFen() > 0 {
			owners = append(owners, p.GetPayerWalletId())
		}
		if e.GetRedPacketFen() > 0 {
			owners = append(owners, e.GetRedPacketTo())
		}
		if int(index) < len(owners) {
			return owners[index]
		}
		return k.GetMerchantWalletId()
	}
	return ""
}
