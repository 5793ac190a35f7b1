package node_test

// Fault tests of SPEC §3 / issue 3 ("Faults it must survive"), with real
// nodes in-process (each its own Pebble, raft-boltdb and libp2p host on
// loopback) and, where a crash is needed, a node as a separate OS process
// killed with SIGKILL. The kill -9 under load test with every node a `dcepd`
// process is in deploy/localnet.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/p2p"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestMain lets nodetest run a node as a child process of this test binary
// (Cluster.StartProcess), so a test can SIGKILL it.
func TestMain(m *testing.M) { nodetest.Main(m) }

// TestQuorumLoss: with 3 of 7 voters stopped (the leader among them) the
// network elects a new leader and commits; with 4 stopped every write is
// refused with NO_QUORUM (and the regulator still says READ_ONLY_NODE and
// still serves reads, while a linearizable read is refused with NO_QUORUM),
// nothing is half-written, and nothing refused enters the log; once all are
// back the network converges and every acknowledged transaction is on every
// node.
func TestQuorumLoss(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 7, Regulators: 1, Tweak: func(cfg *node.Config) {
		cfg.Limits.SubmitTimeoutMs = 1500
	}})
	c.StartAll()
	voters, reg := c.Names[:7], c.Names[7]
	leader := c.WaitLeader()
	acked := map[[32]byte]*statepb.TxResult{}
	mustOK := func(via string, tx []byte) *statepb.TxResult {
		t.Helper()
		r, err := submitRetry(c, []string{via}, tx, 20*time.Second)
		if err != nil {
			t.Fatalf("via %s: %v", via, err)
		}
		if r.GetCode() != statepb.Code_CODE_OK {
			t.Fatalf("via %s: %s: %s", via, r.GetCode().Short(), r.GetMessage())
		}
		if len(r.GetTxId()) != 32 {
			t.Fatalf("via %s: outcome without a transaction id: %v", via, r)
		}
		acked[[32]byte(r.GetTxId())] = r
		return r
	}

	issue, issueID := c.Net.SignID(t, statetest.IssueBody("icbc", 1_000_000*state.Yuan), c.Net.CentralBank())
	mustOK(leader, issue)
	mustOK(others(voters, leader)[0], c.Net.Register(t, "icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))

	// 3 of 7 down, the leader among them: 4 voters elect a leader and commit.
	down := append([]string{leader}, others(voters, leader)[:2]...)
	for _, n := range down {
		c.Stop(n)
	}
	up := others(voters, down...)
	stopped := time.Now()
	ex, exID := c.Net.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{statetest.Out(issueID, 0)}, "alice", 10_000*state.Yuan), c.Net.Bank("icbc"))
	mustOK(up[0], ex)
	newLeader := c.WaitLeader()
	t.Logf("3 of 7 voters stopped (leader %s among them): %s leads, first commit %v after the stop", leader, newLeader, time.Since(stopped).Round(time.Millisecond))
	mustOK(up[1], c.Net.Register(t, "icbc", "bob", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	tr := c.Net.Transfer(t, "alice", []*statepb.Outpoint{statetest.Out(exID, 0)}, statetest.Pay("bob", 300*state.Yuan), statetest.Pay("bob", 200*state.Yuan))
	last := mustOK(up[2], tr)
	_, err := c.Client(reg).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: c.Net.Issue(t, "abc", 1)}))
	wantCode(t, err, connect.CodePermissionDenied, node.CodeReadOnly)
	c.Converge(last.GetLogIndex(), 10*time.Second)

	// A 4th voter down (a follower, so the leader must notice it lost its
	// quorum): 3 of 7 voters cannot commit anything.
	fourth := others(up, newLeader)[0]
	c.Stop(fourth)
	rest := others(up, fourth)
	carol := c.Net.Register(t, "icbc", "carol", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, "")
	start := time.Now()
	_, err = c.Client(rest[0]).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: carol}))
	wantCode(t, err, connect.CodeUnavailable, node.CodeNoQuorum)
	t.Logf("4 of 7 voters stopped: submit refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	// Once no node knows a leader, nothing can have entered any log.
	c.Eventually(10*time.Second, "every node to see no leader", func() error {
		for _, n := range c.Running() {
			if id, _ := c.Node(n).Consensus().Leader(); id != "" {
				return fmt.Errorf("%s still sees leader %s", n, id)
			}
		}
		return nil
	})
	dave, daveID := c.Net.SignID(t, c.Net.RegisterBody("icbc", "dave", statepb.WalletKind_WALLET_KIND_PERSONAL, 1), c.Net.Bank("icbc"))
	for _, via := range rest {
		_, err = c.Client(via).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: dave}))
		wantCode(t, err, connect.CodeUnavailable, node.CodeNoQuorum)
	}
	_, err = c.Client(reg).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: dave}))
	wantCode(t, err, connect.CodePermissionDenied, node.CodeReadOnly)
	// A wallet retrying a payment that committed before the outage still
	// gets its first outcome from a bank node's own ledger.
	again, err := c.Client(rest[1]).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: tr}))
	if err != nil || !again.Msg.GetResult().GetDuplicate() || again.Msg.GetResult().GetLogIndex() != last.GetLogIndex() ||
		again.Msg.GetResult().GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("resubmitting a committed transfer without quorum: %v %v (first at index %d)", again, err, last.GetLogIndex())
	}
	// Reads go on from local state, saying how fresh they are; a
	// linearizable read cannot be had.
	w, err := c.Client(reg).GetWallet(context.Background(), connect.NewRequest(&nodepb.GetWalletRequest{WalletId: "bob"}))
	if err != nil || w.Msg.GetWallet().GetBalanceFen() != 500*state.Yuan || w.Msg.GetFreshness().GetAppliedIndex() < last.GetLogIndex() {
		t.Fatalf("stale read on regulator without quorum: %v %v", w, err)
	}
	_, err = c.Client(rest[1]).GetWallet(context.Background(), connect.NewRequest(&nodepb.GetWalletRequest{WalletId: "bob", Read: &nodepb.ReadOptions{Linearizable: true}}))
	wantCode(t, err, connect.CodeUnavailable, node.CodeNoQuorum)
	for _, n := range c.Running() {
		if c.Node(n).Ready() {
			t.Fatalf("%s says it is ready without a quorum", n)
		}
	}
	// No corruption: the survivors agree and the books balance.
	stuck := c.Converge(last.GetLogIndex(), 10*time.Second)
	c.AuditAll()
	for _, n := range c.Running() {
		if _, err := c.Node(n).Store().Tx(daveID[:]); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("%s: refused transaction is in the ledger: %v", n, err)
		}
	}

	// All back: one leader, everyone converges, the refused transactions
	// go through when resubmitted, and every acknowledged one is everywhere.
	for _, n := range append(down, fourth) {
		c.Start(n)
	}
	back := c.WaitLeader()
	for _, n := range c.Running() {
		if _, err := c.Node(n).Store().Tx(daveID[:]); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("%s: refused transaction is in the ledger after recovery: %v", n, err)
		}
	}
	mustOK(back, carol) // may have reached the log before the quorum went: then a duplicate of OK
	last = mustOK(down[0], dave)
	hash := c.Converge(last.GetLogIndex(), 20*time.Second)
	if string(hash) == string(stuck) {
		t.Fatal("state hash did not move after recovery")
	}
	checkAcked(t, c, acked)
	c.AuditAll()
	c.AuditAPI(reg)
}

// TestRestartWith100kTxs: a node with ≥100,000 applied transactions (and
// snapshots on disk) serves again within seconds of a restart without
// re-applying them, both after a clean stop (in-process) and after SIGKILL
// (the node runs as a separate process, killed, then restarted). Re-applied
// work is measured as the node's dcep_transactions_total, which counts
// transactions the ledger actually applied in this process: after the
// restart it must count exactly the one new transaction.
func TestRestartWith100kTxs(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 20_000
	}
	c := nodetest.New(t, nodetest.Options{Voters: 3, Tweak: func(cfg *node.Config) {
		cfg.Raft.SnapshotThreshold = 8
		cfg.Raft.TrailingLogs = 64
		cfg.Raft.SnapshotIntervalS = 1
		// The product's default timeouts: three nodes on two cores doing
		// nothing but verify signatures, decode and fsync for tens of
		// seconds starve 300 ms heartbeats.
		cfg.Raft.HeartbeatMs, cfg.Raft.ElectionMs, cfg.Raft.LeaderLeaseMs = 1000, 1000, 500
	}})
	clean, crash := c.Names[1], c.Names[2]
	c.Start(c.Names[0])
	c.Start(clean)
	leader := c.WaitLeader()
	if leader == clean {
		clean = c.Names[0]
	}
	c.StartProcess(crash)

	start := time.Now()
	txs := bulkIssues(t, c.Net, total, 1<<40)
	signed := time.Since(start)
	submitAll(t, c, txs)
	leader = c.WaitLeader()
	idx := c.Node(leader).Consensus().AppliedIndex()
	t.Logf("%d transactions signed in %v, committed and applied on the leader in %v (log index %d)",
		total, signed.Round(time.Millisecond), (time.Since(start) - signed).Round(time.Millisecond), idx)

	// Everyone holds everything, with snapshots on disk.
	waitAPIApplied(t, c, crash, idx, 60*time.Second)
	c.Converge(idx, 30*time.Second)
	for _, n := range []string{leader, clean} {
		if err := c.Node(n).Consensus().Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("%s: snapshot: %v", n, err)
		}
	}
	c.Eventually(10*time.Second, "a snapshot on the process node's disk", func() error {
		m, _ := filepath.Glob(filepath.Join(c.Configs[crash].DataDir, "raft", "snapshots", "*", "meta.json"))
		if len(m) == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	wantTotal := c.Node(leader).Store().Meta().GetAppliedIndex()

	restart := func(name string, how string) {
		t.Helper()
		began := time.Now()
		c.Start(name)
		opened := time.Since(began)
		ready := c.WaitReady(name, 20*time.Second) + opened
		nd := c.Node(name)
		if got := nd.Store().Meta().GetAppliedIndex(); got < wantTotal {
			t.Fatalf("%s after %s: ready at applied index %d, want ≥ %d", name, how, got, wantTotal)
		}
		// One new transaction: once the node has applied it, it has been
		// through everything before it too.
		r := c.MustOK(leader, c.Net.Issue(t, "boc", 1))
		if err := nd.Consensus().WaitApplied(ctxTimeout(t, 20*time.Second), r.GetLogIndex()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		applied := c.MustMetric(name, "dcep_transactions_total")
		delivered := c.MustMetric(name, "dcep_entry_transactions_sum")
		t.Logf("%s restarted after %s with %d applied transactions (index %d): ready in %v (start %v); applied since: %v; "+
			"transactions Raft handed back to the FSM and the ledger skipped: %v",
			name, how, total, wantTotal, ready.Round(time.Millisecond), opened.Round(time.Millisecond), applied, delivered-applied)
		if applied != 1 {
			t.Fatalf("%s re-applied transactions after %s: dcep_transactions_total = %v, want 1", name, how, applied)
		}
		if ready > 10*time.Second {
			t.Fatalf("%s: ready %v after %s, want within seconds", name, ready, how)
		}
	}

	c.Stop(clean)
	restart(clean, "a clean stop")
	// The crash node must hold everything committed so far before it is
	// killed; otherwise it legitimately applies the tail after restart and
	// the count below would blame the restart for it.
	waitAPIApplied(t, c, crash, c.Node(leader).Consensus().AppliedIndex(), 30*time.Second)
	c.Kill(crash)
	restart(crash, "SIGKILL")

	last := c.MustOK(leader, c.Net.Issue(t, "abc", 2))
	c.Converge(last.GetLogIndex(), 20*time.Second)
	c.AuditAll()
}

// TestRegulatorCatchesUpBySnapshot: a regulator started after the voters
// have snapshotted and compacted their logs installs a snapshot (it does
// not replay from index 1) and ends with the voters' state hash; then a
// regulator that is not in genesis is added by a committed ChangeMembership
// signed by the central bank, is made a Raft non-voter by the leader,
// catches up the same way, matches hashes and refuses writes.
func TestRegulatorCatchesUpBySnapshot(t *testing.T) {
	const trailing = 8
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1, Tweak: func(cfg *node.Config) {
		cfg.Raft.SnapshotThreshold = 16
		cfg.Raft.TrailingLogs = trailing
		cfg.Raft.SnapshotIntervalS = 1
		// Compaction stops before the archive's open segment: small
		// segments let the voters' logs compact within the test.
		cfg.Archive.SegmentKB = 4
	}})
	voters, reg := c.Names[:3], c.Names[3]
	for _, n := range voters {
		c.Start(n)
	}
	leader := c.WaitLeader()

	// Enough log entries for compaction to matter: one entry per commit.
	issue, issueID := c.Net.SignID(t, statetest.IssueBody("icbc", 100_000*state.Yuan), c.Net.CentralBank())
	c.MustOK(leader, issue)
	reserve := statetest.Out(issueID, 0)
	for i := range 30 {
		w := fmt.Sprintf("w%d", i)
		c.MustOK(voters[i%3], c.Net.Register(t, "icbc", w, statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
		ex, exID := c.Net.SignID(t, statetest.ExchangeBody("icbc", []*statepb.Outpoint{reserve}, w, 100*state.Yuan), c.Net.Bank("icbc"))
		c.MustOK(leader, ex)
		reserve = statetest.Out(exID, 1)
		c.MustOK(leader, c.Net.Issue(t, "abc", uint64(i+1)))
	}
	idx := c.Node(leader).Consensus().AppliedIndex()
	c.Converge(idx, 10*time.Second)
	for _, n := range voters {
		if err := c.Node(n).Consensus().Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("%s: snapshot: %v", n, err)
		}
	}
	if si := raftStat(t, c, leader, "last_snapshot_index"); si+trailing < idx || si <= trailing+1 {
		t.Fatalf("leader snapshot at %d, applied %d: log not compacted past index 1", si, idx)
	}

	began := time.Now()
	regNode := c.Start(reg)
	// Until it has caught up, the regulator must not call itself ready: a
	// load balancer would send reads to an empty ledger.
	for regNode.Store().Meta().GetAppliedIndex() < idx {
		if regNode.Ready() {
			t.Fatalf("%s ready at applied index %d while the network is at %d", reg, regNode.Store().Meta().GetAppliedIndex(), idx)
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("%s did not catch up", reg)
		}
		time.Sleep(time.Millisecond)
	}
	c.Converge(idx, 30*time.Second)
	c.WaitReady(reg, 10*time.Second)
	t.Logf("late regulator caught up to index %d and ready in %v", idx, time.Since(began).Round(time.Millisecond))
	assertSnapshotInstall(t, c, reg, 0)

	// The snapshot it installed was confirmed by a quorum of voters before
	// it was swapped in; a state hash the voters did not record is not.
	if got := c.MustMetric(reg, `dcep_snapshot_confirmations_total{result="confirmed"}`); got < 1 {
		t.Fatalf("%s installed a snapshot no quorum confirmed (%v confirmations)", reg, got)
	}
	at := regNode.Store().Meta()
	if err := node.ConfirmSnapshot(regNode, at.GetAppliedIndex(), at.GetStateHash()); err != nil {
		t.Fatalf("the voters' own state hash at %d not confirmed: %v", at.GetAppliedIndex(), err)
	}
	defer node.SetConfirmSnapshotTimeout(node.SetConfirmSnapshotTimeout(time.Second))
	forged := bytes.Repeat([]byte{0xfe}, 32)
	if err := node.ConfirmSnapshot(regNode, at.GetAppliedIndex(), forged); err == nil || !strings.Contains(err.Error(), "not confirmed by a majority of the voters") {
		t.Fatalf("a forged state hash at %d: %v, want not confirmed", at.GetAppliedIndex(), err)
	}

	// It follows the log from there.
	r := c.MustOK(voters[1], c.Net.Issue(t, "boc", 7))
	c.Converge(r.GetLogIndex(), 10*time.Second)
	if got := c.MustMetric(reg, "dcep_transactions_total"); got != 1 {
		t.Fatalf("regulator applied %v transactions from the log after the snapshot, want 1", got)
	}

	// A regulator that genesis does not know: it starts read-only and waits
	// until a committed membership change adds it.
	member := c.AddNode("regulator-2", statepb.NodeRole_NODE_ROLE_REGULATOR)
	reg2 := member.GetName()
	c.Start(reg2)
	if st := status(t, c, reg2); st.GetNode().GetRole() != statepb.NodeRole_NODE_ROLE_UNSPECIFIED {
		t.Fatalf("%s before being added: role %v", reg2, st.GetNode().GetRole())
	}
	_, err := c.Client(reg2).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: c.Net.Issue(t, "icbc", 1)}))
	wantCode(t, err, connect.CodePermissionDenied, node.CodeReadOnly)
	add := c.Net.Sign(t, &statepb.Tx{Kind: &statepb.Tx_ChangeMembership{ChangeMembership: &statepb.ChangeMembership{
		Action: statepb.MembershipAction_MEMBERSHIP_ACTION_ADD, Node: member,
	}}}, c.Net.CentralBank())
	began = time.Now()
	added := c.MustOK(c.WaitLeader(), add)
	c.Eventually(20*time.Second, reg2+" a Raft non-voter", func() error {
		conf, err := c.Node(c.WaitLeader()).Consensus().Configuration()
		if err != nil {
			return err
		}
		for _, s := range conf.Servers {
			if string(s.ID) == reg2 && s.Suffrage == raft.Nonvoter {
				return nil
			}
		}
		return fmt.Errorf("configuration %v", conf.Servers)
	})
	c.Converge(added.GetLogIndex(), 30*time.Second)
	c.Eventually(10*time.Second, reg2+" to know its role", func() error {
		if r := status(t, c, reg2).GetNode().GetRole(); r != statepb.NodeRole_NODE_ROLE_REGULATOR {
			return fmt.Errorf("role %v", r)
		}
		return nil
	})
	c.WaitReady(reg2, 10*time.Second)
	t.Logf("%s added by membership change at index %d, caught up and ready in %v", reg2, added.GetLogIndex(), time.Since(began).Round(time.Millisecond))
	assertSnapshotInstall(t, c, reg2, 2) // the issue above and the membership change
	_, err = c.Client(reg2).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: c.Net.Issue(t, "icbc", 1)}))
	wantCode(t, err, connect.CodePermissionDenied, node.CodeReadOnly)
	var ce *connect.Error
	if errors.As(err, &ce) && !strings.Contains(ce.Message(), "regulator") {
		t.Fatalf("refusal does not name the node's role: %v", err)
	}

	r = c.MustOK(voters[2], c.Net.Issue(t, "ccb", 9))
	c.Converge(r.GetLogIndex(), 10*time.Second)
	c.AuditAll()
	c.AuditAPI(reg2)
}

// TestOutsiderPeerRefused: a libp2p peer whose key is not in the
// membership cannot open any of the node's protocols (raft, forward,
// status, read index, state hash); the node counts the refusals. A member's
// key, over the same transport, can.
func TestOutsiderPeerRefused(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1, Regulators: 1})
	name := c.Names[0]
	nd := c.Start(name)
	c.WaitLeader()
	target := peer.AddrInfo{ID: nd.PeerID(), Addrs: []ma.Multiaddr{ma.StringCast(c.Configs[name].P2PListen[0])}}
	before := c.MustMetric(name, "dcep_p2p_refusals")

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	outsider, err := libp2p.New(libp2p.Identity(sk), libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	outsider.Peerstore().AddAddrs(target.ID, target.Addrs, peerstore.PermanentAddrTTL)
	prev := before
	for _, pid := range []protocol.ID{"/dcep/forward/1", "/dcep/status/1", "/dcep/readindex/1", "/dcep/statehash/1", p2p.RaftProtocol} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := outsider.NewStream(ctx, target.ID, pid)
		t.Logf("outsider: %s: %v", pid, err)
		if err == nil {
			// libp2p may hand out a stream before the remote has said
			// anything; it must fail at the first exchange.
			_, werr := s.Write([]byte{0})
			_ = s.CloseWrite()
			buf := make([]byte, 1)
			_, rerr := s.Read(buf)
			_ = s.Reset()
			if werr == nil && rerr == nil {
				cancel()
				t.Fatalf("outsider opened %s and got an answer", pid)
			}
		}
		cancel()
		// Start the next protocol from a fresh dial, not from the
		// outsider's own dial backoff.
		_ = outsider.Network().ClosePeer(target.ID)
		outsider.Network().(*swarm.Swarm).Backoff().Clear(target.ID)
		c.Eventually(5*time.Second, string(pid)+": refusal counted", func() error {
			got := c.MustMetric(name, "dcep_p2p_refusals")
			if got <= prev {
				return fmt.Errorf("dcep_p2p_refusals still %v", got)
			}
			prev = got
			return nil
		})
	}
	after := c.MustMetric(name, "dcep_p2p_refusals")

	// Control: a member's key, over the same transport, gets an answer.
	h, err := p2p.New(p2p.Config{PrivateKey: c.Key(c.Names[1]), Members: []p2p.Member{{
		Name: name, PublicKey: c.Net.Pub("node/" + name), Addrs: c.Configs[name].P2PListen, Role: p2p.RoleVoter,
	}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	raw, err := h.Request(ctxTimeout(t, 5*time.Second), nd.PeerID(), "/dcep/status/1", nil, 64<<10)
	var st nodepb.PeerStatusResponse
	if err == nil {
		err = proto.Unmarshal(raw, &st)
	}
	if err != nil || st.GetStatus().GetName() != name {
		t.Fatalf("member's status request: %v %v", &st, err)
	}
	t.Logf("outsider refused on every protocol; dcep_p2p_refusals %v → %v", before, after)
	c.AuditAll()
}

// --- helpers ---

// others is names without the excluded ones.
func others(names []string, exclude ...string) []string {
	var out []string
	for _, n := range names {
		skip := false
		for _, x := range exclude {
			skip = skip || n == x
		}
		if !skip {
			out = append(out, n)
		}
	}
	return out
}

// submitRetry sends the same signed bytes until a node answers with an
// outcome, going round the given nodes on RPC errors: what a client does
// (safe, since the ledger deduplicates by transaction id).
func submitRetry(c *nodetest.Cluster, via []string, tx []byte, timeout time.Duration) (*statepb.TxResult, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		resp, err := c.Client(via[i%len(via)]).Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
		if err == nil {
			return resp.Msg.GetResult(), nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("no outcome within %v: %w", timeout, last)
}

// checkAcked checks that every acknowledged transaction is on every
// running node with the outcome the client was given.
func checkAcked(t *testing.T, c *nodetest.Cluster, acked map[[32]byte]*statepb.TxResult) {
	t.Helper()
	for _, n := range c.Running() {
		for id, want := range acked {
			rec, err := c.Node(n).Store().Tx(id[:])
			if err != nil {
				t.Fatalf("%s: acknowledged transaction %x: %v", n, id[:6], err)
			}
			if got := rec.GetResult(); got.GetCode() != want.GetCode() || got.GetLogIndex() != want.GetLogIndex() {
				t.Fatalf("%s: transaction %x: %s at %d, client was told %s at %d", n, id[:6],
					got.GetCode().Short(), got.GetLogIndex(), want.GetCode().Short(), want.GetLogIndex())
			}
		}
	}
}

// bulkIssues signs n issue transactions of the central bank, spread over
// the banks, on every CPU, with nonces from base.
func bulkIssues(t *testing.T, net *statetest.Net, n int, base uint64) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				body := statetest.IssueBody(statetest.BankIDs[i%len(statetest.BankIDs)], uint64(1+i%1000))
				body.Version, body.ChainId, body.Nonce = statepb.TxVersion, net.Genesis.GetChainId(), base+uint64(i)
				raw, _, err := net.Signer.Sign(body, net.CentralBank())
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = raw
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// submitAll proposes txs on the leader in chunks, several at a time, and
// requires every outcome to be OK. A chunk that fails because leadership
// moved is proposed again, the same bytes, on whoever leads then: what a
// client does, and safe since the ledger deduplicates by transaction id.
func submitAll(t *testing.T, c *nodetest.Cluster, txs [][]byte) {
	t.Helper()
	const chunk, parallel = 5000, 2
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	next := make(chan int)
	go func() {
		for i := 0; i < len(txs); i += chunk {
			next <- i
		}
		close(next)
	}()
	var retries atomic.Int64
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				part := txs[i:min(i+chunk, len(txs))]
				deadline := time.Now().Add(60 * time.Second)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					res, err := leaderConsensus(c).Submit(ctx, part)
					cancel()
					if err == nil {
						for j, r := range res {
							if r.GetCode() != statepb.Code_CODE_OK {
								errs <- fmt.Errorf("tx %d: %s: %s", i+j, r.GetCode().Short(), r.GetMessage())
								return
							}
						}
						break
					}
					if time.Now().After(deadline) || !(errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrUnknownOutcome)) {
						errs <- fmt.Errorf("chunk at %d: %w", i, err)
						return
					}
					retries.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := retries.Load(); n > 0 {
		t.Logf("%d chunks proposed again after a leader change", n)
	}
}

// leaderConsensus is the ready leader's Raft member, or any node's (whose
// Submit then says ErrNotLeader) while there is none.
func leaderConsensus(c *nodetest.Cluster) *consensus.Node {
	var any *consensus.Node
	for _, n := range c.Running() {
		cons := c.Node(n).Consensus()
		if cons.IsReadyLeader() {
			return cons
		}
		any = cons
	}
	return any
}

func status(t *testing.T, c *nodetest.Cluster, name string) *nodepb.StatusResponse {
	t.Helper()
	resp, err := c.Client(name).Status(context.Background(), connect.NewRequest(&nodepb.StatusRequest{}))
	if err != nil {
		t.Fatalf("%s: status: %v", name, err)
	}
	return resp.Msg
}

// waitAPIApplied waits until a node (in-process or not) says over its API
// that it has applied index.
func waitAPIApplied(t *testing.T, c *nodetest.Cluster, name string, index uint64, timeout time.Duration) {
	t.Helper()
	c.Eventually(timeout, name+" to apply index "+strconv.FormatUint(index, 10), func() error {
		resp, err := c.Client(name).Status(context.Background(), connect.NewRequest(&nodepb.StatusRequest{}))
		if err != nil {
			return err
		}
		if got := resp.Msg.GetNode().GetAppliedIndex(); got < index {
			return fmt.Errorf("applied %d", got)
		}
		return nil
	})
}

func raftStat(t *testing.T, c *nodetest.Cluster, name, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(c.Node(name).Consensus().Raft().Stats()[key], 10, 64)
	if err != nil {
		t.Fatalf("%s: raft stat %s: %v", name, key, err)
	}
	return v
}

// assertSnapshotInstall checks that a node that started empty got its
// state from a snapshot: Raft has a snapshot, and the ledger applied at
// most the transactions committed after the voters' snapshot itself (its
// transaction counter, which counts what this process applied, says so);
// replaying the log would have applied every one from index 1.
func assertSnapshotInstall(t *testing.T, c *nodetest.Cluster, name string, afterSnapshot float64) {
	t.Helper()
	// Raft records the snapshot once the ledger has restored it.
	var si uint64
	c.Eventually(5*time.Second, name+": a snapshot installed", func() error {
		if si = raftStat(t, c, name, "last_snapshot_index"); si == 0 {
			return errors.New("none")
		}
		return nil
	})
	got := c.MustMetric(name, "dcep_transactions_total")
	if got > afterSnapshot {
		t.Fatalf("%s: applied %v transactions itself (want ≤ %v): it replayed the log instead of installing a snapshot", name, got, afterSnapshot)
	}
	t.Logf("%s installed a snapshot at index %d; applied itself only the %v transactions after it", name, si, got)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
