package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client/amount"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// Errors of this package. Ledger outcomes are *TxError (which wraps a
// *statepb.Error), RPC failures are *APIError, and local refusals of bad
// input are *statepb.Error with the code the ledger would give.
var (
	// ErrUnreachable: the node could not be reached at all (connection
	// refused, no route, DNS failure). Nothing was sent. Matched by
	// errors.Is on an *APIError with code CodeUnreachable.
	ErrUnreachable = errors.New("node unreachable")
	// ErrNotFound: the node has no such wallet, transaction or record.
	// Matched by errors.Is on an *APIError with connect code NotFound.
	ErrNotFound = errors.New("not found")
	// ErrOutcomeUnknown: a submission may or may not have been committed
	// (every attempt failed after at least one may have reached the node).
	// Re-submitting the same signed bytes, or GetTx by id, tells.
	ErrOutcomeUnknown = errors.New("transaction outcome unknown")
	// ErrInsufficientFunds: the wallet's unspent outputs do not cover the
	// amount.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrTooFragmented: covering the amount takes more than
	// statepb.MaxInputs outputs; consolidate the wallet first.
	ErrTooFragmented = errors.New("too fragmented")
	// ErrBadResponse: the node answered with something malformed (e.g. no
	// result, or a result for another transaction).
	ErrBadResponse = errors.New("bad response from node")
)

// API error codes: the stable codes a node attaches to RPC errors (a
// nodepb.ErrorInfo detail; node/errors.go, docs/errors.md "API errors"),
// plus CodeUnreachable, which the client sets itself. They are APIError.Code.
const (
	// CodeUnreachable: the node could not be reached; nothing was sent.
	// Set by the client, never by a node.
	CodeUnreachable = "NODE_UNREACHABLE"
	// CodeReadOnly: a write was sent to a regulator (read-only) node.
	CodeReadOnly = "READ_ONLY_NODE"
	// CodeNoQuorum: no leader, so nothing can commit. The outcome of a
	// submission is unknown; resubmitting the same bytes later is safe.
	CodeNoQuorum = "NO_QUORUM"
	// CodeTimeout: not committed within the node's submit timeout; the
	// outcome is unknown, resubmitting the same bytes is safe.
	CodeTimeout = "TIMEOUT"
	// CodeOverloaded: the node has too many submissions in flight.
	CodeOverloaded = "OVERLOADED"
	// CodeRateLimited: this client sent too many requests per second.
	CodeRateLimited = "RATE_LIMITED"
	// CodeNotFound: no such wallet or transaction.
	CodeNotFound = "NOT_FOUND"
	// CodeInvalidArgument: a request field is malformed.
	CodeInvalidArgument = "INVALID_ARGUMENT"
	// CodeUnavailable: the node is starting or stopping.
	CodeUnavailable = "UNAVAILABLE"
	// CodeInternal: a bug or I/O failure on the node.
	CodeInternal = "INTERNAL"
	// CodeUnauthenticated: the call needs a bearer token, or the one sent
	// is bad (expired, forged, for another node or chain).
	CodeUnauthenticated = "UNAUTHENTICATED"
	// CodePermissionDenied: the signed-in identity's role may not make
	// this call; the message names the roles that may.
	CodePermissionDenied = "PERMISSION_DENIED"
)

// TxError is a transaction the ledger decided and refused: its result's code
// is not CODE_OK. It wraps the rejection as a *statepb.Error, so
// statepb.CodeOf(err) and errors.As(err, new(*statepb.Error)) work, and its
// message reads "LIMIT_PAYMENT: transfer: ...".
type TxError struct {
	// Result is the recorded outcome (tx id, code, message, log index).
	Result *statepb.TxResult
}

func (e *TxError) Error() string {
	return e.Result.GetCode().Short() + ": " + e.Result.GetMessage()
}

// Unwrap returns the rejection as a *statepb.Error.
func (e *TxError) Unwrap() error {
	return &statepb.Error{Code: e.Result.GetCode(), Message: e.Result.GetMessage()}
}

// Code is the stable rejection code.
func (e *TxError) Code() statepb.Code { return e.Result.GetCode() }

// resultErr returns nil for an OK result and a *TxError otherwise.
func resultErr(r *statepb.TxResult) error {
	if r.GetCode() == statepb.Code_CODE_OK {
		return nil
	}
	return &TxError{Result: r}
}

// APIError is a failed RPC: the node refused the request, or could not be
// reached. Code is the stable API code the node attached (the
// nodepb.ErrorInfo detail, docs/errors.md "API errors"); without one it is
// the connect code in upper case ("UNAVAILABLE"), or CodeUnreachable.
type APIError struct {
	// Code is the stable API code, e.g. CodeReadOnly or CodeNoQuorum.
	Code string
	// RPCCode is the connect (gRPC) status code.
	RPCCode connect.Code
	// Message is the node's message (without the code the node puts in
	// front of it), or what went wrong on the way.
	Message string
	// Node is the base URL of the node asked.
	Node string
	// Err is the underlying error (usually a *connect.Error).
	Err error
}

func (e *APIError) Error() string {
	if e.Code == CodeUnreachable {
		return fmt.Sprintf("%s: node unreachable at %s: %s", e.Code, e.Node, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the underlying error.
func (e *APIError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable and ErrNotFound.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnreachable:
		return e.Code == CodeUnreachable
	case ErrNotFound:
		return e.Code == CodeNotFound || e.RPCCode == connect.CodeNotFound
	}
	return false
}

// apiError maps an RPC error to an *APIError. Context errors of the
// caller's own context pass through unchanged.
func (c *Client) apiError(err error) error {
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return err
	}
	if isDialError(err) {
		return &APIError{Code: CodeUnreachable, RPCCode: connect.CodeUnavailable, Message: dialReason(err), Node: c.baseURL, Err: err}
	}
	code := connect.CodeOf(err)
	e := &APIError{RPCCode: code, Node: c.baseURL, Err: err, Message: err.Error()}
	var ce *connect.Error
	if errors.As(err, &ce) {
		e.Message = ce.Message()
		if e.Message == "" {
			e.Message = code.String()
		}
		for _, d := range ce.Details() {
			v, derr := d.Value()
			if info, ok := v.(*nodepb.ErrorInfo); derr == nil && ok && info.GetCode() != "" {
				e.Code = info.GetCode()
				break
			}
		}
	}
	if e.Code == "" {
		e.Code = strings.ToUpper(code.String())
	}
	// A node's message starts with its code ("READ_ONLY_NODE: node ...");
	// Error() puts the code in front itself.
	e.Message = strings.TrimPrefix(e.Message, e.Code+": ")
	return e
}

// isDialError reports whether err is a failure to connect: the request
// never reached the node.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// dialReason is the short cause of a dial error, e.g. "connection refused".
func dialReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		msg := op.Err.Error()
		// "connect: connection refused" → "connection refused"
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			return rest
		}
		return msg
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	return err.Error()
}

// OutcomeUnknownError is a submission whose outcome is unknown: at least
// one attempt may have reached the node, and none returned an answer. The
// transaction may be committed. Submitting the same bytes again (never a
// re-signed copy) or GetTx with TxID tells; either is safe.
type OutcomeUnknownError struct {
	// TxID is the transaction's id.
	TxID [32]byte
	// Attempts is how many times it was sent.
	Attempts int
	// Err is the last attempt's error.
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("%v: tx %s after %d attempts (it may still commit; check with its id): %v",
		ErrOutcomeUnknown, hex.EncodeToString(e.TxID[:]), e.Attempts, e.Err)
}

// Unwrap returns ErrOutcomeUnknown and the last attempt's error.
func (e *OutcomeUnknownError) Unwrap() []error { return []error{ErrOutcomeUnknown, e.Err} }

// FundsError is a payment the wallet's unspent outputs cannot make: either
// the balance is too low (ErrInsufficientFunds, code INSUFFICIENT_INPUTS)
// or covering the amount takes more than statepb.MaxInputs outputs
// (ErrTooFragmented, code TOO_MANY_INPUTS). statepb.CodeOf(err) gives the
// code, so it prints like a ledger rejection.
type FundsError struct {
	// Err is ErrInsufficientFunds or ErrTooFragmented.
	Err error
	// WalletID is the paying wallet, if known.
	WalletID string
	// BalanceFen is the sum of the wallet's unspent outputs.
	BalanceFen uint64
	// NeedFen is the amount to cover.
	NeedFen uint64
	// OutputsNeeded is the fewest outputs that cover NeedFen (too
	// fragmented only).
	OutputsNeeded int
}

func (e *FundsError) Error() string {
	w := ""
	if e.WalletID != "" {
		w = " in wallet " + e.WalletID
	}
	if e.Err == ErrTooFragmented {
		return fmt.Sprintf("%v%s: %d outputs needed to pay %s, max %d — consolidate first",
			e.Err, w, e.OutputsNeeded, amount.Yuan(e.NeedFen), statepb.MaxInputs)
	}
	return fmt.Sprintf("%v%s: balance %s, need %s", e.Err, w, amount.Yuan(e.BalanceFen), amount.Yuan(e.NeedFen))
}

// Unwrap returns the sentinel and the equivalent ledger rejection.
func (e *FundsError) Unwrap() []error {
	code := statepb.Code_CODE_INSUFFICIENT_INPUTS
	if e.Err == ErrTooFragmented {
		code = statepb.Code_CODE_TOO_MANY_INPUTS
	}
	return []error{e.Err, &statepb.Error{Code: code, Message: e.Error()}}
}

// isCallerDone reports whether err comes from ctx being done.
func isCallerDone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		connect.CodeOf(err) == connect.CodeCanceled || connect.CodeOf(err) == connect.CodeDeadlineExceeded)
}
