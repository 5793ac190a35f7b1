package client

import (
	"context"
	"slices"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// Red packets (SPEC §5) are outputs under a campaign's condition: they pay
// only the campaign's eligible merchants inside its spending window, one
// campaign's packets per transaction. Plain coin selection (SelectInputs)
// never picks them; a payment whose every payee is an eligible merchant of
// a campaign the payer holds packets of uses them first
// (SelectWithRedPackets). What is left of the packets comes back as
// red-packet change, still under the condition.

// RedPacketTotal sums a wallet's red packets per campaign.
func RedPacketTotal(unspent []*nodepb.Unspent) map[string]uint64 {
	out := map[string]uint64{}
	for _, u := range unspent {
		if id := u.GetCampaignId(); id != "" && u.GetAmountFen() > 0 {
			out[id] = satAdd(out[id], u.GetAmountFen())
		}
	}
	return out
}

// SelectWithRedPackets chooses inputs for a payment of needFen to eligible
// merchants of campaign: its red packets first (if they cover needFen, the
// packets alone, by SelectInputs' policy), then plain outputs for the rest.
// RedPacketFen of the result is how much of needFen the packets pay.
func SelectWithRedPackets(unspent []*nodepb.Unspent, campaign string, needFen uint64) (*Selection, error) {
	if needFen == 0 {
		return nil, statepb.Errorf(statepb.Code_CODE_AMOUNT_ZERO, "amount: zero")
	}
	packets := coinsOf(unspent, campaign)
	var pkTotal uint64
	for _, c := range packets {
		pkTotal = satAdd(pkTotal, c.fen)
	}
	if campaign == "" || len(packets) == 0 {
		return SelectInputs(unspent, needFen)
	}
	if pkTotal >= needFen {
		if sel, err := selectCoins(packets, needFen, statepb.MaxInputs); err == nil {
			sel.RedPacketFen = needFen
			return sel, nil
		}
	}
	// All packets (the largest, leaving room for plain inputs): they do
	// not cover needFen here (if they did, selectCoins above would have
	// found at most MaxInputs of them), so plain money pays the rest.
	take := packets[:min(len(packets), statepb.MaxInputs-1)]
	sel := &Selection{}
	for _, c := range take {
		sel.Inputs = append(sel.Inputs, c.op)
		sel.TotalFen += c.fen
	}
	rest, err := selectCoins(coins(unspent), needFen-sel.TotalFen, statepb.MaxInputs-len(take))
	if err != nil {
		if fe, ok := err.(*FundsError); ok {
			fe.BalanceFen = satAdd(fe.BalanceFen, sel.TotalFen)
			fe.NeedFen = needFen
		}
		return nil, err
	}
	sel.Inputs = append(sel.Inputs, rest.Inputs...)
	sel.RedPacketFen = sel.TotalFen
	sel.TotalFen += rest.TotalFen
	sel.ChangeFen = sel.TotalFen - needFen
	return sel, nil
}

// selectFor chooses the inputs of a spending transaction: for a transfer
// whose payees are all eligible merchants of a campaign whose red packets
// the payer holds, inside its window (as of the node's ledger time), the
// packets first; otherwise plain outputs only.
func (c *Client) selectFor(ctx context.Context, body *statepb.Tx, unspent []*nodepb.Unspent, needFen uint64) (*Selection, error) {
	if id := c.usableCampaign(ctx, body, unspent); id != "" {
		return SelectWithRedPackets(unspent, id, needFen)
	}
	return SelectInputs(unspent, needFen)
}

// usableCampaign is the campaign whose red packets a transfer can use (the
// one with the most money if several), or "".
func (c *Client) usableCampaign(ctx context.Context, body *statepb.Tx, unspent []*nodepb.Unspent) string {
	tr, ok := body.GetKind().(*statepb.Tx_Transfer)
	if !ok {
		return ""
	}
	totals := RedPacketTotal(unspent)
	if len(totals) == 0 {
		return ""
	}
	ids := make([]string, 0, len(totals))
	for id := range totals {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		switch {
		case totals[a] > totals[b]:
			return -1
		case totals[a] < totals[b]:
			return 1
		}
		return compareStrings(a, b)
	})
	for _, id := range ids {
		usable := true
		for _, p := range tr.Transfer.GetPayees() {
			if p.GetWalletId() == tr.Transfer.GetFromWalletId() {
				usable = false
				break
			}
			el, err := c.Eligibility(ctx, id, p.GetWalletId())
			if err != nil || !el.GetEligible() || !el.GetInWindow() {
				usable = false
				break
			}
		}
		if usable {
			return id
		}
	}
	return ""
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
