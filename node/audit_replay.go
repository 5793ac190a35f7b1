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

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/consensus/archive"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Re-validation (SPEC §6; node/DESIGN.md, "Replay"). The node re-runs
// history through the ledger's full validation (signatures, authority,
// every rule) into a fresh temporary ledger — from genesis (its archive of
// committed entries, holes fetched from peers first, then its own Raft
// log: consensus.History) or, when asked, from its newest snapshot — and
// compares every block's recorded outcomes ("r:" records) and state hash
// ("s:") with what the live ledger recorded at the same index. The answer
// says exactly which indexes were re-executed and where they came from; a
// replay that would re-execute nothing is refused (NOTHING_REPLAYED), and
// one that lacks history says which (HISTORY_UNAVAILABLE), never a
// partial success. The live node is not disturbed: the log is read through
// bolt read transactions beside Raft's writer, the live ledger only
// through queries, and the temporary ledger is a directory of its own,
// deleted afterwards.

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

	r := &replayer{n: n, tmp: tmp, out: out}
	from := uint64(1)
	if fromSnapshot {
		if from, err = r.fromSnapshot(target); err != nil {
			return nil, err
		}
	} else {
		if err := r.fillArchive(ctx); err != nil {
			return nil, err
		}
		if err := tmp.InitGenesis(n.genesis); err != nil {
			return nil, apiError(CodeInternal, "replay genesis: %v", err)
		}
	}
	n.log.Info("replay started", "from_index", out.GetFromIndex(), "to_index", target, "from_snapshot", fromSnapshot)
	if err := r.run(ctx, from, target); err != nil {
		return nil, err
	}
	if out.GetBlocks() == 0 {
		return nil, apiError(CodeNothingReplayed, "node %s re-executed no block: there is none after index %d up to its applied index %d, so nothing was re-validated",
			n.cfg.Name, out.GetFromIndex(), target)
	}
	if err := r.finish(target); err != nil {
		return nil, err
	}
	out.ElapsedMs = time.Since(start).Milliseconds()
	level := slog.LevelInfo
	if !out.GetReproduced() {
		level = slog.LevelError
	}
	n.log.Log(ctx, level, "replay finished", "reproduced", out.GetReproduced(), "from_index", out.GetFromIndex(), "to_index", target,
		"first_block", out.GetFirstBlockIndex(), "last_block", out.GetLastBlockIndex(), "blocks", out.GetBlocks(), "transactions", out.GetTransactions(),
		"archive_segments", out.GetArchiveSegments(), "fetched_segments", out.GetFetchedSegments(), "outcome_mismatches", out.GetOutcomeMismatches(),
		"hash_mismatches", out.GetHashMismatches(), "first_hash_mismatch_index", out.GetFirstHashMismatchIndex(), "elapsed", time.Since(start))
	return out, nil
}

type replayer struct {
	n   *Node
	tmp *state.Store
	out *nodepb.ReplayResponse
}

// fillArchive fetches what the archive lacks from peers before a replay
// from genesis: a regulator that joined by snapshot has nothing before it.
func (r *replayer) fillArchive(ctx context.Context) error {
	if !r.n.cons.ArchiveStatus().Enabled {
		return nil // History says what the log lacks, if anything
	}
	fetched, err := r.n.archive.fillHoles(ctx)
	r.out.FetchedSegments = uint64(fetched)
	if err != nil {
		return apiError(CodeHistoryUnavailable, "node %s cannot replay from genesis: its archive lacks history no member served: %v", r.n.cfg.Name, err)
	}
	return nil
}

// fromSnapshot restores the newest Raft snapshot into the temporary ledger
// and checks its state hash against the one the live ledger recorded at
// the snapshot's ledger index (not Raft's: its last entries may be
// barriers or no-ops, which the ledger never sees). It returns the first
// Raft index after the snapshot.
func (r *replayer) fromSnapshot(target uint64) (uint64, error) {
	info, rc, err := r.n.cons.OpenLatestSnapshot()
	if errors.Is(err, consensus.ErrNoSnapshot) {
		return 0, apiError(CodeInvalidArgument, "from_snapshot: node %s has taken no snapshot yet; replay from genesis instead", r.n.cfg.Name)
	}
	if err != nil {
		return 0, apiError(CodeInternal, "%v", err)
	}
	defer rc.Close()
	if info.LedgerIndex > target {
		return 0, apiError(CodeUnavailable, "the newest snapshot (ledger index %d) is newer than what the ledger had applied when the replay began (%d); retry", info.LedgerIndex, target)
	}
	if err := r.tmp.Restore(rc); err != nil {
		return 0, apiError(CodeInternal, "restore snapshot %s: %v", info.ID, err)
	}
	if got := r.tmp.Meta().GetAppliedIndex(); got != info.LedgerIndex {
		return 0, apiError(CodeInternal, "snapshot %s restored at index %d, its header says %d", info.ID, got, info.LedgerIndex)
	}
	r.out.FromIndex, r.out.FromSnapshot, r.out.SnapshotRaftIndex = info.LedgerIndex, true, info.RaftIndex
	recorded, err := r.recordedHash(info.LedgerIndex)
	if err != nil {
		return 0, err
	}
	if got := r.tmp.Meta().GetStateHash(); !bytes.Equal(got, recorded) {
		r.hashMismatch(info.LedgerIndex, recorded, got)
	}
	return info.RaftIndex + 1, nil
}

// recordedHash is the live ledger's state hash at index i (genesis's at 0).
func (r *replayer) recordedHash(i uint64) ([]byte, error) {
	if i == 0 {
		h := r.n.store.GenesisHash()
		return h[:], nil
	}
	h, err := r.n.store.StateHashAt(i)
	if err != nil {
		return nil, apiError(CodeInternal, "recorded state hash at %d: %v", i, err)
	}
	return h, nil
}

// run replays indexes from..to in batches, from wherever the node has
// them (consensus.History).
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
	st, err := r.n.cons.History(ctx, from, to, func(b state.Block) error {
		blocks = append(blocks, b)
		txs += len(b.Txs)
		if txs >= replayBatchTxs || len(blocks) >= replayBatchBlocks {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	r.out.ArchiveSegments, r.out.ArchiveFirstIndex, r.out.ArchiveLastIndex = uint64(st.Segments), st.ArchiveFirst, st.ArchiveLast
	r.out.LogFirstIndex, r.out.LogLastIndex = st.LogFirst, st.LogLast
	return r.historyError(err)
}

// historyError names a failure to read history for the caller.
func (r *replayer) historyError(err error) error {
	var ce *connect.Error
	var gap *consensus.GapError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &gap):
		return apiError(CodeHistoryUnavailable, "node %s cannot replay up to index %d: %v; replay from_snapshot, or on a regulator (its archive holds all history)", r.n.cfg.Name, r.out.GetToIndex(), gap)
	case errors.Is(err, archive.ErrCorrupt):
		return apiError(CodeArchiveCorrupt, "%v (set aside as .corrupt; the node fetches the range again from peers: replay again)", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apiError(CodeTimeout, "replay cancelled: %v", err)
	}
	return apiError(CodeInternal, "replay: %v", err)
}

// finish compares the final state hash with the record at target.
func (r *replayer) finish(target uint64) error {
	out := r.out
	out.ReplayedStateHash = r.tmp.Meta().GetStateHash()
	recorded, err := r.recordedHash(target)
	if err != nil {
		return err
	}
	out.RecordedStateHash = recorded
	out.Reproduced = out.GetOutcomeMismatches() == 0 && out.GetHashMismatches() == 0 &&
		bytes.Equal(out.GetRecordedStateHash(), out.GetReplayedStateHash())
	return nil
}

// compare checks one replayed block against the live ledger's records.
func (r *replayer) compare(b state.Block, results []*statepb.TxResult) error {
	out := r.out
	out.Blocks++
	out.Transactions += uint64(len(b.Txs))
	if out.FirstBlockIndex == 0 {
		out.FirstBlockIndex = b.Index
	}
	out.LastBlockIndex = b.Index
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
