package node_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestDivergenceAlertNamesCorruptedNode is issue 7's tamper-evidence test. A
// network of 4 voters and a regulator (the regulator a separate OS process,
// so its log is a file of its own) takes some payments. Then one voter is
// stopped, a wallet balance in its Pebble directory is changed with Pebble
// directly, and it is started again: nothing shows yet (no block has written
// from the altered record), and the regulator sees no divergence. A payment
// from that wallet makes the node write from the altered record: the
// regulator raises the alert naming that node and no other, on its metric,
// in its log and in its API; a healthy voter sees the same; the altered
// node sees that it is the odd one out. A replay on the altered node
// reproduces the honest outcome and points at the index where its recorded
// state hash went wrong, while a replay on the regulator reproduces
// everything.
func TestDivergenceAlertNamesCorruptedNode(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 4, Regulators: 1})
	reg := "regulator-1"
	for _, name := range c.Names[:4] {
		c.Start(name)
	}
	c.StartProcess(reg)
	leader := c.WaitLeader()
	n := c.Net
	ctx := context.Background()

	issue, issueID := n.SignID(t, statetest.IssueBody("icbc", 1_000_000*yuan), n.CentralBank())
	c.MustOK(leader, issue)
	c.MustOK(leader, n.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	c.MustOK(leader, n.Register(t, "icbc", "bob", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	ex, exID := n.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "alice", 5_000*yuan), n.Bank("icbc"))
	setup := c.MustOK(leader, ex)
	c.Converge(setup.GetLogIndex(), 15*time.Second)
	waitApplied(t, c, reg, setup.GetLogIndex())

	victim := ""
	for _, name := range c.Names[:4] {
		if name != leader {
			victim = name
			break
		}
	}
	healthy := []string{}
	for _, name := range c.Names[:4] {
		if name != victim {
			healthy = append(healthy, name)
		}
	}

	// Alter alice's balance on the victim's disk: ¥5,000 becomes ¥15,000.
	c.Stop(victim)
	corruptWalletBalance(t, filepath.Join(c.Configs[victim].DataDir, "state", "db"), "alice", 10_000*yuan)
	c.Start(victim)
	c.WaitReady(victim, 30*time.Second)

	// Nothing written from the altered record yet: no alert anywhere.
	time.Sleep(2500 * time.Millisecond)
	if d := divergence(t, c, reg); len(d.GetDivergences()) != 0 {
		t.Fatalf("divergence reported before the altered record was used: %v", d)
	}

	// alice pays bob ¥100: every node writes alice's wallet; the victim
	// writes it from ¥15,000.
	pay := c.MustOK(leader, n.Transfer(t, "alice", []*statepb.Outpoint{statetest.Out(exID, 0)}, statetest.Pay("bob", 100*yuan)))
	for _, name := range healthy {
		waitAppliedLocal(t, c, name, pay.GetLogIndex())
	}
	waitAppliedLocal(t, c, victim, pay.GetLogIndex())

	// The regulator names the victim: metric, API, log.
	c.Eventually(20*time.Second, "regulator raises the divergence alert", func() error {
		m, err := divergenceMetric(c.URL(reg))
		if err != nil {
			return err
		}
		if m[victim] != 1 {
			return fmt.Errorf("dcep_state_divergence{peer=%q} = %v (all: %v)", victim, m[victim], m)
		}
		for _, h := range healthy {
			if v, ok := m[h]; !ok || v != 0 {
				return fmt.Errorf("dcep_state_divergence{peer=%q} = %v, %v (want 0, present)", h, v, ok)
			}
		}
		return nil
	})
	d := divergence(t, c, reg)
	if len(d.GetDivergences()) != 1 || d.GetSelfSuspect() {
		t.Fatalf("regulator's divergence report: %v", d)
	}
	div := d.GetDivergences()[0]
	if div.GetPeer() != victim || !div.GetOngoing() || div.GetFirstIndex() < pay.GetLogIndex() || div.GetFirstSeenMs() == 0 ||
		bytes.Equal(div.GetOurHash(), div.GetTheirHash()) {
		t.Fatalf("divergence: %v (payment at index %d)", div, pay.GetLogIndex())
	}
	// The regulator's hash at that index is the honest one (the leader's).
	honest, err := c.Node(leader).Store().StateHashAt(div.GetFirstIndex())
	if err != nil || string(honest) != string(div.GetOurHash()) {
		t.Fatalf("regulator's hash at %d is %x, the leader's %x (%v)", div.GetFirstIndex(), div.GetOurHash(), honest, err)
	}
	for _, p := range d.GetPeers() {
		if p.GetPeer() != victim && (p.GetDiverged() || p.GetError() != "") {
			t.Fatalf("healthy peer %s: %v", p.GetPeer(), p)
		}
	}
	logLines := divergenceLogLines(t, filepath.Join(c.Dir, "logs", reg+".log"))
	if len(logLines) == 0 {
		t.Fatalf("no STATE DIVERGENCE error in the regulator's log")
	}
	for _, l := range logLines {
		if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "peer="+victim+" ") {
			t.Fatalf("divergence log line does not name %s as an error: %s", victim, l)
		}
	}

	// A healthy voter sees the same; the victim sees it is the odd one out.
	c.Eventually(10*time.Second, "a healthy voter names the victim", func() error {
		d := divergence(t, c, leader)
		if len(d.GetDivergences()) != 1 || d.GetDivergences()[0].GetPeer() != victim || d.GetSelfSuspect() {
			return fmt.Errorf("%v", d)
		}
		return nil
	})
	c.Eventually(10*time.Second, "the victim suspects itself", func() error {
		if d := divergence(t, c, victim); !d.GetSelfSuspect() {
			return fmt.Errorf("%v", d)
		}
		return nil
	})

	// Replay on the victim: its log replays honestly, so its recorded state
	// hash differs from the replay from the payment on.
	rv, err := auditClient(c, victim).Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if rv.Msg.GetReproduced() || rv.Msg.GetFirstHashMismatchIndex() != pay.GetLogIndex() || rv.Msg.GetOutcomeMismatches() != 0 {
		t.Fatalf("replay on the altered node: %v (payment at %d)", rv.Msg, pay.GetLogIndex())
	}
	rr, err := auditClient(c, reg).Replay(ctx, connect.NewRequest(&nodepb.ReplayRequest{}))
	if err != nil || !rr.Msg.GetReproduced() || rr.Msg.GetToIndex() < pay.GetLogIndex() {
		t.Fatalf("replay on the regulator: %v %v", rr, err)
	}
}

// corruptWalletBalance adds addFen to a wallet's balance record in a
// (stopped) node's Pebble directory, as an attacker with disk access would.
func corruptWalletBalance(t *testing.T, dir, wallet string, addFen uint64) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: testLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("w:" + wallet)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	var w statepb.WalletRecord
	err = proto.Unmarshal(v, &w)
	closer.Close()
	if err != nil {
		t.Fatal(err)
	}
	w.BalanceFen += addFen
	raw, err := proto.Marshal(&w)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(key, raw, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// testLogger sends Pebble's messages to the test log.
type testLogger struct{ t *testing.T }

func (l testLogger) Infof(format string, args ...any)  { l.t.Logf(format, args...) }
func (l testLogger) Errorf(format string, args ...any) { l.t.Logf(format, args...) }
func (l testLogger) Fatalf(format string, args ...any) { l.t.Fatalf(format, args...) }

func divergence(t *testing.T, c *nodetest.Cluster, name string) *nodepb.DivergenceResponse {
	t.Helper()
	d, err := auditClient(c, name).Divergence(context.Background(), connect.NewRequest(&nodepb.DivergenceRequest{}))
	if err != nil {
		t.Fatalf("%s: divergence: %v", name, err)
	}
	return d.Msg
}

// divergenceMetric reads dcep_state_divergence per peer from /metrics.
func divergenceMetric(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	const prefix = `dcep_state_divergence{peer="`
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		end := strings.Index(rest, `"}`)
		if end < 0 {
			return nil, fmt.Errorf("metric line %q", line)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+2:]), 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[rest[:end]] = v
	}
	return out, sc.Err()
}

func divergenceLogLines(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.Contains(l, "STATE DIVERGENCE") {
			out = append(out, l)
		}
	}
	return out
}

// waitApplied waits until a node (in-process or a process) reports, over
// its API, that it applied index.
func waitApplied(t *testing.T, c *nodetest.Cluster, name string, index uint64) {
	t.Helper()
	c.Eventually(20*time.Second, name+" applies index "+strconv.FormatUint(index, 10), func() error {
		st, err := c.Client(name).Status(context.Background(), connect.NewRequest(&nodepb.StatusRequest{}))
		if err != nil {
			return err
		}
		if got := st.Msg.GetNode().GetAppliedIndex(); got < index {
			return fmt.Errorf("applied %d", got)
		}
		return nil
	})
}

func waitAppliedLocal(t *testing.T, c *nodetest.Cluster, name string, index uint64) {
	t.Helper()
	c.Eventually(20*time.Second, name+" applies index "+strconv.FormatUint(index, 10), func() error {
		if got := c.Node(name).Store().Meta().GetAppliedIndex(); got < index {
			return fmt.Errorf("applied %d", got)
		}
		return nil
	})
}
