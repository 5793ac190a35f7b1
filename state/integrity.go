package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Damage in the ledger's Pebble files (docs/RELIABILITY.md, defect 3;
// docs/operations.md, "A damaged ledger"). Pebble
// checksums every block but verifies one only when it reads it, so a node
// with a flipped byte in a table started, was ready, and panicked later,
// at every restart, when a read or a compaction reached the block
// (defect 3). Now every live table's blocks are verified at open
// (verifyTables) and a damaged one is refused with an error naming the
// file and the repair; damage found later (a read, a compaction) is
// reported once to Options.OnCorrupt, which stops the node, instead of
// Pebble's default of a fatal log line (a panic).

// ErrCorrupt: a ledger file is damaged (a *CorruptError names it and the
// repair).
var ErrCorrupt = errors.New("ledger damaged")

// CorruptError names a damaged ledger file.
type CorruptError struct {
	Path string
	Why  string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: %s is damaged (%s); this node refuses to read from it. "+
		"Repair (docs/operations.md, \"A damaged ledger\"): stop the node, move its state directory aside, start it again: it restores the ledger from a snapshot and the log",
		ErrCorrupt, e.Path, e.Why)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// IsCorrupt reports whether err says ledger data is damaged (a
// *CorruptError, or Pebble's own corruption error from a read).
func IsCorrupt(err error) bool {
	return errors.Is(err, ErrCorrupt) || pebble.IsCorruptionError(err)
}

// corruptionReporter hands damage found while running to Options.OnCorrupt,
// once, on its own goroutine (Pebble calls its listener synchronously in
// read and compaction paths, which must not block).
type corruptionReporter struct {
	log      func(msg string, args ...any)
	report   func(error)
	reported atomic.Bool
}

func (c *corruptionReporter) found(err error) {
	c.log("LEDGER DAMAGED: stopping this node", "error", err)
	if c.report != nil && c.reported.CompareAndSwap(false, true) {
		go c.report(err)
	}
}

// eventListener turns Pebble's corruption events into a report (its
// default for DataCorruption is a fatal log line, which panicked here).
func (s *Store) eventListener() *pebble.EventListener {
	c := &corruptionReporter{log: s.log.Error, report: s.opts.OnCorrupt}
	return &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			c.found(&CorruptError{Path: info.Path, Why: fmt.Sprintf("%+v", info.Details)})
		},
		BackgroundError: func(err error) {
			if pebble.IsCorruptionError(err) {
				c.found(fmt.Errorf("%w: a background compaction or flush: %w", ErrCorrupt, err))
				return
			}
			s.log.Error("pebble background error", "error", err)
		},
	}
}

// verifyTables reads every block of every live table of db (in dir) and
// verifies its checksum; the first damaged table is refused. It reads the
// whole ledger once (docs/operations.md, "A damaged ledger": measured).
func verifyTables(db *pebble.DB, dir string, ropts sstable.ReaderOptions) (tables int, bytes uint64, err error) {
	levels, err := db.SSTables()
	if err != nil {
		return 0, 0, fmt.Errorf("list ledger tables: %w", err)
	}
	seen := map[uint64]bool{}
	for _, level := range levels {
		for _, t := range level {
			num := uint64(t.BackingSSTNum)
			if seen[num] || t.BackingType != pebble.BackingTypeLocal {
				continue
			}
			seen[num] = true
			path := filepath.Join(dir, fmt.Sprintf("%06d.sst", num))
			if err := verifyTable(path, ropts); err != nil {
				return tables, bytes, &CorruptError{Path: path, Why: err.Error()}
			}
			tables++
			bytes += t.Size
		}
	}
	return tables, bytes, nil
}

// verifyTable validates one table's block checksums. A panic of Pebble's
// reader on a damaged footer or index is a damaged table too.
func verifyTable(path string, ropts sstable.ReaderOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading it panicked: %v", r)
		}
	}()
	f, err := vfs.Default.Open(path)
	if err != nil {
		return err
	}
	readable, err := sstable.NewSimpleReadable(f)
	if err != nil {
		f.Close()
		return err
	}
	r, err := sstable.NewReader(context.Background(), readable, ropts)
	if err != nil {
		readable.Close()
		return err
	}
	defer r.Close()
	return r.ValidateBlockChecksums()
}

// checkTables runs verifyTables on a freshly opened db and logs what it
// read; on damage it closes db.
func (s *Store) checkTables(db *pebble.DB, path string, ropts sstable.ReaderOptions) error {
	start := time.Now()
	n, size, err := verifyTables(db, path, ropts)
	if err != nil {
		_ = db.Close()
		return err
	}
	s.log.Info("ledger tables verified", "tables", n, "bytes", size, "elapsed_ms", time.Since(start).Milliseconds())
	return nil
}

// readerOptions are the table reader options of the store's Pebble
// options (benchmarks; Open derives them from the options it opened with).
func (s *Store) readerOptions() sstable.ReaderOptions {
	opts := s.pebbleOptions()
	opts.EnsureDefaults()
	return opts.MakeReaderOptions()
}
