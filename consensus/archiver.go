package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/consensus/archive"
)

// ArchiveConfig turns on the archive of committed log entries
// (DESIGN.md, "Archive").
type ArchiveConfig struct {
	// Dir holds the segment files; empty: no archive.
	Dir string
	// SegmentBytes: entry bytes after which the open segment is closed
	// (default 4 MiB; at most archive.MaxRawBytes/2).
	SegmentBytes int
}

// archiveStepEntries bounds the log entries read under the archiver's lock
// at a time, so a restore or a peer's request waits at most that long.
const archiveStepEntries = 4096

// archiver follows the ledger's applied index and copies every entry that
// reached the ledger from this node's Raft log into the open segment; when
// it holds SegmentBytes it is written out (archive.Write: durable when it
// returns). Entries of the open segment are durable in the Raft log, whose
// compaction stops before the open segment (guardedLog): after kill -9 the
// archiver starts again from the open segment's first index. It never reads
// the log below logTrust: entries there are fetched from peers
// (ArchiveHoles, ArchiveImport).
type archiver struct {
	n            *Node
	a            *archive.Archive
	log          *slog.Logger
	segmentBytes int

	// mu is held while entries are read into the open segment, while it is
	// written, and by a restore (pause) and a peer's read of the log tail.
	mu       sync.Mutex
	first    uint64 // first index of the open segment
	next     uint64 // next log index to read
	buf      []archive.Entry
	bufBytes int
	paused   bool // a restore is running
	// logStart is first, for the log guard and hole lists, without the lock.
	logStart atomic.Uint64
	failures atomic.Uint64
}

func newArchiver(n *Node) (*archiver, error) {
	a, err := archive.Open(n.cfg.Archive.Dir, n.cfg.Store.GenesisHash(), n.log.With("component", "archive"))
	if err != nil {
		return nil, err
	}
	ar := &archiver{n: n, a: a, log: n.log.With("component", "archive"), segmentBytes: n.cfg.Archive.SegmentBytes}
	ar.reset(n.trust.get())
	segs, bytes, end := a.Stats()
	ar.log.Info("archive opened", "dir", n.cfg.Archive.Dir, "segments", segs, "bytes", bytes, "end_index", end,
		"log_trusted_from", n.trust.get(), "open_segment_from", ar.first, "holes", len(a.Holes(ar.first-1)))
	return ar, nil
}

// reset puts the open segment after everything archived and everything
// the log cannot be trusted for. Called with mu held or before run.
func (ar *archiver) reset(trustedFrom uint64) {
	ar.first = max(ar.a.End(), trustedFrom-1) + 1
	ar.next = ar.first
	ar.buf, ar.bufBytes = nil, 0
	ar.logStart.Store(ar.first)
}

func (ar *archiver) run() {
	defer ar.n.wg.Done()
	for {
		_, changed := ar.n.fsm.applied()
		more, err := ar.step()
		var retry <-chan time.Time
		if err != nil {
			ar.failures.Add(1)
			ar.log.Error("archive: cannot archive committed entries; retrying (they stay in the Raft log meanwhile)", "open_segment_from", ar.logStart.Load(), "error", err)
			retry = time.After(time.Second)
		} else if more {
			continue
		}
		select {
		case <-changed:
		case <-retry:
		case <-ar.n.stop:
			return
		}
	}
}

// step reads up to archiveStepEntries entries the ledger has applied into
// the open segment, closing it when full; more reports entries left.
func (ar *archiver) step() (more bool, err error) {
	applied := ar.n.AppliedIndex()
	ar.mu.Lock()
	defer ar.mu.Unlock()
	if ar.paused {
		return false, nil
	}
	for k := 0; ar.next <= applied; k++ {
		if k == archiveStepEntries {
			return true, nil
		}
		var l raft.Log
		err := ar.n.logs.GetLog(ar.next, &l)
		if err == nil && l.Index != ar.next {
			err = fmt.Errorf("%w: asked for %d, got %d", errLogMismatch, ar.next, l.Index)
		}
		if err != nil {
			return false, ar.lost(applied, err)
		}
		if archive.Archived(l.Type) {
			ar.buf = append(ar.buf, archive.Entry{Index: l.Index, Term: l.Term, Type: l.Type, Data: l.Data})
			ar.bufBytes += len(l.Data) + 32
		}
		ar.next++
		if ar.bufBytes >= ar.segmentBytes || len(ar.buf) >= archive.MaxEntries/2 {
			if err := ar.flush(); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// lost handles an entry the ledger applied that the log cannot give back.
// Compaction never deletes from the open segment on, so this means the log
// was damaged or replaced: the archive takes everything up to the applied
// index from peers instead (a hole, listed and alarmed, never skipped).
func (ar *archiver) lost(applied uint64, err error) error {
	if !errors.Is(err, raft.ErrLogNotFound) && !errors.Is(err, errLogMismatch) {
		return fmt.Errorf("read log entry %d: %w", ar.next, err)
	}
	ar.log.Error("ARCHIVE: the Raft log lacks an entry the ledger applied; the archive will fetch indexes up to the applied index from peers",
		"index", ar.next, "applied_index", applied, "error", err)
	if ferr := ar.flush(); ferr != nil {
		return ferr
	}
	from := applied + 1
	if terr := ar.n.trust.set(max(from, ar.n.trust.get())); terr != nil {
		return terr
	}
	ar.reset(from)
	return nil
}

// flush writes the open segment (if it holds entries): it covers first up
// to the last index read, with the ledger's state hash after its last
// entry. Called with mu held.
func (ar *archiver) flush() error {
	if len(ar.buf) == 0 {
		return nil
	}
	last := ar.buf[len(ar.buf)-1].Index
	recorded, err := ar.n.cfg.Store.StateHashAt(last)
	if err != nil || len(recorded) != 32 {
		return fmt.Errorf("state hash recorded at %d: %v", last, err)
	}
	h, err := ar.a.Write(ar.first, ar.next-1, ar.buf, [32]byte(recorded))
	if err != nil {
		return err
	}
	ar.log.Debug("archive segment written", "first", h.First, "last", h.Last, "entries", h.Count, "raw_bytes", h.RawBytes, "file_bytes", h.FileBytes())
	ar.first = ar.next
	ar.buf, ar.bufBytes = nil, 0
	ar.logStart.Store(ar.first)
	return nil
}

// pause writes out the open segment and stops archiving until resume: a
// restore is about to replace the ledger (and Raft then compacts the log
// behind the snapshot).
func (ar *archiver) pause() {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	if err := ar.flush(); err != nil {
		// Its entries stay in the log unless the restore's compaction
		// removes them; then they are a hole, fetched from peers.
		ar.log.Error("archive: writing the open segment before a restore", "error", err)
	}
	ar.paused = true
}

// resume restarts archiving after a restore, from trustedFrom on.
func (ar *archiver) resume(trustedFrom uint64) {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	ar.paused = false
	ar.reset(trustedFrom)
}
