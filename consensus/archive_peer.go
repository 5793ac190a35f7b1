package consensus

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/consensus/archive"
)

// Exchange of archive segments between members (the node carries them over
// libp2p, node/archive.go): a node lacking a range (ArchiveHoles: a
// regulator that joined by snapshot, a segment set aside as corrupt) asks
// a member for a segment starting at the hole's first index
// (ArchiveServe) and stores the part of it that fills the hole
// (ArchiveImport).

// ArchiveStatus describes the archive.
type ArchiveStatus struct {
	Enabled  bool
	Segments int
	Bytes    int64
	// End is the highest index in a segment; OpenFrom the first index of
	// the open segment (entries from there on are still only in the log).
	End, OpenFrom uint64
	// Holes are ranges below OpenFrom in no segment (to fetch from peers);
	// Missing counts their indexes.
	Holes    []archive.Range
	Missing  uint64
	Failures uint64
}

// ArchiveStatus reports the archive's state.
func (n *Node) ArchiveStatus() ArchiveStatus {
	if n.ar == nil {
		return ArchiveStatus{}
	}
	st := ArchiveStatus{Enabled: true, OpenFrom: n.ar.logStart.Load(), Failures: n.ar.failures.Load()}
	st.Segments, st.Bytes, st.End = n.ar.a.Stats()
	st.Holes = n.ArchiveHoles()
	for _, h := range st.Holes {
		st.Missing += h.Last - h.First + 1
	}
	return st
}

// ArchiveHoles lists the ranges of history this node's archive lacks and
// cannot take from its own log: they must come from peers.
func (n *Node) ArchiveHoles() []archive.Range {
	if n.ar == nil {
		return nil
	}
	return n.ar.a.Holes(n.ar.logStart.Load() - 1)
}

// ArchiveServe returns a segment file that starts exactly at index from,
// for a peer filling a hole: a segment of the archive as it is, the part
// of one from index from on, or, past the archive, entries from this
// node's own log up to its applied index (about SegmentBytes of them).
// ErrNotArchived if this node has nothing from that index.
func (n *Node) ArchiveServe(from uint64) ([]byte, error) {
	if n.ar == nil {
		return nil, fmt.Errorf("%w: this node keeps no archive", ErrNotArchived)
	}
	if from == 0 {
		return nil, fmt.Errorf("%w: index 0", ErrNotArchived)
	}
	h, ok := n.ar.a.Find(from)
	if !ok {
		return n.ar.serveLog(from)
	}
	seg, file, err := n.ar.a.Read(h)
	if err != nil {
		return nil, err
	}
	if h.First == from {
		return file, nil
	}
	var rest []archive.Entry
	for _, e := range seg.Entries {
		if e.Index >= from {
			rest = append(rest, e)
		}
	}
	var sh [32]byte
	if len(rest) > 0 {
		sh = seg.StateHash
	}
	file, _, err = n.ar.a.Encode(from, h.Last, rest, sh)
	return file, err
}

// serveLog builds a segment of the log tail from index from: entries the
// ledger applied from this node's own log, up to the applied index.
func (ar *archiver) serveLog(from uint64) ([]byte, error) {
	ar.mu.Lock() // the log from the open segment on stays while it is read
	defer ar.mu.Unlock()
	applied := ar.n.AppliedIndex()
	if ar.paused {
		return nil, fmt.Errorf("%w: this node is restoring a snapshot", ErrNotArchived)
	}
	if from < ar.first || from > applied {
		return nil, fmt.Errorf("%w: index %d is in no segment of this node's archive and not in its log tail %d..%d", ErrNotArchived, from, ar.first, applied)
	}
	var entries []archive.Entry
	size, last := 0, from-1
	for last < applied && size < ar.segmentBytes {
		var l raft.Log
		if err := ar.n.logs.GetLog(last+1, &l); err != nil {
			return nil, fmt.Errorf("read log entry %d: %w", last+1, err)
		}
		last++
		if archive.Archived(l.Type) {
			entries = append(entries, archive.Entry{Index: l.Index, Term: l.Term, Type: l.Type, Data: l.Data})
			size += len(l.Data) + 32
		}
	}
	var sh [32]byte
	if len(entries) > 0 {
		h, err := ar.n.cfg.Store.StateHashAt(entries[len(entries)-1].Index)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("state hash recorded at %d: %v", entries[len(entries)-1].Index, err)
		}
		sh = [32]byte(h)
	}
	file, _, err := ar.a.Encode(from, last, entries, sh)
	return file, err
}

// ArchiveImport checks a segment file a peer sent for the hole that starts
// at index from and stores the part of it that fills the hole. The file is
// verified whole (checksum, structure, genesis: archive.ErrCorrupt); it
// must start exactly at from, where a hole must start; the state hash it
// claims after its last entry must be the one this ledger recorded there
// (a snapshot carries the record of every index before it), and the stored
// segment carries this ledger's record. That the entries reproduce those
// hashes is what a replay proves (History delivers them to it). Errors:
// archive.ErrCorrupt, ErrSegmentRefused.
func (n *Node) ArchiveImport(from uint64, file []byte) (archive.Header, error) {
	if n.ar == nil {
		return archive.Header{}, fmt.Errorf("%w: this node keeps no archive", ErrNotArchived)
	}
	seg, err := n.ar.a.Decode(file)
	if err != nil {
		return archive.Header{}, err
	}
	if seg.First != from {
		return archive.Header{}, fmt.Errorf("%w: asked for a segment from index %d, got %s", ErrSegmentRefused, from, seg.Header)
	}
	var hole archive.Range
	for _, h := range n.ArchiveHoles() {
		if h.First == from {
			hole = h
		}
	}
	if hole.First == 0 {
		return archive.Header{}, fmt.Errorf("%w: no hole starts at index %d any more", ErrSegmentRefused, from)
	}
	if seg.Count > 0 {
		if rec, err := n.cfg.Store.StateHashAt(seg.LastEntry); err == nil && !bytes.Equal(rec, seg.StateHash[:]) {
			return archive.Header{}, fmt.Errorf("%w: %s claims state hash %x after index %d; this ledger recorded %x", ErrSegmentRefused, seg.Header, seg.StateHash[:8], seg.LastEntry, rec[:min(8, len(rec))])
		}
	}
	last := min(seg.Last, hole.Last)
	kept := seg.Entries
	for len(kept) > 0 && kept[len(kept)-1].Index > last {
		kept = kept[:len(kept)-1]
	}
	var sh [32]byte
	if len(kept) > 0 {
		li := kept[len(kept)-1].Index
		rec, err := n.cfg.Store.StateHashAt(li)
		if err != nil || len(rec) != 32 {
			return archive.Header{}, fmt.Errorf("%w: this ledger has no state hash recorded at index %d to check it against: %v", ErrSegmentRefused, li, err)
		}
		if li == seg.LastEntry && !bytes.Equal(rec, seg.StateHash[:]) {
			return archive.Header{}, fmt.Errorf("%w: state hash after index %d differs", ErrSegmentRefused, li)
		}
		sh = [32]byte(rec)
	}
	h, err := n.ar.a.Write(from, last, kept, sh)
	if errors.Is(err, archive.ErrOverlap) {
		err = fmt.Errorf("%w: %w", ErrSegmentRefused, err)
	}
	return h, err
}
