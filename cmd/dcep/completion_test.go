package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCompletion: `dcep completion SHELL` prints a completion script
// (issue 16, defect 5: it did not exist; only dcepd had one).
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"completion", sh}, &out, &errb); code != 0 {
			t.Fatalf("dcep completion %s: exit %d: %s", sh, code, errb.String())
		}
		if !strings.Contains(out.String(), "dcep") || out.Len() < 500 {
			t.Fatalf("dcep completion %s printed %d bytes:\n%.300s", sh, out.Len(), out.String())
		}
	}
}
