package corpus_test

import (
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/dcep/dcep/state/corpus"
)

// TestCorpus plays every script of the golden ledger corpus
// (state/testdata/corpus) and compares each block's outcomes and state
// hash with what the script says. A changed hash fails it. After a
// deliberate change of the rules or of the state's encoding, regenerate
// the expected output with
//
//	go test ./state/corpus -run TestCorpus -rewrite
//
// and review the diff: every changed hash is a change every node must
// make at once.
//
// Every outcome must pass statepb.CheckRecorded (the player refuses one
// that carries an unsupported or untyped argument), and together the
// scripts must reach every transaction kind and every code but those
// listed in notYetInCorpus.
func TestCorpus(t *testing.T) {
	p := corpus.NewPlayer()
	defer p.Close()
	datadriven.Walk(t, "../testdata/corpus", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := p.Run(d.Cmd, Args(d.CmdArgs), d.Input)
			if err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
			return out
		})
	})
	codes, kinds := p.Missing()
	for _, k := range kinds {
		if !kindsNotYetInCorpus[k] {
			t.Errorf("no transaction of kind %s in the corpus", k)
		}
	}
	missing := map[string]bool{}
	for _, c := range codes {
		missing[c] = true
		if !notYetInCorpus[c] {
			t.Errorf("code %s is in no corpus script", c)
		}
	}
	for c := range notYetInCorpus {
		if !missing[c] {
			t.Errorf("code %s is in the corpus now: take it off notYetInCorpus", c)
		}
	}
}

// Args converts datadriven's arguments to the player's: a value list is
// joined with commas.
func Args(in []datadriven.CmdArg) []corpus.Arg {
	out := make([]corpus.Arg, len(in))
	for i, a := range in {
		out[i] = corpus.Arg{Key: a.Key, Val: strings.Join(a.Vals, ",")}
	}
	return out
}

// notYetInCorpus: codes the scripts do not reach yet (each has its case in
// state/codes_test.go, offline_codes_test.go or programmable_codes_test.go).
var notYetInCorpus = map[string]bool{
	"CODE_GUARANTEE_SHORT":           true,
	"CODE_CAMPAIGN_TOO_LATE":         true,
	"CODE_CERT_EXPIRED":              true,
	"CODE_DEVICE_REVOKED":            true,
	"CODE_DRAW_TOO_LATE":             true,
	"CODE_INPUT_RESTRICTED":          true,
	"CODE_KIND_MISSING":              true,
	"CODE_LIMIT_DAILY":               true,
	"CODE_LIMIT_PAYMENT":             true,
	"CODE_LIMIT_YEARLY":              true,
	"CODE_MEMBER_LAST_VOTER":         true,
	"CODE_PAYEE_WRONG_BANK":          true,
	"CODE_PAYMENT_AMOUNT_MISMATCH":   true,
	"CODE_PAYMENT_NONCE_MISMATCH":    true,
	"CODE_PAYMENT_NOT_FOUND":         true,
	"CODE_PAYMENT_OVER_COUNT":        true,
	"CODE_PAYMENT_SIGNATURE_INVALID": true,
	"CODE_PAYMENT_WRONG_PAYEE":       true,
	"CODE_RED_PACKET_MIXED":          true,
	"CODE_RED_PACKET_OUTSIDE_WINDOW": true,
	"CODE_REFUND_TOO_MANY":           true,
	"CODE_SIGNATURE_MALFORMED":       true,
	"CODE_SUBWALLET_EXPIRED":         true,
	"CODE_SUBWALLET_LIMIT_DAILY":     true,
	"CODE_TOO_MANY_INPUTS":           true,
	"CODE_TOO_MANY_OUTPUTS":          true,
	"CODE_TX_TOO_LARGE":              true,
	"CODE_TX_UNKNOWN_FIELDS":         true,
}

// kindsNotYetInCorpus: transaction kinds the scripts do not reach yet.
var kindsNotYetInCorpus = map[string]bool{
	"collect_offline_debt": true,
	"pay_offline_claims":   true,
}
