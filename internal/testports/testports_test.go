package testports

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestReservedAcrossProcesses: a port this process reserved is refused to
// another process (a child re-running this test binary), and no port is
// handed out twice within one process.
func TestReservedAcrossProcesses(t *testing.T) {
	if p := os.Getenv("TESTPORTS_CHILD_WANTS"); p != "" {
		want, _ := strconv.Atoi(p)
		f, err := os.OpenFile(filepath.Join(dirFn(), p), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			t.Fatalf("child locked port %d the parent holds", want)
		}
		return
	}
	seen := map[int]bool{}
	base, err := Range(8)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		seen[base+i] = true
	}
	for range 50 {
		p, err := One()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestReservedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "TESTPORTS_CHILD_WANTS="+strconv.Itoa(base+3))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestRangeBounds(t *testing.T) {
	if _, err := Range(0); err == nil {
		t.Fatal("Range(0) accepted")
	}
	if _, err := Range(101); err == nil {
		t.Fatal("Range(101) accepted")
	}
}
