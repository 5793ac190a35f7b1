package main

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/state/statepb"
)

// Merchants (SPEC §5): dcep charge (a platform charging a pushed
// sub-wallet), dcep refund, dcep payments (a merchant's view of what it
// received).

func (a *app) chargeCmd() *cobra.Command {
	var platform, sub, amt, memo string
	cmd := &cobra.Command{
		Use:   "charge --platform NAME --subwallet ID --amount YUAN",
		Short: "Platform: charge a sub-wallet pushed to it (signed with the platform's key)",
		Long: `charge is a merchant platform (e.g. JD) charging a sub-wallet a holder pushed to
it, signed with the platform's own key from the keystore, without the holder. The
ledger refuses a charge over the per-payment cap (SUBWALLET_LIMIT_PAYMENT), over
the daily cap (SUBWALLET_LIMIT_DAILY), after expiry (SUBWALLET_EXPIRED), after
the holder revoked (SUBWALLET_REVOKED), or by another platform
(SUBWALLET_WRONG_PLATFORM). Charges count against the parent wallet's tier
limits too.`,
		Example: `  dcep charge --platform jd --subwallet alice.jd --amount 99 --memo "order 2026121100042"`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "platform", "subwallet", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			k, err := a.walletKey(platform)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl, err := a.client()
			if err != nil {
				return err
			}
			r, err := cl.Charge(ctx, k.Private, k.WalletID, sub, fen, txOpts(memo)...)
			if err != nil {
				return err
			}
			bal, ok := a.balanceAfter(ctx, sub)
			return a.moneyOut(r, "charge_sub_wallet", sub, k.WalletID, fen, memo, sub, bal, ok,
				fmt.Sprintf("%s charged %s to sub-wallet %s", k.WalletID, yuan(fen), sub))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&platform, "platform", "", "platform merchant wallet (keystore name)")
	f.StringVar(&sub, "subwallet", "", "sub-wallet id")
	f.StringVar(&amt, "amount", "", "amount in yuan")
	f.StringVar(&memo, "memo", "", "memo, e.g. the order number")
	return cmd
}

type paymentJSON struct {
	TxID              string `json:"tx_id"`
	Kind              string `json:"kind"`
	Payer             string `json:"payer"`
	AmountFen         uint64 `json:"amount_fen"`
	Amount            string `json:"amount"`
	RedPacketFen      uint64 `json:"red_packet_fen"`
	Campaign          string `json:"campaign,omitempty"`
	RefundedFen       uint64 `json:"refunded_fen"`
	RefundedRedPacket uint64 `json:"refunded_red_packet_fen"`
	Refunds           int    `json:"refunds"`
	Time              string `json:"time"`
	LogIndex          uint64 `json:"log_index"`
}

func (a *app) refundCmd() *cobra.Command {
	var merchant, payment, amt, memo string
	cmd := &cobra.Command{
		Use:   "refund --merchant NAME --payment TX_ID [--amount YUAN]",
		Short: "Merchant: refund a payment, in full or in part",
		Long: `refund returns (part of) a payment the merchant received, from the merchant's own
money, to the payer. The self-funded part goes back first, then the red-packet
part, which comes back as a red packet with the campaign's conditions while its
spending window is open (after it closes, that part goes to the campaign's
sponsor). Without --amount, everything still refundable is refunded; more than
that is refused (REFUND_EXCEEDS_PAYMENT).`,
		Example: `  dcep refund --merchant shop --payment 3f2a9c0e5d7b41a6c8e2f0b9d4a7c6e1f3b5d7a9c1e3f5b7d9a1c3e5f7b9d1a3 --amount 20`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "merchant", "payment"); err != nil {
				return err
			}
			var fen uint64
			var err error
			if amt != "" {
				if fen, err = parseAmount("amount", amt); err != nil {
					return err
				}
			}
			k, err := a.walletKey(merchant)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			id, err := a.txID(ctx, payment)
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			r, err := cl.Refund(ctx, k.Private, k.WalletID, id, fen, txOpts(memo)...)
			if err != nil {
				return err
			}
			p, err := cl.Payment(ctx, k.WalletID, id, client.Linearizable())
			if err != nil {
				return err
			}
			pay := p.GetPayment()
			last := pay.GetRefunds()[len(pay.GetRefunds())-1]
			out := struct {
				txJSON
				Payment       paymentJSON `json:"payment"`
				SelfFundedFen uint64      `json:"self_funded_fen"`
				RedPacketFen  uint64      `json:"red_packet_fen"`
				RedPacketTo   string      `json:"red_packet_to,omitempty"`
			}{txOut(r), paymentOut(pay), last.GetSelfFundedFen(), last.GetRedPacketFen(), last.GetRedPacketTo()}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "%s refunded %s of payment %s to %s\n", k.WalletID, yuan(last.GetSelfFundedFen()+last.GetRedPacketFen()), shortID(id[:]), pay.GetPayerWalletId())
				if last.GetSelfFundedFen() > 0 {
					fmt.Fprintf(w, "  %s self-funded\n", yuan(last.GetSelfFundedFen()))
				}
				if rp := last.GetRedPacketFen(); rp > 0 {
					if last.GetRedPacketTo() == pay.GetPayerWalletId() {
						fmt.Fprintf(w, "  %s as a red packet of %s (its conditions kept)\n", yuan(rp), pay.GetCampaignId())
					} else {
						fmt.Fprintf(w, "  %s red-packet money to the sponsor %s (the campaign's window has closed)\n", yuan(rp), last.GetRedPacketTo())
					}
				}
				fmt.Fprintf(w, "  %s of %s refunded so far\n", yuan(pay.GetRefundedFen()), yuan(pay.GetAmountFen()))
				writeTx(w, r)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&merchant, "merchant", "", "merchant wallet (keystore name)")
	f.StringVar(&payment, "payment", "", "the payment's transaction id")
	f.StringVar(&amt, "amount", "", "amount in yuan (default: all that is refundable)")
	f.StringVar(&memo, "memo", "", "memo recorded with the refund")
	return cmd
}

func paymentOut(p interface {
	GetTxId() []byte
	GetKind() string
	GetPayerWalletId() string
	GetAmountFen() uint64
	GetRedPacketFen() uint64
	GetCampaignId() string
	GetRefundedFen() uint64
	GetRefundedRedPacketFen() uint64
	GetTimeMs() int64
	GetLogIndex() uint64
}) paymentJSON {
	out := paymentJSON{
		TxID: hex.EncodeToString(p.GetTxId()), Kind: p.GetKind(), Payer: p.GetPayerWalletId(), AmountFen: p.GetAmountFen(), Amount: plain(p.GetAmountFen()),
		RedPacketFen: p.GetRedPacketFen(), Campaign: p.GetCampaignId(), RefundedFen: p.GetRefundedFen(), RefundedRedPacket: p.GetRefundedRedPacketFen(),
		Time: whenJSON(p.GetTimeMs()), LogIndex: p.GetLogIndex(),
	}
	return out
}

func (a *app) paymentsCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "payments MERCHANT [--limit N]",
		Short: "Merchant: payments received, newest first, with red-packet parts and refunds",
		Long: `payments is a merchant's view of what it received: transfers and sub-wallet
charges, newest first, with how much was red-packet money (and of which
campaign) and how much has been refunded. TX ids are what dcep refund takes.`,
		Example: `  dcep payments shop
  dcep --json payments jd --limit 100`,
		Args: args(1, "a merchant wallet"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			w, err := a.lookupWallet(ctx, argv[0], codeWalletNotFound)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			var out []paymentJSON
			var times []int64
			for p, err := range cl.Payments(ctx, w.ID, a.reads()...) {
				if err != nil {
					return err
				}
				j := paymentOut(p)
				j.Refunds = len(p.GetRefunds())
				out = append(out, j)
				times = append(times, p.GetTimeMs())
				if limit > 0 && len(out) == limit {
					break
				}
			}
			if out == nil {
				out = []paymentJSON{}
			}
			return a.emit(out, func(wr io.Writer) {
				if len(out) == 0 {
					fmt.Fprintf(wr, "%s has received no payments\n", w.ID)
					return
				}
				t := newTable("TIME (UTC+8)", "PAYER", "AMOUNT", "RED PACKET", "REFUNDED", "KIND", "TX").alignRight(2, 3, 4)
				var total, rp, refunded uint64
				for i, p := range out {
					red := "-"
					if p.RedPacketFen > 0 {
						red = yuan(p.RedPacketFen) + " " + p.Campaign
					}
					t.add(when(times[i]), p.Payer, yuan(p.AmountFen), red, yuan(p.RefundedFen), p.Kind, p.TxID[:12])
					total += p.AmountFen
					rp += p.RedPacketFen
					refunded += p.RefundedFen
				}
				t.write(wr)
				fmt.Fprintf(wr, "%d payments: %s received (%s of it red-packet money), %s refunded\n", len(out), yuan(total), yuan(rp), yuan(refunded))
			})
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most N payments (0: all)")
	return cmd
}

// describeProgrammable says what a programmable-money transaction does
// (dcep tx); false for other kinds.
func describeProgrammable(body *statepb.Tx) (kind, summary string, ok bool) {
	switch k := body.GetKind().(type) {
	case *statepb.Tx_CreateCampaign:
		c := k.CreateCampaign
		total, _ := c.TotalFen()
		return "create_campaign", fmt.Sprintf("campaign %s by %s: %d red packets of %s (%s into escrow)", c.GetCampaignId(), c.GetSponsorWalletId(), c.GetPacketCount(), yuan(c.GetPacketFen()), yuan(total)), true
	case *statepb.Tx_AddCampaignMerchants:
		return "add_campaign_merchants", fmt.Sprintf("add %d merchants to campaign %s", len(k.AddCampaignMerchants.GetMerchantIds()), k.AddCampaignMerchants.GetCampaignId()), true
	case *statepb.Tx_EnrolCampaign:
		return "enrol_campaign", fmt.Sprintf("enrol %s in campaign %s", k.EnrolCampaign.GetWalletId(), k.EnrolCampaign.GetCampaignId()), true
	case *statepb.Tx_DrawCampaign:
		return "draw_campaign", fmt.Sprintf("draw campaign %s with seed %x", k.DrawCampaign.GetCampaignId(), k.DrawCampaign.GetSeed()), true
	case *statepb.Tx_RefundPayment:
		r := k.RefundPayment
		return "refund_payment", fmt.Sprintf("%s refunds %s of payment %s", r.GetMerchantWalletId(), yuan(r.GetAmountFen()), shortID(r.GetPaymentTxId())), true
	case *statepb.Tx_CreateSubWallet:
		return "create_sub_wallet", fmt.Sprintf("open sub-wallet %s under %s", k.CreateSubWallet.GetSubWalletId(), k.CreateSubWallet.GetParentWalletId()), true
	case *statepb.Tx_FundSubWallet:
		return "fund_sub_wallet", fmt.Sprintf("move %s into sub-wallet %s", yuan(k.FundSubWallet.GetAmountFen()), k.FundSubWallet.GetSubWalletId()), true
	case *statepb.Tx_PushSubWallet:
		p := k.PushSubWallet
		return "push_sub_wallet", fmt.Sprintf("push %s to %s: %s a payment, %s a day, until %s", p.GetSubWalletId(), p.GetPlatformWalletId(), yuan(p.GetMaxPaymentFen()), yuan(p.GetMaxDailyFen()), when(p.GetExpiresMs())), true
	case *statepb.Tx_RevokeSubWallet:
		return "revoke_sub_wallet", fmt.Sprintf("revoke sub-wallet %s's push", k.RevokeSubWallet.GetSubWalletId()), true
	case *statepb.Tx_WithdrawSubWallet:
		return "withdraw_sub_wallet", fmt.Sprintf("move %s from sub-wallet %s back to its parent", yuan(k.WithdrawSubWallet.GetAmountFen()), k.WithdrawSubWallet.GetSubWalletId()), true
	case *statepb.Tx_ChargeSubWallet:
		c := k.ChargeSubWallet
		return "charge_sub_wallet", fmt.Sprintf("%s charges %s to sub-wallet %s", c.GetPlatformWalletId(), yuan(c.GetAmountFen()), c.GetSubWalletId()), true
	}
	return "", "", false
}
