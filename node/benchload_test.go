package node_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/internal/load"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// benchWorkload is a set of pre-signed 2-in/2-out transfers (load.Build),
// each spending two outputs that no other transfer spends, so any of them
// may be in flight together.
type benchWorkload struct {
	txs [][]byte
}

const setupClients = 64

// benchPlan: 100 fen outputs, transfers of 1 fen.
func benchPlan(wallets, transfers int) load.Plan {
	return load.Plan{Wallets: wallets, Transfers: transfers, OutputFen: 100, TransferFen: 1}
}

// newBenchWorkload registers wallets tier-1 payer wallets (no limits
// interfere) and a funder, has the central bank issue and icbc exchange
// what the plan needs to the funder, and builds the workload with the
// load code `dcep bench` uses (internal/load): the funding tree, then
// transfers signed in parallel.
func newBenchWorkload(tb testing.TB, c *nodetest.Cluster, leader string, wallets, transfers int) *benchWorkload {
	tb.Helper()
	start := time.Now()
	n := c.Net
	setup, err := load.NewGen([]string{c.URL(leader)}, load.Options{Conc: setupClients})
	if err != nil {
		tb.Fatal(err)
	}
	defer setup.Close()
	submitted := 0
	all := func(txs [][]byte) {
		tb.Helper()
		submitted += len(txs)
		if r := setup.ClosedLoop(context.Background(), txs, 0, nil); r.OK != len(txs) {
			tb.Fatalf("setup: %d of %d transactions failed; first: %s", r.Failed, len(txs), r.FirstErr)
		}
	}
	personal := statepb.WalletKind_WALLET_KIND_PERSONAL

	payers := make([]load.Wallet, wallets)
	regs := [][]byte{n.Register(tb, "icbc", "funder", personal, 1, "")}
	for i := range payers {
		id := fmt.Sprintf("w%05d", i)
		regs = append(regs, n.Register(tb, statetest.BankIDs[i%len(statetest.BankIDs)], id, personal, 1, ""))
		payers[i] = load.Wallet{ID: id, Key: n.Wallet(id)}
	}
	all(regs)

	plan := benchPlan(wallets, transfers)
	root, err := plan.FunderFen()
	if err != nil {
		tb.Fatal(err)
	}
	issue, issueID := n.SignID(tb, statetest.IssueBody("icbc", root), n.CentralBank())
	all([][]byte{issue})
	ex, exID := n.SignID(tb, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "funder", root), n.Bank("icbc"))
	all([][]byte{ex})

	w, err := load.Build(context.Background(), plan, benchSigner(n), setup,
		load.Wallet{ID: "funder", Key: n.Wallet("funder")}, statetest.Out(exID, 0), payers)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("setup: %d wallets, %d setup transactions, %d transfers signed, in %v",
		wallets, submitted+w.SetupTxs, transfers, time.Since(start).Round(time.Millisecond))
	return &benchWorkload{txs: w.Txs}
}

// benchSigner signs for the test network with nonces counted from 2^40
// (the statetest helpers' own nonces stay below).
func benchSigner(n *statetest.Net) load.SignFunc {
	var nonce atomic.Uint64
	nonce.Store(1 << 40)
	return func(b *statepb.Tx, key ed25519.PrivateKey) ([]byte, [32]byte, error) {
		b.Version, b.ChainId, b.Nonce = statepb.TxVersion, n.Genesis.GetChainId(), nonce.Add(1)
		return n.Signer.Sign(b, key)
	}
}

// newLoadGen submits to targets with conc concurrent requests: the lean
// wire client unless -dcep.bench.connect or -dcep.bench.h2c.
func newLoadGen(tb testing.TB, c *nodetest.Cluster, targets []string, conc int) *load.Gen {
	urls := make([]string, len(targets))
	for i, t := range targets {
		urls[i] = c.URL(t)
	}
	g, err := load.NewGen(urls, load.Options{Conc: conc, Connect: *benchConnect, H2C: *benchH2C})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// nodeMetrics scrapes a few sums and counts from every node's /metrics, to
// show where time goes (apply time, transactions per applied batch).
func nodeMetrics(c *nodetest.Cluster) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, name := range c.Names {
		resp, err := http.Get(c.URL(name) + "/metrics")
		if err != nil {
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := map[string]float64{}
		for _, line := range strings.Split(string(raw), "\n") {
			for _, k := range []string{"dcep_apply_seconds_sum", "dcep_apply_seconds_count", "dcep_entry_transactions_sum", "dcep_entry_transactions_count", "dcep_submit_seconds_sum", "dcep_submit_seconds_count", "dcep_applied_index"} {
				if strings.HasPrefix(line, k+" ") {
					v, _ := strconv.ParseFloat(strings.TrimPrefix(line, k+" "), 64)
					m[k] = v
				}
			}
		}
		out[name] = m
	}
	return out
}

func logMetricsDelta(tb testing.TB, before, after map[string]map[string]float64, elapsed time.Duration) {
	for name, a := range after {
		b := before[name]
		d := func(k string) float64 { return a[k] - b[k] }
		batches := d("dcep_apply_seconds_count")
		tb.Logf("%-10s apply batches %5.0f (%.0f/s), %6.1f tx/batch, apply %5.1f ms/batch (%.0f%% busy), submit avg %5.1f ms (%0.f), entries %0.f",
			name, batches, batches/elapsed.Seconds(), d("dcep_entry_transactions_sum")/max(1, d("dcep_entry_transactions_count")),
			1000*d("dcep_apply_seconds_sum")/max(1, batches), 100*d("dcep_apply_seconds_sum")/elapsed.Seconds(),
			1000*d("dcep_submit_seconds_sum")/max(1, d("dcep_submit_seconds_count")), d("dcep_submit_seconds_count"), d("dcep_applied_index"))
	}
}

// waitLeaderAPI asks every node's API until one says it is the ready
// leader (works for nodes in this process and in child processes).
func waitLeaderAPI(tb testing.TB, c *nodetest.Cluster) string {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, name := range c.Names {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := c.Client(name).Status(ctx, connect.NewRequest(&nodepb.StatusRequest{}))
			cancel()
			if err == nil && st.Msg.GetNode().GetRaftState() == "Leader" && st.Msg.GetNode().GetReady() {
				return name
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatal("no leader within a minute")
	return ""
}

// convergeAPI waits until every node reports the same applied index and
// state hash: every node applied every transaction and agrees.
func convergeAPI(tb testing.TB, c *nodetest.Cluster, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		seen := map[string]bool{}
		last = ""
		for _, name := range c.Names {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := c.Client(name).Status(ctx, connect.NewRequest(&nodepb.StatusRequest{}))
			cancel()
			if err != nil {
				seen["error"], last = true, last+fmt.Sprintf(" %s: %v;", name, err)
				continue
			}
			k := fmt.Sprintf("%d/%x", st.Msg.GetNode().GetAppliedIndex(), st.Msg.GetNode().GetStateHash())
			seen[k], last = true, last+fmt.Sprintf(" %s: %s;", name, k)
		}
		if len(seen) == 1 && !seen["error"] {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("nodes did not converge within %v:%s", timeout, last)
}

// clusterCPU is the CPU time (user+system) of this process and its live
// children (the nodes, when they run as processes).
func clusterCPU() time.Duration {
	total := load.CPUTime()
	self := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	tick := time.Second / 100 // USER_HZ
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) in parentheses.
		rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 || f[1] != self {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * tick
	}
	return total
}
