package consensus

import (
	"context"
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// Linearizable reads without log entries (Raft dissertation §6.4): the
// leader takes its commit index as the read index, confirms it still leads
// by a round of heartbeats to a quorum (raft.VerifyLeader, which appends
// nothing), and the reader waits until its ledger holds what that index
// commits. A read used to commit a barrier instead: each was a log entry
// the ledger never applies, so on an idle network the commit index ran
// ahead of the ledger by one entry per read and health read that as lag
// (issue 16, defect 1).
//
// "What that index commits" is counted in ledger terms: of Raft's entries
// only commands and configuration changes reach the ledger (fsm.ApplyBatch);
// no-ops and barriers never do. LedgerTarget maps a Raft index to the last
// entry at or below it the ledger applies.

// readIndexer shares one leadership confirmation among concurrent
// read-index requests. A request only joins a confirmation that starts
// after it arrived, with a commit index read after it arrived, which is
// what makes the read linearizable.
type readIndexer struct {
	n       *Node
	mu      sync.Mutex
	waiting []chan readResult
	running bool
}

type readResult struct {
	index uint64
	err   error
}

func newReadIndexer(n *Node) *readIndexer { return &readIndexer{n: n} }

func (r *readIndexer) readIndex(ctx context.Context) (uint64, error) {
	if !r.n.ready.Load() {
		// Not leader, or leader that has not committed an entry of its own
		// term yet (becomeReady): its commit index may be stale.
		return 0, ErrNotLeader
	}
	ch := make(chan readResult, 1)
	r.mu.Lock()
	r.waiting = append(r.waiting, ch)
	if !r.running {
		r.running = true
		go r.loop()
	}
	r.mu.Unlock()
	select {
	case res := <-ch:
		return res.index, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (r *readIndexer) loop() {
	for {
		r.mu.Lock()
		batch := r.waiting
		r.waiting = nil
		if len(batch) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		res := readResult{}
		commit := r.n.raft.CommitIndex()
		if err := r.n.await(r.n.raft.VerifyLeader()); err != nil {
			res.err = mapApplyError(err)
		} else if !r.n.ready.Load() {
			res.err = ErrNotLeader
		} else {
			res.index = r.n.LedgerTarget(commit)
		}
		for _, ch := range batch {
			ch <- res
		}
	}
}

// ledgerTargets caches LedgerTarget's scan of the log: committed entries
// never change, so the answer for the highest committed index asked is
// kept and a later ask scans only the entries after it.
type ledgerTargets struct {
	mu      sync.Mutex
	upTo    uint64 // entries 1..upTo scanned (all committed)
	lastFSM uint64 // the last of them the ledger applies
}

// maxTargetScan bounds one scan back through the log; beyond it the
// answer is the index asked (conservative: the reader waits for more).
const maxTargetScan = 4096

// LedgerTarget returns the last log index at or below i whose entry the
// ledger applies (a command or a configuration change): the ledger is
// current through Raft index i once its applied index reaches it. An entry
// this node's log does not hold yet counts as one the ledger must apply
// (the node is behind); one compacted away is in a snapshot the ledger
// holds.
func (n *Node) LedgerTarget(i uint64) uint64 {
	applied := n.AppliedIndex()
	if i <= applied {
		return i
	}
	commit := n.raft.CommitIndex()
	t := &n.targets
	t.mu.Lock()
	defer t.mu.Unlock()
	floor := applied
	cached := uint64(0)
	if t.upTo <= i && t.upTo > floor {
		floor, cached = t.upTo, t.lastFSM
	}
	for j, scanned := i, 0; j > floor; j, scanned = j-1, scanned+1 {
		if scanned == maxTargetScan {
			return i
		}
		var l raft.Log
		if err := n.store.GetLog(j, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) && j < n.firstLogIndex() {
				return max(applied, cached) // compacted: applied through a snapshot
			}
			return i // not in this node's log yet (or unreadable): wait for it
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			if i <= commit && i > t.upTo {
				t.upTo, t.lastFSM = i, j
			}
			return j
		}
	}
	if i <= commit && i > t.upTo {
		t.upTo, t.lastFSM = i, max(cached, applied)
	}
	return max(cached, applied)
}

func (n *Node) firstLogIndex() uint64 {
	first, err := n.store.FirstIndex()
	if err != nil {
		return 0
	}
	return first
}

// LedgerLag is how many log indexes the ledger is behind Raft index i,
// counting only what the ledger must apply: 0 when every command and
// configuration entry up to i is in the ledger, however many no-ops and
// barriers follow.
func (n *Node) LedgerLag(i uint64) uint64 {
	t, a := n.LedgerTarget(i), n.AppliedIndex()
	if t <= a {
		return 0
	}
	return t - a
}
