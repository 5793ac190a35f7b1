package archive_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/consensus/archive"
)

var genesis = sha256.Sum256([]byte("test genesis"))

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// entries makes archived entries at the given indexes, with data that
// compresses a little.
func entries(idx ...uint64) []archive.Entry {
	out := make([]archive.Entry, len(idx))
	for i, x := range idx {
		t := raft.LogCommand
		if x%7 == 0 {
			t = raft.LogConfiguration
		}
		out[i] = archive.Entry{Index: x, Term: 1 + x/10, Type: t, Data: []byte(fmt.Sprintf("entry %d: %s", x, bytes.Repeat([]byte{byte(x)}, int(x%50))))}
	}
	return out
}

func hashOf(i uint64) [32]byte { return sha256.Sum256([]byte(fmt.Sprint("state", i))) }

func TestRoundTrip(t *testing.T) {
	es := entries(3, 4, 6, 9)
	file, err := archive.EncodeFile(3, 10, es, hashOf(9), genesis)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := archive.DecodeFile(file, genesis)
	if err != nil {
		t.Fatal(err)
	}
	if seg.First != 3 || seg.Last != 10 || seg.Count != 4 || seg.LastEntry != 9 || seg.StateHash != hashOf(9) || len(seg.Entries) != 4 {
		t.Fatalf("header: %+v", seg.Header)
	}
	for i, e := range seg.Entries {
		if e.Index != es[i].Index || e.Term != es[i].Term || e.Type != es[i].Type || !bytes.Equal(e.Data, es[i].Data) {
			t.Fatalf("entry %d: %+v, want %+v", i, e, es[i])
		}
	}
	// A range with no ledger entries (only barriers) is a valid segment.
	empty, err := archive.EncodeFile(11, 12, nil, [32]byte{}, genesis)
	if err != nil {
		t.Fatal(err)
	}
	if seg, err := archive.DecodeFile(empty, genesis); err != nil || seg.Count != 0 || len(seg.Entries) != 0 {
		t.Fatalf("empty segment: %+v %v", seg, err)
	}
}

// TestEveryFlippedByteRefused: one byte changed anywhere in a segment file
// (header, checksum or compressed body) is refused as corrupt; so is a
// file cut short, one with a byte more, and one of another network.
func TestEveryFlippedByteRefused(t *testing.T) {
	file, err := archive.EncodeFile(1, 40, entries(1, 2, 5, 8, 13, 21, 34), hashOf(34), genesis)
	if err != nil {
		t.Fatal(err)
	}
	for i := range file {
		for _, bit := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), file...)
			bad[i] ^= bit
			if _, err := archive.DecodeFile(bad, genesis); !errors.Is(err, archive.ErrCorrupt) {
				t.Fatalf("byte %d ^ %#x of %d: %v, want ErrCorrupt", i, bit, len(file), err)
			}
		}
	}
	for name, bad := range map[string][]byte{
		"truncated": file[:len(file)-1], "extended": append(append([]byte(nil), file...), 0), "header only": file[:152], "empty": nil,
	} {
		if _, err := archive.DecodeFile(bad, genesis); !errors.Is(err, archive.ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := archive.DecodeFile(file, sha256.Sum256([]byte("other"))); !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("other genesis: %v", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		first, last uint64
		es          []archive.Entry
		want        error
	}{
		"out of range":  {5, 9, entries(4), nil},
		"out of order":  {1, 9, entries(3, 2), nil},
		"beyond last":   {1, 9, entries(10), nil},
		"barrier entry": {1, 9, []archive.Entry{{Index: 2, Type: raft.LogBarrier}}, nil},
		"entry too big": {1, 9, []archive.Entry{{Index: 2, Data: make([]byte, archive.MaxEntryBytes+1)}}, archive.ErrTooLarge},
	} {
		_, err := archive.EncodeFile(c.first, c.last, c.es, hashOf(1), genesis)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestArchiveHolesOverlapAndTamper(t *testing.T) {
	dir := t.TempDir()
	a, err := archive.Open(dir, genesis, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if holes := a.Holes(10); len(holes) != 1 || holes[0] != (archive.Range{First: 1, Last: 10}) {
		t.Fatalf("empty archive holes: %v", holes)
	}
	if _, err := a.Write(1, 4, entries(1, 2, 4), hashOf(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(9, 12, entries(9, 12), hashOf(12)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(4, 6, entries(5), hashOf(5)); !errors.Is(err, archive.ErrOverlap) {
		t.Fatalf("overlapping write: %v", err)
	}
	if holes := a.Holes(15); fmt.Sprint(holes) != "[5..8 13..15]" {
		t.Fatalf("holes: %v", holes)
	}
	h, ok := a.Find(11)
	if !ok || h.First != 9 {
		t.Fatalf("find 11: %+v %v", h, ok)
	}
	if _, ok := a.Find(6); ok {
		t.Fatal("found index 6 in a hole")
	}
	seg, file, err := a.Read(h)
	if err != nil || seg.LastEntry != 12 || len(file) == 0 {
		t.Fatalf("read: %+v %v", seg, err)
	}
	a.Close()

	// Reopened: same segments; a leftover temporary file of an interrupted
	// write is deleted.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-00000000000000000005-00000000000000000008.seg"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err = archive.Open(dir, genesis, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if n, _, end := a.Stats(); n != 2 || end != 12 {
		t.Fatalf("reopened: %d segments to %d", n, end)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(m) != 0 {
		t.Fatalf("temporary file left: %v", m)
	}

	// A flipped byte on disk: Read refuses it, sets the file aside and the
	// range becomes a hole again.
	path := filepath.Join(dir, "00000000000000000009-00000000000000000012.seg")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-3] ^= 0x10
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Read(h); !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("tampered read: %v", err)
	}
	if holes := a.Holes(12); fmt.Sprint(holes) != "[5..12]" {
		t.Fatalf("holes after the refusal: %v", holes)
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Fatalf("tampered file not set aside: %v", err)
	}
}

// TestOpenSetsAsideBadHeaders: a file whose header does not match its
// name, or of another network, is set aside at open; its range is a hole.
func TestOpenSetsAsideBadHeaders(t *testing.T) {
	dir := t.TempDir()
	good, _ := archive.EncodeFile(1, 3, entries(1, 3), hashOf(3), genesis)
	other, _ := archive.EncodeFile(4, 6, entries(4), hashOf(4), sha256.Sum256([]byte("other")))
	for name, b := range map[string][]byte{
		"00000000000000000001-00000000000000000003.seg": good,
		"00000000000000000004-00000000000000000006.seg": other,
		"00000000000000000007-00000000000000000009.seg": good, // range differs from the name
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, err := archive.Open(dir, genesis, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if holes := a.Holes(9); fmt.Sprint(holes) != "[4..9]" {
		t.Fatalf("holes: %v", holes)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.corrupt")); len(m) != 2 {
		t.Fatalf("set aside: %v", m)
	}
}
