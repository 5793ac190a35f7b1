package capacity

// Defaults are the inputs as measured on this project's 2-core machine
// (docs/PERFORMANCE.md) or, where no measurement exists yet, assumed; Sources
// says which for each. Change one with the command's flags.
func Defaults(targetTxPerSec float64, shards int) (Inputs, map[string]string) {
	in := Inputs{
		TargetTxPerSec:  targetTxPerSec,
		CPUIntraUs:      88,
		CPUCrossUs:      40,
		OverheadFactor:  1.5,
		TxBytes:         268,
		FramingFactor:   1.3,
		Shards:          shards,
		Voters:          7,
		Regulators:      1,
		CrossFraction:   1 - 1/float64(shards),
		CoresPerHost:    32,
		UsableCPU:       0.6,
		NICBitsPerSec:   10e9,
		FsyncsPerSecMax: 20_000,
		BatchesPerSec:   200,
		RTTMs:           40,
		FsyncMs:         2,
		BatchDelayMs:    5,
		ApplyQueueMs:    20,
	}
	src := map[string]string{
		"TargetTxPerSec":  "the question asked",
		"CPUIntraUs":      "measured: 7 + 1 BenchmarkCluster profile, per node (verify 26, dup check 20, decode 7, apply+commit 35), docs/PERFORMANCE.md",
		"CPUCrossUs":      "assumed: the payee shard's apply and commit of a credit (35 µs measured for a transfer's) + a Merkle path; the block certificate's quorum signatures are amortised over the block's credits",
		"OverheadFactor":  "measured: whole process ÷ ledgers and Raft, 1,059 / 704 µs (7 + 1) and 463 / 317 µs (3 voters)",
		"TxBytes":         "measured: TestTxBytesMatchesModel (a signed 2-in/2-out transfer)",
		"FramingFactor":   "assumed: Raft entry header, batch framing, yamux and noise",
		"Shards":          "chosen",
		"Voters":          "SPEC: the central bank and six operating banks",
		"Regulators":      "SPEC: read-only nodes",
		"CrossFraction":   "assumed: payer and payee uniform over shards, 1 − 1/shards",
		"CoresPerHost":    "assumed: a bank's commodity server",
		"UsableCPU":       "chosen: 40% headroom for peaks and failover",
		"NICBitsPerSec":   "assumed: 10 GbE",
		"FsyncsPerSecMax": "assumed: NVMe with power-loss protection",
		"BatchesPerSec":   "assumed: a busy group commits a batch every 5 ms",
		"RTTMs":           "the issue: inter-city links 20–40 ms (worst)",
		"FsyncMs":         "assumed: NVMe fsync p99",
		"BatchDelayMs":    "measured setting: commit_ms-scale batch delay",
		"ApplyQueueMs":    "assumed: queueing at 60% utilisation, p99",
	}
	return in, src
}
