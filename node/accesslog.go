package node

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/dcep/dcep/node/accesslog"
)

// openAccessLog opens data_dir/access. A torn tail (kill -9 in the middle
// of an append that was never acknowledged) is cut at open and logged.
func (n *Node) openAccessLog() error {
	dir := filepath.Join(n.cfg.Path(n.cfg.DataDir), "access")
	l, err := accesslog.Open(dir, accesslog.Options{
		MaxFileBytes: int64(n.cfg.AccessLog.MaxFileMB) << 20,
		KeepFiles:    n.cfg.AccessLog.KeepFiles,
	})
	if err != nil {
		return fmt.Errorf("node: access log: %w", err)
	}
	if cut := l.Truncated(); cut > 0 {
		n.log.Warn("access log: torn tail cut at open (an append interrupted before it was acknowledged)", "dir", dir, "bytes", cut)
	}
	n.access = l
	return nil
}

// recordAccess appends one access to the node's log and returns once it
// is fsynced (where it becomes durable). The auth interceptor calls it for
// every read of identity-linked data, allowed or refused. An error means
// the access is not on record: the caller must then refuse the read
// (UNAVAILABLE) rather than answer unrecorded. A zero Time is stamped with
// the wall clock (the log is not ledger state).
func (n *Node) recordAccess(rec accesslog.Record) error {
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	if err := n.access.Append(rec); err != nil {
		n.log.Error("access log append failed", "procedure", rec.Procedure, "error", err)
		return fmt.Errorf("%w: %w", ErrAccessLog, err)
	}
	return nil
}
