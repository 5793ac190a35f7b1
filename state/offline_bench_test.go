package state_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// BenchmarkApplyOfflineDeposits measures one node's ledger reconciling
// offline payments: Apply of blocks of 16 deposits × 64 payments (as a
// node runs it, without fsync); the payments of a deposit come from 64
// different purses.
// Everything is signed before the timer starts. Reported: payments/s and
// cpu-µs/payment, verify/s (raw Ed25519 on the same cores, right before
// and after), and of-verify-limit: payments/s ÷ (verify/s ÷ 2.016), since
// each payment costs two verifications (certificate, payment) and each
// deposit one more (1/64 per payment).
//
//	go test ./state -run '^$' -bench ApplyOfflineDeposits -benchtime 20000x
func BenchmarkApplyOfflineDeposits(b *testing.B) {
	const (
		perDeposit = 64
		perBlock   = 16 // deposits
		perPurse   = 1000
		payees     = 16
	)
	n := statetest.NewNet(b, "offbench")
	pol := statetest.OfflinePolicy()
	pol.MaxPayments = perPurse
	n.EnableOffline(b, pol)
	s := n.OpenWith(b, state.Options{NoSync: true})
	c := statetest.NewChain(s)
	blocks := (b.N + perDeposit*perBlock - 1) / (perDeposit * perBlock)
	payments := blocks * perBlock * perDeposit
	// Payment k comes from purse k mod purses: the 64 payments of a deposit
	// are all from different purses (certificates), as a shop's would be.
	purses := max(perDeposit, (payments+perPurse-1)/perPurse)

	var setup [][]byte
	for g := range payees {
		setup = append(setup, n.Register(b, "abc", fmt.Sprintf("shop%d", g), merchant, 1, ""))
	}
	mustAllOK(b, c.Apply(b, setup...))
	certs := make([]*statepb.PurseCert, purses)
	for i := range purses {
		id := fmt.Sprintf("payer%d", i)
		mustAllOK(b, c.Apply(b, n.Register(b, "icbc", id, personal, 1, "")))
		in := c.Fund(b, n, "icbc", id, perPurse*yuan)
		certs[i] = n.Cert(b, statetest.Purse{Name: id, Bank: "icbc", Wallet: id, Device: id, AmountFen: perPurse * yuan,
			MaxPaymentFen: yuan, MaxPayments: perPurse, NotAfterMs: c.TimeMs + 24*3600*1000})
		c.MustOK(b, n.OpenPurse(b, id, ins(in), certs[i]))
	}
	net := n.Offline()
	prev := make([][]byte, purses)
	all := make([][][]byte, blocks)
	k := 0
	for bi := range blocks {
		for j := range perBlock {
			g := (bi*perBlock + j) % payees
			payee := fmt.Sprintf("shop%d", g)
			items := make([]*statepb.DepositItem, perDeposit)
			for i := range items {
				pi := k % purses
				nonce := make([]byte, 16)
				_, _ = rand.Read(nonce)
				req := &statepb.PaymentRequest{PayeeDeviceKey: n.DevicePub(payee), AmountFen: yuan, Nonce: nonce}
				if prev[pi] == nil {
					prev[pi] = make([]byte, 32)
				}
				p, h, err := net.SignPayment(n.Device(fmt.Sprintf("payer%d", pi)), &statepb.PaymentBody{
					PurseId: statetest.PurseID(fmt.Sprintf("payer%d", pi)), Counter: uint32(k/purses + 1), AmountFen: yuan,
					PayeeDeviceKey: req.GetPayeeDeviceKey(), Nonce: nonce, PrevHash: prev[pi], Cert: certs[pi],
				})
				if err != nil {
					b.Fatal(err)
				}
				prev[pi] = h[:]
				items[i] = statetest.Item(p, req)
				k++
			}
			all[bi] = append(all[bi], n.Deposit(b, payee, payee, items...))
		}
	}
	rate0 := verifyRate(300 * time.Millisecond)
	b.ResetTimer()
	cpu0 := cpuTime()
	for _, txs := range all {
		c.Index++
		c.TimeMs += 1000
		out, err := s.Apply([]state.Block{{Index: c.Index, Term: 1, TimeMs: c.TimeMs, Txs: txs}})
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range out.Results[0] {
			if r.GetCode() != statepb.Code_CODE_OK {
				b.Fatalf("deposit %d: %s: %s", i, r.GetCode().Short(), r.GetMessage())
			}
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	rate := (rate0 + verifyRate(300*time.Millisecond)) / 2
	pps := float64(payments) / b.Elapsed().Seconds()
	b.ReportMetric(pps, "payments/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(payments), "cpu-µs/payment")
	b.ReportMetric(rate, "verify/s")
	b.ReportMetric(pps/(rate/(2+1.0/perDeposit)), "of-verify-limit")
	b.ReportMetric(0, "ns/op")
	a := statetest.Audit(b, s)
	if a.OfflineEscrowFen != uint64(purses*perPurse-payments)*yuan {
		b.Fatalf("escrow %d after %d payments", a.OfflineEscrowFen, payments)
	}
}
