package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// measureVerifyRate is the physical limit: crypto/ed25519.Verify on
// GOMAXPROCS goroutines for d, of messages the size of a transfer's signed
// bytes under distinct keys.
func measureVerifyRate(d time.Duration) (rate float64, cpuPerVerify time.Duration) {
	const sets = 256
	type signed struct {
		pub      ed25519.PublicKey
		msg, sig []byte
	}
	set := make([]signed, sets)
	for i := range set {
		seed := sha256.Sum256(fmt.Appendf(nil, "verify-%d", i))
		priv := ed25519.NewKeyFromSeed(seed[:])
		msg := make([]byte, 230)
		copy(msg, seed[:])
		set[i] = signed{priv.Public().(ed25519.PublicKey), msg, ed25519.Sign(priv, msg)}
	}
	var total atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0)
	start, cpu0 := time.Now(), cpuTime()
	for g := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := g; !stop.Load(); i++ {
				s := set[i%sets]
				if !ed25519.Verify(s.pub, s.msg, s.sig) {
					panic("ed25519: verify failed")
				}
				n++
			}
			total.Add(int64(n))
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds(), (cpuTime() - cpu0) / time.Duration(total.Load())
}

// benchWorkload is a set of pre-signed 2-in/2-out transfers, each spending
// two outputs that no other transfer spends, so any of them may be in
// flight together.
type benchWorkload struct {
	txs [][]byte
}

const (
	fanOut       = statepb.MaxPayees // outputs one setup transfer creates
	outputFen    = 100               // each payer output
	transferFen  = 1                 // each transfer pays this, change is the rest
	setupClients = 64
)

// newBenchWorkload registers wallets tier-1 payer wallets (no limits
// interfere), funds each with two outputs per transfer it will make, by a
// tree of 1-in/16-out transfers from one funder wallet, and signs
// transfers transfers in parallel: transfer t is made by wallet t mod
// wallets, spends two of its outputs and pays 1 fen to the next wallet.
func newBenchWorkload(tb testing.TB, c *nodetest.Cluster, leader string, wallets, transfers int) *benchWorkload {
	tb.Helper()
	start := time.Now()
	n := c.Net
	sub := newSetupSubmitter(c, leader)
	defer sub.close()
	personal := statepb.WalletKind_WALLET_KIND_PERSONAL

	ids := make([]string, wallets)
	regs := [][]byte{n.Register(tb, "icbc", "funder", personal, 1, "")}
	for i := range ids {
		ids[i] = fmt.Sprintf("w%05d", i)
		regs = append(regs, n.Register(tb, statetest.BankIDs[i%len(statetest.BankIDs)], ids[i], personal, 1, ""))
	}
	sub.all(tb, regs)

	per := (transfers + wallets - 1) / wallets // transfers per wallet
	outputs := wallets * 2 * per
	fans := (outputs + fanOut - 1) / fanOut
	depth, span := 0, 1
	for span < fans {
		depth, span = depth+1, span*fanOut
	}
	fanInFen := uint64(fanOut * outputFen)
	root := fanInFen * uint64(span)
	issue, issueID := n.SignID(tb, statetest.IssueBody("icbc", root), n.CentralBank())
	sub.all(tb, [][]byte{issue})
	ex, exID := n.SignID(tb, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "funder", root), n.Bank("icbc"))
	sub.all(tb, [][]byte{ex})

	signer := &parallelSigner{net: n, nonce: 1 << 40}
	funder := n.Wallet("funder")
	// Split the funder's outputs level by level until there is one per
	// fan-out transfer.
	cur, amount := []*statepb.Outpoint{statetest.Out(exID, 0)}, root
	for level := depth - 1; level >= 0; level-- {
		need := ceilDiv(fans, pow(fanOut, level))
		splits := ceilDiv(need, fanOut)
		amount /= fanOut
		bodies := make([]*statepb.Tx, splits)
		for i := range bodies {
			payees := make([]*statepb.Payee, fanOut)
			for j := range payees {
				payees[j] = statetest.Pay("funder", amount)
			}
			bodies[i] = statetest.TransferBody("funder", []*statepb.Outpoint{cur[i]}, payees...)
		}
		raws, txIDs := signer.signAll(tb, bodies, func(int) ed25519.PrivateKey { return funder })
		sub.all(tb, raws)
		cur = cur[:0:0]
		for _, id := range txIDs {
			for j := range fanOut {
				cur = append(cur, statetest.Out(id, uint32(j)))
			}
		}
		cur = cur[:need]
	}
	// Fan out to the payers: outputs wallet-major, 16 to a transfer.
	outs := make([][]*statepb.Outpoint, wallets)
	bodies := make([]*statepb.Tx, fans)
	for f := range bodies {
		payees := make([]*statepb.Payee, 0, fanOut)
		for k := f * fanOut; k < min((f+1)*fanOut, outputs); k++ {
			payees = append(payees, statetest.Pay(ids[k/(2*per)], outputFen))
		}
		// The last transfer may pay fewer: change goes back to the funder.
		bodies[f] = statetest.TransferBody("funder", []*statepb.Outpoint{cur[f]}, payees...)
	}
	raws, txIDs := signer.signAll(tb, bodies, func(int) ed25519.PrivateKey { return funder })
	sub.all(tb, raws)
	for k := range outputs {
		w := k / (2 * per)
		outs[w] = append(outs[w], statetest.Out(txIDs[k/fanOut], uint32(k%fanOut)))
	}

	// The measured transfers.
	bodies = make([]*statepb.Tx, transfers)
	for t := range bodies {
		w, k := t%wallets, t/wallets
		bodies[t] = statetest.TransferBody(ids[w], []*statepb.Outpoint{outs[w][2*k], outs[w][2*k+1]},
			statetest.Pay(ids[(w+1)%wallets], transferFen))
	}
	keys := make([]ed25519.PrivateKey, wallets)
	for i, id := range ids {
		keys[i] = n.Wallet(id)
	}
	txs, _ := signer.signAll(tb, bodies, func(t int) ed25519.PrivateKey { return keys[t%wallets] })
	tb.Logf("setup: %d wallets, %d outputs in %d setup transactions, %d transfers signed, in %v",
		wallets, outputs, sub.count(), transfers, time.Since(start).Round(time.Millisecond))
	return &benchWorkload{txs: txs}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func pow(b, e int) int {
	out := 1
	for range e {
		out *= b
	}
	return out
}

// parallelSigner signs bodies on every core with unique nonces.
type parallelSigner struct {
	net   *statetest.Net
	nonce uint64
}

func (s *parallelSigner) signAll(tb testing.TB, bodies []*statepb.Tx, key func(i int) ed25519.PrivateKey) ([][]byte, [][32]byte) {
	tb.Helper()
	raws, ids := make([][]byte, len(bodies)), make([][32]byte, len(bodies))
	for _, b := range bodies {
		s.nonce++
		b.Version, b.ChainId, b.Nonce = statepb.TxVersion, s.net.Genesis.GetChainId(), s.nonce
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				raw, id, err := s.net.Signer.Sign(bodies[i], key(i))
				if err != nil {
					failed.Store(err)
					return
				}
				raws[i], ids[i] = raw, id
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		tb.Fatal(err)
	}
	return raws, ids
}

// setupSubmitter submits setup transactions to the leader and requires OK.
type setupSubmitter struct {
	lg *loadGen
	n  int
}

func newSetupSubmitter(c *nodetest.Cluster, leader string) *setupSubmitter {
	return &setupSubmitter{lg: newLoadGen(c, []string{leader}, setupClients)}
}

func (s *setupSubmitter) all(tb testing.TB, txs [][]byte) {
	tb.Helper()
	s.n += len(txs)
	r := s.lg.closedLoop(txs, 0)
	if r.failed > 0 {
		tb.Fatalf("setup: %d of %d transactions failed; first: %s", r.failed, len(txs), r.firstErr)
	}
}

func (s *setupSubmitter) count() int { return s.n }
func (s *setupSubmitter) close()     { s.lg.close() }

// loadGen submits over the API, a client per target node (client i uses
// target i mod len(targets)), each with keep-alive HTTP/1.1 connections,
// one per concurrent request: by default the lean wireClient
// (benchwire_test.go); with -dcep.bench.connect or -dcep.bench.h2c,
// connect-go's client.
type loadGen struct {
	tr      *http.Transport
	clients []nodepbconnect.LedgerServiceClient
	wires   []*wireClient
	conc    int
}

func newLoadGen(c *nodetest.Cluster, targets []string, conc int) *loadGen {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
	if *benchH2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
		tr.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 10_000}
	}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	lg := &loadGen{tr: tr, conc: conc}
	if !*benchConnect && !*benchH2C {
		for _, t := range targets {
			lg.wires = append(lg.wires, newWireClient(c.URL(t), conc))
		}
		return lg
	}
	for _, t := range targets {
		// A default Connect client: it accepts gzip, as wallets' would.
		lg.clients = append(lg.clients, nodepbconnect.NewLedgerServiceClient(hc, c.URL(t)))
	}
	return lg
}

func (lg *loadGen) close() {
	lg.tr.CloseIdleConnections()
	for _, w := range lg.wires {
		w.close()
	}
}

// phaseResult is one load phase: latencies of transfers that committed OK.
type phaseResult struct {
	lat      []time.Duration // sorted
	ok       int
	failed   int
	firstErr string
	elapsed  time.Duration
	offered  float64 // open loop: the arrival rate
	bySecond string  // open loop: p50/p99/max ms per second of arrivals
}

func (p *phaseResult) rate() float64 { return float64(p.ok) / p.elapsed.Seconds() }

func (p *phaseResult) pct(q float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(p.lat))+0.5) - 1
	return p.lat[max(0, min(i, len(p.lat)-1))]
}

// recorder collects one phase's outcomes; slot i belongs to transaction i.
type recorder struct {
	lat    []time.Duration
	done   []bool
	failed atomic.Int64
	mu     sync.Mutex
	first  string
}

func newRecorder(n int) *recorder {
	return &recorder{lat: make([]time.Duration, n), done: make([]bool, n)}
}

func (lg *loadGen) submit(ctx context.Context, client int, tx []byte) error {
	var msg *nodepb.SubmitResponse
	if lg.wires != nil {
		var err error
		if msg, err = lg.wires[client%len(lg.wires)].submit(&nodepb.SubmitRequest{Tx: tx}); err != nil {
			return err
		}
	} else {
		resp, err := lg.clients[client%len(lg.clients)].Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
		if err != nil {
			return err
		}
		msg = resp.Msg
	}
	// Duplicate with OK is still this submission's commit: the node
	// resubmitted the same bytes after a leader change and found the first
	// outcome (each transfer is submitted once).
	if r := msg.GetResult(); r.GetCode() != statepb.Code_CODE_OK {
		return fmt.Errorf("%s (duplicate %v): %s", r.GetCode().Short(), r.GetDuplicate(), r.GetMessage())
	}
	return nil
}

func (r *recorder) record(i int, lat time.Duration, err error) {
	if err != nil {
		r.failed.Add(1)
		r.mu.Lock()
		if r.first == "" {
			r.first = err.Error()
		}
		r.mu.Unlock()
		return
	}
	r.lat[i], r.done[i] = lat, true
}

func (r *recorder) result(elapsed time.Duration) *phaseResult {
	p := &phaseResult{elapsed: elapsed, failed: int(r.failed.Load()), firstErr: r.first}
	for i, ok := range r.done {
		if ok {
			p.lat = append(p.lat, r.lat[i])
		}
	}
	slices.Sort(p.lat)
	p.ok = len(p.lat)
	return p
}

// closedLoop runs conc clients, each submitting its next transaction when
// the previous one returns, until txs run out or, if d > 0, d has passed.
func (lg *loadGen) closedLoop(txs [][]byte, d time.Duration) *phaseResult {
	rec := newRecorder(len(txs))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range lg.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(txs) || (d > 0 && time.Since(start) >= d) {
					return
				}
				t0 := time.Now()
				err := lg.submit(context.Background(), c, txs[i])
				rec.record(i, time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	return rec.result(time.Since(start))
}

// openLoop submits txs at a fixed arrival rate, whatever the responses do:
// a ticker releases every arrival that is due, each on its own goroutine.
// Latency counts from the scheduled arrival.
func (lg *loadGen) openLoop(txs [][]byte, rate float64) *phaseResult {
	rec := newRecorder(len(txs))
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := 0; i < len(txs); {
		due := min(int(time.Since(start)/interval)+1, len(txs))
		for ; i < due; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				sched := start.Add(time.Duration(i) * interval)
				err := lg.submit(context.Background(), i, txs[i])
				rec.record(i, time.Since(sched), err)
			}(i)
		}
		<-tick.C
	}
	wg.Wait()
	p := rec.result(time.Since(start))
	p.offered = rate
	p.bySecond = rec.bySecond(int(rate))
	return p
}

// bySecond summarizes latency per second of scheduled arrivals (p50/p99/max
// in ms), to tell a steady tail from one stall.
func (r *recorder) bySecond(perSecond int) string {
	var sb strings.Builder
	for lo := 0; lo < len(r.lat); lo += max(1, perSecond) {
		var ls []time.Duration
		for i := lo; i < min(lo+perSecond, len(r.lat)); i++ {
			if r.done[i] {
				ls = append(ls, r.lat[i])
			}
		}
		if len(ls) == 0 {
			continue
		}
		slices.Sort(ls)
		q := func(f float64) float64 { return ms(ls[min(len(ls)-1, int(f*float64(len(ls))))]) }
		fmt.Fprintf(&sb, " [%.0f/%.0f/%.0f]", q(0.5), q(0.99), ms(ls[len(ls)-1]))
	}
	return sb.String()
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

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
	total := cpuTime()
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
