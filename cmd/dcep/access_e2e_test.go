package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAuditAccessCLI: a holder's reads on a bank node are on that node's
// access log, and `dcep audit access` (signed in as the regulator) shows
// them by wallet and by identity.
func TestAuditAccessCLI(t *testing.T) {
	net := shared(t)
	w := fmt.Sprintf("acc-%x", time.Now().UnixNano()%0xffffff)
	fund(t, net, w, "icbc", "20")
	net.ok(t, "balance", w)
	net.ok(t, "history", w)
	nodes, err := net.nodes()
	if err != nil {
		t.Fatal(err)
	}
	bankNode := nodes[0]
	var out accessListJSON
	net.okJSON(t, &out, "--node", bankNode.API, "audit", "access", "--wallet", w)
	if out.Node != bankNode.Name {
		t.Fatalf("answered by %q, asked %q", out.Node, bankNode.Name)
	}
	seen := map[string]bool{}
	for _, r := range out.Records {
		if r.Wallet != w {
			t.Fatalf("record about %q in a query for %q: %+v", r.Wallet, w, r)
		}
		if r.Allowed && r.Identity == w && r.Role == "wallet" {
			seen[shortProcedure(r.Procedure)] = true
		}
	}
	if !seen["LedgerService/GetWallet"] || !seen["LedgerService/History"] {
		t.Fatalf("the holder's balance and history reads are not on record: %+v", out.Records)
	}
	r := net.ok(t, "--node", bankNode.API, "audit", "access", "--by", w)
	if !strings.Contains(r.stdout, "LedgerService/History") || !strings.Contains(r.stdout, "allowed") {
		t.Fatalf("audit access --by %s:\n%s", w, r.stdout)
	}
	net.refused(t, exitUsage, codeUsage, []string{"audit", "access"}, "--wallet WALLET or --by IDENTITY")
}
