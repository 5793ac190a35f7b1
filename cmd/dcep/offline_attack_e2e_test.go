package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcep/dcep/node/netgen"
)

// The article's two-phone attack through the CLI against a real `dcepd
// dev`: a payer loads ¥100 onto a phone, leaving ¥0 online, copies the
// phone, and pays two honest payees ¥100 each from the two copies. Under
// docs/offline.md's "Who pays", the payer's bank pays the second payee
// (its guarantee, then its reserve); what the bank cannot pay now is a
// claim the ledger pays as soon as the bank holds money.

// attack is one run of the article's attack on a network.
type attack struct {
	bank, payer, bob, carol string
	phone, phone2           string
	bobDev, carolDev        string
}

// newAttack opens the wallets (the payer at bank with exactly ¥100, the
// payees at another bank) and devices, loads ¥100 and copies the phone.
func newAttack(t *testing.T, net *devNet, dir, tag, bank string) *attack {
	t.Helper()
	other := "abc"
	if bank == other {
		other = "boc"
	}
	a := &attack{bank: bank, payer: tag + "-payer", bob: tag + "-bob", carol: tag + "-carol",
		phone: filepath.Join(dir, tag+".dev"), phone2: filepath.Join(dir, tag+"-copy.dev"),
		bobDev: filepath.Join(dir, tag+"-bob.dev"), carolDev: filepath.Join(dir, tag+"-carol.dev")}
	fund(t, net, a.payer, bank, "100")
	net.ok(t, "wallet", "create", a.bob, "--bank", other, "--tier", "4")
	net.ok(t, "wallet", "create", a.carol, "--bank", other, "--tier", "4")
	net.ok(t, "offline", "load", "--wallet", a.payer, "--device", a.phone, "--amount", "100")
	wantBalance(t, net, a.payer, 0)
	raw, err := os.ReadFile(a.phone)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.phone2, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	net.ok(t, "offline", "init", "--device", a.bobDev, "--wallet", a.bob)
	net.ok(t, "offline", "init", "--device", a.carolDev, "--wallet", a.carol)
	return a
}

// pay plays the offline part: ¥100 to bob from the phone, ¥100 to carol
// from its copy; then bob deposits (paid from escrow).
func (a *attack) pay(t *testing.T, net *devNet, dir string) {
	t.Helper()
	touch(t, net, dir, a.phone, a.bobDev, "100", a.bob)
	touch(t, net, dir, a.phone2, a.carolDev, "100", a.carol)
	var s syncJSON
	net.okJSON(t, &s, "offline", "sync", "--device", a.bobDev)
	if len(s.Payments) != 1 || s.Payments[0].Outcome != outcomePaidInFull || s.Payments[0].FromEscrowFen != 10000 || s.Payments[0].Bank != a.bank {
		t.Fatalf("%s's sync: %+v", a.bob, s)
	}
}

// incident returns the incident of a's payer, checked against the
// payment's settlement as carol's sync reported it.
func (a *attack) incident(t *testing.T, net *devNet, got settledJSON) incidentJSON {
	t.Helper()
	var inc incidentJSON
	net.okJSON(t, &inc, "incidents", jsonNum(got.Incident))
	if inc.Payer != a.payer || inc.Bank != a.bank || inc.FirstPayee != a.bob || inc.SecondPayee != a.carol || inc.ClaimFen != 10000 ||
		inc.FromEscrowFen != got.FromEscrowFen || inc.FromPayerFen != got.FromPayerFen || inc.FromGuarFen != got.FromGuaranteeFen ||
		inc.FromReserve != got.FromReserveFen || inc.PaidLaterFen != got.PaidLaterFen || inc.UnpaidFen != got.UnpaidFen || inc.Claim != got.Claim {
		t.Fatalf("incident %+v does not match the settlement carol was told %+v", inc, got)
	}
	return inc
}

// TestOfflineArticleAttackEveryBankCLI: the attack with the payer at ¥0
// online, on each of the six banks of `dcepd dev`: both payees are paid in
// full (the second from the bank's guarantee, which dcepd dev funded), the
// CLI says so in the settlement's words, the payer owes its bank ¥100 and
// repays it first from money it receives, the supply invariant holds
// exactly, and the per-bank audit adds up to the incidents.
func TestOfflineArticleAttackEveryBankCLI(t *testing.T) {
	net := shared(t)
	dir := t.TempDir()
	for _, b := range netgen.Banks {
		t.Run(b.ID, func(t *testing.T) {
			a := newAttack(t, net, dir, "art-"+b.ID, b.ID)
			a.pay(t, net, dir)

			// Carol's deposit proves the double spend; she is paid in full by
			// the payer's bank's guarantee, and told exactly that.
			text := net.ok(t, "offline", "sync", "--device", a.carolDev)
			want := fmt.Sprintf("(¥100.00 from %s, a double spend: incident ", a.payer)
			if !strings.Contains(text.stdout, "deposited 1 payment: ¥100.00 credited to "+a.carol) || !strings.Contains(text.stdout, want) ||
				!strings.Contains(text.stdout, "): paid in full: ¥100.00 from "+b.ID+"'s guarantee\n") || strings.Contains(text.stdout, "owes you") {
				t.Fatalf("carol's sync: %v", text)
			}
			var show showJSON
			net.okJSON(t, &show, "offline", "show", "--device", a.carolDev)
			if len(show.Received) != 1 || show.Received[0].Settlement == nil {
				t.Fatalf("carol's device: %+v", show)
			}
			got := *show.Received[0].Settlement
			if got.Outcome != outcomePaidInFull || got.PaidFen != 10000 || got.FromGuaranteeFen != 10000 || got.UnpaidFen != 0 || got.Bank != b.ID {
				t.Fatalf("carol's settlement: %+v", got)
			}
			inc := a.incident(t, net, got)
			if inc.Status != "settled" || inc.DebtFen != 10000 || !inc.FrozeWallet {
				t.Fatalf("incident: %+v", inc)
			}
			wantBalance(t, net, a.bob, 10000)
			wantBalance(t, net, a.carol, 10000)
			wantBalance(t, net, a.payer, 0)

			// The payer owes its bank the ¥100, visible to it and its bank.
			var d debtJSON
			net.okJSON(t, &d, "offline", "debt", a.payer)
			if d.DebtFen != 10000 || d.GuaranteeFen != 10000 || d.Bank != b.ID || d.UnpaidFen != 0 {
				t.Fatalf("debt: %+v", d)
			}
			if w := net.ok(t, "wallet", "show", a.payer); !strings.Contains(w.stdout, "¥100.00 owed to "+b.ID+" for offline payments") {
				t.Fatalf("wallet show: %v", w)
			}
			// Unfrozen by its bank, the payer receives ¥30: it repays first.
			net.ok(t, "wallet", "unfreeze", a.payer, "--reason", "repaying its offline debt")
			net.ok(t, "exchange", "--to", a.payer, "--amount", "30")
			wantBalance(t, net, a.payer, 0)
			net.okJSON(t, &d, "offline", "debt", a.payer)
			if d.DebtFen != 7000 || d.RepaidFen != 3000 || d.Collections != 1 {
				t.Fatalf("debt after ¥30 arrived: %+v", d)
			}
			if s := net.ok(t, "offline", "debt", a.payer); !strings.Contains(s.stdout, a.payer+" owes "+b.ID+" ¥70.00 for offline payments") {
				t.Fatalf("debt text: %v", s)
			}
			wantSupplyExact(t, net)
		})
	}
	wantOfflineAuditAddsUp(t, net)
}

// wantSupplyExact: the regulator's supply audit holds, to the fen.
func wantSupplyExact(t *testing.T, net *devNet) {
	t.Helper()
	var au auditJSON
	net.okJSON(t, &au, "audit", "supply")
	if !au.InvariantHolds || au.OutstandingFen != au.IssuedFen-au.ReturnedFen || au.OutstandingFen != au.UnspentFen+au.OfflineEscrowFen+au.CampaignEscrowFen {
		t.Fatalf("supply audit: %+v", au)
	}
}

// wantOfflineAuditAddsUp: per bank, `dcep audit offline` adds up: what
// payees were paid is the sum of its sources, owed = paid + unpaid, and
// its incident figures are the sums of `dcep incidents` of its wallets.
func wantOfflineAuditAddsUp(t *testing.T, net *devNet) {
	t.Helper()
	var incs []incidentJSON
	net.okJSON(t, &incs, "incidents")
	sums := map[string]*auditIncidentTotalsJSON{}
	for _, i := range incs {
		s := sums[i.Bank]
		if s == nil {
			s = &auditIncidentTotalsJSON{}
			sums[i.Bank] = s
		}
		s.Incidents++
		s.ClaimFen += i.ClaimFen
		s.FromEscrowFen += i.FromEscrowFen
		s.FromPayerFen += i.FromPayerFen
		s.FromGuaranteeFen += i.FromGuarFen
		s.FromReserveFen += i.FromReserve
		s.PaidLaterFen += i.PaidLaterFen
		s.UnpaidFen += i.UnpaidFen
		s.DebtFen += i.DebtFen
	}
	var au struct {
		Banks []auditOfflineBankJSON `json:"banks"`
	}
	net.okJSON(t, &au, "audit", "offline")
	if len(au.Banks) != len(netgen.Banks) {
		t.Fatalf("audit offline: %+v", au)
	}
	for _, b := range au.Banks {
		want := auditIncidentTotalsJSON{}
		if s := sums[b.Bank]; s != nil {
			want = *s
		}
		if b.IncidentTotals != want || b.Incidents != want.Incidents {
			t.Errorf("bank %s: audit's incident figures %+v, the incidents add up to %+v", b.Bank, b.IncidentTotals, want)
		}
		if b.PaidFen != b.FromEscrowFen+b.FromPayerFen+b.FromGuaranteeFen+b.FromReserveFen+b.PaidLaterFen || b.SettledFen != b.PaidFen+b.UnpaidFen {
			t.Errorf("bank %s: paid %d owed %d do not add up: %+v", b.Bank, b.PaidFen, b.SettledFen, b)
		}
	}
	// The text table shows the same, with an UNPAID column.
	if out := net.ok(t, "audit", "offline"); !strings.Contains(out.stdout, "UNPAID") || !strings.Contains(out.stdout, "COVER NEEDED") {
		t.Fatalf("audit offline: %v", out)
	}
}

// TestOfflineUnderfundedBankCLI: a dev network whose banks' guarantees hold
// ¥10 (dcepd dev --guarantee 10). Under the 10% cover ratio a bank certifies
// only ¥100 of purses (a second is refused GUARANTEE_SHORT); the attack's
// second payee is paid ¥10 by the guarantee and ¥90 by the bank's reserve;
// with the reserve empty too, she is paid ¥10 and the bank owes her ¥90 (a
// claim, and the CLI says so), certifies nothing meanwhile, and pays her
// the moment the central bank issues to it.
func TestOfflineUnderfundedBankCLI(t *testing.T) {
	net, err := startDev(t, t.TempDir(), "--guarantee", "10")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := net.stop(); err != nil {
			t.Error(err)
		}
	}()
	dir := t.TempDir()

	// The reserve backs a short guarantee.
	a := newAttack(t, net, dir, "uf-icbc", "icbc")
	fund(t, net, "uf-icbc-more", "icbc", "100")
	net.refused(t, exitRefused, "GUARANTEE_SHORT", []string{"offline", "load", "--wallet", "uf-icbc-more", "--device", filepath.Join(dir, "more.dev"), "--amount", "100"},
		`bank icbc's guarantee wallet "icbc.guarantee" holds 1000 fen; its offline exposure with this purse, 20000 fen, needs 2000 fen`,
		"dcep offline guarantee --bank BANK --amount YUAN")
	a.pay(t, net, dir)
	var s syncJSON
	net.okJSON(t, &s, "offline", "sync", "--device", a.carolDev)
	if len(s.Payments) != 1 || s.Payments[0].Outcome != outcomePaidInFull || s.Payments[0].FromGuaranteeFen != 1000 || s.Payments[0].FromReserveFen != 9000 {
		t.Fatalf("carol's sync: %+v", s)
	}
	a.incident(t, net, s.Payments[0])
	wantBalance(t, net, a.carol, 10000)

	// Guarantee and reserve both empty: a claim.
	b := newAttack(t, net, dir, "uf-abc", "abc")
	fund(t, net, "uf-abc-more", "abc", "100")
	var bal balanceJSON
	net.okJSON(t, &bal, "balance", "abc.reserve")
	net.ok(t, "return", "--bank", "abc", "--amount", plain(bal.BalanceFen))
	b.pay(t, net, dir)
	text := net.ok(t, "offline", "sync", "--device", b.carolDev)
	if !strings.Contains(text.stdout, "deposited 1 payment: ¥10.00 credited to uf-abc-carol, ¥90.00 still owed by the payers' banks") ||
		!strings.Contains(text.stdout, "): paid in part: ¥10.00 of ¥100.00 (¥10.00 from abc's guarantee); abc owes you ¥90.00 (claim 1); the ledger pays it as soon as abc holds money") ||
		strings.Contains(text.stdout, "paid in full") {
		t.Fatalf("carol's sync: %v", text)
	}
	var show showJSON
	net.okJSON(t, &show, "offline", "show", "--device", b.carolDev)
	got := *show.Received[0].Settlement
	if got.Outcome != outcomePaidInPart || got.PaidFen != 1000 || got.UnpaidFen != 9000 || got.OwedBy != "abc" || got.Claim != 1 {
		t.Fatalf("carol's settlement: %+v", got)
	}
	inc := b.incident(t, net, got)
	if inc.Status != "underfunded" || inc.DebtFen != 10000 {
		t.Fatalf("incident: %+v", inc)
	}
	wantBalance(t, net, b.carol, 1000)
	var d debtJSON
	net.okJSON(t, &d, "offline", "debt", b.payer)
	if d.DebtFen != 10000 || d.GuaranteeFen != 1000 || d.ClaimedFen != 9000 || d.UnpaidFen != 9000 {
		t.Fatalf("debt: %+v", d)
	}
	var au struct {
		Banks []auditOfflineBankJSON `json:"banks"`
	}
	net.okJSON(t, &au, "audit", "offline")
	for _, bk := range au.Banks {
		if bk.Bank == "abc" && (bk.UnpaidFen != 9000 || bk.ClaimsOpen != 1 || bk.IncidentTotals.UnpaidFen != 9000) {
			t.Fatalf("audit of abc: %+v", bk)
		}
	}
	wantSupplyExact(t, net)
	// While abc owes carol, it certifies no purse.
	net.refused(t, exitRefused, "GUARANTEE_SHORT", []string{"offline", "load", "--wallet", "uf-abc-more", "--device", filepath.Join(dir, "more2.dev"), "--amount", "10"},
		"bank abc owes payees 9000 fen on 1 unpaid offline claims")

	// The central bank issues to abc: the ledger pays carol by itself, in
	// the next block (which the leader proposes when the payment is due).
	net.ok(t, "issue", "--bank", "abc", "--amount", "1000")
	deadline := time.Now().Add(30 * time.Second)
	for net.okJSON(t, &bal, "balance", b.carol); bal.BalanceFen != 10000; net.okJSON(t, &bal, "balance", b.carol) {
		if time.Now().After(deadline) {
			t.Fatalf("abc did not pay carol: she holds %d fen", bal.BalanceFen)
		}
		time.Sleep(200 * time.Millisecond)
	}
	net.okJSON(t, &s, "offline", "sync", "--device", b.carolDev)
	if len(s.PaidLater) != 1 || s.PaidLater[0].Outcome != outcomePaidInFull || s.PaidLater[0].PaidLaterFen != 9000 || s.PaidLater[0].UnpaidFen != 0 {
		t.Fatalf("carol's later sync: %+v", s)
	}
	wantBalance(t, net, b.carol, 10000)
	net.okJSON(t, &show, "offline", "show", "--device", b.carolDev)
	inc = b.incident(t, net, *show.Received[0].Settlement)
	if inc.Status != "paid_late" || inc.PaidLaterFen != 9000 {
		t.Fatalf("incident after the bank paid: %+v", inc)
	}
	net.okJSON(t, &d, "offline", "debt", b.payer)
	if d.DebtFen != 10000 || d.UnpaidFen != 0 {
		t.Fatalf("debt after the bank paid: %+v", d)
	}
	wantSupplyExact(t, net)
	wantOfflineAuditAddsUp(t, net)
}
