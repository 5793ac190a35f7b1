// Package corpus plays the golden ledger corpus (state/testdata/corpus):
// scripts of blocks of transactions on a network of fixed keys, each
// with the code every transaction must get and the state hash after every
// block. The test (corpus_test.go) plays them with datadriven; the command
// state/internal/corpusplay plays them in a binary of its own, so that two
// builds can be compared (state/DESIGN.md, "Golden corpus").
//
// Script commands:
//
//	net name=<seed> [offline]      a fresh network and store; prints its genesis hash
//	block [at=+<ms>]               applies the transactions of its input, one per
//	                               line, as one block; prints each one's outcome and
//	                               the state hash, and fails unless the supply audit
//	                               holds
//	offpay <label> purse=<p> device=<d> to=<device> fen=<n> counter=<n> [prev=<label>]
//	                               a payer device's offline payment, for deposits
//
// A transaction line is `<label> <kind> key=value... [flag...]`
// (tx.go lists the kinds); `<label>:<i>` names output i of a transaction.
package corpus

import (
	"bufio"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// Arg is one key[=value] argument of a command.
type Arg struct{ Key, Val string }

// Player plays one script. Not safe for concurrent use.
type Player struct {
	tb     *tb
	n      *statetest.Net
	s      *state.Store
	c      *statetest.Chain
	ids    map[string][32]byte
	banks  map[string]string // wallet → bank
	pays   map[string]*statepb.DepositItem
	hashes map[string][32]byte // offline payment label → hash
	certs  map[string]*statepb.PurseCert
	// Seen counts every code and kind the script produced (coverage).
	Codes map[statepb.Code]int
	Kinds map[statepb.Kind]int
}

// NewPlayer returns a player with no network yet.
func NewPlayer() *Player {
	return &Player{tb: &tb{}, Codes: map[statepb.Code]int{}, Kinds: map[statepb.Kind]int{}}
}

// Close releases the stores and their directories.
func (p *Player) Close() {
	if p.s != nil {
		_ = p.s.Close()
	}
	for _, d := range p.tb.dirs {
		_ = os.RemoveAll(d)
	}
	p.tb.dirs, p.s = nil, nil
}

// Run runs one command and returns what it prints.
func (p *Player) Run(cmd string, args []Arg, input string) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			out, err = "", fmt.Errorf("%s", string(f))
		}
	}()
	switch cmd {
	case "net":
		return p.net(args)
	case "block":
		return p.block(args, input)
	case "offpay":
		return "", p.offpay(args)
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

func (p *Player) net(args []Arg) (string, error) {
	p.Close()
	n := statetest.NewNet(p.tb, get(args, "name"))
	if has(args, "offline") {
		n.EnableOffline(p.tb, nil)
	}
	dir := p.tb.TempDir()
	s, err := state.Open(dir, state.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", err
	}
	if err := s.InitGenesis(n.Genesis); err != nil {
		return "", err
	}
	p.n, p.s, p.c = n, s, statetest.NewChain(s)
	p.ids, p.banks = map[string][32]byte{}, map[string]string{}
	p.pays, p.hashes, p.certs = map[string]*statepb.DepositItem{}, map[string][32]byte{}, map[string]*statepb.PurseCert{}
	for _, b := range n.Genesis.GetBanks() {
		p.banks[b.GetReserveWalletId()], p.banks[b.GetGuaranteeWalletId()] = b.GetId(), b.GetId()
	}
	return fmt.Sprintf("genesis %x\n", n.Signer.GenesisHash), nil
}

func (p *Player) block(args []Arg, input string) (string, error) {
	if p.s == nil {
		return "", fmt.Errorf("block before net")
	}
	at := p.c.TimeMs + 1000
	if v := get(args, "at"); v != "" {
		at = p.c.TimeMs + int64(atoi(v))
	}
	var labels []string
	var txs [][]byte
	sc := bufio.NewScanner(strings.NewReader(input))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		label, raw, err := p.tx(line, at)
		if err != nil {
			return "", fmt.Errorf("%q: %w", line, err)
		}
		labels, txs = append(labels, label), append(txs, raw)
	}
	res := p.c.ApplyAt(p.tb, at, txs...)
	var b strings.Builder
	for i, r := range res {
		p.Codes[r.GetCode()]++
		if err := statepb.CheckRecorded(r.GetField(), r.GetArgs()); err != nil {
			return "", fmt.Errorf("%s: outcome breaks the Outcomes rule: %w", labels[i], err)
		}
		fmt.Fprintf(&b, "%s: %s\n", labels[i], describe(r))
	}
	if _, err := p.s.AuditSupply(); err != nil {
		return "", fmt.Errorf("after block %d: %w", p.c.Index, err)
	}
	fmt.Fprintf(&b, "hash %x\n", p.s.Meta().GetStateHash())
	return b.String(), nil
}

// describe is an outcome as the script states it: code, duplicate, field
// and the recorded args.
func describe(r *statepb.TxResult) string {
	s := r.GetCode().Short()
	if r.GetDuplicate() {
		s += " dup"
	}
	if f := r.GetField(); f != "" {
		s += " " + f
	}
	for _, a := range r.GetArgs() {
		s += " " + argString(a)
	}
	return s
}

func argString(a *statepb.Arg) string {
	switch v := a.GetValue().(type) {
	case *statepb.Arg_Int:
		return strconv.FormatInt(v.Int, 10)
	case *statepb.Arg_Uint:
		return strconv.FormatUint(v.Uint, 10)
	case *statepb.Arg_Fen:
		return "fen:" + strconv.FormatUint(v.Fen, 10)
	case *statepb.Arg_TimeMs:
		return "ms:" + strconv.FormatInt(v.TimeMs, 10)
	case *statepb.Arg_Str:
		return strconv.Quote(v.Str)
	case *statepb.Arg_Bytes:
		if len(v.Bytes) > 6 {
			return "x:" + hex.EncodeToString(v.Bytes[:6])
		}
		return "x:" + hex.EncodeToString(v.Bytes)
	case *statepb.Arg_Enum:
		return "enum:" + strconv.Itoa(int(v.Enum))
	case *statepb.Arg_Bool:
		return strconv.FormatBool(v.Bool)
	case *statepb.Arg_Kind:
		return "kind:" + statepb.Kind(v.Kind).String()
	}
	return "unsupported"
}

// Missing is the codes and kinds the scripts played so far did not reach.
func (p *Player) Missing() (codes []string, kinds []string) {
	for v, name := range statepb.Code_name {
		if c := statepb.Code(v); c != statepb.Code_CODE_UNSPECIFIED && p.Codes[c] == 0 {
			codes = append(codes, name)
		}
	}
	fields := (&statepb.Tx{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	for i := range fields.Len() {
		if k := statepb.Kind(fields.Get(i).Number()); p.Kinds[k] == 0 {
			kinds = append(kinds, k.String())
		}
	}
	sort.Strings(codes)
	sort.Strings(kinds)
	return codes, kinds
}

// key is the private key a name stands for: "cb" the central bank, else
// statetest's derivation ("bank/icbc", "wallet/alice", "device/phone").
func (p *Player) key(name string) ed25519.PrivateKey {
	if name == "cb" {
		return p.n.CentralBank()
	}
	return p.n.Key(name)
}

func get(args []Arg, key string) string {
	for _, a := range args {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func has(args []Arg, key string) bool {
	for _, a := range args {
		if a.Key == key {
			return true
		}
	}
	return false
}

func atoi(s string) int64 {
	v, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
	if err != nil {
		// An amount above MaxInt64 (to reach an overflow): callers take
		// it back as uint64.
		if u, uerr := strconv.ParseUint(s, 10, 64); uerr == nil {
			return int64(u)
		}
		panic(fatal(fmt.Sprintf("not a number: %q", s)))
	}
	return v
}

// ParseArgs splits "k=v k2 k3=v3" into args.
func ParseArgs(fields []string) []Arg {
	var out []Arg
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		out = append(out, Arg{k, v})
	}
	return out
}

// tb lets statetest's builders run outside a test: Fatal panics with the
// message, which Run turns into an error.
type tb struct {
	testing.TB
	dirs []string
}

type fatal string

func (*tb) Helper()                   {}
func (*tb) Fatal(a ...any)            { panic(fatal(fmt.Sprint(a...))) }
func (*tb) Fatalf(f string, a ...any) { panic(fatal(fmt.Sprintf(f, a...))) }
func (*tb) Cleanup(func())            {}
func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "dcep-corpus-")
	if err != nil {
		panic(fatal(err.Error()))
	}
	t.dirs = append(t.dirs, d)
	return d
}
