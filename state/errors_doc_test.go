package state_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/dcep/dcep/state/statepb"
)

// TestErrorsDocListsEveryCode: docs/errors.md has a row for every ledger
// code, with its number and name, so the documented list cannot fall
// behind the enum.
func TestErrorsDocListsEveryCode(t *testing.T) {
	raw, err := os.ReadFile("../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for n := range statepb.Code_name {
		c := statepb.Code(n)
		if c == statepb.Code_CODE_UNSPECIFIED {
			continue
		}
		row := fmt.Sprintf("| %d | `%s` |", n, c.Short())
		if !strings.Contains(doc, row) {
			t.Errorf("docs/errors.md has no row %q", row)
		}
	}
}
