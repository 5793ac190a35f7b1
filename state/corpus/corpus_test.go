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
// scripts must reach every code an outcome can carry (Player.Missing says
// which are excluded, and why: by rule, not by list) and apply every
// transaction kind at least once, those the ledger writes itself
// included.
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
		t.Errorf("no transaction of kind %s applied in the corpus", k)
	}
	for _, c := range codes {
		t.Errorf("code %s is in no corpus script", c)
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
