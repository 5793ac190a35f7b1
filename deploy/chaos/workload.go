package chaos

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// The workload: cells of four wallets at one bank (two tier 1, two tier 4,
// so the tier-4 per-payment, daily and balance limits are hit), each cell
// driven by a few concurrent clients that transfer between its wallets.
// Transfers never leave a cell, so each cell's history is checked on its own
// (porcupine's P-compositionality) against a model of its outputs.

// cellTiers are the tiers of a cell's wallets, by index.
var cellTiers = [cellWallets]uint32{1, 1, 4, 4}

const cellWallets = 4

// Funding per wallet at setup: tier 4 below its balance cap.
var cellFunding = [cellWallets]uint64{20_000 * state.Yuan, 20_000 * state.Yuan, 5_000 * state.Yuan, 5_000 * state.Yuan}

type wallet struct {
	id   string
	key  ed25519.PrivateKey
	tier uint32
}

type cell struct {
	id      int
	bank    string
	wallets [cellWallets]wallet
	// initial are the wallets' unspent outputs once funded.
	initial []outputAt
}

// outputAt is an unspent output of a cell wallet.
type outputAt struct {
	key    outKey
	wallet uint8
	amount uint64
}

// opKind tells transfers from linearizable balance reads.
type opKind uint8

const (
	opTransfer opKind = iota + 1
	opRead
)

// status is what the client learned of a transfer.
type status uint8

const (
	statusAcked      status = iota + 1 // the ledger's outcome came back
	statusUnknown                      // attempts ran out after one may have reached a node
	statusNotSent                      // no node took it (unreachable or refused before the ledger)
	statusLocalError                   // the harness built something the SDK refused (a harness bug)
)

// op is one entry of the history.
type op struct {
	kind   opKind
	cell   int
	worker int
	call   int64 // ns since the campaign began
	ret    int64

	// transfer
	tx       *client.SignedTx
	from, to uint8
	inputs   []outKey
	amount   uint64
	status   status
	result   *statepb.TxResult // acked: what the client was told
	apiCode  string            // the last API error, for unknown / not sent
	attempts int
	// resolved is the ledger's record after healing (nil: not recorded).
	resolved *statepb.TxResult

	// read
	wallet  uint8
	balance uint64
	node    string
}

// workload runs the clients and records the history.
type workload struct {
	c       *Campaign
	cells   []*cell
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	history []*op

	submitted atomic.Int64
	resubmits atomic.Int64
}

func (w *workload) record(o *op) {
	w.mu.Lock()
	w.history = append(w.history, o)
	w.mu.Unlock()
}

// ops returns a copy of the history so far.
func (w *workload) ops() []*op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*op(nil), w.history...)
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// setupCells registers and funds every cell's wallets (before any fault),
// then reads their outputs back linearizably.
func (c *Campaign) setupCells(ctx context.Context) ([]*cell, error) {
	banks := c.bankIDs()
	cells := make([]*cell, c.cfg.Cells)
	errs := make([]error, len(banks))
	var wg sync.WaitGroup
	// One goroutine per bank: a bank's exchanges spend its reserve, so they
	// go one at a time.
	for bi, bank := range banks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ci := bi; ci < len(cells); ci += len(banks) {
				cl, err := c.setupCell(ctx, ci, bank)
				if err != nil {
					errs[bi] = fmt.Errorf("cell %d: %w", ci, err)
					return
				}
				cells[ci] = cl
			}
		}()
	}
	wg.Wait()
	return cells, errors.Join(errs...)
}

func (c *Campaign) setupCell(ctx context.Context, ci int, bank string) (*cell, error) {
	cl := &cell{id: ci, bank: bank}
	api := c.client(c.voters[ci%len(c.voters)])
	bankKey := c.bankKeys[bank]
	var total uint64
	for j := range cellWallets {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		cl.wallets[j] = wallet{id: fmt.Sprintf("chaos-c%d-w%d", ci, j), key: priv, tier: cellTiers[j]}
		if _, err := api.RegisterWallet(ctx, bankKey, &statepb.RegisterWallet{
			WalletId: cl.wallets[j].id, BankId: bank, PublicKey: pub, Kind: statepb.WalletKind_WALLET_KIND_PERSONAL, Tier: cellTiers[j],
		}); err != nil {
			return nil, fmt.Errorf("register %s: %w", cl.wallets[j].id, err)
		}
		total += cellFunding[j]
	}
	if _, err := api.Issue(ctx, c.cbKey, bank, total); err != nil {
		return nil, fmt.Errorf("issue to %s: %w", bank, err)
	}
	for j := range cellWallets {
		if _, err := api.Exchange(ctx, bankKey, bank, cl.wallets[j].id, cellFunding[j]); err != nil {
			return nil, fmt.Errorf("exchange to %s: %w", cl.wallets[j].id, err)
		}
	}
	for j := range cellWallets {
		un, err := api.Unspent(ctx, cl.wallets[j].id, client.Linearizable())
		if err != nil {
			return nil, err
		}
		for _, u := range un {
			cl.initial = append(cl.initial, outputAt{key: keyOf(u.GetOutpoint()), wallet: uint8(j), amount: u.GetAmountFen()})
		}
	}
	return cl, nil
}

func keyOf(o *statepb.Outpoint) outKey {
	var k outKey
	copy(k.tx[:], o.GetTxId())
	k.idx = o.GetIndex()
	return k
}

// start launches WorkersPerCell clients per cell.
func (w *workload) start() {
	for _, cl := range w.cells {
		for k := range w.c.cfg.WorkersPerCell {
			w.wg.Add(1)
			go w.worker(cl, k)
		}
	}
}

// finish stops the clients and waits for every operation in flight.
func (w *workload) finish() {
	close(w.stop)
	w.wg.Wait()
}

func (w *workload) worker(cl *cell, k int) {
	defer w.wg.Done()
	c := w.c
	rng := mrand.New(mrand.NewPCG(uint64(c.cfg.Seed), uint64(cl.id*1000+k)))
	for !w.stopped() {
		pace := c.cfg.PaceMs
		time.Sleep(time.Duration(pace/2+rng.IntN(pace+1)) * time.Millisecond)
		if w.stopped() {
			return
		}
		if rng.IntN(100) < 15 {
			w.read(cl, k, rng)
			continue
		}
		w.transfer(cl, k, rng)
	}
}

// read is a linearizable balance read at a random voter; a read that fails
// has no effect and is left out of the history.
func (w *workload) read(cl *cell, k int, rng *mrand.Rand) {
	c := w.c
	j := uint8(rng.IntN(cellWallets))
	node := c.voters[rng.IntN(len(c.voters))]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o := &op{kind: opRead, cell: cl.id, worker: k, wallet: j, node: node, call: c.now()}
	resp, err := c.client(node).Wallet(ctx, cl.wallets[j].id, client.Linearizable())
	o.ret = c.now()
	if err != nil || !resp.GetFreshness().GetLinearizable() {
		return
	}
	o.balance = resp.GetWallet().GetBalanceFen()
	w.record(o)
}

// amountFor draws a transfer amount: mostly small, sometimes above the
// tier-4 per-payment limit, never above what the wallet holds.
func amountFor(rng *mrand.Rand, haveFen uint64) uint64 {
	var yuan uint64
	switch p := rng.IntN(100); {
	case p < 70:
		yuan = 10 + uint64(rng.IntN(1500))
	case p < 90:
		yuan = 1500 + uint64(rng.IntN(1500))
	default:
		yuan = 3000 + uint64(rng.IntN(6000))
	}
	return min(yuan*state.Yuan, haveFen)
}

func (w *workload) transfer(cl *cell, k int, rng *mrand.Rand) {
	c := w.c
	// Half the transfers go between the two tier-1 wallets, so money keeps
	// moving (and concurrent clients collide on inputs) after the tier-4
	// wallets have used their daily limit or filled to their balance cap.
	from := uint8(rng.IntN(cellWallets))
	to := uint8((int(from) + 1 + rng.IntN(cellWallets-1)) % cellWallets)
	if rng.IntN(2) == 0 {
		from = uint8(rng.IntN(2))
		to = 1 - from
	}
	// Inputs from any node's possibly stale view: a spent one makes the
	// ledger answer INPUT_SPENT, which the model checks like any outcome.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	un, err := c.client(c.nodes[rng.IntN(len(c.nodes))]).Unspent(ctx, cl.wallets[from].id)
	cancel()
	if err != nil || len(un) == 0 {
		return
	}
	amount := amountFor(rng, client.UnspentTotal(un))
	if amount == 0 {
		return
	}
	sel, err := client.SelectInputs(un, amount)
	if err != nil {
		return
	}
	tx, err := c.builder.Transfer(cl.wallets[from].key, cl.wallets[from].id, sel.Inputs,
		[]*statepb.Payee{client.PayTo(cl.wallets[to].id, amount)})
	o := &op{kind: opTransfer, cell: cl.id, worker: k, from: from, to: to, amount: amount, tx: tx}
	if err != nil {
		o.status, o.apiCode = statusLocalError, err.Error()
		w.record(o)
		return
	}
	for _, in := range sel.Inputs {
		o.inputs = append(o.inputs, keyOf(in))
	}
	w.submitted.Add(1)
	o.call = c.now()
	w.submit(o, rng)
	o.ret = c.now()
	w.record(o)
}

// submit takes a signed transfer to an outcome: the SDK's Submit (which
// retries the same bytes at one node), then, after an unknown outcome or an
// unreachable node, the same bytes again at the next voter, until the
// operation's budget is spent. It never re-signs: one op is one
// transaction id.
func (w *workload) submit(o *op, rng *mrand.Rand) {
	c := w.c
	// One client in five is impatient: it gives up after a few seconds, so
	// some outcomes stay unknown to it and are resolved after healing.
	budget := c.cfg.OpBudget
	if rng.IntN(5) == 0 {
		budget = time.Duration(1500+rng.IntN(2500)) * time.Millisecond
	}
	deadline := time.Now().Add(budget)
	start := rng.IntN(len(c.voters))
	maybeSent := false
	for i := 0; time.Now().Before(deadline); i++ {
		node := c.voters[(start+i)%len(c.voters)]
		o.attempts++
		if i > 0 {
			w.resubmits.Add(1)
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		r, err := c.client(node).Submit(ctx, o.tx)
		cancel()
		if err == nil {
			o.status, o.result = statusAcked, r
			return
		}
		var unknown *client.OutcomeUnknownError
		var apiErr *client.APIError
		switch {
		case errors.As(err, &unknown):
			maybeSent = true
			if errors.As(unknown.Err, &apiErr) {
				o.apiCode = apiErr.Code
			} else {
				o.apiCode = "UNKNOWN"
			}
		case errors.As(err, &apiErr):
			o.apiCode = apiErr.Code
			if apiErr.Code != client.CodeUnreachable && !transient(apiErr.Code) {
				// The node refused the request before the ledger saw it.
				o.status = statusNotSent
				if maybeSent {
					o.status = statusUnknown
				}
				return
			}
			if apiErr.Code != client.CodeUnreachable {
				maybeSent = true
			}
		case errors.Is(err, context.DeadlineExceeded):
			maybeSent = true
			o.apiCode = client.CodeTimeout
		default:
			maybeSent = true
			o.apiCode = err.Error()
		}
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
	}
	o.status = statusNotSent
	if maybeSent {
		o.status = statusUnknown
	}
}

// transient API codes are worth another node.
func transient(code string) bool {
	switch code {
	case client.CodeNoQuorum, client.CodeTimeout, client.CodeOverloaded, client.CodeRateLimited, client.CodeUnavailable, "NOT_LEADER", client.CodeInternal:
		return true
	}
	return false
}
