package node

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// api implements the client API (node/nodepb/api.proto).
type api struct{ n *Node }

var _ nodepbconnect.LedgerServiceHandler = api{}

func (a api) Submit(ctx context.Context, req *connect.Request[nodepb.SubmitRequest]) (*connect.Response[nodepb.SubmitResponse], error) {
	res, err := a.n.submit(ctx, req.Msg.GetTx())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&nodepb.SubmitResponse{Result: res}), nil
}

func (a api) GetTx(ctx context.Context, req *connect.Request[nodepb.GetTxRequest]) (*connect.Response[nodepb.GetTxResponse], error) {
	if len(req.Msg.GetTxId()) != statepb.TxIDBytes {
		return nil, apiError(CodeInvalidArgument, "tx_id: %d bytes (want %d)", len(req.Msg.GetTxId()), statepb.TxIDBytes)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	rec, err := a.n.store.Tx(req.Msg.GetTxId())
	if err != nil {
		return nil, notFound(err, "transaction %x", req.Msg.GetTxId())
	}
	out := &nodepb.GetTxResponse{Result: rec.GetResult(), OutputCount: rec.GetOutputCount(), Freshness: fr}
	var stx statepb.SignedTx
	if proto.Unmarshal(rec.GetSignedTx(), &stx) == nil {
		out.Tx = &stx
		var body statepb.Tx
		if proto.Unmarshal(stx.GetBody(), &body) == nil {
			out.Body = &body
		}
	}
	return connect.NewResponse(out), nil
}

func (a api) GetWallet(ctx context.Context, req *connect.Request[nodepb.GetWalletRequest]) (*connect.Response[nodepb.GetWalletResponse], error) {
	if err := statepb.ValidateID("wallet_id", req.Msg.GetWalletId()); err != nil {
		return nil, apiError(CodeInvalidArgument, "%v", err)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	w, err := a.n.store.Wallet(req.Msg.GetWalletId())
	if err != nil {
		return nil, notFound(err, "wallet %q", req.Msg.GetWalletId())
	}
	return connect.NewResponse(&nodepb.GetWalletResponse{Wallet: w, Freshness: fr}), nil
}

func (a api) ListWallets(ctx context.Context, req *connect.Request[nodepb.ListWalletsRequest]) (*connect.Response[nodepb.ListWalletsResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	ws, err := a.n.store.Wallets(req.Msg.GetAfter(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.ListWalletsResponse{Wallets: ws, Freshness: fr}), nil
}

func (a api) ListUnspent(ctx context.Context, req *connect.Request[nodepb.ListUnspentRequest]) (*connect.Response[nodepb.ListUnspentResponse], error) {
	if err := statepb.ValidateID("wallet_id", req.Msg.GetWalletId()); err != nil {
		return nil, apiError(CodeInvalidArgument, "%v", err)
	}
	if after := req.Msg.GetAfter(); after != nil && len(after.GetTxId()) != statepb.TxIDBytes {
		return nil, apiError(CodeInvalidArgument, "after.tx_id: %d bytes (want %d)", len(after.GetTxId()), statepb.TxIDBytes)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	us, err := a.n.store.Unspents(req.Msg.GetWalletId(), req.Msg.GetAfter(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	out := &nodepb.ListUnspentResponse{Freshness: fr}
	for _, u := range us {
		out.Unspent = append(out.Unspent, &nodepb.Unspent{Outpoint: u.Outpoint, AmountFen: u.AmountFen, CampaignId: u.CampaignID})
	}
	return connect.NewResponse(out), nil
}

func (a api) History(ctx context.Context, req *connect.Request[nodepb.HistoryRequest]) (*connect.Response[nodepb.HistoryResponse], error) {
	if err := statepb.ValidateID("wallet_id", req.Msg.GetWalletId()); err != nil {
		return nil, apiError(CodeInvalidArgument, "%v", err)
	}
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	if _, err := a.n.store.Wallet(req.Msg.GetWalletId()); err != nil {
		return nil, notFound(err, "wallet %q", req.Msg.GetWalletId())
	}
	es, next, err := a.n.store.History(req.Msg.GetWalletId(), req.Msg.GetBefore(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.HistoryResponse{Entries: es, Next: next, Freshness: fr}), nil
}

func (a api) Supply(ctx context.Context, req *connect.Request[nodepb.SupplyRequest]) (*connect.Response[nodepb.SupplyResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	out := &nodepb.SupplyResponse{Freshness: fr}
	if !req.Msg.GetAudit() {
		if out.Supply, err = a.n.store.Supply(); err != nil {
			return nil, apiError(CodeInternal, "%v", err)
		}
		return connect.NewResponse(out), nil
	}
	audit, err := a.n.store.AuditSupply()
	out.Audited = true
	switch {
	case errors.Is(err, state.ErrInvariant):
		out.InvariantError = err.Error()
		a.n.log.Error("supply invariant does not hold", "error", err)
	case err != nil:
		return nil, apiError(CodeInternal, "%v", err)
	default:
		out.InvariantHolds = true
		out.Supply = &statepb.Supply{IssuedFen: audit.IssuedFen, ReturnedFen: audit.ReturnedFen, OfflineEscrowFen: audit.OfflineEscrowFen, CampaignEscrowFen: audit.CampaignEscrowFen}
		out.OutstandingFen, out.UnspentFen, out.Outputs, out.Wallets = audit.OutstandingFen, audit.UnspentFen, audit.Outputs, audit.Wallets
		out.Freshness.AppliedIndex = audit.AppliedIndex
		for _, b := range audit.Banks {
			out.Banks = append(out.Banks, &nodepb.BankSupply{BankId: b.BankID, IssuedFen: b.IssuedFen, ReturnedFen: b.ReturnedFen, WalletsFen: b.WalletsFen, Wallets: b.Wallets})
		}
	}
	return connect.NewResponse(out), nil
}

func (a api) Status(ctx context.Context, req *connect.Request[nodepb.StatusRequest]) (*connect.Response[nodepb.StatusResponse], error) {
	return connect.NewResponse(a.n.status()), nil
}

func (a api) GetGenesis(ctx context.Context, req *connect.Request[nodepb.GetGenesisRequest]) (*connect.Response[nodepb.GetGenesisResponse], error) {
	h := a.n.store.GenesisHash()
	out := &nodepb.GetGenesisResponse{Genesis: a.n.genesis, GenesisHash: h[:], BankKeys: map[string][]byte{}}
	cb, err := a.n.store.CentralBankKey()
	if err != nil {
		return nil, apiError(CodeUnavailable, "read the central bank's key: %v", err)
	}
	out.CentralBankKey = cb
	banks, err := a.n.store.Banks()
	if err != nil {
		return nil, apiError(CodeUnavailable, "read the banks: %v", err)
	}
	for _, b := range banks {
		out.BankKeys[b.GetBank().GetId()] = b.GetBank().GetPublicKey()
	}
	return connect.NewResponse(out), nil
}

// StreamOutcomes sends recorded block outcomes from from_index on, then
// follows new blocks as they are applied.
func (a api) StreamOutcomes(ctx context.Context, req *connect.Request[nodepb.StreamOutcomesRequest], stream *connect.ServerStream[statepb.BlockRecord]) error {
	release, err := a.n.limits.acquireStream(req.Peer().Addr)
	if err != nil {
		return err
	}
	defer release()
	from := req.Msg.GetFromIndex()
	for {
		wake := a.n.hub.wait()
		blocks, err := a.n.store.Blocks(from, 256)
		if err != nil {
			return apiError(CodeInternal, "%v", err)
		}
		for _, b := range blocks {
			if err := stream.Send(b); err != nil {
				return err
			}
			from = b.GetLogIndex() + 1
		}
		if len(blocks) > 0 {
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		case <-a.n.stop:
			return apiError(CodeUnavailable, "node %s is shutting down", a.n.cfg.Name)
		}
	}
}

// fresh applies a read's freshness option and describes the result's
// freshness. A linearizable read first learns the leader's read index and
// waits until this node has applied it.
func (n *Node) fresh(ctx context.Context, ro *nodepb.ReadOptions) (*nodepb.Freshness, error) {
	if ro.GetLinearizable() {
		ctx, cancel := context.WithTimeout(ctx, ms(n.cfg.Limits.SubmitTimeoutMs))
		defer cancel()
		idx, err := n.readIndex(ctx)
		if err != nil {
			if ctx.Err() != nil || retryable(err) {
				return nil, n.deadlineError(err)
			}
			return nil, apiError(CodeInternal, "read index: %v", err)
		}
		if err := n.cons.WaitApplied(ctx, idx); err != nil {
			return nil, apiError(CodeTimeout, "waiting to apply read index %d: %v", idx, err)
		}
	}
	st := n.cons.Status()
	m := n.store.Meta()
	fr := &nodepb.Freshness{
		AppliedIndex: m.GetAppliedIndex(), LedgerTimeMs: m.GetLedgerTimeMs(), CommitIndex: st.CommitIndex,
		Linearizable: ro.GetLinearizable(), Node: n.cfg.Name,
	}
	if st.State.String() != "Leader" && !st.LastContact.IsZero() {
		fr.LastContactMs = time.Since(st.LastContact).Milliseconds()
	}
	return fr, nil
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, state.ErrNotFound) {
		return apiError(CodeNotFound, format+" not found", args...)
	}
	return apiError(CodeInternal, "%v", err)
}

// nodeStatus describes this node.
func (n *Node) nodeStatus() *nodepb.NodeStatus {
	st := n.cons.Status()
	m := n.store.Meta()
	h := n.store.GenesisHash()
	out := &nodepb.NodeStatus{
		Name: n.cfg.Name, Role: n.role(), PeerId: n.host.ID().String(),
		RaftState: st.State.String(), Leader: st.LeaderID, Term: st.Term, CommitIndex: st.CommitIndex,
		AppliedIndex: m.GetAppliedIndex(), LastLogIndex: st.LastIndex, StateHash: m.GetStateHash(),
		LedgerTimeMs: m.GetLedgerTimeMs(), ChainId: n.genesis.GetChainId(), GenesisHash: h[:],
		ApiAddr: n.APIAddr(), Version: Version, Ready: n.ready(),
		BuildMaxLedgerVersion: n.maxLedgerVersion,
	}
	// A read error leaves the schedule out; the status is still worth
	// answering (the ledger's health shows elsewhere).
	if v, err := n.store.LedgerVersionSchedule(); err == nil {
		out.LedgerVersion = v
	}
	if !st.LastContact.IsZero() {
		out.LastContactMs = time.Since(st.LastContact).Milliseconds()
	}
	if self := n.self(); self != nil {
		out.Operator = self.GetOperator()
	}
	n.fillHealth(out)
	return out
}

// status describes this node and its peers.
func (n *Node) status() *nodepb.StatusResponse {
	out := &nodepb.StatusResponse{Node: n.nodeStatus()}
	for _, m := range n.members.all() {
		if m.GetName() == n.cfg.Name {
			continue
		}
		ps, ok := n.members.peerStatus(m.GetName())
		if !ok {
			ps = &nodepb.PeerStatus{Name: m.GetName(), Role: m.GetRole(), PeerId: m.peer.String(), Error: "not polled yet"}
		}
		out.Peers = append(out.Peers, ps)
	}
	return out
}

// ready: the node knows a leader and has applied what it knows is
// committed, give or take what one second of traffic brings.
//
// A follower's own Raft commit index is no measure of that: it is learnt
// only from entries the leader sends, never beyond the follower's own log,
// and it starts at 0 on every start. A node that has just (re)started, or
// that the leader has not replicated to yet (a late regulator waiting for a
// snapshot), would think itself current with an empty ledger. So a follower
// also compares with the leader's commit index from the status poll, and is
// not ready until it has a recent one.
func (n *Node) ready() bool {
	st := n.cons.Status()
	if st.LeaderID == "" {
		return false
	}
	lag, ok := n.applyLag(st)
	return ok && lag <= readyLagEntries
}

// readyPollAge is how old the leader's polled status may be for ready.
const readyPollAge = 5 * peerPollInterval

// readyLagEntries is how far behind the commit index a node may be and
// still call itself ready.
const readyLagEntries = 64
