package consensus

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus/consensuspb"
	"github.com/dcep/dcep/state"
)

// Read access to the log and snapshots for re-validation (a regulator's
// replay, node/audit_replay.go). Everything here reads: the log through its
// own bolt read transactions (bbolt allows any number of readers beside the
// one writer, in the same process), snapshots through their files.

// ErrNoSnapshot: there is no snapshot to start a replay from.
var ErrNoSnapshot = errors.New("no snapshot")

// LogBounds returns the first and last index the log store holds (0, 0 if
// it is empty). Entries before first were compacted into a snapshot.
func (n *Node) LogBounds() (first, last uint64, err error) {
	if first, err = n.bolt.FirstIndex(); err != nil {
		return 0, 0, fmt.Errorf("log first index: %w", err)
	}
	if last, err = n.bolt.LastIndex(); err != nil {
		return 0, 0, fmt.Errorf("log last index: %w", err)
	}
	return first, last, nil
}

// ReadLog reads the log entry at index i from the log store. It fails with
// raft.ErrLogNotFound if the entry was compacted away (or not written yet).
func (n *Node) ReadLog(i uint64, l *raft.Log) error {
	return n.bolt.GetLog(i, l)
}

// LogBlock is the ledger block a log entry becomes, exactly as the FSM
// makes it (fsm.ApplyBatch): a command is its decoded entry (an entry that
// does not decode is an empty block), a configuration change an empty
// block; other entries (no-op, barrier) never reach the ledger (ok false).
func LogBlock(l *raft.Log) (b state.Block, ok bool) {
	switch l.Type {
	case raft.LogCommand:
		b = state.Block{Index: l.Index, Term: l.Term}
		var e consensuspb.Entry
		if proto.Unmarshal(l.Data, &e) == nil {
			b.TimeMs, b.Txs = e.GetTimeMs(), e.GetTxs()
		}
		return b, true
	case raft.LogConfiguration:
		return state.Block{Index: l.Index, Term: l.Term}, true
	}
	return state.Block{}, false
}

// OpenLatestSnapshot opens the newest Raft snapshot: its index and a stream
// in state.Store.Restore's format. The caller closes it.
func (n *Node) OpenLatestSnapshot() (index uint64, rc io.ReadCloser, err error) {
	snaps, err := n.snaps.List()
	if err != nil {
		return 0, nil, fmt.Errorf("list snapshots: %w", err)
	}
	if len(snaps) == 0 {
		return 0, nil, ErrNoSnapshot
	}
	meta, rc, err := n.snaps.Open(snaps[0].ID)
	if err != nil {
		return 0, nil, fmt.Errorf("open snapshot %s: %w", snaps[0].ID, err)
	}
	return meta.Index, rc, nil
}
