package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus/archive"
	"github.com/dcep/dcep/consensus/consensuspb"
	"github.com/dcep/dcep/state"
)

// Read access to history for re-validation (a regulator's replay,
// node/audit_replay.go): the archive's segments, then this node's Raft log
// (bolt read transactions beside Raft's writer), and snapshots through
// their files.

// LogBounds returns the first and last index the log store holds (0, 0 if
// it is empty). Entries before first were compacted into a snapshot.
func (n *Node) LogBounds() (first, last uint64, err error) {
	if first, err = n.store.FirstIndex(); err != nil {
		return 0, 0, fmt.Errorf("log first index: %w", err)
	}
	if last, err = n.store.LastIndex(); err != nil {
		return 0, 0, fmt.Errorf("log last index: %w", err)
	}
	return first, last, nil
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

// SnapshotInfo is where a Raft snapshot stands. Raft's index counts every
// log entry, barriers and no-ops included, which never reach the ledger,
// so the ledger's applied index in the snapshot may be lower; it is read
// from the snapshot's own header (Raft's metadata has no room for it).
type SnapshotInfo struct {
	ID          string
	RaftIndex   uint64
	LedgerIndex uint64
	StateHash   []byte
}

// LatestSnapshot describes the newest Raft snapshot (ErrNoSnapshot if none).
func (n *Node) LatestSnapshot() (SnapshotInfo, error) {
	info, rc, err := n.OpenLatestSnapshot()
	if err == nil {
		rc.Close()
	}
	return info, err
}

// OpenLatestSnapshot opens the newest Raft snapshot: where it stands and a
// stream in state.Store.Restore's format. The caller closes it.
func (n *Node) OpenLatestSnapshot() (SnapshotInfo, io.ReadCloser, error) {
	snaps, err := n.snaps.List()
	if err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("list snapshots: %w", err)
	}
	if len(snaps) == 0 {
		return SnapshotInfo{}, nil, ErrNoSnapshot
	}
	info := SnapshotInfo{ID: snaps[0].ID, RaftIndex: snaps[0].Index}
	_, rc, err := n.snaps.Open(info.ID)
	if err != nil {
		return info, nil, fmt.Errorf("open snapshot %s: %w", info.ID, err)
	}
	hdr, err := state.ReadSnapshotHeader(rc)
	rc.Close()
	if err != nil {
		return info, nil, fmt.Errorf("snapshot %s: %w", info.ID, err)
	}
	info.LedgerIndex, info.StateHash = hdr.GetMeta().GetAppliedIndex(), hdr.GetMeta().GetStateHash()
	if info.LedgerIndex > info.RaftIndex {
		return info, nil, fmt.Errorf("snapshot %s: ledger index %d beyond its Raft index %d", info.ID, info.LedgerIndex, info.RaftIndex)
	}
	// Open again: the header was consumed, and Restore reads from the start.
	if _, rc, err = n.snaps.Open(info.ID); err != nil {
		return info, nil, fmt.Errorf("open snapshot %s: %w", info.ID, err)
	}
	return info, rc, nil
}

// snapshotIndexes lists the Raft index of every snapshot on disk.
func (n *Node) snapshotIndexes() ([]uint64, error) {
	snaps, err := n.snaps.List()
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := make([]uint64, len(snaps))
	for i, s := range snaps {
		out[i] = s.Index
	}
	return out, nil
}

// HistoryStats says where History found the blocks it delivered.
type HistoryStats struct {
	// Segments read from the archive, and the indexes they covered (0, 0:
	// none).
	Segments                  int
	ArchiveFirst, ArchiveLast uint64
	// Indexes read from the Raft log (0, 0: none).
	LogFirst, LogLast uint64
}

// GapError: the indexes First..Last are needed and this node has them
// neither in its archive nor in a part of its log it can trust.
type GapError struct {
	First, Last uint64
	Why         string
}

func (e *GapError) Error() string {
	return fmt.Sprintf("indexes %d..%d are not on this node: %s", e.First, e.Last, e.Why)
}

func (e *GapError) Unwrap() error { return ErrHistoryGap }

// History calls fn with every ledger block of index from..to, in order,
// exactly as the FSM applied them: from the archive where it has them
// (segments verified as read: a corrupt one fails with archive.ErrCorrupt
// and is set aside), else from this node's Raft log from logTrust on.
// Without an archive, the log entries it still needs are kept from
// compaction while it runs. A
// missing range fails with a *GapError (ErrHistoryGap), never a silent
// skip.
func (n *Node) History(ctx context.Context, from, to uint64, fn func(state.Block) error) (HistoryStats, error) {
	var st HistoryStats
	if n.ar == nil {
		// With an archive nothing is needed: compaction stops before its
		// open segment, and what it compacts is in a segment by then.
		defer n.pin(max(from, n.trust.get()))()
	}
	for i, k := from, 0; i <= to; k++ {
		if k%1024 == 0 && ctx.Err() != nil {
			return st, fmt.Errorf("history at index %d: %w", i, ctx.Err())
		}
		if h, ok := n.archiveFind(i); ok {
			next, err := n.historySegment(h, i, to, fn)
			if err != nil {
				return st, err
			}
			st.Segments++
			st.ArchiveFirst, st.ArchiveLast = firstNonZero(st.ArchiveFirst, i), min(h.Last, to)
			i = next
			continue
		}
		if trusted := n.trust.get(); i < trusted {
			return st, n.gap(i, min(to, trusted-1), fmt.Sprintf("not in the archive, and the Raft log is this node's own only from index %d on (it restored a snapshot)", trusted))
		}
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			if !errors.Is(err, raft.ErrLogNotFound) {
				return st, fmt.Errorf("read log entry %d: %w", i, err)
			}
			if _, ok := n.archiveFind(i); ok {
				continue // archived and compacted meanwhile
			}
			last := to
			if first, _, err := n.LogBounds(); err == nil && first > i {
				last = min(to, first-1)
			}
			return st, n.gap(i, last, "compacted from the Raft log and not in an archive")
		}
		if b, ok := LogBlock(&l); ok {
			if err := fn(b); err != nil {
				return st, err
			}
		}
		st.LogFirst, st.LogLast = firstNonZero(st.LogFirst, i), i
		i++
	}
	return st, nil
}

// historySegment delivers one segment's blocks from index i to to and
// returns the index after the segment.
func (n *Node) historySegment(h archive.Header, i, to uint64, fn func(state.Block) error) (uint64, error) {
	seg, _, err := n.ar.a.Read(h)
	if err != nil {
		return 0, err
	}
	for _, e := range seg.Entries {
		if e.Index < i || e.Index > to {
			continue
		}
		b, _ := LogBlock(&raft.Log{Index: e.Index, Term: e.Term, Type: e.Type, Data: e.Data})
		if err := fn(b); err != nil {
			return 0, err
		}
	}
	return h.Last + 1, nil
}

func firstNonZero(a, b uint64) uint64 {
	if a != 0 {
		return a
	}
	return b
}

func (n *Node) archiveFind(i uint64) (archive.Header, bool) {
	if n.ar == nil {
		return archive.Header{}, false
	}
	return n.ar.a.Find(i)
}

// gap describes the missing range starting at i (up to last at most: the
// archive's hole may end earlier).
func (n *Node) gap(i, last uint64, why string) *GapError {
	if n.ar != nil {
		for _, h := range n.ar.a.Holes(last) {
			if h.First <= i && i <= h.Last {
				last = h.Last
			}
		}
	}
	if n.ar == nil {
		why += " (this node keeps no archive)"
	}
	return &GapError{First: i, Last: last, Why: why}
}

// pins are the lowest log indexes running readers still need; compaction
// keeps them (guardedLog).
type pins struct {
	mu   sync.Mutex
	next int
	m    map[int]uint64
}

// pin keeps log entries from index i on until the returned func is called.
func (n *Node) pin(i uint64) (unpin func()) {
	p := &n.pins
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[int]uint64{}
	}
	id := p.next
	p.next++
	p.m[id] = max(i, 1)
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.m, id)
	}
}

// compactLimit is the highest index compaction may delete: everything
// before the archive's open segment (the rest is not archived yet) and
// before every pinned reader.
func (n *Node) compactLimit() uint64 {
	limit := uint64(math.MaxUint64)
	if n.ar != nil {
		limit = n.ar.logStart.Load() - 1
	}
	n.pins.mu.Lock()
	defer n.pins.mu.Unlock()
	for _, i := range n.pins.m {
		limit = min(limit, i-1)
	}
	return limit
}

// guardedLog is the log store Raft uses: compaction from the front stops
// at compactLimit. A range starting at or below the ledger's applied index
// is compaction (those entries are committed; Raft only ever truncates a
// conflicting suffix above the commit index, which passes unchanged).
// Raft retries compaction after every snapshot from the first index still
// there, so what is kept now goes later.
type guardedLog struct {
	raft.LogStore
	n *Node
}

func (g *guardedLog) DeleteRange(lo, hi uint64) error {
	if lo <= g.n.AppliedIndex() {
		if limit := g.n.compactLimit(); hi > limit {
			g.n.log.Debug("log compaction held back for the archive or a reader", "from", lo, "to", hi, "kept_from", limit+1)
			if limit < lo {
				return nil
			}
			hi = limit
		}
	}
	return g.LogStore.DeleteRange(lo, hi)
}

// raftLog is the log store handed to Raft. Raft panics on an entry it
// cannot read while applying (processLogs) and retries for ever while
// sending one, so a read that finds damage, once Raft runs, ends the
// goroutine that asked (runtime.Goexit runs its deferred cleanup; Raft's
// wait group sees it finish) after the node was told to stop
// (checkedLog.onCorrupt): the damaged entry is neither applied nor sent,
// and Shutdown completes. Everything else reads through guardedLog and
// gets the error.
type raftLog struct{ *guardedLog }

func (r raftLog) GetLog(i uint64, l *raft.Log) error {
	err := r.guardedLog.GetLog(i, l)
	if err != nil && errors.Is(err, ErrLogCorrupt) && r.n.started.Load() {
		r.n.fail(err)
		runtime.Goexit()
	}
	return err
}
