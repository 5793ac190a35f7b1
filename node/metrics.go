package node

import (
	"context"
	"math"
	"sync"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state/statepb"
)

// metrics are one node's Prometheus collectors, in a registry of its own so
// several nodes can run in one process (dcepd dev, tests).
type metrics struct {
	reg           *prometheus.Registry
	txs           *prometheus.CounterVec
	entryTxs      prometheus.Histogram
	applySeconds  prometheus.Histogram
	submitLatency prometheus.Histogram
	rpcs          *prometheus.CounterVec
	// snapshotChecks counts snapshots sent by the leader by whether a
	// quorum of voters confirmed their state hash (snapshot_confirm.go).
	snapshotChecks *prometheus.CounterVec
	// unrecordedRefusals counts 401 refusals not put on the access log
	// because their address was over its bound (logUnauthenticated).
	unrecordedRefusals prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		txs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dcep_transactions_total", Help: "Transactions decided, by outcome code.",
		}, []string{"code"}),
		entryTxs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dcep_entry_transactions", Help: "Transactions per applied log entry batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dcep_apply_seconds", Help: "Time to apply one batch of log entries to the ledger (including fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		submitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dcep_submit_seconds", Help: "Submit to committed-and-applied latency on this node.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dcep_api_requests_total", Help: "API requests by procedure and result code.",
		}, []string{"procedure", "code"}),
		snapshotChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dcep_snapshot_confirmations_total", Help: "Snapshots sent by the leader, by whether a quorum of voters confirmed their state hash (confirmed, refused).",
		}, []string{"result"}),
		unrecordedRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dcep_access_unrecorded_refusals_total", Help: "Calls refused for a bad or missing bearer token that were not put on the access log: their client address exceeded 10 such records a second (burst 100).",
		}),
	}
	reg.MustRegister(m.txs, m.entryTxs, m.applySeconds, m.submitLatency, m.rpcs, m.snapshotChecks, m.unrecordedRefusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("dcep_applied_index", "Last log index the ledger holds.", func() float64 { return float64(n.store.Meta().GetAppliedIndex()) })
	gauge("dcep_ledger_time_seconds", "Ledger time at the applied index.", func() float64 { return float64(n.store.Meta().GetLedgerTimeMs()) / 1000 })
	gauge("dcep_raft_commit_index", "Raft commit index known to this node.", func() float64 { return float64(n.cons.Status().CommitIndex) })
	gauge("dcep_apply_lag_entries", "Log indexes the ledger is behind what is committed, counting only entries the ledger applies (Raft's no-ops and barriers excluded); NaN while a follower has no recent leader commit index.", func() float64 {
		lag, ok := n.applyLag(n.cons.Status())
		if !ok {
			return math.NaN()
		}
		return float64(lag)
	})
	gauge("dcep_raft_term", "Current Raft term.", func() float64 { return float64(n.cons.Status().Term) })
	gauge("dcep_raft_leader", "1 if this node is the ready leader.", func() float64 { return b2f(n.cons.IsReadyLeader()) })
	gauge("dcep_offline_incidents", "Offline-payment incidents recorded on the ledger (docs/offline.md); the dashboard and alerts watch it rise.", func() float64 {
		incidents, _, err := n.store.OfflineCounts()
		if err != nil {
			return math.NaN()
		}
		return float64(incidents)
	})
	gauge("dcep_ready", "1 if the node is ready (knows a leader, caught up).", func() float64 { return b2f(n.ready()) })
	gauge("dcep_p2p_refusals", "Connections refused because the peer is not a member.", func() float64 { return float64(n.host.Refusals()) })
	gauge("dcep_clock_offset_seconds", "This node's clock minus the voters' median clock (what ledger time is stamped from); NaN while unknown.", func() float64 {
		known, offset, _, _ := n.clockState()
		if !known {
			return math.NaN()
		}
		return float64(offset) / 1000
	})
	gauge("dcep_ledger_time_lead_seconds", "Ledger time minus the voters' median clock: beyond the clock bound when positive, ledger time ran ahead; negative on an idle network. NaN while unknown.", func() float64 {
		known, _, lead, _ := n.clockState()
		if !known {
			return math.NaN()
		}
		return float64(lead) / 1000
	})
	gauge("dcep_clock_skewed", "1 while this node's clock, or ledger time, is beyond the bound from the voters' median clock.", func() float64 {
		_, _, _, warning := n.clockState()
		return b2f(warning != "")
	})
	gauge("dcep_clock_bound_seconds", "The bound ledger time keeps from the honest voters' clocks (consensus.ClockBound).", func() float64 { return consensus.ClockBound.Seconds() })
	reg.MustRegister(p2pCollector{n})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dcep_raft_state", Help: "Raft state of this node (1 for the current state).", ConstLabels: prometheus.Labels{"state": "leader"},
	}, func() float64 { return b2f(n.cons.Status().State.String() == "Leader") }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dcep_raft_state", Help: "Raft state of this node (1 for the current state).", ConstLabels: prometheus.Labels{"state": "follower"},
	}, func() float64 { return b2f(n.cons.Status().State.String() == "Follower") }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dcep_raft_state", Help: "Raft state of this node (1 for the current state).", ConstLabels: prometheus.Labels{"state": "candidate"},
	}, func() float64 { return b2f(n.cons.Status().State.String() == "Candidate") }))
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observeApply records one applied batch.
func (m *metrics) observeApply(info consensus.ApplyInfo) {
	m.applySeconds.Observe(info.Elapsed.Seconds())
	if info.Txs > 0 {
		m.entryTxs.Observe(float64(info.Txs))
	}
	for _, block := range info.Applied.Results {
		for _, r := range block {
			m.txOutcome(r)
		}
	}
}

var codeLabels sync.Map // statepb.Code → string, to avoid re-allocating labels

func (m *metrics) txOutcome(r *statepb.TxResult) {
	l, ok := codeLabels.Load(r.GetCode())
	if !ok {
		l, _ = codeLabels.LoadOrStore(r.GetCode(), r.GetCode().Short())
	}
	m.txs.WithLabelValues(l.(string)).Inc()
}

// interceptor counts API requests by procedure and result.
func (m *metrics) interceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			resp, err := next(ctx, req)
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			m.rpcs.WithLabelValues(req.Spec().Procedure, code).Inc()
			return resp, err
		}
	})
}

// p2pCollector exports the p2p layer's per-protocol and per-member
// counters, whose label values are only known at scrape time.
type p2pCollector struct{ n *Node }

var (
	roleRefusalsDesc = prometheus.NewDesc("dcep_p2p_role_refusals_total",
		"Streams refused because the member's role may not open the protocol (p2p.Rules).", []string{"protocol"}, nil)
	duplicateIdentityDesc = prometheus.NewDesc("dcep_p2p_duplicate_identity_total",
		"Connections refused because another live process already holds the member's key.", []string{"peer"}, nil)
)

func (c p2pCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- roleRefusalsDesc
	ch <- duplicateIdentityDesc
}

func (c p2pCollector) Collect(ch chan<- prometheus.Metric) {
	for proto, v := range c.n.host.RoleRefusals() {
		ch <- prometheus.MustNewConstMetric(roleRefusalsDesc, prometheus.CounterValue, float64(v), string(proto))
	}
	for _, a := range c.n.host.DuplicateAlarms() {
		ch <- prometheus.MustNewConstMetric(duplicateIdentityDesc, prometheus.CounterValue, float64(a.Refused), a.Name)
	}
}
