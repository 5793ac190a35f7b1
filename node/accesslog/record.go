// Package accesslog is a node's local, append-only record of who read what:
// every read of identity-linked data (a wallet, its history, a transaction
// read by a non-party, payments, a purse, an audit answer) appends one Record.
//
// A record is durable when Append returns: Append waits until the frame is
// written and fsynced (appenders that arrive together share one fsync). Each
// frame carries a CRC-32C, so a torn tail left by kill -9 is found and cut
// off at Open. Files rotate at Options.MaxFileBytes and only the newest
// Options.KeepFiles are kept: the log's size is bounded. See DESIGN.md.
package accesslog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unicode/utf8"
)

// Limits of one record: a record is built by the node from what a caller
// sent, so each field is bounded before it is written.
const (
	// MaxFieldBytes bounds each text field of a record (identity, role,
	// procedure, wallet, address, code); longer values are cut at Append.
	MaxFieldBytes = 256
	// MaxTxIDBytes bounds the transaction id field.
	MaxTxIDBytes = 64
	// MaxRecordBytes bounds one encoded record (payload, without the
	// 8-byte frame header).
	MaxRecordBytes = 4096
	// frameHeaderBytes: u32 payload length, u32 CRC-32C of the payload.
	frameHeaderBytes = 8
	// recordVersion is the first byte of every payload.
	recordVersion = 1
)

var (
	// ErrCorrupt is a frame whose length, checksum or contents are wrong.
	ErrCorrupt = errors.New("accesslog: corrupt record")
	// ErrClosed is an Append or Query on a closed log.
	ErrClosed = errors.New("accesslog: closed")
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Record is one access: who asked, what for, when, from where, and whether
// the node answered.
type Record struct {
	// Time is when the node decided (wall clock: the log is not ledger
	// state). Stored in Unix milliseconds.
	Time time.Time
	// Identity is who asked: a wallet id, bank id, node name, or "" for an
	// anonymous caller.
	Identity string
	// Role is the caller's role, e.g. "holder", "bank", "regulator",
	// "central_bank", "platform", "anonymous".
	Role string
	// Procedure is the RPC, e.g. "/dcep.node.v1.QueryService/History".
	Procedure string
	// Wallet is the subject wallet, if the call was about one.
	Wallet string
	// TxID is the subject transaction, if the call was about one.
	TxID []byte
	// Addr is the caller's network address.
	Addr string
	// Allowed is whether the node answered.
	Allowed bool
	// Code is the refusal code (e.g. "PERMISSION_DENIED") when not allowed.
	Code string
}

// clip cuts s to at most MaxFieldBytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= MaxFieldBytes {
		return s
	}
	s = s[:MaxFieldBytes]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// normalize bounds the record's fields so that it always encodes.
func (r Record) normalize() Record {
	r.Identity, r.Role, r.Procedure = clip(r.Identity), clip(r.Role), clip(r.Procedure)
	r.Wallet, r.Addr, r.Code = clip(r.Wallet), clip(r.Addr), clip(r.Code)
	if len(r.TxID) > MaxTxIDBytes {
		r.TxID = r.TxID[:MaxTxIDBytes]
	}
	r.Time = time.UnixMilli(r.Time.UnixMilli())
	return r
}

// appendFrame encodes r (already normalized) as one frame: length, CRC,
// payload. The payload is: version byte, time (zigzag varint ms), allowed
// byte, then seven length-prefixed (uvarint) fields in the order identity,
// role, procedure, wallet, tx id, address, code.
func appendFrame(dst []byte, r Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeaderBytes)...)
	dst = append(dst, recordVersion)
	dst = binary.AppendVarint(dst, r.Time.UnixMilli())
	if r.Allowed {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	for _, f := range [][]byte{[]byte(r.Identity), []byte(r.Role), []byte(r.Procedure), []byte(r.Wallet), r.TxID, []byte(r.Addr), []byte(r.Code)} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	payload := dst[start+frameHeaderBytes:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, crcTable))
	return dst
}

// DecodeFrame reads one frame from the front of b and returns the record
// and the frame's size. A frame cut short returns io.ErrUnexpectedEOF
// wrapped in ErrCorrupt; a bad length, checksum or payload returns
// ErrCorrupt with what is wrong.
func DecodeFrame(b []byte) (Record, int, error) {
	if len(b) < frameHeaderBytes {
		return Record{}, 0, fmt.Errorf("%w: frame header cut short (%d of %d bytes)", ErrCorrupt, len(b), frameHeaderBytes)
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > MaxRecordBytes {
		return Record{}, 0, fmt.Errorf("%w: length %d outside 1..%d", ErrCorrupt, n, MaxRecordBytes)
	}
	if uint64(len(b)-frameHeaderBytes) < uint64(n) {
		return Record{}, 0, fmt.Errorf("%w: payload cut short (%d of %d bytes)", ErrCorrupt, len(b)-frameHeaderBytes, n)
	}
	payload := b[frameHeaderBytes : frameHeaderBytes+int(n)]
	if got, want := crc32.Checksum(payload, crcTable), binary.LittleEndian.Uint32(b[4:]); got != want {
		return Record{}, 0, fmt.Errorf("%w: checksum %08x, frame says %08x", ErrCorrupt, got, want)
	}
	r, err := decodePayload(payload)
	if err != nil {
		return Record{}, 0, err
	}
	return r, frameHeaderBytes + int(n), nil
}

func decodePayload(p []byte) (Record, error) {
	if p[0] != recordVersion {
		return Record{}, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, p[0], recordVersion)
	}
	p = p[1:]
	// Only the canonical (shortest) varints are accepted: one record has
	// one encoding.
	ms, k := binary.Varint(p)
	if k <= 0 || k != len(binary.AppendVarint(nil, ms)) {
		return Record{}, fmt.Errorf("%w: time field", ErrCorrupt)
	}
	p = p[k:]
	if len(p) == 0 || p[0] > 1 {
		return Record{}, fmt.Errorf("%w: allowed field", ErrCorrupt)
	}
	r := Record{Time: time.UnixMilli(ms), Allowed: p[0] == 1}
	p = p[1:]
	names := [...]string{"identity", "role", "procedure", "wallet", "tx_id", "addr", "code"}
	var fields [len(names)][]byte
	for i, name := range names {
		l, k := binary.Uvarint(p)
		max := uint64(MaxFieldBytes)
		if name == "tx_id" {
			max = MaxTxIDBytes
		}
		if k <= 0 || k != len(binary.AppendUvarint(nil, l)) || l > max || l > uint64(len(p)-k) {
			return Record{}, fmt.Errorf("%w: field %s", ErrCorrupt, name)
		}
		fields[i], p = p[k:k+int(l)], p[k+int(l):]
		if name != "tx_id" && !utf8.Valid(fields[i]) {
			return Record{}, fmt.Errorf("%w: field %s is not UTF-8", ErrCorrupt, name)
		}
	}
	if len(p) != 0 {
		return Record{}, fmt.Errorf("%w: %d bytes after the last field", ErrCorrupt, len(p))
	}
	r.Identity, r.Role, r.Procedure, r.Wallet = string(fields[0]), string(fields[1]), string(fields[2]), string(fields[3])
	if len(fields[4]) > 0 {
		r.TxID = append([]byte(nil), fields[4]...)
	}
	r.Addr, r.Code = string(fields[5]), string(fields[6])
	return r, nil
}
