package localnet_test

// Rolling upgrade and node key rotation with real dcepd processes (issue
// 16). The "new build" is the same binary with DCEP_LEDGER_VERSION_MAX=2:
// it runs ledger versions up to 2, the old one up to 1.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/node/nodepb"
)

// waitExit waits for a node's process to end and returns its log.
func (tn *testNet) waitExit(name string, timeout time.Duration) (string, error) {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for tn.ln.Running(name) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	exited, err := tn.ln.Exited(name)
	if !exited {
		tn.t.Fatalf("%s still running after %v", name, timeout)
	}
	raw, _ := os.ReadFile(tn.ln.LogPath(name))
	return string(raw), err
}

// TestRollingUpgrade: under load, every node but one is restarted on the
// new build, one at a time; the central bank activates ledger version 2
// at an index ahead. The nodes on the new build go past it; the one left
// on the old build stops with a message naming the version, instead of
// applying blocks under rules it does not have. Upgraded in turn, it
// catches up: every node at the same state hash, the supply audit holding.
func TestRollingUpgrade(t *testing.T) {
	dcepCLI(t)
	tn := startNet(t)
	tn.signInAsRegulator()
	tn.ln.Env = map[string][]string{}
	l := tn.startLoad(4)
	l.waitAcks(40, 60*time.Second)
	const laggard = "psbc"
	for _, n := range tn.all() {
		if n == laggard {
			continue
		}
		if err := tn.ln.Stop(n); err != nil {
			t.Fatal(err)
		}
		tn.ln.Env[n] = []string{"DCEP_LEDGER_VERSION_MAX=2"}
		if err := tn.ln.Start(n); err != nil {
			t.Fatal(err)
		}
		waitReady(t, tn.ln, n)
		l.waitAcks(15, 60*time.Second)
	}
	st, err := tn.clients["icbc"].Status(context.Background(), connect.NewRequest(&nodepb.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	at := st.Msg.GetNode().GetAppliedIndex() + 300
	out, err := tn.cli("icbc", "ledger-version", "activate", "--version", "2", "--at", fmt.Sprint(at))
	if err != nil {
		t.Fatalf("ledger-version activate: %v\n%s", err, out)
	}
	t.Logf("dcep ledger-version activate: %s", strings.TrimSpace(out))
	logText, exitErr := tn.waitExit(laggard, 90*time.Second)
	if exitErr == nil || !strings.Contains(logText, "activated ledger version 2 at log index") {
		t.Fatalf("%s on the old build: exit %v, log:\n%s", laggard, exitErr, tail([]byte(logText), 3000))
	}
	t.Logf("%s (old build) stopped: exit %v", laggard, exitErr)
	l.waitAcks(40, 60*time.Second)
	tn.ln.Env[laggard] = []string{"DCEP_LEDGER_VERSION_MAX=2"}
	if err := tn.ln.Start(laggard); err != nil {
		t.Fatal(err)
	}
	waitReady(t, tn.ln, laggard)
	l.waitAcks(20, 60*time.Second)
	acks := l.finish()
	if l.notOK.Load() > 0 {
		t.Fatalf("%d acknowledged transactions were not OK", l.notOK.Load())
	}
	index, hash := tn.converge(tn.all(), 90*time.Second)
	if index < at {
		t.Fatalf("converged at %d, before the activation index %d", index, at)
	}
	t.Logf("all 8 nodes at index %d (past %d), state hash %x; %d acks", index, at, hash[:8], len(acks))
	if err := tn.checkAcks(laggard, acks); err != nil {
		t.Fatal(err)
	}
	tn.supplyEverywhere(tn.all())
	if err := tn.ln.StopAll(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// TestRotateNodeKey: the central bank rotates a voter's node key (dcep key
// rotate --member, with the new key file made on the node's side); the
// process holding the old key logs that its key was rotated and exits;
// restarted with the new key it rejoins (Raft follows its new address)
// and converges. Started again with the old key, it is refused at start
// (the ledger names another key; peers refuse it at the connection).
func TestRotateNodeKey(t *testing.T) {
	tn := startNet(t)
	tn.signInAsRegulator()
	const who = "ccb"
	keyDir := filepath.Join(tn.ln.Dir, "nodes", who, "keys")
	ks, err := keystore.Open(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	// The new key, generated "on the node's host" (a keystore of its own),
	// and rotated in with the CLI as the central bank.
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	newDir := filepath.Join(t.TempDir(), "new-keys")
	nks, err := keystore.Open(newDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nks.Import(keystore.Key{Name: "node", Kind: keystore.KindNode, Private: newKey}); err != nil {
		t.Fatal(err)
	}
	if out, err := tn.cli("icbc", "key", "rotate", "--member", who, "--new-key", nks.Path("node")); err != nil || !strings.Contains(out, "rotated the node key of "+who) {
		t.Fatalf("dcep key rotate --member: %v\n%s", err, out)
	}
	logText, exitErr := tn.waitExit(who, 20*time.Second)
	if exitErr != nil || !strings.Contains(logText, "its member record now names another node key") {
		t.Fatalf("%s after its key was rotated: exit %v, log:\n%s", who, exitErr, tail([]byte(logText), 2000))
	}
	// Restarted with the old key, the node refuses to start: its key no
	// longer matches its member record.
	if err := tn.ln.Start(who); err != nil {
		t.Fatal(err)
	}
	logText, exitErr = tn.waitExit(who, 20*time.Second)
	if exitErr == nil || !strings.Contains(logText, "is not member \"ccb\"'s key in the ledger") {
		t.Fatalf("%s with its old key: exit %v, log:\n%s", who, exitErr, tail([]byte(logText), 2000))
	}
	if _, err := ks.Replace(keystore.Key{Name: "node", Kind: keystore.KindNode, Private: newKey}); err != nil {
		t.Fatal(err)
	}
	if err := tn.ln.Start(who); err != nil {
		t.Fatal(err)
	}
	waitReady(t, tn.ln, who)
	l := tn.startLoad(2)
	l.waitAcks(30, 60*time.Second)
	l.finish()
	if l.notOK.Load() > 0 {
		t.Fatal("transactions refused after the rotation")
	}
	index, hash := tn.converge(tn.all(), 60*time.Second)
	t.Logf("all 8 nodes at index %d, state hash %x", index, hash[:8])
	tn.supplyEverywhere(tn.all())
	if err := tn.ln.StopAll(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
