package device

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

const yuan = 100

// Offline tests of the device: no node. Purses are certified with the test
// network's bank keys and marked open by hand (the ledger's part is tested
// in cluster_test.go).

var clockStart = time.UnixMilli(statetest.GenesisTimeMs)

type rig struct {
	t   *testing.T
	n   *statetest.Net
	dir string
	now time.Time
}

func newRig(t *testing.T) *rig {
	n := statetest.NewNet(t, "device")
	n.EnableOffline(t, nil)
	return &rig{t: t, n: n, dir: t.TempDir(), now: clockStart}
}

func (r *rig) device(name, wallet string) *Device {
	r.t.Helper()
	d, err := Create(filepath.Join(r.dir, name+".dev"), r.n.Genesis, wallet)
	if err != nil {
		r.t.Fatal(err)
	}
	d.Now = func() time.Time { return r.now }
	r.t.Cleanup(d.Close)
	return d
}

// load certifies a purse for d (bank icbc) and marks it open.
func (r *rig) load(d *Device, amount, maxPay uint64, count uint32) *Purse {
	r.t.Helper()
	body, err := d.NewPurseBody("icbc", d.WalletID(), amount, maxPay, count, r.now.Add(24*time.Hour))
	if err != nil {
		r.t.Fatal(err)
	}
	cert, err := d.Network().SignCert(r.n.Bank("icbc"), body)
	if err != nil {
		r.t.Fatal(err)
	}
	p, err := d.AddPurse(cert)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := d.SetPurseStatus(p.ID, PurseOpen, nil); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// pay runs one touch: payee requests, payer pays, payee receives, payer
// takes the receipt.
func (r *rig) pay(payer, payee *Device, fen uint64) (*statepb.Payment, *statepb.Receipt) {
	r.t.Helper()
	req, err := payee.Request(fen, "")
	if err != nil {
		r.t.Fatal(err)
	}
	p, err := payer.Pay(req)
	if err != nil {
		r.t.Fatal(err)
	}
	rc, err := payee.Receive(p)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := payer.AddReceipt(rc); err != nil {
		r.t.Fatal(err)
	}
	return p, rc
}

func wantCode(t *testing.T, err error, code statepb.Code) {
	t.Helper()
	if statepb.CodeOf(err) != code {
		t.Fatalf("got %v, want %s", err, code.Short())
	}
}

func TestPayAndReceive(t *testing.T) {
	r := newRig(t)
	alice, bob := r.device("alice", "alice"), r.device("bob", "bob")
	p := r.load(alice, 100*yuan, 50*yuan, 10)
	pay1, _ := r.pay(alice, bob, 30*yuan)
	pay2, _ := r.pay(alice, bob, 20*yuan)
	if p.Counter != 2 || p.SpentFen != 50*yuan || p.RemainingFen() != 50*yuan {
		t.Fatalf("purse after two payments: %+v", p)
	}
	// The hash chain: payment 2's prev is payment 1's hash.
	var b2 statepb.PaymentBody
	_ = proto.Unmarshal(pay2.GetBody(), &b2)
	if h := offline.Hash(pay1.GetBody()); !bytes.Equal(b2.GetPrevHash(), h[:]) || b2.GetCounter() != 2 {
		t.Fatal("payment 2 does not chain to payment 1")
	}
	if len(bob.Received()) != 2 || bob.Received()[0].Status != RecvPending || bob.Received()[0].Amount != 30*yuan {
		t.Fatalf("received: %+v", bob.Received())
	}
	for _, s := range alice.Sent() {
		if len(s.Receipt) == 0 {
			t.Fatal("receipt not recorded")
		}
	}
	// Everything survives reopening.
	bob.Close()
	again, err := Open(bob.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if len(again.Received()) != 2 || !bytes.Equal(again.PublicKey(), bob.PublicKey()) {
		t.Fatal("reopened device lost its records")
	}
	fi, _ := os.Stat(bob.Path())
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("device file mode %v", fi.Mode())
	}
}

func TestLocked(t *testing.T) {
	r := newRig(t)
	d := r.device("alice", "alice")
	if _, err := Open(d.Path()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

// TestPayeeRefusals: each rule refuses offline with the ledger's code.
func TestPayeeRefusals(t *testing.T) {
	r := newRig(t)
	alice, bob, carol := r.device("alice", "alice"), r.device("bob", "bob"), r.device("carol", "carol")
	r.load(alice, 100*yuan, 50*yuan, 3)
	cert := alice.Purses()[0].Cert
	var c statepb.PurseCert
	_ = proto.Unmarshal(cert, &c)

	// craft signs a payment to bob answering req, edited.
	craft := func(req *statepb.PaymentRequest, key ed25519.PrivateKey, edit func(*statepb.PaymentBody)) *statepb.Payment {
		body := &statepb.PaymentBody{PurseId: alice.Purses()[0].ID, Counter: 1, AmountFen: req.GetAmountFen(), PayeeDeviceKey: req.GetPayeeDeviceKey(),
			Nonce: req.GetNonce(), PrevHash: offline.ZeroHash, Cert: &c}
		if edit != nil {
			edit(body)
		}
		raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(body)
		return &statepb.Payment{Body: raw, Signature: ed25519.Sign(key, alice.Network().PaymentSignBytes(raw))}
	}
	req := func(fen uint64) *statepb.PaymentRequest {
		q, err := bob.Request(fen, "")
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	t.Run("redirected to another device", func(t *testing.T) {
		q, _ := carol.Request(10*yuan, "")
		p, err := alice.Pay(q) // meant for carol
		if err != nil {
			t.Fatal(err)
		}
		_, err = bob.Receive(p)
		wantCode(t, err, statepb.Code_CODE_PAYMENT_WRONG_PAYEE)
	})
	t.Run("wrong nonce", func(t *testing.T) {
		q := req(10 * yuan)
		_, err := bob.Receive(craft(q, alice.Key(), func(b *statepb.PaymentBody) { b.Nonce = bytes.Repeat([]byte{1}, 16) }))
		wantCode(t, err, statepb.Code_CODE_PAYMENT_NONCE_MISMATCH)
	})
	t.Run("another amount", func(t *testing.T) {
		q := req(10 * yuan)
		_, err := bob.Receive(craft(q, alice.Key(), func(b *statepb.PaymentBody) { b.AmountFen = 5 * yuan }))
		wantCode(t, err, statepb.Code_CODE_PAYMENT_AMOUNT_MISMATCH)
	})
	t.Run("forged certificate", func(t *testing.T) {
		q := req(10 * yuan)
		body, _ := offline.DecodeCert(&c)
		forged, _ := alice.Network().SignCert(r.n.Wallet("alice"), body)
		_, err := bob.Receive(craft(q, alice.Key(), func(b *statepb.PaymentBody) { b.Cert = forged }))
		wantCode(t, err, statepb.Code_CODE_CERT_INVALID)
	})
	t.Run("foreign-bank certificate", func(t *testing.T) {
		q := req(10 * yuan)
		body, _ := offline.DecodeCert(&c)
		body.BankId = "hsbc"
		foreign, _ := alice.Network().SignCert(r.n.Key("hsbc"), body)
		_, err := bob.Receive(craft(q, alice.Key(), func(b *statepb.PaymentBody) { b.Cert = foreign }))
		wantCode(t, err, statepb.Code_CODE_CERT_FOREIGN_BANK)
	})
	t.Run("signed by another device", func(t *testing.T) {
		_, err := bob.Receive(craft(req(10*yuan), r.n.Device("mallory"), nil))
		wantCode(t, err, statepb.Code_CODE_PAYMENT_SIGNATURE_INVALID)
	})
	t.Run("over the cap", func(t *testing.T) {
		q := req(60 * yuan)
		if _, err := alice.Pay(q); !errors.Is(err, ErrNoPurse) {
			t.Fatalf("payer made a payment over its cap: %v", err)
		}
		_, err := bob.Receive(craft(q, alice.Key(), nil))
		wantCode(t, err, statepb.Code_CODE_PAYMENT_OVER_CAP)
	})
	t.Run("over the count", func(t *testing.T) {
		_, err := bob.Receive(craft(req(10*yuan), alice.Key(), func(b *statepb.PaymentBody) { b.Counter = 4 }))
		wantCode(t, err, statepb.Code_CODE_PAYMENT_OVER_COUNT)
	})
	t.Run("expired", func(t *testing.T) {
		q := req(10 * yuan)
		p := craft(q, alice.Key(), nil)
		saved := r.now
		r.now = time.UnixMilli(alice.Purses()[0].NotAfterMs)
		defer func() { r.now = saved }()
		_, err := bob.Receive(p)
		wantCode(t, err, statepb.Code_CODE_CERT_EXPIRED)
		if _, err := alice.Pay(req(10 * yuan)); !errors.Is(err, ErrNoPurse) {
			t.Fatalf("payer paid from an expired purse: %v", err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		q := req(10 * yuan)
		p := craft(q, alice.Key(), nil)
		if err := bob.ApplyRevocations([]*statepb.Revocation{{Index: 1, DevicePublicKey: alice.PublicKey()}}); err != nil {
			t.Fatal(err)
		}
		_, err := bob.Receive(p)
		wantCode(t, err, statepb.Code_CODE_DEVICE_REVOKED)
		if err := alice.ApplyRevocations([]*statepb.Revocation{{Index: 1, DevicePublicKey: alice.PublicKey()}}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Pay(req(10 * yuan)); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked device paid: %v", err)
		}
	})
}

// TestReplayAndClone: the same payment twice, and a clone's payment with a
// counter the payee has seen from the purse, are refused PAYMENT_REPLAYED;
// a clone paying another payee with the same counter is accepted offline
// (nothing offline can tell) — the ledger catches it.
func TestReplayAndClone(t *testing.T) {
	r := newRig(t)
	alice, bob, carol := r.device("alice", "alice"), r.device("bob", "bob"), r.device("carol", "carol")
	r.load(alice, 300*yuan, 100*yuan, 10)
	alice.Close()
	// Copy the device file to a second phone.
	clonePath := filepath.Join(r.dir, "alice2.dev")
	copyFile(t, alice.Path(), clonePath)
	a1, err := Open(alice.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Close()
	a2, err := Open(clonePath)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	a1.Now, a2.Now = alice.Now, alice.Now

	p, _ := r.pay(a1, bob, 100*yuan)
	_, err = bob.Receive(p)
	wantCode(t, err, statepb.Code_CODE_PAYMENT_REPLAYED)
	// The clone pays bob with counter 1 again: bob saw counter 1 of this purse.
	q, _ := bob.Request(100*yuan, "")
	p2, err := a2.Pay(q)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bob.Receive(p2)
	wantCode(t, err, statepb.Code_CODE_PAYMENT_REPLAYED)
	// The clone pays carol, who has never seen the purse: accepted.
	r.pay(a2, carol, 100*yuan)
	if len(carol.Received()) != 1 {
		t.Fatal("carol did not accept")
	}
}

// TestPayCrashSafety: if the device file cannot be written, Pay releases
// no payment and the counter is not used; a payment the device wrote but
// never handed over (the crash after the write) keeps its counter, and is
// a torn payment: left out of the close's receipted list.
func TestPayCrashSafety(t *testing.T) {
	r := newRig(t)
	alice, bob := r.device("alice", "alice"), r.device("bob", "bob")
	pu := r.load(alice, 100*yuan, 50*yuan, 10)
	q, _ := bob.Request(10*yuan, "")
	saveHook = func() error { return io.ErrShortWrite }
	p, err := alice.Pay(q)
	saveHook = func() error { return nil }
	if err == nil || p != nil {
		t.Fatalf("payment released although the file was not written: %v", err)
	}
	alice.Close()
	a, err := Open(alice.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Now = alice.Now
	if got := a.Purses()[0]; got.Counter != 0 || len(a.Sent()) != 0 {
		t.Fatalf("after a failed write: counter %d, %d sent", got.Counter, len(a.Sent()))
	}
	// Written, then "crashed" before handing over: counter 1 is used.
	if _, err := a.Pay(q); err != nil {
		t.Fatal(err)
	}
	q2, _ := bob.Request(20*yuan, "")
	p2, err := a.Pay(q2)
	if err != nil {
		t.Fatal(err)
	}
	var b statepb.PaymentBody
	_ = proto.Unmarshal(p2.GetBody(), &b)
	if b.GetCounter() != 2 {
		t.Fatalf("counter reused: %d", b.GetCounter())
	}
	rc, err := bob.Receive(p2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddReceipt(rc); err != nil {
		t.Fatal(err)
	}
	final, receipted, _ := a.CloseBody(pu.ID)
	if final != 2 || len(receipted) != 1 || receipted[0].GetCounter() != 2 || len(a.Torn(pu.ID)) != 1 {
		t.Fatalf("close: final %d, receipted %v, torn %d", final, receipted, len(a.Torn(pu.ID)))
	}
}

func copyFile(t *testing.T, from, to string) {
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
