package state_test

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// gen makes random blocks of valid and invalid transactions. It learns
// what is valid from an oracle store it applies each block to (one block
// per Apply call), so its choices follow the real state: spendable outputs,
// current keys, wallet status. Given the same seed it makes the same
// blocks.
type gen struct {
	tb  testing.TB
	rng *rand.Rand
	n   *statetest.Net
	s   *state.Store

	keys    map[string]ed25519.PrivateKey // public key → private key
	walletN int                           // wallets named so far
	history [][]byte                      // every transaction submitted
	spent   []*statepb.Outpoint           // inputs of submitted transactions
	members []string                      // node names ever added
	// downgraded: wallets an update may have given lower caps than their
	// balance (the balance cap applies to money coming in only).
	downgraded map[string]bool

	blocks  []state.Block
	results [][]*statepb.TxResult
	index   uint64
	timeMs  int64
}

func newGen(tb testing.TB, seed int64) *gen { return newGenOn(tb, "prop", seed) }

// newGenOn is newGen on the test network named net.
func newGenOn(tb testing.TB, net string, seed int64) *gen {
	n := statetest.NewNet(tb, net)
	g := &gen{
		tb: tb, rng: rand.New(rand.NewSource(seed)), n: n, s: n.Open(tb),
		keys: map[string]ed25519.PrivateKey{}, downgraded: map[string]bool{},
		timeMs: statetest.GenesisTimeMs,
	}
	g.key("pboc")
	for _, b := range statetest.BankIDs {
		g.key("bank/" + b)
	}
	return g
}

// key derives a named key and remembers it.
func (g *gen) key(name string) ed25519.PrivateKey {
	k := g.n.Key(name)
	g.keys[string(k.Public().(ed25519.PublicKey))] = k
	return k
}

func (g *gen) pick(xs []string) string { return xs[g.rng.Intn(len(xs))] }

func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

func (g *gen) sign(body *statepb.Tx, keys ...ed25519.PrivateKey) []byte {
	if body.Nonce == 0 {
		body.Nonce = g.rng.Uint64() | 1
	}
	return g.n.Sign(g.tb, body, keys...)
}

// block makes the next block, applies it to the oracle and returns it.
func (g *gen) block() state.Block {
	g.index++
	switch r := g.rng.Intn(20); {
	case r == 0:
		g.timeMs += int64(g.rng.Intn(3 * 24 * 3600 * 1000)) // days pass
	case r == 1:
		g.timeMs -= int64(g.rng.Intn(60_000)) // a leader with a slow clock
	default:
		g.timeMs += int64(g.rng.Intn(10 * 60 * 1000))
	}
	var txs [][]byte
	if g.index == 1 {
		txs = g.bootstrap()
	} else {
		for range g.rng.Intn(25) {
			txs = append(txs, g.tx())
		}
	}
	b := state.Block{Index: g.index, Term: 1 + g.index/10, TimeMs: g.timeMs, Txs: txs}
	out, err := g.s.Apply([]state.Block{b})
	if err != nil {
		g.tb.Fatalf("oracle apply block %d: %v", b.Index, err)
	}
	g.blocks = append(g.blocks, b)
	g.results = append(g.results, out.Results[0])
	g.history = append(g.history, txs...)
	return b
}

// bootstrap issues money to every bank and opens a dozen wallets.
func (g *gen) bootstrap() [][]byte {
	var txs [][]byte
	for _, b := range statetest.BankIDs {
		txs = append(txs, g.sign(statetest.IssueBody(b, uint64(1+g.rng.Intn(10_000_000))*yuan), g.keys[string(g.n.Pub("pboc"))]))
	}
	for range 12 {
		txs = append(txs, g.register(true))
	}
	return txs
}

func (g *gen) tx() []byte {
	switch r := g.rng.Intn(100); {
	case r < 35:
		return g.transfer()
	case r < 50:
		return g.exchange()
	case r < 55:
		return g.redeem()
	case r < 58:
		return g.returnTx()
	case r < 61:
		return g.issue()
	case r < 67:
		return g.register(false)
	case r < 70:
		return g.update()
	case r < 76:
		return g.manage()
	case r < 78:
		return g.membership()
	case r < 88:
		return g.garbage()
	default:
		if len(g.history) == 0 {
			return g.garbage()
		}
		return g.history[g.rng.Intn(len(g.history))] // resubmission
	}
}

// wallets returns the oracle's wallets, customer wallets apart.
func (g *gen) wallets() (all []*statepb.WalletRecord, customers []*statepb.WalletRecord) {
	ws, err := g.s.Wallets("", 0)
	if err != nil {
		g.tb.Fatal(err)
	}
	for _, w := range ws {
		if w.GetKind() != statepb.WalletKind_WALLET_KIND_BANK_RESERVE && w.GetKind() != statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE {
			customers = append(customers, w)
		}
	}
	return ws, customers
}

func (g *gen) unspents(wallet string) []state.Unspent {
	us, err := g.s.Unspents(wallet, nil, 40)
	if err != nil {
		g.tb.Fatal(err)
	}
	return us
}

// walletID is a registered wallet's id most of the time, else a stranger.
func (g *gen) walletID(ws []*statepb.WalletRecord) string {
	if len(ws) == 0 || g.chance(0.03) {
		return fmt.Sprintf("ghost%d", g.rng.Intn(3))
	}
	return ws[g.rng.Intn(len(ws))].GetId()
}

// ownerKey is a wallet's current key, or now and then some other key.
func (g *gen) ownerKey(w *statepb.WalletRecord) ed25519.PrivateKey {
	if k, ok := g.keys[string(w.GetPublicKey())]; ok && !g.chance(0.05) {
		return k
	}
	return g.key(fmt.Sprintf("stranger/%d", g.rng.Intn(4)))
}

// inputs picks some of the outputs in us, and now and then a spent, a
// foreign, a made-up or a repeated one. It returns them with their total.
func (g *gen) inputs(us []state.Unspent, foreign []state.Unspent) ([]*statepb.Outpoint, uint64) {
	var in []*statepb.Outpoint
	var total uint64
	g.rng.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
	for _, u := range us[:min(len(us), 1+g.rng.Intn(3))] {
		in = append(in, u.Outpoint)
		total += u.AmountFen
	}
	switch r := g.rng.Intn(40); {
	case r == 0 && len(g.spent) > 0:
		in = append(in, g.spent[g.rng.Intn(len(g.spent))])
	case r == 1 && len(foreign) > 0:
		in = append(in, foreign[g.rng.Intn(len(foreign))].Outpoint)
	case r == 2:
		id := make([]byte, 32)
		g.rng.Read(id)
		in = append(in, &statepb.Outpoint{TxId: id})
	case r == 3 && len(in) > 0:
		in = append(in, in[0])
	}
	g.spent = append(g.spent, in...)
	if len(g.spent) > 500 {
		g.spent = g.spent[len(g.spent)-500:]
	}
	return in, total
}

// amount is a random part of total, now and then more than it, or zero
// when total is zero.
func (g *gen) amount(total uint64) uint64 {
	switch {
	case g.chance(0.05):
		return total + 1 + uint64(g.rng.Intn(1000))
	case total == 0:
		return uint64(g.rng.Intn(100))
	case g.chance(0.2):
		return total
	}
	return 1 + uint64(g.rng.Int63n(int64(min(total, math.MaxInt64))))
}

func (g *gen) transfer() []byte {
	_, cs := g.wallets()
	if len(cs) == 0 {
		return g.garbage()
	}
	from := cs[g.rng.Intn(len(cs))]
	if g.chance(0.85) {
		var funded []*statepb.WalletRecord
		for _, w := range cs {
			if w.GetBalanceFen() > 0 {
				funded = append(funded, w)
			}
		}
		if len(funded) > 0 {
			from = funded[g.rng.Intn(len(funded))]
		}
	}
	in, total := g.inputs(g.unspents(from.GetId()), g.unspents(g.walletID(cs)))
	if len(in) == 0 {
		in = []*statepb.Outpoint{{TxId: make([]byte, 32)}}
	}
	var payees []*statepb.Payee
	left := total
	for range 1 + g.rng.Intn(3) {
		to := g.walletID(cs)
		if g.chance(0.03) {
			to = statetest.Reserve(g.pick(statetest.BankIDs))
		}
		a := g.amount(left)
		if a == 0 {
			a = 1
		}
		if a <= left {
			left -= a
		}
		payees = append(payees, statetest.Pay(to, a))
	}
	return g.sign(statetest.TransferBody(from.GetId(), in, payees...), g.ownerKey(from))
}

func (g *gen) exchange() []byte {
	_, cs := g.wallets()
	bank := g.pick(statetest.BankIDs)
	in, total := g.inputs(g.unspents(statetest.Reserve(bank)), nil)
	if len(in) == 0 {
		return g.issue()
	}
	to := g.walletID(cs)
	for _, w := range cs {
		if w.GetBankId() == bank && g.chance(0.3) {
			to = w.GetId()
		}
	}
	amt := min(g.amount(total), 30_000*yuan)
	if amt == 0 {
		amt = 1
	}
	signer := g.n.Bank(bank)
	if g.chance(0.03) {
		signer = g.n.Bank(g.pick(statetest.BankIDs))
	}
	return g.sign(statetest.ExchangeBody(bank, in, to, amt), signer)
}

func (g *gen) redeem() []byte {
	_, cs := g.wallets()
	if len(cs) == 0 {
		return g.garbage()
	}
	w := cs[g.rng.Intn(len(cs))]
	in, total := g.inputs(g.unspents(w.GetId()), nil)
	if len(in) == 0 {
		return g.transfer()
	}
	amt := g.amount(total)
	if amt == 0 {
		amt = 1
	}
	return g.sign(statetest.RedeemBody(w.GetId(), in, amt), g.ownerKey(w))
}

func (g *gen) returnTx() []byte {
	bank := g.pick(statetest.BankIDs)
	in, total := g.inputs(g.unspents(statetest.Reserve(bank)), nil)
	if len(in) == 0 {
		return g.issue()
	}
	amt := g.amount(total)
	if amt == 0 {
		amt = 1
	}
	keys := []ed25519.PrivateKey{g.n.Bank(bank), g.n.CentralBank()}
	if g.chance(0.1) {
		keys = keys[:1]
	}
	return g.sign(statetest.ReturnBody(bank, in, amt), keys...)
}

func (g *gen) issue() []byte {
	amt := uint64(1 + g.rng.Intn(1_000_000*yuan))
	if g.chance(0.02) {
		amt = math.MaxUint64 - uint64(g.rng.Intn(10))
	}
	bank := g.pick(statetest.BankIDs)
	if g.chance(0.03) {
		bank = "hsbc"
	}
	signer := g.n.CentralBank()
	if g.chance(0.05) {
		signer = g.n.Bank(bank)
	}
	return g.sign(statetest.IssueBody(bank, amt), signer)
}

func (g *gen) register(fresh bool) []byte {
	g.walletN++
	id := fmt.Sprintf("w%d", g.walletN)
	if !fresh && g.chance(0.1) {
		id = fmt.Sprintf("w%d", 1+g.rng.Intn(g.walletN))
	}
	bank := g.pick(statetest.BankIDs)
	kinds := []statepb.WalletKind{personal, personal, merchant, statepb.WalletKind_WALLET_KIND_GOVERNMENT}
	body := &statepb.Tx{Kind: &statepb.Tx_RegisterWallet{RegisterWallet: &statepb.RegisterWallet{
		WalletId: id, BankId: bank, PublicKey: g.key("wallet/" + id).Public().(ed25519.PublicKey),
		Kind: kinds[g.rng.Intn(len(kinds))], Tier: uint32(1 + g.rng.Intn(4)),
	}}}
	if !fresh && g.chance(0.15) {
		r := body.GetRegisterWallet()
		r.Kind, r.ParentWalletId = statepb.WalletKind_WALLET_KIND_SUB_WALLET, fmt.Sprintf("w%d", 1+g.rng.Intn(g.walletN))
	}
	if g.chance(0.2) {
		body.GetRegisterWallet().Limits = g.limits()
	}
	return g.sign(body, g.n.Bank(bank))
}

func (g *gen) limits() *statepb.Limits {
	r := func() uint64 {
		if g.chance(0.5) {
			return 0
		}
		return uint64(g.rng.Intn(60_000)) * yuan
	}
	return &statepb.Limits{MaxBalanceFen: r(), MaxPaymentFen: r(), MaxDailyFen: r(), MaxYearlyFen: r()}
}

func (g *gen) update() []byte {
	_, cs := g.wallets()
	if len(cs) == 0 {
		return g.garbage()
	}
	w := cs[g.rng.Intn(len(cs))]
	g.downgraded[w.GetId()] = true
	var l *statepb.Limits
	if g.chance(0.5) {
		l = g.limits()
	}
	return g.sign(statetest.UpdateBody(w.GetId(), uint32(1+g.rng.Intn(4)), "320500", "", l), g.n.Bank(w.GetBankId()))
}

// manage freezes, unfreezes, closes or re-keys a wallet, usually signed by
// its bank.
func (g *gen) manage() []byte {
	ws, _ := g.wallets()
	w := ws[g.rng.Intn(len(ws))]
	var body *statepb.Tx
	switch g.rng.Intn(4) {
	case 0:
		body = statetest.FreezeBody(w.GetId(), "suspicious")
	case 1:
		body = statetest.UnfreezeBody(w.GetId(), "cleared")
	case 2:
		body = statetest.CloseBody(w.GetId())
	default:
		k := g.key(fmt.Sprintf("wallet/%s/k%d", w.GetId(), g.rng.Intn(1000)))
		body = statetest.RotateBody(w.GetId(), k.Public().(ed25519.PublicKey))
	}
	signer := g.n.Bank(w.GetBankId())
	if g.chance(0.05) {
		signer = g.n.Bank(g.pick(statetest.BankIDs))
	}
	return g.sign(body, signer)
}

func (g *gen) membership() []byte {
	if len(g.members) > 0 && g.chance(0.5) {
		return g.sign(statetest.RemoveMemberBody(g.members[g.rng.Intn(len(g.members))]), g.n.CentralBank())
	}
	name := fmt.Sprintf("reg%d", g.rng.Intn(5))
	g.members = append(g.members, name)
	return g.sign(g.n.AddMemberBody(name, statepb.NodeRole_NODE_ROLE_REGULATOR), g.n.CentralBank())
}

// garbage is random bytes or a damaged earlier transaction.
func (g *gen) garbage() []byte {
	if len(g.history) == 0 || g.chance(0.3) {
		b := make([]byte, g.rng.Intn(200))
		g.rng.Read(b)
		return b
	}
	b := append([]byte(nil), g.history[g.rng.Intn(len(g.history))]...)
	if len(b) == 0 {
		return b
	}
	if g.chance(0.5) {
		return b[:g.rng.Intn(len(b))]
	}
	b[g.rng.Intn(len(b))] ^= byte(1 + g.rng.Intn(255))
	return b
}
