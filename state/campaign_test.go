package state_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/lottery"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

const (
	government = statepb.WalletKind_WALLET_KIND_GOVERNMENT
	packetFen  = 200 * yuan
	sponsorFen = 1_000_000 * yuan
)

// citizens enrol in this order in the scenarios below.
var citizens = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}

// rpWorld is the fixture plus a red-packet cast:
//
//	suzhou:  government wallet at icbc (tier 1, region 320500), ¥1,000,000
//	shop:    merchant at boc, region 320500 (Suzhou)        — eligible by region
//	nanjing: merchant at boc, region 320100 (Nanjing)       — not eligible
//	jd:      merchant at icbc, region 110000, on the list   — eligible by list
//	meituan: merchant at icbc, region 110000                — another platform
//	citizens alice, bob (icbc tier 4), carol (boc tier 1), dave..grace (icbc tier 4)
type rpWorld struct {
	*fixture
	sponsorIn *statepb.Outpoint
}

func newRPWorld(t testing.TB, n *statetest.Net, s *state.Store) *rpWorld {
	t.Helper()
	return rpOn(t, fixtureOn(t, n, s))
}

// rpOn adds the red-packet cast to a fixture.
func rpOn(t testing.TB, f *fixture) *rpWorld {
	t.Helper()
	n := f.n
	w := &rpWorld{fixture: f}
	txs := [][]byte{
		n.Register(t, "icbc", "suzhou", government, 1, "320500"),
		n.Register(t, "boc", "nanjing", merchant, 1, "320100"),
		n.Register(t, "icbc", "jd", merchant, 1, "110000"),
		n.Register(t, "icbc", "meituan", merchant, 1, "110000"),
	}
	for _, c := range citizens[3:] {
		txs = append(txs, n.Register(t, "icbc", c, personal, tier4, ""))
	}
	mustAllOK(t, f.c.Apply(t, txs...))
	w.sponsorIn = f.c.Fund(t, n, "icbc", "suzhou", sponsorFen)
	return w
}

// spec is a campaign of packets × ¥200 whose windows start from the next
// block: enrolment 9 s, spending from 20 s to 100 s of ledger time.
func (w *rpWorld) spec(id string, packets uint32, seed []byte) statetest.Campaign {
	now := w.c.TimeMs
	return statetest.Campaign{
		ID: id, Sponsor: "suzhou", Title: "Suzhou Double-12", Inputs: ins(w.sponsorIn), Packets: packets, PacketFen: packetFen,
		EnrolStart: now + 1000, EnrolEnd: now + 10_000, SpendStart: now + 20_000, SpendEnd: now + 100_000,
		Regions: []string{"320500"}, Merchants: []string{"jd"}, Seed: seed,
	}
}

// create applies the campaign; the sponsor's change becomes its input for
// the next campaign.
func (w *rpWorld) create(t testing.TB, c statetest.Campaign) *statepb.TxResult {
	t.Helper()
	r := w.c.MustOK(t, w.n.Sign(t, statetest.CreateCampaignBody(c), w.n.Wallet("suzhou")))
	w.sponsorIn = outOf(r, 0)
	return r
}

func (w *rpWorld) enrolAll(t testing.TB, id string, names ...string) {
	t.Helper()
	var txs [][]byte
	for _, c := range names {
		txs = append(txs, w.n.Sign(t, statetest.EnrolBody(id, c), w.n.Wallet(c)))
	}
	mustAllOK(t, w.c.Apply(t, txs...))
}

// seedWhere finds a seed (by name) under which, among the citizens in
// enrolment order with k packets, every name in win wins and every name in
// lose does not.
func seedWhere(t testing.TB, campaign string, k uint64, win, lose []string) []byte {
	for i := range 10_000 {
		s := statetest.Seed(fmt.Sprint(campaign, i))
		won := map[string]bool{}
		for _, e := range (lottery.Draw{Seed: s, Campaign: campaign, N: uint64(len(citizens)), K: k}).All() {
			won[citizens[e]] = true
		}
		ok := true
		for _, x := range win {
			ok = ok && won[x]
		}
		for _, x := range lose {
			ok = ok && !won[x]
		}
		if ok {
			return s
		}
	}
	t.Fatal("no seed found")
	return nil
}

func campaignOf(t testing.TB, s *state.Store, id string) *statepb.CampaignRecord {
	t.Helper()
	c, err := s.Campaign(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// redPackets lists a wallet's red-packet outputs: outpoint → amount.
func redPackets(t testing.TB, s *state.Store, wallet string) []state.Unspent {
	t.Helper()
	us, err := s.Unspents(wallet, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []state.Unspent
	for _, u := range us {
		if u.CampaignID != "" {
			out = append(out, u)
		}
	}
	return out
}

func plainOutputs(t testing.TB, s *state.Store, wallet string) []*statepb.Outpoint {
	t.Helper()
	us, err := s.Unspents(wallet, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []*statepb.Outpoint
	for _, u := range us {
		if u.CampaignID == "" {
			out = append(out, u.Outpoint)
		}
	}
	return out
}

func balance(t testing.TB, s *state.Store, wallet string) uint64 {
	t.Helper()
	w, err := s.Wallet(wallet)
	if err != nil {
		t.Fatal(err)
	}
	return w.GetBalanceFen()
}

// TestCampaignLifecycle plays a whole campaign on two stores fed the same
// bytes and checks every figure, the supply invariant after every block
// that matters, and that both stores end in the same state.
func TestCampaignLifecycle(t *testing.T) {
	var hashes [][]byte
	for range 2 {
		n := statetest.NewNet(t, "rp-lifecycle")
		hashes = append(hashes, campaignScenario(t, n, n.Open(t)))
	}
	if !bytes.Equal(hashes[0], hashes[1]) {
		t.Fatal("two stores fed the same campaign diverged")
	}
}

func campaignScenario(t *testing.T, n *statetest.Net, s *state.Store) []byte {
	w := newRPWorld(t, n, s)
	const id = "dbl12"
	seed := seedWhere(t, id, 5, []string{"alice", "carol"}, []string{"bob"})
	spec := w.spec(id, 5, seed)
	sponsor0 := balance(t, s, "suzhou")
	createRes := w.create(t, spec)
	statetest.Audit(t, s)
	if got := balance(t, s, "suzhou"); got != sponsor0-5*packetFen {
		t.Fatalf("sponsor after funding: %s", state.Fen(got))
	}
	if sup, _ := s.Supply(); sup.GetCampaignEscrowFen() != 5*packetFen {
		t.Fatalf("escrow %d", sup.GetCampaignEscrowFen())
	}

	// Enrolment: seven citizens, once each; a second try is refused.
	w.enrolAll(t, id, citizens...)
	again := w.c.Apply(t, n.Sign(t, statetest.EnrolBody(id, "alice"), n.Wallet("alice")))[0]
	wantCode(t, again, statepb.Code_CODE_ALREADY_ENROLLED)
	if c := campaignOf(t, s, id); c.GetEnrolled() != 7 {
		t.Fatalf("enrolled %d", c.GetEnrolled())
	}

	// The draw: another seed is refused and changes nothing; the committed
	// one is accepted.
	before := snapshotLedger(t, s)
	bad := w.c.ApplyAt(t, spec.EnrolEnd, n.Sign(t, statetest.DrawBody(id, statetest.Seed("a seed the sponsor likes better")), n.Wallet("suzhou")))[0]
	wantCode(t, bad, statepb.Code_CODE_DRAW_SEED_MISMATCH)
	wantUnchanged(t, before, snapshotLedger(t, s), bad.GetTxId(), true)
	draw := w.c.MustOK(t, n.Sign(t, statetest.DrawBody(id, seed), n.Wallet("suzhou")))
	w.c.Apply(t) // the grants run at the start of the next block
	statetest.Audit(t, s)

	// Winners: the ledger's equal an independent recomputation from the
	// revealed seed and the public enrolment list.
	c := campaignOf(t, s, id)
	if c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED || c.GetGranted() != 5 || c.GetGrantedFen() != 5*packetFen || c.GetEscrowFen() != 0 {
		t.Fatalf("after grants: %v", c)
	}
	ens, err := s.Enrolments(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	wins, err := s.Winners(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	recomputed := lottery.Draw{Seed: c.GetSeed(), Campaign: id, N: uint64(len(ens)), K: uint64(c.GetPacketCount())}.All()
	if len(wins) != len(recomputed) {
		t.Fatalf("%d winners, recomputed %d", len(wins), len(recomputed))
	}
	won := map[string]bool{}
	for r, e := range recomputed {
		if wins[r].GetEnrolment() != e || wins[r].GetWalletId() != ens[e].GetWalletId() {
			t.Fatalf("rank %d: ledger %v, recomputed enrolment %d (%s)", r, wins[r], e, ens[e].GetWalletId())
		}
		won[ens[e].GetWalletId()] = true
		rp := redPackets(t, s, ens[e].GetWalletId())
		if len(rp) != 1 || rp[0].AmountFen != packetFen || rp[0].CampaignID != id || !bytes.Equal(rp[0].Outpoint.GetTxId(), draw.GetTxId()) {
			t.Fatalf("winner %s red packets %v", ens[e].GetWalletId(), rp)
		}
	}
	if !won["alice"] || !won["carol"] || won["bob"] {
		t.Fatalf("winners %v", won)
	}

	// Spending opens at spend_start; before it the packet is refused.
	alicePacket := redPackets(t, s, "alice")[0].Outpoint
	early := w.c.Apply(t, n.Transfer(t, "alice", ins(alicePacket), statetest.Pay("shop", 10*yuan)))[0]
	wantCode(t, early, statepb.Code_CODE_RED_PACKET_OUTSIDE_WINDOW)

	// Alice buys ¥250 at a Suzhou shop: her red packet first, ¥50 of her own.
	alicePlain0 := balance(t, s, "alice") - packetFen
	buy := w.c.ApplyAt(t, spec.SpendStart, n.Transfer(t, "alice", ins(alicePacket, w.aliceB), statetest.Pay("shop", 250*yuan)))[0]
	wantCode(t, buy, statepb.Code_CODE_OK)
	if rp := redPackets(t, s, "alice"); len(rp) != 0 {
		t.Fatalf("alice still holds red packets %v", rp)
	}
	pay, err := s.Payment("shop", buy.GetTxId())
	if err != nil || pay.GetAmountFen() != 250*yuan || pay.GetRedPacketFen() != packetFen || pay.GetCampaignId() != id || pay.GetPayerWalletId() != "alice" {
		t.Fatalf("payment record %v, %v", pay, err)
	}

	// Carol's packet: not at Nanjing, not to a person, not redeemable; at
	// JD (on the list) she spends ¥120 and keeps ¥80 as a red packet.
	carolPacket := redPackets(t, s, "carol")[0].Outpoint
	for _, tc := range []struct {
		tx   []byte
		code statepb.Code
	}{
		{n.Transfer(t, "carol", ins(carolPacket), statetest.Pay("nanjing", 10*yuan)), statepb.Code_CODE_RED_PACKET_MERCHANT_INELIGIBLE},
		{n.Transfer(t, "carol", ins(carolPacket), statetest.Pay("bob", 10*yuan)), statepb.Code_CODE_RED_PACKET_NOT_MERCHANT},
		{n.Sign(t, statetest.RedeemBody("carol", ins(carolPacket), 10*yuan), n.Wallet("carol")), statepb.Code_CODE_INPUT_RESTRICTED},
		{n.Transfer(t, "carol", ins(carolPacket), statetest.Pay("carol", 10*yuan)), statepb.Code_CODE_INPUT_RESTRICTED},
	} {
		before := snapshotLedger(t, s)
		r := w.c.Apply(t, tc.tx)[0]
		wantCode(t, r, tc.code)
		wantUnchanged(t, before, snapshotLedger(t, s), r.GetTxId(), true)
	}
	jdBuy := w.c.Apply(t, n.Transfer(t, "carol", ins(carolPacket), statetest.Pay("jd", 120*yuan)))[0]
	wantCode(t, jdBuy, statepb.Code_CODE_OK)
	if rp := redPackets(t, s, "carol"); len(rp) != 1 || rp[0].AmountFen != 80*yuan {
		t.Fatalf("carol's red-packet change %v", rp)
	}
	statetest.Audit(t, s)

	// Shop refunds alice: ¥30 (all self-funded), then ¥100 (¥20 self-funded,
	// ¥80 red packet, which comes back as a red packet), then more than is
	// left is refused.
	shopIn := func() []*statepb.Outpoint { return plainOutputs(t, s, "shop") }
	r1 := w.c.Apply(t, n.Sign(t, statetest.RefundBody("shop", buy.GetTxId(), shopIn(), 30*yuan), n.Wallet("shop")))[0]
	wantCode(t, r1, statepb.Code_CODE_OK)
	if rp := redPackets(t, s, "alice"); len(rp) != 0 {
		t.Fatalf("self-funded refund came back as a red packet: %v", rp)
	}
	r2 := w.c.Apply(t, n.Sign(t, statetest.RefundBody("shop", buy.GetTxId(), shopIn(), 100*yuan), n.Wallet("shop")))[0]
	wantCode(t, r2, statepb.Code_CODE_OK)
	if rp := redPackets(t, s, "alice"); len(rp) != 1 || rp[0].AmountFen != 80*yuan {
		t.Fatalf("red-packet refund: %v", rp)
	}
	if got := balance(t, s, "alice"); got != alicePlain0-250*yuan+packetFen+130*yuan {
		t.Fatalf("alice after refunds: %s", state.Fen(got))
	}
	over := w.c.Apply(t, n.Sign(t, statetest.RefundBody("shop", buy.GetTxId(), shopIn(), 120*yuan+1), n.Wallet("shop")))[0]
	wantCode(t, over, statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT)
	pay, _ = s.Payment("shop", buy.GetTxId())
	if pay.GetRefundedFen() != 130*yuan || pay.GetRefundedRedPacketFen() != 80*yuan || len(pay.GetRefunds()) != 2 {
		t.Fatalf("payment after refunds %v", pay)
	}
	statetest.Audit(t, s)

	// The window closes: everything unspent returns to the sponsor, with
	// nobody submitting anything (an empty block at the window's end).
	w.c.ApplyAt(t, spec.SpendEnd)
	statetest.Audit(t, s)
	c = campaignOf(t, s, id)
	if c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED || c.GetLiveFen() != 0 || c.GetEscrowFen() != 0 {
		t.Fatalf("after the window: %v", c)
	}
	for _, x := range citizens {
		if rp := redPackets(t, s, x); len(rp) != 0 {
			t.Fatalf("%s still holds red packets after the window: %v", x, rp)
		}
	}
	// After the window a refund's red-packet part goes to the sponsor.
	jdIn := plainOutputs(t, s, "jd")
	late := w.c.Apply(t, n.Sign(t, statetest.RefundBody("jd", jdBuy.GetTxId(), jdIn, 120*yuan), n.Wallet("jd")))[0]
	wantCode(t, late, statepb.Code_CODE_OK)
	statetest.Audit(t, s)

	// Figures: spent = ¥200 (alice) + ¥120 (carol); refunded to the holder
	// ¥80 (kept its condition, then reclaimed); refunded to the sponsor ¥120.
	// The sponsor holds exactly funded − spent + refunded (to holders and to
	// itself) more than after funding.
	c = campaignOf(t, s, id)
	spent, toHolder, toSponsor := uint64(320*yuan), uint64(80*yuan), uint64(120*yuan)
	if c.GetSpentFen() != spent || c.GetRefundedToHolderFen() != toHolder || c.GetRefundedToSponsorFen() != toSponsor || c.GetPayments() != 2 ||
		c.GetReclaimedFen() != 5*packetFen-spent+toHolder || c.GetReclaimedOutputs() != 5 || c.GetReclaimedTo() != "suzhou" {
		t.Fatalf("figures: %v", c)
	}
	if got, want := balance(t, s, "suzhou"), sponsor0-5*packetFen+(5*packetFen-spent+toHolder+toSponsor); got != want {
		t.Fatalf("sponsor holds %s, want funded − spent + refunded back: %s", state.Fen(got), state.Fen(want))
	}
	// The reclaimed output is output 1 of the create transaction.
	us, _ := s.Unspents("suzhou", nil, 0)
	if !slices.ContainsFunc(us, func(u state.Unspent) bool {
		return bytes.Equal(u.Outpoint.GetTxId(), createRes.GetTxId()) && u.Outpoint.GetIndex() == 1 && u.AmountFen == c.GetReclaimedFen()
	}) {
		t.Fatalf("sponsor outputs %v: no reclaim output", us)
	}
	// A reclaimed packet, spent again, is gone (and says so).
	again = w.c.Apply(t, n.Transfer(t, "carol", ins(&statepb.Outpoint{TxId: jdBuy.GetTxId(), Index: 1}), statetest.Pay("jd", yuan)))[0]
	wantCode(t, again, statepb.Code_CODE_INPUT_SPENT)
	return s.Meta().GetStateHash()
}

// TestCampaignChunks: 2,500 packets and 3,000 enrolments are granted and
// reclaimed in scheduled chunks within the per-block budget, with the
// invariant holding after every block, identically on two stores.
func TestCampaignChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 wallets")
	}
	const packets, people = 2500, 3000
	var hashes [][]byte
	for round := range 2 {
		n := statetest.NewNet(t, "rp-chunks")
		s := n.Open(t)
		w := newRPWorld(t, n, s)
		var regs, enrols [][]byte
		for i := range people {
			regs = append(regs, n.Register(t, "icbc", fmt.Sprintf("p%04d", i), personal, tier4, ""))
		}
		spec := w.spec("big", packets, statetest.Seed("big"))
		spec.Packets = packets
		mustAllOK(t, w.c.Apply(t, regs...))
		spec = w.spec("big", packets, statetest.Seed("big"))
		w.create(t, spec)
		for i := range people {
			id := fmt.Sprintf("p%04d", i)
			enrols = append(enrols, n.Sign(t, statetest.EnrolBody("big", id), n.Wallet(id)))
		}
		mustAllOK(t, w.c.Apply(t, enrols...))
		w.c.ApplyAt(t, spec.EnrolEnd, n.Sign(t, statetest.DrawBody("big", statetest.Seed("big")), n.Wallet("suzhou")))
		perBlock := state.ScheduledWorkPerBlock / 5
		var granted []uint64
		for campaignOf(t, s, "big").GetStatus() == statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING {
			w.c.Apply(t)
			statetest.Audit(t, s)
			granted = append(granted, campaignOf(t, s, "big").GetGranted())
		}
		if want := []uint64{uint64(perBlock), uint64(2 * perBlock), packets}; !slices.Equal(granted, want) {
			t.Fatalf("granted after each block %v, want %v", granted, want)
		}
		ens, _ := s.Enrolments("big", 0, 0)
		wins := map[string]bool{}
		for from := uint64(0); ; {
			page, err := s.Winners("big", from, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, x := range page {
				wins[x.GetWalletId()] = true
			}
			from = page[len(page)-1].GetRank() + 1
		}
		for _, e := range (lottery.Draw{Seed: statetest.Seed("big"), Campaign: "big", N: people, K: packets}).All() {
			if !wins[fmt.Sprintf("p%04d", e)] {
				t.Fatalf("enrolment %d should have won", e)
			}
		}
		if len(ens) != state.MaxPageSize || len(wins) != packets {
			t.Fatalf("%d enrolments on the first page, %d winners", len(ens), len(wins))
		}
		w.c.ApplyAt(t, spec.SpendEnd)
		blocks := 1
		for campaignOf(t, s, "big").GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED {
			statetest.Audit(t, s)
			w.c.Apply(t)
			blocks++
		}
		statetest.Audit(t, s)
		c := campaignOf(t, s, "big")
		if blocks != 2 || c.GetReclaimedFen() != packets*packetFen || c.GetReclaimedOutputs() != packets {
			t.Fatalf("reclaim took %d blocks: %v", blocks, c)
		}
		if _, due := s.NextDueMs(); due {
			t.Fatal("work still scheduled after the campaign finished")
		}
		hashes = append(hashes, s.Meta().GetStateHash())
		t.Logf("round %d: granted %v; reclaimed in %d blocks", round, granted, blocks)
	}
	if !bytes.Equal(hashes[0], hashes[1]) {
		t.Fatal("stores diverged")
	}
}

// TestCampaignFewerEnrolments: with fewer enrolments than packets everyone
// wins, and the undistributed packets return at the end; a campaign never
// drawn returns everything.
func TestCampaignFewerEnrolments(t *testing.T) {
	n := statetest.NewNet(t, "rp-few")
	s := n.Open(t)
	w := newRPWorld(t, n, s)
	spec := w.spec("few", 10, statetest.Seed("few"))
	w.create(t, spec)
	spec2 := w.spec("undrawn", 3, statetest.Seed("undrawn"))
	spec2.SpendEnd = spec.SpendEnd
	w.create(t, spec2)
	w.enrolAll(t, "few", "alice", "bob", "carol")
	w.enrolAll(t, "undrawn", "alice")
	w.c.ApplyAt(t, spec.EnrolEnd+1000, n.Sign(t, statetest.DrawBody("few", statetest.Seed("few")), n.Wallet("suzhou")))
	w.c.Apply(t)
	c := campaignOf(t, s, "few")
	if c.GetWinners() != 3 || c.GetGranted() != 3 || c.GetEscrowFen() != 7*packetFen {
		t.Fatalf("%v", c)
	}
	for _, x := range []string{"alice", "bob", "carol"} {
		if len(redPackets(t, s, x)) != 1 {
			t.Fatalf("%s did not win", x)
		}
	}
	s0 := balance(t, s, "suzhou")
	w.c.ApplyAt(t, spec.SpendEnd)
	statetest.Audit(t, s)
	if got := balance(t, s, "suzhou"); got != s0+13*packetFen {
		t.Fatalf("sponsor got back %s, want %s", state.Fen(got-s0), state.Fen(13*packetFen))
	}
	for _, id := range []string{"few", "undrawn"} {
		if c := campaignOf(t, s, id); c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED {
			t.Fatalf("%s: %v", id, c)
		}
	}
	// A draw after the end is refused.
	late := w.c.Apply(t, n.Sign(t, statetest.DrawBody("undrawn", statetest.Seed("undrawn")), n.Wallet("suzhou")))[0]
	wantCode(t, late, statepb.Code_CODE_DRAW_TOO_LATE)
}

// TestSubWalletPushAndCharge: a sub-wallet pushed to JD is charged by JD
// within its caps, refunded, revoked and emptied back to its parent;
// charges count against the parent's tier limits.
func TestSubWalletPushAndCharge(t *testing.T) {
	n := statetest.NewNet(t, "subwallet")
	s := n.Open(t)
	w := newRPWorld(t, n, s)
	c := w.c
	alice := n.Wallet("alice")
	c.MustOK(t, n.Sign(t, statetest.CreateSubWalletBody("alice", "alice.jd"), alice))
	sub, err := s.Wallet("alice.jd")
	if err != nil || sub.GetKind() != statepb.WalletKind_WALLET_KIND_SUB_WALLET || sub.GetParentWalletId() != "alice" || sub.GetBankId() != "icbc" || sub.GetTier() != tier4 || len(sub.GetPublicKey()) != 0 {
		t.Fatalf("sub-wallet %v, %v", sub, err)
	}
	fund := c.MustOK(t, n.Sign(t, statetest.FundSubWalletBody("alice.jd", ins(w.aliceB), 1000*yuan), alice))
	wantBalance(t, s, "alice.jd", 1000*yuan)
	if got := balance(t, s, "alice"); got != 4000*yuan {
		t.Fatalf("alice %s", state.Fen(got))
	}
	if a, _ := s.Wallet("alice"); a.GetSpentDayFen() != 0 {
		t.Fatal("funding a sub-wallet counted as a payment")
	}
	// The holder cannot spend the sub-wallet with a plain transfer: it has
	// no key of its own.
	subIn := outOf(fund, 0)
	r := c.Apply(t, n.Sign(t, statetest.TransferBody("alice.jd", ins(subIn), statetest.Pay("shop", yuan)), alice))[0]
	wantCode(t, r, statepb.Code_CODE_SIGNER_UNAUTHORIZED)

	expires := c.TimeMs + 48*3600*1000
	c.MustOK(t, n.Sign(t, statetest.PushSubWalletBody("alice.jd", "jd", 300*yuan, 500*yuan, expires), alice))
	charge := func(platform string, fen uint64) *statepb.TxResult {
		t.Helper()
		us, err := s.Unspents("alice.jd", nil, 0)
		if err != nil || len(us) == 0 {
			t.Fatalf("sub-wallet outputs %v, %v", us, err)
		}
		var in []*statepb.Outpoint
		for _, u := range us {
			in = append(in, u.Outpoint)
		}
		return c.Apply(t, n.Sign(t, statetest.ChargeBody(platform, "alice.jd", in, fen), n.Wallet(platform)))[0]
	}
	ok := charge("jd", 200*yuan)
	wantCode(t, ok, statepb.Code_CODE_OK)
	wantBalance(t, s, "jd", 200*yuan)
	if a, _ := s.Wallet("alice"); a.GetSpentDayFen() != 200*yuan {
		t.Fatalf("parent's daily counter %d, want the charge", a.GetSpentDayFen())
	}
	wantCode(t, charge("jd", 300*yuan+1), statepb.Code_CODE_SUBWALLET_LIMIT_PAYMENT)
	wantCode(t, charge("jd", 300*yuan), statepb.Code_CODE_OK) // 500 today: at the cap
	wantCode(t, charge("jd", 1), statepb.Code_CODE_SUBWALLET_LIMIT_DAILY)
	wantCode(t, charge("meituan", yuan), statepb.Code_CODE_SUBWALLET_WRONG_PLATFORM)
	// JD refunds part of the first charge, to the sub-wallet.
	jdIn := plainOutputs(t, s, "jd")
	c.MustOK(t, n.Sign(t, statetest.RefundBody("jd", ok.GetTxId(), jdIn, 50*yuan), n.Wallet("jd")))
	wantBalance(t, s, "alice.jd", 550*yuan)
	// The next Beijing day the cap is fresh.
	c.ApplyAt(t, c.TimeMs+24*3600*1000)
	wantCode(t, charge("jd", 100*yuan), statepb.Code_CODE_OK)
	// After expiry: refused.
	c.ApplyAt(t, expires)
	wantCode(t, charge("jd", yuan), statepb.Code_CODE_SUBWALLET_EXPIRED)
	// Pushed again, then revoked at once: refused.
	c.MustOK(t, n.Sign(t, statetest.PushSubWalletBody("alice.jd", "jd", 300*yuan, 500*yuan, c.TimeMs+3_600_000), alice))
	wantCode(t, charge("jd", yuan), statepb.Code_CODE_OK)
	c.MustOK(t, n.Sign(t, statetest.RevokeSubWalletBody("alice.jd"), alice))
	wantCode(t, charge("jd", yuan), statepb.Code_CODE_SUBWALLET_REVOKED)
	// The holder pulls everything back.
	left := balance(t, s, "alice.jd")
	var in []*statepb.Outpoint
	us, _ := s.Unspents("alice.jd", nil, 0)
	for _, u := range us {
		in = append(in, u.Outpoint)
	}
	a0 := balance(t, s, "alice")
	c.MustOK(t, n.Sign(t, statetest.WithdrawSubWalletBody("alice.jd", in, left), alice))
	wantBalance(t, s, "alice.jd", 0)
	wantBalance(t, s, "alice", a0+left)
	rec, err := s.SubWallet("alice.jd")
	if err != nil || !rec.GetRevoked() || rec.GetPlatformWalletId() != "jd" || rec.GetCharges() != 4 || rec.GetChargedFen() != 601*yuan {
		t.Fatalf("sub-wallet record %v, %v", rec, err)
	}
	statetest.Audit(t, s)
	// The merchant's view: JD received four charges, one partly refunded.
	pays, _, err := s.Payments("jd", 0, 0)
	if err != nil || len(pays) != 4 || pays[3].GetRefundedFen() != 50*yuan || pays[0].GetKind() != "charge_sub_wallet" {
		t.Fatalf("jd's payments %v, %v", pays, err)
	}
}
