package node_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestArchiveSurvivesKill: a regulator running as its own process is
// killed (SIGKILL) while payments commit, with entries in its archive's
// open segment. While it is down the voters go on, snapshot and compact
// their logs past where it stopped, so on restart it installs a snapshot:
// the entries between its archive's end and the snapshot reach it neither
// through its own log nor through Raft. Its archive fetches them from the
// voters (a hole, never a silent gap), and a replay from genesis
// re-executes every block from index 1 and reproduces every hash.
func TestArchiveSurvivesKill(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1, Tweak: func(cfg *node.Config) {
		cfg.Raft.SnapshotThreshold = 16
		cfg.Raft.TrailingLogs = 8
		cfg.Raft.SnapshotIntervalS = 1
		cfg.Archive.SegmentKB = 4
	}})
	voters, reg := c.Names[:3], c.Names[3]
	for _, v := range voters {
		c.Start(v)
	}
	leader := c.WaitLeader()
	c.StartProcess(reg)
	n := c.Net
	// Two chains of exchanges from two issues: one written while the
	// regulator dies.
	chain := func(bank string) *statepb.Outpoint {
		issue, id := n.SignID(t, statetest.IssueBody(bank, 1_000_000*yuan), n.CentralBank())
		c.MustOK(leader, issue)
		return statetest.Out(id, 0)
	}
	icbc, abc := chain("icbc"), chain("abc")
	// sign signs registrations and exchanges chaining a bank's reserve
	// (statetest.Net is not safe for concurrent use: sign first, submit
	// from any goroutine).
	sign := func(bank string, reserve **statepb.Outpoint, from, to int) [][]byte {
		var txs [][]byte
		for i := from; i < to; i++ {
			w := fmt.Sprintf("%s-w%d", bank, i)
			ex, exID := n.SignID(t, statetest.ExchangeBody(bank, []*statepb.Outpoint{*reserve}, w, 10*yuan), n.Bank(bank))
			txs = append(txs, n.Register(t, bank, w, statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""), ex)
			*reserve = statetest.Out(exID, 1)
		}
		return txs
	}
	submit := func(txs [][]byte) (uint64, error) {
		var idx uint64
		for _, tx := range txs {
			r, err := c.Client(leader).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
			if err != nil || r.Msg.GetResult().GetCode() != statepb.Code_CODE_OK {
				return 0, fmt.Errorf("submit: %v %v", r, err)
			}
			idx = r.Msg.GetResult().GetLogIndex()
		}
		return idx, nil
	}
	killedAt, err := submit(sign("icbc", &icbc, 0, 25))
	if err != nil {
		t.Fatal(err)
	}
	waitAPIApplied(t, c, reg, killedAt, 15*time.Second)
	type result struct {
		idx uint64
		err error
	}
	during := make(chan result)
	duringTxs, afterTxs := sign("abc", &abc, 0, 15), sign("icbc", &icbc, 25, 50)
	go func() {
		idx, err := submit(duringTxs)
		during <- result{idx, err}
	}()
	time.Sleep(20 * time.Millisecond)
	c.Kill(reg)
	last, err := submit(afterTxs)
	if err != nil {
		t.Fatal(err)
	}
	d := <-during
	if d.err != nil {
		t.Fatal(d.err)
	}
	last = max(last, d.idx)
	for _, v := range voters {
		if err := c.Node(v).Consensus().Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("%s: snapshot: %v", v, err)
		}
	}
	if first, _, err := c.Node(leader).Consensus().LogBounds(); err != nil || first <= killedAt {
		t.Fatalf("leader's log from %d (%v): not compacted past where %s stopped (%d)", first, err, reg, killedAt)
	}

	c.Start(reg)
	c.Converge(last, 30*time.Second)
	r := replay(t, c, reg, false)
	checkGenesisReplay(t, c, reg, r, last)
	if st := c.Node(reg).Consensus().ArchiveStatus(); st.Missing != 0 {
		t.Fatalf("%s archive has holes after the replay: %+v", reg, st)
	}
	if got := c.MustMetric(reg, "dcep_archive_fetched_segments_total"); got == 0 {
		t.Fatalf("%s fetched nothing: it did not restart by snapshot, the test proves less than it says", reg)
	}
	t.Logf("%s killed at ≥ index %d, restarted by snapshot; fetched %v segments; replayed %d blocks from index %d to %d (%d segments, then the log %d..%d)",
		reg, killedAt, c.MustMetric(reg, "dcep_archive_fetched_segments_total"), r.GetBlocks(), r.GetFirstBlockIndex(), r.GetLastBlockIndex(),
		r.GetArchiveSegments(), r.GetLogFirstIndex(), r.GetLogLastIndex())

	// A second restart, clean this time: nothing restored, nothing missing,
	// the replay still complete.
	c.Stop(reg)
	c.Start(reg)
	final := c.MustOK(leader, n.Sign(t, statetest.FreezeBody("icbc-w1", "test"), n.Bank("icbc")))
	c.Converge(final.GetLogIndex(), 30*time.Second)
	checkGenesisReplay(t, c, reg, replay(t, c, reg, false), final.GetLogIndex())
	c.AuditAll()
}
