package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dcep/dcep/state/statepb"
)

func TestMatchLines(t *testing.T) {
	out := "NODE   ROLE   RAFT\npboc   voter  Leader\n\nnetwork dcep-dev: leader pboc, term 2; 8 of 8 nodes ready\n"
	for _, c := range []struct {
		expect []string
		ok     bool
	}{
		{[]string{"NODE ROLE RAFT", "pboc voter …", "network dcep-dev: leader …; 8 of 8 nodes ready"}, true},
		{[]string{"NODE   ROLE      RAFT", "…", "network …"}, true},
		{[]string{"pboc voter …", "NODE ROLE RAFT"}, false}, // order matters
		{[]string{"network dcep-dev: leader …; 7 of 8 nodes ready"}, false},
		{[]string{"pboc voter"}, false}, // whole lines
	} {
		if err := matchLines(c.expect, out); (err == nil) != c.ok {
			t.Errorf("%q: %v", c.expect, err)
		}
	}
}

func TestWalkthroughParse(t *testing.T) {
	readme := strings.Join([]string{
		"# x", "", "```sh", aliasLine, "",
		"# narration", "dcep status", "# NODE …", "#   a  b", "",
		"# more narration", "dcep pay --from a --to b --amount 1", "# error LIMIT_PAYMENT: …", "```", "",
	}, "\n")
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, []byte(readme), 0o600); err != nil {
		t.Fatal(err)
	}
	steps, err := walkthrough(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || steps[0].command != "dcep status" || len(steps[0].expect) != 2 || steps[0].expect[1] != "  a  b" ||
		steps[1].expect[0] != "error LIMIT_PAYMENT: …" || steps[1].line != 12 {
		t.Fatalf("%+v", steps)
	}
	bad := strings.Replace(readme, "dcep status", "go run ./cmd/dcep status", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := walkthrough(path); err == nil {
		t.Fatal("a go run line other than the alias was accepted")
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	tb := newTable("WALLET", "BALANCE").alignRight(1)
	tb.add("alice", yuan(491150))
	tb.add("luckin", yuan(8850))
	tb.write(&b)
	want := "WALLET    BALANCE\nalice   ¥4,911.50\nluckin     ¥88.50\n"
	if got := b.String(); got != want {
		t.Fatalf("got\n%s", got)
	}
}

func TestSpentNow(t *testing.T) {
	// 2026-12-02 00:30 in Beijing is 2026-12-01 16:30 UTC.
	const ms = int64(1796142600000)
	rec := &statepb.WalletRecord{SpendDay: (ms + 8*3600*1000) / 86400000, SpentDayFen: 500, SpendYear: 2026, SpentYearFen: 900}
	if d, y := spentNow(rec, ms); d != 500 || y != 900 {
		t.Fatalf("same day: %d %d", d, y)
	}
	if d, y := spentNow(rec, ms+86400000); d != 0 || y != 900 {
		t.Fatalf("next day: %d %d", d, y)
	}
	if lower(0, 5) != 5 || lower(7, 0) != 7 || lower(7, 5) != 5 || lower(5, 7) != 5 {
		t.Fatal("lower")
	}
}
