package node

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// programmableAPI serves ProgrammableService (node/nodepb/programmable.proto):
// reads of red-packet campaigns, sub-wallets and merchants' payments
// (SPEC §5). Read-only, like AuditService.
type programmableAPI struct{ n *Node }

var _ nodepbconnect.ProgrammableServiceHandler = programmableAPI{}

func validID(field, id string) error {
	if err := statepb.ValidateID(field, id); err != nil {
		return apiError(CodeInvalidArgument, "%v", err)
	}
	return nil
}

func (p programmableAPI) GetCampaign(ctx context.Context, req *connect.Request[nodepb.GetCampaignRequest]) (*connect.Response[nodepb.GetCampaignResponse], error) {
	if err := validID("campaign_id", req.Msg.GetCampaignId()); err != nil {
		return nil, err
	}
	if w := req.Msg.GetWalletId(); w != "" {
		if err := validID("wallet_id", w); err != nil {
			return nil, err
		}
	}
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	c, err := p.n.store.Campaign(req.Msg.GetCampaignId())
	if err != nil {
		return nil, notFound(err, "campaign %q", req.Msg.GetCampaignId())
	}
	out := &nodepb.GetCampaignResponse{Campaign: c, Freshness: fr}
	if w := req.Msg.GetWalletId(); w != "" {
		e, err := p.n.store.EnrolmentOf(c.GetId(), w)
		switch {
		case err == nil:
			out.Enrolment = e
		case !errors.Is(err, state.ErrNotFound):
			return nil, apiError(CodeInternal, "%v", err)
		}
	}
	return connect.NewResponse(out), nil
}

func (p programmableAPI) ListCampaigns(ctx context.Context, req *connect.Request[nodepb.ListCampaignsRequest]) (*connect.Response[nodepb.ListCampaignsResponse], error) {
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	cs, err := p.n.store.Campaigns(req.Msg.GetAfter(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.ListCampaignsResponse{Campaigns: cs, Freshness: fr}), nil
}

func (p programmableAPI) ListEnrolments(ctx context.Context, req *connect.Request[nodepb.ListEnrolmentsRequest]) (*connect.Response[nodepb.ListEnrolmentsResponse], error) {
	if err := validID("campaign_id", req.Msg.GetCampaignId()); err != nil {
		return nil, err
	}
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	if _, err := p.n.store.Campaign(req.Msg.GetCampaignId()); err != nil {
		return nil, notFound(err, "campaign %q", req.Msg.GetCampaignId())
	}
	es, err := p.n.store.Enrolments(req.Msg.GetCampaignId(), req.Msg.GetFrom(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.ListEnrolmentsResponse{Enrolments: es, Freshness: fr}), nil
}

func (p programmableAPI) ListWinners(ctx context.Context, req *connect.Request[nodepb.ListWinnersRequest]) (*connect.Response[nodepb.ListWinnersResponse], error) {
	if err := validID("campaign_id", req.Msg.GetCampaignId()); err != nil {
		return nil, err
	}
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	if _, err := p.n.store.Campaign(req.Msg.GetCampaignId()); err != nil {
		return nil, notFound(err, "campaign %q", req.Msg.GetCampaignId())
	}
	ws, err := p.n.store.Winners(req.Msg.GetCampaignId(), req.Msg.GetFrom(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.ListWinnersResponse{Winners: ws, Freshness: fr}), nil
}

func (p programmableAPI) CheckEligibility(ctx context.Context, req *connect.Request[nodepb.CheckEligibilityRequest]) (*connect.Response[nodepb.CheckEligibilityResponse], error) {
	if err := validID("campaign_id", req.Msg.GetCampaignId()); err != nil {
		return nil, err
	}
	if err := validID("wallet_id", req.Msg.GetWalletId()); err != nil {
		return nil, err
	}
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	c, err := p.n.store.Campaign(req.Msg.GetCampaignId())
	if err != nil {
		return nil, notFound(err, "campaign %q", req.Msg.GetCampaignId())
	}
	el, err := p.n.store.CampaignEligible(req.Msg.GetCampaignId(), req.Msg.GetWalletId())
	if err != nil {
		return nil, notFound(err, "wallet %q", req.Msg.GetWalletId())
	}
	now := fr.GetLedgerTimeMs()
	return connect.NewResponse(&nodepb.CheckEligibilityResponse{
		Eligible: el.Eligible, Reason: el.Reason, InWindow: now >= c.GetSpendStartMs() && now < c.GetSpendEndMs(),
		SpendStartMs: c.GetSpendStartMs(), SpendEndMs: c.GetSpendEndMs(), Freshness: fr,
	}), nil
}

func (p programmableAPI) GetSubWallet(ctx context.Context, req *connect.Request[nodepb.GetSubWalletRequest]) (*connect.Response[nodepb.GetSubWalletResponse], error) {
	if err := validID("sub_wallet_id", req.Msg.GetSubWalletId()); err != nil {
		return nil, err
	}
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	w, err := p.n.store.Wallet(req.Msg.GetSubWalletId())
	if err != nil {
		return nil, notFound(err, "wallet %q", req.Msg.GetSubWalletId())
	}
	r, err := p.n.store.SubWallet(req.Msg.GetSubWalletId())
	if err != nil {
		return nil, notFound(err, "sub-wallet %q (a %s wallet)", req.Msg.GetSubWalletId(), w.GetKind())
	}
	return connect.NewResponse(&nodepb.GetSubWalletResponse{SubWallet: r, Wallet: w, Freshness: fr}), nil
}

func (p programmableAPI) GetPayment(ctx context.Context, req *connect.Request[nodepb.GetPaymentRequest]) (*connect.Response[nodepb.GetPaymentResponse], error) {
	if err := validID("merchant_wallet_id", req.Msg.GetMerchantWalletId()); err != nil {
		return nil, err
	}
	if len(req.Msg.GetTxId()) != statepb.TxIDBytes {
		return nil, apiError(CodeInvalidArgument, "tx_id: %d bytes (want %d)", len(req.Msg.GetTxId()), statepb.TxIDBytes)
	}
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	pay, err := p.n.store.Payment(req.Msg.GetMerchantWalletId(), req.Msg.GetTxId())
	if err != nil {
		return nil, notFound(err, "payment %x to %q", req.Msg.GetTxId(), req.Msg.GetMerchantWalletId())
	}
	return connect.NewResponse(&nodepb.GetPaymentResponse{Payment: pay, Freshness: fr}), nil
}

func (p programmableAPI) ListPayments(ctx context.Context, req *connect.Request[nodepb.ListPaymentsRequest]) (*connect.Response[nodepb.ListPaymentsResponse], error) {
	if err := validID("merchant_wallet_id", req.Msg.GetMerchantWalletId()); err != nil {
		return nil, err
	}
	fr, err := p.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	ps, next, err := p.n.store.Payments(req.Msg.GetMerchantWalletId(), req.Msg.GetBefore(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, notFound(err, "wallet %q", req.Msg.GetMerchantWalletId())
	}
	return connect.NewResponse(&nodepb.ListPaymentsResponse{Payments: ps, Next: next, Freshness: fr}), nil
}
