package state

import (
	"math/bits"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// What the regulator indexes (audit.go) count for the kinds of SPEC §4
// (offline.go) and §5 (programmable.go). Each committed transaction counts
// for one bank, the payer's where money moves:
//
//	open_purse          the wallet's bank; wallet → offline escrow (the certificate's amount)
//	deposit_offline     the depositing (payee) wallet's bank; escrow → wallet, what it
//	                    credited; never a large payment (it bundles offline payments,
//	                    each under the offline cap)
//	close_purse         the purse wallet's bank; no volume (the rest returns to the wallet)
//	create_campaign     the sponsor's bank; sponsor → campaign escrow (packets × amount)
//	add_campaign_merchants, draw_campaign
//	                    the sponsor's bank; no volume
//	enrol_campaign      the enrolling wallet's bank; no volume
//	refund_payment      the merchant's bank; merchant → the payment's payer
//	create/push/revoke_sub_wallet
//	                    the (parent) wallet's bank; no volume
//	fund_sub_wallet     parent → sub-wallet; withdraw_sub_wallet: sub-wallet → parent
//	charge_sub_wallet   the sub-wallet's bank; sub-wallet → platform
//
// Red packets granted and reclaimed by scheduled work are not transactions
// and are not counted; spending one is a transfer (audit.go).

// movementOfMore is movementOf for the kinds above; ok is false for any
// other kind.
func (a *applier) movementOfMore(t *decodedTx) (m movement, ok bool) {
	switch k := t.body.GetKind().(type) {
	case *statepb.Tx_OpenPurse:
		w := a.wallet(k.OpenPurse.GetWalletId())
		var cb statepb.PurseCertBody
		if proto.Unmarshal(k.OpenPurse.GetCert().GetBody(), &cb) != nil {
			return movement{bank: w.GetBankId()}, true // the kind accepted it: cannot happen
		}
		return movement{bank: w.GetBankId(), payer: w.GetId(), amountFen: cb.GetAmountFen(), payment: true}, true
	case *statepb.Tx_DepositOffline:
		w := a.wallet(k.DepositOffline.GetWalletId())
		var rec statepb.OfflineTxRecord
		a.get(keyOfflineTx(t.id[:]), &rec)
		return movement{bank: w.GetBankId(), payer: w.GetId(), amountFen: rec.GetCreditedFen(), payment: true, notLarge: true}, true
	case *statepb.Tx_ClosePurse:
		var p statepb.PurseRecord
		a.get(keyPurse(k.ClosePurse.GetPurseId()), &p)
		return movement{bank: p.GetBankId()}, true
	case *statepb.Tx_CreateCampaign:
		c := k.CreateCampaign
		w := a.wallet(c.GetSponsorWalletId())
		hi, fen := bits.Mul64(uint64(c.GetPacketCount()), c.GetPacketFen())
		if hi != 0 {
			fen = ^uint64(0) // the kind refused an overflow: cannot happen
		}
		return movement{bank: w.GetBankId(), payer: w.GetId(), amountFen: fen, payment: true}, true
	case *statepb.Tx_AddCampaignMerchants:
		return movement{bank: a.sponsorBank(k.AddCampaignMerchants.GetCampaignId())}, true
	case *statepb.Tx_DrawCampaign:
		return movement{bank: a.sponsorBank(k.DrawCampaign.GetCampaignId())}, true
	case *statepb.Tx_EnrolCampaign:
		return movement{bank: a.wallet(k.EnrolCampaign.GetWalletId()).GetBankId()}, true
	case *statepb.Tx_RefundPayment:
		r := k.RefundPayment
		w := a.wallet(r.GetMerchantWalletId())
		m := movement{bank: w.GetBankId(), payer: w.GetId(), amountFen: r.GetAmountFen(), payment: true}
		if a.isLarge(m.amountFen) {
			var p statepb.PaymentRecord
			if a.get(keyPayment(w.GetId(), r.GetPaymentTxId()), &p) {
				m.payees = a.addLeg(nil, p.GetPayerWalletId(), m.amountFen)
			}
		}
		return m, true
	case *statepb.Tx_CreateSubWallet:
		return movement{bank: a.wallet(k.CreateSubWallet.GetParentWalletId()).GetBankId()}, true
	case *statepb.Tx_PushSubWallet:
		return movement{bank: a.wallet(k.PushSubWallet.GetSubWalletId()).GetBankId()}, true
	case *statepb.Tx_RevokeSubWallet:
		return movement{bank: a.wallet(k.RevokeSubWallet.GetSubWalletId()).GetBankId()}, true
	case *statepb.Tx_FundSubWallet:
		sub := a.wallet(k.FundSubWallet.GetSubWalletId())
		return a.legMovement(sub.GetParentWalletId(), sub.GetId(), k.FundSubWallet.GetAmountFen()), true
	case *statepb.Tx_WithdrawSubWallet:
		sub := a.wallet(k.WithdrawSubWallet.GetSubWalletId())
		return a.legMovement(sub.GetId(), sub.GetParentWalletId(), k.WithdrawSubWallet.GetAmountFen()), true
	case *statepb.Tx_ChargeSubWallet:
		return a.legMovement(k.ChargeSubWallet.GetSubWalletId(), k.ChargeSubWallet.GetPlatformWalletId(), k.ChargeSubWallet.GetAmountFen()), true
	}
	return movement{}, false
}

// legMovement is fen paid from one wallet to another, counted for the
// payer's bank.
func (a *applier) legMovement(payer, payee string, fen uint64) movement {
	w := a.wallet(payer)
	m := movement{bank: w.GetBankId(), payer: payer, amountFen: fen, payment: true}
	if a.isLarge(fen) {
		m.payees = a.addLeg(nil, payee, fen)
	}
	return m
}

// sponsorBank is the bank of a campaign's sponsor wallet.
func (a *applier) sponsorBank(campaign string) string {
	c := a.campaign(campaign)
	if c == nil {
		return ""
	}
	return a.wallet(c.GetSponsorWalletId()).GetBankId()
}
