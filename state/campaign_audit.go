package state

import (
	"bytes"
	"cmp"
	"math/bits"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// checkCampaigns is AuditSupply's step for red-packet campaigns. It
// recomputes the campaign escrow from the campaign records and checks:
//
//   - Σ escrow_fen of every campaign = Supply.campaign_escrow_fen;
//   - each campaign's books balance: escrow + live + spent −
//     refunded_to_holder + reclaimed = funded, and refunds never exceed
//     what was spent;
//   - each campaign's live index agrees with its figures (Σ amounts =
//     live_fen, count = live_outputs) and every entry is an unspent output
//     of that owner, amount and campaign;
//   - the unspent outputs carrying each campaign's condition sum to its
//     live_fen (so no red packet is missing from the index).
//
// It fills each bank's CampaignEscrowFen (the escrow of campaigns whose
// sponsor is a wallet of that bank).
func (a *Audit) checkCampaigns(r pebbleReader) error {
	var total uint64
	live := map[string]uint64{}
	perBank := map[string]uint64{}
	var fail error
	err := scan(r, prefixCampaign, prefixEnd(prefixCampaign), func(k, v []byte) bool {
		var c statepb.CampaignRecord
		if err := proto.Unmarshal(v, &c); err != nil {
			fail = invariant("campaign %q: %v", k, err)
			return false
		}
		if fail = checkCampaignBooks(&c); fail != nil {
			return false
		}
		if fail = checkLiveIndex(r, &c); fail != nil {
			return false
		}
		var carry uint64
		total, carry = bits.Add64(total, c.GetEscrowFen(), 0)
		if carry != 0 {
			fail = invariant("campaign escrow overflows at %q", c.GetId())
			return false
		}
		live[c.GetId()] = c.GetLiveFen()
		var w statepb.WalletRecord
		if found, err := getProto(r, keyWallet(c.GetSponsorWalletId()), &w); err != nil || !found {
			fail = cmp.Or(err, invariant("campaign %q: sponsor %q missing", c.GetId(), c.GetSponsorWalletId()))
			return false
		}
		perBank[w.GetBankId()] += c.GetEscrowFen() // ≤ total, which did not overflow
		return true
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	if total != a.CampaignEscrowFen {
		return invariant("campaigns hold %d in escrow, the supply record says %d", total, a.CampaignEscrowFen)
	}
	if err := checkConditionedOutputs(r, live); err != nil {
		return err
	}
	for i := range a.Banks {
		a.Banks[i].CampaignEscrowFen = perBank[a.Banks[i].BankID]
	}
	return nil
}

// checkCampaignBooks checks escrow + live + spent − refunded_to_holder +
// reclaimed = funded (see CampaignRecord), without overflow.
func checkCampaignBooks(c *statepb.CampaignRecord) error {
	var lhs, c1, c2, c3 uint64
	lhs, c1 = bits.Add64(c.GetEscrowFen(), c.GetLiveFen(), 0)
	lhs, c2 = bits.Add64(lhs, c.GetSpentFen(), 0)
	lhs, c3 = bits.Add64(lhs, c.GetReclaimedFen(), 0)
	rhs, c4 := bits.Add64(c.GetFundedFen(), c.GetRefundedToHolderFen(), 0)
	if c1|c2|c3|c4 != 0 || lhs != rhs {
		return invariant("campaign %q: escrow %d + live %d + spent %d − refunded to holders %d + reclaimed %d ≠ funded %d",
			c.GetId(), c.GetEscrowFen(), c.GetLiveFen(), c.GetSpentFen(), c.GetRefundedToHolderFen(), c.GetReclaimedFen(), c.GetFundedFen())
	}
	if refunded, carry := bits.Add64(c.GetRefundedToHolderFen(), c.GetRefundedToSponsorFen(), 0); carry != 0 || refunded > c.GetSpentFen() {
		return invariant("campaign %q: refunds %d + %d exceed what was spent, %d", c.GetId(), c.GetRefundedToHolderFen(), c.GetRefundedToSponsorFen(), c.GetSpentFen())
	}
	if c.GetFundedFen() != uint64(c.GetPacketCount())*c.GetPacketFen() {
		return invariant("campaign %q: funded %d ≠ %d packets × %d", c.GetId(), c.GetFundedFen(), c.GetPacketCount(), c.GetPacketFen())
	}
	return nil
}

// checkLiveIndex checks a campaign's live red-packet index against its
// figures and against the unspent outputs.
func checkLiveIndex(r pebbleReader, c *statepb.CampaignRecord) error {
	prefix := keyCampaignTab(c.GetId(), tabLive)
	var sum, n uint64
	var fail error
	err := scan(r, prefix, prefixEnd(prefix), func(k, v []byte) bool {
		e, ok := parseLive(prefix, k, v)
		if !ok {
			fail = invariant("campaign %q: live entry %q", c.GetId(), k)
			return false
		}
		var o statepb.OutputRecord
		found, err := getProto(r, keyUnspent(e.owner, e.op), &o)
		if err != nil || !found || o.GetAmountFen() != e.fen || o.GetCampaignId() != c.GetId() {
			fail = cmp.Or(err, invariant("campaign %q: live entry %x:%d of %q (%d fen) has no matching unspent output", c.GetId(), e.op.GetTxId()[:8], e.op.GetIndex(), e.owner, e.fen))
			return false
		}
		sum += e.fen // ≤ Σ outputs, which did not overflow
		n++
		return true
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	if sum != c.GetLiveFen() || n != c.GetLiveOutputs() {
		return invariant("campaign %q: live index holds %d fen in %d outputs, the record says %d in %d", c.GetId(), sum, n, c.GetLiveFen(), c.GetLiveOutputs())
	}
	return nil
}

// checkConditionedOutputs sums the unspent outputs carrying each
// campaign's condition and compares with the campaigns' live figures.
func checkConditionedOutputs(r pebbleReader, live map[string]uint64) error {
	got := map[string]uint64{}
	var fail error
	err := scan(r, prefixUnspent, prefixEnd(prefixUnspent), func(k, v []byte) bool {
		// Most outputs carry no condition: look for field 10 before decoding.
		if !bytes.Contains(v, []byte{0x52}) {
			return true
		}
		var o statepb.OutputRecord
		if err := proto.Unmarshal(v, &o); err != nil {
			fail = invariant("output %q: %v", k, err)
			return false
		}
		if id := o.GetCampaignId(); id != "" {
			if _, ok := live[id]; !ok {
				fail = invariant("output %q: red packet of unknown campaign %q", k, id)
				return false
			}
			got[id] += o.GetAmountFen() // ≤ Σ outputs
		}
		return true
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	for id, fen := range live {
		if got[id] != fen {
			return invariant("campaign %q: its red-packet outputs hold %d, its live figure is %d", id, got[id], fen)
		}
	}
	return nil
}
