package node

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state/statepb"
)

// submit takes one signed transaction to its committed outcome. It refuses
// writes on a regulator, answers stateless rejections without touching
// consensus, and otherwise proposes (as leader) or forwards (to the
// leader), resubmitting the same bytes across leader changes until the
// submit timeout. It returns once this node has applied the transaction,
// so a read here right after sees it.
func (n *Node) submit(ctx context.Context, raw []byte) (*statepb.TxResult, error) {
	if n.role() != statepb.NodeRole_NODE_ROLE_VOTER {
		return nil, apiError(CodeReadOnly, "node %s is a %s node and refuses every write; send transactions to a bank node", n.cfg.Name, roleName(n.role()))
	}
	id, rej := n.store.Precheck(raw)
	if rej != nil {
		res := &statepb.TxResult{}
		rej.Fill(res) // code, field, args and message
		if id != ([32]byte{}) {
			res.TxId = id[:]
		}
		n.metrics.txOutcome(res)
		return res, nil
	}
	if err := n.chargeSigners(raw); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, ms(n.cfg.Limits.SubmitTimeoutMs))
	defer cancel()
	start := time.Now()
	res, err := n.commit(ctx, id, raw)
	if err != nil {
		return nil, err
	}
	if err := n.cons.WaitApplied(ctx, res.GetLogIndex()); err != nil {
		return nil, apiError(CodeTimeout, "committed at index %d but not yet applied on %s: %v", res.GetLogIndex(), n.cfg.Name, err)
	}
	n.metrics.submitLatency.Observe(time.Since(start).Seconds())
	return res, nil
}

// commit proposes or forwards until a result or the deadline. A
// transaction already recorded needs no local lookup first: the ledger
// answers a duplicate with its first outcome (on every node, in the log's
// order), and a lookup here would cost every fresh submission an LSM
// search for an id that is almost never there. Only when consensus cannot
// answer (no leader, no quorum) does it look in this node's ledger, so a
// wallet retrying a payment that committed before the outage still gets
// its outcome.
func (n *Node) commit(ctx context.Context, id [32]byte, raw []byte) (*statepb.TxResult, error) {
	backoff := 20 * time.Millisecond
	var last error
	// mayBeOurs: an attempt of this call may have been recorded (its
	// outcome was lost: a leader change, a cut connection). A later answer
	// "already recorded" may then be that attempt's own outcome, which is
	// not a duplicate for the client (docs/api.md, "Outcomes and errors").
	mayBeOurs := false
	for {
		changed := n.leaders.next()
		var res *statepb.TxResult
		var err error
		if n.cons.IsReadyLeader() {
			var rs []*statepb.TxResult
			if rs, err = n.cons.Submit(ctx, [][]byte{raw}); err == nil {
				res = rs[0]
			}
		} else {
			res, err = n.fwd.forward(ctx, raw)
		}
		if err == nil {
			if mayBeOurs && res.GetDuplicate() {
				res = proto.CloneOf(res)
				res.Duplicate = false
			}
			return res, nil
		}
		if errors.Is(err, consensus.ErrOverloaded) {
			return nil, apiError(CodeOverloaded, "the leader's proposal queue is full; retry shortly")
		}
		if errors.Is(err, consensus.ErrStopped) {
			return nil, apiError(CodeUnavailable, "node %s is shutting down; resubmitting the same transaction to another node is safe", n.cfg.Name)
		}
		if !retryable(err) {
			return nil, apiError(CodeInternal, "%v", err)
		}
		last = err
		mayBeOurs = mayBeOurs || !(errors.Is(err, consensus.ErrNoLeader) || errors.Is(err, consensus.ErrNotLeader))
		if rec, err := n.store.Tx(id[:]); err == nil {
			res := rec.GetResult()
			res.Duplicate = !mayBeOurs
			return res, nil
		}
		select {
		case <-ctx.Done():
			return nil, n.deadlineError(last)
		case <-changed:
			// A new leader (or none): try again at once, not after the
			// backoff, so the client's answer follows the election.
			backoff = 20 * time.Millisecond
		case <-time.After(backoff):
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}
}

func (n *Node) deadlineError(last error) error {
	timeout := ms(n.cfg.Limits.SubmitTimeoutMs)
	if _, addr := n.cons.Leader(); addr == "" || errors.Is(last, consensus.ErrNoLeader) {
		return apiError(CodeNoQuorum, "no leader for %v: fewer than a quorum of voters are reachable, so nothing can commit; resubmitting the same transaction later is safe", timeout)
	}
	return apiError(CodeTimeout, "not committed within %v (last error: %v); resubmitting the same transaction is safe", timeout, last)
}

func roleName(r statepb.NodeRole) string {
	switch r {
	case statepb.NodeRole_NODE_ROLE_VOTER:
		return "voter"
	case statepb.NodeRole_NODE_ROLE_REGULATOR:
		return "regulator (read-only)"
	case statepb.NodeRole_NODE_ROLE_UNSPECIFIED:
		return "non-member (not yet added to the network)"
	}
	return r.String()
}
