package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestReplayFromGenesisAndFromSnapshot: a regulator replays its whole log
// while the network keeps committing (the live node keeps applying beside
// the replay), then, once a snapshot has compacted its log, replays from
// the snapshot; both reproduce every outcome. A replay from a snapshot on a
// node that has none is refused with a clear error.
func TestReplayFromGenesisAndFromSnapshot(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1, Tweak: func(cfg *node.Config) {
		cfg.Raft.TrailingLogs = 8
	}})
	c.StartAll()
	leader := c.WaitLeader()
	reg := "regulator-1"
	n := c.Net
	ctx := context.Background()

	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 1_000_000*yuan), n.CentralBank())
	c.MustOK(leader, issue)
	c.MustOK(leader, n.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	ex, exID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "alice", 1_000*yuan), n.Bank("icbc"))
	c.MustOK(leader, ex)
	change := statetest.Out(exID, 1) // icbc.reserve's change
	// 30 more entries: one exchange each, chaining the reserve's change.
	for i := range 30 {
		tx, id := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{change}, "alice", yuan+uint64(i)), n.Bank("icbc"))
		c.MustOK(leader, tx)
		change = statetest.Out(id, 1)
	}
	last := c.MustOK(leader, n.Sign(t, statetest.FreezeBody("alice", "test"), n.Bank("icbc")))
	c.Converge(last.GetLogIndex(), 15*time.Second)

	_, err := auditClient(c, reg).Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{FromSnapshot: true}))
	wantCode(t, err, connect.CodeInvalidArgument, node.CodeInvalidArgument)

	// From genesis, while payments keep committing.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var during int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tx := n.Sign(t, statetest.UpdateBody("alice", 1, fmt.Sprint(100000+i), "", nil), n.Bank("icbc"))
			r, err := c.Client(leader).Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
			if err != nil || r.Msg.GetResult().GetCode() != statepb.Code_CODE_OK {
				t.Errorf("write during the replay: %v %v", r, err)
				return
			}
			during++
		}
	}()
	r := replay(t, c, reg, false)
	close(stop)
	wg.Wait()
	if r.GetFromSnapshot() || r.GetFromIndex() != 0 || r.GetToIndex() < last.GetLogIndex() || r.GetTransactions() != recordedTxs(t, c, reg, r.GetToIndex()) {
		t.Fatalf("replay from genesis: %v", r)
	}
	t.Logf("replay from genesis: %d blocks, %d transactions in %d ms; %d writes committed meanwhile",
		r.GetBlocks(), r.GetTransactions(), r.GetElapsedMs(), during)

	// A snapshot compacts the regulator's log (8 entries kept): the replay
	// starts from the snapshot, whose state hash it checks first.
	if err := c.Node(reg).Consensus().Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, _, err := c.Node(reg).Consensus().LogBounds()
	if err != nil || first <= 1 {
		t.Fatalf("log not compacted after the snapshot: first index %d, %v", first, err)
	}
	final := c.MustOK(leader, n.Sign(t, statetest.UnfreezeBody("alice", "done"), n.Bank("icbc")))
	c.Converge(final.GetLogIndex(), 15*time.Second)
	r = replay(t, c, reg, false)
	if !r.GetFromSnapshot() || r.GetFromIndex() < first-1 || r.GetToIndex() < final.GetLogIndex() || r.GetBlocks() == 0 {
		t.Fatalf("replay after compaction: %v (log starts at %d)", r, first)
	}
	// And on a voter, from its whole log.
	if r := replay(t, c, leader, false); r.GetFromSnapshot() {
		t.Fatalf("leader replayed from a snapshot: %v", r)
	}
}

func replay(t *testing.T, c *nodetest.Cluster, name string, fromSnapshot bool) *nodepb.ReplayResponse {
	t.Helper()
	r, err := auditClient(c, name).Replay(context.Background(), connect.NewRequest(&nodepb.ReplayRequest{FromSnapshot: fromSnapshot}))
	if err != nil {
		t.Fatalf("replay on %s: %v", name, err)
	}
	if !r.Msg.GetReproduced() || r.Msg.GetOutcomeMismatches() != 0 || r.Msg.GetHashMismatches() != 0 || r.Msg.GetBlocks() == 0 {
		t.Fatalf("replay on %s not reproduced: %v", name, r.Msg)
	}
	return r.Msg
}

// TestReplayFromSnapshotAtRaftOnlyEntry: a snapshot taken when the last
// applied log entry is Raft's own (a barrier here; a new leader's no-op or
// a configuration change in the field) has a Raft index at which the ledger
// recorded no state hash. The replay must check the snapshot's hash at the
// ledger index it holds, not fail with "recorded state hash ... not found"
// (found by the chaos campaign, deploy/chaos).
func TestReplayFromSnapshotAtRaftOnlyEntry(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	reg := "regulator-1"
	n := c.Net
	c.MustOK(leader, n.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	last := c.MustOK(leader, n.Register(t, "icbc", "bob", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	c.Converge(last.GetLogIndex(), 15*time.Second)
	lr := c.Node(leader).Consensus().Raft()
	if err := lr.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	barrier := lr.LastIndex()
	rr := c.Node(reg).Consensus().Raft()
	deadline := time.Now().Add(15 * time.Second)
	for rr.AppliedIndex() < barrier {
		if time.Now().After(deadline) {
			t.Fatalf("regulator applied %d, barrier at %d", rr.AppliedIndex(), barrier)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Node(reg).Consensus().Snapshot(); err != nil {
		t.Fatal(err)
	}
	final := c.MustOK(leader, n.Register(t, "icbc", "carol", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	c.Converge(final.GetLogIndex(), 15*time.Second)
	r := replay(t, c, reg, true)
	if !r.GetFromSnapshot() || r.GetFromIndex() < barrier || r.GetToIndex() < final.GetLogIndex() {
		t.Fatalf("replay from the snapshot at %d: %v", barrier, r)
	}
}
