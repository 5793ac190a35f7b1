package node_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statetest"
)

// TestReplayFromSnapshotEndingInBarrier: a barrier (a new leader's; reads
// committed one each before they used leadership confirmation) never
// reaches the ledger, so a snapshot taken right after
// has a Raft index above the ledger's applied index. A replay from that
// snapshot used to look up the state hash recorded at Raft's index, find
// none and fail (INTERNAL, HTTP 500). Now it checks the snapshot at the
// ledger's index inside it and replays what follows; with nothing after
// the snapshot it re-validates nothing and says so (NOTHING_REPLAYED)
// instead of reporting success.
func TestReplayFromSnapshotEndingInBarrier(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1})
	c.StartAll()
	leader := c.WaitLeader()
	n, ctx := c.Net, context.Background()
	c.MustOK(leader, n.Issue(t, "icbc", 1_000*yuan))
	read, err := c.Client(leader).GetWallet(ctx, connect.NewRequest(&nodepb.GetWalletRequest{
		WalletId: statetest.Reserve("icbc"), Read: &nodepb.ReadOptions{Linearizable: true}}))
	if err != nil || read.Msg.GetWallet().GetBalanceFen() != 1_000*yuan {
		t.Fatalf("linearizable read: %v %v", read, err)
	}
	cons := c.Node(leader).Consensus()
	if err := cons.Raft().Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := cons.Snapshot(); err != nil {
		t.Fatal(err)
	}
	applied := c.Node(leader).Store().Meta().GetAppliedIndex()
	snapRaft, err := strconv.ParseUint(cons.Raft().Stats()["last_snapshot_index"], 10, 64)
	if err != nil || snapRaft <= applied {
		t.Fatalf("snapshot at Raft index %d (%v), ledger at %d: it does not end in a barrier", snapRaft, err, applied)
	}

	// Nothing after the snapshot: nothing re-validated, not a success.
	_, err = auditClient(c, leader).Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{FromSnapshot: true}))
	wantCode(t, err, connect.CodeFailedPrecondition, node.CodeNothingReplayed)

	last := c.MustOK(leader, n.Issue(t, "abc", 2_000*yuan))
	r := replay(t, c, leader, true)
	if !r.GetFromSnapshot() || r.GetFromIndex() != applied || r.GetSnapshotRaftIndex() != snapRaft ||
		r.GetToIndex() != last.GetLogIndex() || r.GetFirstBlockIndex() <= snapRaft || r.GetLastBlockIndex() != last.GetLogIndex() ||
		r.GetTransactions() != 1 {
		t.Fatalf("replay from the snapshot (ledger index %d, Raft index %d) to %d: %v", applied, snapRaft, last.GetLogIndex(), r)
	}
	c.AuditAll()
}

// TestReplayOfNothingIsNotASuccess: a replay from a snapshot with no block
// after it re-executes nothing. It used to answer "0 blocks, 0
// transactions … every committed outcome reproduced" (and the CLI exited
// 0); now it is refused with NOTHING_REPLAYED, naming the range.
func TestReplayOfNothingIsNotASuccess(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1})
	c.StartAll()
	leader := c.WaitLeader()
	w := c.MustOK(leader, c.Net.Issue(t, "icbc", 1_000*yuan))
	cons := c.Node(leader).Consensus()
	if err := cons.WaitApplied(context.Background(), w.GetLogIndex()); err != nil {
		t.Fatal(err)
	}
	if err := cons.Snapshot(); err != nil {
		t.Fatal(err)
	}
	r, err := auditClient(c, leader).Replay(context.Background(), connect.NewRequest(&nodepb.ReplayRequest{FromSnapshot: true}))
	if err == nil {
		t.Fatalf("a replay that re-executed nothing reported %v", r.Msg)
	}
	wantCode(t, err, connect.CodeFailedPrecondition, node.CodeNothingReplayed)
	t.Logf("%v", err)
}
