package client

import (
	"context"
	"crypto/ed25519"
	"iter"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
)

// Dual offline payments (SPEC §4; docs/offline.md). Devices themselves are
// in client/device; this file has the ledger side: the three kinds a device
// or wallet submits, and the reads.

// Offline is the network's offline-payment verification context (chain id,
// genesis hash, the banks' keys), for signing and checking certificates,
// payments and receipts.
func (b *Builder) Offline() *offline.Network {
	return offline.NewNetwork(b.genesis, b.signer.GenesisHash)
}

// OpenPurse moves cert's amount from walletID's outputs inputs into the
// escrow of the offline purse cert describes. cert is signed by the
// wallet's bank. Signer: the wallet's key.
func (b *Builder) OpenPurse(wallet ed25519.PrivateKey, walletID string, inputs []*statepb.Outpoint, cert *statepb.PurseCert, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_OpenPurse{OpenPurse: &statepb.OpenPurse{WalletId: walletID, Inputs: inputs, Cert: cert}}}, opts, wallet)
}

// DepositOffline settles offline payments the device received and credits
// walletID (at most statepb.MaxDepositItems). Signer: the receiving device.
func (b *Builder) DepositOffline(device ed25519.PrivateKey, walletID string, items []*statepb.DepositItem, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_DepositOffline{DepositOffline: &statepb.DepositOffline{
		DevicePublicKey: device.Public().(ed25519.PublicKey), WalletId: walletID, Items: items,
	}}}, opts, device)
}

// ClosePurse closes a purse: the device's last counter and the payments it
// holds receipts for. Signer: the purse's device.
func (b *Builder) ClosePurse(device ed25519.PrivateKey, purseID []byte, finalCounter uint32, receipted []*statepb.ReservedPayment, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_ClosePurse{ClosePurse: &statepb.ClosePurse{
		PurseId: purseID, FinalCounter: finalCounter, Receipted: receipted,
	}}}, opts, device)
}

// OpenPurse chooses inputs of walletID covering cert's amount, then builds,
// signs and submits the open_purse (see the helpers in helpers.go for the
// errors).
func (c *Client) OpenPurse(ctx context.Context, key ed25519.PrivateKey, walletID string, cert *statepb.PurseCert, opts ...TxOption) (*statepb.TxResult, error) {
	body, err := offline.DecodeCert(cert)
	if err != nil {
		return nil, err
	}
	tx := &statepb.Tx{Kind: &statepb.Tx_OpenPurse{OpenPurse: &statepb.OpenPurse{WalletId: walletID, Inputs: placeholder, Cert: cert}}}
	return c.spend(ctx, tx, opts, walletID, func() uint64 { return body.GetAmountFen() }, func(b *Builder, in []*statepb.Outpoint) (*SignedTx, error) {
		return b.OpenPurse(key, walletID, in, cert, opts...)
	})
}

// Purse returns an offline purse, the payments settled under it and its
// device's revocation (if revoked).
func (c *Client) Purse(ctx context.Context, purseID []byte, opts ...ReadOption) (*nodepb.GetPurseResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.GetPurseResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetPurse(ctx, connect.NewRequest(&nodepb.GetPurseRequest{PurseId: purseID, Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Settlement returns a deposited payment's settlement by the payment's hash.
func (c *Client) Settlement(ctx context.Context, paymentHash []byte, opts ...ReadOption) (*statepb.Settlement, error) {
	ro, _ := readOptions(opts)
	var out *statepb.Settlement
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetSettlement(ctx, connect.NewRequest(&nodepb.GetSettlementRequest{PaymentHash: paymentHash, Read: ro}))
		if err == nil {
			out = r.Msg.GetSettlement()
		}
		return err
	})
	return out, err
}

// OfflineTx returns a deposit's result per payment (and the owners of an
// offline transaction's outputs).
func (c *Client) OfflineTx(ctx context.Context, txID [32]byte, opts ...ReadOption) (*statepb.OfflineTxRecord, error) {
	ro, _ := readOptions(opts)
	var out *statepb.OfflineTxRecord
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetOfflineTx(ctx, connect.NewRequest(&nodepb.GetOfflineTxRequest{TxId: txID[:], Read: ro}))
		if err == nil {
			out = r.Msg.GetRecord()
		}
		return err
	})
	return out, err
}

// Incidents iterates over double-spend incidents with ids above after, in
// id order, a page at a time. The iteration stops at the first error, which
// it yields.
func (c *Client) Incidents(ctx context.Context, after uint64, opts ...ReadOption) iter.Seq2[*statepb.Incident, error] {
	ro, limit := readOptions(opts)
	return ascending(ctx, c, after, "incident", func(ctx context.Context, after uint64) ([]*statepb.Incident, error) {
		r, err := c.api.ListIncidents(ctx, connect.NewRequest(&nodepb.ListIncidentsRequest{After: after, Limit: limit, Read: ro}))
		if err != nil {
			return nil, err
		}
		return r.Msg.GetIncidents(), nil
	}, (*statepb.Incident).GetId)
}

// Revocations returns the device revocation list after index after (all of
// it, reading every page) and the ledger's total.
func (c *Client) Revocations(ctx context.Context, after uint64, opts ...ReadOption) ([]*statepb.Revocation, uint64, error) {
	ro, limit := readOptions(opts)
	var all []*statepb.Revocation
	var total uint64
	for {
		var resp *nodepb.ListRevocationsResponse
		err := c.read(ctx, func(ctx context.Context) error {
			r, err := c.api.ListRevocations(ctx, connect.NewRequest(&nodepb.ListRevocationsRequest{After: after, Limit: limit, Read: ro}))
			if err == nil {
				resp = r.Msg
			}
			return err
		})
		if err != nil {
			return nil, 0, err
		}
		total = max(total, resp.GetTotal())
		page := resp.GetRevocations()
		if len(page) == 0 {
			return all, total, nil
		}
		for _, r := range page {
			if r.GetIndex() <= after {
				return nil, 0, ErrBadResponse
			}
			after = r.GetIndex()
		}
		all = append(all, page...)
	}
}

// OfflineDebt returns what a wallet owes its bank for offline payments its
// bank's guarantee made (zero if none).
func (c *Client) OfflineDebt(ctx context.Context, walletID string, opts ...ReadOption) (*statepb.OfflineDebt, error) {
	ro, _ := readOptions(opts)
	var out *statepb.OfflineDebt
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetOfflineDebt(ctx, connect.NewRequest(&nodepb.GetOfflineDebtRequest{WalletId: walletID, Read: ro}))
		if err == nil {
			out = r.Msg.GetDebt()
		}
		return err
	})
	return out, err
}
