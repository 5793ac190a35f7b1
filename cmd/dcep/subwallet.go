package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// Sub-wallets pushed to platforms (SPEC §5): dcep subwallet
// create|fund|push|revoke|withdraw|show, and dcep charge (charge.go).

func (a *app) subwalletCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "subwallet",
		Short: "Holder: sub-wallets pushed to a merchant platform (create, fund, push, revoke, show)",
		Long: `subwallet manages sub-wallets (SPEC §5). A holder creates a sub-wallet under their
wallet (same bank and tier), funds it, and pushes it to a merchant platform such
as JD with a per-payment cap, a daily cap (Beijing-time days) and an expiry. The
platform then charges it with its own key (dcep charge), without the holder,
within those caps. The holder can revoke at once and pull the money back.

A sub-wallet has no key of its own: everything the holder does with it is signed
with the parent wallet's key from the keystore.`,
		Example: `  dcep subwallet create alice.jd --parent alice
  dcep subwallet fund alice.jd --amount 500
  dcep subwallet push alice.jd --platform jd --max-payment 200 --max-daily 300 --expires +30d
  dcep charge --platform jd --subwallet alice.jd --amount 99
  dcep subwallet revoke alice.jd`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.subCreateCmd(), a.subFundCmd(), a.subPushCmd(), a.subRevokeCmd(), a.subWithdrawCmd(), a.subShowCmd())
	return cmd
}

// subAndParentKey reads a sub-wallet and finds its parent's key in the
// keystore.
func (a *app) subAndParentKey(ctx context.Context, sub string) (*nodepb.GetSubWalletResponse, *keystore.Key, error) {
	if err := statepb.ValidateID("sub-wallet", sub); err != nil {
		return nil, nil, usage("sub-wallet %q: ids use a-z 0-9 . _ -", sub)
	}
	cl, err := a.client()
	if err != nil {
		return nil, nil, err
	}
	resp, err := cl.SubWallet(ctx, sub, a.reads()...)
	if errors.Is(err, client.ErrNotFound) {
		return nil, nil, fail(exitRefused, codeWalletNotFound, "no sub-wallet %q on the network at %s", sub, a.node).
			hint("create one: dcep subwallet create %s --parent WALLET", sub)
	}
	if err != nil {
		return nil, nil, err
	}
	k, err := a.walletKey(resp.GetSubWallet().GetParentWalletId())
	if err != nil {
		return nil, nil, err
	}
	return resp, k, nil
}

type subWalletJSON struct {
	SubWallet     string `json:"sub_wallet"`
	Parent        string `json:"parent"`
	Bank          string `json:"bank"`
	Status        string `json:"status"`
	BalanceFen    uint64 `json:"balance_fen"`
	Balance       string `json:"balance"`
	Platform      string `json:"platform,omitempty"`
	MaxPaymentFen uint64 `json:"max_payment_fen,omitempty"`
	MaxDailyFen   uint64 `json:"max_daily_fen,omitempty"`
	Expires       string `json:"expires,omitempty"`
	Pushed        string `json:"pushed,omitempty"`
	Revoked       bool   `json:"revoked"`
	ChargedToday  uint64 `json:"charged_today_fen"`
	ChargedFen    uint64 `json:"charged_fen"`
	Charges       uint64 `json:"charges"`
	// State: "not pushed", "pushed", "revoked", "expired".
	State string `json:"state"`
}

func subOut(r *nodepb.GetSubWalletResponse) subWalletJSON {
	s, w := r.GetSubWallet(), r.GetWallet()
	now := r.GetFreshness().GetLedgerTimeMs()
	out := subWalletJSON{
		SubWallet: s.GetSubWalletId(), Parent: s.GetParentWalletId(), Bank: w.GetBankId(), Status: statusName(w.GetStatus()),
		BalanceFen: w.GetBalanceFen(), Balance: plain(w.GetBalanceFen()), Platform: s.GetPlatformWalletId(),
		MaxPaymentFen: s.GetMaxPaymentFen(), MaxDailyFen: s.GetMaxDailyFen(), Expires: whenJSON(s.GetExpiresMs()), Pushed: whenJSON(s.GetPushedMs()),
		Revoked: s.GetRevoked(), ChargedFen: s.GetChargedFen(), Charges: s.GetCharges(),
	}
	if s.GetSpendDay() == beijingDay(now) {
		out.ChargedToday = s.GetSpentDayFen()
	}
	switch {
	case s.GetPlatformWalletId() == "":
		out.State = "not pushed"
	case s.GetRevoked():
		out.State = "revoked"
	case now >= s.GetExpiresMs():
		out.State = "expired"
	default:
		out.State = "pushed"
	}
	return out
}

// beijingDay is the Beijing-time day number of ledger time ms (as the
// ledger counts daily caps).
func beijingDay(ms int64) int64 {
	local := ms + 8*3600*1000
	d := local / 86_400_000
	if local%86_400_000 < 0 {
		d--
	}
	return d
}

func writeSub(w io.Writer, s subWalletJSON) {
	fmt.Fprintf(w, "sub-wallet %s of %s (bank %s, %s): %s\n", s.SubWallet, s.Parent, s.Bank, s.Status, yuan(s.BalanceFen))
	switch s.State {
	case "not pushed":
		fmt.Fprintln(w, "not pushed to any platform")
	default:
		fmt.Fprintf(w, "%s to %s: up to %s a payment, %s a day (%s charged today), until %s\n",
			s.State, s.Platform, yuan(s.MaxPaymentFen), yuan(s.MaxDailyFen), yuan(s.ChargedToday), s.Expires)
		fmt.Fprintf(w, "%d charges, %s in all\n", s.Charges, yuan(s.ChargedFen))
	}
}

func (a *app) subCreateCmd() *cobra.Command {
	var parent string
	cmd := &cobra.Command{
		Use:     "create SUB_WALLET --parent WALLET",
		Short:   "Holder: open a sub-wallet under your wallet (signed with its key)",
		Example: `  dcep subwallet create alice.jd --parent alice`,
		Args:    args(1, "a sub-wallet id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			if err := required(cmd, "parent"); err != nil {
				return err
			}
			sub := argv[0]
			if err := statepb.ValidateID("sub-wallet", sub); err != nil {
				return usage("sub-wallet %q: ids use a-z 0-9 . _ - and start with a letter or digit", sub)
			}
			k, err := a.walletKey(parent)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl, _ := a.client()
			r, err := cl.CreateSubWallet(ctx, k.Private, k.WalletID, sub)
			if err != nil {
				return err
			}
			return a.emit(map[string]any{"tx": txOut(r), "sub_wallet": sub, "parent": k.WalletID}, func(w io.Writer) {
				fmt.Fprintf(w, "created sub-wallet %s under %s (signed with %s's key)\n", sub, k.WalletID, k.Name)
				writeTx(w, r)
			})
		}),
	}
	cmd.Flags().StringVar(&parent, "parent", "", "parent wallet (keystore name)")
	return cmd
}

func (a *app) subFundCmd() *cobra.Command {
	var amt string
	cmd := &cobra.Command{
		Use:     "fund SUB_WALLET --amount YUAN",
		Short:   "Holder: move money from the parent wallet into the sub-wallet",
		Example: `  dcep subwallet fund alice.jd --amount 500`,
		Args:    args(1, "a sub-wallet id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, k, err := a.subAndParentKey(ctx, argv[0])
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.FundSubWallet(ctx, k.Private, k.WalletID, argv[0], fen)
			if err != nil {
				return err
			}
			bal, ok := a.balanceAfter(ctx, argv[0])
			return a.moneyOut(r, "fund_sub_wallet", s.GetSubWallet().GetParentWalletId(), argv[0], fen, "", argv[0], bal, ok,
				fmt.Sprintf("moved %s from %s into sub-wallet %s", yuan(fen), k.WalletID, argv[0]))
		}),
	}
	cmd.Flags().StringVar(&amt, "amount", "", "amount in yuan")
	return cmd
}

func (a *app) subPushCmd() *cobra.Command {
	var platform, maxPay, maxDaily, expires string
	cmd := &cobra.Command{
		Use:   "push SUB_WALLET --platform WALLET --max-payment YUAN --max-daily YUAN --expires TIME",
		Short: "Holder: let a merchant platform charge the sub-wallet within caps, until a time",
		Long: `push lets the platform (a merchant wallet, e.g. JD) charge the sub-wallet with its
own key: each charge at most --max-payment, at most --max-daily per Beijing-time
day, until --expires (a time, or +DURATION such as +30d). A new push replaces the
previous one.`,
		Example: `  dcep subwallet push alice.jd --platform jd --max-payment 200 --max-daily 300 --expires +30d`,
		Args:    args(1, "a sub-wallet id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			if err := required(cmd, "platform", "max-payment", "max-daily", "expires"); err != nil {
				return err
			}
			perPay, err := parseAmount("max-payment", maxPay)
			if err != nil {
				return err
			}
			daily, err := parseAmount("max-daily", maxDaily)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			now, err := a.ledgerNow(ctx)
			if err != nil {
				return err
			}
			exp, err := parseLedgerTime("expires", expires, now)
			if err != nil {
				return err
			}
			_, k, err := a.subAndParentKey(ctx, argv[0])
			if err != nil {
				return err
			}
			p, err := a.lookupWallet(ctx, platform, codePayeeNotFound)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.PushSubWallet(ctx, k.Private, &statepb.PushSubWallet{SubWalletId: argv[0], PlatformWalletId: p.ID, MaxPaymentFen: perPay, MaxDailyFen: daily, ExpiresMs: exp})
			if err != nil {
				return err
			}
			return a.emit(map[string]any{"tx": txOut(r), "sub_wallet": argv[0], "platform": p.ID, "max_payment_fen": perPay, "max_daily_fen": daily, "expires": whenJSON(exp)}, func(w io.Writer) {
				fmt.Fprintf(w, "pushed %s to %s: up to %s a payment, %s a day, until %s (UTC+8)\n", argv[0], p.ID, yuan(perPay), yuan(daily), when(exp))
				writeTx(w, r)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&platform, "platform", "", "platform merchant wallet (keystore name or wallet id), e.g. jd")
	f.StringVar(&maxPay, "max-payment", "", "cap per charge, yuan")
	f.StringVar(&maxDaily, "max-daily", "", "cap per Beijing-time day, yuan")
	f.StringVar(&expires, "expires", "", "when the push ends: a time or +DURATION (+30d)")
	return cmd
}

func (a *app) subRevokeCmd() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "revoke SUB_WALLET [--keep-funds]",
		Short: "Holder: end the push at once and pull the money back to the parent",
		Long: `revoke ends the sub-wallet's push at once: the platform's next charge is refused
(SUBWALLET_REVOKED). Then, unless --keep-funds, everything in the sub-wallet
moves back to the parent wallet.`,
		Example: `  dcep subwallet revoke alice.jd`,
		Args:    args(1, "a sub-wallet id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			s, k, err := a.subAndParentKey(ctx, argv[0])
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.RevokeSubWallet(ctx, k.Private, argv[0])
			if err != nil {
				return err
			}
			var back uint64
			var pulls []*statepb.TxResult
			if !keep {
				back = s.GetWallet().GetBalanceFen()
				if pulls, err = cl.WithdrawSubWallet(ctx, k.Private, argv[0], 0); err != nil {
					return fmt.Errorf("revoked (tx %x), but pulling the money back failed: %w", r.GetTxId(), err)
				}
			}
			bal, _ := a.balanceAfter(ctx, argv[0])
			return a.emit(map[string]any{"tx": txOut(r), "sub_wallet": argv[0], "withdrawals": len(pulls), "balance_fen": bal}, func(w io.Writer) {
				fmt.Fprintf(w, "revoked %s's push to %s\n", argv[0], s.GetSubWallet().GetPlatformWalletId())
				if len(pulls) > 0 {
					fmt.Fprintf(w, "moved %s back to %s; %s now holds %s\n", yuan(back-bal), k.WalletID, argv[0], yuan(bal))
				}
				writeTx(w, r)
			})
		}),
	}
	cmd.Flags().BoolVar(&keep, "keep-funds", false, "leave the money in the sub-wallet")
	return cmd
}

func (a *app) subWithdrawCmd() *cobra.Command {
	var amt string
	cmd := &cobra.Command{
		Use:     "withdraw SUB_WALLET [--amount YUAN]",
		Short:   "Holder: move money from the sub-wallet back to the parent (all by default)",
		Example: `  dcep subwallet withdraw alice.jd`,
		Args:    args(1, "a sub-wallet id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			var fen uint64
			var err error
			if amt != "" {
				if fen, err = parseAmount("amount", amt); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			_, k, err := a.subAndParentKey(ctx, argv[0])
			if err != nil {
				return err
			}
			cl, _ := a.client()
			rs, err := cl.WithdrawSubWallet(ctx, k.Private, argv[0], fen)
			if err != nil {
				return err
			}
			bal, _ := a.balanceAfter(ctx, argv[0])
			return a.emit(map[string]any{"sub_wallet": argv[0], "transactions": len(rs), "balance_fen": bal}, func(w io.Writer) {
				fmt.Fprintf(w, "moved money back to %s in %d transactions; %s now holds %s\n", k.WalletID, len(rs), argv[0], yuan(bal))
			})
		}),
	}
	cmd.Flags().StringVar(&amt, "amount", "", "amount in yuan (default: everything)")
	return cmd
}

func (a *app) subShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show SUB_WALLET",
		Short:   "Show a sub-wallet: balance, platform, caps, expiry, charged today",
		Example: `  dcep subwallet show alice.jd`,
		Args:    args(1, "a sub-wallet id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			r, err := cl.SubWallet(cmd.Context(), argv[0], a.reads()...)
			if errors.Is(err, client.ErrNotFound) {
				return fail(exitRefused, codeWalletNotFound, "no sub-wallet %q on the network at %s", argv[0], a.node)
			}
			if err != nil {
				return err
			}
			out := subOut(r)
			return a.emit(out, func(w io.Writer) { writeSub(w, out) })
		}),
	}
}
