package consensus_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// TestLeaderDoesNotKeepDecodedTransactions: Raft's leader keeps each
// entry's future — and with it the FSM's response — for as long as its
// LogCache holds the entry. The response once pinned every decoded
// transaction of the entry (a result's id aliased it): ≈ 2 KB per
// transaction (1.2 KB for these registrations), growing with traffic
// until the cache turned over, 4,096 entries later. Now the proposer empties the response when it takes the
// results, and the heap after 20,000 transactions stays near what the
// cached entries' own bytes need.
func TestLeaderDoesNotKeepDecodedTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("submits 20,000 transactions")
	}
	c := newCluster(t, 1, 0)
	c.startAll()
	c.submit(c.net.Issue(t, "icbc", 1_000_000*state.Yuan))
	const batches, perBatch = 200, 100
	txs := make([][][]byte, batches)
	for b := range txs {
		for i := range perBatch {
			txs[b] = append(txs[b], c.net.Register(t, "icbc", fmt.Sprintf("w%d-%d", b, i), statepb.WalletKind_WALLET_KIND_PERSONAL, 4, ""))
		}
	}
	submitted := 0
	for _, batch := range txs[:10] {
		for _, r := range c.submit(batch...) {
			if r.GetCode() != statepb.Code_CODE_OK {
				t.Fatalf("register: %v", r)
			}
		}
		submitted += len(batch)
	}
	before := liveHeap()
	for _, batch := range txs[10:] {
		for _, r := range c.submit(batch...) {
			if r.GetCode() != statepb.Code_CODE_OK {
				t.Fatalf("register: %v", r)
			}
		}
		submitted += len(batch)
	}
	txs = nil // the test's own copies of the bytes
	grown := int64(liveHeap()) - int64(before)
	t.Logf("%d transactions: live heap grew by %d KB (%.0f bytes a transaction)", submitted, grown>>10, float64(grown)/float64(submitted-10*perBatch))
	// The later entries' bytes stay in the LogCache by design (≈ 150 bytes
	// a registration measured); decoded transactions added ≈ 1.2 KB each.
	if limit := int64(19_000 * 500); grown > limit {
		t.Fatalf("live heap grew by %d bytes over 19,000 transactions (limit %d): something keeps applied transactions", grown, limit)
	}
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
