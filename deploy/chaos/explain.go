package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// explainBreak logs what a model break in the log-order replay is about,
// so a failing run names the cause rather than only the transaction: each
// input of the transaction the model cannot explain, what the model knows
// of it, every operation of the cell's history that spent or created it
// (whatever its status), and every transaction the ledger recorded for the
// payer's wallet that is not among the cell's recorded operations.
func (c *Campaign) explainBreak(cl *cell, cops []*op, bad *op, s *cellState) {
	c.logf("model break, cell %d: tx %x w%d→w%d %d fen, status %s, attempts %d, resolved %s",
		cl.id, bad.tx.ID[:6], bad.from, bad.to, bad.amount, statusName(bad.status), bad.attempts, describe(bad.resolved))
	for _, k := range bad.inputs {
		if o, ok := s.outs[k]; ok {
			c.logf("  input %s: model: w%d %d fen spent=%t", k, o.wallet, o.amount, o.spent)
		} else {
			c.logf("  input %s: model: unknown output", k)
		}
		for _, o := range cops {
			if o.kind != opTransfer || o.tx == nil || o == bad {
				continue
			}
			if slices.Contains(o.inputs, k) || o.tx.ID == k.tx {
				role := "spends it"
				if o.tx.ID == k.tx {
					role = "created it"
				}
				c.logf("    op %x (worker %d, %s): status %s (%s), attempts %d, call %.3fs ret %.3fs, resolved %s",
					o.tx.ID[:6], o.worker, role, statusName(o.status), o.apiCode, o.attempts,
					float64(o.call)/1e9, float64(o.ret)/1e9, describe(o.resolved))
			}
		}
	}
	known := map[[32]byte]bool{}
	for _, o := range cops {
		if o.kind == opTransfer && o.tx != nil {
			known[o.tx.ID] = true
		}
	}
	for _, k := range cl.initial {
		known[k.key.tx] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api := c.client(c.nodes[0])
	for j := range cellWallets {
		for e, err := range api.History(ctx, cl.wallets[j].id) {
			if err != nil {
				c.logf("  history of w%d: %v", j, err)
				break
			}
			if id := [32]byte(e.GetTxId()); !known[id] {
				c.logf("  ledger: w%d's history has %s tx %x at %d (in %d, out %d fen) that no operation of the cell made",
					j, e.GetKind(), id[:6], e.GetLogIndex(), e.GetInFen(), e.GetOutFen())
			}
		}
	}
}

func statusName(s status) string {
	switch s {
	case statusAcked:
		return "acked"
	case statusUnknown:
		return "unknown"
	case statusNotSent:
		return "not sent"
	case statusLocalError:
		return "local error"
	}
	return fmt.Sprint(uint8(s))
}
