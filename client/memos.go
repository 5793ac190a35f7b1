package client

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/dcep/dcep/client/memo"
	"github.com/dcep/dcep/state/statepb"
)

// Parties finds the keys a memo is sealed to beyond the transaction's
// signers (client/DESIGN.md, "Memos"). Client.Builder supplies one that
// asks the node; an offline Builder needs WithParties to seal memos.
type Parties interface {
	// Wallet is the wallet's record (its key and bank): asked only of a
	// wallet the builder's caller may read (a redeeming wallet, the
	// signer's own).
	Wallet(walletID string) (*statepb.WalletRecord, error)
	// WalletKey is the key that reads the wallet's memos (its own; for a
	// wallet without one, its parent's or its bank's): what a memo to it
	// is sealed to. Client.Builder asks the node's GetWalletKey, which any
	// signed-in caller may ask of any wallet.
	WalletKey(walletID string) (ed25519.PublicKey, error)
	// Payer is who paid merchantID in payment paymentTxID (for a refund).
	Payer(merchantID string, paymentTxID []byte) (string, error)
}

// ErrNoParties: a memo was given to a Builder that cannot look up the
// payees' keys (see WithParties).
var ErrNoParties = errors.New("memo: this builder cannot look up the payees' keys to seal the memo (Builder.WithParties)")

// WithParties returns a copy of b that seals memos using p.
func (b *Builder) WithParties(p Parties) *Builder {
	c := *b
	c.parties = p
	return &c
}

// sealMemo replaces body's plaintext memo (set by the Memo option) with
// the memo sealed to the signers and the payees. Randomness is used here,
// on the client; the ledger only stores the bytes.
func (b *Builder) sealMemo(body *statepb.Tx, keys []crypto.Signer) error {
	if body.GetMemo() == "" {
		return nil
	}
	if len(body.GetMemo()) > statepb.MaxMemoBytes {
		return statepb.Errorf(statepb.Code_CODE_MEMO_TOO_LONG, "memo: %d bytes (max %d)", len(body.GetMemo()), statepb.MaxMemoBytes)
	}
	var rs []ed25519.PublicKey
	for _, k := range keys {
		// A signer's public key is all sealing needs, so a key in a
		// PKCS#11 token seals too (opening needs the private key: a
		// token-held key cannot open memos, client/DESIGN.md).
		if k == nil {
			continue
		}
		if pub, ok := k.Public().(ed25519.PublicKey); ok {
			rs = append(rs, pub)
		}
	}
	more, err := b.memoParties(body)
	if err != nil {
		return err
	}
	sealed, err := memo.Seal(body.GetMemo(), append(rs, more...))
	if err != nil {
		return statepb.Errorf(statepb.Code_CODE_SEALED_MEMO_MALFORMED, "sealed_memo: %v", err)
	}
	body.Memo, body.SealedMemo = "", sealed
	return nil
}

// memoParties are the keys of a transaction's payees, the parties a memo is
// sealed to besides the signers: the bank issued to; the wallet exchanged
// to; a redeeming wallet's bank; a transfer's payees; a refund's original
// payer; a charged sub-wallet's holder. Other kinds: the signers only.
func (b *Builder) memoParties(body *statepb.Tx) ([]ed25519.PublicKey, error) {
	bankKey := func(id string) ([]ed25519.PublicKey, error) {
		bk, err := b.Bank(id)
		if err != nil {
			return nil, err
		}
		return []ed25519.PublicKey{bk.GetPublicKey()}, nil
	}
	var wallets []string
	switch k := body.GetKind().(type) {
	case *statepb.Tx_Issue:
		return bankKey(k.Issue.GetBankId())
	case *statepb.Tx_Exchange:
		wallets = []string{k.Exchange.GetToWalletId()}
	case *statepb.Tx_Redeem:
		w, err := b.lookupWallet(k.Redeem.GetWalletId())
		if err != nil {
			return nil, err
		}
		return bankKey(w.GetBankId())
	case *statepb.Tx_Transfer:
		for _, p := range k.Transfer.GetPayees() {
			if p.GetWalletId() != k.Transfer.GetFromWalletId() {
				wallets = append(wallets, p.GetWalletId())
			}
		}
	case *statepb.Tx_RefundPayment:
		if b.parties == nil {
			return nil, ErrNoParties
		}
		payer, err := b.parties.Payer(k.RefundPayment.GetMerchantWalletId(), k.RefundPayment.GetPaymentTxId())
		if err != nil {
			return nil, fmt.Errorf("memo: refund's payer: %w", err)
		}
		wallets = []string{payer}
	case *statepb.Tx_ChargeSubWallet:
		wallets = []string{k.ChargeSubWallet.GetSubWalletId()}
	}
	var out []ed25519.PublicKey
	for _, id := range wallets {
		k, err := b.walletKey(id)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// walletKey is the key that reads a wallet's memos (Parties.WalletKey).
func (b *Builder) walletKey(id string) (ed25519.PublicKey, error) {
	if b.parties == nil {
		return nil, ErrNoParties
	}
	k, err := b.parties.WalletKey(id)
	if err != nil {
		return nil, fmt.Errorf("memo: key of wallet %q: %w", id, err)
	}
	if len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("memo: wallet %q has no key to seal to", id)
	}
	return k, nil
}

func (b *Builder) lookupWallet(id string) (*statepb.WalletRecord, error) {
	if b.parties == nil {
		return nil, ErrNoParties
	}
	w, err := b.parties.Wallet(id)
	if err != nil {
		return nil, fmt.Errorf("memo: key of wallet %q: %w", id, err)
	}
	return w, nil
}

// OpenMemo opens a sealed memo with a wallet (or bank) key: ok is false
// when the key is not one of the memo's parties.
func OpenMemo(sealed []byte, key ed25519.PrivateKey) (text string, ok bool) {
	if len(sealed) == 0 || len(key) != ed25519.PrivateKeySize {
		return "", false
	}
	t, err := memo.Open(sealed, key)
	return t, err == nil
}

// nodeParties looks parties up on the node (linearizable reads, so a
// wallet registered just before is found).
type nodeParties struct{ c *Client }

// partyLookupTimeout bounds one lookup: Builder methods take no context.
const partyLookupTimeout = 10 * time.Second

func (p nodeParties) Wallet(id string) (*statepb.WalletRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), partyLookupTimeout)
	defer cancel()
	r, err := p.c.Wallet(ctx, id, Linearizable())
	if err != nil {
		return nil, err
	}
	return r.GetWallet(), nil
}

// WalletKey asks GetWalletKey (linearizable): a payee the caller may not
// read is looked up by key only.
func (p nodeParties) WalletKey(id string) (ed25519.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), partyLookupTimeout)
	defer cancel()
	return p.c.WalletKey(ctx, id, Linearizable())
}

func (p nodeParties) Payer(merchantID string, txID []byte) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), partyLookupTimeout)
	defer cancel()
	if len(txID) != 32 {
		return "", fmt.Errorf("payment tx id of %d bytes", len(txID))
	}
	r, err := p.c.Payment(ctx, merchantID, [32]byte(txID), Linearizable())
	if err != nil {
		return "", err
	}
	return r.GetPayment().GetPayerWalletId(), nil
}
