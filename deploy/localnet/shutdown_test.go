package localnet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// stopBoundS is how long a node may take to stop after SIGTERM
// (docs/operations.md, "Stopping a node"): the node's own bound
// (node.ShutdownTimeout) plus scheduling slack on a loaded machine.
var stopBoundS = int(node.ShutdownTimeout/time.Second) + 5

// TestSIGTERMAllAtOnce (defect 4, docs/RELIABILITY.md): SIGTERM to every
// node of the 7 + 1 network at once, under load, three times over; every
// process exits within the bound every time. Before the fix the leader's
// Raft kept dialling peers that had gone and its Shutdown never returned.
func TestSIGTERMAllAtOnce(t *testing.T) {
	tn := startNet(t)
	for round := range 3 {
		if round > 0 {
			if err := tn.ln.StartAll(); err != nil {
				t.Fatal(err)
			}
			for _, nn := range tn.ln.Info.Nodes {
				waitReady(t, tn.ln, nn.Name)
			}
		}
		if round == 0 { // the load's wallet names are per worker: one round of it
			l := tn.startLoad(6)
			l.waitAcks(30, 60*time.Second)
			go l.finish() // clients see errors from here on; only the stop is judged
		}
		tn.leader(10*time.Second, "")
		// Submissions in flight on every node when the signal comes: a
		// handler waiting for a commit that cannot come any more.
		stop := make(chan struct{})
		done := issueLoad(tn, round, stop)
		time.Sleep(500 * time.Millisecond)
		stopAllAtOnce(t, tn, round)
		close(stop)
		<-done
		if t.Failed() {
			return
		}
	}
}

// issueLoad keeps 8 clients submitting issues to random voters until stop,
// each with a client timeout longer than the node's submit timeout.
func issueLoad(tn *testNet, round int, stop chan struct{}) <-chan struct{} {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonce := uint64(round)<<48 | uint64(w+100)<<40
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nonce++
				body := &statepb.Tx{Version: statepb.TxVersion, ChainId: tn.signer.ChainID, Nonce: nonce,
					Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: "icbc", AmountFen: 100}}}
				raw, _, err := tn.signer.Sign(body, tn.cb)
				if err != nil {
					panic(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err = tn.clients[tn.voters[(w+i)%len(tn.voters)]].Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: raw}))
				cancel()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// stopAllAtOnce sends SIGTERM to every node in one go and waits for each to
// exit; one still running after the bound gets SIGQUIT (its goroutines go
// to its log) and fails the test.
func stopAllAtOnce(t *testing.T, tn *testNet, round int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slow []string
	start := time.Now()
	pids := map[string]int{}
	for _, nn := range tn.ln.Info.Nodes {
		pids[nn.Name] = tn.ln.Pid(nn.Name)
	}
	for _, pid := range pids {
		if pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for name := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := start.Add(time.Duration(stopBoundS) * time.Second)
			for tn.ln.Running(name) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if tn.ln.Running(name) {
				_ = syscall.Kill(pids[name], syscall.SIGQUIT)
				time.Sleep(2 * time.Second)
				_ = tn.ln.Kill(name)
				mu.Lock()
				slow = append(slow, name)
				mu.Unlock()
				return
			}
			_, err := tn.ln.Exited(name)
			t.Logf("round %d: %s exited after %v (%v)", round, name, time.Since(start).Round(time.Millisecond), err)
		}()
	}
	wg.Wait()
	for _, name := range slow {
		raw, _ := os.ReadFile(tn.ln.LogPath(name))
		keep := filepath.Join(os.TempDir(), fmt.Sprintf("shutdown-%s-%d.log", name, round))
		_ = os.WriteFile(keep, raw, 0o600)
		t.Errorf("round %d: %s did not exit within %d s of SIGTERM (log kept in %s):\n%s", round, name, stopBoundS, keep, tail(raw, 4000))
	}
}
