package node

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/nodepb"
)

// API error codes. Every RPC error carries one in a nodepb.ErrorInfo detail;
// they are stable and listed in docs/errors.md ("API errors"). A ledger
// rejection is not an RPC error: it is the transaction's outcome.
const (
	// CodeReadOnly: a write was sent to a regulator (read-only) node.
	CodeReadOnly = "READ_ONLY_NODE"
	// CodeNoQuorum: no leader, so nothing can commit (fewer than a quorum of
	// voters reachable). Resubmitting the same bytes later is safe.
	CodeNoQuorum = "NO_QUORUM"
	// CodeNotLeader: between nodes only; the receiver was not the leader.
	CodeNotLeader = "NOT_LEADER"
	// CodeTimeout: not committed within the submit timeout; the outcome is
	// unknown. Resubmitting the same bytes is safe.
	CodeTimeout = "TIMEOUT"
	// CodeOverloaded: too many submissions in flight; retry later.
	CodeOverloaded = "OVERLOADED"
	// CodeRateLimited: this client sent too many requests per second.
	CodeRateLimited = "RATE_LIMITED"
	// CodeNotFound: the wallet or transaction does not exist.
	CodeNotFound = "NOT_FOUND"
	// CodeInvalidArgument: a request field is malformed; the message names it.
	CodeInvalidArgument = "INVALID_ARGUMENT"
	// CodeUnavailable: the node is starting or stopping.
	CodeUnavailable = "UNAVAILABLE"
	// CodeInternal: a bug or I/O failure on the node.
	CodeInternal = "INTERNAL"
	// CodeHistoryUnavailable: a replay from genesis needs history this
	// node has neither in its archive nor in its own Raft log, and no
	// member served it; the message names the indexes.
	CodeHistoryUnavailable = "HISTORY_UNAVAILABLE"
	// CodeNothingReplayed: the replay would re-execute no block (nothing
	// after the snapshot it starts from): it proves nothing, so it is not
	// reported as a success.
	CodeNothingReplayed = "NOTHING_REPLAYED"
	// CodeArchiveCorrupt: an archive segment's bytes do not verify (one
	// flipped byte is enough); the message names the file, which was set
	// aside to be fetched again from peers.
	CodeArchiveCorrupt = "ARCHIVE_CORRUPT"
	// CodeUnauthenticated: the procedure needs a signed-in caller and there
	// is no bearer token, or the token is malformed, expired, forged, for
	// another node or another chain; the message gives the reason.
	CodeUnauthenticated = "UNAUTHENTICATED"
	// CodePermissionDenied: the caller is signed in but its role may not
	// call this (or read this wallet or record); the message names the
	// roles that may. A wallet that does not exist is answered the same.
	CodePermissionDenied = "PERMISSION_DENIED"
	// codeUnknownOutcome: between nodes only; leadership was lost mid-commit.
	codeUnknownOutcome = "UNKNOWN_OUTCOME"
)

var connectCodes = map[string]connect.Code{
	CodeReadOnly:        connect.CodePermissionDenied,
	CodeNoQuorum:        connect.CodeUnavailable,
	CodeNotLeader:       connect.CodeUnavailable,
	CodeTimeout:         connect.CodeDeadlineExceeded,
	CodeOverloaded:      connect.CodeResourceExhausted,
	CodeRateLimited:     connect.CodeResourceExhausted,
	CodeNotFound:        connect.CodeNotFound,
	CodeInvalidArgument: connect.CodeInvalidArgument,
	CodeUnavailable:     connect.CodeUnavailable,
	CodeInternal:        connect.CodeInternal,
	codeUnknownOutcome:  connect.CodeUnavailable,

	CodeUnauthenticated:  connect.CodeUnauthenticated,
	CodePermissionDenied: connect.CodePermissionDenied,

	CodeHistoryUnavailable: connect.CodeFailedPrecondition,
	CodeNothingReplayed:    connect.CodeFailedPrecondition,
	CodeArchiveCorrupt:     connect.CodeDataLoss,
}

// apiError builds an RPC error with its stable code attached.
func apiError(code, format string, args ...any) *connect.Error {
	cc, ok := connectCodes[code]
	if !ok {
		cc = connect.CodeUnknown
	}
	e := connect.NewError(cc, fmt.Errorf("%s: %s", code, fmt.Sprintf(format, args...)))
	if d, err := connect.NewErrorDetail(&nodepb.ErrorInfo{Code: code}); err == nil {
		e.AddDetail(d)
	}
	return e
}

// consensusCode names a consensus error for another node.
func consensusCode(err error) string {
	switch {
	case errors.Is(err, consensus.ErrNotLeader):
		return CodeNotLeader
	case errors.Is(err, consensus.ErrNoLeader):
		return CodeNoQuorum
	case errors.Is(err, consensus.ErrUnknownOutcome):
		return codeUnknownOutcome
	case errors.Is(err, consensus.ErrOverloaded):
		return CodeOverloaded
	case errors.Is(err, consensus.ErrStopped):
		return CodeUnavailable
	}
	return CodeInternal
}

// codeError turns a code received from another node back into an error the
// submit loop understands.
func codeError(code, msg string) error {
	switch code {
	case CodeNotLeader:
		return fmt.Errorf("%w: %s", consensus.ErrNotLeader, msg)
	case CodeNoQuorum:
		return fmt.Errorf("%w: %s", consensus.ErrNoLeader, msg)
	case codeUnknownOutcome, CodeUnavailable:
		return fmt.Errorf("%w: %s", consensus.ErrUnknownOutcome, msg)
	case CodeOverloaded:
		return fmt.Errorf("%w: %s", consensus.ErrOverloaded, msg)
	}
	return fmt.Errorf("leader: %s: %s", code, msg)
}

// retryable reports whether resubmitting the same bytes may succeed.
func retryable(err error) bool {
	return errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrNoLeader) ||
		errors.Is(err, consensus.ErrUnknownOutcome) || errors.Is(err, errRetry)
}
