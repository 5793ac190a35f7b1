package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
)

// Identity is who a call is made as: a token subject (token.Subject) and
// the private key the ledger knows it by.
type Identity struct {
	Subject token.Subject
	Key     ed25519.PrivateKey
}

// IdentityFunc picks the identity of one call from its procedure and
// request message; nil means anonymous (no token).
type IdentityFunc func(procedure string, req any) *Identity

// WithIdentity signs every call in as whoever f picks: the client mints a
// short-lived bearer token (client/token) for the node it talks to and
// attaches it. The node's chain id and name, which the token is scoped to,
// are read once from its public Status.
func WithIdentity(f IdentityFunc) Option { return func(c *config) { c.identity = f } }

// As signs every call in as id.
func As(id Identity) Option {
	return WithIdentity(func(string, any) *Identity { return &id })
}

// tokenRenew: a cached token is replaced this long before it expires.
const tokenRenew = time.Minute

// tokens mints and caches the bearer tokens of one client.
type tokens struct {
	pick  IdentityFunc
	plain nodepbconnect.LedgerServiceClient // Status, without tokens

	mu            sync.Mutex
	chainID, node string
	cache         map[string]cachedToken
}

type cachedToken struct {
	raw string
	exp time.Time
}

// Token mints a bearer token for id, for the node this client talks to,
// good for lifetime (token.DefaultLifetime if 0; at most
// token.MaxLifetime).
func (c *Client) Token(ctx context.Context, id Identity, lifetime time.Duration) (string, error) {
	t := c.tokens
	if t == nil {
		t = &tokens{plain: c.plain, cache: map[string]cachedToken{}}
	}
	chain, node, err := t.audience(ctx)
	if err != nil {
		return "", err
	}
	return token.Mint(id.Key, id.Subject, chain, node, time.Now(), lifetime)
}

func (t *tokens) audience(ctx context.Context) (string, string, error) {
	t.mu.Lock()
	chain, node := t.chainID, t.node
	t.mu.Unlock()
	if chain != "" {
		return chain, node, nil
	}
	r, err := t.plain.Status(ctx, connect.NewRequest(&nodepb.StatusRequest{}))
	if err != nil {
		return "", "", fmt.Errorf("read the node's name for its token: %w", err)
	}
	st := r.Msg.GetNode()
	t.mu.Lock()
	t.chainID, t.node = st.GetChainId(), st.GetName()
	t.mu.Unlock()
	return st.GetChainId(), st.GetName(), nil
}

func (t *tokens) get(ctx context.Context, id Identity) (string, error) {
	chain, node, err := t.audience(ctx)
	if err != nil {
		return "", err
	}
	now := time.Now()
	key := id.Subject.String()
	t.mu.Lock()
	ct, ok := t.cache[key]
	t.mu.Unlock()
	if ok && now.Add(tokenRenew).Before(ct.exp) {
		return ct.raw, nil
	}
	raw, err := token.Mint(id.Key, id.Subject, chain, node, now, token.DefaultLifetime)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	t.cache[key] = cachedToken{raw: raw, exp: now.Add(token.DefaultLifetime)}
	t.mu.Unlock()
	return raw, nil
}

// attach sets the Authorization header of a call, if an identity is
// picked for it.
func (t *tokens) attach(ctx context.Context, procedure string, msg any, h http.Header) error {
	id := t.pick(procedure, msg)
	if id == nil {
		return nil
	}
	raw, err := t.get(ctx, *id)
	if err != nil {
		return err
	}
	h.Set("Authorization", "Bearer "+raw)
	return nil
}

func (t *tokens) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := t.attach(ctx, req.Spec().Procedure, req.Any(), req.Header()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (t *tokens) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		// The request message is not known yet: pick by procedure.
		_ = t.attach(ctx, spec.Procedure, nil, conn.RequestHeader())
		return conn
	}
}

func (t *tokens) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// RequestWallet is the wallet a request message names (its wallet_id or
// first non-empty *_wallet_id field), if any: what an IdentityFunc usually
// signs in as.
func RequestWallet(m proto.Message) string {
	r := m.ProtoReflect()
	fs := r.Descriptor().Fields()
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		if f.Kind() == protoreflect.StringKind && !f.IsList() && (f.Name() == "wallet_id" || strings.HasSuffix(string(f.Name()), "_wallet_id")) {
			if v := r.Get(f).String(); v != "" {
				return v
			}
		}
	}
	return ""
}
