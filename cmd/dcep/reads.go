package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/state/statepb"
)

type balanceJSON struct {
	Wallet     string `json:"wallet"`
	Name       string `json:"name,omitempty"`
	BalanceFen uint64 `json:"balance_fen"`
	Balance    string `json:"balance"`
	Status     string `json:"status"`
}

func (a *app) balanceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "balance WALLET...",
		Short: "Show wallets' balances",
		Long: `balance shows the balance of each wallet named (keystore names or ledger wallet ids).
With --json it prints one object for one wallet, an array for several.`,
		Example: `  dcep balance alice
  dcep balance alice luckin icbc.reserve
  dcep --json balance alice`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usage("balance needs at least one wallet name").hint("example: dcep balance alice")
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, names []string) error {
			var out []balanceJSON
			for _, name := range names {
				w, err := a.lookupWallet(cmd.Context(), name, codeWalletNotFound)
				if err != nil {
					return err
				}
				b := balanceJSON{Wallet: w.ID, BalanceFen: w.Rec.GetBalanceFen(), Balance: plain(w.Rec.GetBalanceFen()), Status: statusName(w.Rec.GetStatus())}
				if w.Key != nil && w.Key.Name != w.ID {
					b.Name = w.Key.Name
				}
				out = append(out, b)
			}
			var v any = out
			if len(out) == 1 {
				v = out[0]
			}
			return a.emit(v, func(w io.Writer) {
				t := newTable("WALLET", "BALANCE", "STATUS").alignRight(1)
				for _, b := range out {
					t.add(b.Wallet, yuan(b.BalanceFen), b.Status)
				}
				t.write(w)
			})
		}),
	}
}

type historyJSON struct {
	TxID         string `json:"tx_id"`
	Kind         string `json:"kind"`
	InFen        uint64 `json:"in_fen"`
	OutFen       uint64 `json:"out_fen"`
	In           string `json:"in"`
	Out          string `json:"out"`
	Counterparty string `json:"counterparty,omitempty"`
	BalanceFen   uint64 `json:"balance_fen"`
	Balance      string `json:"balance"`
	Memo         string `json:"memo,omitempty"`
	LogIndex     uint64 `json:"log_index"`
	Time         string `json:"time"`
}

func (a *app) historyCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history WALLET [--limit N]",
		Short: "Show a wallet's history, newest first",
		Long: `history lists what a wallet received and paid, newest first, with its balance
after each transaction. Times are Beijing time (UTC+8), the ledger's time zone.
TX is the start of the transaction id; --json prints whole ids (and dcep tx
accepts a unique prefix of a transaction in your keystore wallets' history).`,
		Example: `  dcep history alice
  dcep history luckin --limit 5`,
		Args: args(1, "a wallet name"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			if limit < 0 {
				return usage("--limit %d: want 0 (all) or more", limit)
			}
			ctx := cmd.Context()
			w, err := a.lookupWallet(ctx, argv[0], codeWalletNotFound)
			if err != nil {
				return err
			}
			entries, err := a.history(ctx, w.ID, limit)
			if err != nil {
				return err
			}
			out := make([]historyJSON, 0, len(entries))
			for _, e := range entries {
				out = append(out, historyJSON{
					TxID: hex.EncodeToString(e.GetTxId()), Kind: e.GetKind(), InFen: e.GetInFen(), OutFen: e.GetOutFen(),
					In: plain(e.GetInFen()), Out: plain(e.GetOutFen()), Counterparty: e.GetCounterparty(),
					BalanceFen: e.GetBalanceFen(), Balance: plain(e.GetBalanceFen()), Memo: e.GetMemo(),
					LogIndex: e.GetLogIndex(), Time: whenJSON(e.GetTimeMs()),
				})
			}
			return a.emit(out, func(wr io.Writer) {
				if len(entries) == 0 {
					fmt.Fprintf(wr, "%s has no history yet\n", w.ID)
					return
				}
				t := newTable("TIME (UTC+8)", "KIND", "AMOUNT", "COUNTERPARTY", "BALANCE", "MEMO", "TX").alignRight(2, 4)
				for _, e := range entries {
					t.add(when(e.GetTimeMs()), e.GetKind(), signed(e.GetInFen(), e.GetOutFen()), e.GetCounterparty(),
						yuan(e.GetBalanceFen()), e.GetMemo(), shortID(e.GetTxId()))
				}
				t.write(wr)
				if limit > 0 && uint64(len(entries)) < w.Rec.GetHistoryLen() {
					fmt.Fprintf(wr, "(newest %d of %d; --limit 0 shows all)\n", len(entries), w.Rec.GetHistoryLen())
				}
			})
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most N entries (0: all)")
	return cmd
}

// history reads up to limit entries (0: all), newest first.
func (a *app) history(ctx context.Context, walletID string, limit int) ([]*statepb.HistoryEntry, error) {
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	opts := a.reads()
	if limit > 0 && limit < 1000 {
		opts = append(opts, client.PageSize(limit))
	}
	var out []*statepb.HistoryEntry
	for e, err := range cl.History(ctx, walletID, opts...) {
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// signed shows what a history entry moved: +¥3,000.00 received, -¥88.50
// paid.
func signed(in, out uint64) string {
	switch {
	case in > 0 && out > 0:
		return "+" + yuan(in) + " -" + yuan(out)
	case out > 0:
		return "-" + yuan(out)
	case in > 0:
		return "+" + yuan(in)
	}
	return yuan(0)
}

type txDetailJSON struct {
	txJSON
	Kind        string   `json:"kind"`
	Summary     string   `json:"summary"`
	Memo        string   `json:"memo,omitempty"`
	OutputCount uint32   `json:"output_count"`
	Signers     []string `json:"signers"`
	Node        string   `json:"node"`
}

func (a *app) txCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tx TX_ID",
		Short: "Show a transaction and its outcome",
		Long: `tx shows a recorded transaction: what it did, its outcome code, log index and
time. TX_ID is the 64-digit hex id printed by every write; a prefix of at
least 8 digits also works for transactions in the history of the keystore's
wallets.`,
		Example: `  dcep tx 3f2a9c0e5d7b41a6c8e2f0b9d4a7c6e1f3b5d7a9c1e3f5b7d9a1c3e5f7b9d1a3
  dcep tx 3f2a9c0e`,
		Args: args(1, "a transaction id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			id, err := a.txID(ctx, argv[0])
			if err != nil {
				return err
			}
			cl, _ := a.client()
			resp, err := cl.Tx(ctx, id, a.reads()...)
			if errors.Is(err, client.ErrNotFound) {
				return fail(exitRefused, client.CodeNotFound, "no transaction %x on the network at %s", id, a.node).
					hint("refusals of bad signatures or unauthorized signers are not recorded; every other outcome is")
			}
			if err != nil {
				return err
			}
			kind, summary := describe(resp.GetBody())
			out := txDetailJSON{txJSON: txOut(resp.GetResult()), Kind: kind, Summary: summary, Memo: resp.GetBody().GetMemo(),
				OutputCount: resp.GetOutputCount(), Node: resp.GetFreshness().GetNode()}
			out.TxID = hex.EncodeToString(id[:])
			for _, s := range resp.GetTx().GetSignatures() {
				out.Signers = append(out.Signers, a.signerName(ctx, s.GetPublicKey()))
			}
			return a.emit(out, func(w io.Writer) {
				r := resp.GetResult()
				outcome := r.GetCode().Short()
				if r.GetMessage() != "" {
					outcome += ": " + r.GetMessage()
				}
				fmt.Fprintf(w, "tx       %s\n", out.TxID)
				fmt.Fprintf(w, "kind     %s\n", kind)
				fmt.Fprintf(w, "what     %s\n", summary)
				if out.Memo != "" {
					fmt.Fprintf(w, "memo     %s\n", out.Memo)
				}
				fmt.Fprintf(w, "outcome  %s\n", outcome)
				fmt.Fprintf(w, "index    %d, %s (UTC+8)\n", r.GetLogIndex(), when(r.GetTimeMs()))
				fmt.Fprintf(w, "signed   %s\n", strings.Join(out.Signers, ", "))
				fmt.Fprintf(w, "outputs  %d\n", out.OutputCount)
			})
		}),
	}
}

// txID parses a full id, or finds a prefix in the keystore wallets'
// history.
func (a *app) txID(ctx context.Context, s string) ([32]byte, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 64 {
		id, err := client.ParseTxID(s)
		if err != nil {
			return id, usage("transaction id %q: want 64 hex digits", s)
		}
		return id, nil
	}
	var id [32]byte
	if len(s) < 8 || len(s) > 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return id, usage("transaction id %q: want 64 hex digits (or a prefix of at least 8)", s)
	}
	ks, err := a.keys()
	if err != nil {
		return id, err
	}
	keys, _ := ks.List()
	found := map[string]bool{}
	var searched []string
	for _, k := range keys {
		if k.Kind != keystore.KindWallet {
			continue
		}
		searched = append(searched, k.Name)
		entries, err := a.history(ctx, k.WalletID, 1000)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			return id, err
		}
		for _, e := range entries {
			if h := hex.EncodeToString(e.GetTxId()); strings.HasPrefix(h, s) {
				found[h] = true
			}
		}
	}
	switch len(found) {
	case 1:
		for h := range found {
			return client.ParseTxID(h)
		}
	case 0:
		return id, fail(exitRefused, client.CodeNotFound, "no transaction starting with %s in the history of the keystore's wallets (%s)", s, strings.Join(searched, ", ")).
			hint("give the whole 64-digit id")
	}
	return id, usage("transaction id prefix %s is ambiguous (%d matches); give more digits", s, len(found))
}

// signerName names a signing key: a keystore key, the central bank or a
// bank, else its hex start.
func (a *app) signerName(ctx context.Context, pub []byte) string {
	if b, err := a.builder(ctx); err == nil {
		g := b.Genesis()
		if string(g.GetCentralBank().GetPublicKey()) == string(pub) {
			return "central bank " + g.GetCentralBank().GetId()
		}
		for _, bk := range g.GetBanks() {
			if string(bk.GetPublicKey()) == string(pub) {
				return "bank " + bk.GetId()
			}
		}
	}
	if ks, err := a.keys(); err == nil {
		keys, _ := ks.List()
		for _, k := range keys {
			if string(k.Public()) == string(pub) {
				return "key " + k.Name
			}
		}
	}
	return "key " + shortID(pub)
}

// describe says what a transaction body does.
func describe(body *statepb.Tx) (kind, summary string) {
	if body == nil {
		return "unknown", "(body not available)"
	}
	switch k := body.GetKind().(type) {
	case *statepb.Tx_Issue:
		return "issue", fmt.Sprintf("issue %s to bank %s", yuan(k.Issue.GetAmountFen()), k.Issue.GetBankId())
	case *statepb.Tx_Return:
		return "return", fmt.Sprintf("return %s from bank %s to the central bank", yuan(k.Return.GetAmountFen()), k.Return.GetBankId())
	case *statepb.Tx_Exchange:
		e := k.Exchange
		return "exchange", fmt.Sprintf("exchange %s from bank %s into wallet %s", yuan(e.GetAmountFen()), e.GetBankId(), e.GetToWalletId())
	case *statepb.Tx_Redeem:
		return "redeem", fmt.Sprintf("redeem %s from wallet %s", yuan(k.Redeem.GetAmountFen()), k.Redeem.GetWalletId())
	case *statepb.Tx_Transfer:
		var parts []string
		for _, p := range k.Transfer.GetPayees() {
			parts = append(parts, fmt.Sprintf("%s to %s", yuan(p.GetAmountFen()), p.GetWalletId()))
		}
		return "transfer", fmt.Sprintf("pay %s from wallet %s (%d inputs)", strings.Join(parts, ", "), k.Transfer.GetFromWalletId(), len(k.Transfer.GetInputs()))
	case *statepb.Tx_RegisterWallet:
		r := k.RegisterWallet
		return "register_wallet", fmt.Sprintf("open %s wallet %s at %s, tier %d", kindName(r.GetKind()), r.GetWalletId(), r.GetBankId(), r.GetTier())
	case *statepb.Tx_UpdateWallet:
		u := k.UpdateWallet
		return "update_wallet", fmt.Sprintf("set wallet %s to tier %d, region %q, category %q", u.GetWalletId(), u.GetTier(), u.GetRegionCode(), u.GetCategory())
	case *statepb.Tx_RotateWalletKey:
		return "rotate_wallet_key", fmt.Sprintf("new key %s for wallet %s", shortID(k.RotateWalletKey.GetNewPublicKey()), k.RotateWalletKey.GetWalletId())
	case *statepb.Tx_FreezeWallet:
		return "freeze_wallet", fmt.Sprintf("freeze wallet %s (%s)", k.FreezeWallet.GetWalletId(), k.FreezeWallet.GetReason())
	case *statepb.Tx_UnfreezeWallet:
		return "unfreeze_wallet", fmt.Sprintf("unfreeze wallet %s (%s)", k.UnfreezeWallet.GetWalletId(), k.UnfreezeWallet.GetReason())
	case *statepb.Tx_CloseWallet:
		return "close_wallet", fmt.Sprintf("close wallet %s", k.CloseWallet.GetWalletId())
	case *statepb.Tx_ChangeMembership:
		c := k.ChangeMembership
		return "change_membership", fmt.Sprintf("%s node %s", strings.ToLower(strings.TrimPrefix(c.GetAction().String(), "MEMBERSHIP_ACTION_")), c.GetNode().GetName())
	case *statepb.Tx_RotateKey:
		r := k.RotateKey
		return "rotate_key", strings.TrimSpace(fmt.Sprintf("rotate the key of %s %s", strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(r.GetHolder().String(), "KEY_HOLDER_"), "_", " ")), r.GetId()))
	case *statepb.Tx_ActivateVersion:
		return "activate_version", fmt.Sprintf("activate ledger version %d at index %d", k.ActivateVersion.GetVersion(), k.ActivateVersion.GetActivateAtIndex())
	}
	if kind, summary, ok := describeProgrammable(body); ok {
		return kind, summary
	}
	r := body.ProtoReflect()
	if f := r.WhichOneof(r.Descriptor().Oneofs().ByName("kind")); f != nil {
		return string(f.Name()), string(f.Name())
	}
	return "unknown", "(no kind)"
}
