package state_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// Fuzz targets. Plain `go test` runs their seed corpora in
// testdata/fuzz/FuzzApply and testdata/fuzz/FuzzRestore (regenerate them
// with `go test ./state -run TestWriteFuzzCorpus -fuzz.writecorpus`);
// fuzz with
//
//	go test ./state -run '^$' -fuzz FuzzApply -fuzztime 3m
//	go test ./state -run '^$' -fuzz FuzzRestore -fuzztime 3m

func TestMain(m *testing.M) {
	flag.Parse()
	// Tests check every old value a write names against the batch;
	// benchmarks measure the ledger as nodes run it.
	state.CheckOldValues(!benchmarking())
	code := m.Run()
	fuzzShared.reset()
	os.Exit(code)
}

// benchmarking reports whether this process runs benchmarks.
func benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// fuzzing reports whether this process runs the fuzzing engine (not just
// the seed corpus).
func fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// fuzzShared is the fixture a fuzzing process reuses for a while: building
// one per input would make fuzzing fifty times slower. Seed runs (plain go
// test) build a fresh fixture per input, so they are reproducible.
var fuzzShared sharedFixture

type sharedFixture struct {
	mu   sync.Mutex
	f    *fixture
	dir  string
	uses int
}

const fuzzReuse = 200

// fuzzFixture returns the fixture for one fuzz input.
func fuzzFixture(t *testing.T) *fixture {
	t.Helper()
	if !fuzzing() {
		return newFixture(t)
	}
	fs := &fuzzShared
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.uses++
	if fs.f != nil && fs.uses <= fuzzReuse {
		return fs.f
	}
	fs.reset()
	dir, err := os.MkdirTemp("", "dcep-fuzz-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := state.Open(dir, state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	n := statetest.NewNet(t, "fixture")
	if err := s.InitGenesis(n.Genesis); err != nil {
		t.Fatal(err)
	}
	fs.f, fs.dir, fs.uses = fixtureOn(t, n, s), dir, 1
	return fs.f
}

func (fs *sharedFixture) reset() {
	if fs.f != nil {
		_ = fs.f.s.Close()
		_ = os.RemoveAll(fs.dir)
		fs.f = nil
	}
}

// fuzzSigners are the key sets FuzzApply signs a body with: the second
// argument modulo len picks one; 0 means the first argument is a whole
// SignedTx and is submitted as it is.
var fuzzSigners = []func(f *fixture) []ed25519.PrivateKey{
	func(f *fixture) []ed25519.PrivateKey { return nil },
	func(f *fixture) []ed25519.PrivateKey { return []ed25519.PrivateKey{f.n.CentralBank()} },
	func(f *fixture) []ed25519.PrivateKey { return []ed25519.PrivateKey{f.n.Bank("icbc")} },
	func(f *fixture) []ed25519.PrivateKey {
		return []ed25519.PrivateKey{f.n.Bank("icbc"), f.n.CentralBank()}
	},
	func(f *fixture) []ed25519.PrivateKey { return []ed25519.PrivateKey{f.n.Wallet("alice")} },
	func(f *fixture) []ed25519.PrivateKey { return []ed25519.PrivateKey{f.n.Wallet("carol")} },
	func(f *fixture) []ed25519.PrivateKey { return []ed25519.PrivateKey{f.n.Bank("boc")} },
	func(f *fixture) []ed25519.PrivateKey {
		return []ed25519.PrivateKey{f.n.CentralBank(), f.n.Bank("icbc")}
	},
	func(f *fixture) []ed25519.PrivateKey { return []ed25519.PrivateKey{f.n.Wallet("bob")} },
}

// statelessCode: decided without state, so the same bytes always get it,
// and never recorded.
// (AMOUNT_OVERFLOW is also a ledger rule: an issue past the supply's range.)
func statelessCode(c statepb.Code) bool {
	return c >= statepb.Code_CODE_TX_TOO_LARGE && c <= statepb.Code_CODE_SIGNATURE_INVALID && c != statepb.Code_CODE_AMOUNT_OVERFLOW
}

// FuzzApply decodes and applies arbitrary bytes, either as a whole SignedTx
// or as a body the harness signs with real keys (so the ledger rules are
// reached, not only decoding), against the funded fixture, then again in a
// block between valid transactions. It checks that Apply never fails or
// panics, the supply invariant holds, a rejection changes nothing but its
// recorded outcome, and a resubmission gets the first outcome.
func FuzzApply(f *testing.F) {
	f.Fuzz(func(t *testing.T, tx []byte, signer uint16) {
		fx := fuzzFixture(t)
		raw := tx
		if keys := fuzzSigners[int(signer)%len(fuzzSigners)](fx); len(keys) > 0 {
			raw = fx.n.SignRaw(t, tx, keys...)
		}
		// A fuzzing process reuses its fixture, so an earlier input may have
		// recorded the same body (id) already.
		id := txIDOf(raw)
		existed := false
		if id != nil {
			_, err := fx.s.Tx(id)
			existed = err == nil
		}
		before := snapshotLedger(t, fx.s)
		r := fx.c.Apply(t, raw)[0] // fails the test if Apply returns an error
		after := snapshotLedger(t, fx.s)
		_, err := fx.s.Tx(r.GetTxId())
		recorded := len(r.GetTxId()) > 0 && err == nil && !existed // by this submission
		switch {
		case r.GetCode() == statepb.Code_CODE_UNSPECIFIED:
			t.Fatalf("no code: %v", r)
		case r.GetDuplicate():
			if !existed {
				t.Fatalf("duplicate of nothing recorded: %v", r)
			}
			wantUnchanged(t, before, after, r.GetTxId(), false)
		case r.GetCode() == statepb.Code_CODE_OK:
			if !recorded {
				t.Fatal("applied transaction not recorded")
			}
		default:
			if recorded && (statelessCode(r.GetCode()) || r.GetCode() == statepb.Code_CODE_SIGNER_UNAUTHORIZED) {
				t.Fatalf("%s recorded", r.GetCode().Short())
			}
			wantUnchanged(t, before, after, r.GetTxId(), recorded)
		}

		// Again, between always-valid transactions.
		issue := fx.n.Issue(t, "abc", yuan)
		reg := fx.n.Register(t, "abc", fmt.Sprintf("fz%d", fx.c.Index), personal, tier4, "")
		res := fx.c.Apply(t, issue, raw, reg)
		statetest.Audit(t, fx.s)
		wantCode(t, res[0], statepb.Code_CODE_OK)
		again := res[1]
		switch {
		case recorded || r.GetDuplicate():
			if !again.GetDuplicate() || again.GetCode() != r.GetCode() || again.GetLogIndex() != r.GetLogIndex() && !r.GetDuplicate() {
				t.Fatalf("resubmission: %v, first %v", again, r)
			}
		case statelessCode(r.GetCode()):
			if again.GetCode() != r.GetCode() || again.GetMessage() != r.GetMessage() {
				t.Fatalf("same bytes, different outcome: %v then %v", r, again)
			}
		}
	})
}

// FuzzRestore feeds arbitrary bytes to Restore on a store with state: it
// never panics, and either refuses with ErrSnapshotFormat,
// ErrGenesisMismatch or ErrSnapshotUnverified leaving the state exactly as it was, or (a stream that
// passed every check) installs a state whose supply audit holds.
func FuzzRestore(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte) {
		fx := fuzzFixture(t)
		before := dump(t, fx.s)
		meta := fx.s.Meta()
		err := fx.s.Restore(bytes.NewReader(stream))
		switch {
		case err == nil:
			statetest.Audit(t, fx.s)
			fx.c = statetest.NewChain(fx.s)
		case errors.Is(err, state.ErrSnapshotFormat) || errors.Is(err, state.ErrGenesisMismatch) || errors.Is(err, state.ErrSnapshotUnverified):
			if d := changedKeys(before, dump(t, fx.s)); len(d) > 0 || !proto.Equal(meta, fx.s.Meta()) {
				t.Fatalf("refused restore (%v) changed state: %q", err, d)
			}
		default:
			t.Fatalf("Restore: unexpected error %v", err)
		}
		if _, err := os.Stat(filepath.Join(fx.s.Dir(), "db.restore")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("restore directory left behind: %v", err)
		}
		wantCode(t, fx.c.Apply(t, fx.n.Issue(t, "abc", yuan))[0], statepb.Code_CODE_OK)
	})
}

var writeCorpus = flag.Bool("fuzz.writecorpus", false, "rewrite the seed corpora of FuzzApply and FuzzRestore in testdata/fuzz")

// TestWriteFuzzCorpus regenerates the seed corpora (only with
// -fuzz.writecorpus): a valid transaction of every kind against the
// fixture, signed by the harness or whole, and damaged ones; a snapshot of
// the fixture and damaged ones.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -fuzz.writecorpus to rewrite testdata/fuzz")
	}
	f := newFixture(t)
	n := f.n
	body := func(b *statepb.Tx) []byte {
		b.Version, b.ChainId = statepb.TxVersion, n.Genesis.GetChainId()
		if b.Nonce == 0 {
			b.Nonce = 1_000_000 + uint64(len(b.String()))
		}
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	const (
		whole = iota
		cb
		icbc
		icbcCB
		alice
		carol
		boc
		cbICBC
		bob
	)
	type seed struct {
		name   string
		tx     []byte
		signer uint16
	}
	pay := body(statetest.TransferBody("alice", ins(f.aliceA, f.aliceB), statetest.Pay("bob", 100*yuan), statetest.Pay("shop", 250*yuan)))
	sub := n.RegisterBody("icbc", "alice.jd", statepb.WalletKind_WALLET_KIND_SUB_WALLET, tier4)
	sub.GetRegisterWallet().ParentWalletId = "alice"
	signedPay := n.SignRaw(t, pay, n.Wallet("alice"))
	seeds := []seed{
		{"issue", body(statetest.IssueBody("icbc", 5000*yuan)), cb},
		{"return", body(statetest.ReturnBody("icbc", ins(f.icbcReserve), 1000*yuan)), icbcCB},
		{"exchange", body(statetest.ExchangeBody("icbc", ins(f.icbcReserve), "bob", 800*yuan)), icbc},
		{"redeem", body(statetest.RedeemBody("alice", ins(f.aliceA), 1200*yuan)), alice},
		{"transfer", pay, alice},
		{"transfer-carol", body(statetest.TransferBody("carol", ins(f.carol), statetest.Pay("shop", 9000*yuan), statetest.Pay("bob", yuan))), carol},
		{"register", body(n.RegisterBody("icbc", "dora", personal, 3)), icbc},
		{"register-sub", body(sub), icbc},
		{"update", body(statetest.UpdateBody("alice", 2, "320500", "5411", &statepb.Limits{MaxDailyFen: 3000 * yuan})), icbc},
		{"rotate", body(statetest.RotateBody("alice", n.Pub("alice/new"))), icbc},
		{"freeze", body(statetest.FreezeBody("bob", "court order")), icbc},
		{"unfreeze", body(statetest.UnfreezeBody("frozen", "cleared")), icbc},
		{"close", body(statetest.CloseBody("bob")), icbc},
		{"add-member", body(n.AddMemberBody("hsbc", statepb.NodeRole_NODE_ROLE_VOTER)), cb},
		{"remove-member", body(statetest.RemoveMemberBody("regulator")), cb},
		{"whole-transfer", signedPay, whole},
		{"whole-truncated", signedPay[:len(signedPay)/2], whole},
		{"whole-bitflip", flipByte(signedPay, 40), whole},
		{"whole-garbage", []byte("\xff\xfe\x00garbage\x12\x34"), whole},
		{"empty", nil, whole},
		{"unauthorized", pay, bob},
		{"return-wrong-order", body(statetest.ReturnBody("icbc", ins(f.icbcReserve), 1000*yuan)), cbICBC},
		{"unknown-field", protowire.AppendVarint(protowire.AppendTag(pay, 99, protowire.VarintType), 1), alice},
		{"version-2", body(&statepb.Tx{Version: 2, Kind: statetest.IssueBody("icbc", 1).Kind}), cb},
		{"other-chain", func() []byte { b := statetest.IssueBody("icbc", 1); b.ChainId = "x"; return body(b) }(), cb},
		{"payees-overflow", body(statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", math.MaxUint64), statetest.Pay("shop", 2))), alice},
		{"double-input", body(statetest.TransferBody("alice", ins(f.aliceA, f.aliceA), statetest.Pay("bob", 1))), alice},
		{"foreign-input", body(statetest.TransferBody("alice", ins(f.carol), statetest.Pay("bob", 1))), alice},
		{"over-daily", body(statetest.TransferBody("alice", ins(f.aliceA, f.aliceB), statetest.Pay("bob", 2000*yuan), statetest.Pay("shop", 1))), alice},
		{"issue-overflow", body(statetest.IssueBody("icbc", math.MaxUint64)), cb},
	}
	// Each valid seed must apply on a fresh fixture, as FuzzApply gets it.
	for _, s := range seeds[:16] {
		fx := newFixture(t)
		raw := s.tx
		if keys := fuzzSigners[s.signer](fx); len(keys) > 0 {
			raw = fx.n.SignRaw(t, s.tx, keys...)
		}
		if r := fx.c.Apply(t, raw)[0]; r.GetCode() != statepb.Code_CODE_OK {
			t.Fatalf("seed %s: %s %s", s.name, r.GetCode().Short(), r.GetMessage())
		}
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	writeSeeds(t, dir)
	for _, s := range seeds {
		writeSeed(t, dir, s.name, fmt.Sprintf("[]byte(%q)\nuint16(%d)\n", s.tx, s.signer))
	}
	snap := snapshotBytes(t, f.s)
	dir = filepath.Join("testdata", "fuzz", "FuzzRestore")
	writeSeeds(t, dir)
	for name, b := range map[string][]byte{
		"snapshot":           snap,
		"snapshot-truncated": snap[:len(snap)*2/3],
		"snapshot-flipped":   flipByte(snap, len(snap)/2),
		"snapshot-no-sum":    snap[:len(snap)-32],
		"header-only":        snap[:200],
		"magic":              []byte("DCEPSNAP\x00\x00\x00\x01"),
	} {
		writeSeed(t, dir, name, fmt.Sprintf("[]byte(%q)\n", b))
	}
}

func flipByte(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i%len(out)] ^= 0x55
	return out
}

// writeSeeds empties a corpus directory of seeds this test wrote.
func writeSeeds(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	for _, p := range old {
		_ = os.Remove(p)
	}
}

func writeSeed(t *testing.T, dir, name, values string) {
	name = "seed-" + strings.ReplaceAll(name, " ", "-")
	if err := os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n"+values), 0o644); err != nil {
		t.Fatal(err)
	}
}
