package load

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dcep/dcep/state/statepb"
)

// More sentinel errors.
var (
	// ErrPlan: a Plan that cannot make 2-in/2-out transfers.
	ErrPlan = errors.New("load plan")
	// ErrSetup: a setup transaction did not commit OK.
	ErrSetup = errors.New("load setup")
)

// FanOut is how many outputs one funding transfer creates.
const FanOut = statepb.MaxPayees

// Plan is a workload's shape: Transfers 2-in/2-out transfers, transfer t
// made by payer t mod Wallets, spending two outputs of OutputFen that no
// other transfer spends (so any of them may be in flight together) and
// paying TransferFen to the next payer; the change (2·OutputFen −
// TransferFen) goes back to the payer.
type Plan struct {
	Wallets, Transfers     int
	OutputFen, TransferFen uint64
}

// Validate checks that the plan makes 2-in/2-out transfers.
func (p Plan) Validate() error {
	switch {
	case p.Wallets < 2:
		return fmt.Errorf("%w: wallets %d: at least 2 (each pays the next)", ErrPlan, p.Wallets)
	case p.Transfers < 1:
		return fmt.Errorf("%w: transfers %d: at least 1", ErrPlan, p.Transfers)
	case p.OutputFen < 1 || p.TransferFen < 1 || p.OutputFen > 1<<40:
		return fmt.Errorf("%w: output %d fen, transfer %d fen: both at least 1, output at most 2^40", ErrPlan, p.OutputFen, p.TransferFen)
	case p.TransferFen >= 2*p.OutputFen:
		return fmt.Errorf("%w: transfer %d fen: less than two outputs (%d fen) so that there is change", ErrPlan, p.TransferFen, 2*p.OutputFen)
	}
	return nil
}

// shape is the funding tree: per transfers per payer, outputs payer
// outputs, fans leaf transfers of FanOut outputs, a tree of depth levels
// of 1-in/FanOut-out splits above them (span = FanOut^depth ≥ fans).
func (p Plan) shape() (per, outputs, fans, depth, span int) {
	per = ceilDiv(p.Transfers, p.Wallets)
	outputs = p.Wallets * 2 * per
	fans = ceilDiv(outputs, FanOut)
	span = 1
	for span < fans {
		depth, span = depth+1, span*FanOut
	}
	return per, outputs, fans, depth, span
}

// FunderFen is what the funder's one output must hold: FanOut · OutputFen
// per leaf of a full tree. It is up to FanOut times what the payers'
// outputs take; the rest stays with the funder.
func (p Plan) FunderFen() (uint64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	_, _, _, _, span := p.shape()
	hi, leaf := bits.Mul64(FanOut, p.OutputFen)
	hi2, root := bits.Mul64(leaf, uint64(span))
	if hi != 0 || hi2 != 0 {
		return 0, fmt.Errorf("%w: funding %d outputs of %d fen overflows uint64 fen", ErrPlan, p.Wallets*2*ceilDiv(p.Transfers, p.Wallets), p.OutputFen)
	}
	return root, nil
}

// Wallet is a registered wallet whose key the workload signs with.
type Wallet struct {
	ID  string
	Key ed25519.PrivateKey
}

// SignFunc signs body with key for the network: it fills in the version,
// chain id and a nonce unique to this body and returns the serialized
// SignedTx and its id. It must be safe for concurrent use.
type SignFunc func(body *statepb.Tx, key ed25519.PrivateKey) (raw []byte, id [32]byte, err error)

// Workload is a set of pre-signed transfers.
type Workload struct {
	Txs      [][]byte
	SetupTxs int // funding transactions submitted to build it
}

// Build funds the payers from funded (an output of FunderFen owned by
// funder), by a tree of 1-in/FanOut-out transfers submitted with setup,
// then signs plan.Transfers transfers on every core. The setup transfers
// are in the ledger when it returns; the workload's are only signed.
func Build(ctx context.Context, plan Plan, sign SignFunc, setup *Gen, funder Wallet, funded *statepb.Outpoint, payers []Wallet) (*Workload, error) {
	root, err := plan.FunderFen()
	if err != nil {
		return nil, err
	}
	if len(payers) != plan.Wallets {
		return nil, fmt.Errorf("%w: %d payers for a plan of %d wallets", ErrPlan, len(payers), plan.Wallets)
	}
	per, outputs, fans, depth, _ := plan.shape()
	w := &Workload{}
	submit := func(txs [][]byte) error {
		w.SetupTxs += len(txs)
		r := setup.ClosedLoop(ctx, txs, 0, nil)
		if r.OK != len(txs) {
			return fmt.Errorf("%w: %d of %d funding transactions did not commit OK; first: %s", ErrSetup, len(txs)-r.OK, len(txs), r.FirstErr)
		}
		return nil
	}
	byFunder := func(int) ed25519.PrivateKey { return funder.Key }
	// Split the funder's output level by level until there is one per
	// leaf transfer.
	cur, amount := []*statepb.Outpoint{funded}, root
	for level := depth - 1; level >= 0; level-- {
		need := ceilDiv(fans, pow(FanOut, level))
		amount /= FanOut
		bodies := make([]*statepb.Tx, ceilDiv(need, FanOut))
		for i := range bodies {
			payees := make([]*statepb.Payee, FanOut)
			for j := range payees {
				payees[j] = &statepb.Payee{WalletId: funder.ID, AmountFen: amount}
			}
			bodies[i] = transferBody(funder.ID, []*statepb.Outpoint{cur[i]}, payees...)
		}
		raws, ids, err := SignAll(ctx, sign, bodies, byFunder)
		if err != nil {
			return nil, err
		}
		if err := submit(raws); err != nil {
			return nil, err
		}
		cur = cur[:0:0]
		for _, id := range ids {
			for j := range FanOut {
				cur = append(cur, out(id, j))
			}
		}
		cur = cur[:need]
	}
	// The leaves pay the payers: outputs payer-major, FanOut to a
	// transfer; the last may pay fewer and its change goes to the funder.
	bodies := make([]*statepb.Tx, fans)
	for f := range bodies {
		payees := make([]*statepb.Payee, 0, FanOut)
		for k := f * FanOut; k < min((f+1)*FanOut, outputs); k++ {
			payees = append(payees, &statepb.Payee{WalletId: payers[k/(2*per)].ID, AmountFen: plan.OutputFen})
		}
		bodies[f] = transferBody(funder.ID, []*statepb.Outpoint{cur[f]}, payees...)
	}
	raws, ids, err := SignAll(ctx, sign, bodies, byFunder)
	if err != nil {
		return nil, err
	}
	if err := submit(raws); err != nil {
		return nil, err
	}
	outs := make([][]*statepb.Outpoint, plan.Wallets)
	for k := range outputs {
		p := k / (2 * per)
		outs[p] = append(outs[p], out(ids[k/FanOut], k%FanOut))
	}
	// The measured transfers.
	bodies = make([]*statepb.Tx, plan.Transfers)
	for t := range bodies {
		p, k := t%plan.Wallets, t/plan.Wallets
		bodies[t] = transferBody(payers[p].ID, []*statepb.Outpoint{outs[p][2*k], outs[p][2*k+1]},
			&statepb.Payee{WalletId: payers[(p+1)%plan.Wallets].ID, AmountFen: plan.TransferFen})
	}
	w.Txs, _, err = SignAll(ctx, sign, bodies, func(t int) ed25519.PrivateKey { return payers[t%plan.Wallets].Key })
	if err != nil {
		return nil, err
	}
	return w, nil
}

func transferBody(from string, inputs []*statepb.Outpoint, payees ...*statepb.Payee) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{FromWalletId: from, Inputs: inputs, Payees: payees}}}
}

func out(id [32]byte, index int) *statepb.Outpoint {
	return &statepb.Outpoint{TxId: id[:], Index: uint32(index)}
}

// SignAll signs bodies on every core, body i with key(i).
func SignAll(ctx context.Context, sign SignFunc, bodies []*statepb.Tx, key func(i int) ed25519.PrivateKey) ([][]byte, [][32]byte, error) {
	raws, ids := make([][]byte, len(bodies)), make([][32]byte, len(bodies))
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				raw, id, err := sign(bodies[i], key(i))
				if err != nil {
					mu.Lock()
					first = cmp(first, fmt.Errorf("sign transaction %d: %w", i, err))
					mu.Unlock()
					return
				}
				raws[i], ids[i] = raw, id
			}
		}()
	}
	wg.Wait()
	if err := cmp(first, ctx.Err()); err != nil {
		return nil, nil, err
	}
	return raws, ids, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func pow(b, e int) int {
	out := 1
	for range e {
		out *= b
	}
	return out
}
