package main

import (
	"strings"
	"testing"
	"time"
)

// TestRedPacketCLI drives a campaign, a sub-wallet pushed to a platform
// and a refund through the dcep CLI against a real `dcepd dev` process:
// every command's output, refusals printed as "error CODE: ..." with exit
// status 1, and the campaign finishing by itself when its window closes.
func TestRedPacketCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for windows of ledger time")
	}
	net := shared(t)
	ok := func(want string, args ...string) result {
		t.Helper()
		r := net.ok(t, args...)
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%v", want, r)
		}
		return r
	}
	net.ok(t, "issue", "--bank", "icbc", "--amount", "100000")
	net.ok(t, "issue", "--bank", "boc", "--amount", "100000")
	net.ok(t, "wallet", "create", "rpc-city", "--bank", "icbc", "--tier", "1", "--kind", "government", "--region", "320500")
	net.ok(t, "wallet", "create", "rpc-shop", "--bank", "boc", "--tier", "2", "--kind", "merchant", "--region", "320500")
	net.ok(t, "wallet", "create", "rpc-nj", "--bank", "boc", "--tier", "2", "--kind", "merchant", "--region", "320100")
	net.ok(t, "exchange", "--to", "rpc-city", "--amount", "5000")
	net.ok(t, "exchange", "--to", "rpc-shop", "--amount", "100")
	for _, c := range []string{"rpc-a", "rpc-b"} {
		net.ok(t, "wallet", "create", c, "--bank", "icbc", "--tier", "4")
		net.ok(t, "exchange", "--to", c, "--amount", "300")
	}

	start := time.Now()
	ok("created campaign rpc-camp: 2 red packets of ¥200.00 (¥400.00 in escrow from rpc-city)",
		"redpacket", "create", "rpc-camp", "--sponsor", "rpc-city", "--packets", "2", "--amount", "200", "--region", "320500",
		"--title", "CLI test", "--enrol-until", "+5s", "--spend-until", "+16s")
	ok("rpc-a enrolled in rpc-camp as enrolment 0", "redpacket", "enrol", "rpc-camp", "--wallet", "rpc-a")
	ok("as enrolment 1", "redpacket", "enrol", "rpc-camp", "--wallet", "rpc-b")
	net.refused(t, exitRefused, "ALREADY_ENROLLED", []string{"redpacket", "enrol", "rpc-camp", "--wallet", "rpc-a"}, `"rpc-a" is already enrolled`)
	net.refused(t, exitRefused, "DRAW_TOO_EARLY", []string{"redpacket", "draw", "rpc-camp"}, "enrolment in \"rpc-camp\" is open until")
	net.refused(t, exitRefused, "CAMPAIGN_NOT_FOUND", []string{"redpacket", "status", "no-such-campaign"}, "no campaign")
	time.Sleep(time.Until(start.Add(5500 * time.Millisecond)))
	ok("drew rpc-camp: 2 winners among 2 enrolments; 2 red packets granted", "redpacket", "draw", "rpc-camp")
	ok("the ledger's 2 granted winners equal the recomputation", "redpacket", "verify", "rpc-camp")
	var st campaignJSON
	net.okJSON(t, &st, "redpacket", "status", "rpc-camp", "--wallet", "rpc-a")
	if st.Won != 2 || st.Granted != 2 || st.WalletWon == nil || !*st.WalletWon || st.Status != "granted" {
		t.Fatalf("status %+v", st)
	}

	// Paying the Suzhou shop uses the red packet first; paying Nanjing does
	// not touch it (plain money).
	pay := ok("paid ¥250.00 from rpc-a to rpc-shop", "pay", "--from", "rpc-a", "--to", "rpc-shop", "--amount", "250")
	ok("paid ¥10.00 from rpc-b to rpc-nj", "pay", "--from", "rpc-b", "--to", "rpc-nj", "--amount", "10")
	var pays []paymentJSON
	net.okJSON(t, &pays, "payments", "rpc-shop")
	if len(pays) != 1 || pays[0].RedPacketFen != 20000 || pays[0].AmountFen != 25000 || pays[0].Campaign != "rpc-camp" {
		t.Fatalf("payments %+v\n%v", pays, pay)
	}
	ok("¥30.00 self-funded", "refund", "--merchant", "rpc-shop", "--payment", pays[0].TxID, "--amount", "30")
	ok("as a red packet of rpc-camp", "refund", "--merchant", "rpc-shop", "--payment", pays[0].TxID, "--amount", "40")
	net.refused(t, exitRefused, "REFUND_EXCEEDS_PAYMENT", []string{"refund", "--merchant", "rpc-shop", "--payment", pays[0].TxID, "--amount", "1000"}, "still refundable")
	ok("1 payments: ¥250.00 received (¥200.00 of it red-packet money), ¥70.00 refunded", "payments", "rpc-shop")

	// A sub-wallet pushed to the shop as a platform.
	ok("created sub-wallet rpc-b.sub under rpc-b", "subwallet", "create", "rpc-b.sub", "--parent", "rpc-b")
	ok("moved ¥100.00 from rpc-b into sub-wallet rpc-b.sub", "subwallet", "fund", "rpc-b.sub", "--amount", "100")
	ok("pushed rpc-b.sub to rpc-shop: up to ¥50.00 a payment, ¥80.00 a day", "subwallet", "push", "rpc-b.sub", "--platform", "rpc-shop", "--max-payment", "50", "--max-daily", "80", "--expires", "+1h")
	ok("rpc-shop charged ¥40.00 to sub-wallet rpc-b.sub", "charge", "--platform", "rpc-shop", "--subwallet", "rpc-b.sub", "--amount", "40")
	net.refused(t, exitRefused, "SUBWALLET_LIMIT_PAYMENT", []string{"charge", "--platform", "rpc-shop", "--subwallet", "rpc-b.sub", "--amount", "60"}, "per-payment cap ¥50.00")
	net.refused(t, exitRefused, "SUBWALLET_LIMIT_DAILY", []string{"charge", "--platform", "rpc-shop", "--subwallet", "rpc-b.sub", "--amount", "41"}, "daily cap ¥80.00")
	net.refused(t, exitRefused, "SUBWALLET_WRONG_PLATFORM", []string{"charge", "--platform", "rpc-nj", "--subwallet", "rpc-b.sub", "--amount", "1"}, "is pushed to \"rpc-shop\"")
	ok("pushed to rpc-shop: up to ¥50.00 a payment, ¥80.00 a day (¥40.00 charged today)", "subwallet", "show", "rpc-b.sub")
	ok("moved ¥60.00 back to rpc-b", "subwallet", "revoke", "rpc-b.sub")
	net.refused(t, exitRefused, "SUBWALLET_REVOKED", []string{"charge", "--platform", "rpc-shop", "--subwallet", "rpc-b.sub", "--amount", "1"}, "revoked")

	// The window closes by itself.
	time.Sleep(time.Until(start.Add(16500 * time.Millisecond)))
	deadline := time.Now().Add(30 * time.Second)
	for {
		net.okJSON(t, &st, "redpacket", "status", "rpc-camp")
		if st.Status == "finished" || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	// rpc-a spent ¥200 of red packet; of the ¥70 refunded, ¥50 was her own
	// money and ¥20 came back as a red packet; rpc-b never spent: ¥400 −
	// ¥200 + ¥20 back to the city.
	if st.Status != "finished" || st.SpentFen != 20000 || st.RefundedHolder != 2000 || st.ReclaimedFen != 22000 || st.ReclaimedTo != "rpc-city" {
		t.Fatalf("after the window: %+v", st)
	}
	ok("finished", "redpacket", "status", "rpc-camp")
	var bal balanceJSON
	net.okJSON(t, &bal, "balance", "rpc-city")
	if bal.BalanceFen != 500000-40000+22000 {
		t.Fatalf("city %+v", bal)
	}
	var audit auditJSON
	net.okJSON(t, &audit, "audit", "supply")
	if !audit.InvariantHolds {
		t.Fatalf("audit %+v", audit)
	}
}
