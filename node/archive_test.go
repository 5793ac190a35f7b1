package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus/archive"
	"github.com/dcep/dcep/consensus/consensuspb"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestRegulatorJoinedBySnapshotReplaysFromGenesis: the voters snapshot and
// compact their logs; a regulator started afterwards installs a snapshot
// (it never sees the entries before it through Raft), fetches the archive
// segments it lacks from the voters over /dcep/archive/1, checked against
// the state hashes its snapshot carries, and replays from genesis:
// every block from index 1, every recorded outcome and state hash
// reproduced. A segment with one byte flipped is refused with a clear
// error, set aside and fetched again; a forged segment (valid checksum,
// one entry's transactions removed) is caught by the replay at its index.
func TestRegulatorJoinedBySnapshotReplaysFromGenesis(t *testing.T) {
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
	last := archiveWorkload(t, c, leader)
	c.Converge(last, 15*time.Second)
	for _, v := range voters {
		if err := c.Node(v).Consensus().Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("%s: snapshot: %v", v, err)
		}
		if first, _, err := c.Node(v).Consensus().LogBounds(); err != nil || first <= 1 {
			t.Fatalf("%s: log not compacted: first index %d, %v", v, first, err)
		}
	}

	c.Start(reg)
	c.Converge(last, 30*time.Second)
	assertSnapshotInstall(t, c, reg, 0)
	r := replay(t, c, reg, false)
	checkGenesisReplay(t, c, reg, r, last)
	if r.GetArchiveSegments() == 0 || r.GetArchiveFirstIndex() != 1 {
		t.Fatalf("replay did not read the archive from index 1: %v", r)
	}
	if got := c.MustMetric(reg, "dcep_archive_fetched_segments_total"); got == 0 {
		t.Fatalf("%s fetched no segment from the voters", reg)
	}
	if st := c.Node(reg).Consensus().ArchiveStatus(); st.Missing != 0 || st.Segments == 0 {
		t.Fatalf("%s archive after filling: %+v", reg, st)
	}
	t.Logf("%s joined by snapshot, fetched %v segments, replayed from genesis: %d blocks (indexes %d..%d), %d transactions, %d segments then the log %d..%d",
		reg, c.MustMetric(reg, "dcep_archive_fetched_segments_total"), r.GetBlocks(), r.GetFirstBlockIndex(), r.GetLastBlockIndex(),
		r.GetTransactions(), r.GetArchiveSegments(), r.GetLogFirstIndex(), r.GetLogLastIndex())

	dir := filepath.Join(c.Configs[reg].DataDir, "archive")
	path, orig := firstSegment(t, dir)

	// One byte flipped: refused, naming the file; set aside and fetched
	// again, so the next replay reproduces everything.
	bad := append([]byte(nil), orig...)
	bad[len(bad)/2] ^= 0x01
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := auditClient(c, reg).Replay(context.Background(), connect.NewRequest(&nodepb.ReplayRequest{}))
	wantCode(t, err, connect.CodeDataLoss, node.CodeArchiveCorrupt)
	if !strings.Contains(err.Error(), filepath.Base(path)) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("refusal does not name the file and the reason: %v", err)
	}
	t.Logf("tampered segment: %v", err)
	checkGenesisReplay(t, c, reg, replay(t, c, reg, false), last)

	// Forged: a valid file whose entry lost its transactions.
	path, orig = firstSegment(t, dir)
	forged, at := forgeSegment(t, c, orig)
	if err := os.WriteFile(path, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := auditClient(c, reg).Replay(context.Background(), connect.NewRequest(&nodepb.ReplayRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if f := resp.Msg; f.GetReproduced() || f.GetFirstHashMismatchIndex() != at || f.GetOutcomeMismatches() == 0 {
		t.Fatalf("forged segment (entry %d emptied) not caught: %v", at, f)
	}
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	c.AuditAll()
}

// archiveWorkload commits about 60 entries of several kinds, a recorded
// rejection among them, and returns the last one's index.
func archiveWorkload(t *testing.T, c *nodetest.Cluster, leader string) uint64 {
	n := c.Net
	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 1_000_000*yuan), n.CentralBank())
	c.MustOK(leader, issue)
	reserve := statetest.Out(issueID, 0)
	var idx uint64
	for i := range 20 {
		w := fmt.Sprintf("w%d", i)
		c.MustOK(leader, n.Register(t, "icbc", w, statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
		ex, exID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{reserve}, w, 100*yuan), n.Bank("icbc"))
		c.MustOK(leader, ex)
		reserve = statetest.Out(exID, 1)
		pay := n.Transfer(t, w, []*statepb.Outpoint{statetest.Out(exID, 0)}, statetest.Pay("w0", yuan))
		idx = c.MustOK(leader, pay).GetLogIndex()
	}
	// Spending an output twice: refused, and the refusal is recorded.
	again, _ := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "w1", yuan), n.Bank("icbc"))
	if r := c.Submit(leader, again); r.GetCode() == statepb.Code_CODE_OK {
		t.Fatalf("double spend accepted: %v", r)
	}
	return max(idx, c.MustOK(leader, n.Sign(t, statetest.FreezeBody("w2", "test"), n.Bank("icbc"))).GetLogIndex())
}

// firstSegment returns the archive's lowest segment file and its bytes.
func firstSegment(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return files[0], raw
}

// forgeSegment re-encodes a segment (valid checksum, same range and state
// hash) with the transactions of its first entry that has any removed,
// and returns that entry's index.
func forgeSegment(t *testing.T, c *nodetest.Cluster, file []byte) ([]byte, uint64) {
	t.Helper()
	gh := c.Node(c.Names[0]).Store().GenesisHash()
	seg, err := archive.DecodeFile(file, gh)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range seg.Entries {
		var ent consensuspb.Entry
		if e.Type != raft.LogCommand || proto.Unmarshal(e.Data, &ent) != nil || len(ent.GetTxs()) == 0 {
			continue
		}
		ent.Txs = nil
		if seg.Entries[i].Data, err = proto.Marshal(&ent); err != nil {
			t.Fatal(err)
		}
		out, err := archive.EncodeFile(seg.First, seg.Last, seg.Entries, seg.StateHash, gh)
		if err != nil {
			t.Fatal(err)
		}
		return out, e.Index
	}
	t.Fatal("no entry with transactions in the segment")
	return nil, 0
}
