package state

import (
	"github.com/dcep/dcep/state/statepb"
)

// Sub-wallets pushed to a platform (SPEC §5). The holder creates a
// sub-wallet under their wallet (same bank, tier and region; no key of its
// own: every holder action on it is signed by the parent wallet's current
// key), funds it, and pushes it to a merchant platform with a per-payment
// cap, a daily cap and an expiry. The platform then charges it with its own
// key, paying itself, within those caps; charges also count against the
// parent wallet's tier limits (the money is the holder's). The holder can
// revoke at once and pull the money back.

// subWallet reads a sub-wallet's push state; a sub-wallet a bank
// registered (register_wallet) has none until it is first pushed.
func (a *applier) subWallet(w *statepb.WalletRecord) *statepb.SubWalletRecord {
	var r statepb.SubWalletRecord
	if a.get(keySubWallet(w.GetId()), &r) {
		return &r
	}
	return &statepb.SubWalletRecord{SubWalletId: w.GetId(), ParentWalletId: w.GetParentWalletId()}
}

// subAndParent returns a sub-wallet (authority checked it is one) and its
// parent.
func (a *applier) subAndParent(id string) (*statepb.WalletRecord, *statepb.WalletRecord) {
	sub := a.wallet(id)
	return sub, a.wallet(sub.GetParentWalletId())
}

func (a *applier) createSubWallet(t *decodedTx, k *statepb.CreateSubWallet) *statepb.Error {
	const f = "create_sub_wallet"
	parent := a.wallet(k.GetParentWalletId())
	if rej := notForKinds(f+".parent_wallet_id", parent, notParentKinds...); rej != nil {
		return rej
	}
	if rej := senderStatus(f+".parent_wallet_id", parent); rej != nil {
		return rej
	}
	if a.wallet(k.GetSubWalletId()) != nil {
		return statepb.Errorf(statepb.Code_CODE_WALLET_EXISTS, "%s.sub_wallet_id: %q already exists", f, k.GetSubWalletId())
	}
	sub := &statepb.WalletRecord{
		Id: k.GetSubWalletId(), BankId: parent.GetBankId(), Kind: statepb.WalletKind_WALLET_KIND_SUB_WALLET,
		Tier: parent.GetTier(), RegionCode: parent.GetRegionCode(), Status: statepb.WalletStatus_WALLET_STATUS_ACTIVE,
		ParentWalletId: parent.GetId(), CreatedMs: a.timeMs,
	}
	a.addHistory(sub, t, &statepb.HistoryEntry{Counterparty: parent.GetId()})
	a.setWallet(sub)
	a.addHistory(parent, t, &statepb.HistoryEntry{Counterparty: sub.GetId()})
	a.setWallet(parent)
	a.set(keySubWallet(sub.GetId()), &statepb.SubWalletRecord{SubWalletId: sub.GetId(), ParentWalletId: parent.GetId()})
	return nil
}

func (a *applier) fundSubWallet(t *decodedTx, k *statepb.FundSubWallet) (uint32, *statepb.Error) {
	sub, parent := a.subAndParent(k.GetSubWalletId())
	return a.moveMoney(&move{
		t: t, field: "fund_sub_wallet", payerField: "fund_sub_wallet.sub_wallet_id", // its parent payeeField: "fund_sub_wallet.sub_wallet_id",
		payer: parent, inputs: k.GetInputs(), payees: []*statepb.Payee{{WalletId: sub.GetId(), AmountFen: k.GetAmountFen()}},
	})
}

func (a *applier) withdrawSubWallet(t *decodedTx, k *statepb.WithdrawSubWallet) (uint32, *statepb.Error) {
	sub, parent := a.subAndParent(k.GetSubWalletId())
	return a.moveMoney(&move{
		t: t, field: "withdraw_sub_wallet", payerField: "withdraw_sub_wallet.sub_wallet_id", payeeField: "withdraw_sub_wallet.sub_wallet_id", // its parent
		payer: sub, inputs: k.GetInputs(), payees: []*statepb.Payee{{WalletId: parent.GetId(), AmountFen: k.GetAmountFen()}},
	})
}

func (a *applier) pushSubWallet(t *decodedTx, k *statepb.PushSubWallet) *statepb.Error {
	const f = "push_sub_wallet"
	sub, parent := a.subAndParent(k.GetSubWalletId())
	if rej := senderStatus(f+": parent "+parent.GetId(), parent); rej != nil {
		return rej
	}
	if sub.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED {
		return statepb.Errorf(statepb.Code_CODE_WALLET_CLOSED, "%s.sub_wallet_id: wallet %q is closed", f, sub.GetId())
	}
	p := a.wallet(k.GetPlatformWalletId())
	if rej := platformStatus(f+".platform_wallet_id", k.GetPlatformWalletId(), p); rej != nil {
		return rej
	}
	if k.GetExpiresMs() <= a.timeMs {
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_EXPIRED, "%s.expires_ms: %s is not after ledger time %s", f, fmtTime(k.GetExpiresMs()), fmtTime(a.timeMs))
	}
	r := a.subWallet(sub)
	r.PlatformWalletId, r.MaxPaymentFen, r.MaxDailyFen, r.ExpiresMs = p.GetId(), k.GetMaxPaymentFen(), k.GetMaxDailyFen(), k.GetExpiresMs()
	r.PushedMs, r.Revoked, r.RevokedMs = a.timeMs, false, 0
	a.set(keySubWallet(sub.GetId()), r)
	a.addHistory(sub, t, &statepb.HistoryEntry{Counterparty: p.GetId()})
	a.setWallet(sub)
	return nil
}

// platformStatus checks the wallet a sub-wallet is pushed to or charged by:
// an active merchant wallet.
func platformStatus(field, id string, p *statepb.WalletRecord) *statepb.Error {
	if p == nil {
		return statepb.Errorf(statepb.Code_CODE_PAYEE_NOT_FOUND, "%s: no wallet %q", field, id)
	}
	if p.GetKind() != statepb.WalletKind_WALLET_KIND_MERCHANT {
		return statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s: %q is a %s wallet, not a merchant platform", field, id, walletKind(p.GetKind()))
	}
	switch p.GetStatus() {
	case statepb.WalletStatus_WALLET_STATUS_FROZEN:
		return statepb.Errorf(statepb.Code_CODE_PAYEE_FROZEN, "%s: wallet %q is frozen", field, id)
	case statepb.WalletStatus_WALLET_STATUS_CLOSED:
		return statepb.Errorf(statepb.Code_CODE_PAYEE_CLOSED, "%s: wallet %q is closed", field, id)
	}
	return nil
}

func (a *applier) revokeSubWallet(t *decodedTx, k *statepb.RevokeSubWallet) *statepb.Error {
	sub, _ := a.subAndParent(k.GetSubWalletId())
	r := a.subWallet(sub)
	if r.GetPlatformWalletId() == "" || r.GetRevoked() {
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_NOT_PUSHED, "revoke_sub_wallet.sub_wallet_id: %q is not pushed to a platform", sub.GetId())
	}
	r.Revoked, r.RevokedMs = true, a.timeMs
	a.set(keySubWallet(sub.GetId()), r)
	a.addHistory(sub, t, &statepb.HistoryEntry{Counterparty: r.GetPlatformWalletId()})
	a.setWallet(sub)
	return nil
}

// chargeSubWallet: the platform charges a sub-wallet pushed to it. Checks,
// in order: the sub-wallet (exists, is one), the push (to this platform,
// not revoked, not expired, per-payment cap, daily cap), the parent's
// status, then the move (inputs, sufficiency, the platform as payee, the
// parent's tier limits, the platform's balance cap).
func (a *applier) chargeSubWallet(t *decodedTx, k *statepb.ChargeSubWallet) (uint32, *statepb.Error) {
	const f = "charge_sub_wallet"
	p := a.wallet(k.GetPlatformWalletId())
	sub := a.wallet(k.GetSubWalletId())
	if sub == nil {
		return 0, statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FOUND, "%s.sub_wallet_id: %q", f, k.GetSubWalletId())
	}
	if sub.GetKind() != statepb.WalletKind_WALLET_KIND_SUB_WALLET {
		return 0, statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s.sub_wallet_id: %q is a %s wallet, not a sub-wallet", f, sub.GetId(), walletKind(sub.GetKind()))
	}
	r := a.subWallet(sub)
	switch {
	case r.GetPlatformWalletId() == "":
		return 0, statepb.Errorf(statepb.Code_CODE_SUBWALLET_NOT_PUSHED, "%s.sub_wallet_id: %q is not pushed to any platform", f, sub.GetId())
	case r.GetPlatformWalletId() != p.GetId():
		return 0, statepb.Errorf(statepb.Code_CODE_SUBWALLET_WRONG_PLATFORM, "%s.platform_wallet_id: %q is pushed to %q, not to %q", f, sub.GetId(), r.GetPlatformWalletId(), p.GetId())
	case r.GetRevoked():
		return 0, statepb.Errorf(statepb.Code_CODE_SUBWALLET_REVOKED, "%s.sub_wallet_id: the holder revoked %q's push to %q at %s", f, sub.GetId(), p.GetId(), fmtTime(r.GetRevokedMs()))
	case a.timeMs >= r.GetExpiresMs():
		return 0, statepb.Errorf(statepb.Code_CODE_SUBWALLET_EXPIRED, "%s.sub_wallet_id: %q's push to %q expired at %s", f, sub.GetId(), p.GetId(), fmtTime(r.GetExpiresMs()))
	case k.GetAmountFen() > r.GetMaxPaymentFen():
		return 0, statepb.Errorf(statepb.Code_CODE_SUBWALLET_LIMIT_PAYMENT, "%s.amount_fen: %s exceeds %q's per-payment cap %s", f, statepb.Fen(k.GetAmountFen()), sub.GetId(), statepb.Fen(r.GetMaxPaymentFen()))
	}
	day := beijingDay(a.timeMs)
	var dayUsed uint64
	if r.GetSpendDay() == day {
		dayUsed = r.GetSpentDayFen()
	}
	if exceeds(r.GetMaxDailyFen(), dayUsed, k.GetAmountFen()) {
		return 0, statepb.Errorf(statepb.Code_CODE_SUBWALLET_LIMIT_DAILY, "%s.amount_fen: %s would take %q past its daily cap %s (%s charged today, Beijing time)", f, statepb.Fen(k.GetAmountFen()), sub.GetId(), statepb.Fen(r.GetMaxDailyFen()), statepb.Fen(dayUsed))
	}
	parent := a.wallet(sub.GetParentWalletId())
	if parent == nil {
		a.fail("sub-wallet %q: parent %q missing", sub.GetId(), sub.GetParentWalletId())
		return 0, nil
	}
	if rej := senderStatus(f+": parent "+parent.GetId(), parent); rej != nil {
		return 0, rej
	}
	n, rej := a.moveMoney(&move{
		t: t, field: f, payerField: f + ".sub_wallet_id", payeeField: f + ".platform_wallet_id",
		payer: sub, inputs: k.GetInputs(), payees: []*statepb.Payee{{WalletId: p.GetId(), AmountFen: k.GetAmountFen()}},
		limited: true, limitsOf: parent,
	})
	if rej != nil {
		return 0, rej
	}
	r.SpendDay, r.SpentDayFen = day, dayUsed+k.GetAmountFen() // ≤ the daily cap
	r.ChargedFen = satAdd(r.GetChargedFen(), k.GetAmountFen())
	r.Charges++
	a.set(keySubWallet(sub.GetId()), r)
	return n, nil
}
