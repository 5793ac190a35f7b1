package node

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node/accesslog"
	"github.com/dcep/dcep/node/nodepb"
)

// openAccessLog opens data_dir/access. A torn tail (kill -9 in the middle
// of an append that was never acknowledged) is cut at open and logged.
func (n *Node) openAccessLog() error {
	dir := filepath.Join(n.cfg.Path(n.cfg.DataDir), "access")
	l, err := accesslog.Open(dir, accesslog.Options{
		MaxFileBytes: int64(n.cfg.AccessLog.MaxFileMB) << 20,
		KeepFiles:    n.cfg.AccessLog.KeepFiles,
	})
	if err != nil {
		return fmt.Errorf("node: access log: %w", err)
	}
	if cut := l.Truncated(); cut > 0 {
		n.log.Warn("access log: torn tail cut at open (an append interrupted before it was acknowledged)", "dir", dir, "bytes", cut)
	}
	n.access = l
	return nil
}

// recordAccess appends one access to the node's log and returns once it
// is fsynced (where it becomes durable). The auth interceptor calls it for
// every read of identity-linked data, allowed or refused. An error means
// the access is not on record: the caller must then refuse the read
// (UNAVAILABLE) rather than answer unrecorded. A zero Time is stamped with
// the wall clock (the log is not ledger state).
func (n *Node) recordAccess(rec accesslog.Record) error {
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	if err := n.access.Append(rec); err != nil {
		n.log.Error("access log append failed", "procedure", rec.Procedure, "error", err)
		return fmt.Errorf("%w: %w", ErrAccessLog, err)
	}
	return nil
}

// AccessLog answers from this node's own access log. Who may call it is
// the policy table's row for it (policy.go).
func (a auditAPI) AccessLog(ctx context.Context, req *connect.Request[nodepb.AccessLogRequest]) (*connect.Response[nodepb.AccessLogResponse], error) {
	m := req.Msg
	switch {
	case len(m.GetWallet()) > accesslog.MaxFieldBytes:
		return nil, apiError(CodeInvalidArgument, "wallet: %d bytes (max %d)", len(m.GetWallet()), accesslog.MaxFieldBytes)
	case len(m.GetBy()) > accesslog.MaxFieldBytes:
		return nil, apiError(CodeInvalidArgument, "by: %d bytes (max %d)", len(m.GetBy()), accesslog.MaxFieldBytes)
	case m.GetSinceMs() < 0:
		return nil, apiError(CodeInvalidArgument, "since_ms: %d is before 1970", m.GetSinceMs())
	case m.GetLimit() > accesslog.MaxQueryLimit:
		return nil, apiError(CodeInvalidArgument, "limit: %d (max %d)", m.GetLimit(), accesslog.MaxQueryLimit)
	}
	f := accesslog.Filter{Wallet: m.GetWallet(), By: m.GetBy(), Limit: int(m.GetLimit())}
	if m.GetSinceMs() > 0 {
		f.Since = time.UnixMilli(m.GetSinceMs())
	}
	if c := callerOf(ctx); !c.is(token.KindRegulator) {
		// The policy let in only this node's operator bank: it sees the
		// records about its own customers' wallets, nothing else (not
		// another bank's customers, not reads without a subject wallet).
		f.Keep = a.n.customersOf(c.sub.ID)
	}
	recs, err := a.n.access.Query(f)
	if err != nil {
		return nil, apiError(CodeInternal, "access log: %v", err)
	}
	out := &nodepb.AccessLogResponse{Node: a.n.cfg.Name, Records: make([]*nodepb.AccessRecord, 0, len(recs))}
	for _, r := range recs {
		out.Records = append(out.Records, &nodepb.AccessRecord{
			TimeMs: r.Time.UnixMilli(), Identity: r.Identity, Role: r.Role, Procedure: r.Procedure,
			Wallet: r.Wallet, TxId: r.TxID, Addr: r.Addr, Allowed: r.Allowed, Code: r.Code,
		})
	}
	return connect.NewResponse(out), nil
}

// customersOf keeps the access records whose subject wallet is one of
// bank's customers (its bank_id is bank). Each wallet is looked up once
// per query.
func (n *Node) customersOf(bank string) func(*accesslog.Record) bool {
	ours := map[string]bool{}
	return func(r *accesslog.Record) bool {
		if r.Wallet == "" || bank == "" {
			return false
		}
		if v, ok := ours[r.Wallet]; ok {
			return v
		}
		w, err := n.store.Wallet(r.Wallet)
		v := err == nil && w.GetBankId() == bank
		ours[r.Wallet] = v
		return v
	}
}
