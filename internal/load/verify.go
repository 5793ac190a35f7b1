package load

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// VerifyMsgBytes is the size of the messages MeasureVerifyRate verifies:
// about a 2-in/2-out transfer's signed bytes.
const VerifyMsgBytes = 230

// MeasureVerifyRate is the physical limit of this machine:
// crypto/ed25519.Verify on GOMAXPROCS goroutines for d, of messages the
// size of a transfer's signed bytes under distinct keys. It returns
// verifications per second (all cores) and the process CPU time per
// verification (which does not drop when other processes take the cores
// for a moment).
func MeasureVerifyRate(d time.Duration) (perSec float64, cpuPerVerify time.Duration) {
	const sets = 256
	type signed struct {
		pub      ed25519.PublicKey
		msg, sig []byte
	}
	set := make([]signed, sets)
	for i := range set {
		seed := sha256.Sum256(fmt.Appendf(nil, "verify-%d", i))
		priv := ed25519.NewKeyFromSeed(seed[:])
		msg := make([]byte, VerifyMsgBytes)
		copy(msg, seed[:])
		set[i] = signed{priv.Public().(ed25519.PublicKey), msg, ed25519.Sign(priv, msg)}
	}
	var total atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0)
	start, cpu0 := time.Now(), CPUTime()
	for g := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := g; !stop.Load(); i++ {
				s := set[i%sets]
				if !ed25519.Verify(s.pub, s.msg, s.sig) {
					panic("ed25519: a signature made here does not verify")
				}
				n++
			}
			total.Add(int64(n))
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	n := max(1, total.Load())
	return float64(n) / time.Since(start).Seconds(), (CPUTime() - cpu0) / time.Duration(n)
}

// CPUTime is this process's user+system CPU time so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
