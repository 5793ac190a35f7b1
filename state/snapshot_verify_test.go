package state_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// TestRestoreRefusesAlteredState: a snapshot whose records were edited
// after its state hash was computed, with its checksum (and, by a more
// careful forger, its content and state hashes) recomputed, is refused
// with ErrSnapshotUnverified before anything is swapped in: the store
// keeps its state, stays usable and leaves no restore directory behind.
//
// The last case is a forgery consistent in itself (content, state hash
// and the recorded hash for its index all recomputed, supply intact: a
// wallet's key replaced). Nothing inside a snapshot can refuse it; a store
// that applied that index itself refuses it by its own recorded hash, and
// a fresh store accepts it — the hash to trust must come from outside
// (consensus: state/DESIGN.md, "Snapshots").
func TestRestoreRefusesAlteredState(t *testing.T) {
	g := workload(t, 21, 15)
	snap := snapshotBytes(t, g.s)
	wallet := firstUserWallet(t, decodeStream(t, snap))

	editWallet := func(s *snapStream, edit func(*statepb.WalletRecord)) {
		i := s.index(t, "w:"+wallet)
		var w statepb.WalletRecord
		if err := proto.Unmarshal([]byte(s.kvs[i].Value), &w); err != nil {
			t.Fatal(err)
		}
		edit(&w)
		s.kvs[i].Value = marshal(t, &w)
	}
	moreMoney := func(w *statepb.WalletRecord) { w.BalanceFen += 100 }
	newKey := func(w *statepb.WalletRecord) { w.PublicKey = bytes.Repeat([]byte{7}, 32) }
	// rehash recomputes the meta's content and state hashes as a forger
	// would, in the meta record and the header; withIndex also rewrites
	// the s: record of the snapshot's index.
	rehash := func(s *snapStream, withIndex bool) {
		m := s.header.GetMeta()
		m.ContentHash = state.ContentHash(s.kvs)
		m.StateHash = state.ChainStateHash(m.GetPrevStateHash(), m.GetAppliedIndex(), m.GetLedgerTimeMs(), m.GetBlockDigest(), m.GetContentHash())
		s.kvs[s.index(t, "m:meta")].Value = marshal(t, m)
		if withIndex {
			s.kvs[s.index(t, state.KeyHashIndex(m.GetAppliedIndex()))].Value = string(m.GetStateHash())
		}
	}
	cases := []struct {
		name  string
		edit  func(*snapStream)
		fresh bool // a fresh store refuses it too
	}{
		{"wallet edited, checksum recomputed", func(s *snapStream) { editWallet(s, moreMoney) }, true},
		{"wallet key edited, checksum recomputed", func(s *snapStream) { editWallet(s, newKey) }, true},
		{"and the content hash", func(s *snapStream) {
			editWallet(s, moreMoney)
			m := s.header.GetMeta()
			m.ContentHash = state.ContentHash(s.kvs)
			s.kvs[s.index(t, "m:meta")].Value = marshal(t, m)
		}, true},
		{"and the state hash", func(s *snapStream) { editWallet(s, moreMoney); rehash(s, false) }, true},
		{"and the recorded hash: the supply audit", func(s *snapStream) { editWallet(s, moreMoney); rehash(s, true) }, true},
		{"a consistent forgery: a wallet's key", func(s *snapStream) { editWallet(s, newKey); rehash(s, true) }, false},
	}
	for _, c := range cases {
		s := decodeStream(t, snap)
		c.edit(&s)
		forged := s.encode(t)
		for _, into := range []string{"store that applied the index", "empty store"} {
			t.Run(c.name+"/"+into, func(t *testing.T) {
				var st *state.Store
				if into == "empty store" {
					st = emptyStore(t)
				} else {
					st = g.n.Open(t)
					if _, err := st.Apply(g.blocks); err != nil {
						t.Fatal(err)
					}
				}
				before, meta := dump(t, st), st.Meta()
				err := st.Restore(bytes.NewReader(forged))
				if into == "empty store" && !c.fresh {
					if err != nil {
						t.Fatalf("a consistent forgery: %v (nothing in the stream can refuse it)", err)
					}
					// What refuses it is the hash the network recorded
					// for its index (a node asks a quorum of voters).
					network := func(index uint64, h []byte) error {
						want, err := g.s.StateHashAt(index)
						if err != nil || !bytes.Equal(want, h) {
							return fmt.Errorf("the network recorded %x at %d (%v)", want, index, err)
						}
						return nil
					}
					other := emptyStore(t)
					err := other.RestoreConfirmed(bytes.NewReader(forged), network)
					if !errors.Is(err, state.ErrSnapshotUnverified) || other.Meta().GetAppliedIndex() != 0 {
						t.Fatalf("a consistent forgery the network does not confirm: %v (applied %d), want ErrSnapshotUnverified and nothing restored", err, other.Meta().GetAppliedIndex())
					}
					if err := other.RestoreConfirmed(bytes.NewReader(snap), network); err != nil {
						t.Fatalf("the true snapshot, confirmed: %v", err)
					}
					wantSameState(t, other, g.s)
					return
				}
				if !errors.Is(err, state.ErrSnapshotUnverified) {
					t.Fatalf("Restore: %v, want ErrSnapshotUnverified", err)
				}
				t.Logf("refused: %v", err)
				if d := changedKeys(before, dump(t, st)); len(d) > 0 || !proto.Equal(st.Meta(), meta) {
					t.Fatalf("refused restore changed state: %q", d)
				}
				if _, err := os.Stat(filepath.Join(st.Dir(), "db.restore")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("restore directory left behind: %v", err)
				}
				// The untouched snapshot still restores.
				if err := st.Restore(bytes.NewReader(snap)); err != nil {
					t.Fatal(err)
				}
				wantSameState(t, st, g.s)
			})
		}
	}
}

func firstUserWallet(t *testing.T, s snapStream) string {
	t.Helper()
	for _, kv := range s.kvs {
		var w statepb.WalletRecord
		if len(kv.Key) > 2 && kv.Key[:2] == "w:" && proto.Unmarshal([]byte(kv.Value), &w) == nil &&
			w.GetKind() == statepb.WalletKind_WALLET_KIND_PERSONAL && w.GetBalanceFen() > 0 {
			return w.GetId()
		}
	}
	t.Fatal("no funded personal wallet in the snapshot")
	return ""
}

func (s snapStream) index(t *testing.T, key string) int {
	t.Helper()
	for i, kv := range s.kvs {
		if kv.Key == key {
			return i
		}
	}
	t.Fatalf("no record %q in the snapshot", key)
	return -1
}

func marshal(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
