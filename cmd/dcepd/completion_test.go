package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletion: `dcepd completion SHELL` prints a script for each shell
// cobra supports, and the bash one parses and defines its completion
// function (issue 16 defect 5: dcep and dcepd both complete).
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		var out bytes.Buffer
		root := rootCmd()
		root.SetOut(&out)
		root.SetArgs([]string{"completion", sh})
		if err := root.Execute(); err != nil {
			t.Fatalf("dcepd completion %s: %v", sh, err)
		}
		if !strings.Contains(out.String(), "dcepd") || out.Len() < 500 {
			t.Fatalf("dcepd completion %s printed %d bytes:\n%.300s", sh, out.Len(), out.String())
		}
		if sh != "bash" {
			continue
		}
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Skip("bash not found")
		}
		file := filepath.Join(t.TempDir(), "dcepd.bash")
		if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command(bash, "-c", "source "+file+" && complete -p dcepd").CombinedOutput()
		if err != nil || !strings.Contains(string(got), "dcepd") {
			t.Fatalf("bash completion did not register: %v: %s", err, got)
		}
	}
}
