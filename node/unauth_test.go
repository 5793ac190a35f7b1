package node_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// unauthTxs is how many bad-signature transactions TestUnauthenticatedInputCostsNoState submits.
const unauthTxs = 100_000

// TestUnauthenticatedInputCostsNoState submits 100,000 transactions with
// bad signatures (a valid transfer's signature over other bodies) to a
// real cluster, half through the leader and half through a follower, and
// checks the bound of state/DESIGN.md ("Bounded growth"): every one is
// refused SIGNATURE_INVALID, none enters the log (no node's applied index
// moves), the hashed state of every node is exactly what it was (records
// and bytes), and Pebble's files grow by less than 1 MiB. On the old code
// they all entered the log and each left its rejection in r: forever.
func TestUnauthenticatedInputCostsNoState(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Tweak: func(cfg *node.Config) {
		cfg.Limits.RatePerSec = -1 // one test client sends everything
	}})
	c.StartAll()
	leader := c.WaitLeader()
	follower := c.Names[0]
	if follower == leader {
		follower = c.Names[1]
	}
	c.MustOK(leader, c.Net.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 4, ""))
	idx := c.MustOK(leader, c.Net.Register(t, "icbc", "bob", statepb.WalletKind_WALLET_KIND_PERSONAL, 4, "")).GetLogIndex()
	c.Converge(idx, 10*time.Second)

	type footprint struct {
		applied, records, bytes, disk uint64
	}
	measure := func() map[string]footprint {
		out := map[string]footprint{}
		for _, name := range c.Names {
			s := c.Node(name).Store()
			r, b, err := s.Footprint()
			if err != nil {
				t.Fatal(err)
			}
			d, err := s.DiskBytes()
			if err != nil {
				t.Fatal(err)
			}
			out[name] = footprint{s.Meta().GetAppliedIndex(), r, b, d}
		}
		return out
	}
	before := measure()

	// One validly signed transfer; every submission changes its nonce and
	// keeps the signature, so each is a new transaction id with a
	// signature that does not verify.
	var stx statepb.SignedTx
	if err := proto.Unmarshal(c.Net.Transfer(t, "alice", []*statepb.Outpoint{{TxId: make([]byte, 32)}}, statetest.Pay("bob", state.Yuan)), &stx); err != nil {
		t.Fatal(err)
	}
	var body statepb.Tx
	if err := proto.Unmarshal(stx.GetBody(), &body); err != nil {
		t.Fatal(err)
	}
	bad := func(i int) []byte {
		b := proto.Clone(&body).(*statepb.Tx)
		b.Nonce = uint64(1_000_000 + i)
		raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(b)
		out, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&statepb.SignedTx{Body: raw, Signatures: stx.GetSignatures()})
		return out
	}
	var next, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 32 {
		target := leader
		if w%2 == 1 {
			target = follower
		}
		cl := c.Client(target)
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < unauthTxs; i = int(next.Add(1) - 1) {
				resp, err := cl.Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: bad(i)}))
				if err != nil {
					t.Errorf("submit %d via %s: %v", i, target, err)
					return
				}
				if r := resp.Msg.GetResult(); r.GetCode() != statepb.Code_CODE_SIGNATURE_INVALID || r.GetField() != "signatures[0]" {
					t.Errorf("submit %d: %s %q: %s, want SIGNATURE_INVALID at signatures[0]", i, r.GetCode().Short(), r.GetField(), r.GetMessage())
					return
				}
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d bad-signature transactions refused in %v", refused.Load(), time.Since(start).Round(time.Millisecond))

	// A valid transaction still commits, and every node applies it: the
	// log moved by exactly that one entry.
	last := c.MustOK(follower, c.Net.Issue(t, "icbc", state.Yuan)).GetLogIndex()
	c.Converge(last, 10*time.Second)
	after := measure()
	for _, name := range c.Names {
		b, a := before[name], after[name]
		t.Logf("%s: applied %d → %d, hashed records %d → %d, bytes %d → %d, disk %d → %d", name, b.applied, a.applied, b.records, a.records, b.bytes, a.bytes, b.disk, a.disk)
		// The issue adds its records, and each log entry applied meanwhile
		// (the leader's ticks) its block record; nothing else may.
		entries := a.applied - b.applied
		if bound := issueRecords + entryRecords*entries; a.records-b.records > bound {
			t.Errorf("%s: %d hashed records added (bound %d for one issue and %d entries)", name, a.records-b.records, bound, entries)
		}
		if bound := issueBytes + entryBytes*entries; a.bytes-b.bytes > bound {
			t.Errorf("%s: %d hashed bytes added (bound %d for one issue and %d entries): bad signatures left outcomes", name, a.bytes-b.bytes, bound, entries)
		}
		if a.disk > b.disk+1<<20 {
			t.Errorf("%s: Pebble grew %d bytes (bound 1 MiB)", name, a.disk-b.disk)
		}
	}
}

// The bound of state/DESIGN.md ("Bounded growth"), per what the log
// carried: a committed issue adds at most issueRecords hashed records of
// issueBytes (its t: record, the reserve's output, the history entry, the
// bank's day record, the block's r: record, supply and bank); a log entry
// that records nothing (a tick) adds its r: record.
const (
	issueRecords = 8
	issueBytes   = 4096
	entryRecords = 1
	entryBytes   = 256
)
