package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestBench runs `dcep bench` against the shared `dcepd dev` process, as
// an operator would (the bank's key from the dev keystore), and checks its
// report: transfers committed, latency percentiles in order, no
// refusals, the verify rate measured, the supply audit passed, and — read
// back wallet by wallet with `dcep balance` — the bench wallets together
// hold exactly what the bank exchanged to them.
func TestBench(t *testing.T) {
	net := shared(t)
	// dcepd dev issues only to the banks' offline guarantees: give icbc,
	// the network's first bank, a reserve to fund the bench from.
	net.ok(t, "issue", "--bank", "icbc", "--amount", "100")
	const wallets, tag = 8, "e2e"
	var out benchJSON
	net.okJSON(t, &out, "bench", "--duration", "3s", "--rate", "50", "--wallets", fmt.Sprint(wallets), "--tag", tag)
	t.Logf("bench: %d/%d committed, %.1f tx/s, latency ms %+v, failures %v, verify %.0f/s, funded %d fen",
		out.Committed, out.Submitted, out.TxPerS, out.LatencyMs, out.FailuresByCode, out.VerifyPerS, out.FundedFen)
	l := out.LatencyMs
	switch {
	case out.Mode != "rate" || out.RateOffered != 50 || out.Bank != "icbc" || out.Signed != 150:
		t.Fatalf("run: mode %q rate %v bank %q signed %d; want rate 50 at icbc, 150 signed", out.Mode, out.RateOffered, out.Bank, out.Signed)
	case out.Committed <= 0 || out.TxPerS <= 0:
		t.Fatalf("nothing committed: %+v", out)
	case out.Committed+out.Failed != out.Submitted || out.Submitted > out.Signed:
		t.Fatalf("counts: committed %d + failed %d != submitted %d (signed %d)", out.Committed, out.Failed, out.Submitted, out.Signed)
	case !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max):
		t.Fatalf("latency percentiles out of order: %+v", l)
	case out.Refused != 0:
		t.Fatalf("%d transfers refused: %v; first: %s", out.Refused, out.FailuresByCode, out.FirstFailure)
	case out.VerifyPerS <= 0 || out.ValidatingNodes != 8 || out.LimitTxPerS <= 0 || len(out.Targets) != 7:
		t.Fatalf("limit: %.0f verify/s, %d validating nodes, limit %.0f, targets %v; want 8 nodes, 7 voters", out.VerifyPerS, out.ValidatingNodes, out.LimitTxPerS, out.Targets)
	case out.Supply == nil || !out.Supply.InvariantHolds:
		t.Fatalf("supply audit: %+v", out.Supply)
	case !out.BalancesOK || out.BenchWalletsFen != out.FundedFen || out.FundedFen == 0:
		t.Fatalf("bench wallets hold %d fen, funded %d", out.BenchWalletsFen, out.FundedFen)
	}
	// The bench wallets' money, read back independently.
	ids := []string{"bench-" + tag + "-funder"}
	for i := range wallets {
		ids = append(ids, fmt.Sprintf("bench-%s-w%05d", tag, i))
	}
	var sum uint64
	for _, id := range ids {
		var b struct {
			BalanceFen uint64 `json:"balance_fen"`
		}
		net.okJSON(t, &b, "balance", id)
		sum += b.BalanceFen
	}
	if sum != out.FundedFen {
		t.Fatalf("bench wallets hold %d fen by dcep balance, %d was funded", sum, out.FundedFen)
	}
	// For people: a closed loop, a progress line each second on stderr,
	// the report and the supply audit on stdout.
	r := net.ok(t, "bench", "--duration", "2s", "--concurrency", "2", "--transfers", "400", "--wallets", "4", "--tag", tag+"x")
	t.Logf("dcep bench (text), stderr:\n%sstdout:\n%s", r.stderr, r.stdout)
	for _, want := range []string{"load          closed loop, 2 clients", "latency ms    p50 ", "failures      none", " verify/s on ", "; funded ", " ✓", "invariant holds: "} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("stdout lacks %q:\n%v", want, r)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+1s\s+\d+ committed\s+\d+ tx/s\s+\d+ in flight\s+failures: none$`).MatchString(r.stderr) {
		t.Fatalf("no progress line after 1 s on stderr:\n%v", r)
	}
	// Bad flags are usage errors, and nothing is sent.
	net.refused(t, exitUsage, codeUsage, []string{"bench", "--wallets", "1"}, "--wallets 1")
	net.refused(t, exitUsage, codeUsage, []string{"bench", "--rate", "-5"}, "--rate")
}
