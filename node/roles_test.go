package node_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/p2p"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// sender is a libp2p host speaking to a running node with some identity.
type sender struct {
	role string
	h    *p2p.Host
}

// newSender starts a p2p host with key that lists target (so it may dial
// it) as a voter.
func newSender(t *testing.T, c *nodetest.Cluster, role string, key ed25519.PrivateKey, target string) *sender {
	t.Helper()
	h, err := p2p.New(p2p.Config{PrivateKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Members: []p2p.Member{{
		Name: target, PublicKey: c.Net.Pub("node/" + target), Addrs: c.Configs[target].P2PListen, Role: p2p.RoleVoter,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return &sender{role: role, h: h}
}

// TestNodeProtocolsByRole: against a running leader, every node-to-node
// protocol is sent from a voter, a regulator, a member removed by a
// committed membership change and a key that was never a member, each a
// real libp2p host with that identity: voters reach everything;
// regulators only what changes nothing (a forwarded transaction or a Raft
// RPC from one is refused: the log is untouched); removed members and
// outsiders nothing. The refusals are counted.
func TestNodeProtocolsByRole(t *testing.T) {
	// boc (a voter) and regulator-2, regulator-3 never run: their keys are
	// the senders'. Three of four voters keep a quorum.
	c := nodetest.New(t, nodetest.Options{Voters: 4, Regulators: 3})
	for _, name := range []string{"pboc", "icbc", "abc", "regulator-1"} {
		c.Start(name)
	}
	leader := c.WaitLeader()
	nd := c.Node(leader)
	_, outsiderKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	voter := newSender(t, c, "voter", c.Key("boc"), leader)
	regulator := newSender(t, c, "regulator", c.Key("regulator-2"), leader)
	removed := newSender(t, c, "removed member", c.Key("regulator-3"), leader)
	outsider := newSender(t, c, "non-member", outsiderKey, leader)

	// regulator-3 is a member, then a committed change removes it.
	if _, err := removed.h.Request(ctxTimeout(t, 5*time.Second), nd.PeerID(), p2p.StatusProtocol, nil, 64<<10); err != nil {
		t.Fatalf("regulator-3 before its removal: %v", err)
	}
	c.MustOK(leader, c.Net.Sign(t, statetest.RemoveMemberBody("regulator-3"), c.Net.CentralBank()))
	c.Eventually(10*time.Second, "regulator-3 out of the leader's membership", func() error {
		for _, p := range status(t, c, leader).GetPeers() {
			if p.GetName() == "regulator-3" {
				return errors.New("still listed")
			}
		}
		return nil
	})
	refusedBefore := c.MustMetric(leader, "dcep_p2p_refusals")

	reg := c.Net.Sign(t, c.Net.RegisterBody("icbc", "fwd-"+"voter", statepb.WalletKind_WALLET_KIND_PERSONAL, 1), c.Net.Bank("icbc"))
	for _, s := range []*sender{voter, regulator, removed, outsider} {
		for _, r := range p2p.Rules {
			switch r.Protocol {
			case p2p.SessionProtocol, "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0":
				// Served by the p2p layer on every connection it admits:
				// p2p's TestRolesOnEveryProtocol sends them.
				continue
			}
			allowed := (s.role == "voter" && r.OpenedBy&p2p.RoleVoter != 0) || (s.role == "regulator" && r.OpenedBy&p2p.RoleRegulator != 0)
			t.Run(s.role+" "+string(r.Protocol), func(t *testing.T) {
				var err error
				switch r.Protocol {
				case p2p.RaftProtocol:
					err = raftRPC(t, s.h, nd.PeerID())
				case p2p.ForwardProtocol:
					err = forwardOK(t, s.h, nd.PeerID(), reg)
				case p2p.ArchiveProtocol:
					// From index 1: the leader serves its log tail.
					_, err = s.h.Request(ctxTimeout(t, 5*time.Second), nd.PeerID(), r.Protocol, binary.BigEndian.AppendUint64(nil, 1), 17<<20)
				default:
					_, err = s.h.Request(ctxTimeout(t, 5*time.Second), nd.PeerID(), r.Protocol, nil, 64<<10)
				}
				switch {
				case allowed && err != nil:
					t.Fatalf("%s from a %s: %v, want served", r.Protocol, s.role, err)
				case !allowed && err == nil:
					t.Fatalf("%s from a %s was served", r.Protocol, s.role)
				case !allowed && s.role == "regulator" && r.Protocol != p2p.RaftProtocol && !errors.Is(err, p2p.ErrForbidden):
					t.Fatalf("%s from a regulator: %v, want ErrForbidden", r.Protocol, err)
				}
			})
		}
	}
	if v := c.MustMetric(leader, "dcep_p2p_role_refusals_total"); v < 2 {
		t.Fatalf("dcep_p2p_role_refusals_total %v, want the regulator's forward and raft refusals", v)
	}
	if v := c.MustMetric(leader, "dcep_p2p_refusals"); v <= refusedBefore {
		t.Fatalf("dcep_p2p_refusals %v: the removed member's and the outsider's attempts not counted", v)
	}
	c.AuditAll()
}

// raftRPC sends a RequestVote for term 0 over the real raft transport: a
// voter gets an answer (the vote refused, the term untouched), anyone else
// a broken connection.
func raftRPC(t *testing.T, h *p2p.Host, to peer.ID) error {
	t.Helper()
	sl, err := h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(sl, 1, 3*time.Second, io.Discard)
	defer trans.Close()
	var resp raft.RequestVoteResponse
	err = trans.RequestVote("boc", raft.ServerAddress(to.String()), &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("boc"), Addr: []byte(h.ID().String())},
		Term:      0,
	}, &resp)
	if err == nil && resp.Granted {
		t.Fatal("a vote for term 0 was granted")
	}
	return err
}

// forwardOK forwards tx and requires its committed outcome.
func forwardOK(t *testing.T, h *p2p.Host, to peer.ID, tx []byte) error {
	t.Helper()
	out, err := forward(t, h, to, tx)
	if err != nil {
		return err
	}
	if out.GetErrorCode() != "" || len(out.GetResults()) != 1 || out.GetResults()[0].GetLogIndex() == 0 {
		return fmt.Errorf("forward answered %v", out)
	}
	return nil
}

func forward(t *testing.T, h *p2p.Host, to peer.ID, txs ...[]byte) (*nodepb.ForwardResponse, error) {
	t.Helper()
	req, err := proto.Marshal(&nodepb.ForwardRequest{Txs: txs})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := h.Request(ctxTimeout(t, 10*time.Second), to, p2p.ForwardProtocol, req, 8<<20)
	if err != nil {
		return nil, err
	}
	var out nodepb.ForwardResponse
	if err := proto.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return &out, nil
}

// TestForwardHeldToTheAPIsChecks: what a voter forwards to the leader goes
// through the same Precheck and size limits as a client's Submit: a
// malformed or oversized transaction gets its rejection and never reaches
// the log; a request beyond 1,024 transactions is refused whole; a valid
// one in the same request commits.
func TestForwardHeldToTheAPIsChecks(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 4})
	for _, name := range c.Names[:3] {
		c.Start(name)
	}
	leader := c.WaitLeader()
	nd := c.Node(leader)
	voter := newSender(t, c, "voter", c.Key(c.Names[3]), leader)
	before := nd.Store().Meta().GetAppliedIndex()

	good := c.Net.Sign(t, c.Net.RegisterBody("icbc", "alice", statepb.WalletKind_WALLET_KIND_PERSONAL, 1), c.Net.Bank("icbc"))
	garbage := []byte("not a transaction")
	huge := make([]byte, statepb.MaxTxBytes+1)
	out, err := forward(t, voter.h, nd.PeerID(), garbage, good, huge)
	if err != nil || out.GetErrorCode() != "" || len(out.GetResults()) != 3 {
		t.Fatalf("forward: %v %v", out, err)
	}
	res := out.GetResults()
	for i, want := range []statepb.Code{statepb.Code_CODE_TX_MALFORMED, statepb.Code_CODE_OK, statepb.Code_CODE_TX_TOO_LARGE} {
		if res[i].GetCode() != want {
			t.Fatalf("transaction %d: %s (%s), want %s", i, res[i].GetCode().Short(), res[i].GetMessage(), want.Short())
		}
	}
	if res[0].GetLogIndex() != 0 || res[2].GetLogIndex() != 0 || res[1].GetLogIndex() <= before {
		t.Fatalf("log indexes %d %d %d: only the valid transaction may reach the log", res[0].GetLogIndex(), res[1].GetLogIndex(), res[2].GetLogIndex())
	}
	c.Converge(res[1].GetLogIndex(), 10*time.Second)
	blocks, err := nd.Store().Blocks(before+1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0
	for _, b := range blocks {
		recorded += len(b.GetResults())
	}
	if recorded != 1 {
		t.Fatalf("%d outcomes recorded after the forward, want only the valid transaction's", recorded)
	}

	many := make([][]byte, 1025)
	for i := range many {
		many[i] = garbage
	}
	out, err = forward(t, voter.h, nd.PeerID(), many...)
	if err != nil || out.GetErrorCode() != node.CodeInvalidArgument || !strings.Contains(out.GetError(), "forward_request.txs") {
		t.Fatalf("1,025 forwarded transactions: %v %v", out, err)
	}
	c.AuditAll()
}

// TestSecondProcessWithAMembersKeyRefused: a second process holding a
// running bank node's key (icbc started twice) connects to the leader from
// another address. The leader refuses it and raises the alarm — metric,
// status (what the console shows) — and the real icbc keeps working.
func TestSecondProcessWithAMembersKeyRefused(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 3, Regulators: 1})
	c.StartAll()
	leader := c.WaitLeader()
	icbc := "icbc"
	if leader == icbc {
		icbc = "abc"
	}
	// The real icbc is connected: it polls the leader every second.
	c.MustOK(icbc, c.Net.Register(t, "icbc", "before", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	twin := newSender(t, c, "twin", c.Key(icbc), leader)
	_, err := twin.h.Request(ctxTimeout(t, 5*time.Second), c.Node(leader).PeerID(), p2p.StatusProtocol, nil, 64<<10)
	if err == nil {
		t.Fatalf("a second process with %s's key was answered", icbc)
	}
	t.Logf("twin refused: %v", err)
	c.Eventually(10*time.Second, "the duplicate identity alarm", func() error {
		if v := c.MustMetric(leader, "dcep_p2p_duplicate_identity_total"); v < 1 {
			return fmt.Errorf("dcep_p2p_duplicate_identity_total %v", v)
		}
		return nil
	})
	// The regulator's console reads every node's status: the leader's
	// carries the alarm.
	c.Eventually(10*time.Second, "the alarm in the regulator's view", func() error {
		for _, p := range status(t, c, "regulator-1").GetPeers() {
			if p.GetName() != leader {
				continue
			}
			for _, d := range p.GetStatus().GetDuplicateIdentities() {
				if d.GetName() == icbc && d.GetRefused() >= 1 && d.GetKeptAddr() != d.GetRefusedAddr() {
					return nil
				}
			}
			return fmt.Errorf("%s's status: %v", leader, p.GetStatus().GetDuplicateIdentities())
		}
		return errors.New("leader not in the regulator's view")
	})
	// The real one is untouched.
	c.MustOK(icbc, c.Net.Register(t, "icbc", "after", statepb.WalletKind_WALLET_KIND_PERSONAL, 1, ""))
	c.AuditAll()
}
