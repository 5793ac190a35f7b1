// Package testports hands out loopback TCP ports to tests, reserved across
// every test process on the machine.
//
// `go test ./...` runs many test binaries at once, and several of them start
// nodes that listen, stop and listen again on the same port (a restart). A
// port that is merely probed free and closed can be taken by another
// process in between: CI once failed with "bind: address already in use" on
// a node's restart. So each port handed out is also reserved by an flock on
// a file named after it in a directory shared by all processes; the lock is
// held until the process exits (the kernel drops it even on kill -9), and
// every process that asks here skips ports another holds.
//
// Ports come from below the kernel's ephemeral range (32768+ on Linux),
// where outgoing connections would otherwise grab them.
package testports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

const (
	lowPort  = 10_000
	highPort = 32_000 // exclusive; the ephemeral range starts at 32768
	tries    = 2_000
)

var (
	mu    sync.Mutex
	held  = map[int]*os.File{} // port → its lock file, open for the process's life
	dirFn = func() string { return filepath.Join(os.TempDir(), "dcep-test-ports") }
)

// ErrNone means no free range of the size asked was found.
var ErrNone = errors.New("testports: no free port range")

// Range reserves n consecutive free ports and returns the first. The ports
// stay reserved for this process until it exits.
func Range(n int) (int, error) {
	if n < 1 || n > 100 {
		return 0, fmt.Errorf("testports: range of %d ports: want 1..100", n)
	}
	mu.Lock()
	defer mu.Unlock()
	dir := dirFn()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, fmt.Errorf("testports: %w", err)
	}
	for range tries {
		base := lowPort + rand.IntN(highPort-lowPort-n)
		if locks, ok := tryRange(dir, base, n); ok {
			for i, f := range locks {
				held[base+i] = f
			}
			return base, nil
		}
	}
	return 0, ErrNone
}

// One reserves one free port.
func One() (int, error) { return Range(1) }

// tryRange locks and probes base..base+n-1; on any failure it releases
// what it took.
func tryRange(dir string, base, n int) ([]*os.File, bool) {
	var locks []*os.File
	release := func() {
		for _, f := range locks {
			f.Close()
		}
	}
	for p := base; p < base+n; p++ {
		if held[p] != nil {
			release()
			return nil, false
		}
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(p)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			release()
			return nil, false
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			release()
			return nil, false
		}
		locks = append(locks, f)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			release()
			return nil, false
		}
		l.Close()
	}
	return locks, true
}
