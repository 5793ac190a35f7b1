package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/dcep/dcep/state/statepb"
)

// Programmable money (SPEC §5): red-packet campaigns (campaign*.go),
// sub-wallets pushed to platforms (subwallet.go), merchants' payments and
// refunds (refund.go). This file dispatches the kinds (tx.proto oneof
// 60–79) and holds what they share: key layout, the applier's campaign
// cache, raw reads. state/DESIGN.md, "Programmable money", has the rules.

// Key layout (besides keys.go's tables):
var (
	prefixCampaign  = []byte("c:") // + campaign id → statepb.CampaignRecord
	prefixCampaignE = []byte("e:") // + campaign id + 0x00 + table byte + … (the campaign's tables below)
	prefixSubWallet = []byte("x:") // + sub-wallet id → statepb.SubWalletRecord
	prefixPayment   = []byte("y:") // + merchant id + 0x00 + tx id → statepb.PaymentRecord
)

// Tables of one campaign, under "e:" | campaign id | 0x00 | table.
const (
	tabEnrolment byte = 'n' // + number(8) → statepb.EnrolmentRecord
	tabEnrolled  byte = 'w' // + wallet id → enrolment number(8)
	tabWinner    byte = 'k' // + rank(8) → statepb.WinnerRecord
	tabMerchant  byte = 'm' // + merchant id → empty (on the list)
	tabLive      byte = 'l' // + owner + 0x00 + tx id + index(4) → amount(8): live red packets
)

func keyCampaign(id string) []byte { return cat(prefixCampaign, []byte(id)) }

func keyCampaignTab(id string, tab byte) []byte {
	return append(append(cat(prefixCampaignE, []byte(id)), 0), tab)
}

func keyEnrolment(id string, n uint64) []byte {
	return binary.BigEndian.AppendUint64(keyCampaignTab(id, tabEnrolment), n)
}

func keyEnrolled(id, wallet string) []byte {
	return append(keyCampaignTab(id, tabEnrolled), wallet...)
}

func keyWinner(id string, rank uint64) []byte {
	return binary.BigEndian.AppendUint64(keyCampaignTab(id, tabWinner), rank)
}

func keyCampaignMerchant(id, merchant string) []byte {
	return append(keyCampaignTab(id, tabMerchant), merchant...)
}

func keyLive(id, owner string, op *statepb.Outpoint) []byte {
	k := append(append(keyCampaignTab(id, tabLive), owner...), 0)
	return binary.BigEndian.AppendUint32(append(k, op.GetTxId()...), op.GetIndex())
}

func keySubWallet(id string) []byte { return cat(prefixSubWallet, []byte(id)) }

func keyPaymentPrefix(merchant string) []byte {
	return append(cat(prefixPayment, []byte(merchant)), 0)
}

func keyPayment(merchant string, txID []byte) []byte {
	return append(keyPaymentPrefix(merchant), txID...)
}

// programmableSigners returns who must sign a programmable-money kind, and
// false for any other kind.
func (a *applier) programmableSigners(body *statepb.Tx) ([]signer, *statepb.Error, bool) {
	switch k := body.GetKind().(type) {
	case *statepb.Tx_CreateCampaign:
		s, rej := a.ownerSigner("create_campaign.sponsor_wallet_id", k.CreateCampaign.GetSponsorWalletId())
		return s, rej, true
	case *statepb.Tx_AddCampaignMerchants:
		s, rej := a.sponsorSigner("add_campaign_merchants.campaign_id", k.AddCampaignMerchants.GetCampaignId())
		return s, rej, true
	case *statepb.Tx_DrawCampaign:
		s, rej := a.sponsorSigner("draw_campaign.campaign_id", k.DrawCampaign.GetCampaignId())
		return s, rej, true
	case *statepb.Tx_EnrolCampaign:
		s, rej := a.ownerSigner("enrol_campaign.wallet_id", k.EnrolCampaign.GetWalletId())
		return s, rej, true
	case *statepb.Tx_RefundPayment:
		s, rej := a.ownerSigner("refund_payment.merchant_wallet_id", k.RefundPayment.GetMerchantWalletId())
		return s, rej, true
	case *statepb.Tx_CreateSubWallet:
		s, rej := a.ownerSigner("create_sub_wallet.parent_wallet_id", k.CreateSubWallet.GetParentWalletId())
		return s, rej, true
	case *statepb.Tx_FundSubWallet:
		s, rej := a.holderSigner("fund_sub_wallet.sub_wallet_id", k.FundSubWallet.GetSubWalletId())
		return s, rej, true
	case *statepb.Tx_PushSubWallet:
		s, rej := a.holderSigner("push_sub_wallet.sub_wallet_id", k.PushSubWallet.GetSubWalletId())
		return s, rej, true
	case *statepb.Tx_RevokeSubWallet:
		s, rej := a.holderSigner("revoke_sub_wallet.sub_wallet_id", k.RevokeSubWallet.GetSubWalletId())
		return s, rej, true
	case *statepb.Tx_WithdrawSubWallet:
		s, rej := a.holderSigner("withdraw_sub_wallet.sub_wallet_id", k.WithdrawSubWallet.GetSubWalletId())
		return s, rej, true
	case *statepb.Tx_ChargeSubWallet:
		s, rej := a.ownerSigner("charge_sub_wallet.platform_wallet_id", k.ChargeSubWallet.GetPlatformWalletId())
		return s, rej, true
	}
	return nil, nil, false
}

// sponsorSigner is the current key of a campaign's sponsor wallet.
func (a *applier) sponsorSigner(field, campaignID string) ([]signer, *statepb.Error) {
	c := a.campaign(campaignID)
	if c == nil {
		return nil, statepb.Errorf(statepb.Code_CODE_CAMPAIGN_NOT_FOUND, "%s: %q", field, campaignID)
	}
	s, rej := a.ownerSigner(field+": sponsor", c.GetSponsorWalletId())
	if rej != nil {
		a.fail("campaign %q: sponsor wallet %q missing", campaignID, c.GetSponsorWalletId())
	}
	return s, rej
}

// holderSigner is the authority of a sub-wallet: its parent wallet's
// current key (a sub-wallet has no key of its own).
func (a *applier) holderSigner(field, subID string) ([]signer, *statepb.Error) {
	sub := a.wallet(subID)
	if sub == nil {
		return nil, statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FOUND, "%s: %q", field, subID)
	}
	if sub.GetKind() != statepb.WalletKind_WALLET_KIND_SUB_WALLET || sub.GetParentWalletId() == "" {
		return nil, statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s: %q is a %s wallet, not a sub-wallet", field, subID, walletKind(sub.GetKind()))
	}
	parent := a.wallet(sub.GetParentWalletId())
	if parent == nil {
		a.fail("sub-wallet %q: parent %q missing", subID, sub.GetParentWalletId())
		return nil, statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FOUND, "%s: parent %q", field, sub.GetParentWalletId())
	}
	return []signer{{parent.GetPublicKey(), "the holder of wallet " + parent.GetId() + " (parent of " + subID + ")"}}, nil
}

// executeProgrammable applies a programmable-money kind; false for any
// other kind.
func (a *applier) executeProgrammable(t *decodedTx) (uint32, *statepb.Error, bool) {
	switch k := t.body.GetKind().(type) {
	case *statepb.Tx_CreateCampaign:
		n, rej := a.createCampaign(t, k.CreateCampaign)
		return n, rej, true
	case *statepb.Tx_AddCampaignMerchants:
		return 0, a.addCampaignMerchants(t, k.AddCampaignMerchants), true
	case *statepb.Tx_EnrolCampaign:
		return 0, a.enrolCampaign(t, k.EnrolCampaign), true
	case *statepb.Tx_DrawCampaign:
		n, rej := a.drawCampaign(t, k.DrawCampaign)
		return n, rej, true
	case *statepb.Tx_RefundPayment:
		n, rej := a.refundPayment(t, k.RefundPayment)
		return n, rej, true
	case *statepb.Tx_CreateSubWallet:
		return 0, a.createSubWallet(t, k.CreateSubWallet), true
	case *statepb.Tx_FundSubWallet:
		n, rej := a.fundSubWallet(t, k.FundSubWallet)
		return n, rej, true
	case *statepb.Tx_PushSubWallet:
		return 0, a.pushSubWallet(t, k.PushSubWallet), true
	case *statepb.Tx_RevokeSubWallet:
		return 0, a.revokeSubWallet(t, k.RevokeSubWallet), true
	case *statepb.Tx_WithdrawSubWallet:
		n, rej := a.withdrawSubWallet(t, k.WithdrawSubWallet)
		return n, rej, true
	case *statepb.Tx_ChargeSubWallet:
		n, rej := a.chargeSubWallet(t, k.ChargeSubWallet)
		return n, rej, true
	}
	return 0, nil, false
}

// programmableOutputOwner is the wallet that output index of a recorded
// programmable-money transaction was created for (see outputOwner), and
// false for any other kind.
func (a *applier) programmableOutputOwner(rec *statepb.TxRecord, body *statepb.Tx, index uint32) (string, bool) {
	pair := func(first, rest string) string {
		if index == 0 {
			return first
		}
		return rest
	}
	switch k := body.GetKind().(type) {
	case *statepb.Tx_CreateCampaign:
		// 0: change to the sponsor; 1: what was reclaimed at the end.
		if index == 1 {
			if c := a.campaign(k.CreateCampaign.GetCampaignId()); c != nil && c.GetReclaimedTo() != "" {
				return c.GetReclaimedTo(), true
			}
		}
		return k.CreateCampaign.GetSponsorWalletId(), true
	case *statepb.Tx_DrawCampaign:
		var w statepb.WinnerRecord
		if a.get(keyWinner(k.DrawCampaign.GetCampaignId(), uint64(index)), &w) {
			return w.GetWalletId(), true
		}
		return "", true // not granted (yet): in nobody's wallet
	case *statepb.Tx_RefundPayment:
		return a.refundOutputOwner(rec, k.RefundPayment, index), true
	case *statepb.Tx_FundSubWallet:
		sub := a.wallet(k.FundSubWallet.GetSubWalletId())
		return pair(sub.GetId(), sub.GetParentWalletId()), true
	case *statepb.Tx_WithdrawSubWallet:
		sub := a.wallet(k.WithdrawSubWallet.GetSubWalletId())
		return pair(sub.GetParentWalletId(), sub.GetId()), true
	case *statepb.Tx_ChargeSubWallet:
		return pair(k.ChargeSubWallet.GetPlatformWalletId(), k.ChargeSubWallet.GetSubWalletId()), true
	}
	return "", false
}

// --- the applier's campaign cache ---

// progCache holds the campaigns one Apply call read or changed. A campaign
// changed by many transactions of a block (every enrolment counts) is
// written once, at the end of the block, in the order of its first change,
// like wallets (flushCampaigns).
type progCache struct {
	camps    map[string]*statepb.CampaignRecord
	dirty    []string
	dirtySet map[string]bool
}

// campaign returns a campaign as this call has made it so far, or nil.
func (a *applier) campaign(id string) *statepb.CampaignRecord {
	if a.prog.camps == nil {
		a.prog.camps, a.prog.dirtySet = map[string]*statepb.CampaignRecord{}, map[string]bool{}
	}
	if c, ok := a.prog.camps[id]; ok {
		return c
	}
	c := &statepb.CampaignRecord{}
	if !a.get(keyCampaign(id), c) {
		c = nil
	}
	if a.err == nil {
		a.prog.camps[id] = c
	}
	return c
}

// setCampaign records that a campaign changed; flushCampaigns writes it.
func (a *applier) setCampaign(c *statepb.CampaignRecord) {
	if a.prog.camps == nil {
		a.prog.camps, a.prog.dirtySet = map[string]*statepb.CampaignRecord{}, map[string]bool{}
	}
	a.prog.camps[c.GetId()] = c
	if !a.prog.dirtySet[c.GetId()] {
		a.prog.dirtySet[c.GetId()] = true
		a.prog.dirty = append(a.prog.dirty, c.GetId())
	}
}

// flushCampaigns writes the block's changed campaigns in first-change order.
func (a *applier) flushCampaigns() {
	for _, id := range a.prog.dirty {
		a.set(keyCampaign(id), a.prog.camps[id])
	}
	a.prog.dirty = a.prog.dirty[:0]
	clear(a.prog.dirtySet)
}

// getBytes reads a raw value through the batch.
func (a *applier) getBytes(key []byte) ([]byte, bool) {
	if a.err != nil {
		return nil, false
	}
	v, c, err := a.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		a.err = fmt.Errorf("read %q: %w", key, err)
		return nil, false
	}
	defer c.Close()
	return append([]byte(nil), v...), true
}

// has reports whether key exists, through the batch.
func (a *applier) has(key []byte) bool {
	_, ok := a.getBytes(key)
	return ok
}

// addLedgerHistory appends a history entry for work the ledger did by
// itself (a red packet granted or reclaimed), under the transaction id it
// belongs to (the draw; the campaign's creation).
func (a *applier) addLedgerHistory(w *statepb.WalletRecord, txID []byte, kind string, e *statepb.HistoryEntry) {
	e.TxId, e.Kind, e.TimeMs, e.LogIndex = txID, kind, a.timeMs, a.index
	e.BalanceFen = w.GetBalanceFen()
	a.set(keyHistory(w.GetId(), w.GetHistoryLen()), e)
	w.HistoryLen++
}

// putOutput writes an unspent output and credits its wallet; the caller
// writes the wallet. It is createOutput for outputs that carry a condition
// or have no transaction of their own.
func (a *applier) putOutput(op *statepb.Outpoint, w *statepb.WalletRecord, o *statepb.OutputRecord) {
	k := keyUnspent(w.GetId(), op)
	o.CreatedMs = a.timeMs
	v, err := deterministic.Marshal(o)
	if err != nil {
		a.fail("marshal output: %v", err)
		return
	}
	a.setRaw(k, v)
	a.outs[string(k)] = v
	sum := w.GetBalanceFen() + o.GetAmountFen()
	if sum < o.GetAmountFen() {
		a.fail("wallet %q: balance overflows", w.GetId())
		return
	}
	w.BalanceFen = sum
	w.UnspentCount++
	if o.GetCampaignId() == "" {
		a.noteOfflineCredit(op.GetTxId(), w)
	}
}

// dropOutput deletes an unspent output and debits its wallet; the caller
// writes the wallet.
func (a *applier) dropOutput(w *statepb.WalletRecord, op *statepb.Outpoint, fen uint64) {
	a.delOutput(keyUnspent(w.GetId(), op))
	a.debit(w, fen, 1)
}

// walletKind names a wallet kind for a rejection: recorded as the enum,
// printed "personal", "merchant", "government", "sub-wallet", "bank
// reserve", "bank guarantee".
func walletKind(k statepb.WalletKind) statepb.WalletKindName { return statepb.WalletKindName(k) }
