package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// The regulator's audit commands beyond `audit supply` (SPEC §6). Each asks
// a regulator node (see auditor) and says which node answered.

// Error codes of the audit commands (exit status 4, like a broken supply
// invariant).
const (
	codeDivergence    = "STATE_DIVERGENCE"
	codeNotReproduced = "REPLAY_NOT_REPRODUCED"
	// The node's, for a replay: corrupt archive (4); nothing could be
	// re-validated (5).
	codeArchiveCorrupt     = "ARCHIVE_CORRUPT"
	codeNothingReplayed    = "NOTHING_REPLAYED"
	codeHistoryUnavailable = "HISTORY_UNAVAILABLE"
)

func (a *app) addAuditCmds(cmd *cobra.Command) {
	cmd.AddCommand(a.auditLargeCmd(), a.auditActivityCmd(), a.auditFrozenCmd(), a.auditDivergenceCmd(), a.auditReplayCmd(), a.auditAccessCmd())
	cmd.AddCommand(a.auditProgramCmds()...) // audit_programs.go
	cmd.Example = `  dcep audit supply
  dcep audit large --from 2026-12-11 --to 2026-12-12
  dcep audit activity --bank icbc
  dcep audit frozen
  dcep audit incidents
  dcep audit offline
  dcep audit campaign
  dcep audit divergence
  dcep audit replay
  dcep audit access --wallet alice`
}

// readOptions is a.reads() for calls made without the client's wrappers:
// linearizable unless --stale.
func (a *app) readOptions() *nodepb.ReadOptions {
	return &nodepb.ReadOptions{Linearizable: !a.stale}
}

// parseWhen parses a Beijing-time date or date and time ("2026-12-11",
// "2026-12-11 20:00", "2026-12-11T20:00:05") as Unix milliseconds.
func parseWhen(flag, s string) (int64, error) {
	for _, layout := range []string{time.DateOnly, "2006-01-02 15:04", "2006-01-02T15:04", time.DateTime, "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, beijing); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, usage("--%s %q: want a Beijing-time date or time like 2026-12-11 or \"2026-12-11 20:00\"", flag, s)
}

type largeJSON struct {
	TxID      string    `json:"tx_id"`
	Time      string    `json:"time"`
	Kind      string    `json:"kind"`
	Payer     string    `json:"payer"`
	PayerBank string    `json:"payer_bank"`
	Payees    []legJSON `json:"payees"`
	AmountFen uint64    `json:"amount_fen"`
	Amount    string    `json:"amount"`
	LogIndex  uint64    `json:"log_index"`
	Memo      string    `json:"memo,omitempty"`
	ms        int64
}

type legJSON struct {
	Wallet    string `json:"wallet"`
	Bank      string `json:"bank"`
	AmountFen uint64 `json:"amount_fen"`
}

type largeListJSON struct {
	Node         string      `json:"node"`
	ThresholdFen uint64      `json:"threshold_fen"`
	Payments     []largeJSON `json:"payments"`
	More         bool        `json:"more"`
}

func (a *app) auditLargeCmd() *cobra.Command {
	var from, to, bank string
	var limit int
	var newest bool
	cmd := &cobra.Command{
		Use:   "large",
		Short: "List payments at or above the reporting threshold (¥50,000 by default)",
		Long: `audit large lists committed money movements at or above the network's
reporting threshold (genesis large_value_threshold_fen; SPEC §6 default
¥50,000): transfers, exchanges, redemptions, issues and returns, with payer,
payees, their banks and the ledger time, oldest first (--newest: newest
first). Times are Beijing time (UTC+8); --to is exclusive.`,
		Example: `  dcep audit large
  dcep audit large --from 2026-12-11 --to "2026-12-12 08:00" --bank icbc
  dcep --json audit large --newest --limit 10`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			q := &nodepb.LargePaymentsRequest{Bank: bank, NewestFirst: newest, Read: a.readOptions()}
			var err error
			if from != "" {
				if q.FromMs, err = parseWhen("from", from); err != nil {
					return err
				}
			}
			if to != "" {
				if q.ToMs, err = parseWhen("to", to); err != nil {
					return err
				}
			}
			if limit <= 0 {
				return usage("--limit %d: want at least 1", limit)
			}
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			out := largeListJSON{Payments: []largeJSON{}}
			q.Limit = uint32(min(limit, 1000))
			for {
				page, err := cl.LargePaymentsPage(ctx, q)
				if err != nil {
					return err
				}
				out.Node, out.ThresholdFen = page.GetFreshness().GetNode(), page.GetThresholdFen()
				for _, p := range page.GetPayments() {
					if len(out.Payments) == limit {
						out.More = true
						break
					}
					out.Payments = append(out.Payments, a.largeOut(p))
				}
				if out.More || len(page.GetNextPageToken()) == 0 {
					out.More = out.More || len(page.GetNextPageToken()) > 0 && len(out.Payments) == limit
					break
				}
				q.PageToken = page.GetNextPageToken()
			}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "payments at or above %s, asked of %s (%s)\n", yuan(out.ThresholdFen), out.Node, role)
				if note != "" {
					fmt.Fprintf(w, "note: %s\n", note)
				}
				if len(out.Payments) == 0 {
					fmt.Fprintln(w, "none")
					return
				}
				t := newTable("TIME (UTC+8)", "KIND", "PAYER", "BANK", "PAYEES", "AMOUNT", "TX").alignRight(5)
				for _, p := range out.Payments {
					var legs []string
					for _, l := range p.Payees {
						legs = append(legs, fmt.Sprintf("%s (%s) %s", l.Wallet, l.Bank, yuan(l.AmountFen)))
					}
					if len(legs) == 0 {
						legs = []string{"(returned to the central bank)"}
					}
					t.add(when(p.ms), p.Kind, p.Payer, p.PayerBank, strings.Join(legs, ", "), yuan(p.AmountFen), p.TxID[:12])
				}
				t.write(w)
				if out.More {
					fmt.Fprintf(w, "(first %d shown; raise --limit or narrow --from/--to for more)\n", limit)
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "from this Beijing-time date or time (inclusive)")
	f.StringVar(&to, "to", "", "to this Beijing-time date or time (exclusive)")
	f.StringVar(&bank, "bank", "", "only payments where this bank pays or is paid")
	f.IntVar(&limit, "limit", 100, "list at most this many")
	f.BoolVar(&newest, "newest", false, "newest first")
	return cmd
}

func (a *app) largeOut(p *statepb.LargePayment) largeJSON {
	out := largeJSON{
		TxID: hex.EncodeToString(p.GetTxId()), Time: whenJSON(p.GetTimeMs()), Kind: p.GetKind(), Payer: p.GetPayer(), PayerBank: p.GetPayerBank(),
		Payees: []legJSON{}, AmountFen: p.GetAmountFen(), Amount: plain(p.GetAmountFen()), LogIndex: p.GetLogIndex(), Memo: a.memo(p.GetSealedMemo(), p.GetMemo()), ms: p.GetTimeMs(),
	}
	for _, l := range p.GetPayees() {
		out.Payees = append(out.Payees, legJSON{Wallet: l.GetWalletId(), Bank: l.GetBankId(), AmountFen: l.GetAmountFen()})
	}
	return out
}

type activityJSON struct {
	Node     string        `json:"node"`
	FromDate string        `json:"from_date"`
	ToDate   string        `json:"to_date"`
	Days     []bankDayJSON `json:"days"`
}

type bankDayJSON struct {
	Date           string `json:"date"`
	Bank           string `json:"bank"`
	Transactions   uint64 `json:"transactions"`
	Payments       uint64 `json:"payments"`
	VolumeFen      uint64 `json:"volume_fen"`
	LargeCount     uint64 `json:"large_payments"`
	LargeVolumeFen uint64 `json:"large_volume_fen"`
}

func (a *app) auditActivityCmd() *cobra.Command {
	var from, to, bank string
	cmd := &cobra.Command{
		Use:   "activity",
		Short: "Per-bank transaction counts and volumes per day",
		Long: `audit activity shows, per bank and Beijing-time day, the committed
transactions that count for the bank (the payer wallet's bank; issues count for
the bank issued to, wallet management for the wallet's bank), how many of them
moved money, the volume they moved to others, and the large payments among
them. Default: the 7 days up to the ledger's current date.`,
		Example: `  dcep audit activity
  dcep audit activity --from 2026-12-01 --to 2026-12-31 --bank icbc`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			for _, d := range []struct{ flag, v string }{{"from", from}, {"to", to}} {
				if _, err := time.Parse(time.DateOnly, d.v); d.v != "" && err != nil {
					return usage("--%s %q: want a date like 2026-12-11", d.flag, d.v)
				}
			}
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			r, err := cl.BankActivity(ctx, from, to, bank, a.reads()...)
			if err != nil {
				return err
			}
			out := activityJSON{Node: r.GetFreshness().GetNode(), FromDate: r.GetFromDate(), ToDate: r.GetToDate(), Days: []bankDayJSON{}}
			for _, d := range r.GetDays() {
				out.Days = append(out.Days, bankDayJSON{Date: d.GetDate(), Bank: d.GetBankId(), Transactions: d.GetTxCount(), Payments: d.GetPaymentCount(),
					VolumeFen: d.GetVolumeFen(), LargeCount: d.GetLargeCount(), LargeVolumeFen: d.GetLargeVolumeFen()})
			}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "bank activity %s to %s (Beijing time), asked of %s (%s)\n", out.FromDate, out.ToDate, out.Node, role)
				if note != "" {
					fmt.Fprintf(w, "note: %s\n", note)
				}
				if len(out.Days) == 0 {
					fmt.Fprintln(w, "no transactions")
					return
				}
				t := newTable("DATE", "BANK", "TRANSACTIONS", "PAYMENTS", "VOLUME", "LARGE", "LARGE VOLUME").alignRight(2, 3, 4, 5, 6)
				for _, d := range out.Days {
					t.add(d.Date, d.Bank, fmt.Sprint(d.Transactions), fmt.Sprint(d.Payments), yuan(d.VolumeFen), fmt.Sprint(d.LargeCount), yuan(d.LargeVolumeFen))
				}
				t.write(w)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "first Beijing-time date (default: 6 days before --to)")
	f.StringVar(&to, "to", "", "last Beijing-time date (default: the ledger's current date)")
	f.StringVar(&bank, "bank", "", "only this bank")
	return cmd
}

type frozenJSON struct {
	Wallet     string `json:"wallet"`
	Bank       string `json:"bank"`
	Reason     string `json:"reason"`
	Source     string `json:"source"`
	Since      string `json:"since"`
	TxID       string `json:"tx_id,omitempty"`
	BalanceFen uint64 `json:"balance_fen"`
	sinceMs    int64
}

func (a *app) auditFrozenCmd() *cobra.Command {
	var bank string
	cmd := &cobra.Command{
		Use:   "frozen",
		Short: "List frozen wallets with reason, time and balance",
		Long: `audit frozen lists every frozen wallet: its bank, why and since when it
is frozen, what froze it (its bank's freeze, or a ledger rule such as an
offline double spend) and what it holds.`,
		Example: `  dcep audit frozen
  dcep --json audit frozen --bank icbc`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			out := []frozenJSON{}
			node := ""
			req := &nodepb.FrozenWalletsRequest{Bank: bank, Limit: 1000, Read: a.readOptions()}
			var entries []*nodepb.FrozenWalletEntry
			for {
				page, err := cl.FrozenWalletsPage(ctx, req)
				if err != nil {
					return err
				}
				node = page.GetFreshness().GetNode()
				entries = append(entries, page.GetWallets()...)
				if len(page.GetWallets()) < int(req.Limit) {
					break
				}
				req.After = page.GetWallets()[len(page.GetWallets())-1].GetFrozen().GetWalletId()
			}
			for _, e := range entries {
				f := e.GetFrozen()
				j := frozenJSON{Wallet: f.GetWalletId(), Bank: f.GetBankId(), Reason: f.GetReason(), Source: f.GetSource(),
					Since: whenJSON(f.GetSinceMs()), BalanceFen: e.GetBalanceFen(), sinceMs: f.GetSinceMs()}
				if len(f.GetTxId()) > 0 {
					j.TxID = hex.EncodeToString(f.GetTxId())
				}
				out = append(out, j)
			}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "frozen wallets, asked of %s (%s)\n", node, role)
				if note != "" {
					fmt.Fprintf(w, "note: %s\n", note)
				}
				if len(out) == 0 {
					fmt.Fprintln(w, "none")
					return
				}
				t := newTable("WALLET", "BANK", "SINCE (UTC+8)", "BY", "REASON", "BALANCE").alignRight(5)
				for _, f := range out {
					t.add(f.Wallet, f.Bank, when(f.sinceMs), f.Source, f.Reason, yuan(f.BalanceFen))
				}
				t.write(w)
			})
		}),
	}
	cmd.Flags().StringVar(&bank, "bank", "", "only this bank's wallets")
	return cmd
}

type divergenceJSON struct {
	Node        string          `json:"node"`
	SelfSuspect bool            `json:"self_suspect"`
	Diverged    []divJSON       `json:"divergences"`
	Peers       []peerCheckJSON `json:"peers"`
}

type divJSON struct {
	Peer       string `json:"peer"`
	FirstIndex uint64 `json:"first_index"`
	OurHash    string `json:"our_hash"`
	TheirHash  string `json:"their_hash"`
	FirstSeen  string `json:"first_seen"`
	LastSeen   string `json:"last_seen"`
	LastIndex  uint64 `json:"last_index"`
	Ongoing    bool   `json:"ongoing"`
}

type peerCheckJSON struct {
	Peer      string `json:"peer"`
	Role      string `json:"role"`
	Index     uint64 `json:"index"`
	Agrees    bool   `json:"agrees"`
	OurHash   string `json:"our_hash,omitempty"`
	TheirHash string `json:"their_hash,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (a *app) auditDivergenceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "divergence",
		Short: "Compare state hashes: does every node hold the same ledger?",
		Long: `audit divergence shows the regulator node's comparison of its state hash
with every other node's, at the latest log index both have applied (made
every second), and every divergence it has seen since it started: peer,
first index, both hashes, when first seen. A node whose ledger was altered
differs from then on. Exit status 4 if a divergence is ongoing or the
answering node's own state is the odd one out.`,
		Example: `  dcep audit divergence
  dcep --json audit divergence`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			r, err := cl.Divergence(ctx)
			if err != nil {
				return err
			}
			out := divergenceJSON{Node: r.GetNode(), SelfSuspect: r.GetSelfSuspect(), Diverged: []divJSON{}, Peers: []peerCheckJSON{}}
			var ongoing []string
			for _, d := range r.GetDivergences() {
				out.Diverged = append(out.Diverged, divJSON{Peer: d.GetPeer(), FirstIndex: d.GetFirstIndex(), OurHash: hex.EncodeToString(d.GetOurHash()),
					TheirHash: hex.EncodeToString(d.GetTheirHash()), FirstSeen: whenJSON(d.GetFirstSeenMs()), LastSeen: whenJSON(d.GetLastSeenMs()),
					LastIndex: d.GetLastIndex(), Ongoing: d.GetOngoing()})
				if d.GetOngoing() {
					ongoing = append(ongoing, d.GetPeer())
				}
			}
			for _, p := range r.GetPeers() {
				out.Peers = append(out.Peers, peerCheckJSON{Peer: p.GetPeer(), Role: roleName(p.GetRole()), Index: p.GetIndex(),
					Agrees: p.GetError() == "" && !p.GetDiverged(), OurHash: hex.EncodeToString(p.GetOurHash()), TheirHash: hex.EncodeToString(p.GetTheirHash()), Error: p.GetError()})
			}
			if err := a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "state hashes compared by %s (%s) with every peer, at the latest index both have\n", out.Node, role)
				if note != "" {
					fmt.Fprintf(w, "note: %s\n", note)
				}
				t := newTable("PEER", "ROLE", "INDEX", "STATE HASH").alignRight(2)
				for _, p := range out.Peers {
					verdict := "agrees " + short(p.TheirHash)
					switch {
					case p.Error != "":
						verdict = "not compared: " + p.Error
					case !p.Agrees:
						verdict = fmt.Sprintf("DIVERGED: ours %s, theirs %s", short(p.OurHash), short(p.TheirHash))
					}
					t.add(p.Peer, p.Role, fmt.Sprint(p.Index), verdict)
				}
				t.write(w)
				for _, d := range out.Diverged {
					state := "resolved"
					if d.Ongoing {
						state = "ONGOING"
					}
					fmt.Fprintf(w, "divergence %s: %s since index %d (first seen %s): ours %s, theirs %s\n",
						state, d.Peer, d.FirstIndex, d.FirstSeen, short(d.OurHash), short(d.TheirHash))
				}
				if out.SelfSuspect {
					fmt.Fprintf(w, "%s's own state differs from most peers': its ledger is the likely culprit\n", out.Node)
				}
				if len(ongoing) == 0 && !out.SelfSuspect {
					fmt.Fprintln(w, "no divergence")
				}
			}); err != nil {
				return err
			}
			if out.SelfSuspect {
				return fail(exitAudit, codeDivergence, "%s's state differs from most of its peers'", out.Node)
			}
			if len(ongoing) > 0 {
				return fail(exitAudit, codeDivergence, "state diverges on %s (compared by %s)", strings.Join(ongoing, ", "), out.Node)
			}
			return nil
		}),
	}
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
