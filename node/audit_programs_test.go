package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestAuditOfflineDoubleSpendAndCampaign plays SPEC §4's reported double
// spend and a small Suzhou red-packet campaign through a real network (3
// voters, 1 regulator), and checks what the regulator's AuditService says,
// with known figures:
//
//   - offline: alice (icbc) loads ¥100 into a purse and has nothing else
//     online; her cloned phone pays bob ¥100 and carol ¥100 with the same
//     counter; both deposit. One incident, both payments as proof, settled:
//     ¥100 from the escrow to the first payee, ¥100 from icbc's guarantee to
//     the second, ¥100 recorded as alice's debt, alice frozen by the rule.
//   - campaign: suzhou (a government wallet at boc) funds 3 packets of
//     ¥20,000 (¥60,000, a large payment); li and wang enrol; the draw grants
//     2 packets; li spends ¥15,000 of hers at a Suzhou shop; when the window
//     closes ¥45,000 returns to the sponsor (the undrawn packet, wang's, and
//     li's ¥5,000 change).
func TestAuditOfflineDoubleSpendAndCampaign(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	// Ledger time follows the leader's clock once it is past genesis time:
	// start the network a minute ago, so the campaign's windows open and
	// close in seconds. EnableOffline re-derives the genesis hash.
	c.Net.Genesis.GenesisTimeMs = time.Now().Add(-time.Minute).UnixMilli()
	c.Net.EnableOffline(t, nil)
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	reg := "regulator-1"
	ac := auditClient(c, reg)
	ctx := context.Background()
	personal, merchant, government := statepb.WalletKind_WALLET_KIND_PERSONAL, statepb.WalletKind_WALLET_KIND_MERCHANT, statepb.WalletKind_WALLET_KIND_GOVERNMENT
	for _, tx := range [][]byte{
		n.Register(t, "icbc", "alice", personal, 1, ""),
		n.Register(t, "icbc", "bob", personal, 4, ""),
		n.Register(t, "icbc", "carol", personal, 4, ""),
		n.Register(t, "boc", "suzhou", government, 1, "320500"),
		n.Register(t, "boc", "shop", merchant, 1, "320500"),
		n.Register(t, "boc", "li", personal, 1, ""),
		n.Register(t, "boc", "wang", personal, 1, ""),
	} {
		c.MustOK(leader, tx)
	}
	fund := func(bank, wallet string, fen uint64) *statepb.Outpoint {
		issue, issueID := n.SignID(t, statetest.IssueBody(bank, fen), n.CentralBank())
		c.MustOK(leader, issue)
		ex, exID := n.SignID(t, statetest.ExchangeBody(bank, []*statepb.Outpoint{statetest.Out(issueID, 0)}, wallet, fen), n.Bank(bank))
		c.MustOK(leader, ex)
		return statetest.Out(exID, 0)
	}
	fund("icbc", statetest.Guarantee("icbc"), 10_000*yuan)
	aliceIn := fund("icbc", "alice", 100*yuan)
	sponsorIn := fund("boc", "suzhou", 100_000*yuan)

	// The double spend.
	cert := n.Cert(t, statetest.Purse{Name: "p1", Bank: "icbc", Wallet: "alice", Device: "alice-phone", AmountFen: 100 * yuan,
		MaxPaymentFen: 100 * yuan, MaxPayments: 10, NotAfterMs: time.Now().Add(time.Hour).UnixMilli()})
	c.MustOK(leader, n.OpenPurse(t, "alice", []*statepb.Outpoint{aliceIn}, cert))
	reqB, reqC := n.Request("bob-phone", 100*yuan, "bob"), n.Request("carol-phone", 100*yuan, "carol")
	payB, _ := n.Payment(t, statetest.OfflinePay{Device: "alice-phone", Cert: cert, Counter: 1, Req: reqB})
	payC, _ := n.Payment(t, statetest.OfflinePay{Device: "alice-phone", Cert: cert, Counter: 1, Req: reqC}) // the clone
	c.MustOK(leader, n.Deposit(t, "bob-phone", "bob", statetest.Item(payB, reqB)))
	c.MustOK(leader, n.Deposit(t, "carol-phone", "carol", statetest.Item(payC, reqC)))

	// The campaign; its windows are in ledger time, which is the leader's
	// clock.
	t0 := time.Now().UnixMilli()
	seed := statetest.Seed("audit-dbl12")
	spec := statetest.Campaign{
		ID: "dbl12", Sponsor: "suzhou", Title: "Suzhou Double-12", Inputs: []*statepb.Outpoint{sponsorIn}, Packets: 3, PacketFen: 20_000 * yuan,
		EnrolStart: t0 + 500, EnrolEnd: t0 + 3000, SpendStart: t0 + 4000, SpendEnd: t0 + 7000, Regions: []string{"320500"}, Seed: seed,
	}
	c.MustOK(leader, n.Sign(t, statetest.CreateCampaignBody(spec), n.Wallet("suzhou")))
	waitRegulator(t, c, reg, c.Node(leader).Store().Meta().GetAppliedIndex())
	sup, err := ac.Supply(ctx, connect.NewRequest(&nodepb.AuditSupplyRequest{}))
	if err != nil || !sup.Msg.GetInvariantHolds() || sup.Msg.GetCampaignEscrowFen() != 60_000*yuan {
		t.Fatalf("supply with the campaign funded: %v %v", sup, err)
	}
	for _, b := range sup.Msg.GetBanks() {
		want := map[string]uint64{"boc": 60_000 * yuan}[b.GetBankId()]
		if b.GetCampaignEscrowFen() != want || b.GetOfflineEscrowFen() != 0 {
			t.Fatalf("bank %s: campaign escrow %d (want %d), offline escrow %d", b.GetBankId(), b.GetCampaignEscrowFen(), want, b.GetOfflineEscrowFen())
		}
	}
	sleepUntil(spec.EnrolStart)
	c.MustOK(leader, n.Sign(t, statetest.EnrolBody("dbl12", "li"), n.Wallet("li")))
	c.MustOK(leader, n.Sign(t, statetest.EnrolBody("dbl12", "wang"), n.Wallet("wang")))
	sleepUntil(spec.EnrolEnd)
	c.MustOK(leader, n.Sign(t, statetest.DrawBody("dbl12", seed), n.Wallet("suzhou")))
	packet := waitRedPacket(t, c, leader, "li")
	sleepUntil(spec.SpendStart)
	c.MustOK(leader, n.Transfer(t, "li", []*statepb.Outpoint{packet}, statetest.Pay("shop", 15_000*yuan)))
	sleepUntil(spec.SpendEnd)
	var camp *nodepb.CampaignsResponse
	c.Eventually(20*time.Second, "the campaign finishes and is reclaimed", func() error {
		r, err := ac.Campaigns(ctx, connect.NewRequest(&nodepb.CampaignsRequest{}))
		if err != nil {
			return err
		}
		if len(r.Msg.GetCampaigns()) != 1 || r.Msg.GetCampaigns()[0].GetCampaign().GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED {
			return fmt.Errorf("%v", r.Msg.GetCampaigns())
		}
		camp = r.Msg
		return nil
	})

	// Campaign figures.
	e := camp.GetCampaigns()[0]
	cr := e.GetCampaign()
	if e.GetBankId() != "boc" || cr.GetFundedFen() != 60_000*yuan || cr.GetEnrolled() != 2 || cr.GetWinners() != 2 || cr.GetGranted()-cr.GetForfeited() != 2 ||
		cr.GetGrantedFen() != 40_000*yuan || cr.GetSpentFen() != 15_000*yuan || cr.GetPayments() != 1 || cr.GetReclaimedFen() != 45_000*yuan ||
		cr.GetEscrowFen() != 0 || cr.GetLiveFen() != 0 {
		t.Fatalf("campaign: %v (bank %s)", cr, e.GetBankId())
	}
	if tot := camp.GetTotals(); tot.GetCampaigns() != 1 || tot.GetFundedFen() != 60_000*yuan || tot.GetGranted() != 2 || tot.GetSpentFen() != 15_000*yuan ||
		tot.GetReclaimedFen() != 45_000*yuan || tot.GetEscrowFen() != 0 || tot.GetLiveFen() != 0 {
		t.Fatalf("campaign totals: %v", tot)
	}

	// Incidents: one, with its proof and recovery.
	inc, err := ac.Incidents(ctx, connect.NewRequest(&nodepb.IncidentsRequest{}))
	if err != nil || len(inc.Msg.GetIncidents()) != 1 {
		t.Fatalf("incidents: %v %v", inc, err)
	}
	i := inc.Msg.GetIncidents()[0]
	if i.GetPayerWalletId() != "alice" || i.GetBankId() != "icbc" || len(i.GetFirstPayment()) == 0 || len(i.GetSecondPayment()) == 0 ||
		i.GetFirstPayeeWalletId() != "bob" || i.GetSecondPayeeWalletId() != "carol" || i.GetClaimFen() != 100*yuan ||
		i.GetFromGuaranteeFen() != 100*yuan || i.GetDebtFen() != 100*yuan || i.GetUnpaidFen() != 0 ||
		i.GetStatus() != statepb.IncidentStatus_INCIDENT_STATUS_SETTLED || !i.GetFrozeWallet() {
		t.Fatalf("incident: %v", i)
	}
	if tot := inc.Msg.GetTotals(); tot.GetIncidents() != 1 || tot.GetSettled() != 1 || tot.GetFromGuaranteeFen() != 100*yuan ||
		tot.GetDebtFen() != 100*yuan || tot.GetWalletsFrozen() != 1 || tot.GetUnpaidFen() != 0 {
		t.Fatalf("incident totals: %v", tot)
	}
	if none, err := ac.Incidents(ctx, connect.NewRequest(&nodepb.IncidentsRequest{Bank: "boc"})); err != nil || len(none.Msg.GetIncidents()) != 0 || none.Msg.GetTotals().GetIncidents() != 0 {
		t.Fatalf("boc incidents: %v %v", none, err)
	}

	// Offline money per bank.
	off, err := ac.Offline(ctx, connect.NewRequest(&nodepb.OfflineRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range off.Msg.GetBanks() {
		if b.GetBankId() != "icbc" {
			if b.GetLoadedFen() != 0 || b.GetIncidents() != 0 {
				t.Fatalf("offline at %s: %v", b.GetBankId(), b)
			}
			continue
		}
		if b.GetOpenPurses() != 1 || b.GetEscrowFen() != 0 || b.GetLoadedFen() != 100*yuan || b.GetSettledFen() != 200*yuan ||
			b.GetIncidents() != 1 || b.GetGuaranteeFen() != 100*yuan || b.GetDebtFen() != 100*yuan {
			t.Fatalf("offline at icbc: %v", b)
		}
	}
	if off.Msg.GetEscrowFen() != 0 || len(off.Msg.GetBanks()) != 6 {
		t.Fatalf("offline: %v", off.Msg)
	}

	// Frozen by the double-spend rule.
	fr, err := ac.FrozenWallets(ctx, connect.NewRequest(&nodepb.FrozenWalletsRequest{}))
	if err != nil || len(fr.Msg.GetWallets()) != 1 || fr.Msg.GetWallets()[0].GetFrozen().GetWalletId() != "alice" ||
		fr.Msg.GetWallets()[0].GetFrozen().GetSource() != "offline_double_spend" {
		t.Fatalf("frozen: %v %v", fr, err)
	}

	// The campaign's funding is a large payment of suzhou's bank.
	lp, err := ac.LargePayments(ctx, connect.NewRequest(&nodepb.LargePaymentsRequest{Bank: "boc", NewestFirst: true}))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range lp.Msg.GetPayments() {
		if p.GetKind() == "create_campaign" {
			found = p.GetPayer() == "suzhou" && p.GetPayerBank() == "boc" && p.GetAmountFen() == 60_000*yuan
		}
	}
	if !found {
		t.Fatalf("no large create_campaign by suzhou: %v", lp.Msg.GetPayments())
	}

	// Bank activity: icbc counts alice's purse (¥100) and both deposits
	// (¥100 each); boc the campaign's funding, both enrolments, the draw
	// and li's payment (¥15,000).
	act, err := ac.BankActivity(ctx, connect.NewRequest(&nodepb.BankActivityRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	type sum struct{ txs, payments, volume, large uint64 }
	got := map[string]sum{}
	for _, d := range act.Msg.GetDays() {
		g := got[d.GetBankId()]
		g.txs, g.payments, g.volume, g.large = g.txs+d.GetTxCount(), g.payments+d.GetPaymentCount(), g.volume+d.GetVolumeFen(), g.large+d.GetLargeCount()
		got[d.GetBankId()] = g
	}
	// icbc: 3 registrations, 2 issues + 2 exchanges (guarantee ¥10,000,
	// alice ¥100), the purse, 2 deposits. boc: 4 registrations, issue and
	// exchange (¥100,000 each: 2 large), the campaign (large), 2
	// enrolments, the draw, li's payment.
	if want := (sum{10, 7, 2*10_100*yuan + 300*yuan, 0}); got["icbc"] != want {
		t.Fatalf("icbc activity %+v, want %+v", got["icbc"], want)
	}
	if want := (sum{11, 4, 2*100_000*yuan + 60_000*yuan + 15_000*yuan, 3}); got["boc"] != want {
		t.Fatalf("boc activity %+v, want %+v", got["boc"], want)
	}

	// Everything still adds up, on every node.
	final, err := ac.Supply(ctx, connect.NewRequest(&nodepb.AuditSupplyRequest{}))
	if err != nil || !final.Msg.GetInvariantHolds() || final.Msg.GetCampaignEscrowFen() != 0 || final.Msg.GetOfflineEscrowFen() != 0 {
		t.Fatalf("final supply: %v %v", final, err)
	}
	c.AuditAll()
}

func sleepUntil(ms int64) {
	if d := time.Until(time.UnixMilli(ms)); d > 0 {
		time.Sleep(d + 50*time.Millisecond)
	}
}

// waitRegulator waits until the regulator has applied index.
func waitRegulator(t *testing.T, c *nodetest.Cluster, reg string, index uint64) {
	t.Helper()
	waitAppliedLocal(t, c, reg, index)
}

// waitRedPacket waits until a wallet holds a red packet (granted by
// scheduled work after the draw) and returns it.
func waitRedPacket(t *testing.T, c *nodetest.Cluster, name, wallet string) *statepb.Outpoint {
	t.Helper()
	var out *statepb.Outpoint
	c.Eventually(10*time.Second, wallet+" receives a red packet", func() error {
		us, err := c.Node(name).Store().Unspents(wallet, nil, 0)
		if err != nil {
			return err
		}
		for _, u := range us {
			if u.CampaignID != "" {
				out = u.Outpoint
				return nil
			}
		}
		return fmt.Errorf("%d outputs, no red packet", len(us))
	})
	return out
}
