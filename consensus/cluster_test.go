package consensus_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// cluster runs consensus nodes in-process, each with its own real Pebble
// ledger, raft-boltdb log and TCP transport on loopback.
type cluster struct {
	t     *testing.T
	net   *statetest.Net
	dir   string
	addrs map[string]string // node name → host:port
	nodes map[string]*member
	mu    sync.Mutex
	// tweak, if set, adjusts every node's config.
	tweak func(name, dir string, cfg *consensus.Config)
}

type member struct {
	name  string
	store *state.Store
	node  *consensus.Node
	trans *raft.NetworkTransport
}

// newCluster builds a genesis whose members are the given voters and
// regulators, with ports reserved on loopback.
func newCluster(t *testing.T, voters, regulators int) *cluster {
	n := statetest.NewNet(t, t.Name())
	c := &cluster{t: t, net: n, dir: t.TempDir(), addrs: map[string]string{}, nodes: map[string]*member{}}
	var nodes []*statepb.Node
	for i := 0; i < voters+regulators; i++ {
		role, name := statepb.NodeRole_NODE_ROLE_VOTER, fmt.Sprintf("v%d", i)
		if i >= voters {
			role, name = statepb.NodeRole_NODE_ROLE_REGULATOR, fmt.Sprintf("r%d", i-voters)
		}
		c.addrs[name] = freeAddr(t)
		nodes = append(nodes, &statepb.Node{Name: name, Role: role, PublicKey: n.Pub("node/" + name), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Operator: name})
	}
	n.Genesis.Nodes = nodes
	h, err := state.GenesisHash(n.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	n.Signer.GenesisHash = h
	t.Cleanup(c.stopAll)
	return c
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (c *cluster) start(name string, bootstrap bool) *member {
	c.t.Helper()
	m, err := c.tryStart(name, bootstrap)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// tryStart starts a node and returns New's error (the ledger and
// transport it opened are closed again).
func (c *cluster) tryStart(name string, bootstrap bool) (*member, error) {
	t := c.t
	t.Helper()
	dir := filepath.Join(c.dir, name)
	store, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.InitGenesis(c.net.Genesis); err != nil {
		t.Fatal(err)
	}
	trans, err := raft.NewTCPTransport(c.addrs[name], nil, 8, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := consensus.Config{
		Dir: filepath.Join(dir, "raft"), ID: name, Store: store, Transport: trans, Logger: quiet(),
		AddressOf: func(m *statepb.Node) (raft.ServerAddress, error) {
			return raft.ServerAddress(c.addrs[m.GetName()]), nil
		},
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 200 * time.Millisecond,
	}
	if c.tweak != nil {
		c.tweak(name, dir, &cfg)
	}
	node, err := consensus.New(cfg)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, err
	}
	if bootstrap {
		if err := node.Bootstrap(c.net.Genesis.GetNodes()); err != nil {
			t.Fatal(err)
		}
	}
	m := &member{name: name, store: store, node: node, trans: trans}
	c.mu.Lock()
	c.nodes[name] = m
	c.mu.Unlock()
	return m, nil
}

func (c *cluster) startAll() {
	for _, n := range c.net.Genesis.GetNodes() {
		c.start(n.GetName(), true)
	}
}

func (c *cluster) stop(name string) {
	c.mu.Lock()
	m := c.nodes[name]
	delete(c.nodes, name)
	c.mu.Unlock()
	if m == nil {
		return
	}
	if err := m.node.Shutdown(); err != nil {
		c.t.Logf("shutdown %s: %v", name, err)
	}
	m.trans.Close()
	m.store.Close()
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	var names []string
	for n := range c.nodes {
		names = append(names, n)
	}
	c.mu.Unlock()
	for _, n := range names {
		c.stop(n)
	}
}

// leader waits for a ready leader.
func (c *cluster) leader() *member {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, m := range c.nodes {
			if m.node.IsReadyLeader() {
				c.mu.Unlock()
				return m
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader within 10s")
	return nil
}

// submit sends txs to the current leader, retrying across leader changes
// with the same bytes (safe: duplicates return the first outcome).
func (c *cluster) submit(txs ...[]byte) []*statepb.TxResult {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.leader().node.Submit(ctx, txs)
		cancel()
		if err == nil {
			return res
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("submit: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// converge waits until every running node has applied at least index and
// all have the same state hash at the same applied index.
func (c *cluster) converge(index uint64) []byte {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		var hash []byte
		same, caught := true, true
		var applied uint64
		for _, m := range c.nodes {
			meta := m.store.Meta()
			if meta.GetAppliedIndex() < index {
				caught = false
			}
			if hash == nil {
				hash, applied = meta.GetStateHash(), meta.GetAppliedIndex()
			} else if meta.GetAppliedIndex() != applied || !bytes.Equal(hash, meta.GetStateHash()) {
				same = false
			}
		}
		c.mu.Unlock()
		if caught && same {
			return hash
		}
		if time.Now().After(deadline) {
			c.mu.Lock()
			for name, m := range c.nodes {
				c.t.Logf("%s: applied %d hash %x", name, m.store.Meta().GetAppliedIndex(), m.store.Meta().GetStateHash()[:6])
			}
			c.mu.Unlock()
			c.t.Fatalf("nodes did not converge on index ≥ %d", index)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestReplicatesAndAgrees(t *testing.T) {
	c := newCluster(t, 3, 1)
	c.startAll()
	res := c.submit(c.net.Issue(t, "icbc", 1_000_000*state.Yuan), c.net.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 4, ""))
	for i, r := range res {
		if r.GetCode() != statepb.Code_CODE_OK {
			t.Fatalf("tx %d: %s %s", i, r.GetCode(), r.GetMessage())
		}
	}
	c.converge(res[1].GetLogIndex())
	for name, m := range c.nodes {
		w, err := m.store.Wallet(statetest.Reserve("icbc"))
		if err != nil || w.GetBalanceFen() != 1_000_000*state.Yuan {
			t.Fatalf("%s: reserve %v %v", name, w.GetBalanceFen(), err)
		}
		statetest.Audit(t, m.store)
	}
}
