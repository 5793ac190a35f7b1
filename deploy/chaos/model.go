package chaos

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/dcep/dcep/state/statepb"
)

// The model of one cell, for porcupine and for the replay in log order: the
// cell's outputs (unspent and spent), and the tier-4 wallets' spending
// counters. A transfer's outcome is checked, not predicted: OK must be
// possible (inputs unspent and the payer's, enough money, within every
// limit) and is then applied; a refusal must be justified by its code's
// condition and changes nothing. Checking rather than predicting keeps the
// model true if the ledger reorders its checks, and still catches every lost,
// doubled or invented effect, since every OK moves money the model tracks.

// outKey names an output.
type outKey struct {
	tx  [32]byte
	idx uint32
}

func (k outKey) String() string { return fmt.Sprintf("%x:%d", k.tx[:4], k.idx) }

type outRec struct {
	wallet uint8
	amount uint64
	spent  bool
}

// counters are a wallet's spending counters (Beijing-time day and year).
type counters struct {
	day      int64
	dayUsed  uint64
	year     int32
	yearUsed uint64
}

// cellState is immutable: Step returns a new one.
type cellState struct {
	outs map[outKey]outRec
	ctr  [cellWallets]counters
	key  string // canonical form, for Equal and Hash
}

// caps are a tier's limits (zero: none), from the genesis.
type caps struct{ balance, payment, daily, yearly uint64 }

// modelIn is an operation's input; modelOut its output.
type modelIn struct {
	kind     opKind
	id       [32]byte
	from, to uint8
	inputs   []outKey
	amount   uint64
	timeMs   int64 // ledger time of the deciding block
	wallet   uint8 // read
}

type modelOut struct {
	code    statepb.Code // transfer (CODE_UNSPECIFIED never appears: undecided ops are left out)
	balance uint64       // read
}

// cellModel checks one cell; tiers maps wallet index to its caps.
type cellModel struct {
	tiers [cellWallets]caps
}

func newState(outs map[outKey]outRec, ctr [cellWallets]counters) *cellState {
	s := &cellState{outs: outs, ctr: ctr}
	keys := make([]string, 0, len(outs))
	for k, o := range outs {
		keys = append(keys, fmt.Sprintf("%x%d/%d/%d/%t", k.tx[:8], k.idx, o.wallet, o.amount, o.spent))
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(';')
	}
	for _, c := range ctr {
		fmt.Fprintf(&b, "|%d,%d,%d,%d", c.day, c.dayUsed, c.year, c.yearUsed)
	}
	s.key = b.String()
	return s
}

func (m *cellModel) init(initial []outputAt) *cellState {
	outs := map[outKey]outRec{}
	for _, o := range initial {
		outs[o.key] = outRec{wallet: o.wallet, amount: o.amount}
	}
	return newState(outs, [cellWallets]counters{})
}

func (s *cellState) balance(w uint8) uint64 {
	var b uint64
	for _, o := range s.outs {
		if !o.spent && o.wallet == w {
			b += o.amount
		}
	}
	return b
}

// beijingDay and beijingYear follow state/limits.go: days and years in UTC+8.
func beijingDay(ms int64) int64 {
	local := ms + 8*3600*1000
	d := local / (24 * 3600 * 1000)
	if local%(24*3600*1000) < 0 {
		d--
	}
	return d
}

func beijingYear(ms int64) int32 {
	return int32(time.UnixMilli(ms).In(time.FixedZone("CST", 8*3600)).Year())
}

// conds are the conditions that justify each refusal of a transfer.
type conds struct {
	missing, spent, notOwned, insufficient bool
	payment, daily, yearly, balance        bool
	total                                  uint64
}

func (c conds) any() bool {
	return c.missing || c.spent || c.notOwned || c.insufficient || c.payment || c.daily || c.yearly || c.balance
}

func (m *cellModel) evaluate(s *cellState, in modelIn) conds {
	var c conds
	seen := map[outKey]bool{}
	for _, k := range in.inputs {
		o, ok := s.outs[k]
		switch {
		case !ok || seen[k]:
			c.missing = true
		case o.spent:
			c.spent = true
		case o.wallet != in.from:
			c.notOwned = true
		default:
			c.total += o.amount
		}
		seen[k] = true
	}
	c.insufficient = c.total < in.amount
	pc := m.tiers[in.from]
	used := s.ctr[in.from]
	day, year := beijingDay(in.timeMs), beijingYear(in.timeMs)
	dayUsed, yearUsed := uint64(0), uint64(0)
	if used.day == day {
		dayUsed = used.dayUsed
	}
	if used.year == year {
		yearUsed = used.yearUsed
	}
	c.payment = pc.payment != 0 && in.amount > pc.payment
	c.daily = pc.daily != 0 && dayUsed+in.amount > pc.daily
	c.yearly = pc.yearly != 0 && yearUsed+in.amount > pc.yearly
	tc := m.tiers[in.to]
	c.balance = tc.balance != 0 && s.balance(in.to)+in.amount > tc.balance
	return c
}

// justified reports whether refusal code is explained by c.
func justified(code statepb.Code, c conds) bool {
	switch code {
	case statepb.Code_CODE_INPUT_NOT_FOUND:
		return c.missing
	case statepb.Code_CODE_INPUT_SPENT:
		return c.spent
	case statepb.Code_CODE_INPUT_NOT_OWNED:
		return c.notOwned
	case statepb.Code_CODE_INSUFFICIENT_INPUTS:
		return c.insufficient
	case statepb.Code_CODE_LIMIT_PAYMENT:
		return c.payment
	case statepb.Code_CODE_LIMIT_DAILY:
		return c.daily
	case statepb.Code_CODE_LIMIT_YEARLY:
		return c.yearly
	case statepb.Code_CODE_LIMIT_BALANCE:
		return c.balance
	}
	return false
}

// step applies one operation; ok is false if the output is impossible in s.
func (m *cellModel) step(s *cellState, in modelIn, out modelOut) (bool, *cellState) {
	if in.kind == opRead {
		return s.balance(in.wallet) == out.balance, s
	}
	c := m.evaluate(s, in)
	if out.code != statepb.Code_CODE_OK {
		return justified(out.code, c), s
	}
	if c.any() {
		return false, s
	}
	outs := make(map[outKey]outRec, len(s.outs)+2)
	for k, o := range s.outs {
		outs[k] = o
	}
	for _, k := range in.inputs {
		o := outs[k]
		o.spent = true
		outs[k] = o
	}
	// Outputs: the payee, then the change (state/money.go moveMoney).
	outs[outKey{in.id, 0}] = outRec{wallet: in.to, amount: in.amount}
	if change := c.total - in.amount; change > 0 {
		outs[outKey{in.id, 1}] = outRec{wallet: in.from, amount: change}
	}
	ctr := s.ctr
	if p := m.tiers[in.from]; p.daily != 0 || p.yearly != 0 {
		day, year := beijingDay(in.timeMs), beijingYear(in.timeMs)
		w := &ctr[in.from]
		if w.day != day {
			w.day, w.dayUsed = day, 0
		}
		if w.year != year {
			w.year, w.yearUsed = year, 0
		}
		w.dayUsed += in.amount
		w.yearUsed += in.amount
	}
	return true, newState(outs, ctr)
}

// porcupineModel wraps the cell model for porcupine.
func (m *cellModel) porcupineModel(initial []outputAt) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return m.init(initial) },
		Step: func(st, in, out any) (bool, any) {
			return m.step(st.(*cellState), in.(modelIn), out.(modelOut))
		},
		Equal: func(a, b any) bool { return a.(*cellState).key == b.(*cellState).key },
		Hash: func(st any) uint64 {
			h := fnv.New64a()
			h.Write([]byte(st.(*cellState).key))
			return h.Sum64()
		},
		DescribeOperation: func(in, out any) string {
			i, o := in.(modelIn), out.(modelOut)
			if i.kind == opRead {
				return fmt.Sprintf("read w%d → %d", i.wallet, o.balance)
			}
			return fmt.Sprintf("w%d→w%d %d fen %x → %s", i.from, i.to, i.amount, i.id[:4], o.code.Short())
		},
		DescribeState: func(st any) string {
			s := st.(*cellState)
			var b []string
			for w := range uint8(cellWallets) {
				b = append(b, fmt.Sprintf("w%d=%d", w, s.balance(w)))
			}
			return strings.Join(b, " ")
		},
	}
}
