// Package offline holds the rules of dual offline payments (SPEC §4,
// docs/offline.md) as pure functions: signing and verifying purse
// certificates, payments and receipts, and every check a payee makes. The
// payee device (client/device) and the ledger (state) call the same
// functions, so they can never disagree about what a valid payment is; only
// the sources of "now" and "revoked" differ (the device's clock and synced
// list; ledger time and the ledger's revocations).
//
// No I/O, no clock, no randomness: every input is a parameter.
//
// Every refusal is a *statepb.Error with a stable code (80–96, docs/errors.md)
// whose message names the rule.
package offline

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Domain tags: a signature for one purpose is never valid for another (nor
// for a transaction, "dcep/tx/v1\0").
const (
	DomainCert    = "dcep/purse-cert/v1\x00"
	DomainPayment = "dcep/offline-payment/v1\x00"
	DomainReceipt = "dcep/offline-receipt/v1\x00"
)

// Sizes and bounds of offline messages. They are protocol rules: devices and
// every node enforce the same numbers.
const (
	PurseIDBytes = 32
	HashBytes    = 32
	MinNonce     = 16
	MaxNonce     = 32
	// MaxCertBodyBytes bounds a serialized PurseCertBody.
	MaxCertBodyBytes = 512
	// MaxPaymentBodyBytes bounds a serialized PaymentBody (certificate
	// included).
	MaxPaymentBodyBytes = 1024
	// MaxMessageBytes bounds a serialized OfflineMessage.
	MaxMessageBytes = 2048
)

// Network is what verification needs to know about the network: its chain
// id and genesis hash (bound into every signature) and the banks' keys
// (every certificate must chain to a bank in genesis).
type Network struct {
	ChainID     string
	GenesisHash [32]byte
	banks       map[string]ed25519.PublicKey
}

// NewNetwork returns the Network of genesis g, whose hash is genesisHash
// (state.GenesisHash(g); passed in because this package cannot import
// state).
func NewNetwork(g *statepb.Genesis, genesisHash [32]byte) *Network {
	n := &Network{ChainID: g.GetChainId(), GenesisHash: genesisHash, banks: map[string]ed25519.PublicKey{}}
	for _, b := range g.GetBanks() {
		n.banks[b.GetId()] = ed25519.PublicKey(b.GetPublicKey())
	}
	return n
}

// BankKey is a bank's key in genesis.
func (n *Network) BankKey(bankID string) (ed25519.PublicKey, bool) {
	k, ok := n.banks[bankID]
	return k, ok
}

// signBytes is domain | u16 len(chain id) | chain id | genesis hash | rest.
func (n *Network) signBytes(domain string, rest ...[]byte) []byte {
	size := len(domain) + 2 + len(n.ChainID) + 32
	for _, r := range rest {
		size += len(r)
	}
	out := make([]byte, 0, size)
	out = append(out, domain...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(n.ChainID)))
	out = append(out, n.ChainID...)
	out = append(out, n.GenesisHash[:]...)
	for _, r := range rest {
		out = append(out, r...)
	}
	return out
}

// CertSignBytes is what a bank signs for a certificate body.
func (n *Network) CertSignBytes(body []byte) []byte { return n.signBytes(DomainCert, body) }

// PaymentSignBytes is what a payer device signs for a payment body.
func (n *Network) PaymentSignBytes(body []byte) []byte { return n.signBytes(DomainPayment, body) }

// ReceiptSignBytes is what a payee device signs for a receipt.
func (n *Network) ReceiptSignBytes(paymentHash, payeeKey []byte, timeMs int64) []byte {
	return n.signBytes(DomainReceipt, paymentHash, payeeKey, binary.BigEndian.AppendUint64(nil, uint64(timeMs)))
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func errf(code statepb.Code, format string, args ...any) *statepb.Error {
	return statepb.Errorf(code, format, args...)
}

// unmarshalStrict decodes b into m and refuses unknown fields: nothing signed
// may be accepted while part of it is ignored.
func unmarshalStrict(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return err
	}
	if statepb.HasUnknownFields(m) {
		return fmt.Errorf("has fields this code does not know")
	}
	return nil
}

// --- Certificates ---

// SignCert serializes body and signs it with the bank's key.
func (n *Network) SignCert(bank ed25519.PrivateKey, body *statepb.PurseCertBody) (*statepb.PurseCert, error) {
	raw, err := deterministic.Marshal(body)
	if err != nil {
		return nil, err
	}
	if _, err := DecodeCert(&statepb.PurseCert{Body: raw, Signature: make([]byte, ed25519.SignatureSize)}); err != nil {
		return nil, err
	}
	return &statepb.PurseCert{Body: raw, Signature: ed25519.Sign(bank, n.CertSignBytes(raw))}, nil
}

// DecodeCert decodes a certificate and checks its shape (CERT_INVALID),
// without verifying the signature.
func DecodeCert(c *statepb.PurseCert) (*statepb.PurseCertBody, error) {
	if c == nil {
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: missing")
	}
	if n := len(c.GetBody()); n == 0 || n > MaxCertBodyBytes {
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: body of %d bytes (want 1..%d)", n, MaxCertBodyBytes)
	}
	if len(c.GetSignature()) != ed25519.SignatureSize {
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: signature of %d bytes", len(c.GetSignature()))
	}
	var b statepb.PurseCertBody
	if err := unmarshalStrict(c.GetBody(), &b); err != nil {
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: body: %s", statepb.Text(err.Error()))
	}
	switch {
	case len(b.GetPurseId()) != PurseIDBytes:
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: purse_id of %d bytes (want %d)", len(b.GetPurseId()), PurseIDBytes)
	case statepb.ValidateID("bank_id", b.GetBankId()) != nil:
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: bank_id %q is not an id", b.GetBankId())
	case statepb.ValidateID("wallet_id", b.GetWalletId()) != nil:
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: wallet_id %q is not an id", b.GetWalletId())
	case len(b.GetDevicePublicKey()) != ed25519.PublicKeySize:
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: device key of %d bytes", len(b.GetDevicePublicKey()))
	case !statepb.UsableKey(b.GetDevicePublicKey()):
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: device key is not a usable Ed25519 key (small order or not a curve point)")
	case b.GetAmountFen() == 0:
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: amount zero")
	case b.GetMaxPaymentFen() == 0 || b.GetMaxPaymentFen() > b.GetAmountFen():
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: max_payment_fen %d (want 1..amount %d)", b.GetMaxPaymentFen(), b.GetAmountFen())
	case b.GetMaxPayments() == 0:
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: max_payments zero")
	case b.GetNotAfterMs() <= 0:
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: not_after_ms %d", b.GetNotAfterMs())
	}
	return &b, nil
}

// VerifyCert checks that a certificate chains to a bank of this network:
// decodes it (CERT_INVALID), finds its bank in genesis (CERT_FOREIGN_BANK)
// and verifies the bank's signature for this chain and genesis
// (CERT_INVALID: forged, altered, or signed for another network).
func (n *Network) VerifyCert(c *statepb.PurseCert) (*statepb.PurseCertBody, error) {
	b, err := DecodeCert(c)
	if err != nil {
		return nil, err
	}
	key, ok := n.banks[b.GetBankId()]
	if !ok {
		return nil, errf(statepb.Code_CODE_CERT_FOREIGN_BANK, "certificate: issued by %q, not a bank of network %s", b.GetBankId(), n.ChainID)
	}
	if !ed25519.Verify(key, n.CertSignBytes(c.GetBody()), c.GetSignature()) {
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "certificate: bank %s's signature does not verify (forged, altered, or for another network)", b.GetBankId())
	}
	return b, nil
}

// --- Payments ---

// Hash is a payment's identity: SHA-256 of its signed body.
func Hash(body []byte) [32]byte { return sha256.Sum256(body) }

// ZeroHash is prev_hash of a purse's first payment.
var ZeroHash = make([]byte, HashBytes)

// SignPayment serializes body and signs it with the payer device's key. It
// returns the payment and its hash.
func (n *Network) SignPayment(device ed25519.PrivateKey, body *statepb.PaymentBody) (*statepb.Payment, [32]byte, error) {
	raw, err := deterministic.Marshal(body)
	if err != nil {
		return nil, [32]byte{}, err
	}
	p := &statepb.Payment{Body: raw, Signature: ed25519.Sign(device, n.PaymentSignBytes(raw))}
	if _, err := DecodePayment(p); err != nil {
		return nil, [32]byte{}, err
	}
	return p, Hash(raw), nil
}

// Decoded is a payment whose shape has been checked.
type Decoded struct {
	Payment *statepb.Payment
	Body    *statepb.PaymentBody
	Cert    *statepb.PurseCertBody
	Hash    [32]byte
}

// DecodePayment decodes a payment and checks its shape and its
// certificate's shape (PAYMENT_MALFORMED, CERT_INVALID); no signature is
// verified.
func DecodePayment(p *statepb.Payment) (*Decoded, error) {
	if p == nil {
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: missing")
	}
	if n := len(p.GetBody()); n == 0 || n > MaxPaymentBodyBytes {
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: body of %d bytes (want 1..%d)", n, MaxPaymentBodyBytes)
	}
	if len(p.GetSignature()) != ed25519.SignatureSize {
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: signature of %d bytes", len(p.GetSignature()))
	}
	var b statepb.PaymentBody
	if err := unmarshalStrict(p.GetBody(), &b); err != nil {
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: body: %s", statepb.Text(err.Error()))
	}
	switch {
	case len(b.GetPurseId()) != PurseIDBytes:
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: purse_id of %d bytes", len(b.GetPurseId()))
	case b.GetAmountFen() == 0:
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: amount zero")
	case len(b.GetPayeeDeviceKey()) != ed25519.PublicKeySize:
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: payee device key of %d bytes", len(b.GetPayeeDeviceKey()))
	case len(b.GetNonce()) < MinNonce || len(b.GetNonce()) > MaxNonce:
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: nonce of %d bytes (want %d..%d)", len(b.GetNonce()), MinNonce, MaxNonce)
	case len(b.GetPrevHash()) != HashBytes:
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: prev_hash of %d bytes", len(b.GetPrevHash()))
	case b.GetMerchantId() != "" && statepb.ValidateID("merchant_id", b.GetMerchantId()) != nil:
		return nil, errf(statepb.Code_CODE_PAYMENT_MALFORMED, "payment: merchant_id %q is not an id", b.GetMerchantId())
	}
	cert, err := DecodeCert(b.GetCert())
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(cert.GetPurseId(), b.GetPurseId()) {
		return nil, errf(statepb.Code_CODE_CERT_INVALID, "payment: certificate is for another purse")
	}
	return &Decoded{Payment: p, Body: &b, Cert: cert, Hash: Hash(p.GetBody())}, nil
}

// ValidateRequest checks a payment request's shape.
func ValidateRequest(r *statepb.PaymentRequest) error {
	switch {
	case r == nil:
		return errf(statepb.Code_CODE_INVALID_FIELD, "request: missing")
	case len(r.GetPayeeDeviceKey()) != ed25519.PublicKeySize:
		return errf(statepb.Code_CODE_INVALID_FIELD, "request: payee device key of %d bytes", len(r.GetPayeeDeviceKey()))
	case r.GetAmountFen() == 0:
		return errf(statepb.Code_CODE_AMOUNT_ZERO, "request: amount zero")
	case len(r.GetNonce()) < MinNonce || len(r.GetNonce()) > MaxNonce:
		return errf(statepb.Code_CODE_INVALID_FIELD, "request: nonce of %d bytes (want %d..%d)", len(r.GetNonce()), MinNonce, MaxNonce)
	case r.GetMerchantId() != "" && statepb.ValidateID("merchant_id", r.GetMerchantId()) != nil:
		return errf(statepb.Code_CODE_INVALID_FIELD, "request: merchant_id %q is not an id", r.GetMerchantId())
	}
	return nil
}

// Expect is what a payee expects of a payment: that it answers this
// request, addressed to this device.
type Expect struct {
	// PayeeKey is the receiving device's public key.
	PayeeKey []byte
	// Request is the request the payment must answer (nonce and amount).
	Request *statepb.PaymentRequest
}

// Verify runs every rule that needs no state, in this order (the code
// precedence of docs/errors.md): shape (PAYMENT_MALFORMED, CERT_INVALID);
// certificate chain to a bank of the network (CERT_FOREIGN_BANK,
// CERT_INVALID); the payer device's signature by the certificate's device
// key (PAYMENT_SIGNATURE_INVALID); addressed to this device
// (PAYMENT_WRONG_PAYEE); the request's nonce (PAYMENT_NONCE_MISMATCH) and
// amount (PAYMENT_AMOUNT_MISMATCH); the certificate's per-payment cap
// (PAYMENT_OVER_CAP) and count (PAYMENT_OVER_COUNT). The rules that need
// state, CheckRevoked, CheckExpiry and the replay checks, come after.
func (n *Network) Verify(p *statepb.Payment, want Expect) (*Decoded, error) {
	d, err := DecodePayment(p)
	if err != nil {
		return nil, err
	}
	if _, err := n.VerifyCert(d.Body.GetCert()); err != nil {
		return nil, err
	}
	if !ed25519.Verify(d.Cert.GetDevicePublicKey(), n.PaymentSignBytes(p.GetBody()), p.GetSignature()) {
		return nil, errf(statepb.Code_CODE_PAYMENT_SIGNATURE_INVALID, "payment: not signed by the purse's device")
	}
	if err := CheckAddressed(d, want); err != nil {
		return nil, err
	}
	if err := CheckCaps(d); err != nil {
		return nil, err
	}
	return d, nil
}

// CheckAddressed checks that a payment is addressed to the payee's device
// and answers its request: PAYMENT_WRONG_PAYEE (another device, or a request
// of another device), PAYMENT_NONCE_MISMATCH, PAYMENT_AMOUNT_MISMATCH.
func CheckAddressed(d *Decoded, want Expect) error {
	if !bytes.Equal(d.Body.GetPayeeDeviceKey(), want.PayeeKey) {
		return errf(statepb.Code_CODE_PAYMENT_WRONG_PAYEE, "payment: addressed to device %x, not %x", short(d.Body.GetPayeeDeviceKey()), short(want.PayeeKey))
	}
	r := want.Request
	if !bytes.Equal(r.GetPayeeDeviceKey(), want.PayeeKey) {
		return errf(statepb.Code_CODE_PAYMENT_WRONG_PAYEE, "request: made by device %x, not %x", short(r.GetPayeeDeviceKey()), short(want.PayeeKey))
	}
	if !bytes.Equal(d.Body.GetNonce(), r.GetNonce()) {
		return errf(statepb.Code_CODE_PAYMENT_NONCE_MISMATCH, "payment: nonce %x is not the request's %x", short(d.Body.GetNonce()), short(r.GetNonce()))
	}
	if d.Body.GetAmountFen() != r.GetAmountFen() {
		return errf(statepb.Code_CODE_PAYMENT_AMOUNT_MISMATCH, "payment: %s, but %s was requested", fen(d.Body.GetAmountFen()), fen(r.GetAmountFen()))
	}
	return nil
}

// CheckCaps checks a payment against its certificate's limits:
// PAYMENT_OVER_CAP (amount above the per-payment cap) and PAYMENT_OVER_COUNT
// (counter outside 1..max_payments).
func CheckCaps(d *Decoded) error {
	if d.Body.GetAmountFen() > d.Cert.GetMaxPaymentFen() {
		return errf(statepb.Code_CODE_PAYMENT_OVER_CAP, "payment: %s is above the purse's per-payment cap %s", fen(d.Body.GetAmountFen()), fen(d.Cert.GetMaxPaymentFen()))
	}
	if c := d.Body.GetCounter(); c == 0 || c > d.Cert.GetMaxPayments() {
		return errf(statepb.Code_CODE_PAYMENT_OVER_COUNT, "payment: counter %d is outside the purse's 1..%d payments", c, d.Cert.GetMaxPayments())
	}
	return nil
}

// CheckRevoked refuses a payment from a revoked device (DEVICE_REVOKED).
// revoked says whether the certificate's device key is revoked as far as the
// checker knows: on a device, its synced list; on the ledger, revoked at or
// below the revocation index the payee device held when it accepted.
func CheckRevoked(d *Decoded, revoked func(deviceKey []byte) bool) error {
	if revoked != nil && revoked(d.Cert.GetDevicePublicKey()) {
		return errf(statepb.Code_CODE_DEVICE_REVOKED, "payment: payer device %x is revoked", short(d.Cert.GetDevicePublicKey()))
	}
	return nil
}

// CheckExpiry refuses a payment whose purse has expired (CERT_EXPIRED): at
// or after not_after + graceMs, by nowMs. A payee device passes its clock
// and grace 0; the ledger passes ledger time and the genesis grace period.
func CheckExpiry(d *Decoded, nowMs, graceMs int64) error {
	if end := Deadline(d.Cert, graceMs); nowMs >= end {
		return errf(statepb.Code_CODE_CERT_EXPIRED, "payment: purse expired at %d ms (now %d ms)", end, nowMs)
	}
	return nil
}

// Deadline is not_after + grace, saturating.
func Deadline(c *statepb.PurseCertBody, graceMs int64) int64 {
	na := c.GetNotAfterMs()
	if graceMs > 0 && na > (1<<63-1)-graceMs {
		return 1<<63 - 1
	}
	return na + max(graceMs, 0)
}

// CheckFresh is the payee's replay rule (PAYMENT_REPLAYED): a payment's
// counter must be above the highest counter the device has accepted from
// that purse (lastSeen, 0 if none).
func CheckFresh(d *Decoded, lastSeen uint32) error {
	if d.Body.GetCounter() <= lastSeen {
		return errf(statepb.Code_CODE_PAYMENT_REPLAYED, "payment: counter %d of purse %x is not above %d, the last this device accepted from it", d.Body.GetCounter(), short(d.Body.GetPurseId()), lastSeen)
	}
	return nil
}

// --- Receipts ---

// SignReceipt acknowledges a payment with the payee device's key.
func (n *Network) SignReceipt(payee ed25519.PrivateKey, paymentHash [32]byte, timeMs int64) *statepb.Receipt {
	pub := payee.Public().(ed25519.PublicKey)
	return &statepb.Receipt{
		PaymentHash: paymentHash[:], PayeeDeviceKey: pub, TimeMs: timeMs,
		Signature: ed25519.Sign(payee, n.ReceiptSignBytes(paymentHash[:], pub, timeMs)),
	}
}

// VerifyReceipt checks a receipt for a payment the device sent to payeeKey.
func (n *Network) VerifyReceipt(r *statepb.Receipt, paymentHash [32]byte, payeeKey []byte) error {
	switch {
	case r == nil:
		return errf(statepb.Code_CODE_INVALID_FIELD, "receipt: missing")
	case !bytes.Equal(r.GetPaymentHash(), paymentHash[:]):
		return errf(statepb.Code_CODE_INVALID_FIELD, "receipt: for payment %x, not %x", short(r.GetPaymentHash()), short(paymentHash[:]))
	case !bytes.Equal(r.GetPayeeDeviceKey(), payeeKey):
		return errf(statepb.Code_CODE_PAYMENT_WRONG_PAYEE, "receipt: from device %x, the payment went to %x", short(r.GetPayeeDeviceKey()), short(payeeKey))
	case len(r.GetSignature()) != ed25519.SignatureSize || len(payeeKey) != ed25519.PublicKeySize ||
		!ed25519.Verify(payeeKey, n.ReceiptSignBytes(r.GetPaymentHash(), r.GetPayeeDeviceKey(), r.GetTimeMs()), r.GetSignature()):
		return errf(statepb.Code_CODE_SIGNATURE_INVALID, "receipt: the payee device's signature does not verify")
	}
	return nil
}

// --- The envelope that travels between devices ---

// EncodeMessage serializes one offline message.
func EncodeMessage(m *statepb.OfflineMessage) ([]byte, error) {
	raw, err := deterministic.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxMessageBytes {
		return nil, errf(statepb.Code_CODE_TX_TOO_LARGE, "offline message: %d bytes (max %d)", len(raw), MaxMessageBytes)
	}
	return raw, nil
}

// DecodeMessage decodes an offline message received from another device
// (untrusted bytes): size, decoding, unknown fields, that one message is
// set, and that message's shape (a request's fields; a payment's and its
// certificate's shape; a receipt's field sizes). Signatures are checked by
// Verify and VerifyReceipt, which need the context.
func DecodeMessage(b []byte) (*statepb.OfflineMessage, error) {
	if len(b) == 0 || len(b) > MaxMessageBytes {
		return nil, errf(statepb.Code_CODE_TX_MALFORMED, "offline message: %d bytes (want 1..%d)", len(b), MaxMessageBytes)
	}
	var m statepb.OfflineMessage
	if err := unmarshalStrict(b, &m); err != nil {
		return nil, errf(statepb.Code_CODE_TX_MALFORMED, "offline message: %s", statepb.Text(err.Error()))
	}
	switch k := m.GetMessage().(type) {
	case *statepb.OfflineMessage_Request:
		if err := ValidateRequest(k.Request); err != nil {
			return nil, err
		}
	case *statepb.OfflineMessage_Payment:
		if _, err := DecodePayment(k.Payment); err != nil {
			return nil, err
		}
	case *statepb.OfflineMessage_Receipt:
		r := k.Receipt
		if len(r.GetPaymentHash()) != HashBytes || len(r.GetPayeeDeviceKey()) != ed25519.PublicKeySize || len(r.GetSignature()) != ed25519.SignatureSize {
			return nil, errf(statepb.Code_CODE_INVALID_FIELD, "receipt: field sizes %d/%d/%d", len(r.GetPaymentHash()), len(r.GetPayeeDeviceKey()), len(r.GetSignature()))
		}
	default:
		return nil, errf(statepb.Code_CODE_TX_MALFORMED, "offline message: empty")
	}
	return &m, nil
}

// short is an id of bytes for a message: recorded whole, printed as its
// first 6 bytes.
func short(b []byte) statepb.Short { return statepb.Short(b) }

// fen is an amount for a message.
func fen(v uint64) statepb.Fen { return statepb.Fen(v) }
