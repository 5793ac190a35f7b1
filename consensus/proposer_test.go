package consensus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state"
)

// TestEntryNeverExceedsMaxBytes: transactions queued together are grouped
// into entries of at most Batch.MaxBytes each (a transaction that would
// take an entry over starts the next one), every transaction gets its
// result, and one larger than an entry is refused with ErrTooLarge.
func TestEntryNeverExceedsMaxBytes(t *testing.T) {
	const maxBytes, txBytes, n = 64 << 10, 20 << 10, 40
	c := newCluster(t, 1, 0)
	c.tweak = func(_, _ string, cfg *consensus.Config) {
		cfg.Batch.MaxBytes = maxBytes
		cfg.Batch.MaxDelay = 50 * time.Millisecond
	}
	c.startAll()
	leader := c.leader()
	txs := make([][]byte, n)
	for i := range txs {
		txs[i] = bytes.Repeat([]byte{byte(i)}, txBytes) // not transactions: each an outcome, TX_MALFORMED
	}
	res := c.submit(txs...)
	if len(res) != n {
		t.Fatalf("%d results for %d transactions", len(res), n)
	}
	_, last, err := leader.node.LogBounds()
	if err != nil {
		t.Fatal(err)
	}
	entries, seen := 0, 0
	if _, err := leader.node.History(context.Background(), 1, last, func(b state.Block) error {
		if len(b.Txs) == 0 {
			return nil
		}
		size := 0
		for _, tx := range b.Txs {
			size += len(tx)
		}
		if size > maxBytes {
			return fmt.Errorf("entry %d carries %d bytes (%d transactions), more than Batch.MaxBytes %d", b.Index, size, len(b.Txs), maxBytes)
		}
		entries, seen = entries+1, seen+len(b.Txs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen != n || entries < n*txBytes/maxBytes {
		t.Fatalf("%d transactions in %d entries, want %d in at least %d", seen, entries, n, n*txBytes/maxBytes)
	}
	t.Logf("%d transactions of %d KiB in %d entries of at most %d KiB", n, txBytes>>10, entries, maxBytes>>10)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := leader.node.Submit(ctx, [][]byte{make([]byte, maxBytes+1)}); !errors.Is(err, consensus.ErrTooLarge) {
		t.Fatalf("a transaction larger than an entry: %v, want ErrTooLarge", err)
	}
}
