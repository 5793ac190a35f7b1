package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/internal/load"
	"github.com/dcep/dcep/state/statepb"
)

// dcep bench: the operator's load test (as etcdctl check perf), sharing
// its load code (internal/load) with node's BenchmarkCluster.

// Bench limits: what one run may ask for.
const (
	benchMaxWallets   = 100_000
	benchMaxTransfers = 10_000_000
	benchMaxConc      = 100_000
	benchMaxDuration  = 24 * time.Hour
	benchSetupConc    = 32 // registrations and funding in flight
	benchOutputFen    = 1  // each payer output; a transfer spends two
	benchTransferFen  = 1  // each transfer pays this, the change is the rest
	benchVerifyFor    = time.Second
	codeBenchRefused  = "BENCH_REFUSED"
	codeBenchMismatch = "BENCH_BALANCE_MISMATCH"
)

type benchConfig struct {
	duration    time.Duration
	rate        float64
	concurrency int
	wallets     int
	transfers   int
	bank        string
	nodes       []string
	tag         string
	connect     bool
}

func (a *app) benchCmd() *cobra.Command {
	var cfg benchConfig
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Operator: drive 2-in/2-out transfers at a network and report tx/s and latency",
		Long: `bench measures a running network (dev or a deployment) as a payment load would
see it. It funds its own wallets: it registers --wallets wallets at --bank and a
funder wallet (ids bench-TAG-...), has the bank exchange what they need from its
reserve to the funder (the bank's key from the keystore), splits that into two
outputs per transfer, and pre-signs 2-in/2-out transfers (each pays 1 fen to the
next bench wallet, the change back to itself). Then it submits them for
--duration, spread over the nodes (every voter the node's status lists), either
at a fixed arrival rate (--rate; latency counts from the scheduled arrival) or
closed loop (--concurrency clients, each sending its next transfer when the last
one committed), printing a progress line each second to stderr.

It reports committed tx/s, submit→committed latency percentiles (p50, p90, p99,
max), failures by code, and the raw Ed25519 verify rate of this machine measured
in the same run: verify/s ÷ validating nodes is the physical limit of a network
whose nodes all ran here (as dcepd dev's do). Then it checks that the bench
wallets together still hold what was funded (transfers only move money between
them, so the money stays in supply) and prints the supply audit.

Setup calls (register, exchange, reads) go through the SDK; the transfers go
through a lean HTTP/1.1 submitter (the Connect protocol's bytes, with less client
CPU) unless --connect or an https:// node. Figures need a quiet machine: the
client shares the cores with whatever else runs, the nodes too if they are local.
The bank's reserve must hold the funding (2 fen per transfer, up to 16x rounded
up); "dcep issue" adds to it. Exit status 1 if the ledger refused a transfer,
4 if the bench wallets' money or the supply audit does not add up.`,
		Example: `  dcep issue --bank icbc --amount 10000
  dcep bench --duration 10s --rate 500
  dcep bench --duration 30s --concurrency 256 --wallets 2000
  dcep --json bench --duration 3s --rate 50`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			if cfg.tag == "" {
				t := make([]byte, 3)
				_, _ = rand.Read(t)
				cfg.tag = hex.EncodeToString(t)
			}
			if err := statepb.ValidateID("--tag", "bench-"+cfg.tag+"-funder"); err != nil {
				return usage("--tag %q: use a-z 0-9 (at most 40)", cfg.tag)
			}
			return a.runBench(cmd.Context(), cfg)
		}),
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to submit")
	f.Float64Var(&cfg.rate, "rate", 0, "arrivals per second (open loop); 0: closed loop with --concurrency")
	f.IntVar(&cfg.concurrency, "concurrency", 64, "closed loop: clients, each with one transfer in flight")
	f.IntVar(&cfg.wallets, "wallets", 100, "bench wallets that pay each other")
	f.IntVar(&cfg.transfers, "transfers", 0, "closed loop: transfers to pre-sign (0: the limit this machine's verify rate allows for --duration)")
	f.StringVar(&cfg.bank, "bank", "", "bank that registers and funds the bench wallets (default the network's first bank)")
	f.StringSliceVar(&cfg.nodes, "nodes", nil, "API URLs to submit to, comma-separated (default every voter --node's status lists)")
	f.StringVar(&cfg.tag, "tag", "", "suffix of the bench wallets' ids (default random)")
	f.BoolVar(&cfg.connect, "connect", false, "submit with connect-go's client instead of the lean submitter (more client CPU)")
	return cmd
}

func (c *benchConfig) validate() error {
	switch {
	case c.duration < 100*time.Millisecond || c.duration > benchMaxDuration:
		return usage("--duration %v: 100ms..%v", c.duration, benchMaxDuration)
	case c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0):
		return usage("--rate %v: a number ≥ 0 (0: closed loop)", c.rate)
	case c.rate*c.duration.Seconds() > benchMaxTransfers:
		return usage("--rate %v for %v is %.0f transfers: at most %d", c.rate, c.duration, c.rate*c.duration.Seconds(), benchMaxTransfers)
	case c.concurrency < 1 || c.concurrency > benchMaxConc:
		return usage("--concurrency %d: 1..%d", c.concurrency, benchMaxConc)
	case c.wallets < 2 || c.wallets > benchMaxWallets:
		return usage("--wallets %d: 2..%d", c.wallets, benchMaxWallets)
	case c.transfers < 0 || c.transfers > benchMaxTransfers:
		return usage("--transfers %d: 0..%d", c.transfers, benchMaxTransfers)
	}
	for i, u := range c.nodes {
		cl, err := client.New(u)
		if err != nil {
			return usage("--nodes %q: %v", u, err)
		}
		c.nodes[i] = cl.BaseURL()
	}
	return nil
}

// benchJSON is what bench reports (--json prints it).
type benchJSON struct {
	Network         string         `json:"network"`
	Node            string         `json:"node"`
	Targets         []string       `json:"targets"`
	Mode            string         `json:"mode"` // rate or closed
	RateOffered     float64        `json:"rate_offered,omitempty"`
	Concurrency     int            `json:"concurrency,omitempty"`
	DurationS       float64        `json:"duration_s"`
	Bank            string         `json:"bank"`
	Tag             string         `json:"tag"`
	Wallets         int            `json:"wallets"`
	FundedFen       uint64         `json:"funded_fen"`
	SetupTxs        int            `json:"setup_txs"`
	SetupS          float64        `json:"setup_s"`
	Signed          int            `json:"signed"`
	Submitted       int            `json:"submitted"`
	Committed       int            `json:"committed"`
	Failed          int            `json:"failed"`
	Refused         int            `json:"refused"`
	FailuresByCode  map[string]int `json:"failures_by_code"`
	FirstFailure    string         `json:"first_failure,omitempty"`
	RanOut          bool           `json:"ran_out,omitempty"`
	ElapsedS        float64        `json:"elapsed_s"`
	TxPerS          float64        `json:"tx_per_s"`
	LatencyMs       benchLatency   `json:"latency_ms"`
	VerifyPerS      float64        `json:"verify_per_s"`
	Cores           int            `json:"cores"`
	ValidatingNodes int            `json:"validating_nodes"`
	LimitTxPerS     float64        `json:"limit_tx_per_s"`
	RatioOfLimit    float64        `json:"ratio_of_limit"`
	BenchWalletsFen uint64         `json:"bench_wallets_fen"`
	BalancesOK      bool           `json:"balances_ok"`
	Supply          *auditJSON     `json:"supply,omitempty"`
}

type benchLatency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// bench is one run's state.
type bench struct {
	a       *app
	cfg     benchConfig
	cl      *client.Client
	b       *client.Builder
	bankKey ed25519.PrivateKey
	out     benchJSON
	funder  load.Wallet
	payers  []load.Wallet
	log     io.Writer // progress and narration (stderr)
}

func (a *app) runBench(ctx context.Context, cfg benchConfig) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	b, err := cl.Builder(ctx)
	if err != nil {
		return err
	}
	if cfg.bank == "" {
		if len(b.Genesis().GetBanks()) == 0 {
			return fail(exitRefused, codeBankNotFound, "the network has no operating banks")
		}
		cfg.bank = b.Genesis().GetBanks()[0].GetId()
	}
	_, k, err := a.bankKey(ctx, cfg.bank)
	if err != nil {
		return err
	}
	r := &bench{a: a, cfg: cfg, cl: cl, b: b, bankKey: k.Private, log: a.stderr}
	r.out = benchJSON{Network: b.Genesis().GetChainId(), Bank: cfg.bank, Tag: cfg.tag, Wallets: cfg.wallets,
		DurationS: cfg.duration.Seconds(), FailuresByCode: map[string]int{}, Cores: runtime.GOMAXPROCS(0)}
	if err := r.discover(ctx); err != nil {
		return err
	}
	r.measureLimit()
	w, err := r.setup(ctx)
	if err != nil {
		return err
	}
	if err := r.drive(ctx, w); err != nil {
		return err
	}
	return r.finish(ctx)
}

// discover finds the nodes to submit to and counts the validating nodes.
func (r *bench) discover(ctx context.Context) error {
	st, err := r.cl.Status(ctx)
	if err != nil {
		return err
	}
	r.out.Node = st.GetNode().GetName()
	validating := func(role statepb.NodeRole) bool {
		return role == statepb.NodeRole_NODE_ROLE_VOTER || role == statepb.NodeRole_NODE_ROLE_REGULATOR
	}
	if validating(st.GetNode().GetRole()) {
		r.out.ValidatingNodes++
	}
	var voters []string
	if st.GetNode().GetRole() == statepb.NodeRole_NODE_ROLE_VOTER {
		voters = append(voters, r.cl.BaseURL())
	}
	for _, p := range st.GetPeers() {
		if validating(p.GetRole()) {
			r.out.ValidatingNodes++
		}
		if p.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER && p.GetStatus().GetApiAddr() != "" {
			voters = append(voters, apiURL(p.GetStatus().GetApiAddr(), r.a.node))
		}
	}
	r.out.Targets = r.cfg.nodes
	if len(r.out.Targets) == 0 {
		r.out.Targets = voters
	}
	if len(r.out.Targets) == 0 {
		r.out.Targets = []string{r.cl.BaseURL()}
	}
	return nil
}

// measureLimit measures this machine's raw Ed25519 verify rate, before
// any load, and the limit it sets for a network validating on it.
func (r *bench) measureLimit() {
	rate, _ := load.MeasureVerifyRate(benchVerifyFor)
	r.out.VerifyPerS = rate
	r.out.LimitTxPerS = rate / float64(max(1, r.out.ValidatingNodes))
	fmt.Fprintf(r.log, "ed25519: %.0f verify/s on %d cores → limit %.0f tx/s for %d validating nodes on this machine\n",
		rate, r.out.Cores, r.out.LimitTxPerS, r.out.ValidatingNodes)
}

// plan sizes the workload: rate × duration, or for a closed loop
// --transfers, else what the limit allows for the duration.
func (r *bench) plan() load.Plan {
	n := r.cfg.transfers
	switch {
	case r.cfg.rate > 0:
		n = int(math.Ceil(r.cfg.rate * r.cfg.duration.Seconds()))
	case n == 0:
		n = int(math.Min(benchMaxTransfers, r.out.LimitTxPerS*r.cfg.duration.Seconds()))
	}
	return load.Plan{Wallets: r.cfg.wallets, Transfers: max(1, n), OutputFen: benchOutputFen, TransferFen: benchTransferFen}
}

// setup registers and funds the bench wallets and signs the workload.
func (r *bench) setup(ctx context.Context) (*load.Workload, error) {
	start := time.Now()
	plan := r.plan()
	root, err := plan.FunderFen()
	if err != nil {
		return nil, usage("%v", err)
	}
	r.out.FundedFen, r.out.Signed = root, plan.Transfers
	id := func(s string) string { return "bench-" + r.cfg.tag + "-" + s }
	r.funder = load.Wallet{ID: id("funder")}
	r.payers = make([]load.Wallet, r.cfg.wallets)
	for i := range r.payers {
		r.payers[i].ID = id(fmt.Sprintf("w%05d", i))
	}
	fmt.Fprintf(r.log, "setup: registering %d bench wallets (%s…) at %s, funding %s, signing %d transfers\n",
		len(r.payers)+1, r.funder.ID, r.cfg.bank, yuan(root), plan.Transfers)
	if err := r.register(ctx); err != nil {
		return nil, err
	}
	res, err := r.cl.Exchange(ctx, r.bankKey, r.cfg.bank, r.funder.ID, root, client.Memo("dcep bench "+r.cfg.tag))
	if err != nil {
		var fe *client.FundsError
		if errors.As(err, &fe) {
			return nil, fail(exitRefused, statepb.CodeOf(fe).Short(), "bank %s's reserve holds %s, the bench needs %s: %v", r.cfg.bank, yuan(fe.BalanceFen), yuan(root), fe).
				hint("add to it: dcep issue --bank %s --amount %s (the central bank's key), or use fewer transfers", r.cfg.bank, yuan(root))
		}
		return nil, fmt.Errorf("fund %s: %w", r.funder.ID, err)
	}
	var fundTx [32]byte
	copy(fundTx[:], res.GetTxId())
	setup, err := load.NewGen([]string{r.cl.BaseURL()}, load.Options{Conc: benchSetupConc, Connect: r.cfg.connect})
	if err != nil {
		return nil, usage("--node %q: %v", r.cl.BaseURL(), err)
	}
	defer setup.Close()
	sign := func(body *statepb.Tx, key ed25519.PrivateKey) ([]byte, [32]byte, error) {
		st, err := r.b.Sign(body, key)
		if err != nil {
			return nil, [32]byte{}, err
		}
		return st.Raw, st.ID, nil
	}
	w, err := load.Build(ctx, plan, sign, setup, r.funder, &statepb.Outpoint{TxId: fundTx[:], Index: 0}, r.payers)
	if err != nil {
		return nil, err
	}
	r.out.SetupTxs = w.SetupTxs + len(r.payers) + 2
	r.out.SetupS = time.Since(start).Seconds()
	fmt.Fprintf(r.log, "setup: %d transactions in %v\n", r.out.SetupTxs, time.Since(start).Round(time.Millisecond))
	return w, nil
}

// register opens the funder and the payers with fresh keys held in memory
// only: their money stays in them, in supply, for good.
func (r *bench) register(ctx context.Context) error {
	all := append([]*load.Wallet{&r.funder}, make([]*load.Wallet, len(r.payers))...)
	for i := range r.payers {
		all[i+1] = &r.payers[i]
	}
	return parallelN(ctx, len(all), benchSetupConc, func(i int) error {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		all[i].Key = priv
		_, err = r.cl.RegisterWallet(ctx, r.bankKey, &statepb.RegisterWallet{WalletId: all[i].ID, BankId: r.cfg.bank, PublicKey: pub,
			Kind: statepb.WalletKind_WALLET_KIND_PERSONAL, Tier: 1}, client.Memo("dcep bench "+r.cfg.tag))
		if err != nil {
			return fmt.Errorf("register %s: %w", all[i].ID, err)
		}
		return nil
	})
}

// parallelN runs fn for 0..n-1, at most conc at once, and returns the
// first error (the rest are not started).
func parallelN(ctx context.Context, n, conc int, fn func(i int) error) error {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return cmpErr(first, ctx.Err())
}

// drive submits the workload, printing progress each second.
func (r *bench) drive(ctx context.Context, w *load.Workload) error {
	gen, err := load.NewGen(r.out.Targets, load.Options{Conc: r.cfg.concurrency, Connect: r.cfg.connect})
	if err != nil {
		return usage("--nodes %q: %v", r.out.Targets, err)
	}
	defer gen.Close()
	rec := load.NewRecorder(len(w.Txs))
	if r.cfg.rate > 0 {
		r.out.Mode, r.out.RateOffered = "rate", r.cfg.rate
		fmt.Fprintf(r.log, "load: %.0f transfers/s for %v over %d node(s)\n", r.cfg.rate, r.cfg.duration, len(r.out.Targets))
	} else {
		r.out.Mode, r.out.Concurrency = "closed", r.cfg.concurrency
		fmt.Fprintf(r.log, "load: closed loop, %d clients for %v over %d node(s)\n", r.cfg.concurrency, r.cfg.duration, len(r.out.Targets))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.progress(rec, done)
	}()
	var p *load.Phase
	if r.cfg.rate > 0 {
		p = gen.OpenLoop(ctx, w.Txs, r.cfg.rate, rec)
	} else {
		p = gen.ClosedLoop(ctx, w.Txs, r.cfg.duration, rec)
	}
	close(done)
	wg.Wait()
	r.out.Submitted, r.out.Committed, r.out.Failed, r.out.Refused = p.Submitted, p.OK, p.Failed, p.Refused
	r.out.FailuresByCode, r.out.FirstFailure, r.out.RanOut = p.ByCode, p.FirstErr, p.RanOut && r.cfg.rate == 0
	r.out.ElapsedS, r.out.TxPerS = p.Elapsed.Seconds(), p.Rate()
	r.out.LatencyMs = benchLatency{P50: load.Ms(p.Pct(0.50)), P90: load.Ms(p.Pct(0.90)), P99: load.Ms(p.Pct(0.99)), Max: load.Ms(p.Pct(1))}
	if r.out.LimitTxPerS > 0 {
		r.out.RatioOfLimit = r.out.TxPerS / r.out.LimitTxPerS
	}
	return nil
}

// progress prints a line each second until done: committed, tx/s in the
// last second, in flight, failures by code.
func (r *bench) progress(rec *load.Recorder, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start, last := time.Now(), int64(0)
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		s := rec.Snapshot()
		fmt.Fprintf(r.log, "%5.0fs  %8d committed  %7d tx/s  %6d in flight  failures: %s\n",
			time.Since(start).Seconds(), s.Committed, s.Committed-last, s.InFlight, byCode(s.ByCode))
		last = s.Committed
	}
}

func byCode(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for i, c := range codes {
		codes[i] = fmt.Sprintf("%s=%d", c, m[c])
	}
	return strings.Join(codes, " ")
}

// finish checks the bench wallets' money, runs the supply audit and
// reports. It runs even after Ctrl-C, with a minute of its own.
func (r *bench) finish(parent context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), time.Minute)
	defer cancel()
	sum, err := r.benchWalletsFen(ctx)
	if err != nil {
		return err
	}
	r.out.BenchWalletsFen, r.out.BalancesOK = sum, sum == r.out.FundedFen
	cl, role, note, err := r.a.auditor(ctx)
	if err != nil {
		return err
	}
	sp, err := cl.AuditSupply(ctx, client.Linearizable())
	if err != nil {
		return err
	}
	audit := auditOut(sp)
	audit.Role, audit.URL, audit.Note = role, cl.BaseURL(), note
	r.out.Supply = &audit
	if err := r.a.emit(r.out, r.writeText); err != nil {
		return err
	}
	switch {
	case !audit.InvariantHolds:
		return fail(exitAudit, codeInvariant, "the supply invariant does not hold on %s: %s", audit.Node, audit.InvariantError)
	case !r.out.BalancesOK:
		return fail(exitAudit, codeBenchMismatch, "the bench wallets hold %s, %s was funded", yuan(sum), yuan(r.out.FundedFen))
	case r.out.Refused > 0:
		return fail(exitRefused, codeBenchRefused, "the ledger refused %d of %d transfers; first: %s", r.out.Refused, r.out.Submitted, r.out.FirstFailure)
	}
	return cmpErr(parent.Err())
}

// benchWalletsFen is what the funder and the payers hold now (read
// linearizably), overflow-checked.
func (r *bench) benchWalletsFen(ctx context.Context) (uint64, error) {
	ids := []string{r.funder.ID}
	for _, p := range r.payers {
		ids = append(ids, p.ID)
	}
	bal := make([]uint64, len(ids))
	err := parallelN(ctx, len(ids), benchSetupConc, func(i int) error {
		b, err := r.cl.Balance(ctx, ids[i], client.Linearizable())
		bal[i] = b
		return err
	})
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, b := range bal {
		var carry uint64
		if sum, carry = bits.Add64(sum, b, 0); carry != 0 {
			return 0, fail(exitAudit, codeBenchMismatch, "the bench wallets' balances overflow uint64 fen")
		}
	}
	return sum, nil
}

func (r *bench) writeText(w io.Writer) {
	o := r.out
	fmt.Fprintf(w, "dcep bench on network %s (node %s): %d bench wallets at %s (tag %s), %d target node(s)\n", o.Network, o.Node, o.Wallets, o.Bank, o.Tag, len(o.Targets))
	if o.Mode == "rate" {
		fmt.Fprintf(w, "  load          %.0f transfers/s offered for %v\n", o.RateOffered, r.cfg.duration)
	} else {
		fmt.Fprintf(w, "  load          closed loop, %d clients, for %v\n", o.Concurrency, r.cfg.duration)
	}
	fmt.Fprintf(w, "  committed     %d of %d submitted in %.1fs: %.1f tx/s\n", o.Committed, o.Submitted, o.ElapsedS, o.TxPerS)
	if o.RanOut {
		fmt.Fprintf(w, "  (every pre-signed transfer was used before the time was up: raise --transfers)\n")
	}
	fmt.Fprintf(w, "  latency ms    p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (submit → committed and applied)\n", o.LatencyMs.P50, o.LatencyMs.P90, o.LatencyMs.P99, o.LatencyMs.Max)
	fmt.Fprintf(w, "  failures      %s\n", byCode(o.FailuresByCode))
	fmt.Fprintf(w, "  ed25519       %.0f verify/s on %d cores here; limit %.0f tx/s for %d validating nodes on this machine; %.2f of it\n",
		o.VerifyPerS, o.Cores, o.LimitTxPerS, o.ValidatingNodes, o.RatioOfLimit)
	mark := "✓"
	if !o.BalancesOK {
		mark = "✗"
	}
	fmt.Fprintf(w, "  bench wallets hold %s; funded %s %s\n\n", yuan(o.BenchWalletsFen), yuan(o.FundedFen), mark)
	writeAudit(w, *o.Supply)
}
