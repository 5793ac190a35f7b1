package device_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// BenchmarkOfflineDeposits measures reconciliation on a real 3-voter
// cluster (three nodes in this process, on loopback): b.N deposits of 64
// offline payments each (from 64 different purses), submitted by 32 payee
// devices at once. Everything is signed before the timer starts;
// timed is submit → committed on a quorum → applied → answered.
//
// Reported: payments/s, offline payments settled per second (wall
// clock); verify/s, raw crypto/ed25519.Verify per second on all cores,
// measured right before and after the timed loop; of-node-limit,
// payments/s ÷ (verify/s ÷ 2.016), the share of what one node could verify
// if it did nothing else — each payment costs two verifications (the bank's
// certificate and the device's signature) and each deposit one more for the
// transaction (1/64 per payment); of-cluster-limit, the same with verify/s
// shared by the 3 voters, which all run in this process on the same cores
// and each verify everything.
//
//	go test ./client/device -run '^$' -bench OfflineDeposits -benchtime 200x
func BenchmarkOfflineDeposits(b *testing.B) {
	const (
		perDeposit = 64
		perPurse   = 1000
		payees     = 32
		voters     = 3
	)
	pol := statetest.OfflinePolicy()
	pol.MaxPayments = perPurse
	e := newBenchEnv(b, pol, voters)
	payments := b.N * perDeposit
	// Payment k comes from purse k mod purses: the 64 payments of a deposit
	// are all from different purses (certificates), as a shop's would be.
	purses := max(perDeposit, (payments+perPurse-1)/perPurse)

	bld, err := e.cl.Builder(e.ctx)
	if err != nil {
		b.Fatal(err)
	}
	net := bld.Offline()
	// Payers: tier-1 wallets funded by transfers from one rich wallet (16
	// payees a transfer), each opening one purse of ¥1,000 for 1,000
	// payments of ¥1. Registrations and opens run in parallel.
	e.wallet("rich", "icbc", 1, uint64(purses)*perPurse*yuan)
	names := make([]string, purses)
	for i := range purses {
		names[i] = fmt.Sprintf("payer%d", i)
	}
	e.parallel(names, func(id string) error {
		_, err := e.cl.RegisterWallet(e.ctx, e.n.Bank("icbc"), &statepb.RegisterWallet{WalletId: id, BankId: "icbc", PublicKey: e.n.Pub("wallet/" + id),
			Kind: statepb.WalletKind_WALLET_KIND_PERSONAL, Tier: 1})
		return err
	})
	for i := 0; i < purses; i += statepb.MaxPayees {
		var to []*statepb.Payee
		for _, id := range names[i:min(i+statepb.MaxPayees, purses)] {
			to = append(to, client.PayTo(id, perPurse*yuan))
		}
		e.ok(e.cl.Pay(e.ctx, e.n.Wallet("rich"), "rich", to))
	}
	certs := make([]*statepb.PurseCert, purses)
	for i, id := range names {
		cert, err := net.SignCert(e.n.Bank("icbc"), &statepb.PurseCertBody{
			PurseId: statetest.PurseID(id), BankId: "icbc", WalletId: id, DevicePublicKey: e.n.DevicePub(id),
			AmountFen: perPurse * yuan, MaxPaymentFen: yuan, MaxPayments: perPurse, NotAfterMs: e.now().Add(24 * time.Hour).UnixMilli(),
		})
		if err != nil {
			b.Fatal(err)
		}
		certs[i] = cert
	}
	e.parallel(names, func(id string) error {
		var i int
		fmt.Sscanf(id, "payer%d", &i)
		_, err := e.cl.OpenPurse(e.ctx, e.n.Wallet(id), id, certs[i])
		return err
	})
	for g := range payees {
		e.wallet(fmt.Sprintf("shop%d", g), "abc", 1, 0)
	}

	// Sign every payment and deposit now. Deposit j is payee j%payees's;
	// payments are taken from the purses in order.
	deposits := make([][]*client.SignedTx, payees)
	prev := make([][]byte, purses)
	k := 0
	for j := range b.N {
		g := j % payees
		payee := e.n.Device(fmt.Sprintf("shop%d", g))
		items := make([]*statepb.DepositItem, perDeposit)
		for i := range items {
			pi := k % purses
			nonce := make([]byte, 16)
			_, _ = rand.Read(nonce)
			req := &statepb.PaymentRequest{PayeeDeviceKey: payee.Public().(ed25519.PublicKey), AmountFen: yuan, Nonce: nonce}
			if prev[pi] == nil {
				prev[pi] = make([]byte, 32)
			}
			p, h, err := net.SignPayment(e.n.Device(fmt.Sprintf("payer%d", pi)), &statepb.PaymentBody{
				PurseId: statetest.PurseID(fmt.Sprintf("payer%d", pi)), Counter: uint32(k/purses + 1), AmountFen: yuan,
				PayeeDeviceKey: req.GetPayeeDeviceKey(), Nonce: nonce, PrevHash: prev[pi], Cert: certs[pi],
			})
			if err != nil {
				b.Fatal(err)
			}
			prev[pi] = h[:]
			items[i] = &statepb.DepositItem{Payment: p, Request: req}
			k++
		}
		tx, err := bld.DepositOffline(payee, fmt.Sprintf("shop%d", g), items)
		if err != nil {
			b.Fatal(err)
		}
		deposits[g] = append(deposits[g], tx)
	}

	before := verifyRate(300 * time.Millisecond)
	var failed atomic.Int64
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range payees {
		wg.Add(1)
		go func(txs []*client.SignedTx) {
			defer wg.Done()
			for _, tx := range txs {
				if _, err := e.cl.SubmitOK(e.ctx, tx); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}(deposits[g])
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	after := verifyRate(300 * time.Millisecond)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d deposits failed, first: %v", n, firstErr.Load())
	}
	// Every payment was credited once.
	var credited uint64
	for g := range payees {
		credited += e.balance(fmt.Sprintf("shop%d", g))
	}
	if credited != uint64(payments)*yuan {
		b.Fatalf("credited %d fen for %d payments of ¥1", credited, payments)
	}
	pps := float64(payments) / elapsed.Seconds()
	vps := (before + after) / 2
	perPayment := 2 + 1.0/perDeposit
	b.ReportMetric(pps, "payments/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deposits/s")
	b.ReportMetric(vps, "verify/s")
	b.ReportMetric(pps/(vps/perPayment), "of-node-limit")
	b.ReportMetric(pps/(vps/perPayment/voters), "of-cluster-limit")
	e.check()
}

// parallel runs fn for each item on 16 goroutines and fails on the first
// error.
func (e *env) parallel(items []string, fn func(string) error) {
	e.t.Helper()
	var wg sync.WaitGroup
	var first atomic.Value
	ch := make(chan string)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := fn(it); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	if err := first.Load(); err != nil {
		e.t.Fatal(err)
	}
}

// newBenchEnv is newEnv with voters voters and no regulator.
func newBenchEnv(b *testing.B, pol *statepb.OfflinePolicy, voters int) *env {
	return newEnvWith(b, pol, voters, 0)
}

// verifyRate is raw Ed25519 verifications per second on every core.
func verifyRate(d time.Duration) float64 {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 200)
	sig := ed25519.Sign(priv, msg)
	var n atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := int64(0)
			for time.Now().Before(stop) {
				for range 16 {
					ed25519.Verify(pub, msg, sig)
				}
				c += 16
			}
			n.Add(c)
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}
