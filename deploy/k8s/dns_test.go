package k8s

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcep/dcep/deploy/localnet"
	"github.com/dcep/dcep/internal/testports"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
)

// TestNetworkOverDNSNamesAndSecretModes runs a generated network as real
// dcepd processes the way the manifests make pods run: every member's
// address a /dns name (here "localhost", standing for the pods' headless
// Service names, which need a cluster to resolve), and every node key file
// with the modes a Kubernetes Secret volume gives it (0440, in a directory
// others may write) read with node_key_check_perms = false. Every node must
// become ready, which needs the voters to dial each other by name.
func TestNetworkOverDNSNamesAndSecretModes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 dcepd processes")
	}
	bin := filepath.Join(t.TempDir(), "dcepd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dcep/dcep/cmd/dcepd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p2p, err := testports.Range(8)
	if err != nil {
		t.Fatal(err)
	}
	api, err := testports.Range(8)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	net, err := netgen.Generate(dir, netgen.Options{
		ChainID: "dcep-dns", Regulators: 1, Hosts: []string{"localhost"}, APIBind: "127.0.0.1",
		P2PPort: p2p, APIPort: api,
		Raft: node.RaftConfig{HeartbeatMs: 300, ElectionMs: 300, LeaderLeaseMs: 200, CommitMs: 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range net.Nodes {
		if !strings.HasPrefix(n.P2P, "/dns/localhost/tcp/") {
			t.Fatalf("%s: address %s, want /dns/localhost/...", n.Name, n.P2P)
		}
		secretModes(t, n.Config)
	}
	ln, err := localnet.Open(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.StopAll() })
	if err := ln.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, n := range net.Nodes {
		if err := ln.WaitReady(ctx, n.Name); err != nil {
			log, _ := os.ReadFile(ln.LogPath(n.Name))
			t.Fatalf("%s not ready: %v\n%s", n.Name, err, log)
		}
	}
}

// secretModes gives a node's key file a Secret volume's modes and sets
// node_key_check_perms = false in its config; with the check on, the node
// must refuse to start.
func secretModes(t *testing.T, cfgPath string) {
	t.Helper()
	cfg, err := node.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	key := cfg.Path(cfg.NodeKey)
	if err := os.Chmod(key, 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(key), 0o1777); err != nil {
		t.Fatal(err)
	}
	if _, err := netgen.LoadNodeKey(key); err == nil {
		t.Fatalf("%s: checked load accepted a 0440 key in a 1777 directory", key)
	}
	no := false
	cfg.NodeKeyCheckPerms = &no
	raw, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
