package localnet_test

// Membership through the CLI with real processes (issue 16): `dcep member
// list|remove|add` signed with the central bank's key from the generated
// keystore; a removed node logs it and exits; added again, it rejoins.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// dcepCLI builds the dcep client binary once per test binary, beside dcepd.
func dcepCLI(t *testing.T) string {
	t.Helper()
	dcepd(t)
	cliOnce.Do(func() {
		cliPath = filepath.Join(binDir, "dcep")
		out, err := exec.Command("go", "build", "-o", cliPath, "github.com/dcep/dcep/cmd/dcep").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("go build dcep: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// cli runs dcep against one node with the network's keystore.
func (tn *testNet) cli(node string, args ...string) (string, error) {
	nn, _ := tn.ln.Node(node)
	argv := append([]string{"--node", nn.API, "--home", filepath.Join(tn.ln.Dir, "keys")}, args...)
	out, err := exec.Command(dcepCLI(tn.t), argv...).CombinedOutput()
	return string(out), err
}

func (tn *testNet) memberNames(node string) []string {
	tn.t.Helper()
	out, err := tn.cli(node, "--json", "member", "list")
	if err != nil {
		tn.t.Fatalf("member list: %v\n%s", err, out)
	}
	var ms []memberJSON
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		tn.t.Fatalf("member list JSON: %v\n%s", err, out)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name+"/"+m.Role)
	}
	return names
}

type memberJSON struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	PeerID string `json:"peer_id"`
}

// TestMemberRemoveAndAdd: the central bank removes a voter with `dcep
// member remove`; the removed process logs REMOVED and exits 0, the others
// no longer list it and go on committing; `dcep member add` with its node
// key brings it back, and after a restart it catches up with the rest.
func TestMemberRemoveAndAdd(t *testing.T) {
	dcepCLI(t)
	tn := startNet(t)
	tn.signInAsRegulator()
	if got := tn.memberNames("icbc"); len(got) != 8 || !strings.Contains(strings.Join(got, " "), "ccb/voter") {
		t.Fatalf("member list: %v", got)
	}
	out, err := tn.cli("icbc", "member", "remove", "ccb")
	if err != nil {
		t.Fatalf("member remove: %v\n%s", err, out)
	}
	t.Logf("dcep member remove ccb: %s", strings.TrimSpace(out))
	deadline := time.Now().Add(20 * time.Second)
	for tn.ln.Running("ccb") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	exited, exitErr := tn.ln.Exited("ccb")
	if !exited || exitErr != nil {
		t.Fatalf("removed node: exited %v, %v", exited, exitErr)
	}
	logRaw, _ := os.ReadFile(tn.ln.LogPath("ccb"))
	if !strings.Contains(string(logRaw), "REMOVED: this node is no longer a member") {
		t.Fatalf("removed node did not log its removal:\n%s", tail(logRaw, 2000))
	}
	// member list shows what the asked node's ledger records (Status, not
	// a linearizable read): abc may not have applied the removal yet when
	// the leader acknowledged it.
	for got := ""; ; time.Sleep(100 * time.Millisecond) {
		if got = strings.Join(tn.memberNames("abc"), " "); !strings.Contains(got, "ccb") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ccb still listed after removal: %s", got)
		}
	}

	voters := tn.voters
	tn.voters = nil
	for _, v := range voters {
		if v != "ccb" {
			tn.voters = append(tn.voters, v)
		}
	}
	l := tn.startLoad(2)
	l.waitAcks(30, 60*time.Second)
	l.finish()
	if l.notOK.Load() > 0 {
		t.Fatal("transactions refused after the removal")
	}
	// The last word on a bad request: a name that is not a member.
	if out, err := tn.cli("icbc", "member", "remove", "nobody"); err == nil || !strings.Contains(out, "MEMBER_NOT_FOUND") {
		t.Fatalf("removing a non-member: %v\n%s", err, out)
	}

	nn, _ := tn.ln.Node("ccb")
	out, err = tn.cli("icbc", "member", "add", "ccb", "--role", "voter", "--operator", "ccb",
		"--node-key", filepath.Join(tn.ln.Dir, "nodes", "ccb", "keys", "node.key"), "--addr", nn.P2P)
	if err != nil {
		t.Fatalf("member add: %v\n%s", err, out)
	}
	t.Logf("dcep member add ccb: %s", strings.TrimSpace(out))
	tn.voters = voters
	if err := tn.ln.Start("ccb"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, tn.ln, "ccb")
	// Ready is not "has applied its own re-adding": poll what ccb records.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := tn.memberNames("ccb")
		if len(got) == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list after re-adding: %v", got)
		}
	}
	index, hash := tn.converge(tn.all(), 60*time.Second)
	t.Logf("all 8 nodes at index %d, state hash %x", index, hash[:8])
	tn.supplyEverywhere(tn.all())

	if err := tn.ln.StopAll(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
