package state

import (
	"crypto/sha256"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dcep/dcep/state/statepb"
)

// Precheck runs every check that needs no state, signatures included: what
// a node does before it proposes or forwards a transaction, so nothing
// unauthenticated enters the log (state/DESIGN.md, "Bounded growth"). It
// returns the transaction id (zero if the body did not decode) and the
// rejection, if any. Safe for concurrent use.
//
// Concurrent callers share signature batches (precheckBatcher), so a busy
// node verifies at about the batch cost per signature; and what Precheck
// verified is remembered (verifiedCache), so this node's Apply does not
// verify it again.
func (s *Store) Precheck(raw []byte) ([32]byte, *statepb.Error) {
	t, k := s.decode(raw)
	if k == nil {
		return t.id, t.rej
	}
	s.precheck.verify(s, k)
	if t.rej == nil {
		s.verified.add(sha256.Sum256(raw), t.off)
	}
	return t.id, t.rej
}

// PrecheckAll is Precheck of several transactions that arrived together (a
// forwarded request): their signatures are verified in batches of up to
// maxChunk transactions, without waiting for other callers. ids and rejs
// are in the order of raws.
func (s *Store) PrecheckAll(raws [][]byte) (ids [][32]byte, rejs []*statepb.Error) {
	ids, rejs = make([][32]byte, len(raws)), make([]*statepb.Error, len(raws))
	decoded := make([]*decodedTx, len(raws))
	tasks := make([]*sigTask, 0, min(len(raws), maxChunk))
	flush := func() {
		s.verify(tasks)
		tasks = tasks[:0]
	}
	for i, raw := range raws {
		t, k := s.decode(raw)
		decoded[i] = t
		if k != nil {
			if tasks = append(tasks, k); len(tasks) == maxChunk {
				flush()
			}
		}
	}
	flush()
	for i, t := range decoded {
		ids[i], rejs[i] = t.id, t.rej
		if t.rej == nil {
			s.verified.add(sha256.Sum256(raws[i]), t.off)
		}
	}
	return ids, rejs
}

// precheckBatcher verifies the signatures of concurrent Precheck calls
// together. Workers (VerifyWorkers of them, started on first use) each take
// one waiting task and whatever else is waiting, up to maxChunk (yielding
// once to let ready callers queue theirs), and verify them as one batch:
// an idle node verifies a lone submission at once, a busy one in batches
// as large as the queue, with no timer.
type precheckBatcher struct {
	once  sync.Once
	tasks chan precheckTask
	stop  chan struct{}
}

type precheckTask struct {
	k    *sigTask
	done chan struct{}
	// claimed: a worker (or, once the store closed, the caller) took the
	// task; exactly one does.
	claimed *atomic.Bool
}

// precheckQueue bounds the tasks waiting for a worker; callers block
// beyond it.
const precheckQueue = 4 * maxChunk

func (b *precheckBatcher) verify(s *Store, k *sigTask) {
	b.once.Do(func() {
		b.tasks, b.stop = make(chan precheckTask, precheckQueue), make(chan struct{})
		for range s.opts.VerifyWorkers {
			go b.work(s)
		}
	})
	t := precheckTask{k: k, done: make(chan struct{}), claimed: new(atomic.Bool)}
	select {
	case b.tasks <- t:
	case <-b.stop:
	}
	select {
	case <-t.done:
	case <-b.stop:
		// Closing: the workers may be gone. Verify alone unless one took
		// the task, then wait for it.
		if t.claimed.CompareAndSwap(false, true) {
			s.verify([]*sigTask{k})
			return
		}
		<-t.done
	}
}

func (b *precheckBatcher) work(s *Store) {
	batch := make([]precheckTask, 0, maxChunk)
	tasks := make([]*sigTask, 0, maxChunk)
	for {
		batch = batch[:0]
		select {
		case t := <-b.tasks:
			if t.claimed.CompareAndSwap(false, true) {
				batch = append(batch, t)
			}
		case <-b.stop:
			return
		}
		batch = b.drain(batch)
		for try := 0; len(batch) < minChunk && try < 4; try++ {
			// Let the callers that are ready to run queue their tasks:
			// on a busy node they wait for a CPU this worker holds, and
			// without a yield every batch would be of one. On an idle
			// node nothing else is runnable: the first yield returns at
			// once and finds nothing more.
			runtime.Gosched()
			n := len(batch)
			if batch = b.drain(batch); len(batch) == n {
				break
			}
		}
		tasks = tasks[:0]
		for _, t := range batch {
			tasks = append(tasks, t.k)
		}
		s.verify(tasks)
		for i, t := range batch {
			close(t.done)
			batch[i], tasks[i] = precheckTask{}, nil
		}
	}
}

// drain adds to batch what is waiting, up to maxChunk.
func (b *precheckBatcher) drain(batch []precheckTask) []precheckTask {
	for len(batch) < maxChunk {
		select {
		case t := <-b.tasks:
			if t.claimed.CompareAndSwap(false, true) {
				batch = append(batch, t)
			}
		default:
			return batch
		}
	}
	return batch
}

// close stops the workers, if they were started. A caller still waiting
// gets its answer from the worker holding its task or verifies alone.
func (b *precheckBatcher) close() {
	b.once.Do(func() {})
	if b.stop != nil {
		close(b.stop)
	}
}

// verifiedCache remembers the transactions Precheck found valid, by
// SHA-256 of their bytes, so that Apply on the same node skips their
// signature verification and, for the offline kinds, reuses what was
// decoded and verified. Entries go in FIFO order, bounded by count and by
// offline payments held (maxVerifiedWeight); one is taken out when Apply
// uses it. A miss only costs a verification: the verdict is the same.
type verifiedCache struct {
	mu     sync.Mutex
	m      map[[32]byte]*offDecoded
	ring   [][32]byte // insertion order; may name entries already taken
	head   int
	weight int
}

// maxVerifiedWeight bounds the cache: one unit per transaction plus one
// per offline payment it carries (a deposit holds up to 64, about 1.5 KiB
// each decoded). At 65,536 units the keys take about 8 MiB: several seconds
// of submissions at the rates a node sustains, longer than a transaction
// waits between Precheck and Apply.
const maxVerifiedWeight = 1 << 16

func weightOf(off *offDecoded) int {
	if off == nil {
		return 1
	}
	return 1 + len(off.items)
}

func (c *verifiedCache) add(key [32]byte, off *offDecoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[32]byte]*offDecoded)
	}
	if _, ok := c.m[key]; ok {
		return
	}
	c.m[key] = off
	c.ring = append(c.ring, key)
	c.weight += weightOf(off)
	// Taken entries leave their keys in the ring, so the ring is bounded
	// too.
	for (c.weight > maxVerifiedWeight || len(c.ring)-c.head > maxVerifiedWeight) && c.head < len(c.ring) {
		old := c.ring[c.head]
		c.ring[c.head] = [32]byte{}
		c.head++
		if o, ok := c.m[old]; ok {
			c.weight -= weightOf(o)
			delete(c.m, old)
		}
	}
	if c.head > len(c.ring)/2 && c.head > 1024 {
		c.ring = append(c.ring[:0:0], c.ring[c.head:]...)
		c.head = 0
	}
}

// take removes and returns key's entry.
func (c *verifiedCache) take(key [32]byte) (*offDecoded, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	off, ok := c.m[key]
	if ok {
		delete(c.m, key)
		c.weight -= weightOf(off)
	}
	return off, ok
}

// empty reports whether nothing is cached, so Apply on a node that never
// prechecks (a follower fed by Raft) does not hash every transaction.
func (c *verifiedCache) empty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m) == 0
}
