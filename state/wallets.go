package state

import (
	"github.com/dcep/dcep/state/statepb"
)

// managedWallet returns the field and wallet id of a wallet-management kind
// (signed by the wallet's bank).
func managedWallet(body *statepb.Tx) (string, string) {
	switch k := body.GetKind().(type) {
	case *statepb.Tx_UpdateWallet:
		return "update_wallet.wallet_id", k.UpdateWallet.GetWalletId()
	case *statepb.Tx_RotateWalletKey:
		return "rotate_wallet_key.wallet_id", k.RotateWalletKey.GetWalletId()
	case *statepb.Tx_FreezeWallet:
		return "freeze_wallet.wallet_id", k.FreezeWallet.GetWalletId()
	case *statepb.Tx_UnfreezeWallet:
		return "unfreeze_wallet.wallet_id", k.UnfreezeWallet.GetWalletId()
	case *statepb.Tx_CloseWallet:
		return "close_wallet.wallet_id", k.CloseWallet.GetWalletId()
	}
	// signers() handles every other kind before asking here.
	panic("state: managedWallet on " + kindName(body))
}

func (a *applier) registerWallet(t *decodedTx, k *statepb.RegisterWallet) *statepb.Error {
	if a.wallet(k.GetWalletId()) != nil {
		return statepb.Errorf(statepb.Code_CODE_WALLET_EXISTS, "register_wallet.wallet_id: %q already exists", k.GetWalletId())
	}
	if rej := a.checkLimits("register_wallet.limits", k.GetTier(), k.GetLimits()); rej != nil {
		return rej
	}
	if p := k.GetParentWalletId(); p != "" {
		parent := a.wallet(p)
		if parent == nil {
			return statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FOUND, "register_wallet.parent_wallet_id: %q", p)
		}
		// A sub-wallet hangs off a holder's own wallet: not a bank's
		// reserve or guarantee, not another sub-wallet, not a closed one.
		if rej := notForKinds("register_wallet.parent_wallet_id", parent, notParentKinds...); rej != nil {
			return rej
		}
		if parent.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED {
			return statepb.Errorf(statepb.Code_CODE_WALLET_CLOSED, "register_wallet.parent_wallet_id: wallet %q is closed", p)
		}
		if parent.GetBankId() != k.GetBankId() {
			return statepb.Errorf(statepb.Code_CODE_PAYEE_WRONG_BANK, "register_wallet.parent_wallet_id: %q is a wallet of %s", p, parent.GetBankId())
		}
	}
	w := &statepb.WalletRecord{
		Id: k.GetWalletId(), BankId: k.GetBankId(), PublicKey: k.GetPublicKey(), Kind: k.GetKind(),
		Tier: k.GetTier(), RegionCode: k.GetRegionCode(), Category: k.GetCategory(), Limits: k.GetLimits(),
		Status: statepb.WalletStatus_WALLET_STATUS_ACTIVE, ParentWalletId: k.GetParentWalletId(), CreatedMs: a.timeMs,
	}
	a.addHistory(w, t, &statepb.HistoryEntry{})
	a.setWallet(w)
	return nil
}

// notParentKinds are the wallet kinds a sub-wallet cannot hang off.
var notParentKinds = []statepb.WalletKind{
	statepb.WalletKind_WALLET_KIND_BANK_RESERVE, statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE, statepb.WalletKind_WALLET_KIND_SUB_WALLET,
}

// checkLimits refuses own limits above the tier's caps: banks may only set
// lower caps than the PBoC's (SPEC §2).
func (a *applier) checkLimits(field string, tier uint32, l *statepb.Limits) *statepb.Error {
	t := a.s.tiers.get(tier)
	for _, c := range []struct {
		name      string
		own, tier uint64
	}{
		{"max_balance_fen", l.GetMaxBalanceFen(), t.GetMaxBalanceFen()},
		{"max_payment_fen", l.GetMaxPaymentFen(), t.GetMaxPaymentFen()},
		{"max_daily_fen", l.GetMaxDailyFen(), t.GetMaxDailyFen()},
		{"max_yearly_fen", l.GetMaxYearlyFen(), t.GetMaxYearlyFen()},
	} {
		if c.tier != 0 && c.own > c.tier {
			return statepb.Errorf(statepb.Code_CODE_LIMIT_ABOVE_TIER, "%s.%s: %s is above tier %d's cap %s", field, c.name, statepb.Fen(c.own), tier, statepb.Fen(c.tier))
		}
	}
	return nil
}

// managed loads a wallet that a bank manages; reserve and guarantee wallets
// are the bank's own and cannot be managed as customer wallets, and a closed
// wallet is final.
func (a *applier) managed(field, id string) (*statepb.WalletRecord, *statepb.Error) {
	w := a.wallet(id)
	if rej := notForKinds(field, w, reserveKinds...); rej != nil {
		return nil, rej
	}
	if w.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED {
		return nil, statepb.Errorf(statepb.Code_CODE_WALLET_CLOSED, "%s: wallet %q is closed", field, id)
	}
	return w, nil
}

// updateWallet sets tier, region, category and limits. Lowering a tier below
// the current balance is allowed: the balance cap applies to money coming in.
func (a *applier) updateWallet(t *decodedTx, k *statepb.UpdateWallet) *statepb.Error {
	w, rej := a.managed("update_wallet.wallet_id", k.GetWalletId())
	if rej != nil {
		return rej
	}
	if rej := a.checkLimits("update_wallet.limits", k.GetTier(), k.GetLimits()); rej != nil {
		return rej
	}
	w.Tier, w.RegionCode, w.Category, w.Limits = k.GetTier(), k.GetRegionCode(), k.GetCategory(), k.GetLimits()
	a.addHistory(w, t, &statepb.HistoryEntry{})
	a.setWallet(w)
	return nil
}

func (a *applier) rotateWalletKey(t *decodedTx, k *statepb.RotateWalletKey) *statepb.Error {
	w, rej := a.managed("rotate_wallet_key.wallet_id", k.GetWalletId())
	if rej != nil {
		return rej
	}
	w.PublicKey = k.GetNewPublicKey()
	a.addHistory(w, t, &statepb.HistoryEntry{})
	a.setWallet(w)
	return nil
}

func (a *applier) freezeWallet(t *decodedTx, k *statepb.FreezeWallet) *statepb.Error {
	w, rej := a.managed("freeze_wallet.wallet_id", k.GetWalletId())
	if rej != nil {
		return rej
	}
	if w.GetStatus() == statepb.WalletStatus_WALLET_STATUS_FROZEN {
		return statepb.Errorf(statepb.Code_CODE_WALLET_FROZEN, "freeze_wallet.wallet_id: %q is already frozen", w.GetId())
	}
	a.setWalletStatus(t, w, statepb.WalletStatus_WALLET_STATUS_FROZEN, k.GetReason(), nil, FreezeSourceBank)
	a.addHistory(w, t, &statepb.HistoryEntry{})
	a.setWallet(w)
	return nil
}

func (a *applier) unfreezeWallet(t *decodedTx, k *statepb.UnfreezeWallet) *statepb.Error {
	w, rej := a.managed("unfreeze_wallet.wallet_id", k.GetWalletId())
	if rej != nil {
		return rej
	}
	if w.GetStatus() != statepb.WalletStatus_WALLET_STATUS_FROZEN {
		return statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FROZEN, "unfreeze_wallet.wallet_id: %q is not frozen", w.GetId())
	}
	a.setWalletStatus(t, w, statepb.WalletStatus_WALLET_STATUS_ACTIVE, k.GetReason(), nil, "")
	a.addHistory(w, t, &statepb.HistoryEntry{})
	a.setWallet(w)
	return nil
}

// closeWallet closes an empty wallet for good; a frozen one may be closed.
func (a *applier) closeWallet(t *decodedTx, k *statepb.CloseWallet) *statepb.Error {
	w, rej := a.managed("close_wallet.wallet_id", k.GetWalletId())
	if rej != nil {
		return rej
	}
	if w.GetBalanceFen() != 0 {
		return statepb.Errorf(statepb.Code_CODE_WALLET_NOT_EMPTY, "close_wallet.wallet_id: %q still holds %s", w.GetId(), statepb.Fen(w.GetBalanceFen()))
	}
	a.setWalletStatus(t, w, statepb.WalletStatus_WALLET_STATUS_CLOSED, w.GetStatusReason(), w.GetStatusLedgerReason(), "")
	a.addHistory(w, t, &statepb.HistoryEntry{})
	a.setWallet(w)
	return nil
}

// changeMembership adds or removes a node. The last voter cannot be removed:
// a network without voters can never commit again.
func (a *applier) changeMembership(k *statepb.ChangeMembership) *statepb.Error {
	name := k.GetNode().GetName()
	var cur statepb.Node
	exists := a.get(keyMember(name), &cur)
	switch k.GetAction() {
	case statepb.MembershipAction_MEMBERSHIP_ACTION_ADD:
		if exists {
			return statepb.Errorf(statepb.Code_CODE_MEMBER_EXISTS, "change_membership.node.name: %q is already a member", name)
		}
		if other, ok := a.memberWithKey(k.GetNode().GetPublicKey()); ok {
			return statepb.Errorf(statepb.Code_CODE_MEMBER_EXISTS, "change_membership.node.public_key: already used by %q", other)
		}
		a.set(keyMember(name), k.GetNode())
	case statepb.MembershipAction_MEMBERSHIP_ACTION_REMOVE:
		if !exists {
			return statepb.Errorf(statepb.Code_CODE_MEMBER_NOT_FOUND, "change_membership.node.name: %q is not a member", name)
		}
		if cur.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER && a.countVoters() <= 1 {
			return statepb.Errorf(statepb.Code_CODE_MEMBER_LAST_VOTER, "change_membership.node.name: %q is the last voter", name)
		}
		a.del(keyMember(name))
	}
	a.membershipChanged = true
	return nil
}

func (a *applier) memberWithKey(key []byte) (string, bool) {
	name := ""
	a.scanMembers(func(n *statepb.Node) bool {
		if string(n.GetPublicKey()) == string(key) {
			name = n.GetName()
			return false
		}
		return true
	})
	return name, name != ""
}

func (a *applier) countVoters() int {
	n := 0
	a.scanMembers(func(m *statepb.Node) bool {
		if m.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER {
			n++
		}
		return true
	})
	return n
}
