//go:build !cgo

package pkcs11key

import (
	"crypto"
	"crypto/ed25519"
	"fmt"
	"io"
)

// Signer is not available without cgo.
type Signer struct{}

// Open reports ErrUnavailable: this binary has no PKCS#11.
func Open(rawURI string) (*Signer, error) {
	if _, err := ParseURI(rawURI); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s", ErrUnavailable, rawURI)
}

// Public is never reached (Open fails).
func (s *Signer) Public() crypto.PublicKey { return ed25519.PublicKey(nil) }

// Sign is never reached (Open fails).
func (s *Signer) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, ErrUnavailable
}

// Close does nothing.
func (s *Signer) Close() {}

// Generate reports ErrUnavailable.
func Generate(string) (ed25519.PublicKey, error) { return nil, ErrUnavailable }

// Import reports ErrUnavailable.
func Import(string, ed25519.PrivateKey) error { return ErrUnavailable }
