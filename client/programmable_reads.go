package client

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"iter"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/lottery"
	"github.com/dcep/dcep/state/statepb"
)

// Reads of programmable money (ProgrammableService, SPEC §5).

// Campaign returns a campaign and its figures; with walletID, also that
// wallet's enrolment. An unknown campaign is an *APIError matching
// ErrNotFound.
func (c *Client) Campaign(ctx context.Context, campaignID, walletID string, opts ...ReadOption) (*nodepb.GetCampaignResponse, error) {
	if err := statepb.ValidateID("campaign id", campaignID); err != nil {
		return nil, err
	}
	ro, _ := readOptions(opts)
	var out *nodepb.GetCampaignResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.prog.GetCampaign(ctx, connect.NewRequest(&nodepb.GetCampaignRequest{CampaignId: campaignID, WalletId: walletID, Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Campaigns iterates over all campaigns in id order.
func (c *Client) Campaigns(ctx context.Context, opts ...ReadOption) iter.Seq2[*statepb.CampaignRecord, error] {
	ro, limit := readOptions(opts)
	return ascending(ctx, c, "", "campaign", func(ctx context.Context, after string) ([]*statepb.CampaignRecord, error) {
		r, err := c.prog.ListCampaigns(ctx, connect.NewRequest(&nodepb.ListCampaignsRequest{After: after, Limit: limit, Read: ro}))
		if err != nil {
			return nil, err
		}
		return r.Msg.GetCampaigns(), nil
	}, (*statepb.CampaignRecord).GetId)
}

// Enrolments iterates over a campaign's enrolments in order from number
// from.
func (c *Client) Enrolments(ctx context.Context, campaignID string, from uint64, opts ...ReadOption) iter.Seq2[*statepb.EnrolmentRecord, error] {
	ro, limit := readOptions(opts)
	return numbered(ctx, c, from, "enrolment", func(ctx context.Context, from uint64) ([]*statepb.EnrolmentRecord, error) {
		r, err := c.prog.ListEnrolments(ctx, connect.NewRequest(&nodepb.ListEnrolmentsRequest{CampaignId: campaignID, From: from, Limit: limit, Read: ro}))
		if err != nil {
			return nil, err
		}
		return r.Msg.GetEnrolments(), nil
	}, (*statepb.EnrolmentRecord).GetNumber)
}

// Winners iterates over a campaign's winners by rank from rank from.
func (c *Client) Winners(ctx context.Context, campaignID string, from uint64, opts ...ReadOption) iter.Seq2[*statepb.WinnerRecord, error] {
	ro, limit := readOptions(opts)
	return numbered(ctx, c, from, "winner of rank", func(ctx context.Context, from uint64) ([]*statepb.WinnerRecord, error) {
		r, err := c.prog.ListWinners(ctx, connect.NewRequest(&nodepb.ListWinnersRequest{CampaignId: campaignID, From: from, Limit: limit, Read: ro}))
		if err != nil {
			return nil, err
		}
		return r.Msg.GetWinners(), nil
	}, (*statepb.WinnerRecord).GetRank)
}

// ascending iterates over a listing ordered by a strictly increasing key,
// page by page after key start (fetch returns the page after a key). A page
// whose keys do not increase is ErrBadResponse: a node must not make the
// iteration loop or skip back.
func ascending[T any, K cmp.Ordered](ctx context.Context, c *Client, start K, what string, fetch func(context.Context, K) ([]T, error), key func(T) K) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		after := start
		for {
			var page []T
			err := c.read(ctx, func(ctx context.Context) error {
				var err error
				page, err = fetch(ctx, after)
				return err
			})
			if err != nil {
				yield(zero, err)
				return
			}
			if len(page) == 0 {
				return
			}
			for _, x := range page {
				if key(x) <= after {
					yield(zero, fmt.Errorf("%w: %s listing went back from %v to %v", ErrBadResponse, what, after, key(x)))
					return
				}
				if !yield(x, nil) {
					return
				}
				after = key(x)
			}
		}
	}
}

// numbered iterates over a listing whose items carry consecutive numbers,
// page by page from number from (fetch returns the page that starts
// there). A page that skips or repeats a number is ErrBadResponse: a
// recomputation built on it would be wrong.
func numbered[T any](ctx context.Context, c *Client, from uint64, what string, fetch func(context.Context, uint64) ([]T, error), num func(T) uint64) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			var page []T
			err := c.read(ctx, func(ctx context.Context) error {
				var err error
				page, err = fetch(ctx, from)
				return err
			})
			if err != nil {
				yield(zero, err)
				return
			}
			if len(page) == 0 {
				return
			}
			for _, x := range page {
				if num(x) != from {
					yield(zero, fmt.Errorf("%w: %s %d where %d was due", ErrBadResponse, what, num(x), from))
					return
				}
				if !yield(x, nil) {
					return
				}
				from++
			}
		}
	}
}

// Eligibility says whether a wallet can be paid with a campaign's red
// packets, and whether the node's ledger time is inside the window.
func (c *Client) Eligibility(ctx context.Context, campaignID, walletID string, opts ...ReadOption) (*nodepb.CheckEligibilityResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.CheckEligibilityResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.prog.CheckEligibility(ctx, connect.NewRequest(&nodepb.CheckEligibilityRequest{CampaignId: campaignID, WalletId: walletID, Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// SubWallet returns a sub-wallet and its push.
func (c *Client) SubWallet(ctx context.Context, subID string, opts ...ReadOption) (*nodepb.GetSubWalletResponse, error) {
	if err := statepb.ValidateID("sub-wallet id", subID); err != nil {
		return nil, err
	}
	ro, _ := readOptions(opts)
	var out *nodepb.GetSubWalletResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.prog.GetSubWallet(ctx, connect.NewRequest(&nodepb.GetSubWalletRequest{SubWalletId: subID, Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Payment returns a payment a merchant received, with its refunds.
func (c *Client) Payment(ctx context.Context, merchantID string, txID [32]byte, opts ...ReadOption) (*nodepb.GetPaymentResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.GetPaymentResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.prog.GetPayment(ctx, connect.NewRequest(&nodepb.GetPaymentRequest{MerchantWalletId: merchantID, TxId: txID[:], Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Payments iterates over the payments a merchant received, newest first.
func (c *Client) Payments(ctx context.Context, merchantID string, opts ...ReadOption) iter.Seq2[*statepb.PaymentRecord, error] {
	ro, limit := readOptions(opts)
	return func(yield func(*statepb.PaymentRecord, error) bool) {
		var before uint64
		for {
			var resp *nodepb.ListPaymentsResponse
			err := c.read(ctx, func(ctx context.Context) error {
				r, err := c.prog.ListPayments(ctx, connect.NewRequest(&nodepb.ListPaymentsRequest{MerchantWalletId: merchantID, Before: before, Limit: limit, Read: ro}))
				if err == nil {
					resp = r.Msg
				}
				return err
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, p := range resp.GetPayments() {
				if !yield(p, nil) {
					return
				}
			}
			next := resp.GetNext()
			if next == 0 {
				return
			}
			if before != 0 && next >= before {
				yield(nil, fmt.Errorf("%w: payments of %q do not advance", ErrBadResponse, merchantID))
				return
			}
			before = next
		}
	}
}

// DrawCheck is the result of VerifyDraw.
type DrawCheck struct {
	Campaign *statepb.CampaignRecord
	// CommitmentOK: SHA-256 of the revealed seed is the commitment made
	// when the campaign was created.
	CommitmentOK bool
	// Enrolled is the enrolment list (wallet ids in order).
	Enrolled []string
	// Winners are the recomputed winners' wallet ids by rank.
	Winners []string
	// Checked is how many of the ledger's winners (by rank) were compared:
	// all granted so far. Mismatches lists ranks where they differ.
	Checked    int
	Mismatches []string
}

// OK reports whether the draw checks out: the commitment matches, and the
// ledger's winners so far are the recomputed ones.
func (d *DrawCheck) OK() bool { return d.CommitmentOK && len(d.Mismatches) == 0 }

// VerifyDraw recomputes a campaign's winners from public data: the seed
// the sponsor revealed, the campaign id and the enrolment list, with
// state/lottery (the ledger's own algorithm), and compares them with the
// winners the ledger granted. It reads the whole enrolment list (a page of
// 1,000 per request).
func (c *Client) VerifyDraw(ctx context.Context, campaignID string, opts ...ReadOption) (*DrawCheck, error) {
	resp, err := c.Campaign(ctx, campaignID, "", opts...)
	if err != nil {
		return nil, err
	}
	camp := resp.GetCampaign()
	if len(camp.GetSeed()) == 0 {
		return nil, statepb.Errorf(statepb.Code_CODE_DRAW_TOO_EARLY, "campaign %s has not been drawn: there is no seed to check yet", campaignID)
	}
	out := &DrawCheck{Campaign: camp}
	sum := sha256.Sum256(camp.GetSeed())
	out.CommitmentOK = string(sum[:]) == string(camp.GetCommitment())
	for e, err := range c.Enrolments(ctx, campaignID, 0, opts...) {
		if err != nil {
			return nil, err
		}
		out.Enrolled = append(out.Enrolled, e.GetWalletId())
	}
	if uint64(len(out.Enrolled)) != camp.GetEnrolled() {
		return nil, fmt.Errorf("%w: %d enrolments listed, the campaign says %d", ErrBadResponse, len(out.Enrolled), camp.GetEnrolled())
	}
	d := lottery.Draw{Seed: camp.GetSeed(), Campaign: camp.GetId(), N: uint64(len(out.Enrolled)), K: uint64(camp.GetPacketCount())}
	nums := d.All()
	for _, n := range nums {
		out.Winners = append(out.Winners, out.Enrolled[n])
	}
	for w, err := range c.Winners(ctx, campaignID, 0, opts...) {
		if err != nil {
			return nil, err
		}
		r := w.GetRank()
		switch {
		case r >= uint64(len(nums)):
			out.Mismatches = append(out.Mismatches, fmt.Sprintf("rank %d: the ledger granted more winners than the lottery draws (%d)", r, len(nums)))
		case w.GetEnrolment() != nums[r] || w.GetWalletId() != out.Winners[r]:
			out.Mismatches = append(out.Mismatches, fmt.Sprintf("rank %d: ledger %s (enrolment %d), recomputed %s (enrolment %d)", r, w.GetWalletId(), w.GetEnrolment(), out.Winners[r], nums[r]))
		}
		out.Checked++
	}
	return out, nil
}
