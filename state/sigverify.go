package state

import (
	"crypto/ed25519"
	"sync/atomic"

	"github.com/hdevalence/ed25519consensus"

	"github.com/dcep/dcep/state/statepb"
)

// Transaction signatures are valid by ZIP-215's rules (ed25519consensus):
// RFC 8032 Ed25519 with the cofactored equation and any encoding of a
// valid point accepted. Every signature a standard Ed25519 signer makes is
// valid by them, and, unlike crypto/ed25519's rules, they give a batch
// verification that accepts exactly the batches whose signatures each
// verify alone. So the verdict on a transaction never depends on which
// others share its batch, and every node reaches the same verdicts.
//
// A batch costs about half as much per signature as verifying one by one
// (docs/PERFORMANCE.md). It draws random coefficients, so a batch holding
// a bad signature passes with probability 2^-128 at most (a hash
// collision's odds); a batch that fails is decided signature by signature
// (firstBadSig). So each verdict is, but for that probability, a function
// of the transaction's bytes alone, as the ledger requires.

// minBatchSigs is the fewest signatures worth a batch: below it the
// batch's fixed cost outweighs what it saves.
const minBatchSigs = 4

// verify checks the signatures of tasks, together when there are enough,
// and finishes each transaction: a bad signature rejects it with the index
// of the first one that fails; otherwise the offline kinds' own checks run
// and the transaction is ready to apply. Results depend only on each
// transaction's bytes.
func (s *Store) verify(tasks []*sigTask) {
	n := 0
	for _, k := range tasks {
		n += len(k.sigs)
	}
	s.sigStats.sigs.Add(uint64(n))
	s.sigStats.batches.Add(1)
	batchOK := false
	if n >= minBatchSigs {
		v := ed25519consensus.NewPreallocatedBatchVerifier(n)
		for _, k := range tasks {
			for _, sig := range k.sigs {
				v.Add(ed25519.PublicKey(sig.GetPublicKey()), k.msg, sig.GetSignature())
			}
		}
		batchOK = v.Verify()
	}
	for _, k := range tasks {
		if !batchOK {
			if i := firstBadSig(k); i >= 0 {
				k.t.rej = statepb.Errorf(statepb.Code_CODE_SIGNATURE_INVALID, "signatures[%d]: does not verify", i)
				continue
			}
		}
		if k.t.rej = s.checkOffline(k.t, k.body); k.t.rej != nil {
			continue
		}
		k.t.body, k.t.sigs = k.body, k.sigs
	}
}

// firstBadSig is the index of the first signature of k that does not
// verify on its own, or -1.
func firstBadSig(k *sigTask) int {
	for i, sig := range k.sigs {
		if !ed25519consensus.Verify(ed25519.PublicKey(sig.GetPublicKey()), k.msg, sig.GetSignature()) {
			return i
		}
	}
	return -1
}

// sigStats counts what verify did: signatures handed to it and calls
// (batches). Tests read them.
type sigStats struct {
	sigs, batches atomic.Uint64
}
