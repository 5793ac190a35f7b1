package node

import (
	"fmt"
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
