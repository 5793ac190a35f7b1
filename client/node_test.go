package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// testNode serves the LedgerService API from a real state.Store, applying
// each submission as one block (no consensus). It exists so that the
// client's wire behaviour (paging, errors, retries, stream resume) can be
// tested in-process against real ledger answers; the real node is tested
// end to end elsewhere. Fault injection knobs are atomics.
type testNode struct {
	nodepbconnect.UnimplementedLedgerServiceHandler
	n   *statetest.Net
	s   *state.Store
	url string

	mu     sync.Mutex // serializes Apply
	index  uint64
	timeMs int64

	// loseReplies: apply the next N submissions but answer Unavailable, as
	// if the reply were lost on the way back.
	loseReplies atomic.Int32
	// rejectSubmits: answer the next N submissions Unavailable without
	// applying them (e.g. no leader).
	rejectSubmits atomic.Int32
	submits       atomic.Int32
	// readOnly: refuse submissions as a regulator node would.
	readOnly atomic.Bool
	// cutStreamAfter: end each outcome stream with Unavailable after this
	// many blocks (0: never).
	cutStreamAfter atomic.Int32
	// replayOnResume: on a stream that does not start at 1, first send the
	// block before from_index again (a node that re-sends).
	replayOnResume atomic.Bool
	streams        atomic.Int32
}

func startNode(t *testing.T, seed string) *testNode {
	t.Helper()
	n := statetest.NewNet(t, seed)
	s := n.Open(t)
	m := s.Meta()
	tn := &testNode{n: n, s: s, index: m.GetAppliedIndex(), timeMs: m.GetLedgerTimeMs()}
	mux := http.NewServeMux()
	mux.Handle(nodepbconnect.NewLedgerServiceHandler(tn))
	srv := httptest.NewUnstartedServer(mux)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	tn.url = srv.URL
	return tn
}

func apiErr(code connect.Code, apiCode, msg string) error {
	e := connect.NewError(code, errors.New(msg))
	if d, err := connect.NewErrorDetail(&nodepb.ErrorInfo{Code: apiCode}); err == nil {
		e.AddDetail(d)
	}
	return e
}

func (tn *testNode) applyTx(raw []byte) (*statepb.TxResult, error) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	tn.index++
	tn.timeMs += 1000
	out, err := tn.s.Apply([]state.Block{{Index: tn.index, Term: 1, TimeMs: tn.timeMs, Txs: [][]byte{raw}}})
	if err != nil {
		return nil, apiErr(connect.CodeInternal, "INTERNAL", err.Error())
	}
	return out.Results[0][0], nil
}

func (tn *testNode) Submit(_ context.Context, req *connect.Request[nodepb.SubmitRequest]) (*connect.Response[nodepb.SubmitResponse], error) {
	tn.submits.Add(1)
	if tn.readOnly.Load() {
		return nil, apiErr(connect.CodePermissionDenied, "READ_ONLY_NODE", "this is a regulator node: it never accepts writes")
	}
	if tn.rejectSubmits.Add(-1) >= 0 {
		return nil, apiErr(connect.CodeUnavailable, "NO_LEADER", "no leader")
	}
	r, err := tn.applyTx(req.Msg.GetTx())
	if err != nil {
		return nil, err
	}
	if tn.loseReplies.Add(-1) >= 0 {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("reply lost"))
	}
	return connect.NewResponse(&nodepb.SubmitResponse{Result: r}), nil
}

func (tn *testNode) freshness() *nodepb.Freshness {
	m := tn.s.Meta()
	return &nodepb.Freshness{AppliedIndex: m.GetAppliedIndex(), CommitIndex: m.GetAppliedIndex(), LedgerTimeMs: m.GetLedgerTimeMs(), Node: "test"}
}

func (tn *testNode) GetGenesis(context.Context, *connect.Request[nodepb.GetGenesisRequest]) (*connect.Response[nodepb.GetGenesisResponse], error) {
	h := tn.s.GenesisHash()
	return connect.NewResponse(&nodepb.GetGenesisResponse{Genesis: tn.s.Genesis(), GenesisHash: h[:]}), nil
}

func (tn *testNode) Status(context.Context, *connect.Request[nodepb.StatusRequest]) (*connect.Response[nodepb.StatusResponse], error) {
	m := tn.s.Meta()
	return connect.NewResponse(&nodepb.StatusResponse{Node: &nodepb.NodeStatus{
		Name: "test", RaftState: "Leader", AppliedIndex: m.GetAppliedIndex(), ChainId: tn.s.Genesis().GetChainId(), Ready: true,
	}}), nil
}

func (tn *testNode) GetWallet(_ context.Context, req *connect.Request[nodepb.GetWalletRequest]) (*connect.Response[nodepb.GetWalletResponse], error) {
	w, err := tn.s.Wallet(req.Msg.GetWalletId())
	if errors.Is(err, state.ErrNotFound) {
		return nil, apiErr(connect.CodeNotFound, "WALLET_NOT_FOUND", "no wallet "+req.Msg.GetWalletId())
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&nodepb.GetWalletResponse{Wallet: w, Freshness: tn.freshness()}), nil
}

func (tn *testNode) ListWallets(_ context.Context, req *connect.Request[nodepb.ListWalletsRequest]) (*connect.Response[nodepb.ListWalletsResponse], error) {
	ws, err := tn.s.Wallets(req.Msg.GetAfter(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&nodepb.ListWalletsResponse{Wallets: ws, Freshness: tn.freshness()}), nil
}

func (tn *testNode) ListUnspent(_ context.Context, req *connect.Request[nodepb.ListUnspentRequest]) (*connect.Response[nodepb.ListUnspentResponse], error) {
	us, err := tn.s.Unspents(req.Msg.GetWalletId(), req.Msg.GetAfter(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, err
	}
	out := &nodepb.ListUnspentResponse{Freshness: tn.freshness()}
	for _, u := range us {
		out.Unspent = append(out.Unspent, &nodepb.Unspent{Outpoint: u.Outpoint, AmountFen: u.AmountFen})
	}
	return connect.NewResponse(out), nil
}

func (tn *testNode) History(_ context.Context, req *connect.Request[nodepb.HistoryRequest]) (*connect.Response[nodepb.HistoryResponse], error) {
	es, next, err := tn.s.History(req.Msg.GetWalletId(), req.Msg.GetBefore(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&nodepb.HistoryResponse{Entries: es, Next: next, Freshness: tn.freshness()}), nil
}

func (tn *testNode) GetTx(_ context.Context, req *connect.Request[nodepb.GetTxRequest]) (*connect.Response[nodepb.GetTxResponse], error) {
	rec, err := tn.s.Tx(req.Msg.GetTxId())
	if errors.Is(err, state.ErrNotFound) {
		return nil, apiErr(connect.CodeNotFound, "TX_NOT_FOUND", "no such transaction")
	}
	if err != nil {
		return nil, err
	}
	var stx statepb.SignedTx
	var body statepb.Tx
	if err := proto.Unmarshal(rec.GetSignedTx(), &stx); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(stx.GetBody(), &body); err != nil {
		return nil, err
	}
	return connect.NewResponse(&nodepb.GetTxResponse{Tx: &stx, Body: &body, Result: rec.GetResult(), OutputCount: rec.GetOutputCount(), Freshness: tn.freshness()}), nil
}

func (tn *testNode) Supply(_ context.Context, req *connect.Request[nodepb.SupplyRequest]) (*connect.Response[nodepb.SupplyResponse], error) {
	sp, err := tn.s.Supply()
	if err != nil {
		return nil, err
	}
	out := &nodepb.SupplyResponse{Supply: sp, Freshness: tn.freshness()}
	if req.Msg.GetAudit() {
		out.Audited = true
		a, err := tn.s.AuditSupply()
		out.InvariantHolds = err == nil
		if err != nil {
			out.InvariantError = err.Error()
		} else {
			out.OutstandingFen, out.UnspentFen, out.Outputs, out.Wallets = a.OutstandingFen, a.UnspentFen, a.Outputs, a.Wallets
			for _, b := range a.Banks {
				out.Banks = append(out.Banks, &nodepb.BankSupply{BankId: b.BankID, IssuedFen: b.IssuedFen, ReturnedFen: b.ReturnedFen, WalletsFen: b.WalletsFen, Wallets: b.Wallets})
			}
		}
	}
	return connect.NewResponse(out), nil
}

func (tn *testNode) StreamOutcomes(ctx context.Context, req *connect.Request[nodepb.StreamOutcomesRequest], stream *connect.ServerStream[statepb.BlockRecord]) error {
	tn.streams.Add(1)
	from := req.Msg.GetFromIndex()
	if from > 1 && tn.replayOnResume.Load() {
		from--
	}
	sent := int32(0)
	for {
		blocks, err := tn.s.Blocks(from, 100)
		if err != nil {
			return err
		}
		for _, b := range blocks {
			if cut := tn.cutStreamAfter.Load(); cut > 0 && sent == cut {
				return connect.NewError(connect.CodeUnavailable, errors.New("stream cut"))
			}
			if err := stream.Send(b); err != nil {
				return err
			}
			sent++
			from = b.GetLogIndex() + 1
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}
