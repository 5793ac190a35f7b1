package state_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// More seeds and blocks for the property test than the quick default:
//
//	go test ./state -run TestProperty -property.seeds 50 -property.blocks 200
//
// or DCEP_PROPERTY_SEEDS=50 in the environment.
var (
	propertySeeds  = flag.Int("property.seeds", envInt("DCEP_PROPERTY_SEEDS", 3), "seeds TestProperty runs")
	propertyBlocks = flag.Int("property.blocks", envInt("DCEP_PROPERTY_BLOCKS", 40), "blocks per seed in TestProperty")
	propertySeed   = flag.Int64("property.seed", 0, "run TestProperty for this one seed only")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestProperty feeds random mixes of valid and invalid transactions to two
// independent stores, A one block per Apply call and B several blocks per
// call (now and then repeating blocks it already holds), and checks:
//
//   - the same results for every transaction, the same state hash after
//     every block, and byte-identical state at the end;
//   - the supply invariant on both after every Apply call;
//   - no capped wallet above its balance cap, no spending counter above its
//     cap.
func TestProperty(t *testing.T) {
	seeds := make([]int64, 0, *propertySeeds)
	if *propertySeed != 0 {
		seeds = append(seeds, *propertySeed)
	} else {
		for i := range *propertySeeds {
			seeds = append(seeds, int64(i+1))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runProperty(t, seed, *propertyBlocks)
		})
	}
}

func runProperty(t *testing.T, seed int64, blocks int) {
	g := newGen(t, seed)
	a := g.s
	b := g.n.Open(t)
	grouping := rand.New(rand.NewSource(seed * 7919))
	var pending []state.Block
	applied := 0 // blocks B holds
	codes := map[statepb.Code]int{}

	flushB := func() {
		batch := pending
		if applied > 0 && grouping.Intn(4) == 0 {
			batch = append([]state.Block{g.blocks[applied-1]}, batch...) // already applied: skipped
		}
		out, err := b.Apply(batch)
		if err != nil {
			t.Fatalf("B apply blocks %d..%d: %v", pending[0].Index, pending[len(pending)-1].Index, err)
		}
		for i, blk := range batch {
			res := out.Results[i]
			if blk.Index <= uint64(applied) {
				if res != nil {
					t.Fatalf("B re-applied block %d", blk.Index)
				}
				continue
			}
			want := g.results[blk.Index-1]
			if len(res) != len(want) {
				t.Fatalf("block %d: %d results on B, %d on A", blk.Index, len(res), len(want))
			}
			for j := range res {
				if !proto.Equal(res[j], want[j]) {
					t.Fatalf("block %d tx %d: B %v, A %v", blk.Index, j, res[j], want[j])
				}
				codes[res[j].GetCode()]++
			}
			ha, _ := a.StateHashAt(blk.Index)
			hb, err := b.StateHashAt(blk.Index)
			if err != nil || !bytes.Equal(ha, hb) {
				t.Fatalf("block %d: state hash A %x, B %x (%v)", blk.Index, ha, hb, err)
			}
		}
		applied += len(pending)
		pending = nil
		checkLedger(t, b, g)
	}

	for range blocks {
		pending = append(pending, g.block())
		checkLedger(t, a, g)
		if grouping.Intn(3) == 0 {
			flushB()
		}
	}
	if len(pending) > 0 {
		flushB()
	}
	if !bytes.Equal(a.Meta().GetStateHash(), b.Meta().GetStateHash()) {
		t.Fatalf("state hash A %x, B %x", a.Meta().GetStateHash(), b.Meta().GetStateHash())
	}
	da, err := state.DumpState(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.DumpState(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := changedKeys(da, db); len(d) > 0 || len(da) != len(db) {
		t.Fatalf("stores differ: %q", d)
	}
	if codes[statepb.Code_CODE_OK] == 0 || len(codes) < 10 {
		t.Fatalf("workload too narrow: %v", codes)
	}
	t.Logf("seed %d: %d blocks, outcomes %v", seed, blocks, codeCounts(codes))
}

func codeCounts(m map[statepb.Code]int) string {
	var buf bytes.Buffer
	for c := range statepb.Code_name {
		if n := m[statepb.Code(c)]; n > 0 {
			fmt.Fprintf(&buf, "%s=%d ", statepb.Code(c).Short(), n)
		}
	}
	return buf.String()
}

// checkLedger runs the supply audit and checks every capped wallet's
// balance and spending counters against its caps.
func checkLedger(t *testing.T, s *state.Store, g *gen) {
	t.Helper()
	statetest.Audit(t, s)
	ws, err := s.Wallets("", 0)
	if err != nil {
		t.Fatal(err)
	}
	tiers := state.DefaultTiers()
	for _, w := range ws {
		if w.GetKind() == statepb.WalletKind_WALLET_KIND_BANK_RESERVE || w.GetKind() == statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE || g.downgraded[w.GetId()] {
			continue
		}
		tier := tiers[w.GetTier()-1]
		l := w.GetLimits()
		over := func(what string, v, tierCap, own uint64) {
			c := tierCap
			if c == 0 || own != 0 && own < c {
				c = own
			}
			if c != 0 && v > c {
				t.Fatalf("wallet %s (tier %d): %s %d over its cap %d", w.GetId(), w.GetTier(), what, v, c)
			}
		}
		over("balance", w.GetBalanceFen(), tier.GetMaxBalanceFen(), l.GetMaxBalanceFen())
		over("spent today", w.GetSpentDayFen(), tier.GetMaxDailyFen(), l.GetMaxDailyFen())
		over("spent this year", w.GetSpentYearFen(), tier.GetMaxYearlyFen(), l.GetMaxYearlyFen())
	}
}
