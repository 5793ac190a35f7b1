package state

import (
	"slices"

	"github.com/dcep/dcep/state/statepb"
)

// Red packets are unspent outputs carrying a condition, the campaign id
// (OutputRecord.campaign_id). The rule that decides whether a move may
// spend them does not depend on the kind, only on the move's shape (money
// leaving for escrow or destruction, payees and their kinds, ledger time):
//
//  1. Only moveMoney spends them; every other spender (checkInputs) refuses
//     them with INPUT_RESTRICTED.
//  2. One campaign's packets per transaction (RED_PACKET_MIXED), so that a
//     payment's red-packet part has one set of conditions (refunds return
//     it under them).
//  3. Nothing may be destroyed or moved into escrow (a return, a purse, a
//     campaign), and the payer may not pay itself (that would turn red-packet
//     money into plain change): INPUT_RESTRICTED.
//  4. Every payee must be a merchant wallet: a bank reserve (redeem) is
//     INPUT_RESTRICTED ("not redeemable"), any other kind (a person, a
//     government, a sub-wallet) RED_PACKET_NOT_MERCHANT; and eligible for
//     the campaign, by region or on its list:
//     RED_PACKET_MERCHANT_INELIGIBLE.
//  5. Ledger time inside [spend_start, spend_end): RED_PACKET_OUTSIDE_WINDOW.
//
// Red-packet money is used first: it pays the payees in order, and what is
// left of it comes back as a conditioned change output after the plain
// change. Merchants receive plain money. Each merchant payee gets a payment
// record with the red-packet part (refund.go), and the campaign counts the
// red-packet money spent.

// redPackets is the conditioned part of a move's inputs.
type redPackets struct {
	campaign string
	fen      uint64
	inputs   []rpInput

	// Decided by checkRedPackets.
	c *statepb.CampaignRecord
	// perPayee is the red-packet money in each payee's output.
	perPayee []uint64
	usedFen  uint64
	// changeFen is the conditioned change (the last output).
	changeFen uint64
}

type rpInput struct {
	op  *statepb.Outpoint
	fen uint64
}

// add collects one conditioned input; rp nil means the caller does not
// apply conditions, so the input is refused.
func (rp *redPackets) add(field string, i int, in *statepb.Outpoint, o *statepb.OutputRecord) *statepb.Error {
	if rp == nil {
		return statepb.Errorf(statepb.Code_CODE_INPUT_RESTRICTED, "%s[%d]: a red packet of campaign %q cannot be spent by this kind", field, i, o.GetCampaignId())
	}
	if rp.campaign != "" && rp.campaign != o.GetCampaignId() {
		return statepb.Errorf(statepb.Code_CODE_RED_PACKET_MIXED, "%s[%d]: red packets of campaigns %q and %q in one transaction (one campaign's packets per transaction)", field, i, rp.campaign, o.GetCampaignId())
	}
	rp.campaign = o.GetCampaignId()
	rp.fen += o.GetAmountFen() // the inputs' total is overflow-checked by readInputs
	rp.inputs = append(rp.inputs, rpInput{in, o.GetAmountFen()})
	return nil
}

// checkRedPackets applies the rule above to a move whose inputs, payees and
// statuses were checked, and splits the change into plain and conditioned
// parts. outs are the payees then the change; it returns the outputs to
// create.
func (a *applier) checkRedPackets(m *move, outs []*statepb.Payee) ([]*statepb.Payee, *statepb.Error) {
	rp := &m.rp
	if rp.campaign == "" {
		return outs, nil
	}
	c := a.campaign(rp.campaign)
	if c == nil {
		a.fail("red packet of unknown campaign %q", rp.campaign)
		return outs, nil
	}
	rp.c = c
	if m.destroyFen > 0 {
		return nil, statepb.Errorf(statepb.Code_CODE_INPUT_RESTRICTED, "%s.inputs: red packets of campaign %q only pay its eligible merchants", m.field, c.GetId())
	}
	var total uint64
	for i, p := range m.payees {
		field := m.payeeField
		if field == "" {
			field = m.field + ".payees[" + itoa(i) + "]"
		}
		if p.GetWalletId() == m.payer.GetId() {
			return nil, statepb.Errorf(statepb.Code_CODE_INPUT_RESTRICTED, "%s: a payment to oneself cannot use red packets (campaign %q)", field, c.GetId())
		}
		w := a.wallet(p.GetWalletId())
		switch w.GetKind() {
		case statepb.WalletKind_WALLET_KIND_MERCHANT:
		case statepb.WalletKind_WALLET_KIND_BANK_RESERVE, statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE:
			return nil, statepb.Errorf(statepb.Code_CODE_INPUT_RESTRICTED, "%s: red packets (campaign %q) are not redeemable to a bank", field, c.GetId())
		default:
			return nil, statepb.Errorf(statepb.Code_CODE_RED_PACKET_NOT_MERCHANT, "%s: %q is a %s wallet; red packets (campaign %q) only pay merchants", field, w.GetId(), walletKind(w.GetKind()), c.GetId())
		}
		if !a.eligible(c, w) {
			return nil, statepb.Errorf(statepb.Code_CODE_RED_PACKET_MERCHANT_INELIGIBLE, "%s: merchant %q (region %q) is not eligible for campaign %q", field, w.GetId(), w.GetRegionCode(), c.GetId())
		}
		total += p.GetAmountFen() // bounded by the inputs' total
	}
	if a.timeMs < c.GetSpendStartMs() || a.timeMs >= c.GetSpendEndMs() {
		return nil, statepb.Errorf(statepb.Code_CODE_RED_PACKET_OUTSIDE_WINDOW, "%s.inputs: red packets of campaign %q are spendable from %s to %s (ledger time now %s)",
			m.field, c.GetId(), fmtTime(c.GetSpendStartMs()), fmtTime(c.GetSpendEndMs()), fmtTime(a.timeMs))
	}
	// Red-packet money first, payee by payee.
	left := rp.fen
	rp.perPayee = make([]uint64, len(m.payees))
	for i, p := range m.payees {
		x := min(left, p.GetAmountFen())
		rp.perPayee[i] = x
		left -= x
	}
	rp.usedFen = rp.fen - left
	rp.changeFen = left
	if left == 0 {
		return outs, nil
	}
	// The change (the last output, which exists: total − need ≥ left > 0)
	// splits into plain change and conditioned change, in that order.
	last := outs[len(outs)-1]
	if last.GetWalletId() != m.payer.GetId() || last.GetAmountFen() < left || len(outs) != len(m.payees)+1 {
		a.fail("red-packet change %d without matching change output", left)
		return outs, nil
	}
	outs = slices.Clone(outs[:len(outs)-1])
	if plain := last.GetAmountFen() - left; plain > 0 {
		outs = append(outs, &statepb.Payee{WalletId: m.payer.GetId(), AmountFen: plain})
	}
	return append(outs, &statepb.Payee{WalletId: m.payer.GetId(), AmountFen: left}), nil
}

// eligible reports whether merchant wallet w may be paid with the
// campaign's red packets: by its region, or on the campaign's list.
func (a *applier) eligible(c *statepb.CampaignRecord, w *statepb.WalletRecord) bool {
	if w.GetKind() != statepb.WalletKind_WALLET_KIND_MERCHANT {
		return false
	}
	if w.GetRegionCode() != "" && slices.Contains(c.GetRegionCodes(), w.GetRegionCode()) {
		return true
	}
	return a.has(keyCampaignMerchant(c.GetId(), w.GetId()))
}

// limitWallet is the wallet whose tier limits a limited move counts
// against.
func (m *move) limitWallet() *statepb.WalletRecord {
	if m.limitsOf != nil {
		return m.limitsOf
	}
	return m.payer
}

// outputCondition is the campaign condition of output i of n: a payee's
// (m.conds), or the conditioned change (the last output).
func (m *move) outputCondition(i, n int) string {
	if i < len(m.conds) {
		return m.conds[i]
	}
	if m.rp.changeFen > 0 && i == n-1 {
		return m.rp.campaign
	}
	return ""
}

// createRedPacket writes a red-packet output of campaign to w, adds it to
// the campaign's live index and figures; the caller writes w.
func (a *applier) createRedPacket(txID []byte, index uint32, w *statepb.WalletRecord, fen uint64, campaign string) {
	c := a.campaign(campaign)
	if c == nil {
		a.fail("red packet of unknown campaign %q", campaign)
		return
	}
	op := &statepb.Outpoint{TxId: txID, Index: index}
	a.putOutput(op, w, &statepb.OutputRecord{AmountFen: fen, CampaignId: campaign})
	a.setRaw(keyLive(campaign, w.GetId(), op), be64(fen))
	c.LiveFen += fen // ≤ funded
	c.LiveOutputs++
	a.setCampaign(c)
}

// programmableMoved finishes a move that was written: the spent red
// packets leave the campaign's live index and count as spent, and each
// merchant paid by a transfer or a sub-wallet charge gets a payment record.
func (a *applier) programmableMoved(m *move, outs []*statepb.Payee, credits []credit) {
	if rp := &m.rp; rp.campaign != "" && rp.c != nil {
		c := rp.c
		for _, in := range rp.inputs {
			a.del(keyLive(c.GetId(), m.payer.GetId(), in.op))
			if c.GetLiveFen() < in.fen || c.GetLiveOutputs() == 0 {
				a.fail("campaign %q: live %d fen over %d outputs, spending %d", c.GetId(), c.GetLiveFen(), c.GetLiveOutputs(), in.fen)
				return
			}
			c.LiveFen -= in.fen
			c.LiveOutputs--
		}
		c.SpentFen += rp.usedFen
		c.Payments++
		a.setCampaign(c)
	}
	var kind string
	switch m.t.body.GetKind().(type) {
	case *statepb.Tx_Transfer:
		kind = "transfer"
	case *statepb.Tx_ChargeSubWallet:
		kind = "charge_sub_wallet"
	default:
		return
	}
	for _, cr := range credits {
		if cr.w.GetKind() != statepb.WalletKind_WALLET_KIND_MERCHANT {
			continue
		}
		p := &statepb.PaymentRecord{
			TxId: m.t.id[:], MerchantWalletId: cr.w.GetId(), PayerWalletId: m.payer.GetId(), Kind: kind,
			AmountFen: cr.fen, TimeMs: a.timeMs, LogIndex: a.index,
		}
		for i, pp := range m.payees {
			if i < len(m.rp.perPayee) && pp.GetWalletId() == cr.w.GetId() {
				p.RedPacketFen += m.rp.perPayee[i]
			}
		}
		if p.RedPacketFen > 0 {
			p.CampaignId = m.rp.campaign
		}
		a.set(keyPayment(cr.w.GetId(), m.t.id[:]), p)
	}
}
