package client

import (
	"context"
	"iter"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state/statepb"
)

// Regulators' reads (node/nodepb/audit.proto, AuditService). Any node
// answers them from its own ledger; a regulator node is the one to ask when
// no bank should be trusted.

// AuditAPI is the generated AuditService client, for calls this package
// does not wrap.
func (c *Client) AuditAPI() nodepbconnect.AuditServiceClient { return c.audit }

// AuditSupply has the node recompute the SPEC §2 invariant from the whole
// state, with the per-bank breakdown (issued, returned, in wallets, offline
// and campaign escrow, frozen). An invariant that does not hold is an
// answer (InvariantHolds false), not an error.
func (c *Client) AuditSupply(ctx context.Context, opts ...ReadOption) (*nodepb.AuditSupplyResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.AuditSupplyResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.Supply(ctx, connect.NewRequest(&nodepb.AuditSupplyRequest{Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// LargePayments yields the payments at or above the reporting threshold
// that req selects (time range, bank, order), page by page, fetching the
// next page as the caller goes on (LargePaymentsPage also returns the
// threshold).
func (c *Client) LargePayments(ctx context.Context, req *nodepb.LargePaymentsRequest, opts ...ReadOption) iter.Seq2[*statepb.LargePayment, error] {
	return func(yield func(*statepb.LargePayment, error) bool) {
		ro, size := readOptions(opts)
		q := &nodepb.LargePaymentsRequest{
			FromMs: req.GetFromMs(), ToMs: req.GetToMs(), Bank: req.GetBank(), NewestFirst: req.GetNewestFirst(),
			PageToken: req.GetPageToken(), Limit: req.GetLimit(), Read: ro,
		}
		if q.Limit == 0 {
			q.Limit = size
		}
		for {
			var page *nodepb.LargePaymentsResponse
			err := c.read(ctx, func(ctx context.Context) error {
				r, err := c.audit.LargePayments(ctx, connect.NewRequest(q))
				if err == nil {
					page = r.Msg
				}
				return err
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, p := range page.GetPayments() {
				if !yield(p, nil) {
					return
				}
			}
			if len(page.GetNextPageToken()) == 0 {
				return
			}
			q.PageToken = page.GetNextPageToken()
		}
	}
}

// LargePaymentsPage returns one page of large payments with the threshold
// and the next page's token.
func (c *Client) LargePaymentsPage(ctx context.Context, req *nodepb.LargePaymentsRequest) (*nodepb.LargePaymentsResponse, error) {
	var out *nodepb.LargePaymentsResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.LargePayments(ctx, connect.NewRequest(req))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// BankActivity returns per-bank transaction counts and volumes per
// Beijing-time day, from fromDate to toDate ("2026-12-11"; empty: the 7
// days ending at the ledger's date), for one bank if bank is set.
func (c *Client) BankActivity(ctx context.Context, fromDate, toDate, bank string, opts ...ReadOption) (*nodepb.BankActivityResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.BankActivityResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.BankActivity(ctx, connect.NewRequest(&nodepb.BankActivityRequest{FromDate: fromDate, ToDate: toDate, Bank: bank, Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// FrozenWallets yields every frozen wallet (of one bank if bank is set)
// with reason, time and balance, fetching page by page.
func (c *Client) FrozenWallets(ctx context.Context, bank string, opts ...ReadOption) iter.Seq2[*nodepb.FrozenWalletEntry, error] {
	return func(yield func(*nodepb.FrozenWalletEntry, error) bool) {
		ro, size := readOptions(opts)
		after := ""
		for {
			var page []*nodepb.FrozenWalletEntry
			err := c.read(ctx, func(ctx context.Context) error {
				r, err := c.audit.FrozenWallets(ctx, connect.NewRequest(&nodepb.FrozenWalletsRequest{After: after, Bank: bank, Limit: size, Read: ro}))
				if err == nil {
					page = r.Msg.GetWallets()
				}
				return err
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, w := range page {
				if !yield(w, nil) {
					return
				}
			}
			if len(page) < int(size) {
				return
			}
			after = page[len(page)-1].GetFrozen().GetWalletId()
		}
	}
}

// FrozenWalletsPage returns one page of frozen wallets with the answer's
// freshness.
func (c *Client) FrozenWalletsPage(ctx context.Context, req *nodepb.FrozenWalletsRequest) (*nodepb.FrozenWalletsResponse, error) {
	var out *nodepb.FrozenWalletsResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.FrozenWallets(ctx, connect.NewRequest(req))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// IncidentsPage returns one page of offline double-spend incidents with
// the totals over every incident (of the bank, if set).
func (c *Client) IncidentsPage(ctx context.Context, req *nodepb.IncidentsRequest) (*nodepb.IncidentsResponse, error) {
	var out *nodepb.IncidentsResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.Incidents(ctx, connect.NewRequest(req))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Offline returns offline money outstanding per bank.
func (c *Client) Offline(ctx context.Context, opts ...ReadOption) (*nodepb.OfflineResponse, error) {
	ro, _ := readOptions(opts)
	var out *nodepb.OfflineResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.Offline(ctx, connect.NewRequest(&nodepb.OfflineRequest{Read: ro}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// CampaignsPage returns one page of red-packet campaigns with their
// figures and the totals over every campaign.
func (c *Client) CampaignsPage(ctx context.Context, req *nodepb.CampaignsRequest) (*nodepb.CampaignsResponse, error) {
	var out *nodepb.CampaignsResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.Campaigns(ctx, connect.NewRequest(req))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Divergence returns the node's state-hash comparison with its peers and
// every divergence it has seen.
func (c *Client) Divergence(ctx context.Context) (*nodepb.DivergenceResponse, error) {
	var out *nodepb.DivergenceResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.Divergence(ctx, connect.NewRequest(&nodepb.DivergenceRequest{}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// Replay has the node re-run its log through validation into a fresh
// ledger and compare every outcome and state hash with its records. It may
// take minutes on a long log: it is bounded by ctx only (no per-call
// timeout) and not retried.
func (c *Client) Replay(ctx context.Context, fromSnapshot bool) (*nodepb.ReplayResponse, error) {
	r, err := c.audit.Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{FromSnapshot: fromSnapshot}))
	if err != nil {
		return nil, c.apiError(err)
	}
	return r.Msg, nil
}

// Overview returns what the console shows: this node and its peers, and
// throughput per second.
func (c *Client) Overview(ctx context.Context) (*nodepb.OverviewResponse, error) {
	var out *nodepb.OverviewResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.Overview(ctx, connect.NewRequest(&nodepb.OverviewRequest{}))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}

// AccessLog returns records of the node's own access log: who read what
// on that node (filter by req.Wallet and/or req.By).
func (c *Client) AccessLog(ctx context.Context, req *nodepb.AccessLogRequest) (*nodepb.AccessLogResponse, error) {
	var out *nodepb.AccessLogResponse
	err := c.read(ctx, func(ctx context.Context) error {
		r, err := c.audit.AccessLog(ctx, connect.NewRequest(req))
		if err == nil {
			out = r.Msg
		}
		return err
	})
	return out, err
}
