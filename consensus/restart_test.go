package consensus_test

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// TestRestartSkipsSnapshotEndingInBarrier: a barrier (a new leader commits
// one; linearizable reads did before they used leadership confirmation)
// never reaches the ledger, so a snapshot taken right after
// it has a Raft index one above the ledger's applied index. A restart must
// still see that the ledger holds the snapshot and not restore it (it used
// to compare the ledger's index with Raft's, restore the whole snapshot on
// every start and replay the log after it).
func TestRestartSkipsSnapshotEndingInBarrier(t *testing.T) {
	c := newCluster(t, 1, 0)
	c.startAll()
	m := c.leader()
	res := c.submit(c.net.Issue(t, "icbc", 1_000*state.Yuan))
	if res[0].GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("issue: %v", res[0])
	}
	if err := m.node.Raft().Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := m.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	applied := m.store.Meta().GetAppliedIndex()
	snapIndex, err := strconv.ParseUint(m.node.Raft().Stats()["last_snapshot_index"], 10, 64)
	if err != nil || snapIndex <= applied {
		t.Fatalf("snapshot at Raft index %d (%v), ledger at %d: the snapshot does not end in a barrier", snapIndex, err, applied)
	}
	before := inode(t, filepath.Join(c.dir, m.name, "state", "db"))
	hash := m.store.Meta().GetStateHash()

	c.stop(m.name)
	m = c.start(m.name, true)
	if after := inode(t, filepath.Join(c.dir, m.name, "state", "db")); after != before {
		t.Fatalf("the restart restored the snapshot at Raft index %d although the ledger held it (ledger index %d): state/db replaced", snapIndex, applied)
	}
	if got := m.store.Meta(); got.GetAppliedIndex() != applied || string(got.GetStateHash()) != string(hash) {
		t.Fatalf("after restart: applied %d hash %x, want %d %x", got.GetAppliedIndex(), got.GetStateHash(), applied, hash)
	}
	// The node goes on: a new write commits and applies after the restart.
	res = c.submit(c.net.Issue(t, "abc", 1_000*state.Yuan))
	if res[0].GetCode() != statepb.Code_CODE_OK || res[0].GetLogIndex() <= snapIndex {
		t.Fatalf("issue after restart: %v", res[0])
	}
	c.converge(res[0].GetLogIndex())
	w, err := m.store.Wallet("icbc.reserve")
	if err != nil || w.GetBalanceFen() != 1_000*state.Yuan {
		t.Fatalf("icbc reserve after restart: %v %v", w.GetBalanceFen(), err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
