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
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestReplayFromGenesisAndFromSnapshot: a regulator replays its whole
// history while the network keeps committing (the live node keeps applying
// beside the replay); once snapshots have compacted its log, it still
// replays from genesis (its archive, then its log) and, when asked, from
// the snapshot; every outcome is reproduced and each answer names the
// indexes it re-executed and where they came from. A bank that keeps no
// archive cannot replay from genesis once its log is compacted and says so
// (HISTORY_UNAVAILABLE) instead of silently starting from its snapshot; a
// regulator keeps its archive even when its config says otherwise. A
// replay from a snapshot on a node that has none is refused with a clear
// error.
func TestReplayFromGenesisAndFromSnapshot(t *testing.T) {
	const bare = "abc" // a bank with archive.enabled = false
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1, Tweak: func(cfg *node.Config) {
		cfg.Raft.TrailingLogs = 8
		// Segments close (and the log compacts) within the test.
		cfg.Archive.SegmentKB = 4
		// A regulator keeps its archive whatever its config says.
		if cfg.Name == bare || cfg.Name == "regulator-1" {
			off := false
			cfg.Archive.Enabled = &off
		}
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
	checkGenesisReplay(t, c, reg, r, last.GetLogIndex())
	t.Logf("replay from genesis: %d blocks, %d transactions in %d ms; %d writes committed meanwhile",
		r.GetBlocks(), r.GetTransactions(), r.GetElapsedMs(), during)

	// Snapshots compact the logs (8 entries kept; on archive nodes, up to
	// the archive's open segment).
	for _, name := range []string{reg, bare} {
		if err := c.Node(name).Consensus().Snapshot(); err != nil {
			t.Fatal(err)
		}
		if first, _, err := c.Node(name).Consensus().LogBounds(); err != nil || first <= 1 {
			t.Fatalf("%s: log not compacted after the snapshot: first index %d, %v", name, first, err)
		}
	}
	final := c.MustOK(leader, n.Sign(t, statetest.UnfreezeBody("alice", "done"), n.Bank("icbc")))
	c.Converge(final.GetLogIndex(), 15*time.Second)

	// The regulator still replays from genesis: the archive, then its log.
	r = replay(t, c, reg, false)
	checkGenesisReplay(t, c, reg, r, final.GetLogIndex())
	if r.GetArchiveSegments() == 0 || r.GetArchiveFirstIndex() != 1 || r.GetLogLastIndex() != r.GetToIndex() || r.GetLogFirstIndex() != r.GetArchiveLastIndex()+1 {
		t.Fatalf("replay after compaction did not read the archive and then the log: %v", r)
	}
	// And from its snapshot, when asked: it starts at the snapshot's ledger
	// index and re-executes what follows.
	snap, err := c.Node(reg).Consensus().LatestSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	r = replay(t, c, reg, true)
	if !r.GetFromSnapshot() || r.GetFromIndex() != snap.LedgerIndex || r.GetSnapshotRaftIndex() != snap.RaftIndex ||
		r.GetFirstBlockIndex() <= snap.RaftIndex || r.GetToIndex() < final.GetLogIndex() {
		t.Fatalf("replay from the snapshot at ledger index %d (Raft %d): %v", snap.LedgerIndex, snap.RaftIndex, r)
	}
	// The bank without an archive cannot replay from genesis any more.
	_, err = auditClient(c, bare).Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{}))
	wantCode(t, err, connect.CodeFailedPrecondition, node.CodeHistoryUnavailable)
	t.Logf("%s without an archive: %v", bare, err)
	// A voter with its archive (and its whole log) replays from genesis.
	if leader != bare {
		checkGenesisReplay(t, c, leader, replay(t, c, leader, false), final.GetLogIndex())
	}
}

// checkGenesisReplay checks a replay from genesis re-executed every block
// from index 1 to at least atLeast, as many transactions as were recorded.
func checkGenesisReplay(t *testing.T, c *nodetest.Cluster, name string, r *nodepb.ReplayResponse, atLeast uint64) {
	t.Helper()
	if r.GetFromSnapshot() || r.GetFromIndex() != 0 || r.GetFirstBlockIndex() != 1 || r.GetToIndex() < atLeast ||
		r.GetLastBlockIndex() != r.GetToIndex() || r.GetTransactions() != recordedTxs(t, c, name, r.GetToIndex()) ||
		r.GetBlocks() != recordedBlocks(t, c, name, r.GetToIndex()) {
		t.Fatalf("replay from genesis on %s: %v", name, r)
	}
}

// recordedBlocks counts the blocks a node's ledger recorded up to index.
func recordedBlocks(t *testing.T, c *nodetest.Cluster, name string, upTo uint64) uint64 {
	t.Helper()
	var n uint64
	from := uint64(0)
	for {
		bs, err := c.Node(name).Store().Blocks(from, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.GetLogIndex() <= upTo {
				n++
			}
			from = b.GetLogIndex() + 1
		}
		if len(bs) < state.MaxPageSize {
			return n
		}
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
	if !r.GetFromSnapshot() || r.GetSnapshotRaftIndex() < barrier || !r.GetReproduced() || r.GetToIndex() < final.GetLogIndex() {
		t.Fatalf("replay from the snapshot at %d: %v", barrier, r)
	}
}
