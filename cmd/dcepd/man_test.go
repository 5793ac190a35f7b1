package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dcep/dcep/internal/cmddoc"
)

// TestManPages runs `dcepd man DIR` and checks a page for every command
// with its flags, that each renders with man(1) and that the bash
// completion parses.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	root := rootCmd()
	root.SetArgs([]string{"man", dir})
	if err := root.Execute(); err != nil {
		t.Fatalf("dcepd man: %v", err)
	}
	if err := cmddoc.Check(rootCmd(), dir); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"dcepd.1", "dcepd-run.1", "dcepd-testnet.1", "dcepd-dev.1", "completion/_dcepd", "completion/dcepd.fish"} {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Fatal(err)
		}
	}
}
