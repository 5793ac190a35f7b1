package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statetest"
)

// TestLinearizableReadsKeepNodesReady (issue 16, defect 1): 80
// linearizable reads on an idle network, through every node, append no
// Raft log entry (a read index from leadership confirmation, not a
// barrier), and every node stays ready. Entries the ledger never applies
// (barriers, as an older version committed per read) do not count as lag
// either: with 80 of them in the log every node is still ready, /readyz
// answers 200 and dcep_apply_lag_entries is 0.
func TestLinearizableReadsKeepNodesReady(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	c.MustOK(leader, c.Net.Issue(t, "icbc", 1_000*state.Yuan))
	for _, n := range c.Names {
		c.WaitReady(n, 10*time.Second)
	}
	lastBefore := c.Node(leader).Consensus().Status().LastIndex
	for i := range 80 {
		name := c.Names[i%len(c.Names)]
		resp, err := c.Client(name).GetWallet(context.Background(), connect.NewRequest(&nodepb.GetWalletRequest{
			WalletId: statetest.Reserve("icbc"), Read: &nodepb.ReadOptions{Linearizable: true}}))
		if err != nil {
			t.Fatalf("read %d on %s: %v", i, name, err)
		}
		if got := resp.Msg.GetWallet().GetBalanceFen(); got != 1_000*state.Yuan {
			t.Fatalf("read %d on %s: balance %d", i, name, got)
		}
	}
	if after := c.Node(leader).Consensus().Status().LastIndex; after != lastBefore {
		t.Errorf("80 reads appended %d log entries (last index %d → %d)", after-lastBefore, lastBefore, after)
	}
	checkAllReady(t, c)

	// Entries the ledger does not apply, committed after the last write.
	for range 80 {
		if err := c.Node(leader).Consensus().Raft().Barrier(5 * time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Node(leader).Consensus().Status()
	if st.CommitIndex < st.Applied+80 {
		t.Fatalf("commit %d, applied %d: the barriers did not commit", st.CommitIndex, st.Applied)
	}
	time.Sleep(1500 * time.Millisecond) // a status poll carries the new commit index
	checkAllReady(t, c)
	// Across a restart too: the barriers are in the log a node replays.
	var follower string
	for _, n := range c.Names[:3] {
		if n != leader {
			follower = n
		}
	}
	c.Stop(follower)
	c.Start(follower)
	c.WaitReady(follower, 15*time.Second)
	checkAllReady(t, c)
}

func checkAllReady(t *testing.T, c *nodetest.Cluster) {
	t.Helper()
	for _, n := range c.Names {
		resp, err := http.Get(c.URL(n) + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s /readyz %d: %v", n, resp.StatusCode, body)
		}
		if lag := c.MustMetric(n, "dcep_apply_lag_entries"); lag != 0 {
			t.Errorf("%s dcep_apply_lag_entries %v", n, lag)
		}
	}
}
