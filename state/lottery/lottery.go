// Package lottery is the red-packet lottery of dcep (SPEC §5): which
// enrolments of a campaign win, as a pure function of the seed the sponsor
// revealed, the campaign id and the number of enrolments. The ledger grants
// red packets with it (one step per winner, in scheduled chunks), and
// `dcep redpacket verify` recomputes the winners with it from public data,
// so anyone can check a draw.
//
// # Algorithm (version 1)
//
// Inputs: seed (32 bytes; the campaign's commitment is SHA-256(seed)),
// campaign id (its UTF-8 bytes), n enrolments numbered 0..n−1 in the order
// the ledger accepted them, k packets.
//
// If n ≤ k every enrolment wins: the winner of rank r is enrolment r.
//
// Otherwise the winners are a uniformly random k-subset of 0..n−1 chosen
// by Robert Floyd's algorithm, driven by a SHA-256 stream:
//
//	S = {}
//	for r = 0 .. k−1:
//	    j = n − k + r
//	    t = U(j, j+1)               // uniform in 0..j
//	    winner of rank r = t if t ∉ S, else j
//	    add it to S
//
// Each step adds a new element (j is larger than every earlier pick), so
// step r alone decides rank r: the ledger can grant rank r as soon as it
// has taken step r.
//
// U(j, m), uniform in 0..m−1 without modulo bias, by rejection sampling:
// for attempt c = 0, 1, 2, ...
//
//	h = SHA-256("dcep/redpacket/lottery/v1\x00" ‖ seed ‖ u16be(len(id)) ‖ id ‖ u64be(j) ‖ u32be(c))
//	x = u64be(h[0:8])
//	accept x mod m if x < 2⁶⁴ − (2⁶⁴ mod m), else try the next c
//
// No math/rand, no clock: the same inputs give the same winners on every
// machine. The sponsor committed to the seed before enrolment closed, so
// it cannot choose the winners after seeing the list without a seed whose
// SHA-256 is the commitment.
package lottery

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
)

// Domain separates the lottery's hashes from every other use of SHA-256.
const Domain = "dcep/redpacket/lottery/v1\x00"

// SeedBytes is the size of a seed.
const SeedBytes = 32

// Commitment is what a sponsor publishes when creating a campaign.
func Commitment(seed []byte) [32]byte { return sha256.Sum256(seed) }

// Verify reports whether seed is the one committed to.
func Verify(seed, commitment []byte) bool {
	if len(seed) != SeedBytes || len(commitment) != sha256.Size {
		return false
	}
	c := Commitment(seed)
	return string(c[:]) == string(commitment)
}

// Draw is one campaign's lottery.
type Draw struct {
	Seed     []byte
	Campaign string
	// N enrolments, K packets.
	N, K uint64
}

// Winners is how many enrolments win: min(N, K).
func (d Draw) Winners() uint64 { return min(d.N, d.K) }

// Uniform returns a number uniform in [0, m) for step j (m ≥ 1).
func (d Draw) Uniform(j, m uint64) uint64 {
	if m == 0 {
		panic("lottery: Uniform of an empty range")
	}
	// 2⁶⁴ mod m, computed in uint64 arithmetic.
	rem := (math.MaxUint64 - m + 1) % m
	buf := make([]byte, 0, len(Domain)+len(d.Seed)+2+len(d.Campaign)+12)
	buf = append(buf, Domain...)
	buf = append(buf, d.Seed...)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(d.Campaign)))
	buf = append(buf, d.Campaign...)
	buf = binary.BigEndian.AppendUint64(buf, j)
	at := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	for c := uint32(0); ; c++ {
		binary.BigEndian.PutUint32(buf[at:], c)
		h := sha256.Sum256(buf)
		x := binary.BigEndian.Uint64(h[:8])
		// Accept x < 2⁶⁴ − rem, i.e. x ≤ MaxUint64 − rem (rem = 0: all).
		if rem == 0 || x <= math.MaxUint64-rem {
			return x % m
		}
	}
}

// Step returns the enrolment number of the winner of rank r (r < Winners()),
// given chosen, which reports whether an enrolment number is already among
// the winners of ranks 0..r−1.
func (d Draw) Step(r uint64, chosen func(uint64) bool) uint64 {
	if r >= d.Winners() {
		panic(fmt.Sprintf("lottery: rank %d of %d winners", r, d.Winners()))
	}
	if d.N <= d.K {
		return r
	}
	j := d.N - d.K + r
	t := d.Uniform(j, j+1)
	if chosen(t) {
		return j
	}
	return t
}

// All returns the winners' enrolment numbers by rank, keeping the chosen
// set in memory (about 16 bytes per winner).
func (d Draw) All() []uint64 {
	w := d.Winners()
	out := make([]uint64, 0, w)
	set := make(map[uint64]struct{}, w)
	for r := uint64(0); r < w; r++ {
		x := d.Step(r, func(e uint64) bool { _, ok := set[e]; return ok })
		set[x] = struct{}{}
		out = append(out, x)
	}
	return out
}
