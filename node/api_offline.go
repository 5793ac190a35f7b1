package node

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// The dual-offline reads of LedgerService (SPEC §4; docs/offline.md).

const hashBytes = 32

func (a api) GetPurse(ctx context.Context, req *connect.Request[nodepb.GetPurseRequest]) (*connect.Response[nodepb.GetPurseResponse], error) {
	id := req.Msg.GetPurseId()
	if len(id) != hashBytes {
		return nil, apiError(CodeInvalidArgument, "purse_id: %d bytes (want %d)", len(id), hashBytes)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	p, err := a.n.store.Purse(id)
	if err != nil {
		return nil, notFound(err, "purse %x", id)
	}
	out := &nodepb.GetPurseResponse{Purse: p, Freshness: fr}
	if out.Settlements, err = a.n.store.PurseSettlements(id, 0, state.MaxPageSize); err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	switch r, err := a.n.store.DeviceRevocation(p.GetDevicePublicKey()); {
	case err == nil:
		out.Revocation = r
	case !errors.Is(err, state.ErrNotFound):
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(out), nil
}

func (a api) GetSettlement(ctx context.Context, req *connect.Request[nodepb.GetSettlementRequest]) (*connect.Response[nodepb.GetSettlementResponse], error) {
	h := req.Msg.GetPaymentHash()
	if len(h) != hashBytes {
		return nil, apiError(CodeInvalidArgument, "payment_hash: %d bytes (want %d)", len(h), hashBytes)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	s, err := a.n.store.Settlement(h)
	if err != nil {
		return nil, notFound(err, "settlement of payment %x", h)
	}
	return connect.NewResponse(&nodepb.GetSettlementResponse{Settlement: s, Freshness: fr}), nil
}

func (a api) GetOfflineTx(ctx context.Context, req *connect.Request[nodepb.GetOfflineTxRequest]) (*connect.Response[nodepb.GetOfflineTxResponse], error) {
	if len(req.Msg.GetTxId()) != statepb.TxIDBytes {
		return nil, apiError(CodeInvalidArgument, "tx_id: %d bytes (want %d)", len(req.Msg.GetTxId()), statepb.TxIDBytes)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	r, err := a.n.store.OfflineTx(req.Msg.GetTxId())
	if err != nil {
		return nil, notFound(err, "offline record of transaction %x", req.Msg.GetTxId())
	}
	return connect.NewResponse(&nodepb.GetOfflineTxResponse{Record: r, Freshness: fr}), nil
}

func (a api) ListIncidents(ctx context.Context, req *connect.Request[nodepb.ListIncidentsRequest]) (*connect.Response[nodepb.ListIncidentsResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	is, err := a.n.store.Incidents(req.Msg.GetAfter(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.ListIncidentsResponse{Incidents: is, Freshness: fr}), nil
}

func (a api) ListRevocations(ctx context.Context, req *connect.Request[nodepb.ListRevocationsRequest]) (*connect.Response[nodepb.ListRevocationsResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	rs, err := a.n.store.Revocations(req.Msg.GetAfter(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	_, total, err := a.n.store.OfflineCounts()
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.ListRevocationsResponse{Revocations: rs, Total: total, Freshness: fr}), nil
}

func (a api) GetOfflineDebt(ctx context.Context, req *connect.Request[nodepb.GetOfflineDebtRequest]) (*connect.Response[nodepb.GetOfflineDebtResponse], error) {
	if err := statepb.ValidateID("wallet_id", req.Msg.GetWalletId()); err != nil {
		return nil, apiError(CodeInvalidArgument, "%v", err)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	d, err := a.n.store.OfflineDebt(req.Msg.GetWalletId())
	if errors.Is(err, state.ErrNotFound) {
		d, err = &statepb.OfflineDebt{WalletId: req.Msg.GetWalletId()}, nil
	}
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.GetOfflineDebtResponse{Debt: d, Freshness: fr}), nil
}
