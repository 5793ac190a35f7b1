package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dual offline payments through the CLI against a real `dcepd dev` process
// (the network shared by this test binary): the reported case from Suzhou,
// then a torn payment recovered at unload.

// touch is one offline payment through files, as NFC would carry it:
// the payee's request, the payer's payment, the payee's receipt. It
// returns the payment file.
func touch(t *testing.T, net *devNet, dir, payer, payee, amount, tag string) string {
	t.Helper()
	write := func(name, content string) string {
		p := filepath.Join(dir, tag+"."+name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	req := write("req", net.ok(t, "offline", "request", "--device", payee, "--amount", amount).stdout)
	pay := net.ok(t, "offline", "pay", "--device", payer, "--request", req)
	if !strings.Contains(pay.stderr, "paid ¥") {
		t.Fatalf("pay: %v", pay)
	}
	payment := write("payment", pay.stdout)
	rc := net.ok(t, "offline", "receive", "--device", payee, payment)
	if !strings.Contains(rc.stderr, "received ¥") {
		t.Fatalf("receive: %v", rc)
	}
	net.ok(t, "offline", "receipt", "--device", payer, write("receipt", rc.stdout))
	return payment
}

func TestOfflineReportedCaseCLI(t *testing.T) {
	net := shared(t)
	dir := t.TempDir()
	fund(t, net, "off-alice", "icbc", "600")
	net.ok(t, "wallet", "create", "off-bob", "--bank", "abc", "--tier", "4")
	net.ok(t, "wallet", "create", "off-carol", "--bank", "icbc", "--tier", "4")
	phone, phone2 := filepath.Join(dir, "alice.dev"), filepath.Join(dir, "alice2.dev")
	bob, carol := filepath.Join(dir, "bob.dev"), filepath.Join(dir, "carol.dev")

	load := net.ok(t, "offline", "load", "--wallet", "off-alice", "--device", phone, "--amount", "100")
	if !strings.Contains(load.stdout, "loaded ¥100.00 from off-alice onto") {
		t.Fatalf("load: %v", load)
	}
	wantBalance(t, net, "off-alice", 50000)
	// The device file copied to a second phone.
	raw, err := os.ReadFile(phone)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(phone2, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	net.ok(t, "offline", "init", "--device", bob, "--wallet", "off-bob")
	net.ok(t, "offline", "init", "--device", carol, "--wallet", "off-carol")

	// All offline: ¥100 to bob from one phone, ¥100 to carol from the other.
	toBob := touch(t, net, dir, phone, bob, "100", "bob")
	touch(t, net, dir, phone2, carol, "100", "carol")
	// The same payment again is refused by bob's device.
	net.refused(t, exitRefused, "PAYMENT_REPLAYED", []string{"offline", "receive", "--device", bob, toBob}, "received already")

	// Carol deposits first, then bob: both credited ¥100.
	if s := net.ok(t, "offline", "sync", "--device", carol); !strings.Contains(s.stdout, "deposited 1 payment: ¥100.00 credited to off-carol") ||
		!strings.Contains(s.stdout, "paid in full: ¥100.00 from the purse's escrow") {
		t.Fatalf("carol's sync: %v", s)
	}
	s := net.ok(t, "offline", "sync", "--device", bob)
	if !strings.Contains(s.stdout, "deposited 1 payment: ¥100.00 credited to off-bob") || !strings.Contains(s.stdout, "double spend proven: incident") ||
		!strings.Contains(s.stdout, "paid in full: ¥100.00 from the payer's online funds") {
		t.Fatalf("bob's sync: %v", s)
	}
	wantBalance(t, net, "off-bob", 10000)
	wantBalance(t, net, "off-carol", 10000)
	// The shortfall came from alice's online funds.
	wantBalance(t, net, "off-alice", 40000)

	var incs []incidentJSON
	net.okJSON(t, &incs, "incidents")
	var mine []incidentJSON
	for _, i := range incs {
		if i.Payer == "off-alice" {
			mine = append(mine, i)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("incidents of off-alice: %+v", mine)
	}
	inc := mine[0]
	if inc.Kind != "same_counter" || inc.FirstPayee != "off-carol" || inc.SecondPayee != "off-bob" || inc.FromPayerFen != 10000 ||
		inc.FirstPayment == "" || inc.SecondPayment == "" || !inc.FrozeWallet || inc.Status != "settled" {
		t.Fatalf("incident: %+v", inc)
	}
	one := net.ok(t, "incidents", jsonNum(inc.ID))
	if !strings.Contains(one.stdout, "same-counter double spend by off-alice") || !strings.Contains(one.stdout, "first payment (signed, base64)") {
		t.Fatalf("incident text: %v", one)
	}
	// Alice frozen; her phones learn they are revoked and cannot pay.
	var b balanceJSON
	net.okJSON(t, &b, "balance", "off-alice")
	if b.Status != "frozen" {
		t.Fatalf("off-alice: %+v", b)
	}
	if s := net.ok(t, "offline", "sync", "--device", phone2); !strings.Contains(s.stdout, "this device is revoked") {
		t.Fatalf("phone sync: %v", s)
	}
	req := filepath.Join(dir, "late.req")
	if err := os.WriteFile(req, []byte(net.ok(t, "offline", "request", "--device", bob, "--amount", "1").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	net.refused(t, exitRefused, "DEVICE_REVOKED", []string{"offline", "pay", "--device", phone2, "--request", req}, "this device is revoked")
	var show showJSON
	net.okJSON(t, &show, "offline", "show", "--device", bob)
	if len(show.Received) != 1 || show.Received[0].Status != "incident" || show.RevocationIndex == 0 {
		t.Fatalf("bob's device: %+v", show)
	}
	var audit auditJSON
	net.okJSON(t, &audit, "audit", "supply")
	if !audit.InvariantHolds {
		t.Fatalf("audit: %+v", audit)
	}
}

// TestOfflineTornPaymentCLI: a payment whose receipt never came back is
// returned to the payer at unload; deposited later, it is still honoured,
// from the payer's funds, without an incident.
func TestOfflineTornPaymentCLI(t *testing.T) {
	net := shared(t)
	dir := t.TempDir()
	fund(t, net, "off-dave", "boc", "300")
	net.ok(t, "wallet", "create", "off-erin", "--bank", "boc", "--tier", "4")
	phone, erin := filepath.Join(dir, "dave.dev"), filepath.Join(dir, "erin.dev")
	net.ok(t, "offline", "load", "--wallet", "off-dave", "--device", phone, "--amount", "100")
	net.ok(t, "offline", "init", "--device", erin, "--wallet", "off-erin")
	// erin receives; her receipt never reaches dave's phone.
	req := filepath.Join(dir, "req")
	if err := os.WriteFile(req, []byte(net.ok(t, "offline", "request", "--device", erin, "--amount", "30").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(dir, "payment")
	if err := os.WriteFile(pf, []byte(net.ok(t, "offline", "pay", "--device", phone, "--request", req).stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	net.ok(t, "offline", "receive", "--device", erin, pf)

	var un []unloadJSON
	net.okJSON(t, &un, "offline", "unload", "--device", phone)
	if len(un) != 1 || un[0].ReturnedFen != 10000 || un[0].ReservedFen != 0 || un[0].Torn != 1 {
		t.Fatalf("unload: %+v", un)
	}
	wantBalance(t, net, "off-dave", 30000)
	var s syncJSON
	net.okJSON(t, &s, "offline", "sync", "--device", erin)
	if s.Settled != 1 || s.CreditedFen != 3000 || len(s.Incidents) != 0 {
		t.Fatalf("erin's sync: %+v", s)
	}
	wantBalance(t, net, "off-erin", 3000)
	wantBalance(t, net, "off-dave", 27000)
	var b balanceJSON
	net.okJSON(t, &b, "balance", "off-dave")
	if b.Status != "active" {
		t.Fatal("a torn payment froze the payer")
	}
}

func jsonNum(n uint64) string {
	raw, _ := json.Marshal(n)
	return string(raw)
}
