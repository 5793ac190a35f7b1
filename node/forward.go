package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state/statepb"
)

// Forward batching bounds. A batch is what arrived while the previous
// batches were in flight, so a lone transaction goes at once and a busy
// follower sends one libp2p stream per batch instead of one per
// transaction (a stream costs a handshake, goroutines and several frames
// on both nodes: more than the transaction itself).
const (
	forwardMaxTxs      = 1024
	forwardMaxBytes    = maxForwardBytes / 2
	forwardMaxInflight = 32
	forwardSlotHold    = 500 * time.Millisecond
	forwardQueueLen    = 100_000
)

// forwarder sends this node's client transactions to the leader in
// batches (one ForwardRequest carries many) and hands each caller its own
// result. At most forwardMaxInflight batches are unanswered at once (a
// batch counts for at most forwardSlotHold). A batch that fails fails each
// of its callers with the same error, which the submit loop retries like
// any forward error (resubmitting the same bytes is safe).
type forwarder struct {
	n        *Node
	queue    chan *forwardCall
	inflight chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
}

type forwardCall struct {
	tx   []byte
	res  *statepb.TxResult
	err  error
	done chan struct{}
}

func newForwarder(n *Node) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	return &forwarder{
		n: n, queue: make(chan *forwardCall, forwardQueueLen), inflight: make(chan struct{}, forwardMaxInflight),
		ctx: ctx, cancel: cancel,
	}
}

// forward sends one transaction to the leader (with whatever else is
// waiting) and returns its result.
func (f *forwarder) forward(ctx context.Context, tx []byte) (*statepb.TxResult, error) {
	if f.ctx.Err() != nil {
		return nil, consensus.ErrStopped
	}
	c := &forwardCall{tx: tx, done: make(chan struct{})}
	select {
	case f.queue <- c:
	default:
		return nil, consensus.ErrOverloaded
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: forwarded to the leader: %w", consensus.ErrUnknownOutcome, ctx.Err())
	case <-f.ctx.Done():
		// Stopped; c may have been sent, or may still be queued.
		return nil, fmt.Errorf("%w (forwarded to the leader: outcome unknown)", consensus.ErrStopped)
	}
}

func (f *forwarder) run() {
	defer f.n.wg.Done()
	defer f.cancel()
	for {
		var first *forwardCall
		select {
		case first = <-f.queue:
		case <-f.n.stop:
			f.failQueued()
			return
		}
		// Wait for a slot before gathering: what arrives meanwhile joins
		// this batch.
		select {
		case f.inflight <- struct{}{}:
		case <-f.n.stop:
			first.finish(nil, consensus.ErrStopped)
			f.failQueued()
			return
		}
		batch, size := []*forwardCall{first}, len(first.tx)
	gather:
		for len(batch) < forwardMaxTxs && size < forwardMaxBytes {
			select {
			case c := <-f.queue:
				batch, size = append(batch, c), size+len(c.tx)
			default:
				break gather
			}
		}
		go f.send(batch)
	}
}

func (f *forwarder) send(batch []*forwardCall) {
	// The slot is freed when the answer comes, or after forwardSlotHold if
	// it is slow in coming (a leader that lost its leadership, a stalled
	// one), so a few stuck batches never hold back the rest for long.
	var once sync.Once
	release := func() { once.Do(func() { <-f.inflight }) }
	defer release()
	hold := time.AfterFunc(forwardSlotHold, release)
	defer hold.Stop()
	ctx, cancel := context.WithTimeout(f.ctx, ms(f.n.cfg.Limits.SubmitTimeoutMs))
	defer cancel()
	// A leader change cancels the forward: the old leader may be stopped
	// or cut off, and its answer would come (if ever) only at the
	// timeout. The callers resubmit the same bytes to the new leader.
	changed := f.n.leaders.next()
	ctx, cancelOnChange := context.WithCancelCause(ctx)
	defer cancelOnChange(nil)
	go func() {
		select {
		case <-changed:
			cancelOnChange(errLeaderChanged)
		case <-ctx.Done():
		}
	}()
	txs := make([][]byte, len(batch))
	for i, c := range batch {
		txs[i] = c.tx
	}
	res, err := f.n.forward(ctx, txs)
	if err != nil && errors.Is(context.Cause(ctx), errLeaderChanged) {
		err = fmt.Errorf("%w: %w (forward cancelled: %v)", consensus.ErrUnknownOutcome, errLeaderChanged, err)
	}
	if len(batch) > 1 && errors.Is(err, consensus.ErrOverloaded) {
		// The leader's queue filled while taking the batch: some of it may
		// be proposed. Only a lone transaction is known not to be, so the
		// others retry (same bytes: safe) rather than answer OVERLOADED.
		err = fmt.Errorf("%w: the leader's proposal queue filled while taking a batch (%v)", consensus.ErrUnknownOutcome, err)
	}
	for i, c := range batch {
		if err != nil {
			c.finish(nil, err)
		} else {
			c.finish(res[i], nil)
		}
	}
}

func (c *forwardCall) finish(res *statepb.TxResult, err error) {
	c.res, c.err = res, err
	close(c.done)
}

// failQueued fails whatever is still queued (on shutdown).
func (f *forwarder) failQueued() {
	for {
		select {
		case c := <-f.queue:
			c.finish(nil, consensus.ErrStopped)
		default:
			return
		}
	}
}
