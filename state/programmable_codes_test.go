package state_test

import (
	"testing"

	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// granted creates campaign id with one packet for each of names, enrols
// them (so all win), draws and grants; the chain is then after the draw,
// before the spending window.
func (w *rpWorld) granted(t *testing.T, id string, names ...string) statetest.Campaign {
	t.Helper()
	spec := w.spec(id, uint32(len(names)), statetest.Seed(id))
	w.create(t, spec)
	w.enrolAll(t, id, names...)
	w.c.ApplyAt(t, spec.EnrolEnd, w.n.Sign(t, statetest.DrawBody(id, spec.Seed), w.n.Wallet("suzhou")))
	w.c.Apply(t) // grants
	return spec
}

// packet is a wallet's red packet of a campaign.
func (w *rpWorld) packet(t *testing.T, wallet, campaign string) *statepb.Outpoint {
	t.Helper()
	for _, u := range redPackets(t, w.s, wallet) {
		if u.CampaignID == campaign {
			return u.Outpoint
		}
	}
	t.Fatalf("%s holds no red packet of %s", wallet, campaign)
	return nil
}

// pushed creates alice.jd under alice, funds it with ¥1,000 and pushes it
// to jd (¥300 per payment, ¥500 a day) until expires (0: in a day).
func (w *rpWorld) pushed(t *testing.T, expires int64) *statepb.TxResult {
	t.Helper()
	alice := w.n.Wallet("alice")
	if expires == 0 {
		expires = w.c.TimeMs + 86_400_000
	}
	mustAllOK(t, w.c.Apply(t,
		w.n.Sign(t, statetest.CreateSubWalletBody("alice", "alice.jd"), alice),
		w.n.Sign(t, statetest.FundSubWalletBody("alice.jd", ins(w.aliceB), 1000*yuan), alice),
		w.n.Sign(t, statetest.PushSubWalletBody("alice.jd", "jd", 300*yuan, 500*yuan, expires), alice),
	))
	return nil
}

func (w *rpWorld) subInputs(t *testing.T) []*statepb.Outpoint {
	t.Helper()
	return plainOutputs(t, w.s, "alice.jd")
}

// programmableCodeCases are codeCases for the codes of programmable money
// (SPEC §5); TestCodes runs them like the others.
func programmableCodeCases() []codeCase {
	sponsor := func(f *fixture) []byte { return nil }
	_ = sponsor
	create := func(t *testing.T, w *rpWorld, c statetest.Campaign) []byte {
		return w.n.Sign(t, statetest.CreateCampaignBody(c), w.n.Wallet("suzhou"))
	}
	charge := func(t *testing.T, w *rpWorld, platform string, fen uint64) []byte {
		return w.n.Sign(t, statetest.ChargeBody(platform, "alice.jd", w.subInputs(t), fen), w.n.Wallet(platform))
	}
	return []codeCase{
		{"campaign id taken", statepb.Code_CODE_CAMPAIGN_EXISTS, "create_campaign.campaign_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.create(t, w.spec("c1", 1, statetest.Seed("c1")))
			return create(t, w, w.spec("c1", 1, statetest.Seed("c1")))
		}},
		{"enrol in an unknown campaign", statepb.Code_CODE_CAMPAIGN_NOT_FOUND, "enrol_campaign.campaign_id", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Sign(t, statetest.EnrolBody("nope", "alice"), f.n.Wallet("alice"))
		}},
		{"campaign whose enrolment has already closed", statepb.Code_CODE_CAMPAIGN_TOO_LATE, "create_campaign.enrol_end_ms", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.spec("c1", 1, statetest.Seed("c1"))
			c.EnrolStart, c.EnrolEnd = w.c.TimeMs-5000, w.c.TimeMs+1000
			return create(t, w, c)
		}},
		{"merchants added once spending opened", statepb.Code_CODE_CAMPAIGN_MERCHANTS_CLOSED, "add_campaign_merchants.campaign_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.spec("c1", 1, statetest.Seed("c1"))
			w.create(t, c)
			w.c.ApplyAt(t, c.SpendStart-1000)
			return w.n.Sign(t, statetest.AddMerchantsBody("c1", "nanjing"), w.n.Wallet("suzhou"))
		}},
		{"enrolment after the window", statepb.Code_CODE_ENROLMENT_CLOSED, "enrol_campaign.campaign_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.spec("c1", 1, statetest.Seed("c1"))
			w.create(t, c)
			w.c.ApplyAt(t, c.EnrolEnd-1000)
			return w.n.Sign(t, statetest.EnrolBody("c1", "alice"), w.n.Wallet("alice"))
		}},
		{"enrolling twice", statepb.Code_CODE_ALREADY_ENROLLED, "enrol_campaign.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.create(t, w.spec("c1", 1, statetest.Seed("c1")))
			w.enrolAll(t, "c1", "alice")
			return w.n.Sign(t, statetest.EnrolBody("c1", "alice"), w.n.Wallet("alice"))
		}},
		{"draw while enrolment is open", statepb.Code_CODE_DRAW_TOO_EARLY, "draw_campaign.campaign_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.create(t, w.spec("c1", 1, statetest.Seed("c1")))
			return w.n.Sign(t, statetest.DrawBody("c1", statetest.Seed("c1")), w.n.Wallet("suzhou"))
		}},
		{"draw after the campaign closed", statepb.Code_CODE_DRAW_TOO_LATE, "draw_campaign.campaign_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.spec("c1", 1, statetest.Seed("c1"))
			w.create(t, c)
			w.c.ApplyAt(t, c.SpendEnd) // reclaimed
			return w.n.Sign(t, statetest.DrawBody("c1", statetest.Seed("c1")), w.n.Wallet("suzhou"))
		}},
		{"wrong seed at the draw", statepb.Code_CODE_DRAW_SEED_MISMATCH, "draw_campaign.seed", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.spec("c1", 1, statetest.Seed("c1"))
			w.create(t, c)
			w.enrolAll(t, "c1", "alice", "bob")
			w.c.ApplyAt(t, c.EnrolEnd-1000)
			return w.n.Sign(t, statetest.DrawBody("c1", statetest.Seed("another")), w.n.Wallet("suzhou"))
		}},
		{"drawing twice", statepb.Code_CODE_ALREADY_DRAWN, "draw_campaign.campaign_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.granted(t, "c1", "alice")
			return w.n.Sign(t, statetest.DrawBody("c1", statetest.Seed("c1")), w.n.Wallet("suzhou"))
		}},
		{"red packet to a person", statepb.Code_CODE_RED_PACKET_NOT_MERCHANT, "transfer.payees[0]", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.granted(t, "c1", "alice")
			w.c.ApplyAt(t, c.SpendStart-1000)
			return w.n.Transfer(t, "alice", ins(w.packet(t, "alice", "c1")), statetest.Pay("bob", 10*yuan))
		}},
		{"red packet at an ineligible merchant", statepb.Code_CODE_RED_PACKET_MERCHANT_INELIGIBLE, "transfer.payees[0]", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.granted(t, "c1", "alice")
			w.c.ApplyAt(t, c.SpendStart-1000)
			return w.n.Transfer(t, "alice", ins(w.packet(t, "alice", "c1")), statetest.Pay("nanjing", 10*yuan))
		}},
		{"red packet outside the spending window", statepb.Code_CODE_RED_PACKET_OUTSIDE_WINDOW, "transfer.inputs", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.granted(t, "c1", "alice")
			return w.n.Transfer(t, "alice", ins(w.packet(t, "alice", "c1")), statetest.Pay("shop", 10*yuan))
		}},
		{"red packets of two campaigns", statepb.Code_CODE_RED_PACKET_MIXED, "transfer.inputs[1]", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.granted(t, "c1", "alice")
			w.granted(t, "c2", "alice")
			w.c.ApplyAt(t, c.SpendStart+60_000)
			return w.n.Transfer(t, "alice", ins(w.packet(t, "alice", "c1"), w.packet(t, "alice", "c2")), statetest.Pay("shop", 300*yuan))
		}},
		{"redeeming a red packet", statepb.Code_CODE_INPUT_RESTRICTED, "not redeemable", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			c := w.granted(t, "c1", "alice")
			w.c.ApplyAt(t, c.SpendStart-1000)
			return w.n.Sign(t, statetest.RedeemBody("alice", ins(w.packet(t, "alice", "c1")), 10*yuan), w.n.Wallet("alice"))
		}},
		{"refund of no such payment", statepb.Code_CODE_PAYMENT_NOT_FOUND, "refund_payment.payment_tx_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			pay := w.c.MustOK(t, w.n.Transfer(t, "alice", ins(w.aliceA), statetest.Pay("shop", 10*yuan)))
			// jd refunds a payment that went to the shop.
			jdIn := w.c.Fund(t, w.n, "icbc", "jd", 100*yuan)
			return w.n.Sign(t, statetest.RefundBody("jd", pay.GetTxId(), ins(jdIn), yuan), w.n.Wallet("jd"))
		}},
		{"refund above what is left", statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT, "refund_payment.amount_fen", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			pay := w.c.MustOK(t, w.n.Transfer(t, "alice", ins(w.aliceA), statetest.Pay("shop", 10*yuan)))
			return w.n.Sign(t, statetest.RefundBody("shop", pay.GetTxId(), ins(outOf(pay, 0)), 10*yuan+1), w.n.Wallet("shop"))
		}},
		{"too many refunds", statepb.Code_CODE_REFUND_TOO_MANY, "refund_payment.payment_tx_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			pay := w.c.MustOK(t, w.n.Transfer(t, "alice", ins(w.aliceA), statetest.Pay("shop", 100*yuan)))
			in := outOf(pay, 0)
			var txs [][]byte
			for range statepb.MaxRefundsPerPayment {
				raw, id := w.n.SignID(t, statetest.RefundBody("shop", pay.GetTxId(), ins(in), 1), w.n.Wallet("shop"))
				txs = append(txs, raw)
				in = statetest.Out(id, 1) // the change
			}
			mustAllOK(t, w.c.Apply(t, txs...))
			return w.n.Sign(t, statetest.RefundBody("shop", pay.GetTxId(), ins(in), 1), w.n.Wallet("shop"))
		}},
		{"charge of a sub-wallet not pushed", statepb.Code_CODE_SUBWALLET_NOT_PUSHED, "charge_sub_wallet.sub_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			alice := w.n.Wallet("alice")
			mustAllOK(t, w.c.Apply(t,
				w.n.Sign(t, statetest.CreateSubWalletBody("alice", "alice.jd"), alice),
				w.n.Sign(t, statetest.FundSubWalletBody("alice.jd", ins(w.aliceB), 1000*yuan), alice)))
			return charge(t, w, "jd", yuan)
		}},
		{"charge by another platform", statepb.Code_CODE_SUBWALLET_WRONG_PLATFORM, "charge_sub_wallet.platform_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.pushed(t, 0)
			return charge(t, w, "meituan", yuan)
		}},
		{"charge after revoke", statepb.Code_CODE_SUBWALLET_REVOKED, "charge_sub_wallet.sub_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.pushed(t, 0)
			w.c.MustOK(t, w.n.Sign(t, statetest.RevokeSubWalletBody("alice.jd"), w.n.Wallet("alice")))
			return charge(t, w, "jd", yuan)
		}},
		{"charge after expiry", statepb.Code_CODE_SUBWALLET_EXPIRED, "charge_sub_wallet.sub_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.pushed(t, w.c.TimeMs+1500)
			return charge(t, w, "jd", yuan)
		}},
		{"charge over the per-payment cap", statepb.Code_CODE_SUBWALLET_LIMIT_PAYMENT, "charge_sub_wallet.amount_fen", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.pushed(t, 0)
			return charge(t, w, "jd", 300*yuan+1)
		}},
		{"charge over the daily cap", statepb.Code_CODE_SUBWALLET_LIMIT_DAILY, "charge_sub_wallet.amount_fen", true, func(t *testing.T, f *fixture) []byte {
			w := rpOn(t, f)
			w.pushed(t, 0)
			w.c.MustOK(t, charge(t, w, "jd", 300*yuan))
			return charge(t, w, "jd", 200*yuan+1)
		}},
	}
}
