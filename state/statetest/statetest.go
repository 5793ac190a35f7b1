// Package statetest builds networks, keys and signed transactions for tests
// of the ledger and of the packages built on it. Keys are derived from names,
// so a test is reproducible and two stores can be fed identical bytes.
package statetest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// BankIDs are the six operating banks of SPEC §1.
var BankIDs = []string{"icbc", "abc", "boc", "ccb", "bocom", "psbc"}

// GenesisTimeMs is 2026-12-01 00:00 Beijing time.
const GenesisTimeMs = 1_796_054_400_000

// Net is a test network: genesis, keys, and a signer.
type Net struct {
	Genesis *statepb.Genesis
	Signer  state.Signer
	seed    string
	nonce   uint64
}

// Key derives a private key from the network seed and a name.
func (n *Net) Key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("statetest/" + n.seed + "/" + name))
	return ed25519.NewKeyFromSeed(s[:])
}

// Pub is Key(name)'s public key.
func (n *Net) Pub(name string) ed25519.PublicKey { return n.Key(name).Public().(ed25519.PublicKey) }

// CentralBank is the issuer key.
func (n *Net) CentralBank() ed25519.PrivateKey { return n.Key("pboc") }

// Bank is a bank's key.
func (n *Net) Bank(id string) ed25519.PrivateKey { return n.Key("bank/" + id) }

// Reserve is a bank's reserve wallet id.
func Reserve(bank string) string { return bank + ".reserve" }

// Guarantee is a bank's offline guarantee wallet id.
func Guarantee(bank string) string { return bank + ".guarantee" }

// NewNet builds a network of the central bank, the six banks and one voter
// node per bank plus a regulator, with SPEC §2 tiers.
func NewNet(tb testing.TB, seed string) *Net {
	tb.Helper()
	n := &Net{seed: seed}
	g := &statepb.Genesis{
		ChainId:                "dcep-test-" + seed,
		GenesisTimeMs:          GenesisTimeMs,
		CentralBank:            &statepb.CentralBank{Id: "pboc", Name: "People's Bank of China", PublicKey: n.Pub("pboc")},
		Tiers:                  state.DefaultTiers(),
		LargeValueThresholdFen: state.DefaultLargeValueThresholdFen,
	}
	for _, id := range BankIDs {
		g.Banks = append(g.Banks, &statepb.Bank{
			Id: id, Name: id, PublicKey: n.Pub("bank/" + id),
			ReserveWalletId: Reserve(id), GuaranteeWalletId: Guarantee(id),
		})
	}
	for _, name := range append([]string{"pboc"}, BankIDs...) {
		g.Nodes = append(g.Nodes, &statepb.Node{
			Name: name, Role: statepb.NodeRole_NODE_ROLE_VOTER, PublicKey: n.Pub("node/" + name),
			Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Operator: name,
		})
	}
	g.Nodes = append(g.Nodes, &statepb.Node{
		Name: "regulator", Role: statepb.NodeRole_NODE_ROLE_REGULATOR, PublicKey: n.Pub("node/regulator"),
		Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Operator: "regulator",
	})
	h, err := state.GenesisHash(g)
	if err != nil {
		tb.Fatal(err)
	}
	n.Genesis, n.Signer = g, state.Signer{ChainID: g.GetChainId(), GenesisHash: h}
	return n
}

// Sign fills version, chain id and a fresh nonce into body and signs it.
func (n *Net) Sign(tb testing.TB, body *statepb.Tx, keys ...ed25519.PrivateKey) []byte {
	tb.Helper()
	raw, _ := n.SignID(tb, body, keys...)
	return raw
}

// SignID is Sign that also returns the transaction id.
func (n *Net) SignID(tb testing.TB, body *statepb.Tx, keys ...ed25519.PrivateKey) ([]byte, [32]byte) {
	tb.Helper()
	if body.Version == 0 {
		body.Version = statepb.TxVersion
	}
	if body.ChainId == "" {
		body.ChainId = n.Genesis.GetChainId()
	}
	if body.Nonce == 0 {
		n.nonce++
		body.Nonce = n.nonce
	}
	raw, id, err := n.Signer.Sign(body, keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return raw, id
}

// Open opens a store in a temporary directory and writes the genesis.
func (n *Net) Open(tb testing.TB) *state.Store {
	tb.Helper()
	return n.OpenWith(tb, state.Options{})
}

// OpenWith is Open with store options (a nil logger is silenced).
func (n *Net) OpenWith(tb testing.TB, opts state.Options) *state.Store {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := state.Open(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.InitGenesis(n.Genesis); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Issue is the central bank issuing fen to a bank's reserve.
func (n *Net) Issue(tb testing.TB, bank string, fen uint64) []byte {
	return n.Sign(tb, &statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: bank, AmountFen: fen}}}, n.CentralBank())
}

// Register opens a wallet at a bank with the key named by walletID.
func (n *Net) Register(tb testing.TB, bank, walletID string, kind statepb.WalletKind, tier uint32, region string) []byte {
	return n.Sign(tb, &statepb.Tx{Kind: &statepb.Tx_RegisterWallet{RegisterWallet: &statepb.RegisterWallet{
		WalletId: walletID, BankId: bank, PublicKey: n.Pub("wallet/" + walletID), Kind: kind, Tier: tier, RegionCode: region,
	}}}, n.Bank(bank))
}

// Wallet is the key of a wallet registered with Register.
func (n *Net) Wallet(walletID string) ed25519.PrivateKey { return n.Key("wallet/" + walletID) }

// Transfer pays payees from a wallet's inputs, signed with its Register key.
func (n *Net) Transfer(tb testing.TB, from string, inputs []*statepb.Outpoint, payees ...*statepb.Payee) []byte {
	return n.Sign(tb, &statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{
		FromWalletId: from, Inputs: inputs, Payees: payees,
	}}}, n.Wallet(from))
}

// Exchange pays a wallet from its bank's reserve inputs.
func (n *Net) Exchange(tb testing.TB, bank string, inputs []*statepb.Outpoint, to string, fen uint64) []byte {
	return n.Sign(tb, &statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{
		BankId: bank, Inputs: inputs, ToWalletId: to, AmountFen: fen,
	}}}, n.Bank(bank))
}

// Pay is a payee.
func Pay(wallet string, fen uint64) *statepb.Payee {
	return &statepb.Payee{WalletId: wallet, AmountFen: fen}
}

// Out is an outpoint.
func Out(id [32]byte, index uint32) *statepb.Outpoint {
	return &statepb.Outpoint{TxId: id[:], Index: index}
}

// Chain applies blocks to a store with consecutive indexes and a ledger
// clock, as consensus would.
type Chain struct {
	S      *state.Store
	Index  uint64
	TimeMs int64
}

// NewChain starts at the store's applied index and ledger time.
func NewChain(s *state.Store) *Chain {
	m := s.Meta()
	return &Chain{S: s, Index: m.GetAppliedIndex(), TimeMs: m.GetLedgerTimeMs()}
}

// Apply applies txs as one block one second after the last and returns
// their results; it fails the test on a store error, and on a recorded
// outcome that holds anything but what the rules decided (a field path and
// typed args: statepb.CheckRecorded, state/DESIGN.md "Outcomes").
func (c *Chain) Apply(tb testing.TB, txs ...[]byte) []*statepb.TxResult {
	tb.Helper()
	c.Index++
	c.TimeMs += 1000
	out, err := c.S.Apply([]state.Block{{Index: c.Index, Term: 1, TimeMs: c.TimeMs, Txs: txs}})
	if err != nil {
		tb.Fatalf("apply block %d: %v", c.Index, err)
	}
	rec, err := c.S.BlockAt(c.Index)
	if err != nil {
		tb.Fatalf("block record %d: %v", c.Index, err)
	}
	for _, r := range rec.GetResults() {
		if err := statepb.CheckRecorded(r.GetField(), r.GetArgs()); err != nil {
			tb.Fatalf("block %d: recorded %s outcome of %x: %v", c.Index, r.GetCode().Short(), r.GetTxId(), err)
		}
	}
	return out.Results[0]
}

// MustOK applies one transaction and fails the test unless it is OK.
func (c *Chain) MustOK(tb testing.TB, tx []byte) *statepb.TxResult {
	tb.Helper()
	r := c.Apply(tb, tx)[0]
	if r.GetCode() != statepb.Code_CODE_OK {
		tb.Fatalf("want OK, got %s: %s", r.GetCode().Short(), r.GetMessage())
	}
	return r
}

// Audit runs the supply invariant and fails the test if it does not hold.
func Audit(tb testing.TB, s *state.Store) *state.Audit {
	tb.Helper()
	a, err := s.AuditSupply()
	if err != nil {
		tb.Fatalf("supply invariant: %v", err)
	}
	return a
}

// SignRaw signs already serialized body bytes (which may be anything, e.g.
// a fuzzer's) with each key for this network and returns the SignedTx bytes.
func (n *Net) SignRaw(tb testing.TB, body []byte, keys ...ed25519.PrivateKey) []byte {
	tb.Helper()
	msg := state.SignBytes(n.Genesis.GetChainId(), n.Signer.GenesisHash, body)
	stx := &statepb.SignedTx{Body: body}
	for _, k := range keys {
		stx.Signatures = append(stx.Signatures, &statepb.Signature{
			PublicKey: k.Public().(ed25519.PublicKey),
			Signature: ed25519.Sign(k, msg),
		})
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(stx)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// Body builders: each returns an unsigned body of one kind, for tests that
// sign with keys of their choosing (Sign fills version, chain id, nonce).

// IssueBody is an Issue.
func IssueBody(bank string, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: bank, AmountFen: fen}}}
}

// ReturnBody is a Return of fen from a bank's reserve inputs.
func ReturnBody(bank string, inputs []*statepb.Outpoint, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Return{Return: &statepb.Return{BankId: bank, Inputs: inputs, AmountFen: fen}}}
}

// ExchangeBody is an Exchange.
func ExchangeBody(bank string, inputs []*statepb.Outpoint, to string, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{BankId: bank, Inputs: inputs, ToWalletId: to, AmountFen: fen}}}
}

// RedeemBody is a Redeem.
func RedeemBody(wallet string, inputs []*statepb.Outpoint, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Redeem{Redeem: &statepb.Redeem{WalletId: wallet, Inputs: inputs, AmountFen: fen}}}
}

// TransferBody is a Transfer.
func TransferBody(from string, inputs []*statepb.Outpoint, payees ...*statepb.Payee) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{FromWalletId: from, Inputs: inputs, Payees: payees}}}
}

// RegisterBody is a RegisterWallet whose key is the one Wallet(walletID)
// returns.
func (n *Net) RegisterBody(bank, walletID string, kind statepb.WalletKind, tier uint32) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_RegisterWallet{RegisterWallet: &statepb.RegisterWallet{
		WalletId: walletID, BankId: bank, PublicKey: n.Pub("wallet/" + walletID), Kind: kind, Tier: tier,
	}}}
}

// UpdateBody is an UpdateWallet.
func UpdateBody(wallet string, tier uint32, region, category string, limits *statepb.Limits) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_UpdateWallet{UpdateWallet: &statepb.UpdateWallet{
		WalletId: wallet, Tier: tier, RegionCode: region, Category: category, Limits: limits,
	}}}
}

// RotateBody is a RotateWalletKey.
func RotateBody(wallet string, key ed25519.PublicKey) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_RotateWalletKey{RotateWalletKey: &statepb.RotateWalletKey{WalletId: wallet, NewPublicKey: key}}}
}

// FreezeBody is a FreezeWallet.
func FreezeBody(wallet, reason string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_FreezeWallet{FreezeWallet: &statepb.FreezeWallet{WalletId: wallet, Reason: reason}}}
}

// UnfreezeBody is an UnfreezeWallet.
func UnfreezeBody(wallet, reason string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_UnfreezeWallet{UnfreezeWallet: &statepb.UnfreezeWallet{WalletId: wallet, Reason: reason}}}
}

// CloseBody is a CloseWallet.
func CloseBody(wallet string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_CloseWallet{CloseWallet: &statepb.CloseWallet{WalletId: wallet}}}
}

// AddMemberBody adds a node whose identity key is Pub("node/"+name).
func (n *Net) AddMemberBody(name string, role statepb.NodeRole) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_ChangeMembership{ChangeMembership: &statepb.ChangeMembership{
		Action: statepb.MembershipAction_MEMBERSHIP_ACTION_ADD,
		Node: &statepb.Node{Name: name, Role: role, PublicKey: n.Pub("node/" + name),
			Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Operator: name},
	}}}
}

// RemoveMemberBody removes a node by name.
func RemoveMemberBody(name string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_ChangeMembership{ChangeMembership: &statepb.ChangeMembership{
		Action: statepb.MembershipAction_MEMBERSHIP_ACTION_REMOVE, Node: &statepb.Node{Name: name},
	}}}
}

// ApplyAt applies txs as one block stamped with ledger time ms.
func (c *Chain) ApplyAt(tb testing.TB, ms int64, txs ...[]byte) []*statepb.TxResult {
	tb.Helper()
	c.TimeMs = ms - 1000
	return c.Apply(tb, txs...)
}

// Fund issues fen to bank and exchanges all of it to wallet, in one block,
// and returns the wallet's new output.
func (c *Chain) Fund(tb testing.TB, n *Net, bank, wallet string, fen uint64) *statepb.Outpoint {
	tb.Helper()
	issue, issueID := n.SignID(tb, IssueBody(bank, fen), n.CentralBank())
	ex, exID := n.SignID(tb, ExchangeBody(bank, []*statepb.Outpoint{Out(issueID, 0)}, wallet, fen), n.Bank(bank))
	for i, r := range c.Apply(tb, issue, ex) {
		if r.GetCode() != statepb.Code_CODE_OK {
			tb.Fatalf("fund %s with %s: tx %d: %s: %s", wallet, state.Fen(fen), i, r.GetCode().Short(), r.GetMessage())
		}
	}
	return Out(exID, 0)
}
