// Package device is an offline payment device (SPEC §4; docs/offline.md):
// a software stand-in for a phone's secure element, kept in one file. It
// holds the device's Ed25519 key, the purse certificates loaded onto it, a
// strictly increasing payment counter and hash chain per purse, the log of
// payments sent (with the payees' receipts) and received, the requests it
// issued, and the revocation list synced from the ledger.
//
// Paying and receiving need no network: Request, Pay, Receive and
// AddReceipt touch only the file. Load, Sync and Unload talk to a node
// (network.go).
//
// Every rule a payee applies comes from state/offline, the package the
// ledger uses too, so the device and the ledger never disagree about what
// a valid payment is.
//
// # File
//
// JSON (format "dcep-device/v1"), mode 0600, written atomically: a
// temporary file in the same directory, fsync, rename over the old file,
// fsync of the directory. A crash leaves the old file or the new one. Pay
// advances the purse's counter and writes the file before it returns the
// payment, so a crash can never make the device sign two payments with one
// counter. An advisory lock (FILE.lock, flock) keeps two processes from
// using one file at once.
//
// Copying the file to a second phone makes a clone: both sign with the same
// key and counters. Offline nothing can tell; the ledger proves it as a
// double spend when the payments are deposited (docs/offline.md).
package device

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
)

// Format is the device file format this package reads and writes.
const Format = "dcep-device/v1"

// maxRequests bounds the outstanding requests a device keeps (the oldest
// are dropped).
const maxRequests = 32

// Errors of the device itself (payment rules give *statepb.Error with the
// ledger's codes).
var (
	// ErrRevoked: this device's key was revoked by the ledger (a double
	// spend was proven against it); it can no longer pay.
	ErrRevoked = errors.New("this device is revoked")
	// ErrNoPurse: no open purse can make this payment (amount, caps, count,
	// expiry).
	ErrNoPurse = errors.New("no purse on this device can make this payment")
	// ErrLocked: another process has the device file open.
	ErrLocked = errors.New("device file is in use by another process")
	// ErrFormat: the file is not a device file of this format.
	ErrFormat = errors.New("not a device file")
)

// Purse statuses on the device.
const (
	PursePending = "pending" // certificate signed, open_purse not confirmed
	PurseOpen    = "open"
	PurseClosed  = "closed"
	PurseExpired = "expired"
	PurseFailed  = "failed" // the ledger refused the open
)

// Received statuses.
const (
	RecvPending  = "pending"  // accepted offline, not deposited yet
	RecvSettled  = "settled"  // deposited and settled (Paid says how)
	RecvIncident = "incident" // deposited; it proved a double spend (settled all the same)
	RecvTorn     = "torn"     // deposited; a torn payment of a closed purse (settled)
	RecvReplayed = "replayed" // settled earlier (by an earlier deposit)
	RecvRefused  = "refused"  // the ledger refused it (Code says why)
)

// Purse is a purse loaded on the device.
type Purse struct {
	ID          []byte `json:"purse_id"`
	Cert        []byte `json:"cert"` // serialized statepb.PurseCert
	WalletID    string `json:"wallet_id"`
	BankID      string `json:"bank_id"`
	AmountFen   uint64 `json:"amount_fen"`
	MaxPayFen   uint64 `json:"max_payment_fen"`
	MaxPayments uint32 `json:"max_payments"`
	NotAfterMs  int64  `json:"not_after_ms"`
	// Counter is the last counter used (0: none); PrevHash the hash of that
	// payment (the chain); SpentFen the total of the payments sent.
	Counter  uint32 `json:"counter"`
	PrevHash []byte `json:"prev_hash"`
	SpentFen uint64 `json:"spent_fen"`
	Status   string `json:"status"`
	OpenTx   []byte `json:"open_tx,omitempty"`
	CloseTx  []byte `json:"close_tx,omitempty"`
	// ReturnedFen is what came back to the wallet (close, expiry), as the
	// ledger reported it at the last sync.
	ReturnedFen uint64 `json:"returned_fen,omitempty"`
}

// RemainingFen is what the purse can still pay.
func (p *Purse) RemainingFen() uint64 { return p.AmountFen - min(p.SpentFen, p.AmountFen) }

// Sent is a payment the device signed.
type Sent struct {
	PurseID  []byte `json:"purse_id"`
	Counter  uint32 `json:"counter"`
	Amount   uint64 `json:"amount_fen"`
	PayeeKey []byte `json:"payee_device_key"`
	Merchant string `json:"merchant_id,omitempty"`
	Hash     []byte `json:"hash"`
	Payment  []byte `json:"payment"` // serialized statepb.Payment
	Receipt  []byte `json:"receipt,omitempty"`
	TimeMs   int64  `json:"time_ms"`
}

// Received is a payment the device accepted.
type Received struct {
	Hash    []byte `json:"hash"`
	Payment []byte `json:"payment"` // serialized statepb.Payment
	Request []byte `json:"request"` // serialized statepb.PaymentRequest
	// RevocationIndex is the revocation list index the device held when it
	// accepted the payment (the ledger refuses payments from devices revoked
	// at or below it).
	RevocationIndex uint64 `json:"revocation_index"`
	Amount          uint64 `json:"amount_fen"`
	PayerWallet     string `json:"payer_wallet_id"`
	TimeMs          int64  `json:"time_ms"`
	Status          string `json:"status"`
	Code            string `json:"code,omitempty"`
	Message         string `json:"message,omitempty"`
	DepositTx       []byte `json:"deposit_tx,omitempty"`
	CreditedFen     uint64 `json:"credited_fen,omitempty"`
	IncidentID      uint64 `json:"incident_id,omitempty"`
	// Paid is what the ledger's settlement record says of this payment, as
	// of the last sync: where the money came from and what the bank still
	// owes.
	Paid *Paid `json:"paid,omitempty"`
}

// Paid is a payment's settlement, from the ledger's record (statepb.
// Settlement): the payee got FromEscrow + FromPayer + FromGuarantee +
// FromReserve at deposit, PaidLater from its bank since, and the bank owes
// it Unpaid (claim ClaimSeq). Bank is the bank that certified the payer's
// purse: the one liable.
type Paid struct {
	Bank          string `json:"bank"`
	FromEscrow    uint64 `json:"from_escrow_fen"`
	FromPayer     uint64 `json:"from_payer_fen"`
	FromGuarantee uint64 `json:"from_guarantee_fen"`
	FromReserve   uint64 `json:"from_reserve_fen"`
	PaidLater     uint64 `json:"paid_later_fen"`
	Unpaid        uint64 `json:"unpaid_fen"`
	ClaimSeq      uint64 `json:"claim_seq,omitempty"`
}

// PaidOf is a settlement as the device keeps it.
func PaidOf(s *statepb.Settlement) *Paid {
	return &Paid{Bank: s.GetBankId(), FromEscrow: s.GetFromEscrowFen(), FromPayer: s.GetFromPayerFen(), FromGuarantee: s.GetFromGuaranteeFen(),
		FromReserve: s.GetFromReserveFen(), PaidLater: s.GetPaidLaterFen(), Unpaid: s.GetUnpaidFen(), ClaimSeq: s.GetClaimSeq()}
}

// TotalFen is what the payee has been paid so far.
func (p *Paid) TotalFen() uint64 {
	return p.FromEscrow + p.FromPayer + p.FromGuarantee + p.FromReserve + p.PaidLater // ≤ the amount
}

// Request is a payment request the device issued and has not been paid.
type Request struct {
	Nonce    []byte `json:"nonce"`
	Amount   uint64 `json:"amount_fen"`
	Merchant string `json:"merchant_id,omitempty"`
	TimeMs   int64  `json:"time_ms"`
}

// Revocations is the revocation list as synced.
type Revocations struct {
	// Index is the last revocation index synced.
	Index uint64   `json:"index"`
	Keys  [][]byte `json:"keys"`
}

// file is the device file's content.
type file struct {
	Format      string `json:"format"`
	ChainID     string `json:"chain_id"`
	GenesisHash []byte `json:"genesis_hash"`
	// Genesis is the serialized network genesis: the banks' keys the device
	// checks certificates against, offline.
	Genesis []byte `json:"genesis"`
	// Seed is the device key (the secure element's secret).
	Seed     []byte `json:"seed"`
	WalletID string `json:"wallet_id"`
	Revoked  bool   `json:"revoked,omitempty"`

	Purses      []*Purse          `json:"purses"`
	Requests    []*Request        `json:"requests"`
	Sent        []*Sent           `json:"sent"`
	Received    []*Received       `json:"received"`
	LastSeen    map[string]uint32 `json:"last_seen"` // purse id (hex) → highest counter accepted
	Revocations Revocations       `json:"revocations"`
}

// Device is an open device file. It is not safe for concurrent use; the
// file lock keeps other processes out.
type Device struct {
	path string
	lock *os.File
	f    file
	key  ed25519.PrivateKey
	net  *offline.Network
	// Now is the device's clock (default time.Now).
	Now func() time.Time
}

// Create makes a new device file at path for the network of genesis g,
// with a new key; received money is deposited to walletID. It fails if the
// file exists.
func Create(path string, g *statepb.Genesis, walletID string) (*Device, error) {
	if err := statepb.ValidateID("wallet", walletID); err != nil {
		return nil, err
	}
	h, err := state.GenesisHash(g)
	if err != nil {
		return nil, err
	}
	graw, err := proto.MarshalOptions{Deterministic: true}.Marshal(g)
	if err != nil {
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	d := &Device{path: path, Now: time.Now}
	d.f = file{Format: Format, ChainID: g.GetChainId(), GenesisHash: h[:], Genesis: graw, Seed: seed, WalletID: walletID, LastSeen: map[string]uint32{}}
	if err := d.init(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("device file %s already exists", path)
	}
	if err := d.acquire(); err != nil {
		return nil, err
	}
	if err := d.save(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Open opens and locks a device file.
func Open(path string) (*Device, error) {
	d := &Device{path: path, Now: time.Now}
	if err := d.acquire(); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(raw, &d.f)
	}
	if err == nil {
		err = d.init()
	}
	if err != nil {
		d.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no device file at %s: %w", path, err)
		}
		return nil, fmt.Errorf("%s: %w: %v", path, ErrFormat, err)
	}
	return d, nil
}

// init checks the file and derives the key and network.
func (d *Device) init() error {
	if d.f.Format != Format {
		return fmt.Errorf("format %q (want %q)", d.f.Format, Format)
	}
	if len(d.f.Seed) != ed25519.SeedSize {
		return fmt.Errorf("seed of %d bytes", len(d.f.Seed))
	}
	var g statepb.Genesis
	if err := proto.Unmarshal(d.f.Genesis, &g); err != nil {
		return fmt.Errorf("genesis: %v", err)
	}
	h, err := state.GenesisHash(&g)
	if err != nil || !bytes.Equal(h[:], d.f.GenesisHash) || g.GetChainId() != d.f.ChainID {
		return fmt.Errorf("genesis does not match its hash")
	}
	d.key = ed25519.NewKeyFromSeed(d.f.Seed)
	d.net = offline.NewNetwork(&g, h)
	if d.f.LastSeen == nil {
		d.f.LastSeen = map[string]uint32{}
	}
	return nil
}

// acquire takes the advisory lock FILE.lock.
func (d *Device) acquire() error {
	lf, err := os.OpenFile(d.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return fmt.Errorf("%s: %w", d.path, ErrLocked)
	}
	d.lock = lf
	return nil
}

// Close releases the file lock.
func (d *Device) Close() {
	if d.lock != nil {
		_ = syscall.Flock(int(d.lock.Fd()), syscall.LOCK_UN)
		_ = d.lock.Close()
		d.lock = nil
	}
}

// save writes the file atomically: temp file, fsync, rename, fsync dir.
func (d *Device) save() error {
	raw, err := json.MarshalIndent(&d.f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(d.path)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(d.path)+"-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := saveHook(); err != nil {
		return err
	}
	if err := os.Rename(name, d.path); err != nil {
		return err
	}
	ok = true
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	return df.Sync()
}

// saveHook lets tests simulate a crash before the rename.
var saveHook = func() error { return nil }

func (d *Device) nowMs() int64 { return d.Now().UnixMilli() }

// PublicKey is the device's public key: its identity as a payee.
func (d *Device) PublicKey() ed25519.PublicKey { return d.key.Public().(ed25519.PublicKey) }

// Key is the device's private key (it signs payments, receipts, deposits
// and closes).
func (d *Device) Key() ed25519.PrivateKey { return d.key }

// Network is the device's network context.
func (d *Device) Network() *offline.Network { return d.net }

// WalletID is where the device deposits received money.
func (d *Device) WalletID() string { return d.f.WalletID }

// ChainID is the network's chain id.
func (d *Device) ChainID() string { return d.f.ChainID }

// Path is the device file.
func (d *Device) Path() string { return d.path }

// Revoked reports whether the ledger revoked this device (at the last sync).
func (d *Device) Revoked() bool { return d.f.Revoked }

// Purses, Sent, Received, Requests and RevocationList return the device's
// records (do not modify them).
func (d *Device) Purses() []*Purse             { return d.f.Purses }
func (d *Device) Sent() []*Sent                { return d.f.Sent }
func (d *Device) Received() []*Received        { return d.f.Received }
func (d *Device) Requests() []*Request         { return d.f.Requests }
func (d *Device) RevocationList() *Revocations { return &d.f.Revocations }

func (d *Device) purse(id []byte) *Purse {
	for _, p := range d.f.Purses {
		if bytes.Equal(p.ID, id) {
			return p
		}
	}
	return nil
}

// --- Offline: request, pay, receive, receipt ---

// Request issues a payment request for amountFen with a fresh random nonce
// and keeps it until a payment answers it.
func (d *Device) Request(amountFen uint64, merchantID string) (*statepb.PaymentRequest, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	r := &statepb.PaymentRequest{PayeeDeviceKey: d.PublicKey(), AmountFen: amountFen, Nonce: nonce, MerchantId: merchantID, TimeMs: d.nowMs()}
	if err := offline.ValidateRequest(r); err != nil {
		return nil, err
	}
	d.f.Requests = append(d.f.Requests, &Request{Nonce: nonce, Amount: amountFen, Merchant: merchantID, TimeMs: r.GetTimeMs()})
	if n := len(d.f.Requests); n > maxRequests {
		d.f.Requests = d.f.Requests[n-maxRequests:]
	}
	return r, d.save()
}

// Pay answers a request from a purse on this device: the first open purse
// (in load order) that is not expired by the device's clock and whose caps,
// count and remaining amount allow it. The purse's counter and chain are
// advanced and the file written before the payment is returned, so a crash
// never reuses a counter (a payment lost that way is a torn payment,
// recovered at close).
func (d *Device) Pay(req *statepb.PaymentRequest) (*statepb.Payment, error) {
	if d.f.Revoked {
		return nil, ErrRevoked
	}
	if err := offline.ValidateRequest(req); err != nil {
		return nil, err
	}
	now := d.nowMs()
	var p *Purse
	for _, c := range d.f.Purses {
		if c.Status == PurseOpen && now < c.NotAfterMs && c.Counter < c.MaxPayments &&
			req.GetAmountFen() <= c.MaxPayFen && req.GetAmountFen() <= c.RemainingFen() {
			p = c
			break
		}
	}
	if p == nil {
		return nil, fmt.Errorf("%w: %s (purses: %s)", ErrNoPurse, fen(req.GetAmountFen()), d.purseSummary(now))
	}
	var cert statepb.PurseCert
	if err := proto.Unmarshal(p.Cert, &cert); err != nil {
		return nil, fmt.Errorf("%w: purse certificate: %v", ErrFormat, err)
	}
	prev := p.PrevHash
	if len(prev) == 0 {
		prev = offline.ZeroHash
	}
	pay, h, err := d.net.SignPayment(d.key, &statepb.PaymentBody{
		PurseId: p.ID, Counter: p.Counter + 1, AmountFen: req.GetAmountFen(), PayeeDeviceKey: req.GetPayeeDeviceKey(),
		Nonce: req.GetNonce(), PrevHash: prev, Cert: &cert, MerchantId: req.GetMerchantId(), TimeMs: now,
	})
	if err != nil {
		return nil, err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(pay)
	if err != nil {
		return nil, err
	}
	p.Counter++
	p.PrevHash = h[:]
	p.SpentFen += req.GetAmountFen()
	d.f.Sent = append(d.f.Sent, &Sent{PurseID: p.ID, Counter: p.Counter, Amount: req.GetAmountFen(), PayeeKey: req.GetPayeeDeviceKey(),
		Merchant: req.GetMerchantId(), Hash: h[:], Payment: raw, TimeMs: now})
	if err := d.save(); err != nil {
		return nil, fmt.Errorf("payment not released: %w", err)
	}
	return pay, nil
}

func (d *Device) purseSummary(now int64) string {
	if len(d.f.Purses) == 0 {
		return "none loaded"
	}
	s := ""
	for i, p := range d.f.Purses {
		if i > 0 {
			s += "; "
		}
		st := p.Status
		if st == PurseOpen && now >= p.NotAfterMs {
			st = "expired"
		}
		s += fmt.Sprintf("%x %s, %s left, cap %s, %d/%d payments", p.ID[:4], st, fen(p.RemainingFen()), fen(p.MaxPayFen), p.Counter, p.MaxPayments)
	}
	return s
}

// Receive checks a payment offline as a payee (offline.Network.Verify:
// shape, certificate chain to a bank of the network, the payer device's
// signature, addressed to this device, this device's request nonce and
// amount, caps and count; then not revoked in this device's list, not
// expired by this device's clock, counter above the last one accepted from
// the purse), records it and returns the signed receipt. A refusal is a
// *statepb.Error with the ledger's code.
func (d *Device) Receive(p *statepb.Payment) (*statepb.Receipt, error) {
	dec, err := offline.DecodePayment(p)
	if err != nil {
		return nil, err
	}
	for _, r := range d.f.Received {
		if bytes.Equal(r.Hash, dec.Hash[:]) {
			return nil, statepb.Errorf(statepb.Code_CODE_PAYMENT_REPLAYED, "payment: received already")
		}
	}
	// The request it answers: found by nonce; if none matches, the latest
	// one, so the rules say what is wrong (another device's payment, or a
	// nonce this device never issued).
	reqAt := -1
	for i, r := range d.f.Requests {
		if bytes.Equal(r.Nonce, dec.Body.GetNonce()) {
			reqAt = i
		}
	}
	var req *statepb.PaymentRequest
	switch {
	case reqAt >= 0:
		r := d.f.Requests[reqAt]
		req = &statepb.PaymentRequest{PayeeDeviceKey: d.PublicKey(), AmountFen: r.Amount, Nonce: r.Nonce, MerchantId: r.Merchant, TimeMs: r.TimeMs}
	case len(d.f.Requests) > 0:
		r := d.f.Requests[len(d.f.Requests)-1]
		req = &statepb.PaymentRequest{PayeeDeviceKey: d.PublicKey(), AmountFen: r.Amount, Nonce: r.Nonce}
	default:
		// No request outstanding: a nonce no payment can carry.
		none := make([]byte, offline.MaxNonce+1)
		req = &statepb.PaymentRequest{PayeeDeviceKey: d.PublicKey(), AmountFen: dec.Body.GetAmountFen(), Nonce: none}
	}
	dec, err = d.net.Verify(p, offline.Expect{PayeeKey: d.PublicKey(), Request: req})
	if err != nil {
		return nil, err
	}
	if reqAt < 0 { // unreachable: the nonce matched a request
		return nil, statepb.Errorf(statepb.Code_CODE_PAYMENT_NONCE_MISMATCH, "payment: answers no request of this device")
	}
	if err := offline.CheckRevoked(dec, d.isRevoked); err != nil {
		return nil, err
	}
	if err := offline.CheckExpiry(dec, d.nowMs(), 0); err != nil {
		return nil, err
	}
	if err := offline.CheckFresh(dec, d.f.LastSeen[hex.EncodeToString(dec.Body.GetPurseId())]); err != nil {
		return nil, err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return nil, err
	}
	rraw, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, err
	}
	now := d.nowMs()
	d.f.Received = append(d.f.Received, &Received{Hash: dec.Hash[:], Payment: raw, Request: rraw, RevocationIndex: d.f.Revocations.Index,
		Amount: dec.Body.GetAmountFen(), PayerWallet: dec.Cert.GetWalletId(), TimeMs: now, Status: RecvPending})
	d.f.LastSeen[hex.EncodeToString(dec.Body.GetPurseId())] = dec.Body.GetCounter()
	d.f.Requests = append(d.f.Requests[:reqAt:reqAt], d.f.Requests[reqAt+1:]...)
	if err := d.save(); err != nil {
		return nil, err
	}
	return d.net.SignReceipt(d.key, dec.Hash, now), nil
}

func (d *Device) isRevoked(key []byte) bool {
	for _, k := range d.f.Revocations.Keys {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}

// AddReceipt records a payee's receipt for a payment this device sent.
// With it, the payment's amount stays in escrow at close for the payee.
func (d *Device) AddReceipt(r *statepb.Receipt) (*Sent, error) {
	for _, s := range d.f.Sent {
		if !bytes.Equal(s.Hash, r.GetPaymentHash()) {
			continue
		}
		var h [32]byte
		copy(h[:], s.Hash)
		if err := d.net.VerifyReceipt(r, h, s.PayeeKey); err != nil {
			return nil, err
		}
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			return nil, err
		}
		s.Receipt = raw
		return s, d.save()
	}
	return nil, statepb.Errorf(statepb.Code_CODE_INVALID_FIELD, "receipt: for payment %x, which this device did not send", r.GetPaymentHash())
}

// --- Purses ---

// NewPurseBody is the certificate body of a new purse on this device, with
// a random purse id, for the wallet's bank to sign.
func (d *Device) NewPurseBody(bankID, walletID string, amountFen, maxPaymentFen uint64, maxPayments uint32, notAfter time.Time) (*statepb.PurseCertBody, error) {
	id := make([]byte, offline.PurseIDBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return &statepb.PurseCertBody{
		PurseId: id, BankId: bankID, WalletId: walletID, DevicePublicKey: d.PublicKey(),
		AmountFen: amountFen, MaxPaymentFen: maxPaymentFen, MaxPayments: maxPayments, NotAfterMs: notAfter.UnixMilli(),
	}, nil
}

// AddPurse records a certificate for this device, pending until the ledger
// confirms its open_purse (ConfirmPurse). The certificate must be for this
// device and chain to a bank of the network.
func (d *Device) AddPurse(cert *statepb.PurseCert) (*Purse, error) {
	b, err := d.net.VerifyCert(cert)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(b.GetDevicePublicKey(), d.PublicKey()) {
		return nil, statepb.Errorf(statepb.Code_CODE_CERT_INVALID, "certificate: for device %x, not this one", b.GetDevicePublicKey()[:6])
	}
	if d.purse(b.GetPurseId()) != nil {
		return nil, statepb.Errorf(statepb.Code_CODE_PURSE_EXISTS, "purse %x is on this device already", b.GetPurseId()[:6])
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(cert)
	if err != nil {
		return nil, err
	}
	p := &Purse{ID: b.GetPurseId(), Cert: raw, WalletID: b.GetWalletId(), BankID: b.GetBankId(), AmountFen: b.GetAmountFen(),
		MaxPayFen: b.GetMaxPaymentFen(), MaxPayments: b.GetMaxPayments(), NotAfterMs: b.GetNotAfterMs(), Status: PursePending}
	d.f.Purses = append(d.f.Purses, p)
	return p, d.save()
}

// SetPurseStatus records what the ledger says about a purse.
func (d *Device) SetPurseStatus(id []byte, status string, tx []byte) error {
	p := d.purse(id)
	if p == nil {
		return fmt.Errorf("no purse %x on this device", id)
	}
	p.Status = status
	switch status {
	case PurseOpen:
		p.OpenTx = tx
	case PurseClosed:
		p.CloseTx = tx
	}
	return d.save()
}

// CloseBody is what Unload submits for an open purse: the last counter and
// the payments the device holds receipts for. Payments sent without a
// receipt (torn) are left out, so their amounts come back now.
func (d *Device) CloseBody(id []byte) (final uint32, receipted []*statepb.ReservedPayment, err error) {
	p := d.purse(id)
	if p == nil {
		return 0, nil, fmt.Errorf("no purse %x on this device", id)
	}
	for _, s := range d.f.Sent {
		if bytes.Equal(s.PurseID, id) && len(s.Receipt) > 0 {
			receipted = append(receipted, &statepb.ReservedPayment{Counter: s.Counter, AmountFen: s.Amount, PaymentHash: s.Hash})
		}
	}
	return p.Counter, receipted, nil
}

// Torn lists the payments sent from a purse without a receipt.
func (d *Device) Torn(id []byte) []*Sent {
	var out []*Sent
	for _, s := range d.f.Sent {
		if bytes.Equal(s.PurseID, id) && len(s.Receipt) == 0 {
			out = append(out, s)
		}
	}
	return out
}

func fen(v uint64) string { return state.Fen(v) }
