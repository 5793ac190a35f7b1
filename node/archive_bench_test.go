package node_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// BenchmarkReplay100k: a regulator re-validates 100,000 committed
// transactions from genesis through the API (archive segments, then its
// Raft log; one signature verifier, as in production) on a real network of
// one voter and the regulator. Setup (signing, committing) is outside the
// timer. Reports transactions re-validated per second and the archive's
// bytes per transaction.
//
//	go test -run '^$' -bench BenchmarkReplay100k -benchtime 1x -timeout 20m ./node/
func BenchmarkReplay100k(b *testing.B) {
	const total = 100_000
	c := nodetest.New(b, nodetest.Options{Voters: 1, Regulators: 1, Tweak: func(cfg *node.Config) {
		cfg.Raft.HeartbeatMs, cfg.Raft.ElectionMs, cfg.Raft.LeaderLeaseMs = 1000, 1000, 500
		cfg.Limits.SubmitTimeoutMs = 60_000
	}})
	c.StartAll()
	leader := c.WaitLeader()
	txs := signIssues(b, c.Net, total)
	for i := 0; i < len(txs); i += 5000 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := c.Node(leader).Consensus().Submit(ctx, txs[i:min(i+5000, len(txs))])
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.GetCode() != statepb.Code_CODE_OK {
				b.Fatalf("issue: %v", r)
			}
		}
	}
	reg := c.Names[1]
	c.Converge(c.Node(leader).Store().Meta().GetAppliedIndex(), 120*time.Second)
	cl := auditClient(c, reg)
	b.ResetTimer()
	var last *nodepb.ReplayResponse
	for range b.N {
		resp, err := cl.Replay(context.Background(), connect.NewRequest(&nodepb.ReplayRequest{}))
		if err != nil {
			b.Fatal(err)
		}
		if last = resp.Msg; !last.GetReproduced() || last.GetTransactions() < total || last.GetFirstBlockIndex() != 1 {
			b.Fatalf("replay: %v", last)
		}
	}
	b.StopTimer()
	st := c.Node(reg).Consensus().ArchiveStatus()
	archivedTxs := txsUpTo(b, c.Node(reg).Store(), st.End)
	b.ReportMetric(float64(last.GetTransactions())/(float64(last.GetElapsedMs())/1000), "tx/s")
	b.ReportMetric(float64(last.GetElapsedMs()), "ms/replay")
	if archivedTxs > 0 {
		b.ReportMetric(float64(st.Bytes)/float64(archivedTxs), "archive-B/tx")
	}
	b.Logf("replayed %d transactions in %d blocks (indexes %d..%d; %d archive segments to %d, then the log %d..%d) in %d ms; archive: %d segments, %d bytes for %d transactions",
		last.GetTransactions(), last.GetBlocks(), last.GetFirstBlockIndex(), last.GetLastBlockIndex(), last.GetArchiveSegments(), last.GetArchiveLastIndex(),
		last.GetLogFirstIndex(), last.GetLogLastIndex(), last.GetElapsedMs(), st.Segments, st.Bytes, archivedTxs)
}

// signIssues signs n issues (central bank, spread over the banks).
func signIssues(tb testing.TB, net *statetest.Net, n int) [][]byte {
	out := make([][]byte, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				body := statetest.IssueBody(statetest.BankIDs[i%len(statetest.BankIDs)], uint64(1+i%1000))
				body.Version, body.ChainId, body.Nonce = statepb.TxVersion, net.Genesis.GetChainId(), uint64(i)+1<<41
				raw, _, err := net.Signer.Sign(body, net.CentralBank())
				if err != nil {
					panic(err)
				}
				out[i] = raw
			}
		}()
	}
	wg.Wait()
	return out
}

// txsUpTo counts the transactions a ledger recorded up to index upTo.
func txsUpTo(tb testing.TB, s *state.Store, upTo uint64) uint64 {
	var n uint64
	for from := uint64(0); ; {
		bs, err := s.Blocks(from, 0)
		if err != nil {
			tb.Fatal(err)
		}
		for _, b := range bs {
			if b.GetLogIndex() <= upTo {
				n += uint64(len(b.GetResults()))
			}
			from = b.GetLogIndex() + 1
		}
		if len(bs) < state.MaxPageSize {
			return n
		}
	}
}
