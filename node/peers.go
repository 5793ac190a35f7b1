package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/p2p"
	"github.com/dcep/dcep/state/statepb"
)

// Node-to-node protocols (node/DESIGN.md). Who may open each is p2p's
// table (p2p.Rules); sizes bound what a peer may send.
const (
	protoForward   = p2p.ForwardProtocol
	protoReadIndex = p2p.ReadIndexProtocol
	protoStatus    = p2p.StatusProtocol
	protoStateHash = p2p.StateHashProtocol

	maxForwardBytes = 8 << 20
	maxSmallBytes   = 64 << 10
	// peerPollInterval is how often a node asks every peer for its status.
	peerPollInterval = time.Second
)

// memberInfo is a member with its libp2p identity.
type memberInfo struct {
	*statepb.Node
	peer peer.ID
}

// memberTable is the current membership, looked up by name or peer id.
type memberTable struct {
	mu     sync.RWMutex
	list   []*memberInfo
	byN    map[string]*memberInfo
	byP    map[peer.ID]*memberInfo
	status map[string]peerState
}

// peerState is the last status poll of a peer and when it last answered.
type peerState struct {
	st   *nodepb.PeerStatus
	okAt time.Time
}

func newMemberTable() *memberTable {
	return &memberTable{byN: map[string]*memberInfo{}, byP: map[peer.ID]*memberInfo{}, status: map[string]peerState{}}
}

func (t *memberTable) set(nodes []*statepb.Node) error {
	list := make([]*memberInfo, 0, len(nodes))
	byN, byP := map[string]*memberInfo{}, map[peer.ID]*memberInfo{}
	for _, nd := range nodes {
		id, err := p2p.PeerIDFromPublicKey(nd.GetPublicKey())
		if err != nil {
			return fmt.Errorf("member %s: %w", nd.GetName(), err)
		}
		m := &memberInfo{Node: nd, peer: id}
		list, byN[nd.GetName()], byP[id] = append(list, m), m, m
	}
	sort.Slice(list, func(i, j int) bool { return list[i].GetName() < list[j].GetName() })
	t.mu.Lock()
	defer t.mu.Unlock()
	t.list, t.byN, t.byP = list, byN, byP
	return nil
}

func (t *memberTable) byName(name string) *memberInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byN[name]
}

func (t *memberTable) all() []*memberInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.list
}

// byPeer is the member with a libp2p identity, nil if none.
func (t *memberTable) byPeer(p peer.ID) *memberInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byP[p]
}

// p2pMembers is the libp2p allowlist with each member's role, which
// decides the protocols it may open (p2p.Rules).
func (t *memberTable) p2pMembers() ([]p2p.Member, error) {
	var out []p2p.Member
	for _, m := range t.all() {
		var role p2p.Role
		switch m.GetRole() {
		case statepb.NodeRole_NODE_ROLE_VOTER:
			role = p2p.RoleVoter
		case statepb.NodeRole_NODE_ROLE_REGULATOR:
			role = p2p.RoleRegulator
		default:
			return nil, fmt.Errorf("member %s: role %v has no node-to-node protocols", m.GetName(), m.GetRole())
		}
		out = append(out, p2p.Member{Name: m.GetName(), PublicKey: m.GetPublicKey(), Addrs: m.GetAddrs(), Role: role})
	}
	return out, nil
}

func (t *memberTable) setStatus(name string, st peerState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status[name] = st
}

// polledCommit is the commit index a peer reported in a status poll that
// succeeded within maxAge.
func (t *memberTable) polledCommit(name string, maxAge time.Duration) (uint64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ps, ok := t.status[name]
	if !ok || ps.okAt.IsZero() || time.Since(ps.okAt) > maxAge || ps.st.GetStatus() == nil {
		return 0, false
	}
	return ps.st.GetStatus().GetCommitIndex(), true
}

// peerStatus returns what a peer last said, with age_ms filled in.
func (t *memberTable) peerStatus(name string) (*nodepb.PeerStatus, bool) {
	t.mu.RLock()
	ps, ok := t.status[name]
	t.mu.RUnlock()
	if !ok {
		return nil, false
	}
	out := proto.Clone(ps.st).(*nodepb.PeerStatus)
	if !ps.okAt.IsZero() {
		out.AgeMs = time.Since(ps.okAt).Milliseconds()
	}
	return out, true
}

func (n *Node) registerProtocols() {
	n.host.Handle(protoForward, maxForwardBytes, n.handleForward)
	n.host.Handle(protoReadIndex, maxSmallBytes, n.handleReadIndex)
	n.host.Handle(protoStatus, maxSmallBytes, n.handleStatus)
	n.host.Handle(protoStateHash, maxSmallBytes, n.handleStateHash)
}

// handleForward takes transactions a voter forwarded. Only the ready
// leader proposes; anyone else answers NOT_LEADER so the sender looks
// again. p2p's table already refuses the stream to anyone but a voter; the
// request is then held to what the client API holds a submission to: at
// most forwardMaxTxs transactions and forwardMaxBytes (what an honest
// forwarder sends), each through the same Precheck and size limit, so a
// transaction the API would refuse never reaches the log and one entry
// never exceeds Batch.MaxBytes (the proposer's bound).
func (n *Node) handleForward(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	out := &nodepb.ForwardResponse{}
	if m := n.members.byPeer(from); m == nil || m.GetRole() != statepb.NodeRole_NODE_ROLE_VOTER {
		out.ErrorCode, out.Error = CodeReadOnly, fmt.Sprintf("peer %s is not a voter: only voters forward transactions", from)
		return proto.Marshal(out)
	}
	var in nodepb.ForwardRequest
	if err := proto.Unmarshal(req, &in); err != nil {
		return nil, fmt.Errorf("bad forward request: %w", err)
	}
	txs := in.GetTxs()
	size := 0
	for _, tx := range txs {
		size += len(tx)
	}
	if len(txs) > forwardMaxTxs || size > forwardMaxBytes {
		out.ErrorCode = CodeInvalidArgument
		out.Error = fmt.Sprintf("forward_request.txs: %d transactions of %d bytes (max %d transactions, %d bytes)", len(txs), size, forwardMaxTxs, forwardMaxBytes)
		return proto.Marshal(out)
	}
	results, err := n.precheckAndSubmit(ctx, txs)
	if err != nil {
		out.ErrorCode, out.Error = consensusCode(err), err.Error()
	} else {
		out.Results = results
	}
	return proto.Marshal(out)
}

// precheckAndSubmit answers the transactions Precheck refuses with their
// rejection, as Submit on the API does, and proposes the rest; results are
// in the order of txs.
func (n *Node) precheckAndSubmit(ctx context.Context, txs [][]byte) ([]*statepb.TxResult, error) {
	results := make([]*statepb.TxResult, len(txs))
	pass, at := make([][]byte, 0, len(txs)), make([]int, 0, len(txs))
	ids, rejs := n.store.PrecheckAll(txs)
	for i, tx := range txs {
		id, rej := ids[i], rejs[i]
		if rej == nil {
			pass, at = append(pass, tx), append(at, i)
			continue
		}
		res := &statepb.TxResult{}
		rej.Fill(res) // code, field, args and message
		if id != ([32]byte{}) {
			res.TxId = id[:]
		}
		n.metrics.txOutcome(res)
		results[i] = res
	}
	if len(pass) == 0 {
		return results, nil
	}
	res, err := n.cons.Submit(ctx, pass)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		results[at[j]] = r
	}
	return results, nil
}

func (n *Node) handleReadIndex(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	out := &nodepb.ReadIndexResponse{}
	idx, err := n.cons.ReadIndex(ctx)
	if err != nil {
		out.ErrorCode, out.Error = consensusCode(err), err.Error()
	}
	out.Index = idx
	return proto.Marshal(out)
}

// handleStatus answers a peer's poll with this node's status and its clock
// reading, read last so that the peer's round-trip correction holds.
func (n *Node) handleStatus(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	st := n.nodeStatus()
	return proto.Marshal(&nodepb.PeerStatusResponse{Status: st, ClockMs: n.now().UnixMilli()})
}

func (n *Node) handleStateHash(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	var in nodepb.StateHashRequest
	if err := proto.Unmarshal(req, &in); err != nil {
		return nil, fmt.Errorf("bad state hash request: %w", err)
	}
	out := &nodepb.StateHashResponse{Index: in.GetIndex()}
	h, err := n.store.StateHashAt(in.GetIndex())
	if err == nil {
		out.StateHash, out.Found = h, true
	}
	return proto.Marshal(out)
}

// leaderPeer returns the current leader's peer id, or ErrNoLeader.
func (n *Node) leaderPeer() (peer.ID, error) {
	_, addr := n.cons.Leader()
	if addr == "" {
		return "", consensus.ErrNoLeader
	}
	id, err := peer.Decode(string(addr))
	if err != nil {
		return "", fmt.Errorf("leader address %q: %w", addr, err)
	}
	return id, nil
}

// forward sends transactions to the leader and returns their results.
func (n *Node) forward(ctx context.Context, txs [][]byte) ([]*statepb.TxResult, error) {
	leader, err := n.leaderPeer()
	if err != nil {
		return nil, err
	}
	if leader == n.host.ID() {
		return n.cons.Submit(ctx, txs)
	}
	req, _ := proto.Marshal(&nodepb.ForwardRequest{Txs: txs})
	raw, err := n.host.Request(ctx, leader, protoForward, req, maxForwardBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: forward to leader: %w", errRetry, err)
	}
	var out nodepb.ForwardResponse
	if err := proto.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%w: bad forward response: %w", errRetry, err)
	}
	if out.GetErrorCode() != "" {
		return nil, codeError(out.GetErrorCode(), out.GetError())
	}
	if len(out.GetResults()) != len(txs) {
		return nil, fmt.Errorf("%w: leader returned %d results for %d transactions", errRetry, len(out.GetResults()), len(txs))
	}
	return out.GetResults(), nil
}

// readIndex gets a linearizable read index from the leader (itself or a
// peer).
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	if n.cons.IsReadyLeader() {
		return n.cons.ReadIndex(ctx)
	}
	leader, err := n.leaderPeer()
	if err != nil {
		return 0, err
	}
	raw, err := n.host.Request(ctx, leader, protoReadIndex, nil, maxSmallBytes)
	if err != nil {
		return 0, fmt.Errorf("%w: read index from leader: %w", errRetry, err)
	}
	var out nodepb.ReadIndexResponse
	if err := proto.Unmarshal(raw, &out); err != nil {
		return 0, fmt.Errorf("%w: bad read index response: %w", errRetry, err)
	}
	if out.GetErrorCode() != "" {
		return 0, codeError(out.GetErrorCode(), out.GetError())
	}
	return out.GetIndex(), nil
}

// pollPeers asks every other member for its status once a second, so any
// node can describe the whole network (dcep status, the console),
// regulators can compare state hashes and a follower knows the leader's
// commit index (ready). The first round runs at once: a restarted node is
// not ready before it has heard from the leader.
func (n *Node) pollPeers() {
	defer n.wg.Done()
	tick := time.NewTicker(peerPollInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-n.stop:
				return
			case <-tick.C:
			}
		}
		var wg sync.WaitGroup
		for _, m := range n.members.all() {
			if m.GetName() == n.cfg.Name {
				continue
			}
			wg.Add(1)
			go func(m *memberInfo) {
				defer wg.Done()
				n.pollPeer(m)
			}(m)
		}
		wg.Wait()
		n.checkClock()
	}
}

func (n *Node) pollPeer(m *memberInfo) {
	ctx, cancel := context.WithTimeout(context.Background(), peerPollInterval)
	defer cancel()
	n.members.mu.RLock()
	prev := n.members.status[m.GetName()]
	n.members.mu.RUnlock()
	st := &nodepb.PeerStatus{Name: m.GetName(), Role: m.GetRole(), PeerId: m.peer.String(), Connected: n.host.IsConnected(m.peer)}
	resp, err := n.askStatus(ctx, m)
	if err == nil {
		st.Status, st.Connected = resp.GetStatus(), true
		n.members.setStatus(m.GetName(), peerState{st: st, okAt: time.Now()})
		return
	}
	st.Error = err.Error()
	st.Status = prev.st.GetStatus() // keep the last answer; age_ms tells how old
	n.members.setStatus(m.GetName(), peerState{st: st, okAt: prev.okAt})
}

// askStatus asks a peer for its status and, if it is a voter, hands its
// clock reading to consensus (ledger time is the voters' median clock).
func (n *Node) askStatus(ctx context.Context, m *memberInfo) (*nodepb.PeerStatusResponse, error) {
	start := time.Now()
	raw, err := n.host.Request(ctx, m.peer, protoStatus, nil, maxSmallBytes)
	rtt := time.Since(start)
	if err != nil {
		return nil, err
	}
	var resp nodepb.PeerStatusResponse
	if err := proto.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("bad status response: %w", err)
	}
	if m.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER && resp.GetClockMs() != 0 {
		n.cons.ObserveClock(m.GetName(), resp.GetClockMs(), rtt)
	}
	return &resp, nil
}

// sampleClocks asks every other voter for a clock reading now (the leader
// does when its own clock was stepped; consensus/clock.go).
func (n *Node) sampleClocks(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range n.members.all() {
		if m.GetName() == n.cfg.Name || m.GetRole() != statepb.NodeRole_NODE_ROLE_VOTER {
			continue
		}
		wg.Add(1)
		go func(m *memberInfo) {
			defer wg.Done()
			_, _ = n.askStatus(ctx, m)
		}(m)
	}
	wg.Wait()
}

// errRetry marks failures where resubmitting the same bytes is the cure.
var errRetry = errors.New("retry")

// errLeaderChanged: a forward was cancelled because the leader changed
// while it was in flight; its outcome is unknown and it is re-sent.
var errLeaderChanged = errors.New("leader changed")
