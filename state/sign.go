package state

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Domain tags keep signatures and hashes of one purpose from ever being valid
// for another (a transaction signature can never be a purse certificate).
const (
	domainTx      = "dcep/tx/v1\x00"
	domainGenesis = "dcep/genesis/v1\x00"
	domainState   = "dcep/state/v2\x00"
)

// deterministic marshals the same message to the same bytes within one build;
// stored records and hashed values always go through it.
var deterministic = proto.MarshalOptions{Deterministic: true}

// TxID is the id of a transaction: SHA-256 of its signed body.
func TxID(body []byte) [32]byte { return sha256.Sum256(body) }

// SignBytes is what every signer of a transaction signs: a domain tag, the
// chain id and the genesis hash, then the body. Binding the genesis hash means
// a transaction signed for one network is worthless on any other.
func SignBytes(chainID string, genesisHash [32]byte, body []byte) []byte {
	out := make([]byte, 0, len(domainTx)+2+len(chainID)+32+len(body))
	out = append(out, domainTx...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(chainID)))
	out = append(out, chainID...)
	out = append(out, genesisHash[:]...)
	return append(out, body...)
}

// GenesisHash identifies a genesis; later messages bind to it.
func GenesisHash(g *statepb.Genesis) ([32]byte, error) {
	b, err := deterministic.Marshal(g)
	if err != nil {
		return [32]byte{}, fmt.Errorf("marshal genesis: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(domainGenesis))
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}

// Signer signs transactions for one network.
type Signer struct {
	ChainID     string
	GenesisHash [32]byte
}

// Sign serializes body and signs it with each key, in the order the kind
// requires. It returns the serialized SignedTx and the transaction id.
func (s Signer) Sign(body *statepb.Tx, keys ...ed25519.PrivateKey) ([]byte, [32]byte, error) {
	signers := make([]crypto.Signer, len(keys))
	for i, k := range keys {
		signers[i] = k
	}
	return s.SignWith(body, signers...)
}

// SignWith is Sign with keys that may live outside memory (a PKCS#11 token:
// client/keystore/pkcs11key). Each must be Ed25519 and sign pure Ed25519
// (crypto.Hash(0)); a signature that does not verify under the key's public
// half is an error, so a faulty token cannot produce a rejected transaction.
func (s Signer) SignWith(body *statepb.Tx, keys ...crypto.Signer) ([]byte, [32]byte, error) {
	raw, err := deterministic.Marshal(body)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("marshal body: %w", err)
	}
	msg := SignBytes(s.ChainID, s.GenesisHash, raw)
	stx := &statepb.SignedTx{Body: raw}
	for i, k := range keys {
		pub, ok := k.Public().(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize {
			return nil, [32]byte{}, fmt.Errorf("key %d: %T is not an Ed25519 key", i, k.Public())
		}
		sig, err := k.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			return nil, [32]byte{}, fmt.Errorf("key %d: sign: %w", i, err)
		}
		if _, mem := k.(ed25519.PrivateKey); !mem && !ed25519.Verify(pub, msg, sig) {
			return nil, [32]byte{}, fmt.Errorf("key %d: the signer's signature does not verify", i)
		}
		stx.Signatures = append(stx.Signatures, &statepb.Signature{PublicKey: pub, Signature: sig})
	}
	out, err := deterministic.Marshal(stx)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("marshal signed tx: %w", err)
	}
	return out, TxID(raw), nil
}
