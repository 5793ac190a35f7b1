package consensus_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Defect 2 of the fault campaign (docs/RELIABILITY.md): a damaged Raft
// log entry was applied and replicated. These tests damage the real
// raft.db (raft-boltdb, bbolt) of a real node.

// damageEntry flips one byte of every copy of the tail of tx (its
// signature) in a node's raft.db; bbolt reads through its mmap, so a
// running node sees it too. It fails the test if tx is not in the file.
func damageEntry(t *testing.T, dbPath string, tx []byte) {
	t.Helper()
	pattern := tx[len(tx)-16:]
	f, err := os.OpenFile(dbPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; ; {
		i := bytes.Index(raw[off:], pattern)
		if i < 0 {
			break
		}
		at := int64(off + i + 8)
		if _, err := f.WriteAt([]byte{raw[at] ^ 0x20}, at); err != nil {
			t.Fatal(err)
		}
		off += i + len(pattern)
		n++
	}
	if n == 0 {
		t.Fatalf("transaction not found in %s", dbPath)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedLogRefusedAtStart: a byte flipped in one entry of a stopped
// node's raft.db; the node refuses to start, with an error naming the
// entry and the repair. Before, it started, and applied (or, leading,
// sent) the damaged entry.
func TestDamagedLogRefusedAtStart(t *testing.T) {
	c := newCluster(t, 1, 0)
	c.startAll()
	m := c.leader()
	target := c.net.Issue(t, "icbc", 1_000*state.Yuan)
	res := c.submit(target)
	if res[0].GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("issue: %v", res[0])
	}
	for i := range 5 {
		c.submit(c.net.Issue(t, "abc", uint64(i+1)*state.Yuan))
	}
	c.stop(m.name)
	// Without its ledger the node would have to apply the log again.
	if err := os.RemoveAll(filepath.Join(c.dir, m.name, "state")); err != nil {
		t.Fatal(err)
	}
	damageEntry(t, filepath.Join(c.dir, m.name, "raft", "raft.db"), target)

	_, err := c.tryStart(m.name, true)
	if !errors.Is(err, consensus.ErrLogCorrupt) {
		t.Fatalf("start on a damaged raft.db: %v, want ErrLogCorrupt", err)
	}
	want := fmt.Sprintf("log entry %d in the Raft log", res[0].GetLogIndex())
	if msg := err.Error(); !strings.Contains(msg, want) || !strings.Contains(msg, "docs/operations.md") {
		t.Fatalf("refusal %q does not name %q and the repair", msg, want)
	}
}

// TestDamagedEntryNeitherAppliedNorSent: the leader's copy of a committed
// entry is damaged on disk while it runs (and out of its memory cache); a
// follower that was down then needs it. The leader must stop, reporting
// the entry, rather than send it; the follower catches up from the other
// voter and agrees with it. Before, the follower applied the damaged
// entry and its ledger diverged.
func TestDamagedEntryNeitherAppliedNorSent(t *testing.T) {
	c := newCluster(t, 3, 0)
	var mu sync.Mutex
	fatal := map[string]error{}
	c.tweak = func(name, _ string, cfg *consensus.Config) {
		cfg.Batch.MaxBytes = 4 << 20 // a Raft log cache of 64 entries
		cfg.OnFatal = func(err error) {
			mu.Lock()
			defer mu.Unlock()
			fatal[name] = err
		}
	}
	c.startAll()
	c.submit(c.net.Issue(t, "icbc", 1*state.Yuan))
	lead := c.leader()
	var behind string
	for _, n := range []string{"v0", "v1", "v2"} {
		if n != lead.name {
			behind = n
			break
		}
	}
	c.stop(behind)
	// More entries than one AppendEntries carries (MaxAppendEntries 64)
	// before the target: the request the transport holds for the stopped
	// follower, and resends once it is back (consensus/transport.go), was
	// built before the damage and must not carry the target, so the leader
	// reads the target from its log after the damage.
	for i := range 100 {
		c.submit(c.net.Issue(t, "boc", uint64(i+1)*state.Yuan))
	}
	target := c.net.Issue(t, "icbc", 1_000*state.Yuan)
	res := c.submit(target)
	if res[0].GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("issue: %v", res[0])
	}
	var last uint64
	for i := range 100 { // one entry each: the target leaves the cache
		last = c.submit(c.net.Issue(t, "abc", uint64(i+1)*state.Yuan))[0].GetLogIndex()
	}
	if c.leader() != lead {
		t.Skip("leadership moved during the load; the damaged copy is not the leader's")
	}
	damageEntry(t, filepath.Join(c.dir, lead.name, "raft", "raft.db"), target)
	c.start(behind, true)

	// Until the leader stops (or, before the fix, the follower has taken
	// everything from it).
	behindM := c.nodes[behind]
	deadline := time.Now().Add(20 * time.Second)
	for lead.node.Fatal() == nil && behindM.store.Meta().GetAppliedIndex() < last && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	fatalErr := lead.node.Fatal()
	readyAfter := lead.node.IsReadyLeader()
	stopped := time.Now()
	c.stop(lead.name) // Shutdown completes: Raft's reader of the damaged entry has ended
	if d := time.Since(stopped); d > 12*time.Second {
		t.Errorf("stopping the damaged leader took %v", d)
	}
	// The follower agrees with the other healthy voter, and holds the
	// entry as it was committed.
	hash := c.converge(last)
	w, err := behindM.store.Wallet("icbc.reserve")
	if err != nil || w.GetBalanceFen() != 1_001*state.Yuan {
		t.Fatalf("%s: icbc reserve %v (%v), want ¥1,001: the damaged entry was applied", behind, w.GetBalanceFen(), err)
	}
	want := fmt.Sprintf("log entry %d in the Raft log", res[0].GetLogIndex())
	if !errors.Is(fatalErr, consensus.ErrLogCorrupt) || !strings.Contains(fatalErr.Error(), want) {
		t.Fatalf("leader %s with a damaged entry: fatal %v, want ErrLogCorrupt naming %q", lead.name, fatalErr, want)
	}
	if readyAfter {
		t.Error("the damaged leader still took proposals after it found the damage")
	}
	mu.Lock()
	if !errors.Is(fatal[lead.name], consensus.ErrLogCorrupt) {
		t.Errorf("OnFatal of %s: %v", lead.name, fatal[lead.name])
	}
	mu.Unlock()
	t.Logf("the two healthy voters agree at index ≥ %d (hash %x)", last, hash[:6])
}
