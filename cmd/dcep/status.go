package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

type nodeJSON struct {
	Name         string `json:"name"`
	Role         string `json:"role"`
	RaftState    string `json:"raft_state,omitempty"`
	Leader       string `json:"leader,omitempty"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	Ready        bool   `json:"ready"`
	AgeMs        int64  `json:"age_ms"`
	// Reachable: the answering node heard from this one within
	// staleAfter (always true for the answering node). An unreachable
	// node's other fields are its last answer, and it is not counted
	// ready whatever that said.
	Reachable    bool   `json:"reachable"`
	LedgerTimeMs int64  `json:"ledger_time_ms,omitempty"`
	LedgerTime   string `json:"ledger_time,omitempty"`
	API          string `json:"api,omitempty"`
	// BuildMaxLedgerVersion: the highest ledger version the node's build
	// runs (0 when the node did not say: an older build).
	BuildMaxLedgerVersion uint32 `json:"build_max_ledger_version,omitempty"`
	Error                 string `json:"error,omitempty"`
}

type statusJSON struct {
	Node    string `json:"node"`
	URL     string `json:"url"`
	ChainID string `json:"chain_id"`
	Leader  string `json:"leader"`
	Term    uint64 `json:"term"`
	Ready   int    `json:"ready"`
	Total   int    `json:"total"`
	// Voters and VotersReachable: a quorum is more than half the voters.
	Voters          int  `json:"voters"`
	VotersReachable int  `json:"voters_reachable"`
	Quorum          bool `json:"quorum"`
	// LedgerTime is the answering node's ledger time at its applied index.
	LedgerTimeMs int64  `json:"ledger_time_ms"`
	LedgerTime   string `json:"ledger_time"`
	// LedgerVersion is the active ledger version at the answering node's
	// applied index; NextLedgerVersion and NextLedgerVersionAtIndex the one
	// an ActivateVersion scheduled, if any (docs/operations.md, "Rolling
	// upgrade").
	LedgerVersion            uint32     `json:"ledger_version"`
	NextLedgerVersion        uint32     `json:"next_ledger_version,omitempty"`
	NextLedgerVersionAtIndex uint64     `json:"next_ledger_version_at_index,omitempty"`
	Nodes                    []nodeJSON `json:"nodes"`
}

// staleAfter is how old a peer's last answer may be before status calls
// the peer unreachable: nodes poll each other every second, so three
// missed polls.
const staleAfter = 3 * time.Second

func (a *app) statusCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every node: role, Raft state, leader, term, applied index, readiness",
		Long: `status asks --node for its own status and for what it last heard from each
of its peers (nodes poll each other every second; AGE is how old that answer is).
A peer not heard from for 3 s, or whose last poll failed, is shown as
UNREACHABLE with its last answer's age, and is not counted ready.
With --wait it waits until a leader is known and every node is ready.

Exit status: 0 when a leader is known and a quorum of voters is reachable
(some nodes may still be unready or unreachable: see READY); 3 (NO_LEADER or
NO_QUORUM) when the network has no leader or fewer than a quorum of voters
answer — the table is printed first; 3 (NOT_READY) with --wait if not every
node is ready in time; 3 (NODE_UNREACHABLE) if --node does not answer.`,
		Example: `  dcep status
  dcep status --wait 30s
  dcep --node http://127.0.0.1:8108 --json status`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out, err := a.status(ctx)
			if wait > 0 {
				deadline := time.Now().Add(wait)
				for (err != nil || out.Ready < out.Total || out.Leader == "") && time.Now().Before(deadline) {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(250 * time.Millisecond):
					}
					out, err = a.status(ctx)
				}
			}
			if err != nil {
				return err
			}
			if perr := a.emit(out, func(w io.Writer) { writeStatus(w, out) }); perr != nil {
				return perr
			}
			if wait > 0 && (out.Ready < out.Total || out.Leader == "") {
				return fail(exitNetwork, codeNotReady, "%d of %d nodes ready after %v", out.Ready, out.Total, wait)
			}
			if !out.Quorum {
				return fail(exitNetwork, codeNoQuorum, "only %d of %d voters reachable: no quorum, nothing can commit", out.VotersReachable, out.Voters)
			}
			if out.Leader == "" {
				return fail(exitNetwork, codeNoLeader, "no leader known to %s: nothing can commit until one is elected", out.Node)
			}
			return nil
		}),
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long until every node is ready (exit 3 if not)")
	return cmd
}

func (a *app) status(ctx context.Context) (*statusJSON, error) {
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return nil, err
	}
	self := st.GetNode()
	out := &statusJSON{Node: self.GetName(), URL: a.node, ChainID: self.GetChainId(), Leader: self.GetLeader(), Term: self.GetTerm(),
		LedgerTimeMs: self.GetLedgerTimeMs(), LedgerTime: ledgerTime(self.GetLedgerTimeMs()),
		LedgerVersion: self.GetLedgerVersion().GetActive(), NextLedgerVersion: self.GetLedgerVersion().GetNext(),
		NextLedgerVersionAtIndex: self.GetLedgerVersion().GetNextAtIndex()}
	me := nodeOut(self, 0, "")
	me.Reachable = true
	out.Nodes = append(out.Nodes, me)
	for _, p := range st.GetPeers() {
		out.Nodes = append(out.Nodes, peerOut(p))
	}
	sort.SliceStable(out.Nodes[1:], func(i, j int) bool {
		x, y := out.Nodes[1+i], out.Nodes[1+j]
		if x.Role != y.Role {
			return x.Role == roleName(statepb.NodeRole_NODE_ROLE_VOTER)
		}
		return x.Name < y.Name
	})
	out.Total = len(out.Nodes)
	leaderReachable := false
	for _, n := range out.Nodes {
		if n.Ready {
			out.Ready++
		}
		if n.Role == roleName(statepb.NodeRole_NODE_ROLE_VOTER) {
			out.Voters++
			if n.Reachable {
				out.VotersReachable++
			}
		}
		leaderReachable = leaderReachable || (n.Name == out.Leader && n.Reachable)
	}
	out.Quorum = out.VotersReachable > out.Voters/2
	if !leaderReachable {
		// The answering node still names a leader it cannot reach (Raft
		// forgets a leader only after an election timeout).
		out.Leader = ""
	}
	return out, nil
}

// peerOut is a peer as the answering node last heard it: unreachable (and
// not ready) if that answer is older than staleAfter or the last poll
// failed.
func peerOut(p *nodepb.PeerStatus) nodeJSON {
	s := p.GetStatus()
	if s == nil {
		return nodeJSON{Name: p.GetName(), Role: roleName(p.GetRole()), Error: "unreachable: " + p.GetError()}
	}
	n := nodeOut(s, p.GetAgeMs(), p.GetError())
	n.Reachable = p.GetConnected() && p.GetError() == "" && time.Duration(p.GetAgeMs())*time.Millisecond <= staleAfter
	if !n.Reachable {
		n.Ready = false
		why := p.GetError()
		if why == "" && !p.GetConnected() {
			why = "not connected"
		}
		if why == "" {
			why = "no answer"
		}
		n.Error = fmt.Sprintf("unreachable: %s; last heard %s ago", why, ago(p.GetAgeMs()))
	}
	return n
}

// ledgerTime renders ledger time (Unix ms) in UTC, "" before the first
// stamped entry.
func ledgerTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

func nodeOut(s *nodepb.NodeStatus, ageMs int64, errText string) nodeJSON {
	return nodeJSON{
		Name: s.GetName(), Role: roleName(s.GetRole()), RaftState: s.GetRaftState(), Leader: s.GetLeader(), Term: s.GetTerm(),
		AppliedIndex: s.GetAppliedIndex(), CommitIndex: s.GetCommitIndex(), Ready: s.GetReady(), AgeMs: ageMs,
		LedgerTimeMs: s.GetLedgerTimeMs(), LedgerTime: ledgerTime(s.GetLedgerTimeMs()),
		API: s.GetApiAddr(), BuildMaxLedgerVersion: s.GetBuildMaxLedgerVersion(), Error: errText,
	}
}

func writeStatus(w io.Writer, s *statusJSON) {
	notes := false
	for _, n := range s.Nodes {
		notes = notes || n.Error != ""
	}
	head := []string{"NODE", "ROLE", "RAFT", "LEADER", "TERM", "APPLIED", "COMMIT", "READY", "AGE", "API"}
	if notes {
		head = append(head, "NOTE")
	}
	t := newTable(head...).alignRight(4, 5, 6, 8)
	for i, n := range s.Nodes {
		age := ago(n.AgeMs)
		if i == 0 {
			age = "now"
		}
		ready := "no"
		if n.Ready {
			ready = "yes"
		}
		if n.RaftState == "" {
			t.add(n.Name, n.Role, "UNREACHABLE", "-", "-", "-", "-", ready, "-", "-", n.Error)
			continue
		}
		raft := n.RaftState
		if !n.Reachable {
			// Its last answer, shown for what it was, not as current.
			raft = "UNREACHABLE"
			age += " (old)"
		}
		leader := n.Leader
		if leader == "" {
			leader = "(none)"
		}
		t.add(n.Name, n.Role, raft, leader, fmt.Sprint(n.Term), fmt.Sprint(n.AppliedIndex), fmt.Sprint(n.CommitIndex), ready, age, n.API, n.Error)
	}
	t.write(w)
	leader := s.Leader
	if leader == "" {
		leader = "none known"
	}
	fmt.Fprintf(w, "\nnetwork %s: leader %s, term %d; %d of %d nodes ready; %d of %d voters reachable (answered by %s at %s)\n",
		s.ChainID, leader, s.Term, s.Ready, s.Total, s.VotersReachable, s.Voters, s.Node, s.URL)
	if s.LedgerTime != "" {
		fmt.Fprintf(w, "ledger time %s (at %s's applied index)\n", s.LedgerTime, s.Node)
	}
	writeLedgerVersion(w, s)
	if !s.Quorum {
		fmt.Fprintf(w, "NO QUORUM: fewer than %d of %d voters reachable; nothing can commit\n", s.Voters/2+1, s.Voters)
	} else if s.Leader == "" {
		fmt.Fprintln(w, "NO LEADER: nothing can commit until one is elected")
	}
}

// writeLedgerVersion prints the version schedule and, when a version is
// scheduled, the nodes whose build cannot run it (they will stop at its
// index).
func writeLedgerVersion(w io.Writer, s *statusJSON) {
	if s.LedgerVersion == 0 {
		return // an older node that does not report it
	}
	if s.NextLedgerVersion == 0 {
		fmt.Fprintf(w, "ledger version %d (none scheduled)\n", s.LedgerVersion)
		return
	}
	fmt.Fprintf(w, "ledger version %d; version %d scheduled from log index %d\n", s.LedgerVersion, s.NextLedgerVersion, s.NextLedgerVersionAtIndex)
	for _, n := range s.Nodes {
		if n.BuildMaxLedgerVersion != 0 && n.BuildMaxLedgerVersion < s.NextLedgerVersion {
			fmt.Fprintf(w, "NOT UPGRADED: %s's build runs ledger versions up to %d; it will stop at index %d\n", n.Name, n.BuildMaxLedgerVersion, s.NextLedgerVersionAtIndex)
		}
	}
}
