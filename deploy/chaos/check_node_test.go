package chaos

import (
	"context"
	"crypto/ed25519"
	"io"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// TestChecksOnARealNode runs the campaign's workload and checks (resolve,
// outcome streams, acknowledged, the ledger-history check, the log-order
// replay, balances, porcupine) against one real in-process node, with no
// fault: a history the ledger produced passes them all, and a transfer
// made outside the workload is named by the history check.
func TestChecksOnARealNode(t *testing.T) {
	cl := nodetest.New(t, nodetest.Options{Voters: 1, Regulators: 1})
	cl.StartAll()
	cl.WaitReady("pboc", 30*time.Second)
	// Signed in as the regulator, as the campaign's clients are.
	sdk, err := client.New(cl.URL("pboc"), client.As(*cl.Regulator()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	builder, err := sdk.Builder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &Campaign{
		cfg:   Config{Seed: 5, OpBudget: 20 * time.Second, PaceMs: 1, Log: io.Discard},
		began: time.Now(), nodes: []string{"pboc"}, voters: []string{"pboc"},
		clients: map[string]*client.Client{"pboc": sdk}, builder: builder,
		cbKey: cl.Net.CentralBank(), bankKeys: map[string]ed25519.PrivateKey{"icbc": cl.Net.Bank("icbc")},
	}
	cell0, err := c.setupCell(ctx, 0, "icbc")
	if err != nil {
		t.Fatal(err)
	}
	c.wl = &workload{c: c, cells: []*cell{cell0}, stop: make(chan struct{})}
	// Two clients of one cell at once: they collide on inputs.
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(5, uint64(k)))
			for range 30 {
				c.wl.transfer(cell0, k, rng)
			}
		}()
	}
	wg.Wait()
	ops := c.wl.ops()
	codes := map[statepb.Code]int{}
	for _, o := range ops {
		switch o.status {
		case statusAcked:
			codes[o.result.GetCode()]++
		case statusUnknown: // a loaded machine: the checks resolve it
			t.Logf("transfer %x: outcome unknown (%s)", o.tx.ID[:6], o.apiCode)
		default:
			t.Fatalf("transfer %x: %s (%s) against a healthy node", o.tx.ID[:6], statusName(o.status), o.apiCode)
		}
	}
	if codes[statepb.Code_CODE_OK] == 0 {
		t.Fatalf("no transfer went through: %v", codes)
	}
	rep := runChecks(t, c, ops)
	if len(rep.InvariantBreaks) != 0 || rep.Linearizable != "linearizable" {
		t.Fatalf("checks on the ledger's own history (%v): %q, %s", codes, rep.InvariantBreaks, rep.Linearizable)
	}

	// A payment from w0 that no operation of the cell made.
	res, err := sdk.Pay(ctx, cell0.wallets[0].key, cell0.wallets[0].id, []*statepb.Payee{client.PayTo(cell0.wallets[1].id, state.Yuan)})
	if err != nil || res.GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("pay outside the workload: %v %v", res, err)
	}
	rep = &Report{}
	c.checkHistory(rep, cell0, ops)
	want := "that is no transfer of the cell's history decided OK"
	if len(rep.InvariantBreaks) != 2 || !strings.Contains(rep.InvariantBreaks[0], want) {
		t.Fatalf("history check after a payment outside the workload: %q, want it named for w0 and w1", rep.InvariantBreaks)
	}
}

// runChecks is check() without convergence (one node) and audits.
func runChecks(t *testing.T, c *Campaign, ops []*op) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.client("pboc").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{ByCode: map[string]int{}}
	streams := c.streamAll(rep, st.GetNode().GetAppliedIndex())
	c.resolve(rep, ops)
	c.checkAcked(rep, ops, streams)
	completeFromStreams(ops, streams)
	c.checkCells(rep, ops, streams)
	return rep
}
