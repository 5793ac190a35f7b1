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
	API          string `json:"api,omitempty"`
	Error        string `json:"error,omitempty"`
}

type statusJSON struct {
	Node    string     `json:"node"`
	URL     string     `json:"url"`
	ChainID string     `json:"chain_id"`
	Leader  string     `json:"leader"`
	Term    uint64     `json:"term"`
	Ready   int        `json:"ready"`
	Total   int        `json:"total"`
	Nodes   []nodeJSON `json:"nodes"`
}

func (a *app) statusCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every node: role, Raft state, leader, term, applied index, readiness",
		Long: `status asks --node for its own status and for what it last heard from each
of its peers (nodes poll each other every second; AGE is how old that answer is).
With --wait it waits until a leader is known and every node is ready.`,
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
	out := &statusJSON{Node: self.GetName(), URL: a.node, ChainID: self.GetChainId(), Leader: self.GetLeader(), Term: self.GetTerm()}
	out.Nodes = append(out.Nodes, nodeOut(self, 0, ""))
	for _, p := range st.GetPeers() {
		if s := p.GetStatus(); s != nil {
			n := nodeOut(s, p.GetAgeMs(), p.GetError())
			if !p.GetConnected() && n.Error == "" {
				n.Error = "not connected"
			}
			out.Nodes = append(out.Nodes, n)
			continue
		}
		out.Nodes = append(out.Nodes, nodeJSON{Name: p.GetName(), Role: roleName(p.GetRole()), Error: p.GetError()})
	}
	sort.SliceStable(out.Nodes[1:], func(i, j int) bool {
		x, y := out.Nodes[1+i], out.Nodes[1+j]
		if x.Role != y.Role {
			return x.Role == roleName(statepb.NodeRole_NODE_ROLE_VOTER)
		}
		return x.Name < y.Name
	})
	out.Total = len(out.Nodes)
	for _, n := range out.Nodes {
		if n.Ready {
			out.Ready++
		}
	}
	return out, nil
}

func nodeOut(s *nodepb.NodeStatus, ageMs int64, errText string) nodeJSON {
	return nodeJSON{
		Name: s.GetName(), Role: roleName(s.GetRole()), RaftState: s.GetRaftState(), Leader: s.GetLeader(), Term: s.GetTerm(),
		AppliedIndex: s.GetAppliedIndex(), CommitIndex: s.GetCommitIndex(), Ready: s.GetReady(), AgeMs: ageMs,
		API: s.GetApiAddr(), Error: errText,
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
			t.add(n.Name, n.Role, "-", "-", "-", "-", "-", ready, "-", "-", n.Error)
			continue
		}
		leader := n.Leader
		if leader == "" {
			leader = "(none)"
		}
		t.add(n.Name, n.Role, n.RaftState, leader, fmt.Sprint(n.Term), fmt.Sprint(n.AppliedIndex), fmt.Sprint(n.CommitIndex), ready, age, n.API, n.Error)
	}
	t.write(w)
	leader := s.Leader
	if leader == "" {
		leader = "none known"
	}
	fmt.Fprintf(w, "\nnetwork %s: leader %s, term %d; %d of %d nodes ready (answered by %s at %s)\n",
		s.ChainID, leader, s.Term, s.Ready, s.Total, s.Node, s.URL)
}
