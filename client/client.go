// Package client is the Go SDK of dcep: it talks to any node's
// LedgerService (node/nodepb/api.proto), builds and signs every transaction
// kind, chooses inputs, submits with safe retries, reads, and follows the
// committed-outcome stream. The dcep CLI is built on it.
//
// Amounts are uint64 fen throughout; client/amount converts to and from the
// yuan people type. Keys live in client/keystore.
//
// Errors: a transaction the ledger refused is a *TxError (statepb.CodeOf
// gives its stable code); input refused locally before sending is a
// *statepb.Error with the code the ledger would give; an RPC failure is an
// *APIError with the node's stable API code; a payment the wallet cannot
// make is a *FundsError. See DESIGN.md.
package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state/statepb"
)

// RetryPolicy bounds the retries of Submit (and of reads, which use the
// same backoff and attempt count).
type RetryPolicy struct {
	// MaxAttempts is how many times a request is sent at most (≥ 1).
	MaxAttempts int
	// InitialBackoff is the wait after the first failure; it doubles after
	// each further one, up to MaxBackoff, with jitter.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// AttemptTimeout bounds one Submit attempt (the node answers once the
	// transaction is committed and applied).
	AttemptTimeout time.Duration
	// Deadline bounds a whole Submit, all attempts and waits together.
	Deadline time.Duration
}

// DefaultRetryPolicy is what New uses: up to 6 attempts, backoff from
// 100 ms to 2 s, 10 s per attempt, 30 s overall.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:    6,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     2 * time.Second,
		AttemptTimeout: 10 * time.Second,
		Deadline:       30 * time.Second,
	}
}

// backoff is the wait after the n-th failed attempt (n ≥ 1): exponential,
// capped, with jitter in [d/2, d).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// DefaultTimeout bounds each read RPC unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// dialTimeout bounds connecting to a node.
const dialTimeout = 5 * time.Second

type config struct {
	httpClient connect.HTTPClient
	timeout    time.Duration
	retry      RetryPolicy
	h2c        bool
	grpc       bool
	identity   IdentityFunc
}

// Option configures a Client.
type Option func(*config)

// WithHTTPClient sets the HTTP client (e.g. for TLS settings). It must not
// set an overall timeout, which would cut the outcome stream; timeouts are
// per call (WithTimeout, RetryPolicy).
func WithHTTPClient(h connect.HTTPClient) Option { return func(c *config) { c.httpClient = h } }

// WithTimeout bounds each read RPC (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithRetry sets the retry policy (default DefaultRetryPolicy).
func WithRetry(p RetryPolicy) Option { return func(c *config) { c.retry = p } }

// WithH2C speaks HTTP/2 without TLS ("prior knowledge") to http:// nodes,
// multiplexing every call over one connection. The default is HTTP/1.1,
// which every node serves and every proxy understands.
func WithH2C() Option { return func(c *config) { c.h2c = true } }

// WithGRPC speaks the gRPC protocol instead of Connect; it implies
// WithH2C.
func WithGRPC() Option { return func(c *config) { c.grpc, c.h2c = true, true } }

// Client talks to one node. It is safe for concurrent use.
type Client struct {
	baseURL string
	api     nodepbconnect.LedgerServiceClient
	audit   nodepbconnect.AuditServiceClient        // audit.go
	prog    nodepbconnect.ProgrammableServiceClient // programmable_reads.go
	plain   nodepbconnect.LedgerServiceClient       // no tokens (auth.go)
	tokens  *tokens                                 // nil: anonymous
	timeout time.Duration
	retry   RetryPolicy

	mu      sync.Mutex
	builder *Builder // from the node's genesis, fetched once
}

// New returns a client of the node at baseURL, e.g. "http://127.0.0.1:8101"
// ("127.0.0.1:8101" means http). Nothing is sent until the first call.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := normalizeURL(baseURL)
	if err != nil {
		return nil, err
	}
	cfg := config{timeout: DefaultTimeout, retry: DefaultRetryPolicy()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.retry.MaxAttempts < 1 {
		cfg.retry.MaxAttempts = 1
	}
	if cfg.httpClient == nil {
		cfg.httpClient = newHTTPClient(cfg.h2c)
	}
	var copts []connect.ClientOption
	if cfg.grpc {
		copts = append(copts, connect.WithGRPC())
	}
	c := &Client{
		baseURL: u,
		plain:   nodepbconnect.NewLedgerServiceClient(cfg.httpClient, u, copts...),
		timeout: cfg.timeout,
		retry:   cfg.retry,
	}
	if cfg.identity != nil {
		c.tokens = &tokens{pick: cfg.identity, plain: c.plain, cache: map[string]cachedToken{}}
		copts = append(copts, connect.WithInterceptors(c.tokens))
	}
	c.api = nodepbconnect.NewLedgerServiceClient(cfg.httpClient, u, copts...)
	c.audit = nodepbconnect.NewAuditServiceClient(cfg.httpClient, u, copts...)
	c.prog = nodepbconnect.NewProgrammableServiceClient(cfg.httpClient, u, copts...)
	return c, nil
}

func normalizeURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("node address is empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("node address %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("node address %q: scheme %q (want http or https)", s, u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("node address %q: no host", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func newHTTPClient(h2c bool) *http.Client {
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   dialTimeout,
		ExpectContinueTimeout: time.Second,
	}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true) // http:// → h2c
		p.SetHTTP2(true)            // https:// → h2 over TLS
		t.Protocols = &p
	}
	return &http.Client{Transport: t}
}

// BaseURL is the node's address.
func (c *Client) BaseURL() string { return c.baseURL }

// API is the generated connect client, for calls this package does not wrap.
func (c *Client) API() nodepbconnect.LedgerServiceClient { return c.api }

// Audit is the generated AuditService client (with this client's tokens).
func (c *Client) Audit() nodepbconnect.AuditServiceClient { return c.audit }

// Programmable is the generated ProgrammableService client (with this
// client's tokens).
func (c *Client) Programmable() nodepbconnect.ProgrammableServiceClient { return c.prog }

// Builder returns a transaction builder for the node's network, fetching
// and checking the genesis on first use.
func (c *Client) Builder(ctx context.Context) (*Builder, error) {
	c.mu.Lock()
	b := c.builder
	c.mu.Unlock()
	if b != nil {
		return b, nil
	}
	g, err := c.Genesis(ctx)
	if err != nil {
		return nil, err
	}
	b, err = NewBuilder(g.GetGenesis())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.builder == nil {
		c.builder = b
	}
	return c.builder, nil
}

// Submit sends a signed transaction and waits until it is committed and
// applied, returning its outcome. A refused transaction is an outcome
// (result.Code), not an error; see SubmitOK.
//
// Retries are safe because they re-send tx.Raw, the same signed bytes,
// whose id the ledger deduplicates: a transaction that was committed by an
// earlier attempt comes back with its first outcome and Duplicate set; it is
// never applied twice, and Submit never re-signs. Transport failures and
// Unavailable, ResourceExhausted, Aborted and DeadlineExceeded answers are
// retried with backoff, at most RetryPolicy.MaxAttempts times within
// RetryPolicy.Deadline.
//
// Errors: if the node cannot be reached on the first attempt, an *APIError
// with CodeUnreachable (nothing was sent). If every attempt failed after
// one may have reached the node, an *OutcomeUnknownError with the
// transaction id. Otherwise the node's *APIError.
func (c *Client) Submit(ctx context.Context, tx *SignedTx) (*statepb.TxResult, error) {
	if c.retry.Deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.retry.Deadline)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, err // nothing sent
	}
	req := &nodepb.SubmitRequest{Tx: tx.Raw}
	maybeSent := false
	var last error
	attempt := 0
	for {
		attempt++
		actx, cancel := withTimeout(ctx, c.retry.AttemptTimeout)
		resp, err := c.api.Submit(actx, connect.NewRequest(req))
		cancel()
		if err == nil {
			return checkResult(tx, resp.Msg.GetResult())
		}
		last = c.apiError(err)
		dial := isDialError(err)
		if !dial && !refused(err) {
			maybeSent = true
		}
		if dial && !maybeSent {
			return nil, last // nothing was ever sent
		}
		if attempt >= c.retry.MaxAttempts || !retryable(ctx, err) || !sleep(ctx, c.retry.backoff(attempt)) {
			break
		}
	}
	if maybeSent {
		return nil, &OutcomeUnknownError{TxID: tx.ID, Attempts: attempt, Err: last}
	}
	return nil, last
}

// SubmitOK is Submit that also turns a refused transaction into a *TxError
// (returned with the result).
func (c *Client) SubmitOK(ctx context.Context, tx *SignedTx) (*statepb.TxResult, error) {
	r, err := c.Submit(ctx, tx)
	if err != nil {
		return nil, err
	}
	return r, resultErr(r)
}

func checkResult(tx *SignedTx, r *statepb.TxResult) (*statepb.TxResult, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: submit of tx %s returned no result", ErrBadResponse, tx.IDHex())
	}
	if id := r.GetTxId(); len(id) != 0 && string(id) != string(tx.ID[:]) {
		return nil, fmt.Errorf("%w: submit of tx %s returned the result of tx %x", ErrBadResponse, tx.IDHex(), id)
	}
	return r, nil
}

// refused reports whether the node answered with a code that means it did
// not take the request (so it cannot have committed it).
func refused(err error) bool {
	if !connect.IsWireError(err) {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodePermissionDenied,
		connect.CodeUnauthenticated, connect.CodeNotFound, connect.CodeUnimplemented,
		connect.CodeAlreadyExists, connect.CodeOutOfRange:
		return true
	}
	return false
}

// retryable reports whether a failed call may succeed if sent again.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeAborted,
		connect.CodeDeadlineExceeded, connect.CodeUnknown:
		return true
	}
	return false
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// sleep waits d or until ctx is done, reporting whether it waited fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// read runs one read RPC with the read timeout, retrying transient
// failures (not an unreachable node: that is reported at once).
func (c *Client) read(ctx context.Context, call func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		rctx, cancel := withTimeout(ctx, c.timeout)
		err := call(rctx)
		cancel()
		if err == nil {
			return nil
		}
		if isCallerDone(ctx, err) {
			return c.apiError(err)
		}
		if isDialError(err) || attempt >= c.retry.MaxAttempts || !retryable(ctx, err) || !sleep(ctx, c.retry.backoff(attempt)) {
			return c.apiError(err)
		}
	}
}
