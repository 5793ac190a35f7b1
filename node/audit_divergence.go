package node

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/node/nodepb"
)

// Tamper evidence (SPEC §6; node/DESIGN.md, "State-hash comparison"). Every
// node records the state hash after each applied index (state: "s:" records)
// and publishes its latest in its status. Once a second this node compares
// its hash with every peer's at the latest index both have applied:
//
//   - the peer is at or behind us: its polled status (applied index and the
//     hash at it, read together from its ledger) against our recorded hash
//     at that index;
//   - the peer is ahead: our current hash against the peer's hash at our
//     index, asked over /dcep/statehash/1.
//
// A difference is a divergence: the metric dcep_state_divergence{peer} goes to
// 1, an error is logged naming the peer (again every minute while it lasts),
// and the Divergence RPC reports peer, index, both hashes and when it was
// first seen. Since the hash chains every block, a peer that diverged
// differs at every later index until its state is repaired. When most peers
// differ from this node, this node is the likely culprit (self_suspect).

// divergenceInterval is how often hashes are compared.
const divergenceInterval = time.Second

// divergenceLogEvery: how often an ongoing divergence is logged again.
const divergenceLogEvery = time.Minute

// statusMaxAge: a peer's polled status older than this is not compared.
const statusMaxAge = 5 * peerPollInterval

type divergenceMonitor struct {
	n      *Node
	gauge  *prometheus.GaugeVec
	checks *prometheus.CounterVec

	mu      sync.Mutex
	peers   map[string]*nodepb.PeerHashCheck
	divs    map[string]*nodepb.Divergence
	logged  map[string]time.Time
	suspect bool
}

func newDivergenceMonitor(n *Node) *divergenceMonitor {
	return &divergenceMonitor{
		n: n,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dcep_state_divergence",
			Help: "1 if the peer's state hash differs from this node's at the latest index both have applied (0 if it agrees).",
		}, []string{"peer"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dcep_state_hash_checks_total", Help: "State-hash comparisons with peers, by result (match, diverged, error).",
		}, []string{"result"}),
		peers: map[string]*nodepb.PeerHashCheck{}, divs: map[string]*nodepb.Divergence{}, logged: map[string]time.Time{},
	}
}

func (d *divergenceMonitor) run(stop <-chan struct{}) {
	tick := time.NewTicker(divergenceInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		d.checkAll()
	}
}

// checkAll compares with every peer, concurrently (a peer ahead of us costs
// a request).
func (d *divergenceMonitor) checkAll() {
	var wg sync.WaitGroup
	for _, m := range d.n.members.all() {
		if m.GetName() == d.n.cfg.Name {
			continue
		}
		wg.Add(1)
		go func(m *memberInfo) {
			defer wg.Done()
			d.record(m, d.compare(m))
		}(m)
	}
	wg.Wait()
	d.updateSuspect()
}

// compare makes one comparison with a peer.
func (d *divergenceMonitor) compare(m *memberInfo) *nodepb.PeerHashCheck {
	c := &nodepb.PeerHashCheck{Peer: m.GetName(), Role: m.GetRole(), CheckedAtMs: time.Now().UnixMilli()}
	ps, ok := d.n.members.peerStatus(m.GetName())
	st := ps.GetStatus()
	switch {
	case !ok || st == nil:
		c.Error = "no status from this peer yet"
		return c
	case time.Duration(ps.GetAgeMs())*time.Millisecond > statusMaxAge:
		c.Error = fmt.Sprintf("last status is %v old", time.Duration(ps.GetAgeMs())*time.Millisecond)
		return c
	case st.GetAppliedIndex() == 0:
		c.Error = "peer has applied nothing yet"
		return c
	}
	mine := d.n.store.Meta()
	if mine.GetAppliedIndex() == 0 {
		c.Error = "this node has applied nothing yet"
		return c
	}
	if st.GetAppliedIndex() <= mine.GetAppliedIndex() {
		c.Index, c.TheirHash = st.GetAppliedIndex(), st.GetStateHash()
		if c.Index == mine.GetAppliedIndex() {
			c.OurHash = mine.GetStateHash()
		} else {
			h, err := d.n.store.StateHashAt(c.Index)
			if err != nil {
				c.Error = fmt.Sprintf("our state hash at %d: %v", c.Index, err)
				return c
			}
			c.OurHash = h
		}
	} else {
		c.Index, c.OurHash = mine.GetAppliedIndex(), mine.GetStateHash()
		h, err := d.askHash(m, c.Index)
		if err != nil {
			c.Error = err.Error()
			return c
		}
		c.TheirHash = h
	}
	c.Diverged = !bytes.Equal(c.OurHash, c.TheirHash)
	return c
}

// askHash asks a peer for its state hash at index, for at most a
// comparison interval.
func (d *divergenceMonitor) askHash(m *memberInfo, index uint64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), divergenceInterval)
	defer cancel()
	return d.n.askStateHash(ctx, m, index)
}

// askStateHash asks a peer for its state hash at index
// (/dcep/statehash/1).
func (n *Node) askStateHash(ctx context.Context, m *memberInfo, index uint64) ([]byte, error) {
	req, _ := proto.Marshal(&nodepb.StateHashRequest{Index: index})
	raw, err := n.host.Request(ctx, m.peer, protoStateHash, req, maxSmallBytes)
	if err != nil {
		return nil, fmt.Errorf("ask state hash at %d: %w", index, err)
	}
	var resp nodepb.StateHashResponse
	if err := proto.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("bad state hash response: %w", err)
	}
	if !resp.GetFound() {
		return nil, fmt.Errorf("peer has no state hash at %d", index)
	}
	return resp.GetStateHash(), nil
}

// record keeps a comparison and raises or clears the alert.
func (d *divergenceMonitor) record(m *memberInfo, c *nodepb.PeerHashCheck) {
	name := m.GetName()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.peers[name] = c
	if c.GetError() != "" {
		d.checks.WithLabelValues("error").Inc()
		return
	}
	now := time.Now()
	div := d.divs[name]
	if !c.GetDiverged() {
		d.checks.WithLabelValues("match").Inc()
		d.gauge.WithLabelValues(name).Set(0)
		if div != nil && div.GetOngoing() {
			div.Ongoing = false
			d.n.log.Warn("state hash agrees with peer again", "peer", name, "index", c.GetIndex())
		}
		return
	}
	d.checks.WithLabelValues("diverged").Inc()
	d.gauge.WithLabelValues(name).Set(1)
	if div == nil || !div.GetOngoing() {
		div = &nodepb.Divergence{
			Peer: name, FirstIndex: c.GetIndex(), OurHash: c.GetOurHash(), TheirHash: c.GetTheirHash(), FirstSeenMs: now.UnixMilli(), Ongoing: true,
		}
		d.divs[name] = div
	}
	div.LastSeenMs, div.LastIndex = now.UnixMilli(), c.GetIndex()
	if now.Sub(d.logged[name]) >= divergenceLogEvery {
		d.logged[name] = now
		d.n.log.Error("STATE DIVERGENCE: peer's state hash differs from this node's", "peer", name, "role", roleName(m.GetRole()),
			"index", c.GetIndex(), "our_hash", fmt.Sprintf("%x", c.GetOurHash()), "their_hash", fmt.Sprintf("%x", c.GetTheirHash()),
			"first_index", div.GetFirstIndex())
	}
}

// updateSuspect decides whether this node is the odd one out: most of the
// peers it could compare with differ from it.
func (d *divergenceMonitor) updateSuspect() {
	d.mu.Lock()
	defer d.mu.Unlock()
	compared, diverged := 0, 0
	for _, c := range d.peers {
		if c.GetError() == "" {
			compared++
			if c.GetDiverged() {
				diverged++
			}
		}
	}
	suspect := compared >= 2 && 2*diverged > compared
	if suspect && !d.suspect {
		d.n.log.Error("STATE DIVERGENCE: this node's state hash differs from most peers'; this node's ledger is the likely culprit",
			"diverged", diverged, "compared", compared)
	}
	d.suspect = suspect
}

func (d *divergenceMonitor) selfSuspect() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.suspect
}

// diverged lists peers whose latest comparison differs.
func (d *divergenceMonitor) diverged() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, div := range d.divs {
		if div.GetOngoing() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (d *divergenceMonitor) report() *nodepb.DivergenceResponse {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := &nodepb.DivergenceResponse{Node: d.n.cfg.Name, SelfSuspect: d.suspect}
	for _, div := range d.divs {
		out.Divergences = append(out.Divergences, proto.Clone(div).(*nodepb.Divergence))
	}
	sort.Slice(out.Divergences, func(i, j int) bool { return out.Divergences[i].GetPeer() < out.Divergences[j].GetPeer() })
	for _, c := range d.peers {
		out.Peers = append(out.Peers, proto.Clone(c).(*nodepb.PeerHashCheck))
	}
	sort.Slice(out.Peers, func(i, j int) bool { return out.Peers[i].GetPeer() < out.Peers[j].GetPeer() })
	return out
}
