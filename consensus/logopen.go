package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// raft-boltdb's bucket names (its on-disk layout, fixed since v1).
var (
	boltLogs = []byte("logs")
	boltConf = []byte("conf")
)

// maxCheckErrors bounds the bbolt consistency errors quoted in a refusal.
const maxCheckErrors = 5

// logFileInfo is what checkLogFile found in raft.db.
type logFileInfo struct {
	exists      bool
	first, last uint64
	entries     int
	legacy      int      // entries without a checksum (a file from before them)
	formatted   bool     // logFormatKey present: every entry must be sealed
	stableKeys  [][]byte // stable-store keys other than logFormatKey
	fileBytes   int64
	elapsed     time.Duration
}

// checkLogFile verifies raft.db before raft-boltdb opens it, so a damaged
// file is refused at start with an error naming what is wrong instead of
// being run on: bbolt opens it (its meta pages carry checksums), every
// entry is read, decoded and its checksum verified, the indexes must run
// without a hole, every stable value must pass its checksum, and bbolt's
// consistency check (tx.Check: every page reachable once, keys in order,
// freelist sane) must pass. A panic of bbolt on a damaged page, or a fault
// reading one, is caught here and refused the same way. The cost is one
// read of the file (DESIGN.md, "Integrity of the Raft log": measured).
func checkLogFile(path string) (info logFileInfo, err error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("raft log: %w", err)
	}
	info.exists, info.fileBytes = true, st.Size()
	start := time.Now()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &LogCorruptError{Path: path, Why: fmt.Sprintf("bbolt failed reading it: %v", r)}
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			return info, &LogCorruptError{Path: path, Why: "bbolt cannot open it: " + err.Error()}
		}
		return info, fmt.Errorf("open raft log %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		if err := scanBuckets(tx, path, &info); err != nil {
			return err
		}
		return checkTx(tx, path)
	})
	info.elapsed = time.Since(start)
	return info, err
}

// scanBuckets checks the root holds raft-boltdb's two buckets, then the
// stable store (first: it says whether entries must be sealed), then every
// entry.
func scanBuckets(tx *bbolt.Tx, path string, info *logFileInfo) error {
	var names [][]byte
	if err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		names = append(names, bytes.Clone(name))
		return nil
	}); err != nil {
		return &LogCorruptError{Path: path, Why: "listing its buckets: " + err.Error()}
	}
	logs, conf := tx.Bucket(boltLogs), tx.Bucket(boltConf)
	switch {
	case len(names) == 0:
		return nil // created, never initialised (a crash at first start)
	case len(names) != 2 || logs == nil || conf == nil:
		return &LogCorruptError{Path: path, Why: fmt.Sprintf("its buckets are %q, want \"conf\" and \"logs\"", names)}
	}
	if err := scanStable(conf, path, info); err != nil {
		return err
	}
	return scanEntries(logs, path, info)
}

func scanStable(conf *bbolt.Bucket, path string, info *logFileInfo) error {
	if v := conf.Get(logFormatKey); v != nil {
		if !bytes.Equal(v, logFormatValue) {
			return &LogCorruptError{Path: path, Why: fmt.Sprintf("its format record reads %q, want %q", v, logFormatValue)}
		}
		info.formatted = true
	}
	return conf.ForEach(func(k, v []byte) error {
		if bytes.Equal(k, logFormatKey) {
			return nil
		}
		info.stableKeys = append(info.stableKeys, bytes.Clone(k))
		if _, ok := unsealValue(k, v); info.formatted && !ok {
			return &LogCorruptError{Path: path, Why: fmt.Sprintf("stable-store value %q fails its checksum", k)}
		}
		return nil
	})
}

func scanEntries(logs *bbolt.Bucket, path string, info *logFileInfo) error {
	h := &codec.MsgpackHandle{} // raft-boltdb's encoding
	var prev uint64
	return logs.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return &LogCorruptError{Path: path, Index: prev + 1, Why: fmt.Sprintf("a key of %d bytes after entry %d", len(k), prev)}
		}
		idx := binary.BigEndian.Uint64(k)
		if prev != 0 && idx != prev+1 {
			return &LogCorruptError{Path: path, Index: idx, Why: fmt.Sprintf("its key follows entry %d: a hole in the log or a damaged key", prev)}
		}
		var l raft.Log
		if err := codec.NewDecoderBytes(v, h).Decode(&l); err != nil {
			return &LogCorruptError{Path: path, Index: idx, Why: "does not decode: " + err.Error()}
		}
		if !info.formatted && !sealed(&l) {
			if l.Index != idx {
				return &LogCorruptError{Path: path, Index: idx, Why: fmt.Sprintf("stored under index %d but holds index %d", idx, l.Index)}
			}
			info.legacy++
		} else if why := unseal(idx, &l); why != "" {
			return &LogCorruptError{Path: path, Index: idx, Why: why}
		}
		if info.first == 0 {
			info.first = idx
		}
		info.last, prev = idx, idx
		info.entries++
		return nil
	})
}

// checkTx runs bbolt's consistency check. It runs on a goroutine of
// bbolt's own, where a panic cannot be caught: scanBuckets has read every
// page of both buckets first (a damaged page panics or faults there,
// caught), so what Check reads beyond them is the freelist, which bbolt
// already loaded at open.
func checkTx(tx *bbolt.Tx, path string) error {
	var errs []string
	for err := range tx.Check() {
		if len(errs) < maxCheckErrors {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return &LogCorruptError{Path: path, Why: fmt.Sprintf("bbolt's consistency check failed: %q", errs)}
	}
	return nil
}

// upgradeEntriesPerCommit bounds one upgrade commit (memory and time).
const upgradeEntriesPerCommit = 256

// upgradeLog seals a file from before checksums: every entry and stable
// value without one is rewritten with one (in commits of 256 entries), then
// the format record is written. Until it is, a crash leaves a file the
// next start upgrades again. What the old file held cannot be verified
// beyond what checkLogFile did (it decodes, indexes run, bbolt is
// consistent): the checksum protects it from now on.
func upgradeLog(c *checkedLog, info logFileInfo, log *slog.Logger) error {
	if info.formatted {
		return nil
	}
	for lo := info.first; info.entries > 0 && lo <= info.last; lo += upgradeEntriesPerCommit {
		var batch []*raft.Log
		for i := lo; i <= min(info.last, lo+upgradeEntriesPerCommit-1); i++ {
			l := new(raft.Log)
			if err := c.bolt.GetLog(i, l); err != nil {
				return fmt.Errorf("upgrade raft log: entry %d: %w", i, err)
			}
			if !sealed(l) {
				batch = append(batch, l)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := c.StoreLogs(batch); err != nil {
			return fmt.Errorf("upgrade raft log: %w", err)
		}
	}
	for _, k := range info.stableKeys {
		raw, err := c.bolt.Get(k)
		if err != nil {
			return fmt.Errorf("upgrade raft log: stable %q: %w", k, err)
		}
		if _, ok := unsealValue(k, raw); !ok {
			if err := c.bolt.Set(k, sealValue(k, raw)); err != nil {
				return fmt.Errorf("upgrade raft log: stable %q: %w", k, err)
			}
		}
	}
	if err := c.bolt.Set(logFormatKey, logFormatValue); err != nil {
		return fmt.Errorf("upgrade raft log: %w", err)
	}
	if !info.exists {
		return nil // a new file: nothing in it predates checksums
	}
	log.Info("raft log upgraded: every entry now carries a checksum", "path", c.path, "entries", info.entries, "sealed_now", info.legacy, "stable_keys", len(info.stableKeys))
	return nil
}
