package statetest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
)

// Builders for dual offline payments (SPEC §4) in tests.

// OfflinePolicy is the offline policy tests use unless they set their own:
// purses up to ¥5,000, payments up to ¥2,000, 100 payments a purse, valid
// up to 30 days, 7 days' grace (the figures node/netgen writes).
func OfflinePolicy() *statepb.OfflinePolicy {
	return &statepb.OfflinePolicy{
		MaxPurseFen: 5_000 * state.Yuan, MaxPaymentFen: 2_000 * state.Yuan, MaxPayments: 100,
		MaxValidityMs: 30 * 24 * 3600 * 1000, GraceMs: 7 * 24 * 3600 * 1000,
	}
}

// EnableOffline sets the genesis offline policy (nil: OfflinePolicy()) and
// re-derives the genesis hash. Call it before opening stores.
func (n *Net) EnableOffline(tb testing.TB, p *statepb.OfflinePolicy) {
	tb.Helper()
	if p == nil {
		p = OfflinePolicy()
	}
	n.Genesis.Offline = p
	h, err := state.GenesisHash(n.Genesis)
	if err != nil {
		tb.Fatal(err)
	}
	n.Signer.GenesisHash = h
}

// Offline is the network's offline verification context.
func (n *Net) Offline() *offline.Network { return offline.NewNetwork(n.Genesis, n.Signer.GenesisHash) }

// Device is a device key derived from a name.
func (n *Net) Device(name string) ed25519.PrivateKey { return n.Key("device/" + name) }

// DevicePub is Device(name)'s public key.
func (n *Net) DevicePub(name string) ed25519.PublicKey {
	return n.Device(name).Public().(ed25519.PublicKey)
}

// PurseID derives a purse id from a name.
func PurseID(name string) []byte {
	h := sha256.Sum256([]byte("purse/" + name))
	return h[:]
}

// Purse describes a purse to certify.
type Purse struct {
	Name, Bank, Wallet, Device string
	AmountFen, MaxPaymentFen   uint64
	MaxPayments                uint32
	NotAfterMs                 int64
}

// Cert returns the purse's certificate signed by its bank.
func (n *Net) Cert(tb testing.TB, p Purse) *statepb.PurseCert {
	tb.Helper()
	return n.CertBy(tb, n.Bank(p.Bank), p)
}

// CertBody is the purse's certificate body.
func (n *Net) CertBody(p Purse) *statepb.PurseCertBody {
	return &statepb.PurseCertBody{
		PurseId: PurseID(p.Name), BankId: p.Bank, WalletId: p.Wallet, DevicePublicKey: n.DevicePub(p.Device),
		AmountFen: p.AmountFen, MaxPaymentFen: p.MaxPaymentFen, MaxPayments: p.MaxPayments, NotAfterMs: p.NotAfterMs,
	}
}

// CertBy signs the purse's certificate with any key (for forgeries).
func (n *Net) CertBy(tb testing.TB, key ed25519.PrivateKey, p Purse) *statepb.PurseCert {
	tb.Helper()
	c, err := n.Offline().SignCert(key, n.CertBody(p))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// OpenPurseBody is an open_purse of cert from wallet's inputs.
func OpenPurseBody(wallet string, inputs []*statepb.Outpoint, cert *statepb.PurseCert) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_OpenPurse{OpenPurse: &statepb.OpenPurse{WalletId: wallet, Inputs: inputs, Cert: cert}}}
}

// OpenPurse signs an open_purse with the wallet's Register key.
func (n *Net) OpenPurse(tb testing.TB, wallet string, inputs []*statepb.Outpoint, cert *statepb.PurseCert) []byte {
	tb.Helper()
	return n.Sign(tb, OpenPurseBody(wallet, inputs, cert), n.Wallet(wallet))
}

// Request is a payment request of a payee device for fen, with a nonce
// derived from tag.
func (n *Net) Request(payee string, fen uint64, tag string) *statepb.PaymentRequest {
	nonce := sha256.Sum256([]byte("nonce/" + tag))
	return &statepb.PaymentRequest{PayeeDeviceKey: n.DevicePub(payee), AmountFen: fen, Nonce: nonce[:16]}
}

// OfflinePay is one payer-device payment: counter, prev hash and the request it
// answers.
type OfflinePay struct {
	Device  string
	Cert    *statepb.PurseCert
	Counter uint32
	Prev    []byte // nil: the zero hash
	Req     *statepb.PaymentRequest
}

// Payment signs a payment answering p.Req.
func (n *Net) Payment(tb testing.TB, p OfflinePay) (*statepb.Payment, [32]byte) {
	tb.Helper()
	body, err := offline.DecodeCert(p.Cert)
	if err != nil {
		tb.Fatal(err)
	}
	prev := p.Prev
	if prev == nil {
		prev = offline.ZeroHash
	}
	pay, h, err := n.Offline().SignPayment(n.Device(p.Device), &statepb.PaymentBody{
		PurseId: body.GetPurseId(), Counter: p.Counter, AmountFen: p.Req.GetAmountFen(), PayeeDeviceKey: p.Req.GetPayeeDeviceKey(),
		Nonce: p.Req.GetNonce(), PrevHash: prev, Cert: p.Cert, MerchantId: p.Req.GetMerchantId(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return pay, h
}

// Item is a deposit item: a payment and the request it answered, accepted
// with revocation list index 0.
func Item(p *statepb.Payment, r *statepb.PaymentRequest) *statepb.DepositItem {
	return &statepb.DepositItem{Payment: p, Request: r}
}

// DepositBody is a deposit_offline of items by device into wallet.
func (n *Net) DepositBody(device, wallet string, items ...*statepb.DepositItem) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_DepositOffline{DepositOffline: &statepb.DepositOffline{
		DevicePublicKey: n.DevicePub(device), WalletId: wallet, Items: items,
	}}}
}

// Deposit signs a deposit with the receiving device's key.
func (n *Net) Deposit(tb testing.TB, device, wallet string, items ...*statepb.DepositItem) []byte {
	tb.Helper()
	return n.Sign(tb, n.DepositBody(device, wallet, items...), n.Device(device))
}

// ClosePurseBody closes a purse.
func ClosePurseBody(purse []byte, final uint32, receipted ...*statepb.ReservedPayment) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_ClosePurse{ClosePurse: &statepb.ClosePurse{PurseId: purse, FinalCounter: final, Receipted: receipted}}}
}

// ClosePurse signs a close with the device's key.
func (n *Net) ClosePurse(tb testing.TB, device string, purse []byte, final uint32, receipted ...*statepb.ReservedPayment) []byte {
	tb.Helper()
	return n.Sign(tb, ClosePurseBody(purse, final, receipted...), n.Device(device))
}
