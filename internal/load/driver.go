package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state/statepb"
)

// Sentinel errors.
var (
	// ErrNotPlainHTTP: the lean wire client speaks plain HTTP/1.1 only;
	// use Options.Connect for https:// nodes.
	ErrNotPlainHTTP = errors.New("the lean submitter needs an http:// URL")
	// ErrNoTargets: a Gen needs at least one node to submit to.
	ErrNoTargets = errors.New("no node to submit to")
)

// Codes of failures that are not the ledger's refusals (those use
// statepb.Code.Short(), docs/errors.md).
const (
	CodeNetwork = "NETWORK" // no answer: connection refused, reset, timed out
)

// SubmitError is one submission that did not commit OK: a refusal (Code
// is the ledger's, e.g. INSUFFICIENT_FUNDS), a Connect error (its code in
// upper case, e.g. RESOURCE_EXHAUSTED) or a transport failure (NETWORK).
type SubmitError struct {
	Code    string
	Msg     string
	Refusal bool // the ledger refused the transaction (it is final)
}

func (e *SubmitError) Error() string { return e.Code + ": " + e.Msg }

// Options shape a Gen.
type Options struct {
	// Conc is the number of concurrent requests: closed-loop clients, and
	// the keep-alive connections kept per node.
	Conc int
	// Connect uses connect-go's client over net/http instead of the lean
	// WireClient (same requests on the wire, more client CPU); https://
	// nodes always use it.
	Connect bool
	// H2C makes the connect-go client speak HTTP/2 without TLS (one
	// connection per node); implies Connect.
	H2C bool
}

// Gen submits transactions over the API, a client per target node
// (request i, or closed-loop client i, uses target i mod len(targets)).
type Gen struct {
	tr      *http.Transport
	clients []nodepbconnect.LedgerServiceClient
	wires   []*WireClient
	conc    int
}

// NewGen prepares clients of the nodes at targets (API base URLs).
func NewGen(targets []string, o Options) (*Gen, error) {
	if len(targets) == 0 {
		return nil, ErrNoTargets
	}
	conc := max(1, o.Conc)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
	if o.H2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
		tr.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 10_000}
	}
	g := &Gen{tr: tr, conc: conc}
	lean := !o.Connect && !o.H2C
	for _, t := range targets {
		lean = lean && strings.HasPrefix(t, "http://")
	}
	if lean {
		for _, t := range targets {
			w, err := NewWireClient(t, conc)
			if err != nil {
				g.Close()
				return nil, err
			}
			g.wires = append(g.wires, w)
		}
		return g, nil
	}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	for _, t := range targets {
		// A default Connect client: it accepts gzip, as wallets' would.
		g.clients = append(g.clients, nodepbconnect.NewLedgerServiceClient(hc, t))
	}
	return g, nil
}

// Conc is the number of concurrent closed-loop clients.
func (g *Gen) Conc() int { return g.conc }

// Close closes idle connections.
func (g *Gen) Close() {
	g.tr.CloseIdleConnections()
	for _, w := range g.wires {
		w.Close()
	}
}

// Submit sends tx to target client mod len(targets) and waits for its
// outcome: nil if it committed OK, else a *SubmitError. A duplicate with
// OK is still this submission's commit: the node resubmitted the same
// bytes after a leader change and found the first outcome (each
// transaction is submitted once).
func (g *Gen) Submit(ctx context.Context, client int, tx []byte) error {
	var msg *nodepb.SubmitResponse
	if g.wires != nil {
		var err error
		if msg, err = g.wires[client%len(g.wires)].Submit(&nodepb.SubmitRequest{Tx: tx}); err != nil {
			var se *SubmitError
			if errors.As(err, &se) {
				return se
			}
			return &SubmitError{Code: CodeNetwork, Msg: err.Error()}
		}
	} else {
		resp, err := g.clients[client%len(g.clients)].Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
		if err != nil {
			code := CodeNetwork
			if c := connect.CodeOf(err); c != connect.CodeUnknown {
				code = strings.ToUpper(c.String())
			}
			return &SubmitError{Code: code, Msg: err.Error()}
		}
		msg = resp.Msg
	}
	if r := msg.GetResult(); r.GetCode() != statepb.Code_CODE_OK {
		return &SubmitError{Code: r.GetCode().Short(), Msg: fmt.Sprintf("%s (duplicate %v)", r.GetMessage(), r.GetDuplicate()), Refusal: true}
	}
	return nil
}

// ClosedLoop runs Conc clients, each submitting its next transaction when
// the previous one returns, until txs run out, ctx is done or, if d > 0,
// d has passed. rec may be nil; pass one to watch progress (Snapshot).
func (g *Gen) ClosedLoop(ctx context.Context, txs [][]byte, d time.Duration, rec *Recorder) *Phase {
	if rec == nil {
		rec = NewRecorder(len(txs))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range g.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(txs) || (d > 0 && time.Since(start) >= d) {
					return
				}
				rec.start()
				t0 := time.Now()
				err := g.Submit(ctx, c, txs[i])
				rec.record(i, time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	return rec.result(time.Since(start), int(rec.submitted.Load()) >= len(txs))
}

// OpenLoop submits txs at a fixed arrival rate (per second), whatever the
// responses do, until txs run out or ctx is done: a ticker releases every
// arrival that is due, each on its own goroutine. Latency counts from the
// scheduled arrival, so queueing is not hidden. rec may be nil.
func (g *Gen) OpenLoop(ctx context.Context, txs [][]byte, rate float64, rec *Recorder) *Phase {
	if rec == nil {
		rec = NewRecorder(len(txs))
	}
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := 0; i < len(txs) && ctx.Err() == nil; {
		due := min(int(time.Since(start)/interval)+1, len(txs))
		for ; i < due; i++ {
			wg.Add(1)
			rec.start()
			go func(i int) {
				defer wg.Done()
				sched := start.Add(time.Duration(i) * interval)
				err := g.Submit(ctx, i, txs[i])
				rec.record(i, time.Since(sched), err)
			}(i)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	wg.Wait()
	p := rec.result(time.Since(start), false)
	p.Offered = rate
	p.BySecond = rec.bySecond(int(rate))
	return p
}

// Phase is one load phase's outcome.
type Phase struct {
	Lat       []time.Duration // of transactions that committed OK, sorted
	OK        int
	Failed    int
	ByCode    map[string]int // failures by code (SubmitError.Code)
	Refused   int            // failures that were the ledger's refusals
	FirstErr  string
	Submitted int
	Elapsed   time.Duration
	RanOut    bool    // closed loop: every transaction was submitted before the time was up
	Offered   float64 // open loop: the arrival rate
	BySecond  string  // open loop: p50/p99/max ms per second of arrivals
}

// Rate is committed transactions per second.
func (p *Phase) Rate() float64 { return float64(p.OK) / p.Elapsed.Seconds() }

// Pct is the q-quantile (0..1) of the latencies, nearest rank; 0 if none.
func (p *Phase) Pct(q float64) time.Duration {
	if len(p.Lat) == 0 {
		return 0
	}
	i := int(q*float64(len(p.Lat))+0.5) - 1
	return p.Lat[max(0, min(i, len(p.Lat)-1))]
}

// Recorder collects one phase's outcomes; slot i belongs to transaction
// i. Its counters may be read while the phase runs (Snapshot).
type Recorder struct {
	lat       []time.Duration
	done      []bool
	submitted atomic.Int64
	ok        atomic.Int64
	failed    atomic.Int64
	mu        sync.Mutex
	byCode    map[string]int
	refused   int
	first     string
}

// NewRecorder records up to n transactions.
func NewRecorder(n int) *Recorder {
	return &Recorder{lat: make([]time.Duration, n), done: make([]bool, n), byCode: map[string]int{}}
}

// Snapshot is a Recorder's counters at one moment.
type Snapshot struct {
	Submitted, Committed, Failed, InFlight int64
	ByCode                                 map[string]int
}

// Snapshot reads the counters now.
func (r *Recorder) Snapshot() Snapshot {
	r.mu.Lock()
	by := make(map[string]int, len(r.byCode))
	for k, v := range r.byCode {
		by[k] = v
	}
	r.mu.Unlock()
	// Read the outcomes before the starts, so InFlight is never negative.
	ok, failed := r.ok.Load(), r.failed.Load()
	sub := r.submitted.Load()
	return Snapshot{Submitted: sub, Committed: ok, Failed: failed, InFlight: sub - ok - failed, ByCode: by}
}

func (r *Recorder) start() { r.submitted.Add(1) }

func (r *Recorder) record(i int, lat time.Duration, err error) {
	if err != nil {
		se := &SubmitError{Code: CodeNetwork, Msg: err.Error()}
		errors.As(err, &se)
		r.mu.Lock()
		r.byCode[se.Code]++
		if se.Refusal {
			r.refused++
		}
		if r.first == "" {
			r.first = err.Error()
		}
		r.mu.Unlock()
		r.failed.Add(1)
		return
	}
	r.lat[i], r.done[i] = lat, true
	r.ok.Add(1)
}

func (r *Recorder) result(elapsed time.Duration, ranOut bool) *Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &Phase{Elapsed: elapsed, Failed: int(r.failed.Load()), FirstErr: r.first, Submitted: int(r.submitted.Load()),
		ByCode: map[string]int{}, Refused: r.refused, RanOut: ranOut}
	for k, v := range r.byCode {
		p.ByCode[k] = v
	}
	for i, ok := range r.done {
		if ok {
			p.Lat = append(p.Lat, r.lat[i])
		}
	}
	slices.Sort(p.Lat)
	p.OK = len(p.Lat)
	return p
}

// bySecond summarizes latency per second of scheduled arrivals (p50/p99/max
// in ms), to tell a steady tail from one stall.
func (r *Recorder) bySecond(perSecond int) string {
	var sb strings.Builder
	for lo := 0; lo < len(r.lat); lo += max(1, perSecond) {
		var ls []time.Duration
		for i := lo; i < min(lo+perSecond, len(r.lat)); i++ {
			if r.done[i] {
				ls = append(ls, r.lat[i])
			}
		}
		if len(ls) == 0 {
			continue
		}
		slices.Sort(ls)
		q := func(f float64) float64 { return Ms(ls[min(len(ls)-1, int(f*float64(len(ls))))]) }
		fmt.Fprintf(&sb, " [%.0f/%.0f/%.0f]", q(0.5), q(0.99), Ms(ls[len(ls)-1]))
	}
	return sb.String()
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
