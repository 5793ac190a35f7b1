package consensus

import (
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// Raft backs off each follower it cannot reach (10 ms doubling to 10 s per
// failed AppendEntries) and never resets the wait when the follower comes
// back: a follower restarted after a few seconds was replicated to only
// when the wait ran out, seconds late (issue 16, defect 6). So the leader's
// AppendEntries to an unreachable follower does not fail at once: it is
// retried here every appendRetryInterval until the follower answers (then
// Raft sees one success, no failure, no backoff), the transport closes, or
// appendRetryMax passes. Resending an AppendEntries is safe: the follower
// checks its term and previous entry as for any.
const (
	appendRetryInterval = 100 * time.Millisecond
	appendRetryMax      = 5 * time.Minute
)

// retryTransport is the NetworkTransport with AppendEntries retried; every
// other method (pre-vote, pipelining, close) is the NetworkTransport's.
type retryTransport struct {
	*raft.NetworkTransport
	log *slog.Logger
}

func (t *retryTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		return nil
	}
	start := time.Now()
	logged := false
	for time.Since(start) < appendRetryMax && !t.IsShutdown() {
		if !logged && time.Since(start) > time.Second {
			// Once per outage, by name (Raft would log every retry).
			t.log.Warn("raft peer unreachable; retrying until it answers", "peer", string(id), "error", err)
			logged = true
		}
		time.Sleep(appendRetryInterval)
		if err = t.NetworkTransport.AppendEntries(id, target, args, resp); err == nil {
			if logged {
				t.log.Info("raft peer reachable again", "peer", string(id), "after_ms", time.Since(start).Milliseconds())
			}
			return nil
		}
	}
	return err
}

// wrapTransport retries AppendEntries on a NetworkTransport (libp2p in
// production); other transports (tests' in-memory ones) are used as given.
func wrapTransport(tr raft.Transport, log *slog.Logger) raft.Transport {
	if nt, ok := tr.(*raft.NetworkTransport); ok {
		return &retryTransport{NetworkTransport: nt, log: log}
	}
	return tr
}
