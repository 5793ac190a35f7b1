package chaos

import (
	"io"
	"strings"
	"testing"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// replayFixture is the shape of the CI break (seed 1, "cell 4: in log
// order, tx 5b562ee648ac … at 2098 is INPUT_SPENT, which the model cannot
// explain"): a transfer s spends the cell's funding output x and commits
// at 2090; a concurrent transfer t of the same wallet, built from a stale
// view, lists x too and is refused INPUT_SPENT at 2098. The ledger is right;
// the model can explain t only if it knows s.
func replayFixture() (cl *cell, s, t *op, streams []map[[32]byte][]appearance) {
	x := outKey{id(1), 0}
	cl = &cell{id: 4, initial: []outputAt{{key: x, wallet: 0, amount: 20_000 * state.Yuan}}}
	res := func(tx byte, code statepb.Code, index uint64) *statepb.TxResult {
		return &statepb.TxResult{TxId: []byte{tx}, Code: code, LogIndex: index, TimeMs: now}
	}
	s = &op{kind: opTransfer, cell: 4, worker: 0, tx: &client.SignedTx{ID: id(10)}, from: 0, to: 1,
		inputs: []outKey{x}, amount: 300 * state.Yuan, status: statusUnknown}
	t = &op{kind: opTransfer, cell: 4, worker: 1, tx: &client.SignedTx{ID: id(11)}, from: 0, to: 1,
		inputs: []outKey{x}, amount: 500 * state.Yuan, status: statusAcked, result: res(11, statepb.Code_CODE_INPUT_SPENT, 2098)}
	t.resolved = t.result
	// Node 0's stream and node 1's both hold the two decisions.
	for range 2 {
		streams = append(streams, map[[32]byte][]appearance{
			s.tx.ID: {{index: 2090, pos: 3, result: res(10, statepb.Code_CODE_OK, 2090)}},
			t.tx.ID: {{index: 2098, pos: 0, result: t.result}},
		})
	}
	return cl, s, t, streams
}

func testCampaign() *Campaign { return &Campaign{cfg: Config{Log: io.Discard}} }

// TestReplayBreaksWhenASpenderIsMissing: a transfer the ledger decided but
// whose record the checker did not get (here: s, unknown to its client,
// and its GetTx on node 0 failed) is left out of the log-order replay, and
// the next transfer refused for spending the same output is then the break,
// in exactly the CI campaign's words, naming a transaction the ledger
// decided right.
func TestReplayBreaksWhenASpenderIsMissing(t *testing.T) {
	cl, s, tr, streams := replayFixture()
	c, rep := testCampaign(), &Report{}
	if c.replayCell(rep, testModel(), cl, []*op{s, tr}, streams) != nil {
		t.Fatal("the replay explained t without s")
	}
	if len(rep.InvariantBreaks) != 1 || !strings.Contains(rep.InvariantBreaks[0], "at 2098 is INPUT_SPENT, which the model cannot explain") {
		t.Fatalf("breaks %q, want the model break at 2098", rep.InvariantBreaks)
	}
}

// TestReplayCompletedFromEveryNode: the fix. A lookup that failed on node 0
// no longer removes the transaction from the model: the record comes from
// the first node that has one (pickResolved), else from the outcome
// streams (completeFromStreams); the replay then explains t.
func TestReplayCompletedFromEveryNode(t *testing.T) {
	for _, how := range []string{"pickResolved", "completeFromStreams"} {
		cl, s, tr, streams := replayFixture()
		switch how {
		case "pickResolved":
			s.resolved = pickResolved([]*statepb.TxResult{nil, streams[1][s.tx.ID][0].result})
		case "completeFromStreams":
			streams[0] = map[[32]byte][]appearance{} // node 0's stream lost too
			completeFromStreams([]*op{s, tr}, streams)
		}
		if s.resolved == nil || s.resolved.GetLogIndex() != 2090 {
			t.Fatalf("%s: s resolved %v, want OK at 2090", how, s.resolved)
		}
		c, rep := testCampaign(), &Report{}
		final := c.replayCell(rep, testModel(), cl, []*op{s, tr}, streams)
		if final == nil || len(rep.InvariantBreaks) != 0 {
			t.Fatalf("%s: breaks %q", how, rep.InvariantBreaks)
		}
		if got := final.balance(1); got != 300*state.Yuan {
			t.Fatalf("%s: w1 holds %d fen, want s's 300 yuan", how, got)
		}
	}
}

// TestReplaySameBlockOrder: two transfers in one block are replayed in the
// block's order even when node 0's stream lacks the block (position from
// the next node's), so the refused one comes after the one that spent.
func TestReplaySameBlockOrder(t *testing.T) {
	cl, s, tr, streams := replayFixture()
	r := streams[1][s.tx.ID][0].result
	r.LogIndex = 2098
	s.resolved = r
	streams[1][s.tx.ID] = []appearance{{index: 2098, pos: 5, result: r}}
	streams[1][tr.tx.ID] = []appearance{{index: 2098, pos: 7, result: tr.result}}
	streams[0] = map[[32]byte][]appearance{}
	// t first in the history: only the positions order them.
	c, rep := testCampaign(), &Report{}
	if c.replayCell(rep, testModel(), cl, []*op{tr, s}, streams) == nil {
		t.Fatalf("breaks %q", rep.InvariantBreaks)
	}
}
