package node

import (
	"fmt"
	"strings"
	"testing"
)

// TestLimiterTableBounded: requests from more addresses than the table
// holds, all of them active, never grow it past maxTrackedIPs; a known
// address over its rate is still refused.
func TestLimiterTableBounded(t *testing.T) {
	l := newLimiter(LimitsConfig{RatePerSec: 5, Burst: 5, MaxStreams: 1, MaxInflightSubmits: 1})
	for i := range 2 * maxTrackedIPs {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&0xff, i&0xff)
		if !l.allow(ip) {
			t.Fatalf("first request from %s refused", ip)
		}
		if n := l.trackedIPs(); n > maxTrackedIPs {
			t.Fatalf("table holds %d addresses after %d (limit %d)", n, i+1, maxTrackedIPs)
		}
	}
	refused := 0
	for range 10 {
		if !l.allow("192.0.2.1") {
			refused++
		}
	}
	if refused != 5 {
		t.Fatalf("10 requests over a burst of 5: %d refused, want 5", refused)
	}
}

// TestStreamCaps: the per-address and the node-wide caps on outcome
// streams, and their release; the per-address table forgets addresses
// with no stream open.
func TestStreamCaps(t *testing.T) {
	c := newStreamCaps(3, 2)
	var release []func()
	for _, addr := range []string{"10.0.0.1:1000", "10.0.0.1:1001", "10.0.0.2:5"} {
		r, err := c.acquire(addr)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		release = append(release, r)
	}
	if _, err := c.acquire("10.0.0.3:1"); err == nil || !strings.Contains(err.Error(), "OVERLOADED") {
		t.Fatalf("over the node-wide cap: %v", err)
	}
	release[2]()
	release[2]() // idempotent
	if _, err := c.acquire("10.0.0.1:1002"); err == nil || !strings.Contains(err.Error(), "RATE_LIMITED") {
		t.Fatalf("over the per-address cap: %v", err)
	}
	release[0]()
	release[1]()
	if c.total != 0 || len(c.byIP) != 0 {
		t.Fatalf("after release: total %d, table %v", c.total, c.byIP)
	}
}
