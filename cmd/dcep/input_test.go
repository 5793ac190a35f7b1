package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bad CLI input, each against the real network shared by this test binary
// (`dcepd dev` as a process; see harness_test.go). Every failure must print
// "error CODE: sentence" on stderr, nothing on stdout, and exit non-zero
// with the documented status; nothing may change on the ledger.

// fund opens a tier-4 wallet at bank with balance yuan (issuing to the bank
// first).
func fund(t *testing.T, net *devNet, name, bank, yuan string) {
	t.Helper()
	net.ok(t, "issue", "--bank", bank, "--amount", "100000")
	net.ok(t, "wallet", "create", name, "--bank", bank, "--tier", "4")
	net.ok(t, "exchange", "--to", name, "--amount", yuan)
}

func wantBalance(t *testing.T, net *devNet, wallet string, fen uint64) {
	t.Helper()
	var b balanceJSON
	net.okJSON(t, &b, "balance", wallet)
	if b.BalanceFen != fen {
		t.Fatalf("%s: balance %d fen, want %d", wallet, b.BalanceFen, fen)
	}
}

func TestBadAmounts(t *testing.T) {
	net := shared(t)
	fund(t, net, "amt-payer", "abc", "1000")
	net.ok(t, "wallet", "create", "amt-payee", "--bank", "abc", "--tier", "4")

	cases := []struct {
		amount, code, says string
	}{
		{"88.505", "INVALID_AMOUNT", "more than two decimals"},
		{"0.001", "INVALID_AMOUNT", "more than two decimals"},
		{"-5", "INVALID_AMOUNT", "negative amounts are not allowed"},
		{"−5", "INVALID_AMOUNT", "negative amounts are not allowed"},
		{"abc", "INVALID_AMOUNT", "not a number in yuan"},
		{"1e3", "INVALID_AMOUNT", "not a number in yuan"},
		{"88,50", "INVALID_AMOUNT", "misplaced comma"},
		{"5.", "INVALID_AMOUNT", "digits must follow the decimal point"},
		{"184467440737095516.16", "INVALID_AMOUNT", "too large (max 184467440737095516.15 yuan)"},
		{"99999999999999999999999", "INVALID_AMOUNT", "too large"},
		{"0", "AMOUNT_ZERO", "must be more than zero"},
		{"0.00", "AMOUNT_ZERO", "must be more than zero"},
		{"", "USAGE", "--amount is required"},
	}
	for _, c := range cases {
		want := []string{c.says}
		if c.amount != "" {
			want = append(want, fmt.Sprintf("--amount %q", c.amount))
		}
		for _, args := range [][]string{
			{"pay", "--from", "amt-payer", "--to", "amt-payee", "--amount", c.amount},
			{"issue", "--bank", "abc", "--amount", c.amount},
			{"return", "--bank", "abc", "--amount", c.amount},
			{"exchange", "--to", "amt-payee", "--amount", c.amount},
			{"redeem", "--from", "amt-payer", "--amount", c.amount},
		} {
			net.refused(t, exitUsage, c.code, args, want...)
		}
	}
	// An amount flag given twice, or as a word, is a usage error too.
	net.refused(t, exitUsage, "USAGE", []string{"pay", "--from", "amt-payer", "--to", "amt-payee", "--amount"}, "flag needs an argument")
	// JSON mode reports the same error as JSON on stdout.
	r := net.dcep(t, "--json", "pay", "--from", "amt-payer", "--to", "amt-payee", "--amount", "1.001")
	if r.exit != exitUsage || !strings.Contains(r.stdout, `"code": "INVALID_AMOUNT"`) || !strings.HasPrefix(r.stderr, "error INVALID_AMOUNT: ") {
		t.Fatalf("--json error:\n%v", r)
	}
	wantBalance(t, net, "amt-payer", 100000)
	wantBalance(t, net, "amt-payee", 0)
	// Well-formed amounts with thousands separators and a currency sign work.
	net.ok(t, "pay", "--from", "amt-payer", "--to", "amt-payee", "--amount", "¥100.50")
	wantBalance(t, net, "amt-payee", 10050)
}

func TestUnknownWalletNames(t *testing.T) {
	net := shared(t)
	fund(t, net, "known-1", "boc", "100")
	list := "wallets in the keystore: "
	for _, c := range []struct {
		code string
		args []string
		says string
	}{
		{"WALLET_NOT_FOUND", []string{"pay", "--from", "ghost", "--to", "known-1", "--amount", "1"}, `no wallet "ghost" in the keystore`},
		{"PAYEE_NOT_FOUND", []string{"pay", "--from", "known-1", "--to", "ghost", "--amount", "1"}, `no wallet "ghost" on the ledger or in the keystore`},
		{"WALLET_NOT_FOUND", []string{"redeem", "--from", "ghost", "--amount", "1"}, `no wallet "ghost" in the keystore`},
		{"WALLET_NOT_FOUND", []string{"exchange", "--bank", "boc", "--to", "ghost", "--amount", "1"}, `no wallet "ghost" on the ledger`},
		{"WALLET_NOT_FOUND", []string{"balance", "ghost"}, `no wallet "ghost" on the ledger`},
		{"WALLET_NOT_FOUND", []string{"history", "ghost"}, `no wallet "ghost" on the ledger`},
		{"WALLET_NOT_FOUND", []string{"wallet", "show", "ghost"}, `no wallet "ghost" on the ledger`},
		{"WALLET_NOT_FOUND", []string{"wallet", "freeze", "ghost"}, `no wallet "ghost" on the ledger`},
		{"WALLET_NOT_FOUND", []string{"wallet", "rotate-key", "ghost"}, `no wallet "ghost" in the keystore`},
	} {
		r := net.refused(t, exitRefused, c.code, c.args, c.says, list, "known-1", "dcep wallet list --all")
		if strings.Contains(r.stderr, "node.pboc") || strings.Contains(r.stderr, ", icbc") {
			t.Fatalf("the list of wallets names keys that are not wallets:\n%v", r)
		}
	}
	// Malformed names say what is allowed.
	net.refused(t, exitUsage, "USAGE", []string{"pay", "--from", "known-1", "--to", "Ghost", "--amount", "1"}, `"Ghost"`, "a-z 0-9")
	// Unknown banks list the network's banks.
	net.refused(t, exitRefused, "BANK_NOT_FOUND", []string{"issue", "--bank", "hsbc", "--amount", "1"}, `no bank "hsbc"`, "icbc, abc, boc, ccb, bocom, psbc")
	net.refused(t, exitRefused, "BANK_NOT_FOUND", []string{"wallet", "create", "hsbc-1", "--bank", "hsbc"}, `no bank "hsbc"`)
	if _, err := os.Stat(filepath.Join(net.dir, "keys", "hsbc-1.key")); err == nil {
		t.Fatal("a refused wallet create left a key")
	}
	wantBalance(t, net, "known-1", 10000)
}

func TestPayFromFrozenWallet(t *testing.T) {
	net := shared(t)
	fund(t, net, "frozen-1", "ccb", "500")
	net.ok(t, "wallet", "create", "frozen-shop", "--bank", "ccb", "--tier", "2", "--kind", "merchant")
	net.ok(t, "exchange", "--to", "frozen-shop", "--amount", "5")
	net.ok(t, "wallet", "freeze", "frozen-1", "--reason", "suspected fraud")
	net.refused(t, exitRefused, "WALLET_FROZEN", []string{"pay", "--from", "frozen-1", "--to", "frozen-shop", "--amount", "10"},
		`wallet "frozen-1" is frozen: suspected fraud`, "dcep wallet unfreeze")
	net.refused(t, exitRefused, "WALLET_FROZEN", []string{"redeem", "--from", "frozen-1", "--amount", "10"}, `"frozen-1" is frozen`)
	// Nor can it be paid.
	net.refused(t, exitRefused, "PAYEE_FROZEN", []string{"pay", "--from", "frozen-shop", "--to", "frozen-1", "--amount", "1"}, `"frozen-1" is frozen`)
	net.refused(t, exitRefused, "WALLET_FROZEN", []string{"wallet", "freeze", "frozen-1"}, "already frozen")
	wantBalance(t, net, "frozen-1", 50000)
	wantBalance(t, net, "frozen-shop", 500)
	net.ok(t, "wallet", "unfreeze", "frozen-1")
	net.ok(t, "pay", "--from", "frozen-1", "--to", "frozen-shop", "--amount", "10")
	wantBalance(t, net, "frozen-shop", 1500)
}

func TestPayMoreThanBalance(t *testing.T) {
	net := shared(t)
	fund(t, net, "poor-1", "bocom", "100")
	net.ok(t, "wallet", "create", "poor-2", "--bank", "bocom", "--tier", "4")
	net.refused(t, exitRefused, "INSUFFICIENT_INPUTS", []string{"pay", "--from", "poor-1", "--to", "poor-2", "--amount", "100.01"},
		"insufficient funds in wallet poor-1: balance ¥100.00, need ¥100.01")
	net.refused(t, exitRefused, "INSUFFICIENT_INPUTS", []string{"redeem", "--from", "poor-2", "--amount", "1"}, "balance ¥0.00, need ¥1.00")
	// A bank cannot exchange more than its reserve holds.
	net.refused(t, exitRefused, "INSUFFICIENT_INPUTS", []string{"exchange", "--to", "poor-2", "--amount", "1000000"}, "bocom.reserve")
	wantBalance(t, net, "poor-1", 10000)
	net.ok(t, "pay", "--from", "poor-1", "--to", "poor-2", "--amount", "100")
	wantBalance(t, net, "poor-1", 0)
}

func TestTier4PaymentLimit(t *testing.T) {
	net := shared(t)
	fund(t, net, "t4-payer", "psbc", "3000")
	net.ok(t, "wallet", "create", "t4-shop", "--bank", "psbc", "--tier", "1", "--kind", "merchant")
	net.refused(t, exitRefused, "LIMIT_PAYMENT", []string{"pay", "--from", "t4-payer", "--to", "t4-shop", "--amount", "2000.01"},
		`payment ¥2,000.01 exceeds wallet "t4-payer"'s per-payment limit ¥2,000.00`, "tier")
	wantBalance(t, net, "t4-payer", 300000)
	net.ok(t, "pay", "--from", "t4-payer", "--to", "t4-shop", "--amount", "2000")
	wantBalance(t, net, "t4-shop", 200000)
	// The balance cap (¥10,000 at tier 4) holds for money coming in.
	net.refused(t, exitRefused, "LIMIT_BALANCE", []string{"exchange", "--to", "t4-payer", "--amount", "9000.01"}, "t4-payer")
	// A bank may raise the tier; then the payment goes through.
	net.ok(t, "exchange", "--to", "t4-payer", "--amount", "1500")
	net.ok(t, "wallet", "update", "t4-payer", "--tier", "2")
	net.ok(t, "pay", "--from", "t4-payer", "--to", "t4-shop", "--amount", "2500")
}

func TestUnreachableNode(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	home := t.TempDir()
	env := (&devNet{home: home}).env()

	for _, c := range []struct {
		env  []string
		args []string
		from string
	}{
		{env, []string{"--node", "http://" + addr, "status"}, "--node"},
		{env, []string{"--node", addr, "balance", "alice"}, "--node"},
		{append(env, "DCEP_NODE=http://"+addr), []string{"issue", "--bank", "icbc", "--amount", "1"}, "$DCEP_NODE"},
		{append(env, "DCEP_NODE=http://"+addr), []string{"audit", "supply"}, "$DCEP_NODE"},
	} {
		start := time.Now()
		r := runDcep(t, c.env, home, c.args...)
		checkRefused(t, r, exitNetwork, "NODE_UNREACHABLE", "no dcep node at http://"+addr, "connection refused", "address from "+c.from, "is dcepd dev running?")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%v took %v: an unreachable node must fail fast", c.args, d)
		}
	}
	// The default: a dev network's network.json whose nodes are down.
	dev := filepath.Join(home, ".dcep", "dev")
	if err := os.MkdirAll(filepath.Join(dev, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	nj := fmt.Sprintf(`{"chain_id":"dcep-dev","nodes":[{"name":"pboc","role":"voter","api":"http://%s"}]}`, addr)
	if err := os.WriteFile(filepath.Join(dev, "network.json"), []byte(nj), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runDcep(t, env, home, "status")
	checkRefused(t, r, exitNetwork, "NODE_UNREACHABLE", "no dcep node at http://"+addr, filepath.Join(dev, "network.json"))
	// And nothing at all: the default address, no keystore. (The default
	// port may be in use by a real network; only the keystore message is
	// checked here.)
	r = runDcep(t, (&devNet{home: t.TempDir()}).env(), home, "pay", "--from", "alice", "--to", "bob", "--amount", "1")
	checkRefused(t, r, exitRefused, "KEYSTORE_NOT_FOUND", "no keystore at", "go run ./cmd/dcepd dev")
}

func TestUsageErrors(t *testing.T) {
	net := shared(t)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"pay", "--from", "a", "--to", "b", "--amount", "1", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"pay", "--to", "b", "--amount", "1"}, "--from is required"},
		{[]string{"wallet", "show"}, "needs a wallet name"},
		{[]string{"wallet", "create", "x1", "--bank", "icbc", "--kind", "alien"}, `--kind "alien"`},
		{[]string{"wallet", "create", "x2", "--bank", "icbc", "--tier", "five"}, `invalid argument "five"`},
		{[]string{"wallet", "update", "x3"}, "nothing to update"},
		{[]string{"history", "x4", "--limit", "-1"}, "--limit -1"},
		{[]string{"tx", "xyz"}, "want 64 hex digits"},
		{[]string{"balance"}, "at least one wallet"},
	} {
		net.refused(t, exitUsage, "USAGE", c.args, c.says)
	}
	// Refused by the ledger's stateless checks before anything is sent.
	net.refused(t, exitUsage, "INVALID_FIELD", []string{"wallet", "create", "x5", "--bank", "icbc", "--tier", "5"}, "tier: 5 (want 1..4)")
	net.refused(t, exitUsage, "INVALID_FIELD", []string{"wallet", "create", "x6", "--bank", "icbc", "--region", "Suzhou"}, "region_code")
	for _, name := range []string{"x1", "x2", "x5", "x6"} {
		if _, err := os.Stat(filepath.Join(net.dir, "keys", name+".key")); err == nil {
			t.Fatalf("a refused wallet create left the key %s", name)
		}
	}
}

func TestReadOnlyNode(t *testing.T) {
	net := shared(t)
	reg := net.url("regulator-1")
	net.refused(t, exitRefused, "READ_ONLY_NODE", []string{"--node", reg, "issue", "--bank", "icbc", "--amount", "1"},
		"node regulator-1 is a regulator (read-only) node and refuses every write")
	// It answers reads, and audits.
	var a auditJSON
	net.okJSON(t, &a, "--node", reg, "audit", "supply")
	if a.Node != "regulator-1" || a.Role != "regulator" || !a.InvariantHolds {
		t.Fatalf("audit on the regulator: %+v", a)
	}
}

func TestWalletLifecycle(t *testing.T) {
	net := shared(t)
	// A registration the ledger refuses leaves no key behind.
	fund(t, net, "life-1", "icbc", "50")
	net.refused(t, exitRefused, "WALLET_EXISTS", []string{"wallet", "create", "life-dup", "--bank", "icbc", "--id", "life-1"}, `"life-1" already exists`)
	if _, err := os.Stat(filepath.Join(net.dir, "keys", "life-dup.key")); err == nil {
		t.Fatal("a refused registration left its key")
	}
	net.refused(t, exitRefused, "KEY_EXISTS", []string{"wallet", "create", "life-1", "--bank", "icbc"}, `already has a key named "life-1"`)

	// Key rotation: the old key stops working, the new one works, the old
	// file is kept.
	net.ok(t, "wallet", "create", "life-2", "--bank", "icbc", "--tier", "4")
	r := net.ok(t, "wallet", "rotate-key", "life-1")
	if !strings.Contains(r.stdout, "the old one is kept in") {
		t.Fatalf("rotate-key:\n%v", r)
	}
	net.ok(t, "pay", "--from", "life-1", "--to", "life-2", "--amount", "5")
	baks, _ := filepath.Glob(filepath.Join(net.dir, "keys", "life-1.key.bak-*"))
	if len(baks) != 1 {
		t.Fatalf("backups: %v", baks)
	}

	// Closing needs an empty wallet; a refused rotation restores the key.
	net.refused(t, exitRefused, "WALLET_NOT_EMPTY", []string{"wallet", "close", "life-1"}, "still holds ¥45.00")
	net.ok(t, "redeem", "--from", "life-1", "--amount", "45")
	net.ok(t, "wallet", "close", "life-1")
	before := publicKey(t, net, "life-1")
	net.refused(t, exitRefused, "WALLET_CLOSED", []string{"wallet", "rotate-key", "life-1"}, "closed", "the old key is back in")
	if after := publicKey(t, net, "life-1"); after != before {
		t.Fatalf("a refused rotation left key %s, want the old %s", after, before)
	}
	var w struct {
		Status string `json:"status"`
	}
	net.okJSON(t, &w, "wallet", "show", "life-1")
	if w.Status != "closed" {
		t.Fatalf("status %q", w.Status)
	}
	var list []walletJSON
	net.okJSON(t, &list, "wallet", "list")
	found := false
	for _, x := range list {
		found = found || (x.Wallet == "life-2" && x.Bank == "icbc" && x.OnLedger)
	}
	if !found {
		t.Fatalf("wallet list: %+v", list)
	}
}

func TestTxLookup(t *testing.T) {
	net := shared(t)
	fund(t, net, "tx-1", "abc", "20")
	net.ok(t, "wallet", "create", "tx-2", "--bank", "abc", "--tier", "4")
	var pay moneyJSON
	net.okJSON(t, &pay, "pay", "--from", "tx-1", "--to", "tx-2", "--amount", "7.25", "--memo", "noodles")
	for _, id := range []string{pay.TxID, pay.TxID[:10]} {
		var tx txDetailJSON
		net.okJSON(t, &tx, "tx", id)
		if tx.TxID != pay.TxID || tx.Kind != "transfer" || tx.Code != "OK" || tx.Memo != "noodles" || tx.LogIndex != pay.LogIndex ||
			!strings.Contains(tx.Summary, "¥7.25 to tx-2") || len(tx.Signers) != 1 || tx.Signers[0] != "key tx-1" {
			t.Fatalf("tx %s: %+v", id, tx)
		}
	}
	net.refused(t, exitRefused, "NOT_FOUND", []string{"tx", strings.Repeat("0", 64)}, "no transaction")
}

// publicKey is the public key of a keystore key, as dcep keys list shows it.
func publicKey(t *testing.T, net *devNet, name string) string {
	t.Helper()
	var keys []keyJSON
	net.okJSON(t, &keys, "keys", "list")
	for _, k := range keys {
		if k.Name == name {
			return k.PublicKey
		}
	}
	t.Fatalf("no key %s", name)
	return ""
}
