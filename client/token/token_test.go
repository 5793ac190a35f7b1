package token_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dcep/dcep/client/token"
)

func key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("token_test/" + name))
	return ed25519.NewKeyFromSeed(s[:])
}

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func verifier() *token.Verifier {
	return &token.Verifier{ChainID: "dcep-dev", Node: "icbc", Now: func() time.Time { return now },
		Resolve: func(s token.Subject) ([]ed25519.PublicKey, error) {
			if s.ID == "ghost" {
				return nil, token.ErrUnknownSubject
			}
			return []ed25519.PublicKey{key(s.String()).Public().(ed25519.PublicKey)}, nil
		}}
}

func mint(t testing.TB, signer string, sub token.Subject, chain, node string, at time.Time, life time.Duration) string {
	t.Helper()
	raw, err := token.Mint(key(signer), sub, chain, node, at, life)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestParse: a good token signs in; each bad one is refused with its
// sentinel.
func TestParse(t *testing.T) {
	alice := token.Subject{Kind: token.KindWallet, ID: "alice"}
	good := mint(t, alice.String(), alice, "dcep-dev", "icbc", now, 0)
	sub, err := verifier().Parse(good)
	if err != nil || sub != alice {
		t.Fatalf("good token: %v %v", sub, err)
	}
	for _, tc := range []struct {
		name, raw string
		want      error
	}{
		{"empty", "", token.ErrMalformed},
		{"garbage", "a.b.c", token.ErrMalformed},
		{"huge", strings.Repeat("a", token.MaxBytes+1), token.ErrMalformed},
		{"expired", mint(t, alice.String(), alice, "dcep-dev", "icbc", now.Add(-10*time.Minute), 5*time.Minute), token.ErrExpired},
		{"within skew", "", nil},
		{"future", mint(t, alice.String(), alice, "dcep-dev", "icbc", now.Add(2*time.Minute), 5*time.Minute), token.ErrNotYetValid},
		{"forged", mint(t, "mallory", alice, "dcep-dev", "icbc", now, 0), token.ErrSignature},
		{"other node", mint(t, alice.String(), alice, "dcep-dev", "abc", now, 0), token.ErrOtherNode},
		{"other chain", mint(t, alice.String(), alice, "dcep-main", "icbc", now, 0), token.ErrWrongChain},
		{"unknown", mint(t, "wallet:ghost", token.Subject{Kind: token.KindWallet, ID: "ghost"}, "dcep-dev", "icbc", now, 0), token.ErrUnknownSubject},
	} {
		if tc.name == "within skew" {
			// Expired 20 s ago: inside the 30 s skew allowance.
			tc.raw = mint(t, alice.String(), alice, "dcep-dev", "icbc", now.Add(-5*time.Minute-20*time.Second), 5*time.Minute)
		}
		_, err := verifier().Parse(tc.raw)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v (want %v)", tc.name, err, tc.want)
		}
	}
	if _, err := token.Mint(key("x"), alice, "c", "n", now, 2*time.Hour); !errors.Is(err, token.ErrLifetime) {
		t.Errorf("mint 2h: %v", err)
	}
	if _, err := token.ParseSubject("root:alice"); !errors.Is(err, token.ErrMalformed) {
		t.Errorf("sub root:alice: %v", err)
	}
}

// FuzzParse: any input is a subject or a sentinel error, never a panic;
// what signs in is exactly what a real key signed.
func FuzzParse(f *testing.F) {
	alice := token.Subject{Kind: token.KindWallet, ID: "alice"}
	f.Add(mint(f, alice.String(), alice, "dcep-dev", "icbc", now, 0))
	f.Add(mint(f, "mallory", alice, "dcep-dev", "icbc", now, 0))
	f.Add(mint(f, "regulator:r1", token.Subject{Kind: token.KindRegulator, ID: "r1"}, "dcep-dev", "abc", now, time.Hour))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3YWxsZXQ6YWxpY2UifQ.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.x")
	f.Add("")
	f.Add("...")
	sentinels := []error{token.ErrMalformed, token.ErrExpired, token.ErrNotYetValid, token.ErrLifetime,
		token.ErrSignature, token.ErrUnknownSubject, token.ErrWrongChain, token.ErrOtherNode}
	f.Fuzz(func(t *testing.T, raw string) {
		sub, err := verifier().Parse(raw)
		if err == nil {
			// Only a token signed by the subject's own key verifies: check
			// that it re-verifies and names a valid subject.
			if _, perr := token.ParseSubject(sub.String()); perr != nil {
				t.Fatalf("accepted %q with bad subject %v", raw, sub)
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error without a sentinel: %v", err)
	})
}

// TestChainIDWithSlash: a chain id may hold "/" (a test network names its
// chain after a subtest); the audience still names chain and node apart,
// and a token for the parent chain's node is refused.
func TestChainIDWithSlash(t *testing.T) {
	alice := token.Subject{Kind: token.KindWallet, ID: "alice"}
	v := verifier()
	v.ChainID = "dcep-test/a_year_ahead"
	if _, err := v.Parse(mint(t, alice.String(), alice, "dcep-test/a_year_ahead", "icbc", now, 0)); err != nil {
		t.Fatalf("chain with a slash: %v", err)
	}
	parent := verifier()
	parent.ChainID = "dcep-test"
	if _, err := parent.Parse(mint(t, alice.String(), alice, "dcep-test/a_year_ahead", "icbc", now, 0)); !errors.Is(err, token.ErrWrongChain) {
		t.Fatalf("the subtest's token at the parent chain's node: %v", err)
	}
}
