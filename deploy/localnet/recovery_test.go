package localnet_test

// Backup and disaster recovery with real dcepd processes (issue 16,
// docs/operations.md "Backup and recovery"): a backup saved from a live
// node and verified; a minority of voters lost (one restored from the
// backup, one from nothing); every node lost (a new network from the
// backup). Each ends with every node at the same state hash and the supply
// audit holding on every node.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
)

// dcepdCmd runs the dcepd binary with args and returns its output.
func (tn *testNet) dcepdCmd(args ...string) (string, error) {
	out, err := exec.Command(tn.ln.Bin, args...).CombinedOutput()
	return string(out), err
}

func (tn *testNet) config(name string) string {
	nn, _ := tn.ln.Node(name)
	return nn.Config
}

// wipe deletes a node's data directory, as a lost disk would.
func (tn *testNet) wipe(name string) {
	tn.t.Helper()
	if err := os.RemoveAll(tn.ln.DataDir(name)); err != nil {
		tn.t.Fatal(err)
	}
}

// supplyEverywhere checks the supply audit on every node and that they
// agree on what is outstanding.
func (tn *testNet) supplyEverywhere(names []string) uint64 {
	tn.t.Helper()
	var first uint64
	for i, n := range names {
		resp, err := tn.clients[n].Supply(context.Background(), connect.NewRequest(&nodepb.SupplyRequest{Audit: true}))
		if err != nil {
			tn.t.Fatalf("%s: supply: %v", n, err)
		}
		if !resp.Msg.GetInvariantHolds() {
			tn.t.Fatalf("%s: supply invariant does not hold: %s", n, resp.Msg.GetInvariantError())
		}
		if i == 0 {
			first = resp.Msg.GetOutstandingFen()
		}
		if resp.Msg.GetOutstandingFen() != first || first == 0 {
			tn.t.Fatalf("%s: outstanding %d, %s has %d", n, resp.Msg.GetOutstandingFen(), names[0], first)
		}
	}
	return first
}

func (tn *testNet) all() []string { return append(append([]string{}, tn.voters...), tn.reg) }

// saveBackup saves and verifies a backup of a running node.
func (tn *testNet) saveBackup(name, file string) string {
	tn.t.Helper()
	out, err := tn.dcepdCmd("snapshot", "save", file, "--config", tn.config(name))
	if err != nil {
		tn.t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	tn.t.Logf("dcepd snapshot save (%s, running): %s", name, strings.TrimSpace(out))
	out, err = tn.dcepdCmd("snapshot", "verify", file, "--config", tn.config(name))
	if err != nil {
		tn.t.Fatalf("snapshot verify: %v\n%s", err, out)
	}
	return out
}

// TestBackupAndMinorityLoss: a backup saved from a running node under
// load verifies; a damaged copy and one of another network do not; two
// voters lose their disks (kill -9, data dir deleted): one is restored from
// the backup, the other starts from nothing; the network converges.
func TestBackupAndMinorityLoss(t *testing.T) {
	tn := startNet(t)
	l := tn.startLoad(4)
	l.waitAcks(80, 60*time.Second)
	backup := filepath.Join(t.TempDir(), "icbc.snap")
	tn.saveBackup("icbc", backup)

	// A flipped byte anywhere is refused, naming why.
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(raw)
	bad[len(bad)/2] ^= 0x40
	badPath := filepath.Join(t.TempDir(), "bad.snap")
	if err := os.WriteFile(badPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := tn.dcepdCmd("snapshot", "verify", badPath); err == nil || !strings.Contains(out, "snapshot") {
		t.Fatalf("damaged backup verified: %v\n%s", err, out)
	} else {
		t.Logf("damaged backup refused: %s", strings.TrimSpace(out))
	}
	// A backup is restored only into an empty data dir.
	if out, err := tn.dcepdCmd("snapshot", "restore", backup, "--config", tn.config("abc")); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("restore over a live data dir: %v\n%s", err, out)
	}

	// Two of seven voters lose their disks.
	lost := []string{}
	for _, v := range tn.voters {
		if v != "icbc" && len(lost) < 2 && v != tn.leader(10*time.Second, "") {
			lost = append(lost, v)
		}
	}
	for _, v := range lost {
		if err := tn.ln.Kill(v); err != nil {
			t.Fatal(err)
		}
		tn.wipe(v)
	}
	l.waitAcks(60, 60*time.Second)
	out, err := tn.dcepdCmd("snapshot", "restore", backup, "--config", tn.config(lost[0]))
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	t.Logf("%s restored from the backup: %s", lost[0], strings.TrimSpace(out))
	for _, v := range lost {
		if err := tn.ln.Start(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range lost {
		waitReady(t, tn.ln, v)
	}
	l.waitAcks(60, 60*time.Second)
	acks := l.finish()
	if l.notOK.Load() > 0 {
		t.Fatalf("%d acknowledged transactions were not OK", l.notOK.Load())
	}
	index, hash := tn.converge(tn.all(), 90*time.Second)
	t.Logf("all 8 nodes at index %d, state hash %x (%d acks)", index, hash[:8], len(acks))
	for _, v := range lost {
		if err := tn.checkAcks(v, acks); err != nil {
			t.Fatal(err)
		}
	}
	tn.supplyEverywhere(tn.all())
	if err := tn.ln.StopAll(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// TestEveryNodeLost: a backup is saved from a running node; then every
// node is killed and its data dir deleted. Each is restored from the same
// backup with --new-network and started: the new network continues the
// same chain from the backup's index, takes new transactions, and every
// node agrees.
func TestEveryNodeLost(t *testing.T) {
	tn := startNet(t)
	l := tn.startLoad(4)
	l.waitAcks(60, 60*time.Second)
	acks := l.finish()
	backup := filepath.Join(t.TempDir(), "backup.snap")
	tn.saveBackup("boc", backup)
	before, err := tn.clients["boc"].Status(context.Background(), connect.NewRequest(&nodepb.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tn.all() {
		if err := tn.ln.Kill(n); err != nil {
			t.Fatal(err)
		}
		tn.wipe(n)
	}
	for _, n := range tn.all() {
		if out, err := tn.dcepdCmd("snapshot", "restore", backup, "--new-network", "--config", tn.config(n)); err != nil {
			t.Fatalf("%s: restore: %v\n%s", n, err, out)
		}
	}
	if err := tn.ln.StartAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range tn.all() {
		waitReady(t, tn.ln, n)
	}
	// Everything acknowledged before the backup is there.
	for _, n := range []string{"icbc", tn.reg} {
		if err := tn.checkAcks(n, acks); err != nil {
			t.Fatal(err)
		}
	}
	l = tn.startLoadNamed(3, "after-")
	l.waitAcks(60, 60*time.Second)
	l.finish()
	if l.notOK.Load() > 0 {
		t.Fatalf("%d transactions after the recovery were not OK", l.notOK.Load())
	}
	index, hash := tn.converge(tn.all(), 90*time.Second)
	t.Logf("new network: all 8 nodes at index %d (backup at %d), state hash %x", index, before.Msg.GetNode().GetAppliedIndex(), hash[:8])
	if index <= before.Msg.GetNode().GetAppliedIndex() {
		t.Fatalf("new network at %d, not past the backup's %d", index, before.Msg.GetNode().GetAppliedIndex())
	}
	tn.supplyEverywhere(tn.all())
	if err := tn.ln.StopAll(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
