package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// The regulator's views of offline payments (SPEC §4) and red-packet
// campaigns (SPEC §5): `dcep audit incidents|offline|campaign`.

func (a *app) auditProgramCmds() []*cobra.Command {
	return []*cobra.Command{a.auditIncidentsCmd(), a.auditOfflineCmd(), a.auditCampaignCmd()}
}

type auditIncidentJSON struct {
	ID               uint64 `json:"id"`
	Kind             string `json:"kind"`
	Time             string `json:"time"`
	Payer            string `json:"payer"`
	Bank             string `json:"bank"`
	Device           string `json:"device"`
	Purse            string `json:"purse"`
	FirstPayee       string `json:"first_payee,omitempty"`
	SecondPayee      string `json:"second_payee"`
	FirstPayment     string `json:"first_payment,omitempty"`
	SecondPayment    string `json:"second_payment"`
	CloseTxID        string `json:"close_tx_id,omitempty"`
	ClaimFen         uint64 `json:"claim_fen"`
	FromEscrowFen    uint64 `json:"from_escrow_fen"`
	FromPayerFen     uint64 `json:"from_payer_fen"`
	FromGuaranteeFen uint64 `json:"from_guarantee_fen"`
	FromReserveFen   uint64 `json:"from_reserve_fen"`
	PaidLaterFen     uint64 `json:"paid_later_fen"`
	DebtFen          uint64 `json:"debt_fen"`
	UnpaidFen        uint64 `json:"unpaid_fen"`
	Status           string `json:"status"`
	FrozeWallet      bool   `json:"froze_wallet"`
	LogIndex         uint64 `json:"log_index"`
	ms               int64
}

type auditIncidentsJSON struct {
	Node      string                  `json:"node"`
	Totals    auditIncidentTotalsJSON `json:"totals"`
	Incidents []auditIncidentJSON     `json:"incidents"`
}

type auditIncidentTotalsJSON struct {
	Incidents        uint64 `json:"incidents"`
	Settled          uint64 `json:"settled"`
	Underfunded      uint64 `json:"underfunded"`
	PaidLate         uint64 `json:"paid_late"`
	ClaimFen         uint64 `json:"claim_fen"`
	FromEscrowFen    uint64 `json:"from_escrow_fen"`
	FromPayerFen     uint64 `json:"from_payer_fen"`
	FromGuaranteeFen uint64 `json:"from_guarantee_fen"`
	FromReserveFen   uint64 `json:"from_reserve_fen"`
	PaidLaterFen     uint64 `json:"paid_later_fen"`
	DebtFen          uint64 `json:"debt_fen"`
	UnpaidFen        uint64 `json:"unpaid_fen"`
	WalletsFrozen    uint64 `json:"wallets_frozen"`
}

func enumName(s, prefix string) string { return strings.ToLower(strings.TrimPrefix(s, prefix)) }

func (a *app) auditIncidentsCmd() *cobra.Command {
	var bank string
	cmd := &cobra.Command{
		Use:   "incidents",
		Short: "List offline double-spend incidents with their proof and what was recovered",
		Long: `audit incidents lists every proven offline double spend (SPEC §4): the
payer's wallet and bank, the device and purse, both signed payments (the proof;
--json prints them in hex), who was paid and from where (the purse's escrow,
the payer's online funds, the bank's guarantee), the debt recorded against the
payer, what nobody could pay, and whether the payer's wallet was frozen.`,
		Example: `  dcep audit incidents
  dcep --json audit incidents --bank icbc`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			out := auditIncidentsJSON{Incidents: []auditIncidentJSON{}}
			req := &nodepb.IncidentsRequest{Bank: bank, Read: a.readOptions()}
			for {
				page, err := cl.IncidentsPage(ctx, req)
				if err != nil {
					return err
				}
				t := page.GetTotals()
				out.Node, out.Totals = page.GetFreshness().GetNode(), auditIncidentTotalsJSON{
					Incidents: t.GetIncidents(), Settled: t.GetSettled(), Underfunded: t.GetUnderfunded(), PaidLate: t.GetPaidLate(), ClaimFen: t.GetClaimFen(),
					FromEscrowFen: t.GetFromEscrowFen(), FromPayerFen: t.GetFromPayerFen(), FromGuaranteeFen: t.GetFromGuaranteeFen(),
					FromReserveFen: t.GetFromReserveFen(), PaidLaterFen: t.GetPaidLaterFen(),
					DebtFen: t.GetDebtFen(), UnpaidFen: t.GetUnpaidFen(), WalletsFrozen: t.GetWalletsFrozen(),
				}
				for _, i := range page.GetIncidents() {
					out.Incidents = append(out.Incidents, auditIncidentOut(i))
				}
				if page.GetNextAfter() == 0 {
					break
				}
				req.After = page.GetNextAfter()
			}
			t := out.Totals
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "offline double-spend incidents, asked of %s (%s)\n", out.Node, role)
				if note != "" {
					fmt.Fprintf(w, "note: %s\n", note)
				}
				if len(out.Incidents) == 0 {
					fmt.Fprintln(w, "none")
					return
				}
				fmt.Fprintf(w, "%s: %d settled in full, %d paid late, %d underfunded; claimed %s, paid from escrow %s, from payers %s, from bank guarantees %s, from bank reserves %s, by banks later %s; payers' debt %s, banks still owe %s\n",
					plural(t.Incidents, "incident"), t.Settled, t.PaidLate, t.Underfunded, yuan(t.ClaimFen), yuan(t.FromEscrowFen),
					yuan(t.FromPayerFen), yuan(t.FromGuaranteeFen), yuan(t.FromReserveFen), yuan(t.PaidLaterFen), yuan(t.DebtFen), yuan(t.UnpaidFen))
				tb := newTable("ID", "TIME (UTC+8)", "KIND", "PAYER", "BANK", "PAYEES", "CLAIM", "ESCROW", "PAYER FUNDS", "GUARANTEE", "RESERVE", "PAID LATER", "UNPAID", "STATUS").
					alignRight(0, 6, 7, 8, 9, 10, 11, 12)
				for _, i := range out.Incidents {
					payees := i.SecondPayee
					if i.FirstPayee != "" {
						payees = i.FirstPayee + ", " + i.SecondPayee
					}
					tb.add(fmt.Sprint(i.ID), when(i.ms), i.Kind, i.Payer, i.Bank, payees, yuan(i.ClaimFen), yuan(i.FromEscrowFen),
						yuan(i.FromPayerFen), yuan(i.FromGuaranteeFen), yuan(i.FromReserveFen), yuan(i.PaidLaterFen), yuan(i.UnpaidFen), i.Status)
				}
				tb.write(w)
				fmt.Fprintln(w, "proof: both signed payments of each incident are in --json (first_payment, second_payment)")
			})
		}),
	}
	cmd.Flags().StringVar(&bank, "bank", "", "only incidents of this bank's wallets")
	return cmd
}

func auditIncidentOut(i *statepb.Incident) auditIncidentJSON {
	return auditIncidentJSON{
		ID: i.GetId(), Kind: enumName(i.GetKind().String(), "INCIDENT_KIND_"), Time: whenJSON(i.GetTimeMs()), Payer: i.GetPayerWalletId(), Bank: i.GetBankId(),
		Device: hex.EncodeToString(i.GetDevicePublicKey()), Purse: hex.EncodeToString(i.GetPurseId()),
		FirstPayee: i.GetFirstPayeeWalletId(), SecondPayee: i.GetSecondPayeeWalletId(),
		FirstPayment: hex.EncodeToString(i.GetFirstPayment()), SecondPayment: hex.EncodeToString(i.GetSecondPayment()), CloseTxID: hex.EncodeToString(i.GetCloseTxId()),
		ClaimFen: i.GetClaimFen(), FromEscrowFen: i.GetFromEscrowFen(), FromPayerFen: i.GetFromPayerFen(), FromGuaranteeFen: i.GetFromGuaranteeFen(),
		FromReserveFen: i.GetFromReserveFen(), PaidLaterFen: i.GetPaidLaterFen(),
		DebtFen: i.GetDebtFen(), UnpaidFen: i.GetUnpaidFen(), Status: enumName(i.GetStatus().String(), "INCIDENT_STATUS_"),
		FrozeWallet: i.GetFrozeWallet(), LogIndex: i.GetLogIndex(), ms: i.GetTimeMs(),
	}
}

type auditOfflineBankJSON struct {
	Bank           string `json:"bank"`
	OpenPurses     uint64 `json:"open_purses"`
	ClosedPurses   uint64 `json:"closed_purses"`
	ExpiredPurses  uint64 `json:"expired_purses"`
	UnbackedPurses uint64 `json:"unbacked_purses"`
	EscrowFen      uint64 `json:"escrow_fen"`
	LoadedFen      uint64 `json:"loaded_fen"`
	ReturnedFen    uint64 `json:"returned_fen"`
	// Cover: exposure (purses until their deadline), the guarantee wallet's
	// balance, what the genesis cover ratio needs of it.
	ExposureFen      uint64 `json:"exposure_fen"`
	GuaranteeHeldFen uint64 `json:"guarantee_held_fen"`
	CoverNeededFen   uint64 `json:"cover_needed_fen"`
	// Payments settled under the bank's certificates: owed to payees
	// (settled_fen) = paid (paid_fen) + still owed by the bank (unpaid_fen);
	// paid = from escrow + payer + guarantee + reserve + paid later.
	Payments         uint64 `json:"payments"`
	SettledFen       uint64 `json:"settled_fen"`
	PaidFen          uint64 `json:"paid_fen"`
	FromEscrowFen    uint64 `json:"from_escrow_fen"`
	FromPayerFen     uint64 `json:"from_payer_fen"`
	FromGuaranteeFen uint64 `json:"from_guarantee_fen"`
	FromReserveFen   uint64 `json:"from_reserve_fen"`
	PaidLaterFen     uint64 `json:"paid_later_fen"`
	UnpaidFen        uint64 `json:"unpaid_fen"`
	ClaimsOpen       uint64 `json:"claims_open"`
	// Incidents: double spends by the bank's wallets, and the same figures
	// over them alone.
	Incidents      uint64                  `json:"incidents"`
	IncidentTotals auditIncidentTotalsJSON `json:"incident_totals"`
	// Debts of its wallets: outstanding, repaid, how many owe.
	DebtFen   uint64 `json:"debt_fen"`
	RepaidFen uint64 `json:"repaid_fen"`
	Debtors   uint64 `json:"debtors"`
}

func auditOfflineBankOut(b *nodepb.BankOffline) auditOfflineBankJSON {
	t := b.GetIncidentTotals()
	return auditOfflineBankJSON{Bank: b.GetBankId(), OpenPurses: b.GetOpenPurses(), ClosedPurses: b.GetClosedPurses(),
		ExpiredPurses: b.GetExpiredPurses(), UnbackedPurses: b.GetUnbackedPurses(), EscrowFen: b.GetEscrowFen(), LoadedFen: b.GetLoadedFen(),
		ReturnedFen: b.GetReturnedFen(), ExposureFen: b.GetExposureFen(), GuaranteeHeldFen: b.GetGuaranteeHeldFen(), CoverNeededFen: b.GetCoverNeededFen(),
		Payments: b.GetPayments(), SettledFen: b.GetSettledFen(), PaidFen: b.GetPaidFen(), FromEscrowFen: b.GetFromEscrowFen(), FromPayerFen: b.GetFromPayerFen(),
		FromGuaranteeFen: b.GetGuaranteeFen(), FromReserveFen: b.GetFromReserveFen(), PaidLaterFen: b.GetPaidLaterFen(), UnpaidFen: b.GetUnpaidFen(),
		ClaimsOpen: b.GetClaimsOpen(), Incidents: b.GetIncidents(), DebtFen: b.GetDebtFen(), RepaidFen: b.GetRepaidFen(), Debtors: b.GetDebtors(),
		IncidentTotals: auditIncidentTotalsJSON{Incidents: t.GetIncidents(), ClaimFen: t.GetClaimFen(), FromEscrowFen: t.GetFromEscrowFen(),
			FromPayerFen: t.GetFromPayerFen(), FromGuaranteeFen: t.GetFromGuaranteeFen(), FromReserveFen: t.GetFromReserveFen(),
			PaidLaterFen: t.GetPaidLaterFen(), DebtFen: t.GetDebtFen(), UnpaidFen: t.GetUnpaidFen()},
	}
}

func (a *app) auditOfflineCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "offline",
		Short: "Offline money and liability per bank: purses, cover, who paid the payees, what is owed",
		Long: `audit offline shows, per bank, the offline purses of its wallets (SPEC §4):
how many are open, closed or expired, the money still in them (offline money
outstanding, part of the supply), what was loaded and returned; its exposure
(purses until their deadline), what its guarantee wallet holds and what the
genesis cover ratio needs of it; then the payments settled under its
certificates: what the payees were owed, what they were paid and from where
(the purses' escrow, the payers' online funds, the bank's guarantee, its
reserve, the bank later on a claim), what the bank still owes them (UNPAID),
its wallets' double spends, and what its wallets owe it (DEBT). PAID OUT =
ESCROW + PAYERS + GUARANTEE + RESERVE + LATER, and OWED = PAID OUT + UNPAID.`,
		Example: `  dcep audit offline
  dcep --json audit offline`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			r, err := cl.Offline(ctx, a.reads()...)
			if err != nil {
				return err
			}
			out := struct {
				Node      string                 `json:"node"`
				EscrowFen uint64                 `json:"escrow_fen"`
				Banks     []auditOfflineBankJSON `json:"banks"`
			}{Node: r.GetFreshness().GetNode(), EscrowFen: r.GetEscrowFen(), Banks: []auditOfflineBankJSON{}}
			for _, b := range r.GetBanks() {
				out.Banks = append(out.Banks, auditOfflineBankOut(b))
			}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "offline money by bank, asked of %s (%s): %s outstanding in purses\n", out.Node, role, yuan(out.EscrowFen))
				if note != "" {
					fmt.Fprintf(w, "note: %s\n", note)
				}
				fmt.Fprintln(w, "\npurses and guarantee cover:")
				t := newTable("BANK", "OPEN", "CLOSED", "EXPIRED", "OUTSTANDING", "LOADED", "RETURNED", "EXPOSURE", "GUARANTEE", "COVER NEEDED").alignRight(1, 2, 3, 4, 5, 6, 7, 8, 9)
				for _, b := range out.Banks {
					t.add(b.Bank, fmt.Sprint(b.OpenPurses), fmt.Sprint(b.ClosedPurses), fmt.Sprint(b.ExpiredPurses), yuan(b.EscrowFen), yuan(b.LoadedFen),
						yuan(b.ReturnedFen), yuan(b.ExposureFen), yuan(b.GuaranteeHeldFen), yuan(b.CoverNeededFen))
				}
				t.write(w)
				fmt.Fprintln(w, "\npayees of the payments it certified, and who paid them:")
				t = newTable("BANK", "PAYMENTS", "OWED", "PAID OUT", "ESCROW", "PAYERS", "GUARANTEE", "RESERVE", "LATER", "UNPAID", "INCIDENTS", "DEBT").
					alignRight(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
				for _, b := range out.Banks {
					t.add(b.Bank, fmt.Sprint(b.Payments), yuan(b.SettledFen), yuan(b.PaidFen), yuan(b.FromEscrowFen), yuan(b.FromPayerFen), yuan(b.FromGuaranteeFen),
						yuan(b.FromReserveFen), yuan(b.PaidLaterFen), yuan(b.UnpaidFen), fmt.Sprint(b.Incidents), yuan(b.DebtFen))
				}
				t.write(w)
			})
		}),
	}
}

type auditCampaignJSON struct {
	ID                   string   `json:"id"`
	Title                string   `json:"title"`
	Sponsor              string   `json:"sponsor"`
	Bank                 string   `json:"bank"`
	Status               string   `json:"status"`
	Packets              uint32   `json:"packets"`
	PacketFen            uint64   `json:"packet_fen"`
	FundedFen            uint64   `json:"funded_fen"`
	Enrolled             uint64   `json:"enrolled"`
	Winners              uint64   `json:"winners"`
	Granted              uint64   `json:"granted"`
	GrantedFen           uint64   `json:"granted_fen"`
	Forfeited            uint64   `json:"forfeited"`
	SpentFen             uint64   `json:"spent_fen"`
	Payments             uint64   `json:"payments"`
	RefundedToHolderFen  uint64   `json:"refunded_to_holder_fen"`
	RefundedToSponsorFen uint64   `json:"refunded_to_sponsor_fen"`
	ReclaimedFen         uint64   `json:"reclaimed_fen"`
	EscrowFen            uint64   `json:"escrow_fen"`
	LiveFen              uint64   `json:"live_fen"`
	Regions              []string `json:"regions"`
	SpendStart           string   `json:"spend_start"`
	SpendEnd             string   `json:"spend_end"`
}

func (a *app) auditCampaignCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "campaign [ID]",
		Short: "Red-packet campaign figures: funded, enrolled, granted, spent, reclaimed",
		Long: `audit campaign shows every red-packet campaign (SPEC §5), or the one named:
its sponsor and bank, status, packets and funding, enrolments, packets granted,
red-packet money spent at merchants and refunded, what returned to the sponsor
at the end, and what is still in escrow or in unspent red packets.`,
		Example: `  dcep audit campaign
  dcep --json audit campaign dbl12`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			var all []*nodepb.CampaignEntry
			var totals *nodepb.CampaignTotals
			node := ""
			req := &nodepb.CampaignsRequest{Read: a.readOptions()}
			for {
				page, err := cl.CampaignsPage(ctx, req)
				if err != nil {
					return err
				}
				node, totals = page.GetFreshness().GetNode(), page.GetTotals()
				all = append(all, page.GetCampaigns()...)
				if page.GetNextAfter() == "" {
					break
				}
				req.After = page.GetNextAfter()
			}
			out := []auditCampaignJSON{}
			for _, e := range all {
				c := e.GetCampaign()
				if len(argv) == 1 && c.GetId() != argv[0] {
					continue
				}
				out = append(out, auditCampaignJSON{
					ID: c.GetId(), Title: c.GetTitle(), Sponsor: c.GetSponsorWalletId(), Bank: e.GetBankId(), Status: enumName(c.GetStatus().String(), "CAMPAIGN_STATUS_"),
					Packets: c.GetPacketCount(), PacketFen: c.GetPacketFen(), FundedFen: c.GetFundedFen(), Enrolled: c.GetEnrolled(), Winners: c.GetWinners(),
					Granted: c.GetGranted() - c.GetForfeited(), GrantedFen: c.GetGrantedFen(), Forfeited: c.GetForfeited(), SpentFen: c.GetSpentFen(), Payments: c.GetPayments(),
					RefundedToHolderFen: c.GetRefundedToHolderFen(), RefundedToSponsorFen: c.GetRefundedToSponsorFen(), ReclaimedFen: c.GetReclaimedFen(),
					EscrowFen: c.GetEscrowFen(), LiveFen: c.GetLiveFen(), Regions: append([]string{}, c.GetRegionCodes()...),
					SpendStart: whenJSON(c.GetSpendStartMs()), SpendEnd: whenJSON(c.GetSpendEndMs()),
				})
			}
			if len(argv) == 1 && len(out) == 0 {
				return fail(exitRefused, "NOT_FOUND", "no campaign %q on %s", argv[0], node)
			}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "red-packet campaigns, asked of %s (%s)\n", node, role)
				if note != "" {
					fmt.Fprintf(w, "note: %s\n", note)
				}
				if len(out) == 0 {
					fmt.Fprintln(w, "none")
					return
				}
				t := newTable("CAMPAIGN", "SPONSOR", "BANK", "STATUS", "FUNDED", "ENROLLED", "GRANTED", "SPENT", "REFUNDED", "RECLAIMED", "IN ESCROW", "UNSPENT").alignRight(4, 5, 6, 7, 8, 9, 10, 11)
				for _, c := range out {
					t.add(c.ID, c.Sponsor, c.Bank, c.Status, yuan(c.FundedFen), fmt.Sprint(c.Enrolled), fmt.Sprintf("%d (%s)", c.Granted, yuan(c.GrantedFen)),
						yuan(c.SpentFen), yuan(c.RefundedToHolderFen+c.RefundedToSponsorFen), yuan(c.ReclaimedFen), yuan(c.EscrowFen), yuan(c.LiveFen))
				}
				t.write(w)
				if len(argv) == 0 && totals.GetCampaigns() > 1 {
					fmt.Fprintf(w, "total: %s funded, %d packets granted (%s), %s spent, %s reclaimed, %s in escrow, %s unspent\n",
						yuan(totals.GetFundedFen()), totals.GetGranted(), yuan(totals.GetGrantedFen()), yuan(totals.GetSpentFen()),
						yuan(totals.GetReclaimedFen()), yuan(totals.GetEscrowFen()), yuan(totals.GetLiveFen()))
				}
			})
		}),
	}
}
