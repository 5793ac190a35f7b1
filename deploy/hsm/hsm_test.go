package hsm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/client/keystore/pkcs11key"
	"github.com/dcep/dcep/client/keystore/pkcs11key/softhsmtest"
	"github.com/dcep/dcep/deploy/localnet"
	"github.com/dcep/dcep/internal/testports"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
)

func build(t *testing.T, dir string) (dcepd, dcep string) {
	t.Helper()
	for _, cmd := range []string{"dcepd", "dcep"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "github.com/dcep/dcep/cmd/"+cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", cmd, err, out)
		}
	}
	return filepath.Join(dir, "dcepd"), filepath.Join(dir, "dcep")
}

// moveNodeKeys imports every node's identity key into the token, points
// its config.toml at the pkcs11: URI (PIN from a file, as an operator would
// keep it) and deletes the key file.
func moveNodeKeys(t *testing.T, ln *localnet.Network, tk *softhsmtest.Token, pinFile string) {
	t.Helper()
	nodeKey := regexp.MustCompile(`(?m)^node_key = .*$`)
	for _, nn := range ln.Info.Nodes {
		dir := filepath.Join(ln.Dir, "nodes", nn.Name)
		keyPath := filepath.Join(dir, "keys", "node.key")
		key, err := netgen.LoadNodeKey(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		uri := fmt.Sprintf("pkcs11:token=%s;object=node-%s?module-path=%s&pin-source=file:%s", tk.Label, nn.Name, tk.Module, pinFile)
		if err := pkcs11key.Import(uri, key); err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(dir, "config.toml")
		cfg, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg = nodeKey.ReplaceAll(cfg, []byte("node_key = '"+uri+"'"))
		if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(keyPath); err != nil {
			t.Fatal(err)
		}
	}
}

// moveOperatorKey imports an operator key into the token and deletes it
// from the keystore, returning its URI.
func moveOperatorKey(t *testing.T, keysDir string, k *keystore.Key, tk *softhsmtest.Token) string {
	t.Helper()
	uri := tk.URI("operator-" + k.Name)
	if err := pkcs11key.Import(uri, k.Private); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(keysDir, k.Name+".key")); err != nil {
		t.Fatal(err)
	}
	return uri
}

// TestNetworkWithKeysInSoftHSM runs a real network (six banks' and the
// central bank's voters and a regulator, each a dcepd process) whose node
// identities are in a SoftHSM2 token, and with the dcep CLI signing through
// the token issues to icbc (central bank key in the token), opens a wallet
// and exchanges into it (icbc's key in the token), then pays on from it.
func TestNetworkWithKeysInSoftHSM(t *testing.T) {
	tk := softhsmtest.New(t)
	t.Logf("SoftHSM2 %s", strings.TrimSpace(softhsmtest.Version()))
	dir := t.TempDir()
	dcepd, dcep := build(t, t.TempDir())
	p2p, err := testports.Range(8)
	if err != nil {
		t.Fatal(err)
	}
	api, err := testports.Range(8)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := localnet.Create(dir, dcepd, localnet.Options{
		ChainID: "dcep-hsm", Regulators: 1, P2PPort: p2p, APIPort: api,
		Raft:   node.RaftConfig{HeartbeatMs: 300, ElectionMs: 300, LeaderLeaseMs: 200, CommitMs: 20},
		Limits: node.LimitsConfig{RatePerSec: -1, SubmitTimeoutMs: 10000},
	})
	if err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(dir, "token.pin")
	if err := os.WriteFile(pinFile, []byte(tk.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	moveNodeKeys(t, ln, tk, pinFile)
	keysDir := filepath.Join(dir, "keys")
	ks, err := keystore.Open(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ks.CentralBank()
	if err != nil {
		t.Fatal(err)
	}
	icbc, err := ks.Bank("icbc")
	if err != nil {
		t.Fatal(err)
	}
	cbURI, icbcURI := moveOperatorKey(t, keysDir, cb, tk), moveOperatorKey(t, keysDir, icbc, tk)

	t.Cleanup(func() {
		for _, nn := range ln.Info.Nodes {
			_ = ln.Kill(nn.Name)
		}
		if t.Failed() {
			for _, nn := range ln.Info.Nodes {
				if b, err := os.ReadFile(ln.LogPath(nn.Name)); err == nil {
					t.Logf("--- %s log tail:\n%s", nn.Name, tail(string(b), 250))
				}
			}
		}
	})
	// One process after another, each until it has logged in to the token
	// and loaded its identity: SoftHSM2's file object store is not safe
	// for several processes logging in at the same instant (a node started
	// beside others saw CKR_USER_PIN_NOT_INITIALIZED, or no token, while
	// another rewrote the token file). A bank's node has its own HSM
	// slot; eight nodes on one file token is this test's shortcut.
	for _, nn := range ln.Info.Nodes {
		if err := ln.Start(nn.Name); err != nil {
			t.Fatal(err)
		}
		waitLogged(t, ln.LogPath(nn.Name), "node started", 30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, nn := range ln.Info.Nodes {
		if err := ln.WaitReady(ctx, nn.Name); err != nil {
			t.Fatalf("%s not ready with its identity in the token: %v", nn.Name, err)
		}
	}

	cli := func(args ...string) (string, error) {
		cmd := exec.Command(dcep, append([]string{"--node", ln.Info.Nodes[1].API, "--home", keysDir}, args...)...)
		cmd.Env = append(os.Environ(), "DCEP_DEV_DIR="+filepath.Join(dir, "no-dev"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("dcep %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// The keys are gone from the keystore: without --key the CLI cannot sign.
	if out, err := cli("issue", "--bank", "icbc", "--amount", "1000"); err == nil || !strings.Contains(out, "KEY_NOT_FOUND") {
		t.Fatalf("issue without --key: %v\n%s", err, out)
	}
	must("--key", cbURI, "issue", "--bank", "icbc", "--amount", "1000000")
	must("--key", icbcURI, "wallet", "create", "alice", "--bank", "icbc", "--tier", "4")
	must("--key", icbcURI, "wallet", "create", "bob", "--bank", "icbc", "--tier", "4")
	must("--key", icbcURI, "exchange", "--bank", "icbc", "--to", "alice", "--amount", "500")
	must("pay", "--from", "alice", "--to", "bob", "--amount", "120.50")

	var bal []struct {
		BalanceFen uint64 `json:"balance_fen"`
	}
	if err := json.Unmarshal([]byte(must("--json", "balance", "alice", "bob")), &bal); err != nil || len(bal) != 2 {
		t.Fatalf("balance: %v %v", err, bal)
	}
	if bal[0].BalanceFen != 37_950 || bal[1].BalanceFen != 12_050 {
		t.Fatalf("balances alice %d, bob %d fen; want 37950, 12050", bal[0].BalanceFen, bal[1].BalanceFen)
	}
	must("audit", "supply")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitLogged waits until the log at path holds line, or fails.
func waitLogged(t *testing.T, path, line string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), line) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s: no %q within %v:\n%s", path, line, timeout, tail(string(b), 250))
}
