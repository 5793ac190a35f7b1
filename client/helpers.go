package client

import (
	"context"
	"crypto"
	"crypto/ed25519"

	"github.com/dcep/dcep/state/statepb"
)

// The helpers below each build a transaction, choose its inputs if it
// spends, sign it once, submit it (Submit: safe retries of the same bytes)
// and wait for the outcome. They return the result, and an error if there is
// no OK outcome: a *TxError when the ledger refused the transaction (the
// result is returned with it), a *statepb.Error when the input was refused
// before anything was sent, a *FundsError when the wallet cannot pay, or an
// *APIError / *OutcomeUnknownError from Submit.

// PayTo is one payee of Pay.
func PayTo(walletID string, amountFen uint64) *statepb.Payee {
	return &statepb.Payee{WalletId: walletID, AmountFen: amountFen}
}

// placeholder stands for the inputs while a spending transaction is checked
// before its inputs are chosen.
var placeholder = []*statepb.Outpoint{{TxId: make([]byte, statepb.TxIDBytes)}}

// spend checks body (whose inputs are the placeholder) without state, then
// chooses inputs of walletID covering needFen and builds, signs and
// submits the transaction.
func (c *Client) spend(ctx context.Context, body *statepb.Tx, opts []TxOption, walletID string, needFen func() uint64,
	build func(b *Builder, inputs []*statepb.Outpoint) (*SignedTx, error)) (*statepb.TxResult, error) {
	b, err := c.Builder(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.check(body, opts); err != nil {
		return nil, err
	}
	unspent, err := c.Unspent(ctx, walletID)
	if err != nil {
		return nil, err
	}
	sel, err := c.selectFor(ctx, body, unspent, needFen())
	if err != nil {
		if fe, ok := err.(*FundsError); ok {
			fe.WalletID = walletID
		}
		return nil, err
	}
	tx, err := build(b, sel.Inputs)
	if err != nil {
		return nil, err
	}
	return c.SubmitOK(ctx, tx)
}

// Pay pays payees (at most statepb.MaxPayees) from wallet fromWalletID,
// signed with the wallet's key. Inputs are chosen by SelectInputs; the
// change comes back to the wallet.
func (c *Client) Pay(ctx context.Context, key crypto.Signer, fromWalletID string, payees []*statepb.Payee, opts ...TxOption) (*statepb.TxResult, error) {
	body := &statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{FromWalletId: fromWalletID, Inputs: placeholder, Payees: payees}}}
	need := func() uint64 { // ValidateBasic has refused an overflowing total
		var total uint64
		for _, p := range payees {
			total += p.GetAmountFen()
		}
		return total
	}
	return c.spend(ctx, body, opts, fromWalletID, need, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.Transfer(key, fromWalletID, in, payees, opts...)
	})
}

// Redeem pays amountFen from a wallet back to its bank's reserve (e-CNY
// becomes deposits), signed with the wallet's key.
func (c *Client) Redeem(ctx context.Context, key crypto.Signer, walletID string, amountFen uint64, opts ...TxOption) (*statepb.TxResult, error) {
	body := &statepb.Tx{Kind: &statepb.Tx_Redeem{Redeem: &statepb.Redeem{WalletId: walletID, Inputs: placeholder, AmountFen: amountFen}}}
	return c.spend(ctx, body, opts, walletID, func() uint64 { return amountFen }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.Redeem(key, walletID, in, amountFen, opts...)
	})
}

// Exchange pays amountFen from a bank's reserve to toWalletID, a wallet of
// that bank (deposits become e-CNY), signed with the bank's key.
func (c *Client) Exchange(ctx context.Context, bank crypto.Signer, bankID, toWalletID string, amountFen uint64, opts ...TxOption) (*statepb.TxResult, error) {
	body := &statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{BankId: bankID, Inputs: placeholder, ToWalletId: toWalletID, AmountFen: amountFen}}}
	reserve, err := c.reserve(ctx, body, opts, bankID)
	if err != nil {
		return nil, err
	}
	return c.spend(ctx, body, opts, reserve, func() uint64 { return amountFen }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.Exchange(bank, bankID, in, toWalletID, amountFen, opts...)
	})
}

// Return hands amountFen of a bank's reserve back to the central bank,
// which destroys it. Signed by the bank, then the central bank.
func (c *Client) Return(ctx context.Context, bank, centralBank crypto.Signer, bankID string, amountFen uint64, opts ...TxOption) (*statepb.TxResult, error) {
	body := &statepb.Tx{Kind: &statepb.Tx_Return{Return: &statepb.Return{BankId: bankID, Inputs: placeholder, AmountFen: amountFen}}}
	reserve, err := c.reserve(ctx, body, opts, bankID)
	if err != nil {
		return nil, err
	}
	return c.spend(ctx, body, opts, reserve, func() uint64 { return amountFen }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.Return(bank, centralBank, bankID, in, amountFen, opts...)
	})
}

// reserve checks body, then returns the reserve wallet of bankID from
// genesis.
func (c *Client) reserve(ctx context.Context, body *statepb.Tx, opts []TxOption, bankID string) (string, error) {
	b, err := c.Builder(ctx)
	if err != nil {
		return "", err
	}
	if err := b.check(body, opts); err != nil {
		return "", err
	}
	bk, err := b.Bank(bankID)
	if err != nil {
		return "", err
	}
	return bk.GetReserveWalletId(), nil
}

// Consolidate merges a fragmented wallet's outputs by paying itself: each
// round spends up to statepb.MaxInputs of its smallest outputs into one
// (self-payments do not count against limits). It runs rounds until the
// wallet has at most one output, or maxRounds rounds (≤ 0: no bound), and
// returns the OK results. Use it when a payment fails with
// ErrTooFragmented.
func (c *Client) Consolidate(ctx context.Context, key crypto.Signer, walletID string, maxRounds int, opts ...TxOption) ([]*statepb.TxResult, error) {
	b, err := c.Builder(ctx)
	if err != nil {
		return nil, err
	}
	var results []*statepb.TxResult
	for maxRounds <= 0 || len(results) < maxRounds {
		unspent, err := c.Unspent(ctx, walletID)
		if err != nil {
			return results, err
		}
		sel := SelectConsolidation(unspent)
		if sel == nil {
			return results, nil
		}
		tx, err := b.Transfer(key, walletID, sel.Inputs, []*statepb.Payee{PayTo(walletID, sel.TotalFen)}, opts...)
		if err != nil {
			return results, err
		}
		r, err := c.SubmitOK(ctx, tx)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

// submit builds with b and submits.
func (c *Client) submit(ctx context.Context, build func(b *Builder) (*SignedTx, error)) (*statepb.TxResult, error) {
	b, err := c.Builder(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := build(b)
	if err != nil {
		return nil, err
	}
	return c.SubmitOK(ctx, tx)
}

// Issue creates amountFen in a bank's reserve, signed by the central bank.
func (c *Client) Issue(ctx context.Context, centralBank crypto.Signer, bankID string, amountFen uint64, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.Issue(centralBank, bankID, amountFen, opts...) })
}

// RegisterWallet opens a wallet, signed by its bank.
func (c *Client) RegisterWallet(ctx context.Context, bank crypto.Signer, reg *statepb.RegisterWallet, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.RegisterWallet(bank, reg, opts...) })
}

// UpdateWallet sets a wallet's tier, region, category and limits, signed
// by its bank.
func (c *Client) UpdateWallet(ctx context.Context, bank crypto.Signer, upd *statepb.UpdateWallet, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.UpdateWallet(bank, upd, opts...) })
}

// RotateWalletKey replaces a wallet's key, signed by its bank. Store the
// new private key before calling this (keystore.Store.Replace keeps the old
// one), so that neither key can be lost whatever the outcome.
func (c *Client) RotateWalletKey(ctx context.Context, bank crypto.Signer, walletID string, newKey ed25519.PublicKey, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.RotateWalletKey(bank, walletID, newKey, opts...) })
}

// FreezeWallet stops a wallet sending and receiving, signed by its bank.
func (c *Client) FreezeWallet(ctx context.Context, bank crypto.Signer, walletID, reason string, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.FreezeWallet(bank, walletID, reason, opts...) })
}

// UnfreezeWallet lifts a freeze, signed by the wallet's bank.
func (c *Client) UnfreezeWallet(ctx context.Context, bank crypto.Signer, walletID, reason string, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.UnfreezeWallet(bank, walletID, reason, opts...) })
}

// CloseWallet closes an empty wallet for good, signed by its bank.
func (c *Client) CloseWallet(ctx context.Context, bank crypto.Signer, walletID string, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.CloseWallet(bank, walletID, opts...) })
}

// ChangeMembership adds or removes a node, signed by the central bank.
func (c *Client) ChangeMembership(ctx context.Context, centralBank crypto.Signer, action statepb.MembershipAction, node *statepb.Node, opts ...TxOption) (*statepb.TxResult, error) {
	return c.submit(ctx, func(b *Builder) (*SignedTx, error) { return b.ChangeMembership(centralBank, action, node, opts...) })
}
