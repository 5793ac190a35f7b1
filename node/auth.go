package node

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// caller is who made an API call: anonymous (no token) or the subject of a
// verified bearer token, with the key it proved (docs/security.md).
type caller struct {
	sub  token.Subject // zero: anonymous
	key  ed25519.PublicKey
	addr string // client IP, for the access log
	// claim and reason are set when the bearer token was refused: the
	// token's sub claim as given, unverified (empty if unreadable), and
	// why it was refused (authReason), for the access log.
	claim, reason string
}

func (c caller) anonymous() bool { return c.sub.Kind == "" }

// String names the caller in errors and the access log.
func (c caller) String() string {
	if c.anonymous() {
		return "anonymous"
	}
	return c.sub.String()
}

func (c caller) is(kind string) bool { return c.sub.Kind == kind }

// authenticate reads the Authorization header. No header: anonymous. A
// header that is not a valid token for this node is refused
// (UNAUTHENTICATED with the reason), even on public procedures, so that a
// client with a broken token learns it at once.
func (n *Node) authenticate(h interface{ Get(string) string }, peer string) (caller, *connect.Error) {
	c := caller{addr: peer}
	if ip, _, err := net.SplitHostPort(peer); err == nil {
		c.addr = ip
	}
	raw := h.Get("Authorization")
	if raw == "" {
		return c, nil
	}
	scheme, tok, ok := strings.Cut(raw, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		c.reason = "not-bearer"
		return c, apiError(CodeUnauthenticated, "Authorization: want \"Bearer TOKEN\" (dcep token --as NAME)")
	}
	// The wall clock, not n.now: a token's expiry is about real time, and
	// neither a test's ledger clock nor a fault campaign's clock offset
	// should make every client's token invalid.
	v := token.Verifier{ChainID: n.genesis.GetChainId(), Node: n.cfg.Name, Resolve: n.resolveSubject, Now: time.Now}
	sub, err := v.Parse(strings.TrimSpace(tok))
	if err != nil {
		c.claim, c.reason = unverifiedSubject(strings.TrimSpace(tok)), authReason(err)
		return c, apiError(CodeUnauthenticated, "bearer token: %v", err)
	}
	keys, _ := n.resolveSubject(sub)
	c.sub, c.key = sub, keys[0]
	return c, nil
}

// resolveSubject returns the keys the ledger holds for a token subject: a
// wallet's current key, a bank's key, the central bank's key, or the
// operator keys of the regulator's member nodes.
func (n *Node) resolveSubject(s token.Subject) ([]ed25519.PublicKey, error) {
	unknown := fmt.Errorf("%w: %s", token.ErrUnknownSubject, s)
	switch s.Kind {
	case token.KindWallet:
		w, err := n.store.Wallet(s.ID)
		if errors.Is(err, state.ErrNotFound) {
			return nil, unknown
		} else if err != nil {
			return nil, err
		}
		return []ed25519.PublicKey{w.GetPublicKey()}, nil
	case token.KindBank:
		banks, err := n.store.Banks()
		if err != nil {
			return nil, err
		}
		for _, b := range banks {
			if b.GetBank().GetId() == s.ID {
				return []ed25519.PublicKey{b.GetBank().GetPublicKey()}, nil
			}
		}
	case token.KindCentralBank:
		// The key in force, not genesis's: a rotated-out central bank key
		// must not sign in either.
		if cb := n.genesis.GetCentralBank(); cb.GetId() == s.ID {
			k, err := n.store.CentralBankKey()
			if err != nil {
				return nil, err
			}
			return []ed25519.PublicKey{k}, nil
		}
	case token.KindRegulator:
		var keys []ed25519.PublicKey
		for _, m := range n.members.all() {
			if m.GetRole() == statepb.NodeRole_NODE_ROLE_REGULATOR && m.GetOperator() == s.ID && len(m.GetOperatorKey()) > 0 {
				keys = append(keys, m.GetOperatorKey())
			}
		}
		if len(keys) > 0 {
			return keys, nil
		}
	}
	return nil, unknown
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerOf is the caller the policy interceptor put in ctx (anonymous if
// none).
func callerOf(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// authReason is the short, stable name of why a token was refused, as the
// access log records it (docs/security.md).
func authReason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{token.ErrExpired, "expired"}, {token.ErrNotYetValid, "not-yet-valid"}, {token.ErrLifetime, "lifetime"},
		{token.ErrSignature, "signature"}, {token.ErrUnknownSubject, "unknown-subject"}, {token.ErrWrongChain, "wrong-chain"},
		{token.ErrOtherNode, "other-node"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "malformed"
}

// maxUnverifiedToken bounds what unverifiedSubject decodes (the token
// package's own bound).
const maxUnverifiedToken = 4096

// unverifiedSubject is the sub claim of a refused token as it is given,
// NOT verified: who the caller claimed to be, for the access log only.
// Empty when the token is too long or its payload unreadable.
func unverifiedSubject(raw string) string {
	if len(raw) > maxUnverifiedToken {
		return ""
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}
