package nodetest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/node/nodepb"
)

// Metric scrapes a node's /metrics and returns the sum of every sample of
// the named metric (all label values), or 0 if it has none.
func Metric(apiBase, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiBase+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric whose name starts with this one
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// MustMetric is Metric on a cluster node, failing the test on error.
func (c *Cluster) MustMetric(name, metric string) float64 {
	c.T.Helper()
	v, err := Metric(c.URL(name), metric)
	if err != nil {
		c.T.Fatalf("%s: %v", name, err)
	}
	return v
}

// AuditAll runs the supply audit on every running in-process node and
// fails the test unless the invariant holds everywhere.
func (c *Cluster) AuditAll() {
	c.T.Helper()
	for _, name := range c.Running() {
		if _, err := c.Node(name).Store().AuditSupply(); err != nil {
			c.T.Fatalf("%s: supply invariant: %v", name, err)
		}
	}
}

// AuditAPI asks a node's API for an audited supply and fails the test
// unless the invariant holds.
func (c *Cluster) AuditAPI(name string) *nodepb.SupplyResponse {
	c.T.Helper()
	resp, err := c.Client(name).Supply(context.Background(), connect.NewRequest(&nodepb.SupplyRequest{Audit: true}))
	if err != nil {
		c.T.Fatalf("%s: supply audit: %v", name, err)
	}
	if !resp.Msg.GetInvariantHolds() {
		c.T.Fatalf("%s: supply invariant does not hold: %s", name, resp.Msg.GetInvariantError())
	}
	return resp.Msg
}

// WaitReady waits until an in-process node reports Ready and returns how
// long that took from start.
func (c *Cluster) WaitReady(name string, timeout time.Duration) time.Duration {
	c.T.Helper()
	start := time.Now()
	for {
		if nd := c.Node(name); nd != nil && nd.Ready() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			c.T.Fatalf("%s not ready within %v", name, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Eventually polls cond until it returns nil or the timeout passes, then
// fails the test with the last error.
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() error) {
	c.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
