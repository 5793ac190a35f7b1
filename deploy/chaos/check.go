package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/anishathalye/porcupine"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

func connectReq() *connect.Request[nodepb.StatusRequest] {
	return connect.NewRequest(&nodepb.StatusRequest{})
}

// check runs every check after healing and builds the report.
func (c *Campaign) check() *Report {
	rep := c.newReport()
	ops := c.wl.ops()
	// A node may still be resubmitting a transaction a client gave up on
	// (until its submit timeout): let that settle before anything is
	// resolved.
	time.Sleep(7 * time.Second)
	applied, err := c.converge(rep, 2*time.Minute)
	if err != nil {
		rep.breakf("convergence: %v", err)
		return rep.finish(c, ops)
	}
	c.logf("every node at applied index %d with the same state hash", applied)
	streams := c.streamAll(rep, applied)
	c.resolve(rep, ops)
	c.checkAcked(rep, ops, streams)
	c.checkCells(rep, ops, streams)
	c.audits(rep)
	return rep.finish(c, ops)
}

// converge waits until every node reports the same applied index and state
// hash, having applied all it knows committed.
func (c *Campaign) converge(rep *Report, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		rec := &FaultRecord{}
		for _, n := range c.nodes {
			c.revive(rec, n)
		}
		rep.Findings = append(rep.Findings, rec.Findings...)
		var index uint64
		var hash []byte
		ok := true
		var desc []string
		for i, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := c.client(n).API().Status(ctx, connectReq())
			cancel()
			if err != nil {
				ok = false
				desc = append(desc, fmt.Sprintf("%s: %v", n, err))
				continue
			}
			s := st.Msg.GetNode()
			desc = append(desc, fmt.Sprintf("%s: applied %d commit %d hash %x", n, s.GetAppliedIndex(), s.GetCommitIndex(), prefix(s.GetStateHash())))
			if i == 0 {
				index, hash = s.GetAppliedIndex(), s.GetStateHash()
			}
			if s.GetAppliedIndex() != index || !bytes.Equal(s.GetStateHash(), hash) || s.GetAppliedIndex()+8 < s.GetCommitIndex() {
				ok = false
			}
		}
		if ok {
			return index, nil
		}
		last = fmt.Sprint(desc)
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("nodes did not converge within %v: %s", timeout, last)
}

func prefix(b []byte) []byte {
	if len(b) > 6 {
		return b[:6]
	}
	return b
}

// appearance is where a transaction's outcome sits in one node's blocks.
type appearance struct {
	index  uint64
	pos    int
	result *statepb.TxResult
}

// streamAll reads every node's committed outcomes from index 1 to applied:
// map tx id → appearances (more than one that is not a duplicate answer is
// a transaction applied twice).
func (c *Campaign) streamAll(rep *Report, applied uint64) []map[[32]byte][]appearance {
	out := make([]map[[32]byte][]appearance, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := map[[32]byte][]appearance{}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			done := errors.New("done")
			err := c.client(n).Outcomes(ctx, 1, func(b *statepb.BlockRecord) error {
				for p, r := range b.GetResults() {
					m[[32]byte(r.GetTxId())] = append(m[[32]byte(r.GetTxId())], appearance{index: b.GetLogIndex(), pos: p, result: r})
				}
				if b.GetLogIndex() >= applied {
					return done
				}
				return nil
			})
			if !errors.Is(err, done) {
				rep.breakf("%s: outcome stream to index %d: %v", n, applied, err)
			}
			out[i] = m
		}()
	}
	wg.Wait()
	return out
}

// resolve looks every transfer up on every node: the ledger's record of it
// (after healing, every node must say the same).
func (c *Campaign) resolve(rep *Report, ops []*op) {
	results := make([][]*statepb.TxResult, len(ops))
	var transfers []int
	for i, o := range ops {
		if o.kind == opTransfer && o.tx != nil && o.status != statusLocalError {
			results[i] = make([]*statepb.TxResult, len(c.nodes))
			transfers = append(transfers, i)
		}
	}
	jobs := make(chan [2]int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				i, n := j[0], j[1]
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := c.client(c.nodes[n]).Tx(ctx, ops[i].tx.ID)
				cancel()
				switch {
				case err == nil:
					results[i][n] = resp.GetResult()
				case !errors.Is(err, client.ErrNotFound):
					mu.Lock()
					rep.breakf("%s: GetTx %x: %v", c.nodes[n], ops[i].tx.ID[:6], err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, i := range transfers {
		for n := range c.nodes {
			jobs <- [2]int{i, n}
		}
	}
	close(jobs)
	wg.Wait()
	for _, i := range transfers {
		o, rs := ops[i], results[i]
		for n := 1; n < len(rs); n++ {
			if !sameResult(rs[0], rs[n]) {
				rep.breakf("tx %x: %s says %s, %s says %s", o.tx.ID[:6], c.nodes[0], describe(rs[0]), c.nodes[n], describe(rs[n]))
			}
		}
		o.resolved = rs[0]
	}
}

func sameResult(a, b *statepb.TxResult) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.GetCode() == b.GetCode() && a.GetLogIndex() == b.GetLogIndex() && a.GetTimeMs() == b.GetTimeMs()
}

func describe(r *statepb.TxResult) string {
	if r == nil {
		return "not recorded"
	}
	return fmt.Sprintf("%s at %d", r.GetCode().Short(), r.GetLogIndex())
}

// checkAcked: every acknowledged transaction on every node with the outcome
// its client was told, exactly once; every unknown one recorded once or not
// at all; nothing the client was told was not sent recorded.
func (c *Campaign) checkAcked(rep *Report, ops []*op, streams []map[[32]byte][]appearance) {
	for _, o := range ops {
		if o.kind != opTransfer || o.tx == nil || o.status == statusLocalError {
			continue
		}
		switch o.status {
		case statusAcked:
			if o.resolved == nil {
				rep.Lost++
				rep.breakf("lost: tx %x acknowledged %s is not recorded", o.tx.ID[:6], describe(o.result))
			} else if o.resolved.GetCode() != o.result.GetCode() || o.resolved.GetLogIndex() != o.result.GetLogIndex() {
				rep.Lost++
				rep.breakf("changed: tx %x acknowledged %s, recorded %s", o.tx.ID[:6], describe(o.result), describe(o.resolved))
			}
		case statusUnknown:
			if o.resolved != nil {
				rep.UnknownCommitted++
			} else {
				rep.UnknownNone++
			}
		case statusNotSent:
			if o.resolved != nil {
				rep.breakf("tx %x: no node took it (last answer %s), yet it is recorded %s", o.tx.ID[:6], o.apiCode, describe(o.resolved))
			}
		}
		for n, m := range streams {
			if m == nil {
				continue
			}
			var first []appearance
			for _, a := range m[o.tx.ID] {
				if !a.result.GetDuplicate() {
					first = append(first, a)
				}
			}
			switch {
			case len(first) > 1:
				rep.Duplicated++
				rep.breakf("duplicated: tx %x decided %d times on %s (indexes %v)", o.tx.ID[:6], len(first), c.nodes[n], indexes(first))
			case len(first) == 1 && o.resolved == nil:
				rep.breakf("tx %x in %s's block %d but GetTx does not find it", o.tx.ID[:6], c.nodes[n], first[0].index)
			case len(first) == 0 && o.resolved != nil:
				rep.breakf("tx %x recorded at %d but not in %s's outcome stream", o.tx.ID[:6], o.resolved.GetLogIndex(), c.nodes[n])
			case len(first) == 1 && first[0].index != o.resolved.GetLogIndex():
				rep.breakf("tx %x: %s's stream has it at %d, GetTx at %d", o.tx.ID[:6], c.nodes[n], first[0].index, o.resolved.GetLogIndex())
			}
		}
	}
}

func indexes(as []appearance) []uint64 {
	var out []uint64
	for _, a := range as {
		out = append(out, a.index)
	}
	return out
}

// checkCells, per cell: the committed transfers replayed in log order
// through the model (every outcome justified), the final balances and
// unspent outputs on every node equal to the model's, and the history
// linearizable (porcupine).
func (c *Campaign) checkCells(rep *Report, ops []*op, streams []map[[32]byte][]appearance) {
	m := &cellModel{}
	for j, t := range cellTiers {
		for _, tl := range c.builder.Genesis().GetTiers() {
			if tl.GetTier() == t {
				m.tiers[j] = caps{balance: tl.GetMaxBalanceFen(), payment: tl.GetMaxPaymentFen(), daily: tl.GetMaxDailyFen(), yearly: tl.GetMaxYearlyFen()}
			}
		}
	}
	byCell := make([][]*op, len(c.wl.cells))
	for _, o := range ops {
		byCell[o.cell] = append(byCell[o.cell], o)
	}
	verdicts := make([]porcupine.CheckResult, len(byCell))
	for ci, cops := range byCell {
		cl := c.wl.cells[ci]
		final := c.replayCell(rep, m, cl, cops, streams[0])
		if final != nil {
			c.compareBalances(rep, cl, final)
		}
		verdicts[ci] = c.linearizable(rep, m, cl, cops)
	}
	rep.Linearizable = "linearizable"
	for ci, v := range verdicts {
		switch v {
		case porcupine.Illegal:
			rep.Linearizable = "NOT linearizable"
			rep.breakf("cell %d: history not linearizable (see %s)", ci, filepath.Join(c.dir, fmt.Sprintf("porcupine-cell%d.html", ci)))
		case porcupine.Unknown:
			if rep.Linearizable == "linearizable" {
				rep.Linearizable = "unknown (checker timed out)"
			}
		}
	}
}

// replayCell applies the cell's recorded transfers in log order (block,
// then position in the block) and returns the final state.
func (c *Campaign) replayCell(rep *Report, m *cellModel, cl *cell, cops []*op, stream map[[32]byte][]appearance) *cellState {
	type rec struct {
		o   *op
		pos int
	}
	var recs []rec
	for _, o := range cops {
		if o.kind == opTransfer && o.resolved != nil {
			pos := 0
			for _, a := range stream[o.tx.ID] {
				if a.index == o.resolved.GetLogIndex() {
					pos = a.pos
				}
			}
			recs = append(recs, rec{o, pos})
		}
	}
	sort.Slice(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.o.resolved.GetLogIndex() != b.o.resolved.GetLogIndex() {
			return a.o.resolved.GetLogIndex() < b.o.resolved.GetLogIndex()
		}
		return a.pos < b.pos
	})
	s := m.init(cl.initial)
	for _, r := range recs {
		ok, next := m.step(s, inputOf(r.o), modelOut{code: r.o.resolved.GetCode()})
		if !ok {
			rep.breakf("cell %d: in log order, tx %x (w%d→w%d %d fen) at %d is %s, which the model cannot explain",
				cl.id, r.o.tx.ID[:6], r.o.from, r.o.to, r.o.amount, r.o.resolved.GetLogIndex(), r.o.resolved.GetCode().Short())
			c.explainBreak(cl, cops, r.o, s)
			return nil
		}
		s = next
	}
	return s
}

func inputOf(o *op) modelIn {
	if o.kind == opRead {
		return modelIn{kind: opRead, wallet: o.wallet}
	}
	in := modelIn{kind: opTransfer, id: o.tx.ID, from: o.from, to: o.to, inputs: o.inputs, amount: o.amount}
	if o.resolved != nil {
		in.timeMs = o.resolved.GetTimeMs()
	}
	return in
}

// compareBalances reads every cell wallet on every node.
func (c *Campaign) compareBalances(rep *Report, cl *cell, final *cellState) {
	for j := range uint8(cellWallets) {
		var want []string
		for k, o := range final.outs {
			if !o.spent && o.wallet == j {
				want = append(want, fmt.Sprintf("%s=%d", k, o.amount))
			}
		}
		slices.Sort(want)
		for _, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			un, err := c.client(n).Unspent(ctx, cl.wallets[j].id)
			bal, berr := c.client(n).Balance(ctx, cl.wallets[j].id)
			cancel()
			if err != nil || berr != nil {
				rep.breakf("%s: read %s: %v %v", n, cl.wallets[j].id, err, berr)
				continue
			}
			var got []string
			for _, u := range un {
				got = append(got, fmt.Sprintf("%s=%d", keyOf(u.GetOutpoint()), u.GetAmountFen()))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) || bal != final.balance(j) {
				rep.breakf("%s: wallet %s holds %d fen in %v; the model says %d in %v", n, cl.wallets[j].id, bal, got, final.balance(j), want)
			}
		}
	}
}

// linearizable checks the cell's history with porcupine. Transfers whose
// outcome the client never learned are in it if the ledger recorded them,
// as calls that may have taken effect any time after they began; those the
// ledger never recorded had no effect and are left out.
func (c *Campaign) linearizable(rep *Report, m *cellModel, cl *cell, cops []*op) porcupine.CheckResult {
	var hist []porcupine.Operation
	var end int64
	for _, o := range cops {
		end = max(end, o.ret)
	}
	for _, o := range cops {
		switch {
		case o.kind == opRead:
			hist = append(hist, porcupine.Operation{ClientId: o.worker, Input: inputOf(o), Output: modelOut{balance: o.balance}, Call: o.call, Return: o.ret})
		case o.resolved == nil:
			continue
		case o.status == statusAcked:
			in := inputOf(o)
			in.timeMs = o.result.GetTimeMs()
			hist = append(hist, porcupine.Operation{ClientId: o.worker, Input: in, Output: modelOut{code: o.result.GetCode()}, Call: o.call, Return: o.ret})
		default:
			hist = append(hist, porcupine.Operation{ClientId: o.worker, Input: inputOf(o), Output: modelOut{code: o.resolved.GetCode()}, Call: o.call, Return: end + 1})
		}
	}
	model := m.porcupineModel(cl.initial)
	res, info := porcupine.CheckOperationsVerbose(model, hist, 2*time.Minute)
	if res == porcupine.Illegal {
		path := filepath.Join(c.dir, fmt.Sprintf("porcupine-cell%d.html", cl.id))
		if err := porcupine.VisualizePath(model, info, path); err != nil {
			c.logf("porcupine visualization: %v", err)
		}
	}
	rep.CheckedOps += len(hist)
	return res
}

// audits: the supply invariant, the divergence audit and (if asked) the
// replay of its own log, on every node.
func (c *Campaign) audits(rep *Report) {
	var outstanding []uint64
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		s, err := c.client(n).Supply(ctx, true)
		d, derr := c.client(n).Divergence(ctx)
		cancel()
		switch {
		case err != nil:
			rep.breakf("%s: supply audit: %v", n, err)
		case !s.GetInvariantHolds():
			rep.breakf("%s: supply invariant broken: %s", n, s.GetInvariantError())
		default:
			outstanding = append(outstanding, s.GetOutstandingFen())
		}
		if derr != nil {
			rep.breakf("%s: divergence audit: %v", n, derr)
		} else {
			for _, dv := range d.GetDivergences() {
				rep.breakf("%s: state diverged from %s at index %d (ongoing %v)", n, dv.GetPeer(), dv.GetFirstIndex(), dv.GetOngoing())
			}
			if d.GetSelfSuspect() {
				rep.breakf("%s: divergence audit: self-suspect", n)
			}
		}
	}
	for _, o := range outstanding {
		if o != outstanding[0] {
			rep.breakf("outstanding supply differs between nodes: %v", outstanding)
			break
		}
	}
	rep.SupplyAudited = len(outstanding)
	if !c.cfg.Replay {
		return
	}
	for _, n := range c.nodes {
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		r, err := c.client(n).Replay(ctx, false)
		cancel()
		switch {
		case err != nil:
			rep.breakf("%s: replay: %v", n, err)
		case !r.GetReproduced():
			rep.breakf("%s: replay from %d to %d not reproduced: %d outcome and %d hash mismatches (first at %d)", n,
				r.GetFromIndex(), r.GetToIndex(), r.GetOutcomeMismatches(), r.GetHashMismatches(), r.GetFirstHashMismatchIndex())
		default:
			rep.Replayed = append(rep.Replayed, fmt.Sprintf("%s: %d blocks %d txs from %d in %v", n, r.GetBlocks(), r.GetTransactions(), r.GetFromIndex(), time.Since(began).Round(time.Millisecond)))
		}
	}
}

// firstCommits fills each fault's time from injection to the first
// transaction submitted after it that committed in a later log entry than
// any transaction acknowledged before it.
func firstCommits(records []*FaultRecord, ops []*op) {
	var done []*op
	for _, o := range ops {
		if o.kind == opTransfer && o.status == statusAcked {
			done = append(done, o)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].ret < done[j].ret })
	for _, r := range records {
		if r.Skipped != "" {
			continue
		}
		at := int64(r.At)
		var before uint64
		for _, o := range done {
			if o.ret <= at {
				before = max(before, o.result.GetLogIndex())
			}
		}
		for _, o := range done {
			if o.call >= at && o.result.GetLogIndex() > before {
				r.FirstCommit = time.Duration(o.ret - at)
				break
			}
		}
	}
}
