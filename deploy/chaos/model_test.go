package chaos

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/pelletier/go-toml/v2"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// testModel has the default tiers' caps (state.DefaultTiers).
func testModel() *cellModel {
	m := &cellModel{}
	for j, t := range cellTiers {
		for _, tl := range state.DefaultTiers() {
			if tl.GetTier() == t {
				m.tiers[j] = caps{balance: tl.GetMaxBalanceFen(), payment: tl.GetMaxPaymentFen(), daily: tl.GetMaxDailyFen(), yearly: tl.GetMaxYearlyFen()}
			}
		}
	}
	return m
}

func id(b byte) [32]byte { return [32]byte{b} }

// now is a ledger time in the middle of a Beijing day.
var now = time.Date(2026, 6, 1, 4, 0, 0, 0, time.UTC).UnixMilli()

var initial = []outputAt{
	{key: outKey{id(1), 0}, wallet: 0, amount: 20_000 * state.Yuan},
	{key: outKey{id(2), 0}, wallet: 2, amount: 5_000 * state.Yuan},
	{key: outKey{id(3), 0}, wallet: 3, amount: 5_000 * state.Yuan},
}

func transfer(tx byte, from, to uint8, amountYuan uint64, inputs ...outKey) modelIn {
	return modelIn{kind: opTransfer, id: id(tx), from: from, to: to, inputs: inputs, amount: amountYuan * state.Yuan, timeMs: now}
}

func ok() modelOut                    { return modelOut{code: statepb.Code_CODE_OK} }
func refused(c statepb.Code) modelOut { return modelOut{code: c} }

// TestModelChecksOutcomes: OK moves money (payee output 0, change output 1)
// only when it is possible; every refusal must be justified by its
// condition; a second OK spending a spent input (a transaction applied
// twice, or a double spend) is impossible.
func TestModelChecksOutcomes(t *testing.T) {
	m := testModel()
	s := m.init(initial)
	steps := []struct {
		in   modelIn
		out  modelOut
		want bool
	}{
		{transfer(10, 0, 1, 300, outKey{id(1), 0}), ok(), true},
		{transfer(11, 0, 1, 300, outKey{id(1), 0}), ok(), false},                                       // spent input
		{transfer(11, 0, 1, 300, outKey{id(1), 0}), refused(statepb.Code_CODE_INPUT_SPENT), true},      // justified
		{transfer(12, 0, 1, 300, outKey{id(10), 1}), refused(statepb.Code_CODE_INPUT_SPENT), false},    // the change is unspent
		{transfer(13, 1, 0, 300, outKey{id(10), 1}), refused(statepb.Code_CODE_INPUT_NOT_OWNED), true}, // w0's change
		{transfer(14, 2, 0, 2_500, outKey{id(2), 0}), refused(statepb.Code_CODE_LIMIT_PAYMENT), true},  // tier 4: ¥2,000 a payment
		{transfer(15, 2, 0, 1_500, outKey{id(2), 0}), refused(statepb.Code_CODE_LIMIT_PAYMENT), false},
		{transfer(16, 0, 3, 6_000, outKey{id(10), 1}), refused(statepb.Code_CODE_LIMIT_BALANCE), true}, // ¥5,000 + 6,000 > ¥10,000
		{transfer(17, 0, 3, 4_000, outKey{id(10), 1}), refused(statepb.Code_CODE_LIMIT_BALANCE), false},
		{transfer(18, 2, 3, 2_000, outKey{id(2), 0}), ok(), true},
		{transfer(19, 2, 3, 2_000, outKey{id(18), 1}), ok(), true},
		{transfer(20, 2, 1, 1_001, outKey{id(19), 1}), refused(statepb.Code_CODE_LIMIT_DAILY), true}, // ¥4,000 paid today, ¥5,000 a day
		{transfer(21, 2, 1, 1_000, outKey{id(19), 1}), ok(), true},
		{modelIn{kind: opRead, wallet: 3}, modelOut{balance: 9_000 * state.Yuan}, true},
		{modelIn{kind: opRead, wallet: 1}, modelOut{balance: 300 * state.Yuan}, false},
		{modelIn{kind: opRead, wallet: 1}, modelOut{balance: 1_300 * state.Yuan}, true},
		{transfer(22, 0, 1, 1, outKey{id(10), 1}), refused(statepb.Code_CODE_WALLET_FROZEN), false}, // no reason for it
	}
	for i, st := range steps {
		got, next := m.step(s, st.in, st.out)
		if got != st.want {
			t.Fatalf("step %d (%+v → %v): accepted %v, want %v", i, st.in, st.out.code, got, st.want)
		}
		if got {
			s = next
		}
	}
	// w2 has used its ¥5,000 for the day: refused today, fine tomorrow.
	ok1, s := m.step(s, transfer(23, 0, 2, 500, outKey{id(10), 1}), ok())
	today := transfer(24, 2, 1, 500, outKey{id(23), 0})
	ok2, _ := m.step(s, today, ok())
	ok3, _ := m.step(s, today, refused(statepb.Code_CODE_LIMIT_DAILY))
	tomorrow := today
	tomorrow.timeMs = now + 24*3600*1000
	ok4, _ := m.step(s, tomorrow, ok())
	if !ok1 || ok2 || !ok3 || !ok4 {
		t.Fatalf("daily limit across days: %v %v %v %v", ok1, ok2, ok3, ok4)
	}
}

// TestPorcupineVerdicts: the cell model under porcupine accepts concurrent
// histories that have a valid order, and rejects a read that misses an
// acknowledged transfer and a transfer whose effect appears twice.
func TestPorcupineVerdicts(t *testing.T) {
	m := testModel()
	model := m.porcupineModel(initial)
	op := func(client int, in modelIn, out modelOut, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	read := func(w uint8) modelIn { return modelIn{kind: opRead, wallet: w} }
	bal := func(yuan uint64) modelOut { return modelOut{balance: yuan * state.Yuan} }
	tr := transfer(10, 0, 1, 300, outKey{id(1), 0})
	cases := []struct {
		name string
		hist []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"concurrent read sees either", []porcupine.Operation{op(0, tr, ok(), 0, 10), op(1, read(1), bal(0), 5, 6)}, porcupine.Ok},
		{"read after ack sees it", []porcupine.Operation{op(0, tr, ok(), 0, 10), op(1, read(1), bal(300), 11, 12)}, porcupine.Ok},
		{"lost acknowledged transfer", []porcupine.Operation{op(0, tr, ok(), 0, 10), op(1, read(1), bal(0), 11, 12)}, porcupine.Illegal},
		{"two transfers race for one input", []porcupine.Operation{
			op(0, tr, ok(), 0, 10), op(1, transfer(11, 0, 1, 500, outKey{id(1), 0}), refused(statepb.Code_CODE_INPUT_SPENT), 1, 9),
			op(1, read(1), bal(300), 11, 12)}, porcupine.Ok},
		{"double spend", []porcupine.Operation{
			op(0, tr, ok(), 0, 10), op(1, transfer(11, 0, 1, 500, outKey{id(1), 0}), ok(), 1, 9)}, porcupine.Illegal},
		{"unknown outcome that took effect, open-ended", []porcupine.Operation{
			op(0, tr, ok(), 0, 1<<40), op(1, read(1), bal(0), 5, 6), op(1, read(1), bal(300), 20, 21)}, porcupine.Ok},
		{"stale read after a newer one", []porcupine.Operation{
			op(0, tr, ok(), 0, 1<<40), op(1, read(1), bal(300), 5, 6), op(1, read(1), bal(0), 20, 21)}, porcupine.Illegal},
	}
	for _, tc := range cases {
		if got := porcupine.CheckOperationsTimeout(model, tc.hist, 10*time.Second); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestScheduleFromSeed: the same seed gives the same schedule; the first
// len(kinds) faults are every kind once.
func TestScheduleFromSeed(t *testing.T) {
	a, b := Schedule(42, 60, Kinds), Schedule(42, 60, Kinds)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different schedules")
	}
	if slices.Equal(a, Schedule(43, 60, Kinds)) {
		t.Fatal("different seeds, same schedule")
	}
	seen := map[Kind]bool{}
	for _, f := range a[:len(Kinds)] {
		seen[f.Kind] = true
	}
	if len(seen) != len(Kinds) {
		t.Fatalf("first %d faults cover %d kinds", len(Kinds), len(seen))
	}
	if _, err := ParseKinds("kill-node,no-such"); err == nil || !strings.Contains(err.Error(), "no-such") {
		t.Fatalf("ParseKinds of an unknown kind: %v", err)
	}
}

// TestSetClockOffset: the key is added once, rewritten in place, and the
// file stays valid TOML whether or not it had a [debug] table.
func TestSetClockOffset(t *testing.T) {
	for _, start := range []string{
		"name = 'x'\n[raft]\nheartbeat_ms = 500\n",
		"name = 'x'\n[debug]\nother = 1\n[raft]\nheartbeat_ms = 500\n",
		"name = 'x'\n[debug]\nclock_offset_ms = 0\n",
	} {
		p := filepath.Join(t.TempDir(), "config.toml")
		if err := os.WriteFile(p, []byte(start), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{30_000, -600_000, 0} {
			if err := setClockOffset(p, off); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(p)
			var doc struct {
				Debug struct {
					ClockOffsetMs int64 `toml:"clock_offset_ms"`
				} `toml:"debug"`
				Raft struct {
					HeartbeatMs int `toml:"heartbeat_ms"`
				} `toml:"raft"`
			}
			if err := toml.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("after setting %d: %v\n%s", off, err, raw)
			}
			if doc.Debug.ClockOffsetMs != off || strings.Count(string(raw), "clock_offset_ms") != 1 {
				t.Fatalf("after setting %d: %s", off, raw)
			}
			if strings.Contains(start, "heartbeat_ms") && doc.Raft.HeartbeatMs != 500 {
				t.Fatalf("other keys lost: %s", raw)
			}
		}
	}
}
