package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// notReady says why a node is still not ready when a fault's recovery
// timed out: its /readyz answer (reason, leader, indexes) and its Raft
// status (state, term, last log index, last contact), so that a liveness
// failure can be read from the report without the run directory (defect
// 9 in docs/RELIABILITY.md was seen once and left only a log line).
func (c *Campaign) notReady(name string) string {
	var parts []string
	if nn, ok := c.net.Node(name); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, nn.API+"/readyz", nil)
		hc := c.net.HTTP
		if hc == nil {
			hc = http.DefaultClient
		}
		if resp, err := hc.Do(req); err != nil {
			parts = append(parts, fmt.Sprintf("readyz: %v", err))
		} else {
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			var body map[string]any
			if json.Unmarshal(raw, &body) == nil {
				parts = append(parts, fmt.Sprintf("readyz %d: reason %q, leader %q, applied %v, commit %v, leader commit %v",
					resp.StatusCode, body["reason"], body["leader"], body["applied_index"], body["commit_index"], body["leader_commit_index"]))
			} else {
				parts = append(parts, fmt.Sprintf("readyz %d: %q", resp.StatusCode, strings.TrimSpace(string(raw))))
			}
		}
		cancel()
	}
	if cl := c.client(name); cl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cl.API().Status(ctx, connectReq())
		cancel()
		if err != nil {
			parts = append(parts, fmt.Sprintf("status: %v", err))
		} else {
			s := st.Msg.GetNode()
			parts = append(parts, fmt.Sprintf("raft %s, term %d, leader %q, last log %d, commit %d, applied %d, last contact %d ms ago",
				s.GetRaftState(), s.GetTerm(), s.GetLeader(), s.GetLastLogIndex(), s.GetCommitIndex(), s.GetAppliedIndex(), s.GetLastContactMs()))
		}
	}
	return strings.Join(parts, "; ")
}
