package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Raft backs off each follower it cannot reach (10 ms doubling to 10 s per
// failed AppendEntries) and never resets the wait when the follower comes
// back: a follower restarted after a few seconds was replicated to only
// when the wait ran out, seconds late (issue 16, defect 6). So the leader's
// AppendEntries to an unreachable follower does not fail at once: it is
// retried here every appendRetryInterval until the follower answers (then
// Raft sees one success, no failure, no backoff), the transport closes,
// appendRetryMax passes, or this node no longer leads the term the request
// was built in. Resending an AppendEntries is safe: the follower checks its
// term and previous entry as for any.
//
// The last condition (issue 14, defect 9): Raft stops a deposed leader's
// replication goroutines only between RPCs, so a request held here would
// otherwise be resent for up to 5 min by a node that stopped leading long
// ago. A peer back from a crash or partition still in that term took it as
// the leader's, named the deposed node its leader, reset its election timer
// and refused other candidates' votes "since we have a leader", while the
// deposed node campaigned. A node that does not lead the request's term
// sends nothing (the first attempt included): Raft's own failure path then
// ends the goroutine.
const (
	appendRetryInterval = 100 * time.Millisecond
	appendRetryMax      = 5 * time.Minute
)

// errNotLeading: this node no longer leads the term of the AppendEntries it
// was asked to send.
var errNotLeading = errors.New("consensus: not leading the request's term any more; AppendEntries dropped")

// leadership is what the transport asks Raft: its state and current term.
type leadership interface {
	State() raft.RaftState
	CurrentTerm() uint64
}

// retryTransport is the NetworkTransport with AppendEntries retried; every
// other method (pre-vote, pipelining, close) is the NetworkTransport's.
type retryTransport struct {
	*raft.NetworkTransport
	log *slog.Logger
	// raft is set once Raft runs (it is built with this transport).
	raft atomic.Pointer[leadership]
}

// leads reports whether this node leads term (true until Raft is set).
func (t *retryTransport) leads(term uint64) bool {
	r := t.raft.Load()
	if r == nil {
		return true
	}
	return (*r).State() == raft.Leader && (*r).CurrentTerm() == term
}

func (t *retryTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if !t.leads(args.Term) {
		return fmt.Errorf("%w (term %d, to %s)", errNotLeading, args.Term, id)
	}
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
		if !t.leads(args.Term) {
			if logged {
				t.log.Info("raft peer still unreachable; no longer leading, retry dropped", "peer", string(id), "term", args.Term, "after_ms", time.Since(start).Milliseconds())
			}
			return fmt.Errorf("%w (term %d, to %s): %w", errNotLeading, args.Term, id, err)
		}
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

// watchLeadership lets a retrying transport see r's state and term.
func watchLeadership(tr raft.Transport, r leadership) {
	if rt, ok := tr.(*retryTransport); ok {
		rt.raft.Store(&r)
	}
}
