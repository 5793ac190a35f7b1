package client

import (
	"bytes"
	"math/bits"
	"slices"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// Selection is the set of a wallet's unspent outputs chosen to pay an
// amount. Change is implicit in the ledger: ChangeFen comes back to the
// payer as the transaction's last output without being named.
type Selection struct {
	// Inputs are the chosen outputs, largest first.
	Inputs []*statepb.Outpoint
	// TotalFen is the sum of Inputs.
	TotalFen uint64
	// ChangeFen is TotalFen minus the amount paid.
	ChangeFen uint64
	// RedPacketFen is how much of the amount red packets pay
	// (SelectWithRedPackets); their leftover is part of ChangeFen and comes
	// back as a red packet.
	RedPacketFen uint64
}

// coin is one unspent output.
type coin struct {
	op  *statepb.Outpoint
	fen uint64
}

// coins returns the distinct, non-empty, unconditioned outputs of unspent
// sorted by amount, largest first, ties by outpoint (tx id bytes, then
// index): a total order, so selection does not depend on the order the node
// listed them in. Red packets (outputs with a campaign condition) are left
// out: they pay only eligible merchants (redpacket_coins.go).
func coins(unspent []*nodepb.Unspent) []coin {
	return coinsOf(unspent, "")
}

// coinsOf is coins of the outputs under campaign's condition ("" : none).
func coinsOf(unspent []*nodepb.Unspent, campaign string) []coin {
	cs := make([]coin, 0, len(unspent))
	for _, u := range unspent {
		if u.GetAmountFen() == 0 || len(u.GetOutpoint().GetTxId()) != statepb.TxIDBytes || u.GetCampaignId() != campaign {
			continue
		}
		cs = append(cs, coin{u.GetOutpoint(), u.GetAmountFen()})
	}
	slices.SortFunc(cs, func(a, b coin) int {
		switch {
		case a.fen > b.fen:
			return -1
		case a.fen < b.fen:
			return 1
		}
		return compareOutpoints(a.op, b.op)
	})
	// Paged listings may repeat an output; spending it twice would be a
	// DUPLICATE_INPUT rejection.
	return slices.CompactFunc(cs, func(a, b coin) bool { return compareOutpoints(a.op, b.op) == 0 })
}

func compareOutpoints(a, b *statepb.Outpoint) int {
	if c := bytes.Compare(a.GetTxId(), b.GetTxId()); c != 0 {
		return c
	}
	switch {
	case a.GetIndex() < b.GetIndex():
		return -1
	case a.GetIndex() > b.GetIndex():
		return 1
	}
	return 0
}

// UnspentTotal is the sum of unspent (saturating at the uint64 maximum, which a
// consistent ledger never reaches).
func UnspentTotal(unspent []*nodepb.Unspent) uint64 {
	var total uint64
	for _, c := range coins(unspent) {
		total = satAdd(total, c.fen)
	}
	return total
}

func satAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return ^uint64(0)
	}
	return s
}

// SelectInputs chooses outputs from unspent that cover needFen.
//
// Policy (deterministic: the same outputs give the same choice, whatever
// order they are listed in):
//
//  1. Fewest inputs: k is the smallest number of outputs that can cover
//     needFen, which is the number of largest outputs whose sum reaches it.
//  2. Least change for that k: the k−1 largest outputs, plus the smallest
//     remaining output that still covers the rest. With k = 1 that is the
//     smallest single output at least needFen.
//
// It fails with a *FundsError: ErrInsufficientFunds if all of unspent does
// not cover needFen, ErrTooFragmented if k exceeds statepb.MaxInputs (then
// Consolidate first). needFen must be positive.
func SelectInputs(unspent []*nodepb.Unspent, needFen uint64) (*Selection, error) {
	if needFen == 0 {
		return nil, statepb.Errorf(statepb.Code_CODE_AMOUNT_ZERO, "amount: zero")
	}
	return selectCoins(coins(unspent), needFen, statepb.MaxInputs)
}

// selectCoins is SelectInputs over sorted coins, with at most maxInputs
// inputs.
func selectCoins(cs []coin, needFen uint64, maxInputs int) (*Selection, error) {
	var balance uint64
	for _, c := range cs {
		balance = satAdd(balance, c.fen)
	}
	if balance < needFen {
		return nil, &FundsError{Err: ErrInsufficientFunds, BalanceFen: balance, NeedFen: needFen}
	}
	// k largest: the prefix that first reaches needFen.
	var prefix uint64 // sum of the k−1 largest
	k := 0
	for i, c := range cs {
		if satAdd(prefix, c.fen) >= needFen {
			k = i + 1
			break
		}
		prefix += c.fen
	}
	if k > maxInputs {
		return nil, &FundsError{Err: ErrTooFragmented, BalanceFen: balance, NeedFen: needFen, OutputsNeeded: k}
	}
	// Last pick: the smallest of cs[k-1:] that covers what the k−1 largest
	// leave. cs is sorted largest first and cs[k-1] covers it, so scan on
	// while the next one still does.
	// Among equal amounts the first in order is kept.
	rest := needFen - prefix
	last := k - 1
	for j := k; j < len(cs) && cs[j].fen >= rest; j++ {
		if cs[j].fen < cs[last].fen {
			last = j
		}
	}
	sel := &Selection{}
	for _, c := range cs[:k-1] {
		sel.Inputs = append(sel.Inputs, c.op)
	}
	sel.Inputs = append(sel.Inputs, cs[last].op)
	sel.TotalFen = prefix + cs[last].fen
	sel.ChangeFen = sel.TotalFen - needFen
	return sel, nil
}

// SelectConsolidation chooses up to statepb.MaxInputs of the smallest
// outputs of unspent to merge into one (a transfer to oneself). It returns
// nil if there are fewer than two outputs: nothing to merge.
func SelectConsolidation(unspent []*nodepb.Unspent) *Selection {
	cs := coins(unspent)
	if len(cs) < 2 {
		return nil
	}
	slices.Reverse(cs) // smallest first
	cs = cs[:min(len(cs), statepb.MaxInputs)]
	sel := &Selection{}
	for _, c := range cs {
		sel.Inputs = append(sel.Inputs, c.op)
		sel.TotalFen = satAdd(sel.TotalFen, c.fen)
	}
	return sel
}
