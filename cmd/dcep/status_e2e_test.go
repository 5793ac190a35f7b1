package main

// dcep status tells the truth about a network losing nodes (issue 16,
// defect 1): a stopped node is shown UNREACHABLE with the age of its last
// answer and is not counted ready; with fewer than a quorum of voters
// left, status exits 3 (NO_QUORUM) after printing the table; --json
// carries ledger time.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcep/dcep/deploy/localnet"
	"github.com/dcep/dcep/internal/testports"
	"github.com/dcep/dcep/node"
)

func TestStatusUnderNodeLoss(t *testing.T) {
	bin := binaries(t)
	p2p, err := testports.Range(8)
	if err != nil {
		t.Fatal(err)
	}
	api, err := testports.Range(8)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ln, err := localnet.Create(dir, filepath.Join(bin, "dcepd"), localnet.Options{ChainID: "dcep-status", Regulators: 1,
		P2PPort: p2p, APIPort: api,
		Raft: node.RaftConfig{HeartbeatMs: 300, ElectionMs: 300, LeaderLeaseMs: 200, CommitMs: 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, nn := range ln.Info.Nodes {
			_ = ln.Kill(nn.Name)
		}
		if t.Failed() {
			raw, _ := os.ReadFile(ln.LogPath("regulator-1"))
			t.Logf("regulator-1 log tail:\n%s", raw[max(0, len(raw)-3000):])
		}
	})
	if err := ln.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, nn := range ln.Info.Nodes {
		if err := ln.WaitReady(ctx, nn.Name); err != nil {
			t.Fatal(err)
		}
	}
	reg, _ := ln.Node("regulator-1")
	env := (&devNet{home: t.TempDir()}).env()
	status := func(args ...string) (result, statusJSON) {
		t.Helper()
		r := runDcep(t, env, dir, append([]string{"--node", reg.API, "--json", "status"}, args...)...)
		var st statusJSON
		// On failure --json prints the status, then the error document.
		if err := json.NewDecoder(strings.NewReader(r.stdout)).Decode(&st); err != nil {
			t.Fatalf("status JSON: %v\n%v", err, r)
		}
		return r, st
	}
	r, st := status("--wait", "20s")
	if r.exit != 0 || st.Ready != 8 || !st.Quorum || st.Leader == "" {
		t.Fatalf("healthy network: %v", r)
	}
	if _, err := time.Parse(time.RFC3339Nano, st.LedgerTime); err != nil || st.LedgerTimeMs == 0 {
		t.Fatalf("ledger time %q (%d ms): %v\n%v", st.LedgerTime, st.LedgerTimeMs, err, r)
	}

	// One voter (not the leader) stops: shown unreachable, not ready,
	// with how old its last answer is; the network still has a quorum.
	victims := []string{}
	for _, nn := range ln.Info.Nodes {
		if nn.Role == "voter" && nn.Name != st.Leader {
			victims = append(victims, nn.Name)
		}
	}
	if err := ln.Kill(victims[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	r, st = status()
	if r.exit != 0 || !st.Quorum || st.Ready != 7 || st.VotersReachable != 6 {
		t.Fatalf("one voter down: want exit 0, quorum, 7 ready, 6 voters reachable:\n%v", r)
	}
	for _, n := range st.Nodes {
		if n.Name == victims[0] && (n.Reachable || n.Ready || !strings.Contains(n.Error, "unreachable")) {
			t.Fatalf("stopped %s shown as %+v", n.Name, n)
		}
	}
	text := runDcep(t, env, dir, "--node", reg.API, "status")
	if !strings.Contains(text.stdout, "UNREACHABLE") || !strings.Contains(text.stdout, "(old)") || !strings.Contains(text.stdout, "ledger time ") {
		t.Fatalf("text status does not mark the stopped node or lacks ledger time:\n%v", text)
	}

	// Three more voters stop: 3 of 7 left, no quorum.
	for _, v := range victims[1:4] {
		if err := ln.Kill(v); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second)
	r, st = status()
	if r.exit != exitNetwork || st.Quorum || st.VotersReachable != 3 || !strings.Contains(r.stderr, "error NO_QUORUM: ") {
		t.Fatalf("quorum lost: want exit 3 NO_QUORUM with 3 voters reachable:\n%v", r)
	}
	text = runDcep(t, env, dir, "--node", reg.API, "status")
	if text.exit != exitNetwork || !strings.Contains(text.stdout, "NO QUORUM") {
		t.Fatalf("text status during quorum loss:\n%v", text)
	}
}
