package state_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/corpus"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestHashedRecordsHoldNoText: no text formatted for people inside
// anything hashed (state/DESIGN.md, "Outcomes"). It plays the golden
// corpus, which applies every kind and reaches every code, and after every
// block reads every hashed record: each string in it must be an id, a
// field path (TxResult.field), or words some signer put there (a string of
// the genesis or of a signed transaction's body held in the state: a
// memo, a bank's freeze reason, a campaign title). What the ledger itself
// says for people (a ledger rule's reason, a purse as a counterparty, a
// date, a rejection's message) is rendered when read, so the fields that
// hold it are empty as stored.
func TestHashedRecordsHoldNoText(t *testing.T) {
	scripts, err := filepath.Glob("testdata/corpus/*.txt")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no corpus scripts: %v", err)
	}
	for _, path := range scripts {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p := corpus.NewPlayer()
			defer p.Close()
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				args := make([]corpus.Arg, len(d.CmdArgs))
				for i, a := range d.CmdArgs {
					args[i] = corpus.Arg{Key: a.Key, Val: strings.Join(a.Vals, ",")}
				}
				_, err := p.Run(d.Cmd, args, d.Input)
				if err != nil {
					t.Fatalf("%s: %v", d.Pos, err)
				}
				if d.Cmd == "block" {
					if err := noTextStored(p.Store()); err != nil {
						t.Fatalf("%s: %v", d.Pos, err)
					}
				}
				return d.Expected // TestCorpus compares the outcomes and hashes
			})
		})
	}
}

// renderedWhenRead are string fields the ledger fills for people when a
// query reads the record; as stored they are empty.
var renderedWhenRead = map[protoreflect.FullName]bool{
	"dcep.state.v1.TxResult.message":  true,
	"dcep.state.v1.BankDay.date":      true,
	"dcep.state.v1.Revocation.reason": true,
}

// noTextStored checks every hashed record of s.
func noTextStored(s *state.Store) error {
	kvs, err := state.DumpState(s)
	if err != nil {
		return err
	}
	signed := signersWords(s, kvs)
	for _, kv := range kvs {
		m := recordType(kv.Key)
		if m == nil {
			continue
		}
		if err := proto.Unmarshal([]byte(kv.Value), m); err != nil {
			return fmt.Errorf("record %q: %v", kv.Key, err)
		}
		var bad error
		eachString(m.ProtoReflect(), func(fd protoreflect.FieldDescriptor, v string) {
			name := fd.FullName()
			switch {
			case bad != nil || v == "":
			case renderedWhenRead[name]:
				bad = fmt.Errorf("record %q: %s holds %q: text for people, to be rendered when read", kv.Key, name, v)
			case name == "dcep.state.v1.TxResult.field":
				if !statepb.IsFieldPath(v) {
					bad = fmt.Errorf("record %q: %s %q is not a field path", kv.Key, name, v)
				}
			case statepb.ValidateID("", v) == nil || signed[v]:
			default:
				bad = fmt.Errorf("record %q: %s holds %q, which is neither an id nor words any signer wrote", kv.Key, name, v)
			}
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}

// signersWords is every string of the genesis and of the bodies of the
// signed transactions the state holds (those the ledger wrote itself carry
// no signature and do not count).
func signersWords(s *state.Store, kvs []state.KV) map[string]bool {
	out := map[string]bool{}
	add := func(fd protoreflect.FieldDescriptor, v string) { out[v] = true }
	eachString(s.Genesis().ProtoReflect(), add)
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, "t:") {
			continue
		}
		var rec statepb.TxRecord
		var stx statepb.SignedTx
		var body statepb.Tx
		if proto.Unmarshal([]byte(kv.Value), &rec) != nil || proto.Unmarshal(rec.GetSignedTx(), &stx) != nil ||
			len(stx.GetSignatures()) == 0 || proto.Unmarshal(stx.GetBody(), &body) != nil {
			continue
		}
		eachString(body.ProtoReflect(), add)
	}
	return out
}

// recordType is an empty message of the type stored under key, nil for a
// key that is not hashed or holds no protobuf message (raw numbers, hashes,
// job payloads, the genesis: the network's own configuration).
func recordType(key string) proto.Message {
	for prefix, m := range map[string]func() proto.Message{
		"m:supply": func() proto.Message { return &statepb.Supply{} },
		"b:":       func() proto.Message { return &statepb.BankRecord{} },
		"w:":       func() proto.Message { return &statepb.WalletRecord{} },
		"u:":       func() proto.Message { return &statepb.OutputRecord{} },
		"t:":       func() proto.Message { return &statepb.TxRecord{} },
		"h:":       func() proto.Message { return &statepb.HistoryEntry{} },
		"n:":       func() proto.Message { return &statepb.Node{} },
		"r:":       func() proto.Message { return &statepb.BlockRecord{} },
		"l:":       func() proto.Message { return &statepb.LargePayment{} },
		"d:":       func() proto.Message { return &statepb.BankDay{} },
		"f:":       func() proto.Message { return &statepb.FrozenWallet{} },
		"o:p":      func() proto.Message { return &statepb.PurseRecord{} },
		"o:h":      func() proto.Message { return &statepb.Settlement{} },
		"o:i":      func() proto.Message { return &statepb.Incident{} },
		"o:r":      func() proto.Message { return &statepb.Revocation{} },
		"o:v":      func() proto.Message { return &statepb.Revocation{} },
		"o:b":      func() proto.Message { return &statepb.OfflineDebt{} },
		"o:t":      func() proto.Message { return &statepb.OfflineTxRecord{} },
		"o:c":      func() proto.Message { return &statepb.OfflineClaim{} },
		"o:k":      func() proto.Message { return &statepb.BankOfflineRecord{} },
		"c:":       func() proto.Message { return &statepb.CampaignRecord{} },
		"x:":       func() proto.Message { return &statepb.SubWalletRecord{} },
		"y:":       func() proto.Message { return &statepb.PaymentRecord{} },
	} {
		if strings.HasPrefix(key, prefix) {
			return m()
		}
	}
	if strings.HasPrefix(key, "e:") {
		// e:<campaign>\0<table>...: enrolments and winners are messages.
		_, rest, _ := strings.Cut(key, "\x00")
		switch {
		case strings.HasPrefix(rest, "n"):
			return &statepb.EnrolmentRecord{}
		case strings.HasPrefix(rest, "k"):
			return &statepb.WinnerRecord{}
		}
	}
	return nil
}

// eachString calls fn with every set string field of m, nested messages
// and lists included.
func eachString(m protoreflect.Message, fn func(protoreflect.FieldDescriptor, string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		visit := func(v protoreflect.Value) {
			switch fd.Kind() {
			case protoreflect.StringKind:
				fn(fd, v.String())
			case protoreflect.MessageKind, protoreflect.GroupKind:
				eachString(v.Message(), fn)
			}
		}
		switch {
		case fd.IsList():
			for i := range v.List().Len() {
				visit(v.List().Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(mv)
				return true
			})
		default:
			visit(v)
		}
		return true
	})
}

// TestLedgerReasonsReadAsBefore: what the ledger's own rules say for
// people is stored as a code and ids and reads as it always did: an
// offline double spend freezes the payer ("offline double spend: incident
// 1 (purse …)", in the wallet and the frozen index) and revokes the
// device ("offline double spend: incident 1"); money back from a closed
// purse names the purse as counterparty; a bank day reads as a date.
// Unfreezing by the bank replaces the ledger's reason with the bank's.
func TestLedgerReasonsReadAsBefore(t *testing.T) {
	f := newOffFix(t)
	d := newDoubleSpend(t, f, 0)
	purse := purseIDOf(t, d.cert)
	mustAllOK(t, f.c.Apply(t, f.n.Deposit(t, "bob-phone", "bob", d.toBob), f.n.Deposit(t, "carol-phone", "carol", d.toCar)))
	frozeWith := fmt.Sprintf("offline double spend: incident 1 (purse %x)", purse[:6])

	w, err := f.s.Wallet("alice")
	rule := w.GetStatusLedgerReason()
	if err != nil || w.GetStatusReason() != frozeWith || rule.GetCode() != statepb.LedgerReasonCode_LEDGER_REASON_OFFLINE_DOUBLE_SPEND ||
		rule.GetIncidentId() != 1 || !bytes.Equal(rule.GetPurseId(), purse) {
		t.Fatalf("alice: %v %v", w, err)
	}
	if ws, _ := f.s.Wallets("", 0); !hasReason(ws, "alice", frozeWith) {
		t.Fatalf("Wallets: %v", ws)
	}
	fr, err := f.s.FrozenWallets("", "", 0)
	if err != nil || len(fr) != 1 || fr[0].Record.GetReason() != frozeWith || fr[0].Record.GetSource() != "offline_double_spend" ||
		fr[0].Record.GetLedgerReason().GetIncidentId() != 1 {
		t.Fatalf("frozen: %v %v", fr, err)
	}
	revs, err := f.s.Revocations(0, 0)
	if err != nil || len(revs) != 1 || revs[0].GetReason() != "offline double spend: incident 1" {
		t.Fatalf("revocations: %v %v", revs, err)
	}
	if r, err := f.s.DeviceRevocation(f.n.DevicePub("alice-phone")); err != nil || r.GetReason() != "offline double spend: incident 1" {
		t.Fatalf("device revocation: %v %v", r, err)
	}
	days, err := f.s.BankDays(0, 1<<40, "icbc")
	if err != nil || len(days) == 0 || days[0].GetDate() != "2026-12-01" {
		t.Fatalf("bank days: %v %v", days, err)
	}

	// A purse closed with money left: the history names it.
	cert := f.purse(t, "p2", "bob", "bob-phone2", 50*yuan, 50*yuan)
	f.c.MustOK(t, f.n.ClosePurse(t, "bob-phone2", purseIDOf(t, cert), 0))
	hist, _, err := f.s.History("bob", 0, 1)
	if want := fmt.Sprintf("offline purse %x", purseIDOf(t, cert)[:6]); err != nil || len(hist) != 1 || hist[0].GetCounterparty() != want ||
		hist[0].GetKind() != "close_purse" || hist[0].GetInFen() != 50*yuan {
		t.Fatalf("bob's history: %v %v, want counterparty %q", hist, err, want)
	}

	// The bank's words replace the rule's.
	f.c.MustOK(t, f.n.Sign(t, statetest.UnfreezeBody("alice", "cleared by icbc"), f.n.Bank("icbc")))
	if w, _ := f.s.Wallet("alice"); w.GetStatusReason() != "cleared by icbc" || w.GetStatusLedgerReason() != nil {
		t.Fatalf("alice unfrozen: %v", w)
	}
	if fr, _ := f.s.FrozenWallets("", "", 0); len(fr) != 0 {
		t.Fatalf("frozen after unfreeze: %v", fr)
	}
}

func hasReason(ws []*statepb.WalletRecord, id, reason string) bool {
	for _, w := range ws {
		if w.GetId() == id {
			return w.GetStatusReason() == reason
		}
	}
	return false
}
