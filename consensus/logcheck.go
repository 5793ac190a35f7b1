package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime/debug"
	"sync/atomic"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolterrors "go.etcd.io/bbolt/errors"
)

// A checksum in every stored Raft log entry and stable-store value
// (DESIGN.md, "Integrity of the Raft log"). raft-boltdb stores entries as
// msgpack without a checksum and bbolt checksums only its meta pages, so a
// flipped byte in an entry's data used to be applied, and sent to
// followers, as if it were the entry. checkedLog sits between Raft's
// LogCache and raft-boltdb: on the way in it seals every entry (a CRC-32C
// over index, term, type, data and extensions, carried in the entry's
// Extensions behind a marker), on the way out it verifies and strips it.
// checkedStable does the same for the term and vote.

// logFormatKey, in raft-boltdb's stable-store bucket, says every entry and
// stable value in the file is sealed. A file without it is from before
// checksums (upgraded at open: checkLogFile, upgradeLog).
var (
	logFormatKey   = []byte("dcep-log-format")
	logFormatValue = []byte("crc32c-1")
)

// entryMagic marks a sealed entry's Extensions: magic, CRC-32C (big
// endian), then the extensions Raft gave us.
var entryMagic = [4]byte{'d', 'c', 'L', '1'}

// stableMagic ends a sealed stable value: value, magic, CRC-32C of key and
// value.
var stableMagic = [4]byte{'d', 'c', 'S', '1'}

const sealLen = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// LogCorruptError says which part of this node's Raft log is damaged and
// what the operator does about it. It wraps ErrLogCorrupt.
type LogCorruptError struct {
	Path  string // raft.db
	Index uint64 // the damaged entry; 0: the file or the stable store
	Why   string
}

func (e *LogCorruptError) Error() string {
	what := "the file"
	if e.Index != 0 {
		what = fmt.Sprintf("log entry %d", e.Index)
	}
	return fmt.Sprintf("%s: %s in the Raft log %s is damaged (%s); this node refuses to apply or send it. "+
		"Repair (docs/operations.md, \"A damaged Raft log\"): stop the node, move its raft directory aside, start it again: it catches up from its peers",
		ErrLogCorrupt, what, e.Path, e.Why)
}

func (e *LogCorruptError) Unwrap() error { return ErrLogCorrupt }

// entrySum is the CRC-32C of what an entry means: index, term, type, data
// and extensions, each length-prefixed. AppendedAt (a leader's wall-clock
// stamp Raft keeps for metrics) is not covered.
func entrySum(l *raft.Log, ext []byte) uint32 {
	var hdr [8 + 8 + 1 + 4]byte
	binary.BigEndian.PutUint64(hdr[0:], l.Index)
	binary.BigEndian.PutUint64(hdr[8:], l.Term)
	hdr[16] = byte(l.Type)
	binary.BigEndian.PutUint32(hdr[17:], uint32(len(l.Data)))
	sum := crc32.Update(0, castagnoli, hdr[:])
	sum = crc32.Update(sum, castagnoli, l.Data)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(ext)))
	sum = crc32.Update(sum, castagnoli, n[:])
	return crc32.Update(sum, castagnoli, ext)
}

// seal returns a copy of l whose Extensions carry the marker and checksum
// (the caller's entry is Raft's, and its LogCache keeps it: never touched).
func seal(l *raft.Log) *raft.Log {
	c := *l
	ext := make([]byte, sealLen+len(l.Extensions))
	copy(ext, entryMagic[:])
	binary.BigEndian.PutUint32(ext[4:], entrySum(l, l.Extensions))
	copy(ext[sealLen:], l.Extensions)
	c.Extensions = ext
	return &c
}

// sealed reports whether a stored entry carries a seal.
func sealed(l *raft.Log) bool {
	return len(l.Extensions) >= sealLen && bytes.Equal(l.Extensions[:4], entryMagic[:])
}

// unseal verifies a stored entry read under key idx and strips its seal.
func unseal(idx uint64, l *raft.Log) string {
	if l.Index != idx {
		return fmt.Sprintf("stored under index %d but holds index %d", idx, l.Index)
	}
	if !sealed(l) {
		return "no checksum where every entry has one"
	}
	want := binary.BigEndian.Uint32(l.Extensions[4:])
	ext := l.Extensions[sealLen:]
	if got := entrySum(l, ext); got != want {
		return fmt.Sprintf("checksum mismatch: stored %08x, entry hashes to %08x", want, got)
	}
	l.Extensions = nil
	if len(ext) > 0 {
		l.Extensions = ext
	}
	return ""
}

func sealValue(k, v []byte) []byte {
	out := make([]byte, 0, len(v)+sealLen)
	out = append(append(out, v...), stableMagic[:]...)
	sum := crc32.Update(crc32.Update(0, castagnoli, k), castagnoli, v)
	return binary.BigEndian.AppendUint32(out, sum)
}

func unsealValue(k, raw []byte) ([]byte, bool) {
	if len(raw) < sealLen || !bytes.Equal(raw[len(raw)-sealLen:len(raw)-4], stableMagic[:]) {
		return nil, false
	}
	v := raw[:len(raw)-sealLen]
	sum := crc32.Update(crc32.Update(0, castagnoli, k), castagnoli, v)
	return v, sum == binary.BigEndian.Uint32(raw[len(raw)-4:])
}

// checkedLog is raft-boltdb with a verified checksum in every entry. Any
// damage it finds, and any panic of bbolt on a damaged page, becomes a
// *LogCorruptError, reported once to onCorrupt (the node stops).
type checkedLog struct {
	bolt      *raftboltdb.BoltStore
	path      string
	onCorrupt func(error)
	reported  atomic.Bool
}

func (c *checkedLog) corrupt(idx uint64, why string) error {
	err := &LogCorruptError{Path: c.path, Index: idx, Why: why}
	if c.onCorrupt != nil && c.reported.CompareAndSwap(false, true) {
		c.onCorrupt(err)
	}
	return err
}

// guard turns a panic of bbolt (its page assertions, or a fault on a
// damaged page) into a corruption error.
func (c *checkedLog) guard(idx uint64, err *error) {
	if r := recover(); r != nil {
		*err = c.corrupt(idx, fmt.Sprintf("bbolt failed reading it: %v", r))
	}
}

// boltErr classifies an error of raft-boltdb: a closed database is not
// damage; anything else (an entry that does not decode) is.
func (c *checkedLog) boltErr(idx uint64, err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) || errors.Is(err, bolterrors.ErrTxClosed) {
		return fmt.Errorf("raft log %s: %w", c.path, err)
	}
	return c.corrupt(idx, fmt.Sprintf("does not decode: %v", err))
}

func (c *checkedLog) FirstIndex() (i uint64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.guard(0, &err)
	return c.bolt.FirstIndex()
}

func (c *checkedLog) LastIndex() (i uint64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.guard(0, &err)
	return c.bolt.LastIndex()
}

// GetLog reads entry idx and verifies it; a damaged one is an error, never
// an entry.
func (c *checkedLog) GetLog(idx uint64, l *raft.Log) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.guard(idx, &err)
	if err := c.bolt.GetLog(idx, l); err != nil {
		if errors.Is(err, raft.ErrLogNotFound) {
			return err
		}
		return c.boltErr(idx, err)
	}
	if why := unseal(idx, l); why != "" {
		*l = raft.Log{}
		return c.corrupt(idx, why)
	}
	return nil
}

func (c *checkedLog) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs seals copies of the entries and stores them (one bbolt commit,
// fsynced: where an entry becomes durable).
func (c *checkedLog) StoreLogs(logs []*raft.Log) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.guard(0, &err)
	out := make([]*raft.Log, len(logs))
	for i, l := range logs {
		out[i] = seal(l)
	}
	return c.bolt.StoreLogs(out)
}

func (c *checkedLog) DeleteRange(lo, hi uint64) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.guard(lo, &err)
	return c.bolt.DeleteRange(lo, hi)
}

// checkedStable is raft-boltdb's stable store (current term, vote) with a
// checksum in every value.
type checkedStable struct{ log *checkedLog }

func (s checkedStable) Set(k, v []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.log.guard(0, &err)
	return s.log.bolt.Set(k, sealValue(k, v))
}

// Get returns raftboltdb.ErrKeyNotFound, unchanged, for a missing key:
// Raft tells a new node by that error's text.
func (s checkedStable) Get(k []byte) (v []byte, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.log.guard(0, &err)
	raw, err := s.log.bolt.Get(k)
	if err != nil {
		return nil, err
	}
	v, ok := unsealValue(k, raw)
	if !ok {
		return nil, s.log.corrupt(0, fmt.Sprintf("stable-store value %q fails its checksum", k))
	}
	return v, nil
}

func (s checkedStable) SetUint64(k []byte, v uint64) error {
	return s.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

func (s checkedStable) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, s.log.corrupt(0, fmt.Sprintf("stable-store value %q has %d bytes, want 8", k, len(v)))
	}
	return binary.BigEndian.Uint64(v), nil
}

var (
	_ raft.LogStore    = (*checkedLog)(nil)
	_ raft.StableStore = checkedStable{}
)
