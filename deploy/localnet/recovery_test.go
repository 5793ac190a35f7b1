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
	"encoding/json"
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

// TestQuorumLost: four of seven voters are lost for good (killed, disks
// deleted), so the three left cannot commit. The central bank signs the
// removal of the four (`dcep recovery order`); a tampered order is refused;
// the survivor whose log ends last is recovered with it (`dcepd recover`),
// the other survivors are re-seeded from it, and the network of three
// voters and the regulator commits again, with the four removed in its
// ledger, every earlier acknowledged transaction kept, equal state hashes
// and the supply audit holding.
func TestQuorumLost(t *testing.T) {
	dcepCLI(t)
	tn := startNet(t)
	l := tn.startLoad(4)
	l.waitAcks(60, 60*time.Second)
	acks := l.finish()
	tn.converge(tn.all(), 60*time.Second)
	survivors, lost := []string{"icbc", "abc", "boc"}, []string{"pboc", "ccb", "bocom", "psbc"}
	for _, n := range lost {
		if err := tn.ln.Kill(n); err != nil {
			t.Fatal(err)
		}
		tn.wipe(n)
	}
	order := filepath.Join(t.TempDir(), "recovery.json")
	if out, err := tn.cli("icbc", "recovery", "order", "--remove", strings.Join(lost, ","), "--out", order); err != nil {
		t.Fatalf("recovery order: %v\n%s", err, out)
	}
	for _, n := range append(survivors, tn.reg) {
		if err := tn.ln.Stop(n); err != nil {
			t.Fatal(err)
		}
	}
	// Which survivor's log ends last.
	type pos struct {
		Applied  uint64 `json:"ledger_applied_index"`
		Index    uint64 `json:"log_last_index"`
		Term     uint64 `json:"log_last_term"`
		Nodename string `json:"node"`
	}
	var best pos
	for _, n := range survivors {
		out, err := tn.dcepdCmd("recover", "--inspect", "--config", tn.config(n))
		if err != nil {
			t.Fatalf("%s: recover --inspect: %v\n%s", n, err, out)
		}
		var p pos
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("%s: %v: %s", n, err, out)
		}
		if p.Term > best.Term || p.Term == best.Term && p.Index > best.Index {
			best = p
		}
	}
	chosen := best.Nodename
	t.Logf("recovering %s (log ends at %d, term %d; ledger at %d)", chosen, best.Index, best.Term, best.Applied)
	// A tampered order is refused, and changes nothing.
	raw, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		ChainID string   `json:"chain_id"`
		Remove  []string `json:"remove"`
		Txs     [][]byte `json:"txs"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	bad := o
	bad.Txs = append([][]byte{}, o.Txs...)
	bad.Txs[0] = bytes.Clone(o.Txs[0])
	bad.Txs[0][len(bad.Txs[0])-1] ^= 1 // the signature's last byte
	badPath := filepath.Join(t.TempDir(), "tampered.json")
	if b, _ := json.Marshal(bad); os.WriteFile(badPath, b, 0o600) != nil {
		t.Fatal("write tampered order")
	}
	if out, err := tn.dcepdCmd("recover", "--config", tn.config(chosen), badPath); err == nil || !strings.Contains(out, "recovery order refused") {
		t.Fatalf("tampered order: %v\n%s", err, out)
	} else {
		t.Logf("tampered order refused: %s", strings.TrimSpace(out))
	}
	out, err := tn.dcepdCmd("recover", "--config", tn.config(chosen), order)
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	t.Logf("dcepd recover: %s", strings.TrimSpace(out))
	// Every other survivor is re-seeded from the recovered one.
	seed := filepath.Join(t.TempDir(), "seed.snap")
	if out, err := tn.dcepdCmd("snapshot", "save", seed, "--config", tn.config(chosen)); err != nil {
		t.Fatalf("snapshot save (stopped): %v\n%s", err, out)
	}
	for _, n := range append(survivors, tn.reg) {
		if n == chosen {
			continue
		}
		tn.wipe(n)
		if out, err := tn.dcepdCmd("snapshot", "restore", seed, "--config", tn.config(n)); err != nil {
			t.Fatalf("%s: restore: %v\n%s", n, err, out)
		}
	}
	for _, n := range append(survivors, tn.reg) {
		if err := tn.ln.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range append(survivors, tn.reg) {
		waitReady(t, tn.ln, n)
	}
	tn.voters = survivors
	remaining := append(append([]string{}, survivors...), tn.reg)
	if got := tn.memberNames(chosen); len(got) != 4 {
		t.Fatalf("members after recovery: %v", got)
	}
	for _, n := range remaining {
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
	index, hash := tn.converge(remaining, 90*time.Second)
	t.Logf("3 voters + regulator at index %d, state hash %x", index, hash[:8])
	tn.supplyEverywhere(remaining)
	if err := tn.ln.StopAll(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
