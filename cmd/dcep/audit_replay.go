package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodepb"
)

type replayJSON struct {
	Node                   string         `json:"node"`
	Reproduced             bool           `json:"reproduced"`
	FromSnapshot           bool           `json:"from_snapshot"`
	FromIndex              uint64         `json:"from_index"`
	SnapshotRaftIndex      uint64         `json:"snapshot_raft_index,omitempty"`
	ToIndex                uint64         `json:"to_index"`
	FirstBlockIndex        uint64         `json:"first_block_index"`
	LastBlockIndex         uint64         `json:"last_block_index"`
	Blocks                 uint64         `json:"blocks"`
	Transactions           uint64         `json:"transactions"`
	ArchiveSegments        uint64         `json:"archive_segments"`
	ArchiveFirstIndex      uint64         `json:"archive_first_index"`
	ArchiveLastIndex       uint64         `json:"archive_last_index"`
	LogFirstIndex          uint64         `json:"log_first_index"`
	LogLastIndex           uint64         `json:"log_last_index"`
	FetchedSegments        uint64         `json:"fetched_segments"`
	OutcomeMismatches      uint64         `json:"outcome_mismatches"`
	HashMismatches         uint64         `json:"hash_mismatches"`
	FirstHashMismatchIndex uint64         `json:"first_hash_mismatch_index,omitempty"`
	RecordedStateHash      string         `json:"recorded_state_hash"`
	ReplayedStateHash      string         `json:"replayed_state_hash"`
	ElapsedMs              int64          `json:"elapsed_ms"`
	Mismatches             []mismatchJSON `json:"mismatches"`
}

type mismatchJSON struct {
	LogIndex uint64 `json:"log_index"`
	TxID     string `json:"tx_id,omitempty"`
	What     string `json:"what"`
	Recorded string `json:"recorded"`
	Replayed string `json:"replayed"`
}

func (a *app) auditReplayCmd() *cobra.Command {
	var fromSnapshot bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-validate history from genesis and check every outcome is reproduced",
		Long: `audit replay has the regulator node re-run history through the ledger's
full validation (signatures, authority, every rule) into a fresh temporary
ledger: from genesis, reading its archive of committed entries (fetching
any part it lacks from other members first) and then its Raft log; with
--from-snapshot, from its newest snapshot instead. Every block's outcomes
and state hash must equal what the node recorded when it applied them, and
the final state hash the recorded one. The answer names exactly the
indexes re-executed and where they came from. The live node keeps running
undisturbed.

Exit status 4 if anything differs or an archive segment is corrupt; 5 if
nothing could be re-validated (NOTHING_REPLAYED: no block after the
snapshot; HISTORY_UNAVAILABLE: the node lacks the history, e.g. a bank
without an archive whose log was compacted).`,
		Example: `  dcep audit replay
  dcep --json audit replay --from-snapshot`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			if timeout > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			r, err := cl.Replay(ctx, fromSnapshot)
			if err != nil {
				return replayError(err)
			}
			out := newReplayJSON(r)
			if err := a.emit(out, func(w io.Writer) { writeReplay(w, out, role, note) }); err != nil {
				return err
			}
			if !out.Reproduced {
				return fail(exitAudit, codeNotReproduced, "the replay on %s did not reproduce the recorded ledger", out.Node)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&fromSnapshot, "from-snapshot", false, "start from the node's newest snapshot instead of genesis")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long")
	return cmd
}

// replayError gives a replay that could not check anything its own exit
// status: it is neither a pass nor evidence of tampering.
func replayError(err error) error {
	var api *client.APIError
	if !errors.As(err, &api) {
		return err
	}
	switch api.Code {
	case codeNothingReplayed, codeHistoryUnavailable:
		return (&cliError{Code: api.Code, Msg: fmt.Sprintf("%s (node %s)", api.Message, api.Node), Exit: exitInconclusive, Err: err}).
			hint("nothing was re-validated: this is not a passed audit")
	case codeArchiveCorrupt:
		return (&cliError{Code: api.Code, Msg: fmt.Sprintf("%s (node %s)", api.Message, api.Node), Exit: exitAudit, Err: err}).
			hint("a segment of the node's archive was altered or damaged; the node fetches it again from other members")
	}
	return err
}

func newReplayJSON(r *nodepb.ReplayResponse) replayJSON {
	out := replayJSON{
		Node: r.GetNode(), Reproduced: r.GetReproduced(), FromSnapshot: r.GetFromSnapshot(), FromIndex: r.GetFromIndex(),
		SnapshotRaftIndex: r.GetSnapshotRaftIndex(), ToIndex: r.GetToIndex(), FirstBlockIndex: r.GetFirstBlockIndex(), LastBlockIndex: r.GetLastBlockIndex(),
		Blocks: r.GetBlocks(), Transactions: r.GetTransactions(), ArchiveSegments: r.GetArchiveSegments(), ArchiveFirstIndex: r.GetArchiveFirstIndex(),
		ArchiveLastIndex: r.GetArchiveLastIndex(), LogFirstIndex: r.GetLogFirstIndex(), LogLastIndex: r.GetLogLastIndex(), FetchedSegments: r.GetFetchedSegments(),
		OutcomeMismatches: r.GetOutcomeMismatches(), HashMismatches: r.GetHashMismatches(), FirstHashMismatchIndex: r.GetFirstHashMismatchIndex(),
		RecordedStateHash: hex.EncodeToString(r.GetRecordedStateHash()), ReplayedStateHash: hex.EncodeToString(r.GetReplayedStateHash()),
		ElapsedMs: r.GetElapsedMs(), Mismatches: []mismatchJSON{},
	}
	for _, m := range r.GetMismatches() {
		j := mismatchJSON{LogIndex: m.GetLogIndex(), What: m.GetWhat(), Recorded: m.GetRecorded(), Replayed: m.GetReplayed()}
		if len(m.GetTxId()) > 0 {
			j.TxID = hex.EncodeToString(m.GetTxId())
		}
		out.Mismatches = append(out.Mismatches, j)
	}
	return out
}

func writeReplay(w io.Writer, out replayJSON, role, note string) {
	from := "genesis"
	if out.FromSnapshot {
		from = fmt.Sprintf("its snapshot at index %d (Raft index %d)", out.FromIndex, out.SnapshotRaftIndex)
	}
	fmt.Fprintf(w, "replay by %s (%s) from %s to index %d: %s, %s in %v\n", out.Node, role, from, out.ToIndex,
		plural(out.Blocks, "block"), plural(out.Transactions, "transaction"), (time.Duration(out.ElapsedMs) * time.Millisecond).Round(time.Millisecond))
	fmt.Fprintf(w, "re-executed every block of indexes %d..%d (the first at %d, the last at %d): %s\n",
		out.FromIndex+1, out.ToIndex, out.FirstBlockIndex, out.LastBlockIndex, replaySources(out))
	if note != "" {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	if out.Reproduced {
		fmt.Fprintf(w, "every committed outcome reproduced; state hash %s at index %d matches\n", short(out.ReplayedStateHash), out.ToIndex)
		return
	}
	fmt.Fprintf(w, "NOT REPRODUCED: %d outcome mismatches, %d state-hash mismatches", out.OutcomeMismatches, out.HashMismatches)
	if out.FirstHashMismatchIndex > 0 {
		fmt.Fprintf(w, " (first at index %d)", out.FirstHashMismatchIndex)
	}
	fmt.Fprintf(w, "\nrecorded state hash %s, replayed %s\n", short(out.RecordedStateHash), short(out.ReplayedStateHash))
	t := newTable("INDEX", "WHAT", "TX", "RECORDED", "REPLAYED").alignRight(0)
	for _, m := range out.Mismatches {
		t.add(fmt.Sprint(m.LogIndex), m.What, short(m.TxID), m.Recorded, m.Replayed)
	}
	t.write(w)
}

// replaySources says where the replayed entries came from.
func replaySources(out replayJSON) string {
	var s string
	if out.ArchiveSegments > 0 {
		s = fmt.Sprintf("%d..%d from %s of the archive", out.ArchiveFirstIndex, out.ArchiveLastIndex, plural(out.ArchiveSegments, "segment"))
		if out.FetchedSegments > 0 {
			s += fmt.Sprintf(" (%s fetched from other members first)", plural(out.FetchedSegments, "segment"))
		}
	}
	if out.LogFirstIndex > 0 {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%d..%d from the Raft log", out.LogFirstIndex, out.LogLastIndex)
	}
	if s == "" {
		s = "no entries"
	}
	return s
}
