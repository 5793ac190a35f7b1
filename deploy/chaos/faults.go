package chaos

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a fault kind. Every kind is injected, held, healed and recovered
// from one at a time while the workload runs (faults.go, inject.go).
type Kind string

const (
	KillNode      Kind = "kill-node"      // SIGKILL one node (any, the regulator included)
	KillLeader    Kind = "kill-leader"    // SIGKILL the leader
	KillMajority  Kind = "kill-majority"  // SIGKILL 4 of 7 voters: quorum lost
	KillAll       Kind = "kill-all"       // SIGKILL every node at once
	PauseNode     Kind = "pause-node"     // SIGSTOP one node, SIGCONT at heal
	PauseLeader   Kind = "pause-leader"   // SIGSTOP the leader
	IsolateNode   Kind = "isolate-node"   // one node cut off from every peer
	IsolateLeader Kind = "isolate-leader" // the leader cut off from every peer
	SplitMajority Kind = "split-majority" // voters 4 | 3 (the regulator on a random side)
	OneWay        Kind = "one-way"        // one node (often the leader) hears nothing, or says nothing
	Bridge        Kind = "bridge"         // two sides that cannot reach each other; one voter reaches both
	NetemLatency  Kind = "netem-latency"  // delay with jitter on some nodes
	NetemLoss     Kind = "netem-loss"     // packet loss on some nodes
	NetemReorder  Kind = "netem-reorder"  // reordering on some nodes
	ClockSkew     Kind = "clock-skew"     // one node restarted with its wall clock offset
	DiskFull      Kind = "disk-full"      // one node's data filesystem filled until writes fail
	CorruptPebble Kind = "corrupt-pebble" // bytes flipped in a ledger sstable, then restart
	CorruptRaft   Kind = "corrupt-raft"   // bytes flipped in the bbolt Raft log, then restart
	CorruptSnap   Kind = "corrupt-snap"   // bytes flipped in the newest snapshot, ledger removed, then restart
)

// Kinds lists every kind, in the order the short campaign plays them.
var Kinds = []Kind{
	KillNode, KillLeader, PauseNode, IsolateNode, NetemLatency, KillMajority, IsolateLeader,
	SplitMajority, OneWay, Bridge, NetemLoss, NetemReorder, PauseLeader, ClockSkew, DiskFull,
	CorruptPebble, CorruptRaft, CorruptSnap, KillAll,
}

// ParseKinds reads a comma-separated list of kinds ("" or "all": every
// kind).
func ParseKinds(s string) ([]Kind, error) {
	if s == "" || s == "all" {
		return slices.Clone(Kinds), nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("unknown fault kind %q (kinds: %s)", k, joinKinds(Kinds))
		}
		out = append(out, k)
	}
	return out, nil
}

func joinKinds(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

// Fault is one scheduled fault. Targets are chosen when it is injected
// (the leader is whoever leads then), from a generator seeded by the
// campaign seed and Seq, so a replay with the same seed draws the same
// choices wherever the network is in the same shape.
type Fault struct {
	Seq  int
	Kind Kind
	// Hold is how long the fault lasts before it is healed; Gap how long
	// the network runs clean after it has recovered.
	Hold, Gap time.Duration
}

// Schedule draws n faults from seed: first every kind of kinds once, in
// order (so any run of at least len(kinds) faults covers them all), then
// kinds at random.
func Schedule(seed int64, n int, kinds []Kind) []Fault {
	rng := mrand.New(mrand.NewPCG(uint64(seed), 0x5eed))
	out := make([]Fault, 0, n)
	for i := range n {
		k := kinds[i%len(kinds)]
		if i >= len(kinds) {
			k = kinds[rng.IntN(len(kinds))]
		}
		out = append(out, Fault{Seq: i + 1, Kind: k, Hold: holdFor(k, rng), Gap: time.Duration(1000+rng.IntN(2000)) * time.Millisecond})
	}
	return out
}

// holdFor draws how long a fault lasts.
func holdFor(k Kind, rng *mrand.Rand) time.Duration {
	ms := 3000 + rng.IntN(4000)
	switch k {
	case NetemLatency, NetemLoss, NetemReorder, SplitMajority, Bridge, OneWay:
		ms = 5000 + rng.IntN(5000)
	case ClockSkew:
		ms = 8000 + rng.IntN(4000)
	case DiskFull:
		ms = 6000 + rng.IntN(4000)
	case CorruptPebble, CorruptRaft, CorruptSnap:
		ms = 0 // the restart is the fault; recovery is waited for
	}
	return time.Duration(ms) * time.Millisecond
}

// rngFor is the generator a fault draws its targets from.
func rngFor(seed int64, seq int) *mrand.Rand {
	return mrand.New(mrand.NewPCG(uint64(seed), uint64(seq)*0x9e3779b97f4a7c15))
}
