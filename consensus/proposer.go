package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus/consensuspb"
	"github.com/dcep/dcep/state/statepb"
)

// proposer groups client transactions into log entries on the leader, so
// throughput is bounded by what one entry carries, not by entries per
// second. A lone transaction is proposed at once when nothing is in flight;
// under load, it waits at most MaxDelay for company. Several entries may be
// in flight at once (Raft pipelines them), up to MaxInflight.
type proposer struct {
	n        *Node
	cfg      BatchConfig
	queue    chan *pending
	inflight chan struct{}
	// carry is a transaction gather took from the queue but that did not
	// fit the batch it was building: it starts the next one.
	carry *pending
	// lastStampMs is the last ledger time this leader stamped.
	lastStampMs int64
	// heldWarnAt is when the leader last logged that it held ledger time
	// for want of the voters' clock readings.
	heldWarnAt time.Time
}

// pending is one transaction waiting for its outcome.
type pending struct {
	tx   []byte
	res  *statepb.TxResult
	err  error
	done chan struct{}
}

func (p *pending) finish(res *statepb.TxResult, err error) {
	p.res, p.err = res, err
	close(p.done)
}

func newProposer(n *Node) *proposer {
	return &proposer{
		n: n, cfg: n.cfg.Batch,
		queue:    make(chan *pending, n.cfg.Batch.QueueLen),
		inflight: make(chan struct{}, n.cfg.Batch.MaxInflight),
	}
}

func (p *proposer) submit(ctx context.Context, txs [][]byte) ([]*statepb.TxResult, error) {
	if !p.n.ready.Load() {
		return nil, ErrNotLeader
	}
	for i, tx := range txs {
		// One transaction must fit an entry: an entry never exceeds MaxBytes.
		if len(tx) > p.cfg.MaxBytes {
			return nil, fmt.Errorf("%w: transaction %d is %d bytes, an entry at most %d", ErrTooLarge, i, len(tx), p.cfg.MaxBytes)
		}
	}
	ps := make([]*pending, len(txs))
	for i, tx := range txs {
		ps[i] = &pending{tx: tx, done: make(chan struct{})}
		select {
		case p.queue <- ps[i]:
		default:
			return nil, ErrOverloaded
		}
	}
	out := make([]*statepb.TxResult, len(txs))
	for i, pd := range ps {
		select {
		case <-pd.done:
			if pd.err != nil {
				return nil, pd.err
			}
			out[i] = pd.res
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
		}
	}
	return out, nil
}

func (p *proposer) run() {
	defer p.n.wg.Done()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		first := p.carry
		p.carry = nil
		if first == nil {
			select {
			case first = <-p.queue:
			case <-tick.C:
				p.tick()
				continue
			case <-p.n.stop:
				return
			}
		}
		p.propose(p.gather(first))
	}
}

// tickInterval is how often an idle leader checks for due scheduled work.
const tickInterval = 500 * time.Millisecond

// tick proposes an empty entry when the ledger has scheduled work due (a
// purse expiring, a campaign closing) and nothing else is moving ledger time
// forward: ledger time only advances with entries, and the work must happen
// without anyone submitting a transaction.
func (p *proposer) tick() {
	if !p.n.ready.Load() || len(p.inflight) > 0 || len(p.queue) > 0 {
		return
	}
	due, ok := p.n.cfg.Store.NextDueMs()
	if !ok {
		return
	}
	// Due by the voters' clocks, as the entry will be stamped: a leader
	// whose clock runs ahead must not run the work early.
	if nt := p.n.stampTime(); !nt.OK || due > nt.Ms {
		return
	}
	p.propose(nil)
}

// gather collects a batch starting with first, within the count and byte
// bounds: everything already queued, and if entries are in flight (so the
// log is busy anyway) whatever arrives within MaxDelay. An entry never
// exceeds MaxBytes: a transaction that would take it over starts the next.
func (p *proposer) gather(first *pending) []*pending {
	batch, size := []*pending{first}, len(first.tx)
	var deadline <-chan time.Time
	if len(p.inflight) > 0 {
		deadline = time.After(p.cfg.MaxDelay)
	}
	// add reports whether gathering goes on.
	add := func(next *pending) bool {
		if size+len(next.tx) > p.cfg.MaxBytes {
			p.carry = next
			return false
		}
		batch, size = append(batch, next), size+len(next.tx)
		return size < p.cfg.MaxBytes
	}
	for len(batch) < p.cfg.MaxTxs {
		select {
		case next := <-p.queue:
			if !add(next) {
				return batch
			}
			continue
		default:
		}
		if deadline == nil {
			return batch
		}
		select {
		case next := <-p.queue:
			if !add(next) {
				return batch
			}
		case <-deadline:
			return batch
		case <-p.n.stop:
			return batch
		}
	}
	return batch
}

// stamp is the ledger time of the next entry: the voters' median clock
// (clock.go), but never below this leader's last stamp nor below what the
// ledger already holds (a previous leader may have stamped later; the
// barrier taken on election made the ledger current), so ledger time never
// goes backwards. Without a quorum of readings it holds ledger time rather
// than trust one clock, and says so.
func (p *proposer) stamp() int64 {
	nt := p.n.stampTime()
	ms := max(p.lastStampMs, p.n.cfg.Store.Meta().GetLedgerTimeMs())
	if nt.OK {
		ms = max(ms, nt.Ms)
	} else if time.Since(p.heldWarnAt) > time.Minute {
		p.heldWarnAt = time.Now()
		p.n.log.Warn("ledger time held: too few voters' clock readings for a median", "readings", nt.Readings, "voters", nt.Voters, "quorum", nt.Quorum, "ledger_time_ms", ms)
	}
	p.lastStampMs = ms
	return ms
}

// propose stamps ledger time and hands one entry to Raft; a goroutine per
// in-flight entry delivers the results.
func (p *proposer) propose(batch []*pending) {
	if !p.n.ready.Load() {
		failBatch(batch, ErrNotLeader)
		return
	}
	select {
	case p.inflight <- struct{}{}:
	case <-p.n.stop:
		failBatch(batch, ErrStopped)
		return
	}
	e := &consensuspb.Entry{TimeMs: p.stamp(), Txs: make([][]byte, len(batch))}
	for i, pd := range batch {
		e.Txs[i] = pd.tx
	}
	data, err := proto.Marshal(e)
	if err != nil {
		<-p.inflight
		failBatch(batch, err)
		return
	}
	f := p.n.raft.Apply(data, p.cfg.ApplyTimeout)
	go func() {
		defer func() { <-p.inflight }()
		p.deliver(batch, f)
	}()
}

func (p *proposer) deliver(batch []*pending, f raft.ApplyFuture) {
	if err := f.Error(); err != nil {
		failBatch(batch, mapApplyError(err))
		return
	}
	res := results(f.Response())
	if len(res) != len(batch) {
		failBatch(batch, fmt.Errorf("consensus: entry %d returned %d results for %d transactions", f.Index(), len(res), len(batch)))
		return
	}
	for i, pd := range batch {
		pd.finish(res[i], nil)
	}
}

// mapApplyError tells a definite "not appended" from an unknown outcome.
func mapApplyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return ErrUnknownOutcome
	}
	return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
}

func failBatch(batch []*pending, err error) {
	for _, pd := range batch {
		pd.finish(nil, err)
	}
}

// failAll fails whatever is still queued (on shutdown).
func (p *proposer) failAll(err error) {
	if p.carry != nil {
		p.carry.finish(nil, err)
		p.carry = nil
	}
	for {
		select {
		case pd := <-p.queue:
			pd.finish(nil, err)
		default:
			return
		}
	}
}
