package node_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"testing"
	"time"

	"github.com/dcep/dcep/internal/load"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodetest"
)

// BenchmarkCluster is SPEC §3's throughput and latency benchmark: 2-in/2-out
// transfers submitted by concurrent clients over the real API (Connect
// protocol, protobuf, HTTP/1.1 keep-alive on loopback) to a network of real
// nodes (Pebble, raft-boltdb, libp2p on loopback) in this process, for
//
//	3voters:      3 voters;
//	7voters+1reg: the full dev network, 7 voters and 1 regulator.
//
// Clients spread over the voters, as wallets spread over their banks:
// followers forward to the leader. Each topology runs a closed loop at
// maximum (enough clients to saturate) and then an open loop at half the
// rate the closed loop reached (arrivals on a fixed schedule; latency counts
// from the scheduled arrival, so queueing is not hidden). Latency is submit
// to committed-and-applied on the node the client asked. The physical limit
// is measured in the same run, before the cluster starts and again after
// the max phase: raw Ed25519 verifications/s on all cores, divided by the
// nodes that validate every transaction. Setup (wallets, funding, signing
// every transfer) is outside the measured phases.
//
// Run it (it ignores b.N; docs/PERFORMANCE.md has the figures):
//
//	go test -run '^$' -bench BenchmarkCluster -benchtime 1x -timeout 30m ./node/
//
// Flags go after the package; see the dcep.bench.* flags below (duration,
// clients, target, h2c, procs, cpuprofile, ...).
func BenchmarkCluster(b *testing.B) {
	for _, topo := range []struct {
		name               string
		voters, regulators int
	}{
		{"3voters", 3, 0},
		{"7voters+1reg", 7, 1},
	} {
		b.Run(topo.name, func(b *testing.B) {
			r := runClusterBench(b, topo.voters, topo.regulators)
			r.report(b)
		})
	}
}

var (
	benchDuration = flag.Duration("dcep.bench.duration", 10*time.Second, "BenchmarkCluster: measured time of each phase (max, half max)")
	benchClients  = flag.Int("dcep.bench.clients", 1536, "BenchmarkCluster: concurrent clients in the closed loop, spread over the targets")
	benchWallets  = flag.Int("dcep.bench.wallets", 2000, "BenchmarkCluster: payer wallets")
	benchTarget   = flag.String("dcep.bench.target", "voters", "BenchmarkCluster: submit to every voter (voters: followers forward to the leader) or only to the leader (leader)")
	benchH2C      = flag.Bool("dcep.bench.h2c", false, "BenchmarkCluster: clients speak HTTP/2 without TLS (one connection per node) instead of HTTP/1.1 (a connection per concurrent request)")
	benchConnect  = flag.Bool("dcep.bench.connect", false, "BenchmarkCluster: clients use connect-go's client over net/http instead of the lean wire client (same requests on the wire, more client CPU)")
	benchInflight = flag.Int("dcep.bench.inflight", 0, "BenchmarkCluster: override [batch] max_inflight (0: the default)")
	benchDelayUs  = flag.Int("dcep.bench.delayus", 0, "BenchmarkCluster: override [batch] max_delay_us (0: the default)")
	benchMemtable = flag.Int("dcep.bench.memtablemb", 0, "BenchmarkCluster: override state_memtable_mb (0: the default)")
	benchCommitMs = flag.Int("dcep.bench.commitms", 0, "BenchmarkCluster: override raft commit_ms (0: the default)")
	benchRate     = flag.Float64("dcep.bench.rate", 0, "BenchmarkCluster: open-loop rate instead of half the measured max (experiments)")
	benchProcs    = flag.Bool("dcep.bench.procs", false, "BenchmarkCluster: run every node as its own OS process (nodetest.StartProcess) instead of in the benchmark's process")
	benchProfile  = flag.String("dcep.bench.cpuprofile", "", "BenchmarkCluster: write CPU profiles of the max and half-max phases to this file (suffixed with the topology, and .half)")
	benchHeap     = flag.String("dcep.bench.memprofile", "", "BenchmarkCluster: write a heap profile taken right after the max phase to this file (suffixed with the topology)")
	benchTrace    = flag.String("dcep.bench.trace", "", "BenchmarkCluster: write an execution trace of the first 3 s of the half-max phase to this file (suffixed with the topology), to see where a transfer waits")
)

// benchConfig is what every benchmark node runs with: the dev network's
// settings (consensus defaults, as `dcepd dev` uses), no per-IP rate limit
// (all clients share 127.0.0.1).
func benchConfig(cfg *node.Config) {
	cfg.Raft = node.RaftConfig{}
	cfg.Raft.CommitMs = *benchCommitMs
	cfg.Batch.MaxInflight, cfg.Batch.MaxDelayUs = *benchInflight, *benchDelayUs
	if *benchMemtable > 0 {
		cfg.StateMemtableMB = *benchMemtable
	}
	cfg.Limits = node.LimitsConfig{RatePerSec: -1, SubmitTimeoutMs: 30_000}
}

func runClusterBench(b *testing.B, voters, regulators int) *clusterResult {
	nodes := voters + regulators
	// The limit is measured before the cluster starts and again right
	// after the max phase (the cluster idle), and the mean is used, so a
	// machine whose speed drifts during the run (other load, frequency
	// scaling) is compared like with like.
	verifyRate, verifyCPU := load.MeasureVerifyRate(2 * time.Second)
	limit := verifyRate / float64(nodes)
	b.Logf("ed25519: %.0f verify/s on %d cores → limit %.0f tx/s for %d validating nodes", verifyRate, runtime.GOMAXPROCS(0), limit, nodes)

	c := nodetest.New(b, nodetest.Options{Voters: voters, Regulators: regulators, Tweak: benchConfig})
	if *benchProcs {
		for _, name := range c.Names {
			c.StartProcess(name)
		}
	} else {
		c.StartAll()
	}
	leader := waitLeaderAPI(b, c)

	// Pre-sign enough transfers for a warm-up, a closed loop at up to 75%
	// of the limit for the whole duration (beyond, it ends early: the rate
	// is still right) and an open loop at up to 40%. The limit from CPU
	// time per verification is used if higher: it does not drop when
	// other processes take the cores for a moment. (More would only slow
	// the setup and fill Pebble's memtables before the run.)
	d := benchDuration.Seconds()
	size := max(limit, float64(runtime.GOMAXPROCS(0))/verifyCPU.Seconds()/float64(nodes))
	warm := int(size * 0.5)
	closed := int(0.75 * size * d)
	half := int(0.4 * size * d)
	w := newBenchWorkload(b, c, leader, *benchWallets, warm+closed+half)

	targets := c.Names[:voters]
	if *benchTarget == "leader" {
		targets = []string{leader}
	}
	// 1536 clients saturate both topologies on 2 cores (batches grow with
	// concurrency until the cores are busy); far beyond (3,500 on the 7+1
	// network) the nodes' Raft heartbeats starve behind the load in this
	// one process and the leader steps down.
	clients := max(1, *benchClients)
	lg := newLoadGen(b, c, targets, clients)
	defer lg.Close()

	res := &clusterResult{procs: *benchProcs, voters: voters, regulators: regulators, cores: runtime.GOMAXPROCS(0), verifyRate: verifyRate, verifyCPU: verifyCPU, limit: limit, clients: clients, target: *benchTarget}

	ctx := context.Background()
	b.ResetTimer()
	// Warm-up: connections, caches, Pebble memtables, Raft pipelines.
	lg.ClosedLoop(ctx, w.txs[:warm], 0, nil)
	time.Sleep(500 * time.Millisecond)

	stopProfile := startProfile(b, voters, regulators, "")
	before, cpu0 := nodeMetrics(c), clusterCPU()
	res.max = lg.ClosedLoop(ctx, w.txs[warm:warm+closed], *benchDuration, nil)
	cpu := clusterCPU() - cpu0
	res.cpuPerTx = cpu / time.Duration(max(1, res.max.OK))
	res.coresUsed = cpu.Seconds() / res.max.Elapsed.Seconds()
	stopProfile()
	writeHeapProfile(b, voters, regulators)
	logMetricsDelta(b, before, nodeMetrics(c), res.max.Elapsed)
	time.Sleep(500 * time.Millisecond)
	verifyAfter, cpuAfter := load.MeasureVerifyRate(2 * time.Second)
	res.verifyRates = [2]float64{verifyRate, verifyAfter}
	res.verifyRate, res.verifyCPU = (verifyRate+verifyAfter)/2, (verifyCPU+cpuAfter)/2
	res.limit = res.verifyRate / float64(nodes)
	time.Sleep(time.Second)

	rate := res.max.Rate() / 2
	if *benchRate > 0 {
		rate = *benchRate
	}
	n := min(int(rate*d), half)
	before = nodeMetrics(c)
	stopTrace := startTrace(b, voters, regulators, 3*time.Second)
	stopProfile = startProfile(b, voters, regulators, ".half")
	cpu0 = clusterCPU()
	res.half = lg.OpenLoop(ctx, w.txs[warm+closed:warm+closed+n], rate, nil)
	stopProfile()
	res.halfCores = (clusterCPU() - cpu0).Seconds() / res.half.Elapsed.Seconds()
	stopTrace()
	logMetricsDelta(b, before, nodeMetrics(c), res.half.Elapsed)
	b.Logf("half max, latency by second of arrival [p50/p99/max ms]:%s", res.half.BySecond)
	b.StopTimer()

	convergeAPI(b, c, time.Minute)
	return res
}

type clusterResult struct {
	procs              bool // nodes ran as separate processes
	voters, regulators int
	cores              int
	verifyRate, limit  float64
	verifyRates        [2]float64    // before the cluster started, after the max phase
	cpuPerTx           time.Duration // process CPU per committed transfer at max
	verifyCPU          time.Duration // CPU per verification
	coresUsed          float64       // process CPU / wall time at max
	halfCores          float64       // the same at half max
	clients            int
	target             string
	max, half          *load.Phase
}

func (r *clusterResult) report(b *testing.B) {
	b.ReportMetric(r.max.Rate(), "tx/s")
	b.ReportMetric(load.Ms(r.max.Pct(0.50)), "p50_ms")
	b.ReportMetric(load.Ms(r.max.Pct(0.99)), "p99_ms")
	b.ReportMetric(load.Ms(r.max.Pct(0.999)), "p999_ms")
	b.ReportMetric(r.half.Rate(), "half_tx/s")
	b.ReportMetric(load.Ms(r.half.Pct(0.50)), "half_p50_ms")
	b.ReportMetric(load.Ms(r.half.Pct(0.99)), "half_p99_ms")
	b.ReportMetric(load.Ms(r.half.Pct(0.999)), "half_p999_ms")
	b.ReportMetric(r.limit, "limit_tx/s")
	b.ReportMetric(r.max.Rate()/r.limit, "ratio")
	b.ReportMetric(0, "ns/op")

	topo := fmt.Sprintf("%d voters", r.voters)
	if r.regulators > 0 {
		topo += fmt.Sprintf(" + %d regulator", r.regulators)
	}
	f := os.Stdout
	where := "one process"
	if r.procs {
		where = "a process per node"
	}
	fmt.Fprintf(f, "\n%s (%d validating nodes, %s; %d clients → %s; %d cores)\n", topo, r.voters+r.regulators, where, r.clients, r.target, r.cores)
	fmt.Fprintf(f, "  ed25519 verify/s (all cores): %.0f (before %.0f, after %.0f)   limit = verify/s ÷ %d = %.0f tx/s\n",
		r.verifyRate, r.verifyRates[0], r.verifyRates[1], r.voters+r.regulators, r.limit)
	fmt.Fprintf(f, "  %-22s %9s %8s %8s %8s %8s %7s %6s\n", "phase", "tx/s", "p50 ms", "p99 ms", "p999 ms", "max ms", "txs", "fail")
	for _, p := range []struct {
		name string
		r    *load.Phase
	}{{"max (closed loop)", r.max}, {fmt.Sprintf("half max (open %.0f/s)", r.half.Offered), r.half}} {
		fmt.Fprintf(f, "  %-22s %9.0f %8.1f %8.1f %8.1f %8.1f %7d %6d\n", p.name, p.r.Rate(), load.Ms(p.r.Pct(0.5)), load.Ms(p.r.Pct(0.99)), load.Ms(p.r.Pct(0.999)), load.Ms(p.r.Pct(1)), p.r.OK, p.r.Failed)
	}
	verifyCPU := r.verifyCPU
	fmt.Fprintf(f, "  CPU at max: %.2f cores busy; %v per transfer (%d single-signature verifications would be ≈ %v, %.0f%%; the ledger verifies in batches)\n", r.coresUsed, r.cpuPerTx.Round(time.Microsecond),
		r.voters+r.regulators, (time.Duration(r.voters+r.regulators) * verifyCPU).Round(time.Microsecond), 100*float64(time.Duration(r.voters+r.regulators)*verifyCPU)/float64(r.cpuPerTx))
	fmt.Fprintf(f, "  CPU at half max: %.2f cores busy\n", r.halfCores)
	fmt.Fprintf(f, "  ratio max/limit: %.2f (target ≥ 0.50)   p99 at half max: %.1f ms (target ≤ 100)\n\n", r.max.Rate()/r.limit, load.Ms(r.half.Pct(0.99)))
	if r.max.Failed > 0 || r.half.Failed > 0 {
		b.Errorf("%d + %d transfers did not commit OK; first: %s", r.max.Failed, r.half.Failed, r.max.FirstErr+r.half.FirstErr)
	}
}

// createBenchFile creates base suffixed with the topology and suffix.
func createBenchFile(b *testing.B, base string, voters, regulators int, suffix string) *os.File {
	f, err := os.Create(fmt.Sprintf("%s.%dv%dr%s", base, voters, regulators, suffix))
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// startProfile profiles a phase if -dcep.bench.cpuprofile is set.
func startProfile(b *testing.B, voters, regulators int, suffix string) func() {
	if *benchProfile == "" {
		return func() {}
	}
	f := createBenchFile(b, *benchProfile, voters, regulators, suffix)
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// writeHeapProfile writes what is live now if -dcep.bench.memprofile is set.
func writeHeapProfile(b *testing.B, voters, regulators int) {
	if *benchHeap == "" {
		return
	}
	f := createBenchFile(b, *benchHeap, voters, regulators, "")
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// startTrace traces the next d if -dcep.bench.trace is set; the returned
// func waits for the trace to be written.
func startTrace(b *testing.B, voters, regulators int, d time.Duration) func() {
	if *benchTrace == "" {
		return func() {}
	}
	f := createBenchFile(b, *benchTrace, voters, regulators, "")
	if err := trace.Start(f); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	t := time.AfterFunc(d, func() {
		trace.Stop()
		_ = f.Close()
		close(done)
	})
	return func() {
		if t.Stop() {
			trace.Stop()
			_ = f.Close()
			return
		}
		<-done
	}
}
