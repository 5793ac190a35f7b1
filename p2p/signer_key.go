package p2p

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// errKeyInToken: the token failed to sign the key material Raw stands for.
var errKeyInToken = errors.New("p2p: the identity key's token did not sign")

// signerKey is a libp2p Ed25519 identity whose private half stays behind a
// crypto.Signer (a PKCS#11 token: client/keystore/pkcs11key). libp2p signs
// with the host key (the noise handshake, signed peer records) through
// Sign. It also reads Raw, at start, for one thing: key material from which
// HKDF derives QUIC's stateless-reset and token keys (go-libp2p
// config/quic.go), built even though this host runs TCP only. The private
// bytes cannot leave the token, so Raw returns the token's signature over a
// fixed domain string instead: as secret as the key (only the token makes
// it), the same at every start (Ed25519 is deterministic), and never the
// key itself.
type signerKey struct {
	s   crypto.Signer
	pub lcrypto.PubKey
}

// signerPrivKey wraps an Ed25519 crypto.Signer for libp2p.
func signerPrivKey(s crypto.Signer) (lcrypto.PrivKey, error) {
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: signer's public key is %T, want a 32-byte ed25519.PublicKey", ErrInvalidKey, s.Public())
	}
	lpub, err := lcrypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return &signerKey{s: s, pub: lpub}, nil
}

func (k *signerKey) Sign(msg []byte) ([]byte, error) { return k.s.Sign(nil, msg, crypto.Hash(0)) }
func (k *signerKey) GetPublic() lcrypto.PubKey       { return k.pub }
func (k *signerKey) Type() pb.KeyType                { return pb.KeyType_Ed25519 }

// Raw: see signerKey.
func (k *signerKey) Raw() ([]byte, error) {
	sig, err := k.s.Sign(nil, []byte(rawDomain), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeyInToken, err)
	}
	return sig, nil
}

// rawDomain is what Raw signs; no transaction or handshake signs it.
const rawDomain = "dcep/p2p/token-key-material/v1"

// Equals compares identities: two keys are the same if their public halves
// are.
func (k *signerKey) Equals(o lcrypto.Key) bool {
	p, ok := o.(lcrypto.PrivKey)
	return ok && k.pub.Equals(p.GetPublic())
}
