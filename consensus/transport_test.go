package consensus_test

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// peerProbe is a real raft TCP transport listening where a stopped member
// listened: it records every AppendEntries that arrives and answers each
// RPC with an error, so the sender sees the member as still unreachable.
type peerProbe struct {
	tr   *raft.NetworkTransport
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  []raft.AppendEntriesRequest
}

func newPeerProbe(t *testing.T, addr string) *peerProbe {
	t.Helper()
	var tr *raft.NetworkTransport
	var err error
	for i := 0; i < 50; i++ { // the stopped member's port may take a moment to free
		if tr, err = raft.NewTCPTransport(addr, nil, 2, time.Second, io.Discard); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("probe on %s: %v", addr, err)
	}
	p := &peerProbe{tr: tr, done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-p.done:
				return
			case rpc := <-tr.Consumer():
				if ae, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
					p.mu.Lock()
					p.got = append(p.got, raft.AppendEntriesRequest{RPCHeader: ae.RPCHeader, Term: ae.Term})
					p.mu.Unlock()
				}
				rpc.Respond(nil, errors.New("probe: not a raft member"))
			}
		}
	}()
	return p
}

// appends lists the AppendEntries received from sender in term.
func (p *peerProbe) appends(sender string, term uint64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ae := range p.got {
		if string(ae.ID) == sender && ae.Term == term {
			n++
		}
	}
	return n
}

func (p *peerProbe) close() {
	close(p.done)
	p.wg.Wait()
	_ = p.tr.Close()
}

// TestDeposedLeaderStopsResending: the transport retries a leader's
// AppendEntries to a member that went away, so the member hears the leader
// at once when it is back; but once the node no longer leads that term it
// sends none (defect 9, issue 14). Before, the retry went on for up to
// 5 min after the node stepped down, and a member back in that term took
// the deposed node for its leader: it reset its election timer and refused
// other candidates "since we have a leader". A probe listening where a
// stopped member listened sees what arrives.
func TestDeposedLeaderStopsResending(t *testing.T) {
	c := newCluster(t, 3, 0)
	c.startAll()
	l := c.leader()
	term := l.node.Status().Term
	var followers []string
	for _, n := range c.net.Genesis.GetNodes() {
		if n.GetName() != l.name {
			followers = append(followers, n.GetName())
		}
	}

	// While it leads: a member gone for longer than Raft's backoff takes to
	// grow hears the leader within a few retry intervals of its return.
	c.stop(followers[0])
	time.Sleep(1500 * time.Millisecond)
	if st := l.node.Status(); st.State != raft.Leader || st.Term != term {
		t.Fatalf("%s no longer leads term %d with one of three members away: %v term %d", l.name, term, st.State, st.Term)
	}
	p := newPeerProbe(t, c.addrs[followers[0]])
	deadline := time.Now().Add(2 * time.Second)
	for p.appends(l.name, term) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.appends(l.name, term) == 0 {
		t.Fatalf("the leader's AppendEntries did not reach the returning member within 2 s")
	}
	p.close()

	// Quorum lost: the leader steps down (lease); from then on nothing of
	// its term may be sent.
	c.stop(followers[1])
	deadline = time.Now().Add(5 * time.Second)
	for l.node.Status().State == raft.Leader && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := l.node.Status(); st.State == raft.Leader {
		t.Fatalf("%s still leads without a quorum", l.name)
	}
	time.Sleep(300 * time.Millisecond)
	for _, f := range followers {
		p := newPeerProbe(t, c.addrs[f])
		time.Sleep(1500 * time.Millisecond)
		n := p.appends(l.name, term)
		p.close()
		if n != 0 {
			t.Errorf("%s, no longer leader, sent %d AppendEntries of term %d to %s after stepping down", l.name, n, term, f)
		}
	}
}
