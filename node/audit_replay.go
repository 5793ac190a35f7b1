package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Re-validation (SPEC §6; node/DESIGN.md, "Replay"). The node re-runs its
// Raft log through the ledger's full validation (signatures, authority,
// every rule) into a fresh temporary ledger, from genesis when the log
// reaches back to index 1, else from its newest snapshot, and compares
// every block's recorded outcomes ("r:" records) and state hash ("s:") with
// what the live ledger recorded at the same index. The live node is not
// disturbed: the log is read through bolt read transactions beside Raft's
// writer, the live ledger only through queries, and the temporary ledger is
// a directory of its own, deleted afterwards.

// replayBatchTxs and replayBatchBlocks bound one Apply of the replay.
const (
	replayBatchTxs    = 4000
	replayBatchBlocks = 256
	// replayMaxMismatches bounds the mismatches listed (all are counted).
	replayMaxMismatches = 100
)

func (n *Node) replay(ctx context.Context, fromSnapshot bool) (*nodepb.ReplayResponse, error) {
	if !n.audit.replayMu.TryLock() {
		return nil, apiError(CodeOverloaded, "a replay is already running on node %s; wait for it", n.cfg.Name)
	}
	defer n.audit.replayMu.Unlock()
	start := time.Now()
	target := n.store.Meta().GetAppliedIndex()
	out := &nodepb.ReplayResponse{Node: n.cfg.Name, ToIndex: target}
	first, _, err := n.cons.LogBounds()
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	dir := filepath.Join(n.cfg.Path(n.cfg.DataDir), "replay")
	if err := os.RemoveAll(dir); err != nil {
		return nil, apiError(CodeInternal, "clear %s: %v", dir, err)
	}
	defer os.RemoveAll(dir)
	tmp, err := state.Open(dir, state.Options{
		Logger: slog.New(slog.DiscardHandler), NoSync: true, CacheBytes: 16 << 20,
		// One verifier: the replay must not take the live node's cores.
		VerifyWorkers: 1,
	})
	if err != nil {
		return nil, apiError(CodeInternal, "open replay ledger: %v", err)
	}
	defer tmp.Close()

	n.log.Info("replay started", "to_index", target, "log_first_index", first, "from_snapshot", fromSnapshot)
	r := &replayer{n: n, tmp: tmp, out: out}
	if fromSnapshot || first > 1 {
		if err := r.fromSnapshot(first, target); err != nil {
			return nil, err
		}
	} else if err := tmp.InitGenesis(n.genesis); err != nil {
		return nil, apiError(CodeInternal, "replay genesis: %v", err)
	}
	if err := r.run(ctx, out.GetFromIndex()+1, target); err != nil {
		return nil, err
	}
	out.ReplayedStateHash = tmp.Meta().GetStateHash()
	if target > 0 {
		if out.RecordedStateHash, err = n.store.StateHashAt(target); err != nil {
			return nil, apiError(CodeInternal, "recorded state hash at %d: %v", target, err)
		}
	} else {
		h := n.store.GenesisHash()
		out.RecordedStateHash = h[:]
	}
	out.Reproduced = out.GetOutcomeMismatches() == 0 && out.GetHashMismatches() == 0 &&
		bytes.Equal(out.GetRecordedStateHash(), out.GetReplayedStateHash())
	out.ElapsedMs = time.Since(start).Milliseconds()
	level := slog.LevelInfo
	if !out.GetReproduced() {
		level = slog.LevelError
	}
	n.log.Log(ctx, level, "replay finished", "reproduced", out.GetReproduced(), "from_index", out.GetFromIndex(), "to_index", target,
		"blocks", out.GetBlocks(), "transactions", out.GetTransactions(), "outcome_mismatches", out.GetOutcomeMismatches(),
		"hash_mismatches", out.GetHashMismatches(), "first_hash_mismatch_index", out.GetFirstHashMismatchIndex(), "elapsed", time.Since(start))
	return out, nil
}

type replayer struct {
	n   *Node
	tmp *state.Store
	out *nodepb.ReplayResponse
}

// fromSnapshot restores the newest Raft snapshot into the temporary ledger
// and checks its state hash against the one the live ledger recorded at
// that index.
func (r *replayer) fromSnapshot(first, target uint64) error {
	index, rc, err := r.n.cons.OpenLatestSnapshot()
	if errors.Is(err, consensus.ErrNoSnapshot) {
		if first > 1 {
			return apiError(CodeInternal, "the log starts at index %d and there is no snapshot to start from", first)
		}
		return apiError(CodeInvalidArgument, "from_snapshot: node %s has taken no snapshot yet; replay from genesis instead", r.n.cfg.Name)
	}
	if err != nil {
		return apiError(CodeInternal, "%v", err)
	}
	defer rc.Close()
	if index+1 < first {
		return apiError(CodeInternal, "the newest snapshot is at index %d but the log starts at %d: entries in between are gone", index, first)
	}
	if err := r.tmp.Restore(rc); err != nil {
		return apiError(CodeInternal, "restore snapshot %d: %v", index, err)
	}
	// The snapshot's Raft index may be one of Raft's own entries (a new
	// leader's no-op, a barrier, a configuration), which never reach the
	// ledger: its hash is recorded at the ledger index the snapshot holds.
	held := r.tmp.Meta().GetAppliedIndex()
	if held > target {
		return apiError(CodeUnavailable, "the newest snapshot (ledger index %d) is newer than what the ledger had applied when the replay began (%d); retry", held, target)
	}
	r.out.FromIndex, r.out.FromSnapshot = index, true
	recorded, err := r.n.store.StateHashAt(held)
	if err != nil {
		return apiError(CodeInternal, "recorded state hash at ledger index %d (snapshot index %d): %v", held, index, err)
	}
	if got := r.tmp.Meta().GetStateHash(); !bytes.Equal(got, recorded) {
		r.hashMismatch(held, recorded, got)
	}
	return nil
}

// run replays indexes from..to in batches.
func (r *replayer) run(ctx context.Context, from, to uint64) error {
	var blocks []state.Block
	txs := 0
	flush := func() error {
		if len(blocks) == 0 {
			return nil
		}
		applied, err := r.tmp.Apply(blocks)
		if err != nil {
			// The live ledger applied these; the replay cannot: report it
			// as the failure it is, not as a node error.
			return apiError(CodeInternal, "replay of indexes %d..%d failed: %v", blocks[0].Index, blocks[len(blocks)-1].Index, err)
		}
		for i, b := range blocks {
			if err := r.compare(b, applied.Results[i]); err != nil {
				return err
			}
		}
		blocks, txs = blocks[:0], 0
		return nil
	}
	for i := from; i <= to; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return apiError(CodeTimeout, "replay cancelled at index %d: %v", i, err)
			}
		}
		var l raft.Log
		if err := r.n.cons.ReadLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return apiError(CodeUnavailable, "log entry %d is gone (compacted after a snapshot while the replay ran); retry", i)
			}
			return apiError(CodeInternal, "read log entry %d: %v", i, err)
		}
		b, ok := consensus.LogBlock(&l)
		if !ok {
			continue
		}
		blocks = append(blocks, b)
		txs += len(b.Txs)
		if txs >= replayBatchTxs || len(blocks) >= replayBatchBlocks {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// compare checks one replayed block against the live ledger's records.
func (r *replayer) compare(b state.Block, results []*statepb.TxResult) error {
	out := r.out
	out.Blocks++
	out.Transactions += uint64(len(b.Txs))
	recorded, err := r.n.store.BlockAt(b.Index)
	switch {
	case errors.Is(err, state.ErrNotFound):
		r.mismatch(&nodepb.ReplayMismatch{LogIndex: b.Index, What: "block", Recorded: "no block recorded", Replayed: fmt.Sprintf("%d results", len(results))})
	case err != nil:
		return apiError(CodeInternal, "recorded block %d: %v", b.Index, err)
	default:
		replayed, err := r.tmp.BlockAt(b.Index)
		if err != nil {
			return apiError(CodeInternal, "replayed block %d: %v", b.Index, err)
		}
		if !proto.Equal(recorded, replayed) {
			r.diffBlock(recorded, replayed)
		}
	}
	want, err := r.n.store.StateHashAt(b.Index)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return apiError(CodeInternal, "recorded state hash at %d: %v", b.Index, err)
	}
	got, err := r.tmp.StateHashAt(b.Index)
	if err != nil {
		return apiError(CodeInternal, "replayed state hash at %d: %v", b.Index, err)
	}
	if !bytes.Equal(want, got) {
		r.hashMismatch(b.Index, want, got)
	}
	return nil
}

// diffBlock records how a replayed block's outcomes differ from the
// recorded ones, transaction by transaction.
func (r *replayer) diffBlock(recorded, replayed *statepb.BlockRecord) {
	rs, ps := recorded.GetResults(), replayed.GetResults()
	if recorded.GetTimeMs() != replayed.GetTimeMs() || len(rs) != len(ps) {
		r.mismatch(&nodepb.ReplayMismatch{
			LogIndex: recorded.GetLogIndex(), What: "block",
			Recorded: fmt.Sprintf("time %d, %d results", recorded.GetTimeMs(), len(rs)),
			Replayed: fmt.Sprintf("time %d, %d results", replayed.GetTimeMs(), len(ps)),
		})
	}
	for i := range min(len(rs), len(ps)) {
		if !proto.Equal(rs[i], ps[i]) {
			r.mismatch(&nodepb.ReplayMismatch{
				LogIndex: recorded.GetLogIndex(), TxId: ps[i].GetTxId(), What: "outcome",
				Recorded: describeResult(rs[i]), Replayed: describeResult(ps[i]),
			})
		}
	}
}

func describeResult(r *statepb.TxResult) string {
	s := r.GetCode().Short()
	if r.GetMessage() != "" {
		s += ": " + r.GetMessage()
	}
	if r.GetDuplicate() {
		s += " (duplicate)"
	}
	return s
}

func (r *replayer) mismatch(m *nodepb.ReplayMismatch) {
	r.out.OutcomeMismatches++
	if len(r.out.Mismatches) < replayMaxMismatches {
		r.out.Mismatches = append(r.out.Mismatches, m)
	}
}

func (r *replayer) hashMismatch(index uint64, recorded, replayed []byte) {
	r.out.HashMismatches++
	if r.out.FirstHashMismatchIndex == 0 {
		r.out.FirstHashMismatchIndex = index
		if len(r.out.Mismatches) < replayMaxMismatches {
			r.out.Mismatches = append(r.out.Mismatches, &nodepb.ReplayMismatch{
				LogIndex: index, What: "state hash", Recorded: fmt.Sprintf("%x", recorded), Replayed: fmt.Sprintf("%x", replayed),
			})
		}
	}
}
