package main

import (
	"context"
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/state/statepb"
)

// moneyJSON is the JSON of issue, return, exchange, redeem and pay.
type moneyJSON struct {
	txJSON
	Kind      string  `json:"kind"`
	From      string  `json:"from"`
	To        string  `json:"to"`
	AmountFen uint64  `json:"amount_fen"`
	Amount    string  `json:"amount"`
	Memo      string  `json:"memo,omitempty"`
	Wallet    string  `json:"wallet,omitempty"`      // whose balance follows
	Balance   *string `json:"balance,omitempty"`     // after the transaction
	BalanceFn *uint64 `json:"balance_fen,omitempty"` // after the transaction
}

func (a *app) moneyOut(r *statepb.TxResult, kind, from, to string, fen uint64, memo, balanceOf string, bal uint64, haveBal bool, summary string) error {
	out := moneyJSON{txJSON: txOut(r), Kind: kind, From: from, To: to, AmountFen: fen, Amount: plain(fen), Memo: memo}
	if haveBal {
		s := plain(bal)
		out.Wallet, out.Balance, out.BalanceFn = balanceOf, &s, &bal
	}
	return a.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, summary)
		if haveBal {
			fmt.Fprintf(w, "%s now holds %s\n", balanceOf, yuan(bal))
		}
		writeTx(w, r)
	})
}

func (a *app) issueCmd() *cobra.Command {
	var bank, amt, memo string
	cmd := &cobra.Command{
		Use:   "issue --bank BANK --amount YUAN",
		Short: "Central bank: issue e-CNY into a bank's reserve",
		Long: `issue creates new e-CNY in an operating bank's reserve wallet, against the
bank's reserves at the central bank. It is signed with the central bank's key
(the keystore's central-bank key, "pboc" in the dev network).`,
		Example: `  dcep issue --bank icbc --amount 1000000
  dcep issue --bank abc --amount 250,000.00 --memo "Q4 allotment"`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "bank", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			bk, err := a.bank(ctx, bank)
			if err != nil {
				return err
			}
			cb, err := a.centralBankKey(ctx)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.Issue(ctx, cb.Signer(), bank, fen, txOpts(memo)...)
			if err != nil {
				return err
			}
			reserve := bk.GetReserveWalletId()
			bal, ok := a.balanceAfter(ctx, reserve)
			return a.moneyOut(r, "issue", "central bank", reserve, fen, memo, reserve, bal, ok,
				fmt.Sprintf("issued %s to %s (reserve of bank %s)", yuan(fen), reserve, bank))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&bank, "bank", "", "operating bank id, e.g. icbc")
	f.StringVar(&amt, "amount", "", "amount in yuan, e.g. 1000000")
	f.StringVar(&memo, "memo", "", "memo recorded with the transaction")
	return cmd
}

func (a *app) returnCmd() *cobra.Command {
	var bank, amt, memo string
	cmd := &cobra.Command{
		Use:   "return --bank BANK --amount YUAN",
		Short: "Central bank and bank: take e-CNY back from a bank's reserve (destroyed)",
		Long: `return hands e-CNY from a bank's reserve wallet back to the central bank, which
destroys it. It is signed by the bank and then the central bank, so the keystore
must hold both keys (the dev network's does).`,
		Example: `  dcep return --bank icbc --amount 100000`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "bank", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			bk, bkey, err := a.bankKey(ctx, bank)
			if err != nil {
				return err
			}
			cb, err := a.centralBankKey(ctx)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.Return(ctx, bkey.Signer(), cb.Signer(), bank, fen, txOpts(memo)...)
			if err != nil {
				return err
			}
			reserve := bk.GetReserveWalletId()
			bal, ok := a.balanceAfter(ctx, reserve)
			return a.moneyOut(r, "return", reserve, "central bank", fen, memo, reserve, bal, ok,
				fmt.Sprintf("returned %s from %s to the central bank (destroyed)", yuan(fen), reserve))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&bank, "bank", "", "operating bank id, e.g. icbc")
	f.StringVar(&amt, "amount", "", "amount in yuan")
	f.StringVar(&memo, "memo", "", "memo recorded with the transaction")
	return cmd
}

func (a *app) exchangeCmd() *cobra.Command {
	var bank, to, amt, memo string
	cmd := &cobra.Command{
		Use:   "exchange --to WALLET --amount YUAN [--bank BANK]",
		Short: "Bank: exchange a customer's deposits into e-CNY in their wallet",
		Long: `exchange pays e-CNY from a bank's reserve into a wallet of that bank (the
customer's deposits become e-CNY). It is signed with the bank's key. --bank
defaults to the wallet's bank. --to is a wallet name from the keystore or a
ledger wallet id.`,
		Example: `  dcep exchange --bank icbc --to alice --amount 500`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "to", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := a.lookupWallet(ctx, to, codeWalletNotFound)
			if err != nil {
				return err
			}
			if bank == "" {
				bank = w.Rec.GetBankId()
			}
			bk, bkey, err := a.bankKey(ctx, bank)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.Exchange(ctx, bkey.Signer(), bank, w.ID, fen, txOpts(memo)...)
			if err != nil {
				return err
			}
			bal, ok := a.balanceAfter(ctx, w.ID)
			return a.moneyOut(r, "exchange", bk.GetReserveWalletId(), w.ID, fen, memo, w.ID, bal, ok,
				fmt.Sprintf("exchanged %s of %s deposits into e-CNY for %s", yuan(fen), bank, w.ID))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&bank, "bank", "", "the wallet's bank (default: the wallet's)")
	f.StringVar(&to, "to", "", "wallet name (keystore) or wallet id")
	f.StringVar(&amt, "amount", "", "amount in yuan, e.g. 500")
	f.StringVar(&memo, "memo", "", "memo recorded with the transaction")
	return cmd
}

func (a *app) redeemCmd() *cobra.Command {
	var from, amt, memo string
	cmd := &cobra.Command{
		Use:   "redeem --from WALLET --amount YUAN",
		Short: "Holder: redeem e-CNY back into deposits at the wallet's bank",
		Long: `redeem pays e-CNY from a wallet back to its bank's reserve (the e-CNY becomes
bank deposits again). It is signed with the wallet's key from the keystore.`,
		Example: `  dcep redeem --from alice --amount 100`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "from", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			k, err := a.walletKey(from)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl, err := a.client()
			if err != nil {
				return err
			}
			r, err := cl.Redeem(ctx, k.Private, k.WalletID, fen, txOpts(memo)...)
			if err != nil {
				return err
			}
			bal, ok := a.balanceAfter(ctx, k.WalletID)
			return a.moneyOut(r, "redeem", k.WalletID, k.BankID+" deposits", fen, memo, k.WalletID, bal, ok,
				fmt.Sprintf("redeemed %s from %s into %s deposits", yuan(fen), k.WalletID, k.BankID))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "wallet name (keystore)")
	f.StringVar(&amt, "amount", "", "amount in yuan")
	f.StringVar(&memo, "memo", "", "memo recorded with the transaction")
	return cmd
}

func (a *app) payCmd() *cobra.Command {
	var from, to, amt, memo string
	cmd := &cobra.Command{
		Use:   "pay --from WALLET --to WALLET --amount YUAN [--memo TEXT]",
		Short: "Holder: pay another wallet",
		Long: `pay transfers e-CNY from a wallet whose key is in the keystore to any wallet
(a keystore name or a ledger wallet id). Inputs are chosen automatically and the
change comes back. The ledger checks the payer's status and KYC-tier limits
(tier 4: ¥2,000 per payment, ¥5,000 per day) and the payee's.

The transaction is signed once; retries after a lost reply resend the same
bytes, so a payment is never made twice by one command.`,
		Example: `  dcep pay --from alice --to luckin --amount 88.50 --memo "two lattes"`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "from", "to", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			k, err := a.walletKey(from)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			payee, err := a.lookupPayee(ctx, to)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.Pay(ctx, k.Private, k.WalletID, []*statepb.Payee{client.PayTo(payee.ID, fen)}, txOpts(memo)...)
			if err != nil {
				return err
			}
			bal, ok := a.balanceAfter(ctx, k.WalletID)
			return a.moneyOut(r, "transfer", k.WalletID, payee.ID, fen, memo, k.WalletID, bal, ok,
				fmt.Sprintf("paid %s from %s to %s", yuan(fen), k.WalletID, payee.ID))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "paying wallet's name (keystore)")
	f.StringVar(&to, "to", "", "payee: wallet name (keystore) or wallet id")
	f.StringVar(&amt, "amount", "", "amount in yuan, e.g. 88.50")
	f.StringVar(&memo, "memo", "", "memo recorded with the payment (max 256 bytes)")
	return cmd
}

// lookupPayee resolves a payee as lookupWallet does, except that a payee
// the caller may not read (a stranger's wallet: GetWallet answers only its
// holder, its bank and regulators) is paid by the id given: the ledger
// checks the payee when it validates the transfer, and its memo is sealed
// with GetWalletKey, which any signed-in caller may use.
func (a *app) lookupPayee(ctx context.Context, name string) (*wallet, error) {
	w, err := a.lookupWallet(ctx, name, codePayeeNotFound)
	switch connect.CodeOf(err) {
	case connect.CodePermissionDenied, connect.CodeUnauthenticated:
		return &wallet{ID: name}, nil
	}
	return w, err
}
