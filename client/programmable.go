package client

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Programmable money (SPEC §5): builders and helpers for red-packet
// campaigns, sub-wallets pushed to platforms, and merchants' refunds. The
// rules are the ledger's (state/DESIGN.md, "Programmable money"); the
// helpers choose inputs, sign once and submit like helpers.go.

// --- builders ---

// CreateCampaign opens a red-packet campaign funded from the sponsor's
// inputs (spec.Inputs). Signer: the sponsor wallet's key.
func (b *Builder) CreateCampaign(sponsor crypto.Signer, spec *statepb.CreateCampaign, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_CreateCampaign{CreateCampaign: spec}}, opts, sponsor)
}

// AddCampaignMerchants adds up to statepb.MaxMerchantsPerTx merchants to a
// campaign's list. Signer: the sponsor wallet's key.
func (b *Builder) AddCampaignMerchants(sponsor crypto.Signer, campaignID string, merchants []string, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_AddCampaignMerchants{AddCampaignMerchants: &statepb.AddCampaignMerchants{CampaignId: campaignID, MerchantIds: merchants}}}, opts, sponsor)
}

// EnrolCampaign enrols a personal wallet. Signer: the wallet's key.
func (b *Builder) EnrolCampaign(wallet crypto.Signer, campaignID, walletID string, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_EnrolCampaign{EnrolCampaign: &statepb.EnrolCampaign{CampaignId: campaignID, WalletId: walletID}}}, opts, wallet)
}

// DrawCampaign reveals the lottery seed. Signer: the sponsor wallet's key.
func (b *Builder) DrawCampaign(sponsor crypto.Signer, campaignID string, seed []byte, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_DrawCampaign{DrawCampaign: &statepb.DrawCampaign{CampaignId: campaignID, Seed: seed}}}, opts, sponsor)
}

// RefundPayment refunds amountFen of a payment merchantID received, from
// the merchant's inputs. Signer: the merchant wallet's key.
func (b *Builder) RefundPayment(merchant crypto.Signer, merchantID string, paymentTx [32]byte, inputs []*statepb.Outpoint, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_RefundPayment{RefundPayment: &statepb.RefundPayment{
		MerchantWalletId: merchantID, PaymentTxId: paymentTx[:], Inputs: inputs, AmountFen: amountFen,
	}}}, opts, merchant)
}

// CreateSubWallet opens a sub-wallet under parentID. Signer: the parent
// wallet's key.
func (b *Builder) CreateSubWallet(parent crypto.Signer, parentID, subID string, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_CreateSubWallet{CreateSubWallet: &statepb.CreateSubWallet{ParentWalletId: parentID, SubWalletId: subID}}}, opts, parent)
}

// FundSubWallet moves amountFen from the parent's inputs into the
// sub-wallet. Signer: the parent wallet's key.
func (b *Builder) FundSubWallet(parent crypto.Signer, subID string, inputs []*statepb.Outpoint, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_FundSubWallet{FundSubWallet: &statepb.FundSubWallet{SubWalletId: subID, Inputs: inputs, AmountFen: amountFen}}}, opts, parent)
}

// PushSubWallet pushes a sub-wallet to a platform. Signer: the parent
// wallet's key.
func (b *Builder) PushSubWallet(parent crypto.Signer, push *statepb.PushSubWallet, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_PushSubWallet{PushSubWallet: push}}, opts, parent)
}

// RevokeSubWallet ends a sub-wallet's push. Signer: the parent wallet's key.
func (b *Builder) RevokeSubWallet(parent crypto.Signer, subID string, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_RevokeSubWallet{RevokeSubWallet: &statepb.RevokeSubWallet{SubWalletId: subID}}}, opts, parent)
}

// WithdrawSubWallet moves amountFen of the sub-wallet's inputs back to the
// parent. Signer: the parent wallet's key.
func (b *Builder) WithdrawSubWallet(parent crypto.Signer, subID string, inputs []*statepb.Outpoint, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_WithdrawSubWallet{WithdrawSubWallet: &statepb.WithdrawSubWallet{SubWalletId: subID, Inputs: inputs, AmountFen: amountFen}}}, opts, parent)
}

// ChargeSubWallet is a platform charging a sub-wallet pushed to it. Signer:
// the platform wallet's key.
func (b *Builder) ChargeSubWallet(platform crypto.Signer, platformID, subID string, inputs []*statepb.Outpoint, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_ChargeSubWallet{ChargeSubWallet: &statepb.ChargeSubWallet{
		PlatformWalletId: platformID, SubWalletId: subID, Inputs: inputs, AmountFen: amountFen,
	}}}, opts, platform)
}

// --- helpers: build, choose inputs, sign once, submit ---

// CreateCampaign funds and opens a campaign from the sponsor's outputs
// (spec.Inputs is chosen here: leave it empty).
func (c *Client) CreateCampaign(ctx context.Context, sponsor crypto.Signer, spec *statepb.CreateCampaign, opts ...TxOption) (*statepb.TxResult, error) {
	body := &statepb.Tx{Kind: &statepb.Tx_CreateCampaign{CreateCampaign: withInputs(spec, placeholder)}}
	return c.spend(ctx, body, opts, spec.GetSponsorWalletId(), func() uint64 {
		total, _ := spec.TotalFen() // ValidateBasic refused an overflow
		return total
	}, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.CreateCampaign(sponsor, withInputs(spec, in), opts...)
	})
}

// withInputs is spec with other inputs (spec is not modified).
func withInputs(spec *statepb.CreateCampaign, in []*statepb.Outpoint) *statepb.CreateCampaign {
	out := proto.Clone(spec).(*statepb.CreateCampaign)
	out.Inputs = in
	return out
}

// AddCampaignMerchants adds merchants to a campaign's list in batches of
// statepb.MaxMerchantsPerTx, one transaction each, and returns their
// results (all OK, or the results so far and the error).
func (c *Client) AddCampaignMerchants(ctx context.Context, sponsor crypto.Signer, campaignID string, merchants []string, opts ...TxOption) ([]*statepb.TxResult, error) {
	var out []*statepb.TxResult
	for i := 0; i < len(merchants); i += statepb.MaxMerchantsPerTx {
		batch := merchants[i:min(i+statepb.MaxMerchantsPerTx, len(merchants))]
		r, err := c.submit(ctx, func(b *Builder) (*SignedTx, error) {
			return b.AddCampaignMerchants(sponsor, campaignID, batch, opts...)
		})
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Enrol enrols a personal wallet in a campaign.
func (c *Client) Enrol(ctx context.Context, wallet crypto.Signer, campaignID, walletID string, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.EnrolCampaign(wallet, campaignID, walletID, opts...) })
}

// Draw reveals a campaign's seed; the ledger then grants the winners.
func (c *Client) Draw(ctx context.Context, sponsor crypto.Signer, campaignID string, seed []byte, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.DrawCampaign(sponsor, campaignID, seed, opts...) })
}

// Refund refunds amountFen of a payment a merchant received (0: all that
// is still refundable), from the merchant's plain outputs.
func (c *Client) Refund(ctx context.Context, merchant crypto.Signer, merchantID string, paymentTx [32]byte, amountFen uint64, opts ...TxOption) (*statepb.TxResult, error) {
	// What is still refundable, so that an impossible refund is refused
	// with the ledger's code before inputs are chosen.
	p, err := c.Payment(ctx, merchantID, paymentTx, Linearizable())
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, statepb.Errorf(statepb.Code_CODE_PAYMENT_NOT_FOUND, "refund_payment.payment_tx_id: %x is not a payment %s received", paymentTx[:], merchantID)
		}
		return nil, err
	}
	left := p.GetPayment().GetAmountFen() - p.GetPayment().GetRefundedFen()
	switch {
	case left == 0:
		return nil, statepb.Errorf(statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT, "refund_payment: payment %x to %s is already refunded in full", paymentTx[:8], merchantID)
	case amountFen == 0:
		amountFen = left
	case amountFen > left:
		return nil, statepb.Errorf(statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT, "refund_payment.amount_fen: %s, but only %s of the payment of %s is still refundable",
			state.Fen(amountFen), state.Fen(left), state.Fen(p.GetPayment().GetAmountFen()))
	}
	body := &statepb.Tx{Kind: &statepb.Tx_RefundPayment{RefundPayment: &statepb.RefundPayment{MerchantWalletId: merchantID, PaymentTxId: paymentTx[:], Inputs: placeholder, AmountFen: amountFen}}}
	return c.spend(ctx, body, opts, merchantID, func() uint64 { return amountFen }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.RefundPayment(merchant, merchantID, paymentTx, in, amountFen, opts...)
	})
}

// CreateSubWallet opens a sub-wallet under the holder's wallet.
func (c *Client) CreateSubWallet(ctx context.Context, parent crypto.Signer, parentID, subID string, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.CreateSubWallet(parent, parentID, subID, opts...) })
}

// FundSubWallet moves amountFen from the parent wallet (parentID, whose
// key is parent) into the sub-wallet.
func (c *Client) FundSubWallet(ctx context.Context, parent crypto.Signer, parentID, subID string, amountFen uint64, opts ...TxOption) (*statepb.TxResult, error) {
	body := &statepb.Tx{Kind: &statepb.Tx_FundSubWallet{FundSubWallet: &statepb.FundSubWallet{SubWalletId: subID, Inputs: placeholder, AmountFen: amountFen}}}
	return c.spend(ctx, body, opts, parentID, func() uint64 { return amountFen }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.FundSubWallet(parent, subID, in, amountFen, opts...)
	})
}

// PushSubWallet pushes a sub-wallet to a platform.
func (c *Client) PushSubWallet(ctx context.Context, parent crypto.Signer, push *statepb.PushSubWallet, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.PushSubWallet(parent, push, opts...) })
}

// RevokeSubWallet ends a sub-wallet's push at once.
func (c *Client) RevokeSubWallet(ctx context.Context, parent crypto.Signer, subID string, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.RevokeSubWallet(parent, subID, opts...) })
}

// WithdrawSubWallet pulls amountFen back from the sub-wallet to its parent;
// 0 pulls everything, in as many transactions as its outputs need
// (statepb.MaxInputs each). It returns the OK results.
func (c *Client) WithdrawSubWallet(ctx context.Context, parent crypto.Signer, subID string, amountFen uint64, opts ...TxOption) ([]*statepb.TxResult, error) {
	if amountFen > 0 {
		body := &statepb.Tx{Kind: &statepb.Tx_WithdrawSubWallet{WithdrawSubWallet: &statepb.WithdrawSubWallet{SubWalletId: subID, Inputs: placeholder, AmountFen: amountFen}}}
		r, err := c.spend(ctx, body, opts, subID, func() uint64 { return amountFen }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
			return b.WithdrawSubWallet(parent, subID, in, amountFen, opts...)
		})
		if err != nil {
			return nil, err
		}
		return []*statepb.TxResult{r}, nil
	}
	b, err := c.Builder(ctx)
	if err != nil {
		return nil, err
	}
	var out []*statepb.TxResult
	for {
		unspent, err := c.Unspent(ctx, subID, Linearizable())
		if err != nil {
			return out, err
		}
		cs := coins(unspent)
		if len(cs) == 0 {
			return out, nil
		}
		cs = cs[:min(len(cs), statepb.MaxInputs)]
		var in []*statepb.Outpoint
		var total uint64
		for _, x := range cs {
			in = append(in, x.op)
			total += x.fen
		}
		tx, err := b.WithdrawSubWallet(parent, subID, in, total, opts...)
		if err != nil {
			return out, err
		}
		r, err := c.SubmitOK(ctx, tx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// Charge is a platform charging amountFen to a sub-wallet pushed to it,
// choosing the sub-wallet's outputs.
func (c *Client) Charge(ctx context.Context, platform crypto.Signer, platformID, subID string, amountFen uint64, opts ...TxOption) (*statepb.TxResult, error) {
	// The push's rules, checked as the ledger would at the node's ledger
	// time, so that a charge it would refuse fails with its code before
	// inputs are chosen (the ledger decides in the end).
	sr, err := c.SubWallet(ctx, subID, Linearizable())
	if err != nil {
		return nil, err
	}
	if rej := checkCharge(sr.GetSubWallet(), sr.GetFreshness().GetLedgerTimeMs(), platformID, amountFen); rej != nil {
		return nil, rej
	}
	body := &statepb.Tx{Kind: &statepb.Tx_ChargeSubWallet{ChargeSubWallet: &statepb.ChargeSubWallet{PlatformWalletId: platformID, SubWalletId: subID, Inputs: placeholder, AmountFen: amountFen}}}
	return c.spend(ctx, body, opts, subID, func() uint64 { return amountFen }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.ChargeSubWallet(platform, platformID, subID, in, amountFen, opts...)
	})
}

// PayWithRedPackets pays payees from a wallet using exactly the inputs
// SelectWithRedPackets chooses for campaign, without asking the node
// whether they are eligible: the ledger decides (e.g. to show that a red
// packet is refused outside its merchants). Most callers want Pay, which
// uses red packets only where they are accepted.
func (c *Client) PayWithRedPackets(ctx context.Context, key crypto.Signer, fromWalletID, campaignID string, payees []*statepb.Payee, opts ...TxOption) (*statepb.TxResult, error) {
	b, err := c.Builder(ctx)
	if err != nil {
		return nil, err
	}
	unspent, err := c.Unspent(ctx, fromWalletID, Linearizable())
	if err != nil {
		return nil, err
	}
	var need uint64
	for _, p := range payees {
		need = satAdd(need, p.GetAmountFen())
	}
	if RedPacketTotal(unspent)[campaignID] == 0 {
		return nil, fmt.Errorf("%w: wallet %s holds no red packets of campaign %s", ErrInsufficientFunds, fromWalletID, campaignID)
	}
	sel, err := SelectWithRedPackets(unspent, campaignID, need)
	if err != nil {
		return nil, err
	}
	tx, err := b.Transfer(key, fromWalletID, sel.Inputs, payees, opts...)
	if err != nil {
		return nil, err
	}
	return c.SubmitOK(ctx, tx)
}

// checkCharge is the ledger's push rules of a charge (state/subwallet.go),
// in its order, at ledger time now.
func checkCharge(r *statepb.SubWalletRecord, now int64, platformID string, amountFen uint64) *statepb.Error {
	const f = "charge_sub_wallet"
	switch {
	case r.GetPlatformWalletId() == "":
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_NOT_PUSHED, "%s.sub_wallet_id: %q is not pushed to any platform", f, r.GetSubWalletId())
	case r.GetPlatformWalletId() != platformID:
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_WRONG_PLATFORM, "%s.platform_wallet_id: %q is pushed to %q, not to %q", f, r.GetSubWalletId(), r.GetPlatformWalletId(), platformID)
	case r.GetRevoked():
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_REVOKED, "%s.sub_wallet_id: the holder revoked %q's push to %q", f, r.GetSubWalletId(), platformID)
	case now >= r.GetExpiresMs():
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_EXPIRED, "%s.sub_wallet_id: %q's push to %q has expired", f, r.GetSubWalletId(), platformID)
	case amountFen > r.GetMaxPaymentFen():
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_LIMIT_PAYMENT, "%s.amount_fen: %s exceeds %q's per-payment cap %s", f, state.Fen(amountFen), r.GetSubWalletId(), state.Fen(r.GetMaxPaymentFen()))
	}
	var used uint64
	if r.GetSpendDay() == beijingDay(now) {
		used = r.GetSpentDayFen()
	}
	if used > r.GetMaxDailyFen() || amountFen > r.GetMaxDailyFen()-used {
		return statepb.Errorf(statepb.Code_CODE_SUBWALLET_LIMIT_DAILY, "%s.amount_fen: %s would take %q past its daily cap %s (%s charged today, Beijing time)", f, state.Fen(amountFen), r.GetSubWalletId(), state.Fen(r.GetMaxDailyFen()), state.Fen(used))
	}
	return nil
}

// beijingDay is the Beijing-time (UTC+8) day number of ledger time ms, as
// the ledger counts days.
func beijingDay(ms int64) int64 {
	local := ms + 8*3600*1000
	d := local / 86_400_000
	if local%86_400_000 < 0 {
		d--
	}
	return d
}
