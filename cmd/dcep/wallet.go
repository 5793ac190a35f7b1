package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/state/statepb"
)

func (a *app) walletCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wallet",
		Short: "Bank and holder: create, show, list, freeze, update, rotate keys of, close wallets",
		Long: `wallet manages wallets. A bank registers a wallet on the ledger with its own
key (from the keystore); the wallet's key is generated into the keystore under
the wallet's name. NAME is a keystore name or a ledger wallet id.`,
		Example: `  dcep wallet create alice --bank icbc --tier 4
  dcep wallet show alice
  dcep wallet freeze alice --reason "phone reported stolen"`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.walletCreateCmd(), a.walletShowCmd(), a.walletListCmd(),
		a.walletFreezeCmd(true), a.walletFreezeCmd(false), a.walletRotateCmd(), a.walletUpdateCmd(), a.walletCloseCmd())
	return cmd
}

// profile is the flags a bank sets on a wallet: tier, region, category
// and its own limits.
type profile struct {
	tier                   uint32
	region, category       string
	maxBalance, maxPayment string
	maxDaily, maxYearly    string
}

func (p *profile) flags(f *pflag.FlagSet, defaultTier uint32) {
	f.Uint32Var(&p.tier, "tier", defaultTier, "KYC tier: 1 in person (no caps) .. 4 phone number only (¥2,000 per payment)")
	f.StringVar(&p.region, "region", "", "6-digit region code, e.g. 320500 (Suzhou)")
	f.StringVar(&p.category, "category", "", "merchant category, e.g. 5814 or coffee")
	f.StringVar(&p.maxBalance, "max-balance", "", "the wallet's own balance cap in yuan (below its tier's; 0: the tier's)")
	f.StringVar(&p.maxPayment, "max-payment", "", "own per-payment cap in yuan")
	f.StringVar(&p.maxDaily, "max-daily", "", "own daily cap in yuan")
	f.StringVar(&p.maxYearly, "max-yearly", "", "own yearly cap in yuan")
}

// limits applies the --max-* flags that were given to l.
func (p *profile) limits(f *pflag.FlagSet, l *statepb.Limits) (*statepb.Limits, error) {
	if l == nil {
		l = &statepb.Limits{}
	}
	for _, x := range []struct {
		name string
		v    string
		dst  *uint64
	}{{"max-balance", p.maxBalance, &l.MaxBalanceFen}, {"max-payment", p.maxPayment, &l.MaxPaymentFen},
		{"max-daily", p.maxDaily, &l.MaxDailyFen}, {"max-yearly", p.maxYearly, &l.MaxYearlyFen}} {
		if !f.Changed(x.name) {
			continue
		}
		fen, err := parseCap(x.name, x.v)
		if err != nil {
			return nil, err
		}
		*x.dst = fen
	}
	return l, nil
}

// parseCap reads a cap: an amount, or 0 for "the tier's".
func parseCap(flag, s string) (uint64, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	return parseAmount(flag, s)
}

func parseKind(s string) (statepb.WalletKind, error) {
	switch s {
	case "personal":
		return statepb.WalletKind_WALLET_KIND_PERSONAL, nil
	case "merchant":
		return statepb.WalletKind_WALLET_KIND_MERCHANT, nil
	case "government":
		return statepb.WalletKind_WALLET_KIND_GOVERNMENT, nil
	}
	return 0, usage("--kind %q: want personal, merchant or government", s)
}

type walletJSON struct {
	Wallet     string `json:"wallet"`
	Name       string `json:"name,omitempty"`
	Bank       string `json:"bank"`
	Kind       string `json:"kind"`
	Tier       uint32 `json:"tier"`
	Status     string `json:"status"`
	Reason     string `json:"status_reason,omitempty"`
	BalanceFen uint64 `json:"balance_fen"`
	Balance    string `json:"balance"`
	Region     string `json:"region,omitempty"`
	Category   string `json:"category,omitempty"`
	PublicKey  string `json:"public_key,omitempty"`
	KeyFile    string `json:"key_file,omitempty"`
	OnLedger   bool   `json:"on_ledger"`
}

func walletOut(id string, k *keystore.Key, rec *statepb.WalletRecord, keyFile string) walletJSON {
	w := walletJSON{Wallet: id, KeyFile: keyFile}
	if k != nil {
		w.Name, w.Bank, w.PublicKey = k.Name, k.BankID, hex.EncodeToString(k.Public())
	}
	if rec != nil {
		w.OnLedger = true
		w.Bank, w.Kind, w.Tier, w.Status, w.Reason = rec.GetBankId(), kindName(rec.GetKind()), rec.GetTier(), statusName(rec.GetStatus()), rec.GetStatusReason()
		w.BalanceFen, w.Balance, w.Region, w.Category = rec.GetBalanceFen(), plain(rec.GetBalanceFen()), rec.GetRegionCode(), rec.GetCategory()
		w.PublicKey = hex.EncodeToString(rec.GetPublicKey())
	}
	return w
}

func (a *app) walletCreateCmd() *cobra.Command {
	var bank, kind, id string
	var p profile
	cmd := &cobra.Command{
		Use:   "create NAME --bank BANK [--tier N] [--kind personal|merchant|government]",
		Short: "Bank: open a wallet (generates its key into the keystore)",
		Long: `create generates a new Ed25519 key into the keystore under NAME and registers
the wallet on the ledger, signed with the bank's key. The wallet id is NAME
unless --id is given. If the ledger refuses the registration, the new key is
deleted again; if the outcome is unknown, the key is kept and you are told so.`,
		Example: `  dcep wallet create alice --bank icbc --tier 4
  dcep wallet create luckin --bank icbc --tier 2 --kind merchant --region 320500 --category coffee`,
		Args: args(1, "a wallet name"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			name := argv[0]
			if err := required(cmd, "bank"); err != nil {
				return err
			}
			if err := keystore.ValidateName(name); err != nil {
				return usage("wallet name %q: names use a-z 0-9 . _ - and start with a letter or digit", name)
			}
			if id == "" {
				id = name
			}
			k, err := parseKind(kind)
			if err != nil {
				return err
			}
			lim, err := p.limits(cmd.Flags(), nil)
			if err != nil {
				return err
			}
			reg := &statepb.RegisterWallet{WalletId: id, BankId: bank, Kind: k, Tier: p.tier, RegionCode: p.region, Category: p.category, Limits: lim}
			// Check everything that needs no state before making a key.
			check := proto.Clone(reg).(*statepb.RegisterWallet)
			check.PublicKey = placeholderKey
			if err := check.ValidateBasic(); err != nil {
				return err
			}
			ctx := cmd.Context()
			_, bkey, err := a.bankKey(ctx, bank)
			if err != nil {
				return err
			}
			ks, _ := a.keys()
			if _, err := ks.Get(name); err == nil {
				return fail(exitRefused, codeKeyExists, "the keystore %s already has a key named %q", a.home, name).
					hint("pick another name, or see: dcep keys list")
			}
			wk, err := ks.Generate(keystore.Key{Name: name, Kind: keystore.KindWallet, BankID: bank, WalletID: id})
			if err != nil {
				return err
			}
			reg.PublicKey = wk.Public()
			cl, _ := a.client()
			r, err := cl.RegisterWallet(ctx, bkey.Signer(), reg)
			if err != nil {
				var ou *client.OutcomeUnknownError
				if errors.As(err, &ou) {
					ce := a.classify(runError{err})
					return ce.hint("the new key %s is kept: if the registration committed, it is the wallet's key", ks.Path(name))
				}
				ce := a.classify(runError{err})
				if derr := ks.Delete(name); derr != nil {
					return ce.hint("the key generated for it, %s, could not be deleted (%v); delete it by hand", ks.Path(name), derr)
				}
				return ce.hint("nothing was registered; the key generated for it was deleted again")
			}
			out := struct {
				txJSON
				walletJSON
			}{txOut(r), walletOut(id, wk, nil, ks.Path(name))}
			out.Bank, out.Kind, out.Tier, out.Status, out.OnLedger = bank, kindName(k), p.tier, "active", true
			return a.emit(out, func(w io.Writer) {
				extra := ""
				if p.region != "" {
					extra += ", region " + p.region
				}
				if p.category != "" {
					extra += ", category " + p.category
				}
				fmt.Fprintf(w, "created %s wallet %s at %s, tier %d%s\n", kindName(k), id, bank, p.tier, extra)
				fmt.Fprintf(w, "key %s saved in %s\n", name, ks.Path(name))
				writeTx(w, r)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&bank, "bank", "", "the bank opening the wallet, e.g. icbc (its key must be in the keystore)")
	f.StringVar(&kind, "kind", "personal", "personal, merchant or government")
	f.StringVar(&id, "id", "", "ledger wallet id (default NAME)")
	p.flags(f, 4)
	return cmd
}

func (a *app) walletShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME|ID",
		Short:   "Show a wallet: bank, kind, tier, status, balance, limits, spending",
		Example: `  dcep wallet show alice`,
		Args:    args(1, "a wallet name or id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			w, err := a.lookupWallet(ctx, argv[0], codeWalletNotFound)
			if err != nil {
				return err
			}
			rec := w.Rec
			c := a.caps(ctx, rec)
			day, year := spentNow(rec, w.At.LedgerTimeMs)
			keyFile := ""
			if w.Key != nil {
				ks, _ := a.keys()
				keyFile = ks.Path(w.Key.Name)
			}
			out := struct {
				walletJSON
				Limits        capsJSON `json:"limits"`
				SpentTodayFen uint64   `json:"spent_today_fen"`
				SpentYearFen  uint64   `json:"spent_year_fen"`
				Outputs       uint64   `json:"outputs"`
				HistoryLen    uint64   `json:"history_len"`
				Created       string   `json:"created"`
				Node          string   `json:"node"`
				AppliedIndex  uint64   `json:"applied_index"`
				// OfflineDebtFen: owed to the bank for offline payments (dcep offline debt).
				OfflineDebtFen uint64 `json:"offline_debt_fen"`
			}{walletOut(w.ID, w.Key, rec, keyFile), c, day, year, rec.GetUnspentCount(), rec.GetHistoryLen(), whenJSON(rec.GetCreatedMs()), w.At.Node, w.At.AppliedIndex,
				rec.GetOfflineDebtFen()}
			return a.emit(out, func(wr io.Writer) {
				status := statusName(rec.GetStatus())
				switch {
				case rec.GetStatusReason() == "":
				case rec.GetStatus() == statepb.WalletStatus_WALLET_STATUS_ACTIVE:
					status += " (last change: " + rec.GetStatusReason() + ")"
				default:
					status += ": " + rec.GetStatusReason()
				}
				rows := [][2]string{
					{"wallet", w.ID}, {"bank", rec.GetBankId()}, {"kind", kindName(rec.GetKind())}, {"tier", fmt.Sprint(rec.GetTier())},
					{"status", status}, {"balance", fmt.Sprintf("%s in %s", yuan(rec.GetBalanceFen()), plural(rec.GetUnspentCount(), "output"))},
					{"limits", c.text()},
					{"spent", fmt.Sprintf("%s today, %s this year (Beijing time)", yuan(day), yuan(year))},
				}
				if d := rec.GetOfflineDebtFen(); d > 0 {
					rows = append(rows, [2]string{"offline debt", fmt.Sprintf("%s owed to %s for offline payments, repaid first from money it receives (dcep offline debt %s)", yuan(d), rec.GetBankId(), w.ID)})
				}
				if rec.GetRegionCode() != "" {
					rows = append(rows, [2]string{"region", rec.GetRegionCode()})
				}
				if rec.GetCategory() != "" {
					rows = append(rows, [2]string{"category", rec.GetCategory()})
				}
				rows = append(rows, [2]string{"created", when(rec.GetCreatedMs()) + " (UTC+8)"}, [2]string{"history", plural(rec.GetHistoryLen(), "entry")})
				key := "not in the keystore " + a.home
				if w.Key != nil {
					key = fmt.Sprintf("%s (%s)", w.Key.Name, keyFile)
					if string(w.Key.Public()) != string(rec.GetPublicKey()) {
						key += " — NOT the wallet's current key on the ledger"
					}
				}
				rows = append(rows, [2]string{"key", key}, [2]string{"as of", fmt.Sprintf("index %d on %s", w.At.AppliedIndex, w.At.Node)})
				for _, r := range rows {
					fmt.Fprintf(wr, "%-9s %s\n", r[0], r[1])
				}
			})
		}),
	}
}

// capsJSON are a wallet's effective limits (0: none).
type capsJSON struct {
	BalanceFen uint64 `json:"max_balance_fen"`
	PaymentFen uint64 `json:"max_payment_fen"`
	DailyFen   uint64 `json:"max_daily_fen"`
	YearlyFen  uint64 `json:"max_yearly_fen"`
}

func (c capsJSON) text() string {
	f := func(v uint64) string {
		if v == 0 {
			return "none"
		}
		return yuan(v)
	}
	return fmt.Sprintf("per payment %s, per day %s, per year %s, balance %s", f(c.PaymentFen), f(c.DailyFen), f(c.YearlyFen), f(c.BalanceFen))
}

// caps combines the tier's caps (genesis) with the wallet's own.
func (a *app) caps(ctx context.Context, rec *statepb.WalletRecord) capsJSON {
	switch rec.GetKind() {
	case statepb.WalletKind_WALLET_KIND_BANK_RESERVE, statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE:
		return capsJSON{}
	}
	var tier *statepb.TierLimits
	if b, err := a.builder(ctx); err == nil {
		for _, t := range b.Genesis().GetTiers() {
			if t.GetTier() == rec.GetTier() {
				tier = t
			}
		}
	}
	own := rec.GetLimits()
	return capsJSON{
		BalanceFen: lower(tier.GetMaxBalanceFen(), own.GetMaxBalanceFen()),
		PaymentFen: lower(tier.GetMaxPaymentFen(), own.GetMaxPaymentFen()),
		DailyFen:   lower(tier.GetMaxDailyFen(), own.GetMaxDailyFen()),
		YearlyFen:  lower(tier.GetMaxYearlyFen(), own.GetMaxYearlyFen()),
	}
}

// lower is the tighter of two caps where zero means none.
func lower(a, b uint64) uint64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// spentNow is what the wallet spent on the current Beijing day and year
// at ledger time nowMs (the counters reset when those change).
func spentNow(rec *statepb.WalletRecord, nowMs int64) (day, year uint64) {
	local := nowMs + 8*3600*1000
	today := local / (24 * 3600 * 1000)
	if local < 0 && local%(24*3600*1000) != 0 {
		today--
	}
	if rec.GetSpendDay() == today {
		day = rec.GetSpentDayFen()
	}
	if rec.GetSpendYear() == int32(timeYear(nowMs)) {
		year = rec.GetSpentYearFen()
	}
	return day, year
}

func (a *app) walletListCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list [--all]",
		Short: "List the keystore's wallets with balances (--all: every wallet on the ledger)",
		Example: `  dcep wallet list
  dcep wallet list --all`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl, err := a.client()
			if err != nil {
				return err
			}
			var out []walletJSON
			if all {
				names := map[string]string{}
				if ks, err := a.keys(); err == nil {
					keys, _ := ks.List()
					for _, k := range keys {
						if k.Kind == keystore.KindWallet {
							names[k.WalletID] = k.Name
						}
					}
				}
				for rec, err := range cl.Wallets(ctx, a.reads()...) {
					if err != nil {
						return err
					}
					w := walletOut(rec.GetId(), nil, rec, "")
					w.Name = names[rec.GetId()]
					out = append(out, w)
				}
			} else {
				ks, err := a.keys()
				if err != nil {
					return err
				}
				keys, lerr := ks.List()
				if lerr != nil {
					fmt.Fprintf(a.stderr, "warning: %v\n", lerr)
				}
				for _, k := range keys {
					if k.Kind != keystore.KindWallet {
						continue
					}
					resp, err := cl.Wallet(ctx, k.WalletID, a.reads()...)
					if err != nil && !errors.Is(err, client.ErrNotFound) {
						return err
					}
					out = append(out, walletOut(k.WalletID, k, resp.GetWallet(), ks.Path(k.Name)))
				}
			}
			sort.SliceStable(out, func(i, j int) bool { return out[i].Wallet < out[j].Wallet })
			if out == nil {
				out = []walletJSON{}
			}
			return a.emit(out, func(w io.Writer) {
				if len(out) == 0 {
					fmt.Fprintf(w, "no wallets in the keystore %s; create one with: dcep wallet create NAME --bank icbc --tier 4\n", a.home)
					return
				}
				t := newTable("WALLET", "NAME", "BANK", "KIND", "TIER", "STATUS", "BALANCE").alignRight(4, 6)
				for _, x := range out {
					if !x.OnLedger {
						t.add(x.Wallet, x.Name, x.Bank, "-", "-", "not on this ledger", "-")
						continue
					}
					t.add(x.Wallet, x.Name, x.Bank, x.Kind, fmt.Sprint(x.Tier), x.Status, yuan(x.BalanceFen))
				}
				t.write(w)
			})
		}),
	}
	cmd.Flags().BoolVar(&all, "all", false, "list every wallet on the ledger (bank reserves included)")
	return cmd
}

// managed resolves a wallet a bank acts on, and the bank's key.
func (a *app) managed(ctx context.Context, name string) (*wallet, *keystore.Key, error) {
	w, err := a.lookupWallet(ctx, name, codeWalletNotFound)
	if err != nil {
		return nil, nil, err
	}
	_, bkey, err := a.bankKey(ctx, w.Rec.GetBankId())
	if err != nil {
		return nil, nil, err
	}
	return w, bkey, nil
}

func (a *app) walletFreezeCmd(freeze bool) *cobra.Command {
	var reason string
	use, short, verb := "freeze", "Bank: freeze a wallet (it can neither pay nor be paid)", "froze"
	example := `  dcep wallet freeze alice --reason "phone reported stolen"`
	if !freeze {
		use, short, verb = "unfreeze", "Bank: lift a wallet's freeze", "unfroze"
		example = `  dcep wallet unfreeze alice --reason "phone found"`
	}
	cmd := &cobra.Command{
		Use:     use + " NAME|ID [--reason TEXT]",
		Short:   short,
		Long:    short + ". Signed with the wallet's bank's key; the coins stay where they are.",
		Example: example,
		Args:    args(1, "a wallet name or id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			w, bkey, err := a.managed(ctx, argv[0])
			if err != nil {
				return err
			}
			cl, _ := a.client()
			var r *statepb.TxResult
			if freeze {
				r, err = cl.FreezeWallet(ctx, bkey.Signer(), w.ID, reason)
			} else {
				r, err = cl.UnfreezeWallet(ctx, bkey.Signer(), w.ID, reason)
			}
			if err != nil {
				return err
			}
			out := struct {
				txJSON
				Wallet string `json:"wallet"`
				Status string `json:"status"`
				Reason string `json:"reason,omitempty"`
			}{txOut(r), w.ID, map[bool]string{true: "frozen", false: "active"}[freeze], reason}
			return a.emit(out, func(wr io.Writer) {
				why := ""
				if reason != "" {
					why = ": " + reason
				}
				fmt.Fprintf(wr, "%s wallet %s (bank %s)%s\n", verb, w.ID, w.Rec.GetBankId(), why)
				writeTx(wr, r)
			})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded on the ledger)")
	return cmd
}

func (a *app) walletRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-key NAME",
		Short: "Bank: give a wallet a new key (e.g. a lost phone); the coins stay",
		Long: `rotate-key generates a new key for a keystore wallet, puts it in place (the
old key file is kept as NAME.key.bak-*), and registers it on the ledger,
signed with the wallet's bank's key. If the ledger refuses, the old key is put
back; if the outcome is unknown, you are told where both keys are.`,
		Example: `  dcep wallet rotate-key alice`,
		Args:    args(1, "a wallet name"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			old, err := a.walletKey(argv[0])
			if err != nil {
				return err
			}
			w, bkey, err := a.managed(ctx, old.WalletID)
			if err != nil {
				return err
			}
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			nk := *old
			nk.Private = priv
			ks, _ := a.keys()
			backup, err := ks.Replace(nk)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.RotateWalletKey(ctx, bkey.Signer(), w.ID, nk.Public())
			if err != nil {
				ce := a.classify(runError{err})
				var ou *client.OutcomeUnknownError
				if errors.As(err, &ou) {
					return ce.hint("the new key is in %s and the old one in %s: if `dcep tx` shows the rotation did not commit, put the old one back: mv %s %s",
						ks.Path(old.Name), backup, backup, ks.Path(old.Name))
				}
				if _, rerr := ks.Replace(*old); rerr != nil {
					return ce.hint("the old key could not be put back (%v); it is in %s", rerr, backup)
				}
				return ce.hint("the old key is back in %s", ks.Path(old.Name))
			}
			out := struct {
				txJSON
				Wallet    string `json:"wallet"`
				PublicKey string `json:"public_key"`
				KeyFile   string `json:"key_file"`
				Backup    string `json:"old_key_file"`
			}{txOut(r), w.ID, hex.EncodeToString(nk.Public()), ks.Path(old.Name), backup}
			return a.emit(out, func(wr io.Writer) {
				fmt.Fprintf(wr, "rotated the key of wallet %s: new public key %s\n", w.ID, out.PublicKey)
				fmt.Fprintf(wr, "new key in %s; the old one is kept in %s\n", out.KeyFile, backup)
				writeTx(wr, r)
			})
		}),
	}
}

func (a *app) walletUpdateCmd() *cobra.Command {
	var p profile
	cmd := &cobra.Command{
		Use:   "update NAME|ID [--tier N] [--region CODE] [--category C] [--max-payment YUAN] ...",
		Short: "Bank: change a wallet's tier, region, category or own limits",
		Long: `update changes what is given and keeps the rest as the ledger has it. Own
limits may only be below the tier's caps; 0 means "the tier's cap".`,
		Example: `  dcep wallet update alice --tier 2
  dcep wallet update alice --max-payment 500`,
		Args: args(1, "a wallet name or id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			f := cmd.Flags()
			changed := false
			for _, n := range []string{"tier", "region", "category", "max-balance", "max-payment", "max-daily", "max-yearly"} {
				changed = changed || f.Changed(n)
			}
			if !changed {
				return usage("nothing to update: give --tier, --region, --category or a --max-* limit")
			}
			ctx := cmd.Context()
			w, bkey, err := a.managed(ctx, argv[0])
			if err != nil {
				return err
			}
			rec := w.Rec
			upd := &statepb.UpdateWallet{WalletId: w.ID, Tier: rec.GetTier(), RegionCode: rec.GetRegionCode(), Category: rec.GetCategory()}
			if f.Changed("tier") {
				upd.Tier = p.tier
			}
			if f.Changed("region") {
				upd.RegionCode = p.region
			}
			if f.Changed("category") {
				upd.Category = p.category
			}
			var own *statepb.Limits
			if l := rec.GetLimits(); l != nil {
				own = &statepb.Limits{MaxBalanceFen: l.GetMaxBalanceFen(), MaxPaymentFen: l.GetMaxPaymentFen(), MaxDailyFen: l.GetMaxDailyFen(), MaxYearlyFen: l.GetMaxYearlyFen()}
			}
			if upd.Limits, err = p.limits(f, own); err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.UpdateWallet(ctx, bkey.Signer(), upd)
			if err != nil {
				return err
			}
			after := proto.Clone(rec).(*statepb.WalletRecord)
			after.Tier, after.RegionCode, after.Category, after.Limits = upd.Tier, upd.RegionCode, upd.Category, upd.Limits
			c := a.caps(ctx, after)
			out := struct {
				txJSON
				Wallet   string   `json:"wallet"`
				Tier     uint32   `json:"tier"`
				Region   string   `json:"region,omitempty"`
				Category string   `json:"category,omitempty"`
				Limits   capsJSON `json:"limits"`
			}{txOut(r), w.ID, upd.Tier, upd.RegionCode, upd.Category, c}
			return a.emit(out, func(wr io.Writer) {
				fmt.Fprintf(wr, "updated wallet %s: tier %d; limits %s\n", w.ID, upd.Tier, c.text())
				writeTx(wr, r)
			})
		}),
	}
	p.flags(cmd.Flags(), 0)
	return cmd
}

func (a *app) walletCloseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "close NAME|ID",
		Short: "Bank: close an empty wallet for good",
		Long: `close closes a wallet whose balance is zero (redeem or pay out first). It
cannot be reopened; its key stays in the keystore.`,
		Example: `  dcep wallet close alice`,
		Args:    args(1, "a wallet name or id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			w, bkey, err := a.managed(ctx, argv[0])
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.CloseWallet(ctx, bkey.Signer(), w.ID)
			if err != nil {
				return err
			}
			out := struct {
				txJSON
				Wallet string `json:"wallet"`
				Status string `json:"status"`
			}{txOut(r), w.ID, "closed"}
			return a.emit(out, func(wr io.Writer) {
				fmt.Fprintf(wr, "closed wallet %s (bank %s)\n", w.ID, w.Rec.GetBankId())
				writeTx(wr, r)
			})
		}),
	}
}

// placeholderKey stands for the key a command is about to generate while
// it checks the rest of a transaction without state: a real public key
// (the ledger refuses bytes that are no usable key), whose private half
// is never used.
var placeholderKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
