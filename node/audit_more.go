package node

import (
	"context"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// AuditService answers built on the offline (SPEC §4) and programmable
// money (SPEC §5) records: double-spend incidents, offline money per bank,
// red-packet campaigns.

func (a auditAPI) Incidents(ctx context.Context, req *connect.Request[nodepb.IncidentsRequest]) (*connect.Response[nodepb.IncidentsResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	limit := int(req.Msg.GetLimit())
	if limit <= 0 || limit > state.MaxPageSize {
		limit = state.MaxPageSize
	}
	bank := req.Msg.GetBank()
	out := &nodepb.IncidentsResponse{Totals: &nodepb.IncidentTotals{}, Freshness: fr}
	// Every incident, for the totals (incidents are few: each is a proven
	// fraud); the page is the ones after req.after.
	for after := uint64(0); ; {
		page, err := a.n.store.Incidents(after, 0)
		if err != nil {
			return nil, apiError(CodeInternal, "%v", err)
		}
		for _, inc := range page {
			after = inc.GetId()
			if bank != "" && inc.GetBankId() != bank {
				continue
			}
			addIncident(out.Totals, inc)
			if inc.GetId() <= req.Msg.GetAfter() {
				continue
			}
			if len(out.Incidents) < limit {
				out.Incidents = append(out.Incidents, inc)
			} else if out.NextAfter == 0 {
				out.NextAfter = out.Incidents[len(out.Incidents)-1].GetId()
			}
		}
		if len(page) < state.MaxPageSize {
			break
		}
	}
	return connect.NewResponse(out), nil
}

func addIncident(t *nodepb.IncidentTotals, inc *statepb.Incident) {
	t.Incidents++
	switch inc.GetStatus() {
	case statepb.IncidentStatus_INCIDENT_STATUS_SETTLED:
		t.Settled++
	case statepb.IncidentStatus_INCIDENT_STATUS_UNDERFUNDED:
		t.Underfunded++
	case statepb.IncidentStatus_INCIDENT_STATUS_PAID_LATE:
		t.PaidLate++
	}
	t.ClaimFen += inc.GetClaimFen()
	t.FromEscrowFen += inc.GetFromEscrowFen()
	t.FromPayerFen += inc.GetFromPayerFen()
	t.FromGuaranteeFen += inc.GetFromGuaranteeFen()
	t.FromReserveFen += inc.GetFromReserveFen()
	t.PaidLaterFen += inc.GetPaidLaterFen()
	t.DebtFen += inc.GetDebtFen()
	t.UnpaidFen += inc.GetUnpaidFen()
	if inc.GetFrozeWallet() {
		t.WalletsFrozen++
	}
}

func (a auditAPI) Offline(ctx context.Context, req *connect.Request[nodepb.OfflineRequest]) (*connect.Response[nodepb.OfflineResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	banks, err := a.n.store.OfflineByBank()
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	out := &nodepb.OfflineResponse{Freshness: fr}
	for _, b := range banks {
		i := b.Incident
		out.Banks = append(out.Banks, &nodepb.BankOffline{
			BankId: b.BankID, OpenPurses: b.OpenPurses, ClosedPurses: b.ClosedPurses, ExpiredPurses: b.ExpiredPurses, UnbackedPurses: b.UnbackedPurses,
			EscrowFen: b.EscrowFen, LoadedFen: b.LoadedFen, SettledFen: b.ClaimedFen, ReturnedFen: b.ReturnedFen,
			Payments: b.Payments, PaidFen: b.PaidFen, FromEscrowFen: b.FromEscrowFen, FromPayerFen: b.FromPayerFen, GuaranteeFen: b.FromGuaranteeFen,
			FromReserveFen: b.FromReserveFen, PaidLaterFen: b.PaidLaterFen, UnpaidFen: b.UnpaidFen, ClaimsOpen: b.ClaimsOpen,
			ExposureFen: b.ExposureFen, GuaranteeHeldFen: b.GuaranteeHeldFen, CoverNeededFen: b.CoverNeededFen,
			Incidents: b.Incidents, DebtFen: b.DebtFen, RepaidFen: b.RepaidFen, Debtors: b.Debtors,
			IncidentTotals: &nodepb.IncidentTotals{Incidents: b.Incidents, ClaimFen: i.ClaimFen, FromEscrowFen: i.FromEscrowFen, FromPayerFen: i.FromPayerFen,
				FromGuaranteeFen: i.FromGuaranteeFen, FromReserveFen: i.FromReserveFen, PaidLaterFen: i.PaidLaterFen, UnpaidFen: i.UnpaidFen, DebtFen: i.DebtFen},
		})
		out.EscrowFen += b.EscrowFen
	}
	return connect.NewResponse(out), nil
}

func (a auditAPI) Campaigns(ctx context.Context, req *connect.Request[nodepb.CampaignsRequest]) (*connect.Response[nodepb.CampaignsResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	limit := int(req.Msg.GetLimit())
	if limit <= 0 || limit > state.MaxPageSize {
		limit = state.MaxPageSize
	}
	out := &nodepb.CampaignsResponse{Totals: &nodepb.CampaignTotals{}, Freshness: fr}
	banks := map[string]string{}
	for after := ""; ; {
		page, err := a.n.store.Campaigns(after, 0)
		if err != nil {
			return nil, apiError(CodeInternal, "%v", err)
		}
		for _, c := range page {
			after = c.GetId()
			addCampaign(out.Totals, c)
			if c.GetId() <= req.Msg.GetAfter() {
				continue
			}
			if len(out.Campaigns) == limit {
				if out.NextAfter == "" {
					out.NextAfter = out.Campaigns[limit-1].GetCampaign().GetId()
				}
				continue
			}
			bank, ok := banks[c.GetSponsorWalletId()]
			if !ok {
				if w, err := a.n.store.Wallet(c.GetSponsorWalletId()); err == nil {
					bank = w.GetBankId()
				}
				banks[c.GetSponsorWalletId()] = bank
			}
			out.Campaigns = append(out.Campaigns, &nodepb.CampaignEntry{Campaign: c, BankId: bank})
		}
		if len(page) < state.MaxPageSize {
			break
		}
	}
	return connect.NewResponse(out), nil
}

func addCampaign(t *nodepb.CampaignTotals, c *statepb.CampaignRecord) {
	t.Campaigns++
	t.FundedFen += c.GetFundedFen()
	t.Enrolled += c.GetEnrolled()
	t.Granted += c.GetGranted() - c.GetForfeited()
	t.GrantedFen += c.GetGrantedFen()
	t.SpentFen += c.GetSpentFen()
	t.Payments += c.GetPayments()
	t.RefundedToHolderFen += c.GetRefundedToHolderFen()
	t.RefundedToSponsorFen += c.GetRefundedToSponsorFen()
	t.ReclaimedFen += c.GetReclaimedFen()
	t.EscrowFen += c.GetEscrowFen()
	t.LiveFen += c.GetLiveFen()
}
