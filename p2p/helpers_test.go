package p2p

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const loopback = "/ip4/127.0.0.1/tcp/0"

// logBuffer collects a host's log so tests can assert on refusals without
// writing to t.Log from libp2p goroutines that may outlive the test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testNode struct {
	h    *Host
	key  ed25519.PrivateKey
	name string
	logs *logBuffer
	// role is what member() lists the node as (voter unless a test says).
	role Role
}

// testRules is the package's table plus the test protocols, open to every
// member.
var testRules = append(slices.Clone(Rules),
	Rule{echoProto, AnyMember, "test"}, Rule{failProto, AnyMember, "test"},
	Rule{bigProto, AnyMember, "test"}, Rule{stallProto, AnyMember, "test"})

func (n *testNode) member(t *testing.T) Member {
	t.Helper()
	addrs := n.h.Addrs()
	if len(addrs) == 0 {
		t.Fatalf("%s has no listen addresses", n.name)
	}
	m := Member{Name: n.name, PublicKey: n.key.Public().(ed25519.PublicKey), Role: n.role}
	for _, a := range addrs {
		m.Addrs = append(m.Addrs, a.String())
	}
	return m
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newNode starts a host on a loopback port with an empty allowlist.
func newNode(t *testing.T, name string) *testNode {
	t.Helper()
	return newNodeWithKey(t, name, newKey(t))
}

// newNodeWithKey starts a host with a given identity (two processes with one
// key: a duplicate identity).
func newNodeWithKey(t *testing.T, name string, key ed25519.PrivateKey) *testNode {
	t.Helper()
	logs := &logBuffer{}
	h, err := New(Config{
		PrivateKey:  key,
		ListenAddrs: []string{loopback},
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Rules:       testRules,
	})
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return &testNode{h: h, key: key, name: name, logs: logs, role: RoleVoter}
}

// newCluster starts n hosts that all list each other as members.
func newCluster(t *testing.T, n int) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = newNode(t, string(rune('a'+i)))
	}
	members := make([]Member, n)
	for i, nd := range nodes {
		members[i] = nd.member(t)
	}
	for _, nd := range nodes {
		if err := nd.h.SetMembers(members); err != nil {
			t.Fatalf("SetMembers on %s: %v", nd.name, err)
		}
	}
	return nodes
}

// eventually polls cond until it holds or timeout passes; the sleep only
// paces the polling, correctness never depends on it.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
