package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Queries of programmable money (SPEC §5, §6: campaign progress). Like
// query.go, each reads committed state from one snapshot or one key.

// outputRecord decodes an unspent output, whose amount is never zero.
func outputRecord(k, v []byte) (*statepb.OutputRecord, error) {
	var o statepb.OutputRecord
	if err := proto.Unmarshal(v, &o); err != nil {
		return nil, invariant("output %q: %v", k, err)
	}
	if o.GetAmountFen() == 0 {
		return nil, invariant("output %q: amount zero", k)
	}
	return &o, nil
}

// Campaign returns a campaign with its figures, or ErrNotFound.
func (s *Store) Campaign(id string) (*statepb.CampaignRecord, error) {
	var c statepb.CampaignRecord
	return &c, s.getOne(keyCampaign(id), &c)
}

// Campaigns lists campaigns in id order after the id after, at most limit.
func (s *Store) Campaigns(after string, limit int) ([]*statepb.CampaignRecord, error) {
	limit = pageSize(limit)
	lower := keyCampaign("")
	if after != "" {
		lower = append(keyCampaign(after), 0)
	}
	var out []*statepb.CampaignRecord
	err := s.scanRange(lower, prefixEnd(prefixCampaign), func() proto.Message { return &statepb.CampaignRecord{} }, func(m proto.Message) bool {
		out = append(out, m.(*statepb.CampaignRecord))
		return len(out) < limit
	})
	return out, err
}

// Enrolments lists a campaign's enrolments in order from number from on,
// at most limit.
func (s *Store) Enrolments(campaign string, from uint64, limit int) ([]*statepb.EnrolmentRecord, error) {
	limit = pageSize(limit)
	var out []*statepb.EnrolmentRecord
	err := s.scanRange(keyEnrolment(campaign, from), prefixEnd(keyCampaignTab(campaign, tabEnrolment)), func() proto.Message { return &statepb.EnrolmentRecord{} }, func(m proto.Message) bool {
		out = append(out, m.(*statepb.EnrolmentRecord))
		return len(out) < limit
	})
	return out, err
}

// EnrolmentOf returns a wallet's enrolment in a campaign, or ErrNotFound.
func (s *Store) EnrolmentOf(campaign, wallet string) (*statepb.EnrolmentRecord, error) {
	var e statepb.EnrolmentRecord
	err := s.read(func(r pebbleReader) error {
		v, c, err := r.Get(keyEnrolled(campaign, wallet))
		if err != nil {
			return err
		}
		if len(v) != 8 {
			c.Close()
			return invariant("enrolment index of %q in %q", wallet, campaign)
		}
		n := binary.BigEndian.Uint64(v)
		c.Close()
		found, err := getProto(r, keyEnrolment(campaign, n), &e)
		if err == nil && !found {
			err = invariant("campaign %q: enrolment %d of %q missing", campaign, n, wallet)
		}
		return err
	})
	return &e, err
}

// Winners lists a campaign's granted winners by rank from rank from on, at
// most limit.
func (s *Store) Winners(campaign string, from uint64, limit int) ([]*statepb.WinnerRecord, error) {
	limit = pageSize(limit)
	var out []*statepb.WinnerRecord
	err := s.scanRange(keyWinner(campaign, from), prefixEnd(keyCampaignTab(campaign, tabWinner)), func() proto.Message { return &statepb.WinnerRecord{} }, func(m proto.Message) bool {
		out = append(out, m.(*statepb.WinnerRecord))
		return len(out) < limit
	})
	return out, err
}

// Eligibility is whether a wallet can be paid with a campaign's red
// packets, and why.
type Eligibility struct {
	Eligible bool
	// Reason says why: "region 320500", "on the campaign's list", "not a
	// merchant", ...
	Reason string
}

// CampaignEligible says whether merchant wallet id is eligible for a
// campaign (ErrNotFound if the campaign or the wallet does not exist). It
// does not look at time: the spending window is in the campaign.
func (s *Store) CampaignEligible(campaign, id string) (Eligibility, error) {
	var out Eligibility
	err := s.readSnapshot(func(r pebbleReader) error {
		var c statepb.CampaignRecord
		var w statepb.WalletRecord
		for _, x := range []struct {
			k []byte
			m proto.Message
		}{{keyCampaign(campaign), &c}, {keyWallet(id), &w}} {
			found, err := getProto(r, x.k, x.m)
			if err != nil {
				return err
			}
			if !found {
				return ErrNotFound
			}
		}
		switch {
		case w.GetKind() != statepb.WalletKind_WALLET_KIND_MERCHANT:
			out.Reason = "a " + walletKind(w.GetKind()).String() + " wallet, not a merchant"
		case w.GetRegionCode() != "" && slices.Contains(c.GetRegionCodes(), w.GetRegionCode()):
			out.Eligible, out.Reason = true, "region "+w.GetRegionCode()
		default:
			_, cl, err := r.Get(keyCampaignMerchant(campaign, id))
			switch {
			case err == nil:
				cl.Close()
				out.Eligible, out.Reason = true, "on the campaign's merchant list"
			case err != nil && !isNotFound(err):
				return err
			default:
				out.Reason = fmt.Sprintf("region %q is not among the campaign's %q and it is not on its list", w.GetRegionCode(), c.GetRegionCodes())
			}
		}
		return nil
	})
	return out, err
}

// SubWallet returns a sub-wallet's push state (ErrNotFound if id is not a
// sub-wallet).
func (s *Store) SubWallet(id string) (*statepb.SubWalletRecord, error) {
	w, err := s.Wallet(id)
	if err != nil {
		return nil, err
	}
	if w.GetKind() != statepb.WalletKind_WALLET_KIND_SUB_WALLET {
		return nil, ErrNotFound
	}
	var r statepb.SubWalletRecord
	if err := s.getOne(keySubWallet(id), &r); errors.Is(err, ErrNotFound) {
		return &statepb.SubWalletRecord{SubWalletId: id, ParentWalletId: w.GetParentWalletId()}, nil
	} else if err != nil {
		return nil, err
	}
	return &r, nil
}

// Payment returns a payment merchant received in transaction txID, with
// its red-packet part and refunds, or ErrNotFound.
func (s *Store) Payment(merchant string, txID []byte) (*statepb.PaymentRecord, error) {
	var p statepb.PaymentRecord
	return &p, s.getOne(keyPayment(merchant, txID), &p)
}

// Payments lists the payments a merchant received, newest first, reading
// its history below sequence before (0: from the newest) until limit
// payments are found or 4,000 history entries were read. next is the
// sequence to pass for the next page (0 when there is none).
func (s *Store) Payments(merchant string, before uint64, limit int) (out []*statepb.PaymentRecord, next uint64, err error) {
	limit = pageSize(limit)
	w, err := s.Wallet(merchant)
	if err != nil {
		return nil, 0, err
	}
	if before == 0 || before > w.GetHistoryLen() {
		before = w.GetHistoryLen()
	}
	const maxScan = 4 * MaxPageSize
	for scanned := 0; before > 0 && scanned < maxScan; {
		entries, _, err := s.History(merchant, before, MaxPageSize)
		if err != nil {
			return nil, 0, err
		}
		if len(entries) == 0 {
			return out, 0, nil
		}
		for _, e := range entries {
			// Entries are consecutive, newest first: this one is before−1.
			before--
			scanned++
			if e.GetInFen() == 0 || (e.GetKind() != "transfer" && e.GetKind() != "charge_sub_wallet") {
				continue
			}
			p, err := s.Payment(merchant, e.GetTxId())
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, 0, err
			}
			out = append(out, p)
			if len(out) == limit {
				return out, before, nil
			}
		}
	}
	return out, before, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, pebble.ErrNotFound)
}
