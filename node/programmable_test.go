package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// rpYuan is 100 fen.
const rpYuan = state.Yuan

// rpWantRefused fails unless err is the ledger refusing with code.
func rpWantRefused(t *testing.T, what string, err error, code statepb.Code) {
	t.Helper()
	var te *client.TxError
	if !errors.As(err, &te) || te.Code() != code {
		t.Fatalf("%s: got %v, want the ledger to refuse with %s", what, err, code.Short())
	}
	t.Logf("%s: refused %s: %s", what, code.Short(), te.Result.GetMessage())
}

func rpOK(t *testing.T, what string, r *statepb.TxResult, err error) *statepb.TxResult {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return r
}

// rpLedgerNow is the ledger time of a node's latest applied block.
func rpLedgerNow(t *testing.T, cl *client.Client) int64 {
	t.Helper()
	st, err := cl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.GetNode().GetLedgerTimeMs()
}

// TestRedPacketsOnCluster plays a red-packet campaign, a sub-wallet pushed
// to JD and merchant refunds on a real cluster (3 voters and a regulator,
// over the client SDK and the node API): every rule is refused with its
// code, the draw verifies against an independent recomputation, everything
// unspent returns to the sponsor when the window closes with nobody acting,
// the sponsor ends with exactly funded − spent + refunded back, and every
// node holds the same state and a supply invariant that holds.
func TestRedPacketsOnCluster(t *testing.T) {
	// The nodes' clock: the real one, which the test moves forward past
	// the windows instead of waiting for them.
	clock := &rpClock{}
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1, Now: clock.Now, Genesis: func(g *statepb.Genesis) {
		g.GenesisTimeMs = time.Now().UnixMilli() - 1000
	}})
	c.StartAll()
	leader := c.WaitLeader()
	n := c.Net
	ctx := context.Background()
	cl := c.SDK(t, leader)
	follower := c.Names[1]
	if follower == leader {
		follower = c.Names[2]
	}
	fcl := c.SDK(t, follower)
	ok := func(what string) func(*statepb.TxResult, error) *statepb.TxResult {
		return func(r *statepb.TxResult, err error) *statepb.TxResult { return rpOK(t, what, r, err) }
	}

	// The cast: a Suzhou city wallet, merchants in and outside Suzhou, JD
	// (on the campaign's list) and Meituan, six citizens.
	ok("issue")(cl.Issue(ctx, n.CentralBank(), "icbc", 10_000_000*rpYuan))
	reg := func(id string, kind statepb.WalletKind, tier uint32, region string) {
		ok("register " + id)(cl.RegisterWallet(ctx, n.Bank("icbc"), &statepb.RegisterWallet{WalletId: id, BankId: "icbc", PublicKey: n.Pub("wallet/" + id), Kind: kind, Tier: tier, RegionCode: region}))
	}
	reg("suzhou", statepb.WalletKind_WALLET_KIND_GOVERNMENT, 1, "320500")
	for _, m := range []struct{ id, region string }{{"shop", "320500"}, {"nanjing", "320100"}, {"jd", "110000"}, {"meituan", "110000"}} {
		reg(m.id, statepb.WalletKind_WALLET_KIND_MERCHANT, 1, m.region)
	}
	people := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
	for _, p := range people {
		reg(p, statepb.WalletKind_WALLET_KIND_PERSONAL, 4, "")
		ok("exchange " + p)(cl.Exchange(ctx, n.Bank("icbc"), "icbc", p, 1000*rpYuan))
	}
	ok("fund sponsor")(cl.Exchange(ctx, n.Bank("icbc"), "icbc", "suzhou", 1_000_000*rpYuan))
	sponsor0, _ := cl.Balance(ctx, "suzhou", client.Linearizable())

	// The campaign: 4 packets of ¥200 among 6 citizens, enrolment for a
	// minute of ledger time, spending from 70 s until 160 s.
	seed, wrong := statetest.Seed("cluster"), statetest.Seed("cluster-other")
	now := rpLedgerNow(t, cl)
	spec := &statepb.CreateCampaign{
		CampaignId: "dbl12", SponsorWalletId: "suzhou", Title: "Suzhou Double-12", PacketCount: 4, PacketFen: 200 * rpYuan,
		EnrolStartMs: now, EnrolEndMs: now + 60_000, SpendStartMs: now + 70_000, SpendEndMs: now + 160_000,
		RegionCodes: []string{"320500"}, MerchantIds: []string{"jd"}, Commitment: statetest.Commitment(seed),
	}
	ok("create campaign")(cl.CreateCampaign(ctx, n.Wallet("suzhou"), spec))
	var wg sync.WaitGroup
	errs := make([]error, len(people))
	for i, p := range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = fcl.Enrol(ctx, n.Wallet(p), "dbl12", p) // through a follower
		}()
	}
	wg.Wait()
	for i, err := range errs {
		ok("enrol "+people[i])(nil, err)
	}
	_, err := cl.Enrol(ctx, n.Wallet("p0"), "dbl12", "p0")
	rpWantRefused(t, "enrolling twice", err, statepb.Code_CODE_ALREADY_ENROLLED)
	_, err = cl.Draw(ctx, n.Wallet("suzhou"), "dbl12", seed)
	rpWantRefused(t, "draw while enrolment is open", err, statepb.Code_CODE_DRAW_TOO_EARLY)

	// A sub-wallet pushed to JD, expiring in 90 s of ledger time.
	ok("create sub-wallet")(cl.CreateSubWallet(ctx, n.Wallet("p5"), "p5", "p5.jd"))
	ok("fund sub-wallet")(cl.FundSubWallet(ctx, n.Wallet("p5"), "p5", "p5.jd", 600*rpYuan))
	ok("push")(cl.PushSubWallet(ctx, n.Wallet("p5"), &statepb.PushSubWallet{SubWalletId: "p5.jd", PlatformWalletId: "jd", MaxPaymentFen: 200 * rpYuan, MaxDailyFen: 300 * rpYuan, ExpiresMs: now + 90_000}))
	charge := ok("charge")(cl.Charge(ctx, n.Wallet("jd"), "jd", "p5.jd", 150*rpYuan))
	// rawCharge signs a charge without the SDK's checks: the ledger decides.
	b, _ := cl.Builder(ctx)
	rawCharge := func(platform string, fen uint64) error {
		us, err := cl.Unspent(ctx, "p5.jd", client.Linearizable())
		if err != nil {
			return err
		}
		var in []*statepb.Outpoint
		for _, u := range us {
			in = append(in, u.GetOutpoint())
		}
		tx, err := b.ChargeSubWallet(n.Wallet(platform), platform, "p5.jd", in, fen)
		if err != nil {
			return err
		}
		_, err = cl.SubmitOK(ctx, tx)
		return err
	}
	_, err = cl.Charge(ctx, n.Wallet("jd"), "jd", "p5.jd", 200*rpYuan+1)
	if statepb.CodeOf(err) != statepb.Code_CODE_SUBWALLET_LIMIT_PAYMENT {
		t.Fatalf("the SDK lets a charge over the cap through: %v", err)
	}
	err = rawCharge("jd", 200*rpYuan+1)
	rpWantRefused(t, "charge over the per-payment cap", err, statepb.Code_CODE_SUBWALLET_LIMIT_PAYMENT)
	err = rawCharge("jd", 151*rpYuan)
	rpWantRefused(t, "charge over the daily cap", err, statepb.Code_CODE_SUBWALLET_LIMIT_DAILY)
	err = rawCharge("meituan", rpYuan)
	rpWantRefused(t, "charge by another platform", err, statepb.Code_CODE_SUBWALLET_WRONG_PLATFORM)
	sub, err := cl.SubWallet(ctx, "p5.jd", client.Linearizable())
	if err != nil || sub.GetSubWallet().GetSpentDayFen() != 150*rpYuan || sub.GetWallet().GetBalanceFen() != 450*rpYuan {
		t.Fatalf("sub-wallet %v, %v", sub, err)
	}

	// The draw, once enrolment closed: another seed is refused; the
	// committed one grants the winners without anyone else acting.
	clock.jumpTo(spec.EnrolEndMs)
	_, err = cl.Enrol(ctx, n.Wallet("p5"), "dbl12", "p5")
	rpWantRefused(t, "enrolment after the window", err, statepb.Code_CODE_ENROLMENT_CLOSED)
	_, err = cl.Draw(ctx, n.Wallet("suzhou"), "dbl12", wrong)
	rpWantRefused(t, "wrong seed at the draw", err, statepb.Code_CODE_DRAW_SEED_MISMATCH)
	ok("draw")(cl.Draw(ctx, n.Wallet("suzhou"), "dbl12", seed))
	c.Eventually(10*time.Second, "grants", func() error {
		r, err := cl.Campaign(ctx, "dbl12", "", client.Linearizable())
		if err != nil || r.GetCampaign().GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED {
			return fmt.Errorf("campaign %v, %v", r.GetCampaign().GetStatus(), err)
		}
		return nil
	})
	check := c.SDK(t, "regulator-1")
	dc, err := check.VerifyDraw(ctx, "dbl12", client.Linearizable())
	if err != nil || !dc.OK() || dc.Checked != 4 || len(dc.Winners) != 4 {
		t.Fatalf("verify on the regulator: %+v, %v", dc, err)
	}
	var winners, losers []string
	won := map[string]bool{}
	for _, w := range dc.Winners {
		won[w] = true
	}
	for _, p := range people {
		if won[p] {
			winners = append(winners, p)
		} else {
			losers = append(losers, p)
		}
	}
	t.Logf("winners %v (verified on the regulator), not drawn %v", winners, losers)

	// Granted, but the spending window opens only at 70 s.
	_, err = cl.PayWithRedPackets(ctx, n.Wallet(winners[0]), winners[0], "dbl12", []*statepb.Payee{client.PayTo("shop", 50*rpYuan)})
	rpWantRefused(t, "red packet before the spending window", err, statepb.Code_CODE_RED_PACKET_OUTSIDE_WINDOW)
	clock.jumpTo(spec.SpendStartMs)
	// Ledger time moves with blocks, and the SDK judges the window by the
	// node's ledger time: one block at the new time.
	ok("a block at the new time")(cl.Issue(ctx, n.CentralBank(), "abc", 1))

	// Winners spend. Pay (the SDK) uses the red packet first at an eligible
	// merchant; elsewhere the ledger refuses red packets.
	w0, w1 := winners[0], winners[1]
	pay := ok("winner pays the Suzhou shop")(cl.Pay(ctx, n.Wallet(w0), w0, []*statepb.Payee{client.PayTo("shop", 250*rpYuan)}))
	pr, err := cl.Payment(ctx, "shop", [32]byte(pay.GetTxId()), client.Linearizable())
	if err != nil || pr.GetPayment().GetRedPacketFen() != 200*rpYuan || pr.GetPayment().GetAmountFen() != 250*rpYuan {
		t.Fatalf("payment record %v, %v", pr, err)
	}
	_, err = cl.PayWithRedPackets(ctx, n.Wallet(w1), w1, "dbl12", []*statepb.Payee{client.PayTo("nanjing", 50*rpYuan)})
	rpWantRefused(t, "red packet at a merchant outside Suzhou", err, statepb.Code_CODE_RED_PACKET_MERCHANT_INELIGIBLE)
	_, err = cl.PayWithRedPackets(ctx, n.Wallet(w1), w1, "dbl12", []*statepb.Payee{client.PayTo(losers[0], 50*rpYuan)})
	rpWantRefused(t, "red packet to a person", err, statepb.Code_CODE_RED_PACKET_NOT_MERCHANT)
	us, _ := cl.Unspent(ctx, w1, client.Linearizable())
	var packet *statepb.Outpoint
	for _, u := range us {
		if u.GetCampaignId() == "dbl12" {
			packet = u.GetOutpoint()
		}
	}
	redeem, err := b.Redeem(n.Wallet(w1), w1, []*statepb.Outpoint{packet}, 50*rpYuan)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.SubmitOK(ctx, redeem)
	rpWantRefused(t, "redeeming a red packet", err, statepb.Code_CODE_INPUT_RESTRICTED)
	// A plain payment to a person does not touch the red packet.
	ok("winner pays a person")(cl.Pay(ctx, n.Wallet(w1), w1, []*statepb.Payee{client.PayTo(losers[0], 10*rpYuan)}))
	jdPay := ok("winner pays JD")(cl.Pay(ctx, n.Wallet(w1), w1, []*statepb.Payee{client.PayTo("jd", 120*rpYuan)}))

	// Refunds: the shop returns all of w0's ¥250 (¥50 own money first, then
	// the ¥200 red packet, which comes back as a red packet); more is
	// refused.
	ok("shop's float")(cl.Exchange(ctx, n.Bank("icbc"), "icbc", "shop", 100*rpYuan))
	ok("refund")(cl.Refund(ctx, n.Wallet("shop"), "shop", [32]byte(pay.GetTxId()), 0))
	_, err = cl.Refund(ctx, n.Wallet("shop"), "shop", [32]byte(pay.GetTxId()), rpYuan)
	if statepb.CodeOf(err) != statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT {
		t.Fatalf("SDK refund beyond the payment: %v", err)
	}
	shopIn, _ := cl.Unspent(ctx, "shop", client.Linearizable())
	over, err := b.RefundPayment(n.Wallet("shop"), "shop", [32]byte(pay.GetTxId()), []*statepb.Outpoint{shopIn[0].GetOutpoint()}, rpYuan)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.SubmitOK(ctx, over)
	rpWantRefused(t, "refund beyond the payment", err, statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT)
	us, _ = cl.Unspent(ctx, w0, client.Linearizable())
	if client.RedPacketTotal(us)["dbl12"] != 200*rpYuan {
		t.Fatalf("refunded red packet: %v", us)
	}
	// JD refunds part of the sub-wallet charge, to the sub-wallet.
	ok("refund a charge")(cl.Refund(ctx, n.Wallet("jd"), "jd", [32]byte(charge.GetTxId()), 50*rpYuan))

	// The push expires; revoke and pull the money back.
	clock.jumpTo(now + 90_000)
	err = rawCharge("jd", rpYuan)
	rpWantRefused(t, "charge after expiry", err, statepb.Code_CODE_SUBWALLET_EXPIRED)
	ok("push again")(cl.PushSubWallet(ctx, n.Wallet("p5"), &statepb.PushSubWallet{SubWalletId: "p5.jd", PlatformWalletId: "jd", MaxPaymentFen: 200 * rpYuan, MaxDailyFen: 300 * rpYuan, ExpiresMs: now + 600_000}))
	ok("revoke")(cl.RevokeSubWallet(ctx, n.Wallet("p5"), "p5.jd"))
	err = rawCharge("jd", rpYuan)
	rpWantRefused(t, "charge after revoke", err, statepb.Code_CODE_SUBWALLET_REVOKED)
	if _, err := cl.WithdrawSubWallet(ctx, n.Wallet("p5"), "p5.jd", 0); err != nil {
		t.Fatal(err)
	}
	if bal, _ := cl.Balance(ctx, "p5.jd", client.Linearizable()); bal != 0 {
		t.Fatalf("sub-wallet holds %d after pulling back", bal)
	}

	// The window closes; nobody submits anything: the leader's idle ticks
	// run the reclaim.
	clock.jumpTo(spec.SpendEndMs)
	var camp *statepb.CampaignRecord
	c.Eventually(15*time.Second, "reclaim", func() error {
		r, err := cl.Campaign(ctx, "dbl12", "", client.Linearizable())
		if err != nil || r.GetCampaign().GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED {
			return fmt.Errorf("campaign %v, %v", r.GetCampaign().GetStatus(), err)
		}
		camp = r.GetCampaign()
		return nil
	})
	// After the window, JD refunds the red-packet payment: it goes to the
	// sponsor.
	ok("refund after the window")(cl.Refund(ctx, n.Wallet("jd"), "jd", [32]byte(jdPay.GetTxId()), 0))
	r, _ := cl.Campaign(ctx, "dbl12", "", client.Linearizable())
	camp = r.GetCampaign()
	spent, toHolder, toSponsor := uint64(320*rpYuan), uint64(200*rpYuan), uint64(120*rpYuan)
	if camp.GetSpentFen() != spent || camp.GetRefundedToHolderFen() != toHolder || camp.GetRefundedToSponsorFen() != toSponsor ||
		camp.GetReclaimedFen() != camp.GetFundedFen()-spent+toHolder || camp.GetEnrolled() != 6 || camp.GetWinners() != 4 {
		t.Fatalf("campaign figures %v", camp)
	}
	final, _ := cl.Balance(ctx, "suzhou", client.Linearizable())
	if want := sponsor0 - spent + toHolder + toSponsor; final != want {
		t.Fatalf("sponsor holds %s, want %s (funded − spent + refunded back)", state.Fen(final), state.Fen(want))
	}
	for _, p := range people {
		us, _ := cl.Unspent(ctx, p, client.Linearizable())
		if len(client.RedPacketTotal(us)) != 0 {
			t.Fatalf("%s still holds red packets", p)
		}
	}
	// Every node: same state, invariant holds.
	st, _ := cl.Status(ctx)
	c.Converge(st.GetNode().GetAppliedIndex(), 20*time.Second)
	c.AuditAll()
	c.AuditAPI("regulator-1")
}
