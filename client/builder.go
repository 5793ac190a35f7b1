package client

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// SignedTx is a signed transaction, ready to submit. Raw is exactly what is
// sent on every attempt; its id never changes, which is what makes retries
// safe (see DESIGN.md).
type SignedTx struct {
	// Raw is the serialized statepb.SignedTx.
	Raw []byte
	// ID is the transaction id: SHA-256 of the signed body.
	ID [32]byte
	// Body is the decoded body, for display.
	Body *statepb.Tx
}

// IDHex is the transaction id in hex, as the CLI prints it.
func (t *SignedTx) IDHex() string { return hex.EncodeToString(t.ID[:]) }

// ParseSignedTx decodes a serialized SignedTx, e.g. one saved to a file to
// be submitted later. Signatures are not verified (the ledger does that).
func ParseSignedTx(raw []byte) (*SignedTx, error) {
	if len(raw) > statepb.MaxTxBytes {
		return nil, statepb.Errorf(statepb.Code_CODE_TX_TOO_LARGE, "transaction: %d bytes (max %d)", len(raw), statepb.MaxTxBytes)
	}
	var stx statepb.SignedTx
	if err := proto.Unmarshal(raw, &stx); err != nil {
		return nil, statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "signed_tx: %v", err)
	}
	if err := stx.ValidateBasic(); err != nil {
		return nil, err
	}
	var body statepb.Tx
	if err := proto.Unmarshal(stx.GetBody(), &body); err != nil {
		return nil, statepb.Errorf(statepb.Code_CODE_TX_MALFORMED, "body: %v", err)
	}
	return &SignedTx{Raw: raw, ID: state.TxID(stx.GetBody()), Body: &body}, nil
}

// ParseTxID reads a transaction id given in hex (64 digits).
func ParseTxID(s string) ([32]byte, error) {
	var id [32]byte
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(id) {
		return id, statepb.Errorf(statepb.Code_CODE_INVALID_FIELD, "tx id %q: want %d hex digits", s, 2*len(id))
	}
	copy(id[:], b)
	return id, nil
}

// TxOption sets an optional field of a transaction body.
type TxOption func(*statepb.Tx)

// Memo sets the transaction's memo (at most statepb.MaxMemoBytes bytes).
// The Builder seals it to the transaction's parties when it signs
// (memos.go): only the sealed bytes leave the client.
func Memo(memo string) TxOption { return func(t *statepb.Tx) { t.Memo = memo } }

// Nonce fixes the nonce instead of a random one. Two transactions with the
// same body and nonce have the same id, so the second is a duplicate: use
// only to re-create a transaction exactly (or in tests).
func Nonce(n uint64) TxOption { return func(t *statepb.Tx) { t.Nonce = n } }

// Builder builds and signs transactions for one network. Every method runs
// the ledger's stateless checks (ValidateBasic, signature count, size)
// before signing, so bad input fails with the *statepb.Error the ledger
// would give, before anything is sent.
type Builder struct {
	genesis *statepb.Genesis
	signer  state.Signer
	// parties looks up the payees' keys a memo is sealed to (memos.go).
	parties Parties
}

// NewBuilder returns a Builder for the network of genesis g.
func NewBuilder(g *statepb.Genesis) (*Builder, error) {
	if g.GetChainId() == "" {
		return nil, fmt.Errorf("genesis: no chain id")
	}
	h, err := state.GenesisHash(g)
	if err != nil {
		return nil, err
	}
	return &Builder{genesis: g, signer: state.Signer{ChainID: g.GetChainId(), GenesisHash: h}}, nil
}

// Genesis is the network's genesis.
func (b *Builder) Genesis() *statepb.Genesis { return b.genesis }

// Signer is the network's signer (chain id and genesis hash).
func (b *Builder) Signer() state.Signer { return b.signer }

// Bank returns the genesis record of an operating bank, or a BANK_NOT_FOUND
// rejection.
func (b *Builder) Bank(bankID string) (*statepb.Bank, error) {
	for _, bk := range b.genesis.GetBanks() {
		if bk.GetId() == bankID {
			return bk, nil
		}
	}
	return nil, statepb.Errorf(statepb.Code_CODE_BANK_NOT_FOUND, "bank %q is not in this network's genesis", bankID)
}

// prepare copies body, applies opts and fills version, chain id and nonce.
func (b *Builder) prepare(body *statepb.Tx, opts []TxOption) (*statepb.Tx, error) {
	body = proto.Clone(body).(*statepb.Tx)
	for _, o := range opts {
		o(body)
	}
	if body.Version == 0 {
		body.Version = statepb.TxVersion
	}
	if body.ChainId == "" {
		body.ChainId = b.signer.ChainID
	}
	if body.ChainId != b.signer.ChainID {
		return nil, statepb.Errorf(statepb.Code_CODE_CHAIN_ID_MISMATCH, "chain_id: %q (this network is %q)", body.ChainId, b.signer.ChainID)
	}
	for body.Nonce == 0 {
		var n [8]byte
		if _, err := rand.Read(n[:]); err != nil {
			return nil, fmt.Errorf("nonce: %w", err)
		}
		body.Nonce = binary.BigEndian.Uint64(n[:])
	}
	return body, nil
}

// check runs the stateless checks of a body that is not signed yet.
func (b *Builder) check(body *statepb.Tx, opts []TxOption) error {
	body, err := b.prepare(body, opts)
	if err != nil {
		return err
	}
	if len(body.GetMemo()) <= statepb.MaxMemoBytes {
		body.Memo = "" // sealed at signing
	}
	return body.ValidateBasic()
}

// Sign fills in version, chain id and (unless set) a random nonce, checks
// body as the ledger would without state, and signs it with keys in the
// order the kind requires (state/DESIGN.md: one signer, or for a return the
// bank then the central bank). body is not modified.
func (b *Builder) Sign(body *statepb.Tx, keys ...crypto.Signer) (*SignedTx, error) {
	body, err := b.prepare(body, nil)
	if err != nil {
		return nil, err
	}
	if err := b.sealMemo(body, keys); err != nil {
		return nil, err
	}
	if err := body.ValidateBasic(); err != nil {
		return nil, err
	}
	want := 1
	switch body.GetKind().(type) {
	case *statepb.Tx_Return, *statepb.Tx_RotateKey:
		want = 2
	}
	if len(keys) != want {
		return nil, statepb.Errorf(statepb.Code_CODE_SIGNATURE_COUNT, "signatures: %d keys given (a %s needs %d)", len(keys), kindName(body), want)
	}
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, statepb.Errorf(statepb.Code_CODE_SIGNATURE_MALFORMED, "signatures[%d]: %v", i, err)
		}
	}
	raw, id, err := b.signer.SignWith(body, keys...)
	if err != nil {
		return nil, err
	}
	if len(raw) > statepb.MaxTxBytes {
		return nil, statepb.Errorf(statepb.Code_CODE_TX_TOO_LARGE, "transaction: %d bytes (max %d)", len(raw), statepb.MaxTxBytes)
	}
	return &SignedTx{Raw: raw, ID: id, Body: body}, nil
}

func (b *Builder) sign(body *statepb.Tx, opts []TxOption, keys ...crypto.Signer) (*SignedTx, error) {
	for _, o := range opts {
		o(body)
	}
	return b.Sign(body, keys...)
}

// kindName is the kind's field name, e.g. "transfer".
func kindName(body *statepb.Tx) string {
	r := body.ProtoReflect()
	if f := r.WhichOneof(r.Descriptor().Oneofs().ByName("kind")); f != nil {
		return string(f.Name())
	}
	return "transaction without a kind"
}

// Issue creates amountFen in bankID's reserve. Signer: the central bank.
func (b *Builder) Issue(centralBank crypto.Signer, bankID string, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: bankID, AmountFen: amountFen}}}, opts, centralBank)
}

// Return destroys amountFen of bankID's reserve outputs inputs; the rest
// comes back to the reserve. Signers: the bank, then the central bank.
func (b *Builder) Return(bank, centralBank crypto.Signer, bankID string, inputs []*statepb.Outpoint, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_Return{Return: &statepb.Return{BankId: bankID, Inputs: inputs, AmountFen: amountFen}}}, opts, bank, centralBank)
}

// Exchange pays amountFen from bankID's reserve outputs inputs to
// toWalletID, a wallet of that bank; change goes back to the reserve.
// Signer: the bank.
func (b *Builder) Exchange(bank crypto.Signer, bankID string, inputs []*statepb.Outpoint, toWalletID string, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{BankId: bankID, Inputs: inputs, ToWalletId: toWalletID, AmountFen: amountFen}}}, opts, bank)
}

// Redeem pays amountFen from walletID's outputs inputs back to its bank's
// reserve; change goes back to the wallet. Signer: the wallet's key.
func (b *Builder) Redeem(wallet crypto.Signer, walletID string, inputs []*statepb.Outpoint, amountFen uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_Redeem{Redeem: &statepb.Redeem{WalletId: walletID, Inputs: inputs, AmountFen: amountFen}}}, opts, wallet)
}

// Transfer pays payees (at most statepb.MaxPayees) from fromWalletID's
// outputs inputs; change goes back to the payer. Signer: the wallet's key.
func (b *Builder) Transfer(wallet crypto.Signer, fromWalletID string, inputs []*statepb.Outpoint, payees []*statepb.Payee, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{FromWalletId: fromWalletID, Inputs: inputs, Payees: payees}}}, opts, wallet)
}

// RegisterWallet opens a wallet. Signer: the wallet's bank (reg.BankId).
func (b *Builder) RegisterWallet(bank crypto.Signer, reg *statepb.RegisterWallet, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_RegisterWallet{RegisterWallet: reg}}, opts, bank)
}

// UpdateWallet sets a wallet's tier, region, category and limits (all of
// them). Signer: the wallet's bank.
func (b *Builder) UpdateWallet(bank crypto.Signer, upd *statepb.UpdateWallet, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_UpdateWallet{UpdateWallet: upd}}, opts, bank)
}

// RotateWalletKey replaces a wallet's key. Signer: the wallet's bank.
func (b *Builder) RotateWalletKey(bank crypto.Signer, walletID string, newKey ed25519.PublicKey, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_RotateWalletKey{RotateWalletKey: &statepb.RotateWalletKey{WalletId: walletID, NewPublicKey: newKey}}}, opts, bank)
}

// FreezeWallet stops a wallet sending and receiving. Signer: the wallet's
// bank.
func (b *Builder) FreezeWallet(bank crypto.Signer, walletID, reason string, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_FreezeWallet{FreezeWallet: &statepb.FreezeWallet{WalletId: walletID, Reason: reason}}}, opts, bank)
}

// UnfreezeWallet lifts a freeze. Signer: the wallet's bank.
func (b *Builder) UnfreezeWallet(bank crypto.Signer, walletID, reason string, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_UnfreezeWallet{UnfreezeWallet: &statepb.UnfreezeWallet{WalletId: walletID, Reason: reason}}}, opts, bank)
}

// CloseWallet closes an empty wallet for good. Signer: the wallet's bank.
func (b *Builder) CloseWallet(bank crypto.Signer, walletID string, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_CloseWallet{CloseWallet: &statepb.CloseWallet{WalletId: walletID}}}, opts, bank)
}

// RotateKey replaces the central bank's, a bank's or a node's key (id: the
// bank id or node name, empty for the central bank), signed by the central
// bank's current key and by the new key.
func (b *Builder) RotateKey(centralBank ed25519.PrivateKey, holder statepb.KeyHolder, id string, newKey ed25519.PrivateKey, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_RotateKey{RotateKey: &statepb.RotateKey{
		Holder: holder, Id: id, NewPublicKey: newKey.Public().(ed25519.PublicKey),
	}}}, opts, centralBank, newKey)
}

// ActivateVersion schedules ledger version from log index at on, signed by
// the central bank.
func (b *Builder) ActivateVersion(centralBank ed25519.PrivateKey, version uint32, at uint64, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_ActivateVersion{ActivateVersion: &statepb.ActivateVersion{Version: version, ActivateAtIndex: at}}}, opts, centralBank)
}

// ChangeMembership adds a node (the whole record) or removes one (only
// node.Name is read). Signer: the central bank.
func (b *Builder) ChangeMembership(centralBank crypto.Signer, action statepb.MembershipAction, node *statepb.Node, opts ...TxOption) (*SignedTx, error) {
	return b.sign(&statepb.Tx{Kind: &statepb.Tx_ChangeMembership{ChangeMembership: &statepb.ChangeMembership{Action: action, Node: node}}}, opts, centralBank)
}

// checkKey refuses a key that cannot sign as Ed25519: a nil or short
// ed25519.PrivateKey, or a signer (a token key) whose public half is not a
// 32-byte Ed25519 key.
func checkKey(k crypto.Signer) error {
	if k == nil {
		return fmt.Errorf("no key")
	}
	if sk, ok := k.(ed25519.PrivateKey); ok {
		if len(sk) != ed25519.PrivateKeySize {
			return fmt.Errorf("private key is %d bytes (want %d)", len(sk), ed25519.PrivateKeySize)
		}
		return nil
	}
	if pub, ok := k.Public().(ed25519.PublicKey); !ok || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("key is %T, not Ed25519", k.Public())
	}
	return nil
}
