package state_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

func snapshotBytes(t testing.TB, s *state.Store) []byte {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d bytes, %v (buffer %d)", n, err, buf.Len())
	}
	return buf.Bytes()
}

// emptyStore opens a store with no genesis.
func emptyStore(t testing.TB) *state.Store {
	t.Helper()
	s, err := state.Open(t.TempDir(), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var quiet = slog.New(slog.DiscardHandler)

// wantSameQueries compares what clients can ask of two stores.
func wantSameQueries(t *testing.T, got, want *state.Store) {
	t.Helper()
	ga, wa := statetest.Audit(t, got), statetest.Audit(t, want)
	if !reflect.DeepEqual(ga, wa) {
		t.Fatalf("audit %+v, want %+v", ga, wa)
	}
	gw, err1 := got.Wallets("", 0)
	ww, err2 := want.Wallets("", 0)
	if err1 != nil || err2 != nil || len(gw) != len(ww) {
		t.Fatalf("wallets: %d (%v), want %d (%v)", len(gw), err1, len(ww), err2)
	}
	for i, w := range ww {
		if !proto.Equal(gw[i], w) {
			t.Fatalf("wallet %s: %v, want %v", w.GetId(), gw[i], w)
		}
		gu, _ := got.Unspents(w.GetId(), nil, 0)
		wu, _ := want.Unspents(w.GetId(), nil, 0)
		if !reflect.DeepEqual(gu, wu) {
			t.Fatalf("unspents of %s differ", w.GetId())
		}
		gh, _, _ := got.History(w.GetId(), 0, 0)
		wh, _, _ := want.History(w.GetId(), 0, 0)
		if !sameMessages(gh, wh) {
			t.Fatalf("history of %s differs", w.GetId())
		}
	}
	gs, _ := got.Supply()
	ws, _ := want.Supply()
	gm, _ := got.Members()
	wm, _ := want.Members()
	gb, _ := got.Banks()
	wb, _ := want.Banks()
	gblk, _ := got.Blocks(0, 0)
	wblk, _ := want.Blocks(0, 0)
	if !proto.Equal(gs, ws) || !sameMessages(gm, wm) || !sameMessages(gb, wb) || !sameMessages(gblk, wblk) {
		t.Fatal("supply, members, banks or blocks differ")
	}
}

func sameMessages[M proto.Message](a, b []M) bool {
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

// TestSnapshotRestore: a snapshot restored into a fresh store gives the
// same state hash, records, audit and query answers, and the restored
// store goes on applying blocks to the same hashes.
func TestSnapshotRestore(t *testing.T) {
	g := workload(t, 11, 30)
	snap := snapshotBytes(t, g.s)
	at := proto.Clone(g.s.Meta()).(*statepb.Meta)

	fresh := emptyStore(t)
	if err := fresh.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if fresh.GenesisHash() != g.n.Signer.GenesisHash {
		t.Fatal("restored store has another genesis")
	}
	if m := fresh.Meta(); m.GetAppliedIndex() != at.GetAppliedIndex() || !bytes.Equal(m.GetStateHash(), at.GetStateHash()) {
		t.Fatalf("restored meta at index %d hash %x, want %d %x", m.GetAppliedIndex(), m.GetStateHash(), at.GetAppliedIndex(), at.GetStateHash())
	}
	wantSameState(t, fresh, g.s)
	wantSameQueries(t, fresh, g.s)
	for _, tx := range g.history {
		id := txIDOf(tx)
		if id == nil {
			continue
		}
		r1, err1 := fresh.Tx(id)
		r2, err2 := g.s.Tx(id)
		if !proto.Equal(r1, r2) || !errors.Is(err1, err2) && err1 != err2 {
			t.Fatalf("recorded transaction %x differs: %v (%v), want %v (%v)", id[:8], r1, err1, r2, err2)
		}
	}

	// Both go on: same blocks, same hashes.
	for range 10 {
		b := g.block()
		if _, err := fresh.Apply([]state.Block{b}); err != nil {
			t.Fatal(err)
		}
	}
	wantSameState(t, fresh, g.s)

	// A snapshot is a point in time: blocks applied while it is open are
	// not in it.
	sn, err := g.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	at = proto.Clone(g.s.Meta()).(*statepb.Meta)
	b := g.block()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	if !proto.Equal(sn.Meta(), at) {
		t.Fatalf("snapshot meta %v, want %v", sn.Meta(), at)
	}
	old := emptyStore(t)
	if err := old.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(old.Meta(), at) {
		t.Fatalf("restored meta %v, want %v", old.Meta(), at)
	}
	if _, err := old.Apply([]state.Block{b}); err != nil {
		t.Fatal(err)
	}
	wantSameState(t, old, g.s)
}

// TestRestoreReplaces: restoring into a store that already has state (of
// the same network, ahead or behind) replaces all of it.
func TestRestoreReplaces(t *testing.T) {
	g := workload(t, 12, 20)
	snap := snapshotBytes(t, g.s)
	for range 10 {
		g.block()
	}
	// ahead holds all 30 blocks; behind only the first 5.
	ahead := g.n.Open(t)
	if _, err := ahead.Apply(g.blocks); err != nil {
		t.Fatal(err)
	}
	behind := g.n.Open(t)
	if _, err := behind.Apply(g.blocks[:5]); err != nil {
		t.Fatal(err)
	}
	want := emptyStore(t)
	if err := want.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*state.Store{ahead, behind} {
		v := s.MembershipVersion()
		if err := s.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
		if s.Meta().GetAppliedIndex() != 20 || s.MembershipVersion() == v {
			t.Fatalf("after restore: meta %v, membership version %d", s.Meta(), s.MembershipVersion())
		}
		wantSameState(t, s, want)
		wantSameQueries(t, s, want)
		// It applies the rest like the oracle did.
		if _, err := s.Apply(g.blocks[20:]); err != nil {
			t.Fatal(err)
		}
		wantSameState(t, s, g.s)
		// And survives a reopen.
		dir := s.Dir()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wantSameState(t, openAt(t, dir), g.s)
	}
}

// snapStream is a decoded snapshot stream, for tests that forge streams
// with a valid checksum.
type snapStream struct {
	header *statepb.SnapshotHeader
	kvs    []state.KV
}

func decodeStream(t *testing.T, b []byte) snapStream {
	t.Helper()
	r := bytes.NewReader(b[12:])
	next := func() []byte {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, n)
		if _, err := r.Read(out); err != nil && n > 0 {
			t.Fatal(err)
		}
		return out
	}
	var s snapStream
	s.header = &statepb.SnapshotHeader{}
	if err := proto.Unmarshal(next(), s.header); err != nil {
		t.Fatal(err)
	}
	for {
		k := next()
		if len(k) == 0 {
			return s
		}
		s.kvs = append(s.kvs, state.KV{Key: string(k), Value: string(next())})
	}
}

func (s snapStream) encode(t *testing.T) []byte {
	t.Helper()
	var b []byte
	b = append(b, "DCEPSNAP"...)
	b = binary.BigEndian.AppendUint32(b, 1)
	hdr, err := proto.Marshal(s.header)
	if err != nil {
		t.Fatal(err)
	}
	put := func(p []byte) { b = append(binary.AppendUvarint(b, uint64(len(p))), p...) }
	put(hdr)
	for _, kv := range s.kvs {
		put([]byte(kv.Key))
		put([]byte(kv.Value))
	}
	b = binary.AppendUvarint(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.kvs)))
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// TestRestoreRefusesBadStreams: truncated, corrupted or forged streams are
// refused with ErrSnapshotFormat (or ErrGenesisMismatch) before anything is
// swapped in: the store keeps its state, stays usable, and leaves no
// restore directory behind.
func TestRestoreRefusesBadStreams(t *testing.T) {
	g := workload(t, 13, 15)
	snap := snapshotBytes(t, g.s)
	if !bytes.Equal(decodeStream(t, snap).encode(t), snap) {
		t.Fatal("test codec does not round-trip")
	}
	other := newGenOn(t, "other", 14)
	for range 3 {
		other.block()
	}
	type bad struct {
		name   string
		stream []byte
	}
	var cases []bad
	for _, n := range []int{0, 1, 8, 11, 12, 13, 40, len(snap) / 3, len(snap) / 2, len(snap) - 41, len(snap) - 33, len(snap) - 32, len(snap) - 1} {
		cases = append(cases, bad{fmt.Sprintf("truncated to %d", n), snap[:n]})
	}
	for _, at := range []int{0, 9, 11, 14, 30, 60, len(snap) / 4, len(snap) / 2, len(snap) * 3 / 4, len(snap) - 45, len(snap) - 36, len(snap) - 10} {
		b := append([]byte(nil), snap...)
		b[at] ^= 0x20
		cases = append(cases, bad{fmt.Sprintf("byte %d flipped", at), b})
	}
	forge := func(name string, edit func(s *snapStream)) {
		s := decodeStream(t, snap)
		edit(&s)
		cases = append(cases, bad{name, s.encode(t)})
	}
	forge("no meta", func(s *snapStream) {
		for i, kv := range s.kvs {
			if kv.Key == "m:meta" {
				s.kvs = append(s.kvs[:i], s.kvs[i+1:]...)
				return
			}
		}
	})
	forge("meta disagrees with header", func(s *snapStream) { s.header.Meta.AppliedIndex++ })
	forge("keys out of order", func(s *snapStream) { s.kvs[3], s.kvs[4] = s.kvs[4], s.kvs[3] })
	forge("duplicate key", func(s *snapStream) { s.kvs = append(s.kvs[:4], s.kvs[3:]...) })
	forge("format 2", func(s *snapStream) {}) // patched below
	cases[len(cases)-1].stream[11] = 2
	// Another network's state under this network's genesis hash: the
	// header passes, the genesis record must not.
	o := decodeStream(t, snapshotBytes(t, other.s))
	o.header.GenesisHash = g.n.Signer.GenesisHash[:]
	for i, kv := range o.kvs {
		if kv.Key == "m:meta" {
			o.header.Meta.GenesisHash = g.n.Signer.GenesisHash[:]
			v, _ := proto.Marshal(o.header.GetMeta())
			o.kvs[i].Value = string(v)
		}
	}
	cases = append(cases, bad{"another network's genesis record", o.encode(t)})
	forge("header meta of another genesis", func(s *snapStream) { s.header.Meta.GenesisHash = make([]byte, 32) })
	forge("no genesis", func(s *snapStream) {
		for i, kv := range s.kvs {
			if kv.Key == "m:genesis" {
				s.kvs = append(s.kvs[:i], s.kvs[i+1:]...)
				return
			}
		}
	})
	forge("oversized record length", func(s *snapStream) {}) // patched below
	huge := cases[len(cases)-1].stream
	cases[len(cases)-1].stream = append(append(append([]byte(nil), huge[:len(huge)-41]...), binary.AppendUvarint(nil, 1<<40)...), 1, 2, 3)

	for _, into := range []string{"store with state", "empty store"} {
		for _, c := range cases {
			t.Run(into+"/"+c.name, func(t *testing.T) {
				var s *state.Store
				if into == "empty store" {
					s = emptyStore(t)
				} else {
					s = g.n.Open(t)
					if _, err := s.Apply(g.blocks[:10]); err != nil {
						t.Fatal(err)
					}
				}
				before := dump(t, s)
				meta := s.Meta()
				err := s.Restore(bytes.NewReader(c.stream))
				if !errors.Is(err, state.ErrSnapshotFormat) && !errors.Is(err, state.ErrGenesisMismatch) {
					t.Fatalf("Restore: %v, want ErrSnapshotFormat", err)
				}
				if d := changedKeys(before, dump(t, s)); len(d) > 0 || !proto.Equal(s.Meta(), meta) {
					t.Fatalf("refused restore changed state: %q", d)
				}
				if _, err := os.Stat(filepath.Join(s.Dir(), "db.restore")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("restore directory left behind: %v", err)
				}
				if into == "store with state" {
					if _, err := s.Apply(g.blocks[10:]); err != nil {
						t.Fatal(err)
					}
					wantSameState(t, s, g.s)
				}
			})
		}
	}
	// A store of another network refuses this network's snapshot.
	if err := other.s.Restore(bytes.NewReader(snap)); !errors.Is(err, state.ErrGenesisMismatch) {
		t.Fatalf("restore across networks: %v", err)
	}
}

var largeSnapshot = flag.Bool("snapshot.large", os.Getenv("DCEP_SNAPSHOT_LARGE") != "", "run TestSnapshotLargeState (1M outputs)")

// TestSnapshotLargeState builds a state of a million unspent outputs,
// streams a snapshot of it to a file and restores it into a fresh store,
// sampling the Go heap throughout: memory must not grow with the state. It
// takes a minute or two, so it runs only with -snapshot.large (or
// DCEP_SNAPSHOT_LARGE=1):
//
//	go test ./state -run TestSnapshotLargeState -snapshot.large -v
func TestSnapshotLargeState(t *testing.T) {
	if !*largeSnapshot {
		t.Skip("1M-output snapshot: run with -snapshot.large")
	}
	const outputs = 1_000_000
	start := time.Now()
	n := statetest.NewNet(t, "large")
	s := n.Open(t)
	c := statetest.NewChain(s)
	var regs [][]byte
	for i := range 100 {
		regs = append(regs, n.Register(t, "icbc", fmt.Sprintf("sink%02d", i), merchant, 1, ""))
	}
	mustAllOK(t, c.Apply(t, append(regs, n.Register(t, "icbc", "funder", personal, 1, ""))...))
	src := c.Fund(t, n, "icbc", "funder", 10*outputs)
	payees := make([]*statepb.Payee, statepb.MaxPayees)
	made := 0
	for made < outputs {
		var txs [][]byte
		for range 1000 {
			sink := fmt.Sprintf("sink%02d", made/statepb.MaxPayees%100)
			for i := range payees {
				payees[i] = statetest.Pay(sink, 1+uint64(i))
			}
			raw, id := n.SignID(t, statetest.TransferBody("funder", ins(src), payees...), n.Wallet("funder"))
			txs = append(txs, raw)
			src = statetest.Out(id, statepb.MaxPayees)
			made += statepb.MaxPayees
		}
		mustAllOK(t, c.Apply(t, txs...))
	}
	audit := statetest.Audit(t, s)
	t.Logf("built %d outputs in %s", audit.Outputs, time.Since(start).Round(time.Second))
	if audit.Outputs < outputs {
		t.Fatalf("only %d outputs", audit.Outputs)
	}

	file := filepath.Join(t.TempDir(), "snap")
	var size int64
	writeHeap := measureHeap(t, func() {
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		sn, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if size, err = sn.WriteTo(f); err != nil {
			t.Fatal(err)
		}
		sn.Release()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})
	restored := emptyStore(t)
	readHeap := measureHeap(t, func() {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := restored.Restore(f); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("snapshot: %d MiB stream; write %s; restore %s", size>>20, writeHeap, readHeap)
	if !bytes.Equal(restored.Meta().GetStateHash(), s.Meta().GetStateHash()) {
		t.Fatal("restored state hash differs")
	}
	if a := statetest.Audit(t, restored); !sameAudit(a, audit) {
		t.Fatalf("restored audit %+v, want %+v", a, audit)
	}
	// Constant memory: the live heap (what the GC found reachable) grows
	// by a few buffers at most, however large the stream. HeapInuse also
	// holds garbage not yet collected, which GOGC bounds, not the state.
	for _, h := range []heapUse{writeHeap, readHeap} {
		if growth := h.peakLive - min(h.peakLive, h.baseLive); growth > 32<<20 {
			t.Errorf("live heap grew by %d MiB for a %d MiB stream", growth>>20, size>>20)
		}
	}
}

type heapUse struct {
	baseLive, peakLive, baseInuse, peakInuse, totalAlloc uint64
	took                                                 time.Duration
}

func (h heapUse) String() string {
	mib := func(a, b uint64) uint64 { return (b - min(a, b)) >> 20 }
	return fmt.Sprintf("in %s: live heap %d MiB before, peak %d MiB (+%d MiB); HeapInuse %d MiB before, peak %d MiB (+%d MiB); TotalAlloc %d MiB",
		h.took.Round(time.Millisecond), h.baseLive>>20, h.peakLive>>20, mib(h.baseLive, h.peakLive),
		h.baseInuse>>20, h.peakInuse>>20, mib(h.baseInuse, h.peakInuse), h.totalAlloc>>20)
}

// liveHeap is the heap the last GC found reachable.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// measureHeap runs fn while sampling the heap every 10ms.
func measureHeap(t *testing.T, fn func()) heapUse {
	t.Helper()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	alloc0, base, baseLive := m.TotalAlloc, m.HeapInuse, liveHeap()
	var peak, peakLive atomic.Uint64
	peak.Store(m.HeapInuse)
	peakLive.Store(baseLive)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				if l := liveHeap(); l > peakLive.Load() {
					peakLive.Store(l)
				}
			}
		}
	}()
	start := time.Now()
	fn()
	took := time.Since(start)
	close(stop)
	wg.Wait()
	runtime.ReadMemStats(&m)
	runtime.GC()
	return heapUse{
		baseLive: baseLive, peakLive: max(peakLive.Load(), liveHeap()),
		baseInuse: base, peakInuse: max(peak.Load(), m.HeapInuse),
		totalAlloc: m.TotalAlloc - alloc0, took: took,
	}
}
