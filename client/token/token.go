// Package token is the client API's bearer token: a JWT (RFC 7519) signed
// with EdDSA over Ed25519 (RFC 8037) by a key the ledger already knows — a
// wallet's key, a bank's or the central bank's key, or a regulator's
// operator key — scoped to one node of one chain and short-lived.
//
// Claims:
//
//	sub  who signs in: "wallet:ID", "bank:ID", "central-bank:ID", "regulator:NAME"
//	aud  "CHAIN/NODE": the one node of the one chain it is for
//	iat  when it was made; exp when it expires (exp − iat ≤ MaxLifetime)
//
// A node verifies the signature with the key the ledger holds for sub, so
// nothing but the party's private key can make one (node/auth.go).
package token

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dcep/dcep/state/statepb"
)

// Limits of a token.
const (
	// MaxBytes bounds a token's text: a real one is about 300 bytes.
	MaxBytes = 4 << 10
	// MaxLifetime bounds exp − iat: a stolen token is good for at most this.
	MaxLifetime = time.Hour
	// DefaultLifetime is what Mint makes when asked for none.
	DefaultLifetime = 5 * time.Minute
	// Skew is the clock difference allowed between the client that made a
	// token and the node that checks it, both ways.
	Skew = 30 * time.Second
)

// Kinds of subject.
const (
	KindWallet      = "wallet"
	KindBank        = "bank"
	KindCentralBank = "central-bank"
	KindRegulator   = "regulator"
)

// Errors of Parse. Each is the reason a node gives with UNAUTHENTICATED.
var (
	// ErrMalformed: not a JWT, not EdDSA, or a claim missing or mistyped.
	ErrMalformed = errors.New("malformed token")
	// ErrExpired: exp (plus Skew) is past.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: iat or nbf (minus Skew) is in the future.
	ErrNotYetValid = errors.New("token not valid yet")
	// ErrLifetime: exp − iat exceeds MaxLifetime.
	ErrLifetime = errors.New("token lifetime too long")
	// ErrSignature: the signature is not the subject's key's.
	ErrSignature = errors.New("token signature invalid")
	// ErrUnknownSubject: the ledger has no key for sub.
	ErrUnknownSubject = errors.New("token subject unknown")
	// ErrWrongChain: aud names another chain.
	ErrWrongChain = errors.New("token is for another chain")
	// ErrOtherNode: aud names another node of this chain.
	ErrOtherNode = errors.New("token is for another node")
)

// Subject is who a token signs in as.
type Subject struct {
	Kind string
	ID   string
}

// String is the sub claim, e.g. "wallet:alice".
func (s Subject) String() string { return s.Kind + ":" + s.ID }

// ParseSubject reads a sub claim.
func ParseSubject(sub string) (Subject, error) {
	kind, id, ok := strings.Cut(sub, ":")
	if !ok {
		return Subject{}, fmt.Errorf("%w: sub %q is not KIND:ID", ErrMalformed, sub)
	}
	switch kind {
	case KindWallet, KindBank, KindCentralBank, KindRegulator:
	default:
		return Subject{}, fmt.Errorf("%w: sub %q: kind %q (want wallet, bank, central-bank or regulator)", ErrMalformed, sub, kind)
	}
	if err := statepb.ValidateID("sub", id); err != nil {
		return Subject{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return Subject{Kind: kind, ID: id}, nil
}

// Audience is the aud claim of a token for node of chain: CHAIN/NODE (a
// verifier splits at the last "/", so a chain id may contain one).
func Audience(chainID, node string) string { return chainID + "/" + node }

// Mint makes a token for sub, signed with key, for node of chain, valid from
// now for lifetime (DefaultLifetime if 0).
func Mint(key ed25519.PrivateKey, sub Subject, chainID, node string, now time.Time, lifetime time.Duration) (string, error) {
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	if lifetime > MaxLifetime {
		return "", fmt.Errorf("%w: %v (max %v)", ErrLifetime, lifetime, MaxLifetime)
	}
	if _, err := ParseSubject(sub.String()); err != nil {
		return "", err
	}
	now = now.Truncate(time.Second)
	c := jwt.RegisteredClaims{
		Subject:   sub.String(),
		Audience:  jwt.ClaimStrings{Audience(chainID, node)},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(lifetime)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
}

// Resolver returns the public keys the ledger holds for a subject (several
// when, say, one regulator runs nodes with different operator keys), or
// ErrUnknownSubject.
type Resolver func(Subject) ([]ed25519.PublicKey, error)

// Verifier checks tokens for one node of one chain.
type Verifier struct {
	ChainID, Node string
	Resolve       Resolver
	Now           func() time.Time
}

// Parse checks raw and returns who it signs in as. Every error wraps one of
// the sentinels above.
func (v *Verifier) Parse(raw string) (Subject, error) {
	if len(raw) > MaxBytes {
		return Subject{}, fmt.Errorf("%w: %d bytes (max %d)", ErrMalformed, len(raw), MaxBytes)
	}
	var sub Subject
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(Skew), jwt.WithTimeFunc(v.Now),
	)
	claims := &jwt.RegisteredClaims{}
	_, err := p.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		s, err := ParseSubject(claims.Subject)
		if err != nil {
			return nil, err
		}
		keys, err := v.Resolve(s)
		if err != nil {
			return nil, err
		}
		sub = s
		set := jwt.VerificationKeySet{}
		for _, k := range keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	})
	if err != nil {
		return Subject{}, classify(err)
	}
	return sub, v.checkClaims(claims)
}

// classify maps the library's errors to ours (the library's text stays in
// the message).
func classify(err error) error {
	for _, s := range []error{ErrMalformed, ErrUnknownSubject} {
		if errors.Is(err, s) {
			return err
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w (%v)", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w (%v)", ErrNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w (%v)", ErrSignature, err)
	}
	return fmt.Errorf("%w (%v)", ErrMalformed, err)
}

// checkClaims checks what the library leaves to us: one audience naming
// this chain and node, and a bounded lifetime.
func (v *Verifier) checkClaims(c *jwt.RegisteredClaims) error {
	if c.IssuedAt == nil {
		return fmt.Errorf("%w: no iat", ErrMalformed)
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > MaxLifetime || life <= 0 {
		return fmt.Errorf("%w: exp − iat = %v (want 0 < it ≤ %v)", ErrLifetime, life, MaxLifetime)
	}
	if len(c.Audience) != 1 {
		return fmt.Errorf("%w: aud has %d values (want one, %q)", ErrMalformed, len(c.Audience), Audience(v.ChainID, v.Node))
	}
	// The node name is what follows the last "/": node names are IDs (no
	// "/"), while a chain id may hold one.
	i := strings.LastIndexByte(c.Audience[0], '/')
	ok := i > 0
	var chain, node string
	if ok {
		chain, node = c.Audience[0][:i], c.Audience[0][i+1:]
	}
	switch {
	case !ok:
		return fmt.Errorf("%w: aud %q is not CHAIN/NODE", ErrMalformed, c.Audience[0])
	case chain != v.ChainID:
		return fmt.Errorf("%w: aud chain %q, this is %q", ErrWrongChain, chain, v.ChainID)
	case node != v.Node:
		return fmt.Errorf("%w: aud node %q, this is %q", ErrOtherNode, node, v.Node)
	}
	return nil
}
