package state

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"sync"
)

// The content hash: LtHash16 (Bellare–Micciancio's lattice hash as
// Facebook's "Securing Update Propagation with Homomorphic Hashing"
// parameterises it, and Solana's accounts lattice hash uses it) over every
// hashed (key, value) record of the state. The hash of a set of records is
// the lane-wise sum, mod 2^16, of one 1024-lane element per record, so it
// is a function of the content alone — whatever order the records were
// written in, however the blocks were grouped — and the applier keeps it
// up to date incrementally: a write adds the new record's element and
// subtracts the old one's, a delete subtracts.
//
// Element of (key, value): the 2,048-byte AES-256-CTR keystream (zero IV)
// under the key SHA-256(ltDomain | u32 len(key) | key | value), read as
// 1,024 little-endian uint16 lanes. SHA-256 makes the element a function
// of the record that nobody can steer; AES-CTR expands it, as a DRBG
// does. On this machine (AES-NI, SHA-NI) one element costs ≈ 0.67 µs,
// against ≈ 3.1 µs for the BLAKE3 XOF the paper's instantiation uses
// (lukechampine.com/blake3; github.com/zeebo/blake3: 3.7 µs): a transfer
// hashes about 11 elements (state/DESIGN.md, "State hash").
const (
	ltDomain = "dcep/lthash/v1\x00"
	ltBytes  = 2048
	ltWords  = ltBytes / 8 // lanes are packed four to a uint64
)

// ltHash is an LtHash16 value: 1,024 uint16 lanes, four per word, lane i
// in bits 16·(i mod 4) of word i/4 (so the words' little-endian bytes are
// the lanes' little-endian bytes in order).
type ltHash [ltWords]uint64

// ltHigh is each lane's top bit.
const ltHigh = 0x8000800080008000

// add adds e lane-wise, mod 2^16 per lane: each lane's low 15 bits add
// without crossing into the next lane, and the top bit is the xor of the
// two top bits and the carry into it.
func (h *ltHash) add(e *ltHash) {
	for i := range h {
		a, b := h[i], e[i]
		h[i] = ((a &^ ltHigh) + (b &^ ltHigh)) ^ ((a ^ b) & ltHigh)
	}
}

// sub subtracts e lane-wise, mod 2^16 per lane (a + (2^16 − b), borrowing
// within each lane only).
func (h *ltHash) sub(e *ltHash) {
	for i := range h {
		a, b := h[i], e[i]
		h[i] = ((a | ltHigh) - (b &^ ltHigh)) ^ ((a ^ ^b) & ltHigh)
	}
}

// bytes is the hash as 2,048 bytes: lanes as little-endian uint16.
func (h *ltHash) bytes() []byte {
	out := make([]byte, ltBytes)
	for i, w := range h {
		binary.LittleEndian.PutUint64(out[8*i:], w)
	}
	return out
}

// ltFromBytes reads a hash written by bytes; false if b is not 2,048 bytes.
func ltFromBytes(b []byte) (ltHash, bool) {
	var h ltHash
	if len(b) != ltBytes {
		return h, false
	}
	for i := range h {
		h[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return h, true
}

// ltElement computes the element of one record into e, using buf
// (ltBytes) as scratch.
func ltElement(e *ltHash, buf []byte, key, value []byte) {
	ltKeystream(buf, key, value)
	for i := range e {
		e[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
}

// ltAddElement adds the element of one record to h, using buf as scratch:
// ltElement and add in one pass.
func ltAddElement(h *ltHash, buf []byte, key, value []byte) {
	ltKeystream(buf, key, value)
	for i := range h {
		a, b := h[i], binary.LittleEndian.Uint64(buf[8*i:])
		h[i] = ((a &^ ltHigh) + (b &^ ltHigh)) ^ ((a ^ b) & ltHigh)
	}
}

// ltKeystream writes the element's bytes into buf (ltBytes long). The
// AES key is the whole SHA-256: with a 128-bit key, 2^64 records would
// likely hold two with the same element.
func ltKeystream(buf []byte, key, value []byte) {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(key)))
	h.Write([]byte(ltDomain))
	h.Write(n[:])
	h.Write(key)
	h.Write(value)
	var seed [sha256.Size]byte
	block, err := aes.NewCipher(h.Sum(seed[:0]))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	var iv [aes.BlockSize]byte
	clear(buf)
	cipher.NewCTR(block, iv[:]).XORKeyStream(buf, buf)
}

// ltOp is one change to the content: add (or remove) a record.
type ltOp struct {
	key, value []byte
	remove     bool
}

// ltChunk is how many ops an accumulator hands a hasher at once.
const ltChunk = 256

// ltAccumulator sums the elements of a stream of ops on background
// goroutines, so that hashing overlaps with the (serial) applier: ops are
// queued in chunks, hashed in any order (the sum does not depend on it),
// and sum waits for every queued op. Keys and values handed to it must
// not change until sum returns.
type ltAccumulator struct {
	pending []ltOp
	work    chan []ltOp
	wg      sync.WaitGroup // one per queued chunk
	mu      sync.Mutex
	delta   ltHash // what the finished chunks added
	started bool
}

func (l *ltAccumulator) start() {
	if l.started {
		return
	}
	l.started = true
	l.work = make(chan []ltOp, 64)
	for range min(2, runtime.GOMAXPROCS(0)) {
		go l.hasher()
	}
}

func (l *ltAccumulator) hasher() {
	buf := make([]byte, ltBytes)
	for ops := range l.work {
		var d ltHash
		var neg ltHash
		for _, op := range ops {
			if op.remove {
				ltAddElement(&neg, buf, op.key, op.value)
			} else {
				ltAddElement(&d, buf, op.key, op.value)
			}
		}
		d.sub(&neg)
		l.mu.Lock()
		l.delta.add(&d)
		l.mu.Unlock()
		l.wg.Done()
	}
}

// push queues one op.
func (l *ltAccumulator) push(op ltOp) {
	l.pending = append(l.pending, op)
	if len(l.pending) >= ltChunk {
		l.flush()
	}
}

func (l *ltAccumulator) flush() {
	if len(l.pending) == 0 {
		return
	}
	l.start()
	l.wg.Add(1)
	l.work <- l.pending
	l.pending = make([]ltOp, 0, ltChunk)
}

// sum waits for every queued op and returns (and resets) their sum.
func (l *ltAccumulator) sum() ltHash {
	l.flush()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.delta
	l.delta = ltHash{}
	return d
}

// stop ends the hashers; the accumulator is not used again.
func (l *ltAccumulator) stop() {
	if l.started {
		close(l.work)
		l.started = false
	}
}

// contentOf is the content hash of recs (unhashed keys left out).
func contentOf(recs []record) ltHash {
	var h ltHash
	buf := make([]byte, ltBytes)
	for _, r := range recs {
		if hashed(r.key) {
			ltAddElement(&h, buf, r.key, r.value)
		}
	}
	return h
}

// scanContent computes the content hash of everything r holds, in
// constant memory, hashing on background goroutines.
func scanContent(r pebbleReader) (ltHash, error) {
	var l ltAccumulator
	defer l.stop()
	it, err := r.NewIter(nil)
	if err != nil {
		return ltHash{}, err
	}
	for it.First(); it.Valid(); it.Next() {
		if !hashed(it.Key()) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return ltHash{}, err
		}
		l.push(ltOp{key: bytes.Clone(it.Key()), value: bytes.Clone(v)})
	}
	if err := it.Close(); err != nil {
		return ltHash{}, err
	}
	return l.sum(), nil
}
