package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/amount"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/client/keystore/pkcs11key"
	"github.com/dcep/dcep/internal/cmddoc"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// version is printed by dcep --version.
const version = "0.1.0-dev"

// defaultNodeURL is the first node of `dcepd dev` with its default ports.
const defaultNodeURL = "http://127.0.0.1:8101"

// app holds the global flags and what commands share: one client, one
// keystore.
type app struct {
	stdout, stderr io.Writer

	node    string // --node
	home    string // --home
	jsonOut bool   // --json
	stale   bool   // --stale
	keyURI  string // --key
	// keyIdentity is --key-identity: an age identity file for encrypted
	// key files.
	keyIdentity string
	pass        passphrases // typed once per run (keycrypt.go)

	token *keystore.Key // the --key token key, once opened
	as    string        // --as

	nodeFrom   string // where the node address came from, for messages
	nodeForced bool   // --node or $DCEP_NODE was given

	cl *client.Client
	ks *keystore.Store
	// keysNow caches the node's keys in force (GetGenesis), once asked.
	keysNow *nodepb.GetGenesisResponse
	signIn  signIn // who calls are made as (auth.go)
	// memoKeyCache holds the keystore's keys once read (memo.go).
	memoKeyCache *[]ed25519.PrivateKey
}

func (a *app) rootCmd() *cobra.Command {
	a.signIn.a = a
	root := &cobra.Command{
		Use:   "dcep",
		Short: "Client for a dcep network: central bank, banks, wallet holders, regulators",
		Long: `dcep talks to a dcep node: the central bank issues and takes back e-CNY,
banks open wallets and exchange deposits, holders pay, regulators audit.

With no flags it uses the network started by "dcepd dev" (go run ./cmd/dcepd dev):
its first node, and its keystore with the central bank's and the banks' keys.

Amounts are yuan with at most two decimals: 88.50, 1000, 1,000.00.
Errors print "error CODE: what went wrong"; exit status 1 refused, 2 usage,
3 network (unreachable, no quorum, outcome unknown), 4 supply audit failed.`,
		Example: `  dcep status
  dcep issue --bank icbc --amount 1000000
  dcep wallet create alice --bank icbc --tier 4
  dcep exchange --bank icbc --to alice --amount 500
  dcep pay --from alice --to luckin --amount 88.50 --memo "two lattes"
  dcep --json balance alice`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolve(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usage("%s", err).hint("see: dcep COMMAND --help")
	})
	f := root.PersistentFlags()
	f.StringVar(&a.node, "node", "", "node API URL (default $DCEP_NODE, else the dev network's first node, else "+defaultNodeURL+")")
	f.StringVar(&a.home, "home", "", "keystore directory (default $DCEP_HOME, else the dev network's keys: $DCEP_DEV_DIR/keys or ~/.dcep/dev/keys)")
	f.BoolVar(&a.jsonOut, "json", false, "print JSON for scripts instead of text")
	f.StringVar(&a.keyURI, "key", "", "sign with this operator key in a hardware token instead of the keystore's: a pkcs11: URI (RFC 7512), used where the command needs the central bank's or a bank's key and it is that key")
	f.StringVar(&a.keyIdentity, "key-identity", "", "age identity file (age-keygen) that opens key files encrypted to its recipient (default $DCEP_KEY_IDENTITY); passphrase-encrypted files use $DCEP_KEY_PASSPHRASE, else ask on the terminal")
	f.StringVar(&a.as, "as", "", "sign in to the node as this keystore key (default: the holder of the wallet a call is about, else a regulator, a bank or the central bank key in the keystore)")
	f.BoolVar(&a.stale, "stale", false, "read from the node's own state without asking the leader (faster, may lag; works without a quorum)")

	root.AddCommand(
		a.statusCmd(),
		a.issueCmd(), a.returnCmd(), a.exchangeCmd(), a.redeemCmd(),
		a.walletCmd(),
		a.payCmd(), a.balanceCmd(), a.historyCmd(), a.txCmd(),
		a.auditCmd(), a.keysCmd(),
		a.redpacketCmd(), a.subwalletCmd(), a.chargeCmd(), a.refundCmd(), a.paymentsCmd(), a.demoCmd(),
		a.offlineCmd(), a.incidentsCmd(),
		a.memberCmd(),
		a.recoveryCmd(),
		a.ledgerVersionCmd(),
		a.benchCmd(),
		a.tokenCmd(),
		cmddoc.ManCommand(),
	)
	return root
}

// runE wraps a command's body so that its errors are told apart from
// cobra's usage errors.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd, args); err != nil {
			return runError{err}
		}
		return nil
	}
}

// args checks positional arguments with a usage error that names them.
func args(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return usage("%s takes no arguments (got %q)", cmd.CommandPath(), args)
			}
			return usage("%s needs %s (got %d argument(s))", cmd.CommandPath(), names, len(args)).hint("example: %s", firstLine(cmd.Example))
		}
		return nil
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// devDir is where dcepd dev keeps its network, and how that was decided.
func devDir() (string, string) {
	if d := os.Getenv("DCEP_DEV_DIR"); d != "" {
		return d, "$DCEP_DEV_DIR"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dcep-dev", "the current directory"
	}
	return filepath.Join(home, ".dcep", "dev"), "~/.dcep/dev"
}

// devNode is one node of a dev network's network.json (written by
// node/netgen).
type devNode struct {
	Name string `json:"name"`
	Role string `json:"role"`
	API  string `json:"api"`
}

// devNodes reads the dev network's node list; nil if there is none.
func devNodes() ([]devNode, string) {
	dir, _ := devDir()
	path := filepath.Join(dir, "network.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, path
	}
	var n struct {
		Nodes []devNode `json:"nodes"`
	}
	if json.Unmarshal(raw, &n) != nil {
		return nil, path
	}
	return n.Nodes, path
}

// resolve fills in the defaults of --node and --home.
func (a *app) resolve(cmd *cobra.Command) error {
	switch {
	case cmd.Flags().Changed("node"):
		a.nodeFrom, a.nodeForced = "--node", true
	case os.Getenv("DCEP_NODE") != "":
		a.node, a.nodeFrom, a.nodeForced = os.Getenv("DCEP_NODE"), "$DCEP_NODE", true
	default:
		a.node, a.nodeFrom = defaultNodeURL, "the default"
		if nodes, path := devNodes(); len(nodes) > 0 && nodes[0].API != "" {
			a.node, a.nodeFrom = nodes[0].API, path
		}
	}
	if !cmd.Flags().Changed("home") {
		if h := os.Getenv("DCEP_HOME"); h != "" {
			a.home = h
		} else {
			dir, _ := devDir()
			a.home = filepath.Join(dir, "keys")
		}
	}
	return nil
}

// client is the client of --node.
func (a *app) client() (*client.Client, error) {
	if a.cl == nil {
		cl, err := client.New(a.node, a.clientOptions()...)
		if err != nil {
			return nil, usage("--node %q: %v (from %s)", a.node, err, a.nodeFrom)
		}
		a.cl = cl
	}
	return a.cl, nil
}

// reads are the options of every ledger read: linearizable unless --stale.
func (a *app) reads() []client.ReadOption {
	if a.stale {
		return nil
	}
	return []client.ReadOption{client.Linearizable()}
}

// keys opens the keystore; it is never created here.
func (a *app) keys() (*keystore.Store, error) {
	if a.ks != nil {
		return a.ks, nil
	}
	if _, err := os.Stat(a.home); errors.Is(err, fs.ErrNotExist) {
		return nil, fail(exitRefused, codeNoKeystore, "no keystore at %s", a.home).
			hint("start the dev network, which writes the central bank's and the banks' keys there: go run ./cmd/dcepd dev").
			hint("or point --home (or $DCEP_HOME) at a keystore")
	}
	ks, err := a.openStore(a.home)
	if err != nil {
		return nil, err
	}
	a.ks = ks
	return ks, nil
}

// builder is the transaction builder of the node's network.
func (a *app) builder(ctx context.Context) (*client.Builder, error) {
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	return cl.Builder(ctx)
}

// bank checks that bankID is a bank of the network.
func (a *app) bank(ctx context.Context, bankID string) (*statepb.Bank, error) {
	if err := statepb.ValidateID("--bank", bankID); err != nil {
		return nil, err
	}
	b, err := a.builder(ctx)
	if err != nil {
		return nil, err
	}
	bk, err := b.Bank(bankID)
	if err != nil {
		var ids []string
		for _, x := range b.Genesis().GetBanks() {
			ids = append(ids, x.GetId())
		}
		return nil, fail(exitRefused, codeBankNotFound, "no bank %q in network %s", bankID, b.Genesis().GetChainId()).
			hint("its banks: %s", strings.Join(ids, ", "))
	}
	return bk, nil
}

// bankKey returns a bank's genesis record and its key from the keystore,
// checking that the key is the one in force on the network (genesis's
// unless rotated).
func (a *app) bankKey(ctx context.Context, bankID string) (*statepb.Bank, *keystore.Key, error) {
	bk, err := a.bank(ctx, bankID)
	if err != nil {
		return nil, nil, err
	}
	want, err := a.bankKeyNow(ctx, bk)
	if err != nil {
		return nil, nil, err
	}
	if tk, err := a.tokenKey(want, keystore.KindBank, bankID); err != nil || tk != nil {
		return bk, tk, err
	}
	ks, err := a.keys()
	if err != nil {
		return nil, nil, err
	}
	k, err := ks.Bank(bankID)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil, fail(exitRefused, codeKeyNotFound, "no key for bank %s in the keystore %s: only the bank can sign this", bankID, a.home).
			hint("point --home (or $DCEP_HOME) at a keystore that holds it")
	}
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(k.Public(), want) {
		return nil, nil, a.mismatch("bank "+bankID, k)
	}
	return bk, k, nil
}

// keysInForce is the node's answer to GetGenesis with the central bank's
// and the banks' keys in force (after any RotateKey), asked once.
func (a *app) keysInForce(ctx context.Context) (*nodepb.GetGenesisResponse, error) {
	if a.keysNow != nil {
		return a.keysNow, nil
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	g, err := cl.Genesis(ctx)
	if err != nil {
		return nil, err
	}
	a.keysNow = g
	return g, nil
}

// bankKeyNow is bank bk's key in force (its genesis key if the node does
// not say).
func (a *app) bankKeyNow(ctx context.Context, bk *statepb.Bank) ([]byte, error) {
	now, err := a.keysInForce(ctx)
	if err != nil {
		return nil, err
	}
	if k := now.GetBankKeys()[bk.GetId()]; len(k) > 0 {
		return k, nil
	}
	return bk.GetPublicKey(), nil
}

// centralBankKey returns the central bank's key, checked against the key
// in force on the network (genesis's unless rotated).
func (a *app) centralBankKey(ctx context.Context) (*keystore.Key, error) {
	b, err := a.builder(ctx)
	if err != nil {
		return nil, err
	}
	want := b.Genesis().GetCentralBank().GetPublicKey()
	if now, err := a.keysInForce(ctx); err != nil {
		return nil, err
	} else if len(now.GetCentralBankKey()) > 0 {
		want = now.GetCentralBankKey()
	}
	if tk, err := a.tokenKey(want, keystore.KindCentralBank, ""); err != nil || tk != nil {
		return tk, err
	}
	ks, err := a.keys()
	if err != nil {
		return nil, err
	}
	k, err := ks.CentralBank()
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, fail(exitRefused, codeKeyNotFound, "no central bank key in the keystore %s: only the central bank can issue and take back e-CNY", a.home).
			hint("point --home (or $DCEP_HOME) at the central bank's keystore")
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(k.Public(), want) {
		return nil, a.mismatch("the central bank", k)
	}
	return k, nil
}

// tokenKey returns the --key token key if it is the key want (the central
// bank's or bankID's, from genesis), nil if --key is unset or is another
// operator's key (the command then takes this one from the keystore: a
// return needs the bank's and the central bank's).
func (a *app) tokenKey(want []byte, kind keystore.Kind, bankID string) (*keystore.Key, error) {
	if a.keyURI == "" {
		return nil, nil
	}
	if a.token == nil {
		s, err := pkcs11key.Open(a.keyURI)
		if err != nil {
			return nil, fail(exitRefused, codeKeyNotFound, "--key: %v", err).
				hint("check the token label, object, module-path and PIN of the pkcs11: URI")
		}
		u, _ := pkcs11key.ParseURI(a.keyURI)
		a.token = &keystore.Key{Name: u.String(), Token: s}
	}
	if !bytes.Equal(a.token.Public(), want) {
		return nil, nil
	}
	k := *a.token
	k.Kind, k.BankID = kind, bankID
	return &k, nil
}

func (a *app) mismatch(what string, k *keystore.Key) *cliError {
	return fail(exitRefused, codeKeyMismatch, "the key %q in %s is not %s's key on the network at %s", k.Name, a.home, what, a.node).
		hint("the keystore and the node belong to different networks; check --home and --node (or $DCEP_DEV_DIR)")
}

// walletKey finds the key of a wallet the user holds, by key name or by
// wallet id.
func (a *app) walletKey(name string) (*keystore.Key, error) {
	ks, err := a.keys()
	if err != nil {
		return nil, err
	}
	if err := keystore.ValidateName(name); err != nil {
		return nil, usage("wallet name %q: names use a-z 0-9 . _ - and start with a letter or digit", name)
	}
	if k, err := ks.Get(name); err == nil && k.Kind == keystore.KindWallet {
		return k, nil
	} else if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return nil, err
	}
	k, err := ks.Wallet(name)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, a.unknownWallet(codeWalletNotFound, name, false)
	}
	return k, err
}

// wallet is a wallet named by the user, found in the keystore or on the
// ledger, with its ledger record.
type wallet struct {
	ID  string
	Key *keystore.Key // nil if the keystore has none
	Rec *statepb.WalletRecord
	// Freshness of Rec.
	At *nodeFreshness
}

type nodeFreshness struct {
	Node         string
	AppliedIndex uint64
	LedgerTimeMs int64
}

// lookupWallet finds NAME|ID: a keystore wallet key by name or wallet id,
// else a ledger wallet id; it reads the ledger record. code is the error
// code when it does not exist (WALLET_NOT_FOUND, PAYEE_NOT_FOUND).
func (a *app) lookupWallet(ctx context.Context, name, code string) (*wallet, error) {
	if err := statepb.ValidateID("wallet", name); err != nil {
		return nil, usage("wallet %q: names and ids use a-z 0-9 . _ - and start with a letter or digit", name)
	}
	w := &wallet{ID: name}
	if ks, err := a.keys(); err == nil {
		if k, err := ks.Get(name); err == nil && k.Kind == keystore.KindWallet {
			w.Key, w.ID = k, k.WalletID
		} else if k, err := ks.Wallet(name); err == nil {
			w.Key = k
		}
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	resp, err := cl.Wallet(ctx, w.ID, a.reads()...)
	if errors.Is(err, client.ErrNotFound) {
		if w.Key != nil {
			return nil, fail(exitRefused, code, "wallet %q (key %q in %s) is not on the ledger of the network at %s", w.ID, w.Key.Name, a.home, a.node).
				hint("was it created on another network? check --node and --home")
		}
		return nil, a.unknownWallet(code, name, true)
	}
	if err != nil {
		return nil, err
	}
	w.Rec = resp.GetWallet()
	fr := resp.GetFreshness()
	w.At = &nodeFreshness{Node: fr.GetNode(), AppliedIndex: fr.GetAppliedIndex(), LedgerTimeMs: fr.GetLedgerTimeMs()}
	return w, nil
}

// parseAmount reads a yuan amount flag.
func parseAmount(flag, s string) (uint64, error) {
	if s == "" {
		return 0, usage("--%s is required (yuan, e.g. 88.50)", flag)
	}
	fen, err := amount.Parse(s)
	var ae *amount.Error
	if errors.As(err, &ae) {
		code := codeInvalidAmount
		if errors.Is(err, amount.ErrZero) {
			code = statepb.Code_CODE_AMOUNT_ZERO.Short()
		}
		msg := fmt.Sprintf("--%s %q: %v", flag, s, ae.Err)
		if ae.Detail != "" {
			msg += ": " + ae.Detail
		}
		return 0, &cliError{Code: code, Msg: msg, Exit: exitUsage, Err: err}
	}
	return fen, err
}

// required checks that string flags were given.
func required(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if v, _ := cmd.Flags().GetString(n); v == "" {
			return usage("--%s is required", n).hint("example: %s", firstLine(cmd.Example))
		}
	}
	return nil
}

// txOpts turns --memo into a transaction option.
func txOpts(memo string) []client.TxOption {
	if memo == "" {
		return nil
	}
	return []client.TxOption{client.Memo(memo)}
}

// balanceAfter reads a wallet's balance after a write, for display; 0, false
// if the read fails (the write itself succeeded).
func (a *app) balanceAfter(ctx context.Context, walletID string) (uint64, bool) {
	cl, err := a.client()
	if err != nil {
		return 0, false
	}
	fen, err := cl.Balance(ctx, walletID)
	return fen, err == nil
}
