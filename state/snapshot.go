package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Snapshot stream format (state/DESIGN.md):
//
//	"DCEPSNAP" | format u32 | uvarint len | SnapshotHeader
//	{ uvarint len(key) | key | uvarint len(value) | value }*
//	uvarint 0 | record count u64 | SHA-256 of every byte before it
//
// Keys come in order, one at a time, from a Pebble snapshot: memory does not
// grow with the state.
const (
	snapshotMagic  = "DCEPSNAP"
	snapshotFormat = 1
	// Bounds on what a restore accepts before it allocates.
	maxSnapshotKey    = 4 << 10
	maxSnapshotValue  = 8 << 20
	maxSnapshotHeader = 64 << 10
	// restoreBatchBytes is how much a restore buffers before committing.
	restoreBatchBytes = 4 << 20
)

// Snapshot is a point-in-time view of the whole state.
type Snapshot struct {
	snap *pebble.Snapshot
	meta *statepb.Meta
	gh   [32]byte
}

// Snapshot captures the state now. It is cheap; streaming happens in WriteTo
// and may run while Apply goes on. Release it when done.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	if s.genesis == nil {
		return nil, ErrNoGenesis
	}
	snap := s.db.NewSnapshot()
	var meta statepb.Meta
	if _, err := getProto(snap, keyMeta, &meta); err != nil {
		snap.Close()
		return nil, err
	}
	return &Snapshot{snap: snap, meta: &meta, gh: s.genesisHash}, nil
}

// Meta is the position the snapshot was taken at.
func (sn *Snapshot) Meta() *statepb.Meta { return sn.meta }

// Release frees the snapshot.
func (sn *Snapshot) Release() { _ = sn.snap.Close() }

// WriteTo streams the snapshot to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(cw, h), 256<<10)
	hdr, err := deterministic.Marshal(&statepb.SnapshotHeader{Format: snapshotFormat, GenesisHash: sn.gh[:], Meta: sn.meta})
	if err != nil {
		return 0, err
	}
	bw.WriteString(snapshotMagic)
	writeU32(bw, snapshotFormat)
	writeBytes(bw, hdr)
	it, err := sn.snap.NewIter(nil)
	if err != nil {
		return cw.n, fmt.Errorf("snapshot iterator: %w", err)
	}
	var count uint64
	for it.First(); it.Valid(); it.Next() {
		writeBytes(bw, it.Key())
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return cw.n, fmt.Errorf("snapshot read: %w", err)
		}
		writeBytes(bw, v)
		count++
	}
	if err := it.Close(); err != nil {
		return cw.n, fmt.Errorf("snapshot iterator: %w", err)
	}
	bw.Write(binary.AppendUvarint(nil, 0))
	bw.Write(binary.BigEndian.AppendUint64(nil, count))
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := cw.Write(h.Sum(nil)); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	return cw.n, nil
}

func writeU32(w *bufio.Writer, v uint32) {
	var buf [4]byte
	binary.BigEndian.PutUint32(buf[:], v)
	w.Write(buf[:])
}

func writeBytes(w *bufio.Writer, b []byte) {
	var buf [binary.MaxVarintLen64]byte
	w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(b)))])
	w.Write(b)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the whole state with a snapshot stream. The stream is
// written to a new Pebble directory, checked (format, genesis, count,
// checksum: ErrSnapshotFormat), its state verified (verifyRestored:
// ErrSnapshotUnverified) and fsynced; only then is it swapped in by
// renames, so a crash at any moment leaves either the old state or the new
// one, and a refused snapshot leaves the old state untouched and no
// directory behind. If the store already has a genesis, the snapshot must
// be of the same network.
func (s *Store) Restore(r io.Reader) error { return s.RestoreConfirmed(r, nil) }

// ConfirmFunc says whether the network agrees that stateHash is the state
// hash after index (the node asks a quorum of voters): a snapshot verified
// in itself can still be a forgery consistent in itself, which only the
// hash the network recorded refutes. A non-nil error refuses the snapshot.
type ConfirmFunc func(index uint64, stateHash []byte) error

// RestoreConfirmed is Restore that also asks confirm, after the snapshot
// verified in itself and before anything is swapped in; a refusal returns
// an error wrapping ErrSnapshotUnverified and keeps the old state. A nil
// confirm confirms everything (a node's own snapshot at start).
func (s *Store) RestoreConfirmed(r io.Reader, confirm ConfirmFunc) error {
	tmp := filepath.Join(s.dir, "db.restore")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear restore dir: %w", err)
	}
	hdr, err := s.restoreInto(tmp, r)
	if err == nil && confirm != nil {
		m := hdr.GetMeta()
		if cerr := confirm(m.GetAppliedIndex(), m.GetStateHash()); cerr != nil {
			err = fmt.Errorf("%w: state hash %x at index %d not confirmed by the network: %w", ErrSnapshotUnverified, short(m.GetStateHash()), m.GetAppliedIndex(), cerr)
		}
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("close state for restore: %w", err)
		}
		s.db = nil
	}
	if err := swapDirs(s.dir); err != nil {
		return err
	}
	s.wallets.clear()
	s.outputs.clear()
	db, err := s.openDB(dbDir(s.dir))
	if err != nil {
		return err
	}
	s.db = db
	if err := s.loadMeta(); err != nil {
		return err
	}
	s.membership.Add(1) // the restored membership may differ
	s.log.Info("state restored from snapshot", "applied_index", hdr.GetMeta().GetAppliedIndex(), "state_hash", fmt.Sprintf("%x", hdr.GetMeta().GetStateHash()))
	return nil
}

// restoreInto writes and verifies a snapshot stream into a new database at
// dir, and closes it.
func (s *Store) restoreInto(dir string, r io.Reader) (*statepb.SnapshotHeader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	hr := &hashReader{r: br, h: sha256.New()}
	hdr, err := s.readHeader(hr)
	if err != nil {
		return nil, err
	}
	db, err := s.openDB(dir)
	if err != nil {
		return nil, err
	}
	count, err := copyRecords(db, hr, hdr)
	if err == nil {
		err = verifyTrailer(br, hr, count)
	}
	if err == nil {
		err = s.verifyRestored(db, hdr.GetMeta())
	}
	if err == nil {
		err = db.Flush()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return hdr, syncDir(dir)
}

func (s *Store) readHeader(hr *hashReader) (*statepb.SnapshotHeader, error) {
	var magic [len(snapshotMagic) + 4]byte
	if _, err := io.ReadFull(hr, magic[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrSnapshotFormat, err)
	}
	if string(magic[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: not a dcep snapshot", ErrSnapshotFormat)
	}
	if f := binary.BigEndian.Uint32(magic[len(snapshotMagic):]); f != snapshotFormat {
		return nil, fmt.Errorf("%w: format %d (this node reads %d)", ErrSnapshotFormat, f, snapshotFormat)
	}
	raw, err := readBytes(hr, maxSnapshotHeader, nil)
	if err != nil {
		return nil, err
	}
	var hdr statepb.SnapshotHeader
	if err := proto.Unmarshal(raw, &hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrSnapshotFormat, err)
	}
	if !bytes.Equal(hdr.GetMeta().GetGenesisHash(), hdr.GetGenesisHash()) {
		return nil, fmt.Errorf("%w: header meta is of genesis %x, header of %x", ErrSnapshotFormat, hdr.GetMeta().GetGenesisHash(), hdr.GetGenesisHash())
	}
	if s.genesis != nil && !bytes.Equal(hdr.GetGenesisHash(), s.genesisHash[:]) {
		return nil, fmt.Errorf("%w: snapshot is of genesis %x, store of %x", ErrGenesisMismatch, hdr.GetGenesisHash(), s.genesisHash[:8])
	}
	return &hdr, nil
}

// copyRecords streams key/value records into db, committing every few MiB
// without fsync (the final Flush makes everything durable at once). Key,
// value and batch buffers are reused: memory stays flat however large the
// state.
func copyRecords(db *pebble.DB, hr *hashReader, hdr *statepb.SnapshotHeader) (uint64, error) {
	b := db.NewBatch()
	defer func() { b.Close() }()
	var count uint64
	var key, val, prev []byte
	var sawMeta, sawGenesis bool
	for {
		var err error
		key, err = readBytes(hr, maxSnapshotKey, key)
		if err != nil {
			return 0, err
		}
		if len(key) == 0 {
			break
		}
		if count > 0 && bytes.Compare(key, prev) <= 0 {
			return 0, fmt.Errorf("%w: keys out of order at record %d", ErrSnapshotFormat, count)
		}
		val, err = readBytes(hr, maxSnapshotValue, val)
		if err != nil {
			return 0, err
		}
		if bytes.Equal(key, keyMeta) {
			if err := checkMeta(val, hdr.GetMeta()); err != nil {
				return 0, err
			}
			sawMeta = true
		}
		if bytes.Equal(key, keyGenesis) {
			if err := checkGenesis(val, hdr.GetGenesisHash()); err != nil {
				return 0, err
			}
			sawGenesis = true
		}
		if err := b.Set(key, val, nil); err != nil {
			return 0, err
		}
		prev, count = append(prev[:0], key...), count+1
		if b.Len() >= restoreBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return 0, fmt.Errorf("restore write: %w", err)
			}
			b.Reset()
		}
	}
	if !sawMeta || !sawGenesis {
		return 0, fmt.Errorf("%w: no meta or genesis record", ErrSnapshotFormat)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("restore write: %w", err)
	}
	return count, nil
}

// verifyRestored checks a restored state before it is used: its content
// hash recomputes from its records, its state hash from the content and
// equals the hash the snapshot records for its index (and the one this
// store recorded for that index, if it applied it), and the supply audit
// holds (audit, checkContent). Anything else is a snapshot whose records
// were altered, by accident or not, after its state hash was computed.
func (s *Store) verifyRestored(db *pebble.DB, meta *statepb.Meta) error {
	if _, err := audit(db); err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshotUnverified, err)
	}
	if s.db == nil || meta.GetAppliedIndex() == 0 {
		return nil
	}
	mine, c, err := s.db.Get(keyHashIndex(meta.GetAppliedIndex()))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read own state hash at %d: %w", meta.GetAppliedIndex(), err)
	}
	defer c.Close()
	if !bytes.Equal(mine, meta.GetStateHash()) {
		return fmt.Errorf("%w: its state hash at index %d is %x, this store recorded %x", ErrSnapshotUnverified, meta.GetAppliedIndex(), short(meta.GetStateHash()), short(mine))
	}
	return nil
}

func checkMeta(raw []byte, want *statepb.Meta) error {
	var m statepb.Meta
	if err := proto.Unmarshal(raw, &m); err != nil || !proto.Equal(&m, want) {
		return fmt.Errorf("%w: meta record disagrees with header", ErrSnapshotFormat)
	}
	return nil
}

// checkGenesis checks that the genesis record is the genesis the header
// names: the store loads it after the swap, when it is too late to refuse.
func checkGenesis(raw, want []byte) error {
	var g statepb.Genesis
	if err := proto.Unmarshal(raw, &g); err != nil {
		return fmt.Errorf("%w: genesis record: %v", ErrSnapshotFormat, err)
	}
	h, err := GenesisHash(&g)
	if err != nil || !bytes.Equal(h[:], want) {
		return fmt.Errorf("%w: genesis record does not hash to the header's genesis hash", ErrSnapshotFormat)
	}
	return nil
}

func verifyTrailer(br *bufio.Reader, hr *hashReader, count uint64) error {
	var n [8]byte
	if _, err := io.ReadFull(hr, n[:]); err != nil {
		return fmt.Errorf("%w: trailer: %v", ErrSnapshotFormat, err)
	}
	if got := binary.BigEndian.Uint64(n[:]); got != count {
		return fmt.Errorf("%w: trailer says %d records, stream had %d", ErrSnapshotFormat, got, count)
	}
	want := hr.h.Sum(nil)
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return fmt.Errorf("%w: checksum: %v", ErrSnapshotFormat, err)
	}
	if !bytes.Equal(sum[:], want) {
		return fmt.Errorf("%w: checksum mismatch", ErrSnapshotFormat)
	}
	return nil
}

// readBytes reads a uvarint length and that many bytes into buf (grown if
// needed), refusing lengths over max before allocating.
func readBytes(hr *hashReader, max int, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(hr)
	if err != nil {
		return nil, fmt.Errorf("%w: truncated: %v", ErrSnapshotFormat, err)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: record of %d bytes (max %d)", ErrSnapshotFormat, n, max)
	}
	b := buf[:0]
	if uint64(cap(b)) < n {
		b = make([]byte, n)
	}
	b = b[:n]
	if _, err := io.ReadFull(hr, b); err != nil {
		return nil, fmt.Errorf("%w: truncated: %v", ErrSnapshotFormat, err)
	}
	return b, nil
}

// hashReader hashes exactly the bytes consumed from r.
type hashReader struct {
	r   *bufio.Reader
	h   hash.Hash
	one [1]byte
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashReader) ReadByte() (byte, error) {
	c, err := h.r.ReadByte()
	if err == nil {
		h.one[0] = c
		h.h.Write(h.one[:])
	}
	return c, err
}

// swapDirs replaces db with the verified db.restore. Order matters for
// recoverRestore: db.restore is complete before db is moved away.
func swapDirs(dir string) error {
	db, tmp, old := dbDir(dir), filepath.Join(dir, "db.restore"), filepath.Join(dir, "db.old")
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(db, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("move old state aside: %w", err)
	}
	if err := os.Rename(tmp, db); err != nil {
		return fmt.Errorf("move restored state in: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// recoverRestore finishes or discards a restore interrupted by a crash.
// db.restore is only ever renamed after it was verified, so if db is missing
// it is complete; if db exists, a db.restore beside it is incomplete.
func recoverRestore(dir string) error {
	db, tmp, old := dbDir(dir), filepath.Join(dir, "db.restore"), filepath.Join(dir, "db.old")
	_, errDB := os.Stat(db)
	_, errTmp := os.Stat(tmp)
	switch {
	case errors.Is(errDB, os.ErrNotExist) && errTmp == nil:
		if err := os.Rename(tmp, db); err != nil {
			return fmt.Errorf("finish interrupted restore: %w", err)
		}
	case errDB == nil && errTmp == nil:
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("discard incomplete restore: %w", err)
		}
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove old state: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// ReadSnapshotHeader reads only the header of a snapshot stream (what
// Snapshot.WriteTo writes first): the ledger position it holds. Raft's own
// snapshot metadata cannot say it — Raft's index counts barrier and no-op
// entries, which never reach the ledger — so consensus reads the ledger's
// applied index here before deciding whether to restore on start, and a
// replay before checking the recorded state hash. It does not verify the
// records or the checksum (Restore does); it reads a bounded prefix.
func ReadSnapshotHeader(r io.Reader) (*statepb.SnapshotHeader, error) {
	hr := &hashReader{r: bufio.NewReaderSize(r, 4<<10), h: sha256.New()}
	var magic [len(snapshotMagic) + 4]byte
	if _, err := io.ReadFull(hr, magic[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrSnapshotFormat, err)
	}
	if string(magic[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: not a dcep snapshot", ErrSnapshotFormat)
	}
	if f := binary.BigEndian.Uint32(magic[len(snapshotMagic):]); f != snapshotFormat {
		return nil, fmt.Errorf("%w: format %d (this node reads %d)", ErrSnapshotFormat, f, snapshotFormat)
	}
	raw, err := readBytes(hr, maxSnapshotHeader, nil)
	if err != nil {
		return nil, err
	}
	var hdr statepb.SnapshotHeader
	if err := proto.Unmarshal(raw, &hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrSnapshotFormat, err)
	}
	if hdr.GetMeta() == nil {
		return nil, fmt.Errorf("%w: header has no meta", ErrSnapshotFormat)
	}
	return &hdr, nil
}
