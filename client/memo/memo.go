// Package memo seals a transaction memo to its parties and opens it with
// one party's wallet key. The construction (client/DESIGN.md, "Memos"):
//
//   - Each party's X25519 key is derived from its Ed25519 wallet key by the
//     standard conversion (RFC 7748 / RFC 8032: the public key's Montgomery
//     form; the private scalar is the clamped first half of SHA-512(seed)).
//   - A random 32-byte content key K encrypts the memo with
//     XChaCha20-Poly1305 under a random 24-byte nonce; the additional data is
//     the whole header (version, ephemeral key, nonce, wrapped keys), so no
//     part of the envelope can be swapped.
//   - One ephemeral X25519 key e per memo. For each recipient R, the wrap key
//     is HKDF-SHA256(X25519(e, R), salt = e_pub ‖ R_pub, info = "dcep memo
//     v1") and K is sealed under it with ChaCha20-Poly1305 (zero nonce: each
//     wrap key is used once).
//
// Randomness is used here, at the client, only: the ledger checks the
// framing (statepb) and stores the bytes as they came.
package memo

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"

	"github.com/dcep/dcep/state/statepb"
)

var (
	// ErrNotRecipient: the key given is none of the memo's recipients (or
	// the memo was altered).
	ErrNotRecipient = errors.New("memo: not sealed to this key")
	// ErrMalformed: the bytes are not a sealed memo this code knows.
	ErrMalformed = errors.New("memo: malformed sealed memo")
	// ErrBadInput: a memo, or the recipients, outside the limits.
	ErrBadInput = errors.New("memo: bad input")
)

const wrapInfo = "dcep memo v1"

// Seal seals text to recipients (Ed25519 wallet public keys; duplicates are
// sealed once). text is 1..statepb.MaxMemoBytes bytes.
func Seal(text string, recipients []ed25519.PublicKey) ([]byte, error) {
	return seal(rand.Reader, text, recipients)
}

func seal(rnd io.Reader, text string, recipients []ed25519.PublicKey) ([]byte, error) {
	if len(text) == 0 || len(text) > statepb.MaxMemoBytes {
		return nil, fmt.Errorf("%w: memo of %d bytes (want 1..%d)", ErrBadInput, len(text), statepb.MaxMemoBytes)
	}
	var xs [][]byte
	seen := map[string]bool{}
	for i, r := range recipients {
		x, err := PublicX25519(r)
		if err != nil {
			return nil, fmt.Errorf("%w: recipient %d: %w", ErrBadInput, i, err)
		}
		if !seen[string(x)] {
			seen[string(x)] = true
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 || len(xs) > statepb.MaxMemoRecipients {
		return nil, fmt.Errorf("%w: %d recipients (want 1..%d)", ErrBadInput, len(xs), statepb.MaxMemoRecipients)
	}
	var eph, key [32]byte
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	for _, b := range [][]byte{eph[:], key[:], nonce} {
		if _, err := io.ReadFull(rnd, b); err != nil {
			return nil, fmt.Errorf("memo: randomness: %w", err)
		}
	}
	ephPub, err := curve25519.X25519(eph[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("memo: %w", err)
	}
	out := make([]byte, 0, statepb.SealedMemoHeaderBytes+len(xs)*statepb.SealedMemoStanzaBytes+len(text)+statepb.SealedMemoTagBytes)
	out = append(out, statepb.SealedMemoVersion)
	out = append(out, ephPub...)
	out = append(out, nonce...)
	out = append(out, byte(len(xs)))
	for _, x := range xs {
		shared, err := curve25519.X25519(eph[:], x)
		if err != nil {
			return nil, fmt.Errorf("%w: recipient key of low order: %w", ErrBadInput, err)
		}
		aead, _ := chacha20poly1305.New(wrapKey(shared, ephPub, x))
		out = aead.Seal(out, make([]byte, chacha20poly1305.NonceSize), key[:], ephPub)
	}
	aead, _ := chacha20poly1305.NewX(key[:])
	return aead.Seal(out, nonce, []byte(text), out), nil
}

// wrapKey derives a recipient's wrap key from the X25519 shared secret
// with the ephemeral key: HKDF-SHA256, salted with both public keys
// (ephemeral first).
func wrapKey(shared, ephPub, recipientPub []byte) []byte {
	salt := append(append([]byte(nil), ephPub...), recipientPub...)
	k := make([]byte, chacha20poly1305.KeySize)
	// HKDF-SHA256 cannot fail for 32 bytes of output.
	_, _ = io.ReadFull(hkdf.New(sha256.New, shared, salt, []byte(wrapInfo)), k)
	return k
}

// Open opens a sealed memo with the Ed25519 private key of one of its
// recipients.
func Open(sealed []byte, key ed25519.PrivateKey) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("%w: private key of %d bytes", ErrBadInput, len(key))
	}
	h := statepb.SealedMemoHeaderBytes
	if len(sealed) < h || sealed[0] != statepb.SealedMemoVersion {
		return "", ErrMalformed
	}
	n := int(sealed[h-1])
	body := h + n*statepb.SealedMemoStanzaBytes
	if n < 1 || n > statepb.MaxMemoRecipients || len(sealed) < body+statepb.SealedMemoTagBytes {
		return "", ErrMalformed
	}
	ephPub, nonce := sealed[1:33], sealed[33:57]
	priv := PrivateX25519(key)
	myPub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		return "", fmt.Errorf("memo: %w", err)
	}
	shared, err := curve25519.X25519(priv, ephPub)
	if err != nil {
		return "", ErrMalformed // a low-order ephemeral key
	}
	wrap, _ := chacha20poly1305.New(wrapKey(shared, ephPub, myPub))
	for i := range n {
		stanza := sealed[h+i*statepb.SealedMemoStanzaBytes : h+(i+1)*statepb.SealedMemoStanzaBytes]
		k, err := wrap.Open(nil, make([]byte, chacha20poly1305.NonceSize), stanza, ephPub)
		if err != nil {
			continue // another recipient's stanza
		}
		aead, _ := chacha20poly1305.NewX(k)
		text, err := aead.Open(nil, nonce, sealed[body:], sealed[:body])
		if err != nil {
			return "", ErrNotRecipient
		}
		return string(text), nil
	}
	return "", ErrNotRecipient
}

// PublicX25519 is the X25519 form of an Ed25519 public key (the Montgomery
// u-coordinate of its point).
func PublicX25519(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key of %d bytes", len(pub))
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("not an Ed25519 public key: %w", err)
	}
	return p.BytesMontgomery(), nil
}

// PrivateX25519 is the X25519 scalar of an Ed25519 private key: the first
// half of SHA-512 of its seed (clamped by X25519 itself), as RFC 8032
// derives the signing scalar.
func PrivateX25519(key ed25519.PrivateKey) []byte {
	h := sha512.Sum512(key.Seed())
	return h[:32]
}
