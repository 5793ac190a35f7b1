package localnet_test

// A submission's answer follows the cluster, not the timeout (issue 16,
// defect 6): a client submitting through a follower while the leader is
// SIGSTOPped, then killed, gets its outcome within about an election and a
// commit, not after the submit timeout; the outcome of its only
// submission is not marked duplicate; and the old leader, restarted, is
// replicated to within about a second of answering again.

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

func TestForwardFollowsLeaderChange(t *testing.T) {
	tn := startNet(t) // election 300 ms, submit timeout 5 s
	leader := tn.leader(10*time.Second, "")
	var follower string
	for _, v := range tn.voters {
		if v != leader {
			follower = v
			break
		}
	}
	nonce := uint64(time.Now().UnixNano())
	issue := func(fen uint64) []byte {
		nonce++
		raw, _, err := tn.signer.Sign(&statepb.Tx{Version: statepb.TxVersion, ChainId: tn.signer.ChainID, Nonce: nonce,
			Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: "icbc", AmountFen: fen}}}, ed25519.PrivateKey(tn.cb))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	submit := func(what string, tx []byte, within time.Duration) *statepb.TxResult {
		t.Helper()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, err := tn.clients[follower].Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s through %s: %v after %v", what, follower, err, took)
		}
		r := resp.Msg.GetResult()
		t.Logf("%s through %s: %s at index %d in %v", what, follower, r.GetCode().Short(), r.GetLogIndex(), took.Round(time.Millisecond))
		if r.GetCode() != statepb.Code_CODE_OK || r.GetDuplicate() {
			t.Fatalf("%s: %v (the only submission of this transaction: duplicate must be false)", what, r)
		}
		if took > within {
			t.Fatalf("%s took %v, want within %v (submit timeout 5 s)", what, took, within)
		}
		return r
	}
	submit("before", issue(1*state.Yuan), 2*time.Second)

	// The leader stops answering (SIGSTOP): the forward in flight to it is
	// re-sent to the new leader once the follower knows one.
	if err := tn.ln.Pause(leader); err != nil {
		t.Fatal(err)
	}
	submit("leader stopped", issue(2*state.Yuan), 3*time.Second)
	// Killed for good, and another submission.
	if err := tn.ln.Kill(leader); err != nil {
		t.Fatal(err)
	}
	last := submit("leader killed", issue(3*state.Yuan), 3*time.Second)

	// The old leader returns as a follower: replicated to within about a
	// second of its API answering (Raft's backoff towards it, and libp2p's
	// dial backoff, do not delay it).
	if err := tn.ln.Start(leader); err != nil {
		t.Fatal(err)
	}
	nn, _ := tn.ln.Node(leader)
	deadline := time.Now().Add(30 * time.Second)
	var up time.Time
	for time.Now().Before(deadline) {
		if up.IsZero() {
			if resp, err := http.Get(nn.API + "/healthz"); err == nil {
				resp.Body.Close()
				up = time.Now()
			}
		} else if st, err := tn.statusJSON(leader); err == nil && st.GetNode().GetAppliedIndex() >= last.GetLogIndex() {
			took := time.Since(up)
			t.Logf("restarted %s applied index %d %v after its API answered", leader, last.GetLogIndex(), took.Round(time.Millisecond))
			if took > 1500*time.Millisecond {
				t.Fatalf("restarted follower replicated to after %v, want about a second", took)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("restarted %s never caught up to index %d", leader, last.GetLogIndex())
}
