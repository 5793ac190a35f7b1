package state

import (
	"crypto/ed25519"
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
}

// decodeTx runs the stateless checks in the order docs/errors.md lists them,
// ending with signature verification, the expensive part, which is why this
// runs on worker goroutines.
func (s *Store) decodeTx(raw []byte) *decodedTx { return s.check(raw, true) }

// Precheck runs the stateless checks except signature verification: what a
// node does before proposing, so malformed transactions never enter the log
// while the (expensive) signatures are verified once, at apply. It returns
// the transaction id (zero if the body did not decode) and the rejection,
// if any.
func (s *Store) Precheck(raw []byte) ([32]byte, *statepb.Error) {
	t := s.check(raw, false)
	return t.id, t.rej
}

func (s *Store) check(raw []byte, verify bool) *decodedTx {
	t := &decodedTx{raw: raw}
	if len(raw) > statepb.MaxTxBytes {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_TOO_LARGE, "transaction: %d bytes (max %d)", len(raw), statepb.MaxTxBytes)
		return t
	}
	var stx statepb.SignedTx
	if err := proto.Unmarshal(raw, &stx); err != nil {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "signed_tx: %v", err)
		return t
	}
	if len(stx.GetBody()) == 0 {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "signed_tx.body: empty")
		return t
	}
	t.id, t.hasID = TxID(stx.GetBody()), true
	body := &statepb.Tx{}
	if err := proto.Unmarshal(stx.GetBody(), body); err != nil {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "body: %v", err)
		return t
	}
	if statepb.HasUnknownFields(&stx) {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_UNKNOWN_FIELDS, "signed_tx: has fields this node does not know")
		return t
	}
	if statepb.HasUnknownFields(body) {
		t.rej = statepb.Errorf(statepb.Code_CODE_TX_UNKNOWN_FIELDS, "body: has fields this node does not know")
		return t
	}
	if body.GetVersion() == statepb.TxVersion && body.GetChainId() != s.genesis.GetChainId() {
		t.rej = statepb.Errorf(statepb.Code_CODE_CHAIN_ID_MISMATCH, "chain_id: %q (this network is %q)", body.GetChainId(), s.genesis.GetChainId())
		return t
	}
	if err := body.ValidateBasic(); err != nil {
		t.rej = asRejection(err)
		return t
	}
	if err := stx.ValidateBasic(); err != nil {
		t.rej = asRejection(err)
		return t
	}
	if want := requiredSignatures(body); len(stx.GetSignatures()) != want {
		t.rej = statepb.Errorf(statepb.Code_CODE_SIGNATURE_COUNT, "signatures: %d (a %s needs %d)", len(stx.GetSignatures()), kindName(body), want)
		return t
	}
	if !verify {
		return t
	}
	msg := SignBytes(body.GetChainId(), s.genesisHash, stx.GetBody())
	for i, sig := range stx.GetSignatures() {
		if !ed25519.Verify(sig.GetPublicKey(), msg, sig.GetSignature()) {
			t.rej = statepb.Errorf(statepb.Code_CODE_SIGNATURE_INVALID, "signatures[%d]: does not verify", i)
			return t
		}
	}
	if t.rej = s.checkOffline(t, body); t.rej != nil {
		return t
	}
	t.body, t.sigs = body, stx.GetSignatures()
	return t
}

func asRejection(err error) *statepb.Error {
	if e, ok := err.(*statepb.Error); ok {
		return e
	}
	return statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "%v", err)
}

// requiredSignatures is how many signers a kind needs; who they must be is
// decided against state (signers in apply.go).
func requiredSignatures(body *statepb.Tx) int {
	if _, ok := body.GetKind().(*statepb.Tx_Return); ok {
		return 2
	}
	return 1
}

// pipelineChunk is how many transactions a worker takes at a time: small
// enough that the applier starts early, large enough to amortize handoff.
const pipelineChunk = 16

// pipeline decodes and verifies transactions on worker goroutines. Chunks are
// handed out in order and each has its own done signal, so the sequential
// applier works on chunk i while workers verify later chunks. Results sit at
// fixed positions: their order never depends on goroutine timing.
type pipeline struct {
	raws [][]byte
	txs  []*decodedTx
	done []chan struct{}
	next atomic.Int64
	wg   sync.WaitGroup
}

func (s *Store) startPipeline(raws [][]byte) *pipeline {
	n := (len(raws) + pipelineChunk - 1) / pipelineChunk
	p := &pipeline{raws: raws, txs: make([]*decodedTx, len(raws)), done: make([]chan struct{}, n)}
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
		end := min((c+1)*pipelineChunk, len(p.raws))
		for i := c * pipelineChunk; i < end; i++ {
			p.txs[i] = s.decodeTx(p.raws[i])
		}
		close(p.done[c])
	}
}

// get waits until transaction i is decoded and verified.
func (p *pipeline) get(i int) *decodedTx {
	<-p.done[i/pipelineChunk]
	return p.txs[i]
}

// wait lets every worker finish, so none outlives the Apply call.
func (p *pipeline) wait() { p.wg.Wait() }
