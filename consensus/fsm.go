package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus/consensuspb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// fsm adapts the ledger to Raft: one ApplyBatch is one state.Apply, so one
// Pebble batch and one fsync however many log entries Raft delivers at once.
// It owns no state of its own beyond progress tracking; the ledger is in
// state.Store.
type fsm struct {
	store *state.Store
	log   *slog.Logger
	// onApplied is called (on the FSM goroutine) after each batch with what
	// it did; it must not block.
	onApplied func(lastIndex uint64, applied *state.Applied, elapsed time.Duration, txs int)
	// beforeRestore and afterRestore bracket a restore (the archive and the
	// log-trust record follow it: Node.beforeRestore).
	beforeRestore func() (uint64, error)
	afterRestore  func(restored bool, prev uint64)
	// confirm is Config.ConfirmSnapshot once Raft has started (nil before:
	// a restore during raft.NewRaft is of this node's own snapshot).
	confirm atomic.Pointer[func(uint64, []byte) error]
	// onFatal stops the node (Node.fail).
	onFatal func(error)

	mu sync.Mutex
	// appliedIndex is the last log index the ledger holds: every command and
	// configuration entry up to it is applied. Raft's own AppliedIndex runs
	// ahead (it counts entries queued to the FSM), so waiters use this one.
	appliedIndex uint64
	// changed is closed and replaced whenever appliedIndex moves.
	changed chan struct{}
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(store *state.Store, log *slog.Logger) *fsm {
	return &fsm{store: store, log: log, appliedIndex: store.Meta().GetAppliedIndex(), changed: make(chan struct{})}
}

// ApplyBatch turns log entries into ledger blocks. Configuration entries
// become empty blocks so that the ledger's applied index is Raft's index.
// An entry whose data does not decode also becomes an empty block: every
// node decides the same, and a bad leader cannot crash the followers. If the
// ledger cannot apply (I/O failure, broken invariant) the node stops: going
// on would let Raft believe entries were applied that are not.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	blocks := make([]state.Block, 0, len(logs))
	where := make([]int, len(logs)) // position of each log's block, or -1
	txs := 0
	for i, l := range logs {
		where[i] = -1
		switch l.Type {
		case raft.LogCommand:
			b := state.Block{Index: l.Index, Term: l.Term}
			var e consensuspb.Entry
			if err := proto.Unmarshal(l.Data, &e); err != nil {
				f.log.Error("undecodable log entry applied as empty block", "index", l.Index, "error", err)
			} else {
				b.TimeMs, b.Txs = e.GetTimeMs(), e.GetTxs()
			}
			txs += len(b.Txs)
			where[i] = len(blocks)
			blocks = append(blocks, b)
		case raft.LogConfiguration:
			where[i] = len(blocks)
			blocks = append(blocks, state.Block{Index: l.Index, Term: l.Term})
		}
	}
	applied, err := f.store.Apply(blocks)
	if err != nil && (state.IsCorrupt(err) || errors.Is(err, state.ErrLedgerVersion)) && f.onFatal != nil {
		// A damaged ledger file (state/integrity.go), or a ledger version
		// this build cannot run: nothing of this batch was written. The node stops; this goroutine (Raft's FSM
		// loop) ends rather than panic, so Shutdown completes.
		f.onFatal(fmt.Errorf("apply entries from %d: %w", logs[0].Index, err))
		runtime.Goexit()
	}
	if err != nil {
		f.log.Error("ledger apply failed; stopping", "first_index", logs[0].Index, "error", err)
		panic(fmt.Sprintf("consensus: ledger apply failed at index %d: %v", logs[0].Index, err))
	}
	out := make([]any, len(logs))
	for i := range logs {
		if where[i] >= 0 && applied.Results[where[i]] != nil {
			out[i] = &entryResults{res: applied.Results[where[i]]}
		}
	}
	if len(logs) > 0 {
		f.advance(logs[len(logs)-1].Index)
	}
	if f.onApplied != nil {
		f.onApplied(logs[len(logs)-1].Index, applied, time.Since(start), txs)
	}
	return out
}

// Apply is required by raft.FSM; Raft calls ApplyBatch instead.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// Snapshot captures the ledger (a Pebble snapshot: cheap); Persist streams it
// while Apply goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	sn, err := f.store.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{sn: sn, log: f.log}, nil
}

// Restore replaces the ledger with a snapshot stream (a new node catching
// up, or one too far behind for the log).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	prev, err := f.beforeRestore()
	if err != nil {
		f.afterRestore(false, prev)
		return fmt.Errorf("before restore: %w", err)
	}
	var confirm state.ConfirmFunc
	if c := f.confirm.Load(); c != nil && *c != nil {
		confirm = *c
	}
	err = f.store.RestoreConfirmed(rc, confirm)
	f.afterRestore(err == nil, prev)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.appliedIndex = f.store.Meta().GetAppliedIndex()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if f.onApplied != nil {
		f.onApplied(f.store.Meta().GetAppliedIndex(), &state.Applied{MembershipChanged: true}, 0, 0)
	}
	return nil
}

func (f *fsm) advance(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index > f.appliedIndex {
		f.appliedIndex = index
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// applied returns the applied index and a channel closed when it next moves.
func (f *fsm) applied() (uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.appliedIndex, f.changed
}

type fsmSnapshot struct {
	sn  *state.Snapshot
	log *slog.Logger
}

// Persist streams the ledger into Raft's snapshot sink (a file that Raft
// fsyncs on Close); nothing is buffered whole.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	n, err := s.sn.WriteTo(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	s.log.Info("snapshot persisted", "applied_index", s.sn.Meta().GetAppliedIndex(), "bytes", n, "elapsed", time.Since(start))
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.sn.Release() }

// entryResults carries one entry's results from the FSM to the proposer,
// once. Raft's leader keeps each entry's future, response included, for as
// long as its LogCache keeps the entry (the cache holds a pointer into the
// future), so the proposer empties the box when it takes the results:
// otherwise the last few thousand entries' results would stay in memory.
// Only the proposer's delivering goroutine reads it, after the future
// resolved (which orders it after the FSM's write).
type entryResults struct {
	res []*statepb.TxResult
}

// results takes a block's results from an ApplyFuture response; a second
// call gets nil.
func results(resp any) []*statepb.TxResult {
	box, _ := resp.(*entryResults)
	if box == nil {
		return nil
	}
	r := box.res
	box.res = nil
	return r
}
