package client

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// outs makes unspent outputs with the given amounts; output i has tx id
// byte 0 = i, so ties are broken by listing order.
func outs(amounts ...uint64) []*nodepb.Unspent {
	u := make([]*nodepb.Unspent, len(amounts))
	for i, a := range amounts {
		id := make([]byte, statepb.TxIDBytes)
		id[0] = byte(i)
		id[1] = byte(i >> 8)
		u[i] = &nodepb.Unspent{Outpoint: &statepb.Outpoint{TxId: id, Index: uint32(i)}, AmountFen: a}
	}
	return u
}

func TestSelectInputs(t *testing.T) {
	many := make([]uint64, 40)
	for i := range many {
		many[i] = 100
	}
	for _, tc := range []struct {
		name   string
		amts   []uint64
		need   uint64
		picks  []int // indexes into amts, in selection order
		change uint64
		err    error
		count  int // OutputsNeeded for ErrTooFragmented
	}{
		{name: "exact single", amts: []uint64{500, 1000, 300}, need: 1000, picks: []int{1}},
		{name: "smallest single that covers", amts: []uint64{5000, 1200, 300, 1100}, need: 1000, picks: []int{3}, change: 100},
		{name: "single beats two small", amts: []uint64{600, 600, 5000}, need: 1000, picks: []int{2}, change: 4000},
		{name: "two needed, least change", amts: []uint64{700, 400, 350, 300, 50}, need: 1000, picks: []int{0, 3}, change: 0},
		{name: "two needed, second smallest that covers", amts: []uint64{700, 600, 500, 100}, need: 1100, picks: []int{0, 2}, change: 100},
		{name: "three", amts: []uint64{400, 400, 400, 10}, need: 1000, picks: []int{0, 1, 2}, change: 200},
		{name: "whole balance", amts: []uint64{1, 2, 3}, need: 6, picks: []int{2, 1, 0}},
		{name: "ties by outpoint", amts: []uint64{100, 100, 100}, need: 100, picks: []int{0}},
		{name: "zero outputs ignored", amts: []uint64{0, 5}, need: 5, picks: []int{1}},
		{name: "insufficient", amts: []uint64{100, 200}, need: 301, err: ErrInsufficientFunds},
		{name: "empty wallet", amts: nil, need: 1, err: ErrInsufficientFunds},
		{name: "exactly MaxInputs", amts: many, need: 3200, picks: seq(32)},
		{name: "too fragmented", amts: many, need: 3201, err: ErrTooFragmented, count: 33},
		{name: "huge outputs", amts: []uint64{math.MaxUint64 - 1, 1}, need: math.MaxUint64, picks: []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := outs(tc.amts...)
			sel, err := SelectInputs(u, tc.need)
			if tc.err != nil {
				var fe *FundsError
				if !errors.Is(err, tc.err) || !errors.As(err, &fe) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				if fe.OutputsNeeded != tc.count || fe.NeedFen != tc.need {
					t.Fatalf("FundsError %+v", fe)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(sel.Inputs) != len(tc.picks) {
				t.Fatalf("picked %d inputs, want %d", len(sel.Inputs), len(tc.picks))
			}
			var total uint64
			for i, p := range tc.picks {
				if sel.Inputs[i] != u[p].GetOutpoint() {
					t.Fatalf("input %d is not output %d", i, p)
				}
				total += tc.amts[p]
			}
			if sel.TotalFen != total || sel.ChangeFen != tc.change || total-tc.need != tc.change {
				t.Fatalf("total %d change %d, want %d %d", sel.TotalFen, sel.ChangeFen, total, tc.change)
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestSelectInputsErrors(t *testing.T) {
	if _, err := SelectInputs(outs(5), 0); statepb.CodeOf(err) != statepb.Code_CODE_AMOUNT_ZERO {
		t.Errorf("zero: %v", err)
	}
	_, err := SelectInputs(outs(10000, 5000), 20000)
	if err.Error() != "insufficient funds: balance ¥150.00, need ¥200.00" || statepb.CodeOf(err) != statepb.Code_CODE_INSUFFICIENT_INPUTS {
		t.Errorf("insufficient: %v (%s)", err, statepb.CodeOf(err))
	}
	_, err = SelectInputs(outs(make([]uint64, 40)...), 1)
	if !errors.Is(err, ErrInsufficientFunds) {
		t.Errorf("all-zero outputs: %v", err)
	}
	many := make([]uint64, 50)
	for i := range many {
		many[i] = 100
	}
	_, err = SelectInputs(outs(many...), 4000)
	if err.Error() != "too fragmented: 40 outputs needed to pay ¥40.00, max 32 — consolidate first" || statepb.CodeOf(err) != statepb.Code_CODE_TOO_MANY_INPUTS {
		t.Errorf("fragmented: %v", err)
	}
}

// TestSelectInputsProperties checks, on random wallets, that a selection
// covers the amount, has no duplicate, uses the fewest possible inputs, and
// does not depend on listing order.
func TestSelectInputsProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := r.IntN(60)
		amts := make([]uint64, n)
		var balance uint64
		for i := range amts {
			amts[i] = 1 + r.Uint64N(10000)
			balance += amts[i]
		}
		need := 1 + r.Uint64N(balance+100)
		u := outs(amts...)
		sel, err := SelectInputs(u, need)
		shuffled := append([]*nodepb.Unspent(nil), u...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		sel2, err2 := SelectInputs(shuffled, need)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("order changed the outcome: %v vs %v", err, err2)
		}
		// Fewest: the k largest.
		sorted := coins(u)
		var sum uint64
		k := 0
		for sum < need && k < len(sorted) {
			sum += sorted[k].fen
			k++
		}
		switch {
		case need > balance:
			if !errors.Is(err, ErrInsufficientFunds) {
				t.Fatalf("need %d > balance %d: %v", need, balance, err)
			}
			continue
		case k > statepb.MaxInputs:
			if !errors.Is(err, ErrTooFragmented) {
				t.Fatalf("k=%d: %v", k, err)
			}
			continue
		case err != nil:
			t.Fatal(err)
		}
		if len(sel.Inputs) != k {
			t.Fatalf("%d inputs, fewest is %d", len(sel.Inputs), k)
		}
		seen := map[string]bool{}
		var total uint64
		byOp := map[*statepb.Outpoint]uint64{}
		for _, x := range u {
			byOp[x.GetOutpoint()] = x.GetAmountFen()
		}
		for i, in := range sel.Inputs {
			key := string(in.GetTxId()) + string(rune(in.GetIndex()))
			if seen[key] {
				t.Fatal("duplicate input")
			}
			seen[key] = true
			total += byOp[in]
			if sel2.Inputs[i] != in {
				t.Fatal("order changed the selection")
			}
		}
		if total != sel.TotalFen || total < need || sel.ChangeFen != total-need {
			t.Fatalf("total %d, need %d, sel %+v", total, need, sel)
		}
	}
}

func TestSelectConsolidation(t *testing.T) {
	if SelectConsolidation(outs(5)) != nil || SelectConsolidation(nil) != nil {
		t.Fatal("nothing to merge")
	}
	amts := make([]uint64, 40)
	for i := range amts {
		amts[i] = uint64(1000 - i) // output 39 is the smallest
	}
	u := outs(amts...)
	sel := SelectConsolidation(u)
	if len(sel.Inputs) != statepb.MaxInputs {
		t.Fatalf("%d inputs", len(sel.Inputs))
	}
	var want uint64
	for i := 0; i < statepb.MaxInputs; i++ {
		if sel.Inputs[i] != u[39-i].GetOutpoint() {
			t.Fatalf("input %d is not the %d-th smallest", i, i)
		}
		want += amts[39-i]
	}
	if sel.TotalFen != want || sel.ChangeFen != 0 {
		t.Fatalf("%+v", sel)
	}
}

// TestSelectInputsDuplicates: an output listed twice (paging overlap) is
// spent once; outputs of one transaction are told apart by index.
func TestSelectInputsDuplicates(t *testing.T) {
	id := make([]byte, statepb.TxIDBytes)
	op := func(i uint32) *statepb.Outpoint { return &statepb.Outpoint{TxId: id, Index: i} }
	u := []*nodepb.Unspent{
		{Outpoint: op(1), AmountFen: 100},
		{Outpoint: op(0), AmountFen: 100},
		{Outpoint: op(1), AmountFen: 100},
	}
	if got := UnspentTotal(u); got != 200 {
		t.Fatalf("total %d", got)
	}
	sel, err := SelectInputs(u, 200)
	if err != nil || len(sel.Inputs) != 2 || sel.Inputs[0].GetIndex() != 0 || sel.Inputs[1].GetIndex() != 1 {
		t.Fatalf("%v, %v", sel, err)
	}
	if _, err := SelectInputs(u, 201); !errors.Is(err, ErrInsufficientFunds) {
		t.Fatalf("duplicate counted: %v", err)
	}
}
