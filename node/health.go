package node

import "github.com/dcep/dcep/consensus"

// applyLag is how far this node's ledger is behind what is committed,
// counting only entries the ledger applies (consensus.LedgerTarget): Raft's
// no-ops and barriers are committed but never reach the ledger, so commit −
// applied is no measure of lag. A follower measures against the leader's
// commit index from the status poll (ok false while it has none recent).
func (n *Node) applyLag(st consensus.Status) (lag uint64, ok bool) {
	commit := st.CommitIndex
	if st.LeaderID != "" && st.LeaderID != n.cfg.Name {
		lc, ok := n.members.polledCommit(st.LeaderID, readyPollAge)
		if !ok {
			return 0, false
		}
		commit = max(commit, lc)
	}
	return n.cons.LedgerLag(commit), true
}
