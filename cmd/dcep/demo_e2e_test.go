package main

import (
	"strings"
	"testing"
	"time"
)

// TestDemoSuzhou runs `dcep demo suzhou` against a real `dcepd dev`
// process (the network shared by this test binary), as the README says,
// and checks that it ran green: every chapter, every figure checked, the
// offline chapter played or reported as skipped, exit status 0.
func TestDemoSuzhou(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a whole campaign with windows of ledger time (about a minute)")
	}
	net := shared(t)
	start := time.Now()
	r := net.dcep(t, "demo", "suzhou", "--citizens", "24", "--packets", "8")
	t.Logf("dcep demo suzhou in %v:\n%s", time.Since(start).Round(time.Millisecond), r.stdout)
	if r.exit != 0 {
		t.Fatalf("demo failed:\n%v", r)
	}
	for _, want := range []string{
		"── 1. The People's Bank of China issues e-CNY", "── 5. The draw", "refused DRAW_SEED_MISMATCH",
		"refused RED_PACKET_MERCHANT_INELIGIBLE", "refused SUBWALLET_LIMIT_DAILY", "── 9. A dual-offline double spend",
		"── 11. The regulator's audit", " failed. Look around",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "✗") || !strings.Contains(r.stdout, " checks, 0 failed.") {
		t.Fatal("a check failed")
	}
}
