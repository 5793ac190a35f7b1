// Package nodetest runs dcep networks in-process for tests: every node is a
// real node.Node with its own Pebble ledger, raft-boltdb log and libp2p host
// on loopback, and its own API server.
package nodetest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"github.com/dcep/dcep/internal/testports"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// Cluster is an in-process network.
type Cluster struct {
	T   testing.TB
	Net *statetest.Net
	Dir string
	// Configs per node name; tests may adjust them before Start.
	Configs map[string]*node.Config
	Names   []string

	tweak func(*node.Config)
	now   func() time.Time

	mu    sync.Mutex
	nodes map[string]*node.Node
	procs map[string]*process
}

// Options shape a cluster.
type Options struct {
	Voters, Regulators int
	// Tweak, if set, adjusts each node's config.
	Tweak func(*node.Config)
	// Logs: write node logs to stderr (default: discard).
	Logs bool
	// Genesis, if set, adjusts the genesis before it is hashed (e.g. the
	// offline policy: statetest.Net.EnableOffline).
	Genesis func(*statepb.Genesis)
	// Now, if set, is the clock in-process nodes (Start) stamp ledger time
	// from (node.Options.Now), so tests can move ledger time forward.
	// Nodes run as processes (StartProcess) use the real clock.
	Now func() time.Time
}

// New builds genesis, keys and configs for a network of voters (named
// pboc, icbc, abc, …) and regulators (regulator-1, …), on free loopback
// ports. Nothing runs until Start.
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	n := statetest.NewNet(t, t.Name())
	c := &Cluster{T: t, Net: n, Dir: t.TempDir(), Configs: map[string]*node.Config{}, nodes: map[string]*node.Node{}, procs: map[string]*process{}}
	names := append([]string{"pboc"}, statetest.BankIDs...)
	var members []*statepb.Node
	for i := 0; i < o.Voters+o.Regulators; i++ {
		role, name := statepb.NodeRole_NODE_ROLE_VOTER, ""
		if i < o.Voters {
			name = names[i%len(names)]
			if i >= len(names) {
				name = fmt.Sprintf("%s-%d", name, i)
			}
		} else {
			role, name = statepb.NodeRole_NODE_ROLE_REGULATOR, fmt.Sprintf("regulator-%d", i-o.Voters+1)
		}
		members = append(members, c.addConfig(name, role, o.Tweak))
	}
	n.Genesis.Nodes = members
	if o.Genesis != nil {
		o.Genesis(n.Genesis)
	}
	h, err := state.GenesisHash(n.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	n.Signer.GenesisHash = h
	t.Cleanup(func() {
		c.killProcesses()
		c.StopAll()
	})
	c.tweak = o.Tweak
	c.now = o.Now
	return c
}

// addConfig makes a node's config (free loopback ports, fast Raft
// timeouts) and returns its member record.
func (c *Cluster) addConfig(name string, role statepb.NodeRole, tweak func(*node.Config)) *statepb.Node {
	p2pAddr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", FreePort(c.T))
	cfg := &node.Config{
		Name: name, DataDir: filepath.Join(c.Dir, name), Genesis: "unused", NodeKey: "unused",
		P2PListen: []string{p2pAddr}, APIListen: fmt.Sprintf("127.0.0.1:%d", FreePort(c.T)),
		Raft:   node.RaftConfig{HeartbeatMs: 300, ElectionMs: 300, LeaderLeaseMs: 200, CommitMs: 20},
		Limits: node.LimitsConfig{RatePerSec: -1, SubmitTimeoutMs: 10_000},
	}
	if tweak != nil {
		tweak(cfg)
	}
	c.Configs[name] = cfg
	c.Names = append(c.Names, name)
	m := &statepb.Node{Name: name, Role: role, PublicKey: c.Net.Pub("node/" + name), Addrs: []string{p2pAddr}, Operator: name}
	if role == statepb.NodeRole_NODE_ROLE_REGULATOR {
		m.OperatorKey = c.Net.Pub("operator/" + name)
	}
	return m
}

// AddNode prepares a node that is not in the genesis membership (keys,
// config, ports), to be added by a committed ChangeMembership; it returns
// the member record such a change carries. Start runs it like any other.
func (c *Cluster) AddNode(name string, role statepb.NodeRole) *statepb.Node {
	c.T.Helper()
	return c.addConfig(name, role, c.tweak)
}

// FreePort finds a free loopback TCP port for a node to listen on,
// reserved for this test process until it exits (internal/testports), so
// that a node restarted on it finds it free again.
func FreePort(t testing.TB) int {
	p, err := testports.One()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Key is a node's identity key.
func (c *Cluster) Key(name string) ed25519.PrivateKey { return c.Net.Key("node/" + name) }

// Start starts one node.
func (c *Cluster) Start(name string) *node.Node {
	c.T.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("DCEP_TEST_LOGS") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	nd, err := node.Start(c.Configs[name], node.Options{Key: c.Key(name), Genesis: c.Net.Genesis, Logger: log, Now: c.now})
	if err != nil {
		c.T.Fatalf("start %s: %v", name, err)
	}
	c.mu.Lock()
	c.nodes[name] = nd
	c.mu.Unlock()
	return nd
}

// StartAll starts every node.
func (c *Cluster) StartAll() {
	for _, name := range c.Names {
		c.Start(name)
	}
}

// Stop shuts one node down cleanly.
func (c *Cluster) Stop(name string) {
	c.mu.Lock()
	nd := c.nodes[name]
	delete(c.nodes, name)
	c.mu.Unlock()
	if nd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := nd.Close(ctx); err != nil {
			c.T.Logf("stop %s: %v", name, err)
		}
	}
}

// StopAll stops every running node.
func (c *Cluster) StopAll() {
	for _, name := range c.Running() {
		c.Stop(name)
	}
}

// Node returns a running node.
func (c *Cluster) Node(name string) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// Running lists running node names.
func (c *Cluster) Running() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, name := range c.Names {
		if c.nodes[name] != nil {
			out = append(out, name)
		}
	}
	return out
}

// URL is a node's API base URL.
func (c *Cluster) URL(name string) string { return "http://" + c.Configs[name].APIListen }

// Client is a raw API client for a node, signed in as Picker chooses.
func (c *Cluster) Client(name string) nodepbconnect.LedgerServiceClient {
	return c.sdk(name).API()
}

// WaitLeader waits until some running node is the ready leader and returns
// its name.
func (c *Cluster) WaitLeader() string {
	c.T.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range c.Running() {
			if nd := c.Node(name); nd != nil && nd.Consensus().IsReadyLeader() {
				return name
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.T.Fatal("no leader within 20s")
	return ""
}

// Submit submits through a node's API and fails the test on an RPC error.
func (c *Cluster) Submit(name string, tx []byte) *statepb.TxResult {
	c.T.Helper()
	resp, err := c.Client(name).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
	if err != nil {
		c.T.Fatalf("submit via %s: %v", name, err)
	}
	return resp.Msg.GetResult()
}

// MustOK submits and fails the test unless the outcome is OK.
func (c *Cluster) MustOK(name string, tx []byte) *statepb.TxResult {
	c.T.Helper()
	r := c.Submit(name, tx)
	if r.GetCode() != statepb.Code_CODE_OK {
		c.T.Fatalf("via %s: want OK, got %s: %s", name, r.GetCode().Short(), r.GetMessage())
	}
	return r
}

// Converge waits until every running node has applied at least index and
// all agree on the state hash at the same applied index; it returns it.
func (c *Cluster) Converge(index uint64, timeout time.Duration) []byte {
	c.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var hash []byte
		var applied uint64
		ok := true
		for i, name := range c.Running() {
			m := c.Node(name).Store().Meta()
			if m.GetAppliedIndex() < index {
				ok = false
			}
			if i == 0 {
				hash, applied = m.GetStateHash(), m.GetAppliedIndex()
			} else if m.GetAppliedIndex() != applied || string(m.GetStateHash()) != string(hash) {
				ok = false
			}
		}
		if ok {
			return hash
		}
		if time.Now().After(deadline) {
			for _, name := range c.Running() {
				m := c.Node(name).Store().Meta()
				c.T.Logf("%s: applied %d hash %x", name, m.GetAppliedIndex(), m.GetStateHash()[:6])
			}
			c.T.Fatalf("nodes did not converge on index ≥ %d within %v", index, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
