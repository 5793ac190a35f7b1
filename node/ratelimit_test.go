package node_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// fromAddr is a LedgerService client of url whose connections come from
// the loopback address ip (127.0.0.0/8 is all local on Linux): how a test
// is many clients at many addresses.
func fromAddr(url, ip string) nodepbconnect.LedgerServiceClient {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	return nodepbconnect.NewLedgerServiceClient(hc, url)
}

// TestSubmitRateLimitedPerIdentity: one identity spread over many client
// addresses, each sending one Submit (far under the per-IP rate), is
// refused RATE_LIMITED past its per-identity burst — as the key that signs
// the transactions when the sender is anonymous, and as the signed-in
// caller when every transaction has another signer. Another identity at the
// same addresses still commits. On the code before the per-identity table,
// an anonymous sender was limited per IP only, and a signed-in one at the
// per-IP rate: every one of these was accepted.
func TestSubmitRateLimitedPerIdentity(t *testing.T) {
	const burst, sends = 3, 12
	c := nodetest.New(t, nodetest.Options{Voters: 1, Tweak: func(cfg *node.Config) {
		cfg.Limits.RatePerSec, cfg.Limits.Burst = 1000, 1000
		cfg.Limits.IdentityRatePerSec, cfg.Limits.IdentityBurst = 1, burst
	}})
	c.StartAll()
	name := c.WaitLeader()
	url := c.URL(name)
	missing := []*statepb.Outpoint{{TxId: make([]byte, 32)}}

	// send submits tx from a fresh address; ok: it was answered with an
	// outcome (here a rejection: the input does not exist), not refused.
	addr := 10
	send := func(tx []byte, auth string) (bool, string) {
		t.Helper()
		addr++
		req := connect.NewRequest(&nodepb.SubmitRequest{Tx: tx})
		if auth != "" {
			req.Header().Set("Authorization", "Bearer "+auth)
		}
		resp, err := fromAddr(url, fmt.Sprintf("127.0.0.%d", addr)).Submit(context.Background(), req)
		if err != nil {
			if !strings.Contains(err.Error(), "RATE_LIMITED") {
				t.Fatalf("submit from 127.0.0.%d: %v", addr, err)
			}
			return false, err.Error()
		}
		if resp.Msg.GetResult().GetTxId() == nil {
			t.Fatalf("submit from 127.0.0.%d: no outcome: %v", addr, resp.Msg)
		}
		return true, ""
	}
	check := func(what, wantIn string, tx func(i int) []byte, auth string) {
		t.Helper()
		start := time.Now()
		accepted, refused := 0, 0
		for i := range sends {
			if ok, msg := send(tx(i), auth); ok {
				accepted++
			} else {
				refused++
				if !strings.Contains(msg, wantIn) || !strings.Contains(msg, "identity_rate_per_sec") {
					t.Fatalf("%s: refusal %q does not name %q and the limit", what, msg, wantIn)
				}
			}
		}
		// The bucket refills at 1/s: at most burst + elapsed seconds + 1.
		most := burst + int(time.Since(start).Seconds()) + 1
		if refused == 0 || accepted < burst || accepted > most {
			t.Fatalf("%s: %d accepted, %d refused from %d addresses (want %d..%d accepted)", what, accepted, refused, sends, burst, most)
		}
		t.Logf("%s: %d accepted, %d refused RATE_LIMITED, one submit per address", what, accepted, refused)
	}

	// Anonymous: alice's signed transfers, each from another address.
	check("alice's key, anonymous", "signer key", func(int) []byte {
		return c.Net.Transfer(t, "alice", missing, statetest.Pay("bob", state.Yuan))
	}, "")
	// Another identity is not affected.
	if ok, msg := send(c.Net.Transfer(t, "bob", missing, statetest.Pay("alice", state.Yuan)), ""); !ok {
		t.Fatalf("bob refused after alice's flood: %s", msg)
	}
	// Signed in as bank icbc, each transaction signed by another wallet.
	tok, err := token.Mint(c.Net.Bank("icbc"), token.Subject{Kind: token.KindBank, ID: "icbc"}, c.Net.Genesis.GetChainId(), name, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	check("signed in as bank icbc", "bank:icbc", func(i int) []byte {
		return c.Net.Transfer(t, fmt.Sprintf("w%d", i), missing, statetest.Pay("bob", state.Yuan))
	}, tok)
}
