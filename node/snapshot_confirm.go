package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dcep/dcep/state/statepb"
)

// How long a node waits for a quorum of voters to confirm the state hash of
// a snapshot it was sent, and how often it asks again meanwhile (voters
// that have not applied that index yet answer "not found").
var (
	confirmSnapshotTimeout = 30 * time.Second
	confirmSnapshotRetry   = 500 * time.Millisecond
)

// errNotConfirmed: fewer than a majority of the voters reported the
// snapshot's state hash for its index within confirmSnapshotTimeout.
var errNotConfirmed = errors.New("not confirmed by a majority of the voters")

// confirmSnapshot is consensus.Config.ConfirmSnapshot: before a snapshot
// sent by the leader replaces this node's ledger, a majority of the voters
// (the leader among them) must report stateHash as their state hash after
// index. The snapshot has verified in itself already (content hash, state
// hash, supply audit: state.Restore); this refutes a snapshot forged
// consistently in itself, which one voter — the sender — can make but a
// quorum cannot. A voter reporting another hash is logged and not counted.
func (n *Node) confirmSnapshot(index uint64, stateHash []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), confirmSnapshotTimeout)
	defer cancel()
	for {
		agree, voters, disagree := n.askVoters(ctx, index, stateHash)
		if agree > voters/2 {
			n.metrics.snapshotChecks.WithLabelValues("confirmed").Inc()
			n.log.Info("snapshot state hash confirmed", "index", index, "agree", agree, "voters", voters)
			return nil
		}
		if len(disagree) > 0 {
			n.log.Error("SNAPSHOT REFUSED: voters report another state hash at its index", "index", index,
				"snapshot_hash", fmt.Sprintf("%x", stateHash), "disagree", disagree)
		}
		select {
		case <-ctx.Done():
			n.metrics.snapshotChecks.WithLabelValues("refused").Inc()
			return fmt.Errorf("%w: %d of %d voters agree at index %d (%d report another hash: %v)", errNotConfirmed, agree, voters, index, len(disagree), disagree)
		case <-n.stop:
			return fmt.Errorf("%w: node stopping", errNotConfirmed)
		case <-time.After(confirmSnapshotRetry):
		}
	}
}

// askVoters asks every other voter for its state hash at index: how many
// report want, how many voters there are, and the names of those that
// report another hash.
func (n *Node) askVoters(ctx context.Context, index uint64, want []byte) (agree, voters int, disagree []string) {
	for _, m := range n.members.all() {
		if m.GetRole() != statepb.NodeRole_NODE_ROLE_VOTER {
			continue
		}
		voters++
		if m.GetName() == n.cfg.Name {
			continue // it is restoring: it has no hash at that index
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		h, err := n.askStateHash(actx, m, index)
		cancel()
		switch {
		case err != nil:
		case bytes.Equal(h, want):
			agree++
		default:
			disagree = append(disagree, m.GetName())
		}
	}
	return agree, voters, disagree
}
