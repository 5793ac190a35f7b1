package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"iter"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// ReadOption chooses how a read is made.
type ReadOption func(*readConfig)

type readConfig struct {
	linearizable bool
	pageSize     uint32
}

// Linearizable makes a read see every write acknowledged before it began,
// at the cost of a round trip to the leader. Without it a node answers from
// its own applied state; every answer says how fresh it is (Freshness).
func Linearizable() ReadOption { return func(r *readConfig) { r.linearizable = true } }

// PageSize sets how many items a paged read asks for at a time (default
// and maximum 1000).
func PageSize(n int) ReadOption {
	return func(r *readConfig) {
		if n > 0 && n <= state.MaxPageSize {
			r.pageSize = uint32(n)
		}
	}
}

func readOptions(opts []ReadOption) (*nodepb.ReadOptions, uint32) {
	rc := readConfig{pageSize: state.MaxPageSize}
	for _, o := range opts {
		o(&rc)
	}
	return &nodepb.ReadOptions{Linearizable: rc.linearizable}, rc.pageSize
}

// Genesis returns the network's genesis and its hash, after checking that
// the hash is the one the genesis hashes to (a client must never sign for a
// network it misidentifies).
func (c *Client) Genesis(ctx context.Context) (*nodepb.GetGenesisResponse, error) {
	var out *nodepb.GetGenesisResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetGenesis(ctx, connect.NewRequest(&nodepb.GetGenesisRequest{}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	h, err := state.GenesisHash(out.GetGenesis())
	if err != nil {
		return nil, fmt.Errorf("%w: genesis: %v", ErrBadResponse, err)
	}
	if string(h[:]) != string(out.GetGenesisHash()) {
		return nil, fmt.Errorf("%w: genesis hashes to %x, node says %x", ErrBadResponse, h, out.GetGenesisHash())
	}
	return out, nil
}

// Status describes the node and what it last heard from its peers.
func (c *Client) Status(ctx context.Context) (*nodepb.StatusResponse, error) {
	var out *nodepb.StatusResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.Status(ctx, connect.NewRequest(&nodepb.StatusRequest{}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Wallet returns a wallet with its balance and counters. A wallet that does
// not exist is an *APIError matching ErrNotFound.
func (c *Client) Wallet(ctx context.Context, walletID string, opts ...ReadOption) (*nodepb.GetWalletResponse, error) {
	if err := statepb.ValidateID("wallet id", walletID); err != nil {
		return nil, err
	}
	ro, _ := readOptions(opts)
	var out *nodepb.GetWalletResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetWallet(ctx, connect.NewRequest(&nodepb.GetWalletRequest{WalletId: walletID, Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// WalletKey returns the public key a memo to the wallet is sealed to
// (LedgerService/GetWalletKey): any signed-in caller may ask, and learns
// nothing else about the wallet. For a wallet the node does not know it is
// a decoy (docs/security.md, "Wallet keys"): a memo sealed to it opens for
// no one. Ask with Linearizable() so a wallet registered just before is
// found.
func (c *Client) WalletKey(ctx context.Context, walletID string, opts ...ReadOption) (ed25519.PublicKey, error) {
	if err := statepb.ValidateID("wallet id", walletID); err != nil {
		return nil, err
	}
	ro, _ := readOptions(opts)
	var out ed25519.PublicKey
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetWalletKey(ctx, connect.NewRequest(&nodepb.GetWalletKeyRequest{WalletId: walletID, Read: ro}))
		if err != nil {
			return err
		}
		if len(r.Msg.GetPublicKey()) != ed25519.PublicKeySize {
			return fmt.Errorf("GetWalletKey %q: the node answered a %d-byte key", walletID, len(r.Msg.GetPublicKey()))
		}
		out = ed25519.PublicKey(r.Msg.GetPublicKey())
		return nil
	})
	return out, err
}

// Balance returns a wallet's balance in fen.
func (c *Client) Balance(ctx context.Context, walletID string, opts ...ReadOption) (uint64, error) {
	w, err := c.Wallet(ctx, walletID, opts...)
	if err != nil {
		return 0, err
	}
	return w.GetWallet().GetBalanceFen(), nil
}

// Wallets iterates over all wallets in id order, a page at a time. The
// iteration stops at the first error, which it yields.
func (c *Client) Wallets(ctx context.Context, opts ...ReadOption) iter.Seq2[*statepb.WalletRecord, error] {
	ro, limit := readOptions(opts)
	return ascending(ctx, c, "", "wallet", func(ctx context.Context, after string) ([]*statepb.WalletRecord, error) {
		r, err := c.api.ListWallets(ctx, connect.NewRequest(&nodepb.ListWalletsRequest{After: after, Limit: limit, Read: ro}))
		if err != nil {
			return nil, err
		}
		return r.Msg.GetWallets(), nil
	}, (*statepb.WalletRecord).GetId)
}

// Unspent returns all of a wallet's unspent outputs, reading every page.
// Pages come from different moments: an output spent in between may still
// be listed (the ledger then refuses a transaction spending it with
// INPUT_SPENT, and nothing changes).
func (c *Client) Unspent(ctx context.Context, walletID string, opts ...ReadOption) ([]*nodepb.Unspent, error) {
	if err := statepb.ValidateID("wallet id", walletID); err != nil {
		return nil, err
	}
	ro, limit := readOptions(opts)
	var all []*nodepb.Unspent
	var after *statepb.Outpoint
	for {
		var page []*nodepb.Unspent
		err := c.read(ctx, func(ctx context.Context) error {
			r, err := c.api.ListUnspent(ctx, connect.NewRequest(&nodepb.ListUnspentRequest{WalletId: walletID, After: after, Limit: limit, Read: ro}))
			if err == nil {
				page = r.Msg.GetUnspent()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return all, nil
		}
		last := page[len(page)-1].GetOutpoint()
		if after != nil && compareOutpoints(last, after) <= 0 {
			return nil, fmt.Errorf("%w: unspent listing of %q does not advance", ErrBadResponse, walletID)
		}
		all = append(all, page...)
		after = last
	}
}

// History iterates over a wallet's history, newest first, a page at a
// time. The iteration stops at the first error, which it yields.
func (c *Client) History(ctx context.Context, walletID string, opts ...ReadOption) iter.Seq2[*statepb.HistoryEntry, error] {
	ro, limit := readOptions(opts)
	return func(yield func(*statepb.HistoryEntry, error) bool) {
		if err := statepb.ValidateID("wallet id", walletID); err != nil {
			yield(nil, err)
			return
		}
		var before uint64
		for {
			var resp *nodepb.HistoryResponse
			err := c.read(ctx, func(ctx context.Context) error {
				r, err := c.api.History(ctx, connect.NewRequest(&nodepb.HistoryRequest{WalletId: walletID, Before: before, Limit: limit, Read: ro}))
				if err == nil {
					resp = r.Msg
				}
				return err
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range resp.GetEntries() {
				if !yield(e, nil) {
					return
				}
			}
			next := resp.GetNext()
			if next == 0 || len(resp.GetEntries()) == 0 {
				return
			}
			if before != 0 && next >= before {
				yield(nil, fmt.Errorf("%w: history of %q does not advance (%d after %d)", ErrBadResponse, walletID, next, before))
				return
			}
			before = next
		}
	}
}

// Tx returns a recorded transaction, its decoded body and its outcome. An
// unknown id is an *APIError matching ErrNotFound.
func (c *Client) Tx(ctx context.Context, txID [32]byte, opts ...ReadOption) (*nodepb.GetTxResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.GetTxResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.GetTx(ctx, connect.NewRequest(&nodepb.GetTxRequest{TxId: txID[:], Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Supply returns the money supply's totals; with audit, also the SPEC §2
// invariant recomputed from the whole state, per bank (a regulator's
// "audit supply").
func (c *Client) Supply(ctx context.Context, audit bool, opts ...ReadOption) (*nodepb.SupplyResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.SupplyResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.api.Supply(ctx, connect.NewRequest(&nodepb.SupplyRequest{Audit: audit, Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Outcomes calls fn with the outcomes of every committed block from log
// index fromIndex on, in order, then follows new blocks until ctx is done
// or fn returns an error (which Outcomes returns). Indexes without a block
// (Raft configuration entries) are skipped by the node.
//
// When the stream breaks (node restart, network failure), Outcomes
// reconnects with backoff and resumes from the last index it delivered
// plus one; a block the node sends again is dropped, so fn never sees an
// index twice, and indexes only increase. If the node cannot be reached
// before anything was delivered, or it refuses the request outright
// (e.g. InvalidArgument), Outcomes returns that error.
func (c *Client) Outcomes(ctx context.Context, fromIndex uint64, fn func(*statepb.BlockRecord) error) error {
	var last uint64 // the last index delivered, if delivered
	delivered := false
	failures := 0
	for {
		from := fromIndex
		if delivered {
			from = last + 1
		}
		progressed, ferr, err := c.streamOnce(ctx, from, func(b *statepb.BlockRecord) error {
			i := b.GetLogIndex()
			if i < fromIndex || (delivered && i <= last) {
				return nil // seen already (or before what was asked for)
			}
			if err := fn(b); err != nil {
				return err
			}
			last, delivered = i, true
			return nil
		})
		if ferr != nil {
			return ferr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0
		}
		if err != nil && ((isDialError(err) && !delivered) || refused(err)) {
			return c.apiError(err)
		}
		failures++
		if !sleep(ctx, c.retry.backoff(failures)) {
			return ctx.Err()
		}
	}
}

// streamOnce runs one StreamOutcomes call from index from. It reports
// whether any block arrived, fn's error, and the stream's error (nil if
// the node ended the stream cleanly).
func (c *Client) streamOnce(ctx context.Context, from uint64, fn func(*statepb.BlockRecord) error) (progressed bool, fnErr, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.api.StreamOutcomes(ctx, connect.NewRequest(&nodepb.StreamOutcomesRequest{FromIndex: from}))
	if err != nil {
		return false, nil, err
	}
	defer s.Close()
	for s.Receive() {
		progressed = true
		if err := fn(s.Msg()); err != nil {
			return progressed, err, nil
		}
	}
	return progressed, nil, s.Err()
}
