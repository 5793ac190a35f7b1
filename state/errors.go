package state

import "errors"

// Go errors of the store itself. Transaction rejections are not errors of
// this kind: they are *statepb.Error values carried in results.
var (
	// ErrNotFound: the wallet, transaction or record asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("state store closed")
	// ErrNoGenesis: the store holds no genesis yet (call InitGenesis).
	ErrNoGenesis = errors.New("state store has no genesis")
	// ErrGenesisMismatch: the store, snapshot or caller disagree on genesis.
	ErrGenesisMismatch = errors.New("genesis mismatch")
	// ErrInvalidGenesis: a genesis failed validation; the message says which field.
	ErrInvalidGenesis = errors.New("invalid genesis")
	// ErrInvariant: a ledger invariant does not hold; the state is corrupt.
	ErrInvariant = errors.New("ledger invariant violated")
	// ErrSnapshotFormat: a snapshot stream is truncated, corrupt or of an
	// unknown format.
	ErrSnapshotFormat = errors.New("bad snapshot")
	// ErrSnapshotUnverified: a snapshot stream is well formed but its
	// state does not verify: the content hash or the state hash does not
	// recompute from its records, its state hash is not the one recorded
	// for its index (by the snapshot, or by this store), or the supply
	// audit fails on it. Restore refused it and kept the old state.
	ErrSnapshotUnverified = errors.New("snapshot does not verify")
	// ErrOutOfOrder: Apply was given blocks whose indexes do not increase.
	ErrOutOfOrder = errors.New("blocks out of order")
)
