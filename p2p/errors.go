package p2p

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

var (
	// ErrInvalidKey is returned when an Ed25519 key has the wrong size or an
	// inconsistent public half.
	ErrInvalidKey = errors.New("p2p: invalid ed25519 key")
	// ErrInvalidAddr is returned when a listen or member address is not a
	// valid multiaddr.
	ErrInvalidAddr = errors.New("p2p: invalid multiaddr")
	// ErrDuplicateMember is returned by SetMembers when two members share a
	// public key (and therefore a peer ID).
	ErrDuplicateMember = errors.New("p2p: duplicate member")
	// ErrNotMember is returned when the remote peer is not in the membership
	// allowlist, so no connection or stream to it is allowed.
	ErrNotMember = errors.New("p2p: peer is not a member")
	// ErrFrameTooLarge is returned when a received frame declares a length
	// above the caller's limit; the payload is never read or allocated.
	ErrFrameTooLarge = errors.New("p2p: frame too large")
	// ErrRequestTooLarge is returned by Request when the remote handler
	// refused the request because it exceeds the handler's size limit.
	ErrRequestTooLarge = errors.New("p2p: request too large for remote handler")
	// ErrRemote is returned (wrapped in a *RemoteError) by Request when the
	// remote handler returned an error.
	ErrRemote = errors.New("p2p: remote handler error")
	// ErrProtocol is returned when the peer sends bytes that violate the
	// request/response framing.
	ErrProtocol = errors.New("p2p: protocol violation")
	// ErrInvalidLimit is returned when a size limit is not positive.
	ErrInvalidLimit = errors.New("p2p: size limit must be positive")
	// ErrInvalidRaftAddress is returned by StreamLayer.Dial when the raft
	// server address is not a peer ID.
	ErrInvalidRaftAddress = errors.New("p2p: raft address is not a peer ID")
	// ErrStreamLayerInUse is returned by RaftStreamLayer when an open stream
	// layer already owns the raft protocol on this host.
	ErrStreamLayerInUse = errors.New("p2p: raft stream layer already open")
	// ErrInvalidRole is returned when a member's role is not exactly one of
	// RoleVoter and RoleRegulator.
	ErrInvalidRole = errors.New("p2p: invalid member role")
	// ErrInvalidRules is returned by New when the protocol table has a
	// duplicate row, an unknown role or lacks a protocol every host serves.
	ErrInvalidRules = errors.New("p2p: invalid protocol rules")
	// ErrForbidden is returned (wrapped in a *RemoteError) by Request when
	// the remote refused the stream because this node's role may not open
	// that protocol (Rules).
	ErrForbidden = errors.New("p2p: role may not open this protocol")
	// ErrDuplicateIdentity is returned when the connection to a peer was
	// refused because another live connection, from another process,
	// already holds the peer's identity (session.go).
	ErrDuplicateIdentity = errors.New("p2p: duplicate identity: another live process holds this key")
	// ErrResourceLimit is returned when libp2p's resource manager refused
	// the memory a frame needs; retrying later may succeed.
	ErrResourceLimit = errors.New("p2p: resource limit reached")
)

// RemoteError carries the message a remote request handler failed with.
// It unwraps to ErrRemote, to ErrRequestTooLarge when the remote refused
// the request because of its size, or to ErrForbidden when it refused this
// node's role.
type RemoteError struct {
	// Peer is the peer that produced the error.
	Peer peer.ID
	// Protocol is the request protocol that was called.
	Protocol protocol.ID
	// Message is the remote error text, truncated to maxErrMsgBytes.
	Message string

	kind error
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("%v: %s from %s: %s", e.Unwrap(), e.Protocol, e.Peer, e.Message)
}

// Unwrap lets callers test the error class with errors.Is.
func (e *RemoteError) Unwrap() error {
	if e.kind == nil {
		return ErrRemote
	}
	return e.kind
}
