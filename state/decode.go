package state

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// decodedTx is a transaction after every check that needs no state. rej is
// set if one failed; then nothing else but raw (and id, if the body decoded)
// is meaningful.
type decodedTx struct {
	raw   []byte
	id    [32]byte
	hasID bool
	body  *statepb.Tx
	sigs  []*statepb.Signature
	rej   *statepb.Error
	// off holds what the offline kinds carry, decoded and verified
	// (offline.go).
	off *offDecoded
	// first is the outcome already committed under this id, if any: the
	// duplicate check's store lookup, which the pipeline's workers do so
	// that the serial applier does not (it adds what its own call records,
	// firstOutcome). firstErr is that lookup's I/O error.
	first    *statepb.TxRecord
	firstErr error
}

// sigTask is a decoded transaction whose signatures are still to be
// verified: the last stateless step, done in batches (verify).
type sigTask struct {
	t    *decodedTx
	body *statepb.Tx
	sigs []*statepb.Signature
	msg  []byte // the signed message (SignBytes)
}

// decode runs the stateless checks in the order docs/errors.md lists them,
// all but the last, signature verification: the expensive part, which the
// pipeline's workers do in batches (verify). It returns the transaction,
// and a task for its signatures unless it was rejected.
func (s *Store) decode(raw []byte) (*decodedTx, *sigTask) {
	t := &decodedTx{raw: raw}
	if len(raw) > statepb.MaxTxBytes {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_TOO_LARGE, "transaction: %d bytes (max %d)", len(raw), statepb.MaxTxBytes)
		return t, nil
	}
	var stx statepb.SignedTx
	if err := proto.Unmarshal(raw, &stx); err != nil {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "signed_tx: %s", statepb.Text(err.Error()))
		return t, nil
	}
	if len(stx.GetBody()) == 0 {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "signed_tx.body: empty")
		return t, nil
	}
	t.id, t.hasID = TxID(stx.GetBody()), true
	body := &statepb.Tx{}
	if err := proto.Unmarshal(stx.GetBody(), body); err != nil {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "body: %s", statepb.Text(err.Error()))
		return t, nil
	}
	if statepb.HasUnknownFields(&stx) {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_UNKNOWN_FIELDS, "signed_tx: has fields this node does not know")
		return t, nil
	}
	if statepb.HasUnknownFields(body) {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_UNKNOWN_FIELDS, "body: has fields this node does not know")
		return t, nil
	}
	if body.GetVersion() == statepb.TxVersion && body.GetChainId() != s.genesis.GetChainId() {
		t.rej = statepb.Errorf(statepb.Code_CODE_CHAIN_ID_MISMATCH, "chain_id: %q (this network is %q)", body.GetChainId(), s.genesis.GetChainId())
		return t, nil
	}
	if err := body.ValidateBasic(); err != nil {
		t.rej = asRejection(err)
		return t, nil
	}
	if err := stx.ValidateBasic(); err != nil {
		t.rej = asRejection(err)
		return t, nil
	}
	if want := requiredSignatures(body); len(stx.GetSignatures()) != want {
		t.rej = statepb.Errorf(statepb.Code_CODE_SIGNATURE_COUNT, "signatures: %d (a %s needs %d)", len(stx.GetSignatures()), statepb.KindOf(body), want)
		return t, nil
	}
	return t, &sigTask{t: t, body: body, sigs: stx.GetSignatures(), msg: SignBytes(body.GetChainId(), s.genesisHash, stx.GetBody())}
}

func asRejection(err error) *statepb.Error {
	if e, ok := err.(*statepb.Error); ok {
		return e
	}
	return statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "%s", statepb.Text(err.Error()))
}

// requiredSignatures is how many signers a kind needs; who they must be is
// decided against state (signers in apply.go).
func requiredSignatures(body *statepb.Tx) int {
	switch body.GetKind().(type) {
	case *statepb.Tx_Return, *statepb.Tx_RotateKey:
		return 2
	}
	return 1
}

// A worker takes minChunk to maxChunk transactions at a time and verifies
// their signatures as one batch: small enough that the applier starts
// early, large enough that a batch pays (64 signatures cost about half as
// much each as one alone; 16, three quarters).
const (
	minChunk = 16
	maxChunk = 64
)

// pipeline decodes and verifies transactions on worker goroutines. Chunks are
// handed out in order and each has its own done signal, so the sequential
// applier works on chunk i while workers verify later chunks. Results sit at
// fixed positions: their order never depends on goroutine timing.
type pipeline struct {
	raws  [][]byte
	chunk int
	txs   []*decodedTx
	done  []chan struct{}
	next  atomic.Int64
	wg    sync.WaitGroup
}

func (s *Store) startPipeline(raws [][]byte) *pipeline {
	// Chunks of up to maxChunk keep batches large where blocks are; a
	// small block is cut so that every worker gets a share.
	chunk := min(maxChunk, max(minChunk, (len(raws)+s.opts.VerifyWorkers-1)/s.opts.VerifyWorkers))
	n := (len(raws) + chunk - 1) / chunk
	p := &pipeline{raws: raws, chunk: chunk, txs: make([]*decodedTx, len(raws)), done: make([]chan struct{}, n)}
	for i := range p.done {
		p.done[i] = make(chan struct{})
	}
	workers := min(s.opts.VerifyWorkers, n)
	p.wg.Add(workers)
	for range workers {
		go p.work(s)
	}
	return p
}

func (p *pipeline) work(s *Store) {
	defer p.wg.Done()
	for {
		c := int(p.next.Add(1) - 1)
		if c >= len(p.done) {
			return
		}
		end := min((c+1)*p.chunk, len(p.raws))
		tasks := make([]*sigTask, 0, end-c*p.chunk)
		prechecked := !s.verified.empty()
		for i := c * p.chunk; i < end; i++ {
			t, k := s.decode(p.raws[i])
			p.txs[i] = t
			if k == nil {
				continue
			}
			if prechecked && s.takeVerified(k) {
				s.lookupFirst(t)
				continue
			}
			tasks = append(tasks, k)
		}
		s.verify(tasks)
		for _, k := range tasks {
			if k.t.rej == nil {
				s.lookupFirst(k.t)
			}
		}
		close(p.done[c])
	}
}

// takeVerified finishes k without verifying it if this node's Precheck
// verified the same bytes (verifiedCache).
func (s *Store) takeVerified(k *sigTask) bool {
	off, ok := s.verified.take(sha256.Sum256(k.t.raw))
	if ok {
		k.t.body, k.t.sigs, k.t.off = k.body, k.sigs, off
	}
	return ok
}

// lookupFirst reads t's committed outcome, if any. It reads the store as
// the last commit left it: Apply calls do not overlap, and the call's own
// writes are the applier's to account for.
func (s *Store) lookupFirst(t *decodedTx) {
	var rec statepb.TxRecord
	found, err := getProto(s.db, keyTx(t.id[:]), &rec)
	if err != nil {
		t.firstErr = err
		return
	}
	if found {
		t.firstErr = fillMessage(s.db, rec.GetResult())
		t.first = &rec
	}
}

// take waits until transaction i is decoded and verified and hands it
// over: the pipeline lets go of it, so a long call (Raft hands over up to
// 64 entries of up to 2,000 transactions) does not keep every decoded
// transaction alive until it ends.
func (p *pipeline) take(i int) *decodedTx {
	<-p.done[i/p.chunk]
	t := p.txs[i]
	p.txs[i] = nil
	return t
}

// wait lets every worker finish, so none outlives the Apply call.
func (p *pipeline) wait() { p.wg.Wait() }
