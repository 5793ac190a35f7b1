package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/state/statepb"
)

// Red-packet campaigns (SPEC §5): dcep redpacket create|add-merchants|
// enrol|draw|verify|status|list.

func (a *app) redpacketCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "redpacket",
		Short: "Red-packet campaigns: create, enrol, draw, verify the draw, status",
		Long: `redpacket runs a lottery of red packets (SPEC §5). A sponsor (a government
wallet) funds a campaign into escrow and commits to a secret seed; citizens enrol
in the enrolment window; the sponsor reveals the seed at the draw and the ledger
grants the winners red packets, spendable only at the campaign's merchants (by
region, or on its list) inside its spending window. When the window closes,
everything unspent goes back to the sponsor by itself. Anyone can recompute the
winners from the revealed seed: dcep redpacket verify.

Times (--enrol-from ... --spend-until) are RFC 3339 ("2026-12-11T20:00:00+08:00"),
Beijing time ("2026-12-11 20:00"), "now", or relative to now: "+30s", "+10m",
"+2h", "+16d" (now: the later of this machine's clock and the node's ledger time).`,
		Example: `  dcep redpacket create dbl12 --sponsor suzhou --packets 100000 --amount 200 --region 320500 --merchants-file merchants.txt --enrol-until "2026-12-11 20:00" --spend-until "2026-12-28 00:00"
  dcep redpacket enrol dbl12 --wallet alice
  dcep redpacket draw dbl12
  dcep redpacket verify dbl12
  dcep redpacket status dbl12 --wallet alice`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.rpCreateCmd(), a.rpAddMerchantsCmd(), a.rpEnrolCmd(), a.rpDrawCmd(), a.rpVerifyCmd(), a.rpStatusCmd(), a.rpListCmd())
	return cmd
}

// ledgerNow is "now" for relative times: the later of this machine's
// clock and the node's ledger time (which stands still while the network is
// idle).
func (a *app) ledgerNow(ctx context.Context) (int64, error) {
	cl, err := a.client()
	if err != nil {
		return 0, err
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return 0, err
	}
	return max(time.Now().UnixMilli(), st.GetNode().GetLedgerTimeMs()), nil
}

// parseLedgerTime reads a time flag: RFC 3339, Beijing "2006-01-02 15:04[:05]",
// "now", or "+DURATION" from nowMs (Go durations plus "d" for days).
func parseLedgerTime(flag, s string, nowMs int64) (int64, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "now":
		return nowMs, nil
	case strings.HasPrefix(s, "+"):
		rest := s[1:]
		var d time.Duration
		var err error
		if days, ok := strings.CutSuffix(rest, "d"); ok {
			var n int
			if _, err = fmt.Sscanf(days, "%d", &n); err == nil && n >= 0 && fmt.Sprint(n) == days {
				d = time.Duration(n) * 24 * time.Hour
			} else {
				err = fmt.Errorf("bad number of days")
			}
		} else {
			d, err = time.ParseDuration(rest)
		}
		if err != nil || d < 0 {
			return 0, usage("--%s %q: want +DURATION like +30s, +10m, +2h, +16d", flag, s)
		}
		return nowMs + d.Milliseconds(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UnixMilli(), nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, beijing); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, usage("--%s %q: want a time (2026-12-11T20:00:00+08:00, \"2026-12-11 20:00\" Beijing time), now, or +DURATION", flag, s)
}

// seedPath is where the CLI keeps a campaign's secret seed until the draw:
// in the keystore, readable by its owner only.
func (a *app) seedPath(campaign string) string {
	return filepath.Join(a.home, "seeds", campaign+".seed")
}

func (a *app) saveSeed(campaign string, seed []byte) (string, error) {
	p := a.seedPath(campaign)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return "", fail(exitRefused, codeKeyExists, "a seed for campaign %q is already in %s", campaign, p).
			hint("a campaign id is used once; pick another, or delete the file if that campaign was never created")
	}
	if err != nil {
		return "", err
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(seed)); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return p, f.Close()
}

func readSeed(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fail(exitRefused, codeKeyNotFound, "no seed at %s: %v", path, err).
			hint("the seed is written when the campaign is created (dcep redpacket create); or give it with --seed HEX")
	}
	return parseSeed(strings.TrimSpace(string(raw)))
}

func parseSeed(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != statepb.SeedBytes {
		return nil, usage("seed: want %d hex digits", 2*statepb.SeedBytes)
	}
	return b, nil
}

// readList reads ids from comma-separated flag values and a file (one id a
// line, # comments).
func readList(vals []string, file string) ([]string, error) {
	var out []string
	for _, v := range vals {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, usage("--merchants-file: %v", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			out = append(out, l)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	uniq := out[:0]
	for _, x := range out {
		if err := statepb.ValidateID("merchant", x); err != nil {
			return nil, usage("merchant %q: ids use a-z 0-9 . _ -", x)
		}
		if !seen[x] {
			seen[x] = true
			uniq = append(uniq, x)
		}
	}
	return uniq, nil
}

type campaignJSON struct {
	Campaign         string   `json:"campaign"`
	Title            string   `json:"title,omitempty"`
	Sponsor          string   `json:"sponsor"`
	Status           string   `json:"status"`
	Packets          uint32   `json:"packets"`
	PacketFen        uint64   `json:"packet_fen"`
	FundedFen        uint64   `json:"funded_fen"`
	Funded           string   `json:"funded"`
	EnrolFrom        string   `json:"enrol_from"`
	EnrolUntil       string   `json:"enrol_until"`
	SpendFrom        string   `json:"spend_from"`
	SpendUntil       string   `json:"spend_until"`
	Regions          []string `json:"regions"`
	Merchants        uint64   `json:"merchants"`
	Commitment       string   `json:"commitment"`
	Seed             string   `json:"seed,omitempty"`
	Enrolled         uint64   `json:"enrolled"`
	Won              uint64   `json:"won"`
	Granted          uint64   `json:"granted"`
	GrantedFen       uint64   `json:"granted_fen"`
	Forfeited        uint64   `json:"forfeited"`
	EscrowFen        uint64   `json:"escrow_fen"`
	LiveFen          uint64   `json:"live_fen"`
	LiveOutputs      uint64   `json:"live_outputs"`
	SpentFen         uint64   `json:"spent_fen"`
	Payments         uint64   `json:"payments"`
	RefundedFen      uint64   `json:"refunded_fen"`
	RefundedHolder   uint64   `json:"refunded_to_holders_fen"`
	RefundedSponsor  uint64   `json:"refunded_to_sponsor_fen"`
	ReclaimedFen     uint64   `json:"reclaimed_fen"`
	ReclaimedOutputs uint64   `json:"reclaimed_outputs"`
	ReclaimedTo      string   `json:"reclaimed_to,omitempty"`
	Finished         string   `json:"finished,omitempty"`
	LedgerTime       string   `json:"ledger_time"`
	Node             string   `json:"node"`
	Wallet           string   `json:"wallet,omitempty"`
	WalletEnrolled   *bool    `json:"wallet_enrolled,omitempty"`
	WalletWon        *bool    `json:"wallet_won,omitempty"`
	WalletEnrolment  *uint64  `json:"wallet_enrolment,omitempty"`
}

func campaignStatus(s statepb.CampaignStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CAMPAIGN_STATUS_"))
}

func campaignOut(c *statepb.CampaignRecord) campaignJSON {
	out := campaignJSON{
		Campaign: c.GetId(), Title: c.GetTitle(), Sponsor: c.GetSponsorWalletId(), Status: campaignStatus(c.GetStatus()),
		Packets: c.GetPacketCount(), PacketFen: c.GetPacketFen(), FundedFen: c.GetFundedFen(), Funded: plain(c.GetFundedFen()),
		EnrolFrom: whenJSON(c.GetEnrolStartMs()), EnrolUntil: whenJSON(c.GetEnrolEndMs()), SpendFrom: whenJSON(c.GetSpendStartMs()), SpendUntil: whenJSON(c.GetSpendEndMs()),
		Regions: c.GetRegionCodes(), Merchants: c.GetMerchants(), Commitment: hex.EncodeToString(c.GetCommitment()), Seed: hex.EncodeToString(c.GetSeed()),
		Enrolled: c.GetEnrolled(), Won: c.GetWinners(), Granted: c.GetGranted() - c.GetForfeited(), GrantedFen: c.GetGrantedFen(), Forfeited: c.GetForfeited(),
		EscrowFen: c.GetEscrowFen(), LiveFen: c.GetLiveFen(), LiveOutputs: c.GetLiveOutputs(), SpentFen: c.GetSpentFen(), Payments: c.GetPayments(),
		RefundedFen: c.GetRefundedToHolderFen() + c.GetRefundedToSponsorFen(), RefundedHolder: c.GetRefundedToHolderFen(), RefundedSponsor: c.GetRefundedToSponsorFen(),
		ReclaimedFen: c.GetReclaimedFen(), ReclaimedOutputs: c.GetReclaimedOutputs(), ReclaimedTo: c.GetReclaimedTo(), Finished: whenJSON(c.GetFinishedMs()),
	}
	if out.Regions == nil {
		out.Regions = []string{}
	}
	return out
}

// phase says where a campaign is at ledger time now, for people.
func phase(c *statepb.CampaignRecord, now int64) string {
	switch c.GetStatus() {
	case statepb.CampaignStatus_CAMPAIGN_STATUS_OPEN:
		switch {
		case now < c.GetEnrolStartMs():
			return "enrolment opens " + when(c.GetEnrolStartMs())
		case now < c.GetEnrolEndMs():
			return "enrolling until " + when(c.GetEnrolEndMs())
		case now < c.GetSpendEndMs():
			return "enrolment closed; waiting for the sponsor's draw"
		}
		return "closed without a draw; reclaiming"
	case statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING:
		return "drawn; granting red packets"
	case statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED:
		if now < c.GetSpendStartMs() {
			return "granted; spending opens " + when(c.GetSpendStartMs())
		}
		return "spending until " + when(c.GetSpendEndMs())
	case statepb.CampaignStatus_CAMPAIGN_STATUS_RECLAIMING:
		return "window closed; reclaiming unspent red packets"
	case statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED:
		return "finished " + when(c.GetFinishedMs()) + ": unspent money returned to " + c.GetReclaimedTo()
	}
	return campaignStatus(c.GetStatus())
}

func writeCampaign(w io.Writer, c *statepb.CampaignRecord, now int64) {
	title := c.GetId()
	if c.GetTitle() != "" {
		title += " (" + c.GetTitle() + ")"
	}
	fmt.Fprintf(w, "campaign %s, sponsor %s: %s\n", title, c.GetSponsorWalletId(), phase(c, now))
	fmt.Fprintf(w, "  %d red packets of %s = %s\n", c.GetPacketCount(), yuan(c.GetPacketFen()), yuan(c.GetFundedFen()))
	fmt.Fprintf(w, "  enrolment %s → %s; spending %s → %s (UTC+8)\n", when(c.GetEnrolStartMs()), when(c.GetEnrolEndMs()), when(c.GetSpendStartMs()), when(c.GetSpendEndMs()))
	regions := "none"
	if len(c.GetRegionCodes()) > 0 {
		regions = strings.Join(c.GetRegionCodes(), ", ")
	}
	fmt.Fprintf(w, "  merchants: regions %s, and %d on its list\n", regions, c.GetMerchants())
	fmt.Fprintf(w, "  commitment %x\n", c.GetCommitment())
	if len(c.GetSeed()) > 0 {
		fmt.Fprintf(w, "  seed       %x (revealed %s)\n", c.GetSeed(), when(c.GetDrawnMs()))
	}
	t := newTable("FIGURE", "COUNT", "AMOUNT").alignRight(1, 2)
	t.add("enrolled", fmt.Sprint(c.GetEnrolled()), "")
	t.add("won", fmt.Sprint(c.GetWinners()), "")
	t.add("granted", fmt.Sprint(c.GetGranted()-c.GetForfeited()), yuan(c.GetGrantedFen()))
	if c.GetForfeited() > 0 {
		t.add("forfeited (wallet closed)", fmt.Sprint(c.GetForfeited()), "")
	}
	t.add("spent at merchants", fmt.Sprint(c.GetPayments()), yuan(c.GetSpentFen()))
	t.add("refunded (as red packets)", "", yuan(c.GetRefundedToHolderFen()))
	t.add("refunded (to the sponsor)", "", yuan(c.GetRefundedToSponsorFen()))
	t.add("unspent red packets", fmt.Sprint(c.GetLiveOutputs()), yuan(c.GetLiveFen()))
	t.add("in escrow", "", yuan(c.GetEscrowFen()))
	t.add("reclaimed", fmt.Sprint(c.GetReclaimedOutputs()), yuan(c.GetReclaimedFen()))
	t.write(w)
}

func (a *app) rpCreateCmd() *cobra.Command {
	var sponsor, amt, title, merchantsFile, seedHex string
	var packets uint32
	var regions, merchants []string
	var enrolFrom, enrolUntil, spendFrom, spendUntil string
	cmd := &cobra.Command{
		Use:   "create CAMPAIGN --sponsor WALLET --packets N --amount YUAN [--region CODE] [--merchants IDS]",
		Short: "Sponsor: create a campaign, funding packets × amount into escrow",
		Long: `create opens a campaign signed with the sponsor's wallet key (a government
wallet in the keystore) and moves packets × amount from it into campaign escrow.

It makes a random 32-byte seed, commits to it on the ledger (SHA-256), and keeps
the seed secret in the keystore (seeds/CAMPAIGN.seed) until the draw: winners are
a function of the seed and the enrolment list, and the commitment is made before
anyone enrols, so the sponsor cannot choose winners. --seed HEX uses a given seed.

Eligible merchants: merchant wallets in --region (repeatable), and those listed in
--merchants (comma-separated) or --merchants-file (one id a line). Lists longer
than one transaction carries go in batches of 500 (add_campaign_merchants), before
spending opens. Defaults: enrolment from now for 10 minutes, spending from its
close for 24 hours.`,
		Example: `  dcep redpacket create dbl12 --sponsor suzhou --packets 1000 --amount 200 --region 320500 --merchants jd --enrol-until +10m --spend-until +2d`,
		Args:    args(1, "a campaign id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			id := argv[0]
			if err := statepb.ValidateID("campaign", id); err != nil {
				return usage("campaign id %q: ids use a-z 0-9 . _ - and start with a letter or digit", id)
			}
			if err := required(cmd, "sponsor", "amount"); err != nil {
				return err
			}
			if packets == 0 {
				return usage("--packets is required (1..%d)", statepb.MaxCampaignPackets)
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			list, err := readList(merchants, merchantsFile)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			now, err := a.ledgerNow(ctx)
			if err != nil {
				return err
			}
			var es, ee, ss, se int64
			if es, err = whenOr("enrol-from", enrolFrom, now, now); err != nil {
				return err
			}
			if ee, err = whenOr("enrol-until", enrolUntil, now, es+10*60_000); err != nil {
				return err
			}
			if ss, err = whenOr("spend-from", spendFrom, now, ee); err != nil {
				return err
			}
			if se, err = whenOr("spend-until", spendUntil, now, ss+24*3_600_000); err != nil {
				return err
			}
			var seed []byte
			if seedHex != "" {
				if seed, err = parseSeed(seedHex); err != nil {
					return err
				}
			} else {
				seed = make([]byte, statepb.SeedBytes)
				if _, err := rand.Read(seed); err != nil {
					return err
				}
			}
			commit := sha256.Sum256(seed)
			first := list[:min(len(list), statepb.MaxMerchantsPerTx)]
			spec := &statepb.CreateCampaign{
				CampaignId: id, SponsorWalletId: "", PacketCount: packets, PacketFen: fen, Title: title,
				EnrolStartMs: es, EnrolEndMs: ee, SpendStartMs: ss, SpendEndMs: se,
				RegionCodes: regions, MerchantIds: first, Commitment: commit[:],
			}
			k, err := a.walletKey(sponsor)
			if err != nil {
				return err
			}
			spec.SponsorWalletId = k.WalletID
			check := withPlaceholderInputs(spec)
			if err := check.ValidateBasic(); err != nil {
				return err
			}
			path, err := a.saveSeed(id, seed)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.CreateCampaign(ctx, k.Private, spec)
			if err != nil {
				var te *client.TxError
				if errors.As(err, &te) {
					_ = os.Remove(path) // refused: nothing was committed to
				}
				return err
			}
			var batches int
			if rest := list[len(first):]; len(rest) > 0 {
				rs, err := cl.AddCampaignMerchants(ctx, k.Private, id, rest)
				if err != nil {
					return fmt.Errorf("campaign created (tx %x) but adding merchants stopped after %d batches: %w", r.GetTxId(), len(rs), err)
				}
				batches = len(rs)
			}
			resp, err := cl.Campaign(ctx, id, "", a.reads()...)
			if err != nil {
				return err
			}
			out := struct {
				txJSON
				campaignJSON
				SeedFile string `json:"seed_file"`
				Batches  int    `json:"merchant_batches"`
			}{txOut(r), campaignOut(resp.GetCampaign()), path, batches}
			out.Seed = ""
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "created campaign %s: %d red packets of %s (%s in escrow from %s)\n", id, packets, yuan(fen), yuan(resp.GetCampaign().GetFundedFen()), k.WalletID)
				fmt.Fprintf(w, "the lottery seed is secret until the draw: %s (commitment %x)\n", path, commit)
				if batches > 0 {
					fmt.Fprintf(w, "%d merchants listed (%d further transactions)\n", len(list), batches)
				}
				writeCampaign(w, resp.GetCampaign(), resp.GetFreshness().GetLedgerTimeMs())
				writeTx(w, r)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&sponsor, "sponsor", "", "sponsor: a government wallet's keystore name")
	f.Uint32Var(&packets, "packets", 0, "number of red packets")
	f.StringVar(&amt, "amount", "", "amount of each red packet, in yuan")
	f.StringVar(&title, "title", "", "title shown to people")
	f.StringSliceVar(&regions, "region", nil, "eligible region code (repeatable), e.g. 320500 (Suzhou)")
	f.StringSliceVar(&merchants, "merchants", nil, "eligible merchant wallet ids, comma-separated")
	f.StringVar(&merchantsFile, "merchants-file", "", "file of eligible merchant wallet ids, one a line")
	f.StringVar(&enrolFrom, "enrol-from", "", "enrolment opens (default now)")
	f.StringVar(&enrolUntil, "enrol-until", "", "enrolment closes (default 10 minutes after it opens)")
	f.StringVar(&spendFrom, "spend-from", "", "spending opens (default when enrolment closes)")
	f.StringVar(&spendUntil, "spend-until", "", "spending closes and the rest is reclaimed (default 24 hours after it opens)")
	f.StringVar(&seedHex, "seed", "", "use this seed (64 hex digits) instead of a random one")
	return cmd
}

func whenOr(flag, val string, now, def int64) (int64, error) {
	if val == "" {
		return def, nil
	}
	return parseLedgerTime(flag, val, now)
}

func withPlaceholderInputs(spec *statepb.CreateCampaign) *statepb.CreateCampaign {
	return &statepb.CreateCampaign{
		CampaignId: spec.GetCampaignId(), SponsorWalletId: spec.GetSponsorWalletId(), Inputs: []*statepb.Outpoint{{TxId: make([]byte, statepb.TxIDBytes)}},
		PacketCount: spec.GetPacketCount(), PacketFen: spec.GetPacketFen(), EnrolStartMs: spec.GetEnrolStartMs(), EnrolEndMs: spec.GetEnrolEndMs(),
		SpendStartMs: spec.GetSpendStartMs(), SpendEndMs: spec.GetSpendEndMs(), RegionCodes: spec.GetRegionCodes(), MerchantIds: spec.GetMerchantIds(),
		Commitment: spec.GetCommitment(), Title: spec.GetTitle(),
	}
}

func (a *app) rpAddMerchantsCmd() *cobra.Command {
	var merchants []string
	var file string
	cmd := &cobra.Command{
		Use:     "add-merchants CAMPAIGN --merchants IDS | --merchants-file FILE",
		Short:   "Sponsor: add merchants to a campaign's list (before spending opens)",
		Example: `  dcep redpacket add-merchants dbl12 --merchants-file suzhou-merchants.txt`,
		Args:    args(1, "a campaign id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			list, err := readList(merchants, file)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				return usage("no merchants given: --merchants or --merchants-file")
			}
			ctx := cmd.Context()
			cl, err := a.client()
			if err != nil {
				return err
			}
			resp, err := cl.Campaign(ctx, argv[0], "", a.reads()...)
			if err != nil {
				return a.campaignErr(err, argv[0])
			}
			k, err := a.walletKey(resp.GetCampaign().GetSponsorWalletId())
			if err != nil {
				return err
			}
			rs, err := cl.AddCampaignMerchants(ctx, k.Private, argv[0], list)
			if err != nil {
				return err
			}
			return a.emit(map[string]any{"campaign": argv[0], "merchants": len(list), "transactions": len(rs)}, func(w io.Writer) {
				fmt.Fprintf(w, "added %d merchants to %s in %d transactions\n", len(list), argv[0], len(rs))
			})
		}),
	}
	cmd.Flags().StringSliceVar(&merchants, "merchants", nil, "merchant wallet ids, comma-separated")
	cmd.Flags().StringVar(&file, "merchants-file", "", "file of merchant wallet ids, one a line")
	return cmd
}

func (a *app) campaignErr(err error, id string) error {
	if errors.Is(err, client.ErrNotFound) {
		return fail(exitRefused, statepb.Code_CODE_CAMPAIGN_NOT_FOUND.Short(), "no campaign %q on the network at %s", id, a.node).hint("campaigns: dcep redpacket list")
	}
	return err
}

func (a *app) rpEnrolCmd() *cobra.Command {
	var wallet string
	cmd := &cobra.Command{
		Use:   "enrol CAMPAIGN --wallet NAME",
		Short: "Citizen: enrol a personal wallet in a campaign's lottery",
		Long: `enrol enters a personal wallet (its key in the keystore) in a campaign's lottery,
inside the enrolment window, once per wallet. Enrolments are numbered in the
order the ledger accepts them; the draw picks winners from that list.`,
		Example: `  dcep redpacket enrol dbl12 --wallet alice`,
		Args:    args(1, "a campaign id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			if err := required(cmd, "wallet"); err != nil {
				return err
			}
			k, err := a.walletKey(wallet)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl, err := a.client()
			if err != nil {
				return err
			}
			r, err := cl.Enrol(ctx, k.Private, argv[0], k.WalletID)
			if err != nil {
				return err
			}
			resp, err := cl.Campaign(ctx, argv[0], k.WalletID, a.reads()...)
			if err != nil {
				return err
			}
			n := resp.GetEnrolment().GetNumber()
			return a.emit(map[string]any{"tx": txOut(r), "campaign": argv[0], "wallet": k.WalletID, "enrolment": n}, func(w io.Writer) {
				fmt.Fprintf(w, "%s enrolled in %s as enrolment %d; the draw is after %s\n", k.WalletID, argv[0], n, when(resp.GetCampaign().GetEnrolEndMs()))
				writeTx(w, r)
			})
		}),
	}
	cmd.Flags().StringVar(&wallet, "wallet", "", "personal wallet (keystore name)")
	return cmd
}

func (a *app) rpDrawCmd() *cobra.Command {
	var seedHex, seedFile string
	cmd := &cobra.Command{
		Use:   "draw CAMPAIGN [--seed HEX | --seed-file FILE]",
		Short: "Sponsor: reveal the seed; the ledger draws and grants the winners",
		Long: `draw reveals the campaign's seed (by default the one create kept in the keystore).
The ledger checks SHA-256(seed) against the commitment made at creation (another
seed is refused: DRAW_SEED_MISMATCH) and then grants the winners red packets by
itself, a bounded number per block. It waits until granting is done.`,
		Example: `  dcep redpacket draw dbl12`,
		Args:    args(1, "a campaign id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			id := argv[0]
			var seed []byte
			var err error
			switch {
			case seedHex != "":
				seed, err = parseSeed(seedHex)
			case seedFile != "":
				seed, err = readSeed(seedFile)
			default:
				seed, err = readSeed(a.seedPath(id))
			}
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl, err := a.client()
			if err != nil {
				return err
			}
			resp, err := cl.Campaign(ctx, id, "", a.reads()...)
			if err != nil {
				return a.campaignErr(err, id)
			}
			k, err := a.walletKey(resp.GetCampaign().GetSponsorWalletId())
			if err != nil {
				return err
			}
			r, err := cl.Draw(ctx, k.Private, id, seed)
			if err != nil {
				return err
			}
			c, err := a.waitGranted(ctx, id)
			if err != nil {
				return err
			}
			return a.emit(struct {
				txJSON
				campaignJSON
			}{txOut(r), campaignOut(c)}, func(w io.Writer) {
				fmt.Fprintf(w, "drew %s: %d winners among %d enrolments; %d red packets granted\n", id, c.GetWinners(), c.GetEnrolled(), c.GetGranted()-c.GetForfeited())
				fmt.Fprintf(w, "anyone can check the draw: dcep redpacket verify %s\n", id)
				writeTx(w, r)
			})
		}),
	}
	cmd.Flags().StringVar(&seedHex, "seed", "", "the seed, 64 hex digits")
	cmd.Flags().StringVar(&seedFile, "seed-file", "", "file holding the seed in hex")
	return cmd
}

// waitGranted waits until a drawn campaign has granted every winner (the
// ledger does it in scheduled chunks; idle leaders propose the blocks).
func (a *app) waitGranted(ctx context.Context, id string) (*statepb.CampaignRecord, error) {
	cl, _ := a.client()
	for {
		resp, err := cl.Campaign(ctx, id, "", client.Linearizable())
		if err != nil {
			return nil, err
		}
		c := resp.GetCampaign()
		if c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type verifyJSON struct {
	Campaign     string   `json:"campaign"`
	OK           bool     `json:"ok"`
	CommitmentOK bool     `json:"commitment_ok"`
	Seed         string   `json:"seed"`
	Enrolled     int      `json:"enrolled"`
	Packets      uint32   `json:"packets"`
	Winners      []string `json:"winners"`
	Checked      int      `json:"checked"`
	Mismatches   []string `json:"mismatches"`
	Node         string   `json:"node"`
}

func (a *app) rpVerifyCmd() *cobra.Command {
	var show int
	cmd := &cobra.Command{
		Use:   "verify CAMPAIGN",
		Short: "Anyone: recompute a draw's winners from the revealed seed and compare",
		Long: `verify checks a draw from public data only: the seed the sponsor revealed, the
campaign id and the enrolment list, read from --node (a regulator's node is a
good choice). It checks SHA-256(seed) against the commitment the sponsor made
before enrolment closed, recomputes the winners with the ledger's lottery
(state/lottery: Floyd's sampling driven by SHA-256, no modulo bias), and compares
them rank by rank with the winners the ledger granted. Exit status 1 if anything
differs (code DRAW_MISMATCH).`,
		Example: `  dcep redpacket verify dbl12
  dcep --node http://127.0.0.1:8108 redpacket verify dbl12 --show 20`,
		Args: args(1, "a campaign id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			dc, err := cl.VerifyDraw(cmd.Context(), argv[0], a.reads()...)
			if err != nil {
				return a.campaignErr(err, argv[0])
			}
			out := verifyJSON{Campaign: argv[0], OK: dc.OK(), CommitmentOK: dc.CommitmentOK, Seed: hex.EncodeToString(dc.Campaign.GetSeed()),
				Enrolled: len(dc.Enrolled), Packets: dc.Campaign.GetPacketCount(), Winners: dc.Winners, Checked: dc.Checked, Mismatches: dc.Mismatches, Node: a.node}
			if out.Mismatches == nil {
				out.Mismatches = []string{}
			}
			err = a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "campaign %s: seed %x\n", argv[0], dc.Campaign.GetSeed())
				if dc.CommitmentOK {
					fmt.Fprintf(w, "commitment matches: SHA-256(seed) = %x, committed at creation\n", dc.Campaign.GetCommitment())
				} else {
					fmt.Fprintf(w, "COMMITMENT MISMATCH: SHA-256(seed) ≠ %x\n", dc.Campaign.GetCommitment())
				}
				fmt.Fprintf(w, "recomputed %d winners among %d enrolments (%d packets)\n", len(dc.Winners), len(dc.Enrolled), dc.Campaign.GetPacketCount())
				for i, wn := range dc.Winners {
					if i == show {
						fmt.Fprintf(w, "  … (%d more; --show N, or --json)\n", len(dc.Winners)-show)
						break
					}
					fmt.Fprintf(w, "  rank %d: %s\n", i, wn)
				}
				if len(dc.Mismatches) == 0 {
					fmt.Fprintf(w, "the ledger's %d granted winners equal the recomputation: the draw is fair to its commitment\n", dc.Checked)
				}
				for _, m := range dc.Mismatches {
					fmt.Fprintf(w, "MISMATCH %s\n", m)
				}
			})
			if err != nil {
				return err
			}
			if !dc.OK() {
				return fail(exitRefused, "DRAW_MISMATCH", "the draw of %s does not verify (%d mismatches, commitment ok: %v)", argv[0], len(dc.Mismatches), dc.CommitmentOK)
			}
			return nil
		}),
	}
	cmd.Flags().IntVar(&show, "show", 10, "print at most N winners")
	return cmd
}

func (a *app) rpStatusCmd() *cobra.Command {
	var wallet string
	cmd := &cobra.Command{
		Use:   "status CAMPAIGN [--wallet NAME]",
		Short: "Anyone: a campaign's figures (enrolled, won, granted, spent, refunded, reclaimed)",
		Example: `  dcep redpacket status dbl12
  dcep redpacket status dbl12 --wallet alice`,
		Args: args(1, "a campaign id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			cl, err := a.client()
			if err != nil {
				return err
			}
			wid := ""
			if wallet != "" {
				w, err := a.lookupWallet(ctx, wallet, codeWalletNotFound)
				if err != nil {
					return err
				}
				wid = w.ID
			}
			resp, err := cl.Campaign(ctx, argv[0], wid, a.reads()...)
			if err != nil {
				return a.campaignErr(err, argv[0])
			}
			c := resp.GetCampaign()
			out := campaignOut(c)
			out.LedgerTime, out.Node = whenJSON(resp.GetFreshness().GetLedgerTimeMs()), resp.GetFreshness().GetNode()
			if wid != "" {
				enrolled, won := resp.GetEnrolment() != nil, resp.GetEnrolment().GetWon()
				out.Wallet, out.WalletEnrolled, out.WalletWon = wid, &enrolled, &won
				if enrolled {
					n := resp.GetEnrolment().GetNumber()
					out.WalletEnrolment = &n
				}
			}
			return a.emit(out, func(w io.Writer) {
				writeCampaign(w, c, resp.GetFreshness().GetLedgerTimeMs())
				if wid != "" {
					switch e := resp.GetEnrolment(); {
					case e == nil:
						fmt.Fprintf(w, "%s is not enrolled\n", wid)
					case e.GetWon():
						fmt.Fprintf(w, "%s (enrolment %d) won: red packet of rank %d\n", wid, e.GetNumber(), e.GetRank())
					case len(c.GetSeed()) > 0 && c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING:
						fmt.Fprintf(w, "%s (enrolment %d) did not win\n", wid, e.GetNumber())
					default:
						fmt.Fprintf(w, "%s is enrolment %d; not drawn yet\n", wid, e.GetNumber())
					}
				}
				fmt.Fprintf(w, "(ledger time %s at %s)\n", when(resp.GetFreshness().GetLedgerTimeMs()), resp.GetFreshness().GetNode())
			})
		}),
	}
	cmd.Flags().StringVar(&wallet, "wallet", "", "also say whether this wallet enrolled and won")
	return cmd
}

func (a *app) rpListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "Anyone: list campaigns",
		Example: `  dcep redpacket list`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			var out []campaignJSON
			for c, err := range cl.Campaigns(cmd.Context(), a.reads()...) {
				if err != nil {
					return err
				}
				out = append(out, campaignOut(c))
			}
			if out == nil {
				out = []campaignJSON{}
			}
			return a.emit(out, func(w io.Writer) {
				if len(out) == 0 {
					fmt.Fprintln(w, "no campaigns")
					return
				}
				t := newTable("CAMPAIGN", "SPONSOR", "STATUS", "PACKETS", "ENROLLED", "WON", "SPENT", "RECLAIMED").alignRight(3, 4, 5, 6, 7)
				for _, c := range out {
					t.add(c.Campaign, c.Sponsor, c.Status, fmt.Sprint(c.Packets), fmt.Sprint(c.Enrolled), fmt.Sprint(c.Won), yuan(c.SpentFen), yuan(c.ReclaimedFen))
				}
				t.write(w)
			})
		}),
	}
}
