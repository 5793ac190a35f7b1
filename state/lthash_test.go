package state

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestLtHashLanes: add and sub are lane-wise arithmetic mod 2^16, and the
// fused ltAddElement equals ltElement then add.
func TestLtHashLanes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var a, b ltHash
		for i := range a {
			a[i], b[i] = r.Uint64(), r.Uint64()
		}
		// Edge lanes: all ones, top bits, zero.
		a[0], b[0] = ^uint64(0), ^uint64(0)
		a[1], b[1] = ltHigh, ltHigh
		a[2], b[2] = 0, ^uint64(0)
		sum, diff := a, a
		sum.add(&b)
		diff.sub(&b)
		for i := range 1024 {
			x, y := lane(&a, i), lane(&b, i)
			if lane(&sum, i) != x+y || lane(&diff, i) != x-y {
				t.Fatalf("lane %d: %d+%d=%d, %d-%d=%d", i, x, y, lane(&sum, i), x, y, lane(&diff, i))
			}
		}
		back := sum
		back.sub(&b)
		if back != a {
			t.Fatal("(a+b)-b != a")
		}
	}
	buf := make([]byte, ltBytes)
	var e, h, fused ltHash
	ltElement(&e, buf, []byte("w:alice"), []byte("v"))
	h.add(&e)
	ltAddElement(&fused, buf, []byte("w:alice"), []byte("v"))
	if h != fused {
		t.Fatal("ltAddElement differs from ltElement + add")
	}
	round, ok := ltFromBytes(h.bytes())
	if !ok || round != h || binary.LittleEndian.Uint16(h.bytes()[2:]) != lane(&h, 1) {
		t.Fatal("bytes does not round-trip or is not little-endian lanes")
	}
}

// TestContentHashIsOfTheSet: the content hash depends on which records
// there are, not on the order they came in; removing a record's element
// undoes adding it; a changed value changes it.
func TestContentHashIsOfTheSet(t *testing.T) {
	recs := []record{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}, {[]byte("c"), []byte("3")}}
	rev := []record{recs[2], recs[0], recs[1]}
	if contentOf(recs) != contentOf(rev) {
		t.Fatal("order changed the content hash")
	}
	h := contentOf(recs)
	var e ltHash
	buf := make([]byte, ltBytes)
	ltElement(&e, buf, recs[1].key, recs[1].value)
	h.sub(&e)
	if h != contentOf([]record{recs[0], recs[2]}) {
		t.Fatal("removing b does not give the hash of {a, c}")
	}
	if contentOf(recs) == contentOf([]record{recs[0], recs[1], {[]byte("c"), []byte("4")}}) {
		t.Fatal("a changed value kept the content hash")
	}
	// Key and value are framed: ("ab", "c") is not ("a", "bc").
	if contentOf([]record{{[]byte("ab"), []byte("c")}}) == contentOf([]record{{[]byte("a"), []byte("bc")}}) {
		t.Fatal("key/value boundary not bound")
	}
}

func lane(h *ltHash, i int) uint16 { return uint16(h[i/4] >> (16 * (i % 4))) }

// BenchmarkLtElement is the cost of one record's element, fused with the
// lane-wise add: what the applier pays per record written or removed.
func BenchmarkLtElement(b *testing.B) {
	buf := make([]byte, ltBytes)
	key, value := make([]byte, 40), make([]byte, 160)
	var h ltHash
	for i := 0; b.Loop(); i++ {
		key[0] = byte(i)
		ltAddElement(&h, buf, key, value)
	}
}
