package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dcep/dcep/internal/cmddoc"
)

// TestManPages runs `dcep man DIR` and checks a page for every command with
// its flags, that each renders with man(1) and that the bash completion
// parses.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"man", dir}, &out, &errOut); code != exitOK {
		t.Fatalf("dcep man: exit %d: %s", code, errOut.String())
	}
	a := &app{stdout: &out, stderr: &errOut}
	if err := cmddoc.Check(a.rootCmd(), dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"dcep-pay.1", "dcep-audit.1", "completion/dcep.bash", "completion/_dcep", "completion/dcep.fish"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}
