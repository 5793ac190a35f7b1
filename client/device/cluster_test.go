package device_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/device"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// Tests of dual offline payments on real nodes (node/nodetest: each node a
// real node.Node with Pebble, Raft and libp2p on loopback), driven through
// the SDK and device files, as phones would.

const yuan = 100

// env is a running network with offline purses enabled: 3 voters (pboc,
// icbc, abc) and a regulator.
type env struct {
	t   testing.TB
	ctx context.Context
	c   *nodetest.Cluster
	n   *statetest.Net
	cl  *client.Client
	dir string

	// The clock of every node (the leader stamps ledger time from it) and
	// every device: it starts at the test genesis time and runs with real
	// time, plus skip (advance).
	start time.Time
	skip  atomic.Int64
}

func newEnv(t testing.TB, pol *statepb.OfflinePolicy) *env { return newEnvWith(t, pol, 3, 1) }

func newEnvWith(t testing.TB, pol *statepb.OfflinePolicy, voters, regulators int) *env {
	t.Helper()
	if pol == nil {
		pol = statetest.OfflinePolicy()
	}
	e := &env{t: t, start: time.Now(), dir: t.TempDir()}
	e.c = nodetest.New(t, nodetest.Options{Voters: voters, Regulators: regulators, Now: e.now, Genesis: func(g *statepb.Genesis) { g.Offline = pol }})
	e.n = e.c.Net
	e.c.StartAll()
	e.c.WaitLeader()
	e.cl = e.c.SDK(t, "icbc")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	e.ctx = ctx
	return e
}

func (e *env) now() time.Time {
	return time.UnixMilli(statetest.GenesisTimeMs).Add(time.Since(e.start) + time.Duration(e.skip.Load()))
}

// advance moves every clock forward by d.
func (e *env) advance(d time.Duration) { e.skip.Add(int64(d)) }

func (e *env) ok(_ *statepb.TxResult, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// wallet registers a wallet (key statetest "wallet/"+id) and funds it.
func (e *env) wallet(id, bank string, tier uint32, fen uint64) {
	e.t.Helper()
	e.ok(e.cl.RegisterWallet(e.ctx, e.n.Bank(bank), &statepb.RegisterWallet{WalletId: id, BankId: bank, PublicKey: e.n.Pub("wallet/" + id),
		Kind: statepb.WalletKind_WALLET_KIND_PERSONAL, Tier: tier}))
	e.fund(bank, id, fen)
}

func (e *env) fund(bank, id string, fen uint64) {
	e.t.Helper()
	if fen == 0 {
		return
	}
	e.ok(e.cl.Issue(e.ctx, e.n.CentralBank(), bank, fen))
	e.ok(e.cl.Exchange(e.ctx, e.n.Bank(bank), bank, id, fen))
}

func (e *env) balance(id string) uint64 {
	e.t.Helper()
	w, err := e.cl.Wallet(e.ctx, id, client.Linearizable())
	if err != nil {
		e.t.Fatal(err)
	}
	return w.GetWallet().GetBalanceFen()
}

func (e *env) wantBalance(id string, fen uint64) {
	e.t.Helper()
	if got := e.balance(id); got != fen {
		e.t.Fatalf("%s holds %d fen, want %d", id, got, fen)
	}
}

func (e *env) status(id string) statepb.WalletStatus {
	e.t.Helper()
	w, err := e.cl.Wallet(e.ctx, id, client.Linearizable())
	if err != nil {
		e.t.Fatal(err)
	}
	return w.GetWallet().GetStatus()
}

// device creates a device file depositing to wallet.
func (e *env) device(name, wallet string) *device.Device {
	e.t.Helper()
	d, err := device.Create(filepath.Join(e.dir, name+".dev"), e.n.Genesis, wallet)
	if err != nil {
		e.t.Fatal(err)
	}
	d.Now = e.now
	e.t.Cleanup(d.Close)
	return d
}

// load loads a purse onto d from wallet (bank's key signs the certificate).
func (e *env) load(d *device.Device, wallet, bank string, o device.LoadOptions) *device.Purse {
	e.t.Helper()
	p, _, err := d.Load(e.ctx, e.cl, e.n.Wallet(wallet), wallet, e.n.Bank(bank), o)
	if err != nil {
		e.t.Fatalf("load %s onto %s: %v", wallet, d.Path(), err)
	}
	return p
}

// clone copies a device file to a second phone (the device is closed and
// reopened around the copy).
func (e *env) clone(d *device.Device, name string) (*device.Device, *device.Device) {
	e.t.Helper()
	d.Close()
	raw, err := os.ReadFile(d.Path())
	if err != nil {
		e.t.Fatal(err)
	}
	to := filepath.Join(e.dir, name+".dev")
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		e.t.Fatal(err)
	}
	open := func(p string) *device.Device {
		x, err := device.Open(p)
		if err != nil {
			e.t.Fatal(err)
		}
		x.Now = e.now
		e.t.Cleanup(x.Close)
		return x
	}
	return open(d.Path()), open(to)
}

// touch is one offline payment: request, pay, receive, receipt.
func (e *env) touch(payer, payee *device.Device, fen uint64) (*statepb.Payment, *statepb.PaymentRequest) {
	e.t.Helper()
	req, err := payee.Request(fen, "")
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := payer.Pay(req)
	if err != nil {
		e.t.Fatalf("pay: %v", err)
	}
	rc, err := payee.Receive(p)
	if err != nil {
		e.t.Fatalf("receive: %v", err)
	}
	if _, err := payer.AddReceipt(rc); err != nil {
		e.t.Fatal(err)
	}
	return p, req
}

func (e *env) sync(d *device.Device) *device.SyncReport {
	e.t.Helper()
	rep, err := d.Sync(e.ctx, e.cl)
	if err != nil {
		e.t.Fatalf("sync %s: %v", d.Path(), err)
	}
	return rep
}

// check: the supply invariant on every node, the regulator included (its
// own ledger and its API), and every node at the same state hash.
func (e *env) check() {
	e.t.Helper()
	st, err := e.cl.Status(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	e.c.Converge(st.GetNode().GetAppliedIndex(), 20*time.Second)
	e.c.AuditAll()
	for _, name := range e.c.Running() {
		e.c.AuditAPI(name)
	}
}

func (e *env) incidents() []*statepb.Incident {
	e.t.Helper()
	var out []*statepb.Incident
	for i, err := range e.cl.Incidents(e.ctx, 0, client.Linearizable()) {
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, i)
	}
	return out
}

// TestReportedCase is the case from Suzhou: a payer loads ¥100 onto a
// phone, copies the device file to a second phone, pays B ¥100 from one and
// C ¥100 from the other, all offline. B and C deposit in either order; both
// are credited ¥100; one incident with both payments as proof; the payer
// frozen and the device revoked; the shortfall from the payer's online
// funds (alice, who has some), or from the bank's guarantee when the payer
// has none (xu), with the debt recorded; the supply invariant on every node
// including the regulator, and all nodes at the same state hash.
func TestReportedCase(t *testing.T) {
	e := newEnv(t, nil)
	e.wallet("alice", "icbc", 4, 600*yuan) // ¥100 to the phone, ¥500 stays online
	e.wallet("xu", "icbc", 4, 100*yuan)    // everything to the phone
	e.wallet("bob", "abc", 4, 0)
	e.wallet("carol", "icbc", 4, 0)
	e.fund("icbc", statetest.Guarantee("icbc"), 10_000*yuan)

	for i, sc := range []struct {
		payer      string
		bobFirst   bool
		fromPayer  uint64
		guaranteed uint64
	}{
		{"alice", true, 100 * yuan, 0},
		{"xu", false, 0, 100 * yuan},
	} {
		bobBefore, carolBefore, payerBefore := e.balance("bob"), e.balance("carol"), e.balance(sc.payer)
		guaranteeBefore := e.balance(statetest.Guarantee("icbc"))
		phone := e.device(sc.payer+"-phone", sc.payer)
		e.load(phone, sc.payer, "icbc", device.LoadOptions{AmountFen: 100 * yuan})
		phone1, phone2 := e.clone(phone, sc.payer+"-phone2")
		bob, carol := e.device("bob-"+sc.payer, "bob"), e.device("carol-"+sc.payer, "carol")

		// All offline.
		toBob, _ := e.touch(phone1, bob, 100*yuan)
		toCarol, _ := e.touch(phone2, carol, 100*yuan)

		first, second := bob, carol
		if !sc.bobFirst {
			first, second = carol, bob
		}
		r1 := e.sync(first)
		if r1.Settled != 1 || r1.CreditedFen != 100*yuan || len(r1.Incidents) != 0 {
			t.Fatalf("%s: first deposit: %+v", sc.payer, r1)
		}
		r2 := e.sync(second)
		if r2.Settled != 1 || r2.CreditedFen != 100*yuan || len(r2.Incidents) != 1 || r2.NewRevocations != i+1 {
			t.Fatalf("%s: second deposit: %+v", sc.payer, r2)
		}
		e.wantBalance("bob", bobBefore+100*yuan)
		e.wantBalance("carol", carolBefore+100*yuan)
		e.wantBalance(sc.payer, payerBefore-100*yuan-sc.fromPayer)
		e.wantBalance(statetest.Guarantee("icbc"), guaranteeBefore-sc.guaranteed)

		incs := e.incidents()
		if len(incs) != i+1 {
			t.Fatalf("%d incidents after scenario %d", len(incs), i+1)
		}
		inc := incs[i]
		if inc.GetKind() != statepb.IncidentKind_INCIDENT_KIND_SAME_COUNTER || inc.GetPayerWalletId() != sc.payer || !inc.GetFrozeWallet() ||
			inc.GetFromPayerFen() != sc.fromPayer || inc.GetFromGuaranteeFen() != sc.guaranteed || inc.GetDebtFen() != sc.guaranteed ||
			inc.GetStatus() != statepb.IncidentStatus_INCIDENT_STATUS_SETTLED || !bytes.Equal(inc.GetDevicePublicKey(), phone1.PublicKey()) {
			t.Fatalf("incident: %v", inc)
		}
		// Both signed payments are the proof, in deposit order.
		firstPay, secondPay := toBob, toCarol
		if !sc.bobFirst {
			firstPay, secondPay = toCarol, toBob
		}
		if !sameBody(inc.GetFirstPayment(), firstPay) || !sameBody(inc.GetSecondPayment(), secondPay) {
			t.Fatal("the incident's proof is not the two payments")
		}
		if e.status(sc.payer) != statepb.WalletStatus_WALLET_STATUS_FROZEN {
			t.Fatalf("%s not frozen", sc.payer)
		}
		debt, err := e.cl.OfflineDebt(e.ctx, sc.payer, client.Linearizable())
		if err != nil || debt.GetDebtFen() != sc.guaranteed {
			t.Fatalf("debt: %v %v", debt, err)
		}
		// Both phones learn they are revoked and stop paying; other devices
		// refuse them.
		for _, p := range []*device.Device{phone1, phone2} {
			if rep := e.sync(p); !rep.Revoked || !p.Revoked() {
				t.Fatalf("phone not told it is revoked: %+v", rep)
			}
			req, _ := bob.Request(yuan, "")
			if _, err := p.Pay(req); !errors.Is(err, device.ErrRevoked) {
				t.Fatalf("revoked phone paid: %v", err)
			}
		}
		e.check()
	}
}

func sameBody(raw []byte, p *statepb.Payment) bool {
	var q statepb.Payment
	return proto.Unmarshal(raw, &q) == nil && bytes.Equal(q.GetBody(), p.GetBody()) && bytes.Equal(q.GetSignature(), p.GetSignature())
}

// TestRefusals: each bad payment is refused offline by the payee device and
// by the ledger (a deposit forced past the device), each with its code.
func TestRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.wallet("alice", "icbc", 1, 1000*yuan)
	e.wallet("mallory", "icbc", 1, 1000*yuan)
	e.wallet("bob", "abc", 4, 0)
	e.wallet("carol", "icbc", 4, 0)
	e.fund("icbc", statetest.Guarantee("icbc"), 1000*yuan)
	phone := e.device("alice-phone", "alice")
	e.load(phone, "alice", "icbc", device.LoadOptions{AmountFen: 300 * yuan, MaxPaymentFen: 50 * yuan, MaxPayments: 5})
	bob, carol := e.device("bob", "bob"), e.device("carol", "carol")
	b, err := e.cl.Builder(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cert statepb.PurseCert
	if err := proto.Unmarshal(phone.Purses()[0].Cert, &cert); err != nil {
		t.Fatal(err)
	}
	net := phone.Network()
	// craft signs, with key, a payment answering req under c, edited.
	craft := func(req *statepb.PaymentRequest, key ed25519.PrivateKey, c *statepb.PurseCert, counter uint32, edit func(*statepb.PaymentBody)) *statepb.Payment {
		body := &statepb.PaymentBody{PurseId: phone.Purses()[0].ID, Counter: counter, AmountFen: req.GetAmountFen(), PayeeDeviceKey: req.GetPayeeDeviceKey(),
			Nonce: req.GetNonce(), PrevHash: offline.ZeroHash, Cert: c}
		if edit != nil {
			edit(body)
		}
		raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(body)
		return &statepb.Payment{Body: raw, Signature: ed25519.Sign(key, net.PaymentSignBytes(raw))}
	}
	// ledger forces a deposit of p by payee, past its device's checks.
	ledger := func(payee *device.Device, p *statepb.Payment, req *statepb.PaymentRequest, revIndex uint64) *statepb.TxResult {
		tx, err := b.DepositOffline(payee.Key(), payee.WalletID(), []*statepb.DepositItem{{Payment: p, Request: req, RevocationIndex: revIndex}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.cl.Submit(e.ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	both := func(name string, code statepb.Code, payee *device.Device, p *statepb.Payment, req *statepb.PaymentRequest, revIndex uint64) {
		t.Helper()
		if _, err := payee.Receive(p); statepb.CodeOf(err) != code {
			t.Fatalf("%s: offline: got %v, want %s", name, err, code.Short())
		}
		if r := ledger(payee, p, req, revIndex); r.GetCode() != code {
			t.Fatalf("%s: ledger: got %s (%s), want %s", name, r.GetCode().Short(), r.GetMessage(), code.Short())
		}
		t.Logf("%s: refused offline and by the ledger with %s", name, code.Short())
	}
	foreignBody, _ := offline.DecodeCert(&cert)
	foreignBody.BankId = "hsbc"
	foreign, _ := net.SignCert(e.n.Key("bank/hsbc"), foreignBody)
	forged, _ := net.SignCert(e.n.Wallet("alice"), foreignBodyOf(&cert))

	// Replayed deposit: a settled payment deposited again.
	paid, paidReq := e.touch(phone, bob, 10*yuan)
	if rep := e.sync(bob); rep.Settled != 1 {
		t.Fatalf("sync: %+v", rep)
	}
	both("replayed deposit", statepb.Code_CODE_PAYMENT_REPLAYED, bob, paid, paidReq, 0)
	// A copy of bob's device made before that sync deposits the same payment:
	// the ledger refuses it as replayed, and the copy learns it was settled
	// (into bob's wallet, so it counts as received, not lost).
	e.touch(phone, bob, 5*yuan)
	bob, bobCopy := e.clone(bob, "bob-copy")
	if rep := e.sync(bob); rep.Settled != 1 {
		t.Fatalf("bob: %+v", rep)
	}
	if rep := e.sync(bobCopy); rep.Replayed != 1 || rep.Settled != 0 || bobCopy.Received()[1].Status != device.RecvSettled {
		t.Fatalf("the copy: %+v %+v", rep, bobCopy.Received()[1])
	}

	req := func(d *device.Device, fen uint64) *statepb.PaymentRequest {
		q, err := d.Request(fen, "")
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	// Redirected: a payment to carol that bob's device receives and deposits.
	toCarol, err := phone.Pay(req(carol, 10*yuan))
	if err != nil {
		t.Fatal(err)
	}
	q := req(bob, 10*yuan)
	both("payment redirected to another device", statepb.Code_CODE_PAYMENT_WRONG_PAYEE, bob, toCarol, q, 0)
	both("wrong nonce", statepb.Code_CODE_PAYMENT_NONCE_MISMATCH, bob, craft(q, phone.Key(), &cert, 4, func(b *statepb.PaymentBody) { b.Nonce = bytes.Repeat([]byte{9}, 16) }), q, 0)
	both("forged certificate", statepb.Code_CODE_CERT_INVALID, bob, craft(q, phone.Key(), forged, 4, nil), q, 0)
	both("foreign-bank certificate", statepb.Code_CODE_CERT_FOREIGN_BANK, bob, craft(q, phone.Key(), foreign, 4, nil), q, 0)
	big := req(bob, 60*yuan)
	both("over the per-payment cap", statepb.Code_CODE_PAYMENT_OVER_CAP, bob, craft(big, phone.Key(), &cert, 4, nil), big, 0)
	both("over the count", statepb.Code_CODE_PAYMENT_OVER_COUNT, bob, craft(q, phone.Key(), &cert, 6, nil), q, 0)

	// Revoked device: mallory's phone is cloned and double-spends; carol
	// syncs the revocation list; a later payment from that device is
	// refused by carol's device, and by the ledger since carol's deposit
	// says she knew.
	mphone := e.device("mallory-phone", "mallory")
	e.load(mphone, "mallory", "icbc", device.LoadOptions{AmountFen: 100 * yuan})
	m1, m2 := e.clone(mphone, "mallory-phone2")
	e.touch(m1, bob, 40*yuan)
	e.touch(m2, carol, 40*yuan)
	e.sync(bob)
	if rep := e.sync(carol); len(rep.Incidents) != 1 || carol.RevocationList().Index != 1 {
		t.Fatalf("carol's sync: %+v", rep)
	}
	cq := req(carol, 5*yuan)
	mp, err := m1.Pay(cq) // m1 has not synced: it does not know it is revoked
	if err != nil {
		t.Fatal(err)
	}
	both("revoked device", statepb.Code_CODE_DEVICE_REVOKED, carol, mp, cq, carol.RevocationList().Index)

	// Nothing any of this did moved money but the legitimate payments.
	e.wantBalance("bob", 10*yuan+5*yuan+40*yuan)
	e.wantBalance("carol", 40*yuan)
	e.check()
}

func foreignBodyOf(c *statepb.PurseCert) *statepb.PurseCertBody {
	b, _ := offline.DecodeCert(c)
	return b
}

// TestTornPaymentRecoveredAtClose: alice pays bob (receipt), carol (carol
// got it, alice never got the receipt) and dave (the payment never left
// alice's phone). Unloading returns everything but bob's amount at once;
// bob is paid from the reserve; carol's torn payment, deposited later, is
// honoured from alice's online funds without an incident.
func TestTornPaymentRecoveredAtClose(t *testing.T) {
	e := newEnv(t, nil)
	e.wallet("alice", "icbc", 4, 400*yuan)
	e.wallet("bob", "abc", 4, 0)
	e.wallet("carol", "icbc", 4, 0)
	e.fund("icbc", statetest.Guarantee("icbc"), 1000*yuan)
	phone := e.device("alice-phone", "alice")
	p := e.load(phone, "alice", "icbc", device.LoadOptions{AmountFen: 300 * yuan})
	bob, carol, dave := e.device("bob", "bob"), e.device("carol", "carol"), e.device("dave", "carol")
	e.touch(phone, bob, 50*yuan)
	// carol receives; the receipt never reaches alice.
	q, _ := carol.Request(70*yuan, "")
	pc, err := phone.Pay(q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Receive(pc); err != nil {
		t.Fatal(err)
	}
	// dave's payment is signed and lost before the touch completes.
	qd, _ := dave.Request(30*yuan, "")
	if _, err := phone.Pay(qd); err != nil {
		t.Fatal(err)
	}
	e.wantBalance("alice", 100*yuan)

	res, err := phone.Unload(e.ctx, e.cl)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("unload: %+v %v", res, err)
	}
	if u := res[0]; u.ReturnedFen != 250*yuan || u.ReservedFen != 50*yuan || len(u.Torn) != 2 {
		t.Fatalf("unload result: returned %d reserved %d torn %d", u.ReturnedFen, u.ReservedFen, len(u.Torn))
	}
	e.wantBalance("alice", 350*yuan)
	if rep := e.sync(bob); rep.CreditedFen != 50*yuan || len(rep.Incidents) != 0 {
		t.Fatalf("bob: %+v", rep)
	}
	rep := e.sync(carol)
	if rep.CreditedFen != 70*yuan || len(rep.Incidents) != 0 || carol.Received()[0].Status != device.RecvTorn {
		t.Fatalf("carol (torn): %+v, %+v", rep, carol.Received()[0])
	}
	e.wantBalance("bob", 50*yuan)
	e.wantBalance("carol", 70*yuan)
	e.wantBalance("alice", 280*yuan)
	if e.status("alice") != statepb.WalletStatus_WALLET_STATUS_ACTIVE || len(e.incidents()) != 0 {
		t.Fatal("a torn payment was treated as a double spend")
	}
	pr, err := e.cl.Purse(e.ctx, p.ID, client.Linearizable())
	if err != nil || pr.GetPurse().GetEscrowFen() != 0 || pr.GetPurse().GetSettledFen() != 120*yuan {
		t.Fatalf("purse: %v %v", pr, err)
	}
	e.check()
}

// TestExpiredPurseReturnsItself: a purse valid for an hour, with a grace
// period of a day: bob is paid and deposits in time; carol receives before
// not_after but deposits too late; dave's device refuses a payment after
// not_after by its own clock. At not_after + grace, with no transaction
// from anyone, the rest returns to alice: the leader's clock moves on, the
// idle leader proposes an empty block because the expiry is due, and every
// node runs it in ledger time.
func TestExpiredPurseReturnsItself(t *testing.T) {
	pol := statetest.OfflinePolicy()
	pol.GraceMs = 24 * 3600 * 1000
	e := newEnv(t, pol)
	e.wallet("alice", "icbc", 4, 100*yuan)
	e.wallet("bob", "abc", 4, 0)
	e.wallet("carol", "icbc", 4, 0)
	phone := e.device("alice-phone", "alice")
	p := e.load(phone, "alice", "icbc", device.LoadOptions{AmountFen: 100 * yuan, Validity: time.Hour})
	bob, carol, dave := e.device("bob", "bob"), e.device("carol", "carol"), e.device("dave", "carol")
	e.touch(phone, bob, 20*yuan)
	e.touch(phone, carol, 10*yuan)
	e.sync(bob)
	dq, _ := dave.Request(5*yuan, "")
	dp, err := phone.Pay(dq)
	if err != nil {
		t.Fatal(err)
	}
	// After not_after: dave's device refuses by its own clock, and the
	// phone will not pay any more.
	e.advance(time.Hour)
	if _, err := dave.Receive(dp); statepb.CodeOf(err) != statepb.Code_CODE_CERT_EXPIRED {
		t.Fatalf("payee accepted an expired purse's payment: %v", err)
	}
	if q, _ := dave.Request(yuan, ""); q != nil {
		if _, err := phone.Pay(q); !errors.Is(err, device.ErrNoPurse) {
			t.Fatalf("expired purse paid: %v", err)
		}
	}
	// Still within the grace period: nothing returned yet.
	time.Sleep(1500 * time.Millisecond)
	if pr, err := e.cl.Purse(e.ctx, p.ID, client.Linearizable()); err != nil || pr.GetPurse().GetStatus() != statepb.PurseStatus_PURSE_STATUS_OPEN {
		t.Fatalf("purse within grace: %v %v", pr.GetPurse().GetStatus(), err)
	}
	// Past not_after + grace. Nobody submits anything.
	e.advance(24 * time.Hour)
	deadline := p.NotAfterMs + pol.GetGraceMs()
	e.c.Eventually(20*time.Second, "purse expiry", func() error {
		pr, err := e.cl.Purse(e.ctx, p.ID)
		if err != nil {
			return err
		}
		if pr.GetPurse().GetStatus() != statepb.PurseStatus_PURSE_STATUS_EXPIRED {
			return errors.New(pr.GetPurse().GetStatus().String())
		}
		return nil
	})
	// The ledger recorded the expiry as a transaction of its own: its
	// ledger time is when the rest came back, never before the deadline.
	exp, err := e.cl.Tx(e.ctx, state.ExpiryTxID(e.n.Genesis.GetChainId(), p.ID), client.Linearizable())
	if err != nil || exp.GetResult().GetCode() != statepb.Code_CODE_OK || exp.GetResult().GetTimeMs() < deadline {
		t.Fatalf("expiry recorded at ledger time %d, deadline %d: %v (%v)", exp.GetResult().GetTimeMs(), deadline, exp.GetResult(), err)
	}
	// 80 back: all but bob's 20. Carol's 10 was not deposited by the
	// deadline, so it is part of the rest (docs/offline.md: a payee who
	// misses the deadline bears that loss).
	e.wantBalance("alice", 80*yuan)
	e.wantBalance("bob", 20*yuan)
	// carol deposits too late: refused by the ledger.
	rep, err := carol.Sync(e.ctx, e.cl)
	if err != nil || len(rep.Refused) != 1 || rep.Refused[0].Code != "CERT_EXPIRED" {
		t.Fatalf("late deposit: %+v %v", rep, err)
	}
	e.wantBalance("carol", 0)
	if rep := e.sync(phone); len(phone.Purses()) != 1 || phone.Purses()[0].Status != device.PurseExpired || phone.Purses()[0].ReturnedFen != 80*yuan {
		t.Fatalf("phone after sync: %+v %+v", rep, phone.Purses()[0])
	}
	e.check()
}
