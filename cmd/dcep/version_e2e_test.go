package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLedgerVersionScheduleInStatus (issue 16): the version schedule is
// visible before it takes effect. On a fresh network `dcep status` says
// ledger version 1, none scheduled; after `dcep ledger-version activate
// --version 2 --at INDEX` (INDEX far ahead, so nothing stops) --json
// carries the next version and its index, every node's build maximum
// (1: these builds cannot run it), the text names every node as NOT
// UPGRADED, and GET /status carries the same schedule.
func TestLedgerVersionScheduleInStatus(t *testing.T) {
	net, err := startDev(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := net.stop(); err != nil {
			t.Error(err)
		}
	}()
	var st statusJSON
	net.okJSON(t, &st, "status")
	if st.LedgerVersion != 1 || st.NextLedgerVersion != 0 || st.NextLedgerVersionAtIndex != 0 {
		t.Fatalf("fresh network: version %d, next %d at %d", st.LedgerVersion, st.NextLedgerVersion, st.NextLedgerVersionAtIndex)
	}
	if r := net.ok(t, "status"); !strings.Contains(r.stdout, "ledger version 1 (none scheduled)") {
		t.Fatalf("status text lacks the version:\n%v", r)
	}
	at := st.Nodes[0].AppliedIndex + 1_000_000
	net.ok(t, "ledger-version", "activate", "--version", "2", "--at", fmt.Sprint(at))

	deadline := time.Now().Add(20 * time.Second)
	for {
		net.okJSON(t, &st, "status")
		all := st.NextLedgerVersion == 2
		for _, n := range st.Nodes {
			all = all && n.BuildMaxLedgerVersion == 1
		}
		if all && st.LedgerVersion == 1 && st.NextLedgerVersionAtIndex == at {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after activate: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := net.ok(t, "status")
	if !strings.Contains(r.stdout, fmt.Sprintf("ledger version 1; version 2 scheduled from log index %d", at)) {
		t.Fatalf("status text lacks the schedule:\n%v", r)
	}
	if got := strings.Count(r.stdout, "NOT UPGRADED: "); got != len(st.Nodes) {
		t.Fatalf("%d NOT UPGRADED lines for %d nodes:\n%v", got, len(st.Nodes), r)
	}

	resp, err := http.Get(net.url(st.Node) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var plain struct {
		Node struct {
			LedgerVersion struct {
				Active, Next uint32
				NextAtIndex  string
			}
			BuildMaxLedgerVersion uint32
		}
	}
	if err := json.Unmarshal(raw, &plain); err != nil {
		t.Fatalf("/status: %v: %s", err, raw)
	}
	v := plain.Node.LedgerVersion
	if v.Active != 1 || v.Next != 2 || v.NextAtIndex != fmt.Sprint(at) || plain.Node.BuildMaxLedgerVersion != 1 {
		t.Fatalf("/status ledger version: %+v, build max %d: %s", v, plain.Node.BuildMaxLedgerVersion, raw)
	}
}
