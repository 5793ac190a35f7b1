package load

import (
	"errors"
	"math"
	"testing"
	"time"
)

// TestPlanFunding: the funding tree covers two outputs per transfer per
// payer, rounded up to a full 16-way tree, and an amount that does not fit
// uint64 fen is refused, not wrapped.
func TestPlanFunding(t *testing.T) {
	for _, c := range []struct {
		wallets, transfers int
		out                uint64
		want               uint64
	}{
		{2, 1, 1, 16},                // 4 outputs: one leaf
		{8, 150, 1, 16 * 256},        // 304 outputs: 19 leaves under a 256-leaf tree
		{2000, 100, 100, 1600 * 256}, // 4000 outputs: 250 leaves of 1600 fen under 256
		{2000, 30_000, 100, 1600 * 4096},
	} {
		p := Plan{Wallets: c.wallets, Transfers: c.transfers, OutputFen: c.out, TransferFen: 1}
		got, err := p.FunderFen()
		if err != nil || got != c.want {
			t.Errorf("%+v: FunderFen = %d, %v; want %d", p, got, err, c.want)
		}
		_, outputs, _, _, span := p.shape()
		if uint64(outputs)*c.out > got || uint64(span)*FanOut*c.out != got {
			t.Errorf("%+v: %d fen for %d outputs", p, got, outputs)
		}
	}
	huge := Plan{Wallets: 2, Transfers: 10_000_000, OutputFen: 1 << 40, TransferFen: 1}
	if _, err := huge.FunderFen(); !errors.Is(err, ErrPlan) {
		t.Errorf("overflowing plan: %v, want ErrPlan", err)
	}
	for _, bad := range []Plan{
		{Wallets: 1, Transfers: 1, OutputFen: 1, TransferFen: 1},
		{Wallets: 2, Transfers: 0, OutputFen: 1, TransferFen: 1},
		{Wallets: 2, Transfers: 1, OutputFen: 1, TransferFen: 2}, // no change: 2-in/1-out
		{Wallets: 2, Transfers: 1, OutputFen: 0, TransferFen: 0},
	} {
		if _, err := bad.FunderFen(); !errors.Is(err, ErrPlan) {
			t.Errorf("%+v: %v, want ErrPlan", bad, err)
		}
	}
}

// TestPhasePercentiles: nearest-rank percentiles of what committed, in
// order, and failures counted by code.
func TestPhasePercentiles(t *testing.T) {
	r := NewRecorder(200)
	for i := range 200 {
		r.start()
		switch {
		case i%50 == 0:
			r.record(i, 0, &SubmitError{Code: "INPUT_SPENT", Refusal: true})
		case i%70 == 1:
			r.record(i, 0, errors.New("connection reset"))
		default:
			r.record(i, time.Duration(i)*time.Millisecond, nil)
		}
	}
	s := r.Snapshot()
	p := r.result(time.Second, true)
	if p.OK != 193 || p.Failed != 7 || p.Refused != 4 || p.ByCode["INPUT_SPENT"] != 4 || p.ByCode[CodeNetwork] != 3 || s.InFlight != 0 || s.Committed != 193 {
		t.Fatalf("counts: %+v snapshot %+v", p, s)
	}
	if p.Pct(0.5) > p.Pct(0.9) || p.Pct(0.9) > p.Pct(0.99) || p.Pct(0.99) > p.Pct(1) || p.Pct(1) != 199*time.Millisecond || p.Pct(0) != 2*time.Millisecond {
		t.Fatalf("percentiles: %v %v %v %v %v", p.Pct(0), p.Pct(0.5), p.Pct(0.9), p.Pct(0.99), p.Pct(1))
	}
	if math.Abs(p.Rate()-193) > 1e-9 {
		t.Fatalf("rate %v", p.Rate())
	}
}

// TestConnectError: a Connect error body gives its code; anything else the
// HTTP status.
func TestConnectError(t *testing.T) {
	var se *SubmitError
	if err := connectError(429, []byte(`{"code":"resource_exhausted","message":"slow down"}`)); !errors.As(err, &se) || se.Code != "RESOURCE_EXHAUSTED" || se.Msg != "slow down" {
		t.Fatalf("%v", err)
	}
	if err := connectError(502, []byte("<html>bad gateway</html>")); !errors.As(err, &se) || se.Code != "HTTP_502" {
		t.Fatalf("%v", err)
	}
}

func FuzzConnectError(f *testing.F) {
	f.Add(503, []byte(`{"code":"unavailable"}`))
	f.Add(400, []byte(`{"code":1}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		var se *SubmitError
		if err := connectError(status, body); !errors.As(err, &se) || se.Code == "" {
			t.Fatalf("%v", err)
		}
	})
}
