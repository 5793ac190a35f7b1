package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleInBrowser drives headless Chromium against the web console of
// a real `dcepd dev` network's regulator node: an anonymous visitor sees
// the network's health and no wallet, payment or audit data; after the
// regulator signs in with its token (dcep token) the page loads, shows the
// seven voters and the regulator, and its supply figure equals what `dcep
// audit supply` prints; the large payments and frozen wallets the CLI made
// show up. With DCEP_UPDATE_SCREENSHOT=1 it saves the page as
// docs/console.png (the README shows it).
//
// It needs Chromium: Debian's chromium package (apt-get install -y
// chromium; .ci/run installs it), or DCEP_CHROMIUM=/path/to/chrome. Without
// one it fails and says so; DCEP_SKIP_BROWSER=1 skips it explicitly.
func TestConsoleInBrowser(t *testing.T) {
	if os.Getenv("DCEP_SKIP_BROWSER") != "" {
		t.Skip("DCEP_SKIP_BROWSER is set")
	}
	browser := findChromium(t)
	net := shared(t)

	// Activity for the console to show: a large issue, exchange and
	// payment, a burst of small payments, a frozen wallet.
	net.ok(t, "issue", "--bank", "boc", "--amount", "2000000")
	net.ok(t, "wallet", "create", "console.li", "--bank", "boc", "--tier", "1")
	net.ok(t, "wallet", "create", "console.shop", "--bank", "boc", "--tier", "1", "--kind", "merchant", "--region", "320500")
	net.ok(t, "exchange", "--bank", "boc", "--to", "console.li", "--amount", "300000")
	net.ok(t, "pay", "--from", "console.li", "--to", "console.shop", "--amount", "120000", "--memo", "car deposit")
	for i := range 12 {
		net.ok(t, "pay", "--from", "console.li", "--to", "console.shop", "--amount", strconv.Itoa(10+i))
	}
	net.ok(t, "wallet", "create", "console.mule", "--bank", "boc", "--tier", "4")
	net.ok(t, "wallet", "freeze", "console.mule", "--reason", "AML alert 2026-117")

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1900),
	)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	url := net.url("regulator-1") + "/console/"
	// An anonymous browser sees the public network health and nothing
	// else: no supply, payments, wallets or memos.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signed-out"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-node="regulator-1"]`)),
	); err != nil {
		t.Fatalf("console at %s did not load for an anonymous visitor: %v", url, err)
	}
	waitPage(t, ctx, "an anonymous visitor sees the eight nodes and nothing identity-linked", func() error {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`document.querySelectorAll('tr[data-node]').length + '|' + document.querySelectorAll('[data-testid=supply-outstanding], [data-testid=large-payments], [data-testid=frozen-wallets], [data-testid=incidents]').length + '|' + document.body.innerText`))
		if err != nil {
			return err
		}
		parts := strings.SplitN(got, "|", 3)
		if parts[0] != "8" || parts[1] != "0" {
			return fmt.Errorf("anonymous page: %s nodes, %s audit sections", parts[0], parts[1])
		}
		for _, secret := range []string{"console.li", "console.shop", "console.mule", "car deposit", "AML alert", "¥120,000.00"} {
			if strings.Contains(parts[2], secret) {
				return fmt.Errorf("anonymous page shows %q", secret)
			}
		}
		return nil
	})

	// A regulator signs in with its token for this node (docs/api.md, "Web
	// console").
	tok := strings.TrimSpace(net.ok(t, "token", "--as", "regulator-1", "--node", net.url("regulator-1"), "--lifetime", "30m").stdout)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`[data-testid="token-input"]`), tok),
		chromedp.Click(chromedp.CSS(`[data-testid="sign-in"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-node="regulator-1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="supply-outstanding"]`)),
	); err != nil {
		t.Fatalf("console at %s did not load after the regulator signed in: %v", url, err)
	}

	// Every node, with its role, as the regulator sees the network.
	wantNodes := []string{"abc voter", "boc voter", "bocom voter", "ccb voter", "icbc voter", "pboc voter", "psbc voter", "regulator-1 regulator"}
	waitPage(t, ctx, "the seven voters and the regulator", func() error {
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll('tr[data-node]')).map(r => r.dataset.node + ' ' + r.dataset.role)`))
		if err != nil {
			return err
		}
		sort.Strings(rows)
		if strings.Join(rows, ", ") != strings.Join(wantNodes, ", ") {
			return fmt.Errorf("nodes shown: %q", rows)
		}
		counts, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`document.querySelector('[data-testid=voters]').textContent + '/' + document.querySelector('[data-testid=regulators]').textContent`))
		if err != nil || counts != "7/1" {
			return fmt.Errorf("voters/regulators shown: %q %v", counts, err)
		}
		return nil
	})

	// Every node's clock against the voters' median: known and within the
	// bound (one machine, one clock), and no trust alarm.
	waitPage(t, ctx, "every node's clock within the bound, no alarm", func() error {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll('tr[data-node] td[data-testid=clock] span')).map(e => e.className + ' ' + e.textContent)`))
		if err != nil {
			return err
		}
		if len(got) != len(wantNodes) {
			return fmt.Errorf("clock cells: %q", got)
		}
		for _, c := range got {
			if !strings.HasPrefix(c, "good ") || !strings.HasSuffix(c, " ms") {
				return fmt.Errorf("clock cells: %q", got)
			}
		}
		alarms, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid=network-alarm]').length`))
		if err != nil || alarms != 0 {
			return fmt.Errorf("network alarm banner shown (%d) %v", alarms, err)
		}
		return nil
	})

	// The supply figure equals `dcep audit supply`'s (the console polls
	// every few seconds; the network is quiet now).
	var cli auditJSON
	waitPage(t, ctx, "the console's supply equals dcep audit supply", func() error {
		net.okJSON(t, &cli, "audit", "supply")
		if !cli.InvariantHolds || cli.Node != "regulator-1" {
			return fmt.Errorf("dcep audit supply: %+v", cli)
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`['supply-outstanding', 'supply-issued', 'supply-returned', 'supply-unspent']
			.map(id => { const e = document.querySelector('[data-testid=' + id + ']'); return e.dataset.fen + ' ' + e.textContent })`))
		if err != nil {
			return err
		}
		want := []string{
			fmt.Sprintf("%d %s", cli.OutstandingFen, yuan(cli.OutstandingFen)), fmt.Sprintf("%d %s", cli.IssuedFen, yuan(cli.IssuedFen)),
			fmt.Sprintf("%d %s", cli.ReturnedFen, yuan(cli.ReturnedFen)), fmt.Sprintf("%d %s", cli.UnspentFen, yuan(cli.UnspentFen)),
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			return fmt.Errorf("console shows %q, dcep audit supply %q", got, want)
		}
		invariant, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="invariant"]`)))
		if err != nil || !strings.HasPrefix(invariant, "Invariant holds") {
			return fmt.Errorf("invariant line %q %v", invariant, err)
		}
		return nil
	})
	t.Logf("console and dcep audit supply agree: outstanding %s", yuan(cli.OutstandingFen))

	// The large payments and the frozen wallet the CLI made.
	waitPage(t, ctx, "large payments and frozen wallets", func() error {
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(document.querySelector('[data-testid=large-payments]')?.textContent || '') + '|' + (document.querySelector('[data-testid=frozen-wallets]')?.textContent || '')`))
		if err != nil {
			return err
		}
		for _, want := range []string{"¥120,000.00", "¥300,000.00", "¥2,000,000.00", "console.mule", "AML alert 2026-117"} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("page lacks %q", want)
			}
		}
		return nil
	})

	// The offline panel: per bank, who paid the payees of the payments it
	// certified, what it still owes and what its wallets owe it, as `dcep
	// audit offline` says (an offline double spend first, so there is some).
	consoleOfflineAttack(t, net)
	waitPage(t, ctx, "the offline panel equals dcep audit offline", func() error {
		var cli struct {
			Banks []auditOfflineBankJSON `json:"banks"`
		}
		net.okJSON(t, &cli, "audit", "offline")
		var want []string
		for _, b := range cli.Banks {
			for _, c := range []struct {
				key string
				fen uint64
			}{{"escrow", b.FromEscrowFen}, {"payer", b.FromPayerFen}, {"guarantee", b.FromGuaranteeFen}, {"reserve", b.FromReserveFen},
				{"later", b.PaidLaterFen}, {"unpaid", b.UnpaidFen}, {"paid", b.PaidFen}, {"debt", b.DebtFen}, {"exposure", b.ExposureFen}} {
				want = append(want, fmt.Sprintf("%s-%s %d", b.Bank, c.key, c.fen))
			}
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('[data-testid^="offline-"][data-fen]'))
			.filter(e => /-(escrow|payer|guarantee|reserve|later|unpaid|paid|debt|exposure)$/.test(e.dataset.testid))
			.map(e => e.dataset.testid.replace('offline-', '') + ' ' + e.dataset.fen)`))
		if err != nil {
			return err
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			return fmt.Errorf("console shows %q, dcep audit offline %q", got, want)
		}
		return nil
	})

	// Let the throughput chart show the burst, then take the picture.
	time.Sleep(2 * time.Second)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "console.png")
	if os.Getenv("DCEP_UPDATE_SCREENSHOT") != "" {
		path = filepath.Join(repoRoot(t), "docs", "console.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%d KiB): %s", len(png)/1024, path)
}

// findChromium returns the browser to drive: $DCEP_CHROMIUM, else chromium
// (Debian) or another Chrome on PATH. Missing, the test fails: a console
// nobody has seen in a browser is not tested.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DCEP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium not found: the console's browser test needs it. Install Debian's chromium package " +
		"(apt-get install -y chromium; .ci/run does), or set DCEP_CHROMIUM=/path/to/chrome, or set DCEP_SKIP_BROWSER=1 to skip this test")
	return ""
}

// waitPage retries check until it passes (the page polls the node), for up
// to 30 s.
func waitPage(t *testing.T, ctx context.Context, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// consoleOfflineAttack plays the article's attack on ccb with the payer at
// ¥0 online, so the console's offline panel has a guarantee payout and a
// debt to show.
func consoleOfflineAttack(t *testing.T, net *devNet) {
	t.Helper()
	dir := t.TempDir()
	a := newAttack(t, net, dir, "console-off", "ccb")
	a.pay(t, net, dir)
	net.ok(t, "offline", "sync", "--device", a.carolDev)
	wantBalance(t, net, a.carol, 10000)
}
