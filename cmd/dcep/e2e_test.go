package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEWalkthrough is the end-to-end test of issue 4: it builds dcepd
// and dcep, starts `dcepd dev` as a process (in a temporary HOME, so its
// network is in $HOME/.dcep/dev exactly as a user's, on free ports), runs
// the README's walkthrough commands exactly as written, checks the output
// the README shows, then stops the network with SIGINT, starts it again on
// the same directory and checks that the money is still there.
//
// How the README block is run:
//
//   - The block is the README's first ```sh block that starts with
//     `alias dcep="go run ./cmd/dcep"`. That line is the only one the test
//     does not run literally: instead, the dcep binary it built (from the
//     same source) is first on PATH, so `dcep ...` runs it. Any other `go
//     run` in the block fails the test.
//   - Each command line runs in its own `bash -c`, from the repository root,
//     with only HOME set by the test (no DCEP_* variables): the CLI finds
//     the network and keys by itself, as in a user's second terminal.
//   - The comment lines directly under a command (no blank line between)
//     are its expected output: each must match an output line (stdout and
//     stderr together), in order, with runs of spaces equal and "…"
//     matching anything. Other comments are narration. A command whose
//     expected output starts with "error " must exit non-zero; any other
//     must exit 0.
//   - `dcep status` only reads; its output depends on every node being
//     ready at that instant, which a Raft election on a loaded machine can
//     interrupt for a moment, so it alone is run again (for up to 20 s)
//     until its output matches.
func TestREADMEWalkthrough(t *testing.T) {
	root := repoRoot(t)
	steps, err := walkthrough(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bin := binaries(t)
	net, err := startDev(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := net.stop(); err != nil {
			t.Error(err)
		}
	}()

	env := net.env("PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"))
	for _, s := range steps {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := runStep(root, env, s)
			if err == nil {
				break
			}
			if !strings.HasPrefix(s.command, "dcep status") || time.Now().After(deadline) {
				t.Fatalf("README line %d: %s: %v", s.line, s.command, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("README line %d ok: %s", s.line, s.command)
	}

	// What the walkthrough left, through the JSON interface.
	checkWalkthroughState(t, net)

	// The network stops on Ctrl-C and comes back with everything.
	start := time.Now()
	if err := net.restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped with SIGINT and restarted in %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(net.logTail(), "restarted dev network") {
		t.Fatalf("second start did not reuse the network:\n%s", net.logTail())
	}
	checkWalkthroughState(t, net)
	// And it still takes writes with the same keys.
	net.ok(t, "wallet", "unfreeze", "alice", "--reason", "phone found")
	net.ok(t, "pay", "--from", "alice", "--to", "luckin", "--amount", "11.50")
	var bal []balanceJSON
	net.okJSON(t, &bal, "balance", "alice", "luckin")
	if bal[0].BalanceFen != 490000 || bal[1].BalanceFen != 10000 {
		t.Fatalf("after restart and a payment: %+v", bal)
	}
}

// runStep runs one walkthrough command with bash and checks its exit
// status and output.
func runStep(root string, env []string, s step) error {
	cmd := exec.Command("bash", "-c", s.command)
	cmd.Dir, cmd.Env = root, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return err
	}
	failed := err != nil
	wantFail := len(s.expect) > 0 && strings.HasPrefix(s.expect[0], "error ")
	if failed != wantFail {
		return fmt.Errorf("exit %v, want failure %v; output:\n%s", err, wantFail, out.String())
	}
	if err := matchLines(s.expect, out.String()); err != nil {
		return fmt.Errorf("%v; output:\n%s", err, out.String())
	}
	return nil
}

// checkWalkthroughState checks balances, history and audit after the
// walkthrough.
func checkWalkthroughState(t *testing.T, net *devNet) {
	t.Helper()
	var bal []balanceJSON
	net.okJSON(t, &bal, "balance", "alice", "luckin")
	if len(bal) != 2 || bal[0] != (balanceJSON{Wallet: "alice", BalanceFen: 491150, Balance: "4911.50", Status: "frozen"}) ||
		bal[1] != (balanceJSON{Wallet: "luckin", BalanceFen: 8850, Balance: "88.50", Status: "active"}) {
		t.Fatalf("balances: %+v", bal)
	}
	var hist []historyJSON
	net.okJSON(t, &hist, "history", "alice")
	want := []struct {
		kind, counterparty, memo string
		in, out, balance         uint64
	}{
		{"freeze_wallet", "", "", 0, 0, 491150},
		{"transfer", "luckin", "two lattes", 0, 8850, 491150},
		{"exchange", "icbc.reserve", "", 500000, 0, 500000},
		{"register_wallet", "", "", 0, 0, 0},
	}
	// A freeze may or may not be a history entry; the rest must be there.
	if len(hist) > 0 && hist[0].Kind != "freeze_wallet" {
		want = want[1:]
	}
	if len(hist) != len(want) {
		t.Fatalf("history: %+v", hist)
	}
	for i, w := range want {
		h := hist[i]
		if h.Kind != w.kind || h.Counterparty != w.counterparty || h.Memo != w.memo || h.InFen != w.in || h.OutFen != w.out || h.BalanceFen != w.balance {
			t.Fatalf("history[%d] = %+v, want %+v", i, h, w)
		}
	}
	var audit auditJSON
	net.okJSON(t, &audit, "audit", "supply")
	if !audit.InvariantHolds || audit.Node != "regulator-1" || audit.Role != "regulator" ||
		audit.IssuedFen != 106_000_000 || audit.ReturnedFen != 0 || audit.OutstandingFen != 106_000_000 || audit.UnspentFen != 106_000_000 {
		t.Fatalf("audit: %+v", audit) // ¥1,000,000 issued by the walkthrough, ¥10,000 per bank by dcepd dev into the guarantees
	}
	for _, b := range audit.Banks {
		if b.Bank == "icbc" && (b.IssuedFen != 101_000_000 || b.WalletsFen != 101_000_000 || b.Wallets != 4) {
			t.Fatalf("audit of icbc: %+v", b)
		}
	}
}

// step is one command of the README walkthrough and the output shown
// under it.
type step struct {
	line    int
	command string
	expect  []string
}

// The alias line of the walkthrough, replaced by the built dcep on PATH.
const aliasLine = `alias dcep="go run ./cmd/dcep"`

// walkthrough extracts the walkthrough's steps from the README.
func walkthrough(path string) ([]step, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(raw), "\n")
	start := -1
	for i := 0; i+1 < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == "```sh" && strings.TrimSpace(lines[i+1]) == aliasLine {
			start = i + 2
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("%s: no ```sh block starting with %s", path, aliasLine)
	}
	var steps []step
	var cur *step
	for i := start; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], " \t")
		switch {
		case strings.TrimSpace(l) == "```":
			if len(steps) == 0 {
				return nil, fmt.Errorf("%s: the walkthrough has no commands", path)
			}
			return steps, nil
		case l == "":
			cur = nil
		case strings.HasPrefix(l, "#"):
			if cur != nil {
				cur.expect = append(cur.expect, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
			}
		default:
			if strings.Contains(l, "go run") {
				return nil, fmt.Errorf("%s:%d: %q: only the alias line may use go run (the test maps it to the built binary)", path, i+1, l)
			}
			if strings.HasSuffix(l, "\\") {
				return nil, fmt.Errorf("%s:%d: keep each walkthrough command on one line", path, i+1)
			}
			steps = append(steps, step{line: i + 1, command: l})
			cur = &steps[len(steps)-1]
		}
	}
	return nil, fmt.Errorf("%s: the walkthrough block is not closed", path)
}

// matchLines checks that each expected line matches an output line, in
// order.
func matchLines(expect []string, output string) error {
	out := strings.Split(output, "\n")
	j := 0
	for _, e := range expect {
		if strings.TrimSpace(e) == "…" {
			continue
		}
		re := lineRegexp(e)
		for j < len(out) && !re.MatchString(normalize(out[j])) {
			j++
		}
		if j == len(out) {
			return fmt.Errorf("no output line (after the previous match) matches %q", e)
		}
		j++
	}
	return nil
}

func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// lineRegexp matches a whole output line against an expected one: spaces
// normalized, "…" matching anything.
func lineRegexp(e string) *regexp.Regexp {
	parts := strings.Split(normalize(e), "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}
