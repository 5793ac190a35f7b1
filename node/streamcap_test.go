package node_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
)

// TestOutcomeStreamsCappedPerAddress: one client address can hold at most
// limits.max_streams_per_ip outcome streams (here 2 of 4); its next is
// refused with RATE_LIMITED while another address still gets one, and a
// closed stream gives its slot back. Before the cap, one address took
// every slot.
func TestOutcomeStreamsCappedPerAddress(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1, Tweak: func(cfg *node.Config) {
		cfg.Limits.MaxStreams, cfg.Limits.MaxStreamsPerIP = 4, 2
	}})
	c.StartAll()
	leader := c.WaitLeader()
	c.MustOK(leader, c.Net.Issue(t, "icbc", 100))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from := func(ip string) nodepbconnect.LedgerServiceClient {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		// One connection per stream, as separate clients would.
		hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
		return nodepbconnect.NewLedgerServiceClient(hc, c.URL(leader))
	}
	// open starts a stream and waits for its first block (the slot is held
	// from then on), or returns the refusal.
	// Outcome streams are for institutions (the API's policy): icbc's.
	icbc := c.BankIdentity("icbc")
	tok, err := token.Mint(icbc.Key, icbc.Subject, c.Net.Genesis.GetChainId(), leader, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	open := func(ip string) (cancel func(), err error) {
		sctx, scancel := context.WithCancel(ctx)
		req := connect.NewRequest(&nodepb.StreamOutcomesRequest{FromIndex: 1})
		req.Header().Set("Authorization", "Bearer "+tok)
		s, err := from(ip).StreamOutcomes(sctx, req)
		if err != nil {
			scancel()
			return nil, err
		}
		if !s.Receive() {
			scancel()
			return nil, s.Err()
		}
		return func() { scancel(); _ = s.Close() }, nil
	}
	var held []func()
	defer func() {
		for _, f := range held {
			f()
		}
	}()
	for range 2 {
		f, err := open("127.0.0.1")
		if err != nil {
			t.Fatalf("stream within the per-address cap: %v", err)
		}
		held = append(held, f)
	}
	_, err = open("127.0.0.1")
	wantCode(t, err, connect.CodeResourceExhausted, node.CodeRateLimited)
	t.Logf("third stream from one address: %v", err)
	f, err := open("127.0.0.2")
	if err != nil {
		t.Fatalf("a stream from another address: %v", err)
	}
	held = append(held, f)
	// A closed stream frees its slot.
	held[0]()
	held = held[1:]
	c.Eventually(5*time.Second, "the slot freed", func() error {
		f, err := open("127.0.0.1")
		if err == nil {
			held = append(held, f)
		}
		return err
	})
}
