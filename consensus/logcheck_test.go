package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testEntries are entries like the ones Raft writes: commands with
// distinct data, a configuration entry, a no-op.
func testEntries(n int) []*raft.Log {
	var out []*raft.Log
	for i := 1; i <= n; i++ {
		l := &raft.Log{Index: uint64(i), Term: uint64(1 + i/10), Type: raft.LogCommand, Data: bytes.Repeat([]byte(fmt.Sprintf("entry-%04d;", i)), 40)}
		switch i % 17 {
		case 3:
			l.Type, l.Data = raft.LogConfiguration, []byte("configuration")
		case 5:
			l.Type, l.Data = raft.LogNoop, nil
		case 7:
			l.Extensions = []byte("ext")
		}
		out = append(out, l)
	}
	return out
}

// writeLog writes entries into path: sealed through checkedLog, or
// (legacy) straight through raft-boltdb, as before checksums.
func writeLog(t *testing.T, path string, entries []*raft.Log, legacy bool) {
	t.Helper()
	b, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := &checkedLog{bolt: b, path: path}
	var ls raft.LogStore = c
	var ss raft.StableStore = checkedStable{c}
	if legacy {
		ls, ss = b, b
	} else if err := b.Set(logFormatKey, logFormatValue); err != nil {
		t.Fatal(err)
	}
	if err := ls.StoreLogs(entries); err != nil {
		t.Fatal(err)
	}
	if err := ss.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := ss.Set([]byte("LastVoteCand"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
}

// readBack opens path as New does and compares every entry with want.
func readBack(path string, want []*raft.Log) error {
	info, err := checkLogFile(path)
	if err != nil {
		return err
	}
	b, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		return err
	}
	defer b.Close()
	c := &checkedLog{bolt: b, path: path}
	if err := upgradeLog(c, info, quietLog()); err != nil {
		return err
	}
	for _, w := range want {
		var l raft.Log
		if err := c.GetLog(w.Index, &l); err != nil {
			return err
		}
		if l.Index != w.Index || l.Term != w.Term || l.Type != w.Type || !bytes.Equal(l.Data, w.Data) || !bytes.Equal(l.Extensions, w.Extensions) {
			return fmt.Errorf("entry %d read back as %+v, want %+v", w.Index, l, *w)
		}
	}
	if term, err := (checkedStable{c}).GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		return fmt.Errorf("current term %d, %v", term, err)
	}
	return nil
}

func TestSealedEntriesReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	entries := testEntries(50)
	writeLog(t, path, entries, false)
	if err := readBack(path, entries); err != nil {
		t.Fatal(err)
	}
	// Raft's own entries are never touched: its LogCache keeps them.
	if entries[0].Extensions != nil {
		t.Fatalf("StoreLogs changed the caller's entry: %x", entries[0].Extensions)
	}
}

// TestLegacyLogUpgraded: a raft.db written before checksums (raft-boltdb
// alone) is accepted, sealed at open, and from then on a flipped byte in
// an entry is refused.
func TestLegacyLogUpgraded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	entries := testEntries(40)
	writeLog(t, path, entries, true)
	info, err := checkLogFile(path)
	if err != nil || info.formatted || info.legacy != 40 || info.first != 1 || info.last != 40 {
		t.Fatalf("legacy file: %+v, %v", info, err)
	}
	if err := readBack(path, entries); err != nil {
		t.Fatal(err)
	}
	info, err = checkLogFile(path)
	if err != nil || !info.formatted || info.legacy != 0 || info.entries != 40 {
		t.Fatalf("after the upgrade: %+v, %v", info, err)
	}
	flipAll(t, path, entries[20].Data[100:108])
	var ce *LogCorruptError
	if _, err := checkLogFile(path); !errors.As(err, &ce) || ce.Index != 21 {
		t.Fatalf("a flipped byte in entry 21 after the upgrade: %v", err)
	}
}

// TestFlippedBytesNeverPass: 16 bytes flipped at random in raft.db, 300
// times over. checkLogFile either refuses the file with a
// *LogCorruptError, never a panic, or every entry and the term read back
// exactly as written (the flip hit free space, or AppendedAt).
func TestFlippedBytesNeverPass(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.db")
	entries := testEntries(300)
	writeLog(t, clean, entries, false)
	orig, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(14, 2))
	refused, passed := 0, 0
	for trial := range 300 {
		damaged := bytes.Clone(orig)
		for range 16 {
			damaged[rng.IntN(len(damaged))] ^= byte(1 + rng.IntN(255))
		}
		path := filepath.Join(dir, fmt.Sprintf("t%d.db", trial))
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		err := readBack(path, entries)
		var ce *LogCorruptError
		switch {
		case err == nil:
			passed++
		case errors.As(err, &ce):
			refused++
		default:
			t.Fatalf("trial %d: neither refused as damaged nor read back: %v", trial, err)
		}
		os.Remove(path)
	}
	t.Logf("%d refused, %d passed intact", refused, passed)
	if refused < 100 {
		t.Fatalf("only %d of 300 damaged files refused", refused)
	}
}

// flipAll XORs the first byte of every copy of pattern in the file (bbolt
// may keep stale copies of a page in free space).
func flipAll(t *testing.T, path string, pattern []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; ; {
		i := bytes.Index(raw[off:], pattern)
		if i < 0 {
			break
		}
		raw[off+i] ^= 0x5a
		off += i + len(pattern)
		n++
	}
	if n == 0 {
		t.Fatalf("pattern %q not in %s", pattern, path)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckedLogStopsOnDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	entries := testEntries(30)
	writeLog(t, path, entries, false)
	b, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var reported []error
	c := &checkedLog{bolt: b, path: path, onCorrupt: func(err error) { reported = append(reported, err) }}
	// Damage while open: bbolt reads through its mmap of the file.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	i := bytes.Index(raw, entries[9].Data[200:220])
	if i < 0 {
		t.Fatal("entry 10's data not in the file")
	}
	if _, err := f.WriteAt([]byte{raw[i] ^ 1}, int64(i)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var l raft.Log
	err = c.GetLog(10, &l)
	var ce *LogCorruptError
	if !errors.As(err, &ce) || ce.Index != 10 || l.Data != nil {
		t.Fatalf("GetLog(10) of a damaged entry: %v, data %q", err, l.Data)
	}
	if err := c.GetLog(11, &l); err != nil || !bytes.Equal(l.Data, entries[10].Data) {
		t.Fatalf("GetLog(11): %v", err)
	}
	_ = c.GetLog(10, &l)
	if len(reported) != 1 || !errors.Is(reported[0], ErrLogCorrupt) {
		t.Fatalf("reported %v, want one ErrLogCorrupt", reported)
	}
}

// BenchmarkCheckLogFile measures the start-up check (checkLogFile: bbolt's
// Check and every entry verified) on the largest log a node keeps by
// default: SnapshotThreshold + TrailingLogs = 18,432 entries, of the size
// in the sub-benchmark's name. DCEP_BENCH_LOG_KB picks one size.
func BenchmarkCheckLogFile(b *testing.B) {
	for _, kb := range []int{4, 64} {
		b.Run(fmt.Sprintf("entries=18432/kb=%d", kb), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "raft.db")
			bs, err := raftboltdb.New(raftboltdb.Options{Path: path, NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			c := &checkedLog{bolt: bs, path: path}
			data := make([]byte, kb<<10)
			rng := mrand.New(mrand.NewPCG(1, 1))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			for lo := 1; lo <= 18432; lo += 256 {
				var batch []*raft.Log
				for i := lo; i < lo+256; i++ {
					batch = append(batch, &raft.Log{Index: uint64(i), Term: 3, Type: raft.LogCommand, Data: data})
				}
				if err := c.StoreLogs(batch); err != nil {
					b.Fatal(err)
				}
			}
			_ = bs.Set(logFormatKey, logFormatValue)
			bs.Close()
			st, _ := os.Stat(path)
			b.ResetTimer()
			for range b.N {
				info, err := checkLogFile(path)
				if err != nil || info.entries != 18432 {
					b.Fatal(info, err)
				}
			}
			b.ReportMetric(float64(st.Size())/(1<<20), "file_MiB")
		})
	}
}
