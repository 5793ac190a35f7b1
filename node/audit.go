package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// The regulators' side of a node (SPEC §6; node/DESIGN.md, "Audit"): the
// AuditService, the state-hash comparison with every peer, the replay, and
// the throughput history the console draws. Nothing here writes to the
// ledger or proposes anything.

// auditor is one node's audit state.
type auditor struct {
	n *Node

	// Throughput: transactions and blocks applied per wall-clock second,
	// the last throughputSeconds seconds.
	tpMu sync.Mutex
	tp   [throughputSeconds]tpPoint

	// The last supply audit, for callers that accept one a few seconds old
	// (the console); supplyMu also makes concurrent audits wait for one.
	supplyMu   sync.Mutex
	lastSupply *nodepb.AuditSupplyResponse
	lastAt     time.Time

	div *divergenceMonitor

	// replayMu: one replay at a time.
	replayMu sync.Mutex
}

// throughputSeconds is how much throughput history a node keeps.
const throughputSeconds = 600

// tpPoint is one second of throughput history.
type tpPoint struct {
	sec                  int64
	txs, blocks, applied uint64
}

func newAuditor(n *Node) *auditor {
	a := &auditor{n: n}
	a.div = newDivergenceMonitor(n)
	n.metrics.reg.MustRegister(a.div.gauge, a.div.checks)
	n.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dcep_state_divergence_self_suspect",
		Help: "1 if most peers' state hashes differ from this node's: this node's own state is the likely culprit.",
	}, func() float64 { return b2f(a.div.selfSuspect()) }))
	return a
}

// startAudit starts the background part: the divergence monitor.
func (n *Node) startAudit() {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.audit.div.run(n.stop)
	}()
}

// observeApply counts an applied batch into the throughput history.
func (a *auditor) observeApply(info consensus.ApplyInfo) {
	blocks := 0
	for _, r := range info.Applied.Results {
		if r != nil {
			blocks++
		}
	}
	sec := time.Now().Unix()
	a.tpMu.Lock()
	p := &a.tp[sec%throughputSeconds]
	if p.sec != sec {
		*p = tpPoint{sec: sec}
	}
	p.txs += uint64(info.Txs)
	p.blocks += uint64(blocks)
	p.applied = max(p.applied, info.LastIndex)
	a.tpMu.Unlock()
}

// throughput returns the last seconds of history, oldest first, a point per
// second (zero when nothing was applied), ending with the current second,
// which is still counting.
func (a *auditor) throughput(seconds int) []*nodepb.ThroughputPoint {
	if seconds <= 0 || seconds > throughputSeconds {
		seconds = throughputSeconds
	}
	now := time.Now().Unix()
	out := make([]*nodepb.ThroughputPoint, 0, seconds)
	a.tpMu.Lock()
	defer a.tpMu.Unlock()
	for sec := now - int64(seconds) + 1; sec <= now; sec++ {
		p := a.tp[sec%throughputSeconds]
		if p.sec != sec {
			p = tpPoint{}
		}
		out = append(out, &nodepb.ThroughputPoint{TimeMs: sec * 1000, Txs: p.txs, Blocks: p.blocks, AppliedIndex: p.applied})
	}
	return out
}

// consoleEnabled: the console key if set, else on for regulators.
func (n *Node) consoleEnabled() bool {
	if n.cfg.Console != nil {
		return *n.cfg.Console
	}
	return n.role() == statepb.NodeRole_NODE_ROLE_REGULATOR
}

// auditAPI implements nodepbconnect.AuditServiceHandler.
type auditAPI struct{ n *Node }

var _ nodepbconnect.AuditServiceHandler = auditAPI{}

func (a auditAPI) Supply(ctx context.Context, req *connect.Request[nodepb.AuditSupplyRequest]) (*connect.Response[nodepb.AuditSupplyResponse], error) {
	au := a.n.audit
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	au.supplyMu.Lock()
	defer au.supplyMu.Unlock()
	if maxAge := time.Duration(req.Msg.GetMaxAgeMs()) * time.Millisecond; maxAge > 0 && au.lastSupply != nil &&
		time.Since(au.lastAt) <= maxAge && !req.Msg.GetRead().GetLinearizable() {
		return connect.NewResponse(au.lastSupply), nil
	}
	audit, err := a.n.store.AuditSupply()
	out := &nodepb.AuditSupplyResponse{Freshness: fr, ComputedAtMs: time.Now().UnixMilli()}
	switch {
	case errors.Is(err, state.ErrInvariant):
		out.InvariantError = err.Error()
		a.n.log.Error("supply invariant does not hold", "error", err)
	case err != nil:
		return nil, apiError(CodeInternal, "%v", err)
	default:
		out.InvariantHolds = true
		out.IssuedFen, out.ReturnedFen, out.OutstandingFen, out.UnspentFen = audit.IssuedFen, audit.ReturnedFen, audit.OutstandingFen, audit.UnspentFen
		out.OfflineEscrowFen, out.CampaignEscrowFen = audit.OfflineEscrowFen, audit.CampaignEscrowFen
		out.Outputs, out.Wallets, out.FrozenWallets, out.FrozenFen = audit.Outputs, audit.Wallets, audit.FrozenWallets, audit.FrozenFen
		out.Freshness.AppliedIndex = audit.AppliedIndex
		for _, b := range audit.Banks {
			out.Banks = append(out.Banks, &nodepb.BankAudit{
				BankId: b.BankID, IssuedFen: b.IssuedFen, ReturnedFen: b.ReturnedFen, OutstandingFen: b.IssuedFen - b.ReturnedFen,
				WalletsFen: b.WalletsFen, ReserveFen: b.ReserveFen, OfflineEscrowFen: b.OfflineEscrowFen, CampaignEscrowFen: b.CampaignEscrowFen,
				Wallets: b.Wallets, FrozenWallets: b.FrozenWallets, FrozenFen: b.FrozenFen,
			})
		}
	}
	au.lastSupply, au.lastAt = out, time.Now()
	return connect.NewResponse(out), nil
}

func (a auditAPI) LargePayments(ctx context.Context, req *connect.Request[nodepb.LargePaymentsRequest]) (*connect.Response[nodepb.LargePaymentsResponse], error) {
	m := req.Msg
	if m.GetFromMs() < 0 || m.GetToMs() < 0 || (m.GetToMs() > 0 && m.GetToMs() <= m.GetFromMs()) {
		return nil, apiError(CodeInvalidArgument, "from_ms %d, to_ms %d: want 0 ≤ from_ms < to_ms (to_ms 0: no bound)", m.GetFromMs(), m.GetToMs())
	}
	if len(m.GetPageToken()) > 64 {
		return nil, apiError(CodeInvalidArgument, "page_token: %d bytes is not a token this node gave", len(m.GetPageToken()))
	}
	fr, err := a.n.fresh(ctx, m.GetRead())
	if err != nil {
		return nil, err
	}
	ps, next, err := a.n.store.LargePayments(state.LargeQuery{
		FromMs: m.GetFromMs(), ToMs: m.GetToMs(), Bank: m.GetBank(), NewestFirst: m.GetNewestFirst(), PageToken: m.GetPageToken(), Limit: int(m.GetLimit()),
	})
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.LargePaymentsResponse{
		Payments: ps, NextPageToken: next, ThresholdFen: a.n.genesis.GetLargeValueThresholdFen(), Freshness: fr,
	}), nil
}

// maxActivityDays bounds one BankActivity request.
const maxActivityDays = 366

func (a auditAPI) BankActivity(ctx context.Context, req *connect.Request[nodepb.BankActivityRequest]) (*connect.Response[nodepb.BankActivityResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	to := state.BeijingDay(fr.GetLedgerTimeMs())
	if s := req.Msg.GetToDate(); s != "" {
		if to, err = parseBeijingDate("to_date", s); err != nil {
			return nil, err
		}
	}
	from := to - 6
	if s := req.Msg.GetFromDate(); s != "" {
		if from, err = parseBeijingDate("from_date", s); err != nil {
			return nil, err
		}
	}
	if from > to || to-from >= maxActivityDays {
		return nil, apiError(CodeInvalidArgument, "from_date %s to to_date %s: want at most %d days, from ≤ to", state.BeijingDate(from), state.BeijingDate(to), maxActivityDays)
	}
	days, err := a.n.store.BankDays(from, to, req.Msg.GetBank())
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	return connect.NewResponse(&nodepb.BankActivityResponse{Days: days, FromDate: state.BeijingDate(from), ToDate: state.BeijingDate(to), Freshness: fr}), nil
}

// parseBeijingDate parses "2026-12-11" as a Beijing-time day.
func parseBeijingDate(field, s string) (int64, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, apiError(CodeInvalidArgument, "%s: %q is not a date like 2026-12-11", field, s)
	}
	// Midnight UTC of that date is 08:00 of it in Beijing.
	return state.BeijingDay(t.UnixMilli()), nil
}

func (a auditAPI) FrozenWallets(ctx context.Context, req *connect.Request[nodepb.FrozenWalletsRequest]) (*connect.Response[nodepb.FrozenWalletsResponse], error) {
	fr, err := a.n.fresh(ctx, req.Msg.GetRead())
	if err != nil {
		return nil, err
	}
	fs, err := a.n.store.FrozenWallets(req.Msg.GetAfter(), req.Msg.GetBank(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, apiError(CodeInternal, "%v", err)
	}
	out := &nodepb.FrozenWalletsResponse{Freshness: fr}
	for _, f := range fs {
		out.Wallets = append(out.Wallets, &nodepb.FrozenWalletEntry{Frozen: f.Record, BalanceFen: f.BalanceFen})
	}
	return connect.NewResponse(out), nil
}

func (a auditAPI) Divergence(ctx context.Context, req *connect.Request[nodepb.DivergenceRequest]) (*connect.Response[nodepb.DivergenceResponse], error) {
	return connect.NewResponse(a.n.audit.div.report()), nil
}

func (a auditAPI) Replay(ctx context.Context, req *connect.Request[nodepb.ReplayRequest]) (*connect.Response[nodepb.ReplayResponse], error) {
	out, err := a.n.replay(ctx, req.Msg.GetFromSnapshot())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(out), nil
}

func (a auditAPI) Overview(ctx context.Context, req *connect.Request[nodepb.OverviewRequest]) (*connect.Response[nodepb.OverviewResponse], error) {
	n := a.n
	out := &nodepb.OverviewResponse{
		Status: n.status(), Throughput: n.audit.throughput(int(req.Msg.GetThroughputSeconds())),
		LargeThresholdFen: n.genesis.GetLargeValueThresholdFen(), DivergedPeers: n.audit.div.diverged(), ConsoleEnabled: n.consoleEnabled(),
	}
	return connect.NewResponse(out), nil
}
