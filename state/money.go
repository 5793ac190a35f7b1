package state

import (
	"math/bits"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// move is one movement of money out of a wallet's outputs: to payees, and
// for a return partly destroyed. Change back to the payer is added last.
type move struct {
	t     *decodedTx
	field string // message prefix, e.g. "transfer"
	// payerField is the field path a rejection of the payer names (it is
	// recorded: TxResult.field), e.g. "transfer.from_wallet_id"; for a
	// payer the body does not name, the field that determines it.
	payerField string
	// payeeField, if set, is the field path every payee's rejection names
	// (a kind with one payee, named or determined by that field);
	// otherwise field.payees[i] is.
	payeeField string
	payer      *statepb.WalletRecord
	inputs     []*statepb.Outpoint
	payees     []*statepb.Payee
	// payeeRule, if set, is the kind's own check on each payee (after
	// existence and status).
	payeeRule func(i int, w *statepb.WalletRecord) *statepb.Error
	// destroyFen leaves circulation (returns to the central bank).
	destroyFen uint64
	// limited: payments to others count against the payer's tier limits.
	limited bool

	// Programmable money (campaign_spend.go). conds, if set, is the
	// red-packet condition (a campaign id, or "") of each payee's output.
	// limitsOf, if set, is the wallet whose tier limits and counters a
	// limited move counts against instead of the payer (a sub-wallet's
	// parent). rp is what the inputs' conditions require (moveMoney fills
	// it).
	conds    []string
	limitsOf *statepb.WalletRecord
	rp       redPackets
}

// moveMoney checks a move completely, then writes it. Check order (the code
// precedence of docs/errors.md): payer status, inputs, sufficiency, payees,
// payer limits, payee balance caps.
func (a *applier) moveMoney(m *move) (uint32, *statepb.Error) {
	if rej := senderStatus(m.payerField, m.payer); rej != nil {
		return 0, rej
	}
	total, rej := a.readInputs(m.field+".inputs", m.payer, m.inputs, &m.rp)
	if rej != nil {
		return 0, rej
	}
	need, carry := m.destroyFen, uint64(0)
	for _, p := range m.payees {
		need, carry = bits.Add64(need, p.GetAmountFen(), carry)
	}
	if carry != 0 {
		return 0, statepb.Errorf(statepb.Code_CODE_AMOUNT_OVERFLOW, "%s: amount overflows", m.field)
	}
	if need > total {
		return 0, statepb.Errorf(statepb.Code_CODE_INSUFFICIENT_INPUTS, "%s.inputs: total %d fen, needs %d fen", m.field, statepb.Fen(total), statepb.Fen(need))
	}
	outs := m.payees
	if change := total - need; change > 0 {
		outs = append(outs[:len(outs):len(outs)], &statepb.Payee{WalletId: m.payer.GetId(), AmountFen: change})
	}
	credits, paymentFen, rej := a.checkPayees(m, outs)
	if rej != nil {
		return 0, rej
	}
	if outs, rej = a.checkRedPackets(m, outs); rej != nil {
		return 0, rej
	}
	if m.limited {
		if rej := a.checkSpendLimits(m.field, m.limitWallet(), paymentFen); rej != nil {
			return 0, rej
		}
	}
	for _, c := range credits {
		if rej := a.checkBalanceCap(c.w, c.fen); rej != nil {
			return 0, rej
		}
	}
	a.writeMove(m, total, outs, credits, paymentFen)
	return uint32(len(outs)), nil
}

// credit is money a wallet other than the payer receives in one move.
type credit struct {
	w   *statepb.WalletRecord
	fen uint64
}

func senderStatus(field string, w *statepb.WalletRecord) *statepb.Error {
	switch w.GetStatus() {
	case statepb.WalletStatus_WALLET_STATUS_FROZEN:
		return statepb.Errorf(statepb.Code_CODE_WALLET_FROZEN, "%s: wallet %q is frozen: %s", field, w.GetId(), statepb.Text(statusReason(w)))
	case statepb.WalletStatus_WALLET_STATUS_CLOSED:
		return statepb.Errorf(statepb.Code_CODE_WALLET_CLOSED, "%s: wallet %q is closed", field, w.GetId())
	}
	return nil
}

// readInputs returns the total of inputs that exist, are unspent and belong
// to owner: one lookup each, in owner's unspent outputs. Why an input is not
// there is worked out only then (missingInput). An input under a condition
// (a red packet) is collected into rp, or refused with INPUT_RESTRICTED when
// rp is nil: only moveMoney, which applies the conditions, spends those.
func (a *applier) readInputs(field string, owner *statepb.WalletRecord, ins []*statepb.Outpoint, rp *redPackets) (uint64, *statepb.Error) {
	var total, carry uint64
	for i, in := range ins {
		var o statepb.OutputRecord
		if !a.unspent(owner.GetId(), in, &o) {
			if a.err != nil {
				return 0, nil
			}
			return 0, a.missingInput(field, i, in, owner.GetId())
		}
		if o.GetCampaignId() != "" {
			if rej := rp.add(field, i, in, &o); rej != nil {
				return 0, rej
			}
		}
		total, carry = bits.Add64(total, o.GetAmountFen(), 0)
		if carry != 0 {
			return 0, statepb.Errorf(statepb.Code_CODE_AMOUNT_OVERFLOW, "%s: total overflows", field)
		}
	}
	return total, nil
}

// missingInput says why an input is not among payer's unspent outputs:
// INPUT_NOT_FOUND if no recorded transaction created it; INPUT_NOT_OWNED if
// it exists, unspent, in another wallet; else INPUT_SPENT.
func (a *applier) missingInput(field string, i int, in *statepb.Outpoint, payer string) *statepb.Error {
	var rec statepb.TxRecord
	if !a.get(keyTx(in.GetTxId()), &rec) || in.GetIndex() >= rec.GetOutputCount() {
		return statepb.Errorf(statepb.Code_CODE_INPUT_NOT_FOUND, "%s[%d]: no output %.8x:%d", field, i, short(in.GetTxId()), in.GetIndex())
	}
	owner := a.outputOwner(&rec, in.GetIndex())
	if owner != payer && owner != "" {
		var o statepb.OutputRecord
		if a.unspent(owner, in, &o) {
			return statepb.Errorf(statepb.Code_CODE_INPUT_NOT_OWNED, "%s[%d]: output belongs to another wallet, not %q", field, i, payer)
		}
	}
	return statepb.Errorf(statepb.Code_CODE_INPUT_SPENT, "%s[%d]: output %.8x:%d is already spent", field, i, short(in.GetTxId()), in.GetIndex())
}

// outputOwner is the wallet that output index of a recorded, applied
// transaction was created for: its payees in order, then the change to the
// payer (see the kinds in tx.proto). It is read back from the transaction
// itself, so outputs need no table of their own; a record that does not
// decode is a broken invariant.
func (a *applier) outputOwner(rec *statepb.TxRecord, index uint32) string {
	var stx statepb.SignedTx
	body := &statepb.Tx{}
	if err := proto.Unmarshal(rec.GetSignedTx(), &stx); err != nil {
		a.fail("recorded transaction: %v", err)
		return ""
	}
	if err := proto.Unmarshal(stx.GetBody(), body); err != nil {
		a.fail("recorded transaction body: %v", err)
		return ""
	}
	reserve := func(bank string) string {
		if b := a.bank(bank); b != nil {
			return b.GetBank().GetReserveWalletId()
		}
		a.fail("recorded transaction: bank %q missing", bank)
		return ""
	}
	payeesThenPayer := func(payees []string, payer string) string {
		if int(index) < len(payees) {
			return payees[index]
		}
		return payer
	}
	switch k := body.GetKind().(type) {
	case *statepb.Tx_Issue:
		return reserve(k.Issue.GetBankId())
	case *statepb.Tx_Return:
		return reserve(k.Return.GetBankId())
	case *statepb.Tx_Exchange:
		return payeesThenPayer([]string{k.Exchange.GetToWalletId()}, reserve(k.Exchange.GetBankId()))
	case *statepb.Tx_Redeem:
		w := a.wallet(k.Redeem.GetWalletId())
		if w == nil {
			a.fail("recorded redeem: wallet %q missing", k.Redeem.GetWalletId())
			return ""
		}
		return payeesThenPayer([]string{reserve(w.GetBankId())}, w.GetId())
	case *statepb.Tx_Transfer:
		ids := make([]string, len(k.Transfer.GetPayees()))
		for j, p := range k.Transfer.GetPayees() {
			ids[j] = p.GetWalletId()
		}
		return payeesThenPayer(ids, k.Transfer.GetFromWalletId())
	case *statepb.Tx_OpenPurse:
		return k.OpenPurse.GetWalletId() // its only output is the change
	case *statepb.Tx_DepositOffline, *statepb.Tx_ClosePurse, *statepb.Tx_ExpirePurse, *statepb.Tx_PayOfflineClaims, *statepb.Tx_CollectOfflineDebt:
		return a.offlineOutputOwner(rec, index)
	}
	if owner, ok := a.programmableOutputOwner(rec, body, index); ok {
		return owner
	}
	a.fail("recorded %s transaction has outputs", kindName(body))
	return ""
}

// checkPayees checks every payee and sums what each wallet other than the
// payer receives (several payees may name one wallet), in order of first
// appearance, so later steps are deterministic. It also returns the payment
// amount: what leaves the payer for other wallets.
func (a *applier) checkPayees(m *move, outs []*statepb.Payee) ([]credit, uint64, *statepb.Error) {
	var credits []credit
	var payment uint64
	for i, p := range outs {
		if p.GetWalletId() == m.payer.GetId() {
			continue
		}
		w := a.wallet(p.GetWalletId())
		field := m.payeeField
		if field == "" {
			field = m.field + ".payees[" + itoa(i) + "]"
		}
		if w == nil {
			return nil, 0, statepb.Errorf(statepb.Code_CODE_PAYEE_NOT_FOUND, "%s: no wallet %q", field, p.GetWalletId())
		}
		switch w.GetStatus() {
		case statepb.WalletStatus_WALLET_STATUS_FROZEN:
			return nil, 0, statepb.Errorf(statepb.Code_CODE_PAYEE_FROZEN, "%s: wallet %q is frozen", field, w.GetId())
		case statepb.WalletStatus_WALLET_STATUS_CLOSED:
			return nil, 0, statepb.Errorf(statepb.Code_CODE_PAYEE_CLOSED, "%s: wallet %q is closed", field, w.GetId())
		}
		if m.payeeRule != nil {
			if rej := m.payeeRule(i, w); rej != nil {
				return nil, 0, rej
			}
		}
		payment += p.GetAmountFen() // bounded by the inputs' total
		found := false
		for j := range credits {
			if credits[j].w == w {
				credits[j].fen += p.GetAmountFen()
				found = true
				break
			}
		}
		if !found {
			credits = append(credits, credit{w, p.GetAmountFen()})
		}
	}
	return credits, payment, nil
}

// writeMove spends the inputs, creates the outputs and updates the wallets
// and their histories. Every check has passed; a failure here is a broken
// invariant.
func (a *applier) writeMove(m *move, total uint64, outs []*statepb.Payee, credits []credit, paymentFen uint64) {
	for _, in := range m.inputs {
		a.delOutput(keyUnspent(m.payer.GetId(), in))
	}
	a.debit(m.payer, total, uint64(len(m.inputs)))
	for i, p := range outs {
		if cond := m.outputCondition(i, len(outs)); cond != "" {
			a.createRedPacket(m.t.id[:], uint32(i), a.wallet(p.GetWalletId()), p.GetAmountFen(), cond)
			continue
		}
		a.createOutput(m.t, uint32(i), a.wallet(p.GetWalletId()), p.GetAmountFen())
	}
	if m.limited {
		lw := m.limitWallet()
		a.countSpend(lw, paymentFen)
		if lw != m.payer {
			a.setWallet(lw)
		}
	}
	a.programmableMoved(m, outs, credits)
	first := ""
	if len(credits) > 0 {
		first = credits[0].w.GetId()
	}
	a.addHistory(m.payer, m.t, &statepb.HistoryEntry{OutFen: paymentFen + m.destroyFen, Counterparty: first})
	a.setWallet(m.payer)
	for _, c := range credits {
		a.addHistory(c.w, m.t, &statepb.HistoryEntry{InFen: c.fen, Counterparty: m.payer.GetId()})
		a.setWallet(c.w)
	}
}

func (a *applier) debit(w *statepb.WalletRecord, fen, outputs uint64) {
	if w.GetBalanceFen() < fen || w.GetUnspentCount() < outputs {
		a.fail("wallet %q: balance %d < spent %d or unspent %d < %d", w.GetId(), w.GetBalanceFen(), fen, w.GetUnspentCount(), outputs)
		return
	}
	w.BalanceFen -= fen
	w.UnspentCount -= outputs
}

// createOutput writes output index of t to w and credits w; the caller
// writes w.
func (a *applier) createOutput(t *decodedTx, index uint32, w *statepb.WalletRecord, fen uint64) {
	op := &statepb.Outpoint{TxId: t.id[:], Index: index}
	k := keyUnspent(w.GetId(), op)
	v, err := deterministic.Marshal(&statepb.OutputRecord{AmountFen: fen, CreatedMs: a.timeMs})
	if err != nil {
		a.fail("marshal output: %v", err)
		return
	}
	a.replace(k, v, nil) // a new transaction's output: nothing there yet
	a.outs[string(k)] = v
	sum, carry := bits.Add64(w.GetBalanceFen(), fen, 0)
	if carry != 0 {
		a.fail("wallet %q: balance overflows", w.GetId())
		return
	}
	w.BalanceFen = sum
	w.UnspentCount++
	a.noteOfflineCredit(op.GetTxId(), w)
}

// issue creates money in a bank's reserve.
func (a *applier) issue(t *decodedTx, k *statepb.Issue) (uint32, *statepb.Error) {
	bank := a.bank(k.GetBankId())
	if bank == nil {
		return 0, statepb.Errorf(statepb.Code_CODE_BANK_NOT_FOUND, "issue.bank_id: %q", k.GetBankId())
	}
	supply := a.getSupply()
	issued, carry := bits.Add64(supply.GetIssuedFen(), k.GetAmountFen(), 0)
	if carry != 0 {
		return 0, statepb.Errorf(statepb.Code_CODE_AMOUNT_OVERFLOW, "issue.amount_fen: total issued would overflow")
	}
	reserve := a.mustWallet(bank.GetBank().GetReserveWalletId())
	if reserve == nil {
		return 0, nil
	}
	a.createOutput(t, 0, reserve, k.GetAmountFen())
	a.addHistory(reserve, t, &statepb.HistoryEntry{InFen: k.GetAmountFen(), Counterparty: a.s.genesis.GetCentralBank().GetId()})
	a.setWallet(reserve)
	supply.IssuedFen = issued
	a.setSupply(supply)
	bank.IssuedFen += k.GetAmountFen() // ≤ supply.IssuedFen, which did not overflow
	a.setBank(bank)
	return 1, nil
}

// returnToCentralBank destroys money from a bank's reserve.
func (a *applier) returnToCentralBank(t *decodedTx, k *statepb.Return) (uint32, *statepb.Error) {
	bank := a.bank(k.GetBankId())
	reserve := a.mustWallet(bank.GetBank().GetReserveWalletId())
	if reserve == nil {
		return 0, nil
	}
	n, rej := a.moveMoney(&move{t: t, field: "return", payerField: "return.bank_id", payer: reserve, inputs: k.GetInputs(), destroyFen: k.GetAmountFen()})
	if rej != nil {
		return 0, rej
	}
	supply := a.getSupply()
	supply.ReturnedFen += k.GetAmountFen() // ≤ issued
	a.setSupply(supply)
	bank.ReturnedFen += k.GetAmountFen()
	a.setBank(bank)
	return n, nil
}

// exchange pays a wallet of the bank from the bank's reserve.
func (a *applier) exchange(t *decodedTx, k *statepb.Exchange) (uint32, *statepb.Error) {
	bank := a.bank(k.GetBankId())
	reserve := a.mustWallet(bank.GetBank().GetReserveWalletId())
	if reserve == nil {
		return 0, nil
	}
	return a.moveMoney(&move{
		t: t, field: "exchange", payerField: "exchange.bank_id", payeeField: "exchange.to_wallet_id", payer: reserve, inputs: k.GetInputs(),
		payees: []*statepb.Payee{{WalletId: k.GetToWalletId(), AmountFen: k.GetAmountFen()}},
		payeeRule: func(_ int, w *statepb.WalletRecord) *statepb.Error {
			if w.GetBankId() != k.GetBankId() {
				return statepb.Errorf(statepb.Code_CODE_PAYEE_WRONG_BANK, "exchange.to_wallet_id: %q is a wallet of %s, not %s", w.GetId(), w.GetBankId(), k.GetBankId())
			}
			return nil
		},
	})
}

// redeem pays a wallet's money back to its bank's reserve.
func (a *applier) redeem(t *decodedTx, k *statepb.Redeem) (uint32, *statepb.Error) {
	w := a.wallet(k.GetWalletId())
	if rej := notForKinds("redeem.wallet_id", w, reserveKinds...); rej != nil {
		return 0, rej
	}
	bank := a.bank(w.GetBankId())
	if bank == nil {
		a.fail("wallet %q: bank %q missing", w.GetId(), w.GetBankId())
		return 0, nil
	}
	return a.moveMoney(&move{
		t: t, field: "redeem", payerField: "redeem.wallet_id", payeeField: "redeem.wallet_id", payer: w, inputs: k.GetInputs(), // paid: its bank's reserve
		payees: []*statepb.Payee{{WalletId: bank.GetBank().GetReserveWalletId(), AmountFen: k.GetAmountFen()}},
	})
}

// transfer pays other wallets.
func (a *applier) transfer(t *decodedTx, k *statepb.Transfer) (uint32, *statepb.Error) {
	w := a.wallet(k.GetFromWalletId())
	if rej := notForKinds("transfer.from_wallet_id", w, reserveKinds...); rej != nil {
		return 0, rej
	}
	return a.moveMoney(&move{
		t: t, field: "transfer", payerField: "transfer.from_wallet_id", payer: w, inputs: k.GetInputs(), payees: k.GetPayees(), limited: true,
		payeeRule: func(i int, p *statepb.WalletRecord) *statepb.Error {
			return notForKinds("transfer.payees["+itoa(i)+"].wallet_id", p, reserveKinds...)
		},
	})
}

// reserveKinds are the banks' own wallets, which move money only through
// issue, return, exchange and redeem.
var reserveKinds = []statepb.WalletKind{statepb.WalletKind_WALLET_KIND_BANK_RESERVE, statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE}

func notForKinds(field string, w *statepb.WalletRecord, kinds ...statepb.WalletKind) *statepb.Error {
	for _, k := range kinds {
		if w.GetKind() == k {
			return statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s: %q is a %s wallet", field, w.GetId(), walletKind(k))
		}
	}
	return nil
}

// mustWallet reads a wallet the ledger guarantees exists (a bank's reserve).
func (a *applier) mustWallet(id string) *statepb.WalletRecord {
	w := a.wallet(id)
	if w == nil {
		a.fail("wallet %q missing", id)
	}
	return w
}
