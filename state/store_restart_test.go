package state_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// workload makes n random blocks (see gen) and returns them with the
// oracle store they were applied to.
func workload(t *testing.T, seed int64, n int) *gen {
	t.Helper()
	g := newGen(t, seed)
	for range n {
		g.block()
	}
	return g
}

func openAt(t *testing.T, dir string) *state.Store {
	t.Helper()
	s, err := state.Open(dir, state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dump(t *testing.T, s *state.Store) []state.KV {
	t.Helper()
	kvs, err := state.DumpState(s)
	if err != nil {
		t.Fatal(err)
	}
	return kvs
}

func wantSameState(t *testing.T, got, want *state.Store) {
	t.Helper()
	if !proto.Equal(got.Meta(), want.Meta()) {
		t.Fatalf("meta %v, want %v", got.Meta(), want.Meta())
	}
	a, b := dump(t, got), dump(t, want)
	if d := changedKeys(a, b); len(d) > 0 || len(a) != len(b) {
		t.Fatalf("states differ: %q", d)
	}
}

// TestRestart: closing and reopening keeps everything; blocks at or below
// the applied index are skipped (nil results, nothing written); applying
// goes on from where it stopped and ends where a store that never
// restarted ends.
func TestRestart(t *testing.T) {
	g := workload(t, 42, 30)
	dir := t.TempDir()
	s := openAt(t, dir)
	if err := s.InitGenesis(g.n.Genesis); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(g.blocks[:12]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(g.blocks[12:20]); err != nil {
		t.Fatal(err)
	}
	meta := proto.Clone(s.Meta()).(*statepb.Meta)
	before := dump(t, s)
	audit := statetest.Audit(t, s)
	hist, _, err := s.History("w3", 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(g.blocks[20:21]); !errors.Is(err, state.ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
	if _, err := s.Wallet("w1"); !errors.Is(err, state.ErrClosed) {
		t.Fatalf("query after close: %v", err)
	}

	s = openAt(t, dir)
	if !proto.Equal(s.Meta(), meta) || s.Meta().GetAppliedIndex() != 20 {
		t.Fatalf("meta after reopen: %v, want %v", s.Meta(), meta)
	}
	if s.GenesisHash() != g.n.Signer.GenesisHash || !proto.Equal(s.Genesis(), g.n.Genesis) {
		t.Fatal("genesis lost")
	}
	if d := changedKeys(before, dump(t, s)); len(d) > 0 {
		t.Fatalf("reopen changed %q", d)
	}
	if a := statetest.Audit(t, s); !sameAudit(a, audit) {
		t.Fatalf("audit %+v, want %+v", a, audit)
	}
	if h, _, err := s.History("w3", 0, 5); err != nil || len(h) != len(hist) || (len(h) > 0 && !proto.Equal(h[0], hist[0])) {
		t.Fatalf("history after reopen: %v, %v", h, err)
	}
	if err := s.InitGenesis(g.n.Genesis); err != nil {
		t.Fatalf("InitGenesis of the same genesis: %v", err)
	}
	other := statetest.NewNet(t, "other").Genesis
	if err := s.InitGenesis(other); !errors.Is(err, state.ErrGenesisMismatch) {
		t.Fatalf("InitGenesis of another genesis: %v", err)
	}

	// Replays of what the store holds: nothing happens.
	for _, blocks := range [][]state.Block{g.blocks[:20], g.blocks[19:20], g.blocks[5:6]} {
		out, err := s.Apply(blocks)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Results) != len(blocks) || out.MembershipChanged {
			t.Fatalf("replay: %+v", out)
		}
		for i, r := range out.Results {
			if r != nil {
				t.Fatalf("replayed block %d got results %v", blocks[i].Index, r)
			}
		}
	}
	if !proto.Equal(s.Meta(), meta) {
		t.Fatalf("replay moved meta to %v", s.Meta())
	}
	if d := changedKeys(before, dump(t, s)); len(d) > 0 {
		t.Fatalf("replay changed %q", d)
	}

	// Out of order: refused, nothing committed.
	if _, err := s.Apply([]state.Block{g.blocks[21], g.blocks[20]}); !errors.Is(err, state.ErrOutOfOrder) {
		t.Fatalf("out of order: %v", err)
	}
	if !proto.Equal(s.Meta(), meta) {
		t.Fatal("out-of-order apply moved meta")
	}

	// A batch straddling the applied index applies only the new blocks,
	// and the store ends where the oracle (never restarted) ended.
	out, err := s.Apply(g.blocks[17:25])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range out.Results {
		idx := g.blocks[17+i].Index
		if (idx <= 20) != (r == nil) {
			t.Fatalf("block %d: results %v", idx, r)
		}
		if r != nil && !sameResults(r, g.results[idx-1]) {
			t.Fatalf("block %d: results differ from the oracle's", idx)
		}
	}
	if _, err := s.Apply(g.blocks[25:]); err != nil {
		t.Fatal(err)
	}
	wantSameState(t, s, g.s)
	statetest.Audit(t, s)
}

// TestRestartEveryBlock reopens the store after every block: the end state
// is the oracle's.
func TestRestartEveryBlock(t *testing.T) {
	g := workload(t, 7, 15)
	dir := t.TempDir()
	s := openAt(t, dir)
	if err := s.InitGenesis(g.n.Genesis); err != nil {
		t.Fatal(err)
	}
	for i := range g.blocks {
		if _, err := s.Apply(g.blocks[:i+1]); err != nil { // all but the last are replays
			t.Fatal(err)
		}
		if !bytes.Equal(s.Meta().GetStateHash(), mustHashAt(t, g.s, g.blocks[i].Index)) {
			t.Fatalf("block %d: hash differs from the oracle's", g.blocks[i].Index)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openAt(t, dir)
	}
	wantSameState(t, s, g.s)
}

func mustHashAt(t *testing.T, s *state.Store, i uint64) []byte {
	t.Helper()
	h, err := s.StateHashAt(i)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sameAudit(a, b *state.Audit) bool {
	x, y := *a, *b
	x.AppliedIndex, y.AppliedIndex = 0, 0
	return reflect.DeepEqual(x, y)
}

func sameResults(a, b []*statepb.TxResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
