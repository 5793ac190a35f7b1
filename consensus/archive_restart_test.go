package consensus_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestArchiveCatchesUpAfterRestart: the archive lags the ledger by its
// open segment, whose entries are only in the Raft log, so compaction
// keeps them there: however small trailing_logs, the log is never
// compacted past the open segment's first index. A stop with entries in
// the open segment and the temporary file of an interrupted segment write
// beside it is what kill -9 mid-segment leaves; the restarted node deletes
// the temporary file and archives the open segment's entries from its log.
// History from index 1 then delivers every block the ledger recorded, in
// order, from the archive and then the log.
func TestArchiveCatchesUpAfterRestart(t *testing.T) {
	c := newCluster(t, 1, 0)
	c.tweak = func(_, dir string, cfg *consensus.Config) {
		cfg.Archive = consensus.ArchiveConfig{Dir: filepath.Join(dir, "archive"), SegmentBytes: 2048}
		cfg.TrailingLogs = 2
	}
	c.startAll()
	m := c.leader()
	register := func(from, to int) {
		for i := from; i < to; i++ {
			r := c.submit(c.net.Register(t, "icbc", fmt.Sprintf("w%d", i), statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
			if r[0].GetCode() != statepb.Code_CODE_OK {
				t.Fatalf("register w%d: %v", i, r[0])
			}
		}
	}
	register(0, 40)
	eventually(t, "three segments written", func() error {
		if st := m.node.ArchiveStatus(); st.Segments < 3 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	if err := m.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	register(40, 41) // at least one entry in the open segment
	applied := m.store.Meta().GetAppliedIndex()
	eventually(t, "the open segment to hold the last entry", func() error {
		if st := m.node.ArchiveStatus(); st.End >= applied || st.OpenFrom > applied {
			return fmt.Errorf("%+v, applied %d", st, applied)
		}
		return nil
	})
	st := m.node.ArchiveStatus()
	first, _, err := m.node.LogBounds()
	if err != nil || first <= 1 || first > st.OpenFrom {
		t.Fatalf("log from %d (%v), open segment from %d: compaction must stop before it", first, err, st.OpenFrom)
	}
	archDir := filepath.Join(c.dir, m.name, "archive")
	tmp := filepath.Join(archDir, fmt.Sprintf(".tmp-%020d-%020d.seg", st.OpenFrom, applied))
	if err := os.WriteFile(tmp, []byte("a segment write cut short"), 0o600); err != nil {
		t.Fatal(err)
	}

	c.stop(m.name)
	m = c.start(m.name, true)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("interrupted write's temporary file still there: %v", err)
	}
	register(41, 60)
	last := m.store.Meta().GetAppliedIndex()
	eventually(t, "the entries of the old open segment archived", func() error {
		if st := m.node.ArchiveStatus(); st.End < applied || st.Missing != 0 {
			return fmt.Errorf("%+v, want past %d", st, applied)
		}
		return nil
	})
	var got []uint64
	hst, err := m.node.History(context.Background(), 1, last, func(b state.Block) error {
		got = append(got, b.Index)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := recordedIndexes(t, m.store, last)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history delivered blocks %v, the ledger recorded %v", got, want)
	}
	if hst.Segments == 0 || hst.ArchiveFirst != 1 || max(hst.ArchiveLast, hst.LogLast) != last {
		t.Fatalf("history stats %+v, last %d", hst, last)
	}
	t.Logf("%d blocks: %d segments for indexes %d..%d, then the log %d..%d", len(got), hst.Segments, hst.ArchiveFirst, hst.ArchiveLast, hst.LogFirst, hst.LogLast)
	statetest.Audit(t, m.store)
}

func recordedIndexes(t *testing.T, s *state.Store, upTo uint64) []uint64 {
	t.Helper()
	var out []uint64
	for from := uint64(0); ; {
		bs, err := s.Blocks(from, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.GetLogIndex() <= upTo {
				out = append(out, b.GetLogIndex())
			}
			from = b.GetLogIndex() + 1
		}
		if len(bs) < state.MaxPageSize {
			return out
		}
	}
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
