package lottery_test

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/dcep/dcep/state/lottery"
)

func seed(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// reference implements the algorithm exactly as the package documentation
// states it, independently of the package's code: if the documentation and
// the code ever disagree, this test fails.
func reference(seed []byte, campaign string, n, k uint64) []uint64 {
	if n <= k {
		out := make([]uint64, n)
		for i := range out {
			out[i] = uint64(i)
		}
		return out
	}
	u := func(j, m uint64) uint64 {
		for c := uint32(0); ; c++ {
			var msg []byte
			msg = append(msg, "dcep/redpacket/lottery/v1\x00"...)
			msg = append(msg, seed...)
			msg = binary.BigEndian.AppendUint16(msg, uint16(len(campaign)))
			msg = append(msg, campaign...)
			msg = binary.BigEndian.AppendUint64(msg, j)
			msg = binary.BigEndian.AppendUint32(msg, c)
			h := sha256.Sum256(msg)
			x := binary.BigEndian.Uint64(h[:8])
			// Largest multiple of m that fits: accept below it.
			limit := (math.MaxUint64 / m) * m // = 2⁶⁴ − (2⁶⁴ mod m) when that is < 2⁶⁴
			if (math.MaxUint64%m == m-1) || x < limit {
				return x % m
			}
		}
	}
	chosen := map[uint64]bool{}
	var out []uint64
	for r := uint64(0); r < k; r++ {
		j := n - k + r
		t := u(j, j+1)
		if chosen[t] {
			t = j
		}
		chosen[t] = true
		out = append(out, t)
	}
	return out
}

func TestMatchesDocumentedAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		camp string
		n, k uint64
	}{{"suzhou-dbl12", 1000, 100}, {"x", 10, 10}, {"x", 5, 10}, {"big", 100_000, 99_999}, {"one", 1, 1}, {"none", 0, 5}, {"k1", 77, 1}} {
		d := lottery.Draw{Seed: seed(tc.camp), Campaign: tc.camp, N: tc.n, K: tc.k}
		got, want := d.All(), reference(d.Seed, tc.camp, tc.n, tc.k)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: winners differ from the documented algorithm", tc)
		}
		if uint64(len(got)) != min(tc.n, tc.k) {
			t.Fatalf("%+v: %d winners", tc, len(got))
		}
		seen := map[uint64]bool{}
		for _, w := range got {
			if w >= tc.n || seen[w] {
				t.Fatalf("%+v: winner %d out of range or twice", tc, w)
			}
			seen[w] = true
		}
	}
}

// TestStepByStep: the ledger's chunked use (Step with its own set) gives
// the same winners as All, whatever the chunking.
func TestStepByStep(t *testing.T) {
	d := lottery.Draw{Seed: seed("s"), Campaign: "c", N: 5000, K: 1200}
	set := map[uint64]bool{}
	var got []uint64
	for r := uint64(0); r < d.Winners(); r++ {
		x := d.Step(r, func(e uint64) bool { return set[e] })
		set[x] = true
		got = append(got, x)
	}
	if !slices.Equal(got, d.All()) {
		t.Fatal("Step and All disagree")
	}
}

// TestSeedsAndCampaignsMatter: another seed or another campaign id gives
// other winners; the commitment binds the seed.
func TestSeedsAndCampaignsMatter(t *testing.T) {
	a := lottery.Draw{Seed: seed("a"), Campaign: "c", N: 10_000, K: 100}.All()
	b := lottery.Draw{Seed: seed("b"), Campaign: "c", N: 10_000, K: 100}.All()
	c := lottery.Draw{Seed: seed("a"), Campaign: "d", N: 10_000, K: 100}.All()
	if slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("winners do not depend on seed and campaign")
	}
	commit := lottery.Commitment(seed("a"))
	if !lottery.Verify(seed("a"), commit[:]) || lottery.Verify(seed("b"), commit[:]) || lottery.Verify(seed("a")[:31], commit[:]) {
		t.Fatal("Verify")
	}
}

// TestUniform: no value is favoured (chi-square over 10 buckets, for a
// range that is not a power of two), and the range is respected.
func TestUniform(t *testing.T) {
	d := lottery.Draw{Seed: seed("u"), Campaign: "u"}
	const m, n = 10, 100_000
	var counts [m]int
	for j := uint64(0); j < n; j++ {
		x := d.Uniform(j, m)
		if x >= m {
			t.Fatalf("Uniform(%d, %d) = %d", j, m, x)
		}
		counts[x]++
	}
	chi := 0.0
	for _, c := range counts {
		e := float64(n) / m
		chi += (float64(c) - e) * (float64(c) - e) / e
	}
	if chi > 27.9 { // p ≈ 0.001 for 9 degrees of freedom
		t.Fatalf("chi-square %.1f over %v", chi, counts)
	}
	// A range just above 2⁶³ rejects about half the draws; it must still
	// terminate and stay in range.
	big := uint64(1)<<63 + 12345
	for j := uint64(0); j < 200; j++ {
		if x := d.Uniform(j, big); x >= big {
			t.Fatalf("Uniform(%d, 2⁶³+…) = %d", j, x)
		}
	}
	if d.Uniform(7, 1) != 0 {
		t.Fatal("Uniform(_, 1) ≠ 0")
	}
}

// TestFairness: over many draws every enrolment wins about k/n of the time.
func TestFairness(t *testing.T) {
	const n, k, draws = 20, 5, 4000
	wins := make([]int, n)
	for i := range draws {
		s := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		for _, w := range (lottery.Draw{Seed: s[:], Campaign: "f", N: n, K: k}).All() {
			wins[w]++
		}
	}
	e := float64(draws) * k / n
	chi := 0.0
	for _, w := range wins {
		chi += (float64(w) - e) * (float64(w) - e) / e
	}
	if chi > 50 { // 19 degrees of freedom; p ≈ 0.0001
		t.Fatalf("chi-square %.1f over %v", chi, wins)
	}
}
