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
//	                               line, as one block; prints each one's outcome,
//	                               and those of the transactions the ledger wrote
//	                               itself (scheduled work, offline debt collection:
//	                               labelled @1, @2, ... in script order, with their
//	                               kind), in the order the block record holds them,
//	                               then the state hash; fails unless the supply
//	                               audit holds
//	offpay <label> purse=<p> device=<d> to=<device> fen=<n> counter=<n> [prev=<label>]
//	       [nonce=<tag>] [reqfen=<n>]
//	                               a payer device's offline payment (signed by
//	                               device's key), for deposits; nonce= signs
//	                               another request's nonce, reqfen= presents a
//	                               request of another amount than the signed one
//
// A transaction line is `<label> <kind> key=value... [flag...]`
// (tx.go lists the kinds); `<label>:<i>` names output i of a transaction,
// a submitted one or one the ledger wrote (@n). Ledger time is the
// script's: genesis time, then one second a block or at=; no clock.
package corpus

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

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
	kinds  map[string]statepb.Kind // label → kind of the body submitted
	ledger int                     // transactions the ledger wrote so far
	banks  map[string]string       // wallet → bank
	pays   map[string]*statepb.DepositItem
	hashes map[string][32]byte // offline payment label → hash
	certs  map[string]*statepb.PurseCert
	// Codes counts every code the scripts' outcomes carried, Kinds every
	// kind of a transaction that applied (OK), submitted or written by
	// the ledger (coverage).
	Codes map[statepb.Code]int
	Kinds map[statepb.Kind]int
}

// NewPlayer returns a player with no network yet.
func NewPlayer() *Player {
	return &Player{tb: &tb{}, Codes: map[statepb.Code]int{}, Kinds: map[statepb.Kind]int{}}
}

// Store is the store of the script's network (nil before net).
func (p *Player) Store() *state.Store { return p.s }

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
	p.ids, p.kinds, p.banks, p.ledger = map[string][32]byte{}, map[string]statepb.Kind{}, map[string]string{}, 0
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
	rec, err := p.s.BlockAt(p.c.Index)
	if err != nil {
		return "", fmt.Errorf("block record %d: %w", p.c.Index, err)
	}
	var b strings.Builder
	recorded, next := rec.GetResults(), 0
	// ledgerUpTo prints the block record's outcomes before k: those of
	// transactions the ledger wrote (the submitted ones are matched below).
	ledgerUpTo := func(k int) error {
		for ; next < k; next++ {
			if err := p.ledgerTx(&b, recorded[next]); err != nil {
				return err
			}
		}
		return nil
	}
	for i, r := range res {
		if k := indexOf(recorded, next, r); k >= 0 {
			if err := ledgerUpTo(k); err != nil {
				return "", err
			}
			next = k + 1
		}
		if err := p.count(labels[i], p.kinds[labels[i]], r); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s: %s\n", labels[i], describe(r))
	}
	if err := ledgerUpTo(len(recorded)); err != nil {
		return "", err
	}
	if _, err := p.s.AuditSupply(); err != nil {
		return "", fmt.Errorf("after block %d: %w", p.c.Index, err)
	}
	fmt.Fprintf(&b, "hash %x\n", p.s.Meta().GetStateHash())
	return b.String(), nil
}

// indexOf is the position at or after from in recorded of r's outcome,
// -1 if r was not recorded (stateless and authority rejections,
// duplicates).
func indexOf(recorded []*statepb.TxResult, from int, r *statepb.TxResult) int {
	if r.GetDuplicate() || len(r.GetTxId()) == 0 {
		return -1
	}
	for k := from; k < len(recorded); k++ {
		if bytes.Equal(recorded[k].GetTxId(), r.GetTxId()) {
			return k
		}
	}
	return -1
}

// ledgerTx prints the outcome of a transaction the ledger wrote itself,
// labelled @<n>, and counts it.
func (p *Player) ledgerTx(b *strings.Builder, r *statepb.TxResult) error {
	p.ledger++
	label := "@" + strconv.Itoa(p.ledger)
	tx, err := p.s.Tx(r.GetTxId())
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	var body statepb.Tx
	var stx statepb.SignedTx
	if err := proto.Unmarshal(tx.GetSignedTx(), &stx); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	if err := proto.Unmarshal(stx.GetBody(), &body); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	kind := statepb.KindOf(&body)
	p.ids[label] = [32]byte(r.GetTxId())
	if err := p.count(label, kind, r); err != nil {
		return err
	}
	fmt.Fprintf(b, "%s %s: %s\n", label, kind, describe(r))
	return nil
}

// count notes an outcome's code, and its kind if it applied, and refuses
// an outcome that breaks the Outcomes rule.
func (p *Player) count(label string, kind statepb.Kind, r *statepb.TxResult) error {
	if err := statepb.CheckRecorded(r.GetField(), r.GetArgs()); err != nil {
		return fmt.Errorf("%s: outcome breaks the Outcomes rule: %w", label, err)
	}
	p.Codes[r.GetCode()]++
	if r.GetCode() == statepb.Code_CODE_OK && !r.GetDuplicate() {
		p.Kinds[kind]++
	}
	return nil
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

// Missing is the codes and kinds the scripts played so far did not reach:
// every code of statepb.Code an outcome can carry, and every kind of the
// Tx oneof, none excepted, those only the ledger writes (expire_purse,
// pay_offline_claims, collect_offline_debt) included.
//
// The one code excluded, by rule: CODE_UNSPECIFIED, the enum's zero
// value. No outcome carries it: applyTx fills every result with OK or a
// rejection's code before it is returned or recorded, and a Code of 0 in
// a TxResult reads as "not set". Every other code has a rule that
// returns it (docs/errors.md), so a script must reach it.
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
