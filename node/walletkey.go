package node

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// GetWalletKey answers the public key a memo to a wallet is sealed to, to
// any signed-in caller (policy.go: accessSignedIn, rate-limited per
// identity, on the access log), and nothing else about the wallet:
//   - a wallet with a key of its own: that key;
//   - a bank's reserve or guarantee wallet (no key; its id is in the
//     public genesis): its bank's key;
//   - another wallet without a key (a sub-wallet): the key that reads its
//     memos (its parent's current key, else its bank's) if the caller is
//     one of its parties (walletAllowed), else a decoy — the parent's key
//     would tell a stranger whose sub-wallet it is;
//   - a wallet this node does not know: a decoy.
//
// A decoy is an Ed25519 public key derived from this node's secret and the
// wallet id (decoyKey): 32 bytes like any key, the same for the same id on
// this node, so the answer does not tell whether the wallet exists. A memo
// sealed to a decoy can be opened by no one, and a transfer to a wallet
// that does not exist is refused anyway (docs/security.md, "Wallet keys").
func (a api) GetWalletKey(ctx context.Context, req *connect.Request[nodepb.GetWalletKeyRequest]) (*connect.Response[nodepb.GetWalletKeyResponse], error) {
	id := req.Msg.GetWalletId()
	if err := statepb.ValidateID("wallet_id", id); err != nil {
		return nil, apiError(CodeInvalidArgument, "%v", err)
	}
	if _, err := a.n.fresh(ctx, req.Msg.GetRead()); err != nil {
		return nil, err
	}
	key, err := a.n.walletKey(callerOf(ctx), id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&nodepb.GetWalletKeyResponse{PublicKey: key}), nil
}

func (n *Node) walletKey(c caller, id string) (ed25519.PublicKey, error) {
	for hop := 0; hop < 2; hop++ {
		w, err := n.store.Wallet(id)
		if errors.Is(err, state.ErrNotFound) {
			return n.decoyKey(id), nil
		}
		if err != nil {
			return nil, apiError(CodeInternal, "%v", err)
		}
		if len(w.GetPublicKey()) == ed25519.PublicKeySize {
			return w.GetPublicKey(), nil
		}
		switch w.GetKind() {
		case statepb.WalletKind_WALLET_KIND_BANK_RESERVE, statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE:
			return n.bankKey(w.GetBankId())
		}
		if hop == 0 && !n.walletAllowed(c, id) {
			return n.decoyKey(id), nil
		}
		if w.GetParentWalletId() == "" {
			return n.bankKey(w.GetBankId())
		}
		id = w.GetParentWalletId()
	}
	return nil, apiError(CodeInternal, "wallet %q has no key to seal to", id)
}

// bankKey is a bank's current signing key.
func (n *Node) bankKey(bankID string) (ed25519.PublicKey, error) {
	banks, err := n.store.Banks()
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	for _, b := range banks {
		if b.GetBank().GetId() == bankID {
			return b.GetBank().GetPublicKey(), nil
		}
	}
	return nil, apiError(CodeInternal, "bank %q of a wallet is not in the ledger", bankID)
}

// decoyDomain is what the node key signs to derive the decoy secret; no
// transaction, token or handshake signs it (cf. p2p's rawDomain).
const decoyDomain = "dcep/node/wallet-key-decoy/v1\x00"

// decoySecret derives this node's decoy secret from its key and the chain
// id: Ed25519 signatures are deterministic (RFC 8032), so the secret is the
// same at every start, needs no file of its own, and a key kept in a
// hardware token (which never hands out its private half) serves as well.
func decoySecret(key crypto.Signer, chainID string) ([]byte, error) {
	sig, err := key.Sign(nil, []byte(decoyDomain+chainID), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("derive the wallet-key decoy secret with the node key: %w", err)
	}
	sum := sha256.Sum256(sig)
	return sum[:], nil
}

// decoyKey is the decoy public key for wallet id: the Ed25519 public key
// whose seed is HMAC-SHA256(decoy secret, id).
func (n *Node) decoyKey(id string) ed25519.PublicKey {
	m := hmac.New(sha256.New, n.decoySecret)
	m.Write([]byte(id))
	return ed25519.NewKeyFromSeed(m.Sum(nil)).Public().(ed25519.PublicKey)
}

// chargeWalletKey charges a GetWalletKey call to its caller's identity
// ([limits] wallet_key_rate_per_sec).
func (n *Node) chargeWalletKey(c caller) error {
	if n.limits.walletKey.allow("id:" + c.String()) {
		return nil
	}
	return apiError(CodeRateLimited, "%s exceeded the per-identity GetWalletKey rate of %d/s ([limits] wallet_key_rate_per_sec)", c, n.cfg.Limits.WalletKeyRatePerSec)
}
