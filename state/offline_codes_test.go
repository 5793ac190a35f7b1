package state_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

func init() {
	for _, tc := range offlineCodeCases() {
		casesElsewhere[tc.code] = "TestOfflineCodes"
	}
}

// offCodeCase triggers one offline code with one concrete transaction on
// the offline fixture.
type offCodeCase struct {
	name     string
	code     statepb.Code
	field    string
	recorded bool
	tx       func(t *testing.T, f *offFix) []byte
}

func offlineCodeCases() []offCodeCase {
	// open opens a ¥100 purse "p" of alice on alice-phone and returns its
	// certificate.
	open := func(t *testing.T, f *offFix) *statepb.PurseCert {
		return f.purse(t, "p", "alice", "alice-phone", 500*yuan, 100*yuan)
	}
	// payTo is a deposit by bob-phone of a payment under cert changed by edit
	// before signing.
	depositEdited := func(t *testing.T, f *offFix, cert *statepb.PurseCert, signer ed25519.PrivateKey, edit func(b *statepb.PaymentBody, r *statepb.PaymentRequest)) []byte {
		req := f.n.Request("bob-phone", 10*yuan, "r")
		body := &statepb.PaymentBody{PurseId: purseIDOf(t, cert), Counter: 1, AmountFen: 10 * yuan, PayeeDeviceKey: req.GetPayeeDeviceKey(),
			Nonce: req.GetNonce(), PrevHash: offline.ZeroHash, Cert: cert}
		if edit != nil {
			edit(body, req)
		}
		raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(body)
		p := &statepb.Payment{Body: raw, Signature: ed25519.Sign(signer, f.n.Offline().PaymentSignBytes(raw))}
		return f.n.Deposit(t, "bob-phone", "bob", statetest.Item(p, req))
	}
	openWith := func(t *testing.T, f *offFix, edit func(*statetest.Purse), key ed25519.PrivateKey) []byte {
		in := f.c.Fund(t, f.n, "icbc", "alice", 500*yuan)
		spec := f.spec("p", "icbc", "alice", "alice-phone", 100*yuan)
		if edit != nil {
			edit(&spec)
		}
		if key == nil {
			key = f.n.Bank(spec.Bank)
		}
		return f.n.OpenPurse(t, "alice", ins(in), f.n.CertBy(t, key, spec))
	}
	return []offCodeCase{
		{"forged certificate", statepb.Code_CODE_CERT_INVALID, "open_purse.cert", false, func(t *testing.T, f *offFix) []byte {
			return openWith(t, f, nil, f.n.Wallet("alice")) // signed by alice, not icbc
		}},
		{"certificate of another wallet", statepb.Code_CODE_CERT_INVALID, "open_purse.cert: for wallet", true, func(t *testing.T, f *offFix) []byte {
			return openWith(t, f, func(p *statetest.Purse) { p.Wallet = "bob" }, nil)
		}},
		{"certificate of a foreign bank", statepb.Code_CODE_CERT_FOREIGN_BANK, "open_purse.cert", false, func(t *testing.T, f *offFix) []byte {
			return openWith(t, f, func(p *statetest.Purse) { p.Bank = "hsbc" }, f.n.Key("bank/hsbc"))
		}},
		{"certificate expired at open", statepb.Code_CODE_CERT_EXPIRED, "open_purse.cert.not_after_ms", true, func(t *testing.T, f *offFix) []byte {
			return openWith(t, f, func(p *statetest.Purse) { p.NotAfterMs = f.c.TimeMs }, nil)
		}},
		{"purse above the policy", statepb.Code_CODE_PURSE_LIMIT, "open_purse.cert.amount_fen", true, func(t *testing.T, f *offFix) []byte {
			return openWith(t, f, func(p *statetest.Purse) { p.AmountFen = 6_000 * yuan }, nil)
		}},
		{"revoked device opens a purse", statepb.Code_CODE_DEVICE_REVOKED, "open_purse.cert.device_public_key", true, func(t *testing.T, f *offFix) []byte {
			d := newDoubleSpend(t, f, 500*yuan)
			mustAllOK(t, f.c.Apply(t, f.n.Deposit(t, "bob-phone", "bob", d.toBob), f.n.Deposit(t, "carol-phone", "carol", d.toCar)))
			in := f.c.Fund(t, f.n, "boc", "dave", 500*yuan)
			return f.n.OpenPurse(t, "dave", ins(in), f.n.Cert(t, f.spec("p9", "boc", "dave", "alice-phone", 100*yuan)))
		}},
		{"malformed payment", statepb.Code_CODE_PAYMENT_MALFORMED, "deposit_offline.items[0]", false, func(t *testing.T, f *offFix) []byte {
			req := f.n.Request("bob-phone", 10*yuan, "r")
			return f.n.Deposit(t, "bob-phone", "bob", statetest.Item(&statepb.Payment{Body: []byte{0xff, 0x01}, Signature: make([]byte, 64)}, req))
		}},
		{"payment signed by another device", statepb.Code_CODE_PAYMENT_SIGNATURE_INVALID, "deposit_offline.items[0]", false, func(t *testing.T, f *offFix) []byte {
			return depositEdited(t, f, open(t, f), f.n.Device("mallory"), nil)
		}},
		{"payment redirected to another device", statepb.Code_CODE_PAYMENT_WRONG_PAYEE, "deposit_offline.items[0]", false, func(t *testing.T, f *offFix) []byte {
			item, _ := f.pay(t, "alice-phone", open(t, f), 1, nil, "carol-phone", 10*yuan, "r")
			return f.n.Deposit(t, "bob-phone", "bob", item) // bob's device deposits carol's payment
		}},
		{"payment with another nonce", statepb.Code_CODE_PAYMENT_NONCE_MISMATCH, "deposit_offline.items[0]", false, func(t *testing.T, f *offFix) []byte {
			return depositEdited(t, f, open(t, f), f.n.Device("alice-phone"), func(b *statepb.PaymentBody, _ *statepb.PaymentRequest) {
				b.Nonce = make([]byte, 16)
			})
		}},
		{"payment of another amount", statepb.Code_CODE_PAYMENT_AMOUNT_MISMATCH, "deposit_offline.items[0]", false, func(t *testing.T, f *offFix) []byte {
			return depositEdited(t, f, open(t, f), f.n.Device("alice-phone"), func(b *statepb.PaymentBody, _ *statepb.PaymentRequest) {
				b.AmountFen = 9 * yuan
			})
		}},
		{"payment over the per-payment cap", statepb.Code_CODE_PAYMENT_OVER_CAP, "deposit_offline.items[0]", false, func(t *testing.T, f *offFix) []byte {
			return depositEdited(t, f, open(t, f), f.n.Device("alice-phone"), func(b *statepb.PaymentBody, r *statepb.PaymentRequest) {
				b.AmountFen, r.AmountFen = 100*yuan+1, 100*yuan+1
			})
		}},
		{"payment over the count", statepb.Code_CODE_PAYMENT_OVER_COUNT, "deposit_offline.items[0]", false, func(t *testing.T, f *offFix) []byte {
			return depositEdited(t, f, open(t, f), f.n.Device("alice-phone"), func(b *statepb.PaymentBody, _ *statepb.PaymentRequest) {
				b.Counter = 11
			})
		}},
		{"payment deposited again", statepb.Code_CODE_PAYMENT_REPLAYED, "deposit_offline.items[0]", true, func(t *testing.T, f *offFix) []byte {
			item, _ := f.pay(t, "alice-phone", open(t, f), 1, nil, "bob-phone", 10*yuan, "r")
			f.c.MustOK(t, f.n.Deposit(t, "bob-phone", "bob", item))
			return f.n.Deposit(t, "bob-phone", "bob", item)
		}},
		{"guarantee below the cover ratio", statepb.Code_CODE_GUARANTEE_SHORT, "open_purse.cert.amount_fen: bank ccb's guarantee wallet", true, func(t *testing.T, f *offFix) []byte {
			mustAllOK(t, f.c.Apply(t, f.n.Register(t, "ccb", "gus", personal, 1, "")))
			in := f.c.Fund(t, f.n, "ccb", "gus", 500*yuan)
			return f.n.OpenPurse(t, "gus", ins(in), f.n.Cert(t, f.spec("p", "ccb", "gus", "gus-phone", 100*yuan)))
		}},
		{"bank owing unpaid claims", statepb.Code_CODE_GUARANTEE_SHORT, "open_purse.cert.bank_id: bank abc owes payees", true, func(t *testing.T, f *offFix) []byte {
			newBankAttack(t, f, "abc", "eve", 10*yuan, 0) // abc owes carol ¥90
			mustAllOK(t, f.c.Apply(t, f.n.Register(t, "abc", "finn", personal, 1, "")))
			in := f.c.Fund(t, f.n, "abc", "finn", 500*yuan) // the reserve is empty again within the block
			f.c.Apply(t)                                    // the claims job it woke finds nothing to pay
			return f.n.OpenPurse(t, "finn", ins(in), f.n.Cert(t, f.spec("p", "abc", "finn", "finn-phone", 10*yuan)))
		}},
		{"closing an unknown purse", statepb.Code_CODE_PURSE_NOT_FOUND, "close_purse.purse_id", false, func(t *testing.T, f *offFix) []byte {
			return f.n.ClosePurse(t, "alice-phone", statetest.PurseID("nope"), 0)
		}},
		{"opening a purse twice", statepb.Code_CODE_PURSE_EXISTS, "open_purse.cert.purse_id", true, func(t *testing.T, f *offFix) []byte {
			cert := open(t, f)
			in := f.c.Fund(t, f.n, "icbc", "alice", 500*yuan)
			return f.n.OpenPurse(t, "alice", ins(in), cert)
		}},
		{"closing a closed purse", statepb.Code_CODE_PURSE_CLOSED, "close_purse.purse_id", true, func(t *testing.T, f *offFix) []byte {
			cert := open(t, f)
			f.c.MustOK(t, f.n.ClosePurse(t, "alice-phone", purseIDOf(t, cert), 0))
			return f.n.ClosePurse(t, "alice-phone", purseIDOf(t, cert), 0)
		}},
		{"closing below a deposited counter", statepb.Code_CODE_PURSE_CLOSE_INVALID, "close_purse.final_counter", true, func(t *testing.T, f *offFix) []byte {
			cert := open(t, f)
			item, _ := f.pay(t, "alice-phone", cert, 2, nil, "bob-phone", 10*yuan, "r")
			f.c.MustOK(t, f.n.Deposit(t, "bob-phone", "bob", item))
			return f.n.ClosePurse(t, "alice-phone", purseIDOf(t, cert), 1)
		}},
	}
}

// TestOfflineCodes triggers every offline code with a concrete transaction
// and checks that a rejection changes nothing but its recorded outcome (if
// recorded), and that a recorded one comes back as a duplicate.
func TestOfflineCodes(t *testing.T) {
	for _, tc := range offlineCodeCases() {
		t.Run(tc.code.Short()+"/"+tc.name, func(t *testing.T) {
			f := newOffFix(t)
			raw := tc.tx(t, f)
			before := snapshotLedger(t, f.s)
			r := f.c.Apply(t, raw)[0]
			wantCode(t, r, tc.code)
			if !strings.Contains(r.GetMessage(), tc.field) {
				t.Errorf("message %q does not name %q", r.GetMessage(), tc.field)
			}
			wantUnchanged(t, before, snapshotLedger(t, f.s), r.GetTxId(), tc.recorded)
			_, err := f.s.Tx(r.GetTxId())
			switch {
			case !tc.recorded && !errors.Is(err, state.ErrNotFound):
				t.Fatalf("unrecorded rejection is recorded: %v", err)
			case tc.recorded && err != nil:
				t.Fatalf("recorded rejection: %v", err)
			case tc.recorded:
				again := f.c.Apply(t, raw)[0]
				if !again.GetDuplicate() || again.GetCode() != tc.code {
					t.Fatalf("resubmission: %v", again)
				}
			}
		})
	}
}

// TestEveryOfflineCodeHasACase: every code in 80–99 is triggered by
// TestOfflineCodes.
func TestEveryOfflineCodeHasACase(t *testing.T) {
	covered := map[statepb.Code]bool{}
	for _, tc := range offlineCodeCases() {
		covered[tc.code] = true
	}
	for n := range statepb.Code_name {
		if c := statepb.Code(n); c >= 80 && c <= 99 && !covered[c] {
			t.Errorf("%s has no case in offlineCodeCases", c.Short())
		}
	}
}

// decodeVerified decodes a payment and verifies its certificate and the
// device's signature.
func decodeVerified(net *offline.Network, p *statepb.Payment) (*offline.Decoded, error) {
	d, err := offline.DecodePayment(p)
	if err != nil {
		return nil, err
	}
	if _, err := net.VerifyCert(d.Body.GetCert()); err != nil {
		return nil, err
	}
	if !ed25519.Verify(d.Cert.GetDevicePublicKey(), net.PaymentSignBytes(p.GetBody()), p.GetSignature()) {
		return nil, errors.New("payment signature does not verify")
	}
	return d, nil
}

func hashOf(b []byte) [32]byte { return sha256.Sum256(b) }
