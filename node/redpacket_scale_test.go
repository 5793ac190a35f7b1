package node_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// BenchmarkRedPacketCampaign is the Double-12 scale run (docs/PERFORMANCE.md,
// "Red-packet campaign at Double-12 scale"): on a 3-voter in-process
// cluster (real Raft, libp2p, Pebble), a campaign of DCEP_RP_PACKETS
// (default 100,000) red packets of ¥200 with DCEP_RP_ENROLMENTS (default
// 1,000,000) enrolled wallets is created, enrolled, drawn, granted, verified
// and reclaimed, and each step is timed. Ledger time is moved past the
// windows with the nodes' clock (nodetest.Options.Now), so nothing waits
// for wall-clock windows; grants and reclaim run as scheduled work in
// blocks the idle leader proposes by itself.
//
//	go test ./node -run '^$' -bench BenchmarkRedPacketCampaign -benchtime 1x -timeout 3h -v
//	DCEP_RP_PACKETS=2000 DCEP_RP_ENROLMENTS=10000 go test ./node -run '^$' -bench BenchmarkRedPacketCampaign -benchtime 1x
//
// Transactions are signed on the fly by producer goroutines and handed to
// the leader's consensus in batches of 2,000 (consensus.Node.Submit, the
// path the API's Submit ends in), several batches in flight.
func BenchmarkRedPacketCampaign(b *testing.B) {
	packets, people := rpEnvInt("DCEP_RP_PACKETS", 100_000), rpEnvInt("DCEP_RP_ENROLMENTS", 1_000_000)
	for range b.N {
		rpScale(b, packets, people)
	}
}

func rpEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rpClock is the nodes' clock: the real one plus an offset a benchmark
// moves forward.
type rpClock struct{ offset atomic.Int64 }

func (c *rpClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// jumpTo moves the clock so that it reads at least ms.
func (c *rpClock) jumpTo(ms int64) {
	if d := ms - c.Now().UnixMilli(); d > 0 {
		c.offset.Add(int64(time.Duration(d) * time.Millisecond))
	}
}

type rpRun struct {
	tb  testing.TB
	c   *nodetest.Cluster
	ctx context.Context
}

// leader is the ready leader's consensus.
func (r *rpRun) leader() *consensus.Node {
	return r.c.Node(r.c.WaitLeader()).Consensus()
}

// submitAll signs n transactions with mk (on producer goroutines) and
// submits them to the leader in batches, several in flight; every outcome
// must be OK. A batch whose leader went away is submitted again (the same
// bytes: what committed comes back as a duplicate).
func (r *rpRun) submitAll(what string, n int, mk func(i int) []byte) time.Duration {
	const batch = 2000
	start := time.Now()
	batches := make(chan [][]byte, 8)
	go func() {
		defer close(batches)
		var wg sync.WaitGroup
		next := atomic.Int64{}
		out := make(chan struct {
			i   int
			txs [][]byte
		}, 8)
		producers := max(runtime.GOMAXPROCS(0), 2)
		for range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)-1) * batch
					if i >= n {
						return
					}
					txs := make([][]byte, 0, batch)
					for j := i; j < min(i+batch, n); j++ {
						txs = append(txs, mk(j))
					}
					out <- struct {
						i   int
						txs [][]byte
					}{i, txs}
				}
			}()
		}
		go func() { wg.Wait(); close(out) }()
		for x := range out {
			batches <- x.txs
		}
	}()
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for txs := range batches {
				for attempt := 0; ; attempt++ {
					res, err := r.leader().Submit(r.ctx, txs)
					if err != nil {
						if attempt < 20 && (errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrOverloaded) || errors.Is(err, consensus.ErrUnknownOutcome)) {
							time.Sleep(200 * time.Millisecond)
							continue
						}
						failed.Store(fmt.Errorf("%s: submit: %w", what, err))
						break
					}
					for _, x := range res {
						if x.GetCode() != statepb.Code_CODE_OK {
							failed.Store(fmt.Errorf("%s: %s: %s", what, x.GetCode().Short(), x.GetMessage()))
						}
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		r.tb.Fatal(err)
	}
	return time.Since(start)
}

func (r *rpRun) campaign(id string) *statepb.CampaignRecord {
	c, err := r.c.Node(r.c.WaitLeader()).Store().Campaign(id)
	if err != nil {
		r.tb.Fatal(err)
	}
	return c
}

// waitStatus waits until the campaign reaches status and returns how long
// that took and how many blocks it spanned.
func (r *rpRun) waitStatus(id string, status statepb.CampaignStatus, timeout time.Duration) (time.Duration, uint64) {
	start := time.Now()
	nd := r.c.Node(r.c.WaitLeader())
	from := nd.Store().Meta().GetBlocks()
	for r.campaign(id).GetStatus() != status {
		if time.Since(start) > timeout {
			r.tb.Fatalf("campaign %s: %s after %v", id, r.campaign(id).GetStatus(), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), nd.Store().Meta().GetBlocks() - from
}

func rpScale(tb testing.TB, packets, people int) {
	clock := &rpClock{}
	c := nodetest.New(tb, nodetest.Options{Voters: 3, Now: clock.Now, Genesis: func(g *statepb.Genesis) {
		g.GenesisTimeMs = time.Now().UnixMilli() - 1000
	}})
	c.StartAll()
	ctx := context.Background()
	r := &rpRun{tb: tb, c: c, ctx: ctx}
	n := c.Net
	const packetFen = 200 * state.Yuan
	funded := uint64(packets) * packetFen
	report := func(step string, d time.Duration, detail string) {
		tb.Logf("%-10s %10v  %s", step, d.Round(time.Millisecond), detail)
		if bb, ok := tb.(*testing.B); ok {
			bb.ReportMetric(d.Seconds(), "s-"+step)
		}
	}

	// Setup: the city's wallet and the citizens' wallets.
	issue, issueID := n.SignID(tb, statetest.IssueBody("icbc", funded), n.CentralBank())
	ex, exID := n.SignID(tb, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "suzhou", funded), n.Bank("icbc"))
	r.submitAll("setup", 3, func(i int) []byte {
		return [][]byte{issue, n.Register(tb, "icbc", "suzhou", statepb.WalletKind_WALLET_KIND_GOVERNMENT, 1, "320500"), ex}[i]
	})
	keys := make([]ed25519.PrivateKey, people)
	var banks = statetest.BankIDs
	d := r.submitAll("register", people, func(i int) []byte {
		id := fmt.Sprintf("p%07d", i)
		keys[i] = n.Wallet(id)
		bank := banks[i%len(banks)]
		return n.Sign(tb, &statepb.Tx{Kind: &statepb.Tx_RegisterWallet{RegisterWallet: &statepb.RegisterWallet{
			WalletId: id, BankId: bank, PublicKey: keys[i].Public().(ed25519.PublicKey), Kind: statepb.WalletKind_WALLET_KIND_PERSONAL, Tier: 4,
		}}}, n.Bank(bank))
	})
	report("register", d, fmt.Sprintf("%d wallets opened (setup, not a campaign step): %.0f tx/s", people, float64(people)/d.Seconds()))

	// Create: windows a day long; the clock jumps past them.
	now := clock.Now().UnixMilli()
	seed := statetest.Seed("double-12")
	spec := statetest.Campaign{
		ID: "dbl12", Sponsor: "suzhou", Title: "Suzhou Double-12", Inputs: []*statepb.Outpoint{statetest.Out(exID, 0)},
		Packets: uint32(packets), PacketFen: packetFen, EnrolStart: now, EnrolEnd: now + 86_400_000,
		SpendStart: now + 86_400_000, SpendEnd: now + 2*86_400_000, Regions: []string{"320500"}, Seed: seed,
	}
	create := n.Sign(tb, statetest.CreateCampaignBody(spec), n.Wallet("suzhou"))
	d = r.submitAll("create", 1, func(int) []byte { return create })
	report("create", d, fmt.Sprintf("%d packets × ¥200 = %s into escrow", packets, state.Fen(funded)))

	d = r.submitAll("enrol", people, func(i int) []byte {
		return n.Sign(tb, statetest.EnrolBody("dbl12", fmt.Sprintf("p%07d", i)), keys[i])
	})
	report("enrol", d, fmt.Sprintf("%d enrolments: %.0f tx/s", people, float64(people)/d.Seconds()))
	keys = nil

	// Draw, then the grants (scheduled work, no transactions).
	clock.jumpTo(spec.EnrolEnd + 1000)
	draw := n.Sign(tb, statetest.DrawBody("dbl12", seed), n.Wallet("suzhou"))
	d = r.submitAll("draw", 1, func(int) []byte { return draw })
	report("draw", d, "the draw transaction (seed checked against the commitment, grant job scheduled)")
	d, blocks := r.waitStatus("dbl12", statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED, time.Hour)
	cp := r.campaign("dbl12")
	report("grant", d, fmt.Sprintf("%d red packets granted (%d winners among %d) in %d blocks, %.0f packets/s", cp.GetGranted(), cp.GetWinners(), cp.GetEnrolled(), blocks, float64(cp.GetGranted())/d.Seconds()))
	if cp.GetGranted() != uint64(min(packets, people)) || cp.GetEscrowFen() != funded-cp.GetGrantedFen() {
		tb.Fatalf("after grants: %v", cp)
	}

	// The sponsor's check: the winners recomputed over the API (the
	// enrolment list names wallets: the sponsor and regulators only).
	cl := c.As(tb, c.WaitLeader(), c.Holder("suzhou"))
	start := time.Now()
	dc, err := cl.VerifyDraw(ctx, "dbl12")
	if err != nil {
		tb.Fatalf("verify: %v", err)
	}
	if !dc.OK() || dc.Checked != packets {
		tb.Fatalf("verify: checked %d, mismatches %d", dc.Checked, len(dc.Mismatches))
	}
	report("verify", time.Since(start), fmt.Sprintf("dcep redpacket verify's work: %d enrolments and %d winners read over the API, winners recomputed, all equal", len(dc.Enrolled), dc.Checked))

	// The window closes: the reclaim (scheduled work).
	clock.jumpTo(spec.SpendEnd + 1000)
	d, blocks = r.waitStatus("dbl12", statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED, time.Hour)
	cp = r.campaign("dbl12")
	report("reclaim", d, fmt.Sprintf("%d red packets reclaimed, %s back to the sponsor, in %d blocks, %.0f packets/s", cp.GetReclaimedOutputs(), state.Fen(cp.GetReclaimedFen()), blocks, float64(cp.GetReclaimedOutputs())/d.Seconds()))
	if cp.GetReclaimedFen() != funded || cp.GetLiveFen() != 0 {
		tb.Fatalf("after reclaim: %v", cp)
	}

	// Every node: the same state, the supply invariant.
	start = time.Now()
	c.Converge(c.Node(c.WaitLeader()).Store().Meta().GetAppliedIndex(), 5*time.Minute)
	c.AuditAll()
	report("audit", time.Since(start), "all 3 nodes converged on one state hash; AuditSupply (whole state, campaign books, live index) holds on each")
	bal, err := c.Node(c.WaitLeader()).Store().Wallet("suzhou")
	if err != nil || bal.GetBalanceFen() != funded {
		tb.Fatalf("sponsor after reclaim: %v, %v", bal, err)
	}
}

// TestRedPacketScaleSmall runs the scale benchmark's whole path at a small
// size, so plain `go test` keeps it working.
func TestRedPacketScaleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	rpScale(t, 1500, 2500)
}
