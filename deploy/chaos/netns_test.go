package chaos

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needRoot skips a test that builds namespaces where that is not allowed,
// and takes the machine lock so it never tears down a running campaign.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (apt-get install nftables; .ci/run does)")
	}
	unlock, err := lockMachine()
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(unlock)
}

// TestNetnsPartitionAndShape: two node namespaces on the bridge reach each
// other and the client namespace; Block drops one direction of node
// traffic (clients still reach both); healing restores it; every traffic
// shape loads and clears.
func TestNetnsPartitionAndShape(t *testing.T) {
	needRoot(t)
	if err := Cleanup(); err != nil {
		t.Fatal(err)
	}
	f, err := newNetns(2)
	if err != nil {
		t.Skipf("network namespaces not permitted here: %v", err)
	}
	defer f.Teardown()
	var l net.Listener
	if err := inNamespace("/run/netns/"+nsName(1), func() { l, err = net.Listen("tcp", nodeHost(1)+":7101") }); err != nil || l == nil {
		t.Fatalf("listen in %s: %v", nsName(1), err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func(fromNS string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := nsDialer("/run/netns/"+fromNS)(ctx, "tcp", nodeHost(1)+":7101")
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(nsName(0)); err != nil {
		t.Fatalf("node 0 → node 1 before the partition: %v", err)
	}
	if err := f.Block([][2]int{{0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := dial(nsName(0)); err == nil {
		t.Fatal("node 0 reached node 1 through the partition")
	}
	if err := dial(cliNS); err != nil {
		t.Fatalf("the client namespace lost node 1 in a node partition: %v", err)
	}
	if err := f.Block(nil); err != nil {
		t.Fatal(err)
	}
	if err := dial(nsName(0)); err != nil {
		t.Fatalf("node 0 → node 1 after healing: %v", err)
	}
	for _, s := range []Shape{{DelayMs: 100, JitterMs: 20}, {LossPct: 10}, {DelayMs: 30, ReorderPct: 25}, {DelayMs: 50, LossPct: 5}} {
		desc, err := f.Shape(0, s)
		if err != nil {
			t.Fatalf("shape %+v: %v", s, err)
		}
		t.Logf("%+v: %s", s, desc)
		if _, err := f.Shape(0, Shape{}); err != nil {
			t.Fatalf("clear %+v: %v", s, err)
		}
	}
	if err := dial(nsName(0)); err != nil {
		t.Fatalf("node 0 → node 1 after shapes were cleared: %v", err)
	}
}

// TestCleanupAfterCrash: what a killed harness leaves (a namespace with a
// process in it, a tmpfs data mount) is removed by Cleanup, which is
// idempotent.
func TestCleanupAfterCrash(t *testing.T) {
	needRoot(t)
	ns := Prefix + "-n7"
	if err := run("ip", "netns", "add", ns); err != nil {
		t.Skipf("network namespaces not permitted here: %v", err)
	}
	proc := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(Prefix+"-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat("/run/netns/" + ns); !os.IsNotExist(err) {
		t.Fatalf("namespace %s still there: %v", ns, err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the process in the namespace survived Cleanup")
	}
	raw, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(raw), dir) {
		t.Fatalf("tmpfs on %s still mounted", dir)
	}
}
