// Command dcep is the client CLI of dcep, for the central bank, operating
// banks, wallet holders and regulators (SPEC §7). It is built on the Go SDK
// in client/ and talks to any node's API.
//
// Defaults need no flags next to `dcepd dev`:
//
//   - --node: $DCEP_NODE, else the first node listed in the dev network's
//     network.json ($DCEP_DEV_DIR, else ~/.dcep/dev), else
//     http://127.0.0.1:8101.
//   - --home (the keystore): $DCEP_HOME, else the dev network's keys/
//     directory, where `dcepd dev` writes the central bank's and the
//     banks' keys.
//
// Amounts are yuan with at most two decimals ("88.50", "1,000"). Output is
// for people by default; --json prints one JSON document with stable
// snake_case field names (amounts both as *_fen integers and as yuan
// strings).
//
// Every failure prints one line to stderr, "error CODE: sentence", where
// CODE is the ledger's stable rejection code (e.g. LIMIT_PAYMENT), the
// node's API code (e.g. READ_ONLY_NODE), or one of the CLI's own codes
// (USAGE, INVALID_AMOUNT, WALLET_NOT_FOUND, NODE_UNREACHABLE, ...); with
// --json the same code and message are also printed to stdout as
// {"error": {...}}. Exit status:
//
//	0  success
//	1  refused: the ledger or the node refused, or something named does not exist
//	2  usage: bad command, flag, argument or amount (nothing was sent)
//	3  network: node unreachable, no quorum, timeout, or the outcome of a
//	   write is unknown (check with `dcep tx ID` before trying again)
//	4  audit: the supply invariant does not hold, state diverges, a replay
//	   did not reproduce the ledger or found an archive segment corrupt
//	5  audit inconclusive: a replay could re-validate nothing
//	   (NOTHING_REPLAYED, HISTORY_UNAVAILABLE)
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one dcep command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		return a.report(err)
	}
	return exitOK
}
