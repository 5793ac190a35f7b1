package consensus

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// logTrust records from which Raft index on this node's own log holds
// exactly the entries its ledger applied from it. Below that index the log
// may hold nothing (compacted, never sent: a snapshot was installed
// instead) or, after a snapshot install, stale entries of a deposed
// leader's term that were never committed: the archive and a replay must
// never take entries from there. It is 1 on a node that has applied its
// whole log itself and moves past a restored snapshot (the larger of its
// ledger index and every snapshot's Raft index, plus one) on every restore.
//
// It is written (temporary file, fsync, rename, directory fsync) before a
// restore begins, as "pending", and again when it ends, so a crash in
// between is seen on the next start and resolved conservatively.
type logTrust struct {
	path string
	mu   sync.Mutex
	from uint64
}

// trustPending: a restore is running (or was interrupted by a crash).
const trustPending = math.MaxUint64

// openLogTrust reads dir/log-trust. Without one (a new node, or one from
// before the file existed), the log is trusted from 1 if there is no
// snapshot (so nothing was ever restored), else from after the ledger and
// every snapshot. A pending value (a crash during a restore) is resolved
// the same way.
func openLogTrust(dir string, ledgerApplied uint64, snapshots []uint64) (*logTrust, error) {
	t := &logTrust{path: filepath.Join(dir, "log-trust")}
	raw, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		t.from = trustPending
		if len(snapshots) == 0 {
			t.from = 1
		}
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", t.path, err)
	default:
		if t.from, err = parseTrust(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", t.path, err)
		}
	}
	if t.from == trustPending {
		t.from = afterRestore(ledgerApplied, snapshots)
	}
	return t, t.write(t.from)
}

// afterRestore is the first index of the log to trust once the ledger was
// restored to ledgerApplied with these snapshots on disk.
func afterRestore(ledgerApplied uint64, snapshots []uint64) uint64 {
	m := ledgerApplied
	for _, s := range snapshots {
		m = max(m, s)
	}
	return m + 1
}

func parseTrust(raw []byte) (uint64, error) {
	s, ok := strings.CutPrefix(string(raw), "log-trusted-from ")
	if !ok || !strings.HasSuffix(s, "\n") {
		return 0, errTrustFile
	}
	s = strings.TrimSuffix(s, "\n")
	if s == "pending" {
		return trustPending, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || v == trustPending {
		return 0, errTrustFile
	}
	return v, nil
}

// get is the first trusted index (trustPending while a restore runs).
func (t *logTrust) get() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.from
}

// set records a new value durably.
func (t *logTrust) set(from uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.write(from); err != nil {
		return err
	}
	t.from = from
	return nil
}

func (t *logTrust) write(from uint64) error {
	v := "pending"
	if from != trustPending {
		v = strconv.FormatUint(from, 10)
	}
	tmp := t.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write log trust: %w", err)
	}
	_, err = f.WriteString("log-trusted-from " + v + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, t.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(t.path))
	}
	if err != nil {
		return fmt.Errorf("write log trust: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
