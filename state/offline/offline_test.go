package offline_test

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

const yuan = 100

// world is a network with offline payments, a ¥100 purse of alice on
// alice-phone (10 payments of at most ¥50, not after t=1,000,000 ms) and a
// request of bob-phone for ¥10.
type world struct {
	n    *statetest.Net
	net  *offline.Network
	cert *statepb.PurseCert
	req  *statepb.PaymentRequest
	bob  []byte
}

func newWorld(t testing.TB) *world {
	n := statetest.NewNet(t, "offline-rules")
	n.EnableOffline(t, nil)
	w := &world{n: n, net: n.Offline(), bob: n.DevicePub("bob-phone")}
	w.cert = n.Cert(t, spec())
	w.req = n.Request("bob-phone", 10*yuan, "r1")
	return w
}

func spec() statetest.Purse {
	return statetest.Purse{Name: "p", Bank: "icbc", Wallet: "alice", Device: "alice-phone", AmountFen: 100 * yuan, MaxPaymentFen: 50 * yuan, MaxPayments: 10, NotAfterMs: 1_000_000}
}

// payment signs a payment answering w.req, after edit.
func (w *world) payment(t testing.TB, key ed25519.PrivateKey, edit func(*statepb.PaymentBody)) *statepb.Payment {
	t.Helper()
	body := &statepb.PaymentBody{PurseId: statetest.PurseID("p"), Counter: 1, AmountFen: w.req.GetAmountFen(), PayeeDeviceKey: w.req.GetPayeeDeviceKey(),
		Nonce: w.req.GetNonce(), PrevHash: offline.ZeroHash, Cert: w.cert}
	if edit != nil {
		edit(body)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return &statepb.Payment{Body: raw, Signature: ed25519.Sign(key, w.net.PaymentSignBytes(raw))}
}

func wantCode(t testing.TB, err error, code statepb.Code) {
	t.Helper()
	if got := statepb.CodeOf(err); got != code {
		t.Fatalf("got %v (%v), want %s", got.Short(), err, code.Short())
	}
}

func TestVerifyCert(t *testing.T) {
	w := newWorld(t)
	b, err := w.net.VerifyCert(w.cert)
	if err != nil || b.GetWalletId() != "alice" || b.GetAmountFen() != 100*yuan {
		t.Fatalf("valid certificate: %v %v", b, err)
	}
	forged := w.n.CertBy(t, w.n.Wallet("alice"), spec())
	_, err = w.net.VerifyCert(forged)
	wantCode(t, err, statepb.Code_CODE_CERT_INVALID)
	s := spec()
	s.Bank = "hsbc"
	_, err = w.net.VerifyCert(w.n.CertBy(t, w.n.Key("hsbc"), s))
	wantCode(t, err, statepb.Code_CODE_CERT_FOREIGN_BANK)
	// The same bank id and key, on another network (other genesis).
	other := statetest.NewNet(t, "other-network")
	other.EnableOffline(t, nil)
	_, err = w.net.VerifyCert(other.CertBy(t, w.n.Bank("icbc"), spec()))
	wantCode(t, err, statepb.Code_CODE_CERT_INVALID)
	// Altered after signing.
	var body statepb.PurseCertBody
	_ = proto.Unmarshal(w.cert.GetBody(), &body)
	body.AmountFen *= 10
	raw, _ := proto.Marshal(&body)
	_, err = w.net.VerifyCert(&statepb.PurseCert{Body: raw, Signature: w.cert.GetSignature()})
	wantCode(t, err, statepb.Code_CODE_CERT_INVALID)
	// Shapes.
	for name, edit := range map[string]func(*statetest.Purse){
		"zero amount":        func(p *statetest.Purse) { p.AmountFen = 0 },
		"cap above amount":   func(p *statetest.Purse) { p.MaxPaymentFen = p.AmountFen + 1 },
		"no payments":        func(p *statetest.Purse) { p.MaxPayments = 0 },
		"no expiry":          func(p *statetest.Purse) { p.NotAfterMs = 0 },
		"wallet not an id":   func(p *statetest.Purse) { p.Wallet = "Alice!" },
		"bank not an id":     func(p *statetest.Purse) { p.Bank = "" },
		"missing wallet key": nil,
	} {
		s := spec()
		if edit == nil {
			_, err := offline.DecodeCert(nil)
			wantCode(t, err, statepb.Code_CODE_CERT_INVALID)
			continue
		}
		edit(&s)
		if _, err := w.net.SignCert(w.n.Bank("icbc"), w.n.CertBody(s)); statepb.CodeOf(err) != statepb.Code_CODE_CERT_INVALID {
			t.Errorf("%s: SignCert gave %v", name, err)
		}
	}
}

// TestVerifyRules: each rule refuses with its code, in the documented
// order.
func TestVerifyRules(t *testing.T) {
	w := newWorld(t)
	alice := w.n.Device("alice-phone")
	want := offline.Expect{PayeeKey: w.bob, Request: w.req}
	d, err := w.net.Verify(w.payment(t, alice, nil), want)
	if err != nil || d.Body.GetAmountFen() != 10*yuan || d.Hash != offline.Hash(d.Payment.GetBody()) {
		t.Fatalf("valid payment: %v %v", d, err)
	}
	cases := []struct {
		name string
		p    *statepb.Payment
		want offline.Expect
		code statepb.Code
	}{
		{"garbage body", &statepb.Payment{Body: []byte{0xff}, Signature: make([]byte, 64)}, want, statepb.Code_CODE_PAYMENT_MALFORMED},
		{"short signature", &statepb.Payment{Body: []byte{1}, Signature: make([]byte, 10)}, want, statepb.Code_CODE_PAYMENT_MALFORMED},
		{"short nonce", w.payment(t, alice, func(b *statepb.PaymentBody) { b.Nonce = b.Nonce[:8] }), want, statepb.Code_CODE_PAYMENT_MALFORMED},
		{"no prev hash", w.payment(t, alice, func(b *statepb.PaymentBody) { b.PrevHash = nil }), want, statepb.Code_CODE_PAYMENT_MALFORMED},
		{"certificate of another purse", w.payment(t, alice, func(b *statepb.PaymentBody) { b.PurseId = statetest.PurseID("q") }), want, statepb.Code_CODE_CERT_INVALID},
		{"forged certificate", w.payment(t, alice, func(b *statepb.PaymentBody) { b.Cert = w.n.CertBy(t, alice, spec()) }), want, statepb.Code_CODE_CERT_INVALID},
		{"signed by another device", w.payment(t, w.n.Device("clone"), nil), want, statepb.Code_CODE_PAYMENT_SIGNATURE_INVALID},
		{"redirected to another device", w.payment(t, alice, nil), offline.Expect{PayeeKey: w.n.DevicePub("mallory"), Request: w.req}, statepb.Code_CODE_PAYMENT_WRONG_PAYEE},
		{"another nonce", w.payment(t, alice, func(b *statepb.PaymentBody) { b.Nonce = bytes.Repeat([]byte{7}, 16) }), want, statepb.Code_CODE_PAYMENT_NONCE_MISMATCH},
		{"another amount", w.payment(t, alice, func(b *statepb.PaymentBody) { b.AmountFen = 11 * yuan }), want, statepb.Code_CODE_PAYMENT_AMOUNT_MISMATCH},
		{"counter zero", w.payment(t, alice, func(b *statepb.PaymentBody) { b.Counter = 0 }), want, statepb.Code_CODE_PAYMENT_OVER_COUNT},
		{"counter above the count", w.payment(t, alice, func(b *statepb.PaymentBody) { b.Counter = 11 }), want, statepb.Code_CODE_PAYMENT_OVER_COUNT},
	}
	big := w.n.Request("bob-phone", 60*yuan, "big")
	cases = append(cases, struct {
		name string
		p    *statepb.Payment
		want offline.Expect
		code statepb.Code
	}{"over the per-payment cap", w.payment(t, alice, func(b *statepb.PaymentBody) { b.AmountFen, b.Nonce = 60*yuan, big.GetNonce() }),
		offline.Expect{PayeeKey: w.bob, Request: big}, statepb.Code_CODE_PAYMENT_OVER_CAP})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.net.Verify(tc.p, tc.want)
			wantCode(t, err, tc.code)
		})
	}
}

func TestStateRules(t *testing.T) {
	w := newWorld(t)
	d, err := w.net.Verify(w.payment(t, w.n.Device("alice-phone"), func(b *statepb.PaymentBody) { b.Counter = 3 }), offline.Expect{PayeeKey: w.bob, Request: w.req})
	if err != nil {
		t.Fatal(err)
	}
	// Revocation: by the checker's own notion.
	if err := offline.CheckRevoked(d, func([]byte) bool { return false }); err != nil {
		t.Fatal(err)
	}
	wantCode(t, offline.CheckRevoked(d, func(k []byte) bool { return bytes.Equal(k, w.n.DevicePub("alice-phone")) }), statepb.Code_CODE_DEVICE_REVOKED)
	// Expiry: a device (grace 0) refuses at not_after; the ledger at
	// not_after + grace.
	if err := offline.CheckExpiry(d, 999_999, 0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, offline.CheckExpiry(d, 1_000_000, 0), statepb.Code_CODE_CERT_EXPIRED)
	if err := offline.CheckExpiry(d, 1_000_000+4_999, 5_000); err != nil {
		t.Fatal(err)
	}
	wantCode(t, offline.CheckExpiry(d, 1_005_000, 5_000), statepb.Code_CODE_CERT_EXPIRED)
	if got := offline.Deadline(d.Cert, 1<<63-1000); got != 1<<63-1 {
		t.Fatalf("deadline saturates: %d", got)
	}
	// Replay: the counter must be above the last one seen from the purse.
	if err := offline.CheckFresh(d, 2); err != nil {
		t.Fatal(err)
	}
	wantCode(t, offline.CheckFresh(d, 3), statepb.Code_CODE_PAYMENT_REPLAYED)
}

func TestReceipts(t *testing.T) {
	w := newWorld(t)
	h := offline.Hash([]byte("payment"))
	r := w.net.SignReceipt(w.n.Device("bob-phone"), h, 42)
	if err := w.net.VerifyReceipt(r, h, w.bob); err != nil {
		t.Fatal(err)
	}
	wantCode(t, w.net.VerifyReceipt(r, offline.Hash([]byte("other")), w.bob), statepb.Code_CODE_INVALID_FIELD)
	wantCode(t, w.net.VerifyReceipt(r, h, w.n.DevicePub("carol-phone")), statepb.Code_CODE_PAYMENT_WRONG_PAYEE)
	forged := w.net.SignReceipt(w.n.Device("mallory"), h, 42)
	forged.PayeeDeviceKey = w.bob
	wantCode(t, w.net.VerifyReceipt(forged, h, w.bob), statepb.Code_CODE_SIGNATURE_INVALID)
	r.TimeMs++
	wantCode(t, w.net.VerifyReceipt(r, h, w.bob), statepb.Code_CODE_SIGNATURE_INVALID)
}

// TestDomains: a signature for one purpose is never valid for another.
func TestDomains(t *testing.T) {
	w := newWorld(t)
	body := []byte("same bytes")
	if bytes.Equal(w.net.CertSignBytes(body), w.net.PaymentSignBytes(body)) {
		t.Fatal("two domains sign the same bytes")
	}
	if !bytes.HasPrefix(w.net.CertSignBytes(body), []byte(offline.DomainCert)) || !bytes.HasPrefix(w.net.PaymentSignBytes(body), []byte(offline.DomainPayment)) {
		t.Fatal("domain tag missing")
	}
}

func TestMessages(t *testing.T) {
	w := newWorld(t)
	p := w.payment(t, w.n.Device("alice-phone"), nil)
	for _, m := range seedMessages(t, w) {
		raw, err := offline.EncodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := offline.DecodeMessage(raw)
		if err != nil || !proto.Equal(got, m) {
			t.Fatalf("round trip: %v %v", got, err)
		}
	}
	unknown := protowire.AppendTag(nil, 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 1)
	raw, _ := offline.EncodeMessage(&statepb.OfflineMessage{Message: &statepb.OfflineMessage_Payment{Payment: p}})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"no message":     {},
		"too large":      make([]byte, offline.MaxMessageBytes+1),
		"unknown field":  append(append([]byte(nil), raw...), unknown...),
		"not a protobuf": {0xff, 0xff, 0xff},
	} {
		if _, err := offline.DecodeMessage(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func seedMessages(t testing.TB, w *world) []*statepb.OfflineMessage {
	p := w.payment(t, w.n.Device("alice-phone"), nil)
	return []*statepb.OfflineMessage{
		{Message: &statepb.OfflineMessage_Request{Request: w.req}},
		{Message: &statepb.OfflineMessage_Payment{Payment: p}},
		{Message: &statepb.OfflineMessage_Receipt{Receipt: w.net.SignReceipt(w.n.Device("bob-phone"), offline.Hash(p.GetBody()), 7)}},
	}
}

// FuzzDecodeMessage feeds arbitrary bytes to the decoder devices run on
// what another device sends them, and to verification: neither may panic;
// what decodes re-encodes to a message that decodes equal; a payment that
// decodes is verified without panicking. Plain `go test` runs the seed
// corpus in testdata/fuzz/FuzzDecodeMessage (rewrite it with
// `go test ./state/offline -run TestWriteFuzzCorpus -fuzz.writecorpus`);
// fuzz with `go test ./state/offline -run '^$' -fuzz FuzzDecodeMessage`.
func FuzzDecodeMessage(f *testing.F) {
	w := newWorld(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := offline.DecodeMessage(b)
		if err != nil {
			if statepb.CodeOf(err) == statepb.Code_CODE_UNSPECIFIED {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		raw, err := offline.EncodeMessage(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := offline.DecodeMessage(raw)
		if err != nil || !proto.Equal(again, m) {
			t.Fatalf("re-decode: %v", err)
		}
		switch k := m.GetMessage().(type) {
		case *statepb.OfflineMessage_Payment:
			_, _ = w.net.Verify(k.Payment, offline.Expect{PayeeKey: w.bob, Request: w.req})
		case *statepb.OfflineMessage_Receipt:
			_ = w.net.VerifyReceipt(k.Receipt, offline.Hash(nil), w.bob)
		}
	})
}

var writeCorpus = flag.Bool("fuzz.writecorpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzDecodeMessage")

// TestWriteFuzzCorpus writes the seed corpus (only with -fuzz.writecorpus):
// each message kind, truncations, bit flips and a payment whose
// certificate is foreign.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -fuzz.writecorpus to rewrite the seed corpus")
	}
	w := newWorld(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeMessage")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{}
	for i, m := range seedMessages(t, w) {
		raw, err := offline.EncodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		seeds[fmt.Sprintf("seed-%d", i)] = raw
		seeds[fmt.Sprintf("seed-%d-truncated", i)] = raw[:len(raw)/2]
		flipped := append([]byte(nil), raw...)
		flipped[len(flipped)/3] ^= 0x40
		seeds[fmt.Sprintf("seed-%d-flipped", i)] = flipped
	}
	s := spec()
	s.Bank = "hsbc"
	foreign := w.payment(t, w.n.Device("alice-phone"), func(b *statepb.PaymentBody) { b.Cert = w.n.CertBy(t, w.n.Key("hsbc"), s) })
	raw, _ := offline.EncodeMessage(&statepb.OfflineMessage{Message: &statepb.OfflineMessage_Payment{Payment: foreign}})
	seeds["seed-foreign-cert"] = raw
	seeds["seed-empty"] = nil
	for name, b := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
