// Package archive keeps the committed log entries that reach the ledger in
// compressed, checksummed segment files that Raft's compaction never
// deletes, so a node can re-validate history from genesis at any time and
// serve it to members that lack it. It owns only files: which entries go in
// (and from where) is consensus's business, fetching from peers the node's.
// See consensus/DESIGN.md, "Archive".
package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
)

// Segment file format (big-endian):
//
//	header (headerSize bytes):
//	  magic "DCEPSEG\0" | format u32 | entries u32 | first u64 | last u64 |
//	  raw bytes u64 | body bytes u64 | last entry u64 |
//	  state hash [32] | genesis hash [32] | checksum [32]
//	body: one zstd frame of the records
//	  { uvarint index | uvarint term | u8 type | uvarint len | data }*
//
// A segment covers the Raft indexes first..last and holds every entry in
// that range that reaches the ledger (commands and configuration changes;
// no-op and barrier entries never do, so an index in range may have no
// record). State hash is the ledger's state hash after the last entry.
// The checksum is SHA-256 over the header before it and the body: one
// flipped byte anywhere is refused.
const (
	magic      = "DCEPSEG\x00"
	format     = 1
	headerSize = 8 + 4 + 4 + 8*5 + 32*3

	// MaxEntryBytes bounds one entry's data. A log entry is at most
	// batch.max_bytes (4 MiB at most) of transactions plus framing.
	MaxEntryBytes = 8 << 20
	// MaxRawBytes bounds a segment's uncompressed records, and so what a
	// decoder allocates; MaxEntries bounds their count.
	MaxRawBytes = 16 << 20
	MaxEntries  = 1 << 20
	// MaxFileBytes bounds a whole segment file (a zstd frame of
	// incompressible data is a little larger than the data).
	MaxFileBytes = headerSize + MaxRawBytes + MaxRawBytes/64 + 1<<10
)

// Errors a caller can act on.
var (
	// ErrCorrupt: bytes that are not a well-formed segment of this
	// network — bad magic or format, checksum mismatch, sizes, indexes or
	// records that disagree with the header, another genesis. The whole
	// segment is refused.
	ErrCorrupt = errors.New("corrupt archive segment")
	// ErrTooLarge: entries that do not fit in one segment (MaxRawBytes,
	// MaxEntries, MaxEntryBytes).
	ErrTooLarge = errors.New("archive segment too large")
)

// Entry is one archived log entry.
type Entry struct {
	Index, Term uint64
	Type        raft.LogType
	Data        []byte
}

// Archived reports whether a log entry of type t belongs in the archive:
// exactly the entries the ledger applies as blocks.
func Archived(t raft.LogType) bool {
	return t == raft.LogCommand || t == raft.LogConfiguration
}

// Header describes a segment.
type Header struct {
	First, Last uint64 // Raft indexes covered
	Count       uint32 // entries
	RawBytes    uint64 // uncompressed records
	BodyBytes   uint64 // compressed body
	// LastEntry is the index of the last entry (0 if none), StateHash the
	// ledger's state hash after it (zero if none).
	LastEntry   uint64
	StateHash   [32]byte
	GenesisHash [32]byte
	Checksum    [32]byte
}

// FileBytes is the size of the segment file.
func (h Header) FileBytes() int64 { return headerSize + int64(h.BodyBytes) }

// String names the segment by its range.
func (h Header) String() string { return fmt.Sprintf("segment %d..%d", h.First, h.Last) }

// Segment is a decoded, verified segment.
type Segment struct {
	Header
	Entries []Entry
}

// codec compresses and decompresses bodies. EncodeAll and DecodeAll are
// safe for concurrent use.
type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newCodec() (*codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxRawBytes), zstd.WithDecoderMaxWindow(MaxRawBytes))
	if err != nil {
		enc.Close()
		return nil, err
	}
	return &codec{enc: enc, dec: dec}, nil
}

func (c *codec) close() {
	_ = c.enc.Close()
	c.dec.Close()
}

// encode builds a segment file covering first..last from entries (in index
// order, all within the range) and the state hash after the last one.
func (c *codec) encode(first, last uint64, entries []Entry, stateHash, genesis [32]byte) ([]byte, Header, error) {
	h := Header{First: first, Last: last, Count: uint32(len(entries)), GenesisHash: genesis}
	if len(entries) > MaxEntries {
		return nil, h, fmt.Errorf("%w: %d entries (max %d)", ErrTooLarge, len(entries), MaxEntries)
	}
	raw := make([]byte, 0, rawSize(entries))
	prev := uint64(0)
	for _, e := range entries {
		switch {
		case e.Index < first || e.Index > last || e.Index <= prev:
			return nil, h, fmt.Errorf("archive: entry %d out of order or outside %d..%d", e.Index, first, last)
		case !Archived(e.Type):
			return nil, h, fmt.Errorf("archive: entry %d has type %v, which never reaches the ledger", e.Index, e.Type)
		case len(e.Data) > MaxEntryBytes:
			return nil, h, fmt.Errorf("%w: entry %d has %d bytes (max %d)", ErrTooLarge, e.Index, len(e.Data), MaxEntryBytes)
		}
		raw = binary.AppendUvarint(raw, e.Index)
		raw = binary.AppendUvarint(raw, e.Term)
		raw = append(raw, byte(e.Type))
		raw = binary.AppendUvarint(raw, uint64(len(e.Data)))
		raw = append(raw, e.Data...)
		prev = e.Index
	}
	if len(raw) > MaxRawBytes {
		return nil, h, fmt.Errorf("%w: %d bytes of records (max %d)", ErrTooLarge, len(raw), MaxRawBytes)
	}
	if len(entries) > 0 {
		h.LastEntry, h.StateHash = prev, stateHash
	}
	body := c.enc.EncodeAll(raw, make([]byte, headerSize, headerSize+len(raw)/2+64))[headerSize:]
	h.RawBytes, h.BodyBytes = uint64(len(raw)), uint64(len(body))
	file := make([]byte, headerSize+len(body))
	copy(file[headerSize:], body)
	putHeader(file, &h)
	return file, h, nil
}

func rawSize(entries []Entry) int {
	n := 0
	for _, e := range entries {
		n += 3*binary.MaxVarintLen64 + 1 + len(e.Data)
	}
	return min(n, MaxRawBytes+1)
}

// putHeader writes h into file[:headerSize] and fills in the checksum over
// it and the body already in file.
func putHeader(file []byte, h *Header) {
	b := file[:0]
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, format)
	b = binary.BigEndian.AppendUint32(b, h.Count)
	for _, v := range []uint64{h.First, h.Last, h.RawBytes, h.BodyBytes, h.LastEntry} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	b = append(b, h.StateHash[:]...)
	b = append(b, h.GenesisHash[:]...)
	sum := sha256.New()
	sum.Write(file[:len(b)])
	sum.Write(file[headerSize:])
	copy(h.Checksum[:], sum.Sum(nil))
	copy(file[len(b):headerSize], h.Checksum[:])
}

// ParseHeader reads and checks a segment header (magic, format, ranges and
// sizes within bounds) without the body: the checksum is verified by
// Decode.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < headerSize {
		return h, fmt.Errorf("%w: %d bytes, shorter than a header (%d)", ErrCorrupt, len(b), headerSize)
	}
	if string(b[:8]) != magic {
		return h, fmt.Errorf("%w: not a dcep archive segment", ErrCorrupt)
	}
	if f := binary.BigEndian.Uint32(b[8:12]); f != format {
		return h, fmt.Errorf("%w: format %d (this node reads %d)", ErrCorrupt, f, format)
	}
	h.Count = binary.BigEndian.Uint32(b[12:16])
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[16+8*i:]) }
	h.First, h.Last, h.RawBytes, h.BodyBytes, h.LastEntry = u(0), u(1), u(2), u(3), u(4)
	copy(h.StateHash[:], b[56:88])
	copy(h.GenesisHash[:], b[88:120])
	copy(h.Checksum[:], b[120:152])
	return h, h.validate()
}

// validate checks a header's fields against each other and the bounds.
func (h Header) validate() error {
	switch {
	case h.First == 0 || h.Last < h.First:
		return fmt.Errorf("%w: range %d..%d", ErrCorrupt, h.First, h.Last)
	case h.Count > MaxEntries || h.RawBytes > MaxRawBytes || h.BodyBytes > MaxFileBytes-headerSize:
		return fmt.Errorf("%w: %d entries, %d raw bytes, %d body bytes exceed the bounds", ErrCorrupt, h.Count, h.RawBytes, h.BodyBytes)
	case h.Count == 0 && (h.LastEntry != 0 || h.RawBytes != 0 || h.StateHash != [32]byte{}):
		return fmt.Errorf("%w: an empty segment with a last entry, records or a state hash", ErrCorrupt)
	case h.Count > 0 && (h.LastEntry < h.First || h.LastEntry > h.Last):
		return fmt.Errorf("%w: last entry %d outside %d..%d", ErrCorrupt, h.LastEntry, h.First, h.Last)
	case uint64(h.Count) > h.Last-h.First+1:
		return fmt.Errorf("%w: %d entries in %d indexes", ErrCorrupt, h.Count, h.Last-h.First+1)
	}
	return nil
}

// decode verifies a whole segment file — checksum, genesis, body size,
// every record against the header — and returns its entries (their data
// aliases one decompressed buffer).
func (c *codec) decode(file []byte, genesis [32]byte) (*Segment, error) {
	if len(file) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrCorrupt, len(file), MaxFileBytes)
	}
	h, err := ParseHeader(file)
	if err != nil {
		return nil, err
	}
	if uint64(len(file)-headerSize) != h.BodyBytes {
		return nil, fmt.Errorf("%w: %s: body is %d bytes, header says %d", ErrCorrupt, h, len(file)-headerSize, h.BodyBytes)
	}
	sum := sha256.New()
	sum.Write(file[:headerSize-32])
	sum.Write(file[headerSize:])
	if !bytes.Equal(sum.Sum(nil), h.Checksum[:]) {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, h)
	}
	if h.GenesisHash != genesis {
		return nil, fmt.Errorf("%w: %s is of genesis %x, this network's is %x", ErrCorrupt, h, h.GenesisHash[:8], genesis[:8])
	}
	raw, err := c.dec.DecodeAll(file[headerSize:], make([]byte, 0, h.RawBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: decompress: %v", ErrCorrupt, h, err)
	}
	if uint64(len(raw)) != h.RawBytes {
		return nil, fmt.Errorf("%w: %s: %d bytes of records, header says %d", ErrCorrupt, h, len(raw), h.RawBytes)
	}
	entries, err := parseRecords(raw, h)
	if err != nil {
		return nil, err
	}
	return &Segment{Header: h, Entries: entries}, nil
}

func parseRecords(raw []byte, h Header) ([]Entry, error) {
	entries := make([]Entry, 0, h.Count)
	prev := h.First - 1
	for len(raw) > 0 {
		var e Entry
		var n int
		var err error
		if e.Index, raw, err = uvarint(raw); err == nil {
			e.Term, raw, err = uvarint(raw)
		}
		if err != nil || len(raw) == 0 {
			return nil, fmt.Errorf("%w: %s: truncated record %d", ErrCorrupt, h, len(entries))
		}
		e.Type, raw = raft.LogType(raw[0]), raw[1:]
		var size uint64
		if size, raw, err = uvarint(raw); err != nil || size > uint64(len(raw)) || size > MaxEntryBytes {
			return nil, fmt.Errorf("%w: %s: record %d: bad length", ErrCorrupt, h, len(entries))
		}
		n = int(size)
		e.Data, raw = raw[:n:n], raw[n:]
		switch {
		case e.Index <= prev || e.Index > h.Last:
			return nil, fmt.Errorf("%w: %s: record %d has index %d after %d", ErrCorrupt, h, len(entries), e.Index, prev)
		case !Archived(e.Type):
			return nil, fmt.Errorf("%w: %s: record %d (index %d) has type %d", ErrCorrupt, h, len(entries), e.Index, e.Type)
		case len(entries) == int(h.Count):
			return nil, fmt.Errorf("%w: %s: more than %d records", ErrCorrupt, h, h.Count)
		}
		prev = e.Index
		entries = append(entries, e)
	}
	if len(entries) != int(h.Count) || (len(entries) > 0 && prev != h.LastEntry) {
		return nil, fmt.Errorf("%w: %s: %d records ending at %d, header says %d ending at %d", ErrCorrupt, h, len(entries), prev, h.Count, h.LastEntry)
	}
	return entries, nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, errors.New("bad uvarint")
	}
	return v, b[n:], nil
}

// DecodeFile verifies and decodes a segment file on its own (tools, tests;
// an Archive reuses its codec).
func DecodeFile(file []byte, genesis [32]byte) (*Segment, error) {
	c, err := newCodec()
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.decode(file, genesis)
}

// EncodeFile builds a segment file on its own (tools, tests).
func EncodeFile(first, last uint64, entries []Entry, stateHash, genesis [32]byte) ([]byte, error) {
	c, err := newCodec()
	if err != nil {
		return nil, err
	}
	defer c.close()
	file, _, err := c.encode(first, last, entries, stateHash, genesis)
	return file, err
}
