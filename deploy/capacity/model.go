// Package capacity is the calibrated capacity model of a sharded dcep
// network (docs/scale-out.md): from per-transfer costs measured on one Raft
// group, how many hosts each bank needs for a target rate, which resource
// binds first, and the latency a cross-city network adds.
//
// It is arithmetic, not a simulation: every input is printed beside its
// source, measured (with the command that measured it) or assumed (and said
// so), so that a reader can change one and see what moves.
package capacity

import (
	"fmt"
	"io"
	"math"
)

// Inputs are the model's parameters. Units are in the names.
type Inputs struct {
	TargetTxPerSec float64 // transfers per second, the whole network

	// Per transfer, on one validating replica (one bank's copy of a shard).
	CPUIntraUs     float64 // CPU µs a replica spends on a transfer inside one shard
	CPUCrossUs     float64 // extra CPU µs on the payee shard's replica for a cross-shard credit
	OverheadFactor float64 // whole-process CPU ÷ the ledger's and Raft's own (API, GC, libp2p)
	TxBytes        float64 // a signed 2-in/2-out transfer
	FramingFactor  float64 // bytes on a link ÷ transaction bytes (Raft entry, yamux, noise)

	// The network.
	Shards        int     // Raft groups
	Voters        int     // voters per group (the central bank and six banks)
	Regulators    int     // non-voters per group
	CrossFraction float64 // share of transfers whose payee is on another shard

	// A host.
	CoresPerHost    float64 // cores a bank's host gives the node
	UsableCPU       float64 // share of a host's cores and link the model lets it use (headroom for peaks and failover)
	NICBitsPerSec   float64 // a host's network link
	FsyncsPerSecMax float64 // fsyncs a host's disk sustains (NVMe with power-loss protection)
	BatchesPerSec   float64 // Raft batches a busy group commits per second (each one fsync per replica)

	// Latency.
	RTTMs        float64 // round trip between cities (the quorum's slowest needed link)
	FsyncMs      float64 // one fsync
	BatchDelayMs float64 // how long a leader waits to fill a batch at load
	ApplyQueueMs float64 // queueing at the target utilisation (p99 extra)
}

// Result is what the model derives.
type Result struct {
	CrossTxPerSec      float64
	CPUPerTransferUs   float64 // per bank: every bank validates every transfer once
	CoresPerBank       float64
	HostsByCPU         int
	IngressBitsPerBank float64
	HostsByNIC         int
	FsyncsPerBank      float64
	HostsByFsync       int
	Hosts              int    // per bank: the largest of the three
	Binding            string // the resource that sets Hosts
	ShardsPerHost      float64
	P99IntraMs         float64
	P99CrossMs         float64
}

// Run computes the result.
func Run(in Inputs) Result {
	var r Result
	r.CrossTxPerSec = in.TargetTxPerSec * in.CrossFraction
	// A bank holds one replica of every shard, so it applies every transfer
	// once, and every cross-shard credit once more on the payee's shard.
	cpuUs := (in.TargetTxPerSec*in.CPUIntraUs + r.CrossTxPerSec*in.CPUCrossUs) * in.OverheadFactor
	r.CPUPerTransferUs = cpuUs / in.TargetTxPerSec
	r.CoresPerBank = cpuUs / 1e6
	r.HostsByCPU = ceil(r.CoresPerBank / (in.CoresPerHost * in.UsableCPU))

	// Every transfer reaches every bank once as a Raft entry from its
	// shard's leader; a cross-shard credit is a second, smaller entry
	// (counted at full size: conservative).
	bytesPerSec := (in.TargetTxPerSec + r.CrossTxPerSec) * in.TxBytes * in.FramingFactor
	r.IngressBitsPerBank = bytesPerSec * 8
	r.HostsByNIC = ceil(r.IngressBitsPerBank / (in.NICBitsPerSec * in.UsableCPU))

	// Each replica fsyncs its Raft log once per batch (the ledger, made
	// durable by checkpoints, adds a few per second, ignored).
	r.FsyncsPerBank = float64(in.Shards) * in.BatchesPerSec
	r.HostsByFsync = ceil(r.FsyncsPerBank / in.FsyncsPerSecMax)

	r.Hosts, r.Binding = r.HostsByCPU, "CPU"
	if r.HostsByNIC > r.Hosts {
		r.Hosts, r.Binding = r.HostsByNIC, "network"
	}
	if r.HostsByFsync > r.Hosts {
		r.Hosts, r.Binding = r.HostsByFsync, "fsync"
	}
	r.ShardsPerHost = float64(in.Shards) / float64(r.Hosts)

	// Submit → applied inside one shard: batch delay, leader fsync and one
	// round trip to a quorum (in parallel with the followers' fsync), apply
	// and queueing. A cross-shard credit is a second such round on the
	// payee's shard once the payer's shard has committed.
	one := in.BatchDelayMs + in.FsyncMs + in.RTTMs + in.FsyncMs + in.ApplyQueueMs
	r.P99IntraMs = one
	r.P99CrossMs = one + in.RTTMs/2 + one // the payee's bank learns of the debit over half a round trip
	return r
}

func ceil(x float64) int {
	if x <= 0 {
		return 0
	}
	return int(math.Ceil(x))
}

// Print writes the inputs with their sources and the result.
func Print(w io.Writer, in Inputs, src map[string]string, r Result) {
	row := func(name string, v float64, unit string) {
		fmt.Fprintf(w, "  %-16s %14.4g %-7s %s\n", name, v, unit, src[name])
	}
	fmt.Fprintf(w, "inputs\n")
	row("TargetTxPerSec", in.TargetTxPerSec, "tx/s")
	row("CPUIntraUs", in.CPUIntraUs, "µs")
	row("CPUCrossUs", in.CPUCrossUs, "µs")
	row("OverheadFactor", in.OverheadFactor, "×")
	row("TxBytes", in.TxBytes, "B")
	row("FramingFactor", in.FramingFactor, "×")
	row("Shards", float64(in.Shards), "groups")
	row("Voters", float64(in.Voters), "")
	row("Regulators", float64(in.Regulators), "")
	row("CrossFraction", in.CrossFraction, "")
	row("CoresPerHost", in.CoresPerHost, "cores")
	row("UsableCPU", in.UsableCPU, "")
	row("NICBitsPerSec", in.NICBitsPerSec, "bit/s")
	row("FsyncsPerSecMax", in.FsyncsPerSecMax, "/s")
	row("BatchesPerSec", in.BatchesPerSec, "/s")
	row("RTTMs", in.RTTMs, "ms")
	row("FsyncMs", in.FsyncMs, "ms")
	row("BatchDelayMs", in.BatchDelayMs, "ms")
	row("ApplyQueueMs", in.ApplyQueueMs, "ms")
	fmt.Fprintf(w, "result (per bank; every bank validates every transfer)\n")
	fmt.Fprintf(w, "  CPU per transfer %.0f µs, %.1f cores → %d hosts by CPU\n", r.CPUPerTransferUs, r.CoresPerBank, r.HostsByCPU)
	fmt.Fprintf(w, "  ingress %.2f Gbit/s → %d hosts by network\n", r.IngressBitsPerBank/1e9, r.HostsByNIC)
	fmt.Fprintf(w, "  fsyncs %.0f/s → %d hosts by disk\n", r.FsyncsPerBank, r.HostsByFsync)
	fmt.Fprintf(w, "  hosts per bank %d (bound by %s), %.1f shards per host\n", r.Hosts, r.Binding, r.ShardsPerHost)
	fmt.Fprintf(w, "  p99 submit→applied ≈ %.0f ms in one shard, ≈ %.0f ms across shards\n", r.P99IntraMs, r.P99CrossMs)
}
