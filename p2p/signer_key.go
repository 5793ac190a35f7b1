package p2p

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// errKeyInToken: the private key lives in a token and has no bytes to give.
var errKeyInToken = errors.New("p2p: the identity key is in a hardware token; its private bytes cannot be read")

// signerKey is a libp2p Ed25519 identity whose private half stays behind a
// crypto.Signer (a PKCS#11 token: client/keystore/pkcs11key). libp2p only
// signs with the host key (the security handshake, signed peer records), so
// Sign is all it needs; Raw, which would export the key, fails.
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
func (k *signerKey) Raw() ([]byte, error)            { return nil, errKeyInToken }

// Equals compares identities: two keys are the same if their public halves
// are.
func (k *signerKey) Equals(o lcrypto.Key) bool {
	p, ok := o.(lcrypto.PrivKey)
	return ok && k.pub.Equals(p.GetPublic())
}
