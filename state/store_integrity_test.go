package state

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Defect 3 of the fault campaign (docs/RELIABILITY.md): a flipped byte in
// a Pebble table was not noticed at start; a read or a compaction that
// reached the block later panicked, at every restart.

func quietStore() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// tabledStore opens a store in dir, writes ~4 MiB of incompressible
// records and flushes them into tables, and closes it.
func tabledStore(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(dir, Options{Logger: quietStore()})
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(3, 3))
	val := make([]byte, 400)
	b := s.db.NewBatch()
	for i := range 10_000 {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		if err := b.Set([]byte(fmt.Sprintf("zz:%08d", i)), val, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// largestTable is the biggest .sst of a store.
func largestTable(t *testing.T, dir string) string {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(dbDir(dir), "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table written")
	}
	size := func(p string) int64 { st, _ := os.Stat(p); return st.Size() }
	return slices.MaxFunc(ssts, func(a, b string) int { return int(size(a) - size(b)) })
}

// flipTable XORs one byte a third of the way into a table (a data block).
func flipTable(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	at := st.Size() / 3
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedTableRefusedAtOpen: Open refuses a ledger with a flipped byte
// in a table, naming the file and the repair. Before, it opened, and
// panicked later when a read reached the block.
func TestDamagedTableRefusedAtOpen(t *testing.T) {
	dir := t.TempDir()
	tabledStore(t, dir)
	table := largestTable(t, dir)
	flipTable(t, table)
	s, err := Open(dir, Options{Logger: quietStore()})
	if err == nil {
		s.Close()
		t.Fatalf("a ledger with a damaged table %s opened", table)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || !IsCorrupt(err) || ce.Path != table {
		t.Fatalf("open: %v, want a *CorruptError naming %s", err, table)
	}
	if !strings.Contains(err.Error(), "docs/operations.md") {
		t.Fatalf("the refusal names no repair: %v", err)
	}
}

// TestDamageFoundWhileRunningStops: a table damaged after Open (verified
// clean then) is met by a read: the read fails with an error and the
// store reports the damage once (the node stops), instead of Pebble's
// fatal log line, which panicked.
func TestDamageFoundWhileRunningStops(t *testing.T) {
	dir := t.TempDir()
	tabledStore(t, dir)
	var mu sync.Mutex
	var reported []error
	s, err := Open(dir, Options{Logger: quietStore(), OnCorrupt: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	table := largestTable(t, dir)
	flipTable(t, table)
	n := 0
	err = s.readSnapshot(func(r pebbleReader) error {
		return scan(r, []byte("zz:"), []byte("zz;"), func(k, v []byte) bool { n++; return true })
	})
	if err == nil || !IsCorrupt(err) {
		t.Fatalf("scan over a damaged block: %v after %d records, want a corruption error", err, n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(reported)
		mu.Unlock()
		if len(got) > 0 {
			var ce *CorruptError
			if len(got) != 1 || !errors.As(got[0], &ce) || ce.Path != table {
				t.Fatalf("reported %v, want one *CorruptError naming %s", got, table)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the damage was not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkVerifyTables measures the open-time check (every block of every
// live table read and its checksum verified) on a ledger of 512 MiB of
// incompressible records, flushed and compacted into tables.
func BenchmarkVerifyTables(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{Logger: quietStore()})
	if err != nil {
		b.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(5, 5))
	val := make([]byte, 1000)
	for batch := range 512 {
		wb := s.db.NewBatch()
		for i := range 1024 {
			for j := 0; j < len(val); j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					val[j+k] = byte(v >> (8 * k))
				}
			}
			_ = wb.Set([]byte(fmt.Sprintf("zz:%06d:%04d", batch, i)), val, nil)
		}
		if err := wb.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var size uint64
	var tables int
	for range b.N {
		tables, size, err = verifyTables(s.db, dbDir(dir), s.readerOptions())
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(size)/(1<<20), "table_MiB")
	b.ReportMetric(float64(tables), "tables")
	s.Close()
}
